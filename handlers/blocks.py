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


def _md(text: str) -> MarkdownTextObject:
    return MarkdownTextObject(text=text)


def _dump(blocks: list[Block]) -> list[dict]:
    return [block.to_dict() for block in blocks]


_REQUEST_STATUS = {
    RequestStatus.APPROVED: ":white_check_mark: *Approved* by <@{who}> at {when}",
    RequestStatus.DENIED: ":no_entry: *Denied* by <@{who}> at {when}",
    RequestStatus.EXPIRED: ":hourglass: *Expired* at {when}: nobody decided in time",
    RequestStatus.FAILED: ":x: *Not submitted*: {reason}",
}


def request_message(request: AccessRequest, resource: Resource | None) -> Message:
    """The approvers' copy of a request, for every status; buttons only while pending."""
    summary = (f"<@{request.requester_id}> requests *{request.resource}* for "
               f"*{format_duration(request.duration)}*")
    blocks: list[Block] = [
        HeaderBlock(text=PlainTextObject(text=f"Access request #{request.id}")),
        SectionBlock(text=_md(summary), fields=[
            _md(f"*Resource*\n{request.resource}"
                + (f"\n_{resource.description}_" if resource and resource.description else "")),
            _md(f"*Duration*\n{format_duration(request.duration)}"),
            _md(f"*Requester*\n<@{request.requester_id}>"
                + (f" (IAM user `{request.iam_user}`)" if request.iam_user else "")),
            _md(f"*Requested*\n{slack_time(request.created_at)}"),
        ]),
        SectionBlock(text=_md(f"*Reason*\n>{request.reason}")),
    ]
    if request.status is RequestStatus.PENDING:
        blocks.append(ActionsBlock(block_id=BlockId.DECISION, elements=[
            ButtonElement(text="Approve", action_id=ActionId.APPROVE, value=str(request.id),
                          style="primary"),
            ButtonElement(text="Deny", action_id=ActionId.DENY, value=str(request.id),
                          style="danger"),
        ]))
        blocks.append(ContextBlock(elements=[_md(
            f"Undecided requests expire at {slack_time(request.decide_by)}. "
            "The requester cannot approve their own request.")]))
        status_text = "waiting for approval"
    else:
        blocks.append(SectionBlock(text=_md(decision_text(request))))
        status_text = request.status.value.lower()
    text = (f"Access request #{request.id}: {request.requester_id} requests {request.resource} "
            f"for {format_duration(request.duration)} ({status_text})")
    return text, _dump(blocks)


def decision_text(request: AccessRequest) -> str:
    """One line saying how a request was settled: the status line and the thread reply."""
    line = _REQUEST_STATUS[request.status].format(
        who=request.decided_by, when=slack_time(request.decided_at or request.created_at),
        reason=request.decision_reason or "")
    if request.status is RequestStatus.DENIED and request.decision_reason:
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
    return (f":hourglass_flowing_sand: Request #{request.id} for *{request.resource}* "
            f"({format_duration(request.duration)}) is waiting for "
            f"{approvers}. I'll message you here when it is decided.")


def request_outcome(request: AccessRequest) -> Message:
    """The requester's DM after a denial, an expiry or a failure to submit."""
    if request.status is RequestStatus.DENIED:
        text = (f":no_entry: Your request #{request.id} for *{request.resource}* was denied "
                f"by <@{request.decided_by}>.")
        if request.decision_reason:
            text += f"\n>{request.decision_reason}"
    elif request.status is RequestStatus.EXPIRED:
        text = (f":hourglass: Your request #{request.id} for *{request.resource}* expired: "
                "nobody decided in time. Ask again if you still need it.")
    else:
        text = (f":x: Your request #{request.id} for *{request.resource}* could not be "
                f"submitted: {request.decision_reason}")
    return text, _dump([SectionBlock(text=_md(text))])


def grant_message(grant: Grant) -> Message:
    """The requester's DM about their access, for every status of the grant."""
    if grant.status is GrantStatus.ACTIVE:
        text = (f":white_check_mark: You have *{grant.resource}* until "
                f"{slack_time(grant.expires_at)} (IAM user `{grant.iam_user}`).")
        if grant.role_arn:
            text += (f"\nAssume the role `{grant.role_arn}` with a session name equal to "
                     "your IAM user name; IAM itself refuses after the expiry time.")
        blocks: list[Block] = [
            SectionBlock(text=_md(text)),
            ActionsBlock(block_id=BlockId.GRANT_ACTIONS, elements=[ButtonElement(
                text="I'm done, revoke now", action_id=ActionId.END_GRANT, value=str(grant.id),
                confirm=ConfirmObject(title="End your access now?",
                                      text=f"This removes {grant.resource} at once.",
                                      confirm="Revoke now", deny="Keep it")),
            ]),
        ]
    elif grant.status is GrantStatus.REVOKED:
        text = (f":lock: Your access to *{grant.resource}* ended at "
                f"{slack_time(grant.revoked_at or grant.expires_at)} ({grant.end_reason}).")
        blocks = [SectionBlock(text=_md(text))]
    elif grant.status is GrantStatus.FAILED:
        text = (f":x: Your access to *{grant.resource}* could not be put in place: "
                f"{grant.last_error or grant.end_reason}. The admins have been told.")
        blocks = [SectionBlock(text=_md(text))]
    else:
        text = f":hourglass_flowing_sand: Approved; putting *{grant.resource}* in place..."
        blocks = [SectionBlock(text=_md(text))]
    return text, _dump(blocks)


def expiry_warning(grant: Grant, now: datetime) -> Message:
    left = format_duration(grant.expires_at - now)
    text = (f":alarm_clock: Your access to *{grant.resource}* ends in about {left}, at "
            f"{slack_time(grant.expires_at)}. Request it again if you need more time.")
    return text, _dump([SectionBlock(text=_md(text))])


def help_message(resources: list[Resource]) -> Message:
    if not resources:
        text = "There is nothing you may request yet. Ask your platform team."
        return text, _dump([SectionBlock(text=_md(text))])
    blocks: list[Block] = [SectionBlock(text=_md("*Resources you may request*"))]
    for resource in sorted(resources, key=lambda r: r.name):
        approvers = ", ".join(f"<@{a}>" for a in resource.approvers)
        blocks.append(SectionBlock(text=_md(
            f"*{resource.name}* ({resource.kind.value}: `{resource.target}`)\n"
            + (f"{resource.description}\n" if resource.description else "")
            + f"Duration: {resource.limits_text()}. Approvers: {approvers}")))
    blocks.append(ContextBlock(elements=[_md(USAGE)]))
    text = "Resources you may request: " + ", ".join(r.name for r in resources)
    return text, _dump(blocks)


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
            SectionBlock(text=_md(f"Deny request #{request.id}: <@{request.requester_id}> "
                                  f"for *{request.resource}*?")),
            InputBlock(block_id=BlockId.DENY_REASON, label="Reason (optional)", optional=True,
                       element=PlainTextInputElement(action_id=ActionId.DENY_REASON_INPUT,
                                                     multiline=True, max_length=MAX_REASON)),
        ],
    ).to_dict()
