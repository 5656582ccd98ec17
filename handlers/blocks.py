"""Block Kit builders. One builder per message, rendering every status of its subject.

Text that people typed (reasons), that AWS or the configuration gave (errors,
descriptions) and that services/ wrote goes through handlers/mrkdwn.py on its way in:
escaped once, here, and cut to Block Kit's limits; mentions only of checked ids.
"""

from datetime import datetime, timedelta

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    CheckboxesElement,
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

from accessbot.handlers.ids import ActionId, BlockId, ViewId
from accessbot.handlers.mrkdwn import (
    CONFIRM_TEXT,
    FIELD_TEXT,
    HEADER_TEXT,
    MESSAGE_TEXT,
    OPTION_TEXT,
    SECTION_TEXT,
    cut,
    escape,
    escape_except_mentions,
    mention,
)
from accessbot.models import AccessRequest, Grant, GrantStatus, RequestStatus
from accessbot.services import approvals as approval_policy
from accessbot.services.catalog import SSO_KINDS, Catalog, Resource, ResourceKind, is_usergroup
from accessbot.services.commands import MAX_REASON, USAGE, Draft, parse_id
from accessbot.services.durations import format_duration
from accessbot.services.errors import InvalidInput

Message = tuple[str, list[dict]]  # (fallback text, blocks)


def slack_time(value: datetime) -> str:
    """A time every reader sees in their own time zone, with a UTC fallback."""
    fallback = value.strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"<!date^{int(value.timestamp())}^{{date_short_pretty}} {{time_secs}}|{fallback}>"


def md(text: str, limit: int = SECTION_TEXT) -> MarkdownTextObject:
    """mrkdwn that is already escaped, cut to the limit of where it goes."""
    return MarkdownTextObject(text=cut(text, limit))


def section(text: str) -> SectionBlock:
    return SectionBlock(text=md(text))


def context(text: str) -> ContextBlock:
    return ContextBlock(elements=[md(text)])


def header(text: str) -> HeaderBlock:
    return HeaderBlock(text=PlainTextObject(text=cut(text, HEADER_TEXT)))


def confirm(title: str, text: str, yes: str, no: str) -> ConfirmObject:
    return ConfirmObject(title=title, text=md(text, CONFIRM_TEXT), confirm=yes, deny=no)


def message(text: str, blocks: list[Block]) -> Message:
    """A message: its fallback text (shown in notifications, also mrkdwn) and blocks."""
    return cut(text, MESSAGE_TEXT), dump(blocks)


def dump(blocks: list[Block]) -> list[dict]:
    return [block.to_dict() for block in blocks]


def quoted(text: str) -> str:
    """What a person wrote, as a block quote of its every line."""
    return "\n".join(f">{line}" for line in escape(text).splitlines() or [""])


_REQUEST_STATUS = {
    RequestStatus.APPROVED: ":white_check_mark: *Approved* by {who} at {when}",
    RequestStatus.DENIED: ":no_entry: *Denied* by {who} at {when}",
    RequestStatus.EXPIRED: ":hourglass: *Expired* at {when}: nobody decided in time",
    RequestStatus.FAILED: ":x: *Not submitted*: {reason}",
    RequestStatus.CANCELLED: ":leftwards_arrow_with_hook: *Cancelled* by {who} at {when}",
}


def request_message(request: AccessRequest, resource: Resource | None) -> Message:
    """The approvers' copy of a request, for every status; buttons only while pending."""
    extension = request.extends_grant_id is not None
    title = f"{'Extension' if extension else 'Access'} request #{request.id}"
    duration = format_duration(request.duration)
    resource_name = escape(request.resource)
    asked = f"*{duration} more* on *{resource_name}*" if extension \
        else f"*{resource_name}* for *{duration}*"
    requester = mention(request.requester_id)
    blocks: list[Block] = [
        header(title),
        SectionBlock(text=md(f"{requester} {_asks(request)} {asked}"), fields=[
            md(f"*Resource*\n{escape(request.resource)}"
               + (f"\n_{escape(resource.description)}_"
                  if resource and resource.description else "")
               + (f"\n`{escape(resource.target)}` in " + ", ".join(resource.accounts)
                  if resource and resource.accounts else "")
               + (f"\nAssumed {escape(resource.conditions_text())}"
                  if resource and resource.conditions_text() else ""), FIELD_TEXT),
            md(f"*{'More time' if extension else 'Duration'}*\n{duration}", FIELD_TEXT),
            md(f"*Requester*\n{requester}"
               + (f" (IAM user `{escape(request.iam_user)}`)"
                  if request.iam_user and not _in_identity_center(resource) else ""),
               FIELD_TEXT),
            md(f"*Requested*\n{slack_time(request.created_at)}", FIELD_TEXT),
        ]),
    ]
    if extension:
        blocks.append(section(_extension_text(request, slack_time)))
    blocks.append(section(f"*Reason*\n{quoted(request.reason)}"))
    blocks += _approvals_blocks(request, resource)
    if request.status is RequestStatus.PENDING:
        blocks.append(ActionsBlock(block_id=BlockId.DECISION, elements=[
            ButtonElement(text="Approve", action_id=ActionId.APPROVE, value=str(request.id),
                          style="primary"),
            *_approve_less_button(request),
            ButtonElement(text="Deny", action_id=ActionId.DENY, value=str(request.id),
                          style="danger"),
        ]))
        blocks.append(context(
            f"Undecided requests expire at {slack_time(request.decide_by)}. "
            "The requester cannot approve their own request."))
        status_text = "waiting for approval"
    else:
        blocks.append(section(decision_text(request)))
        blocks += _grant_lines(request.grant)
        status_text = request.status.value.lower()
    text = (f"{title}: {escape(request.requester_id)} {_asks(request)} "
            f"{asked.replace('*', '')}"
            + (f"; {_extension_text(request, _utc)}" if extension else "")
            + f" ({status_text})")
    return message(text, blocks)


def _grant_lines(grant: Grant | None) -> list[Block]:
    """Under an approved request: Revoke while its grant is live (approvers and admins may,
    the worker checks), or who revoked it and why."""
    if grant is None:
        return []
    if grant.revoked_by:
        line = (f":no_entry_sign: Access revoked by {mention(grant.revoked_by)}"
                + (f"\n{quoted(grant.revoke_reason)}" if grant.revoke_reason else ""))
        return [section(line)]
    if grant.status not in (GrantStatus.PENDING, GrantStatus.ACTIVE) or grant.end_reason:
        return []
    return [
        ActionsBlock(block_id=BlockId.REVOKE, elements=[
            ButtonElement(text="Revoke", action_id=ActionId.REVOKE_GRANT, value=str(grant.id),
                          style="danger")]),
        context(f"Access is live until {slack_time(grant.expires_at)}. The approvers and "
                "the admins may revoke it now."),
    ]


def _required(request: AccessRequest, resource: Resource | None) -> int:
    return resource.approvals_required if resource else max(1, len(request.approvals))


def approvals_text(request: AccessRequest, resource: Resource | None) -> str:
    """N-of-M: '1 of 2 approvals: Bob' ('' for a request one approval decides)."""
    required = _required(request, resource)
    if required < 2:
        return ""
    names = ", ".join(mention(a.approver) for a in request.approvals)
    return (f"{min(len(request.approvals), required)} of {required} approvals"
            + (f": {names}" if names else ""))


def _approvals_blocks(request: AccessRequest, resource: Resource | None) -> list[Block]:
    """The approvals so far (N-of-M) and each approver's shorter duration, on every copy."""
    line = approvals_text(request, resource)
    if line and request.status is RequestStatus.PENDING and request.approved_duration:
        line += f" (so far {approval_policy.less_text(request)})"
    return [section(f":ballot_box_with_check: {line}")] if line else []


def _approve_less_button(request: AccessRequest) -> list[ButtonElement]:
    """Beside Approve on a new request (an extension's length is the requester's ask)."""
    if request.extends_grant_id is not None:
        return []
    return [ButtonElement(text="Approve for less…", action_id=ActionId.APPROVE_LESS,
                          value=str(request.id))]


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
        who=mention(request.decided_by),
        when=slack_time(request.decided_at or request.created_at),
        reason=escape(request.decision_reason or ""))
    if request.status is RequestStatus.APPROVED and request.approved_duration:
        line += f" ({_approved_less(request)})"
    if request.status in (RequestStatus.DENIED, RequestStatus.APPROVED) \
            and request.decision_reason:  # a denial's reason; a capped extension's note
        line += f"\n{quoted(request.decision_reason)}"
    return cut(line, SECTION_TEXT)


def _approved_less(request: AccessRequest) -> str:
    """'approved for 30m of the 2h asked'."""
    return f"approved {approval_policy.less_text(request)}"


def received_text(draft: Draft) -> str:
    """The slash command's immediate answer, before anything is recorded."""
    return (f":inbox_tray: Got it: *{escape(draft.resource.name)}* for "
            f"{format_duration(draft.duration)}. I'll DM you the request number once it "
            "is with the approvers.")


def submitted_text(request: AccessRequest, resource: Resource) -> str:
    """The requester's DM once every approver has the request."""
    approvers = ", ".join(approver_mention(a) for a in resource.approvers
                          if a != request.requester_id)
    if resource.approvals_required > 1:
        approvers += f" ({resource.approvals_required} approvals needed)"
    duration = format_duration(request.duration)
    name = escape(request.resource)
    asked = f"{duration} more on *{name}*" if request.extends_grant_id is not None \
        else f"*{name}* ({duration})"
    return cut(f":hourglass_flowing_sand: Request #{request.id} for {asked} is waiting for "
               f"{approvers}. I'll message you here when it is decided.", MESSAGE_TEXT)


def submitted_message(request: AccessRequest, resource: Resource) -> Message:
    """The requester's "waiting" DM, for every status: Cancel only while pending."""
    text = submitted_text(request, resource)
    blocks: list[Block] = [section(text)]
    if request.status is RequestStatus.PENDING:
        blocks.append(ActionsBlock(block_id=BlockId.WAITING_ACTIONS, elements=[
            ButtonElement(text="Cancel request", action_id=ActionId.CANCEL_REQUEST,
                          value=str(request.id),
                          confirm=confirm("Cancel this request?",
                                          f"The approvers will see request #{request.id} "
                                          "as cancelled.", "Cancel it", "Keep waiting"))]))
    else:
        blocks.append(context(decision_text(request)))
    return message(text, blocks)


def reminder_message(request: AccessRequest, approvers: list[str], number: int,
                     in_thread: bool) -> Message:
    """A reminder to approvers who have not answered a pending request."""
    who = " ".join(mention(a) for a in approvers)
    where = "above" if in_thread else "in the request message"
    text = (f":bell: {who} reminder {number}: {mention(request.requester_id)} is waiting "
            f"for a decision on request #{request.id} for {_subject(request)} "
            f"({format_duration(request.duration)}), asked {slack_time(request.created_at)}. "
            f"Approve or Deny it {where}; undecided, it expires at "
            f"{slack_time(request.decide_by)}.")
    return message(text, [section(text)])


def approver_mention(slack_id: str) -> str:
    """A user, or a user group (S...) as Slack shows it: @sre."""
    if is_usergroup(slack_id):
        return f"<!subteam^{slack_id}>"
    return mention(slack_id)


def _subject(request: AccessRequest) -> str:
    name = escape(request.resource)
    return f"*{name}*" if request.extends_grant_id is None else f"more time on *{name}*"


def request_failed(request: AccessRequest, why: str) -> Message:
    """The requester's DM when the bot could not submit their request."""
    text = (f":x: Your request #{request.id} for {_subject(request)} could not be "
            f"submitted: {escape_except_mentions(why)}")
    return message(text, [section(text)])


def request_outcome(request: AccessRequest) -> Message:
    """The requester's DM after a denial or an expiry."""
    subject = _subject(request)
    if request.status is RequestStatus.DENIED:
        text = (f":no_entry: Your request #{request.id} for {subject} was denied "
                f"by {mention(request.decided_by)}.")
        if request.decision_reason:
            text += f"\n{quoted(request.decision_reason)}"
    else:
        text = (f":hourglass: Your request #{request.id} for {subject} expired: "
                "nobody decided in time. Ask again if you still need it.")
    return message(text, [section(text)])


def _in_identity_center(resource: Resource | None) -> bool:
    return resource is not None and resource.kind in SSO_KINDS


def _granted_as(grant: Grant) -> str:
    """What the grant is in AWS, in the holder's words."""
    if grant.kind == ResourceKind.SSO_PERMISSION_SET:
        accounts = grant.accounts.split(",")
        return (f"permission set `{escape(grant.target)}` in account"
                f"{'s' if len(accounts) > 1 else ''} {', '.join(f'`{a}`' for a in accounts)}: "
                "sign in through your AWS access portal")
    if grant.kind == ResourceKind.SSO_GROUP:
        return f"member of the Identity Center group `{escape(grant.target)}`"
    return f"IAM user `{escape(grant.iam_user)}`"


def grant_message(grant: Grant, conditions: str = "") -> Message:
    """The requester's DM about their access, for every status of the grant; `conditions`:
    what IAM requires of the role's sessions besides the time (Resource.conditions_text)."""
    name = escape(grant.resource)
    if grant.status is GrantStatus.ACTIVE:
        text = (f":white_check_mark: You have *{name}* until "
                f"{slack_time(grant.expires_at)} ({_granted_as(grant)}).")
        if grant.request is not None and grant.request.approved_duration:
            text += f"\n:scissors: {_approved_less(grant.request).capitalize()}."
        if grant.role_arn:
            text += (f"\nAssume the role `{escape(grant.role_arn)}` with a session name equal "
                     "to your IAM user name; IAM itself refuses after the expiry time"
                     + (f", and {escape(conditions)}." if conditions else "."))
        blocks: list[Block] = [
            section(text),
            ActionsBlock(block_id=BlockId.GRANT_ACTIONS, elements=[
                ButtonElement(
                    text="I'm done, revoke now", action_id=ActionId.END_GRANT,
                    value=str(grant.id),
                    confirm=confirm("End your access now?", f"This removes {name} at once.",
                                    "Revoke now", "Keep it")),
                _more_time_button(grant),
            ]),
        ]
    elif grant.status is GrantStatus.REVOKED:
        text = (f":lock: Your access to *{name}* ended at "
                f"{slack_time(grant.revoked_at or grant.expires_at)} "
                + (_revoked_by_text(grant) if grant.revoked_by else
                   f"({escape(grant.end_reason or '')})."))
        blocks = [section(text)]
    elif grant.status is GrantStatus.FAILED:
        text = (f":x: Your access to *{name}* could not be put in place: "
                f"{escape(grant.last_error or grant.end_reason or '')}. "
                "The admins have been told.")
        blocks = [section(text)]
    else:
        text = f":hourglass_flowing_sand: Approved; putting *{name}* in place..."
        blocks = [section(text)]
    return message(text, blocks)


def _revoked_by_text(grant: Grant) -> str:
    """Who revoked the holder's access, and why they said."""
    return (f"(revoked by {mention(grant.revoked_by)})."
            + (f"\n{quoted(grant.revoke_reason)}" if grant.revoke_reason else ""))


MAX_WHY = 300  # characters of an AWS error said to the requester, per account


def grant_partly(grant: Grant, done: list[str], failed: dict[str, str]) -> Message:
    """A grant in several accounts that some accounts refused so far: each one's result."""
    name = escape(grant.resource)
    lines = [f"• {account}: :white_check_mark: in place" for account in done]
    lines += [f"• {account}: :warning: not yet ({escape(why[:MAX_WHY])})"
              for account, why in failed.items()]
    text = (f":hourglass_flowing_sand: *{name}* is in place in {len(done)} of "
            f"{len(done) + len(failed)} accounts so far:\n" + "\n".join(lines) +
            "\nI keep trying the others, and will DM you when it is in place everywhere.")
    return message(text, [section(text)])


def _more_time_button(grant: Grant) -> ButtonElement:
    return ButtonElement(text="Ask for more time", action_id=ActionId.EXTEND_GRANT,
                         value=str(grant.id))


def extension_granted(grant: Grant, request: AccessRequest) -> Message:
    """The requester's DM once an extension is approved and in place."""
    text = (f":alarm_clock: {mention(request.decided_by)} approved request #{request.id}: "
            f"you now have *{escape(grant.resource)}* until {slack_time(grant.expires_at)}.")
    if request.decision_reason:  # capped at the resource's max_duration
        text += f"\n{quoted(request.decision_reason)}"
    return message(text, [section(text)])


def expiry_warning(grant: Grant, now: datetime) -> Message:
    left = format_duration(grant.expires_at - now)
    text = (f":alarm_clock: Your access to *{escape(grant.resource)}* ends in about {left}, "
            f"at {slack_time(grant.expires_at)}. Need longer? Ask for more time.")
    return message(text, [section(text), ActionsBlock(
        block_id=BlockId.GRANT_ACTIONS, elements=[_more_time_button(grant)])])


def help_message(resources: list[Resource]) -> Message:
    if not resources:
        text = "There is nothing you may request yet. Ask your platform team."
        return message(text, [section(text)])
    blocks: list[Block] = [section("*Resources you may request*")]
    for resource in sorted(resources, key=lambda r: r.name)[:47]:  # 50 blocks at most
        approvers = ", ".join(approver_mention(a) for a in resource.approvers)
        blocks.append(section(
            f"*{escape(resource.name)}* ({resource.kind.value}: `{escape(resource.target)}`)\n"
            + (f"{escape(resource.description)}\n" if resource.description else "")
            + f"Duration: {resource.limits_text()}. Approvers: {approvers}"))
    blocks.append(context(escape(USAGE)))
    text = "Resources you may request: " + ", ".join(escape(r.name) for r in resources)
    return message(text, blocks)


def _option(resource: Resource) -> Option:
    """A resource in the form's select: plain text, cut to an option's limits."""
    return Option(value=resource.name, label=cut(resource.name, OPTION_TEXT),
                  description=cut(resource.description or resource.kind.value, OPTION_TEXT))


def request_form(catalog: Catalog, user_id: str) -> dict:
    resources = sorted(catalog.requestable_by(user_id), key=lambda r: r.name)
    return View(
        type="modal", callback_id=ViewId.REQUEST_FORM, title="Request AWS access",
        submit="Request", close="Cancel",
        blocks=[
            InputBlock(block_id=BlockId.RESOURCE, label="Resource",
                       element=StaticSelectElement(action_id=ActionId.RESOURCE_SELECT,
                                                   placeholder="Choose what you need",
                                                   options=[_option(r) for r in resources[:100]])),
            InputBlock(block_id=BlockId.DURATION, label="Duration", optional=True,
                       hint="Like 30m, 2h or 1d. Empty: the resource's default.",
                       element=PlainTextInputElement(action_id=ActionId.DURATION_INPUT,
                                                     placeholder="1h", max_length=20)),
            InputBlock(block_id=BlockId.REASON, label="Reason",
                       element=PlainTextInputElement(action_id=ActionId.REASON_INPUT,
                                                     multiline=True, max_length=MAX_REASON,
                                                     placeholder="What will you do with it?")),
            *_break_glass_field(resources),
        ],
    ).to_dict()


BREAK_GLASS_CHECKED = "break_glass"  # the value of the request form's checkbox


def _break_glass_field(resources: list[Resource]) -> list[Block]:
    """The request form's "Break glass" checkbox, when any resource offered allows it."""
    names = [r.name for r in resources if r.break_glass]
    if not names:
        return []
    return [InputBlock(
        block_id=BlockId.BREAK_GLASS, label="Emergency", optional=True,
        hint=cut(f"Only for {', '.join(names)}: granted at once, and security is alerted.",
                 150),
        element=CheckboxesElement(action_id=ActionId.BREAK_GLASS_CHECK, options=[
            Option(value=BREAK_GLASS_CHECKED, label="Break glass: grant it to me now")]))]


def deny_form(request: AccessRequest) -> dict:
    return View(
        type="modal", callback_id=ViewId.DENY_FORM, title="Deny request",
        submit="Deny", close="Cancel", private_metadata=str(request.id),
        blocks=[
            section(f"Deny request #{request.id}: {mention(request.requester_id)} "
                    f"for *{escape(request.resource)}*?"),
            InputBlock(block_id=BlockId.DENY_REASON, label="Reason (optional)", optional=True,
                       element=PlainTextInputElement(action_id=ActionId.DENY_REASON_INPUT,
                                                     multiline=True, max_length=MAX_REASON)),
        ],
    ).to_dict()


def revoke_form(grant: Grant) -> dict:
    """Revoke a live grant (approvers, admins); private_metadata carries the grant id."""
    return View(
        type="modal", callback_id=ViewId.REVOKE_FORM, title="Revoke access",
        submit="Revoke", close="Cancel", private_metadata=str(grant.id),
        blocks=[
            section(f"Revoke {mention(grant.requester_id)}'s access to "
                    f"*{escape(grant.resource)}* now? It would run until "
                    f"{slack_time(grant.expires_at)}. They will be told it was you, and "
                    "why."),
            InputBlock(block_id=BlockId.REVOKE_REASON, label="Reason (optional)",
                       optional=True,
                       element=PlainTextInputElement(action_id=ActionId.REVOKE_REASON_INPUT,
                                                     multiline=True, max_length=MAX_REASON)),
        ],
    ).to_dict()


def approve_less_form(request: AccessRequest) -> dict:
    """"Approve for less…": how long, at most the duration asked; private_metadata carries
    the request id and the seconds asked (the listener checks the input against them)."""
    asked = format_duration(request.duration)
    return View(
        type="modal", callback_id=ViewId.APPROVE_LESS_FORM, title="Approve for less",
        submit="Approve", close="Cancel",
        private_metadata=f"{request.id}:{int(request.duration.total_seconds())}",
        blocks=[
            section(f"Approve request #{request.id}: {mention(request.requester_id)} asked "
                    f"for *{escape(request.resource)}* for *{asked}*."),
            InputBlock(block_id=BlockId.DURATION, label="Approve for",
                       hint=f"Like 30m or 1h; at most {asked}.",
                       element=PlainTextInputElement(action_id=ActionId.DURATION_INPUT,
                                                     max_length=20, placeholder="30m")),
        ],
    ).to_dict()


def approve_less_metadata(text: str) -> tuple[int, timedelta]:
    """The request id and the duration asked, from approve_less_form's private_metadata."""
    request_id, _, seconds = text.partition(":")
    if not seconds.isdigit():
        raise InvalidInput("This form is out of date; click Approve for less… again.")
    return parse_id(request_id), timedelta(seconds=int(seconds))


def extend_form(grant: Grant, resource: Resource) -> dict:
    """The "Ask for more time" modal; private_metadata carries the grant id."""
    approvers = ", ".join(approver_mention(a) for a in resource.approvers
                          if a != grant.requester_id)
    return View(
        type="modal", callback_id=ViewId.EXTEND_FORM, title="Ask for more time",
        submit="Ask", close="Cancel", private_metadata=str(grant.id),
        blocks=[
            section(f"You have *{escape(grant.resource)}* until "
                    f"{slack_time(grant.expires_at)}. {approvers} will be asked "
                    "to approve more time."),
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
