"""Granted without an approver: `approval: none`, and break-glass with its review.

Both go the normal way (a request, announced once its IAM user is known, a grant applied
by the runner on the AWS pool); the announcement decides them at once instead of asking.
A break-glass grant is told loudly (approval channel, every approver, the admin channel)
in the decision's transaction and opens a review: an approver marks it Reviewed with a
note within break_glass_review_within, is reminded half way, and the admins hear once
when it is overdue.
"""

import json
import logging
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from accessbot.models import AccessRequest, BreakGlassReview, Grant
from accessbot.services import audit, messages, people
from accessbot.services import requests as request_ops
from accessbot.services.audit import Action
from accessbot.services.catalog import Catalog, Resource
from accessbot.services.commands import MAX_REASON, BreakGlass, make_break_glass
from accessbot.services.durations import format_duration
from accessbot.services.errors import Conflict, InvalidInput, NotAuthorized, NotFound
from accessbot.services.people import UserGroups
from accessbot.services.ports import LookupFailed

log = logging.getLogger(__name__)

NO_APPROVAL = "approval: none"
BREAK_GLASS = "break-glass"


# -- what the requester typed, carried through a confirmation -----------------------------

def pack(resource: str, duration_text: str | None, reason: str) -> str:
    """A break-glass request as typed, for the confirmation's button or modal to carry; it
    is validated again on confirm, as if typed again (it grants nothing by itself)."""
    return json.dumps([resource, duration_text, reason], ensure_ascii=False)


def unpack(catalog: Catalog, user_id: str, packed: str) -> BreakGlass:
    try:
        resource, duration_text, reason = json.loads(packed)
        if not all(isinstance(v, str | None) for v in (resource, duration_text, reason)):
            raise ValueError("not text")
    except (ValueError, TypeError):
        raise InvalidInput("That break-glass confirmation is not valid any more.") from None
    return make_break_glass(catalog, user_id, resource or "", duration_text, reason or "")


# -- submit -------------------------------------------------------------------------------

def create(session: Session, catalog: Catalog, requester_id: str, glass: BreakGlass,
           now: datetime) -> AccessRequest:
    """Record a break-glass request; its announcement grants it (the runner's announce)."""
    request = request_ops.create_request(session, catalog, requester_id, glass.draft, now)
    request.break_glass = True
    detail = f"{glass.draft.resource.name} for {format_duration(glass.draft.duration)}"
    if glass.cut:
        detail += (f" (asked for {format_duration(glass.asked)}, cut to "
                   "break_glass_max_duration)")
    audit.record(session, now, requester_id, Action.BREAK_GLASS_USED, request_id=request.id,
                 detail=f"{detail}: {glass.draft.reason}")
    return request


def submitted_text(request: AccessRequest, glass: BreakGlass) -> str:
    """The requester's answer once the break-glass is recorded (plain; mrkdwn-escaped by
    the sender's reply as any reply text)."""
    text = (f":rotating_light: Break-glass request #{request.id}: you get "
            f"{request.resource} for {format_duration(request.duration)} at once.")
    if glass.cut:
        text += (f" You asked for {format_duration(glass.asked)}; break-glass lasts at most "
                 f"{format_duration(glass.draft.duration)} here.")
    return text + (" The approval channel, every approver and the admins are being told, "
                   "with your reason, and an approver will review it.")


# -- the announcement decides -------------------------------------------------------------

def grants_itself(request: AccessRequest, resource: Resource) -> bool:
    """Decided when announced, without asking anyone (not for extensions)."""
    return request.extends_grant_id is None and (request.break_glass
                                                 or not resource.needs_approval)


def decide(session: Session, catalog: Catalog, groups: UserGroups | None,
           request: AccessRequest, resource: Resource, now: datetime) -> Grant | None:
    """Grant an announced request that needs no approver, and owe what it tells: the
    approval channel's copy (break-glass: also every approver and the admin channel, and
    a review opens). None when it cannot be granted (the request then FAILED, told)."""
    actor, reason = (request.requester_id, BREAK_GLASS) if request.break_glass \
        else (audit.SYSTEM, NO_APPROVAL)
    try:
        grant = request_ops.grant_at_once(session, catalog, request.id, actor, reason, now)
    except Conflict as exc:  # already has it (another request), or decided meanwhile
        request_ops.fail_request(session, request.id, str(exc), now)
        return None
    channel = catalog.approval_channel_for(resource)
    destinations = [channel] if channel else []
    if request.break_glass:
        within = resource.break_glass_review_within
        session.add(BreakGlassReview(request_id=request.id, grant_id=grant.id, opened_at=now,
                                     due_at=now + within, remind_at=now + within / 2))
        destinations += sorted(_approvers(resource, groups, request.requester_id))
        if catalog.admin_channel and catalog.admin_channel not in destinations:
            destinations.append(catalog.admin_channel)
    messages.request_copies(session, request, destinations, now)
    return grant


def _approvers(resource: Resource, groups: UserGroups | None,
               requester_id: str) -> frozenset[str]:
    try:
        return people.approvers(resource, groups, requester_id)
    except LookupFailed as exc:  # a group never read: its listed users are told at least
        log.warning("break-glass on %s: user groups unknown (%s)", resource.name, exc)
        return people.approvers(resource, None, requester_id)


# -- the review ---------------------------------------------------------------------------

def get_review(session: Session, review_id: int) -> BreakGlassReview:
    review = session.get(BreakGlassReview, review_id)
    if review is None:
        raise NotFound(f"Break-glass review #{review_id} does not exist.")
    return review


def check_can_review(session: Session, catalog: Catalog, groups: UserGroups | None,
                     review_id: int, user_id: str) -> BreakGlassReview:
    """Raise unless this user may mark this review Reviewed now."""
    review = get_review(session, review_id)
    request = review.request
    if user_id == request.requester_id:
        raise NotAuthorized("You cannot review your own break-glass.")
    resource = catalog.resources.get(request.resource)
    if resource is None or not people.may_approve(resource, user_id, request.requester_id,
                                                  groups):
        raise NotAuthorized(f"Only the approvers of {request.resource} can review "
                            f"break-glass #{request.id}.")
    if review.reviewed_at is not None:
        raise Conflict(_already(review))
    return review


def mark_reviewed(session: Session, catalog: Catalog, groups: UserGroups | None,
                  review_id: int, user_id: str, note: str | None,
                  now: datetime) -> BreakGlassReview:
    """Open -> reviewed, exactly once (compare-and-set), with the note; every copy shows it."""
    note = " ".join((note or "").split())
    if not note:
        raise InvalidInput("Please write a note on what you checked.")
    if len(note) > MAX_REASON:
        raise InvalidInput(f"The note is too long ({len(note)} characters; at most "
                           f"{MAX_REASON}).")
    review = check_can_review(session, catalog, groups, review_id, user_id)
    changed = session.execute(
        update(BreakGlassReview)
        .where(BreakGlassReview.id == review_id, BreakGlassReview.reviewed_at.is_(None))
        .values(reviewed_by=user_id, reviewed_at=now, note=note)
        .execution_options(synchronize_session=False)).rowcount
    session.refresh(review)
    if changed != 1:
        raise Conflict(_already(review))
    audit.record(session, now, user_id, Action.BREAK_GLASS_REVIEWED,
                 request_id=review.request_id, grant_id=review.grant_id, detail=note)
    messages.break_glass_reviewed(session, review.request, now)
    return review


def _already(review: BreakGlassReview) -> str:
    return (f"Break-glass #{review.request_id} was already reviewed by "
            f"<@{review.reviewed_by}>.")


def follow_up(session: Session, catalog: Catalog, groups: UserGroups | None,
              now: datetime) -> dict[str, list[int]]:
    """Remind the approvers of open reviews half way to their due time, and tell the admin
    channel once about each one overdue. Returns the review ids reminded and escalated."""
    open_ = BreakGlassReview.reviewed_at.is_(None)
    done: dict[str, list[int]] = {"reminded": [], "escalated": []}
    for review in session.scalars(select(BreakGlassReview).where(
            open_, BreakGlassReview.reminded_at.is_(None), BreakGlassReview.remind_at <= now,
            BreakGlassReview.due_at > now).order_by(BreakGlassReview.id).limit(200)):
        if not _claim(session, review.id, BreakGlassReview.reminded_at, now):
            continue
        resource = catalog.resources.get(review.request.resource)
        approvers = _approvers(resource, groups, review.request.requester_id) \
            if resource else frozenset()
        for approver in sorted(approvers):
            messages.break_glass_reminder(session, approver, review.id, now)
        audit.record(session, now, audit.SYSTEM, Action.BREAK_GLASS_REMINDED,
                     request_id=review.request_id, grant_id=review.grant_id,
                     detail=", ".join(sorted(approvers)) or None)
        done["reminded"].append(review.id)
    for review in session.scalars(select(BreakGlassReview).where(
            open_, BreakGlassReview.escalated_at.is_(None), BreakGlassReview.due_at <= now)
            .order_by(BreakGlassReview.id).limit(200)):
        if not _claim(session, review.id, BreakGlassReview.escalated_at, now):
            continue
        messages.break_glass_escalated(session, review.id, now)
        audit.record(session, now, audit.SYSTEM, Action.BREAK_GLASS_ESCALATED,
                     request_id=review.request_id, grant_id=review.grant_id)
        done["escalated"].append(review.id)
    return done


def _claim(session: Session, review_id: int, column, now: datetime) -> bool:
    """Set a not yet set time of an open review (compare-and-set: one process does it)."""
    return session.execute(
        update(BreakGlassReview)
        .where(BreakGlassReview.id == review_id, column.is_(None),
               BreakGlassReview.reviewed_at.is_(None))
        .values({column.key: now})
        .execution_options(synchronize_session=False)).rowcount == 1
