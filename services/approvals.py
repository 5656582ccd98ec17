"""The approval policy: N-of-M approvals and "Approve for less", one approval at a time.

Every approval is a `request_approvals` row (a person counts once: a unique key). The
request row is locked by the caller (requests.approve_many) before anything is counted,
so of approvals racing for the last place one grants and the others find it decided.
The grant's clock starts at the last approval; the shortest approved duration wins.
"""

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from accessbot.models import AccessRequest, Grant, RequestApproval, RequestStatus
from accessbot.services import audit, messages
from accessbot.services.audit import Action
from accessbot.services.catalog import Catalog, Resource
from accessbot.services.durations import format_duration, parse_duration
from accessbot.services.errors import AccessBotError, Conflict, InvalidInput


@dataclass(frozen=True)
class Counted:
    """An approval short of the last one: recorded, and shown on every copy."""

    request_id: int
    approvals: int
    required: int


def counted(request: AccessRequest, resource: Resource, approval) -> bool:
    """Whether this approval is counted here rather than on the batched 1-of-1 path."""
    return (resource.approvals_required > 1 or approval.duration is not None
            or bool(request.approvals))


def count(session: Session, catalog: Catalog, request: AccessRequest, resource: Resource,
          approval, live) -> Grant | Counted | AccessBotError:
    """Record one approval of a locked, pending request; the last one grants. A refusal is
    returned, and nothing of it is written (a savepoint)."""
    try:
        with session.begin_nested():
            return _count(session, catalog, request, resource, approval, live)
    except AccessBotError as refused:
        return refused
    except IntegrityError:  # the same person's approval, or the access, recorded meanwhile
        session.refresh(request)
        return Conflict(f"Request #{request.id} changed while you approved it; look at it "
                        "again.")


def _count(session: Session, catalog: Catalog, request: AccessRequest, resource: Resource,
           approval, live) -> Grant | Counted:
    from accessbot.services import requests as request_ops  # it imports this module

    if approval.duration is not None:
        check_less(request, approval.duration, resource)
    required = resource.approvals_required
    if any(a.approver == approval.approver_id for a in request.approvals):
        raise Conflict(f"You have already approved request #{request.id} "
                       f"({len(request.approvals)} of {required} approvals so far).")
    request.approvals.append(RequestApproval(request_id=request.id,
                                             approver=approval.approver_id, at=approval.at,
                                             duration=approval.duration))
    shortest = min((a.duration for a in request.approvals if a.duration is not None),
                   default=None)
    if shortest is not None and shortest < request.duration:
        request.approved_duration = shortest
    session.flush()
    so_far = len(request.approvals)
    if so_far < required:
        audit.record(session, approval.at, approval.approver_id, Action.APPROVAL_COUNTED,
                     request_id=request.id, detail=audit_text(request, so_far, required))
        for message in request.messages:
            messages.copy_updated(session, message, approval.at)
        return Counted(request.id, so_far, required)
    if request.extends_grant_id is not None:
        return request_ops._approve_extension(session, catalog, request, approval)
    grant = Grant(**request_ops._new_grant(request, resource, approval.at, live,
                                           request.approved_duration))
    session.add(grant)
    session.flush()
    request.status, request.decided_by = RequestStatus.APPROVED, approval.approver_id
    request.decided_at, request.decision_reason = approval.at, None
    audit.record(session, approval.at, approval.approver_id, Action.APPROVED,
                 request_id=request.id, grant_id=grant.id,
                 detail=audit_text(request, so_far, required))
    messages.request_decided(session, request, approval.at)
    return grant


def check_less(request: AccessRequest, duration: timedelta, resource: Resource) -> None:
    """An approval for less: at most what was asked, at least the resource's minimum."""
    if request.extends_grant_id is not None:
        raise InvalidInput("Approve for less is for new requests; approve this extension "
                           "or deny it.")
    if duration <= timedelta(0) or duration > request.duration:
        raise InvalidInput(f"Approve for at most the {format_duration(request.duration)} "
                           f"asked (you said {format_duration(duration)}).")
    if duration < resource.min_duration:
        raise InvalidInput(f"{resource.name} is granted for at least "
                           f"{format_duration(resource.min_duration)}.")


def less_duration(text: str | None, asked: timedelta) -> timedelta:
    """What an approver typed in "Approve for less…", checked against what was asked."""
    duration = parse_duration(text or "")
    if duration > asked:
        raise InvalidInput(f"At most the {format_duration(asked)} asked; for longer, the "
                           "requester asks again.")
    return duration


def less_text(request: AccessRequest) -> str:
    """'for 30m of the 2h asked', when an approver approved less; else ''."""
    if request.approved_duration is None:
        return ""
    return (f"for {format_duration(request.approved_duration)} of the "
            f"{format_duration(request.duration)} asked")


def audit_text(request: AccessRequest, so_far: int, required: int) -> str | None:
    """The audit sentence: 'approved (1 of 2)', 'approved for 30m of the 2h asked'."""
    parts = ["approved"]
    if required > 1:
        parts.append(f"({so_far} of {required})")
    if less := less_text(request):
        parts.append(less)
    return " ".join(parts) if len(parts) > 1 else None
