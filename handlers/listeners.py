"""Slack listeners: check, hand over, acknowledge.

A listener checks what it can in memory (the payload, the catalog), hands the rest to
the worker process as a Task (handlers/tasks.py: one inbox row; handlers/work.py runs it)
and acknowledges, within a millisecond or two. AWS and Slack's Web API are all on the
worker's side, so no acknowledgement waits on them, or on another request's work.
Answers that come later go back through the response_url, or as a DM.
"""

import contextlib
import contextvars
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator

from slack_bolt import Ack, App, BoltRequest, BoltResponse
from slack_bolt.middleware import Middleware

from accessbot.handlers import blocks, break_glass_blocks
from accessbot.handlers.client import slack_webhook
from accessbot.handlers.errors import user_message
from accessbot.handlers.handoff import NOT_RECORDED, HandoffFailed
from accessbot.handlers.ids import FIELD_BLOCKS, ActionId, BlockId, ViewId
from accessbot.handlers.payloads import (
    ClickInput,
    CommandInput,
    FormInput,
    HomeOpened,
    MalformedPayload,
    input_of,
)
from accessbot.handlers.tasks import ReplyTo, Task
from accessbot.services import break_glass, metrics
from accessbot.services.approvals import less_duration
from accessbot.services.catalog import Catalog
from accessbot.services.commands import (
    BreakGlass,
    FieldError,
    OpenForm,
    ShowHelp,
    ShowList,
    make_break_glass,
    make_draft,
    make_extension_draft,
    parse_command,
    parse_id,
)
from accessbot.services.errors import AccessBotError

log = logging.getLogger(__name__)

# handoff(task, *args) records a task for the worker; it raises if the worker is gone, so
# that Slack sees an error rather than an acknowledgement of work that will not happen
Handoff = Callable[..., None]


def register(app: App, catalog: Catalog, handoff: Handoff) -> None:
    listeners = Listeners(catalog, handoff)
    app.middleware(CheckAndTime())
    app.command("/request-access")(listeners.request_access)
    app.view(ViewId.REQUEST_FORM.value)(listeners.submit_request_form)
    app.action(ActionId.APPROVE.value)(listeners.approve)
    app.action(ActionId.DENY.value)(listeners.deny)
    app.action(ActionId.APPROVE_LESS.value)(listeners.approve_less)
    app.view(ViewId.APPROVE_LESS_FORM.value)(listeners.submit_approve_less_form)
    app.view(ViewId.DENY_FORM.value)(listeners.submit_deny_form)
    app.action(ActionId.END_GRANT.value)(listeners.end_grant)
    app.action(ActionId.EXTEND_GRANT.value)(listeners.extend_grant)
    app.view(ViewId.EXTEND_FORM.value)(listeners.submit_extend_form)
    app.action(ActionId.FINDING_DEACTIVATE.value)(listeners.deactivate_key)
    app.action(ActionId.FINDING_FIX.value)(listeners.will_fix)
    app.action(ActionId.FINDING_SNOOZE.value)(listeners.snooze)
    app.action(ActionId.REVIEW_KEEP.value)(listeners.review_keep)
    app.action(ActionId.REVIEW_REMOVE.value)(listeners.review_remove)
    app.action(ActionId.FINDING_CAP_SESSION.value)(listeners.cap_session)
    app.event("app_home_opened")(listeners.home_opened)
    app.action(ActionId.OPEN_REQUEST_FORM.value)(listeners.open_request_form)
    app.view(ViewId.BREAK_GLASS_FORM.value)(listeners.submit_break_glass_form)
    app.action(ActionId.BREAK_GLASS_NOW.value)(listeners.break_glass_now)
    app.action(ActionId.BREAK_GLASS_REVIEWED.value)(listeners.break_glass_reviewed)
    app.view(ViewId.BREAK_GLASS_REVIEW_FORM.value)(listeners.submit_break_glass_review)
    app.action(ActionId.CANCEL_REQUEST.value)(listeners.cancel_request)
    app.action(ActionId.REVOKE_GRANT.value)(listeners.revoke_grant)
    app.view(ViewId.REVOKE_FORM.value)(listeners.submit_revoke_form)
    app.error(listeners.on_error)


class CheckAndTime(Middleware):
    """Before any listener: the payload that listener reads, checked and parsed once into
    `context["checked"]` (the listener's `checked` argument), or 400; and every
    acknowledgement counted and timed, by listener (GET /metrics).

    One middleware, and a class: Bolt calls a function middleware (and each listener
    matcher, and the listener) through its argument injection, which builds every
    argument it could offer, each of the payload's views among them (11-14 µs of a
    click's 230 on the event loop); a Middleware's `process` it calls directly."""

    def process(self, *, req: BoltRequest, resp: BoltResponse,
                next: Callable[[], BoltResponse]) -> BoltResponse:  # (Bolt's names)
        body, started = req.body, time.perf_counter()
        try:
            parse = input_of(body)
            try:
                req.context["checked"] = parse(body) if parse is not None else None
            except MalformedPayload as exc:
                log.warning("malformed Slack payload (%s): %s", body.get("type", "command"),
                            exc)
                return BoltResponse(status=400, body=f"malformed payload: {exc}")
            return next()
        finally:
            listener = _listener_of(body)
            metrics.ACKS.labels(listener).inc()
            timed = _timed_by_caller.get()
            if timed is None:
                metrics.ACK_SECONDS.labels(listener).observe(time.perf_counter() - started)
            else:
                timed.append((listener, started))


# (listener, perf_counter at dispatch) of the acknowledgements whose answer leaves later,
# once their tasks are committed (handlers/web.py): the caller observes their latency then
_timed_by_caller: contextvars.ContextVar[list | None] = contextvars.ContextVar(
    "acks_timed_by_caller", default=None)


@contextlib.contextmanager
def acks_timed_by_caller() -> Iterator[list[tuple[str, float]]]:
    """Inside: acknowledgements are counted, and their latency left to the caller, who
    calls `observe_acks` with the list when the answer is ready."""
    timed: list[tuple[str, float]] = []
    token = _timed_by_caller.set(timed)
    try:
        yield timed
    finally:
        _timed_by_caller.reset(token)


def observe_acks(timed: list[tuple[str, float]]) -> None:
    now = time.perf_counter()
    for listener, started in timed:
        metrics.ACK_SECONDS.labels(listener).observe(now - started)


_KNOWN_LABELS = frozenset(member.value for kind in (ActionId, ViewId) for member in kind)


def _listener_of(body: dict) -> str:
    """A label from a known set: what the request is for, never free text."""
    if body.get("command") == "/request-access":
        return "command"
    if body.get("type") == "view_submission":
        callback = (body.get("view") or {}).get("callback_id")
        return callback if callback in _KNOWN_LABELS else "view"
    actions = body.get("actions")
    if isinstance(actions, list) and actions and isinstance(actions[0], dict):
        action = actions[0].get("action_id")
        return action if action in _KNOWN_LABELS else "action"
    return "other"


class Listeners:
    def __init__(self, catalog: Catalog, handoff: Handoff):
        self.catalog = catalog
        self.handoff = handoff

    # -- /request-access ------------------------------------------------------------

    def request_access(self, ack: Ack, checked: CommandInput) -> None:
        command = checked
        user_id = command.user_id
        try:
            parsed = parse_command(command.text, user_id, self.catalog)
        except AccessBotError as exc:
            ack(text=user_message(exc), response_type="ephemeral")
            return
        if isinstance(parsed, BreakGlass):  # confirm first: it alerts security
            text, body_blocks = break_glass_blocks.confirm_message(parsed, _packed(parsed))
            ack(text=text, blocks=body_blocks, response_type="ephemeral")
        elif isinstance(parsed, ShowHelp):
            text, body_blocks = blocks.help_message(self.catalog.requestable_by(user_id))
            ack(text=text, blocks=body_blocks, response_type="ephemeral")
        elif isinstance(parsed, ShowList):  # answered through the response_url
            self.handoff(Task.SHOW_LIST, user_id, ReplyTo(user_id, command.response_url))
            ack()
        elif isinstance(parsed, OpenForm):
            self.handoff(Task.OPEN_VIEW, command.trigger_id,
                         blocks.request_form(self.catalog, user_id),
                         ReplyTo(user_id, command.response_url))
            ack()
        else:
            self.handoff(Task.SUBMIT_REQUEST, user_id, parsed,
                         ReplyTo(user_id, command.response_url))
            ack(text=blocks.received_text(parsed), response_type="ephemeral")

    def submit_request_form(self, ack: Ack, checked: FormInput) -> None:
        form = checked
        if form.field(BlockId.BREAK_GLASS, ActionId.BREAK_GLASS_CHECK):
            self._confirm_break_glass(ack, form)
            return
        try:
            draft = make_draft(
                self.catalog, form.user_id,
                form.field(BlockId.RESOURCE, ActionId.RESOURCE_SELECT) or "",
                form.field(BlockId.DURATION, ActionId.DURATION_INPUT),
                form.field(BlockId.REASON, ActionId.REASON_INPUT) or "")
        except FieldError as exc:
            ack(response_action="errors", errors={FIELD_BLOCKS[exc.field]: str(exc)})
            return
        except AccessBotError as exc:
            ack(response_action="errors", errors={BlockId.RESOURCE: str(exc)})
            return
        self.handoff(Task.SUBMIT_REQUEST, form.user_id, draft, ReplyTo(form.user_id))
        ack()

    # -- break-glass -------------------------------------------------------------------

    def _confirm_break_glass(self, ack: Ack, form: FormInput) -> None:
        """The form's break-glass: checked, then a second step that asks to confirm."""
        try:
            glass = make_break_glass(
                self.catalog, form.user_id,
                form.field(BlockId.RESOURCE, ActionId.RESOURCE_SELECT) or "",
                form.field(BlockId.DURATION, ActionId.DURATION_INPUT),
                form.field(BlockId.REASON, ActionId.REASON_INPUT) or "")
        except FieldError as exc:
            ack(response_action="errors", errors={FIELD_BLOCKS[exc.field]: str(exc)})
            return
        except AccessBotError as exc:
            ack(response_action="errors", errors={BlockId.RESOURCE: str(exc)})
            return
        ack(response_action="update",
            view=break_glass_blocks.confirm_form(glass, _packed(glass)))

    def submit_break_glass_form(self, ack: Ack, checked: FormInput) -> None:
        form = checked
        self.handoff(Task.SUBMIT_BREAK_GLASS, form.user_id, form.private_metadata,
                     ReplyTo(form.user_id))
        ack()

    def break_glass_now(self, ack: Ack, checked: ClickInput) -> None:
        click = checked
        self.handoff(Task.SUBMIT_BREAK_GLASS, click.user_id, click.value, _reply_to(click))
        ack()

    def break_glass_reviewed(self, ack: Ack, checked: ClickInput) -> None:
        self._open_form(Task.OPEN_BREAK_GLASS_REVIEW, checked)
        ack()

    def submit_break_glass_review(self, ack: Ack, checked: FormInput) -> None:
        form = checked
        try:
            parse_id(form.private_metadata)  # the review id the form was opened for
        except AccessBotError as exc:
            ack(response_action="errors", errors={BlockId.BREAK_GLASS_NOTE: str(exc)})
            return
        note = form.field(BlockId.BREAK_GLASS_NOTE, ActionId.BREAK_GLASS_NOTE_INPUT)
        if not (note or "").strip():
            ack(response_action="errors",
                errors={BlockId.BREAK_GLASS_NOTE: "Please write what you checked."})
            return
        self.handoff(Task.BREAK_GLASS_REVIEWED, form.private_metadata, form.user_id, note,
                     ReplyTo(form.user_id))
        ack()

    # -- decisions ---------------------------------------------------------------------

    def approve(self, ack: Ack, checked: ClickInput) -> None:
        click = checked
        self.handoff(Task.APPROVE, click.value, click.user_id, _reply_to(click))
        ack()

    def approve_less(self, ack: Ack, checked: ClickInput) -> None:
        self._open_form(Task.ASK_APPROVE_DURATION, checked)
        ack()

    def submit_approve_less_form(self, ack: Ack, checked: FormInput) -> None:
        """The duration checked here, in the modal (at most the one asked, which the form
        carries), and again by the service."""
        form = checked
        try:
            request_id, asked = blocks.approve_less_metadata(form.private_metadata)
            duration = less_duration(form.field(BlockId.DURATION, ActionId.DURATION_INPUT),
                                     asked)
        except AccessBotError as exc:
            ack(response_action="errors", errors={BlockId.DURATION: str(exc)})
            return
        self.handoff(Task.APPROVE_LESS, str(request_id), form.user_id,
                     duration.total_seconds(), ReplyTo(form.user_id))
        ack()

    def deny(self, ack: Ack, checked: ClickInput) -> None:
        self._open_form(Task.ASK_DENY_REASON, checked)
        ack()

    def submit_deny_form(self, ack: Ack, checked: FormInput) -> None:
        self._submit_reason(ack, checked, Task.DENY, BlockId.DENY_REASON,
                            ActionId.DENY_REASON_INPUT)

    def _open_form(self, task: Task, click: ClickInput) -> None:
        """A click that opens a modal: the worker opens it with the click's trigger."""
        self.handoff(task, click.value, click.user_id, click.trigger_id, _reply_to(click))

    def _submit_reason(self, ack: Ack, form: FormInput, task: Task, block: str,
                       action: str) -> None:
        """A reason form for the id in its private_metadata (the request or the grant it
        was opened for)."""
        try:
            parse_id(form.private_metadata)
        except AccessBotError as exc:
            ack(response_action="errors", errors={block: str(exc)})
            return
        self.handoff(task, form.private_metadata, form.user_id, form.field(block, action),
                     ReplyTo(form.user_id))
        ack()

    # -- a grant's own buttons -----------------------------------------------------------

    def end_grant(self, ack: Ack, checked: ClickInput) -> None:
        click = checked
        self.handoff(Task.END_GRANT, click.value, click.user_id, _reply_to(click))
        ack()

    def extend_grant(self, ack: Ack, checked: ClickInput) -> None:
        self._open_form(Task.OPEN_EXTEND_FORM, checked)
        ack()

    def submit_extend_form(self, ack: Ack, checked: FormInput) -> None:
        form = checked
        try:
            draft = make_extension_draft(
                form.private_metadata,
                form.field(BlockId.DURATION, ActionId.DURATION_INPUT),
                form.field(BlockId.REASON, ActionId.REASON_INPUT) or "")
        except FieldError as exc:
            ack(response_action="errors", errors={FIELD_BLOCKS[exc.field]: str(exc)})
            return
        except AccessBotError as exc:  # the grant id in private_metadata is not one
            ack(response_action="errors", errors={BlockId.REASON: str(exc)})
            return
        self.handoff(Task.SUBMIT_EXTENSION, form.user_id, draft, ReplyTo(form.user_id))
        ack()

    # -- a request's and a grant's life: Cancel, Revoke ------------------------------------

    def cancel_request(self, ack: Ack, checked: ClickInput) -> None:
        click = checked
        self.handoff(Task.CANCEL_REQUEST, click.value, click.user_id, _reply_to(click))
        ack()

    def revoke_grant(self, ack: Ack, checked: ClickInput) -> None:
        self._open_form(Task.ASK_REVOKE_REASON, checked)
        ack()

    def submit_revoke_form(self, ack: Ack, checked: FormInput) -> None:
        self._submit_reason(ack, checked, Task.REVOKE_GRANT, BlockId.REVOKE_REASON,
                            ActionId.REVOKE_REASON_INPUT)

    # -- stale credentials ------------------------------------------------------------

    def deactivate_key(self, ack: Ack, checked: ClickInput) -> None:
        self._finding(Task.DEACTIVATE_KEY, checked)
        ack()

    def will_fix(self, ack: Ack, checked: ClickInput) -> None:
        self._finding(Task.WILL_FIX, checked)
        ack()

    def snooze(self, ack: Ack, checked: ClickInput) -> None:
        self._finding(Task.SNOOZE, checked)
        ack()

    # -- the access review --------------------------------------------------------------

    def review_keep(self, ack: Ack, checked: ClickInput) -> None:
        self._finding(Task.REVIEW_KEEP, checked)
        ack()

    def review_remove(self, ack: Ack, checked: ClickInput) -> None:
        self._finding(Task.REVIEW_REMOVE, checked)
        ack()

    def cap_session(self, ack: Ack, checked: ClickInput) -> None:
        self._finding(Task.CAP_SESSION, checked)
        ack()

    def _finding(self, task: Task, click: ClickInput) -> None:
        self.handoff(task, click.value, click.user_id, click.channel_id, _reply_to(click))

    # -- App Home ---------------------------------------------------------------------------

    def home_opened(self, ack: Ack, checked: HomeOpened) -> None:
        opened = checked
        if opened.tab == "home":  # the Messages tab has nothing of ours to publish
            self.handoff(Task.HOME_OPENED, opened.user_id)
        ack()

    def open_request_form(self, ack: Ack, checked: ClickInput) -> None:
        """Home's Request access button: the form the bare slash command opens."""
        click = checked
        self.handoff(Task.OPEN_VIEW, click.trigger_id,
                     blocks.request_form(self.catalog, click.user_id), _reply_to(click))
        ack()

    def on_error(self, error: Exception, body: dict, logger) -> BoltResponse | None:
        if isinstance(error, HandoffFailed):  # nothing recorded: say so, never "got it"
            return not_recorded(body)
        logger.exception("listener failed for %s", body.get("type"), exc_info=error)
        return None


def not_recorded(body: dict) -> BoltResponse:
    """The answer when a task could not be recorded: in the command's reply, on the form,
    or (a button, which has no reply of its own) through the response_url."""
    if body.get("command"):
        return _json({"response_type": "ephemeral", "text": NOT_RECORDED})
    if body.get("type") == "view_submission":
        fields = list(((body.get("view") or {}).get("state") or {}).get("values") or {})
        if fields:
            return _json({"response_action": "errors", "errors": {fields[0]: NOT_RECORDED}})
    url = body.get("response_url")
    if isinstance(url, str) and url.startswith("https://"):
        threading.Thread(target=_tell, args=(url,), daemon=True).start()
    return BoltResponse(status=200, body="")


def _tell(url: str) -> None:
    try:
        slack_webhook(url, timeout=5).send(text=NOT_RECORDED, response_type="ephemeral",
                                           replace_original=False)
    except OSError as exc:
        log.warning("could not tell the user their click was not recorded: %s", exc)


def _json(body: dict) -> BoltResponse:
    return BoltResponse(status=200, body=json.dumps(body),
                        headers={"content-type": "application/json;charset=utf-8"})


def _packed(glass: BreakGlass) -> str:
    draft = glass.draft
    return break_glass.pack(draft.resource.name, glass.duration_text, draft.reason)


def _reply_to(click: ClickInput) -> ReplyTo:
    return ReplyTo(click.user_id, click.response_url)
