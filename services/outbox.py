"""The outbox: every message the bot owes someone is a row, written in the transaction
that owes it, and delivered by the sender (handlers/sender.py) after that commits.

A row names what to say (`Kind` and ids), not the words: the sender renders it from the
database when it sends, so a message says how things stand when it arrives, and an update
of a posted message that waited behind a Slack outage shows the latest state once.

Delivery order: rows of one `queue` (a person's DM, or one request's messages in a
channel) go out one after the other, in the order they were owed; different queues go
out side by side. With several replicas each row is leased to one sender; a sender that
dies mid-send leaves its lease to run out, and that one message may be sent twice.
"""

import json
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import Select, delete, exists, func, or_, select, update
from sqlalchemy.orm import Session

from accessbot.models import OutboxMessage, OutboxStatus, add_row
from accessbot.services import leases

LEASE = timedelta(seconds=20)  # over a Slack call with its timeout (10 s)
FIRST_RETRY = timedelta(seconds=1)
MAX_RETRY = timedelta(minutes=5)
GIVE_UP_AFTER = timedelta(hours=24)  # a transient error for this long becomes a failure
OWED = "accessbot.owed"  # session.info flag: this transaction owes messages (wakes the sender)


class Kind(StrEnum):
    """What a row says; handlers/delivery.py renders each one."""

    REQUEST_COPY = "request_copy"              # an approval message, to a channel or approver
    REQUEST_COPY_UPDATE = "request_copy_update"  # re-render a posted copy in place
    DECISION_REPLY = "decision_reply"          # the decision, in the copy's thread
    REQUEST_SUBMITTED = "request_submitted"    # to the requester: approvers were asked
    REQUEST_FAILED = "request_failed"
    REQUEST_DECIDED = "request_decided"        # denied or expired
    GRANT_ACTIVE = "grant_active"              # the grant DM, with "I'm done"
    GRANT_DM_UPDATE = "grant_dm_update"        # re-render the grant DM in place
    GRANT_EXTENDED = "grant_extended"
    GRANT_EXPIRING = "grant_expiring"
    GRANT_ENDED = "grant_ended"
    GRANT_FAILED = "grant_failed"
    GRANT_PARTLY = "grant_partly"              # in place in some accounts, retried in others
    ADMIN_ALERT = "admin_alert"
    REPLY = "reply"                            # a short answer to a person who acted
    FINDINGS_DIGEST = "findings_digest"
    FINDINGS_LIST = "findings_list"            # many for one channel: a summary and a CSV
    FINDINGS_UPDATE = "findings_update"
    FINDINGS_RESOLVED = "findings_resolved"
    FINDINGS_ESCALATED = "findings_escalated"
    KEY_FINAL_WARNING = "key_final_warning"
    FINDINGS_SUMMARY = "findings_summary"
    FINDINGS_PREVIEW = "findings_preview"      # report mode: who would have been told what
    ACCOUNT_AUDIT = "account_audit"
    REVIEW_ASK = "review_ask"                  # a target's rows, Keep / Remove, to a decider
    REVIEW_UPDATE = "review_update"            # re-render a posted review message in place
    REVIEW_ESCALATED = "review_escalated"      # undecided rows, to the admin channel
    REVIEW_OUTCOME = "review_outcome"          # kept, removed, gone, unanswered
    ACTIVITY_REPLY = "activity_reply"          # what a grant was used for, in the thread
    ACTIVITY_DM = "activity_dm"                # the same, to the requester
    OVERVIEW = "overview"                      # /request-access list: grants and requests
    HOME_REFRESH = "home_refresh"              # republish a user's App Home tab
    BREAK_GLASS_REMINDER = "break_glass_reminder"  # an unreviewed break-glass, to an approver
    BREAK_GLASS_ESCALATED = "break_glass_escalated"  # not reviewed in time: the admin channel
    WAITING_DM_UPDATE = "waiting_dm_update"    # re-render the requester's "waiting" DM
    REQUEST_REMINDER = "request_reminder"      # to approvers who have not answered


ADMINS = "admins"  # the queue of admin channel messages (the channel is read when sending)


@dataclass(frozen=True)
class Owed:
    """A claimed row, as the sender needs it."""

    id: int
    kind: Kind
    queue: str
    target: str | None
    args: dict
    attempts: int
    created_at: datetime


def owe(session: Session, kind: Kind, queue: str, now: datetime, *, target: str | None = None,
        **args) -> None:
    """Owe a message, in the caller's transaction: it is sent only if that commits."""
    add_row(session, OutboxMessage, kind=kind.value, queue=queue, target=target,
            args=json.dumps(args, default=str), status=OutboxStatus.PENDING, created_at=now,
            next_attempt_at=now, attempts=0)
    session.info[OWED] = True


def claim(session: Session, owner: str, now: datetime, limit: int) -> list[Owed]:
    """Lease up to `limit` rows that are due and first in their queue."""
    heads = session.scalars(_due_heads(now, limit)).all()
    if not heads:  # the common case, a poll: that one SELECT
        return []
    row = OutboxMessage
    chosen = (select(row.id).where(row.id.in_(heads), leases.due(row, OutboxStatus.PENDING, now))
              .with_for_update(skip_locked=True))  # Postgres: replicas skip each other's rows
    rows = leases.take(session, row, chosen, owner, now + LEASE, row.kind, row.queue,
                       row.target, row.args, row.attempts, row.created_at)
    return [Owed(r.id, Kind(r.kind), r.queue, r.target, json.loads(r.args), r.attempts,
                 r.created_at) for r in rows]


def _due_heads(now: datetime, limit: int) -> Select:
    """The ids of the first pending row of each queue, where that row is due: one pass
    over the pending rows, whatever the planner knows. ("No earlier pending row in its
    queue" as NOT EXISTS was quadratic on Postgres without fresh statistics: 14 ms with
    300 rows pending, 80 ms with 600, for every claim in a burst.)"""
    row = OutboxMessage
    place = func.row_number().over(partition_by=row.queue, order_by=row.id).label("place")
    pending = (select(row.id, row.next_attempt_at, row.lease_until, place)
               .where(row.status == OutboxStatus.PENDING).subquery())
    return (select(pending.c.id)
            .where(pending.c.place == 1, pending.c.next_attempt_at <= now,
                   or_(pending.c.lease_until.is_(None), pending.c.lease_until < now))
            .order_by(pending.c.id).limit(limit))


def supersede_older_updates(session: Session, owed: Owed, now: datetime) -> int:
    """Before an update renders: pending updates of the same message are covered by it."""
    if owed.target is None:
        return 0
    result = session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.target == owed.target, OutboxMessage.id != owed.id,
               OutboxMessage.kind == owed.kind.value,
               OutboxMessage.status == OutboxStatus.PENDING,
               or_(OutboxMessage.lease_until.is_(None), OutboxMessage.lease_until < now))
        .values(status=OutboxStatus.SUPERSEDED, done_at=now,
                last_error=f"covered by message #{owed.id}")
        .execution_options(synchronize_session=False))
    return result.rowcount


def mark_sent(session: Session, owed: Owed, owner: str, now: datetime,
              channel: str | None = None, ts: str | None = None) -> bool:
    """Sent: False if our lease ran out and another sender took the row meanwhile."""
    return _finish(session, owed, owner, status=OutboxStatus.SENT, done_at=now,
                   channel=channel, ts=ts)


def retry_later(session: Session, owed: Owed, owner: str, now: datetime, error: str,
                retry_after: float | None = None) -> bool:
    """A transient failure: back off (or as long as Slack asked); False if given up."""
    if now - owed.created_at >= GIVE_UP_AFTER:
        fail(session, owed, owner, now, f"gave up after {owed.attempts} attempts: {error}")
        return False
    delay = min(FIRST_RETRY * 2 ** (owed.attempts - 1), MAX_RETRY)
    delay *= random.uniform(0.8, 1.2)  # replicas and queues do not retry in lockstep
    if retry_after is not None:
        delay = max(delay, timedelta(seconds=retry_after))
    _finish(session, owed, owner, next_attempt_at=now + delay, last_error=error[:2000])
    return True


def fail(session: Session, owed: Owed, owner: str, now: datetime, error: str) -> bool:
    """A permanent failure: the row ends, with the reason."""
    return _finish(session, owed, owner, status=OutboxStatus.FAILED, done_at=now,
                   last_error=error[:2000])


def prune(session: Session, now: datetime, keep: timedelta) -> int:
    """Forget delivered rows older than `keep`; failed ones are kept twice as long."""
    done = (OutboxStatus.SENT, OutboxStatus.SUPERSEDED)
    result = session.execute(delete(OutboxMessage).where(
        or_((OutboxMessage.status.in_(done)) & (OutboxMessage.done_at < now - keep),
            (OutboxMessage.status == OutboxStatus.FAILED)
            & (OutboxMessage.done_at < now - 2 * keep))))
    return result.rowcount


def is_pending(session: Session, target: str) -> bool:
    return session.scalar(select(exists().where(
        OutboxMessage.target == target, OutboxMessage.status == OutboxStatus.PENDING)))


def _finish(session: Session, owed: Owed, owner: str, **values) -> bool:
    return leases.end(session, OutboxMessage, owed.id, owner, OutboxStatus.PENDING, **values)
