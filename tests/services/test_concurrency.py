"""Compare-and-set under real concurrency: many sessions race for one decision or lease.

Runs on Postgres (READ COMMITTED, row locks) and on a SQLite file (BEGIN IMMEDIATE).
"""

import threading
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from accessbot.models import (
    AccessRequest,
    AuditEvent,
    Grant,
    RequestStatus,
    make_engine,
    make_session_factory,
)
from accessbot.models.migrate import upgrade
from accessbot.services import grants, requests
from accessbot.services.errors import Conflict
from tests.conftest import empty_tables
from tests.factories import (
    APPROVER,
    OTHER_APPROVER,
    active_grant,
    ask_for_more_time,
    create_request,
    load_grant,
    load_request,
)

THREADS = 16


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def race_sessions(request):
    """A session factory with a pool big enough for every thread to hold a connection."""
    url = request.getfixturevalue(f"{request.param}_url")
    upgrade(url)
    engine = make_engine(url)
    yield make_session_factory(engine)
    empty_tables(engine)
    engine.dispose()


def race(work, arguments: list) -> list:
    """Run work(argument) in one thread per argument, all released at the same moment.

    Returns each thread's result or the exception it raised, in argument order.
    """
    barrier = threading.Barrier(len(arguments))
    outcomes: list = [None] * len(arguments)

    def run(index: int, argument) -> None:
        barrier.wait()
        try:
            outcomes[index] = work(argument)
        except Exception as exc:  # noqa: BLE001 - the test looks at every outcome
            outcomes[index] = exc

    threads = [threading.Thread(target=run, args=(i, a)) for i, a in enumerate(arguments)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a racer hung"
    return outcomes


def kinds(outcomes: list) -> Counter:
    return Counter(type(o).__name__ for o in outcomes)


@pytest.mark.parametrize("approvers", [
    [APPROVER] * THREADS,
    [APPROVER, OTHER_APPROVER] * (THREADS // 2),
], ids=["one-approver", "two-approvers"])
def test_racing_approvals_grant_exactly_once(race_sessions, catalog, clock, approvers):
    request_id = create_request(race_sessions, catalog, clock())

    def approve(approver: str) -> str:
        with race_sessions() as session, session.begin():
            requests.approve(session, catalog, request_id, approver, clock())
        return approver

    outcomes = race(approve, approvers)

    assert kinds(outcomes) == Counter({"str": 1, "Conflict": THREADS - 1}), outcomes
    [winner] = [o for o in outcomes if isinstance(o, str)]
    for loser in (o for o in outcomes if isinstance(o, Conflict)):
        assert f"already approved by <@{winner}>" in str(loser)
    request = load_request(race_sessions, request_id)
    assert (request.status, request.decided_by) == (RequestStatus.APPROVED, winner)
    with race_sessions() as session:
        assert session.scalar(select(func.count()).select_from(Grant)) == 1
        assert session.scalar(select(func.count()).select_from(AuditEvent)
                              .where(AuditEvent.action == "approved")) == 1


def test_racing_approve_and_deny_decide_once(race_sessions, catalog, clock):
    request_id = create_request(race_sessions, catalog, clock())

    def decide(index: int) -> str:
        with race_sessions() as session, session.begin():
            if index % 2:
                requests.deny(session, catalog, request_id, OTHER_APPROVER, "no", clock())
                return "denied"
            requests.approve(session, catalog, request_id, APPROVER, clock())
            return "approved"

    outcomes = race(decide, list(range(THREADS)))

    assert kinds(outcomes) == Counter({"str": 1, "Conflict": THREADS - 1}), outcomes
    [decision] = [o for o in outcomes if isinstance(o, str)]
    request = load_request(race_sessions, request_id)
    assert request.status.value == decision.upper()
    with race_sessions() as session:
        assert session.scalar(select(func.count()).select_from(Grant)) == (
            1 if decision == "approved" else 0)
        assert session.scalar(select(func.count()).select_from(AuditEvent)
                              .where(AuditEvent.action.in_(["approved", "denied"]))) == 1


def test_racing_revokers_get_exactly_one_lease(race_sessions, catalog, clock):
    grant_id = active_grant(race_sessions, catalog, clock())
    clock.now = load_grant(race_sessions, grant_id).expires_at + timedelta(seconds=1)

    def claim(owner: str):
        with race_sessions() as session, session.begin():
            return grants.claim_to_revoke(session, grant_id, owner, clock())

    outcomes = race(claim, [f"worker-{n}" for n in range(THREADS)])

    winners = [o for o in outcomes if o is not None]
    assert len(winners) == 1, outcomes
    assert not any(isinstance(o, Exception) for o in outcomes), outcomes
    assert load_grant(race_sessions, grant_id).lease_owner == winners[0].lease_owner



def test_racing_approvals_of_two_requests_for_the_same_access_grant_once(race_sessions, clock):
    """Two resources naming one IAM group: only one live grant per user and group."""
    from tests.factories import make_catalog

    catalog = make_catalog({"oncall-admins": {"kind": "iam_group", "group": "prod-admins",
                                              "approvers": ["U0BOB", "U0DAVE"]}})
    first = create_request(race_sessions, catalog, clock(), resource="prod-admins")
    second = create_request(race_sessions, catalog, clock(), resource="oncall-admins")

    def approve(request_id: int):
        with race_sessions() as session, session.begin():
            return requests.approve(session, catalog, request_id, APPROVER, clock()).id

    outcomes = race(approve, [first, second] * (THREADS // 2))

    assert sum(isinstance(o, int) for o in outcomes) == 1, outcomes
    assert all(isinstance(o, (int, Conflict)) for o in outcomes), outcomes
    with race_sessions() as session:
        assert session.scalar(select(func.count(Grant.id))) == 1
        statuses = sorted(s.value for s in session.scalars(
            select(requests.AccessRequest.status)))
    assert statuses == ["APPROVED", "PENDING"]  # the refused approval was rolled back


def test_racing_approvals_of_an_extension_extend_once(race_sessions, catalog, clock):
    grant_id = active_grant(race_sessions, catalog, clock())
    request_id = ask_for_more_time(race_sessions, catalog, grant_id, clock(),
                                   timedelta(minutes=30))
    expires_at = load_grant(race_sessions, grant_id).expires_at

    def approve(approver: str) -> int:
        with race_sessions() as session, session.begin():
            return requests.approve(session, catalog, request_id, approver, clock()).id

    outcomes = race(approve, [APPROVER, OTHER_APPROVER] * (THREADS // 2))

    assert kinds(outcomes) == Counter({"int": 1, "Conflict": THREADS - 1}), outcomes
    assert load_grant(race_sessions, grant_id).expires_at == expires_at + timedelta(minutes=30)
    with race_sessions() as session:
        assert session.scalar(select(func.count()).select_from(Grant)) == 1
        assert session.scalar(select(func.count()).select_from(AuditEvent)
                              .where(AuditEvent.action == "extended")) == 1


def test_racing_asks_for_more_time_record_one(race_sessions, catalog, clock):
    grant_id = active_grant(race_sessions, catalog, clock())

    def ask(_index: int) -> int:
        return ask_for_more_time(race_sessions, catalog, grant_id, clock())

    outcomes = race(ask, list(range(THREADS)))

    assert kinds(outcomes) == Counter({"int": 1, "InvalidInput": THREADS - 1}), outcomes
    with race_sessions() as session:
        assert session.scalar(select(func.count(AccessRequest.id))
                              .where(AccessRequest.extends_grant_id == grant_id)) == 1


def test_racing_batches_of_approvals_grant_each_request_once(race_sessions, catalog, clock):
    """Workers deciding bursts of clicks that overlap: each request is decided once."""
    from tests.factories import someone

    ids = [create_request(race_sessions, catalog, clock(), **someone(n)) for n in range(12)]

    def approve_all(offset: int) -> list:
        batch = [requests.Approval(i, (APPROVER, OTHER_APPROVER)[offset % 2], clock())
                 for i in ids[offset % 12:] + ids[:offset % 12]]
        with race_sessions() as session, session.begin():
            return requests.approve_many(session, catalog, batch)

    outcomes = race(approve_all, list(range(8)))

    assert not any(isinstance(o, Exception) for o in outcomes), outcomes
    granted = Counter(r.request_id for results in outcomes for r in results
                      if isinstance(r, Grant))
    assert granted == Counter(ids)
    assert all(isinstance(r, (Grant, Conflict)) for results in outcomes for r in results)
    with race_sessions() as session:
        assert session.scalar(select(func.count(Grant.id))) == len(ids)
        assert session.scalar(select(func.count()).select_from(AuditEvent)
                              .where(AuditEvent.action == "approved")) == len(ids)


def test_racing_batches_for_the_same_access_grant_it_once(race_sessions, clock):
    """Two resources naming one IAM group, in batches that lock different requests: one
    grant; a batch that loses at the unique index is Contended (decided one by one)."""
    from tests.factories import make_catalog, someone

    catalog = make_catalog({"oncall-admins": {"kind": "iam_group", "group": "prod-admins",
                                              "approvers": ["U0BOB", "U0DAVE"]}})
    first = create_request(race_sessions, catalog, clock(), resource="prod-admins")
    second = create_request(race_sessions, catalog, clock(), resource="oncall-admins")
    others = [create_request(race_sessions, catalog, clock(), **someone(n))
              for n in range(THREADS)]  # one for each batch: the batches lock apart

    def approve_all(index: int):
        mine = first if index % 2 else second
        batch = [requests.Approval(i, APPROVER, clock()) for i in (mine, others[index])]
        with race_sessions() as session, session.begin():
            return requests.approve_many(session, catalog, batch)

    outcomes = race(approve_all, list(range(THREADS)))

    assert all(isinstance(o, (list, requests.Contended)) for o in outcomes), outcomes
    with race_sessions() as session:
        live = session.scalars(select(Grant.request_id).where(Grant.iam_user == "alice")).all()
    assert len(live) == 1 and live[0] in (first, second)
