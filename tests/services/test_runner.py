"""AccessRunner with fakes of every port, on SQLite and Postgres, moved by a FakeClock."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from models import ApprovalMessage, GrantStatus, RequestStatus
from services import grants
from services.runner import ANNOUNCE_GRACE, REVOKE_JOB, WARN_JOB, AccessRunner
from tests.factories import (
    IAM_USER,
    REQUESTER,
    approve,
    approved_grant,
    ask_for_more_time,
    audit_trail,
    create_request,
    load_grant,
    load_request,
    someone,
)
from tests.fakes.ports import (
    FakeDirectory,
    FakeNotifier,
    FakeProfiles,
    FakeProvider,
    FakeTimers,
    role_arn,
)

EVERYONE = ["C0APPROVALS", "U0BOB", "U0DAVE"]  # where prod-admins requests are posted


@pytest.fixture
def provider():
    return FakeProvider()


@pytest.fixture
def notifier():
    return FakeNotifier()


@pytest.fixture
def directory():
    return FakeDirectory({REQUESTER: IAM_USER})


@pytest.fixture
def profiles():
    return FakeProfiles()


@pytest.fixture
def timers():
    return FakeTimers()


@pytest.fixture
def runner(sessions, catalog, provider, directory, profiles, notifier, timers, clock):
    return AccessRunner(sessions, catalog, provider, directory, profiles, notifier, timers,
                        clock=clock, owner="runner-1")


def messages_of(sessions, request_id: int) -> list[tuple[str, str, str]]:
    with sessions() as session:
        return [(m.destination, m.channel, m.ts) for m in session.scalars(
            select(ApprovalMessage).where(ApprovalMessage.request_id == request_id)
            .order_by(ApprovalMessage.id))]


def live_grant(sessions, catalog, clock, runner, **request_args) -> int:
    """A grant the runner has put in place."""
    grant_id = approved_grant(sessions, catalog, clock(), **request_args)
    assert runner.apply_grant(grant_id) is not None
    return grant_id


def run_to_next_attempt(sessions, clock, grant_id: int) -> None:
    clock.now = load_grant(sessions, grant_id).next_attempt_at


# -- announcing requests ----------------------------------------------------------------

def test_announce_posts_to_the_channel_and_every_approver(sessions, catalog, clock, runner,
                                                         notifier):
    request_id = create_request(sessions, catalog, clock(), iam_user=None)
    clock.advance(seconds=2)

    assert runner.announce(request_id) is True

    request = load_request(sessions, request_id)
    assert request.iam_user == IAM_USER
    assert request.announced_at == clock()
    assert notifier.posted_to() == EVERYONE
    messages = messages_of(sessions, request_id)
    assert [m[0] for m in messages] == EVERYONE
    assert [m[1] for m in messages] == ["C0APPROVALS", "D0BOB", "D0DAVE"]
    assert len({m[2] for m in messages}) == 3
    [(submitted,)] = notifier.sent("request_submitted")
    assert submitted.id == request_id
    assert ("accessbot", "announced") in audit_trail(sessions, request_id=request_id)


def test_announce_finds_the_iam_user_by_email(sessions, catalog, clock, runner, directory,
                                             profiles):
    directory.by_slack_id.clear()
    directory.by_email["alice@example.com"] = "alice.smith"
    profiles.emails[REQUESTER] = "alice@example.com"
    request_id = create_request(sessions, catalog, clock(), iam_user=None)

    assert runner.announce(request_id) is True
    assert load_request(sessions, request_id).iam_user == "alice.smith"
    assert directory.lookups == [(REQUESTER, None), (REQUESTER, "alice@example.com")]


def test_announce_twice_does_not_post_again(sessions, catalog, clock, runner, notifier):
    request_id = create_request(sessions, catalog, clock(), iam_user=None)
    runner.announce(request_id)

    runner.announce(request_id)

    assert notifier.posted_to() == EVERYONE
    assert [m[0] for m in messages_of(sessions, request_id)] == EVERYONE


def test_announce_twice_tells_the_requester_once(sessions, catalog, clock, runner, notifier):
    request_id = create_request(sessions, catalog, clock(), iam_user=None)
    runner.announce(request_id)
    announced_at = clock()
    clock.advance(minutes=1)

    runner.announce(request_id)

    assert len(notifier.sent("request_submitted")) == 1
    assert load_request(sessions, request_id).announced_at == announced_at


@pytest.mark.parametrize("profiles", [FakeProfiles(), FakeProfiles(failing=True)],
                         ids=["no-email", "profile-lookup-fails"])
def test_announce_without_an_iam_user_fails_the_request(sessions, catalog, clock, runner,
                                                       directory, notifier):
    directory.by_slack_id.clear()
    request_id = create_request(sessions, catalog, clock(), iam_user=None)

    assert runner.announce(request_id) is False

    request = load_request(sessions, request_id)
    assert request.status is RequestStatus.FAILED
    assert f"slack-user-id={REQUESTER}" in request.decision_reason
    assert notifier.posted_to() == []
    [(failed, why)] = notifier.sent("request_failed")
    assert (failed.id, why) == (request_id, request.decision_reason)
    assert audit_trail(sessions, request_id=request_id)[-1] == ("accessbot", "request_failed")
    assert runner.announce(request_id) is False  # a failed request is never posted
    assert len(notifier.calls) == 1


def test_announce_retries_only_the_destinations_that_failed(sessions, catalog, clock, runner,
                                                            notifier):
    request_id = create_request(sessions, catalog, clock(), iam_user=None)
    notifier.fail_next("post_request", destination="U0DAVE")

    assert runner.announce(request_id) is False

    assert [m[0] for m in messages_of(sessions, request_id)] == ["C0APPROVALS", "U0BOB"]
    assert load_request(sessions, request_id).announced_at is None
    assert notifier.sent("request_submitted") == []

    assert runner.announce(request_id) is True

    assert notifier.posted_to() == EVERYONE
    assert [m[0] for m in messages_of(sessions, request_id)] == EVERYONE
    assert load_request(sessions, request_id).announced_at == clock()
    assert len(notifier.sent("request_submitted")) == 1


def test_a_decided_request_is_not_announced(sessions, catalog, clock, runner, notifier):
    request_id = create_request(sessions, catalog, clock())
    approve(sessions, catalog, request_id, clock())

    assert runner.announce(request_id) is False
    assert notifier.calls == []


@pytest.mark.parametrize("decide", ["expire", "approve"])
def test_a_request_decided_while_being_posted_leaves_no_copy_with_buttons(
        sessions, catalog, clock, runner, notifier, decide):
    """The sweep (or a fast approver) acts between two posts: the copies posted after that
    are re-rendered too, and the requester is not told it is waiting for approvers."""
    request_id = create_request(sessions, catalog, clock(), iam_user=None)
    post = notifier.post_request

    def post_then_decide(request, destination):
        answer = post(request, destination)
        if destination == "U0BOB":
            if decide == "expire":
                clock.advance(hours=48)
                runner.expire_requests()
            else:
                approve(sessions, catalog, request_id, clock())
                runner.refresh_messages(request_id)
        return answer

    notifier.post_request = post_then_decide
    assert runner.announce(request_id) is True

    last_rendered = {message.destination: request.status
                     for request, message in notifier.sent("update_request")}
    expected = RequestStatus.EXPIRED if decide == "expire" else RequestStatus.APPROVED
    assert last_rendered == dict.fromkeys(EVERYONE, expected)
    assert notifier.sent("request_submitted") == []
    assert len(notifier.sent("request_decided")) == (decide == "expire")  # told once
    assert load_request(sessions, request_id).announced_at is not None  # not posted again


# -- applying grants --------------------------------------------------------------------

@pytest.mark.parametrize("resource, kind, arn", [
    ("prod-admins", "iam_group", None),
    ("prod-readonly", "iam_role", role_arn("ProdReadOnly")),
])
def test_apply_grant(sessions, catalog, clock, runner, provider, notifier, timers, resource,
                     kind, arn):
    grant_id = approved_grant(sessions, catalog, clock(), resource=resource)
    clock.advance(seconds=1)

    assert runner.apply_grant(grant_id).status is GrantStatus.ACTIVE

    grant = load_grant(sessions, grant_id)
    assert (grant.status, grant.granted_at, grant.role_arn) == (GrantStatus.ACTIVE, clock(), arn)
    [spec] = provider.grants
    assert (spec.grant_id, spec.iam_user, spec.kind, spec.expires_at) == (
        grant_id, IAM_USER, kind, grant.expires_at)
    assert provider.granted == {(IAM_USER, kind, spec.target)}
    assert timers.scheduled == {(REVOKE_JOB, grant_id): grant.expires_at,
                                (WARN_JOB, grant_id): grant.warn_at}
    [(told,)] = notifier.sent("grant_active")
    assert told.id == grant_id
    assert grant.dm_channel == "D0ALICE" and grant.dm_ts is not None


def test_apply_twice_grants_once(sessions, catalog, clock, runner, provider, notifier, timers):
    grant_id = live_grant(sessions, catalog, clock, runner)

    assert runner.apply_grant(grant_id) is None

    assert len(provider.grants) == 1
    assert len(notifier.sent("grant_active")) == 1
    assert len(timers.calls) == 2


def test_grant_stays_active_when_the_dm_fails(sessions, catalog, clock, runner, notifier):
    notifier.fail_next("grant_active")
    grant_id = live_grant(sessions, catalog, clock, runner)

    grant = load_grant(sessions, grant_id)
    assert grant.status is GrantStatus.ACTIVE
    assert (grant.dm_channel, grant.dm_ts) == (None, None)


def test_retryable_grant_failure_is_retried_by_the_sweep(sessions, catalog, clock, runner,
                                                        provider, notifier):
    grant_id = approved_grant(sessions, catalog, clock())
    provider.fail_next(retryable=True)

    assert runner.apply_grant(grant_id) is None

    grant = load_grant(sessions, grant_id)
    assert (grant.status, grant.attempts) == (GrantStatus.PENDING, 1)
    assert grant.next_attempt_at == clock() + grants.FIRST_RETRY
    assert grant.lease_owner is None
    assert runner.sweep().granted == []  # still backing off
    assert len(provider.grants) == 1

    clock.advance(seconds=grants.FIRST_RETRY.total_seconds())
    assert runner.sweep().granted == [grant_id]

    assert load_grant(sessions, grant_id).status is GrantStatus.ACTIVE
    assert len(provider.grants) == 2
    assert notifier.sent("grant_failed") == notifier.sent("admin_alert") == []


def test_permanent_grant_failure_fails_the_grant_and_alerts(sessions, catalog, clock, runner,
                                                           provider, notifier, timers):
    grant_id = approved_grant(sessions, catalog, clock())
    provider.fail_next(retryable=False, message="NoSuchEntity: group prod-admins")

    assert runner.apply_grant(grant_id) is None

    grant = load_grant(sessions, grant_id)
    assert grant.status is GrantStatus.FAILED
    assert grant.last_error == "NoSuchEntity: group prod-admins"
    [(failed,)] = notifier.sent("grant_failed")
    assert failed.id == grant_id
    [(alert,)] = notifier.sent("admin_alert")
    assert f"grant #{grant_id}" in alert and "NoSuchEntity" in alert
    assert timers.calls == []
    clock.advance(hours=1)
    runner.sweep()
    assert len(provider.calls) == 1  # never retried, and nothing to revoke


# -- revoking grants --------------------------------------------------------------------

def test_revoke_only_after_expiry_and_only_once(sessions, catalog, clock, runner, provider,
                                               notifier, timers):
    grant_id = live_grant(sessions, catalog, clock, runner)
    expires_at = load_grant(sessions, grant_id).expires_at
    clock.now = expires_at - timedelta(seconds=1)

    assert runner.revoke_grant(grant_id) is None
    assert provider.revokes == []

    clock.now = expires_at
    assert runner.revoke_grant(grant_id).status is GrantStatus.REVOKED
    assert runner.revoke_grant(grant_id) is None

    assert [spec.grant_id for spec in provider.revokes] == [grant_id]
    assert provider.granted == set()
    grant = load_grant(sessions, grant_id)
    assert (grant.status, grant.revoked_at) == (GrantStatus.REVOKED, expires_at)
    [(ended,)] = notifier.sent("grant_ended")
    assert ended.id == grant_id
    assert ("cancel", WARN_JOB, grant_id, None) in timers.calls


def test_ended_early_grant_is_revoked_at_once(sessions, catalog, clock, runner, provider):
    grant_id = live_grant(sessions, catalog, clock, runner)
    clock.advance(minutes=10)
    with sessions() as session, session.begin():
        grants.end_early(session, grant_id, REQUESTER, clock())

    assert runner.revoke_grant(grant_id).status is GrantStatus.REVOKED
    assert len(provider.revokes) == 1
    assert load_grant(sessions, grant_id).end_reason == "ended early by the requester"


def test_revoke_keeps_retrying_and_alerts_once(sessions, catalog, clock, runner, provider,
                                              notifier):
    grant_id = live_grant(sessions, catalog, clock, runner)
    clock.now = load_grant(sessions, grant_id).expires_at
    failures = grants.ALERT_AFTER_ATTEMPTS + 1
    provider.fail_next(failures, only="revoke")

    assert runner.revoke_grant(grant_id) is None
    for attempt in range(2, failures + 1):
        run_to_next_attempt(sessions, clock, grant_id)
        assert runner.sweep().revoked == []
        if attempt == grants.ALERT_AFTER_ATTEMPTS:
            assert len(notifier.sent("admin_alert")) == 1

    [(alert,)] = notifier.sent("admin_alert")
    assert f"grant #{grant_id}" in alert and "Still retrying" in alert
    assert load_grant(sessions, grant_id).status is GrantStatus.ACTIVE
    assert provider.granted  # still in place: the database says it must go

    run_to_next_attempt(sessions, clock, grant_id)
    assert runner.sweep().revoked == [grant_id]

    assert load_grant(sessions, grant_id).status is GrantStatus.REVOKED
    assert len(provider.revokes) == failures + 1
    assert provider.granted == set()
    assert len(notifier.sent("admin_alert")) == 1
    assert len(notifier.sent("grant_ended")) == 1


# -- the sweep --------------------------------------------------------------------------

def test_sweep_revokes_grants_that_expired_while_the_bot_was_down(sessions, catalog, clock,
                                                                 runner, provider):
    grant_id = live_grant(sessions, catalog, clock, runner)
    clock.advance(hours=9)

    report = runner.sweep()

    assert report.revoked == [grant_id]
    assert load_grant(sessions, grant_id).status is GrantStatus.REVOKED
    assert provider.granted == set()
    assert runner.sweep().revoked == []


def test_sweep_sends_a_due_warning_once(sessions, catalog, clock, runner, notifier):
    grant_id = live_grant(sessions, catalog, clock, runner)
    clock.now = load_grant(sessions, grant_id).warn_at - timedelta(seconds=1)
    assert runner.sweep().warned == []

    clock.advance(seconds=1)
    assert runner.sweep().warned == [grant_id]
    assert runner.sweep().warned == []

    [(warned,)] = notifier.sent("grant_expiring")
    assert warned.id == grant_id
    assert load_grant(sessions, grant_id).warned_at == clock()


def test_sweep_expires_overdue_requests_and_updates_their_messages(sessions, catalog, clock,
                                                                  runner, notifier):
    request_id = create_request(sessions, catalog, clock())
    runner.announce(request_id)
    clock.advance(hours=23, minutes=59)
    assert runner.sweep().expired_requests == []

    clock.advance(minutes=1)
    assert runner.sweep().expired_requests == [request_id]

    assert load_request(sessions, request_id).status is RequestStatus.EXPIRED
    updated = notifier.sent("update_request")
    assert [message.destination for _request, message in updated] == EVERYONE
    assert all(request.status is RequestStatus.EXPIRED for request, _message in updated)
    [(decided,)] = notifier.sent("request_decided")
    assert (decided.id, decided.status) == (request_id, RequestStatus.EXPIRED)


def test_sweep_announces_requests_left_unannounced(sessions, catalog, clock, runner, notifier):
    request_id = create_request(sessions, catalog, clock(), iam_user=None)
    clock.advance(seconds=ANNOUNCE_GRACE.total_seconds() - 1)
    assert runner.sweep().announced == []
    assert notifier.posted_to() == []

    clock.advance(seconds=1)
    assert runner.sweep().announced == [request_id]

    assert notifier.posted_to() == EVERYONE
    assert load_request(sessions, request_id).announced_at == clock()
    assert runner.sweep().announced == []


@pytest.mark.parametrize("phase", ["grant", "revoke"])
def test_sweep_repairs_a_crash_between_claim_and_finish(sessions, catalog, clock, runner,
                                                       provider, phase):
    if phase == "grant":
        grant_id = approved_grant(sessions, catalog, clock())
        claim, final = grants.claim_to_grant, GrantStatus.ACTIVE
    else:
        grant_id = live_grant(sessions, catalog, clock, runner)
        clock.now = load_grant(sessions, grant_id).expires_at
        claim, final = grants.claim_to_revoke, GrantStatus.REVOKED
    calls_before = len(provider.calls)
    with sessions() as session, session.begin():
        assert claim(session, grant_id, "crashed-worker", clock()) is not None

    clock.advance(seconds=grants.LEASE.total_seconds())
    report = runner.sweep()
    assert (report.granted, report.revoked) == ([], [])
    assert len(provider.calls) == calls_before  # the lease still stands

    clock.advance(seconds=1)
    report = runner.sweep()

    assert getattr(report, "granted" if phase == "grant" else "revoked") == [grant_id]
    grant = load_grant(sessions, grant_id)
    assert (grant.status, grant.lease_owner) == (final, None)
    assert len(provider.calls) == calls_before + 1


def test_schedule_live_grants_gives_every_live_grant_a_timer(sessions, catalog, clock, runner,
                                                            timers):
    pending = approved_grant(sessions, catalog, clock(), **someone(2))
    active = live_grant(sessions, catalog, clock, runner)
    timers.scheduled.clear()

    assert runner.schedule_live_grants() == 2

    assert {key for key in timers.scheduled} == {
        (REVOKE_JOB, pending), (REVOKE_JOB, active), (WARN_JOB, active)}


# -- more time ------------------------------------------------------------------------

def extended_grant(sessions, catalog, clock, runner, minutes: int = 30, **request_args):
    """A live grant with an approved extension: (grant id, old expiry, extension id)."""
    grant_id = live_grant(sessions, catalog, clock, runner, **request_args)
    old = load_grant(sessions, grant_id).expires_at
    clock.advance(minutes=10)
    request_id = ask_for_more_time(sessions, catalog, grant_id, clock(),
                                   timedelta(minutes=minutes))
    assert approve(sessions, catalog, request_id, clock()) == grant_id
    return grant_id, old, request_id


def test_extend_group_grant_moves_the_timers_and_tells_the_requester(
        sessions, catalog, clock, runner, provider, notifier, timers):
    grant_id, old, request_id = extended_grant(sessions, catalog, clock, runner)

    assert runner.extend_grant(grant_id).expires_at == old + timedelta(minutes=30)

    grant = load_grant(sessions, grant_id)
    assert grant.status is GrantStatus.ACTIVE
    assert len(provider.grants) == 1  # group membership carries no expiry: nothing to redo
    assert timers.scheduled == {(REVOKE_JOB, grant_id): grant.expires_at,
                                (WARN_JOB, grant_id): grant.warn_at}
    [(told, extension)] = notifier.sent("grant_extended")
    assert (told.id, told.expires_at, extension.id) == (grant_id, grant.expires_at, request_id)
    assert len(notifier.sent("grant_active")) == 1  # only the first DM


def test_extend_role_grant_puts_the_new_expiry_into_iam(sessions, catalog, clock, runner,
                                                       provider, notifier, timers):
    grant_id, old, request_id = extended_grant(sessions, catalog, clock, runner,
                                               resource="prod-readonly")
    granted_at = load_grant(sessions, grant_id).granted_at

    assert runner.extend_grant(grant_id).status is GrantStatus.ACTIVE

    grant = load_grant(sessions, grant_id)
    first, again = provider.grants
    assert (first.expires_at, again.expires_at) == (old, old + timedelta(minutes=30))
    assert (again.grant_id, again.kind, again.target) == (grant_id, "iam_role", "ProdReadOnly")
    assert (grant.granted_at, grant.role_arn) == (granted_at, role_arn("ProdReadOnly"))
    assert timers.scheduled == {(REVOKE_JOB, grant_id): grant.expires_at,
                                (WARN_JOB, grant_id): grant.warn_at}
    [(told, extension)] = notifier.sent("grant_extended")
    assert (told.expires_at, extension.id) == (grant.expires_at, request_id)
    assert len(notifier.sent("grant_active")) == 1


def test_a_failed_role_update_is_retried_by_the_sweep(sessions, catalog, clock, runner,
                                                     provider, notifier, timers):
    grant_id, _old, _request = extended_grant(sessions, catalog, clock, runner,
                                              resource="prod-readonly")
    provider.fail_next(only="grant")

    assert runner.extend_grant(grant_id) is None

    grant = load_grant(sessions, grant_id)
    assert (grant.status, grant.attempts) == (GrantStatus.PENDING, 1)
    assert timers.scheduled[(REVOKE_JOB, grant_id)] == grant.expires_at  # moved at once
    assert notifier.sent("grant_extended") == []
    clock.advance(seconds=grants.FIRST_RETRY.total_seconds())

    assert runner.sweep().granted == [grant_id]

    assert load_grant(sessions, grant_id).status is GrantStatus.ACTIVE
    assert provider.grants[-1].expires_at == grant.expires_at
    assert len(notifier.sent("grant_extended")) == 1


def test_a_role_update_that_cannot_succeed_is_still_revoked(sessions, catalog, clock, runner,
                                                           provider, notifier):
    grant_id, _old, _request = extended_grant(sessions, catalog, clock, runner,
                                              resource="prod-readonly")
    provider.fail_next(100, retryable=False, message="NoSuchEntity: role", only="grant")

    assert runner.extend_grant(grant_id) is None

    assert load_grant(sessions, grant_id).status is GrantStatus.PENDING  # not FAILED
    assert notifier.sent("grant_failed") == []
    clock.now = load_grant(sessions, grant_id).expires_at
    assert runner.sweep().revoked == [grant_id]
    grant = load_grant(sessions, grant_id)
    assert (grant.status, grant.end_reason) == (GrantStatus.REVOKED, "expired")
    assert provider.granted == set()


def test_the_old_expiry_revokes_nothing(sessions, catalog, clock, runner, provider):
    grant_id, old, _request = extended_grant(sessions, catalog, clock, runner)
    runner.extend_grant(grant_id)
    clock.now = old

    assert runner.revoke_grant(grant_id) is None
    assert runner.sweep().revoked == []

    assert provider.revokes == []
    assert load_grant(sessions, grant_id).status is GrantStatus.ACTIVE


def test_extend_grant_after_im_done_does_nothing(sessions, catalog, clock, runner, provider,
                                                notifier):
    grant_id, _old, _request = extended_grant(sessions, catalog, clock, runner,
                                              resource="prod-readonly")
    with sessions() as session, session.begin():
        grants.end_early(session, grant_id, REQUESTER, clock())

    assert runner.extend_grant(grant_id) is None

    assert len(provider.grants) == 1
    assert notifier.sent("grant_extended") == []
