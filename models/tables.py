from datetime import date, datetime, timedelta
from enum import StrEnum

from sqlalchemy import (
    Boolean,
    Date,
    Enum,
    ForeignKey,
    Index,
    Integer,
    Interval,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from accessbot.models.base import Base, UtcDateTime


class RequestStatus(StrEnum):
    PENDING = "PENDING"      # waiting for an approver
    APPROVED = "APPROVED"    # decided; a Grant row carries the access from here on (an
                             # extension: the grant it extends runs longer)
    DENIED = "DENIED"
    EXPIRED = "EXPIRED"      # nobody decided in time
    FAILED = "FAILED"        # could not be submitted (e.g. no IAM user for the requester)
    CANCELLED = "CANCELLED"  # withdrawn by the requester while pending


class GrantStatus(StrEnum):
    PENDING = "PENDING"      # approved; the AWS change has not been confirmed yet
    ACTIVE = "ACTIVE"        # access is in place until expires_at
    REVOKED = "REVOKED"      # access has been removed
    FAILED = "FAILED"        # access could not be put in place


LIVE_GRANT = text("status IN ('PENDING', 'ACTIVE')")
PENDING_REQUEST = text("status = 'PENDING'")
UNSEALED = text("seq IS NULL")


def _enum(cls) -> Enum:
    return Enum(cls, native_enum=False, length=16, validate_strings=True,
                values_callable=lambda e: [m.value for m in e])


class AccessRequest(Base):
    __tablename__ = "access_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    requester_id: Mapped[str] = mapped_column(String(32))
    resource: Mapped[str] = mapped_column(String(64))
    duration: Mapped[timedelta] = mapped_column(Interval())
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[RequestStatus] = mapped_column(_enum(RequestStatus),
                                                  default=RequestStatus.PENDING)
    iam_user: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    decide_by: Mapped[datetime] = mapped_column(UtcDateTime)
    announced_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    announce_lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    decided_by: Mapped[str | None] = mapped_column(String(32))
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    decision_reason: Mapped[str | None] = mapped_column(Text)
    # set for "more time" on a live grant: approving it moves that grant's expiry instead
    # of creating a grant; use_alter because grants refers back to access_requests
    extends_grant_id: Mapped[int | None] = mapped_column(ForeignKey("grants.id", use_alter=True))
    # the requester granted it to themselves (break_glass: true), loudly, reviewed later
    break_glass: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # reminders to approvers who have not answered (services/lifecycle.py): how many were
    # sent, and when the next is due (None: none is)
    reminders_sent: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_reminder_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # the requester's "waiting" DM, with Cancel: updated in place once the request is settled
    waiting_dm_channel: Mapped[str | None] = mapped_column(String(32))
    waiting_dm_ts: Mapped[str | None] = mapped_column(String(32))
    # "Approve for less": the shortest duration an approver approved (None: as asked)
    approved_duration: Mapped[timedelta | None] = mapped_column(Interval())

    messages: Mapped[list["ApprovalMessage"]] = relationship(
        back_populates="request", order_by="ApprovalMessage.id"
    )
    approvals: Mapped[list["RequestApproval"]] = relationship(
        order_by="RequestApproval.id", cascade="all, delete-orphan", passive_deletes=True)
    grant: Mapped["Grant | None"] = relationship(back_populates="request",
                                                 foreign_keys="Grant.request_id")
    # loaded with the request: every approval message of an extension shows the grant's expiry
    extended_grant: Mapped["Grant | None"] = relationship(foreign_keys=[extends_grant_id],
                                                          lazy="joined")
    # read only where a break-glass request is shown (its copies and thread reply), in the
    # transaction that renders it: loaded with every request, it was one more SELECT each
    break_glass_review: Mapped["BreakGlassReview | None"] = relationship(
        back_populates="request")

    __table_args__ = (
        Index("ix_access_requests_status_decide_by", "status", "decide_by"),
        Index("ix_access_requests_next_reminder_at", "next_reminder_at"),
        # one pending extension per grant, also when two submissions race
        Index("uq_access_requests_pending_extension", "extends_grant_id", unique=True,
              sqlite_where=PENDING_REQUEST, postgresql_where=PENDING_REQUEST),
    )


class RequestApproval(Base):
    """One approver's Approve of a request (N-of-M): a person counts once."""

    __tablename__ = "request_approvals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("access_requests.id", ondelete="CASCADE"))
    approver: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    duration: Mapped[timedelta | None] = mapped_column(Interval())  # "Approve for less"

    __table_args__ = (UniqueConstraint("request_id", "approver"),)


class ApprovalMessage(Base):
    """One posted copy of a request (approval channel or an approver's DM)."""

    __tablename__ = "approval_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("access_requests.id", ondelete="CASCADE"))
    destination: Mapped[str] = mapped_column(String(32))  # what we posted to: channel or user
    channel: Mapped[str] = mapped_column(String(32))  # the channel Slack answered with
    ts: Mapped[str] = mapped_column(String(32))

    request: Mapped[AccessRequest] = relationship(back_populates="messages")

    __table_args__ = (UniqueConstraint("request_id", "destination"),)


class Grant(Base):
    __tablename__ = "grants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # unique: one approved request can never produce two grants
    request_id: Mapped[int] = mapped_column(ForeignKey("access_requests.id"), unique=True)
    requester_id: Mapped[str] = mapped_column(String(32))
    iam_user: Mapped[str] = mapped_column(String(128))
    resource: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(600))
    # the 12-digit account ids, comma-separated: where a permission set is assigned, or the
    # account of an IAM group or role ('': the bot's own account)
    accounts: Mapped[str] = mapped_column(String(400), default="", server_default="")
    status: Mapped[GrantStatus] = mapped_column(_enum(GrantStatus), default=GrantStatus.PENDING)
    starts_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    granted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    warn_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    warned_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    end_reason: Mapped[str | None] = mapped_column(String(64))
    # ended by an approver or an admin (the Revoke button), and why they said
    revoked_by: Mapped[str | None] = mapped_column(String(32))
    revoke_reason: Mapped[str | None] = mapped_column(Text)
    role_arn: Mapped[str | None] = mapped_column(String(600))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    alerted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    dm_channel: Mapped[str | None] = mapped_column(String(32))
    dm_ts: Mapped[str | None] = mapped_column(String(32))
    # what the grant was used for (services/grant_activity.py): looked up in CloudTrail
    # from activity_due_at on, once it ended (REVOKED); the summary as JSON
    activity_due_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    activity_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    activity_done_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    activity: Mapped[str | None] = mapped_column(Text)

    request: Mapped[AccessRequest] = relationship(back_populates="grant",
                                                  foreign_keys=[request_id])

    __table_args__ = (
        Index("ix_grants_status_expires_at", "status", "expires_at"),
        Index("ix_grants_status_warn_at", "status", "warn_at"),
        Index("ix_grants_activity_due_at", "activity_due_at"),
        # one live grant per IAM user and target: revoking an overlapping grant would
        # otherwise take away access that another grant still promises
        Index("uq_grants_live_access", "iam_user", "kind", "target", "accounts", unique=True,
              sqlite_where=LIVE_GRANT, postgresql_where=LIVE_GRANT),
    )


class AuditEvent(Base):
    """Append-only record of every state change: who, when, what and why."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    actor: Mapped[str] = mapped_column(String(64))  # Slack user id, or "accessbot"
    action: Mapped[str] = mapped_column(String(32))
    request_id: Mapped[int | None] = mapped_column(Integer, index=True)
    grant_id: Mapped[int | None] = mapped_column(Integer, index=True)
    finding_id: Mapped[int | None] = mapped_column(Integer, index=True)
    detail: Mapped[str | None] = mapped_column(Text)
    # the hash chain (services/audit_chain.py): set by the sealer, never by record()
    seq: Mapped[int | None] = mapped_column(Integer, unique=True)  # position in the chain
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    hash: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        # the sealer's work: the unsealed rows, in id order
        Index("ix_audit_events_unsealed", "id", sqlite_where=UNSEALED,
              postgresql_where=UNSEALED),
    )


class AuditChain(Base):
    """The chain's head, one row (id 1): the last sealed row's seq and hash. Sealers
    advance it compare-and-set, so only one extends the chain at a time; verify compares
    it with the last row, so rows deleted at the end are found."""

    __tablename__ = "audit_chain"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_seq: Mapped[int] = mapped_column(Integer)
    last_hash: Mapped[str] = mapped_column(String(64))


class AuditExport(Base):
    """A UTC day of the audit trail uploaded to audit.s3_bucket: each day once."""

    __tablename__ = "audit_exports"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    key: Mapped[str] = mapped_column(String(1024))
    rows: Mapped[int] = mapped_column(Integer)
    last_hash: Mapped[str | None] = mapped_column(String(64))  # None: a day without rows
    exported_at: Mapped[datetime] = mapped_column(UtcDateTime)


class FindingStatus(StrEnum):
    OPEN = "OPEN"            # in the latest credential report
    RESOLVED = "RESOLVED"    # gone from the report, or the key was deactivated


OPEN_FINDING = text("status = 'OPEN'")


class CredentialFinding(Base):
    """A stale credential, remembered across runs: who was told what, and when."""

    __tablename__ = "credential_findings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # the AWS account whose credential report showed it; "" for the bot's own account
    account: Mapped[str] = mapped_column(String(12), default="", server_default="")
    iam_user: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(32))          # services.hygiene.FindingKind
    subject: Mapped[str] = mapped_column(String(64))       # which credential of the user
    status: Mapped[FindingStatus] = mapped_column(_enum(FindingStatus),
                                                  default=FindingStatus.OPEN)
    since: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_used: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_used_where: Mapped[str | None] = mapped_column(String(128))
    key_slot: Mapped[int | None] = mapped_column(Integer)
    key_created: Mapped[datetime | None] = mapped_column(UtcDateTime)
    key_id: Mapped[str | None] = mapped_column(String(32))  # matched via ListAccessKeys
    detail: Mapped[str | None] = mapped_column(String(200))  # a role's session, who it trusts
    first_seen_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UtcDateTime)
    owner: Mapped[str | None] = mapped_column(String(32))   # Slack user or channel told
    last_told_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    message_channel: Mapped[str | None] = mapped_column(String(32))  # the last DM listing it
    message_ts: Mapped[str | None] = mapped_column(String(32))
    fixing_by: Mapped[str | None] = mapped_column(String(32))        # "I'll fix it"
    fixing_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    snoozed_by: Mapped[str | None] = mapped_column(String(32))
    snoozed_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    escalated_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    snooze_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    final_warning_at: Mapped[datetime | None] = mapped_column(UtcDateTime)  # auto-disable
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    resolved_by: Mapped[str | None] = mapped_column(String(64))  # Slack user or "accessbot"
    resolution: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (
        Index("ix_credential_findings_status", "status", "first_seen_at"),
        Index("ix_credential_findings_message", "message_channel", "message_ts"),
        # one open finding per credential and problem; a resolved one may come back later
        Index("uq_credential_findings_open", "account", "iam_user", "kind", "subject",
              unique=True, sqlite_where=OPEN_FINDING, postgresql_where=OPEN_FINDING),
    )


class JobRun(Base):
    """When a daily or weekly job last ran, so restarts and other processes do not repeat it."""

    __tablename__ = "job_runs"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime)


class AccountFault(Base):
    """An account of `accounts:` whose role could not be assumed, until a call there works
    again: the admin channel is told once per outage, not once per grant."""

    __tablename__ = "account_faults"

    account_id: Mapped[str] = mapped_column(String(12), primary_key=True)
    since: Mapped[datetime] = mapped_column(UtcDateTime)
    last_error: Mapped[str] = mapped_column(Text)


class Leased:
    """The columns of a row that workers lease, retry with backoff and finish."""

    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    done_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class OutboxStatus(StrEnum):
    PENDING = "PENDING"          # owed: the sender delivers it
    SENT = "SENT"                # Slack took it
    SUPERSEDED = "SUPERSEDED"    # an update overtaken by a later update of the same message
    FAILED = "FAILED"            # Slack refused it for good (reason in last_error)


PENDING_OUTBOX = text("status = 'PENDING'")


class OutboxMessage(Leased, Base):
    """A message the bot owes someone, written in the transaction that owes it.

    `queue` orders delivery: a row is sent only after every earlier row of its queue.
    `target` names the posted message an update re-renders; pending updates of one
    target coalesce, and the one sent renders the state of that moment.
    """

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))      # services.outbox.Kind
    queue: Mapped[str] = mapped_column(String(96))
    target: Mapped[str | None] = mapped_column(String(96))
    args: Mapped[str] = mapped_column(Text)           # JSON: ids and small values
    status: Mapped[OutboxStatus] = mapped_column(_enum(OutboxStatus),
                                                 default=OutboxStatus.PENDING)
    channel: Mapped[str | None] = mapped_column(String(32))  # where Slack put it
    ts: Mapped[str | None] = mapped_column(String(32))

    __table_args__ = (
        Index("ix_outbox_pending", "status", "next_attempt_at",
              sqlite_where=PENDING_OUTBOX, postgresql_where=PENDING_OUTBOX),
        Index("ix_outbox_target", "target"),
        Index("ix_outbox_done_at", "status", "done_at"),
    )


class InboxStatus(StrEnum):
    PENDING = "PENDING"      # acknowledged to Slack, not done yet
    DONE = "DONE"
    FAILED = "FAILED"        # failed for a reason retrying cannot fix; the user was told


class InboxTask(Leased, Base):
    """Work a listener acknowledged: committed before the ack, done by any worker."""

    __tablename__ = "inbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task: Mapped[str] = mapped_column(String(32))     # handlers.tasks.Task
    args: Mapped[str] = mapped_column(Text)           # JSON
    status: Mapped[InboxStatus] = mapped_column(_enum(InboxStatus),
                                                default=InboxStatus.PENDING)

    __table_args__ = (
        Index("ix_inbox_pending", "status", "next_attempt_at",
              sqlite_where=text("status = 'PENDING'"),
              postgresql_where=text("status = 'PENDING'")),
        Index("ix_inbox_done_at", "status", "done_at"),
    )


class ReviewStatus(StrEnum):
    OPEN = "OPEN"                # asked, not decided
    KEPT = "KEPT"                # a decider said Keep
    REMOVED = "REMOVED"          # a decider said Remove, and the access was removed
    GONE = "GONE"                # the access was no longer there (checked live, or not found)
    UNANSWERED = "UNANSWERED"    # nobody decided before the review closed


OPEN_REVIEW_ITEM = text("status = 'OPEN'")


class ReviewRun(Base):
    """One access review of one account ("": the bot's own): started, closed, and when the
    admin channel was told the outcome."""

    __tablename__ = "review_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account: Mapped[str] = mapped_column(String(12), default="", server_default="")
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    outcome_posted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (Index("ix_review_runs_open", "account", "closed_at"),)


class ReviewItem(Base):
    """One principal's standing access to one target, and the decision about it."""

    __tablename__ = "review_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("review_runs.id"))
    account: Mapped[str] = mapped_column(String(12), default="", server_default="")
    target_kind: Mapped[str] = mapped_column(String(32))   # services.reviews.TargetKind
    target: Mapped[str] = mapped_column(String(600))       # group, role, permission set
    resource: Mapped[str | None] = mapped_column(String(64))  # the catalog's, if any
    target_note: Mapped[str | None] = mapped_column(Text)  # the target's last use, unused
    principal_kind: Mapped[str] = mapped_column(String(32))  # iam_user, role_principal, ...
    principal: Mapped[str] = mapped_column(String(600))    # name, ARN or id
    principal_label: Mapped[str | None] = mapped_column(String(200))  # for people
    principal_slack: Mapped[str | None] = mapped_column(String(32))  # never their own decider
    via: Mapped[str] = mapped_column(String(600), default="", server_default="")  # the policy,
    # the assignment's account: what Remove takes away
    how: Mapped[str] = mapped_column(String(200))          # "member", "assigned", ...
    last_activity: Mapped[datetime | None] = mapped_column(UtcDateTime)
    unused: Mapped[str | None] = mapped_column(Text)       # "grants 14 services, used 2 ..."
    status: Mapped[ReviewStatus] = mapped_column(_enum(ReviewStatus),
                                                 default=ReviewStatus.OPEN)
    owner: Mapped[str] = mapped_column(String(400))        # deciders told: users, or a channel
    asked_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_told_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    escalated_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    detail: Mapped[str | None] = mapped_column(String(300))  # why GONE, what Remove did

    __table_args__ = (
        Index("ix_review_items_run", "run_id", "status"),
        # one open item per access: a new run refreshes it instead of asking twice
        Index("uq_review_items_open", "account", "target_kind", "target", "principal_kind",
              "principal", "via", unique=True, sqlite_where=OPEN_REVIEW_ITEM,
              postgresql_where=OPEN_REVIEW_ITEM),
    )


class ReviewCopy(Base):
    """Where a review message that lists an item was posted: every copy updates in place."""

    __tablename__ = "review_copies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("review_items.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(32))
    ts: Mapped[str] = mapped_column(String(32))

    __table_args__ = (UniqueConstraint("item_id", "channel", "ts"),
                      Index("ix_review_copies_message", "channel", "ts"))


class HomeViewer(Base):
    """Someone who has opened the bot's App Home tab: their Home is republished when their
    grants or requests change (services/overview.py)."""

    __tablename__ = "home_viewers"

    user_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    first_opened_at: Mapped[datetime] = mapped_column(UtcDateTime)


OPEN_BREAK_GLASS = text("reviewed_at IS NULL")


class BreakGlassReview(Base):
    """A break-glass grant an approver must mark Reviewed (with a note) by due_at."""

    __tablename__ = "break_glass_reviews"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("access_requests.id"), unique=True)
    grant_id: Mapped[int] = mapped_column(ForeignKey("grants.id"))
    opened_at: Mapped[datetime] = mapped_column(UtcDateTime)   # when it was granted
    due_at: Mapped[datetime] = mapped_column(UtcDateTime)      # + break_glass_review_within
    remind_at: Mapped[datetime] = mapped_column(UtcDateTime)   # half way to due_at
    reminded_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    escalated_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    reviewed_by: Mapped[str | None] = mapped_column(String(32))
    reviewed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    note: Mapped[str | None] = mapped_column(Text)

    request: Mapped[AccessRequest] = relationship(back_populates="break_glass_review")

    __table_args__ = (
        Index("ix_break_glass_reviews_open", "due_at", sqlite_where=OPEN_BREAK_GLASS,
              postgresql_where=OPEN_BREAK_GLASS),
    )
