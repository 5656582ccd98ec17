"""Standing IAM access for the access review: group members, users with administrator
policies of their own, the principals a role's trust policy lets in; and taking the first
two away.

The bot's IAM policy needs, besides what grants and hygiene use (iam:GetGroup,
iam:RemoveUserFromGroup, iam:GetRole, iam:GetAccountAuthorizationDetails,
iam:DeleteUserPolicy): iam:ListAttachedUserPolicies and iam:GetUserPolicy (the live
re-check) and iam:DetachUserPolicy (Remove of a directly attached policy).
"""

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

from botocore.client import BaseClient
from botocore.exceptions import BotoCoreError, ClientError

from accessbot.aws.accounts import as_unreachable
from accessbot.aws.credentials import grants_admin, policy_document
from accessbot.aws.iam import TRUST_SID_PREFIX, error_code, provider_error
from accessbot.services.ports import DirectAdmin, HeldGroup, HeldRole, ProviderError

T = TypeVar("T")

INLINE = "inline:"  # DirectAdmin.policy of an inline user policy: "inline:<name>"
OWNER_TAG = "owner"
_AWS_ADMIN_POLICY = ":iam::aws:policy/AdministratorAccess"
# users and customer managed policies with their documents; AdministratorAccess is known
# by its ARN (the AWS managed policies would add ~1,600 documents)
_DETAILS_FILTER = ["User", "LocalManagedPolicy"]


def trustees(document: dict[str, Any]) -> tuple[str, ...]:
    """The principals of a trust policy's Allow statements, in order, once each: AWS
    principals (ARNs, account ids, "*") and federated ones; not AWS services, and not
    accessbot's own grant statements (live grants, never standing access)."""
    statements = document.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    found: list[str] = []
    for statement in statements:
        if statement.get("Effect") != "Allow" or \
                str(statement.get("Sid", "")).startswith(TRUST_SID_PREFIX):
            continue
        principal = statement.get("Principal")
        if principal == "*":
            values = ["*"]
        elif isinstance(principal, dict):
            values = [value for key in ("AWS", "Federated") for value in
                      _as_list(principal.get(key))]
        else:
            values = []
        found += [value for value in values if value not in found]
    return tuple(found)


def _as_list(value: object) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


class IamReview:
    """StandingReview over an IAM client (the bot's own account, or one assumed)."""

    def __init__(self, client: BaseClient):
        self._iam = client

    def group(self, group: str) -> HeldGroup | None:
        arn, members = None, set()
        try:
            for page in self._pages("get_group", GroupName=group):
                arn = page["Group"]["Arn"]
                members.update(user["UserName"] for user in page["Users"])
        except (ClientError, BotoCoreError) as exc:
            if error_code(exc) == "NoSuchEntity":
                return None
            raise provider_error(exc, f"listing members of IAM group {group}") from exc
        return HeldGroup(arn, frozenset(members))

    def role(self, role: str) -> HeldRole | None:
        name = role.rsplit("/", 1)[-1] if role.startswith("arn:") else role
        try:
            found = self._iam.get_role(RoleName=name)["Role"]
        except (ClientError, BotoCoreError) as exc:
            if error_code(exc) == "NoSuchEntity":
                return None
            raise provider_error(exc, f"reading IAM role {name}") from exc
        if role.startswith("arn:") and found["Arn"] != role:
            return None  # a namesake here; the role named is elsewhere
        last = (found.get("RoleLastUsed") or {}).get("LastUsedDate")
        tags = {t["Key"].lower(): t["Value"] for t in found.get("Tags", ())}
        return HeldRole(found["Arn"], trustees(policy_document(found["AssumeRolePolicyDocument"])),
                        last.astimezone(UTC) if isinstance(last, datetime) else None,
                        tags.get(OWNER_TAG))

    def direct_admins(self) -> list[DirectAdmin]:
        users, admin_policies = [], {}
        try:
            for page in self._pages("get_account_authorization_details",
                                    Filter=_DETAILS_FILTER,
                                    PaginationConfig={"PageSize": 1000}):
                users += page.get("UserDetailList", ())
                for policy in page.get("Policies", ()):
                    document = next((v["Document"] for v in policy.get("PolicyVersionList", ())
                                     if v.get("IsDefaultVersion")), None)
                    if document is not None and grants_admin(document):
                        admin_policies[policy["Arn"]] = policy["Arn"].rsplit("/", 1)[-1]
        except (ClientError, BotoCoreError) as exc:
            raise provider_error(exc, "reading IAM users and policies") from exc
        found = []
        for user in sorted(users, key=lambda u: u["UserName"]):
            name, arn = user["UserName"], user["Arn"]
            for attached in user.get("AttachedManagedPolicies", ()):
                policy = attached["PolicyArn"]
                if policy.endswith(_AWS_ADMIN_POLICY):
                    found.append(DirectAdmin(name, arn, policy,
                                             "AdministratorAccess attached directly"))
                elif policy in admin_policies:
                    found.append(DirectAdmin(name, arn, policy, f"policy {admin_policies[policy]}"
                                             " (allows * on *) attached directly"))
            for inline in user.get("UserPolicyList", ()):
                if grants_admin(inline["PolicyDocument"]):
                    found.append(DirectAdmin(name, arn, INLINE + inline["PolicyName"],
                                             f"inline policy {inline['PolicyName']} allows "
                                             "* on *"))
        return found

    def has_policy(self, user: str, policy: str) -> bool:
        try:
            if policy.startswith(INLINE):
                self._iam.get_user_policy(UserName=user, PolicyName=policy[len(INLINE):])
                return True
            return any(attached["PolicyArn"] == policy
                       for page in self._pages("list_attached_user_policies", UserName=user)
                       for attached in page["AttachedPolicies"])
        except (ClientError, BotoCoreError) as exc:
            if error_code(exc) == "NoSuchEntity":
                return False
            raise provider_error(exc, f"reading the policies of IAM user {user}") from exc

    def remove_member(self, group: str, user: str) -> None:
        self._unless_missing(f"removing IAM user {user} from group {group}",
                             self._iam.remove_user_from_group, GroupName=group, UserName=user)

    def detach_admin(self, user: str, policy: str) -> None:
        if policy.startswith(INLINE):
            self._unless_missing(f"deleting inline policy {policy[len(INLINE):]} of IAM user "
                                 f"{user}", self._iam.delete_user_policy, UserName=user,
                                 PolicyName=policy[len(INLINE):])
        else:
            self._unless_missing(f"detaching {policy} from IAM user {user}",
                                 self._iam.detach_user_policy, UserName=user, PolicyArn=policy)

    @staticmethod
    def _unless_missing(doing: str, call: Callable[..., object], **kwargs: str) -> None:
        try:
            call(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            if error_code(exc) != "NoSuchEntity":
                raise provider_error(exc, doing) from exc

    def _pages(self, operation: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        yield from self._iam.get_paginator(operation).paginate(**kwargs)


class AccountReview:
    """IamReview of another account: a failure to assume its role is said as such."""

    def __init__(self, review: IamReview, account: str):
        self._review = review
        self._account = account

    def _call(self, method: Callable[..., T], *args) -> T:
        try:
            return method(*args)
        except ProviderError as exc:
            raise as_unreachable(exc, self._account) from exc.__cause__

    def group(self, group: str) -> HeldGroup | None:
        return self._call(self._review.group, group)

    def role(self, role: str) -> HeldRole | None:
        return self._call(self._review.role, role)

    def direct_admins(self) -> list[DirectAdmin]:
        return self._call(self._review.direct_admins)

    def has_policy(self, user: str, policy: str) -> bool:
        return self._call(self._review.has_policy, user, policy)

    def remove_member(self, group: str, user: str) -> None:
        self._call(self._review.remove_member, group, user)

    def detach_admin(self, user: str, policy: str) -> None:
        self._call(self._review.detach_admin, user, policy)
