"""After a grant ends: its activity looked up, kept, audited and told, on SQLite and
Postgres, with a fake of the Activity port and the real sender to a fake Slack client."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from accessbot.models import ApprovalMessage, AuditEvent, GrantStatus
from accessbot.services.activity import Event
from accessbot.services.grant_activity import GIVE_UP_AFTER, GrantActivity, claim
from accessbot.services.outbox import Kind
from accessbot.services.ports import AccountUnreachable, ActivityEvents, ProviderError
from accessbot.services.runner import AccessRunner
from tests.factories import (
    IAM_USER,
    REQUESTER,
    active_grant,
    approved_grant,
    audit_trail,
    load_grant,
    make_catalog,
)
from tests.fakes.outbox import Mailroom
from tests.fakes.ports import FakeDirectory, FakeProfiles, FakeProvider

DELAY = timedelta(minutes=15)


class FakeActivity:
    """Activity: the events to answer per user, and failures to raise first."""

    def __init__(self, events: list[Event] | None = None):
        self.events_of = events or []
        self.asked: list[tuple[str, str, datetime, datetime]] = []
        self.failures: list[ProviderError] = []

    def events(self, account, user_name, start, end) -> ActivityEvents:
        self.asked.append((account, user_name, start, end))
        if self.failures:
            raise self.failures.pop(0)
        return ActivityEvents([e for e in self.events_of if start <= e.time <= end],
                              ("us-east-1",))


class FakeNames:
    def __init__(self, names: dict[str, str]):
        self.names = names

    def user_name(self, user_id: str) -> str:
        return self.names.get(user_id, user_id)


def event(at: datetime, name="PutObject", read_only=False, error=None) -> Event:
    return Event(at, "s3.amazonaws.com", name, read_only, error, "198.51.100.7", "AwsApiCall",
                 "us-east-1", "")


@pytest.fixture
def activity():
    return FakeActivity()


def ended_grant(sessions, catalog, clock, **request_args) -> int:
    """An ACTIVE grant with its request posted to the approval channel, then revoked at
    its expiry by the runner (which makes it due for its lookup)."""
    grant_id = active_grant(sessions, catalog, clock(), **request_args)
    with sessions() as session, session.begin():
        grant = load_grant(sessions, grant_id)
        session.add(ApprovalMessage(request_id=grant.request_id, destination="C0APPROVALS",
                                    channel="C0APPROVALS", ts="1764320400.000001"))
    clock.now = grant.expires_at
    runner = AccessRunner(sessions, catalog, FakeProvider(), FakeDirectory({}), FakeProfiles(),
                          clock=clock, owner="runner-1")
    assert runner.revoke_grant(grant_id).status is GrantStatus.REVOKED
    return grant_id


def looker(sessions, catalog, activity, clock, owner="worker-1", names=None) -> GrantActivity:
    return GrantActivity(sessions, catalog, activity, owner, names=names, clock=clock)


def test_an_ended_grant_is_looked_up_after_the_delay_and_told(sessions, catalog, clock,
                                                               activity):
    grant_id = ended_grant(sessions, catalog, clock)
    grant = load_grant(sessions, grant_id)
    activity.events_of = [event(grant.granted_at + timedelta(minutes=1)),
                          event(grant.granted_at + timedelta(minutes=2), "GetObject", True),
                          event(grant.granted_at - timedelta(minutes=1), "Before")]
    assert grant.activity_due_at == grant.revoked_at + DELAY
    bot = looker(sessions, catalog, activity, clock)

    clock.advance(minutes=14)
    assert bot.run().summarised == [] and activity.asked == []

    clock.advance(minutes=1)
    assert bot.run().summarised == [grant_id]
    assert activity.asked == [("", IAM_USER, grant.granted_at, grant.revoked_at)]
    grant = load_grant(sessions, grant_id)
    assert grant.activity_done_at == clock()
    summary = json.loads(grant.activity)
    assert (summary["events"], summary["writes"], summary["by_service"]) == (2, 1, {"s3": 2})
    with sessions() as session:
        [row] = session.scalars(select(AuditEvent).where(
            AuditEvent.action == "activity_summarised"))
        assert json.loads(row.detail)["writes"] == 1 and row.grant_id == grant_id
    assert bot.run().summarised == []  # once

    outbox = Mailroom(sessions, catalog, clock)
    [reply] = outbox.owed(Kind.ACTIVITY_REPLY)
    [dm] = outbox.owed(Kind.ACTIVITY_DM)
    assert reply["grant_id"] == dm["grant_id"] == grant_id
    outbox.deliver()
    [in_thread] = [p for p in outbox.client.posted("C0APPROVALS")
                   if p.get("thread_ts") == "1764320400.000001"]
    assert "What <@U0ALICE> did with *prod-admins*" in in_thread["blocks"][0]["text"]["text"]
    assert "s3:PutObject" in json.dumps(in_thread["blocks"])
    [to_requester] = [p for p in outbox.client.posted(REQUESTER)
                      if "What you did" in p["text"]]
    assert "1 changes" in to_requester["text"]


def test_a_grant_never_in_place_is_not_looked_up(sessions, catalog, clock, activity):
    grant_id = approved_grant(sessions, catalog, clock())
    clock.now = load_grant(sessions, grant_id).expires_at
    runner = AccessRunner(sessions, catalog, FakeProvider(), FakeDirectory({}), FakeProfiles(),
                          clock=clock, owner="runner-1")
    assert runner.revoke_grant(grant_id).status is GrantStatus.FAILED
    clock.advance(days=1)
    assert looker(sessions, catalog, activity, clock).run().summarised == []
    assert load_grant(sessions, grant_id).activity_due_at is None and activity.asked == []


def test_with_cloudtrail_disabled_nothing_is_due(sessions, clock, activity):
    catalog = make_catalog(cloudtrail={"enabled": False})
    grant_id = ended_grant(sessions, catalog, clock)
    assert load_grant(sessions, grant_id).activity_due_at is None


def test_a_failed_lookup_is_retried_with_backoff_then_given_up(sessions, catalog, clock,
                                                               activity):
    grant_id = ended_grant(sessions, catalog, clock)
    bot = looker(sessions, catalog, activity, clock)
    clock.advance(minutes=15)
    activity.failures = [ProviderError("Rate exceeded")] * 3
    assert bot.run().retried == [grant_id]
    assert load_grant(sessions, grant_id).activity_due_at == clock() + timedelta(minutes=1)
    assert bot.run().retried == []  # not due yet
    clock.advance(minutes=1)
    assert bot.run().retried == [grant_id]
    assert load_grant(sessions, grant_id).activity_due_at == clock() + timedelta(minutes=2)

    clock.now = load_grant(sessions, grant_id).revoked_at + GIVE_UP_AFTER
    assert bot.run().given_up == [grant_id]
    grant = load_grant(sessions, grant_id)
    assert grant.activity_done_at == clock() and grant.activity is None
    assert ("accessbot", "activity_unavailable") in audit_trail(sessions, grant_id=grant_id)
    assert Mailroom(sessions, catalog, clock).owed(Kind.ACTIVITY_REPLY) == []
    clock.advance(days=1)
    assert bot.run().given_up == []  # for good


def test_a_refusal_is_given_up_at_once(sessions, catalog, clock, activity):
    grant_id = ended_grant(sessions, catalog, clock)
    clock.advance(minutes=15)
    activity.failures = [ProviderError("AccessDeniedException", retryable=False)]
    assert looker(sessions, catalog, activity, clock).run().given_up == [grant_id]
    with sessions() as session:
        detail = session.scalar(select(AuditEvent.detail).where(
            AuditEvent.action == "activity_unavailable"))
    assert "AccessDeniedException" in detail


def test_an_unreachable_account_is_an_account_fault(sessions, catalog, clock, activity):
    from accessbot.models import AccountFault

    grant_id = ended_grant(sessions, catalog, clock)
    clock.advance(minutes=15)
    activity.failures = [AccountUnreachable("cannot assume", "222222222222")]
    assert looker(sessions, catalog, activity, clock).run().retried == [grant_id]
    with sessions() as session:
        assert session.get(AccountFault, "222222222222") is not None


def test_a_grant_leased_by_another_worker_is_left_alone(sessions, catalog, clock, activity):
    grant_id = ended_grant(sessions, catalog, clock)
    clock.advance(minutes=15)
    with sessions() as session, session.begin():
        assert claim(session, grant_id, "worker-2", clock()) is not None
    assert looker(sessions, catalog, activity, clock).run().summarised == []
    assert activity.asked == []


def test_identity_center_grants_are_looked_up_by_user_name_in_each_account(sessions, clock,
                                                                           activity):
    catalog = make_catalog({"prod-sso": {
        "kind": "sso_permission_set", "permission_set": "ReadOnly",
        "accounts": ["222222222222", "333333333333"], "approvers": ["U0BOB"]}})
    grant_id = ended_grant(sessions, catalog, clock, resource="prod-sso", iam_user="u-1234")
    clock.advance(minutes=15)
    names = FakeNames({"u-1234": "alice@example.com"})
    assert looker(sessions, catalog, activity, clock, names=names).run().summarised == [grant_id]
    assert [(a, u) for a, u, _, _ in activity.asked] == [
        ("222222222222", "alice@example.com"), ("333333333333", "alice@example.com")]


def test_an_identity_center_name_not_read_is_retried(sessions, clock, activity):
    catalog = make_catalog({"oncall": {"kind": "sso_group", "group": "oncall",
                                       "approvers": ["U0BOB"]}})
    grant_id = ended_grant(sessions, catalog, clock, resource="oncall", iam_user="u-1234")
    clock.advance(minutes=15)
    report = looker(sessions, catalog, activity, clock, names=FakeNames({})).run()
    assert report.retried == [grant_id] and activity.asked == []


def test_times_are_utc(sessions, catalog, clock, activity):
    grant_id = ended_grant(sessions, catalog, clock)
    clock.advance(minutes=15)
    looker(sessions, catalog, activity, clock).run()
    summary = json.loads(load_grant(sessions, grant_id).activity)
    assert datetime.fromisoformat(summary["start"]).utcoffset() == UTC.utcoffset(None)
