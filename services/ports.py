"""Interfaces the services need from the outside world; aws/, handlers/ and jobs/ implement them."""

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from models import AccessRequest, ApprovalMessage, Grant
from services.errors import AccessBotError


class ProviderError(AccessBotError):
    """An AWS call failed. retryable=False means retrying cannot help (no such group...)."""

    def __init__(self, message: str, retryable: bool = True):
        super().__init__(message)
        self.retryable = retryable


class NotificationError(AccessBotError):
    """A Slack message could not be delivered."""


@dataclass(frozen=True)
class GrantSpec:
    grant_id: int
    iam_user: str
    kind: str  # ResourceKind value
    target: str  # group name, role name or role ARN
    expires_at: datetime


class AccessProvider(Protocol):
    """Puts access in place and takes it away. Both calls are idempotent."""

    def grant(self, spec: GrantSpec) -> str | None:
        """Apply the access; return the role ARN for roles, None for groups."""

    def revoke(self, spec: GrantSpec) -> None:
        """Remove the access; 'not a member' and 'no such policy' are success."""


class Directory(Protocol):
    """Maps Slack users to IAM users."""

    def iam_user_for(self, slack_user_id: str, email: str | None) -> str | None: ...


class Profiles(Protocol):
    """Slack profile lookups."""

    def email_of(self, slack_user_id: str) -> str | None: ...


class Timers(Protocol):
    """Runs a grant job at an exact time, in this process."""

    def schedule(self, job: str, grant_id: int, when: datetime) -> None: ...

    def cancel(self, job: str, grant_id: int) -> None: ...


class Notifier(Protocol):
    """Everything the bot tells people. Implementations raise NotificationError on failure."""

    def post_request(self, request: AccessRequest, destination: str) -> tuple[str, str]:
        """Post the approval message to a channel or user; return (channel, ts)."""

    def update_request(self, request: AccessRequest, message: ApprovalMessage) -> None: ...

    def request_submitted(self, request: AccessRequest) -> None:
        """Tell the requester their request reached the approvers."""

    def request_failed(self, request: AccessRequest, why: str) -> None: ...

    def request_decided(self, request: AccessRequest) -> None:
        """Tell the requester about a denial or an expiry (approval is told by grant_active)."""

    def grant_active(self, grant: Grant) -> tuple[str, str]:
        """DM the requester that access is in place; return (channel, ts) of that DM."""

    def grant_extended(self, grant: Grant, request: AccessRequest) -> None:
        """Tell the requester the new expiry that the approved extension `request` gave."""

    def grant_expiring(self, grant: Grant) -> None: ...

    def grant_ended(self, grant: Grant) -> None: ...

    def grant_failed(self, grant: Grant) -> None: ...

    def admin_alert(self, text: str) -> None: ...
