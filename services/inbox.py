"""The inbox: what a listener acknowledged, committed before the acknowledgement.

A listener writes one row (one INSERT) and only then tells Slack "got it". Workers, in
any replica, lease rows and do them; a worker that dies leaves its lease to run out and
another takes the row. A task's use case marks its row done in its own transaction, so
what it decided is never decided twice, however often the task is started.
"""

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, select
from sqlalchemy.orm import Session

from accessbot.models import InboxStatus, InboxTask
from accessbot.services import leases

LEASE = timedelta(seconds=30)  # a task's own work is database work; AWS runs after it
MAX_ATTEMPTS = 5  # a task the database kept refusing: the person is told to try again


@dataclass(frozen=True)
class Claimed:
    id: int
    task: str
    args: str  # JSON, decoded by handlers/tasks.py
    attempts: int
    created_at: datetime  # when the person acted: a decision's clock starts here


def add(session: Session, task: str, args: str, now: datetime) -> int:
    row = InboxTask(task=task, args=args, status=InboxStatus.PENDING, created_at=now,
                    next_attempt_at=now, attempts=0)
    session.add(row)
    session.flush()
    return row.id


def claim(session: Session, owner: str, now: datetime, limit: int,
          task: str | None = None, *, other_than: str | None = None) -> list[Claimed]:
    """Lease up to `limit` due rows, oldest first (only rows of `task`, when given; none of
    `other_than`)."""
    due = leases.due(InboxTask, InboxStatus.PENDING, now)
    if task is not None:
        due = and_(due, InboxTask.task == task)
    if other_than is not None:
        due = and_(due, InboxTask.task != other_than)
    chosen = (select(InboxTask.id).where(due).order_by(InboxTask.id).limit(limit)
              .with_for_update(skip_locked=True))  # Postgres: replicas skip each other's
    rows = leases.take(session, InboxTask, chosen, owner, now + LEASE, InboxTask.task,
                       InboxTask.args, InboxTask.attempts, InboxTask.created_at)
    return [Claimed(*row) for row in rows]


def finish(session: Session, task_id: int, owner: str, now: datetime) -> bool:
    """Done, in the caller's transaction; False if it was done already (or not ours)."""
    return _end(session, task_id, owner, status=InboxStatus.DONE, done_at=now)


def finish_all(session: Session, task_ids: list[int], owner: str, now: datetime) -> bool:
    """Done, every one of them, in the caller's transaction; False if any was done already
    (or is not ours): then the caller rolls back and does them one by one."""
    return leases.end_all(session, InboxTask, task_ids, owner, InboxStatus.PENDING,
                          status=InboxStatus.DONE, done_at=now)


def retry_later(session: Session, claimed: Claimed, owner: str, now: datetime,
                error: str) -> bool:
    """Try again after a backoff; False when it has been tried too often (then failed)."""
    if claimed.attempts >= MAX_ATTEMPTS:
        fail(session, claimed.id, owner, now, error)
        return False
    delay = timedelta(seconds=2 ** claimed.attempts) * random.uniform(0.8, 1.2)
    _end(session, claimed.id, owner, next_attempt_at=now + delay, last_error=error[:2000])
    return True


def fail(session: Session, task_id: int, owner: str, now: datetime, error: str) -> bool:
    return _end(session, task_id, owner, status=InboxStatus.FAILED, done_at=now,
                last_error=error[:2000])


def prune(session: Session, now: datetime, keep: timedelta) -> int:
    result = session.execute(delete(InboxTask).where(
        InboxTask.status.in_((InboxStatus.DONE, InboxStatus.FAILED)),
        InboxTask.done_at < now - keep))
    return result.rowcount


def _end(session: Session, task_id: int, owner: str, **values) -> bool:
    return leases.end(session, InboxTask, task_id, owner, InboxStatus.PENDING, **values)
