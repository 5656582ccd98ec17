"""The approval policy (issue 12): N-of-M approvals, approvers' user groups, and Approve
for less, against SQLite and Postgres."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from accessbot.models import AuditEvent, Grant, RequestApproval, RequestStatus
from accessbot.services import requests
from accessbot.services.approvals import Counted, less_duration
from accessbot.services.errors import Conflict, InvalidInput, NotAuthorized
from accessbot.services.outbox import Kind
from accessbot.services.runner import AccessRunner
from tests.factories import (
    APPROVER,
    IAM_USER,
    OTHER_APPROVER,
    REQUESTER,
    STRANGER,
    create_request,
    grants_of,
    load_grant,
    load_request,
    make_catalog,
    someone,
)
from tests.fakes.outbox import Mailroom
from tests.fakes.ports import FakeDirectory, FakeProfiles, FakeProvider, FakeUserGroups
from tests.services.test_concurrency import race, race_sessions  # noqa: F401 (a fixture)

THIRD = "U0CAROL"
SRE = "S0SRE"


@pytest.fixture
def outbox_rows(sessions, catalog, clock):
    return Mailroom(sessions, catalog, clock)


@pytest.fixture
def two_of_three():
    return make_catalog({"prod-admins": {"approvers": [APPROVER, OTHER_APPROVER, THIRD],
                                         "approvals_required": 2}})


def decide(sessions, catalog, request_id, approver, now, groups=None, duration=None):
    with sessions() as session, session.begin():
        result = requests.approve(session, catalog, request_id, approver, now, groups,
                                  duration)
        return result.id if isinstance(result, Grant) else result


def approvals_of(sessions, request_id) -> list[tuple[str, timedelta | None]]:
    with sessions() as session:
        return [(a.approver, a.duration) for a in session.scalars(
            select(RequestApproval).where(RequestApproval.request_id == request_id)
            .order_by(RequestApproval.id))]


def details(sessions, request_id) -> list[tuple[str, str | None]]:
    with sessions() as session:
        return [(e.action, e.detail) for e in session.scalars(
            select(AuditEvent).where(AuditEvent.request_id == request_id)
            .order_by(AuditEvent.id))][1:]  # after "requested"


def test_a_first_approval_of_two_is_counted_and_the_request_stays_pending(
        sessions, two_of_three, clock):
    request_id = create_request(sessions, two_of_three, clock())

    counted = decide(sessions, two_of_three, request_id, APPROVER, clock())

    assert counted == Counted(request_id, 1, 2)
    assert load_request(sessions, request_id).status is RequestStatus.PENDING
    assert grants_of(sessions, request_id) == []
    assert approvals_of(sessions, request_id) == [(APPROVER, None)]
    assert details(sessions, request_id) == [("approval_counted", "approved (1 of 2)")]


def test_the_last_approval_grants_once_and_its_clock_starts_then(sessions, two_of_three,
                                                                 clock):
    request_id = create_request(sessions, two_of_three, clock())
    decide(sessions, two_of_three, request_id, APPROVER, clock())
    last = clock.advance(minutes=20)

    grant_id = decide(sessions, two_of_three, request_id, OTHER_APPROVER, last)

    request = load_request(sessions, request_id)
    assert (request.status, request.decided_by, request.decided_at) == (
        RequestStatus.APPROVED, OTHER_APPROVER, last)
    grant = load_grant(sessions, grant_id)
    assert (grant.starts_at, grant.expires_at) == (last, last + timedelta(hours=2))
    assert details(sessions, request_id)[-1] == ("approved", "approved (2 of 2)")
    with pytest.raises(Conflict, match="already approved"):
        decide(sessions, two_of_three, request_id, THIRD, clock())
    assert len(grants_of(sessions, request_id)) == 1


def test_the_same_person_counts_once(sessions, two_of_three, clock):
    request_id = create_request(sessions, two_of_three, clock())
    decide(sessions, two_of_three, request_id, APPROVER, clock())

    with pytest.raises(Conflict, match=r"already approved request #\d+ \(1 of 2"):
        decide(sessions, two_of_three, request_id, APPROVER, clock())

    assert approvals_of(sessions, request_id) == [(APPROVER, None)]
    assert load_request(sessions, request_id).status is RequestStatus.PENDING


def test_the_requester_never_counts_even_as_an_approver_or_a_group_member(sessions, clock):
    catalog = make_catalog({"prod-admins": {"approvers": [APPROVER, REQUESTER, SRE],
                                            "approvals_required": 2}})
    groups = FakeUserGroups({SRE: {REQUESTER, THIRD}})
    request_id = create_request(sessions, catalog, clock())

    with pytest.raises(NotAuthorized, match="your own request"):
        decide(sessions, catalog, request_id, REQUESTER, clock(), groups)

    assert approvals_of(sessions, request_id) == []


def test_a_deny_after_a_partial_approval_ends_the_request(sessions, two_of_three, clock,
                                                          outbox_rows):
    request_id = create_request(sessions, two_of_three, clock())
    decide(sessions, two_of_three, request_id, APPROVER, clock())

    with sessions() as session, session.begin():
        requests.deny(session, two_of_three, request_id, THIRD, "not today", clock())

    request = load_request(sessions, request_id)
    assert (request.status, request.decided_by) == (RequestStatus.DENIED, THIRD)
    with pytest.raises(Conflict, match="already denied"):
        decide(sessions, two_of_three, request_id, OTHER_APPROVER, clock())
    assert grants_of(sessions, request_id) == []


def test_each_approval_updates_every_posted_copy(sessions, two_of_three, clock, outbox_rows):
    catalog = two_of_three
    request_id = create_request(sessions, catalog, clock())
    runner = AccessRunner(sessions, catalog, FakeProvider(), FakeDirectory(), FakeProfiles(),
                          clock=clock)
    assert runner.announce(request_id)
    outbox_rows.deliver()  # the copies are posted: channel, Bob, Dave, Carol

    decide(sessions, catalog, request_id, APPROVER, clock())

    updates = outbox_rows.owed(Kind.REQUEST_COPY_UPDATE)
    assert len(updates) == 4
    assert outbox_rows.owed(Kind.DECISION_REPLY) == []  # nothing decided yet


def test_an_approval_counted_while_a_copy_is_on_its_way_shows_on_that_copy(
        sessions, two_of_three, clock):
    """Bob approves between the render of the channel's copy and its mark as sent: his
    approval found no copy recorded to update, so the copy's own mark owes the update."""
    catalog = two_of_three
    outbox_rows = Mailroom(sessions, catalog, clock)
    request_id = create_request(sessions, catalog, clock())
    runner = AccessRunner(sessions, catalog, FakeProvider(), FakeDirectory(), FakeProfiles(),
                          clock=clock)
    assert runner.announce(request_id)
    post = outbox_rows.client.chat_postMessage

    def approved_meanwhile(**args):
        if args["channel"] == "C0APPROVALS":  # the first copy, rendered before the approval
            assert decide(sessions, catalog, request_id, APPROVER, clock()) == Counted(
                request_id, 1, 2)
        return post(**args)

    outbox_rows.client.chat_postMessage = approved_meanwhile
    outbox_rows.deliver()

    [channel_copy] = outbox_rows.client.posted("C0APPROVALS")
    assert "1 of 2" not in str(channel_copy["blocks"])
    updates = [u for u in outbox_rows.client.updated() if u["channel"] == "C0APPROVALS"]
    assert updates and "1 of 2 approvals" in str(updates[-1]["blocks"])
    # the other copies were rendered after the approval, and show it as posted
    others = [a for a in outbox_rows.client.posted() if a["channel"] != "C0APPROVALS"
              and a["channel"] != REQUESTER]
    assert len(others) == 3 and all("1 of 2 approvals" in str(a["blocks"]) for a in others)


def test_a_two_of_three_race_grants_exactly_once(race_sessions, two_of_three, clock):  # noqa: F811
    sessions = race_sessions
    request_id = create_request(sessions, two_of_three, clock())

    outcomes = race(lambda approver: decide(sessions, two_of_three, request_id, approver,
                                            clock()), [APPROVER, OTHER_APPROVER, THIRD])

    assert len(grants_of(sessions, request_id)) == 1
    granted = [o for o in outcomes if isinstance(o, int)]
    assert len(granted) == 1
    assert sum(isinstance(o, Counted) for o in outcomes) == 1
    assert sum(isinstance(o, Conflict) for o in outcomes) == 1
    assert len(approvals_of(sessions, request_id)) == 2
    assert load_request(sessions, request_id).status is RequestStatus.APPROVED


def test_a_double_click_race_counts_the_person_once(race_sessions, two_of_three, clock):  # noqa: F811
    sessions = race_sessions
    request_id = create_request(sessions, two_of_three, clock())

    outcomes = race(lambda approver: decide(sessions, two_of_three, request_id, approver,
                                            clock()), [APPROVER] * 4)

    assert sum(isinstance(o, Counted) for o in outcomes) == 1
    assert sum(isinstance(o, Conflict) for o in outcomes) == 3
    assert approvals_of(sessions, request_id) == [(APPROVER, None)]


def test_approve_for_less_grants_the_approved_duration(sessions, catalog, clock):
    request_id = create_request(sessions, catalog, clock())  # 2h asked, one approval

    grant_id = decide(sessions, catalog, request_id, APPROVER, clock(),
                      duration=timedelta(minutes=30))

    grant = load_grant(sessions, grant_id)
    assert grant.expires_at - grant.starts_at == timedelta(minutes=30)
    assert grant.warn_at == grant.starts_at + timedelta(minutes=15)  # 15m before its end
    request = load_request(sessions, request_id)
    assert request.approved_duration == timedelta(minutes=30)
    assert details(sessions, request_id)[-1] == (
        "approved", "approved for 30m of the 2h asked")


def test_with_n_of_m_the_shortest_approved_duration_wins(sessions, two_of_three, clock):
    request_id = create_request(sessions, two_of_three, clock())
    decide(sessions, two_of_three, request_id, APPROVER, clock(),
           duration=timedelta(minutes=30))

    grant_id = decide(sessions, two_of_three, request_id, OTHER_APPROVER, clock(),
                      duration=timedelta(hours=1))

    grant = load_grant(sessions, grant_id)
    assert grant.expires_at - grant.starts_at == timedelta(minutes=30)
    assert details(sessions, request_id) == [
        ("approval_counted", "approved (1 of 2) for 30m of the 2h asked"),
        ("approved", "approved (2 of 2) for 30m of the 2h asked")]


@pytest.mark.parametrize("duration", [timedelta(hours=3), timedelta(0)])
def test_approve_for_more_than_asked_or_nothing_is_refused(sessions, catalog, clock,
                                                           duration):
    request_id = create_request(sessions, catalog, clock())

    with pytest.raises(InvalidInput, match="at most the 2h asked"):
        decide(sessions, catalog, request_id, APPROVER, clock(), duration=duration)

    assert approvals_of(sessions, request_id) == []
    assert load_request(sessions, request_id).status is RequestStatus.PENDING


def test_approve_for_less_than_the_resource_s_minimum_is_refused(sessions, catalog, clock):
    request_id = create_request(sessions, catalog, clock())  # prod-admins: at least 5m

    with pytest.raises(InvalidInput, match="at least 5m"):
        decide(sessions, catalog, request_id, APPROVER, clock(), duration=timedelta(minutes=1))

    assert approvals_of(sessions, request_id) == []


def test_less_duration_checks_what_the_approver_typed():
    assert less_duration(" 30m ", timedelta(hours=2)) == timedelta(minutes=30)
    with pytest.raises(InvalidInput, match="not a duration"):
        less_duration("soon", timedelta(hours=2))
    with pytest.raises(InvalidInput, match="At most the 2h asked"):
        less_duration("3h", timedelta(hours=2))


def test_a_user_group_member_may_approve_and_a_stranger_may_not(sessions, clock):
    catalog = make_catalog({"prod-admins": {"approvers": [SRE]}})
    groups = FakeUserGroups({SRE: {THIRD}})
    request_id = create_request(sessions, catalog, clock())

    with pytest.raises(NotAuthorized):
        decide(sessions, catalog, request_id, STRANGER, clock(), groups)
    with pytest.raises(NotAuthorized):  # without the groups resolved, nobody is in them
        decide(sessions, catalog, request_id, THIRD, clock())
    grant_id = decide(sessions, catalog, request_id, THIRD, clock(), groups)

    assert load_grant(sessions, grant_id).iam_user == IAM_USER


def test_announce_sends_a_copy_to_each_group_member_and_the_resource_channel(
        sessions, clock, outbox_rows):
    catalog = make_catalog({"prod-admins": {"approvers": [APPROVER, SRE],
                                            "approval_channel": "C0PRODAPPROVALS"}})
    runner = AccessRunner(sessions, catalog, FakeProvider(), FakeDirectory(), FakeProfiles(),
                          clock=clock,
                          groups=FakeUserGroups({SRE: {THIRD, APPROVER, REQUESTER}}))
    request_id = create_request(sessions, catalog, clock())

    assert runner.announce(request_id)

    assert [r["destination"] for r in outbox_rows.owed(Kind.REQUEST_COPY)] == [
        "C0PRODAPPROVALS", APPROVER, THIRD]


def test_announce_waits_when_a_user_group_cannot_be_read(sessions, clock, outbox_rows):
    catalog = make_catalog({"prod-admins": {"approvers": [SRE]}})
    runner = AccessRunner(sessions, catalog, FakeProvider(), FakeDirectory(), FakeProfiles(),
                          clock=clock, groups=FakeUserGroups(failing={SRE}))
    request_id = create_request(sessions, catalog, clock())

    assert runner.announce(request_id) is False

    assert outbox_rows.owed(Kind.REQUEST_COPY) == []
    assert load_request(sessions, request_id).announced_at is None


def test_a_batch_of_clicks_counts_n_of_m_requests_and_grants_the_others(sessions, clock):
    catalog = make_catalog({"prod-admins": {"approvers": [APPROVER, OTHER_APPROVER],
                                            "approvals_required": 2}})
    two = [create_request(sessions, catalog, clock(), **someone(n)) for n in range(2)]
    one = create_request(sessions, catalog, clock(), resource="prod-readonly",
                         **someone(9))

    with sessions() as session, session.begin():
        results = requests.approve_many(session, catalog, [
            requests.Approval(two[0], APPROVER, clock()),
            requests.Approval(one, APPROVER, clock()),
            requests.Approval(two[0], OTHER_APPROVER, clock()),
            requests.Approval(two[1], APPROVER, clock()),
            requests.Approval(two[1], APPROVER, clock())])

    assert [type(r).__name__ for r in results] == [
        "Counted", "Grant", "Grant", "Counted", "Conflict"]
    assert load_request(sessions, two[0]).status is RequestStatus.APPROVED
    assert load_request(sessions, two[1]).status is RequestStatus.PENDING
    assert approvals_of(sessions, one) == [(APPROVER, None)]  # every approval is a row


def test_in_order_puts_each_group_s_members_in_its_place_once():
    from accessbot.services.people import in_order

    groups = FakeUserGroups({SRE: {THIRD, APPROVER, "U0ZED"}})
    assert in_order([APPROVER, SRE, "U0ALPHA"], groups) == (
        APPROVER, THIRD, "U0ZED", "U0ALPHA")
    assert in_order([APPROVER, SRE], None) == (APPROVER,)
