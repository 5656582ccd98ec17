"""More time on a live grant: asked for by its holder, approved like any other request.

An extension is an AccessRequest with extends_grant_id set. Approving it creates no grant:
in the approval's transaction it moves the existing grant's expiry. The runner then tells
IAM (roles), the timers and the requester (AccessRunner.extend_grant).
"""

from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from accessbot.models import AccessRequest, Grant, GrantStatus, RequestStatus
from accessbot.services import audit
from accessbot.services.audit import Action
from accessbot.services.catalog import Catalog, Resource, ResourceKind
from accessbot.services.commands import ExtensionDraft
from accessbot.services.durations import format_duration
from accessbot.services.errors import Conflict, InvalidInput, NotAuthorized, NotFound
from accessbot.services.grants import get_grant

# A role grant's IAM policy carries its expiry (aws:CurrentTime), so IAM must learn the new
# one. Rather than a second retry mechanism, the extended role grant goes back to PENDING:
# "approved; the AWS change has not been confirmed yet" is exactly what is true, and PENDING
# grants are what apply_grant and the sweep already put in place under a lease, with backoff,
# an admin alert, and repair after a crash. Meanwhile the old policy keeps working until the
# old expiry, and revocation still takes the grant at its (new) expiry; finish_revoke tells a
# re-applied grant from a never-applied one by granted_at. Group membership has no expiry in
# IAM, so an extended group grant simply stays ACTIVE.
_REAPPLY = {"status": GrantStatus.PENDING, "attempts": 0, "next_attempt_at": None,
            "alerted_at": None, "last_error": None}


def check_can_extend(session: Session, catalog: Catalog, grant_id: int, user_id: str,
                     now: datetime) -> tuple[Grant, Resource]:
    """Raise unless this user may ask for more time on this grant now."""
    grant = get_grant(session, grant_id)
    if user_id != grant.requester_id:
        raise NotAuthorized("Only the person who holds this access can ask for more time.")
    if grant.status is GrantStatus.PENDING and grant.expires_at > now:
        raise Conflict(f"Your access to {grant.resource} is still being put in place; "
                       "try again in a moment.")
    if grant.status is not GrantStatus.ACTIVE or grant.expires_at <= now:
        raise Conflict(f"Your access to {grant.resource} has already ended; use "
                       "/request-access to ask for it again.")
    resource = catalog.resources.get(grant.resource)
    if resource is None:
        raise NotFound(f"{grant.resource} is no longer offered, so it cannot be extended.")
    if not resource.may_request(user_id):
        raise NotAuthorized(f"You are not allowed to request {resource.name} any more.")
    pending = session.scalar(
        select(AccessRequest.id).where(AccessRequest.extends_grant_id == grant_id,
                                       AccessRequest.status == RequestStatus.PENDING))
    if pending is not None:
        raise InvalidInput(f"You already asked for more time on {grant.resource}: request "
                           f"#{pending} is waiting for an approver.")
    return grant, resource


def request_extension(session: Session, catalog: Catalog, user_id: str, draft: ExtensionDraft,
                      now: datetime) -> AccessRequest:
    """Record a PENDING request for more time on one of the user's live grants."""
    grant, resource = check_can_extend(session, catalog, draft.grant_id, user_id, now)
    duration = draft.duration or resource.default_duration
    resource.check_duration(duration)
    check_lifetime(grant, resource, grant.expires_at + duration)
    request = AccessRequest(
        requester_id=user_id, resource=grant.resource, duration=duration, reason=draft.reason,
        status=RequestStatus.PENDING, iam_user=grant.iam_user, extends_grant_id=grant.id,
        created_at=now,
        # more time on access that has ended means nothing: undecided, it expires with it
        decide_by=min(now + catalog.request_timeout, grant.expires_at),
    )
    try:
        with session.begin_nested():  # a savepoint keeps the transaction usable on failure
            session.add(request)
    except IntegrityError:  # uq_access_requests_pending_extension: a concurrent submission
        raise InvalidInput(f"You already asked for more time on {grant.resource}.") from None
    audit.record(session, now, user_id, Action.REQUESTED, request_id=request.id,
                 grant_id=grant.id,
                 detail=f"{format_duration(duration)} more on grant #{grant.id} "
                        f"({grant.resource}): {draft.reason}")
    return request


def extend(session: Session, request: AccessRequest, resource: Resource, approver_id: str,
           now: datetime) -> Grant:
    """Move the extended grant's expiry; part of approving the request, in its transaction.

    The new expiry is the old one plus the request's duration, capped so that no more than
    max_duration remains from now. Compare-and-set on the grant's status and expiry: a grant
    that ended (or changed) meanwhile is a Conflict, and the caller rolls the approval back.
    """
    grant = get_grant(session, request.extends_grant_id)
    old, wanted = grant.expires_at, grant.expires_at + request.duration
    new = max(old, min(wanted, now + resource.max_duration))  # never shorter: max may shrink
    try:
        check_lifetime(grant, resource, new)  # again: the configuration may have changed
    except InvalidInput as exc:
        raise Conflict(f"{exc} Deny request #{request.id} or let it expire.") from None
    values = {"expires_at": new, "warn_at": _warn_at(new, resource, now), "warned_at": None}
    if grant.kind == ResourceKind.IAM_ROLE:
        values.update(_REAPPLY)
    result = session.execute(
        update(Grant)
        .where(Grant.id == grant.id, Grant.status == GrantStatus.ACTIVE,
               Grant.expires_at == old, Grant.expires_at > now)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise Conflict(f"Grant #{grant.id} of <@{grant.requester_id}> to {grant.resource} is "
                       "no longer active, so there is no time to add to it. Deny request "
                       f"#{request.id} or let it expire; they can ask again with "
                       "/request-access.")
    note = None
    if new < wanted:
        note = (f"Capped: {resource.name} may run at most {format_duration(resource.max_duration)}"
                f" from the approval, so this adds {format_duration(new - old)} instead of "
                f"{format_duration(request.duration)}.")
        session.execute(update(AccessRequest).where(AccessRequest.id == request.id)
                        .values(decision_reason=note))
    audit.record(session, now, approver_id, Action.EXTENDED, request_id=request.id,
                 grant_id=grant.id,
                 detail=f"until {new:%Y-%m-%d %H:%M:%S} UTC" + (f"; {note}" if note else ""))
    return session.get(Grant, grant.id, populate_existing=True)


def check_lifetime(grant: Grant, resource: Resource, new_expiry: datetime) -> None:
    """Refuse more time that would run the grant past starts_at + max_total_duration."""
    total = resource.max_total_duration
    if total is None or new_expiry <= grant.starts_at + total:
        return
    left = max(grant.starts_at + total - grant.expires_at, timedelta(0))
    raise InvalidInput(f"{resource.name} may last at most {format_duration(total)} in all; "
                       f"this grant has {format_duration(left)} left of it.")


def approved_extension(session: Session, grant_id: int) -> AccessRequest | None:
    """The grant's most recently approved extension, for telling its holder about it."""
    return session.scalar(
        select(AccessRequest)
        .where(AccessRequest.extends_grant_id == grant_id,
               AccessRequest.status == RequestStatus.APPROVED)
        .order_by(AccessRequest.decided_at.desc(), AccessRequest.id.desc()).limit(1))


def _warn_at(expires_at: datetime, resource: Resource, now: datetime) -> datetime | None:
    """Warn again before the new expiry, unless that moment has already passed."""
    warn_at = expires_at - resource.expiry_warning
    return warn_at if warn_at > now else None
