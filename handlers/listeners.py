"""Slack listeners: ack first, then work.

A listener checks what it can in memory (the payload, the catalog), acknowledges
within a millisecond or two, and hands everything else to the background pool: the
database, AWS and Slack's Web API. No acknowledgement waits on another request's
work. Answers that come later go back through the response_url, or as a DM.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient
from sqlalchemy.orm import Session, sessionmaker

from handlers import blocks
from handlers.errors import user_message
from handlers.ids import FIELD_BLOCKS, ActionId, BlockId, ViewId
from jobs.background import Background
from models import Grant, transaction
from services import extensions, findings
from services import grants as grant_ops
from services import requests as request_ops
from services.catalog import Catalog
from services.clock import Clock
from services.commands import (
    Draft,
    ExtensionDraft,
    FieldError,
    OpenForm,
    ShowHelp,
    make_draft,
    make_extension_draft,
    parse_command,
    parse_id,
)
from services.errors import AccessBotError
from services.hygiene_runner import HygieneRunner
from services.runner import AccessRunner

log = logging.getLogger(__name__)

T = TypeVar("T")
Reply = Callable[[str], None]  # tells the user who acted; ephemeral where Slack allows


@dataclass
class Deps:
    sessions: sessionmaker[Session]
    catalog: Catalog
    runner: AccessRunner
    background: Background
    clock: Clock
    hygiene: HygieneRunner | None = None


def register(app: App, deps: Deps) -> None:
    listeners = Listeners(deps)
    app.command("/request-access")(listeners.request_access)
    app.view(ViewId.REQUEST_FORM.value)(listeners.submit_request_form)
    app.action(ActionId.APPROVE.value)(listeners.approve)
    app.action(ActionId.DENY.value)(listeners.deny)
    app.view(ViewId.DENY_FORM.value)(listeners.submit_deny_form)
    app.action(ActionId.END_GRANT.value)(listeners.end_grant)
    app.action(ActionId.EXTEND_GRANT.value)(listeners.extend_grant)
    app.view(ViewId.EXTEND_FORM.value)(listeners.submit_extend_form)
    app.action(ActionId.FINDING_DEACTIVATE.value)(listeners.deactivate_key)
    app.action(ActionId.FINDING_FIX.value)(listeners.will_fix)
    app.action(ActionId.FINDING_SNOOZE.value)(listeners.snooze)
    app.error(listeners.on_error)


class Listeners:
    def __init__(self, deps: Deps):
        self.deps = deps
        self.catalog = deps.catalog

    # -- /request-access ------------------------------------------------------------

    def request_access(self, ack: Ack, command: dict, respond: Respond,
                       client: WebClient) -> None:
        user_id = command["user_id"]
        try:
            parsed = parse_command(command.get("text", ""), user_id, self.catalog)
        except AccessBotError as exc:
            ack(text=user_message(exc), response_type="ephemeral")
            return
        if isinstance(parsed, ShowHelp):
            text, body = blocks.help_message(self.catalog.requestable_by(user_id))
            ack(text=text, blocks=body, response_type="ephemeral")
        elif isinstance(parsed, OpenForm):
            ack()
            self._later(_open_view, client, command["trigger_id"],
                        blocks.request_form(self.catalog, user_id))
        else:
            ack(text=blocks.received_text(parsed), response_type="ephemeral")
            self._later(self._submit, user_id, parsed, _ephemeral(respond))

    def submit_request_form(self, ack: Ack, body: dict, view: dict, client: WebClient) -> None:
        user_id = body["user"]["id"]
        values = view["state"]["values"]
        selected = _value(values, BlockId.RESOURCE, ActionId.RESOURCE_SELECT, "selected_option")
        try:
            draft = make_draft(
                self.catalog, user_id, (selected or {}).get("value", ""),
                _value(values, BlockId.DURATION, ActionId.DURATION_INPUT, "value"),
                _value(values, BlockId.REASON, ActionId.REASON_INPUT, "value") or "")
        except FieldError as exc:
            ack(response_action="errors", errors={FIELD_BLOCKS[exc.field]: str(exc)})
            return
        except AccessBotError as exc:
            ack(response_action="errors", errors={BlockId.RESOURCE: str(exc)})
            return
        ack()
        self._later(self._submit, user_id, draft, _direct_message(client, user_id))

    def _submit(self, user_id: str, draft: Draft, reply: Reply) -> None:
        request = self._run(reply, lambda session: request_ops.create_request(
            session, self.catalog, user_id, draft, self.deps.clock()))
        if request is not None:
            self.deps.runner.announce(request.id)

    # -- decisions ---------------------------------------------------------------------

    def approve(self, ack: Ack, body: dict, action: dict, respond: Respond) -> None:
        ack()
        self._later(self._approve, action.get("value"), body["user"]["id"], _ephemeral(respond))

    def _approve(self, value: str | None, approver_id: str, reply: Reply) -> None:
        def approve(session: Session) -> tuple[int, Grant]:
            request_id = parse_id(value)
            return request_id, request_ops.approve(session, self.catalog, request_id,
                                                   approver_id, self.deps.clock())

        decided = self._run(reply, approve)
        if decided is None:
            return
        request_id, grant = decided
        self._later(self.deps.runner.refresh_messages, request_id)
        if grant.request_id == request_id:
            self.deps.runner.apply_grant(grant.id)
        else:  # an extension: the grant came from an earlier request and runs longer now
            self.deps.runner.extend_grant(grant.id)

    def deny(self, ack: Ack, body: dict, action: dict, respond: Respond,
             client: WebClient) -> None:
        ack()
        self._later(self._ask_deny_reason, action.get("value"), body["user"]["id"],
                    body["trigger_id"], client, _ephemeral(respond))

    def _ask_deny_reason(self, value: str | None, approver_id: str, trigger_id: str,
                         client: WebClient, reply: Reply) -> None:
        request = self._run(reply, lambda session: request_ops.check_can_decide(
            session, self.catalog, parse_id(value), approver_id))
        if request is not None:
            _open_view(client, trigger_id, blocks.deny_form(request))

    def submit_deny_form(self, ack: Ack, body: dict, view: dict, client: WebClient) -> None:
        ack()
        reason = _value(view["state"]["values"], BlockId.DENY_REASON,
                        ActionId.DENY_REASON_INPUT, "value")
        approver_id = body["user"]["id"]
        self._later(self._deny, view.get("private_metadata"), approver_id, reason,
                    _direct_message(client, approver_id))

    def _deny(self, value: str | None, approver_id: str, reason: str | None,
              reply: Reply) -> None:
        request = self._run(reply, lambda session: request_ops.deny(
            session, self.catalog, parse_id(value), approver_id, reason, self.deps.clock()))
        if request is not None:
            self.deps.runner.refresh_messages(request.id)

    def end_grant(self, ack: Ack, body: dict, action: dict, respond: Respond) -> None:
        ack()
        self._later(self._end_grant, action.get("value"), body["user"]["id"],
                    _ephemeral(respond))

    def _end_grant(self, value: str | None, user_id: str, reply: Reply) -> None:
        grant = self._run(reply, lambda session: grant_ops.end_early(
            session, parse_id(value), user_id, self.deps.clock()))
        if grant is not None:  # its expiry is now: the revoker takes it at once
            self.deps.runner.revoke_grant(grant.id)

    # -- more time -----------------------------------------------------------------------

    def extend_grant(self, ack: Ack, body: dict, action: dict, respond: Respond,
                     client: WebClient) -> None:
        ack()
        self._later(self._open_extend_form, action.get("value"), body["user"]["id"],
                    body["trigger_id"], client, _ephemeral(respond))

    def _open_extend_form(self, value: str | None, user_id: str, trigger_id: str,
                          client: WebClient, reply: Reply) -> None:
        found = self._run(reply, lambda session: extensions.check_can_extend(
            session, self.catalog, parse_id(value), user_id, self.deps.clock()))
        if found is not None:
            grant, resource = found
            _open_view(client, trigger_id, blocks.extend_form(grant, resource))

    def submit_extend_form(self, ack: Ack, body: dict, view: dict, client: WebClient) -> None:
        user_id = body["user"]["id"]
        values = view["state"]["values"]
        try:
            draft = make_extension_draft(
                view.get("private_metadata"),
                _value(values, BlockId.DURATION, ActionId.DURATION_INPUT, "value"),
                _value(values, BlockId.REASON, ActionId.REASON_INPUT, "value") or "")
        except FieldError as exc:
            ack(response_action="errors", errors={FIELD_BLOCKS[exc.field]: str(exc)})
            return
        except AccessBotError as exc:  # the grant id in private_metadata is not one
            ack(response_action="errors", errors={BlockId.REASON: str(exc)})
            return
        ack()
        self._later(self._submit_extension, user_id, draft, _direct_message(client, user_id))

    def _submit_extension(self, user_id: str, draft: ExtensionDraft, reply: Reply) -> None:
        request = self._run(reply, lambda session: extensions.request_extension(
            session, self.catalog, user_id, draft, self.deps.clock()))
        if request is not None:
            self.deps.runner.announce(request.id)

    def on_error(self, error: Exception, body: dict, logger) -> None:
        logger.exception("listener failed for %s", body.get("type"), exc_info=error)

    # -- stale credentials ------------------------------------------------------------

    def deactivate_key(self, ack: Ack, body: dict, action: dict, respond: Respond) -> None:
        ack()
        self._later(self._deactivate_key, action.get("value"), body["user"]["id"],
                    _channel_of(body), _ephemeral(respond))

    def _deactivate_key(self, value: str | None, user_id: str, channel_id: str | None,
                        reply: Reply) -> None:
        try:
            reply(self.deps.hygiene.deactivate(parse_id(value), user_id, channel_id))
        except AccessBotError as exc:  # refused, already resolved, or AWS said no
            reply(user_message(exc))

    def will_fix(self, ack: Ack, body: dict, action: dict, respond: Respond) -> None:
        ack()
        self._later(self._decide_finding, findings.will_fix, action.get("value"),
                    body["user"]["id"], _channel_of(body), _ephemeral(respond))

    def snooze(self, ack: Ack, body: dict, action: dict, respond: Respond) -> None:
        ack()
        snooze = partial(_snooze_for, self.catalog.hygiene.snooze)
        self._later(self._decide_finding, snooze, action.get("value"), body["user"]["id"],
                    _channel_of(body), _ephemeral(respond))

    def _decide_finding(self, use_case: Callable, value: str | None, user_id: str,
                        channel_id: str | None, reply: Reply) -> None:
        row = self._run(reply, lambda session: use_case(
            session, parse_id(value), user_id, channel_id, self.deps.clock()))
        if row is not None and row.message_ts:
            self.deps.hygiene.refresh_message(row.message_channel, row.message_ts)

    def _run(self, reply: Reply, use_case: Callable[[Session], T]) -> T | None:
        """One use case in one transaction; a domain error goes back to the user as text."""
        try:
            with transaction(self.deps.sessions) as session:
                return use_case(session)
        except AccessBotError as exc:
            reply(user_message(exc))
            return None

    def _later(self, fn: Callable, *args) -> None:
        self.deps.background.submit(fn, *args)


def _channel_of(body: dict) -> str | None:
    """The channel the clicked message is in (signed by Slack, so it can be trusted)."""
    return (body.get("channel") or {}).get("id") or (body.get("container") or {}).get(
        "channel_id")


def _snooze_for(length, session, finding_id, user_id, channel_id, now):
    return findings.snooze(session, finding_id, user_id, channel_id, now, length)


def _ephemeral(respond: Respond) -> Reply:
    return partial(_send_ephemeral, respond)


def _send_ephemeral(respond: Respond, text: str) -> None:
    respond(text=text, response_type="ephemeral", replace_original=False)


def _direct_message(client: WebClient, user_id: str) -> Reply:
    """For views, which have no response_url: the answer goes to the user's DM."""
    return partial(_send_direct_message, client, user_id)


def _send_direct_message(client: WebClient, user_id: str, text: str) -> None:
    client.chat_postMessage(channel=user_id, text=text)


def _value(values: dict, block: str, action: str, key: str):
    return (values.get(block) or {}).get(action, {}).get(key)


def _open_view(client: WebClient, trigger_id: str, view: dict) -> None:
    client.views_open(trigger_id=trigger_id, view=view)
