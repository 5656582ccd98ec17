"""Role hygiene: the findings about IAM roles, computed from what IAM says about each role.

Pure functions over plain data: the role facts come from aws/ (GetAccountAuthorizationDetails
and ListRoles), the thresholds from the config's `hygiene:` section. A role finding is a
credential finding whose `iam_user` is the role's name and whose kind is one of ROLE_KINDS.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from accessbot.services.durations import format_duration
from accessbot.services.hygiene import Finding, FindingKind, HygienePolicy

# Roles customers cannot change or delete: service-linked roles, and Identity Center's
# roles for its permission sets (changed only through Identity Center)
AWS_MANAGED_PATHS = ("/aws-service-role/", "/aws-reserved/")

# Conditions that keep another account's principals out unless they are in the
# organization, or (for a named account) unless they know the agreed external id
ORG_KEYS = frozenset({"aws:principalorgid", "aws:principalorgpaths", "aws:sourceorgid",
                      "aws:resourceorgid"})
EXTERNAL_ID = "sts:externalid"
# "*" is narrowed by naming who may come in; an external id alone narrows nothing there (it
# is a guard against a confused deputy, not a secret)
NAMED_PRINCIPAL_KEYS = frozenset({"aws:principalaccount", "aws:principalarn"})

_ACCOUNT_ID = re.compile(r"^\d{12}$")
_ARN_ACCOUNT = re.compile(r"^arn:[^:]+:(?:iam|sts)::(\d{12}):")
DETAIL_MAX = 200  # the column's size


@dataclass(frozen=True)
class RoleFacts:
    """One IAM role as hygiene needs it; times are aware UTC."""

    name: str
    arn: str
    path: str
    created: datetime
    last_used: datetime | None          # RoleLastUsed.LastUsedDate: None if never (400 days)
    last_used_region: str | None
    trust_policy: dict[str, Any]        # AssumeRolePolicyDocument, decoded
    max_session: int                    # MaxSessionDuration, seconds
    tags: dict[str, str] = field(default_factory=dict)  # keys lowercased

    @property
    def account(self) -> str | None:
        """The account the role is in, from its ARN."""
        found = _ARN_ACCOUNT.match(self.arn)
        return found.group(1) if found else None

    @property
    def aws_managed(self) -> bool:
        return self.path.startswith(AWS_MANAGED_PATHS)


def evaluate_roles(roles: Iterable[RoleFacts], policy: HygienePolicy, now: datetime,
                   own_account: str | None = None) -> list[Finding]:
    """Every role finding: by role order, then unused, long session, open trust.
    `own_account` is the account the roles are in (default: each role's ARN says)."""
    if now.tzinfo is None:
        raise ValueError("evaluate_roles needs an aware UTC 'now'")
    unused_before = now - policy.unused_role_age
    cap = int(policy.max_role_session.total_seconds())
    findings: list[Finding] = []
    for role in roles:
        if not role.aws_managed:
            since = role.last_used if role.last_used is not None else role.created
            if since < unused_before:
                findings.append(Finding(role.name, FindingKind.ROLE_UNUSED, "role", since,
                                        last_used=role.last_used,
                                        last_used_where=role.last_used_region))
            if role.max_session > cap:
                longest = format_duration(timedelta(seconds=role.max_session))
                findings.append(Finding(
                    role.name, FindingKind.ROLE_LONG_SESSION, "session", role.created,
                    last_used=role.last_used, last_used_where=role.last_used_region,
                    detail=f"sessions of up to {longest}"))
        opened_to = open_trust(role.trust_policy, own_account or role.account)
        if opened_to:
            detail = "trusts " + ", ".join(opened_to)
            if len(detail) > DETAIL_MAX:
                detail = detail[:DETAIL_MAX - 1] + "…"
            findings.append(Finding(role.name, FindingKind.ROLE_OPEN_TRUST, "trust",
                                    role.created, last_used=role.last_used,
                                    last_used_where=role.last_used_region, detail=detail))
    return findings


def open_trust(document: dict[str, Any], own_account: str | None) -> list[str]:
    """Who an Allow statement lets assume the role without a condition that keeps
    strangers out, in words ("anyone", "account 111122223333", "any user of
    token.actions.githubusercontent.com"); [] when nobody. Deny statements never add
    anyone (they only take away)."""
    found: list[str] = []
    for statement in _as_list(document.get("Statement")):
        if not isinstance(statement, dict) or statement.get("Effect") != "Allow":
            continue
        keys = _condition_keys(statement.get("Condition"))
        if "NotPrincipal" in statement:  # Allow everyone but a few: that is everyone
            who = ["anyone (NotPrincipal)"] if not keys & (ORG_KEYS | NAMED_PRINCIPAL_KEYS) \
                else []
        else:
            who = _opened_by(statement.get("Principal"), keys, own_account)
        found.extend(w for w in who if w not in found)
    return found


def _opened_by(principal: Any, keys: frozenset[str], own_account: str | None) -> list[str]:
    if principal is None:
        return []
    if principal == "*":
        return [] if keys & (ORG_KEYS | NAMED_PRINCIPAL_KEYS) else ["anyone"]
    if not isinstance(principal, dict):
        return []
    who: list[str] = []
    for value in _as_list(principal.get("AWS")):
        if value == "*":
            if not keys & (ORG_KEYS | NAMED_PRINCIPAL_KEYS):
                who.append("anyone")
            continue
        account = _account_of(str(value))
        # another account's principals, unless the external id or the organization is asked
        if account is not None and account != own_account \
                and not keys & (ORG_KEYS | {EXTERNAL_ID}):
            who.append(f"account {account}")
    if not keys:  # a web identity or SAML provider without conditions: any of its users
        who.extend(f"any user of {_provider(str(value))}"
                   for value in _as_list(principal.get("Federated")))
    return who


def _account_of(principal: str) -> str | None:
    """The account of an AWS principal: a bare account id or an IAM/STS ARN; None for what
    names no account (a deleted principal's unique id, AROA…/AIDA…)."""
    if _ACCOUNT_ID.match(principal):
        return principal
    found = _ARN_ACCOUNT.match(principal)
    return found.group(1) if found else None


def _provider(federated: str) -> str:
    """cognito-identity.amazonaws.com, or an identity provider ARN's name part."""
    return federated.split(":oidc-provider/", 1)[-1].split(":saml-provider/", 1)[-1]


def _condition_keys(condition: Any) -> frozenset[str]:
    """The condition keys a statement tests, lowercased (IAM's keys are case-insensitive);
    a Null test says only that a key is present, which keeps nobody out."""
    if not isinstance(condition, dict):
        return frozenset()
    return frozenset(key.lower() for operator, tests in condition.items()
                     if isinstance(tests, dict) and operator.lower() != "null"
                     for key in tests)


def _as_list(value: object) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]
