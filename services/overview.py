"""What one person's access looks like now: the answer to `/request-access list` and the
App Home tab (both render the same Overview)."""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from accessbot.models import AccessRequest, Grant, GrantStatus, HomeViewer, RequestStatus
from accessbot.services.catalog import Catalog
from accessbot.services.people import UserGroups, approvers, is_admin

LIVE = (GrantStatus.PENDING, GrantStatus.ACTIVE)
MAX_ROWS = 200  # per section read from the database; the builder shows fewer


@dataclass(frozen=True)
class Overview:
    user_id: str
    now: datetime
    grants: list[Grant]  # my live grants, soonest to end first
    pending: list[AccessRequest]  # my requests waiting for a decision
    to_decide: list[AccessRequest]  # others' requests that I may decide
    all_grants: list[Grant] | None  # every live grant, for admins; None for others


def overview(session: Session, catalog: Catalog, user_id: str, groups: UserGroups | None,
             now: datetime) -> Overview:
    mine = session.scalars(select(Grant).where(Grant.requester_id == user_id,
                                               Grant.status.in_(LIVE))
                           .order_by(Grant.expires_at, Grant.id).limit(MAX_ROWS)).all()
    waiting = session.scalars(select(AccessRequest)
                              .where(AccessRequest.status == RequestStatus.PENDING)
                              .order_by(AccessRequest.created_at, AccessRequest.id)).all()
    pending = [r for r in waiting if r.requester_id == user_id][:MAX_ROWS]
    to_decide = [r for r in waiting if r.requester_id != user_id
                 and r.resource in catalog.resources
                 and user_id in approvers(catalog.resources[r.resource], groups,
                                          r.requester_id)][:MAX_ROWS]
    everyone = None
    if is_admin(catalog, user_id, groups):
        everyone = list(session.scalars(select(Grant).where(Grant.status.in_(LIVE))
                                        .order_by(Grant.expires_at, Grant.id)
                                        .limit(MAX_ROWS)))
    return Overview(user_id, now, list(mine), pending, to_decide, everyone)


# -- who has opened the App Home tab (only they get it republished) ---------------------

def home_opened(session: Session, user_id: str, now: datetime) -> None:
    """Remember that the user has a Home tab to keep up to date (idempotent)."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(insert(HomeViewer).values(user_id=user_id, first_opened_at=now)
                    .on_conflict_do_nothing(index_elements=["user_id"]))
    session.info.pop(_VIEWERS, None)


def home_viewers(session: Session, user_ids: set[str]) -> list[str]:
    """Those of `user_ids` who have opened the Home tab, in a stable order."""
    if not user_ids:
        return []
    return sorted(user_ids & _viewers(session))


_VIEWERS = "accessbot.home_viewers"  # session.info: (transaction, everyone who opened Home)


def _viewers(session: Session) -> set[str]:
    """Everyone who has opened the Home tab, read once per transaction: a batch of decisions
    or revocations asks once per row, and a query each time (with the autoflush before it)
    cost more than the decision itself."""
    transaction = session.get_transaction()
    cached = session.info.get(_VIEWERS)
    if cached is None or cached[0] is not transaction:
        with session.no_autoflush:  # viewers are only ever added by home_opened's INSERT
            cached = (transaction, set(session.scalars(select(HomeViewer.user_id))))
        session.info[_VIEWERS] = cached
    return cached[1]
