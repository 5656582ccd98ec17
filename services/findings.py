"""Stale-credential findings in the database: what was found, who was told, what they did.

One transaction per use case, opened by the caller. The credential report decides what is
open; the people decide what is snoozed or being fixed; nothing here talks to AWS or Slack.
"""

import re
from collections import Counter
from collections.abc import Set
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from accessbot.models import CredentialFinding, FindingStatus
from accessbot.services import audit
from accessbot.services.audit import SYSTEM, Action
from accessbot.services.catalog import is_channel
from accessbot.services.errors import Conflict, NotAuthorized, NotFound
from accessbot.services.hygiene import (
    KEY_KINDS,
    REPORT_KINDS,
    ROLE_KINDS,
    Finding,
    FindingKind,
    describe,
)

GONE = "no longer in the credential report"
EXCLUDED = "the user is excluded (hygiene.exclude)"
ROLE_EXCLUDED = "the role is excluded (hygiene.exclude)"
ROLE_GONE = "fixed, or the role is gone (checked in IAM)"


@dataclass
class Synced:
    opened: list[CredentialFinding] = field(default_factory=list)
    resolved: list[CredentialFinding] = field(default_factory=list)


def sync(session: Session, found: list[Finding], now: datetime,
         excluded: Set[str] = frozenset(), account: str = "",
         kinds: Set[str] = REPORT_KINDS) -> Synced:
    """Make the account's open findings of `kinds` (those one evaluation decides: the
    credential report's, or the roles') those it found: open the new, refresh the known,
    resolve the ones that are gone (those of `excluded` users quietly: nobody fixed them).
    Findings of other kinds are left alone."""
    open_rows = {_identity(row): row for row in session.scalars(
        select(CredentialFinding).where(CredentialFinding.status == FindingStatus.OPEN,
                                        CredentialFinding.account == account,
                                        CredentialFinding.kind.in_(sorted(kinds))))}
    result = Synced()
    for finding in found:
        if finding.kind not in kinds:
            raise ValueError(f"sync of {sorted(kinds)} was given a {finding.kind} finding")
        row = open_rows.pop(finding.key, None)
        if row is None:
            row = CredentialFinding(account=account, iam_user=finding.iam_user,
                                    kind=finding.kind.value,
                                    subject=finding.subject, status=FindingStatus.OPEN,
                                    first_seen_at=now, key_slot=finding.key_slot,
                                    key_created=finding.key_created)
            session.add(row)
            result.opened.append(row)
        row.last_seen_at = now
        row.since, row.last_used = finding.since, finding.last_used
        row.last_used_where, row.detail = finding.last_used_where, finding.detail
    for row in open_rows.values():
        if row.iam_user in excluded:
            _resolve(session, row, now, SYSTEM,
                     ROLE_EXCLUDED if row.kind in ROLE_KINDS else EXCLUDED)
            continue
        _resolve(session, row, now, SYSTEM, ROLE_GONE if row.kind in ROLE_KINDS else GONE)
        result.resolved.append(row)
    session.flush()
    for row in result.opened:
        where = f" (account {account})" if account else ""
        audit.record(session, now, SYSTEM, Action.FINDING_OPENED, finding_id=row.id,
                     detail=describe(row.iam_user, row.kind, row.subject, row.key_id) + where)
    return result


def _identity(row: CredentialFinding) -> tuple[str, str, str]:
    return (row.iam_user, row.kind, row.subject)


def _resolve(session: Session, row: CredentialFinding, now: datetime, by: str,
             why: str) -> None:
    row.status = FindingStatus.RESOLVED
    row.resolved_at, row.resolved_by, row.resolution = now, by, why
    # the resolution is shown in Slack, where <@U…> is a mention; the audit trail is read
    # elsewhere (a SIEM, the database), so it gets the plain id
    audit.record(session, now, by, Action.FINDING_RESOLVED, finding_id=row.id,
                 detail=re.sub(r"<@([A-Z0-9]+)>", r"\1", why))


def get_finding(session: Session, finding_id: int) -> CredentialFinding:
    row = session.get(CredentialFinding, finding_id)
    if row is None:
        raise NotFound(f"Finding #{finding_id} does not exist.")
    return row


def get_findings(session: Session, finding_ids: list[int]) -> list[CredentialFinding]:
    """The findings that still exist, in the order asked, a few queries for thousands."""
    found: dict[int, CredentialFinding] = {}
    for start in range(0, len(finding_ids), 1000):
        chunk = finding_ids[start:start + 1000]
        found.update((row.id, row) for row in session.scalars(
            select(CredentialFinding).where(CredentialFinding.id.in_(chunk))))
    return [found[i] for i in finding_ids if i in found]


def unmatched_keys(session: Session, account: str = "") -> list[CredentialFinding]:
    """The account's open key findings whose access key id is not known yet, the oldest
    first."""
    return list(session.scalars(select(CredentialFinding).where(
        CredentialFinding.status == FindingStatus.OPEN, CredentialFinding.account == account,
        CredentialFinding.kind.in_(KEY_KINDS),
        CredentialFinding.key_id.is_(None))
        .order_by(CredentialFinding.first_seen_at, CredentialFinding.id)))


def set_key_id(session: Session, finding_id: int, key_id: str) -> None:
    get_finding(session, finding_id).key_id = key_id


def due(session: Session, now: datetime, reminder_interval: timedelta, account: str = ""
        ) -> dict[str, list[CredentialFinding]]:
    """IAM user of the account -> all their open, unsnoozed findings, for users with
    something to be told: a finding never told, or told longer than reminder_interval ago."""
    rows = session.scalars(select(CredentialFinding)
                           .where(CredentialFinding.status == FindingStatus.OPEN,
                                  CredentialFinding.account == account, _awake(now))
                           .order_by(CredentialFinding.iam_user, CredentialFinding.id))
    by_user: dict[str, list[CredentialFinding]] = {}
    for row in rows:
        by_user.setdefault(row.iam_user, []).append(row)
    stale = now - reminder_interval
    return {user: rows for user, rows in by_user.items()
            if any(row.last_told_at is None or row.last_told_at <= stale for row in rows)}


def _awake(now: datetime):
    """Not snoozed, or the snooze has ended."""
    return or_(CredentialFinding.snoozed_until.is_(None), CredentialFinding.snoozed_until <= now)


def mark_told(session: Session, finding_ids: list[int], owner: str, now: datetime) -> None:
    """The owner is owed a message listing these findings (services/messages.py)."""
    for row in get_findings(session, finding_ids):
        row.owner, row.last_told_at = owner, now
        audit.record(session, now, SYSTEM, Action.FINDING_TOLD, finding_id=row.id,
                     detail=f"told {owner}")


def mark_posted(session: Session, finding_ids: list[int], channel: str, ts: str
                ) -> set[tuple[str, str]]:
    """The message (channel, ts) lists these findings now; returns the earlier messages
    that listed them."""
    earlier = set()
    for finding_id in finding_ids:
        row = get_finding(session, finding_id)
        if row.message_ts and (row.message_channel, row.message_ts) != (channel, ts):
            earlier.add((row.message_channel, row.message_ts))
        row.message_channel, row.message_ts = channel, ts
    return earlier


def in_message(session: Session, channel: str, ts: str) -> list[CredentialFinding]:
    """The findings a message lists, in the order it lists them."""
    return list(session.scalars(select(CredentialFinding).where(
        CredentialFinding.message_channel == channel, CredentialFinding.message_ts == ts)
        .order_by(CredentialFinding.iam_user, CredentialFinding.id)))


def authorize(row: CredentialFinding, user_id: str, channel_id: str | None) -> None:
    """Only the owner decides about a finding: the Slack user told, or, for findings sent
    to a channel (service users, the root account), people in that channel."""
    if row.owner is None:
        raise NotAuthorized("This finding has no owner yet.")
    if user_id == row.owner or (is_channel(row.owner) and channel_id == row.owner):
        return
    who = f"people in <#{row.owner}>" if is_channel(row.owner) else f"<@{row.owner}>"
    raise NotAuthorized(f"Only {who} can act on this finding.")


def _open_for(session: Session, finding_id: int, user_id: str,
              channel_id: str | None) -> CredentialFinding:
    row = get_finding(session, finding_id)
    authorize(row, user_id, channel_id)
    if row.status is not FindingStatus.OPEN:
        raise Conflict(f"This is already resolved: {row.resolution}.")
    return row


def _open_of_same_key(session: Session, row: CredentialFinding) -> list[CredentialFinding]:
    """For a key, its open findings (they share one card, and one deactivation ends them
    all); any other finding stands alone."""
    if row.kind not in KEY_KINDS:
        return [row]
    return list(session.scalars(select(CredentialFinding).where(
        CredentialFinding.status == FindingStatus.OPEN, CredentialFinding.account == row.account,
        CredentialFinding.iam_user == row.iam_user, CredentialFinding.subject == row.subject)))


def snooze(session: Session, finding_id: int, user_id: str, channel_id: str | None,
           now: datetime, length: timedelta) -> CredentialFinding:
    row = _open_for(session, finding_id, user_id, channel_id)
    for each in _open_of_same_key(session, row):
        each.snoozed_by, each.snoozed_until = user_id, now + length
        each.snooze_count = CredentialFinding.snooze_count + 1  # in SQL: no lost click
        audit.record(session, now, user_id, Action.FINDING_SNOOZED, finding_id=each.id,
                     detail=f"until {each.snoozed_until:%Y-%m-%d %H:%M} UTC")
    return row


def will_fix(session: Session, finding_id: int, user_id: str, channel_id: str | None,
             now: datetime) -> CredentialFinding:
    row = _open_for(session, finding_id, user_id, channel_id)
    for each in _open_of_same_key(session, row):
        each.fixing_by, each.fixing_at = user_id, now
        audit.record(session, now, user_id, Action.FINDING_FIXING, finding_id=each.id)
    return row


@dataclass(frozen=True)
class KeyToDeactivate:
    finding_id: int
    iam_user: str
    key_id: str | None  # None: not looked up yet (the click looks it up)
    key_created: datetime | None
    account: str = ""

    @classmethod
    def of(cls, row: CredentialFinding) -> "KeyToDeactivate":
        return cls(row.id, row.iam_user, row.key_id, row.key_created, row.account)


def key_to_deactivate(session: Session, finding_id: int, user_id: str,
                      channel_id: str | None) -> KeyToDeactivate:
    """Check that this clicker may deactivate this finding's key, and which key it is."""
    row = _open_for(session, finding_id, user_id, channel_id)
    if row.kind not in KEY_KINDS:
        raise Conflict("Only access keys can be deactivated from here.")
    return KeyToDeactivate.of(row)


def key_deactivated(session: Session, finding_id: int, by: str, now: datetime) -> None:
    """The key is Inactive: every open finding about that key is resolved."""
    row = get_finding(session, finding_id)
    same_key = _open_of_same_key(session, row)
    who = "accessbot (auto-disable)" if by == SYSTEM else f"<@{by}>"
    audit.record(session, now, by, Action.KEY_DEACTIVATED, finding_id=row.id,
                 detail=f"{row.iam_user}'s access key ...{(row.key_id or '')[-4:]}")
    for other in same_key:
        _resolve(session, other, now, by, f"key deactivated by {who}")


def key_gone(session: Session, finding_id: int, now: datetime) -> None:
    """The live re-check found the key deleted, inactive or replaced: nothing to do."""
    row = get_finding(session, finding_id)
    if row.status is FindingStatus.OPEN:
        _resolve(session, row, now, SYSTEM, "the key is no longer active (checked live)")


@dataclass(frozen=True)
class RoleToCap:
    finding_id: int
    role: str
    account: str = ""


def role_to_cap(session: Session, finding_id: int, user_id: str,
                channel_id: str | None) -> RoleToCap:
    """Check that this clicker may cap this finding's role's maximum session."""
    row = _open_for(session, finding_id, user_id, channel_id)
    if row.kind != FindingKind.ROLE_LONG_SESSION:
        raise Conflict("Only a role's maximum session can be capped from here.")
    return RoleToCap(row.id, row.iam_user, row.account)


def session_capped(session: Session, finding_id: int, by: str, cap: str,
                   now: datetime) -> CredentialFinding:
    """The role's maximum session is `cap` now: its finding is resolved."""
    row = get_finding(session, finding_id)
    audit.record(session, now, by, Action.ROLE_SESSION_CAPPED, finding_id=row.id,
                 detail=f"role {row.iam_user}'s maximum session at {cap}")
    if row.status is FindingStatus.OPEN:  # a click at the same moment may have done it
        _resolve(session, row, now, by, f"session capped at {cap} by <@{by}>")
    return row


def role_checked(session: Session, finding_id: int, why: str, now: datetime
                 ) -> CredentialFinding:
    """The live re-check found nothing to do (already capped, or the role is gone)."""
    row = get_finding(session, finding_id)
    if row.status is FindingStatus.OPEN:
        _resolve(session, row, now, SYSTEM, why)
    return row


def escalation_due(session: Session, now: datetime, after: timedelta, account: str = ""
                   ) -> list[CredentialFinding]:
    """The account's open findings older than `after`, not escalated yet, snoozed or not:
    a snooze quiets the owner's reminders, it cannot keep a finding from the admins."""
    return list(session.scalars(select(CredentialFinding).where(
        CredentialFinding.status == FindingStatus.OPEN, CredentialFinding.account == account,
        CredentialFinding.first_seen_at <= now - after,
        CredentialFinding.escalated_at.is_(None))
        .order_by(CredentialFinding.first_seen_at, CredentialFinding.id)))


def mark_escalated(session: Session, finding_ids: list[int], now: datetime) -> None:
    for finding_id in finding_ids:
        get_finding(session, finding_id).escalated_at = now
        audit.record(session, now, SYSTEM, Action.FINDING_ESCALATED, finding_id=finding_id)


@dataclass
class AutoDisable:
    warn: list[CredentialFinding] = field(default_factory=list)
    disable: list[CredentialFinding] = field(default_factory=list)


def auto_disable_due(session: Session, now: datetime, after: timedelta,
                     final_warning: timedelta, account: str = "") -> AutoDisable:
    """The account's key findings open longer than `after`: those never warned are due the
    final warning; those warned at least `final_warning` ago are due to be disabled."""
    due_rows = session.scalars(select(CredentialFinding).where(
        CredentialFinding.status == FindingStatus.OPEN, CredentialFinding.account == account,
        CredentialFinding.kind.in_(KEY_KINDS),
        CredentialFinding.key_id.is_not(None),
        CredentialFinding.owner.is_not(None),
        CredentialFinding.first_seen_at <= now - after).order_by(CredentialFinding.id))
    result = AutoDisable()
    seen_keys: set[tuple[str, str]] = set()
    for row in due_rows:
        if (row.iam_user, row.subject) in seen_keys:  # both kinds on one key: act once
            continue
        seen_keys.add((row.iam_user, row.subject))
        if row.final_warning_at is None:
            result.warn.append(row)
        elif row.final_warning_at <= now - final_warning:
            result.disable.append(row)
    return result


def mark_final_warning(session: Session, finding_id: int, now: datetime) -> None:
    """The owner was told the key will be deactivated: the countdown starts now."""
    get_finding(session, finding_id).final_warning_at = now
    audit.record(session, now, SYSTEM, Action.KEY_FINAL_WARNING, finding_id=finding_id)


@dataclass(frozen=True)
class Summary:
    open_by_kind: dict[str, int]
    open_last_week_by_kind: dict[str, int]
    new: int
    resolved: int
    oldest: CredentialFinding | None


def summary(session: Session, now: datetime, period: timedelta = timedelta(days=7)) -> Summary:
    """Open findings per kind now and one period ago, what opened and resolved since."""
    start = now - period
    rows = session.scalars(select(CredentialFinding).where(or_(
        CredentialFinding.status == FindingStatus.OPEN, CredentialFinding.resolved_at > start)))
    now_open: Counter[str] = Counter()
    then_open: Counter[str] = Counter()
    new = resolved = 0
    oldest = None
    for row in rows:
        if row.status is FindingStatus.OPEN:
            now_open[row.kind] += 1
            if oldest is None or (row.first_seen_at, row.id) < (oldest.first_seen_at, oldest.id):
                oldest = row
        else:
            resolved += 1
        if row.first_seen_at <= start:
            then_open[row.kind] += 1
        else:
            new += 1
    return Summary(dict(now_open), dict(then_open), new, resolved, oldest)

