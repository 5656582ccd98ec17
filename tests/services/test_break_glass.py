"""approval: none and break-glass: granted when announced, told, audited; the review's
state machine (reviewed once, by an approver only; reminded half way; escalated once).
On SQLite and Postgres."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from accessbot.handlers.ids import ActionId
from accessbot.models import BreakGlassReview, GrantStatus, RequestStatus
from accessbot.services import break_glass
from accessbot.services.commands import make_break_glass
from accessbot.services.errors import Conflict, InvalidInput, NotAuthorized
from accessbot.services.outbox import Kind
from accessbot.services.runner import AccessRunner
from tests.factories import (
    APPROVER,
    IAM_USER,
    OTHER_APPROVER,
    REQUESTER,
    STRANGER,
    audit_trail,
    create_request,
    grants_of,
    load_request,
    make_catalog,
)
from tests.fakes.outbox import Mailroom
from tests.fakes.ports import FakeDirectory, FakeProfiles, FakeProvider, FakeTimers

GLASS = {"prod-admins": {"break_glass": True, "break_glass_max_duration": "1h",
                         "break_glass_review_within": "24h",
                         "approval_channel": "C0PRODAPPROVALS"},
         "sandbox": {"kind": "iam_group", "group": "sandbox", "approval": "none"}}


@pytest.fixture
def catalog():
    return make_catalog(GLASS)


@pytest.fixture
def provider():
    return FakeProvider()


@pytest.fixture
def outbox(sessions, catalog, clock):
    return Mailroom(sessions, catalog, clock)


@pytest.fixture
def runner(sessions, catalog, provider, clock):
    return AccessRunner(sessions, catalog, provider, FakeDirectory({REQUESTER: IAM_USER}),
                        FakeProfiles(), FakeTimers(), clock=clock, owner="runner-1")


def broke_glass(sessions, catalog, clock, duration="4h", reason="prod is down, INC-42"):
    glass = make_break_glass(catalog, REQUESTER, "prod-admins", duration, reason)
    with sessions() as session, session.begin():
        return break_glass.create(session, catalog, REQUESTER, glass, clock()).id


def review_of(sessions, request_id):
    with sessions() as session:
        return session.scalar(select(BreakGlassReview)
                              .where(BreakGlassReview.request_id == request_id))


def destinations(outbox):
    return [row["destination"] for row in outbox.owed(Kind.REQUEST_COPY)]


def test_approval_none_is_granted_when_announced_and_posted_without_buttons(
        sessions, catalog, clock, runner, provider, outbox):
    request_id = create_request(sessions, catalog, clock(), resource="sandbox",
                                duration=timedelta(hours=1), iam_user=None)

    assert runner.announce(request_id) is True

    request = load_request(sessions, request_id)
    assert request.status is RequestStatus.APPROVED
    assert (request.decided_by, request.decision_reason) == ("accessbot", "approval: none")
    [grant] = grants_of(sessions, request_id)
    assert grant.status is GrantStatus.ACTIVE  # through the runner's grant path
    assert [(s.iam_user, s.target) for s in provider.grants] == [(IAM_USER, "sandbox")]
    assert destinations(outbox) == ["C0APPROVALS"]  # an informational copy only
    assert outbox.owed(Kind.REQUEST_SUBMITTED) == []
    assert [r["grant_id"] for r in outbox.owed(Kind.GRANT_ACTIVE)] == [grant.id]
    assert ("accessbot", "approved") in audit_trail(sessions, request_id=request_id)
    outbox.deliver()
    [copy] = outbox.client.posted("C0APPROVALS")
    buttons = [e["action_id"] for b in copy["blocks"] if b["type"] == "actions"
               for e in b["elements"]]
    assert buttons == [ActionId.REVOKE_GRANT]  # nothing to decide; admins may revoke
    assert "approval: none" in str(copy["blocks"])


def test_break_glass_is_cut_to_its_max_and_granted_loudly(sessions, catalog, clock, runner,
                                                          provider, outbox):
    request_id = broke_glass(sessions, catalog, clock)
    clock.advance(seconds=1)

    assert runner.announce(request_id) is True

    request = load_request(sessions, request_id)
    assert request.status is RequestStatus.APPROVED
    assert request.duration == timedelta(hours=1)  # asked 4h, cut to 1h
    assert (request.decided_by, request.decision_reason) == (REQUESTER, "break-glass")
    [grant] = grants_of(sessions, request_id)
    assert grant.status is GrantStatus.ACTIVE
    assert grant.expires_at == clock() + timedelta(hours=1)
    assert len(provider.grants) == 1
    # the resource's approval channel, every approver, the admin channel
    assert destinations(outbox) == ["C0PRODAPPROVALS", APPROVER, OTHER_APPROVER, "C0SECURITY"]
    review = review_of(sessions, request_id)
    assert (review.grant_id, review.due_at, review.remind_at) == (
        grant.id, clock() + timedelta(hours=24), clock() + timedelta(hours=12))
    trail = audit_trail(sessions, request_id=request_id)
    assert (REQUESTER, "break_glass_used") in trail and (REQUESTER, "approved") in trail
    outbox.deliver()
    [copy] = outbox.client.posted("C0SECURITY")
    assert "prod is down, INC-42" in str(copy["blocks"])
    assert "accessbot.break_glass_reviewed" in str(copy["blocks"])


def test_break_glass_is_refused_where_not_allowed(catalog):
    with pytest.raises(InvalidInput, match="does not allow break-glass"):
        make_break_glass(catalog, REQUESTER, "prod-readonly", "1h", "why not")
    with pytest.raises(InvalidInput, match="reason"):
        make_break_glass(catalog, REQUESTER, "prod-admins", "1h", "  ")


def test_break_glass_for_something_already_held_fails_and_says_why(sessions, catalog, clock,
                                                                   runner, outbox):
    first = broke_glass(sessions, catalog, clock)
    runner.announce(first)
    with pytest.raises(InvalidInput, match="already have"):
        broke_glass(sessions, catalog, clock)


def test_an_approver_marks_it_reviewed_once_with_a_note(sessions, catalog, clock, runner,
                                                        outbox):
    request_id = broke_glass(sessions, catalog, clock)
    runner.announce(request_id)
    outbox.deliver()
    review_id = review_of(sessions, request_id).id
    clock.advance(hours=2)

    with sessions() as session, session.begin():
        break_glass.mark_reviewed(session, catalog, None, review_id, APPROVER,
                                  "justified: INC-42, change reverted", clock())

    review = review_of(sessions, request_id)
    assert (review.reviewed_by, review.reviewed_at, review.note) == (
        APPROVER, clock(), "justified: INC-42, change reverted")
    assert (APPROVER, "break_glass_reviewed") in audit_trail(sessions, request_id=request_id)
    assert len(outbox.owed(Kind.REQUEST_COPY_UPDATE)) == 4  # every copy shows it
    outbox.deliver()
    assert all("Reviewed" in str(u["blocks"]) and "accessbot.break_glass_reviewed"
               not in str(u["blocks"]) for u in outbox.client.updated())
    with sessions() as session, session.begin(), pytest.raises(Conflict, match="already"):
        break_glass.mark_reviewed(session, catalog, None, review_id, OTHER_APPROVER, "me too",
                                  clock())


@pytest.mark.parametrize("who, error", [(REQUESTER, "your own"), (STRANGER, "Only the approvers")])
def test_only_an_approver_other_than_the_requester_may_review(sessions, catalog, clock, runner,
                                                              who, error):
    request_id = broke_glass(sessions, catalog, clock)
    runner.announce(request_id)
    review_id = review_of(sessions, request_id).id

    with sessions() as session, session.begin(), pytest.raises(NotAuthorized, match=error):
        break_glass.mark_reviewed(session, catalog, None, review_id, who, "fine", clock())
    with sessions() as session, session.begin(), pytest.raises(InvalidInput, match="note"):
        break_glass.mark_reviewed(session, catalog, None, review_id, APPROVER, " ", clock())
    assert review_of(sessions, request_id).reviewed_at is None


def test_unreviewed_is_reminded_half_way_then_escalated_once(sessions, catalog, clock, runner,
                                                             outbox):
    request_id = broke_glass(sessions, catalog, clock)
    runner.announce(request_id)
    review_id = review_of(sessions, request_id).id

    def follow_up():
        with sessions() as session, session.begin():
            return break_glass.follow_up(session, catalog, None, clock())

    clock.advance(hours=11)
    assert follow_up() == {"reminded": [], "escalated": []}
    clock.advance(hours=1)
    assert follow_up() == {"reminded": [review_id], "escalated": []}
    assert follow_up() == {"reminded": [], "escalated": []}
    assert [r["queue"] for r in outbox.owed(Kind.BREAK_GLASS_REMINDER)] == [APPROVER,
                                                                            OTHER_APPROVER]
    clock.advance(hours=12)
    assert follow_up() == {"reminded": [], "escalated": [review_id]}
    assert follow_up() == {"reminded": [], "escalated": []}
    assert [r["queue"] for r in outbox.owed(Kind.BREAK_GLASS_ESCALATED)] == ["admins"]
    trail = audit_trail(sessions, request_id=request_id)
    assert ("accessbot", "break_glass_reminded") in trail
    assert ("accessbot", "break_glass_escalated") in trail
    outbox.deliver()
    [escalation] = outbox.client.posted("C0SECURITY")[1:]
    assert "not reviewed" in escalation["text"]


def test_a_reviewed_item_is_neither_reminded_nor_escalated(sessions, catalog, clock, runner):
    request_id = broke_glass(sessions, catalog, clock)
    runner.announce(request_id)
    review_id = review_of(sessions, request_id).id
    with sessions() as session, session.begin():
        break_glass.mark_reviewed(session, catalog, None, review_id, APPROVER, "ok", clock())
    clock.advance(hours=30)

    with sessions() as session, session.begin():
        assert break_glass.follow_up(session, catalog, None, clock()) == {
            "reminded": [], "escalated": []}


def test_the_job_follows_up(sessions, catalog, clock, runner):
    from accessbot.jobs.registry import JOBS, JobContext

    request_id = broke_glass(sessions, catalog, clock)
    runner.announce(request_id)
    clock.advance(hours=25)

    result = JOBS["break-glass-reviews"].run(JobContext(runner, lambda: None))

    review_id = review_of(sessions, request_id).id
    assert result == {"reminded": [], "escalated": [review_id]}
