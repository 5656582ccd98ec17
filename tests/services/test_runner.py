"""AccessRunner with fakes of every port, on SQLite and Postgres, moved by a FakeClock."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from accessbot.models import ApprovalMessage, GrantStatus, RequestStatus
from accessbot.services import grants
from accessbot.services.outbox import Kind
from accessbot.services.runner import (
    ANNOUNCE_GRACE,
    GRANT_JOB,
    LOOKUP_RETRY,
    REVOKE_JOB,
    WARN_JOB,
    AccessRunner,
)
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
from tests.fakes.outbox import Mailroom
from tests.fakes.ports import (
    FakeDirectory,
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
def outbox(sessions, catalog, clock):
    return Mailroom(sessions, catalog, clock)


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
def runner(sessions, catalog, provider, directory, profiles, timers, clock):
    return AccessRunner(sessions, catalog, provider, directory, profiles, timers,
                        clock=clock, owner="runner-1")


def posted_to(outbox) -> list[str]:
    """Where approval messages are owed, in order."""
    return [row["destination"] for row in outbox.owed(Kind.REQUEST_COPY)]


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
                                                         outbox):
    request_id = create_request(sessions, catalog, clock(), iam_user=None)
    clock.advance(seconds=2)

    assert runner.announce(request_id) is True

    request = load_request(sessions, request_id)
    assert request.iam_user == IAM_USER
    assert request.announced_at == clock()
    assert posted_to(outbox) == EVERYONE
    assert messages_of(sessions, request_id) == []  # recorded when Slack has them
    assert outbox.deliver() == 4
    messages = messages_of(sessions, request_id)
    assert [m[0] for m in messages] == EVERYONE
    assert [m[1] for m in messages] == ["C0APPROVALS", "D0BOB", "D0DAVE"]
    assert len({m[2] for m in messages}) == 3
    [submitted] = outbox.owed(Kind.REQUEST_SUBMITTED)
    assert (submitted["request_id"], submitted["queue"]) == (request_id, REQUESTER)
    assert [a["channel"] for a in outbox.client.posted()] == EVERYONE + [REQUESTER]
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


def test_announce_twice_does_not_post_again(sessions, catalog, clock, runner, outbox):
    request_id = create_request(sessions, catalog, clock(), iam_user=None)
    runner.announce(request_id)

    runner.announce(request_id)
    outbox.deliver()

    assert posted_to(outbox) == EVERYONE
    assert [m[0] for m in messages_of(sessions, request_id)] == EVERYONE


def test_announce_twice_tells_the_requester_once(sessions, catalog, clock, runner, outbox):
    request_id = create_request(sessions, catalog, clock(), iam_user=None)
    runner.announce(request_id)
    announced_at = clock()
    clock.advance(minutes=1)

    runner.announce(request_id)

    assert len(outbox.owed(Kind.REQUEST_SUBMITTED)) == 1
    assert load_request(sessions, request_id).announced_at == announced_at


def test_announce_without_an_iam_user_fails_the_request(sessions, catalog, clock, runner,
                                                       directory, outbox):
    directory.by_slack_id.clear()
    request_id = create_request(sessions, catalog, clock(), iam_user=None)

    assert runner.announce(request_id) is False

    request = load_request(sessions, request_id)
    assert request.status is RequestStatus.FAILED
    assert f"slack-user-id={REQUESTER}" in request.decision_reason
    assert posted_to(outbox) == []
    [failed] = outbox.owed(Kind.REQUEST_FAILED)
    assert (failed["request_id"], failed["why"]) == (request_id, request.decision_reason)
    assert audit_trail(sessions, request_id=request_id)[-1] == ("accessbot", "request_failed")
    assert runner.announce(request_id) is False  # a failed request is never posted
    assert len(outbox.owed()) == 1


def test_a_profile_lookup_that_gets_no_answer_is_retried_not_failed(
        sessions, catalog, clock, runner, directory, outbox):
    """Slack could not answer users.info: that is no answer, so the request waits for the
    next sweep instead of failing with "you have no IAM user"."""
    directory.by_slack_id.clear()
    directory.by_email["alice@example.com"] = IAM_USER
    runner.profiles = FakeProfiles(failing=True)
    request_id = create_request(sessions, catalog, clock(), iam_user=None)

    assert runner.announce(request_id) is False

    request = load_request(sessions, request_id)
    assert (request.status, request.announced_at) == (RequestStatus.PENDING, None)
    assert outbox.owed() == []
    runner.profiles = FakeProfiles({REQUESTER: "alice@example.com"})
    assert runner.sweep().announced == []  # tried again after LOOKUP_RETRY, not at once
    clock.advance(seconds=LOOKUP_RETRY.total_seconds() + 1)
    assert runner.sweep().announced == [request_id]
    assert posted_to(outbox) == EVERYONE


def test_a_copy_slack_refuses_for_now_is_sent_again_and_only_that_one(
        sessions, catalog, clock, runner, outbox):
    request_id = create_request(sessions, catalog, clock(), iam_user=None)
    outbox.client.fail_next("chat.postMessage", "service_unavailable", status=503,
                            channel="U0DAVE")
    assert runner.announce(request_id) is True

    outbox.deliver()
    assert [m[0] for m in messages_of(sessions, request_id)] == ["C0APPROVALS", "U0BOB"]
    clock.advance(seconds=2)
    outbox.deliver()

    assert [m[0] for m in messages_of(sessions, request_id)] == EVERYONE
    assert [a["channel"] for a in outbox.client.posted()] == [
        "C0APPROVALS", "U0BOB", REQUESTER, "U0DAVE"]


def test_a_decided_request_is_not_announced(sessions, catalog, clock, runner, outbox):
    request_id = create_request(sessions, catalog, clock())
    approve(sessions, catalog, request_id, clock())

    assert runner.announce(request_id) is False
    assert posted_to(outbox) == []


@pytest.mark.parametrize("decide", ["expire", "approve"])
def test_a_request_decided_while_its_copies_are_on_their_way_leaves_no_copy_with_buttons(
        sessions, catalog, clock, runner, outbox, decide):
    """The sweep (or a fast approver) acts while some copies are still owed: those render
    the decision when they go out, and those already posted are updated."""
    request_id = create_request(sessions, catalog, clock(), iam_user=None)
    outbox.client.fail_next("chat.postMessage", "internal_error", status=500, channel="U0DAVE")
    runner.announce(request_id)
    outbox.deliver()  # the channel and Bob have their copies; Dave's waits
    if decide == "expire":
        clock.advance(hours=48)
        runner.expire_requests()
    else:
        approve(sessions, catalog, request_id, clock())
    clock.advance(seconds=2)
    outbox.deliver()

    expected = "Expired" if decide == "expire" else "Approved"
    last = {}
    for _method, args in outbox.client.calls:
        channel = "D" + args["channel"][1:] if args["channel"][0] == "U" else args["channel"]
        if "blocks" in args and channel != "D0ALICE":
            last[channel] = str(args["blocks"])
    assert set(last) == {"C0APPROVALS", "D0BOB", "D0DAVE"}
    assert all(expected in text and "Approve" not in text.replace("Approved", "")
               for text in last.values()), last
    assert len(outbox.owed(Kind.REQUEST_DECIDED)) == (decide == "expire")  # told once


# -- applying grants --------------------------------------------------------------------

@pytest.mark.parametrize("resource, kind, arn", [
    ("prod-admins", "iam_group", None),
    ("prod-readonly", "iam_role", role_arn("ProdReadOnly")),
])
def test_apply_grant(sessions, catalog, clock, runner, provider, outbox, timers, resource,
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
    [told] = outbox.owed(Kind.GRANT_ACTIVE)
    assert told["grant_id"] == grant_id
    outbox.deliver()
    grant = load_grant(sessions, grant_id)
    assert grant.dm_channel == "D0ALICE" and grant.dm_ts is not None


def test_apply_twice_grants_once(sessions, catalog, clock, runner, provider, outbox, timers):
    grant_id = live_grant(sessions, catalog, clock, runner)

    assert runner.apply_grant(grant_id) is None

    assert len(provider.grants) == 1
    assert len(outbox.owed(Kind.GRANT_ACTIVE)) == 1
    assert len(timers.calls) == 2


def test_grant_stays_active_when_the_dm_fails_and_the_dm_comes_later(
        sessions, catalog, clock, runner, outbox):
    outbox.client.fail_next("chat.postMessage", "internal_error", status=500)
    grant_id = live_grant(sessions, catalog, clock, runner)
    outbox.deliver()

    grant = load_grant(sessions, grant_id)
    assert grant.status is GrantStatus.ACTIVE
    assert (grant.dm_channel, grant.dm_ts) == (None, None)
    clock.advance(seconds=2)
    outbox.deliver()
    assert load_grant(sessions, grant_id).dm_ts is not None


def test_retryable_grant_failure_is_retried_by_the_sweep(sessions, catalog, clock, runner,
                                                        provider, outbox):
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
    assert outbox.owed(Kind.GRANT_FAILED) == outbox.owed(Kind.ADMIN_ALERT) == []


def test_a_failed_attempt_is_tried_again_on_time_by_a_timer(sessions, catalog, clock, runner,
                                                           provider, timers):
    """Not at the sweep's next turn (every 10 s): a short grant that AWS throttled once
    would end before it was in place, and a throttled revocation would run that late."""
    grant_id = approved_grant(sessions, catalog, clock())
    provider.fail_next(retryable=True)

    assert runner.apply_grant(grant_id) is None
    assert timers.scheduled[(GRANT_JOB, grant_id)] == clock() + grants.FIRST_RETRY
    clock.advance(seconds=grants.FIRST_RETRY.total_seconds())
    assert runner.apply_grant(grant_id) is not None  # what the timer calls
    assert load_grant(sessions, grant_id).status is GrantStatus.ACTIVE

    clock.now = load_grant(sessions, grant_id).expires_at
    provider.fail_next(only="revoke")
    assert runner.revoke_grant(grant_id) is None
    assert timers.scheduled[(REVOKE_JOB, grant_id)] == clock() + grants.FIRST_RETRY


def test_permanent_grant_failure_fails_the_grant_and_alerts(sessions, catalog, clock, runner,
                                                           provider, outbox, timers):
    grant_id = approved_grant(sessions, catalog, clock())
    provider.fail_next(retryable=False, message="NoSuchEntity: group prod-admins")

    assert runner.apply_grant(grant_id) is None

    grant = load_grant(sessions, grant_id)
    assert grant.status is GrantStatus.FAILED
    assert grant.last_error == "NoSuchEntity: group prod-admins"
    [failed] = outbox.owed(Kind.GRANT_FAILED)
    assert failed["grant_id"] == grant_id
    [alert] = outbox.owed(Kind.ADMIN_ALERT)
    assert f"grant #{grant_id}" in alert["text"] and "NoSuchEntity" in alert["text"]
    assert timers.calls == []
    clock.advance(hours=1)
    runner.sweep()
    assert len(provider.calls) == 1  # never retried, and nothing to revoke


# -- revoking grants --------------------------------------------------------------------

def test_revoke_only_after_expiry_and_only_once(sessions, catalog, clock, runner, provider,
                                               outbox, timers):
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
    [ended] = outbox.owed(Kind.GRANT_ENDED)
    assert ended["grant_id"] == grant_id
    assert [row["grant_id"] for row in outbox.owed(Kind.GRANT_DM_UPDATE)] == [grant_id]
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
                                              outbox):
    grant_id = live_grant(sessions, catalog, clock, runner)
    clock.now = load_grant(sessions, grant_id).expires_at
    failures = grants.ALERT_AFTER_ATTEMPTS + 1
    provider.fail_next(failures, only="revoke")

    assert runner.revoke_grant(grant_id) is None
    for attempt in range(2, failures + 1):
        run_to_next_attempt(sessions, clock, grant_id)
        assert runner.sweep().revoked == []
        if attempt == grants.ALERT_AFTER_ATTEMPTS:
            assert len(outbox.owed(Kind.ADMIN_ALERT)) == 1

    [alert] = outbox.owed(Kind.ADMIN_ALERT)
    assert f"grant #{grant_id}" in alert["text"] and "Still retrying" in alert["text"]
    assert load_grant(sessions, grant_id).status is GrantStatus.ACTIVE
    assert provider.granted  # still in place: the database says it must go

    run_to_next_attempt(sessions, clock, grant_id)
    assert runner.sweep().revoked == [grant_id]

    assert load_grant(sessions, grant_id).status is GrantStatus.REVOKED
    assert len(provider.revokes) == failures + 1
    assert provider.granted == set()
    assert len(outbox.owed(Kind.ADMIN_ALERT)) == 1
    assert len(outbox.owed(Kind.GRANT_ENDED)) == 1


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


def test_sweep_sends_a_due_warning_once(sessions, catalog, clock, runner, outbox):
    grant_id = live_grant(sessions, catalog, clock, runner)
    clock.now = load_grant(sessions, grant_id).warn_at - timedelta(seconds=1)
    assert runner.sweep().warned == []

    clock.advance(seconds=1)
    assert runner.sweep().warned == [grant_id]
    assert runner.sweep().warned == []

    [warned] = outbox.owed(Kind.GRANT_EXPIRING)
    assert warned["grant_id"] == grant_id
    assert load_grant(sessions, grant_id).warned_at == clock()


def test_sweep_expires_overdue_requests_and_updates_their_messages(sessions, catalog, clock,
                                                                  runner, outbox):
    request_id = create_request(sessions, catalog, clock())
    runner.announce(request_id)
    outbox.deliver()
    clock.advance(hours=23, minutes=59)
    assert runner.sweep().expired_requests == []

    clock.advance(minutes=1)
    assert runner.sweep().expired_requests == [request_id]

    assert load_request(sessions, request_id).status is RequestStatus.EXPIRED
    updated = outbox.owed(Kind.REQUEST_COPY_UPDATE)
    assert [row["queue"] for row in updated] == ["C0APPROVALS:request-1", "U0BOB", "U0DAVE"] \
        or len(updated) == 3
    [decided] = outbox.owed(Kind.REQUEST_DECIDED)
    assert decided["request_id"] == request_id
    outbox.deliver()
    assert len(outbox.client.updated()) == 4  # the three copies and the waiting DM
    assert all("Expired" in str(args["blocks"]) for args in outbox.client.updated())


def test_sweep_announces_requests_left_unannounced(sessions, catalog, clock, runner, outbox):
    request_id = create_request(sessions, catalog, clock(), iam_user=None)
    clock.advance(seconds=ANNOUNCE_GRACE.total_seconds() - 1)
    assert runner.sweep().announced == []
    assert posted_to(outbox) == []

    clock.advance(seconds=1)
    assert runner.sweep().announced == [request_id]

    assert posted_to(outbox) == EVERYONE
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
        sessions, catalog, clock, runner, provider, outbox, timers):
    grant_id, old, request_id = extended_grant(sessions, catalog, clock, runner)

    assert runner.extend_grant(grant_id).expires_at == old + timedelta(minutes=30)

    grant = load_grant(sessions, grant_id)
    assert grant.status is GrantStatus.ACTIVE
    assert len(provider.grants) == 1  # group membership carries no expiry: nothing to redo
    assert timers.scheduled == {(REVOKE_JOB, grant_id): grant.expires_at,
                                (WARN_JOB, grant_id): grant.warn_at}
    [told] = outbox.owed(Kind.GRANT_EXTENDED)
    assert (told["grant_id"], told["request_id"]) == (grant_id, request_id)
    assert len(outbox.owed(Kind.GRANT_ACTIVE)) == 1  # only the first DM


def test_extend_role_grant_puts_the_new_expiry_into_iam(sessions, catalog, clock, runner,
                                                       provider, outbox, timers):
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
    [told] = outbox.owed(Kind.GRANT_EXTENDED)
    assert (told["grant_id"], told["request_id"]) == (grant_id, request_id)
    assert len(outbox.owed(Kind.GRANT_ACTIVE)) == 1


def test_a_failed_role_update_is_retried_by_the_sweep(sessions, catalog, clock, runner,
                                                     provider, outbox, timers):
    grant_id, _old, _request = extended_grant(sessions, catalog, clock, runner,
                                              resource="prod-readonly")
    provider.fail_next(only="grant")

    assert runner.extend_grant(grant_id) is None

    grant = load_grant(sessions, grant_id)
    assert (grant.status, grant.attempts) == (GrantStatus.PENDING, 1)
    assert timers.scheduled[(REVOKE_JOB, grant_id)] == grant.expires_at  # moved at once
    assert outbox.owed(Kind.GRANT_EXTENDED) == []
    clock.advance(seconds=grants.FIRST_RETRY.total_seconds())

    assert runner.sweep().granted == [grant_id]

    assert load_grant(sessions, grant_id).status is GrantStatus.ACTIVE
    assert provider.grants[-1].expires_at == grant.expires_at
    assert len(outbox.owed(Kind.GRANT_EXTENDED)) == 1


def test_a_role_update_that_cannot_succeed_is_still_revoked(sessions, catalog, clock, runner,
                                                           provider, outbox):
    grant_id, _old, _request = extended_grant(sessions, catalog, clock, runner,
                                              resource="prod-readonly")
    provider.fail_next(100, retryable=False, message="NoSuchEntity: role", only="grant")

    assert runner.extend_grant(grant_id) is None

    assert load_grant(sessions, grant_id).status is GrantStatus.PENDING  # not FAILED
    assert outbox.owed(Kind.GRANT_FAILED) == []
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
                                                outbox):
    grant_id, _old, _request = extended_grant(sessions, catalog, clock, runner,
                                              resource="prod-readonly")
    with sessions() as session, session.begin():
        grants.end_early(session, grant_id, REQUESTER, clock())

    assert runner.extend_grant(grant_id) is None

    assert len(provider.grants) == 1
    assert outbox.owed(Kind.GRANT_EXTENDED) == []


def test_grants_that_expire_together_are_revoked_together(sessions, catalog, clock, runner,
                                                          provider, outbox, timers):
    """Leased in one transaction, AWS called side by side; one failure is retried alone."""
    from concurrent.futures import ThreadPoolExecutor

    ids = [live_grant(sessions, catalog, clock, runner, **someone(n)) for n in range(6)]
    not_yet = live_grant(sessions, catalog, clock, runner, duration=timedelta(hours=3),
                         **someone(9))
    clock.now = load_grant(sessions, ids[-1]).expires_at
    provider.fail_next(1, only="revoke")

    with ThreadPoolExecutor(4) as pool:
        revoked = runner.revoke_grants([*ids, not_yet], calls=pool.submit)

    assert len(revoked) == 5 and not_yet not in {g.id for g in revoked}
    [failed] = set(ids) - {g.id for g in revoked}
    assert load_grant(sessions, failed).status is GrantStatus.ACTIVE
    assert load_grant(sessions, failed).next_attempt_at > clock()  # retried with backoff
    assert load_grant(sessions, not_yet).status is GrantStatus.ACTIVE
    assert sorted(row["grant_id"] for row in outbox.owed(Kind.GRANT_ENDED)) == sorted(
        g.id for g in revoked)
    for grant in revoked:
        assert load_grant(sessions, grant.id).revoked_at == clock()
        assert ("accessbot", "revoked") in audit_trail(sessions, grant_id=grant.id)
        assert ("cancel", WARN_JOB, grant.id, None) in timers.calls

    run_to_next_attempt(sessions, clock, failed)
    assert runner.sweep().revoked == [failed]
    assert len(provider.revokes) == 7  # six, and the one retried; nothing revoked twice


# -- Identity Center kinds: the requester is found by their Slack email ------------------

SSO_RESOURCES = {"oncall": {"kind": "sso_group", "group": "oncall", "approvers": ["U0BOB"]}}


@pytest.mark.parametrize("emails, found, status", [
    ({REQUESTER: "alice@example.com"}, "u-1234", RequestStatus.PENDING),
    ({REQUESTER: "nobody@example.com"}, None, RequestStatus.FAILED),
    ({}, None, RequestStatus.FAILED),  # no email on the Slack profile
])
def test_an_identity_center_request_is_matched_by_the_slack_email(sessions, clock, provider,
                                                                  outbox, emails, found,
                                                                  status):
    from tests.factories import make_catalog

    catalog = make_catalog(SSO_RESOURCES)
    sso_users = FakeDirectory(by_email={"alice@example.com": "u-1234"})
    runner = AccessRunner(sessions, catalog, provider, FakeDirectory({REQUESTER: IAM_USER}),
                          FakeProfiles(emails), clock=clock, sso_directory=sso_users)
    request_id = create_request(sessions, catalog, clock(), resource="oncall", iam_user=None)

    runner.announce(request_id)

    request = load_request(sessions, request_id)
    assert (request.status, request.iam_user) == (status, found)
    if found is None:
        assert posted_to(outbox) == []
        [failed] = outbox.owed(Kind.REQUEST_FAILED)
        assert "IAM Identity Center user" in failed["why"]
    else:
        assert posted_to(outbox) == ["C0APPROVALS", "U0BOB"]


def test_an_identity_center_lookup_that_fails_is_retried_not_final(sessions, clock, provider,
                                                                   outbox):
    from tests.factories import make_catalog

    catalog = make_catalog(SSO_RESOURCES)
    runner = AccessRunner(sessions, catalog, provider, FakeDirectory(), FakeProfiles(failing=True),
                          clock=clock, sso_directory=FakeDirectory())
    request_id = create_request(sessions, catalog, clock(), resource="oncall", iam_user=None)

    assert runner.announce(request_id) is False
    assert load_request(sessions, request_id).status is RequestStatus.PENDING
    assert outbox.owed() == []


def test_a_role_grant_carries_its_resource_conditions_to_aws(sessions, clock, provider,
                                                              directory, profiles):
    from tests.factories import make_catalog

    catalog = make_catalog({"db": {"kind": "iam_role", "role": "DbAdmin", "approvers": ["U0BOB"],
                                   "source_ips": ["10.0.0.0/8"], "require_mfa": True}})
    runner = AccessRunner(sessions, catalog, provider, directory, profiles, clock=clock)
    grant_id = approved_grant(sessions, catalog, clock(), resource="db")

    runner.apply_grant(grant_id)

    [spec] = provider.grants
    assert (spec.source_ips, spec.require_mfa) == (("10.0.0.0/8",), True)



def test_an_account_whose_role_is_refused_is_told_once_and_its_recovery_too(
        sessions, clock, provider, directory, profiles, outbox):
    from accessbot.services.ports import AccountUnreachable
    from tests.factories import make_catalog

    catalog = make_catalog({"prod-ops": {"kind": "iam_group", "group": "ops",
                                         "account": "prod", "approvers": ["U0BOB"]},
                            "prod-db": {"kind": "iam_group", "group": "db",
                                        "account": "prod", "approvers": ["U0BOB"]}},
                           accounts={"prod": {"id": "222222222222",
                                              "role_arn": "arn:aws:iam::222222222222:role/a"}})
    runner = AccessRunner(sessions, catalog, provider, directory, profiles, clock=clock)
    grants_ = [approved_grant(sessions, catalog, clock(), resource=r) for r in ("prod-ops",
                                                                               "prod-db")]
    refused = AccountUnreachable("cannot assume the role of account 222222222222: "
                                 "AccessDenied", "222222222222")
    provider.fail_next(2 * grants.ALERT_AFTER_ATTEMPTS, only="grant", error=refused)

    for _ in range(grants.ALERT_AFTER_ATTEMPTS):
        for grant_id in grants_:
            assert runner.apply_grant(grant_id) is None
        clock.advance(minutes=11)  # past the backoff (at most 10 minutes)

    [alert] = outbox.owed(Kind.ADMIN_ALERT)  # once for the account, not once per grant
    assert "AWS account 222222222222: accessbot cannot assume its role" in alert["text"]
    assert runner.apply_grant(grants_[0]).status is GrantStatus.ACTIVE
    assert runner.apply_grant(grants_[1]).status is GrantStatus.ACTIVE
    alerts = [row["text"] for row in outbox.owed(Kind.ADMIN_ALERT)]
    assert len(alerts) == 2 and "AWS account 222222222222 answers again" in alerts[1]


def test_a_lookup_in_an_account_whose_role_is_refused_tells_the_admins_once(
        sessions, clock, provider, profiles, outbox):
    """The request waits (retried by the sweep), the admins hear once, and again when the
    account answers and the request goes to its approvers."""
    from accessbot.services.ports import AccountUnreachable
    from tests.factories import make_catalog
    from tests.fakes.ports import FakeDirectory

    catalog = make_catalog({"prod-ops": {"kind": "iam_group", "group": "ops",
                                         "account": "prod", "approvers": ["U0BOB"]}},
                           accounts={"prod": {"id": "222222222222",
                                              "role_arn": "arn:aws:iam::222222222222:role/a"}})
    prod = FakeDirectory({REQUESTER: "alice-prod"})
    prod.error = AccountUnreachable("cannot assume the role of account 222222222222: "
                                    "AccessDenied", "222222222222")
    runner = AccessRunner(sessions, catalog, provider, FakeDirectory(), profiles, clock=clock,
                          account_directories={"222222222222": prod})
    request_id = create_request(sessions, catalog, clock(), iam_user=None, resource="prod-ops")

    assert runner.announce(request_id) is False
    for _ in range(3):
        clock.advance(seconds=LOOKUP_RETRY.total_seconds() + 1)
        assert runner.sweep().announced == []
    [alert] = outbox.owed(Kind.ADMIN_ALERT)
    assert "AWS account 222222222222: accessbot cannot assume its role" in alert["text"]
    assert load_request(sessions, request_id).status is RequestStatus.PENDING

    prod.error = None
    clock.advance(seconds=LOOKUP_RETRY.total_seconds() + 1)
    assert runner.sweep().announced == [request_id]
    assert load_request(sessions, request_id).iam_user == "alice-prod"
    alerts = [row["text"] for row in outbox.owed(Kind.ADMIN_ALERT)]
    assert len(alerts) == 2 and "AWS account 222222222222 answers again" in alerts[1]


def test_a_grant_in_place_in_some_accounts_tells_each_accounts_result_once(
        sessions, clock, provider, directory, profiles, outbox):
    from accessbot.services.ports import PartlyDone
    from tests.factories import make_catalog

    catalog = make_catalog({"everywhere": {
        "kind": "sso_permission_set", "permission_set": "ReadOnly",
        "accounts": ["222222222222", "333333333333"], "approvers": ["U0BOB"]}})
    runner = AccessRunner(sessions, catalog, provider, directory, profiles, clock=clock)
    grant_id = approved_grant(sessions, catalog, clock(), resource="everywhere")
    partly = PartlyDone(("222222222222",), {"333333333333": "quota reached"}, retryable=True)
    provider.fail_next(2, only="grant", error=partly)

    for _ in range(2):
        assert runner.apply_grant(grant_id) is None
        clock.advance(minutes=11)
    [told] = outbox.owed(Kind.GRANT_PARTLY)  # once, not at every attempt
    assert (told["done"], told["failed"]) == (["222222222222"],
                                              {"333333333333": "quota reached"})
    outbox.deliver()
    [dm] = outbox.client.posted(REQUESTER)
    assert "333333333333: :warning: not yet (quota reached)" in dm["text"]
    assert runner.apply_grant(grant_id).status is GrantStatus.ACTIVE
    assert len(outbox.owed(Kind.GRANT_ACTIVE)) == 1


def test_revocations_run_inside_the_gate_that_holds_the_sender(sessions, catalog, clock,
                                                               provider, directory, profiles,
                                                               timers):
    """What the sender waits for (RevocationsFirst) covers the AWS calls and their
    recording; a sweep that finds nothing to revoke does not hold it."""
    from contextlib import contextmanager

    events = []

    @contextmanager
    def revoking():
        events.append("begin")
        yield
        events.append("end")

    runner = AccessRunner(sessions, catalog, provider, directory, profiles, timers,
                          clock=clock, owner="runner-1", revoking=revoking)
    ids = [live_grant(sessions, catalog, clock, runner, **someone(n)) for n in range(2)]
    clock.now = load_grant(sessions, ids[-1]).expires_at
    original = provider.revoke
    provider.revoke = lambda spec: (events.append("aws"), original(spec))

    assert {g.id for g in runner.revoke_grants(ids)} == set(ids)
    assert events == ["begin", "aws", "aws", "end"]

    events.clear()
    assert runner.revoke_grants(ids) == []  # revoked already: nothing claimed
    assert events == []
