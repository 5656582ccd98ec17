"""Daily and weekly jobs run once per period, across restarts and across processes."""

from datetime import datetime, timedelta

from sqlalchemy import or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from accessbot.models import JobRun

LEASE = timedelta(minutes=30)  # a run that crashed is taken over after this


def claim(session: Session, name: str, owner: str, now: datetime, every: timedelta,
          first_after_a_period: bool = False) -> bool:
    """Lease the job if its last run finished at least `every` ago and nobody runs it now.
    With first_after_a_period, a job never seen before first runs `every` from now."""
    if session.get(JobRun, name) is None:
        try:
            with session.begin_nested():
                session.add(JobRun(name=name, last_finished_at=now if first_after_a_period
                                   else None))
        except IntegrityError:  # another process added it first
            pass
    result = session.execute(
        update(JobRun)
        .where(JobRun.name == name,
               or_(JobRun.last_finished_at.is_(None), JobRun.last_finished_at <= now - every),
               or_(JobRun.lease_until.is_(None), JobRun.lease_until < now))
        .values(lease_owner=owner, lease_until=now + LEASE)
        .execution_options(synchronize_session=False))
    return result.rowcount == 1


def finish(session: Session, name: str, owner: str, now: datetime) -> None:
    session.execute(update(JobRun).where(JobRun.name == name, JobRun.lease_owner == owner)
                    .values(last_finished_at=now, lease_owner=None, lease_until=None))


def release(session: Session, name: str, owner: str) -> None:
    """Give the lease back without a finished run: the next check tries again."""
    session.execute(update(JobRun).where(JobRun.name == name, JobRun.lease_owner == owner)
                    .values(lease_owner=None, lease_until=None))
