"""Credential hygiene from IAM: the credential report, live access keys, password policy, admins.

The bot's own IAM policy needs iam:GenerateCredentialReport, iam:GetCredentialReport,
iam:ListAccessKeys, iam:GetAccessKeyLastUsed, iam:UpdateAccessKey,
iam:GetAccountPasswordPolicy, iam:GetAccountAuthorizationDetails and iam:GetGroup; for role
hygiene iam:ListRoles, iam:GetRole and iam:UpdateRole.
"""

import csv
import io
import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from botocore.client import BaseClient
from botocore.exceptions import BotoCoreError, ClientError

from accessbot.aws.iam import AWSError, error_code, provider_error
from accessbot.services.hygiene import AccessKey, CredentialRow, KeySlot
from accessbot.services.ports import PasswordPolicy, ProviderError, ReportNotReady
from accessbot.services.role_hygiene import RoleFacts

# Report cells that mean "nothing here": never used, not applicable, or not tracked.
_ABSENT = frozenset({"", "N/A", "no_information", "not_supported"})

_THROTTLED = frozenset(
    {"Throttling", "ThrottlingException", "LimitExceeded", "RequestLimitExceeded"}
)
# GetCredentialReport codes meaning "poll again": report() calls GenerateCredentialReport
# before every fetch, which starts a new report when there is none or it has expired.
_NOT_YET = frozenset({"ReportInProgress", "ReportNotPresent", "ReportExpired"})

# Users, groups and customer managed policies with their documents. AWSManagedPolicy is left
# out on purpose: it adds every AWS managed policy with its documents (1,582 in moto, ~1.9 s a
# call), and of those only AdministratorAccess allows "*" on "*"; that one is known by its ARN.
_DETAILS_FILTER = ["User", "Group", "LocalManagedPolicy"]
_DETAILS_PAGE_SIZE = 1000  # IAM's maximum: the fewest pages for a large account
_AWS_ADMIN_POLICY = ":iam::aws:policy/AdministratorAccess"  # after arn:<partition>
_ADMIN_ACTIONS = frozenset({"*", "*:*"})


# The credential report


def _time(value: str) -> datetime | None:
    if value in _ABSENT or not value[0].isdigit():
        return None
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:  # not seen from AWS, but a naive time must not leak out
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _text(value: str) -> str | None:
    return None if value in _ABSENT else value


def _flag(value: str) -> bool:
    return value == "true"


class _Columns:
    """Positions of the columns this parser reads, found by name in the header."""

    def __init__(self, header: Sequence[str]):
        where = {name: index for index, name in enumerate(header)}

        def at(name: str) -> int:
            if name not in where:
                raise ValueError(f"credential report has no column {name!r}")
            return where[name]

        self.user = at("user")
        self.arn = at("arn")
        self.created = at("user_creation_time")
        self.password_enabled = at("password_enabled")
        self.password_last_used = at("password_last_used")
        self.password_last_changed = at("password_last_changed")
        self.mfa_active = at("mfa_active")
        self.keys = tuple(
            (
                slot,
                at(f"access_key_{slot}_active"),
                at(f"access_key_{slot}_last_rotated"),
                at(f"access_key_{slot}_last_used_date"),
                at(f"access_key_{slot}_last_used_region"),
                at(f"access_key_{slot}_last_used_service"),
            )
            for slot in (1, 2)
        )
        self.width = len(header)


def _row(cells: list[str], col: _Columns) -> CredentialRow:
    return CredentialRow(
        user=cells[col.user],
        arn=cells[col.arn],
        user_created=_time(cells[col.created]),
        password_enabled=_flag(cells[col.password_enabled]),
        password_last_used=_time(cells[col.password_last_used]),
        password_last_changed=_time(cells[col.password_last_changed]),
        mfa_active=_flag(cells[col.mfa_active]),
        keys=tuple(
            KeySlot(
                slot=slot,
                active=_flag(cells[active]),
                last_rotated=_time(cells[rotated]),
                last_used=_time(cells[used]),
                last_used_region=_text(cells[region]),
                last_used_service=_text(cells[service]),
            )
            for slot, active, rotated, used, region, service in col.keys
        ),
    )


def parse_credential_report(data: bytes) -> list[CredentialRow]:
    """Rows of an IAM credential report CSV; raises ValueError if it is malformed."""
    reader = csv.reader(io.StringIO(data.decode("utf-8-sig")))
    header = next(reader, None)
    if header is None:
        raise ValueError("credential report is empty")
    columns = _Columns(header)
    rows = []
    for cells in reader:
        if not cells:
            continue  # a trailing blank line
        if len(cells) != columns.width:
            raise ValueError(
                f"credential report line {reader.line_num} has {len(cells)} cells, "
                f"the header {columns.width}"
            )
        try:
            rows.append(_row(cells, columns))
        except ValueError as exc:
            raise ValueError(f"credential report line {reader.line_num}: {exc}") from exc
    return rows


# Policies


def policy_document(document: str | dict[str, Any]) -> dict[str, Any]:
    """A policy document as a dict: boto3 decodes them, but IAM sends URL-encoded JSON."""
    if isinstance(document, dict):
        return document
    text = document.strip()
    # Plain JSON is not unquoted: a "%41" inside a resource name must stay as it is.
    return json.loads(text if text.startswith("{") else unquote(text))


def _as_list(value: object) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def grants_admin(document: str | dict[str, Any]) -> bool:
    """Whether a policy allows every action ("*" or "*:*") on every resource ("*")."""
    for statement in _as_list(policy_document(document).get("Statement")):
        if (
            statement.get("Effect") == "Allow"
            and _ADMIN_ACTIONS.intersection(_as_list(statement.get("Action")))
            and "*" in _as_list(statement.get("Resource"))
        ):
            return True
    return False


def _default_document(policy: dict[str, Any]) -> dict[str, Any] | str | None:
    for version in policy.get("PolicyVersionList", ()):
        if version.get("IsDefaultVersion"):
            return version["Document"]
    return None


@dataclass(frozen=True)
class _Principal:
    """A user or group reduced to what deciding "administrator" needs."""

    name: str
    inline_admin: bool
    attached: frozenset[str]  # managed policy ARNs
    groups: frozenset[str] = frozenset()

    def is_admin(self, admin_policies: set[str]) -> bool:
        return self.inline_admin or any(
            arn in admin_policies or arn.endswith(_AWS_ADMIN_POLICY) for arn in self.attached
        )


def _principal(detail: dict[str, Any], name_key: str, inline_key: str) -> _Principal:
    return _Principal(
        name=detail[name_key],
        inline_admin=any(
            grants_admin(policy["PolicyDocument"]) for policy in detail.get(inline_key, ())
        ),
        attached=frozenset(p["PolicyArn"] for p in detail.get("AttachedManagedPolicies", ())),
        groups=frozenset(detail.get("GroupList", ())),
    )


# Roles

_DEFAULT_SESSION = 3600  # IAM's MaxSessionDuration when a role was created without one


def _role(detail: dict[str, Any], max_session: int) -> RoleFacts:
    """A RoleDetail of GetAccountAuthorizationDetails, with ListRoles' MaxSessionDuration."""
    used = detail.get("RoleLastUsed") or {}
    last_used = used.get("LastUsedDate")
    document = detail.get("AssumeRolePolicyDocument")
    return RoleFacts(
        name=detail["RoleName"],
        arn=detail["Arn"],
        path=detail.get("Path", "/"),
        created=detail["CreateDate"].astimezone(UTC),
        last_used=last_used.astimezone(UTC) if last_used else None,
        last_used_region=used.get("Region") if last_used else None,
        trust_policy=policy_document(document) if document else {},
        max_session=max_session,
        tags={tag["Key"].lower(): tag["Value"].strip() for tag in detail.get("Tags", ())},
    )


# The adapter


class IamCredentials:
    """CredentialSource over an IAM client. api_calls counts AWS calls (pages), for benchmarks."""

    def __init__(
        self,
        client: BaseClient,
        *,
        poll_interval: float = 2.0,
        max_wait: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self._iam = client
        self._poll_interval = poll_interval
        self._max_wait = max_wait
        self._sleep = sleep
        self.api_calls = 0

    def report(self) -> list[CredentialRow]:
        # Waiting is counted in poll intervals slept, so an injected sleep makes it instant.
        waited = 0.0
        while True:
            content = self._report_content() if self._generate() else None
            if content is not None:
                return self._parse(content)
            if waited >= self._max_wait:
                raise ReportNotReady(
                    f"The IAM credential report was not ready after {self._max_wait:g} s"
                )
            self._sleep(self._poll_interval)
            waited += self._poll_interval

    def access_keys(self, iam_user: str) -> list[AccessKey]:
        try:
            return [
                AccessKey(
                    key_id=key["AccessKeyId"],
                    active=key["Status"] == "Active",
                    created=key["CreateDate"].astimezone(UTC),
                )
                for page in self._pages("list_access_keys", UserName=iam_user)
                for key in page["AccessKeyMetadata"]
            ]
        except (ClientError, BotoCoreError) as exc:
            if error_code(exc) == "NoSuchEntity":
                return []
            raise provider_error(exc, f"listing the access keys of IAM user {iam_user}") from exc

    def key_last_used(self, key_id: str) -> datetime | None:
        self.api_calls += 1
        try:
            used = self._iam.get_access_key_last_used(AccessKeyId=key_id)["AccessKeyLastUsed"]
        except (ClientError, BotoCoreError) as exc:
            raise provider_error(exc, f"reading when access key {key_id} was last used") from exc
        last = used.get("LastUsedDate")
        return last.astimezone(UTC) if last else None

    def deactivate_key(self, iam_user: str, key_id: str) -> None:
        self.api_calls += 1
        try:
            self._iam.update_access_key(UserName=iam_user, AccessKeyId=key_id, Status="Inactive")
        except (ClientError, BotoCoreError) as exc:
            # A deleted key (or user) can no more be used than an inactive one: done.
            if error_code(exc) != "NoSuchEntity":
                raise provider_error(
                    exc, f"deactivating access key {key_id} of IAM user {iam_user}"
                ) from exc

    def password_policy(self) -> PasswordPolicy | None:
        self.api_calls += 1
        try:
            policy = self._iam.get_account_password_policy()["PasswordPolicy"]
        except (ClientError, BotoCoreError) as exc:
            if error_code(exc) == "NoSuchEntity":
                return None
            raise provider_error(exc, "reading the account password policy") from exc
        return PasswordPolicy(
            minimum_length=policy.get("MinimumPasswordLength"),
            reuse_prevention=policy.get("PasswordReusePrevention") or None,
            require_symbols=policy.get("RequireSymbols", False),
            require_numbers=policy.get("RequireNumbers", False),
            require_uppercase=policy.get("RequireUppercaseCharacters", False),
            require_lowercase=policy.get("RequireLowercaseCharacters", False),
            allow_users_to_change=policy.get("AllowUsersToChangePassword", False),
            # IAM omits it when passwords never expire; moto says 0.
            max_age_days=policy.get("MaxPasswordAge") or None,
        )

    def administrators(self) -> set[str]:
        users: list[_Principal] = []
        groups: list[_Principal] = []
        admin_policies: set[str] = set()
        try:
            for page in self._pages(
                "get_account_authorization_details",
                Filter=_DETAILS_FILTER,
                PaginationConfig={"PageSize": _DETAILS_PAGE_SIZE},
            ):
                users.extend(
                    _principal(u, "UserName", "UserPolicyList")
                    for u in page.get("UserDetailList", ())
                )
                groups.extend(
                    _principal(g, "GroupName", "GroupPolicyList")
                    for g in page.get("GroupDetailList", ())
                )
                admin_policies.update(
                    p["Arn"] for p in page.get("Policies", ()) if self._is_admin_policy(p)
                )
        except (ClientError, BotoCoreError) as exc:
            raise provider_error(exc, "reading IAM users, groups and policies") from exc
        admin_groups = {g.name for g in groups if g.is_admin(admin_policies)}
        return {
            u.name for u in users if u.is_admin(admin_policies) or u.groups & admin_groups
        }

    def group_members(self, group: str) -> set[str]:
        try:
            return {
                user["UserName"]
                for page in self._pages("get_group", GroupName=group)
                for user in page["Users"]
            }
        except (ClientError, BotoCoreError) as exc:
            if error_code(exc) == "NoSuchEntity":
                return set()
            raise provider_error(exc, f"listing members of IAM group {group}") from exc

    # -- roles ------------------------------------------------------------------------

    def roles(self) -> list[RoleFacts]:
        """Every role: last use, trust policy and tags from GetAccountAuthorizationDetails;
        MaxSessionDuration (which its RoleDetail lacks) from ListRoles, read first, so a
        role created between the two calls is left to the next run."""
        try:
            sessions = {
                role["RoleName"]: role.get("MaxSessionDuration", _DEFAULT_SESSION)
                for page in self._pages("list_roles", PaginationConfig={"PageSize": 1000})
                for role in page["Roles"]
            }
            details = [
                role
                for page in self._pages(
                    "get_account_authorization_details",
                    Filter=["Role"],
                    PaginationConfig={"PageSize": _DETAILS_PAGE_SIZE},
                )
                for role in page.get("RoleDetailList", ())
            ]
        except (ClientError, BotoCoreError) as exc:
            raise provider_error(exc, "reading IAM roles") from exc
        return [_role(d, sessions[d["RoleName"]]) for d in details if d["RoleName"] in sessions]

    def max_session(self, role: str) -> int | None:
        self.api_calls += 1
        try:
            found = self._iam.get_role(RoleName=role)["Role"]
        except (ClientError, BotoCoreError) as exc:
            if error_code(exc) == "NoSuchEntity":
                return None
            raise provider_error(exc, f"reading IAM role {role}") from exc
        return found.get("MaxSessionDuration", _DEFAULT_SESSION)

    def cap_session(self, role: str, seconds: int) -> bool:
        self.api_calls += 1
        try:
            self._iam.update_role(RoleName=role, MaxSessionDuration=seconds)
        except (ClientError, BotoCoreError) as exc:
            if error_code(exc) == "NoSuchEntity":
                return False
            raise provider_error(
                exc, f"setting the maximum session of IAM role {role} to {seconds} s"
            ) from exc
        return True

    @staticmethod
    def _is_admin_policy(policy: dict[str, Any]) -> bool:
        document = _default_document(policy)
        return document is not None and grants_admin(document)

    def _pages(self, operation: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        for page in self._iam.get_paginator(operation).paginate(**kwargs):
            self.api_calls += 1
            yield page

    def _generate(self) -> bool:
        """Ask IAM for a fresh report; True once one is COMPLETE."""
        self.api_calls += 1
        try:
            return self._iam.generate_credential_report()["State"] == "COMPLETE"
        except (ClientError, BotoCoreError) as exc:
            raise self._report_error(exc, "generating the IAM credential report") from exc

    def _report_content(self) -> bytes | None:
        """The report's CSV; None when it is still in progress, expired or gone meanwhile."""
        self.api_calls += 1
        try:
            return self._iam.get_credential_report()["Content"]
        except (ClientError, BotoCoreError) as exc:
            if error_code(exc) in _NOT_YET:
                return None
            raise self._report_error(exc, "fetching the IAM credential report") from exc

    @staticmethod
    def _report_error(exc: AWSError, doing: str) -> ProviderError:
        if error_code(exc) in _THROTTLED:
            # Throttled even after boto3's own retries: later, not "no findings".
            return ReportNotReady(f"AWS IAM throttled {doing}; try again later")
        return provider_error(exc, doing)

    @staticmethod
    def _parse(content: bytes) -> list[CredentialRow]:
        try:
            return parse_credential_report(content)
        except ValueError as exc:  # UnicodeDecodeError too
            raise ProviderError(
                f"The IAM credential report could not be read: {exc}", retryable=False
            ) from exc
