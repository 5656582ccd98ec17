"""SQLAlchemy 2.0 tables. The database is the source of truth for what the bot manages."""

from models.base import Base, UtcDateTime
from models.session import make_engine, make_session_factory, transaction
from models.tables import (
    AccessRequest,
    ApprovalMessage,
    AuditEvent,
    CredentialFinding,
    FindingStatus,
    Grant,
    GrantStatus,
    InboxStatus,
    InboxTask,
    JobRun,
    OutboxMessage,
    OutboxStatus,
    RequestStatus,
)

__all__ = [
    "AccessRequest", "ApprovalMessage", "AuditEvent", "Base", "CredentialFinding",
    "FindingStatus", "Grant", "GrantStatus", "InboxStatus", "InboxTask", "JobRun",
    "OutboxMessage", "OutboxStatus",
    "RequestStatus", "UtcDateTime", "make_engine", "make_session_factory", "transaction",
]
