"""Interfaces the services need from the outside world; aws/, handlers/ and jobs/ implement them."""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar

from accessbot.services.account_audit import PasswordPolicy
from accessbot.services.activity import Event
from accessbot.services.errors import AccessBotError
from accessbot.services.hygiene import AccessKey, CredentialRow
from accessbot.services.role_hygiene import RoleFacts


class ProviderError(AccessBotError):
    """An AWS call failed. retryable=False means retrying cannot help (no such group...)."""

    def __init__(self, message: str, retryable: bool = True):
        super().__init__(message)
        self.retryable = retryable


T = TypeVar("T")


def side_of(sides: Mapping[str, T], account: str) -> T:
    """A job's adapters for one account ("" the bot's own); an account taken out of
    `accounts:` since the work was queued is a final error, not a retry."""
    side = sides.get(account)
    if side is None:
        raise ProviderError(f"Account {account} is no longer configured (accounts: with "
                            "a role_arn)", retryable=False)
    return side


class AccountUnreachable(ProviderError):
    """The role of an account of `accounts:` could not be assumed: everything there fails
    until it can (retried; the admins hear once, services/account_faults.py)."""

    def __init__(self, message: str, account: str):
        super().__init__(message, retryable=True)
        self.account = account


class PartlyDone(ProviderError):
    """Access in several accounts that is in place in some (`done`) and not yet in others
    (`failed`: account id -> why); retried as a whole ("already assigned" is success)."""

    def __init__(self, done: tuple[str, ...], failed: dict[str, str], retryable: bool):
        where = ", ".join(done) or "no account"
        why = "; ".join(f"{account}: {error}" for account, error in failed.items())
        super().__init__(f"done in {where}, not in {why}", retryable=retryable)
        self.done = done
        self.failed = failed


class ReportNotReady(ProviderError):
    """AWS is still generating the credential report, or throttled us: try again later."""


class LookupFailed(AccessBotError):
    """Slack could not answer a lookup (5xx, timeout, rate limit): no answer, try later."""


@dataclass(frozen=True)
class GrantSpec:
    grant_id: int
    iam_user: str
    kind: str  # ResourceKind value
    target: str  # group name, role name or ARN, permission set name or ARN
    expires_at: datetime
    accounts: tuple[str, ...] = ()  # sso_permission_set: the accounts it is assigned in
    source_ips: tuple[str, ...] = ()  # iam_role: conditions of the grant's policy
    require_mfa: bool = False


class AccessProvider(Protocol):
    """Puts access in place and takes it away. Both calls are idempotent."""

    def grant(self, spec: GrantSpec) -> str | None:
        """Apply the access; return the role ARN for roles, None for groups."""

    def revoke(self, spec: GrantSpec) -> None:
        """Remove the access; 'not a member' and 'no such policy' are success."""


class CredentialSource(Protocol):
    """The account's credentials: one report for everyone, live looks for the few."""

    def report(self) -> list[CredentialRow]:
        """Generate (if needed), wait for and parse the credential report.

        Raises ReportNotReady when it is still being generated or AWS throttles (retry
        later: never "no findings"), ProviderError for other failures.
        """

    def access_keys(self, iam_user: str) -> list[AccessKey]:
        """The user's keys, live (ListAccessKeys); [] if the user no longer exists."""

    def key_last_used(self, key_id: str) -> datetime | None:
        """When the key was last used, live (GetAccessKeyLastUsed); None if never."""

    def deactivate_key(self, iam_user: str, key_id: str) -> None:
        """Set the key Inactive; an already inactive key is success."""

    def password_policy(self) -> PasswordPolicy | None:
        """The account password policy, None when the account has none."""

    def administrators(self) -> set[str]:
        """IAM users holding administrator access (Action "*" on Resource "*"), directly,
        through a group, by the AWS managed AdministratorAccess policy or any other policy."""

    def group_members(self, group: str) -> set[str]:
        """IAM user names in the group; empty set if the group does not exist."""


class RoleSource(Protocol):
    """The account's IAM roles, for role hygiene."""

    def roles(self) -> list[RoleFacts]:
        """Every role with its last use, trust policy, tags and maximum session."""

    def max_session(self, role: str) -> int | None:
        """The role's MaxSessionDuration in seconds, live (GetRole); None if it is gone."""

    def cap_session(self, role: str, seconds: int) -> bool:
        """Set the role's MaxSessionDuration (UpdateRole); False if the role is gone."""


class StandingAccess(Protocol):
    """Who holds the catalog's Identity Center access, granted by accessbot or not."""

    def assigned(self, permission_set: str, account: str) -> set[str]:
        """Identity Center user ids the permission set is assigned to in the account."""
        ...

    def members(self, group: str) -> set[str]:
        """Identity Center user ids in the group."""
        ...

    def user_name(self, user_id: str) -> str:
        """The user's name, for people (the id itself when it cannot be read)."""
        ...


@dataclass(frozen=True)
class ServiceUse:
    """One AWS service a principal's policies grant, and when it was last used."""

    namespace: str                 # "s3"
    name: str                      # "Amazon S3"
    last_accessed: datetime | None  # None: not used within IAM's tracking period


class LastAccessed(Protocol):
    """IAM's last-accessed data (access advisor) for a group, role or user."""

    def services(self, arn: str) -> list[ServiceUse]:
        """Every service the principal's policies grant, with its last use. Raises
        ProviderError (retryable while IAM is still generating the report)."""
        ...


class Directory(Protocol):
    """Maps Slack users to IAM users."""

    def iam_user_for(self, slack_user_id: str, email: str | None) -> str | None: ...


class Profiles(Protocol):
    """Slack profile lookups."""

    def email_of(self, slack_user_id: str) -> str | None:
        """The user's email; None if they have none or do not exist. Raises LookupFailed
        when Slack could not answer."""


class Timers(Protocol):
    """Runs a grant job at an exact time, in this process."""

    def schedule(self, job: str, grant_id: int, when: datetime) -> None: ...

    def cancel(self, job: str, grant_id: int) -> None: ...


@dataclass(frozen=True)
class HeldGroup:
    """An IAM group and its members, as the access review reads it."""

    arn: str
    members: frozenset[str]


@dataclass(frozen=True)
class HeldRole:
    """An IAM role as the access review reads it: who its trust policy lets assume it
    (accessbot's own grant statements and AWS services left out), when it was last used,
    and its `owner` tag."""

    arn: str
    trustees: tuple[str, ...]
    last_used: datetime | None
    owner_tag: str | None = None


@dataclass(frozen=True)
class DirectAdmin:
    """An IAM user holding administrator access through a policy on the user itself."""

    user: str
    user_arn: str
    policy: str  # a managed policy's ARN, or "inline:<name>"
    how: str     # for people: "AdministratorAccess attached directly"


class StandingReview(Protocol):
    """Standing IAM access in one account, for the access review: read it, re-check it
    live, take it away. Removals are idempotent ("not a member" is success)."""

    def group(self, group: str) -> HeldGroup | None:
        """The group and its members; None when there is no such group."""
        ...

    def role(self, role: str) -> HeldRole | None:
        """The role (by name or ARN); None when there is no such role."""
        ...

    def direct_admins(self) -> list[DirectAdmin]:
        """Users with AdministratorAccess, or a policy allowing * on *, attached to or
        inline on the user (not through a group)."""
        ...

    def has_policy(self, user: str, policy: str) -> bool:
        """Live: is this managed policy attached to (or this inline policy on) the user?"""
        ...

    def remove_member(self, group: str, user: str) -> None: ...

    def detach_admin(self, user: str, policy: str) -> None: ...


class IdentityCenterReview(StandingAccess, Protocol):
    """StandingAccess, and taking it away (the revocation's own code)."""

    def remove_assignment(self, permission_set: str, account: str, user_id: str) -> None: ...

    def remove_member(self, group: str, user_id: str) -> None: ...


@dataclass(frozen=True)
class ActivityEvents:
    """The events a lookup found, in the regions it read."""

    events: list[Event]
    regions: tuple[str, ...]
    truncated: bool = False  # more than the lookup reads: what it found is a floor


class Activity(Protocol):
    """What a user did in an account over a window (CloudTrail), for a grant that ended."""

    def events(self, account: str, user_name: str, start: datetime,
               end: datetime) -> ActivityEvents:
        """The user's events in the account ('' = the bot's own) between start and end, in
        every configured region. Raises ProviderError (retryable: throttled, no answer)."""
        ...


class AuditArchive(Protocol):
    """Where the daily files of the audit trail go (audit.s3_bucket): write-once storage.
    Raises ProviderError when the object could not be stored."""

    def put(self, key: str, body: bytes) -> None: ...
