"""Slack implementation of the services' Notifier and Profiles ports."""

import logging
from functools import wraps

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from handlers import blocks, hygiene_blocks
from models import AccessRequest, ApprovalMessage, CredentialFinding, Grant
from services.account_audit import Deviation
from services.catalog import Catalog, is_channel
from services.clock import Clock, utcnow
from services.findings import Summary
from services.ports import NotificationError

log = logging.getLogger(__name__)


def _slack_call(method):
    """Turn Slack client failures into NotificationError, the services' vocabulary."""

    @wraps(method)
    def wrapper(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except SlackApiError as exc:
            raise NotificationError(f"Slack said {exc.response.get('error')}") from exc
        except (SlackClientError, OSError) as exc:
            raise NotificationError(f"Slack unreachable: {exc}") from exc

    return wrapper


class SlackNotifier:
    def __init__(self, client: WebClient, catalog: Catalog, clock: Clock = utcnow):
        self.client = client
        self.catalog = catalog
        self.clock = clock

    @_slack_call
    def post_request(self, request: AccessRequest, destination: str) -> tuple[str, str]:
        text, body = blocks.request_message(request, self.catalog.resources.get(request.resource))
        answer = self.client.chat_postMessage(channel=destination, text=text, blocks=body)
        return answer["channel"], answer["ts"]

    @_slack_call
    def update_request(self, request: AccessRequest, message: ApprovalMessage) -> None:
        text, body = blocks.request_message(request, self.catalog.resources.get(request.resource))
        self.client.chat_update(channel=message.channel, ts=message.ts, text=text, blocks=body)
        if request.decided_at:
            # each decision also lands as a thread reply, for the channel's history
            self.client.chat_postMessage(channel=message.channel, thread_ts=message.ts,
                                         text=blocks.decision_text(request))

    @_slack_call
    def request_submitted(self, request: AccessRequest) -> None:
        resource = self.catalog.resources[request.resource]
        self.client.chat_postMessage(channel=request.requester_id,
                                     text=blocks.submitted_text(request, resource))

    @_slack_call
    def request_failed(self, request: AccessRequest, why: str) -> None:
        text, body = blocks.request_failed(request, why)
        self.client.chat_postMessage(channel=request.requester_id, text=text, blocks=body)

    @_slack_call
    def request_decided(self, request: AccessRequest) -> None:
        text, body = blocks.request_outcome(request)
        self.client.chat_postMessage(channel=request.requester_id, text=text, blocks=body)

    @_slack_call
    def grant_active(self, grant: Grant) -> tuple[str, str]:
        text, body = blocks.grant_message(grant)
        answer = self.client.chat_postMessage(channel=grant.requester_id, text=text, blocks=body)
        return answer["channel"], answer["ts"]

    @_slack_call
    def grant_extended(self, grant: Grant, request: AccessRequest) -> None:
        text, body = blocks.extension_granted(grant, request)
        self.client.chat_postMessage(channel=grant.requester_id, text=text, blocks=body)
        if grant.dm_channel and grant.dm_ts:  # the grant DM shows the new expiry, in place
            text, body = blocks.grant_message(grant)
            self.client.chat_update(channel=grant.dm_channel, ts=grant.dm_ts, text=text,
                                    blocks=body)

    @_slack_call
    def grant_expiring(self, grant: Grant) -> None:
        text, body = blocks.expiry_warning(grant, self.clock())
        self.client.chat_postMessage(channel=grant.requester_id, text=text, blocks=body)

    @_slack_call
    def grant_ended(self, grant: Grant) -> None:
        text, body = blocks.grant_message(grant)
        self.client.chat_postMessage(channel=grant.requester_id, text=text, blocks=body)
        if grant.dm_channel and grant.dm_ts:  # take the "I'm done" button off the old DM
            self.client.chat_update(channel=grant.dm_channel, ts=grant.dm_ts, text=text,
                                    blocks=body)

    @_slack_call
    def grant_failed(self, grant: Grant) -> None:
        text, body = blocks.grant_message(grant)
        self.client.chat_postMessage(channel=grant.requester_id, text=text, blocks=body)

    @_slack_call
    def admin_alert(self, text: str) -> None:
        if not self.catalog.admin_channel:
            log.error("admin alert (no admin_channel configured): %s", text)
            return
        self.client.chat_postMessage(channel=self.catalog.admin_channel, text=text)

    @_slack_call
    def email_of(self, slack_user_id: str) -> str | None:
        answer = self.client.users_info(user=slack_user_id)
        return (answer.get("user") or {}).get("profile", {}).get("email")

    @_slack_call
    def user_for_email(self, email: str) -> str | None:
        try:
            answer = self.client.users_lookupByEmail(email=email)
        except SlackApiError as exc:
            if exc.response.get("error") == "users_not_found":
                return None
            raise
        return (answer.get("user") or {}).get("id")

    # -- credential hygiene (services.hygiene_runner.HygieneNotifier) ------------------

    @property
    def _snooze(self):
        return self.catalog.hygiene.snooze

    @_slack_call
    def findings_digest(self, owner: str, rows: list[CredentialFinding]) -> tuple[str, str]:
        text, body = hygiene_blocks.findings_digest(rows, self.clock(), self._snooze,
                                                    to_channel=is_channel(owner))
        answer = self.client.chat_postMessage(channel=owner, text=text, blocks=body)
        return answer["channel"], answer["ts"]

    @_slack_call
    def update_findings_digest(self, channel: str, ts: str,
                               rows: list[CredentialFinding]) -> None:
        text, body = hygiene_blocks.findings_digest(rows, self.clock(), self._snooze,
                                                    to_channel=is_channel(channel))
        self.client.chat_update(channel=channel, ts=ts, text=text, blocks=body)

    @_slack_call
    def findings_superseded(self, channel: str, ts: str) -> None:
        text, body = hygiene_blocks.findings_superseded()
        self.client.chat_update(channel=channel, ts=ts, text=text, blocks=body)

    @_slack_call
    def findings_resolved(self, owner: str, rows: list[CredentialFinding]) -> None:
        text, body = hygiene_blocks.findings_resolved(rows)
        self.client.chat_postMessage(channel=owner, text=text, blocks=body)

    @_slack_call
    def findings_escalated(self, channel: str, rows: list[CredentialFinding]) -> None:
        text, body = hygiene_blocks.findings_escalated(rows, self.clock())
        self.client.chat_postMessage(channel=channel, text=text, blocks=body)

    @_slack_call
    def key_final_warning(self, owner: str, row: CredentialFinding, when) -> None:
        text, body = hygiene_blocks.key_final_warning(row, when, self._snooze)
        self.client.chat_postMessage(channel=owner, text=text, blocks=body)

    @_slack_call
    def findings_summary(self, channel: str, summary: Summary) -> None:
        text, body = hygiene_blocks.findings_summary(summary, self.clock())
        self.client.chat_postMessage(channel=channel, text=text, blocks=body)

    @_slack_call
    def account_audit(self, channel: str, deviations: list[Deviation]) -> None:
        text, body = hygiene_blocks.account_audit(deviations)
        self.client.chat_postMessage(channel=channel, text=text, blocks=body)
