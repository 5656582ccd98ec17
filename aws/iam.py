"""Grants and revokes access with IAM: group membership, or an expiring AssumeRole permission:
an inline policy on the user (role_grants: user_policy), or a statement naming the user in
the role's trust policy (role_grants: trust_policy; then the bot changes no user's policies).

Revoking a role grant also ends the role sessions the user already holds, the way the IAM
console's "Revoke active sessions" does, but for that one user: an inline policy on the role
denies everything to the user's sessions issued before the revocation. The bot's own IAM policy
therefore needs, on every managed role, iam:PutRolePolicy, iam:DeleteRolePolicy,
iam:ListRolePolicies and iam:GetRolePolicy (and iam:GetRole, already used for names and ARNs).
"""

import hashlib
import json
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote

from botocore.client import BaseClient
from botocore.exceptions import BotoCoreError, ClientError

from accessbot.services.catalog import ResourceKind
from accessbot.services.ports import GrantSpec, ProviderError

POLICY_PREFIX = "accessbot-grant-"
REVOKE_PREFIX = "accessbot-revoke-"
TRUST_SID_PREFIX = "accessbotgrant"  # a trust policy statement's Sid: letters and digits
USER_POLICY, TRUST_POLICY = "user_policy", "trust_policy"  # role_grants:
TRUST_WRITES = 3  # a trust policy another process changed meanwhile is read and written again

# The longest an assumed-role session can live: MaxSessionDuration is at most 12 hours (and a
# chained session at most 1). A deny on sessions issued before T stops mattering at T + 12h,
# because no such session can still be valid; its policy can then go.
MAX_SESSION = timedelta(hours=12)
_MAX_POLICY_NAME = 128
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

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


def revoke_policy_name(iam_user: str) -> str:
    """Name of the inline role policy that ends one user's sessions; one per user and role."""
    name = f"{REVOKE_PREFIX}{iam_user}"
    if len(name) <= _MAX_POLICY_NAME:  # always, for valid IAM user names (64 characters)
        return name
    digest = hashlib.sha256(iam_user.encode()).hexdigest()[:16]
    return f"{name[: _MAX_POLICY_NAME - len(digest) - 1]}-{digest}"


def iso_utc(moment: datetime) -> str:
    """2026-11-28T10:00:00Z, the form IAM's date conditions compare against."""
    if moment.tzinfo is None:
        raise ValueError("times given to IAM must be timezone-aware")
    return moment.astimezone(UTC).strftime(_TIME_FORMAT)


def _compact(statement: dict[str, object]) -> str:
    # Compact: a user's inline policies share 2,048 characters, a role's 10,240.
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]}, separators=(",", ":"))


def _grant_condition(expires_at: datetime, source_ips: tuple[str, ...],
                     require_mfa: bool) -> dict[str, dict[str, object]]:
    """Until expires_at, enforced by IAM itself, and only from `source_ips` (aws:SourceIp)
    and with MFA (aws:MultiFactorAuthPresent) when the resource asks for them.

    The session name must be the IAM user's name, so every session of the grant has the
    aws:userid "<role id>:<user>" that revoke_sessions_policy matches.
    """
    condition: dict[str, dict[str, object]] = {
        "DateLessThan": {"aws:CurrentTime": iso_utc(expires_at)},
        "StringEquals": {"sts:RoleSessionName": "${aws:username}"},
    }
    if source_ips:
        condition["IpAddress"] = {"aws:SourceIp": list(source_ips)}
    if require_mfa:
        condition["Bool"] = {"aws:MultiFactorAuthPresent": "true"}
    return condition


def assume_role_policy(role_arn: str, expires_at: datetime, source_ips: tuple[str, ...] = (),
                       require_mfa: bool = False) -> str:
    """The user policy of a role grant: AssumeRole on one role, under _grant_condition."""
    return _compact({"Effect": "Allow", "Action": ["sts:AssumeRole", "sts:TagSession"],
                     "Resource": role_arn,
                     "Condition": _grant_condition(expires_at, source_ips, require_mfa)})


def trust_sid(grant_id: int) -> str:
    return f"{TRUST_SID_PREFIX}{grant_id}"


def trust_statement(grant_id: int, user_arn: str, expires_at: datetime,
                    source_ips: tuple[str, ...] = (), require_mfa: bool = False) -> dict:
    """The trust policy statement of a role grant: the user (by ARN: in its own account it
    then needs no permission of its own) may assume the role, under _grant_condition."""
    return {"Sid": trust_sid(grant_id), "Effect": "Allow", "Principal": {"AWS": user_arn},
            "Action": ["sts:AssumeRole", "sts:TagSession"],
            "Condition": _grant_condition(expires_at, source_ips, require_mfa)}


def trust_changed(document: dict, grant_id: int, add: dict | None,
                  now: datetime) -> dict | None:
    """The trust policy with the grant's statement being `add` (None: absent) and this
    bot's expired statements pruned (they allow nothing any more); None when the policy is
    so already, wherever the statement stands among the others."""
    statements = document.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    sid = trust_sid(grant_id)
    ours = [s for s in statements if s.get("Sid") == sid]
    others = [s for s in statements if s.get("Sid") != sid]
    kept = [s for s in others if not _expired_grant(s, now)]
    wanted = [] if add is None else [add]
    if ours == wanted and kept == others:
        return None
    return {**document, "Statement": kept + wanted}


def _expired_grant(statement: dict, now: datetime) -> bool:
    if not str(statement.get("Sid", "")).startswith(TRUST_SID_PREFIX):
        return False
    try:
        until = statement["Condition"]["DateLessThan"]["aws:CurrentTime"]
        return datetime.strptime(until, _TIME_FORMAT).replace(tzinfo=UTC) <= now
    except (KeyError, TypeError, ValueError):
        return False  # not understood: left alone


def revoke_sessions_policy(iam_user: str, revoked_at: datetime) -> str:
    """A role policy denying everything to the user's sessions issued before revoked_at."""
    if revoked_at.microsecond:
        # Round up: IAM times have whole seconds, and a session issued earlier in the same
        # second must not survive. Nothing new can start then: the grant policy is gone.
        revoked_at = revoked_at.replace(microsecond=0) + timedelta(seconds=1)
    return _compact(
        {
            "Effect": "Deny",
            "Action": "*",
            "Resource": "*",
            "Condition": {
                "StringLike": {"aws:userid": f"*:{iam_user}"},
                "DateLessThan": {"aws:TokenIssueTime": iso_utc(revoked_at)},
            },
        }
    )


def revoked_at_of(document: object) -> datetime | None:
    """The TokenIssueTime cut-off of a revoke policy; None if the document is not one of ours."""
    if not isinstance(document, dict):
        return None
    try:
        [statement] = document["Statement"]
        stamp = statement["Condition"]["DateLessThan"]["aws:TokenIssueTime"]
        return datetime.strptime(stamp, _TIME_FORMAT).replace(tzinfo=UTC)
    except (KeyError, TypeError, ValueError):
        return None


def error_code(exc: AWSError) -> str | None:
    """IAM's error code (NoSuchEntity, Throttling...); None when AWS was not reached."""
    return exc.response.get("Error", {}).get("Code") if isinstance(exc, ClientError) else None


def _is_missing(exc: AWSError) -> bool:
    return error_code(exc) == "NoSuchEntity"


def provider_error(exc: AWSError, doing: str, service: str = "AWS IAM",
                   permanent: frozenset[str] = _PERMANENT_CODES) -> ProviderError:
    """Turn a botocore failure while `doing` something into a ProviderError users can read;
    the error codes in `permanent` are not worth retrying."""
    if isinstance(exc, BotoCoreError):
        return ProviderError(f"Could not reach {service} while {doing}: {exc}", retryable=True)
    error = exc.response.get("Error", {})
    code = error.get("Code", "Unknown")
    detail = error.get("Message", "")
    return ProviderError(
        f"{service} refused {doing} ({code}: {detail})", retryable=code not in permanent
    )


class IamAccess:
    """AccessProvider backed by IAM groups and per-grant inline AssumeRole policies."""

    def __init__(
        self, client: BaseClient, clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        role_grants: str = USER_POLICY,
    ):
        self._iam = client
        self._clock = clock
        self._role_grants = role_grants
        self._role_arns: dict[str, str] = {}
        self._local_role_arns: set[str] = set()
        self._trust_locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)

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
            if self._role_grants == TRUST_POLICY:
                self._trust(spec, add=False)
            else:
                name = policy_name(spec.grant_id)
                self._unless_missing(
                    f"deleting policy {name} of IAM user {spec.iam_user}",
                    self._iam.delete_user_policy,
                    UserName=spec.iam_user,
                    PolicyName=name,
                )
            self._end_sessions(spec.iam_user, spec.target)
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

    def _end_sessions(self, user: str, target: str) -> None:
        """Deny the user's existing sessions of the role; a role that is gone has none."""
        role = self._role_name(target)
        if role is None:
            return
        now = self._clock()
        name = revoke_policy_name(user)
        doing = f"revoking the sessions of IAM user {user} in role {role}"
        try:
            # Prune first: it makes room in the role's 10,240-character inline policy budget.
            self._prune_revocations(role, keep=name, now=now)
            self._iam.put_role_policy(
                RoleName=role, PolicyName=name, PolicyDocument=revoke_sessions_policy(user, now)
            )
        except (ClientError, BotoCoreError) as exc:
            if not _is_missing(exc):
                raise provider_error(exc, doing) from exc

    def _role_name(self, target: str) -> str | None:
        """The name of a role in this account given by name or ARN; None if it is gone."""
        if not target.startswith("arn:"):
            return target
        arn = self.role_arn(target)
        name = arn.rsplit("/", 1)[1]
        if arn not in self._local_role_arns:
            # The client can only change roles of its own account: make sure the name is that
            # role and not a namesake here while the ARN points at another account or path.
            try:
                found = self._iam.get_role(RoleName=name)["Role"]["Arn"]
            except (ClientError, BotoCoreError) as exc:
                if _is_missing(exc):
                    return None
                raise provider_error(exc, f"looking up IAM role {arn}") from exc
            if found != arn:
                raise ProviderError(
                    f"Cannot revoke sessions of IAM role {arn}: it is not in this account",
                    retryable=False,
                )
            self._local_role_arns.add(arn)
        return name

    def _prune_revocations(self, role: str, keep: str, now: datetime) -> None:
        """Delete this bot's revoke policies on the role older than the longest session."""
        for name in list(self._revoke_policy_names(role)):  # listed in full before deleting
            if name == keep:
                continue  # about to be overwritten anyway
            try:
                document = self._iam.get_role_policy(RoleName=role, PolicyName=name)
                revoked_at = revoked_at_of(document["PolicyDocument"])
                # An unreadable document is left alone: deleting a deny we do not understand
                # could reopen access.
                if revoked_at is not None and revoked_at < now - MAX_SESSION:
                    self._iam.delete_role_policy(RoleName=role, PolicyName=name)
            except ClientError as exc:
                # Gone meanwhile: another revocation pruned it, or the role itself was deleted,
                # which the put that follows reports.
                if not _is_missing(exc):
                    raise

    def _revoke_policy_names(self, role: str) -> Iterator[str]:
        for page in self._iam.get_paginator("list_role_policies").paginate(RoleName=role):
            yield from (name for name in page["PolicyNames"] if name.startswith(REVOKE_PREFIX))

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

    def _trust(self, spec: GrantSpec, add: bool) -> None:
        """Put the grant's statement in the role's trust policy, or take it out. Written
        again when another process changed the policy in between (IAM has no conditional
        write); one process's grants of a role take turns."""
        role = self._role_name(spec.target)
        if role is None:
            if add:
                raise ProviderError(f"IAM role {spec.target} does not exist", retryable=False)
            return  # a role that is gone trusts nobody
        statement = trust_statement(spec.grant_id, self._user_arn(spec.iam_user),
                                    spec.expires_at, spec.source_ips, spec.require_mfa) \
            if add else None
        doing = f"changing the trust policy of IAM role {role} for grant #{spec.grant_id}"
        with self._trust_locks[role]:
            for _ in range(TRUST_WRITES):
                try:
                    changed = trust_changed(self._trust_policy(role), spec.grant_id, statement,
                                            self._clock())
                    if changed is None:
                        return
                    self._iam.update_assume_role_policy(
                        RoleName=role, PolicyDocument=json.dumps(changed, separators=(",", ":")))
                except (ClientError, BotoCoreError) as exc:
                    if _is_missing(exc) and not add:
                        return
                    raise provider_error(exc, doing) from exc
        raise ProviderError(f"{doing}: it kept changing under us; will retry", retryable=True)

    def _trust_policy(self, role: str) -> dict:
        document = self._iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"]
        # boto3 decodes it; a raw answer is URL-encoded JSON
        return json.loads(unquote(document)) if isinstance(document, str) else document

    def _user_arn(self, iam_user: str) -> str:
        try:
            return self._iam.get_user(UserName=iam_user)["User"]["Arn"]
        except (ClientError, BotoCoreError) as exc:
            if _is_missing(exc):
                raise ProviderError(f"IAM user {iam_user} does not exist",
                                    retryable=False) from exc
            raise provider_error(exc, f"looking up IAM user {iam_user}") from exc

    def _allow_assume_role(self, spec: GrantSpec) -> str:
        arn = self.role_arn(spec.target)
        if self._role_grants == TRUST_POLICY:
            self._trust(spec, add=True)
            return arn
        name = policy_name(spec.grant_id)
        try:
            self._iam.put_user_policy(
                UserName=spec.iam_user,
                PolicyName=name,
                PolicyDocument=assume_role_policy(arn, spec.expires_at, spec.source_ips,
                                                  spec.require_mfa),
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
