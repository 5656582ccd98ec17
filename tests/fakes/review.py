"""In-memory fakes of the access review's ports: an account's standing IAM access,
Identity Center, and IAM's last-accessed data."""

from __future__ import annotations

from dataclasses import dataclass, field

from accessbot.services.ports import (
    DirectAdmin,
    HeldGroup,
    HeldRole,
    ProviderError,
    ServiceUse,
)

ACCOUNT = "123456789012"


def group_arn(group: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:group/{group}"


def user_arn(user: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:user/{user}"


@dataclass
class FakeStanding:
    """StandingReview: groups and their members, roles, direct administrators."""

    groups: dict[str, set[str]] = field(default_factory=dict)
    roles: dict[str, HeldRole] = field(default_factory=dict)
    admins: list[DirectAdmin] = field(default_factory=list)
    calls: list[tuple] = field(default_factory=list)
    refuse: bool = False  # removals fail (AccessDenied)

    def group(self, group: str) -> HeldGroup | None:
        if group not in self.groups:
            return None
        return HeldGroup(group_arn(group), frozenset(self.groups[group]))

    def role(self, role: str) -> HeldRole | None:
        return self.roles.get(role)

    def direct_admins(self) -> list[DirectAdmin]:
        return list(self.admins)

    def has_policy(self, user: str, policy: str) -> bool:
        return any(a.user == user and a.policy == policy for a in self.admins)

    def remove_member(self, group: str, user: str) -> None:
        self._refused()
        self.calls.append(("remove_member", group, user))
        self.groups.get(group, set()).discard(user)

    def detach_admin(self, user: str, policy: str) -> None:
        self._refused()
        self.calls.append(("detach_admin", user, policy))
        self.admins = [a for a in self.admins if (a.user, a.policy) != (user, policy)]

    def _refused(self) -> None:
        if self.refuse:
            raise ProviderError("AWS IAM refused it (AccessDenied)")


@dataclass
class FakeIdentityCenter:
    """IdentityCenterReview: assignments by (permission set, account), group members."""

    assignments: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    groups: dict[str, set[str]] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    calls: list[tuple] = field(default_factory=list)

    def assigned(self, permission_set: str, account: str) -> set[str]:
        return set(self.assignments.get((permission_set, account), set()))

    def members(self, group: str) -> set[str]:
        return set(self.groups.get(group, set()))

    def user_name(self, user_id: str) -> str:
        return self.names.get(user_id, user_id)

    def remove_assignment(self, permission_set: str, account: str, user_id: str) -> None:
        self.calls.append(("remove_assignment", permission_set, account, user_id))
        self.assignments.get((permission_set, account), set()).discard(user_id)

    def remove_member(self, group: str, user_id: str) -> None:
        self.calls.append(("remove_member", group, user_id))
        self.groups.get(group, set()).discard(user_id)


@dataclass
class FakeLastAccessed:
    """LastAccessed: services by ARN; ARNs in `failing` raise ProviderError."""

    uses: dict[str, list[ServiceUse]] = field(default_factory=dict)
    failing: set[str] = field(default_factory=set)

    def services(self, arn: str) -> list[ServiceUse]:
        if arn in self.failing:
            raise ProviderError("IAM is still generating the last-accessed report")
        return list(self.uses.get(arn, []))
