"""Access requests: create, decide (approve or deny), expire. One transaction each."""

from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from accessbot.models import AccessRequest, Grant, GrantStatus, RequestStatus
from accessbot.services import audit, extensions, messages
from accessbot.services.audit import Action
from accessbot.services.catalog import Catalog, Resource
from accessbot.services.commands import Draft
from accessbot.services.durations import format_duration
from accessbot.services.errors import Conflict, InvalidInput, NotAuthorized, NotFound


def create_request(session: Session, catalog: Catalog, requester_id: str, draft: Draft,
                   now: datetime) -> AccessRequest:
    """Record a new PENDING request, unless the requester already has or awaits it."""
    _refuse_duplicate(session, requester_id, draft.resource.name)
    request = AccessRequest(
        requester_id=requester_id, resource=draft.resource.name, duration=draft.duration,
        reason=draft.reason, status=RequestStatus.PENDING, created_at=now,
        decide_by=now + catalog.request_timeout,
    )
    session.add(request)
    session.flush()
    audit.record(session, now, requester_id, Action.REQUESTED, request_id=request.id,
                 detail=f"{draft.resource.name} for {format_duration(draft.duration)}: "
                        f"{draft.reason}")
    return request


def get_request(session: Session, request_id: int) -> AccessRequest:
    request = session.get(AccessRequest, request_id)
    if request is None:
        raise NotFound(f"Request #{request_id} does not exist.")
    return request


def set_iam_user(session: Session, request_id: int, iam_user: str) -> None:
    session.execute(update(AccessRequest).where(AccessRequest.id == request_id)
                    .values(iam_user=iam_user))


ANNOUNCE_LEASE = timedelta(seconds=120)


def claim_announcement(session: Session, request_id: int, now: datetime) -> AccessRequest | None:
    """Lease a pending, not yet announced request, so that only one worker posts it."""
    result = session.execute(
        update(AccessRequest)
        .where(AccessRequest.id == request_id, AccessRequest.status == RequestStatus.PENDING,
               AccessRequest.announced_at.is_(None),
               or_(AccessRequest.announce_lease_until.is_(None),
                   AccessRequest.announce_lease_until < now))
        .values(announce_lease_until=now + ANNOUNCE_LEASE)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        return None
    return session.get(AccessRequest, request_id, populate_existing=True)


def release_announcement(session: Session, request_id: int) -> None:
    session.execute(update(AccessRequest).where(AccessRequest.id == request_id)
                    .values(announce_lease_until=None))


def mark_announced(session: Session, request_id: int, now: datetime) -> bool:
    """Every copy is owed; False if the request was decided or expired meanwhile."""
    status = session.execute(
        update(AccessRequest).where(AccessRequest.id == request_id)
        .values(announced_at=now, announce_lease_until=None)
        .returning(AccessRequest.status)).scalar_one()
    audit.record(session, now, audit.SYSTEM, Action.ANNOUNCED, request_id=request_id)
    return status is RequestStatus.PENDING


def fail_request(session: Session, request_id: int, why: str, now: datetime) -> bool:
    """PENDING -> FAILED (the bot could not submit it). False if no longer pending."""
    changed = _transition(session, request_id, RequestStatus.FAILED, audit.SYSTEM, now, why)
    if changed:
        audit.record(session, now, audit.SYSTEM, Action.REQUEST_FAILED, request_id=request_id,
                     detail=why)
        messages.request_failed(session, get_request(session, request_id), why, now)
    return changed


def check_can_decide(session: Session, catalog: Catalog, request_id: int,
                     user_id: str) -> AccessRequest:
    """Raise unless this user may decide this request now."""
    request = get_request(session, request_id)
    resource = catalog.resources.get(request.resource)
    if user_id == request.requester_id:
        raise NotAuthorized("You cannot approve or deny your own request.")
    if resource is None or not resource.may_approve(user_id, request.requester_id):
        raise NotAuthorized(f"Only the approvers of {request.resource} can decide request "
                            f"#{request.id}.")
    _require_pending(request)
    if request.iam_user is None:
        raise Conflict(f"Request #{request.id} is still being submitted; try again in a moment.")
    return request


def approve(session: Session, catalog: Catalog, request_id: int, approver_id: str,
            now: datetime) -> Grant:
    """PENDING -> APPROVED, exactly once, and the access it gives.

    A request gets a PENDING grant whose clock starts now; an extension returns the grant
    it extends, with its expiry moved (the caller tells them apart by grant.request_id).
    """
    request = check_can_decide(session, catalog, request_id, approver_id)
    if not _transition(session, request_id, RequestStatus.APPROVED, approver_id, now, None):
        session.refresh(request)
        _require_pending(request)  # raises Conflict naming the winner
    resource = catalog.resources[request.resource]
    if request.extends_grant_id is not None:
        grant = extensions.extend(session, request, resource, approver_id, now)
    else:
        grant = _new_grant(session, request, resource, now)
    audit.record(session, now, approver_id, Action.APPROVED, request_id=request.id,
                 grant_id=grant.id)
    session.refresh(request)
    messages.request_decided(session, request, now)
    return grant


def _new_grant(session: Session, request: AccessRequest, resource: Resource,
               now: datetime) -> Grant:
    _refuse_overlap(session, request, resource)  # the caller rolls the approval back
    grant = Grant(
        request_id=request.id, requester_id=request.requester_id, iam_user=request.iam_user,
        resource=resource.name, kind=resource.kind.value, target=resource.target,
        status=GrantStatus.PENDING, starts_at=now, expires_at=now + request.duration,
        warn_at=_warn_at(now, request.duration, resource), attempts=0,
    )
    try:
        with session.begin_nested():  # a savepoint keeps the transaction usable on failure
            session.add(grant)
    except IntegrityError:  # a concurrent approval of another request for the same access
        raise Conflict(f"<@{request.requester_id}> was just granted {resource.target} through "
                       "another request.") from None
    return grant


def deny(session: Session, catalog: Catalog, request_id: int, approver_id: str,
         reason: str | None, now: datetime) -> AccessRequest:
    request = check_can_decide(session, catalog, request_id, approver_id)
    reason = " ".join((reason or "").split())[:500] or None
    if not _transition(session, request_id, RequestStatus.DENIED, approver_id, now, reason):
        session.refresh(request)
        _require_pending(request)
    audit.record(session, now, approver_id, Action.DENIED, request_id=request_id, detail=reason)
    session.refresh(request)
    messages.request_decided(session, request, now)
    return request


def expire_overdue(session: Session, now: datetime, limit: int = 500) -> list[int]:
    """PENDING requests past their decide_by -> EXPIRED; returns the ids this call expired."""
    due = session.scalars(
        select(AccessRequest.id)
        .where(AccessRequest.status == RequestStatus.PENDING, AccessRequest.decide_by <= now)
        .order_by(AccessRequest.decide_by).limit(limit)
    ).all()
    expired = []
    for request_id in due:
        if _transition(session, request_id, RequestStatus.EXPIRED, audit.SYSTEM, now,
                       "nobody decided in time"):
            audit.record(session, now, audit.SYSTEM, Action.REQUEST_EXPIRED,
                         request_id=request_id)
            request = session.get(AccessRequest, request_id, populate_existing=True)
            messages.request_decided(session, request, now)
            expired.append(request_id)
    return expired


def unannounced(session: Session, older_than: datetime, limit: int = 100) -> list[int]:
    """PENDING requests whose approval messages were never all posted (e.g. a crash)."""
    return list(session.scalars(
        select(AccessRequest.id)
        .where(AccessRequest.status == RequestStatus.PENDING,
               AccessRequest.announced_at.is_(None), AccessRequest.created_at <= older_than,
               or_(AccessRequest.announce_lease_until.is_(None),
                   AccessRequest.announce_lease_until < older_than))
        .order_by(AccessRequest.id).limit(limit)
    ))


def describe_decision(request: AccessRequest) -> str:
    if request.status is RequestStatus.APPROVED:
        return f"Request #{request.id} was already approved by <@{request.decided_by}>."
    if request.status is RequestStatus.DENIED:
        return f"Request #{request.id} was already denied by <@{request.decided_by}>."
    if request.status is RequestStatus.EXPIRED:
        return f"Request #{request.id} expired before anyone decided."
    return f"Request #{request.id} could not be submitted."


def _refuse_duplicate(session: Session, requester_id: str, resource: str) -> None:
    # a pending extension does not count: its grant is live (refused below) or has ended,
    # and then a fresh request is the way back
    pending = session.scalar(
        select(AccessRequest.id).where(AccessRequest.requester_id == requester_id,
                                       AccessRequest.resource == resource,
                                       AccessRequest.status == RequestStatus.PENDING,
                                       AccessRequest.extends_grant_id.is_(None)))
    if pending is not None:
        raise InvalidInput(f"You already asked for {resource}: request #{pending} is waiting "
                           "for an approver.")
    live = session.scalar(
        select(Grant).where(Grant.requester_id == requester_id, Grant.resource == resource,
                            Grant.status.in_((GrantStatus.PENDING, GrantStatus.ACTIVE))))
    if live is not None:
        raise InvalidInput(f"You already have {resource} until "
                           f"{live.expires_at:%Y-%m-%d %H:%M:%S} UTC. In my DM, click \"Ask for "
                           "more time\" to extend it, or \"I'm done\" to end it early.")


def _refuse_overlap(session: Session, request: AccessRequest, resource: Resource) -> None:
    """One live grant per IAM user and target (the database enforces it too)."""
    live = session.scalar(
        select(Grant).where(Grant.iam_user == request.iam_user,
                            Grant.kind == resource.kind.value, Grant.target == resource.target,
                            Grant.status.in_((GrantStatus.PENDING, GrantStatus.ACTIVE))))
    if live is not None:
        raise Conflict(f"<@{request.requester_id}> already has {resource.target} through "
                       f"grant #{live.id} until {live.expires_at:%H:%M:%S} UTC; decide this "
                       "request after that one has ended.")


def _transition(session: Session, request_id: int, to: RequestStatus, actor: str,
                now: datetime, reason: str | None) -> bool:
    """Compare-and-set from PENDING: zero rows updated means someone else won."""
    result = session.execute(
        update(AccessRequest)
        .where(AccessRequest.id == request_id, AccessRequest.status == RequestStatus.PENDING)
        .values(status=to, decided_by=actor, decided_at=now, decision_reason=reason)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def _require_pending(request: AccessRequest) -> None:
    if request.status is not RequestStatus.PENDING:
        raise Conflict(describe_decision(request))


def _warn_at(start: datetime, duration, resource: Resource) -> datetime | None:
    """No warning for grants shorter than the warning window: the grant DM says it all."""
    warn_at = start + duration - resource.expiry_warning
    return warn_at if warn_at > start else None
