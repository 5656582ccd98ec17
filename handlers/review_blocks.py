"""Block Kit builders for the access review: a target's rows with Keep / Remove (every
status of every row, so that each copy updates in place), the escalation and the outcome."""

from collections.abc import Sequence

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
from accessbot.handlers.mrkdwn import escape, mention
from accessbot.models import ReviewItem, ReviewStatus
from accessbot.services.audit import SYSTEM
from accessbot.services.reviews import REMOVABLE, PrincipalKind, TargetKind, target_name

_STATUS = {
    ReviewStatus.KEPT: ":white_check_mark: Kept by {who} {when}",
    ReviewStatus.REMOVED: ":wastebasket: Removed by {who} {when}",
    ReviewStatus.GONE: ":ghost: Gone: {detail} ({when})",
    ReviewStatus.UNANSWERED: ":hourglass: Nobody decided before the review closed; the next "
                             "review asks again",
}
_WHY = {
    TargetKind.IAM_GROUP: "These IAM users are members of the group without a live "
                          "accessbot grant.",
    TargetKind.IAM_ROLE: "The role's trust policy lets these principals assume it, outside "
                         "any accessbot grant.",
    TargetKind.SSO_PERMISSION_SET: "These Identity Center users are assigned the permission "
                                   "set without a live accessbot grant.",
    TargetKind.SSO_GROUP: "These Identity Center users are members of the group without a "
                          "live accessbot grant.",
    TargetKind.ADMINISTRATORS: "These IAM users hold administrator access through a policy "
                               "on the user itself (not through a group).",
}


def _title(row: ReviewItem) -> str:
    where = f" (account {row.account})" if row.account else ""
    return f"Access review: {target_name(row)}{where}"


def _who(row: ReviewItem) -> str:
    name = f"`{escape(row.principal)}`"
    if row.principal_label and row.principal_label != row.principal:
        name += f" ({escape(row.principal_label)})"
    if row.principal_kind == PrincipalKind.IAM_USER.value:
        return f"IAM user {name}"
    if row.principal_kind == PrincipalKind.SSO_USER.value:
        return f"Identity Center user {name}"
    return name


def row_text(row: ReviewItem) -> str:
    """Who, how, their last activity, what they do not use, and the decision if any."""
    activity = (f"last active {slack_time(row.last_activity)}" if row.last_activity
                else "last active —")
    lines = [f"*{_who(row)}*: {escape(row.how)}", activity]
    if row.unused:
        lines.append(f"_{escape(row.unused)}_")
    if (TargetKind(row.target_kind), PrincipalKind(row.principal_kind)) not in REMOVABLE \
            and row.status is ReviewStatus.OPEN:
        lines.append("_accessbot does not change trust policies: to remove it, take it out "
                     "of the role's trust policy yourself._")
    status = _status(row)
    if status:
        lines.append(status)
    return "\n".join(lines)


def _status(row: ReviewItem) -> str | None:
    if row.status is ReviewStatus.OPEN:
        return None
    if row.status is ReviewStatus.REMOVED and row.detail == "removing":
        return f":hourglass_flowing_sand: {mention(row.decided_by)} chose Remove; removing…"
    who = "accessbot" if row.decided_by in (None, SYSTEM) else mention(row.decided_by)
    when = slack_time(row.decided_at) if row.decided_at else ""
    return _STATUS[row.status].format(who=who, when=when, detail=escape(row.detail or ""))


def _buttons(row: ReviewItem) -> ActionsBlock:
    value = str(row.id)
    elements = [ButtonElement(text="Keep", action_id=ActionId.REVIEW_KEEP, value=value,
                              style="primary")]
    if (TargetKind(row.target_kind), PrincipalKind(row.principal_kind)) in REMOVABLE:
        elements.append(ButtonElement(
            text="Remove", action_id=ActionId.REVIEW_REMOVE, value=value, style="danger",
            confirm=confirm("Remove this access?",
                            f"accessbot checks it is still there, then takes it away: "
                            f"{_who(row)}, {escape(row.how)}.", "Remove", "Cancel")))
    return ActionsBlock(block_id=f"review-{row.id}", elements=elements)


def review_message(rows: Sequence[ReviewItem], reminder: bool = False,
                   escalated: bool = False) -> Message:
    """One target's rows (at most 20): a header, why they are here, the target's note,
    then per row its text and, while it is open, Keep / Remove."""
    first = rows[0]
    open_count = sum(r.status is ReviewStatus.OPEN for r in rows)
    title = _title(first)
    if escalated:
        text = f":rotating_light: {open_count} access review decision(s) still open: {title}"
        intro = ("Nobody has decided about these yet. Anyone in this channel may decide "
                 "now:")
    elif open_count:
        text = (f":mag: {'Reminder: ' if reminder else ''}{title}: keep or remove? "
                f"{open_count} to decide")
        intro = "Keep or remove? You are asked because you approve this access (or own it)."
    else:
        text = f":white_check_mark: {title}: everything here is decided. Thank you!"
        intro = "Everything here is decided."
    blocks: list[Block] = [header(title),
                           section(f"{_WHY[TargetKind(first.target_kind)]} {intro}")]
    if first.target_note:
        blocks.append(context(escape(first.target_note)))
    for row in rows:
        blocks.append(section(row_text(row)))
        if row.status is ReviewStatus.OPEN:
            blocks.append(_buttons(row))
    return message(text, blocks)


def review_gone() -> Message:
    text = "This access review message lists nothing any more."
    return message(text, [context(text)])


def review_outcome(counts: dict[str, int], rows: Sequence[ReviewItem],
                   account: str = "") -> Message:
    """The admins' summary of a closed review: kept, removed, gone, unanswered, and the
    unanswered by name (a few)."""
    where = f" of account {account}" if account else ""
    said = ", ".join(f"{counts.get(k, 0)} {k}" for k in ("kept", "removed", "gone",
                                                       "unanswered"))
    text = f":clipboard: Access review{where} closed: {said}"
    blocks: list[Block] = [section(f"*{text}*")]
    unanswered = [r for r in rows if r.status is ReviewStatus.UNANSWERED]
    if unanswered:
        lines = "\n".join(f"• {_who(r)}: {escape(r.how)}, {escape(target_name(r))}"
                          for r in unanswered[:30])
        more = f"\n• and {len(unanswered) - 30} more" if len(unanswered) > 30 else ""
        blocks.append(section(f"*Unanswered* (the next review asks again):\n{lines}{more}"))
    if not rows:
        blocks.append(context("No standing access was found outside accessbot's grants."))
    return message(text, blocks)
