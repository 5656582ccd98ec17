"""Leases of processes that died on this host end at the next start, not at their time.

A lease owner is "host:pid:nonce" (services.runner.worker_id). A starting worker ends the
leases held by owners on its own host whose process is gone, so that its work (a grant
half applied, a message half sent) is taken up at once. Owners on other hosts, and a pid
that is alive (perhaps reused), are left to their lease time: never a live lease.
"""

import logging
from collections.abc import Callable

from sqlalchemy import distinct, select, update
from sqlalchemy.orm import Session

from models import Grant, InboxTask, JobRun, OutboxMessage

log = logging.getLogger(__name__)

LEASED = (Grant, InboxTask, OutboxMessage, JobRun)


def end_leases_of_the_dead(session: Session, host: str, alive: Callable[[int], bool]) -> int:
    ended = 0
    for table in LEASED:
        owners = session.scalars(select(distinct(table.lease_owner)).where(
            table.lease_owner.like(f"{host}:%"), table.lease_until.is_not(None))).all()
        dead = [o for o in owners if not alive(_pid(o))]
        if dead:
            result = session.execute(update(table).where(table.lease_owner.in_(dead))
                                     .values(lease_until=None, lease_owner=None)
                                     .execution_options(synchronize_session=False))
            ended += result.rowcount
            log.warning("took over %d %s leases of processes gone: %s", result.rowcount,
                        table.__tablename__, ", ".join(dead))
    return ended


def _pid(owner: str) -> int:
    try:
        return int(owner.split(":")[1])
    except (IndexError, ValueError):
        return -1
