"""The audit trail: every state change with who, when and why."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy.orm import Session

from accessbot.models import AuditEvent

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
    FINDING_OPENED = "finding_opened"
    FINDING_TOLD = "finding_told"
    FINDING_FIXING = "finding_fixing"
    FINDING_SNOOZED = "finding_snoozed"
    FINDING_ESCALATED = "finding_escalated"
    FINDING_RESOLVED = "finding_resolved"
    KEY_FINAL_WARNING = "key_final_warning"
    KEY_DEACTIVATED = "key_deactivated"


def record(session: Session, at: datetime, actor: str, action: Action, *,
           request_id: int | None = None, grant_id: int | None = None,
           finding_id: int | None = None, detail: str | None = None) -> None:
    session.add(AuditEvent(at=at, actor=actor, action=action.value, request_id=request_id,
                           grant_id=grant_id, finding_id=finding_id, detail=detail))
