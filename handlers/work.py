"""What happens after a listener's acknowledgement, in the worker process.

A listener hands over a Task by name with arguments that pickle (ids, drafts, where to
reply), never Bolt's own objects. Here each task opens its own transactions, calls AWS
and Slack, and tells the user what came of it.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from sqlalchemy.orm import Session, sessionmaker

from handlers import blocks
from handlers.errors import user_message
from models import Grant, transaction
from services import extensions, findings, messages
from services import grants as grant_ops
from services import requests as request_ops
from services.catalog import Catalog
from services.clock import Clock
from services.commands import Draft, ExtensionDraft, parse_id
from services.errors import AccessBotError
from services.hygiene_runner import HygieneRunner
from services.runner import AccessRunner

log = logging.getLogger(__name__)

T = TypeVar("T")


class Task(StrEnum):
    """Everything a listener can hand over; each value names a method of Work."""

    OPEN_VIEW = "open_view"
    SUBMIT_REQUEST = "submit_request"
    APPROVE = "approve"
    ASK_DENY_REASON = "ask_deny_reason"
    DENY = "deny"
    END_GRANT = "end_grant"
    OPEN_EXTEND_FORM = "open_extend_form"
    SUBMIT_EXTENSION = "submit_extension"
    DEACTIVATE_KEY = "deactivate_key"
    WILL_FIX = "will_fix"
    SNOOZE = "snooze"


@dataclass(frozen=True)
class ReplyTo:
    """Where a later answer goes: the response_url (ephemeral), or else, for views that
    have none, a DM to the user."""

    user_id: str
    response_url: str | None = None


@dataclass
class WorkDeps:
    sessions: sessionmaker[Session]
    catalog: Catalog
    runner: AccessRunner
    hygiene: HygieneRunner
    client: WebClient
    clock: Clock
    later: Callable[..., object]  # runs a function on the worker's own pool


class Work:
    def __init__(self, deps: WorkDeps):
        self.deps = deps

    def run(self, task: str, args: tuple) -> None:
        """Start one handed-over task on the pool; an unknown name is a bug, and is logged."""
        try:
            method = getattr(self, Task(task).value)
        except ValueError:
            log.error("unknown task %r handed over; ignored", task)
            return
        self.deps.later(method, *args)

    def open_view(self, trigger_id: str, view: dict, reply: ReplyTo | None = None) -> None:
        """Open a modal now: a trigger_id lasts 3 seconds, so this is no outbox message."""
        try:
            self.deps.client.views_open(trigger_id=trigger_id, view=view)
        except (SlackApiError, SlackClientError, OSError) as exc:
            log.warning("views.open failed: %s", exc)
            if reply is not None:
                self._reply(reply, ":warning: Slack did not let me open the form just now. "
                                   "Please try again.")

    # -- requests and decisions ------------------------------------------------------

    def submit_request(self, user_id: str, draft: Draft, reply: ReplyTo) -> None:
        request = self._run(reply, lambda session: request_ops.create_request(
            session, self.deps.catalog, user_id, draft, self.deps.clock()))
        if request is not None:
            self.deps.runner.announce(request.id)

    def approve(self, value: str | None, approver_id: str, reply: ReplyTo) -> None:
        def approve(session: Session) -> tuple[int, Grant]:
            request_id = parse_id(value)
            return request_id, request_ops.approve(session, self.deps.catalog, request_id,
                                                   approver_id, self.deps.clock())

        decided = self._run(reply, approve)
        if decided is None:
            return
        request_id, grant = decided
        if grant.request_id == request_id:
            self.deps.runner.apply_grant(grant.id)
        else:  # an extension: the grant came from an earlier request and runs longer now
            self.deps.runner.extend_grant(grant.id)

    def ask_deny_reason(self, value: str | None, approver_id: str, trigger_id: str,
                        reply: ReplyTo) -> None:
        request = self._run(reply, lambda session: request_ops.check_can_decide(
            session, self.deps.catalog, parse_id(value), approver_id))
        if request is not None:
            self.open_view(trigger_id, blocks.deny_form(request), reply)

    def deny(self, value: str | None, approver_id: str, reason: str | None,
             reply: ReplyTo) -> None:
        self._run(reply, lambda session: request_ops.deny(
            session, self.deps.catalog, parse_id(value), approver_id, reason,
            self.deps.clock()))

    # -- a grant's own buttons -----------------------------------------------------------

    def end_grant(self, value: str | None, user_id: str, reply: ReplyTo) -> None:
        grant = self._run(reply, lambda session: grant_ops.end_early(
            session, parse_id(value), user_id, self.deps.clock()))
        if grant is not None:  # its expiry is now: the revoker takes it at once
            self.deps.runner.revoke_grant(grant.id)

    def open_extend_form(self, value: str | None, user_id: str, trigger_id: str,
                         reply: ReplyTo) -> None:
        found = self._run(reply, lambda session: extensions.check_can_extend(
            session, self.deps.catalog, parse_id(value), user_id, self.deps.clock()))
        if found is not None:
            grant, resource = found
            self.open_view(trigger_id, blocks.extend_form(grant, resource), reply)

    def submit_extension(self, user_id: str, draft: ExtensionDraft, reply: ReplyTo) -> None:
        request = self._run(reply, lambda session: extensions.request_extension(
            session, self.deps.catalog, user_id, draft, self.deps.clock()))
        if request is not None:
            self.deps.runner.announce(request.id)

    # -- stale credentials ------------------------------------------------------------

    def deactivate_key(self, value: str | None, user_id: str, channel_id: str | None,
                       reply: ReplyTo) -> None:
        try:
            self._reply(reply, self.deps.hygiene.deactivate(parse_id(value), user_id,
                                                            channel_id))
        except AccessBotError as exc:  # refused, already resolved, or AWS said no
            self._reply(reply, user_message(exc))

    def will_fix(self, value: str | None, user_id: str, channel_id: str | None,
                 reply: ReplyTo) -> None:
        self._decide_finding(reply, lambda session: findings.will_fix(
            session, parse_id(value), user_id, channel_id, self.deps.clock()))

    def snooze(self, value: str | None, user_id: str, channel_id: str | None,
               reply: ReplyTo) -> None:
        self._decide_finding(reply, lambda session: findings.snooze(
            session, parse_id(value), user_id, channel_id, self.deps.clock(),
            self.deps.catalog.hygiene.snooze))

    def _decide_finding(self, reply: ReplyTo, use_case: Callable[[Session], object]) -> None:
        row = self._run(reply, use_case)
        if row is not None and row.message_ts:
            self.deps.hygiene.refresh_message(row.message_channel, row.message_ts)

    # -- helpers -----------------------------------------------------------------------

    def _run(self, reply: ReplyTo, use_case: Callable[[Session], T]) -> T | None:
        """One use case in one transaction; a domain error goes back to the user as text."""
        try:
            with transaction(self.deps.sessions) as session:
                return use_case(session)
        except AccessBotError as exc:
            self._reply(reply, user_message(exc))
            return None

    def _reply(self, to: ReplyTo, text: str) -> None:
        with transaction(self.deps.sessions) as session:
            messages.reply(session, to.user_id, to.response_url, text, self.deps.clock())
