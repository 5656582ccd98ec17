"""Requests against SQLite and Postgres: create, decide, expire, and the state machine."""

from datetime import timedelta

import pytest
from sqlalchemy import event, select

from accessbot.models import AccessRequest, AuditEvent, Grant, GrantStatus, RequestStatus
from accessbot.services import audit, messages, requests
from accessbot.services.errors import Conflict, InvalidInput, NotAuthorized, NotFound
from accessbot.services.outbox import Kind, Owed
from tests.factories import (
    APPROVER,
    IAM_USER,
    OTHER_APPROVER,
    REQUESTER,
    STRANGER,
    approve,
    audit_trail,
    count,
    create_request,
    grants_of,
    load_grant,
    load_request,
    make_catalog,
    set_iam_user,
    someone,
)

SYSTEM = audit.SYSTEM


def test_create_request_records_a_pending_request_and_an_audit_event(sessions, catalog, clock):
    request_id = create_request(sessions, catalog, clock(), duration=timedelta(hours=2),
                                iam_user=None)

    request = load_request(sessions, request_id)
    assert request.status is RequestStatus.PENDING
    assert (request.requester_id, request.resource, request.reason) == (
        REQUESTER, "prod-admins", "deploying hotfix 123")
    assert request.duration == timedelta(hours=2)
    assert request.created_at == clock()
    assert request.decide_by == clock() + timedelta(hours=24)
    assert request.iam_user is None and request.decided_by is None
    assert audit_trail(sessions, request_id=request_id) == [(REQUESTER, "requested")]
    with sessions() as session:
        detail = session.scalar(select(AuditEvent.detail)
                                .where(AuditEvent.request_id == request_id))
    assert detail == "prod-admins for 2h: deploying hotfix 123"


def test_get_request_of_an_unknown_id(sessions):
    with sessions() as session, pytest.raises(NotFound, match="#424242"):
        requests.get_request(session, 424242)


def test_approve_needs_the_iam_user(sessions, catalog, clock):
    request_id = create_request(sessions, catalog, clock(), iam_user=None)

    with pytest.raises(Conflict, match="still being submitted"):
        approve(sessions, catalog, request_id, clock())
    assert load_request(sessions, request_id).status is RequestStatus.PENDING

    with sessions() as session, session.begin():
        set_iam_user(session, request_id, IAM_USER)
    approve(sessions, catalog, request_id, clock())
    assert load_request(sessions, request_id).status is RequestStatus.APPROVED


def test_approve_creates_one_pending_grant_starting_now(sessions, catalog, clock):
    request_id = create_request(sessions, catalog, clock(), duration=timedelta(hours=2))
    clock.advance(minutes=7)
    now = clock()

    grant_id = approve(sessions, catalog, request_id, now)

    request = load_request(sessions, request_id)
    assert request.status is RequestStatus.APPROVED
    assert (request.decided_by, request.decided_at) == (APPROVER, now)
    [grant] = grants_of(sessions, request_id)
    assert grant.id == grant_id
    assert grant.status is GrantStatus.PENDING
    assert (grant.requester_id, grant.iam_user) == (REQUESTER, IAM_USER)
    assert (grant.resource, grant.kind, grant.target) == ("prod-admins", "iam_group",
                                                         "prod-admins")
    assert grant.starts_at == now
    assert grant.expires_at == now + timedelta(hours=2)
    assert grant.warn_at == grant.expires_at - timedelta(minutes=15)
    assert grant.attempts == 0 and grant.lease_owner is None
    assert audit_trail(sessions, request_id=request_id) == [
        (REQUESTER, "requested"), (APPROVER, "approved")]
    assert audit_trail(sessions, grant_id=grant_id) == [(APPROVER, "approved")]


@pytest.mark.parametrize("duration", [timedelta(minutes=10), timedelta(minutes=15)])
def test_no_warning_when_the_grant_is_not_longer_than_the_warning(sessions, catalog, clock,
                                                                  duration):
    request_id = create_request(sessions, catalog, clock(), duration=duration)
    approve(sessions, catalog, request_id, clock())

    [grant] = grants_of(sessions, request_id)
    assert grant.expires_at == clock() + duration
    assert grant.warn_at is None


def test_role_grant_targets_the_role(sessions, catalog, clock):
    request_id = create_request(sessions, catalog, clock(), resource="prod-readonly")
    approve(sessions, catalog, request_id, clock())

    [grant] = grants_of(sessions, request_id)
    assert (grant.kind, grant.target) == ("iam_role", "ProdReadOnly")


def test_requester_cannot_approve_their_own_request_even_as_an_approver(sessions, clock):
    catalog = make_catalog({"prod-admins": {"approvers": [REQUESTER, APPROVER]}})
    request_id = create_request(sessions, catalog, clock())

    for decide in (requests.approve, _deny_for_no_reason):
        with sessions() as session, session.begin(), \
                pytest.raises(NotAuthorized, match="your own request"):
            decide(session, catalog, request_id, REQUESTER, clock())

    assert_untouched(sessions, request_id)


def test_a_non_approver_cannot_decide(sessions, catalog, clock):
    request_id = create_request(sessions, catalog, clock())

    for decide in (requests.approve, _deny_for_no_reason):
        with sessions() as session, session.begin(), \
                pytest.raises(NotAuthorized, match="Only the approvers of prod-admins"):
            decide(session, catalog, request_id, STRANGER, clock())

    assert_untouched(sessions, request_id)


def test_approvers_of_another_resource_cannot_decide(sessions, clock):
    catalog = make_catalog({"prod-readonly": {"approvers": [STRANGER]}})
    request_id = create_request(sessions, catalog, clock())

    with pytest.raises(NotAuthorized):
        approve(sessions, catalog, request_id, clock(), approver=STRANGER)
    assert_untouched(sessions, request_id)


def test_second_approval_is_a_conflict_naming_who_decided(sessions, catalog, clock):
    request_id = create_request(sessions, catalog, clock())
    approve(sessions, catalog, request_id, clock(), approver=APPROVER)

    with pytest.raises(Conflict, match=f"already approved by <@{APPROVER}>"):
        approve(sessions, catalog, request_id, clock(), approver=OTHER_APPROVER)

    assert load_request(sessions, request_id).decided_by == APPROVER
    assert len(grants_of(sessions, request_id)) == 1
    assert audit_trail(sessions, request_id=request_id).count((APPROVER, "approved")) == 1


def test_deny_records_reason_and_decider(sessions, catalog, clock):
    request_id = create_request(sessions, catalog, clock())
    clock.advance(minutes=3)

    with sessions() as session, session.begin():
        requests.deny(session, catalog, request_id, OTHER_APPROVER,
                      "  not during\nthe freeze  ", clock())

    request = load_request(sessions, request_id)
    assert request.status is RequestStatus.DENIED
    assert (request.decided_by, request.decided_at) == (OTHER_APPROVER, clock())
    assert request.decision_reason == "not during the freeze"
    assert grants_of(sessions, request_id) == []
    assert audit_trail(sessions, request_id=request_id)[-1] == (OTHER_APPROVER, "denied")


def test_deny_without_reason(sessions, catalog, clock):
    request_id = create_request(sessions, catalog, clock())
    with sessions() as session, session.begin():
        requests.deny(session, catalog, request_id, APPROVER, "   ", clock())
    assert load_request(sessions, request_id).decision_reason is None


def test_approve_after_deny_is_a_conflict(sessions, catalog, clock):
    request_id = create_request(sessions, catalog, clock())
    with sessions() as session, session.begin():
        requests.deny(session, catalog, request_id, OTHER_APPROVER, "no", clock())

    with pytest.raises(Conflict, match=f"already denied by <@{OTHER_APPROVER}>"):
        approve(sessions, catalog, request_id, clock())

    assert load_request(sessions, request_id).status is RequestStatus.DENIED
    assert grants_of(sessions, request_id) == []


def test_expire_overdue_expires_only_requests_past_their_deadline(sessions, catalog, clock):
    first = create_request(sessions, catalog, clock())
    clock.advance(hours=1)
    second = create_request(sessions, catalog, clock(), **someone(2))
    decided = create_request(sessions, catalog, clock() - timedelta(hours=1), **someone(3))
    approve(sessions, catalog, decided, clock())

    clock.advance(hours=23)  # exactly first's decide_by
    with sessions() as session, session.begin():
        expired = requests.expire_overdue(session, clock())

    assert expired == [first]
    assert load_request(sessions, first).status is RequestStatus.EXPIRED
    assert load_request(sessions, first).decided_by == SYSTEM
    assert load_request(sessions, second).status is RequestStatus.PENDING
    assert load_request(sessions, decided).status is RequestStatus.APPROVED
    assert audit_trail(sessions, request_id=first)[-1] == (SYSTEM, "request_expired")

    with sessions() as session, session.begin():
        assert requests.expire_overdue(session, clock()) == []  # nothing left to expire


def test_unannounced_lists_pending_requests_never_fully_posted(sessions, catalog, clock):
    old = create_request(sessions, catalog, clock())
    announced = create_request(sessions, catalog, clock(), **someone(2))
    decided = create_request(sessions, catalog, clock(), **someone(3))
    clock.advance(minutes=5)
    recent = create_request(sessions, catalog, clock(), **someone(4))
    with sessions() as session, session.begin():
        requests.mark_announced(session, announced, IAM_USER, clock())
        requests.deny(session, catalog, decided, APPROVER, None, clock())

    with sessions() as session:
        assert requests.unannounced(session, clock(), clock() - timedelta(minutes=1)) == [old]
        assert requests.unannounced(session, clock(), clock()) == [old, recent]
    assert load_request(sessions, announced).announced_at == clock()
    assert (SYSTEM, "announced") in audit_trail(sessions, request_id=announced)


def test_a_request_whose_announcement_failed_is_listed_again_at_its_retry_time(
        sessions, catalog, clock):
    """Tried once and released: no waiting for the grace that covers lost tasks."""
    request_id = create_request(sessions, catalog, clock())
    grace = clock() - timedelta(minutes=1)
    with sessions() as session, session.begin():
        assert requests.claim_announcement(session, request_id, clock()) is not None
        requests.release_announcement(session, request_id, clock() + timedelta(seconds=5))

    with sessions() as session:
        assert requests.unannounced(session, clock(), grace) == []
        clock.advance(seconds=6)
        assert requests.unannounced(session, clock(), grace) == [request_id]


def test_a_posted_copy_is_recorded_once_per_destination(sessions, catalog, clock):
    request_id = create_request(sessions, catalog, clock())

    def posted(destination, channel, ts):
        owed = Owed(1, Kind.REQUEST_COPY, destination, None,
                    {"request_id": request_id, "destination": destination}, 1, clock())
        with sessions() as session, session.begin():
            messages.after_sent(session, owed, channel, ts, clock())

    posted("C0APPROVALS", "C0APPROVALS", "1.1")
    posted(APPROVER, "D0BOB", "1.2")
    posted(APPROVER, "D0BOB", "1.3")  # sent twice (a crash before its mark): the newest
    with sessions() as session:
        request = session.get(AccessRequest, request_id)
        assert [(m.destination, m.channel, m.ts) for m in request.messages] == [
            ("C0APPROVALS", "C0APPROVALS", "1.1"), (APPROVER, "D0BOB", "1.3")]


# -- the state machine --------------------------------------------------------------
# Each transition out of PENDING, as a function that returns whether it took effect.

def _deny_for_no_reason(session, catalog, request_id, user, now):
    return requests.deny(session, catalog, request_id, user, None, now)


def _by_approver(operation):
    def run(sessions, catalog, clock, request_id) -> bool:
        try:
            with sessions() as session, session.begin():
                operation(session, catalog, request_id, APPROVER, clock())
        except Conflict:
            return False
        return True
    return run


def _expire(sessions, catalog, clock, request_id) -> bool:
    clock.advance(hours=25)
    with sessions() as session, session.begin():
        return request_id in requests.expire_overdue(session, clock())


def _fail(sessions, catalog, clock, request_id) -> bool:
    with sessions() as session, session.begin():
        return requests.fail_request(session, request_id, "no IAM user", clock())


TRANSITIONS = {
    RequestStatus.APPROVED: (_by_approver(requests.approve), APPROVER, "approved"),
    RequestStatus.DENIED: (_by_approver(_deny_for_no_reason), APPROVER, "denied"),
    RequestStatus.EXPIRED: (_expire, SYSTEM, "request_expired"),
    RequestStatus.FAILED: (_fail, SYSTEM, "request_failed"),
}


@pytest.mark.parametrize("target", list(TRANSITIONS))
def test_pending_moves_to_every_final_state(sessions, catalog, clock, target):
    request_id = create_request(sessions, catalog, clock())
    run, actor, action = TRANSITIONS[target]

    assert run(sessions, catalog, clock, request_id) is True

    request = load_request(sessions, request_id)
    assert request.status is target
    assert (request.decided_by, request.decided_at) == (actor, clock())
    assert audit_trail(sessions, request_id=request_id) == [
        (REQUESTER, "requested"), (actor, action)]
    assert count(sessions, Grant, Grant.request_id == request_id) == (
        1 if target is RequestStatus.APPROVED else 0)


@pytest.mark.parametrize("first", list(TRANSITIONS))
@pytest.mark.parametrize("second", list(TRANSITIONS))
def test_a_final_state_is_final(sessions, catalog, clock, first, second):
    request_id = create_request(sessions, catalog, clock())
    assert TRANSITIONS[first][0](sessions, catalog, clock, request_id) is True
    before = load_request(sessions, request_id)
    trail = audit_trail(sessions, request_id=request_id)

    assert TRANSITIONS[second][0](sessions, catalog, clock, request_id) is False

    after = load_request(sessions, request_id)
    assert after.status is first
    assert (after.decided_by, after.decided_at, after.decision_reason) == (
        before.decided_by, before.decided_at, before.decision_reason)
    assert audit_trail(sessions, request_id=request_id) == trail
    assert count(sessions, Grant, Grant.request_id == request_id) == (
        1 if first is RequestStatus.APPROVED else 0)


def assert_untouched(sessions, request_id: int) -> None:
    request = load_request(sessions, request_id)
    assert request.status is RequestStatus.PENDING
    assert request.decided_by is None and request.decided_at is None
    assert grants_of(sessions, request_id) == []
    assert audit_trail(sessions, request_id=request_id) == [(REQUESTER, "requested")]


def test_a_second_request_for_the_same_resource_is_refused(sessions, catalog, clock):
    first = create_request(sessions, catalog, clock())
    with pytest.raises(InvalidInput, match=f"request #{first} is waiting"):
        create_request(sessions, catalog, clock())
    approve(sessions, catalog, first, clock())
    with pytest.raises(InvalidInput, match="You already have prod-admins until"):
        create_request(sessions, catalog, clock())
    assert count(sessions, AccessRequest) == 1


def test_approval_refused_while_the_same_access_is_live(sessions, clock):
    from tests.factories import make_catalog

    catalog = make_catalog({"oncall-admins": {"kind": "iam_group", "group": "prod-admins",
                                              "approvers": ["U0BOB"]}})
    first = create_request(sessions, catalog, clock(), resource="prod-admins")
    second = create_request(sessions, catalog, clock(), resource="oncall-admins")
    approve(sessions, catalog, first, clock())
    with pytest.raises(Conflict, match="already has prod-admins through grant"):
        approve(sessions, catalog, second, clock())
    assert load_request(sessions, second).status is RequestStatus.PENDING


# -- many approvals in one transaction (a burst of clicks) ----------------------------

def test_a_batch_of_approvals_decides_each_request_at_its_own_click(sessions, catalog, clock):
    ids = [create_request(sessions, catalog, clock(), **someone(n)) for n in range(5)]
    clicks = [clock.advance(seconds=1) for _ in ids]
    batch = [requests.Approval(request_id, APPROVER, at)
             for request_id, at in zip(ids, clicks, strict=True)]

    with sessions() as session, session.begin():
        results = requests.approve_many(session, catalog, batch)

    assert [type(r) for r in results] == [Grant] * 5
    for request_id, at, grant in zip(ids, clicks, results, strict=True):
        request = load_request(sessions, request_id)
        assert (request.status, request.decided_by, request.decided_at) == (
            RequestStatus.APPROVED, APPROVER, at)
        [stored] = grants_of(sessions, request_id)
        assert (stored.id, stored.starts_at, stored.status) == (grant.id, at, GrantStatus.PENDING)
        assert audit_trail(sessions, request_id=request_id)[-1] == (APPROVER, "approved")


def test_a_refused_approval_in_a_batch_writes_nothing_and_leaves_the_rest(sessions, clock):
    catalog = make_catalog({"oncall-admins": {"kind": "iam_group", "group": "prod-admins",
                                              "approvers": [APPROVER, OTHER_APPROVER]}})
    mine = create_request(sessions, catalog, clock(), requester=APPROVER, iam_user="bob")
    fine = create_request(sessions, catalog, clock(), **someone(1))
    same_access = create_request(sessions, catalog, clock(), resource="oncall-admins",
                                 **someone(1))
    unresolved = create_request(sessions, catalog, clock(), requester="U0USER2", iam_user=None)
    batch = [requests.Approval(mine, OTHER_APPROVER, clock()),     # fine: not his own
             requests.Approval(fine, STRANGER, clock()),           # not an approver
             requests.Approval(fine, APPROVER, clock()),           # wins
             requests.Approval(fine, OTHER_APPROVER, clock()),     # too late, told who won
             requests.Approval(same_access, APPROVER, clock()),    # user1 has it now
             requests.Approval(unresolved, APPROVER, clock()),     # IAM user not known yet
             requests.Approval(999, APPROVER, clock()),
             requests.Approval(mine, APPROVER, clock())]           # his own

    with sessions() as session, session.begin():
        results = requests.approve_many(session, catalog, batch)

    assert isinstance(results[0], Grant) and isinstance(results[2], Grant)
    assert isinstance(results[1], NotAuthorized)
    assert str(results[3]) == f"Request #{fine} was already approved by <@{APPROVER}>."
    assert isinstance(results[4], Conflict) and "just granted prod-admins" in str(results[4])
    assert "still being submitted" in str(results[5])
    assert isinstance(results[6], NotFound)
    assert str(results[7]) == "You cannot approve or deny your own request."
    for refused in (same_access, unresolved):
        assert load_request(sessions, refused).status is RequestStatus.PENDING
        assert grants_of(sessions, refused) == []
        assert (APPROVER, "approved") not in audit_trail(sessions, request_id=refused)
    assert count(sessions, Grant) == 2


def test_a_batch_costs_the_same_statements_whatever_its_size(sessions, catalog, clock):
    """Set-based: the requests read together, the grants written in one executemany and
    read back in one SELECT (the unit of work wrote them a row at a time on SQLite)."""
    engine = sessions.kw["bind"]
    ids = [create_request(sessions, catalog, clock(), **someone(n)) for n in range(15)]

    def statements(batch: list[int]) -> int:
        counted = []
        listener = lambda *_: counted.append(1)  # noqa: E731
        event.listen(engine, "before_cursor_execute", listener)
        try:
            with sessions() as session, session.begin():
                results = requests.approve_many(session, catalog, [
                    requests.Approval(i, APPROVER, clock()) for i in batch])
        finally:
            event.remove(engine, "before_cursor_execute", listener)
        assert [type(r) for r in results] == [Grant] * len(batch)
        return len(counted)

    assert statements(ids[:3]) == statements(ids[3:])
    assert [[g.request_id for g in grants_of(sessions, i)] for i in ids] == [[i] for i in ids]


def test_a_batch_owes_every_copy_its_update(sessions, catalog, clock):
    ids = [create_request(sessions, catalog, clock(), **someone(n)) for n in range(3)]
    with sessions() as session, session.begin():
        for request_id in ids:
            messages.after_sent(session, Owed(1, Kind.REQUEST_COPY, "C0APPROVALS", None,
                                              {"request_id": request_id,
                                               "destination": "C0APPROVALS"}, 1, clock()),
                                "C0APPROVALS", f"1.{request_id}", clock())

    with sessions() as session, session.begin():
        requests.approve_many(session, catalog,
                              [requests.Approval(i, APPROVER, clock()) for i in ids])

    from tests.fakes.outbox import Mailroom
    mailroom = Mailroom(sessions, catalog, clock)
    assert len(mailroom.owed(Kind.REQUEST_COPY_UPDATE)) == 3
    assert len(mailroom.owed(Kind.DECISION_REPLY)) == 3


def test_an_extension_in_a_batch_extends_its_grant(sessions, catalog, clock):
    from tests.factories import active_grant, ask_for_more_time

    grant_id = active_grant(sessions, catalog, clock())
    extension = ask_for_more_time(sessions, catalog, grant_id, clock())
    other = create_request(sessions, catalog, clock(), **someone(1))
    expiry = load_grant(sessions, grant_id).expires_at

    with sessions() as session, session.begin():
        results = requests.approve_many(session, catalog, [
            requests.Approval(extension, APPROVER, clock()),
            requests.Approval(other, APPROVER, clock())])

    assert results[0].id == grant_id and results[1].request_id == other
    assert load_request(sessions, extension).status is RequestStatus.APPROVED
    assert load_grant(sessions, grant_id).expires_at == expiry + timedelta(minutes=30)
