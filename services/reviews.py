"""The access review's state: runs, the items asked about, decisions (compare-and-set),
reminders, escalation and the outcome. Nothing here talks to AWS or Slack.

An item is one principal's standing access to one target. There is at most one OPEN item
per access (a partial unique index): a new run refreshes it rather than asking twice.
"""

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from accessbot.models import ReviewCopy, ReviewItem, ReviewRun, ReviewStatus
from accessbot.services import audit
from accessbot.services.audit import SYSTEM, Action
from accessbot.services.catalog import is_channel
from accessbot.services.errors import Conflict, NotAuthorized, NotFound


class TargetKind(StrEnum):
    IAM_GROUP = "iam_group"
    IAM_ROLE = "iam_role"
    SSO_PERMISSION_SET = "sso_permission_set"
    SSO_GROUP = "sso_group"
    ADMINISTRATORS = "administrators"  # policies allowing everything, on users themselves


class PrincipalKind(StrEnum):
    IAM_USER = "iam_user"
    ROLE_PRINCIPAL = "role_principal"  # whatever a trust policy names: an ARN, an account
    SSO_USER = "sso_user"


# Remove takes these away; a trust policy's principals are for people to remove (Keep only)
REMOVABLE = frozenset({(TargetKind.IAM_GROUP, PrincipalKind.IAM_USER),
                       (TargetKind.ADMINISTRATORS, PrincipalKind.IAM_USER),
                       (TargetKind.SSO_PERMISSION_SET, PrincipalKind.SSO_USER),
                       (TargetKind.SSO_GROUP, PrincipalKind.SSO_USER)})
ADMINISTRATORS = "administrator policies on users"  # the target name of that kind
REMOVING = "removing"  # the detail of a removal decided, its AWS call not yet recorded


@dataclass(frozen=True)
class Target:
    """What is reviewed, who decides, and what its message's header says."""

    kind: TargetKind
    name: str
    deciders: tuple[str, ...]     # Slack users, or one channel
    resource: str | None = None   # the catalog's name for it
    note: str | None = None       # "last used ...; grants 14 services, used 2 in 90d: ..."


@dataclass(frozen=True)
class Holder:
    """One principal's standing access to a target, as found."""

    principal_kind: PrincipalKind
    principal: str
    how: str
    via: str = ""
    label: str | None = None
    slack: str | None = None
    last_activity: datetime | None = None
    unused: str | None = None


@dataclass
class Synced:
    opened: list[ReviewItem] = field(default_factory=list)
    refreshed: list[ReviewItem] = field(default_factory=list)
    gone: list[ReviewItem] = field(default_factory=list)


def start_run(session: Session, account: str, now: datetime) -> ReviewRun:
    run = ReviewRun(account=account, started_at=now)
    session.add(run)
    session.flush()
    return run


def _key(kind: str, target: str, principal_kind: str, principal: str, via: str) -> tuple:
    return (kind, target, principal_kind, principal, via)


def sync(session: Session, run: ReviewRun, found: dict[Target, list[Holder]],
         now: datetime) -> Synced:
    """Make the account's open items those found: open the new (in this run), refresh
    the known open ones (they stay in the run that first asked), and end as GONE the open
    items of a target read now whose access is no longer there."""
    open_rows = {_key(r.target_kind, r.target, r.principal_kind, r.principal, r.via): r
                 for r in session.scalars(select(ReviewItem).where(
                     ReviewItem.status == ReviewStatus.OPEN, ReviewItem.account == run.account))}
    result = Synced()
    for target, holders in found.items():
        for holder in holders:
            key = _key(target.kind, target.name, holder.principal_kind, holder.principal,
                       holder.via)
            row = open_rows.pop(key, None)
            if row is None:
                row = ReviewItem(run_id=run.id, account=run.account,
                                 target_kind=target.kind.value, target=target.name,
                                 principal_kind=holder.principal_kind.value,
                                 principal=holder.principal, via=holder.via,
                                 status=ReviewStatus.OPEN, asked_at=now)
                session.add(row)
                result.opened.append(row)
            else:  # still the run that asked first: its outcome will say how it ended
                result.refreshed.append(row)
            row.resource, row.target_note = target.resource, target.note
            row.owner = ",".join(target.deciders)
            row.how, row.principal_label = holder.how, holder.label
            row.principal_slack = holder.slack
            row.last_activity, row.unused = holder.last_activity, holder.unused
    read = {(t.kind.value, t.name) for t in found}
    for row in open_rows.values():
        if (row.target_kind, row.target) in read:
            _decide(row, ReviewStatus.GONE, SYSTEM, now, "no longer there at the next review")
            result.gone.append(row)
    session.flush()
    return result


def get_item(session: Session, item_id: int) -> ReviewItem:
    row = session.get(ReviewItem, item_id)
    if row is None:
        raise NotFound(f"Review item #{item_id} does not exist.")
    return row


def get_items(session: Session, item_ids: list[int]) -> list[ReviewItem]:
    """The items that still exist, in the order asked."""
    found = {row.id: row for row in session.scalars(
        select(ReviewItem).where(ReviewItem.id.in_(item_ids)))} if item_ids else {}
    return [found[i] for i in item_ids if i in found]


def deciders(row: ReviewItem) -> list[str]:
    return [d for d in row.owner.split(",") if d]


def authorize(row: ReviewItem, user_id: str, channel_id: str | None,
              admin_channel: str | None) -> None:
    """The clicker is one of the item's deciders (a user told, or anyone in a channel
    told, or in the admin channel once the item was escalated there), and never the
    principal whose access it is."""
    if row.principal_slack and row.principal_slack == user_id:
        raise NotAuthorized("This is your own access: someone else decides about it.")
    told = deciders(row)
    if user_id in told or (channel_id and channel_id in told and is_channel(channel_id)):
        return
    if row.escalated_at is not None and admin_channel and channel_id == admin_channel:
        return
    who = ", ".join(f"people in <#{d}>" if is_channel(d) else f"<@{d}>" for d in told)
    raise NotAuthorized(f"Only {who or 'its deciders'} can decide about this access.")


def _open_for(session: Session, item_id: int, user_id: str, channel_id: str | None,
              admin_channel: str | None) -> ReviewItem:
    row = get_item(session, item_id)
    authorize(row, user_id, channel_id, admin_channel)
    if row.status is not ReviewStatus.OPEN:
        raise Conflict(already(row))
    return row


def already(row: ReviewItem) -> str:
    if row.status is ReviewStatus.UNANSWERED:
        return "This review has closed; the next review asks again."
    by = f" by <@{row.decided_by}>" if row.decided_by and row.decided_by != SYSTEM else ""
    return f"Already decided{by}: {row.status.value.lower()}" + (
        f" ({row.detail})" if row.detail else "") + "."


def _decide(row: ReviewItem, status: ReviewStatus, by: str, now: datetime,
            detail: str | None = None) -> None:
    row.status, row.decided_by, row.decided_at, row.detail = status, by, now, detail


def _compare_and_set(session: Session, item_id: int, status: ReviewStatus, by: str,
                     now: datetime, detail: str | None, expected: ReviewStatus,
                     **where) -> ReviewItem:
    """status from `expected` to `status`; Conflict (who decided) when someone won."""
    conditions = [ReviewItem.id == item_id, ReviewItem.status == expected]
    conditions += [getattr(ReviewItem, k) == v for k, v in where.items()]
    changed = session.execute(update(ReviewItem).where(*conditions).values(
        status=status, decided_by=by, decided_at=now, detail=detail)
        .execution_options(synchronize_session=False)).rowcount
    row = session.get(ReviewItem, item_id, populate_existing=True)
    if changed != 1:
        raise Conflict(already(row))
    return row


def describe(row: ReviewItem) -> str:
    """'IAM user alice in IAM group prod-admins (member)', for the audit trail and replies."""
    who = {PrincipalKind.IAM_USER.value: "IAM user", PrincipalKind.SSO_USER.value:
           "Identity Center user"}.get(row.principal_kind, "principal")
    name = row.principal + (f" ({row.principal_label})" if row.principal_label
                            and row.principal_label != row.principal else "")
    where = f" in account {row.account}" if row.account else ""
    return f"{who} {name}: {row.how}, {target_name(row)}{where}"


def target_name(row: ReviewItem) -> str:
    kind = TargetKind(row.target_kind)
    if kind is TargetKind.ADMINISTRATORS:
        return "administrator access"
    return {TargetKind.IAM_GROUP: "IAM group", TargetKind.IAM_ROLE: "IAM role",
            TargetKind.SSO_PERMISSION_SET: "permission set",
            TargetKind.SSO_GROUP: "Identity Center group"}[kind] + f" {row.target}"


def keep(session: Session, item_id: int, user_id: str, channel_id: str | None,
         admin_channel: str | None, now: datetime) -> ReviewItem:
    _open_for(session, item_id, user_id, channel_id, admin_channel)
    row = _compare_and_set(session, item_id, ReviewStatus.KEPT, user_id, now, None,
                           ReviewStatus.OPEN)
    audit.record(session, now, user_id, Action.REVIEW_KEPT, detail=describe(row))
    return row


@dataclass(frozen=True)
class ToRemove:
    item_id: int
    account: str
    target_kind: TargetKind
    target: str
    principal: str
    via: str
    said: str  # describe(row)


def claim_removal(session: Session, item_id: int, user_id: str, channel_id: str | None,
                  admin_channel: str | None, now: datetime) -> ToRemove:
    """The decision to remove, committed before AWS is called (REMOVED, "removing"): of
    two deciders, one wins; the result is recorded by removed() or gone(), and a failure
    gives the item back (released())."""
    row = _open_for(session, item_id, user_id, channel_id, admin_channel)
    kind = TargetKind(row.target_kind)
    if (kind, PrincipalKind(row.principal_kind)) not in REMOVABLE:
        raise Conflict("accessbot does not change trust policies: remove it from the role's "
                       "trust policy yourself, or choose Keep.")
    row = _compare_and_set(session, item_id, ReviewStatus.REMOVED, user_id, now, REMOVING,
                           ReviewStatus.OPEN)
    return _to_remove(row)


def _to_remove(row: ReviewItem) -> ToRemove:
    return ToRemove(row.id, row.account, TargetKind(row.target_kind), row.target, row.principal,
                    row.via, describe(row))


def interrupted_removals(session: Session, account: str, now: datetime,
                         after: timedelta) -> list[tuple[ToRemove, str]]:
    """Removals decided at least `after` ago whose result was never recorded (the worker
    died between the decision and AWS, or before recording): (what to remove, who chose)."""
    rows = session.scalars(select(ReviewItem).where(
        ReviewItem.account == account, ReviewItem.status == ReviewStatus.REMOVED,
        ReviewItem.detail == REMOVING, ReviewItem.decided_at <= now - after)
        .order_by(ReviewItem.id))
    return [(_to_remove(row), row.decided_by) for row in rows]


def removed(session: Session, item_id: int, user_id: str, now: datetime) -> ReviewItem:
    row = get_item(session, item_id)
    row.detail = "removed"
    audit.record(session, now, user_id, Action.REVIEW_REMOVED, detail=describe(row))
    return row


def gone(session: Session, item_id: int, user_id: str, now: datetime) -> ReviewItem:
    row = get_item(session, item_id)
    _decide(row, ReviewStatus.GONE, user_id, now, "already removed, checked live")
    audit.record(session, now, user_id, Action.REVIEW_GONE, detail=describe(row))
    return row


def released(session: Session, item_id: int, user_id: str) -> None:
    """Removing failed: the item is open again (unless something else moved it)."""
    session.execute(update(ReviewItem).where(
        ReviewItem.id == item_id, ReviewItem.status == ReviewStatus.REMOVED,
        ReviewItem.decided_by == user_id, ReviewItem.detail == REMOVING).values(
        status=ReviewStatus.OPEN, decided_by=None, decided_at=None, detail=None)
        .execution_options(synchronize_session=False))


# -- telling, reminding, escalating ------------------------------------------------------

def due(session: Session, account: str, now: datetime, reminder_interval: timedelta
        ) -> dict[tuple[str, str], list[ReviewItem]]:
    """(target kind, target) -> its open items, for targets with an item never told or
    told longer than reminder_interval ago (all its open items are told together)."""
    rows = session.scalars(select(ReviewItem).where(
        ReviewItem.status == ReviewStatus.OPEN, ReviewItem.account == account)
        .order_by(ReviewItem.target_kind, ReviewItem.target, ReviewItem.principal,
                  ReviewItem.id))
    by_target: dict[tuple[str, str], list[ReviewItem]] = {}
    for row in rows:
        by_target.setdefault((row.target_kind, row.target), []).append(row)
    stale = now - reminder_interval
    return {key: rows for key, rows in by_target.items()
            if any(r.last_told_at is None or r.last_told_at <= stale for r in rows)}


def mark_told(session: Session, rows: list[ReviewItem], now: datetime) -> None:
    for row in rows:
        row.last_told_at = now


def escalation_due(session: Session, account: str, now: datetime, after: timedelta
                   ) -> list[ReviewItem]:
    return list(session.scalars(select(ReviewItem).where(
        ReviewItem.status == ReviewStatus.OPEN, ReviewItem.account == account,
        ReviewItem.asked_at <= now - after, ReviewItem.escalated_at.is_(None))
        .order_by(ReviewItem.target_kind, ReviewItem.target, ReviewItem.id)))


def mark_escalated(session: Session, rows: list[ReviewItem], now: datetime) -> None:
    for row in rows:
        row.escalated_at = now
        audit.record(session, now, SYSTEM, Action.REVIEW_ESCALATED, detail=describe(row))


# -- where the messages are ----------------------------------------------------------------

def mark_posted(session: Session, item_ids: list[int], channel: str, ts: str) -> list[ReviewItem]:
    """A message listing these items is at (channel, ts); returns those decided meanwhile."""
    rows = get_items(session, item_ids)
    known = set(session.scalars(select(ReviewCopy.item_id).where(
        ReviewCopy.channel == channel, ReviewCopy.ts == ts)))
    for row in rows:
        if row.id not in known:
            session.add(ReviewCopy(item_id=row.id, channel=channel, ts=ts))
    return [row for row in rows if row.status is not ReviewStatus.OPEN]


def copies_of(session: Session, item_id: int) -> list[tuple[str, str]]:
    return [(c, t) for c, t in session.execute(
        select(ReviewCopy.channel, ReviewCopy.ts).where(ReviewCopy.item_id == item_id)
        .order_by(ReviewCopy.id))]


def in_message(session: Session, channel: str, ts: str) -> list[ReviewItem]:
    return list(session.scalars(select(ReviewItem).join(
        ReviewCopy, ReviewCopy.item_id == ReviewItem.id).where(
        ReviewCopy.channel == channel, ReviewCopy.ts == ts)
        .order_by(ReviewItem.principal, ReviewItem.id)))


# -- closing --------------------------------------------------------------------------------

def closing_due(session: Session, account: str, now: datetime, close_after: timedelta
                ) -> list[ReviewRun]:
    """The account's open runs with nothing left open, or started close_after ago."""
    runs = session.scalars(select(ReviewRun).where(
        ReviewRun.account == account, ReviewRun.closed_at.is_(None)).order_by(ReviewRun.id))
    due_runs = []
    for run in runs:
        still_open = session.scalar(select(ReviewItem.id).where(
            ReviewItem.run_id == run.id, ReviewItem.status == ReviewStatus.OPEN).limit(1))
        if still_open is None or run.started_at <= now - close_after:
            due_runs.append(run)
    return due_runs


def close(session: Session, run: ReviewRun, now: datetime, told: bool = True
          ) -> dict[str, int]:
    """Unanswered items become UNANSWERED (the next review asks again); the run closes
    (told: its outcome is owed to the admins)."""
    for row in session.scalars(select(ReviewItem).where(
            ReviewItem.run_id == run.id, ReviewItem.status == ReviewStatus.OPEN)):
        _decide(row, ReviewStatus.UNANSWERED, SYSTEM, now)
        audit.record(session, now, SYSTEM, Action.REVIEW_UNANSWERED, detail=describe(row))
    run.closed_at = now
    run.outcome_posted_at = now if told else None
    return outcome(session, run.id)


def outcome(session: Session, run_id: int) -> dict[str, int]:
    """How many items of the run ended how: kept, removed, gone, unanswered (and open)."""
    counts = Counter(session.scalars(select(ReviewItem.status).where(
        ReviewItem.run_id == run_id)))
    return {status.value.lower(): counts.get(status, 0) for status in ReviewStatus}


def run_items(session: Session, run_id: int) -> list[ReviewItem]:
    return list(session.scalars(select(ReviewItem).where(ReviewItem.run_id == run_id)
                                .order_by(ReviewItem.target_kind, ReviewItem.target,
                                          ReviewItem.principal, ReviewItem.id)))


def get_run(session: Session, run_id: int) -> ReviewRun:
    run = session.get(ReviewRun, run_id)
    if run is None:
        raise NotFound(f"Review run #{run_id} does not exist.")
    return run
