"""A request's and a grant's life besides the decision: reminders to approvers who have not
answered, Cancel by the requester, Revoke by an approver or an admin (the lifetime cap on
extensions is services/extensions.py's). One transaction each, opened by the caller.
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from accessbot.models import AccessRequest, Grant, GrantStatus, RequestStatus
from accessbot.services import audit, messages, people
from accessbot.services.audit import Action
from accessbot.services.catalog import Catalog, Resource, is_channel
from accessbot.services.errors import Conflict, NotAuthorized
from accessbot.services.grants import get_grant
from accessbot.services.people import UserGroups
from accessbot.services.requests import describe_decision, get_request

MAX_REMINDERS = 3
MAX_REVOKE_REASON = 500
_LIVE = (GrantStatus.PENDING, GrantStatus.ACTIVE)


# -- reminders ------------------------------------------------------------------------

def schedule_reminders(session: Session, request: AccessRequest, resource: Resource | None,
                       now: datetime) -> None:
    """The first reminder is due remind_after from now (the approvers were just asked)."""
    if resource is None:
        return
    session.execute(update(AccessRequest)
                    .where(AccessRequest.id == request.id, AccessRequest.reminders_sent == 0)
                    .values(next_reminder_at=now + resource.remind_after))


def next_reminder(resource: Resource, sent: int, now: datetime) -> datetime | None:
    """After the `sent`-th reminder: the next one at doubling intervals, three at most."""
    if sent >= MAX_REMINDERS:
        return None
    return now + resource.remind_after * 2 ** sent


@dataclass(frozen=True)
class Reminder:
    request_id: int
    number: int  # 1, 2 or 3
    approvers: frozenset[str]


def send_due_reminders(session: Session, catalog: Catalog, groups: UserGroups | None,
                       now: datetime, limit: int = 200) -> list[Reminder]:
    """Owe a reminder to every approver who has not answered a pending request that is
    due one; each reminder is claimed compare-and-set, so two sweeps never send it twice."""
    due = session.scalars(
        select(AccessRequest)
        .where(AccessRequest.status == RequestStatus.PENDING,
               AccessRequest.next_reminder_at <= now,
               AccessRequest.reminders_sent < MAX_REMINDERS)
        .order_by(AccessRequest.next_reminder_at).limit(limit)).all()
    sent: list[Reminder] = []
    for request in due:
        resource = catalog.resources.get(request.resource)
        number = request.reminders_sent + 1
        claimed = session.execute(
            update(AccessRequest)
            .where(AccessRequest.id == request.id,
                   AccessRequest.status == RequestStatus.PENDING,
                   AccessRequest.reminders_sent == request.reminders_sent)
            .values(reminders_sent=number,
                    next_reminder_at=next_reminder(resource, number, now) if resource else None)
            .execution_options(synchronize_session=False)).rowcount
        if claimed != 1 or resource is None:
            continue
        waiting = undecided(request, resource, groups)
        if not waiting:
            continue
        _owe_reminder(session, request, waiting, number, now)
        audit.record(session, now, audit.SYSTEM, Action.REMINDED, request_id=request.id,
                     detail=f"reminder {number} of {MAX_REMINDERS} to "
                            + ", ".join(sorted(waiting)))
        sent.append(Reminder(request.id, number, waiting))
    return sent


def undecided(request: AccessRequest, resource: Resource,
              groups: UserGroups | None) -> frozenset[str]:
    """The approvers who have not answered (while pending, one answer settles it: all)."""
    return people.approvers(resource, groups, request.requester_id)


def _owe_reminder(session: Session, request: AccessRequest, waiting: frozenset[str],
                  number: int, now: datetime) -> None:
    """A DM to each approver who has a copy in their DMs (or none anywhere); a thread reply
    mentioning the others on the channel copy: one message per approver per reminder."""
    channel_copy = next((m for m in request.messages if is_channel(m.destination)), None)
    own_copies = {m.destination for m in request.messages if not is_channel(m.destination)}
    in_thread = sorted(a for a in waiting if a not in own_copies) if channel_copy else []
    for approver in sorted(waiting - set(in_thread)):
        messages.request_reminder(session, request, approver, [approver], None, number, now)
    if in_thread:
        messages.request_reminder(session, request, channel_copy.destination, in_thread,
                                  channel_copy.id, number, now)


# -- Cancel -----------------------------------------------------------------------------

def cancel_request(session: Session, request_id: int, user_id: str,
                   now: datetime) -> AccessRequest:
    """PENDING -> CANCELLED by the requester, compare-and-set; every copy says so."""
    request = get_request(session, request_id)
    if user_id != request.requester_id:
        raise NotAuthorized(f"Only <@{request.requester_id}> can cancel request #{request.id}.")
    changed = session.execute(
        update(AccessRequest)
        .where(AccessRequest.id == request_id, AccessRequest.status == RequestStatus.PENDING)
        .values(status=RequestStatus.CANCELLED, decided_by=user_id, decided_at=now,
                decision_reason=None, next_reminder_at=None)
        .execution_options(synchronize_session=False)).rowcount
    session.refresh(request)
    if changed != 1:
        raise Conflict(describe_decision(request.id, request.status, request.decided_by))
    audit.record(session, now, user_id, Action.CANCELLED, request_id=request_id)
    messages.request_decided(session, request, now)  # the waiting DM loses its button too
    return request


# -- Revoke by an approver or an admin -----------------------------------------------------

def check_can_revoke(session: Session, catalog: Catalog, groups: UserGroups | None,
                     grant_id: int, user_id: str, now: datetime) -> Grant:
    """Raise unless this user may revoke this live grant now (an approver of its resource,
    or an admin; never its holder, who has "I'm done")."""
    grant = get_grant(session, grant_id)
    if user_id == grant.requester_id:
        raise NotAuthorized("This is your own access: end it with \"I'm done\" in my DM.")
    resource = catalog.resources.get(grant.resource)
    approver = resource is not None and people.may_approve(resource, user_id,
                                                           grant.requester_id, groups)
    if not (approver or people.is_admin(catalog, user_id, groups)):
        raise NotAuthorized(f"Only the approvers of {grant.resource} and the admins can "
                            "revoke this access.")
    if grant.status not in _LIVE or grant.expires_at <= now or grant.end_reason:
        raise Conflict(f"<@{grant.requester_id}>'s access to {grant.resource} has already "
                       "ended" + (f" ({grant.end_reason})." if grant.end_reason else "."))
    return grant


def revoke_by(session: Session, catalog: Catalog, groups: UserGroups | None, grant_id: int,
              user_id: str, reason: str | None, now: datetime) -> Grant:
    """End a live grant now on an approver's or admin's word: its expiry moves to now (the
    revoker takes it at once, as after "I'm done"), and who and why are kept."""
    grant = check_can_revoke(session, catalog, groups, grant_id, user_id, now)
    reason = " ".join((reason or "").split())[:MAX_REVOKE_REASON] or None
    changed = session.execute(
        update(Grant)
        .where(Grant.id == grant_id, Grant.status.in_(_LIVE), Grant.expires_at > now,
               Grant.end_reason.is_(None))
        .values(expires_at=now, end_reason=f"revoked by {user_id}"[:64], revoked_by=user_id,
                revoke_reason=reason)
        .execution_options(synchronize_session=False)).rowcount
    if changed != 1:
        raise Conflict(f"<@{grant.requester_id}>'s access to {grant.resource} has already "
                       "ended.")
    audit.record(session, now, user_id, Action.REVOKED_BY_OTHER, request_id=grant.request_id,
                 grant_id=grant_id,
                 detail=f"revoked by {user_id}" + (f": {reason}" if reason else ""))
    grant = session.get(Grant, grant_id, populate_existing=True)
    messages.grant_copies_updated(session, grant, now)  # Revoke leaves every copy
    return grant
