"""Access requests: create, decide (approve or deny), expire. One transaction each."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from accessbot.models import (
    AccessRequest,
    Grant,
    GrantStatus,
    RequestApproval,
    RequestStatus,
    batched_rows,
)
from accessbot.services import approvals as approval_policy
from accessbot.services import audit, extensions, messages, people
from accessbot.services.audit import Action
from accessbot.services.catalog import Catalog, Resource
from accessbot.services.commands import Draft
from accessbot.services.durations import format_duration
from accessbot.services.errors import (
    AccessBotError,
    Conflict,
    InvalidInput,
    NotAuthorized,
    NotFound,
)


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


ANNOUNCE_LEASE = timedelta(seconds=120)


def claim_announcement(session: Session, request_id: int, now: datetime) -> AccessRequest | None:
    """Lease a pending, not yet announced request, so that only one worker posts it."""
    return session.scalars(
        update(AccessRequest)
        .where(AccessRequest.id == request_id, AccessRequest.status == RequestStatus.PENDING,
               AccessRequest.announced_at.is_(None),
               or_(AccessRequest.announce_lease_until.is_(None),
                   AccessRequest.announce_lease_until < now))
        .values(announce_lease_until=now + ANNOUNCE_LEASE)
        .returning(AccessRequest)
        .execution_options(synchronize_session=False, populate_existing=True)
    ).one_or_none()


def release_announcement(session: Session, request_id: int, retry_at: datetime) -> None:
    """The announcement could not be made (no answer from Slack or AWS): the sweep tries
    again from retry_at."""
    session.execute(update(AccessRequest).where(AccessRequest.id == request_id)
                    .values(announce_lease_until=retry_at))


def mark_announced(session: Session, request_id: int, iam_user: str,
                   now: datetime) -> AccessRequest | None:
    """Every copy is owed, and the requester's user found: the request, or None if it was
    decided or expired meanwhile."""
    request = session.scalars(
        update(AccessRequest).where(AccessRequest.id == request_id)
        .values(announced_at=now, announce_lease_until=None, iam_user=iam_user)
        .returning(AccessRequest)
        .execution_options(synchronize_session=False, populate_existing=True)).one()
    audit.record(session, now, audit.SYSTEM, Action.ANNOUNCED, request_id=request_id)
    return request if request.status is RequestStatus.PENDING else None


def fail_request(session: Session, request_id: int, why: str, now: datetime) -> bool:
    """PENDING -> FAILED (the bot could not submit it). False if no longer pending."""
    changed = _transition(session, request_id, RequestStatus.FAILED, audit.SYSTEM, now, why)
    if changed:
        audit.record(session, now, audit.SYSTEM, Action.REQUEST_FAILED, request_id=request_id,
                     detail=why)
        messages.request_failed(session, get_request(session, request_id), why, now)
    return changed


def check_can_decide(session: Session, catalog: Catalog, request_id: int,
                     user_id: str, groups: people.UserGroups | None = None) -> AccessRequest:
    """Raise unless this user may decide this request now."""
    request = get_request(session, request_id)
    _may_decide(catalog, request, user_id, groups)
    return request


@dataclass(frozen=True)
class Approval:
    """An approver's click on Approve; `at` is when it was recorded, the grant's clock."""

    request_id: int
    approver_id: str
    at: datetime
    duration: timedelta | None = None  # "Approve for less": at most the one asked


class Contended(Exception):
    """Another process granted one of a batch's targets meanwhile: decide them one by one."""


def approve(session: Session, catalog: Catalog, request_id: int, approver_id: str,
            now: datetime, groups: people.UserGroups | None = None,
            duration: timedelta | None = None) -> Grant | approval_policy.Counted:
    """PENDING -> APPROVED, exactly once, and the access it gives.

    A request gets a PENDING grant whose clock starts now; an extension returns the grant
    it extends, with its expiry moved (the caller tells them apart by grant.request_id).
    With approvals_required > 1, an approval short of the last one is Counted.
    """
    [result] = approve_many(session, catalog, [Approval(request_id, approver_id, now, duration)],
                            groups)
    if isinstance(result, AccessBotError):
        raise result
    return result


def approve_many(session: Session, catalog: Catalog, approvals: Sequence[Approval],
                 groups: people.UserGroups | None = None
                 ) -> list[Grant | approval_policy.Counted | AccessBotError]:
    """Each approval decided once, in order, in the caller's transaction: its grant, or the
    error that refused it (and nothing of a refused approval is written).

    A burst of clicks costs a few statements, not a dozen per click: the requests are read
    and locked together, the grants inserted together. The requests are locked from the
    read on (SQLite: the transaction's write lock; Postgres: FOR UPDATE), so what is read
    PENDING here is decided here. Raises Contended when a batch of several runs into a
    grant that another process inserted meanwhile (then the caller decides them singly).
    An N-of-M request, an approval for less and a request approved in part already are
    counted one by one (services/approvals.py), under the same lock.
    """
    found = {r.id: r for r in session.scalars(
        select(AccessRequest).where(AccessRequest.id.in_({a.request_id for a in approvals}))
        .options(selectinload(AccessRequest.messages), selectinload(AccessRequest.approvals))
        .with_for_update(of=AccessRequest).execution_options(populate_existing=True))}
    live = _live_targets(session, {r.iam_user for r in found.values() if r.iam_user})
    results: list[Grant | AccessBotError | None] = []
    decided: dict[int, str] = {}  # request id -> approver, within this batch
    new: list[tuple[int, Approval, dict]] = []
    extensions_: list[tuple[int, Approval]] = []
    for approval in approvals:
        request = found.get(approval.request_id)
        try:
            if request is None:
                raise NotFound(f"Request #{approval.request_id} does not exist.")
            resource = _may_decide(catalog, request, approval.approver_id, groups)
            if request.id in decided:
                raise Conflict(describe_decision(request.id, RequestStatus.APPROVED,
                                                 decided[request.id]))
            if approval_policy.counted(request, resource, approval):
                results.append(approval_policy.count(session, catalog, request, resource, approval,
                                                live))
                continue
            if request.extends_grant_id is None:
                new.append((len(results), approval,
                            _new_grant(request, resource, approval.at, live)))
            else:
                extensions_.append((len(results), approval))
            decided[request.id] = approval.approver_id
            results.append(None)  # filled in below
        except AccessBotError as refused:
            results.append(refused)
    inserted = _insert_grants(session, new, results)
    with batched_rows(session):  # each decision's audit event and messages
        for index, approval, _ in new:
            if results[index] is not None:  # refused at the insert (a batch of one)
                continue
            grant = inserted[approval.request_id]
            request = found[approval.request_id]
            request.status, request.decided_by = RequestStatus.APPROVED, approval.approver_id
            request.decided_at, request.decision_reason = approval.at, None
            audit.record(session, approval.at, approval.approver_id, Action.APPROVED,
                         request_id=request.id, grant_id=grant.id)
            messages.request_decided(session, request, approval.at)
            results[index] = grant
    for index, approval in extensions_:
        try:
            with session.begin_nested():  # a refused extension leaves the rest standing
                results[index] = _approve_extension(session, catalog, found[approval.request_id],
                                                    approval)
        except AccessBotError as refused:
            results[index] = refused
    return results


def grant_at_once(session: Session, catalog: Catalog, request_id: int, actor: str,
                  reason: str, now: datetime) -> Grant:
    """PENDING -> APPROVED with no approver (approval: none, break-glass), and its PENDING
    grant, whose clock starts now; the request row is locked from the read on."""
    request = session.scalar(select(AccessRequest).where(AccessRequest.id == request_id)
                             .with_for_update(of=AccessRequest)
                             .execution_options(populate_existing=True))
    if request is None:
        raise NotFound(f"Request #{request_id} does not exist.")
    _require_pending(request)
    resource = catalog.resources.get(request.resource)
    if resource is None:
        raise NotFound(f"{request.resource} is no longer in the catalog.")
    if request.iam_user is None:
        raise Conflict(f"Request #{request.id} is still being submitted.")
    grant = _new_grant(request, resource, now, _live_targets(session, {request.iam_user}))
    results: list = [None]
    inserted = _insert_grants(session, [(0, Approval(request.id, actor, now), grant)], results)
    if results[0] is not None:
        raise results[0]
    grant = inserted[request.id]
    request.status, request.decided_by = RequestStatus.APPROVED, actor
    request.decided_at, request.decision_reason = now, reason
    audit.record(session, now, actor, Action.APPROVED, request_id=request.id,
                 grant_id=grant.id, detail=reason)
    return grant


def _may_decide(catalog: Catalog, request: AccessRequest, user_id: str,
                groups: people.UserGroups | None = None) -> Resource:
    """The request's resource, unless this user may not decide it now (raises)."""
    resource = catalog.resources.get(request.resource)
    if user_id == request.requester_id:
        raise NotAuthorized("You cannot approve or deny your own request.")
    if resource is None or not people.may_approve(resource, user_id, request.requester_id,
                                                  groups):
        raise NotAuthorized(f"Only the approvers of {request.resource} can decide request "
                            f"#{request.id}.")
    _require_pending(request)
    if request.iam_user is None:
        raise Conflict(f"Request #{request.id} is still being submitted; try again in a moment.")
    return resource


Live = dict[tuple[str, str, str, str], Grant | None]


def _live_targets(session: Session, iam_users: set[str]) -> Live:
    """(IAM user, kind, target, accounts) of every live grant of these users (None: granted
    by this batch, not yet inserted)."""
    if not iam_users:
        return {}
    return {(g.iam_user, g.kind, g.target, g.accounts): g for g in session.scalars(
        select(Grant).where(Grant.iam_user.in_(iam_users),
                            Grant.status.in_((GrantStatus.PENDING, GrantStatus.ACTIVE))))}


def _new_grant(request: AccessRequest, resource: Resource, now: datetime,
               live: Live, duration: timedelta | None = None) -> dict:
    """A new grant's row, the columns it sets (the rest take their defaults): one live
    grant per IAM user and target (the database enforces it too). A row, not a Grant:
    a batch of a hundred is inserted in one executemany, and an ORM object for each
    cost more than their insert."""
    key = (request.iam_user, resource.kind.value, resource.target, ",".join(resource.accounts))
    if key in live:
        holder = live[key]
        if holder is None:
            raise _just_granted(request.requester_id, resource.target)
        raise Conflict(f"<@{request.requester_id}> already has {resource.target} through "
                       f"grant #{holder.id} until {holder.expires_at:%H:%M:%S} UTC; decide "
                       "this request after that one has ended.")
    live[key] = None
    duration = duration or request.duration
    return {"request_id": request.id, "requester_id": request.requester_id,
            "iam_user": request.iam_user, "resource": resource.name,
            "kind": resource.kind.value, "target": resource.target,
            "accounts": ",".join(resource.accounts), "status": GrantStatus.PENDING,
            "starts_at": now, "expires_at": now + duration,
            "warn_at": _warn_at(now, duration, resource), "attempts": 0}


def _just_granted(requester_id: str, target: str) -> Conflict:
    return Conflict(f"<@{requester_id}> was just granted {target} through another request.")


def _insert_grants(session: Session, new: list[tuple[int, Approval, dict]],
                   results: list) -> dict[int, Grant]:
    """The batch's grants in one executemany and read back in one SELECT (the unit of work
    would insert them one by one on SQLite, and on Postgres as one statement of 1,600
    parameters that the driver parses afresh each time), with their approvals; in a
    savepoint: a concurrent approval of another request for the same access (the partial
    unique index) leaves the transaction usable. The inserted grants, by request id."""
    if not new:
        return {}
    try:
        with session.begin_nested():
            connection = session.connection()  # Core: the ORM's bulk path costs more
            connection.execute(insert(Grant.__table__), [grant for _, _, grant in new])
            connection.execute(insert(RequestApproval.__table__), [
                {"request_id": a.request_id, "approver": a.approver_id, "at": a.at,
                 "duration": None} for _, a, _ in new])
    except IntegrityError:
        if len(new) > 1:
            raise Contended() from None
        [(index, _, grant)] = new
        results[index] = _just_granted(grant["requester_id"], grant["target"])
        return {}
    return {g.request_id: g for g in session.scalars(
        select(Grant).where(Grant.request_id.in_([a.request_id for _, a, _ in new])))}


def _approve_extension(session: Session, catalog: Catalog, request: AccessRequest,
                       approval: Approval) -> Grant:
    if not _transition(session, request.id, RequestStatus.APPROVED, approval.approver_id,
                       approval.at, None):
        session.refresh(request)
        _require_pending(request)  # raises Conflict naming the winner
    grant = extensions.extend(session, request, catalog.resources[request.resource],
                              approval.approver_id, approval.at)
    audit.record(session, approval.at, approval.approver_id, Action.APPROVED,
                 request_id=request.id, grant_id=grant.id)
    session.refresh(request)
    messages.request_decided(session, request, approval.at)
    return grant


def deny(session: Session, catalog: Catalog, request_id: int, approver_id: str,
         reason: str | None, now: datetime,
         groups: people.UserGroups | None = None) -> AccessRequest:
    request = check_can_decide(session, catalog, request_id, approver_id, groups)
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


def unannounced(session: Session, now: datetime, older_than: datetime,
                limit: int = 100) -> list[int]:
    """PENDING requests whose approval messages were never all posted: never tried and
    created before older_than (their task was lost in a crash), or whose lease or retry
    time has passed."""
    lease = AccessRequest.announce_lease_until
    return list(session.scalars(
        select(AccessRequest.id)
        .where(AccessRequest.status == RequestStatus.PENDING,
               AccessRequest.announced_at.is_(None),
               or_(and_(lease.is_(None), AccessRequest.created_at <= older_than),
                   lease < now))
        .order_by(AccessRequest.id).limit(limit)
    ))


def describe_decision(request_id: int, status: RequestStatus, decided_by: str | None) -> str:
    if status is RequestStatus.APPROVED:
        return f"Request #{request_id} was already approved by <@{decided_by}>."
    if status is RequestStatus.DENIED:
        return f"Request #{request_id} was already denied by <@{decided_by}>."
    if status is RequestStatus.EXPIRED:
        return f"Request #{request_id} expired before anyone decided."
    if status is RequestStatus.CANCELLED:
        return f"Request #{request_id} was cancelled by <@{decided_by}>."
    return f"Request #{request_id} could not be submitted."


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
        raise Conflict(describe_decision(request.id, request.status, request.decided_by))


def _warn_at(start: datetime, duration, resource: Resource) -> datetime | None:
    """No warning for grants shorter than the warning window: the grant DM says it all."""
    warn_at = start + duration - resource.expiry_warning
    return warn_at if warn_at > start else None
