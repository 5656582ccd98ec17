"""The audit trail: every state change with who, when and why."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy.orm import Session

from models import AuditEvent

SYSTEM = "accessbot"


class Action(StrEnum):
    REQUESTED = "requested"
    ANNOUNCED = "announced"
    REQUEST_FAILED = "request_failed"
    APPROVED = "approved"
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


def record(session: Session, at: datetime, actor: str, action: Action, *,
           request_id: int | None = None, grant_id: int | None = None,
           detail: str | None = None) -> None:
    session.add(AuditEvent(at=at, actor=actor, action=action.value, request_id=request_id,
                           grant_id=grant_id, detail=detail))
