"""Grants and revokes access with IAM: group membership, or an expiring inline AssumeRole policy."""

import json
from collections.abc import Callable
from datetime import UTC, datetime

from botocore.client import BaseClient
from botocore.exceptions import BotoCoreError, ClientError

from services.catalog import ResourceKind
from services.ports import GrantSpec, ProviderError

POLICY_PREFIX = "accessbot-grant-"

# Codes where a retry cannot succeed until someone changes the configuration or the request.
# AccessDenied is deliberately absent: the bot's own IAM permissions are often fixed by an
# admin after the first failure, and a later retry then succeeds without anyone re-requesting.
_PERMANENT_CODES = frozenset(
    {"NoSuchEntity", "MalformedPolicyDocument", "InvalidInput", "ValidationError"}
)

AWSError = ClientError | BotoCoreError


def policy_name(grant_id: int) -> str:
    """Name of the inline user policy that carries one role grant."""
    return f"{POLICY_PREFIX}{grant_id}"


def iso_utc(moment: datetime) -> str:
    """2026-11-28T10:00:00Z, the form IAM's aws:CurrentTime condition compares against."""
    if moment.tzinfo is None:
        raise ValueError("expires_at must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def assume_role_policy(role_arn: str, expires_at: datetime) -> str:
    """A policy allowing AssumeRole on one role until expires_at, enforced by IAM itself."""
    document = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["sts:AssumeRole", "sts:TagSession"],
                "Resource": role_arn,
                "Condition": {"DateLessThan": {"aws:CurrentTime": iso_utc(expires_at)}},
            }
        ],
    }
    # Compact: a user's inline policies share a 2,048-character quota.
    return json.dumps(document, separators=(",", ":"))


def _is_missing(exc: AWSError) -> bool:
    return (
        isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") == "NoSuchEntity"
    )


def provider_error(exc: AWSError, doing: str) -> ProviderError:
    """Turn a botocore failure while `doing` something into a ProviderError users can read."""
    if isinstance(exc, BotoCoreError):
        return ProviderError(f"Could not reach AWS IAM while {doing}: {exc}", retryable=True)
    error = exc.response.get("Error", {})
    code = error.get("Code", "Unknown")
    detail = error.get("Message", "")
    return ProviderError(
        f"AWS IAM refused {doing} ({code}: {detail})", retryable=code not in _PERMANENT_CODES
    )


class IamAccess:
    """AccessProvider backed by IAM groups and per-grant inline AssumeRole policies."""

    def __init__(self, client: BaseClient):
        self._iam = client
        self._role_arns: dict[str, str] = {}

    def grant(self, spec: GrantSpec) -> str | None:
        if spec.kind == ResourceKind.IAM_GROUP:
            self._add_to_group(spec.iam_user, spec.target)
            return None
        if spec.kind == ResourceKind.IAM_ROLE:
            return self._allow_assume_role(spec)
        raise ProviderError(f"Unknown access kind {spec.kind!r}", retryable=False)

    def revoke(self, spec: GrantSpec) -> None:
        if spec.kind == ResourceKind.IAM_GROUP:
            self._unless_missing(
                f"removing IAM user {spec.iam_user} from group {spec.target}",
                self._iam.remove_user_from_group,
                GroupName=spec.target,
                UserName=spec.iam_user,
            )
        elif spec.kind == ResourceKind.IAM_ROLE:
            name = policy_name(spec.grant_id)
            self._unless_missing(
                f"deleting policy {name} of IAM user {spec.iam_user}",
                self._iam.delete_user_policy,
                UserName=spec.iam_user,
                PolicyName=name,
            )
        else:
            raise ProviderError(f"Unknown access kind {spec.kind!r}", retryable=False)

    def group_members(self, group: str) -> set[str]:
        """IAM user names in a group, across all pages."""
        members: set[str] = set()
        try:
            for page in self._iam.get_paginator("get_group").paginate(GroupName=group):
                members.update(user["UserName"] for user in page["Users"])
        except (ClientError, BotoCoreError) as exc:
            if _is_missing(exc):
                raise ProviderError(f"IAM group {group} does not exist", retryable=False) from exc
            raise provider_error(exc, f"listing members of IAM group {group}") from exc
        return members

    def role_arn(self, target: str) -> str:
        """The ARN of a role given by name or ARN; names are looked up once and cached."""
        if target.startswith("arn:"):
            if ":role/" not in target:
                raise ProviderError(f"{target} is not an IAM role ARN", retryable=False)
            return target
        if target not in self._role_arns:
            try:
                role = self._iam.get_role(RoleName=target)["Role"]
            except (ClientError, BotoCoreError) as exc:
                if _is_missing(exc):
                    raise ProviderError(
                        f"IAM role {target} does not exist", retryable=False
                    ) from exc
                raise provider_error(exc, f"looking up IAM role {target}") from exc
            self._role_arns[target] = role["Arn"]
        return self._role_arns[target]

    @staticmethod
    def _unless_missing(doing: str, call: Callable[..., object], **kwargs: str) -> None:
        """Run a removal; NoSuchEntity (not a member, no such policy, user gone) is success."""
        try:
            call(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            if not _is_missing(exc):
                raise provider_error(exc, doing) from exc

    def _add_to_group(self, user: str, group: str) -> None:
        try:
            self._iam.add_user_to_group(GroupName=group, UserName=user)
        except (ClientError, BotoCoreError) as exc:
            if _is_missing(exc):
                raise ProviderError(
                    self._missing_user_or_group(user, group), retryable=False
                ) from exc
            raise provider_error(exc, f"adding IAM user {user} to group {group}") from exc

    def _missing_user_or_group(self, user: str, group: str) -> str:
        """Say which side of a NoSuchEntity from add_user_to_group is missing."""
        try:
            self._iam.get_group(GroupName=group, MaxItems=1)
        except (ClientError, BotoCoreError) as exc:
            if _is_missing(exc):
                return f"IAM group {group} does not exist"
            return f"IAM user {user} or group {group} does not exist"
        return f"IAM user {user} does not exist"

    def _allow_assume_role(self, spec: GrantSpec) -> str:
        arn = self.role_arn(spec.target)
        name = policy_name(spec.grant_id)
        try:
            self._iam.put_user_policy(
                UserName=spec.iam_user,
                PolicyName=name,
                PolicyDocument=assume_role_policy(arn, spec.expires_at),
            )
        except (ClientError, BotoCoreError) as exc:
            if _is_missing(exc):
                raise ProviderError(
                    f"IAM user {spec.iam_user} does not exist", retryable=False
                ) from exc
            raise provider_error(
                exc, f"putting policy {name} on IAM user {spec.iam_user} for role {arn}"
            ) from exc
        return arn
