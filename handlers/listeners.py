"""Slack listeners. Each reads the payload, calls one service, renders the answer.

Answers that need only the database (validation, recording a request, a decision)
travel in the acknowledgement itself, in milliseconds. Anything that talks to AWS or
to Slack's Web API is handed to the background pool after the ack.
"""

import logging
from dataclasses import dataclass
from functools import partial

from slack_bolt import Ack, App, Respond
from sqlalchemy.orm import Session, sessionmaker

from handlers import blocks
from handlers.errors import user_message
from handlers.ids import FIELD_BLOCKS, ActionId, BlockId, ViewId
from jobs.background import Background
from models import AccessRequest, transaction
from services import grants as grant_ops
from services import requests as request_ops
from services.catalog import Catalog
from services.clock import Clock
from services.commands import (
    Draft,
    FieldError,
    OpenForm,
    ShowHelp,
    make_draft,
    parse_command,
    parse_id,
)
from services.errors import AccessBotError
from services.runner import AccessRunner

log = logging.getLogger(__name__)


@dataclass
class Deps:
    sessions: sessionmaker[Session]
    catalog: Catalog
    runner: AccessRunner
    background: Background
    clock: Clock


def register(app: App, deps: Deps) -> None:
    listeners = Listeners(deps)
    app.command("/request-access")(listeners.request_access)
    app.view(ViewId.REQUEST_FORM.value)(listeners.submit_request_form)
    app.action(ActionId.APPROVE.value)(listeners.approve)
    app.action(ActionId.DENY.value)(listeners.deny)
    app.view(ViewId.DENY_FORM.value)(listeners.submit_deny_form)
    app.action(ActionId.END_GRANT.value)(listeners.end_grant)
    app.error(listeners.on_error)


class Listeners:
    def __init__(self, deps: Deps):
        self.deps = deps
        self.catalog = deps.catalog

    def _transaction(self):
        return transaction(self.deps.sessions)

    # -- /request-access ------------------------------------------------------------

    def request_access(self, ack: Ack, command: dict, client) -> None:
        user_id = command["user_id"]
        try:
            parsed = parse_command(command.get("text", ""), user_id, self.catalog)
            if isinstance(parsed, ShowHelp):
                text, body = blocks.help_message(self.catalog.requestable_by(user_id))
                ack(text=text, blocks=body, response_type="ephemeral")
                return
            if isinstance(parsed, OpenForm):
                ack()
                self.deps.background.submit(_open_view, client, command["trigger_id"],
                                            blocks.request_form(self.catalog, user_id))
                return
            request = self._record(user_id, parsed)
        except AccessBotError as exc:
            ack(text=user_message(exc), response_type="ephemeral")
            return
        ack(text=blocks.recorded_text(request, parsed.resource), response_type="ephemeral")
        self.deps.background.submit(self.deps.runner.announce, request.id)

    def submit_request_form(self, ack: Ack, body: dict, view: dict) -> None:
        user_id = body["user"]["id"]
        values = view["state"]["values"]
        selected = _value(values, BlockId.RESOURCE, ActionId.RESOURCE_SELECT, "selected_option")
        try:
            draft = make_draft(
                self.catalog, user_id, (selected or {}).get("value", ""),
                _value(values, BlockId.DURATION, ActionId.DURATION_INPUT, "value"),
                _value(values, BlockId.REASON, ActionId.REASON_INPUT, "value") or "")
            request = self._record(user_id, draft)
        except FieldError as exc:
            ack(response_action="errors", errors={FIELD_BLOCKS[exc.field]: str(exc)})
            return
        except AccessBotError as exc:
            ack(response_action="errors", errors={BlockId.RESOURCE: str(exc)})
            return
        ack()
        self.deps.background.submit(self.deps.runner.announce, request.id)

    def _record(self, user_id: str, draft: Draft) -> AccessRequest:
        with self._transaction() as session:
            return request_ops.create_request(session, self.catalog, user_id, draft,
                                              self.deps.clock())

    # -- decisions ---------------------------------------------------------------------

    def approve(self, ack: Ack, body: dict, action: dict, respond: Respond) -> None:
        ack()
        try:
            request_id = parse_id(action.get("value"))
            with self._transaction() as session:
                grant = request_ops.approve(session, self.catalog, request_id,
                                            body["user"]["id"], self.deps.clock())
                grant_id = grant.id
        except AccessBotError as exc:
            self._refuse(respond, exc)
            return
        self.deps.background.submit(self.deps.runner.apply_grant, grant_id)
        self.deps.background.submit(self.deps.runner.refresh_messages, request_id)

    def deny(self, ack: Ack, body: dict, action: dict, respond: Respond, client) -> None:
        ack()
        try:
            request_id = parse_id(action.get("value"))
            with self._transaction() as session:
                request = request_ops.check_can_decide(session, self.catalog, request_id,
                                                       body["user"]["id"])
        except AccessBotError as exc:
            self._refuse(respond, exc)
            return
        self.deps.background.submit(_open_view, client, body["trigger_id"],
                                    blocks.deny_form(request))

    def submit_deny_form(self, ack: Ack, body: dict, view: dict) -> None:
        reason = _value(view["state"]["values"], BlockId.DENY_REASON, ActionId.DENY_REASON_INPUT,
                        "value")
        try:
            request_id = parse_id(view.get("private_metadata"))
            with self._transaction() as session:
                request_ops.deny(session, self.catalog, request_id, body["user"]["id"], reason,
                                 self.deps.clock())
        except AccessBotError as exc:
            ack(response_action="errors", errors={BlockId.DENY_REASON: user_message(exc)})
            return
        ack()
        self.deps.background.submit(self.deps.runner.refresh_messages, request_id)

    def end_grant(self, ack: Ack, body: dict, action: dict, respond: Respond) -> None:
        ack()
        try:
            grant_id = parse_id(action.get("value"))
            with self._transaction() as session:
                grant_ops.end_early(session, grant_id, body["user"]["id"], self.deps.clock())
        except AccessBotError as exc:
            self._refuse(respond, exc)
            return
        self.deps.background.submit(self.deps.runner.end_now, grant_id)

    def _refuse(self, respond: Respond, error: AccessBotError) -> None:
        self.deps.background.submit(partial(respond, text=user_message(error),
                                            response_type="ephemeral", replace_original=False))

    def on_error(self, error: Exception, body: dict, logger) -> None:
        logger.exception("listener failed for %s", body.get("type"), exc_info=error)


def _value(values: dict, block: str, action: str, key: str):
    return (values.get(block) or {}).get(action, {}).get(key)


def _open_view(client, trigger_id: str, view: dict) -> None:
    client.views_open(trigger_id=trigger_id, view=view)
