"""Block Kit for break-glass: the confirmation (a second modal step, or the command's
ephemeral button with a confirm dialog), the loud copy with its review, the reminder, the
escalation and the review's note form. What people typed is escaped here, once."""

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    InputBlock,
    PlainTextInputElement,
)
from slack_sdk.models.views import View

from accessbot.handlers.blocks import (
    Message,
    confirm,
    context,
    header,
    message,
    quoted,
    section,
    slack_time,
)
from accessbot.handlers.ids import ActionId, BlockId, ViewId
from accessbot.handlers.mrkdwn import escape, mention
from accessbot.models import AccessRequest, BreakGlassReview
from accessbot.services.catalog import Resource
from accessbot.services.commands import MAX_REASON, BreakGlass
from accessbot.services.durations import format_duration

ALERTS = ("This alerts security at once: the approval channel, every approver and the "
          "admin channel are told, with your reason, and an approver must review it.")


def _cut_note(glass: BreakGlass) -> str:
    if not glass.cut:
        return ""
    return (f" You asked for {format_duration(glass.asked)}; break-glass on "
            f"{escape(glass.draft.resource.name)} lasts at most "
            f"{format_duration(glass.draft.duration)}.")


def _asking(glass: BreakGlass) -> str:
    return (f"*{escape(glass.draft.resource.name)}* for "
            f"*{format_duration(glass.draft.duration)}*, without approval.")


# -- asking, and confirming ---------------------------------------------------------------

def confirm_form(glass: BreakGlass, packed: str) -> dict:
    """The form's second step: are you sure? (a modal submit has no confirm object)."""
    return View(
        type="modal", callback_id=ViewId.BREAK_GLASS_FORM, title="Break glass?",
        submit="Break glass now", close="Cancel", private_metadata=packed,
        blocks=[
            section(f":rotating_light: You are about to grant yourself {_asking(glass)}"
                    + _cut_note(glass)),
            section(f"*{ALERTS}*"),
            section(f"*Your reason*\n{quoted(glass.draft.reason)}"),
        ],
    ).to_dict()


def confirm_message(glass: BreakGlass, packed: str) -> Message:
    """The command's answer: one button, behind Slack's confirm dialog."""
    text = (f":rotating_light: Break glass on {_asking(glass)}" + _cut_note(glass)
            + f"\n{ALERTS}")
    return message(text, [
        section(text),
        section(f"*Your reason*\n{quoted(glass.draft.reason)}"),
        ActionsBlock(block_id=BlockId.BREAK_GLASS, elements=[ButtonElement(
            text="Break glass now", action_id=ActionId.BREAK_GLASS_NOW, value=packed,
            style="danger",
            confirm=confirm("Alert security and grant it now?", ALERTS, "Break glass now",
                            "Cancel"))]),
    ])


# -- the loud copy, in every state of its review -------------------------------------------

def break_glass_message(request: AccessRequest, resource: Resource | None) -> Message:
    """The copy of a break-glass (approval channel, each approver, the admin channel)."""
    review = request.break_glass_review
    name = escape(request.resource)
    duration = format_duration(request.duration)
    title = f"Break-glass #{request.id}: {request.resource}"
    when = slack_time(request.decided_at or request.created_at)
    blocks: list[Block] = [
        header(f"\N{POLICE CARS REVOLVING LIGHT} {title}"),
        section(f":rotating_light: {mention(request.requester_id)} *broke the glass*: "
                f"*{name}* for *{duration}*, granted at once without approval at {when}."
                + (f"\n`{escape(resource.target)}`" if resource else "")),
        section(f"*Reason*\n{quoted(request.reason)}"),
    ]
    blocks += review_blocks(review)
    state = "reviewed" if review is not None and review.reviewed_at else "review pending"
    text = (f"Break-glass #{request.id}: {escape(request.requester_id)} granted themselves "
            f"{name} for {duration} ({state}). Reason: {escape(request.reason)}")
    return message(text, blocks)


def review_blocks(review: BreakGlassReview | None) -> list[Block]:
    if review is None:
        return [context("Being put in place...")]
    if review.reviewed_at is not None:
        return [section(review_text(review))]
    due = f"An approver must review it by {slack_time(review.due_at)}."
    if review.escalated_at is not None:
        due = (f":warning: Not reviewed by {slack_time(review.due_at)}; the admins were told. "
               "An approver must still review it.")
    return [
        ActionsBlock(block_id=BlockId.BREAK_GLASS_REVIEW, elements=[ButtonElement(
            text="Reviewed", action_id=ActionId.BREAK_GLASS_REVIEWED, value=str(review.id),
            style="primary")]),
        context(due + " The requester cannot review their own break-glass."),
    ]


def review_text(review: BreakGlassReview) -> str:
    """How the review stands, in one line (the copy's status, and its thread reply)."""
    if review.reviewed_at is None:
        return f":hourglass: Review due by {slack_time(review.due_at)}"
    return (f":white_check_mark: *Reviewed* by {mention(review.reviewed_by)} at "
            f"{slack_time(review.reviewed_at)}\n{quoted(review.note or '')}")


def reminder(review: BreakGlassReview) -> Message:
    """To an approver, half way to the due time."""
    request = review.request
    text = (f":alarm_clock: Break-glass #{request.id}: {mention(request.requester_id)} "
            f"granted themselves *{escape(request.resource)}* at "
            f"{slack_time(review.opened_at)}. Please review it by "
            f"{slack_time(review.due_at)}.")
    return message(text, [section(text), section(f"*Reason*\n{quoted(request.reason)}"),
                          *review_blocks(review)])


def escalated(review: BreakGlassReview, approvers: list[str]) -> Message:
    """To the admin channel, once, when nobody reviewed it in time."""
    request = review.request
    text = (f":rotating_light: Break-glass #{request.id} was *not reviewed* by "
            f"{slack_time(review.due_at)}: {mention(request.requester_id)} granted themselves "
            f"*{escape(request.resource)}* at {slack_time(review.opened_at)}. Approvers: "
            + (", ".join(mention(a) for a in approvers) or "none"))
    return message(text, [section(text), section(f"*Reason*\n{quoted(request.reason)}"),
                          *review_blocks(review)])


def review_form(review: BreakGlassReview) -> dict:
    """Reviewed: the note, in a modal; private_metadata carries the review id."""
    request = review.request
    return View(
        type="modal", callback_id=ViewId.BREAK_GLASS_REVIEW_FORM, title="Review break-glass",
        submit="Reviewed", close="Cancel", private_metadata=str(review.id),
        blocks=[
            section(f"Break-glass #{request.id}: {mention(request.requester_id)} on "
                    f"*{escape(request.resource)}* at {slack_time(review.opened_at)}."),
            section(f"*Reason*\n{quoted(request.reason)}"),
            InputBlock(block_id=BlockId.BREAK_GLASS_NOTE, label="What did you check?",
                       element=PlainTextInputElement(
                           action_id=ActionId.BREAK_GLASS_NOTE_INPUT, multiline=True,
                           max_length=MAX_REASON,
                           placeholder="Justified: incident 42, the change is reverted")),
        ],
    ).to_dict()
