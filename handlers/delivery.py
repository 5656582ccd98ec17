"""Turns an outbox row into the one Slack call that delivers it, and classifies failures.

Rendering happens at send time, from the database: what a message says is how things
stand when it leaves (services/outbox.py).
"""

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from sqlalchemy.orm import Session, joinedload

from accessbot.handlers import (
    activity_blocks,
    blocks,
    break_glass_blocks,
    hygiene_blocks,
    review_blocks,
)
from accessbot.handlers.client import slack_webhook
from accessbot.handlers.overview_blocks import home_view, overview_message
from accessbot.models import (
    ApprovalMessage,
    CredentialFinding,
    FindingStatus,
    GrantStatus,
    RequestStatus,
)
from accessbot.services import break_glass, findings, overview, reviews
from accessbot.services import grants as grant_ops
from accessbot.services import requests as request_ops
from accessbot.services.account_audit import Deviation
from accessbot.services.activity import Summary
from accessbot.services.catalog import Catalog, is_channel
from accessbot.services.errors import NotFound
from accessbot.services.outbox import Kind, Owed
from accessbot.services.people import UserGroups

log = logging.getLogger(__name__)

POST, UPDATE, RESPONSE_URL = "chat.postMessage", "chat.update", "response_url"
UPLOAD = "files.uploadV2"  # a file with a comment: three calls (files:write)
PUBLISH = "views.publish"  # a user's App Home tab

# Slack error codes that say "not now" rather than "never"
TRANSIENT_ERRORS = frozenset({"ratelimited", "internal_error", "fatal_error",
                              "service_unavailable", "request_timeout"})


@dataclass(frozen=True)
class SlackCall:
    method: str  # POST, UPDATE, RESPONSE_URL or UPLOAD
    args: dict
    # RESPONSE_URL: the DM that says the same if Slack refuses the response_url for good
    # (it answers five times at most, for 30 minutes after the click)
    fallback: "SlackCall | None" = None


@dataclass(frozen=True)
class Sent:
    channel: str | None
    ts: str | None


class DeliveryFailed(Exception):
    """Slack did not take a message: transient (retry) or not (the row fails)."""

    def __init__(self, reason: str, transient: bool, retry_after: float | None = None,
                 code: str = "unreachable"):
        super().__init__(reason)
        self.reason = reason
        self.transient = transient
        self.retry_after = retry_after
        self.code = code  # short, for metrics: Slack's error code, http_NNN, unreachable


def slack_hook(url: str, api_base: str) -> bool:
    """Whether a payload's response_url is Slack's own: on the Web API's origin, or on its
    hooks. host over https (https://hooks.slack.com/... beside https://slack.com/api/).
    The worker posts to it, so no other address (an internal one, say) is ever called."""
    try:
        hook, api = urlsplit(url), urlsplit(api_base)
    except ValueError:  # not a URL (a bracketed host that is not an IPv6 address)
        return False
    return ((hook.scheme, hook.netloc) == (api.scheme, api.netloc)
            or (hook.scheme, hook.netloc) == ("https", f"hooks.{api.netloc}"))


class Delivery:
    def __init__(self, client: WebClient, catalog: Catalog, groups: UserGroups | None = None):
        self.client = client
        self.catalog = catalog
        self.groups = groups  # user groups in approvers and admins (None: not resolved)
        self._render: dict[Kind, Callable[[Session, dict, datetime], SlackCall | None]] = {
            Kind.REQUEST_COPY: self._request_copy,
            Kind.REQUEST_COPY_UPDATE: self._copy_update,
            Kind.DECISION_REPLY: self._decision_reply,
            Kind.REQUEST_SUBMITTED: self._request_submitted,
            Kind.REQUEST_FAILED: self._request_failed,
            Kind.REQUEST_DECIDED: self._request_decided,
            Kind.GRANT_ACTIVE: self._grant_active,
            Kind.GRANT_DM_UPDATE: self._grant_dm_update,
            Kind.GRANT_EXTENDED: self._grant_extended,
            Kind.GRANT_EXPIRING: self._grant_expiring,
            Kind.GRANT_ENDED: self._grant_post(blocks.grant_message),
            Kind.GRANT_FAILED: self._grant_post(blocks.grant_message),
            Kind.GRANT_PARTLY: self._grant_partly,
            Kind.ADMIN_ALERT: self._admin_alert,
            Kind.REPLY: self._reply,
            Kind.FINDINGS_DIGEST: self._findings_digest,
            Kind.FINDINGS_LIST: self._findings_list,
            Kind.FINDINGS_UPDATE: self._findings_update,
            Kind.FINDINGS_RESOLVED: self._findings_resolved,
            Kind.FINDINGS_ESCALATED: self._findings_escalated,
            Kind.KEY_FINAL_WARNING: self._key_final_warning,
            Kind.FINDINGS_SUMMARY: self._findings_summary,
            Kind.FINDINGS_PREVIEW: self._findings_preview,
            Kind.ACCOUNT_AUDIT: self._account_audit,
            Kind.REVIEW_ASK: self._review_ask,
            Kind.REVIEW_UPDATE: self._review_update,
            Kind.REVIEW_ESCALATED: self._review_escalated,
            Kind.REVIEW_OUTCOME: self._review_outcome,
            Kind.ACTIVITY_REPLY: self._activity_reply,
            Kind.ACTIVITY_DM: self._activity_dm,
            Kind.OVERVIEW: self._overview,
            Kind.HOME_REFRESH: self._home_refresh,
            Kind.BREAK_GLASS_REMINDER: self._break_glass_reminder,
            Kind.BREAK_GLASS_ESCALATED: self._break_glass_escalated,
            Kind.WAITING_DM_UPDATE: self._waiting_dm_update,
            Kind.REQUEST_REMINDER: self._request_reminder,
        }

    def render(self, session: Session, owed: Owed, now: datetime) -> SlackCall | None:
        """The call that delivers `owed`; None when nothing is left to say (raises NotFound
        when what it is about is gone)."""
        return self._render[owed.kind](session, owed.args, now)

    def send(self, call: SlackCall) -> Sent:
        """Make the call; DeliveryFailed says whether trying again can help."""
        try:
            if call.method == RESPONSE_URL:
                try:
                    return self._respond(call.args)
                except DeliveryFailed as exc:
                    if exc.transient or call.fallback is None:
                        raise
                    log.info("the response_url refused an answer (%s): sent as a DM", exc.code)
                    return self.send(call.fallback)
            if call.method == UPDATE:
                answer = self.client.chat_update(**call.args)
            elif call.method == PUBLISH:
                self.client.views_publish(**call.args)
                return Sent(None, None)
            elif call.method == UPLOAD:
                self.client.files_upload_v2(**call.args, request_file_info=False)
                return Sent(call.args["channel"], None)
            else:
                answer = self.client.chat_postMessage(**call.args)
        except SlackApiError as exc:
            raise _api_failure(exc) from exc
        except (SlackClientError, OSError, ValueError) as exc:  # timeout, refused, not JSON
            raise DeliveryFailed(f"Slack unreachable: {exc}", transient=True) from exc
        return Sent(answer.get("channel"), answer.get("ts"))

    def _respond(self, args: dict) -> Sent:
        args = dict(args)
        answer = slack_webhook(args.pop("url"), timeout=10).send(**args)
        error = _webhook_error(answer.body)
        if answer.status_code == 200 and error is None:
            return Sent(None, None)
        transient = answer.status_code == 429 or answer.status_code >= 500
        retry_after = _seconds(answer.headers.get("Retry-After")) if answer.headers else None
        raise DeliveryFailed(f"response_url answered {answer.status_code} {answer.body[:100]}",
                             transient, retry_after, code=error or f"http_{answer.status_code}")

    # -- requests --------------------------------------------------------------------

    def _request_message(self, request):
        resource = self.catalog.resources.get(request.resource)
        if request.break_glass:  # its loud copy, and its review
            return break_glass_blocks.break_glass_message(request, resource)
        return blocks.request_message(request, resource)

    def _request_copy(self, session, args, now):
        request = request_ops.get_request(session, args["request_id"])
        text, body = self._request_message(request)
        return SlackCall(POST, {"channel": args["destination"], "text": text, "blocks": body})

    def _copy(self, session, args) -> ApprovalMessage:
        message = session.get(ApprovalMessage, args["message_id"],
                              options=[joinedload(ApprovalMessage.request)])
        if message is None:
            raise NotFound(f"approval message #{args['message_id']} is gone")
        return message

    def _copy_update(self, session, args, now):
        message = self._copy(session, args)
        text, body = self._request_message(message.request)
        return SlackCall(UPDATE, {"channel": message.channel, "ts": message.ts, "text": text,
                                  "blocks": body})

    def _decision_reply(self, session, args, now):
        message = self._copy(session, args)
        request = message.request
        review = request.break_glass_review if request.break_glass else None
        text = break_glass_blocks.review_text(review) if review is not None \
            else blocks.decision_text(request)
        return SlackCall(POST, {"channel": message.channel, "thread_ts": message.ts,
                                "text": text})

    def _request_submitted(self, session, args, now):
        request = request_ops.get_request(session, args["request_id"])
        resource = self.catalog.resources.get(request.resource)
        if resource is None:
            raise NotFound(f"resource {request.resource} is no longer in the catalog")
        return _post(request.requester_id, blocks.submitted_message(request, resource))

    def _waiting_dm_update(self, session, args, now):
        request = request_ops.get_request(session, args["request_id"])
        resource = self.catalog.resources.get(request.resource)
        if not request.waiting_dm_ts or resource is None:
            return None  # never posted (it will render the state it finds), or unsayable
        text, body = blocks.submitted_message(request, resource)
        return SlackCall(UPDATE, {"channel": request.waiting_dm_channel,
                                  "ts": request.waiting_dm_ts, "text": text, "blocks": body})

    def _request_reminder(self, session, args, now):
        request = request_ops.get_request(session, args["request_id"])
        if request.status is not RequestStatus.PENDING:
            return None  # decided while the reminder waited: nothing to remind of
        if args.get("message_id"):
            copy = self._copy(session, args)
            text, body = blocks.reminder_message(request, args["approvers"], args["number"],
                                                 in_thread=True)
            return SlackCall(POST, {"channel": copy.channel, "thread_ts": copy.ts,
                                    "text": text, "blocks": body})
        return _post(args["destination"], blocks.reminder_message(
            request, args["approvers"], args["number"], in_thread=False))

    def _request_failed(self, session, args, now):
        request = request_ops.get_request(session, args["request_id"])
        return _post(request.requester_id, blocks.request_failed(request, args["why"]))

    def _request_decided(self, session, args, now):
        request = request_ops.get_request(session, args["request_id"])
        return _post(request.requester_id, blocks.request_outcome(request))

    # -- grants ----------------------------------------------------------------------

    def _grant_post(self, build):
        def render(session, args, now):
            grant = grant_ops.get_grant(session, args["grant_id"])
            return _post(grant.requester_id, build(grant))

        return render

    def _grant_partly(self, session, args, now):
        grant = grant_ops.get_grant(session, args["grant_id"])
        if grant.status is not GrantStatus.PENDING:
            return None  # in place everywhere, or failed, meanwhile: that DM says so
        return _post(grant.requester_id,
                     blocks.grant_partly(grant, args["done"], args["failed"]))

    def _grant_active(self, session, args, now):
        grant = grant_ops.get_grant(session, args["grant_id"])
        if grant.status is not GrantStatus.ACTIVE:
            return None  # ended while this waited: the "ended" DM behind it says so
        return _post(grant.requester_id, blocks.grant_message(grant, self._conditions(grant)))

    def _conditions(self, grant) -> str:
        resource = self.catalog.resources.get(grant.resource)
        return resource.conditions_text() if resource else ""

    def _grant_dm_update(self, session, args, now):
        grant = grant_ops.get_grant(session, args["grant_id"])
        if not grant.dm_ts:
            return None  # the grant DM never went out; what follows it says it all
        text, body = blocks.grant_message(grant, self._conditions(grant))
        return SlackCall(UPDATE, {"channel": grant.dm_channel, "ts": grant.dm_ts, "text": text,
                                  "blocks": body})

    def _grant_extended(self, session, args, now):
        grant = grant_ops.get_grant(session, args["grant_id"])
        if grant.status is not GrantStatus.ACTIVE:
            return None
        request = request_ops.get_request(session, args["request_id"])
        return _post(grant.requester_id, blocks.extension_granted(grant, request))

    def _grant_expiring(self, session, args, now):
        grant = grant_ops.get_grant(session, args["grant_id"])
        if grant.expires_at <= now:
            return None  # it has ended while the warning waited: the end DM says so
        return _post(grant.requester_id, blocks.expiry_warning(grant, now))

    def _activity(self, session, args):
        grant = grant_ops.get_grant(session, args["grant_id"])
        if not grant.activity:
            raise NotFound(f"grant #{grant.id} has no activity summary")
        return grant, Summary.from_json(json.loads(grant.activity))

    def _activity_reply(self, session, args, now):
        message = self._copy(session, args)
        text, body = activity_blocks.activity_summary(*self._activity(session, args))
        return SlackCall(POST, {"channel": message.channel, "thread_ts": message.ts,
                                "text": text, "blocks": body})

    def _activity_dm(self, session, args, now):
        grant, summary = self._activity(session, args)
        return _post(grant.requester_id,
                     activity_blocks.activity_summary(grant, summary, to_requester=True))

    # -- people and admins --------------------------------------------------------------

    def _admin(self, what: str) -> str | None:
        if not self.catalog.admin_channel:
            log.error("no admin_channel configured; not sent: %s", what)
        return self.catalog.admin_channel

    def _admin_alert(self, session, args, now):
        channel = self._admin(args["text"])
        return SlackCall(POST, {"channel": channel, "text": args["text"]}) if channel else None

    def _hook(self, args: dict) -> str | None:
        """The response_url to answer through; None (a DM) when there is none, or when it
        is not Slack's (slack_hook)."""
        url = args.get("response_url")
        if url and not slack_hook(url, self.client.base_url):  # SLACK_API_URL, else Slack's
            log.warning("a response_url outside Slack (%r): answered by DM instead", url[:200])
            return None
        return url

    def _reply(self, session, args, now):
        dm = SlackCall(POST, {"channel": args["user_id"], "text": args["text"]})
        if url := self._hook(args):
            return SlackCall(RESPONSE_URL, {"url": url, "text": args["text"],
                                            "response_type": "ephemeral",
                                            "replace_original": False}, dm)
        return dm

    # -- the overview: /request-access list and App Home -----------------------------------

    def _user_overview(self, session, args, now):
        return overview.overview(session, self.catalog, args["user_id"], self.groups, now)

    def _overview(self, session, args, now):
        text, body = overview_message(self._user_overview(session, args, now))
        dm = SlackCall(POST, {"channel": args["user_id"], "text": text, "blocks": body})
        if url := self._hook(args):
            return SlackCall(RESPONSE_URL, {"url": url, "text": text,
                                            "blocks": body, "response_type": "ephemeral",
                                            "replace_original": False}, dm)
        return dm

    def _home_refresh(self, session, args, now):
        return SlackCall(PUBLISH, {"user_id": args["user_id"], "view": home_view(
            self._user_overview(session, args, now))})

    # -- credential hygiene ---------------------------------------------------------------

    @property
    def _snooze(self) -> timedelta:
        return self.catalog.hygiene.snooze

    def _findings_digest(self, session, args, now):
        rows = [findings.get_finding(session, i) for i in args["finding_ids"]]
        return _post(args["owner"], hygiene_blocks.findings_digest(
            rows, now, self._snooze, to_channel=is_channel(args["owner"]),
            cap=self.catalog.hygiene.policy.max_role_session))

    def _findings_list(self, session, args, now):
        rows = [row for row in findings.get_findings(session, args["finding_ids"])
                if row.status is FindingStatus.OPEN]  # fixed meanwhile: left out
        if not rows:
            return None
        comment, table = hygiene_blocks.findings_list(rows, now)
        return SlackCall(UPLOAD, {"channel": args["owner"], "initial_comment": comment,
                                  "content": table, "title": "Stale AWS credentials",
                                  "filename": f"stale-credentials-{now:%Y-%m-%d}.csv"})

    def _findings_update(self, session, args, now):
        channel, ts = args["channel"], args["ts"]
        rows = findings.in_message(session, channel, ts)
        text, body = (hygiene_blocks.findings_digest(
                          rows, now, self._snooze, to_channel=is_channel(channel),
                          cap=self.catalog.hygiene.policy.max_role_session)
                      if rows else hygiene_blocks.findings_superseded())
        return SlackCall(UPDATE, {"channel": channel, "ts": ts, "text": text, "blocks": body})

    def _findings_resolved(self, session, args, now):
        rows = [findings.get_finding(session, i) for i in args["finding_ids"]]
        return _post(args["owner"], hygiene_blocks.findings_resolved(rows))

    def _findings_escalated(self, session, args, now):
        channel = self._admin("findings escalation")
        rows = [findings.get_finding(session, i) for i in args["finding_ids"]]
        return _post(channel, hygiene_blocks.findings_escalated(rows, now)) if channel else None

    def _key_final_warning(self, session, args, now):
        row = findings.get_finding(session, args["finding_id"])
        when = datetime.fromisoformat(args["when"])
        return _post(args["owner"], hygiene_blocks.key_final_warning(row, when, self._snooze))

    def _findings_summary(self, session, args, now):
        channel = self._admin("weekly summary")
        summary = findings.summary(session, datetime.fromisoformat(args["at"]),
                                   timedelta(seconds=args["period_seconds"]))
        return _post(channel, hygiene_blocks.findings_summary(summary, now)) if channel else None

    def _findings_preview(self, session, args, now):
        channel = self._admin("report-mode preview")
        if not channel:
            return None
        by_owner = {owner: list(filter(None, (session.get(CredentialFinding, i) for i in ids)))
                    for owner, ids in args["by_owner"].items()}  # a finding gone: left out
        return _post(channel, hygiene_blocks.findings_preview(by_owner, now))

    def _account_audit(self, session, args, now):
        channel = self._admin("account audit")
        deviations = [Deviation(*d) for d in args["deviations"]]
        return _post(channel, hygiene_blocks.account_audit(
            deviations, args.get("account", ""))) if channel else None

    # -- the access review -----------------------------------------------------------------

    def _review_ask(self, session, args, now):
        rows = reviews.get_items(session, args["item_ids"])
        if not rows:
            return None
        return _post(args["destination"], review_blocks.review_message(
            rows, reminder=args.get("reminder", False)))

    def _review_update(self, session, args, now):
        channel, ts = args["channel"], args["ts"]
        rows = reviews.in_message(session, channel, ts)
        escalated = bool(rows) and channel == self.catalog.admin_channel and all(
            r.escalated_at for r in rows)
        text, body = (review_blocks.review_message(rows, escalated=escalated) if rows
                      else review_blocks.review_gone())
        return SlackCall(UPDATE, {"channel": channel, "ts": ts, "text": text, "blocks": body})

    def _review_escalated(self, session, args, now):
        channel = self._admin("access review escalation")
        rows = reviews.get_items(session, args["item_ids"])
        if not channel or not rows:
            return None
        return _post(channel, review_blocks.review_message(rows, escalated=True))

    def _review_outcome(self, session, args, now):
        channel = self._admin("access review outcome")
        if not channel:
            return None
        run = reviews.get_run(session, args["run_id"])
        return _post(channel, review_blocks.review_outcome(
            reviews.outcome(session, run.id), reviews.run_items(session, run.id), run.account))

    # -- break-glass ------------------------------------------------------------------------

    def _break_glass_reminder(self, session, args, now):
        review = break_glass.get_review(session, args["review_id"])
        if review.reviewed_at is not None:
            return None  # reviewed while this waited
        return _post(args["approver_id"],
                     break_glass_blocks.reminder(review))

    def _break_glass_escalated(self, session, args, now):
        channel = self._admin("break-glass escalation")
        review = break_glass.get_review(session, args["review_id"])
        resource = self.catalog.resources.get(review.request.resource)
        approvers = sorted(resource.approvers) if resource else []
        return _post(channel, break_glass_blocks.escalated(review, approvers)) \
            if channel else None


def _post(channel: str, message: blocks.Message) -> SlackCall:
    text, body = message
    return SlackCall(POST, {"channel": channel, "text": text, "blocks": body})


def _api_failure(exc: SlackApiError) -> DeliveryFailed:
    response = exc.response
    error = response.get("error") if isinstance(response.data, dict) else None
    status = response.status_code
    transient = status == 429 or status >= 500 or error in TRANSIENT_ERRORS
    retry_after = _seconds((response.headers or {}).get("Retry-After")
                           or (response.headers or {}).get("retry-after"))
    return DeliveryFailed(f"Slack said {error or status}", transient, retry_after,
                          code=error or f"http_{status}")


def _webhook_error(body: str) -> str | None:
    """A response_url's refusal in its body (`{"ok": false, "error": "expired_url"}`);
    None for its "ok"."""
    try:
        answer = json.loads(body)
    except ValueError:
        return None
    if isinstance(answer, dict) and answer.get("ok") is False:
        return str(answer.get("error") or "not_ok")[:100]
    return None


def _seconds(value) -> float | None:
    if isinstance(value, list):
        value = value[0] if value else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
