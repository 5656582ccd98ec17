"""The overview (`/request-access list`, App Home) against SQLite and Postgres."""

from contextlib import contextmanager
from datetime import timedelta

from sqlalchemy import event, select

from accessbot.models import AccessRequest, OutboxMessage
from accessbot.services import grants, messages, overview
from accessbot.services.outbox import Kind
from tests.factories import (
    APPROVER,
    OTHER_APPROVER,
    REQUESTER,
    STRANGER,
    active_grant,
    approved_grant,
    create_request,
    make_catalog,
    someone,
)


class Groups:
    def __init__(self, members: dict[str, set[str]]):
        self._members = members

    def members(self, group_id: str) -> frozenset[str]:
        return frozenset(self._members.get(group_id, ()))


def look(sessions, catalog, user, now, groups=None) -> overview.Overview:
    with sessions() as session:
        return overview.overview(session, catalog, user, groups, now)


def test_my_live_grants_my_pending_requests_and_nothing_of_others(sessions, clock):
    catalog = make_catalog({"sandbox": {"kind": "iam_group", "group": "sandbox",
                                        "approvers": ["U0BOB"]}})
    now = clock()
    live = active_grant(sessions, catalog, now)
    applying = approved_grant(sessions, catalog, now, resource="prod-readonly")
    ended = active_grant(sessions, catalog, now, **someone(1))
    with sessions() as session, session.begin():
        grants.end_early(session, ended, "U0USER1", now)
    mine = create_request(sessions, catalog, now, resource="sandbox", reason="another one")
    theirs = create_request(sessions, catalog, now, **someone(2))

    seen = look(sessions, catalog, REQUESTER, now)
    assert [g.id for g in seen.grants] == [live, applying]  # soonest to end, then by id
    assert [r.id for r in seen.pending] == [mine]
    assert seen.to_decide == []  # the requester is no approver here
    assert seen.all_grants is None  # not an admin
    assert theirs not in [r.id for r in seen.pending]


def test_requests_waiting_for_my_decision_never_my_own(sessions, clock):
    catalog = make_catalog({"prod-readonly": {"approvers": ["U0BOB", "S0SRE"]}})
    now = clock()
    admins_request = create_request(sessions, catalog, now)  # prod-admins: Bob and Dave
    readonly = create_request(sessions, catalog, now, resource="prod-readonly", **someone(1))
    bobs_own = create_request(sessions, catalog, now, resource="prod-readonly",
                              requester=APPROVER, iam_user="bob")

    assert [r.id for r in look(sessions, catalog, APPROVER, now).to_decide] == \
        [admins_request, readonly]
    assert [r.id for r in look(sessions, catalog, OTHER_APPROVER, now).to_decide] == \
        [admins_request]
    # through the user group S0SRE, only with a resolver
    carol = "U0CAROL"
    assert look(sessions, catalog, carol, now).to_decide == []
    groups = Groups({"S0SRE": {carol}})
    assert [r.id for r in look(sessions, catalog, carol, now, groups).to_decide] == \
        [readonly, bobs_own]
    assert look(sessions, catalog, STRANGER, now).to_decide == []


def test_admins_see_every_live_grant(sessions, clock):
    catalog = make_catalog(admins=["U0SECLEAD", "S0SECURITY"])
    now = clock()
    first = active_grant(sessions, catalog, now)
    second = active_grant(sessions, catalog, now + timedelta(minutes=5), **someone(1))

    assert [g.id for g in look(sessions, catalog, "U0SECLEAD", now).all_grants] == \
        [first, second]
    assert look(sessions, catalog, "U0SAM", now).all_grants is None
    groups = Groups({"S0SECURITY": {"U0SAM"}})
    assert [g.id for g in look(sessions, catalog, "U0SAM", now, groups).all_grants] == \
        [first, second]


def test_home_refreshes_are_owed_only_to_those_who_opened_home(sessions, catalog, clock):
    now = clock()
    with sessions() as session, session.begin():
        overview.home_opened(session, REQUESTER, now)
        overview.home_opened(session, REQUESTER, now)  # again: still one row
    active_grant(sessions, catalog, now)  # grant_active and the request's changes owe it
    active_grant(sessions, catalog, now, **someone(1))  # user1 never opened Home
    with sessions() as session, session.begin():
        messages.home_refresh(session, ["U0USER1", "C0APPROVALS"], now)
    with sessions() as session:
        rows = session.scalars(select(OutboxMessage)
                               .where(OutboxMessage.kind == Kind.HOME_REFRESH.value)).all()
        assert rows and {(r.queue, r.target) for r in rows} == \
            {(f"home:{REQUESTER}", f"home:{REQUESTER}")}
        assert overview.home_viewers(session, {REQUESTER, "U0USER1"}) == [REQUESTER]


def test_an_approver_who_opened_home_is_refreshed_when_a_request_reaches_them(
        sessions, catalog, clock):
    now = clock()
    with sessions() as session, session.begin():
        overview.home_opened(session, APPROVER, now)
    request_id = create_request(sessions, catalog, now)
    with sessions() as session, session.begin():
        request = session.get(AccessRequest, request_id)
        messages.request_copies(session, request, ["C0APPROVALS", APPROVER, OTHER_APPROVER],
                                now)
    with sessions() as session:
        assert session.scalars(select(OutboxMessage.queue).where(
            OutboxMessage.kind == Kind.HOME_REFRESH.value)).all() == [f"home:{APPROVER}"]


@contextmanager
def count_queries(session, table: str):
    """How many statements reading `table` ran inside the block (call the yielded fn)."""
    seen = []

    def before(conn, cursor, statement, *_):
        if statement.lstrip().upper().startswith("SELECT") and table in statement:
            seen.append(statement)

    engine = session.get_bind()
    event.listen(engine, "before_cursor_execute", before)
    try:
        yield lambda: len(seen)
    finally:
        event.remove(engine, "before_cursor_execute", before)


def test_who_opened_home_is_read_once_a_transaction_and_a_new_viewer_counts_at_once(
        sessions, clock):
    now = clock()
    with sessions() as session, session.begin():
        overview.home_opened(session, REQUESTER, now)
    with sessions() as session, session.begin():
        with count_queries(session, "home_viewers") as asked:
            for user in (REQUESTER, APPROVER, REQUESTER, "U0USER1"):  # a batch, one per row
                overview.home_viewers(session, {user})
        assert asked() == 1
        overview.home_opened(session, APPROVER, now)  # in the same transaction
        assert overview.home_viewers(session, {REQUESTER, APPROVER}) == sorted(
            [REQUESTER, APPROVER])
    with sessions() as session, session.begin():  # another transaction reads again
        with count_queries(session, "home_viewers") as asked:
            assert overview.home_viewers(session, {APPROVER}) == [APPROVER]
        assert asked() == 1
