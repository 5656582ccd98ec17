"""SQLAlchemy 2.0 tables. The database is the source of truth for what the bot manages."""

from accessbot.models.base import Base, UtcDateTime
from accessbot.models.session import (
    add_row,
    batched_rows,
    make_engine,
    make_session_factory,
    transaction,
    writing_first,
)
from accessbot.models.tables import (
    AccessRequest,
    AccountFault,
    ApprovalMessage,
    AuditChain,
    AuditEvent,
    AuditExport,
    BreakGlassReview,
    CredentialFinding,
    FindingStatus,
    Grant,
    GrantStatus,
    HomeViewer,
    InboxStatus,
    InboxTask,
    JobRun,
    OutboxMessage,
    OutboxStatus,
    RequestApproval,
    RequestStatus,
    ReviewCopy,
    ReviewItem,
    ReviewRun,
    ReviewStatus,
)

__all__ = [
    "AccessRequest", "AccountFault", "ApprovalMessage", "AuditChain", "AuditEvent",
    "AuditExport", "Base", "BreakGlassReview", "CredentialFinding",
    "FindingStatus", "Grant", "GrantStatus", "HomeViewer", "InboxStatus", "InboxTask", "JobRun",
    "OutboxMessage", "OutboxStatus",
    "RequestApproval", "RequestStatus", "ReviewCopy", "ReviewItem", "ReviewRun", "ReviewStatus",
    "UtcDateTime",
    "add_row", "batched_rows", "make_engine", "make_session_factory", "transaction",
    "writing_first",
]
