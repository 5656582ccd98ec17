"""Block Kit builders. One builder per message, rendering every status of its subject."""

from datetime import datetime

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    HeaderBlock,
    InputBlock,
    MarkdownTextObject,
    Option,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
    StaticSelectElement,
)
from slack_sdk.models.views import View

from handlers.ids import ActionId, BlockId, ViewId
from models import AccessRequest, Grant, GrantStatus, RequestStatus
from services.catalog import Catalog, Resource
from services.commands import MAX_REASON, USAGE, Draft
from services.durations import format_duration

Message = tuple[str, list[dict]]  # (fallback text, blocks)


def slack_time(value: datetime) -> str:
    """A time every reader sees in their own time zone, with a UTC fallback."""
    fallback = value.strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"<!date^{int(value.timestamp())}^{{date_short_pretty}} {{time_secs}}|{fallback}>"


def md(text: str) -> MarkdownTextObject:
    return MarkdownTextObject(text=text)


def dump(blocks: list[Block]) -> list[dict]:
    return [block.to_dict() for block in blocks]


_REQUEST_STATUS = {
    RequestStatus.APPROVED: ":white_check_mark: *Approved* by <@{who}> at {when}",
    RequestStatus.DENIED: ":no_entry: *Denied* by <@{who}> at {when}",
    RequestStatus.EXPIRED: ":hourglass: *Expired* at {when}: nobody decided in time",
    RequestStatus.FAILED: ":x: *Not submitted*: {reason}",
}


def request_message(request: AccessRequest, resource: Resource | None) -> Message:
    """The approvers' copy of a request, for every status; buttons only while pending."""
    extension = request.extends_grant_id is not None
    title = f"{'Extension' if extension else 'Access'} request #{request.id}"
    duration = format_duration(request.duration)
    asked = f"*{duration} more* on *{request.resource}*" if extension \
        else f"*{request.resource}* for *{duration}*"
    blocks: list[Block] = [
        HeaderBlock(text=PlainTextObject(text=title)),
        SectionBlock(text=md(f"<@{request.requester_id}> {_asks(request)} {asked}"), fields=[
            md(f"*Resource*\n{request.resource}"
                + (f"\n_{resource.description}_" if resource and resource.description else "")),
            md(f"*{'More time' if extension else 'Duration'}*\n{duration}"),
            md(f"*Requester*\n<@{request.requester_id}>"
                + (f" (IAM user `{request.iam_user}`)" if request.iam_user else "")),
            md(f"*Requested*\n{slack_time(request.created_at)}"),
        ]),
    ]
    if extension:
        blocks.append(SectionBlock(text=md(_extension_text(request, slack_time))))
    blocks.append(SectionBlock(text=md(f"*Reason*\n>{request.reason}")))
    if request.status is RequestStatus.PENDING:
        blocks.append(ActionsBlock(block_id=BlockId.DECISION, elements=[
            ButtonElement(text="Approve", action_id=ActionId.APPROVE, value=str(request.id),
                          style="primary"),
            ButtonElement(text="Deny", action_id=ActionId.DENY, value=str(request.id),
                          style="danger"),
        ]))
        blocks.append(ContextBlock(elements=[md(
            f"Undecided requests expire at {slack_time(request.decide_by)}. "
            "The requester cannot approve their own request.")]))
        status_text = "waiting for approval"
    else:
        blocks.append(SectionBlock(text=md(decision_text(request))))
        status_text = request.status.value.lower()
    text = (f"{title}: {request.requester_id} {_asks(request)} {asked.replace('*', '')}"
            + (f"; {_extension_text(request, _utc)}" if extension else "")
            + f" ({status_text})")
    return text, dump(blocks)


def _asks(request: AccessRequest) -> str:
    return "asks for" if request.extends_grant_id is not None else "requests"


def _extension_text(request: AccessRequest, show_time) -> str:
    """Which grant an extension is for, and until when that access runs now."""
    line = f"extension of grant #{request.extends_grant_id}"
    grant = request.extended_grant
    if grant is None:
        return line
    if grant.status in (GrantStatus.PENDING, GrantStatus.ACTIVE):
        return f"{line}: access currently runs until {show_time(grant.expires_at)}"
    return f"{line}, which has ended ({show_time(grant.revoked_at or grant.expires_at)})"


def _utc(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


def decision_text(request: AccessRequest) -> str:
    """One line saying how a request was settled: the status line and the thread reply."""
    line = _REQUEST_STATUS[request.status].format(
        who=request.decided_by, when=slack_time(request.decided_at or request.created_at),
        reason=request.decision_reason or "")
    if request.status in (RequestStatus.DENIED, RequestStatus.APPROVED) \
            and request.decision_reason:  # a denial's reason; a capped extension's note
        line += f"\n>{request.decision_reason}"
    return line


def received_text(draft: Draft) -> str:
    """The slash command's immediate answer, before anything is recorded."""
    return (f":inbox_tray: Got it: *{draft.resource.name}* for "
            f"{format_duration(draft.duration)}. I'll DM you the request number once it "
            "is with the approvers.")


def submitted_text(request: AccessRequest, resource: Resource) -> str:
    """The requester's DM once every approver has the request."""
    approvers = ", ".join(f"<@{a}>" for a in resource.approvers if a != request.requester_id)
    duration = format_duration(request.duration)
    asked = f"{duration} more on *{request.resource}*" if request.extends_grant_id is not None \
        else f"*{request.resource}* ({duration})"
    return (f":hourglass_flowing_sand: Request #{request.id} for {asked} is waiting for "
            f"{approvers}. I'll message you here when it is decided.")


def _subject(request: AccessRequest) -> str:
    return f"*{request.resource}*" if request.extends_grant_id is None \
        else f"more time on *{request.resource}*"


def request_failed(request: AccessRequest, why: str) -> Message:
    """The requester's DM when the bot could not submit their request."""
    text = (f":x: Your request #{request.id} for {_subject(request)} could not be "
            f"submitted: {why}")
    return text, dump([SectionBlock(text=md(text))])


def request_outcome(request: AccessRequest) -> Message:
    """The requester's DM after a denial or an expiry."""
    subject = _subject(request)
    if request.status is RequestStatus.DENIED:
        text = (f":no_entry: Your request #{request.id} for {subject} was denied "
                f"by <@{request.decided_by}>.")
        if request.decision_reason:
            text += f"\n>{request.decision_reason}"
    else:
        text = (f":hourglass: Your request #{request.id} for {subject} expired: "
                "nobody decided in time. Ask again if you still need it.")
    return text, dump([SectionBlock(text=md(text))])


def grant_message(grant: Grant) -> Message:
    """The requester's DM about their access, for every status of the grant."""
    if grant.status is GrantStatus.ACTIVE:
        text = (f":white_check_mark: You have *{grant.resource}* until "
                f"{slack_time(grant.expires_at)} (IAM user `{grant.iam_user}`).")
        if grant.role_arn:
            text += (f"\nAssume the role `{grant.role_arn}` with a session name equal to "
                     "your IAM user name; IAM itself refuses after the expiry time.")
        blocks: list[Block] = [
            SectionBlock(text=md(text)),
            ActionsBlock(block_id=BlockId.GRANT_ACTIONS, elements=[
                ButtonElement(
                    text="I'm done, revoke now", action_id=ActionId.END_GRANT,
                    value=str(grant.id),
                    confirm=ConfirmObject(title="End your access now?",
                                          text=f"This removes {grant.resource} at once.",
                                          confirm="Revoke now", deny="Keep it")),
                _more_time_button(grant),
            ]),
        ]
    elif grant.status is GrantStatus.REVOKED:
        text = (f":lock: Your access to *{grant.resource}* ended at "
                f"{slack_time(grant.revoked_at or grant.expires_at)} ({grant.end_reason}).")
        blocks = [SectionBlock(text=md(text))]
    elif grant.status is GrantStatus.FAILED:
        text = (f":x: Your access to *{grant.resource}* could not be put in place: "
                f"{grant.last_error or grant.end_reason}. The admins have been told.")
        blocks = [SectionBlock(text=md(text))]
    else:
        text = f":hourglass_flowing_sand: Approved; putting *{grant.resource}* in place..."
        blocks = [SectionBlock(text=md(text))]
    return text, dump(blocks)


def _more_time_button(grant: Grant) -> ButtonElement:
    return ButtonElement(text="Ask for more time", action_id=ActionId.EXTEND_GRANT,
                         value=str(grant.id))


def extension_granted(grant: Grant, request: AccessRequest) -> Message:
    """The requester's DM once an extension is approved and in place."""
    text = (f":alarm_clock: <@{request.decided_by}> approved request #{request.id}: you now "
            f"have *{grant.resource}* until {slack_time(grant.expires_at)}.")
    if request.decision_reason:  # capped at the resource's max_duration
        text += f"\n>{request.decision_reason}"
    return text, dump([SectionBlock(text=md(text))])


def expiry_warning(grant: Grant, now: datetime) -> Message:
    left = format_duration(grant.expires_at - now)
    text = (f":alarm_clock: Your access to *{grant.resource}* ends in about {left}, at "
            f"{slack_time(grant.expires_at)}. Need longer? Ask for more time.")
    return text, dump([SectionBlock(text=md(text)), ActionsBlock(
        block_id=BlockId.GRANT_ACTIONS, elements=[_more_time_button(grant)])])


def help_message(resources: list[Resource]) -> Message:
    if not resources:
        text = "There is nothing you may request yet. Ask your platform team."
        return text, dump([SectionBlock(text=md(text))])
    blocks: list[Block] = [SectionBlock(text=md("*Resources you may request*"))]
    for resource in sorted(resources, key=lambda r: r.name):
        approvers = ", ".join(f"<@{a}>" for a in resource.approvers)
        blocks.append(SectionBlock(text=md(
            f"*{resource.name}* ({resource.kind.value}: `{resource.target}`)\n"
            + (f"{resource.description}\n" if resource.description else "")
            + f"Duration: {resource.limits_text()}. Approvers: {approvers}")))
    blocks.append(ContextBlock(elements=[md(USAGE)]))
    text = "Resources you may request: " + ", ".join(r.name for r in resources)
    return text, dump(blocks)


def request_form(catalog: Catalog, user_id: str) -> dict:
    resources = sorted(catalog.requestable_by(user_id), key=lambda r: r.name)
    options = [Option(value=r.name, label=r.name[:75],
                      description=(r.description or r.kind.value)[:75]) for r in resources]
    return View(
        type="modal", callback_id=ViewId.REQUEST_FORM, title="Request AWS access",
        submit="Request", close="Cancel",
        blocks=[
            InputBlock(block_id=BlockId.RESOURCE, label="Resource",
                       element=StaticSelectElement(action_id=ActionId.RESOURCE_SELECT,
                                                   placeholder="Choose what you need",
                                                   options=options)),
            InputBlock(block_id=BlockId.DURATION, label="Duration", optional=True,
                       hint="Like 30m, 2h or 1d. Empty: the resource's default.",
                       element=PlainTextInputElement(action_id=ActionId.DURATION_INPUT,
                                                     placeholder="1h", max_length=20)),
            InputBlock(block_id=BlockId.REASON, label="Reason",
                       element=PlainTextInputElement(action_id=ActionId.REASON_INPUT,
                                                     multiline=True, max_length=MAX_REASON,
                                                     placeholder="What will you do with it?")),
        ],
    ).to_dict()


def deny_form(request: AccessRequest) -> dict:
    return View(
        type="modal", callback_id=ViewId.DENY_FORM, title="Deny request",
        submit="Deny", close="Cancel", private_metadata=str(request.id),
        blocks=[
            SectionBlock(text=md(f"Deny request #{request.id}: <@{request.requester_id}> "
                                  f"for *{request.resource}*?")),
            InputBlock(block_id=BlockId.DENY_REASON, label="Reason (optional)", optional=True,
                       element=PlainTextInputElement(action_id=ActionId.DENY_REASON_INPUT,
                                                     multiline=True, max_length=MAX_REASON)),
        ],
    ).to_dict()


def extend_form(grant: Grant, resource: Resource) -> dict:
    """The "Ask for more time" modal; private_metadata carries the grant id."""
    approvers = ", ".join(f"<@{a}>" for a in resource.approvers if a != grant.requester_id)
    return View(
        type="modal", callback_id=ViewId.EXTEND_FORM, title="Ask for more time",
        submit="Ask", close="Cancel", private_metadata=str(grant.id),
        blocks=[
            SectionBlock(text=md(f"You have *{grant.resource}* until "
                                  f"{slack_time(grant.expires_at)}. {approvers} will be asked "
                                  "to approve more time.")),
            InputBlock(block_id=BlockId.DURATION, label="More time", optional=True,
                       hint=f"Like 30m or 2h ({resource.limits_text()}). The access never "
                            f"runs longer than {format_duration(resource.max_duration)} "
                            "past the approval.",
                       element=PlainTextInputElement(
                           action_id=ActionId.DURATION_INPUT, max_length=20,
                           placeholder=format_duration(resource.default_duration))),
            InputBlock(block_id=BlockId.REASON, label="Reason",
                       element=PlainTextInputElement(action_id=ActionId.REASON_INPUT,
                                                     multiline=True, max_length=MAX_REASON,
                                                     placeholder="Why do you need longer?")),
        ],
    ).to_dict()
