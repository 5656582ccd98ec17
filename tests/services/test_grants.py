"""Grants against SQLite and Postgres: the leased steps that apply and revoke access."""

from datetime import timedelta

import pytest

from accessbot.models import GrantStatus
from accessbot.services import audit, grants
from accessbot.services.audit import Action
from accessbot.services.errors import Conflict, NotAuthorized, NotFound
from tests.factories import (
    REQUESTER,
    STRANGER,
    active_grant,
    approved_grant,
    audit_trail,
    load_grant,
    someone,
)

SYSTEM = audit.SYSTEM
ARN = "arn:aws:iam::123456789012:role/ProdReadOnly"


def step(sessions, operation, *args):
    """Run one grants operation in its own transaction, as the runner does."""
    with sessions() as session, session.begin():
        return operation(session, *args)


def expire(clock, grant) -> None:
    clock.now = grant.expires_at


def test_lifecycle_from_approval_to_revocation(sessions, catalog, clock):
    grant_id = approved_grant(sessions, catalog, clock(), resource="prod-readonly")

    claimed = step(sessions, grants.claim_to_grant, grant_id, "w1", clock())
    assert (claimed.lease_owner, claimed.lease_until) == ("w1", clock() + grants.LEASE)
    assert grants.spec_of(claimed).target == "ProdReadOnly"

    clock.advance(seconds=3)
    step(sessions, grants.finish_grant, grant_id, "w1", clock(), ARN)
    grant = load_grant(sessions, grant_id)
    assert grant.status is GrantStatus.ACTIVE
    assert (grant.granted_at, grant.role_arn) == (clock(), ARN)
    assert (grant.lease_owner, grant.lease_until) == (None, None)

    clock.advance(minutes=30)
    assert step(sessions, grants.claim_to_revoke, grant_id, "w1", clock()) is None

    expire(clock, grant)
    assert step(sessions, grants.claim_to_revoke, grant_id, "w2", clock()).lease_owner == "w2"
    step(sessions, grants.finish_revoke, grant_id, "w2", clock())

    grant = load_grant(sessions, grant_id)
    assert grant.status is GrantStatus.REVOKED
    assert (grant.revoked_at, grant.end_reason) == (clock(), "expired")
    assert (grant.lease_owner, grant.lease_until) == (None, None)
    assert audit_trail(sessions, grant_id=grant_id)[1:] == [
        (SYSTEM, "granted"), (SYSTEM, "revoked")]
    # a final grant cannot be claimed again, for either step
    assert step(sessions, grants.claim_to_revoke, grant_id, "w3", clock()) is None
    assert step(sessions, grants.claim_to_grant, grant_id, "w3", clock()) is None


def test_get_grant_of_an_unknown_id(sessions):
    with sessions() as session, pytest.raises(NotFound, match="#424242"):
        grants.get_grant(session, 424242)


@pytest.mark.parametrize("claim, make, start_at_expiry", [
    (grants.claim_to_grant, approved_grant, False),
    (grants.claim_to_revoke, active_grant, True),
])
def test_claim_refused_while_another_owner_holds_the_lease(sessions, catalog, clock, claim,
                                                           make, start_at_expiry):
    grant_id = make(sessions, catalog, clock())
    if start_at_expiry:
        expire(clock, load_grant(sessions, grant_id))
    assert step(sessions, claim, grant_id, "w1", clock()) is not None

    assert step(sessions, claim, grant_id, "w2", clock()) is None
    assert step(sessions, claim, grant_id, "w1", clock()) is None  # not re-entrant either
    clock.advance(seconds=grants.LEASE.total_seconds())
    assert step(sessions, claim, grant_id, "w2", clock()) is None  # lease ends *after* this

    clock.advance(seconds=1)
    assert step(sessions, claim, grant_id, "w2", clock()) is not None
    assert load_grant(sessions, grant_id).lease_owner == "w2"


def test_the_owner_of_a_lost_lease_cannot_finish(sessions, catalog, clock):
    grant_id = approved_grant(sessions, catalog, clock())
    step(sessions, grants.claim_to_grant, grant_id, "slow", clock())
    clock.advance(seconds=grants.LEASE.total_seconds() + 1)
    step(sessions, grants.claim_to_grant, grant_id, "fast", clock())

    assert step(sessions, grants.finish_grant, grant_id, "slow", clock(), None) is None
    assert step(sessions, grants.fail_grant, grant_id, "slow", clock(), "boom") is None
    assert step(sessions, grants.record_failure, grant_id, "slow", clock(), "boom",
                Action.GRANT_RETRY) is None
    grant = load_grant(sessions, grant_id)
    assert (grant.status, grant.lease_owner, grant.attempts) == (GrantStatus.PENDING, "fast", 0)

    assert step(sessions, grants.finish_grant, grant_id, "fast", clock(), None) is not None
    assert load_grant(sessions, grant_id).status is GrantStatus.ACTIVE


def test_claim_to_grant_refused_once_expired(sessions, catalog, clock):
    grant_id = approved_grant(sessions, catalog, clock())
    expire(clock, load_grant(sessions, grant_id))
    assert step(sessions, grants.claim_to_grant, grant_id, "w1", clock()) is None


def test_claim_to_revoke_refused_before_expiry(sessions, catalog, clock):
    grant_id = active_grant(sessions, catalog, clock())
    clock.now = load_grant(sessions, grant_id).expires_at - timedelta(seconds=1)

    assert step(sessions, grants.claim_to_revoke, grant_id, "w1", clock()) is None
    assert load_grant(sessions, grant_id).lease_owner is None
    with sessions() as session:
        assert grants.due_to_revoke(session, clock()) == []


def test_fail_grant_is_final(sessions, catalog, clock):
    grant_id = approved_grant(sessions, catalog, clock())
    step(sessions, grants.claim_to_grant, grant_id, "w1", clock())

    step(sessions, grants.fail_grant, grant_id, "w1", clock(), "NoSuchEntity: group")

    grant = load_grant(sessions, grant_id)
    assert grant.status is GrantStatus.FAILED
    assert (grant.last_error, grant.end_reason) == ("NoSuchEntity: group", "could not be granted")
    assert audit_trail(sessions, grant_id=grant_id)[-1] == (SYSTEM, "grant_failed")
    assert step(sessions, grants.claim_to_grant, grant_id, "w1", clock()) is None


def test_record_failure_backs_off_and_alerts_once(sessions, catalog, clock):
    grant_id = approved_grant(sessions, catalog, clock(), duration=timedelta(hours=4))
    expected = [5, 10, 20, 40, 80, 160, 320, grants.MAX_RETRY.total_seconds(),
                grants.MAX_RETRY.total_seconds()]
    delays, alerts = [], []

    for attempt, _ in enumerate(expected, start=1):
        assert step(sessions, grants.claim_to_grant, grant_id, "w1", clock()) is not None
        failure = step(sessions, grants.record_failure, grant_id, "w1", clock(),
                       f"throttled {attempt}", Action.GRANT_RETRY)
        grant = load_grant(sessions, grant_id)
        assert failure.attempts == grant.attempts == attempt
        assert failure.retry_at == grant.next_attempt_at
        assert grant.last_error == f"throttled {attempt}"
        assert grant.lease_owner is None and grant.status is GrantStatus.PENDING
        delays.append((failure.retry_at - clock()).total_seconds())
        alerts.append(failure.alert)
        clock.now = failure.retry_at

    assert delays == expected
    assert alerts == [n == grants.ALERT_AFTER_ATTEMPTS for n in range(1, len(expected) + 1)]
    trail = audit_trail(sessions, grant_id=grant_id)
    assert trail.count((SYSTEM, "grant_retry")) == len(expected)
    assert trail.count((SYSTEM, "admins_alerted")) == 1
    assert load_grant(sessions, grant_id).alerted_at is not None


def test_due_to_revoke_respects_next_attempt_and_lease(sessions, catalog, clock):
    grant_id = active_grant(sessions, catalog, clock())
    expire(clock, load_grant(sessions, grant_id))
    with sessions() as session:
        assert grants.due_to_revoke(session, clock()) == [grant_id]

    step(sessions, grants.claim_to_revoke, grant_id, "w1", clock())
    with sessions() as session:
        assert grants.due_to_revoke(session, clock()) == []  # leased

    failure = step(sessions, grants.record_failure, grant_id, "w1", clock(), "throttled",
                   Action.REVOKE_RETRY)
    clock.advance(seconds=4)
    with sessions() as session:
        assert grants.due_to_revoke(session, clock()) == []  # backing off
    clock.now = failure.retry_at
    with sessions() as session:
        assert grants.due_to_revoke(session, clock()) == [grant_id]


def test_due_to_grant_lists_unleased_pending_grants(sessions, catalog, clock):
    pending = approved_grant(sessions, catalog, clock())
    active_grant(sessions, catalog, clock(), **someone(2))
    leased = approved_grant(sessions, catalog, clock(), **someone(3))
    step(sessions, grants.claim_to_grant, leased, "w1", clock())

    with sessions() as session:
        assert grants.due_to_grant(session, clock()) == [pending]


def test_revoking_a_never_granted_grant_ends_failed(sessions, catalog, clock):
    grant_id = approved_grant(sessions, catalog, clock())
    expire(clock, load_grant(sessions, grant_id))
    with sessions() as session:
        assert grants.due_to_revoke(session, clock()) == [grant_id]

    step(sessions, grants.claim_to_revoke, grant_id, "w1", clock())
    step(sessions, grants.finish_revoke, grant_id, "w1", clock())

    grant = load_grant(sessions, grant_id)
    assert grant.status is GrantStatus.FAILED
    assert grant.end_reason == "not granted in time"
    assert grant.granted_at is None


def test_finish_revoke_needs_the_lease(sessions, catalog, clock):
    grant_id = active_grant(sessions, catalog, clock())
    expire(clock, load_grant(sessions, grant_id))

    assert step(sessions, grants.finish_revoke, grant_id, "w1", clock()) is None
    assert load_grant(sessions, grant_id).status is GrantStatus.ACTIVE


def test_claim_warning_once_and_only_when_due(sessions, catalog, clock):
    grant_id = active_grant(sessions, catalog, clock(), duration=timedelta(hours=2))
    warn_at = load_grant(sessions, grant_id).warn_at
    clock.now = warn_at - timedelta(seconds=1)
    assert step(sessions, grants.claim_warning, grant_id, clock()) is None
    with sessions() as session:
        assert grants.due_to_warn(session, clock()) == []

    clock.now = warn_at
    with sessions() as session:
        assert grants.due_to_warn(session, clock()) == [grant_id]
    assert step(sessions, grants.claim_warning, grant_id, clock()).warned_at == clock()
    clock.advance(seconds=1)
    assert step(sessions, grants.claim_warning, grant_id, clock()) is None

    assert load_grant(sessions, grant_id).warned_at == warn_at
    assert audit_trail(sessions, grant_id=grant_id).count((SYSTEM, "warned")) == 1


def test_no_warning_for_pending_or_expired_grants(sessions, catalog, clock):
    pending = approved_grant(sessions, catalog, clock())
    active = active_grant(sessions, catalog, clock(), **someone(2))
    clock.now = load_grant(sessions, pending).warn_at
    assert step(sessions, grants.claim_warning, pending, clock()) is None

    expire(clock, load_grant(sessions, active))
    assert step(sessions, grants.claim_warning, active, clock()) is None
    assert load_grant(sessions, active).warned_at is None


def test_end_early_only_by_the_requester(sessions, catalog, clock):
    grant_id = active_grant(sessions, catalog, clock())
    expires_at = load_grant(sessions, grant_id).expires_at
    clock.advance(minutes=20)

    with pytest.raises(NotAuthorized):
        step(sessions, grants.end_early, grant_id, STRANGER, clock())
    assert load_grant(sessions, grant_id).expires_at == expires_at

    step(sessions, grants.end_early, grant_id, REQUESTER, clock())

    grant = load_grant(sessions, grant_id)
    assert grant.expires_at == clock()
    assert grant.end_reason == "ended early by the requester"
    assert audit_trail(sessions, grant_id=grant_id)[-1] == (REQUESTER, "ended_early")
    # the revoker can take it at once, and keeps the requester's reason
    step(sessions, grants.claim_to_revoke, grant_id, "w1", clock())
    step(sessions, grants.finish_revoke, grant_id, "w1", clock())
    grant = load_grant(sessions, grant_id)
    assert (grant.status, grant.end_reason) == (GrantStatus.REVOKED,
                                                "ended early by the requester")


@pytest.mark.parametrize("revoked", [False, True])
def test_end_early_refused_when_already_ended(sessions, catalog, clock, revoked):
    grant_id = active_grant(sessions, catalog, clock())
    step(sessions, grants.end_early, grant_id, REQUESTER, clock())
    if revoked:
        step(sessions, grants.claim_to_revoke, grant_id, "w1", clock())
        step(sessions, grants.finish_revoke, grant_id, "w1", clock())
    clock.advance(seconds=1)

    with pytest.raises(Conflict, match="already ended"):
        step(sessions, grants.end_early, grant_id, REQUESTER, clock())
    assert load_grant(sessions, grant_id).expires_at == clock() - timedelta(seconds=1)
    assert audit_trail(sessions, grant_id=grant_id).count((REQUESTER, "ended_early")) == 1


def test_live_grants_are_the_pending_and_active_ones(sessions, catalog, clock):
    pending = approved_grant(sessions, catalog, clock(), **someone(2))
    active = active_grant(sessions, catalog, clock(), **someone(3))
    ended = active_grant(sessions, catalog, clock())
    step(sessions, grants.end_early, ended, REQUESTER, clock())
    step(sessions, grants.claim_to_revoke, ended, "w1", clock())
    step(sessions, grants.finish_revoke, ended, "w1", clock())

    with sessions() as session:
        assert sorted(g.id for g in grants.live_grants(session)) == [pending, active]


def test_revoke_retries_count_afresh_after_grant_retries(sessions, catalog, clock):
    """The admins must hear about a stuck revocation even if the grant was slow too."""
    grant_id = approved_grant(sessions, catalog, clock())
    for _ in range(grants.ALERT_AFTER_ATTEMPTS):
        step(sessions, grants.claim_to_grant, grant_id, "w1", clock())
        failure = step(sessions, grants.record_failure, grant_id, "w1", clock(), "throttled",
                       Action.GRANT_RETRY)
        clock.now = failure.retry_at
    assert failure.alert  # the admins heard about the slow grant
    step(sessions, grants.claim_to_grant, grant_id, "w1", clock())
    step(sessions, grants.finish_grant, grant_id, "w1", clock(), None)
    expire(clock, load_grant(sessions, grant_id))

    alerts, delays = [], []
    for _ in range(grants.ALERT_AFTER_ATTEMPTS):
        step(sessions, grants.claim_to_revoke, grant_id, "w1", clock())
        failure = step(sessions, grants.record_failure, grant_id, "w1", clock(), "throttled",
                       Action.REVOKE_RETRY)
        alerts.append(failure.alert)
        delays.append((failure.retry_at - clock()).total_seconds())
        clock.now = failure.retry_at

    assert alerts == [False] * (grants.ALERT_AFTER_ATTEMPTS - 1) + [True]
    assert delays == [5, 10, 20, 40, 80]


def test_a_restarted_worker_takes_over_the_leases_of_dead_processes_on_its_host(
        sessions, catalog, clock):
    from accessbot.services import leases

    grant_id = approved_grant(sessions, catalog, clock())
    with sessions() as session, session.begin():
        assert grants.claim_to_grant(session, grant_id, "host-a:4242:ab12cd", clock())
    alive = {4242: False}

    with sessions() as session, session.begin():  # another host's, or a live pid: kept
        assert leases.end_leases_of_the_dead(session, "host-b", lambda pid: False) == 0
        alive[4242] = True
        assert leases.end_leases_of_the_dead(session, "host-a", alive.get) == 0
    with sessions() as session, session.begin():
        assert leases.end_leases_of_the_dead(session, "host-a", lambda pid: False) == 1
        assert grants.claim_to_grant(session, grant_id, "host-a:5000:ef34", clock())
