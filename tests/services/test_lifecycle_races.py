"""Cancel and Revoke under real concurrency (Postgres row locks, SQLite's write lock):
one winner, the others told why, nothing done twice."""

from collections import Counter

from sqlalchemy import func, select

from accessbot.models import AuditEvent, Grant, RequestStatus
from accessbot.services import lifecycle, requests
from tests.factories import (
    APPROVER,
    OTHER_APPROVER,
    REQUESTER,
    active_grant,
    create_request,
    load_grant,
    load_request,
    make_catalog,
)
from tests.services.test_concurrency import THREADS, kinds, race, race_sessions  # noqa: F401

ADMIN = "U0SECLEAD"


def test_racing_cancel_and_approvals_decide_once(race_sessions, clock):  # noqa: F811
    catalog = make_catalog()
    request_id = create_request(race_sessions, catalog, clock())

    def act(index: int) -> str:
        with race_sessions() as session, session.begin():
            if index % 2:
                lifecycle.cancel_request(session, request_id, REQUESTER, clock())
                return "cancelled"
            requests.approve(session, catalog, request_id, APPROVER, clock())
            return "approved"

    outcomes = race(act, list(range(THREADS)))

    assert kinds(outcomes) == Counter({"str": 1, "Conflict": THREADS - 1}), outcomes
    [won] = [o for o in outcomes if isinstance(o, str)]
    request = load_request(race_sessions, request_id)
    assert request.status is RequestStatus(won.upper())
    with race_sessions() as session:
        assert session.scalar(select(func.count()).select_from(Grant)) == (won == "approved")


def test_racing_revokes_revoke_once(race_sessions, clock):  # noqa: F811
    catalog = make_catalog(admins=[ADMIN])
    grant_id = active_grant(race_sessions, catalog, clock())
    revokers = [APPROVER, OTHER_APPROVER, ADMIN] * (THREADS // 3)

    def revoke(revoker: str) -> str:
        with race_sessions() as session, session.begin():
            lifecycle.revoke_by(session, catalog, None, grant_id, revoker, "stop", clock())
        return revoker

    outcomes = race(revoke, revokers)

    assert kinds(outcomes) == Counter({"str": 1, "Conflict": len(revokers) - 1}), outcomes
    [winner] = [o for o in outcomes if isinstance(o, str)]
    assert load_grant(race_sessions, grant_id).revoked_by == winner
    with race_sessions() as session:
        assert session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "revoked_by_other")) == 1
