"""The audit trail: every state change with who, when and why."""

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from accessbot.models import AccessRequest, AuditEvent, CredentialFinding, Grant, add_row
from accessbot.services.durations import format_duration
from accessbot.services.hygiene import describe

SYSTEM = "accessbot"


class Action(StrEnum):
    REQUESTED = "requested"
    ANNOUNCED = "announced"
    REQUEST_FAILED = "request_failed"
    APPROVED = "approved"
    APPROVAL_COUNTED = "approval_counted"  # N-of-M: an approval short of the last one
    EXTENDED = "extended"
    DENIED = "denied"
    REQUEST_EXPIRED = "request_expired"
    GRANTED = "granted"
    GRANT_FAILED = "grant_failed"
    GRANT_RETRY = "grant_retry"
    WARNED = "warned"
    ENDED_EARLY = "ended_early"
    REVOKED = "revoked"
    REVOKE_RETRY = "revoke_retry"
    ADMINS_ALERTED = "admins_alerted"
    FINDING_OPENED = "finding_opened"
    FINDING_TOLD = "finding_told"
    FINDING_FIXING = "finding_fixing"
    FINDING_SNOOZED = "finding_snoozed"
    FINDING_ESCALATED = "finding_escalated"
    FINDING_RESOLVED = "finding_resolved"
    KEY_FINAL_WARNING = "key_final_warning"
    KEY_DEACTIVATED = "key_deactivated"
    REVIEW_KEPT = "review_kept"
    REVIEW_REMOVED = "review_removed"
    REVIEW_GONE = "review_gone"
    REVIEW_ESCALATED = "review_escalated"
    REVIEW_UNANSWERED = "review_unanswered"
    ACTIVITY_SUMMARISED = "activity_summarised"
    ACTIVITY_UNAVAILABLE = "activity_unavailable"
    ROLE_SESSION_CAPPED = "role_session_capped"
    BREAK_GLASS_USED = "break_glass_used"
    BREAK_GLASS_REMINDED = "break_glass_reminded"
    BREAK_GLASS_ESCALATED = "break_glass_escalated"
    BREAK_GLASS_REVIEWED = "break_glass_reviewed"
    CANCELLED = "cancelled"
    REMINDED = "reminded"
    REVOKED_BY_OTHER = "revoked_by_other"


def record(session: Session, at: datetime, actor: str, action: Action, *,
           request_id: int | None = None, grant_id: int | None = None,
           finding_id: int | None = None, detail: str | None = None) -> None:
    add_row(session, AuditEvent, at=at, actor=actor, action=action.value,
            request_id=request_id, grant_id=grant_id, finding_id=finding_id, detail=detail)


# -- reading the trail (`accessbot audit`) ----------------------------------------------

@dataclass(frozen=True)
class TrailFilter:
    since: datetime | None = None
    user: str | None = None          # a Slack user id or an IAM user name
    resource: str | None = None
    request_id: int | None = None
    limit: int = 1000                # the most recent this many, oldest first


@dataclass(frozen=True)
class Entry:
    event: AuditEvent
    request: AccessRequest | None
    grant: Grant | None
    finding: CredentialFinding | None

    @property
    def resource(self) -> str | None:
        return (self.request.resource if self.request else
                self.grant.resource if self.grant else None)


def trail(session: Session, wanted: TrailFilter) -> list[Entry]:
    query = (select(AuditEvent, AccessRequest, Grant, CredentialFinding)
             .outerjoin(AccessRequest, AccessRequest.id == AuditEvent.request_id)
             .outerjoin(Grant, Grant.id == AuditEvent.grant_id)
             .outerjoin(CredentialFinding, CredentialFinding.id == AuditEvent.finding_id))
    if wanted.since is not None:
        query = query.where(AuditEvent.at >= wanted.since)
    if wanted.request_id is not None:
        query = query.where(AuditEvent.request_id == wanted.request_id)
    if wanted.resource is not None:
        query = query.where(or_(AccessRequest.resource == wanted.resource,
                                Grant.resource == wanted.resource))
    if wanted.user is not None:
        query = query.where(or_(AuditEvent.actor == wanted.user,
                                AccessRequest.requester_id == wanted.user,
                                AccessRequest.iam_user == wanted.user,
                                Grant.iam_user == wanted.user,
                                CredentialFinding.iam_user == wanted.user,
                                CredentialFinding.owner == wanted.user))
    rows = session.execute(query.order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
                           .limit(wanted.limit)).all()
    return [Entry(*row) for row in reversed(rows)]


SLACK_ID = re.compile(r"\b[UWCG](?=[0-9A-Z]*[0-9])[0-9A-Z]{4,}\b")  # in a detail: named


APPROVAL_DETAIL = re.compile(r"approved(?: \((\d+ of \d+)\))?(?: (for .+ asked))?")


def _approval_parts(detail: str) -> tuple[str | None, str | None]:
    """services/approvals.py's detail: ('2 of 3', 'for 30m of the 2h asked'), each or None."""
    found = APPROVAL_DETAIL.fullmatch(detail)
    return (found[1], found[2]) if found else (None, None)


def sentence(entry: Entry, name: Callable[[str], str]) -> str:
    """The event in words, with people's names (`name` maps a Slack id to one)."""
    event, request, grant, finding = entry.event, entry.request, entry.grant, entry.finding
    actor = "accessbot" if event.actor == SYSTEM else name(event.actor)
    detail = SLACK_ID.sub(lambda m: name(m.group(0)), event.detail or "")
    action = Action(event.action)
    if finding is not None:
        return _finding_sentence(action, actor, finding, detail, name)
    if action.value.startswith("review_"):
        return _review_sentence(action, actor, detail)
    who = name(request.requester_id) if request else name(grant.requester_id) if grant else "?"
    resource = entry.resource or "?"
    number = f"request #{request.id if request else event.request_id}"
    until = f"{grant.expires_at:%Y-%m-%d %H:%M:%S} UTC" if grant else "?"
    reason = f": “{request.reason}”" if request and request.reason else ""
    if action is Action.REQUESTED and request is not None and request.extends_grant_id:
        return (f"{actor} asked for {format_duration(request.duration)} more of {resource} "
                f"({number}){reason}")
    match action:
        case Action.REQUESTED:
            length = format_duration(request.duration) if request else "?"
            return f"{actor} asked for {resource} for {length} ({number}){reason}"
        case Action.ANNOUNCED:
            return f"accessbot asked {resource}'s approvers to decide {who}'s {number}"
        case Action.REQUEST_FAILED:
            return f"{who}'s {number} for {resource} failed: {detail}"
        case Action.APPROVED | Action.APPROVAL_COUNTED:
            length = format_duration(request.duration) if request else "?"
            count, less = _approval_parts(detail)
            return (f"{actor} approved {who}'s {number}: {resource} {less or f'for {length}'}"
                    + (f" ({count})" if count else "")
                    + ("; more approvals needed" if action is Action.APPROVAL_COUNTED else ""))
        case Action.DENIED:
            return f"{actor} denied {who}'s {number} for {resource}" + (
                f": “{detail}”" if detail else "")
        case Action.REQUEST_EXPIRED:
            return f"{who}'s {number} for {resource} expired before anyone decided"
        case Action.EXTENDED:
            return f"{actor} gave {who} more time on {resource}, {detail}"
        case Action.GRANTED:
            return (f"accessbot granted {who} {resource} as IAM user {grant.iam_user}, until "
                    f"{until}" if grant else f"accessbot granted {who} {resource}")
        case Action.GRANT_FAILED:
            return f"accessbot could not grant {who} {resource}: {detail}"
        case Action.GRANT_RETRY | Action.REVOKE_RETRY:
            doing = "granting" if action is Action.GRANT_RETRY else "revoking"
            return f"{doing} {resource} for {who} failed and is retried ({detail})"
        case Action.WARNED:
            return f"accessbot told {who} that {resource} ends at {until}"
        case Action.ENDED_EARLY:
            return f"{actor} ended their {resource} access early"
        case Action.REVOKED:
            return f"accessbot revoked {who}'s {resource} ({detail or 'expired'})"
        case Action.CANCELLED:
            return f"{actor} cancelled their {number} for {resource}"
        case Action.REMINDED:
            return f"accessbot reminded {resource}'s approvers of {who}'s {number} ({detail})"
        case Action.REVOKED_BY_OTHER:
            return f"{who}'s {resource} was {detail}"
        case Action.ADMINS_ALERTED:
            return f"accessbot alerted the admin channel: {resource} for {who} keeps failing"
        case Action.BREAK_GLASS_USED:
            return f"{actor} broke the glass ({number}): {detail}"
        case Action.BREAK_GLASS_REMINDED:
            return (f"accessbot reminded {detail or 'the approvers'} to review {who}'s "
                    f"break-glass {number}")
        case Action.BREAK_GLASS_ESCALATED:
            return (f"accessbot told the admin channel: {who}'s break-glass {number} was not "
                    "reviewed in time")
        case Action.BREAK_GLASS_REVIEWED:
            return f"{actor} reviewed {who}'s break-glass {number}" + (
                f": “{detail}”" if detail else "")
        case Action.ACTIVITY_SUMMARISED:
            return (f"accessbot looked up in CloudTrail what {who} did with {resource}: "
                    f"{_activity_counts(event.detail)}")
        case Action.ACTIVITY_UNAVAILABLE:
            return (f"accessbot could not look up what {who} did with {resource} in "
                    f"CloudTrail: {detail}")
    return f"{actor} {action.value.replace('_', ' ')} {resource}: {detail}"


def _review_sentence(action: Action, actor: str, detail: str) -> str:
    """The access review's decisions; the detail names the principal and the target."""
    match action:
        case Action.REVIEW_KEPT:
            return f"{actor} kept, in the access review: {detail}"
        case Action.REVIEW_REMOVED:
            return f"{actor} removed, in the access review: {detail}"
        case Action.REVIEW_GONE:
            return f"{actor} chose Remove, but it was already gone (checked live): {detail}"
        case Action.REVIEW_ESCALATED:
            return f"accessbot told the admin channel, undecided in the access review: {detail}"
        case Action.REVIEW_UNANSWERED:
            return f"the access review closed with nobody deciding: {detail}"
    return f"{actor} {action.value.replace('_', ' ')}: {detail}"


def _activity_counts(detail: str | None) -> str:
    """The counts of an activity summary's audit detail (services/activity.py, compact)."""
    try:
        found = json.loads(detail or "")
        counts = (f"{found['events']} events, {found['writes']} changes, "
                  f"{found['denied']} denied, {found['sign_ins']} console sign-ins")
    except (ValueError, KeyError, TypeError):
        return detail or "?"
    return ("at least " if found.get("truncated") else "") + counts


def _finding_sentence(action: Action, actor: str, finding: CredentialFinding, detail: str,
                      name: Callable[[str], str]) -> str:
    said = describe(finding.iam_user, finding.kind, finding.subject, finding.key_id)
    owner = (detail[len("told "):] if detail.startswith("told ") else
             name(finding.owner) if finding.owner else "the admin channel")
    match action:
        case Action.FINDING_OPENED:
            return f"accessbot found that {said}"
        case Action.FINDING_TOLD:
            return f"accessbot told {owner} that {said}"
        case Action.FINDING_FIXING:
            return f"{actor} said they will fix it: {said}"
        case Action.FINDING_SNOOZED:
            return f"{actor} snoozed “{said}” {detail}"
        case Action.FINDING_ESCALATED:
            return f"accessbot told the admin channel, unresolved: {said}"
        case Action.FINDING_RESOLVED:
            return f"resolved: {said} ({detail})" if detail else f"resolved: {said}"
        case Action.KEY_FINAL_WARNING:
            return f"accessbot warned {owner} that it will deactivate the key: {said}"
        case Action.KEY_DEACTIVATED:
            return f"{actor} deactivated {detail}" if detail else f"{actor} deactivated: {said}"
        case Action.ROLE_SESSION_CAPPED:
            return f"{actor} capped {detail}" if detail else f"{actor} capped: {said}"
    return f"{actor} {action.value.replace('_', ' ')}: {said}"
