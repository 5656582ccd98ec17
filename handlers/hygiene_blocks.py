"""Block Kit builders for credential hygiene: the owner's digest (every status of every
finding), thanks, escalation, the weekly summary and the account audit."""

import csv
import io
from datetime import datetime, timedelta

from slack_sdk.models.blocks import ActionsBlock, Block, ButtonElement

from accessbot.handlers.blocks import (
    Message,
    confirm,
    context,
    header,
    message,
    section,
    slack_time,
)
from accessbot.handlers.ids import ActionId
from accessbot.handlers.mrkdwn import escape, escape_except_mentions, mention
from accessbot.models import CredentialFinding, FindingStatus
from accessbot.services.account_audit import Deviation
from accessbot.services.catalog import is_channel
from accessbot.services.durations import format_duration
from accessbot.services.findings import Summary
from accessbot.services.hygiene import KEY_KINDS, ROLE_KINDS, ROOT_USER, FindingKind
from accessbot.services.spreadsheet import cell

_WHAT = {
    FindingKind.KEY_TOO_OLD: ("Access key not rotated", "Rotate it: create a new key, move "
                              "your tools to it, then deactivate and delete this one."),
    FindingKind.KEY_UNUSED: ("Access key unused", "Deactivate it; nothing has used it."),
    FindingKind.PASSWORD_UNUSED: ("Console password unused", "Remove the console password "
                                  "(or ask an admin to) if you no longer sign in."),
    FindingKind.NO_MFA: ("Console password without MFA", "Turn on MFA for your IAM user in "
                         "the IAM console (Security credentials)."),
    FindingKind.MULTIPLE_KEYS: ("More than one active access key", "Keep one: deactivate the "
                                "key you no longer use."),
    FindingKind.USER_INACTIVE: ("IAM user not used at all", "If nobody needs this user, "
                                "ask an admin to remove it."),
    FindingKind.ROOT_KEYS: ("Root account has access keys", "Delete the root access keys."),
    FindingKind.ROOT_NO_MFA: ("Root account without MFA", "Turn on MFA (ideally hardware) "
                              "for the root account."),
    FindingKind.ROOT_USED: ("Root account used", "Check who used the root account and why; "
                            "use IAM users or roles instead."),
    FindingKind.ROLE_UNUSED: ("Role unused", "If nothing needs this role any more, delete "
                              "it (or ask an admin to)."),
    FindingKind.ROLE_LONG_SESSION: ("Role sessions too long", "Cap the role's maximum session "
                                    "duration; people and tools sign in again more often."),
    FindingKind.ROLE_OPEN_TRUST: ("Role trust policy too open", "Name the principals that may "
                                  "assume the role, and require an sts:ExternalId or your "
                                  "organization (aws:PrincipalOrgID) for other accounts."),
}


def _title(kind: str) -> str:
    return _WHAT[FindingKind(kind)][0]


def _snoozed(row: CredentialFinding, now: datetime) -> bool:
    return row.snoozed_until is not None and row.snoozed_until > now


def _key_name(row: CredentialFinding) -> str:
    if row.key_id:
        return f"access key ...{escape(row.key_id[-4:])}"
    return f"access key {row.key_slot or ''} created {row.key_created:%Y-%m-%d}".replace("  ", " ")


def _age(since: datetime | None, now: datetime) -> str:
    if since is None:
        return "age unknown"
    return f"{format_duration(now - since)} ago" if now > since else "just now"


KEY_ORDER = (FindingKind.KEY_UNUSED, FindingKind.KEY_TOO_OLD)  # the worse reason first


def _cards(rows: list[CredentialFinding]) -> list[list[CredentialFinding]]:
    """One card per finding, but one per key: a key both unused and too old is one card
    (the worse reason first, both said) with one set of buttons."""
    cards: list[list[CredentialFinding]] = []
    by_key: dict[tuple, list[CredentialFinding]] = {}
    for row in rows:
        if row.kind not in KEY_KINDS:
            cards.append([row])
            continue
        key = (row.account, row.iam_user, row.subject, row.status)
        same = by_key.get(key)
        if same is not None and all(other.kind != row.kind for other in same):
            same.append(row)
            same.sort(key=lambda r: KEY_ORDER.index(FindingKind(r.kind)))
            continue
        by_key[key] = [row]
        cards.append(by_key[key])
    return cards


def finding_line(row: CredentialFinding, now: datetime,
                 also: list[CredentialFinding] = ()) -> str:
    """What, whose, how old, last used when and where, and what to do (with `also`: the
    same key's other findings, said on the same card)."""
    kind = FindingKind(row.kind)
    title, todo = _WHAT[kind]
    titles = [title] + [_title(other.kind).lower() for other in also]
    who = ("the root account" if row.iam_user == ROOT_USER else _user(row)
           if row.kind in ROLE_KINDS else f"IAM user {_user(row)}")
    if row.iam_user == ROOT_USER and row.account:
        who += f" of account {row.account}"
    subject = f"{_key_name(row)} of {who}" if row.kind in KEY_KINDS else who
    lines = [f"*{' and '.join(titles)}*: {subject}", _facts(row, kind, now),
             f"_{todo}_" if row.status is FindingStatus.OPEN else ""]
    return "\n".join(filter(None, lines))


def _facts(row: CredentialFinding, kind: FindingKind, now: datetime) -> str:
    """How old, and when and where last used, in the terms of this kind of finding."""
    used = (f"last used {slack_time(row.last_used)}"
            + (f" ({escape(row.last_used_where)})" if row.last_used_where else "")
            if row.last_used else "never used")
    if kind in KEY_KINDS:
        return f"created {_age(row.key_created, now)} · {used}"
    if kind is FindingKind.PASSWORD_UNUSED:
        return used if row.last_used else f"set {_age(row.since, now)} · never used"
    if kind is FindingKind.USER_INACTIVE:
        return f"no activity since {_age(row.since, now)} · {used}"
    if kind is FindingKind.MULTIPLE_KEYS:
        return f"second key created {_age(row.since, now)}"
    if kind is FindingKind.ROOT_USED:
        return used
    if kind is FindingKind.ROLE_UNUSED:
        return used if row.last_used else f"created {_age(row.since, now)} · never used"
    if kind in ROLE_KINDS:
        return f"{escape(row.detail or '')} · {used}"
    return f"found {_age(row.first_seen_at, now)}"


def snoozes(row: CredentialFinding) -> str | None:
    """"snoozed 3 times", or None for a finding never snoozed."""
    count = row.snooze_count or 0
    return None if count == 0 else "snoozed once" if count == 1 else f"snoozed {count} times"


def _status(row: CredentialFinding, now: datetime) -> str | None:
    if row.status is FindingStatus.RESOLVED:
        return (f":white_check_mark: Resolved {slack_time(row.resolved_at)}: "
                f"{escape_except_mentions(row.resolution or '')}")
    times = snoozes(row)
    if _snoozed(row, now):
        return (f":zzz: Snoozed by {mention(row.snoozed_by)} until "
                f"{slack_time(row.snoozed_until)}" + (f" ({times})" if times else ""))
    if row.fixing_by:
        return (f":wrench: {mention(row.fixing_by)} will fix it ({slack_time(row.fixing_at)})"
                + (f" · {times}" if times else ""))
    return f":zzz: {times[0].upper()}{times[1:]}, still open" if times else None


def _buttons(row: CredentialFinding, snooze: timedelta,
             cap: timedelta = timedelta(hours=1)) -> ActionsBlock:
    value = str(row.id)
    elements = []
    if row.kind == FindingKind.ROLE_LONG_SESSION:
        elements.append(ButtonElement(
            text=f"Cap at {format_duration(cap)}", action_id=ActionId.FINDING_CAP_SESSION,
            value=value, style="primary",
            confirm=confirm(f"Cap sessions at {format_duration(cap)}?",
                            f"New sessions of {_user(row, code=False)} last at most "
                            f"{format_duration(cap)}; sessions already started keep theirs.",
                            "Cap", "Cancel")))
    if row.kind in KEY_KINDS and row.key_id:
        elements.append(ButtonElement(
            text="Deactivate now", action_id=ActionId.FINDING_DEACTIVATE, value=value,
            style="danger",
            confirm=confirm("Deactivate this key?",
                            f"{_key_name(row)} of {_user(row, code=False)} stops working at "
                            "once. It is not deleted: it can be re-activated.",
                            "Deactivate", "Cancel")))
    if not row.fixing_by:
        elements.append(ButtonElement(text="I'll fix it", action_id=ActionId.FINDING_FIX,
                                      value=value))
    elements.append(ButtonElement(text=f"Snooze {format_duration(snooze)}",
                                  action_id=ActionId.FINDING_SNOOZE, value=value))
    return ActionsBlock(block_id=f"finding-{row.id}", elements=elements)


def findings_digest(rows: list[CredentialFinding], now: datetime, snooze: timedelta,
                    to_channel: bool = False, cap: timedelta = timedelta(hours=1)) -> Message:
    """The owner's message: every finding, its status, and buttons while it is open.
    A channel gets it for service users nobody owns by name, and for the root account."""
    cards = _cards(rows)
    open_count = sum(row.status is FindingStatus.OPEN for row, *_ in cards)
    text = (f":key: {open_count} stale credential finding(s) need you" if open_count
            else ":white_check_mark: Everything in this message is resolved. Thank you!")
    intro = ("These credentials belong to no one by name (service users, the root account), "
             "so this channel owns them. Anyone here may act on them:" if to_channel else
             "These credentials are yours; please fix them (or tell us when you will):")
    read = "the IAM credential report"
    if any(row.kind in ROLE_KINDS for row in rows):  # roles: what they are, who owns them
        read += " and the IAM roles"
        intro = intro.replace("These credentials", "These credentials and roles").replace(
            "(service users, the root account)", "(service users, untagged roles, the root "
            "account)")
    blocks: list[Block] = [
        header("Stale AWS credentials"),
        section(f"accessbot reads {read} regularly. {intro}"),
    ]
    for row, *also in cards:
        blocks.append(section(finding_line(row, now, also)))
        status = _status(row, now)
        if status:
            blocks.append(context(status))
        if row.status is FindingStatus.OPEN and not _snoozed(row, now):
            blocks.append(_buttons(row, snooze, cap))
    return message(text, blocks)  # at most 15 findings (the runner's PER_MESSAGE): 47 blocks


def findings_superseded() -> Message:
    text = (":arrow_down: These findings are listed in a newer reminder below; act on them "
            "there.")
    return message(text, [context(text)])


def findings_resolved(rows: list[CredentialFinding]) -> Message:
    items = "\n".join(f"• {_title(r.kind)}: "
                      f"{_key_name(r) + ' of ' if r.kind in KEY_KINDS else ''}"
                      f"{_user(r)}" for r in rows)
    text = f":tada: Thank you! These are fixed:\n{items}"
    return message(text, [section(text)])


ESCALATED_LINES = 45  # within Slack's 50 blocks


def findings_escalated(rows: list[CredentialFinding], now: datetime) -> Message:
    text = f":rotating_light: {len(rows)} stale credential finding(s) still open"
    blocks: list[Block] = [section(f"*{text}* after the owners were reminded. "
                                   "Please follow up:")]
    for row in rows[:ESCALATED_LINES]:
        owner = mention(row.owner) if row.owner and not is_channel(row.owner) else "no owner"
        times = snoozes(row)
        blocks.append(section(
            f"{finding_line(row, now)}\nOwner: {owner} · " + (f"{times}, " if times else "")
            + f"open {_age(row.first_seen_at, now)}"))
    if len(rows) > ESCALATED_LINES:  # one message, whatever the count
        blocks.append(context(f"And {len(rows) - ESCALATED_LINES:,} more: "
                              "`accessbot audit --since 1d` names every one."))
    return message(text, blocks)


def key_final_warning(row: CredentialFinding, when: datetime, snooze: timedelta) -> Message:
    text = (f":warning: accessbot will *deactivate* {_key_name(row)} of "
            f"{_user(row)} at "
            f"{slack_time(when)} unless it is fixed before then "
            f"({_title(row.kind).lower()}). It will not be deleted.")
    return message(text, [section(text), _buttons(row, snooze)])


def findings_summary(summary: Summary, now: datetime) -> Message:
    total = sum(summary.open_by_kind.values())
    before = sum(summary.open_last_week_by_kind.values())
    trend = "no change" if total == before else f"{total - before:+d}"
    text = f":bar_chart: Credential hygiene this week: {total} open ({trend} on last week)"
    kinds = sorted(set(summary.open_by_kind) | set(summary.open_last_week_by_kind))
    rows = "\n".join(
        f"• {_title(k)}: {summary.open_by_kind.get(k, 0)} "
        f"(last week {summary.open_last_week_by_kind.get(k, 0)})" for k in kinds) or "• none"
    oldest = summary.oldest
    oldest_text = (f"Oldest open: {_title(oldest.kind).lower()} of "
                   f"{_user(oldest)}, open {_age(oldest.first_seen_at, now)}"
                   if oldest else "Nothing open.")
    body = (f"*{text}*\nNew: {summary.new} · resolved: {summary.resolved}\n{rows}\n"
            f"{oldest_text}")
    return message(text, [section(body)])


PREVIEW_OWNERS, PREVIEW_LINES = 20, 5  # within Slack's 50 blocks and 3,000 characters


def findings_preview(by_owner: dict[str, list[CredentialFinding]], now: datetime) -> Message:
    """Report mode: who notify mode would tell, and what. Owners are shown as ids in code,
    not as mentions: a mention would notify them, and report mode tells nobody."""
    total = sum(len(rows) for rows in by_owner.values())
    text = (f":mag: Credential hygiene (report mode): {total} finding(s) would be sent to "
            f"{len(by_owner)} owner(s). Nobody was messaged.")
    body: list[Block] = [section(f"*{text}*")]
    owners = sorted(by_owner.items(), key=lambda item: (-len(item[1]), item[0]))
    for owner, rows in owners[:PREVIEW_OWNERS]:
        lines = [f"• {_title(r.kind)}: {_user(r)}, open {_age(r.first_seen_at, now)}"
                 for r in rows[:PREVIEW_LINES]]
        if len(rows) > PREVIEW_LINES:
            lines.append(f"• and {len(rows) - PREVIEW_LINES} more")
        where = "channel" if is_channel(owner) else "user"
        body.append(section(f"To {where} `{escape(owner)}` ({len(rows)}):\n" + "\n".join(lines)))
    if len(owners) > PREVIEW_OWNERS:
        rest = owners[PREVIEW_OWNERS:]
        body.append(context(f"And {len(rest)} more owner(s), "
                            f"{sum(len(rows) for _, rows in rest)} finding(s)."))
    body.append(context("Set `hygiene.mode: notify` to send these to their owners."))
    return message(text, body)


def account_audit(deviations: list[Deviation], account: str = "") -> Message:
    """The audit of one account ("": the bot's own)."""
    audit = f"Account audit of {account}" if account else "Account audit"
    if not deviations:
        text = f":white_check_mark: {audit}: no deviations from the baseline."
        return message(text, [section(text)])
    text = f":clipboard: {audit}: {len(deviations)} deviation(s)"
    titles = {"password_policy": "Password policy", "administrators": "Administrators",
              "unmanaged_member": "Group members without an accessbot grant"}
    blocks: list[Block] = [section(f"*{text}*")]
    for check, title in titles.items():
        found = [escape(d.detail) for d in deviations if d.check == check]
        if found:
            lines = "\n".join(f"• {line}" for line in found[:40])
            blocks.append(section(f"*{title}*\n{lines}"))
    return message(text, blocks)


LIST_OLDEST = 10


def findings_list(rows: list[CredentialFinding], now: datetime) -> tuple[str, str]:
    """Many findings for one channel: a summary (counts by kind, the oldest) for the message,
    and every finding as CSV, for the file beside it."""
    users = len({(row.account, row.iam_user) for row in rows})
    kinds: dict[str, int] = {}
    for row in rows:
        kinds[row.kind] = kinds.get(row.kind, 0) + 1
    by_kind = "\n".join(f"• {_title(kind)}: {count:,}" for kind, count in
                        sorted(kinds.items(), key=lambda item: (-item[1], item[0])))
    oldest = sorted(rows, key=lambda r: (r.first_seen_at, r.since or r.first_seen_at, r.id))
    lines = "\n".join(f"• {_title(r.kind)}: {_user(r)}, "
                      f"{_facts(r, FindingKind(r.kind), now)}" for r in oldest[:LIST_OLDEST])
    comment = (f":key: *{len(rows):,} stale credential findings for {users:,} IAM users* that "
               "belong to no one by name (no `slack-user-id`, `email` or `owner` tag), so this "
               f"channel owns them.\n{by_kind}\n\n*The oldest:*\n{lines}\n\nEvery finding is in "
               "the attached CSV. Tag a user `owner` (a Slack user, channel or email) to send "
               "its findings there, with buttons; `hygiene.exclude` leaves it alone.")
    return comment, _csv(rows)


def _csv(rows: list[CredentialFinding]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["account", "iam_user", "finding", "credential", "open_since",
                     "last_used", "last_used_where", "key_id"])
    for row in sorted(rows, key=lambda r: (r.account, r.iam_user, r.kind, r.id)):
        credential = (f"access key {row.key_slot or ''} created {row.key_created:%Y-%m-%d}"
                      .replace("  ", " ") if row.kind in KEY_KINDS and row.key_created else "")
        writer.writerow([row.account or "own", cell(row.iam_user), _title(row.kind),
                         credential,
                         f"{row.first_seen_at:%Y-%m-%d}",
                         f"{row.last_used:%Y-%m-%d %H:%M}" if row.last_used else "never",
                         cell(row.last_used_where or ""), row.key_id or ""])
    return out.getvalue()


def _user(row: CredentialFinding, code: bool = True) -> str:
    """The finding's IAM user, with its account when that is not the bot's own."""
    name = f"`{escape(row.iam_user)}`" if code else escape(row.iam_user)
    if row.kind in ROLE_KINDS:
        name = f"role {name}"
    return f"{name} in account {row.account}" if row.account else name
