"""`accessbot doctor`, AWS's part: who the bot is, what the catalog names, what it may do."""

from dataclasses import dataclass

from botocore.client import BaseClient
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
from botocore.parsers import ResponseParserError

from accessbot.aws.accounts import assumed_session
from accessbot.aws.identity_center import IdentityCenter
from accessbot.aws.session import make_client
from accessbot.services.catalog import Account
from accessbot.services.doctor import Check
from accessbot.services.ports import ProviderError

# What the bot calls, by what it calls it on (iam-policy.json grants exactly these; the
# test of this module holds the two equal).
GROUP_ACTIONS = ("iam:AddUserToGroup", "iam:RemoveUserFromGroup", "iam:GetGroup")
ROLE_ACTIONS = ("iam:GetRole", "iam:PutRolePolicy", "iam:DeleteRolePolicy", "iam:GetRolePolicy",
                "iam:ListRolePolicies")
ROLE_GRANT_ACTIONS = ("iam:PutUserPolicy", "iam:DeleteUserPolicy")  # on the requester
TRUST_GRANT_ACTIONS = ("iam:UpdateAssumeRolePolicy",)  # role_grants: trust_policy, on roles
TRUST_USER_ACTIONS = ("iam:GetUser",)  # and on the requester (its ARN, for the principal)
ACCOUNT_ACTIONS = ("iam:GetAccountAuthorizationDetails",)
HYGIENE_ACTIONS = ("iam:GenerateCredentialReport", "iam:GetCredentialReport",
                   "iam:GetAccountPasswordPolicy", "iam:ListAccessKeys",
                   "iam:GetAccessKeyLastUsed", "iam:ListRoles")
HYGIENE_USER_ACTIONS = ("iam:UpdateAccessKey",)
# the access review: re-check and remove administrator policies on users
REVIEW_USER_ACTIONS = ("iam:ListAttachedUserPolicies", "iam:GetUserPolicy",
                       "iam:DetachUserPolicy")
# the access review's unused services: IAM's last-accessed data (no resource narrows reads)
REVIEW_ADVISOR_ACTIONS = ("iam:GenerateServiceLastAccessedDetails",
                          "iam:GetServiceLastAccessedDetails")
HYGIENE_ROLE_ACTIONS = ("iam:GetRole", "iam:UpdateRole")  # a role's session capped, any role
DOCTOR_ACTIONS = ("iam:SimulatePrincipalPolicy",)  # on the bot's own ARN
ASSUME_ACTIONS = ("sts:AssumeRole",)  # on the role of each account of accounts:
ACTIVITY_ACTIONS = ("cloudtrail:LookupEvents",)  # cloudtrail.enabled: what a grant was used for
AUDIT_ARCHIVE_ACTIONS = ("s3:PutObject",)  # with audit.s3_bucket, on its prefix's keys
POLICY_IC = "attach deploy/iam-policy-identity-center.json to the bot"
POLICY = "attach iam-policy.json to the bot (with your account id and the catalog's ARNs)"
MEMBER_ROLE = ("deploy deploy/member-account-role.yaml in that account, trusting the bot's "
               "ARN, with the account's external_id")


@dataclass(frozen=True)
class Needs:
    """What the catalog asks of AWS."""

    groups: tuple[str, ...]
    roles: tuple[str, ...]  # names or ARNs
    hygiene: bool
    assumed_roles: tuple[str, ...] = ()  # accounts.NAME.role_arn the grants need
    role_grants: str = "user_policy"
    review: bool = False
    activity: bool = False  # cloudtrail.enabled
    audit_archive: tuple[str, str] | None = None  # audit.s3_bucket and s3_prefix


def aws_checks(iam: BaseClient, sts: BaseClient, needs: Needs) -> list[Check]:
    try:
        identity = sts.get_caller_identity()
    except NoCredentialsError:
        return [Check(False, "AWS credentials: none found", "give the bot AWS_ACCESS_KEY_ID "
                      "and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or a task, pod or instance role")]
    except ClientError as exc:
        return [Check(False, f"AWS credentials: rejected ({_code(exc)}: {_message(exc)})",
                      "replace them, or check the clock of this host")]
    except BotoCoreError as exc:
        return [Check(False, f"AWS: no answer from STS ({exc})",
                      "check this host's network access to AWS (or AWS_ENDPOINT_URL)")]
    arn, account = identity["Arn"], identity["Account"]
    checks = [Check(True, f"AWS identity: {arn}")]
    partition = arn.split(":")[1]
    on: dict[str, list[str]] = {}  # resource ARN -> the actions the bot takes on it
    for group in needs.groups:
        check, group_arn = _group(iam, group)
        checks.append(check)
        if group_arn:
            on.setdefault(group_arn, []).extend(GROUP_ACTIONS)
    for role in needs.roles:
        check, role_arn = _role(iam, role, account)
        checks.append(check)
        if role_arn:
            on.setdefault(role_arn, []).extend(ROLE_ACTIONS)
            if needs.role_grants == "trust_policy":
                on[role_arn].extend(TRUST_GRANT_ACTIONS)
    any_user = f"arn:{partition}:iam::{account}:user/*"
    if needs.roles:
        on.setdefault(any_user, []).extend(TRUST_USER_ACTIONS if needs.role_grants ==
                                           "trust_policy" else ROLE_GRANT_ACTIONS)
    on["*"] = list(ACCOUNT_ACTIONS)
    if needs.hygiene:
        on["*"].extend(HYGIENE_ACTIONS)
        on.setdefault(any_user, []).extend(HYGIENE_USER_ACTIONS)
        on.setdefault(f"arn:{partition}:iam::{account}:role/*", []).extend(
            HYGIENE_ROLE_ACTIONS)
    if needs.review:
        on.setdefault(any_user, []).extend(REVIEW_USER_ACTIONS)
        on["*"].extend(REVIEW_ADVISOR_ACTIONS)
    if needs.activity:
        on["*"].extend(ACTIVITY_ACTIONS)
    for role_arn in needs.assumed_roles:
        on.setdefault(role_arn, []).extend(ASSUME_ACTIONS)
    if needs.audit_archive:
        bucket, prefix = needs.audit_archive
        on[f"arn:{partition}:s3:::{bucket}/{prefix}2026/01/01.jsonl"] = list(
            AUDIT_ARCHIVE_ACTIONS)
    checks.append(_permissions(iam, arn, on))
    return checks


@dataclass(frozen=True)
class InAccount:
    """An account of `accounts:` with a role_arn, and the catalog's IAM groups and roles
    there."""

    account: Account
    groups: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()


def account_checks(accounts: list[InAccount], sts: BaseClient | None = None) -> list[Check]:
    """In each account: its role assumed (with its external id), as the bot will, and the
    catalog's groups and roles there found through it."""
    checks = []
    for each in accounts:
        account = each.account
        where = f"account {account.name} ({account.id})"
        session = assumed_session(account, sts)
        try:
            make_client("sts", session=session).get_caller_identity()
        except ClientError as exc:
            checks.append(Check(False, f"{where}: cannot assume {account.role_arn} "
                                f"({_code(exc)}: {_message(exc)})", MEMBER_ROLE))
            continue
        except BotoCoreError as exc:
            checks.append(Check(False, f"{where}: no answer from STS ({exc})"))
            continue
        checks.append(Check(True, f"{where}: role {account.role_arn} assumed"))
        iam = make_client("iam", session=session)
        for check, _ in [_group(iam, g) for g in each.groups] + \
                        [_role(iam, r, account.id) for r in each.roles]:
            checks.append(Check(check.ok, f"{where}: {check.what}", check.fix))
    return checks


def identity_center_checks(center: IdentityCenter, permission_sets: tuple[str, ...],
                           groups: tuple[str, ...]) -> list[Check]:
    """The instance, and every permission set and group of the catalog, found by name."""
    try:
        instance, store = center.instance()
    except ProviderError as exc:
        return [Check(False, f"IAM Identity Center: {exc}", "set identity_center.instance_arn "
                      "and identity_store_id, or allow sso:ListInstances")]
    checks = [Check(True, f"IAM Identity Center {instance} (identity store {store})")]
    for name, find, key in [(p, center.permission_set_arn, "permission_set")
                            for p in permission_sets] + [(g, center.group_id, "group")
                                                          for g in groups]:
        what = f"{'permission set' if key == 'permission_set' else 'Identity Center group'} {name}"
        try:
            find(name)
        except ProviderError as exc:
            checks.append(Check(False, f"{what}: {exc}", "create it, or correct the "
                                f"resource's {key}" if not exc.retryable else POLICY_IC))
            continue
        checks.append(Check(True, f"{what} exists"))
    return checks


def _group(iam: BaseClient, group: str) -> tuple[Check, str | None]:
    return _exists(f"IAM group {group}", "group",
                   lambda: iam.get_group(GroupName=group, MaxItems=1)["Group"]["Arn"])


def _role(iam: BaseClient, role: str, account: str) -> tuple[Check, str | None]:
    if role.startswith("arn:") and role.split(":")[4] != account:
        return Check(True, f"IAM role {role}: in another account, not checked from here "
                     f"(its trust policy must trust account {account})"), None
    name = role.rsplit("/", 1)[-1]
    return _exists(f"IAM role {role}", "role",
                   lambda: iam.get_role(RoleName=name)["Role"]["Arn"])


def _exists(what: str, key: str, arn_of) -> tuple[Check, str | None]:
    """Look the entity up: its check, and its ARN (with its path) when it exists."""
    try:
        arn = arn_of()
    except ClientError as exc:
        if _code(exc) == "NoSuchEntity":
            return Check(False, f"{what}: does not exist",
                         f"create it, or correct the resource's {key}"), None
        return Check(False, f"{what}: {_code(exc)}", POLICY), None
    except BotoCoreError as exc:
        return Check(False, f"{what}: no answer from IAM ({exc})"), None
    return Check(True, f"{what} exists"), arn


def _permissions(iam: BaseClient, identity: str, on: dict[str, list[str]]) -> Check:
    principal = _principal(iam, identity)
    if principal is None:
        return Check(False, f"IAM permissions: cannot be simulated for {identity}",
                     "run doctor with the bot's own IAM user or role")
    denied = []
    try:
        for resource, actions in on.items():
            denied.extend(f"{action} on {resource}" for action in
                          _denied(iam, principal, sorted(set(actions)), resource))
    except ClientError as exc:
        fix = (f"allow iam:SimulatePrincipalPolicy on {principal} (iam-policy.json)"
               if _code(exc) == "AccessDenied" else "")
        return Check(False, f"IAM permissions: not checked ({_code(exc)}: {_message(exc)})", fix)
    except (BotoCoreError, ResponseParserError) as exc:  # e.g. an endpoint without the call
        return Check(False, "IAM permissions: not checked (IAM did not answer the simulation: "
                     f"{str(exc).splitlines()[0]})")
    count = sum(len(set(actions)) for actions in on.values())
    if denied:
        return Check(False, f"IAM permissions: {principal} may not {'; '.join(denied)}", POLICY)
    return Check(True, f"IAM permissions: all {count} the bot uses are allowed to {principal}")


def _principal(iam: BaseClient, identity: str) -> str | None:
    """The IAM user or role behind the caller's ARN (an assumed role's session, the role)."""
    _, partition, service, _, account, resource = identity.split(":", 5)
    if resource.startswith("user/"):
        return f"arn:{partition}:iam::{account}:{resource}"
    if service == "sts" and resource.startswith("assumed-role/"):
        name = resource.split("/")[1]
        try:
            return iam.get_role(RoleName=name)["Role"]["Arn"]  # with its path
        except (ClientError, BotoCoreError):
            return f"arn:{partition}:iam::{account}:role/{name}"
    return None


def _denied(iam: BaseClient, principal: str, actions: list[str], resource: str) -> list[str]:
    extra = {} if resource == "*" else {"ResourceArns": [resource]}
    denied = []
    for page in iam.get_paginator("simulate_principal_policy").paginate(
            PolicySourceArn=principal, ActionNames=actions, **extra):
        denied.extend(result["EvalActionName"] for result in page["EvaluationResults"]
                      if result["EvalDecision"] != "allowed")
    return denied


def _code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "") or "error"


def _message(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Message", "") or str(exc)
