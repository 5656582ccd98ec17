"""More time on a live grant, against SQLite and Postgres: ask, approve, deny, expire."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from accessbot.models import AccessRequest, AuditEvent, Grant, GrantStatus, RequestStatus
from accessbot.services import extensions, grants, requests
from accessbot.services.errors import Conflict, InvalidInput, NotAuthorized
from tests.factories import (
    APPROVER,
    IAM_USER,
    REQUESTER,
    STRANGER,
    active_grant,
    approve,
    approved_grant,
    ask_for_more_time,
    audit_trail,
    count,
    create_request,
    load_grant,
    load_request,
    make_catalog,
)

HOUR = timedelta(hours=1)


def step(sessions, operation, *args):
    with sessions() as session, session.begin():
        return operation(session, *args)


def revoke_now(sessions, clock, grant_id: int) -> None:
    """The requester clicks "I'm done" and the revoker takes the grant."""
    step(sessions, grants.end_early, grant_id, REQUESTER, clock())
    assert step(sessions, grants.claim_to_revoke, grant_id, "setup", clock()) is not None
    assert step(sessions, grants.finish_revoke, grant_id, "setup", clock()) is not None


def audit_detail(sessions, action: str, request_id: int) -> str:
    with sessions() as session:
        return session.scalars(select(AuditEvent.detail).where(
            AuditEvent.action == action, AuditEvent.request_id == request_id)).one()


# -- asking ---------------------------------------------------------------------------

def test_an_extension_request_is_recorded_for_the_grant(sessions, catalog, clock):
    grant_id = active_grant(sessions, catalog, clock())  # 2h, until 11:00
    before = load_grant(sessions, grant_id)
    clock.advance(minutes=30)

    request_id = ask_for_more_time(sessions, catalog, grant_id, clock(), HOUR)

    request = load_request(sessions, request_id)
    assert request.status is RequestStatus.PENDING
    assert (request.extends_grant_id, request.requester_id, request.resource) == (
        grant_id, REQUESTER, "prod-admins")
    assert (request.duration, request.reason) == (HOUR, "the migration runs long")
    assert request.iam_user == IAM_USER  # known from the grant: approvable at once
    assert request.created_at == clock()
    assert request.decide_by == before.expires_at  # sooner than the 24h request timeout
    assert audit_trail(sessions, request_id=request_id) == [(REQUESTER, "requested")]
    assert f"1h more on grant #{grant_id}" in audit_detail(sessions, "requested", request_id)
    after = load_grant(sessions, grant_id)
    assert (after.status, after.expires_at) == (GrantStatus.ACTIVE, before.expires_at)


def test_without_a_duration_the_default_is_asked(sessions, catalog, clock):
    grant_id = active_grant(sessions, catalog, clock())
    request_id = ask_for_more_time(sessions, catalog, grant_id, clock(), None)
    assert load_request(sessions, request_id).duration == catalog.get("prod-admins") \
        .default_duration


def test_an_extension_expires_with_the_request_timeout_when_that_is_sooner(sessions, clock):
    catalog = make_catalog(request_timeout="10m")
    grant_id = active_grant(sessions, catalog, clock())
    request_id = ask_for_more_time(sessions, catalog, grant_id, clock())
    assert load_request(sessions, request_id).decide_by == clock() + timedelta(minutes=10)


def test_only_the_holder_may_ask(sessions, catalog, clock):
    grant_id = active_grant(sessions, catalog, clock())

    with pytest.raises(NotAuthorized, match="Only the person who holds this access"):
        ask_for_more_time(sessions, catalog, grant_id, clock(), requester=STRANGER)

    assert count(sessions, AccessRequest) == 1  # the grant's own request


@pytest.mark.parametrize("state, message", [
    ("pending", "still being put in place"),
    ("expired", "already ended"),
    ("revoked", "already ended"),
])
def test_only_an_active_unexpired_grant_can_be_extended(sessions, catalog, clock, state,
                                                        message):
    if state == "pending":
        grant_id = approved_grant(sessions, catalog, clock())
    else:
        grant_id = active_grant(sessions, catalog, clock())
    if state == "expired":
        clock.now = load_grant(sessions, grant_id).expires_at
    if state == "revoked":
        revoke_now(sessions, clock, grant_id)

    with pytest.raises(Conflict, match=message):
        ask_for_more_time(sessions, catalog, grant_id, clock())

    assert count(sessions, AccessRequest, AccessRequest.extends_grant_id.is_not(None)) == 0


@pytest.mark.parametrize("duration", [timedelta(minutes=4), timedelta(hours=5)])
def test_more_time_within_the_resource_limits(sessions, catalog, clock, duration):
    grant_id = active_grant(sessions, catalog, clock())
    with pytest.raises(InvalidInput, match="5m to 4h"):
        ask_for_more_time(sessions, catalog, grant_id, clock(), duration)


def test_a_second_pending_extension_is_refused(sessions, catalog, clock):
    grant_id = active_grant(sessions, catalog, clock())
    first = ask_for_more_time(sessions, catalog, grant_id, clock())

    with pytest.raises(InvalidInput, match=f"request #{first} is waiting"):
        ask_for_more_time(sessions, catalog, grant_id, clock())
    with sessions() as session, pytest.raises(InvalidInput, match=f"request #{first}"):
        extensions.check_can_extend(session, catalog, grant_id, REQUESTER, clock())

    step(sessions, requests.deny, catalog, first, APPROVER, "not now", clock())
    second = ask_for_more_time(sessions, catalog, grant_id, clock())  # decided: ask again
    assert load_request(sessions, second).status is RequestStatus.PENDING


def test_a_pending_extension_does_not_count_as_a_pending_request(sessions, catalog, clock):
    grant_id = active_grant(sessions, catalog, clock())
    ask_for_more_time(sessions, catalog, grant_id, clock())
    with pytest.raises(InvalidInput, match="You already have prod-admins"):
        create_request(sessions, catalog, clock())  # the live grant is what stops it

    revoke_now(sessions, clock, grant_id)

    request_id = create_request(sessions, catalog, clock())  # not the pending extension
    assert load_request(sessions, request_id).extends_grant_id is None


# -- approving ------------------------------------------------------------------------

def test_approval_extends_the_grant_instead_of_creating_one(sessions, catalog, clock):
    grant_id = active_grant(sessions, catalog, clock())  # 09:00 to 11:00, warning at 10:45
    clock.now = load_grant(sessions, grant_id).warn_at
    assert step(sessions, grants.claim_warning, grant_id, clock()) is not None
    clock.advance(minutes=5)
    request_id = ask_for_more_time(sessions, catalog, grant_id, clock(), HOUR)
    old = load_grant(sessions, grant_id)
    clock.advance(minutes=2)

    assert approve(sessions, catalog, request_id, clock()) == grant_id

    grant = load_grant(sessions, grant_id)
    assert grant.status is GrantStatus.ACTIVE  # a group: nothing in IAM carries the expiry
    assert grant.expires_at == old.expires_at + HOUR
    assert grant.warn_at == grant.expires_at - timedelta(minutes=15)
    assert grant.warned_at is None  # warn again before the new expiry
    assert (grant.starts_at, grant.granted_at) == (old.starts_at, old.granted_at)
    request = load_request(sessions, request_id)
    assert (request.status, request.decided_by, request.decided_at) == (
        RequestStatus.APPROVED, APPROVER, clock())
    assert request.decision_reason is None
    assert count(sessions, Grant) == 1
    assert audit_trail(sessions, request_id=request_id) == [
        (REQUESTER, "requested"), (APPROVER, "extended"), (APPROVER, "approved")]
    assert audit_detail(sessions, "extended", request_id) == "until 2026-11-28 12:00:00 UTC"


def test_the_extension_is_capped_at_max_duration_from_the_approval(sessions, catalog, clock):
    grant_id = active_grant(sessions, catalog, clock())  # until 11:00; at most 4h from now
    clock.advance(hours=1)
    request_id = ask_for_more_time(sessions, catalog, grant_id, clock(), timedelta(hours=4))

    approve(sessions, catalog, request_id, clock())

    assert load_grant(sessions, grant_id).expires_at == clock() + timedelta(hours=4)
    note = load_request(sessions, request_id).decision_reason
    assert note.startswith("Capped: prod-admins may run at most 4h")
    assert "adds 3h instead of 4h" in note
    assert note in audit_detail(sessions, "extended", request_id)


def test_a_shrunk_max_duration_never_shortens_the_grant(sessions, clock):
    catalog = make_catalog({"prod-admins": {"max_duration": "4h"}})
    grant_id = active_grant(sessions, catalog, clock(), duration=timedelta(hours=4))
    request_id = ask_for_more_time(sessions, catalog, grant_id, clock())
    before = load_grant(sessions, grant_id).expires_at
    shrunk = make_catalog({"prod-admins": {"max_duration": "2h", "default_duration": "1h"}})

    approve(sessions, shrunk, request_id, clock())

    assert load_grant(sessions, grant_id).expires_at == before


def test_no_new_warning_when_its_time_has_passed(sessions, catalog, clock):
    grant_id = active_grant(sessions, catalog, clock())  # until 11:00
    clock.now = load_grant(sessions, grant_id).expires_at - timedelta(minutes=5)
    request_id = ask_for_more_time(sessions, catalog, grant_id, clock(), timedelta(minutes=5))

    approve(sessions, catalog, request_id, clock())

    grant = load_grant(sessions, grant_id)
    assert grant.expires_at == clock() + timedelta(minutes=10)
    assert grant.warn_at is None  # 15 minutes before the new expiry is already past


def test_an_extended_role_grant_goes_back_to_be_applied(sessions, catalog, clock):
    grant_id = active_grant(sessions, catalog, clock(), resource="prod-readonly")
    old = load_grant(sessions, grant_id)
    request_id = ask_for_more_time(sessions, catalog, grant_id, clock())

    approve(sessions, catalog, request_id, clock())

    grant = load_grant(sessions, grant_id)
    assert grant.status is GrantStatus.PENDING  # IAM must learn the new expiry
    assert grant.expires_at == old.expires_at + timedelta(minutes=30)
    assert (grant.granted_at, grant.attempts, grant.next_attempt_at) == (old.granted_at, 0, None)
    with sessions() as session:
        assert grants.due_to_grant(session, clock()) == [grant_id]


@pytest.mark.parametrize("how", ["ended-early", "expired"])
def test_approving_an_extension_of_an_ended_grant_changes_nothing(sessions, catalog, clock, how):
    grant_id = active_grant(sessions, catalog, clock())
    request_id = ask_for_more_time(sessions, catalog, grant_id, clock())
    if how == "ended-early":
        clock.advance(minutes=10)
        step(sessions, grants.end_early, grant_id, REQUESTER, clock())
        clock.advance(seconds=1)
    else:
        clock.now = load_grant(sessions, grant_id).expires_at
    before = load_grant(sessions, grant_id)

    with pytest.raises(Conflict, match=f"Grant #{grant_id} .* is no longer active") as error:
        approve(sessions, catalog, request_id, clock())

    assert f"Deny request #{request_id} or let it expire" in str(error.value)
    after = load_grant(sessions, grant_id)
    assert (after.status, after.expires_at, after.warn_at, after.warned_at) == (
        before.status, before.expires_at, before.warn_at, before.warned_at)
    request = load_request(sessions, request_id)
    assert (request.status, request.decided_by) == (RequestStatus.PENDING, None)
    assert audit_trail(sessions, request_id=request_id) == [(REQUESTER, "requested")]


def test_a_denied_extension_leaves_the_grant_alone(sessions, catalog, clock):
    grant_id = active_grant(sessions, catalog, clock())
    before = load_grant(sessions, grant_id)
    request_id = ask_for_more_time(sessions, catalog, grant_id, clock())

    step(sessions, requests.deny, catalog, request_id, APPROVER, "finish tomorrow", clock())

    assert load_request(sessions, request_id).status is RequestStatus.DENIED
    after = load_grant(sessions, grant_id)
    assert (after.status, after.expires_at, after.warn_at) == (
        before.status, before.expires_at, before.warn_at)


def test_an_undecided_extension_expires_with_the_grant(sessions, catalog, clock):
    grant_id = active_grant(sessions, catalog, clock())
    request_id = ask_for_more_time(sessions, catalog, grant_id, clock())
    expires_at = load_grant(sessions, grant_id).expires_at
    clock.now = expires_at - timedelta(seconds=1)
    assert step(sessions, requests.expire_overdue, clock()) == []

    clock.now = expires_at
    assert step(sessions, requests.expire_overdue, clock()) == [request_id]

    assert load_request(sessions, request_id).status is RequestStatus.EXPIRED
    assert load_grant(sessions, grant_id).expires_at == expires_at


def test_approved_extension_is_the_latest(sessions, catalog, clock):
    grant_id = active_grant(sessions, catalog, clock())
    with sessions() as session:
        assert extensions.approved_extension(session, grant_id) is None
    first = ask_for_more_time(sessions, catalog, grant_id, clock())
    approve(sessions, catalog, first, clock())
    clock.advance(minutes=1)
    second = ask_for_more_time(sessions, catalog, grant_id, clock())
    approve(sessions, catalog, second, clock())

    with sessions() as session:
        assert extensions.approved_extension(session, grant_id).id == second
