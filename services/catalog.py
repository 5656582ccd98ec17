"""The catalog of requestable resources, loaded and validated from the YAML config."""

import ipaddress
import re
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from accessbot.services.account_audit import CIS_BASELINE, PasswordPolicy
from accessbot.services.durations import format_duration, parse_duration
from accessbot.services.errors import ConfigError, InvalidInput
from accessbot.services.hygiene import HygienePolicy

SLACK_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
SLACK_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{2,}$")
SLACK_USERGROUP_ID = re.compile(r"^S[A-Z0-9]{2,}$")


def is_channel(slack_id: str) -> bool:
    """A channel people share (C..., G...): not a user (U..., W...), nor a DM (D...)."""
    return slack_id[:1] in ("C", "G")


def is_usergroup(slack_id: str) -> bool:
    """A Slack user group (S...), whose members services/people.py resolves."""
    return bool(SLACK_USERGROUP_ID.match(slack_id))


RESOURCE_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
IAM_NAME = re.compile(r"^[\w+=,.@-]{1,128}$")
ROLE_ARN = re.compile(r"^arn:aws[\w-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
ACCOUNT_ID = re.compile(r"^\d{12}$")
IAM_PATH = re.compile(r"^/([\x21-\x7e]{0,510}/)?$")
# how an iam_role grant lets the user assume the role (aws/iam.py): an inline policy on the
# user, or a statement naming the user in the role's trust policy
ROLE_GRANTS = ("user_policy", "trust_policy")
PERMISSION_SET_NAME = re.compile(r"^[\w+=,.@-]{1,32}$")
PERMISSION_SET_ARN = re.compile(r"^arn:aws[\w-]*:sso:::permissionSet/ssoins-[0-9a-f]{16}/"
                                r"ps-[0-9a-f]{16}$")
INSTANCE_ARN = re.compile(r"^arn:aws[\w-]*:sso:::instance/ssoins-[0-9a-f]{16}$")
IDENTITY_STORE_ID = re.compile(r"^d-[0-9a-f]{10}$")
REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
SSO_GROUP_NAME = re.compile(r"^[^\x00-\x1f]{1,1024}$")


class ResourceKind(StrEnum):
    IAM_GROUP = "iam_group"
    IAM_ROLE = "iam_role"
    SSO_PERMISSION_SET = "sso_permission_set"  # an Identity Center account assignment
    SSO_GROUP = "sso_group"                    # an Identity Center group membership


SSO_KINDS = frozenset({ResourceKind.SSO_PERMISSION_SET, ResourceKind.SSO_GROUP})


@dataclass(frozen=True)
class Account:
    """An AWS account of `accounts:`, by the name the config gives it."""

    name: str
    id: str
    role_arn: str | None = None
    external_id: str | None = None


@dataclass(frozen=True)
class IdentityCenter:
    """`identity_center:`; without instance_arn, sso-admin ListInstances finds it."""

    instance_arn: str | None = None
    identity_store_id: str | None = None
    region: str | None = None


@dataclass(frozen=True)
class Resource:
    name: str
    kind: ResourceKind
    target: str  # IAM group name, IAM role name or ARN, permission set, Identity Center group
    approvers: tuple[str, ...]
    description: str = ""
    requesters: tuple[str, ...] = ()  # empty: anyone may request
    default_duration: timedelta = timedelta(hours=1)
    min_duration: timedelta = timedelta(minutes=1)
    max_duration: timedelta = timedelta(hours=4)
    expiry_warning: timedelta = timedelta(minutes=15)
    # 12-digit ids: where a permission set is assigned; for the IAM kinds, the one account
    # whose IAM the grant changes (none: the bot's own)
    accounts: tuple[str, ...] = ()
    source_ips: tuple[str, ...] = ()  # iam_role: the role may be assumed from these CIDRs only
    require_mfa: bool = False         # iam_role: only by sessions signed in with MFA
    approval_channel: str | None = None      # overrides the catalog's for this resource
    approvals_required: int = 1               # N of the approvers (N-of-M)
    approval: str = "required"                # "none": granted at once, announced and audited
    remind_after: timedelta = timedelta(minutes=15)  # first reminder to silent approvers
    max_total_duration: timedelta | None = None      # a grant's whole life, extensions included
    break_glass: bool = False                 # the requester may grant themselves, loudly
    break_glass_max_duration: timedelta = timedelta(hours=1)
    break_glass_review_within: timedelta = timedelta(hours=24)

    @property
    def needs_approval(self) -> bool:
        return self.approval != "none"

    def conditions_text(self) -> str:
        """The conditions on the role, as the approval message and the grant DM say them."""
        said = []
        if self.source_ips:
            said.append("only from " + ", ".join(self.source_ips))
        if self.require_mfa:
            said.append("only with MFA")
        return "; ".join(said)

    def may_request(self, user_id: str) -> bool:
        return not self.requesters or user_id in self.requesters

    def may_approve(self, user_id: str, requester_id: str) -> bool:
        """Listed by id (user groups: services/people.py expands them); never the requester."""
        return user_id in self.approvers and user_id != requester_id

    def check_duration(self, duration: timedelta) -> None:
        if duration < self.min_duration or duration > self.max_duration:
            raise InvalidInput(
                f"{self.name} can be granted for {format_duration(self.min_duration)} "
                f"to {format_duration(self.max_duration)}; you asked for "
                f"{format_duration(duration)}."
            )

    def limits_text(self) -> str:
        return (
            f"default {format_duration(self.default_duration)}, "
            f"{format_duration(self.min_duration)} to {format_duration(self.max_duration)}"
        )


@dataclass(frozen=True)
class Exclusions:
    """`hygiene.exclude`: IAM users whose credentials accessbot leaves alone (service users
    rotated by other means, break-glass users): by name, path prefix or tag."""

    users: frozenset[str] = frozenset()
    paths: tuple[str, ...] = ()                        # "/service/" covers /service/ci/ too
    tags: tuple[tuple[str, str], ...] = ()             # (key lowercased, value)

    def covers(self, iam_user: str, path: str, tags: dict[str, str]) -> bool:
        return (iam_user in self.users or any(path.startswith(p) for p in self.paths)
                or any(tags.get(key) == value for key, value in self.tags))

    def __bool__(self) -> bool:
        return bool(self.users or self.paths or self.tags)


@dataclass(frozen=True)
class Hygiene:
    """The `hygiene:` section: stale credentials and the account audit."""

    policy: HygienePolicy = HygienePolicy()
    interval: timedelta = timedelta(days=1)            # how often stale-credentials runs
    reminder_interval: timedelta = timedelta(days=3)   # never the same thing twice within
    escalate_after: timedelta = timedelta(days=14)     # open this long: the admin channel
    snooze: timedelta = timedelta(days=7)
    auto_disable_after: timedelta | None = None        # off unless set
    final_warning: timedelta = timedelta(days=1)       # between the warning and the disable
    summary_interval: timedelta = timedelta(days=7)
    audit_interval: timedelta = timedelta(days=7)
    password_policy: PasswordPolicy = CIS_BASELINE
    min_administrators: int = 2
    enabled: bool = True                               # false: no hygiene job is scheduled
    mode: str = "notify"                               # "report": tell the admins only
    exclude: Exclusions = Exclusions()


@dataclass(frozen=True)
class Review:
    """The `review:` section: the access review ("keep or remove?" for standing access).
    Reminders and escalation use hygiene.reminder_interval and hygiene.escalate_after."""

    interval: timedelta = timedelta(days=30)            # how often a review starts
    groups: tuple[str, ...] = ()                         # extra IAM groups, own account
    roles: tuple[str, ...] = ()                          # extra IAM roles, own account
    unused_service_age: timedelta = timedelta(days=90)  # a service unused this long: said
    enabled: bool = True


@dataclass(frozen=True)
class CloudTrail:
    """The `cloudtrail:` section: what a grant was used for, looked up after it ends."""

    enabled: bool = True
    delay: timedelta = timedelta(minutes=15)  # CloudTrail delivers events within ~15 min
    regions: tuple[str, ...] = ()  # empty: the bot's own region


@dataclass(frozen=True)
class Audit:
    """The `audit:` section: where the daily files of the audit trail go (nowhere unless
    s3_bucket is set)."""

    s3_bucket: str | None = None
    s3_prefix: str = "accessbot/audit/"


@dataclass(frozen=True)
class Catalog:
    resources: dict[str, Resource]
    approval_channel: str | None = None
    admin_channel: str | None = None
    request_timeout: timedelta = timedelta(hours=24)
    sweep_interval: timedelta = timedelta(seconds=10)
    hygiene: Hygiene = Hygiene()
    accounts: dict[str, Account] = field(default_factory=dict)
    identity_center: IdentityCenter = IdentityCenter()
    iam_user_path: str = "/"  # only IAM users under this path are matched and granted
    role_grants: str = "user_policy"  # or trust_policy: how an iam_role grant is made
    review: Review = Review()
    cloudtrail: CloudTrail = CloudTrail()
    audit: Audit = Audit()
    admins: tuple[str, ...] = ()  # users and user groups who may revoke any grant, see all

    def approval_channel_for(self, resource: Resource) -> str | None:
        """Where a resource's requests are posted: its own channel, else the catalog's."""
        return resource.approval_channel or self.approval_channel

    def assumed_accounts(self) -> dict[str, Account]:
        """Account id -> account, for the accounts whose IAM the catalog's resources change."""
        by_id = {a.id: a for a in self.accounts.values() if a.role_arn}
        return {i: by_id[i] for r in self.resources.values() if r.kind not in SSO_KINDS
                for i in r.accounts}

    def audited_accounts(self) -> dict[str, Account]:
        """Account id -> account, for the accounts whose credentials and IAM hygiene reads:
        every account with a role_arn (unless hygiene.enabled is false)."""
        if not self.hygiene.enabled:
            return {}
        return {a.id: a for a in self.accounts.values() if a.role_arn}

    def uses_identity_center(self) -> bool:
        return any(r.kind in SSO_KINDS for r in self.resources.values())

    def managed_groups(self, account: str = "") -> set[str]:
        """The IAM groups of an account ("": the bot's own) that grants manage."""
        return {r.target for r in self.resources.values()
                if r.kind is ResourceKind.IAM_GROUP and r.accounts == ((account,) if account
                                                                       else ())}

    def get(self, name: str) -> Resource:
        try:
            return self.resources[name]
        except KeyError:
            known = ", ".join(sorted(self.resources)) or "none"
            raise InvalidInput(f"There is no resource called '{name}'. Known: {known}.") from None

    def requestable_by(self, user_id: str) -> list[Resource]:
        return [r for r in self.resources.values() if r.may_request(user_id)]

    def warnings(self) -> list[str]:
        """What works, but not as a deployer would want: said on start and by check-config."""
        said = []
        used = self.assumed_accounts() | self.audited_accounts()
        for account in self.accounts.values():
            if account.role_arn and account.id not in used:
                said.append(f"accounts.{account.name}.role_arn is not used: no iam_group or "
                            "iam_role resource names this account, and hygiene is off")
        if self.admin_channel is None:
            said.append("admin_channel is not set: alerts (a grant AWS refused, a message "
                        "Slack would not take, unowned credentials) go only to the log")
        return said


_TOP_KEYS = {"approval_channel", "admin_channel", "request_timeout", "sweep_interval",
             "resources", "hygiene", "accounts", "identity_center", "iam_user_path",
             "role_grants", "review", "cloudtrail", "audit", "admins"}
_REVIEW_KEYS = {"interval", "groups", "roles", "unused_service_age", "enabled"}
_HYGIENE_DURATIONS = {
    "access_key_max_age", "unused_credential_age", "unused_user_age", "root_used_within",
    "interval", "reminder_interval", "escalate_after", "snooze", "auto_disable_after",
    "final_warning", "summary_interval", "audit_interval", "unused_role_age", "max_role_session",
}
ROLE_SESSION_LIMITS = (timedelta(hours=1), timedelta(hours=12))  # IAM's MaxSessionDuration
_HYGIENE_KEYS = _HYGIENE_DURATIONS | {"password_policy", "min_administrators", "enabled",
                                      "exclude", "mode"}
HYGIENE_MODES = ("notify", "report")
_PASSWORD_KEYS = set(PasswordPolicy.__dataclass_fields__)
_RESOURCE_KEYS = {
    "description", "kind", "group", "role", "permission_set", "account", "accounts",
    "approvers", "requesters", "default_duration", "min_duration", "max_duration",
    "expiry_warning", "source_ips", "require_mfa", "approval_channel", "approvals_required",
    "approval", "remind_after", "max_total_duration", "break_glass",
    "break_glass_max_duration", "break_glass_review_within",
}
APPROVAL_MODES = ("required", "none")
_TARGET_KEY = {ResourceKind.IAM_GROUP: "group", ResourceKind.IAM_ROLE: "role",
               ResourceKind.SSO_PERMISSION_SET: "permission_set", ResourceKind.SSO_GROUP: "group"}
_TARGET_TEXT = {
    ResourceKind.IAM_GROUP: "an IAM group name",
    ResourceKind.IAM_ROLE: "an IAM role name or ARN",
    ResourceKind.SSO_PERMISSION_SET: "a permission set name or ARN",
    ResourceKind.SSO_GROUP: "an Identity Center group's display name or id",
}
_ACCOUNT_KEYS = {"id", "role_arn", "external_id"}
_CLOUDTRAIL_KEYS = {"enabled", "delay", "regions", "lake_event_data_store"}
_IDENTITY_CENTER_KEYS = {"instance_arn", "identity_store_id", "region"}


def load_catalog(path: str | Path) -> Catalog:
    """Read and validate the config file; raise ConfigError naming the bad value's path."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"ACCESSBOT_CONFIG: config file {path} does not exist") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: not valid YAML: {problem}") from None
    return parse_catalog(raw, source=str(path))


def parse_catalog(raw: Any, source: str = "config") -> Catalog:
    def fail(where: str, message: str) -> ConfigError:
        return ConfigError(f"{source}: {where}: {message}")

    if not isinstance(raw, dict):
        raise fail("(top level)", "expected a mapping with a 'resources' key")
    _check_keys(raw, _TOP_KEYS, None, fail)
    resources_raw = raw.get("resources")
    if not isinstance(resources_raw, dict) or not resources_raw:
        raise fail("resources", "expected a non-empty mapping of resource name to settings")

    channels = {}
    for key in ("approval_channel", "admin_channel"):
        value = raw.get(key)
        if value is not None and not SLACK_CHANNEL_ID.match(str(value)):
            raise fail(key, f"'{value}' is not a Slack channel id (like C0123ABCD)")
        channels[key] = value
    admins = _user_ids(raw, "admins", "admins", fail, required=False, groups=True) \
        if "admins" in raw else ()

    timeout = _duration(raw, "request_timeout", timedelta(hours=24), "request_timeout", fail)
    sweep = _duration(raw, "sweep_interval", timedelta(seconds=10), "sweep_interval", fail)
    if sweep > timedelta(minutes=5):
        raise fail("sweep_interval", "at most 5m: the sweep is the safety net for revocations")
    accounts = _parse_accounts(raw.get("accounts"), fail)
    resources = {
        str(name): _parse_resource(str(name), spec, accounts, fail)
        for name, spec in resources_raw.items()
    }
    hygiene = _parse_hygiene(raw.get("hygiene", {}), fail)
    path = raw.get("iam_user_path", "/")
    if not (isinstance(path, str) and IAM_PATH.match(path)):
        raise fail("iam_user_path", f"'{path}' is not an IAM path like /people/ (it starts "
                   "and ends with '/')")
    role_grants = raw.get("role_grants", "user_policy")
    if role_grants not in ROLE_GRANTS:
        raise fail("role_grants", f"'{role_grants}' is not one of {', '.join(ROLE_GRANTS)}")
    return Catalog(resources=resources, request_timeout=timeout, sweep_interval=sweep,
                   hygiene=hygiene, accounts=accounts, iam_user_path=path,
                   role_grants=role_grants, review=_parse_review(raw.get("review"), fail),
                   audit=_parse_audit(raw.get("audit"), fail),
                   identity_center=_parse_identity_center(raw.get("identity_center"), fail),
                   cloudtrail=_parse_cloudtrail(raw.get("cloudtrail"), fail),
                   admins=admins, **channels)


def _parse_cloudtrail(spec: Any, fail) -> CloudTrail:
    if spec is None:
        return CloudTrail()
    if not isinstance(spec, dict):
        raise fail("cloudtrail", "expected a mapping")
    _check_keys(spec, _CLOUDTRAIL_KEYS, "cloudtrail", fail)
    enabled = spec.get("enabled", True)
    if not isinstance(enabled, bool):
        raise fail("cloudtrail.enabled", "expected true or false")
    delay = _duration(spec, "delay", CloudTrail.delay, "cloudtrail.delay", fail)
    if delay > timedelta(days=1):
        raise fail("cloudtrail.delay", "at most 1d (CloudTrail delivers events within about "
                   "15 minutes)")
    regions = spec.get("regions", [])
    if not isinstance(regions, list):
        raise fail("cloudtrail.regions", "expected a list of region names like eu-west-1")
    for index, region in enumerate(regions):
        if not (isinstance(region, str) and REGION.match(region)):
            raise fail(f"cloudtrail.regions[{index}]", f"'{region}' is not a region name like "
                       "eu-west-1")
    if len(set(regions)) != len(regions):
        raise fail("cloudtrail.regions", "names one region twice")
    if spec.get("lake_event_data_store") is not None:
        raise fail("cloudtrail.lake_event_data_store", "CloudTrail Lake is not supported yet: "
                   "remove the key (the lookup reads Event history, LookupEvents)")
    return CloudTrail(enabled=enabled, delay=delay, regions=tuple(regions))


def _parse_accounts(spec: Any, fail) -> dict[str, Account]:
    if spec is None:
        return {}
    if not isinstance(spec, dict):
        raise fail("accounts", "expected a mapping of account name to its id and role_arn")
    accounts = {}
    for name, entry in spec.items():
        where = f"accounts.{name}"
        if not RESOURCE_NAME.match(str(name)):
            raise fail(where, "account names are lowercase letters, digits, '-', '_' and '.'")
        if not isinstance(entry, dict):
            raise fail(where, "expected a mapping with id (and role_arn, external_id)")
        _check_keys(entry, _ACCOUNT_KEYS, where, fail)
        account_id = str(entry.get("id", ""))
        if not ACCOUNT_ID.match(account_id):
            raise fail(f"{where}.id", f"'{account_id}' is not a 12-digit AWS account id "
                       "(quote it in YAML: \"012345678901\")")
        role_arn = entry.get("role_arn")
        if role_arn is not None and not (isinstance(role_arn, str) and ROLE_ARN.match(role_arn)
                                         and f"::{account_id}:" in role_arn):
            raise fail(f"{where}.role_arn", f"expected the ARN of a role in account {account_id}")
        external_id = entry.get("external_id")
        if external_id is not None and not (isinstance(external_id, str)
                                            and 2 <= len(external_id) <= 1224):
            raise fail(f"{where}.external_id", "expected text of 2 to 1224 characters")
        accounts[str(name)] = Account(str(name), account_id, role_arn, external_id)
    ids = [a.id for a in accounts.values()]
    if len(set(ids)) != len(ids):
        raise fail("accounts", "two accounts have the same id")
    return accounts


S3_BUCKET = re.compile(r"^(?!xn--)(?!.*\.\.)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
S3_PREFIX = re.compile(r"^(?!/)[A-Za-z0-9!_.*'()/-]{0,512}$")


def _parse_audit(spec: Any, fail) -> Audit:
    if spec is None:
        return Audit()
    if not isinstance(spec, dict):
        raise fail("audit", "expected a mapping (s3_bucket, s3_prefix)")
    _check_keys(spec, {"s3_bucket", "s3_prefix"}, "audit", fail)
    bucket = spec.get("s3_bucket")
    if bucket is not None and not (isinstance(bucket, str) and S3_BUCKET.match(bucket)):
        raise fail("audit.s3_bucket", f"'{bucket}' is not an S3 bucket name (3 to 63 "
                   "lowercase letters, digits, '.' and '-')")
    prefix = spec.get("s3_prefix", Audit.s3_prefix)
    if not (isinstance(prefix, str) and S3_PREFIX.match(prefix)):
        raise fail("audit.s3_prefix", f"'{prefix}' is not a key prefix like accessbot/audit/ "
                   "(letters, digits, '/', '-', '_', '.'; not starting with '/')")
    return Audit(bucket, prefix)


def _parse_identity_center(spec: Any, fail) -> IdentityCenter:
    if spec is None:
        return IdentityCenter()
    if not isinstance(spec, dict):
        raise fail("identity_center", "expected a mapping")
    _check_keys(spec, _IDENTITY_CENTER_KEYS, "identity_center", fail)
    checks = {"instance_arn": (INSTANCE_ARN, "arn:aws:sso:::instance/ssoins-..."),
              "identity_store_id": (IDENTITY_STORE_ID, "d-..."),
              "region": (REGION, "a region like us-east-1")}
    for key, (pattern, like) in checks.items():
        value = spec.get(key)
        if value is not None and not (isinstance(value, str) and pattern.match(value)):
            raise fail(f"identity_center.{key}", f"'{value}' is not {like}")
    if ("instance_arn" in spec) != ("identity_store_id" in spec):
        raise fail("identity_center", "give instance_arn and identity_store_id together, or "
                   "neither (then sso-admin ListInstances finds them)")
    return IdentityCenter(spec.get("instance_arn"), spec.get("identity_store_id"),
                          spec.get("region"))


def _account_ids(spec: dict, kind: ResourceKind, accounts: dict[str, Account], where: str,
                 fail) -> tuple[str, ...]:
    """The resource's `account` or `accounts`, as 12-digit ids."""
    if "account" in spec and "accounts" in spec:
        raise fail(f"{where}.accounts", "give account or accounts, not both")
    if kind is not ResourceKind.SSO_PERMISSION_SET:
        if "accounts" in spec:
            raise fail(f"{where}.accounts", f"one account for kind {kind.value}: account")
        if "account" not in spec:
            return ()  # the bot's own account
        name = str(spec["account"])
        if kind is ResourceKind.SSO_GROUP:
            raise fail(f"{where}.account", "an Identity Center group is in no account")
        if name not in accounts or not accounts[name].role_arn:
            known = ", ".join(sorted(a for a in accounts if accounts[a].role_arn)) or "none"
            raise fail(f"{where}.account", f"'{name}': IAM kinds in another account need a key "
                       f"of accounts: with a role_arn (known: {known}); leave account out for "
                       "the bot's own account")
        return (accounts[name].id,)
    if "account" in spec:
        names, key = [spec["account"]], "account"
    elif isinstance(spec.get("accounts"), list) and spec["accounts"]:
        names, key = spec["accounts"], "accounts"
    else:
        raise fail(f"{where}.account", "a permission set is assigned in an account: give "
                   "account (a key of accounts: or a 12-digit id) or a list of accounts")
    ids = []
    for index, name in enumerate(names):
        at = f"{where}.{key}" + (f"[{index}]" if key == "accounts" else "")
        name = str(name)
        if name in accounts:
            ids.append(accounts[name].id)
        elif ACCOUNT_ID.match(name):
            ids.append(name)
        else:
            known = ", ".join(sorted(accounts)) or "none"
            raise fail(at, f"'{name}' is neither a key of accounts: (known: {known}) nor a "
                       "12-digit account id")
    if len(set(ids)) != len(ids):
        raise fail(f"{where}.{key}", "names one account twice")
    return tuple(ids)


def _check_keys(spec: dict, known: set[str], where: str | None, fail) -> None:
    """Every key of `spec` is one of `known`; the error names the first that is not."""
    for key in spec:
        if key not in known:
            raise fail(f"{where}.{key}" if where else str(key),
                       f"unknown key; expected one of {sorted(known)}")


def _parse_hygiene(spec: Any, fail) -> Hygiene:
    if spec is None:
        spec = {}
    if not isinstance(spec, dict):
        raise fail("hygiene", "expected a mapping")
    _check_keys(spec, _HYGIENE_KEYS, "hygiene", fail)
    given = {}
    for key in _HYGIENE_DURATIONS & set(spec):
        if key == "auto_disable_after" and spec[key] in (None, False, "off"):
            continue
        given[key] = _duration(spec, key, timedelta(0), f"hygiene.{key}", fail)
    low, high = ROLE_SESSION_LIMITS
    if "max_role_session" in given and not low <= given["max_role_session"] <= high:
        raise fail("hygiene.max_role_session", f"IAM allows a role's maximum session from "
                   f"{format_duration(low)} to {format_duration(high)}, not "
                   f"{format_duration(given['max_role_session'])}")
    policy = HygienePolicy(**{k: given.pop(k) for k in list(given)
                              if k in HygienePolicy.__dataclass_fields__})
    minimum = spec.get("min_administrators", Hygiene.min_administrators)
    if isinstance(minimum, bool) or not isinstance(minimum, int) or minimum < 0:
        raise fail("hygiene.min_administrators", "expected a whole number, 0 or more")
    enabled = spec.get("enabled", True)
    if not isinstance(enabled, bool):
        raise fail("hygiene.enabled", "expected true or false")
    mode = spec.get("mode", "notify")
    if mode not in HYGIENE_MODES:
        raise fail("hygiene.mode", f"expected one of {list(HYGIENE_MODES)}, not {mode!r}")
    return Hygiene(policy=policy, min_administrators=minimum,
                   password_policy=_parse_password_policy(spec.get("password_policy"), fail),
                   enabled=enabled, mode=mode, exclude=_parse_exclusions(spec.get("exclude"), fail),
                   **given)


def _parse_review(spec: Any, fail) -> Review:
    if spec is None:
        return Review()
    if not isinstance(spec, dict):
        raise fail("review", "expected a mapping")
    _check_keys(spec, _REVIEW_KEYS, "review", fail)
    interval = _duration(spec, "interval", Review.interval, "review.interval", fail)
    unused = _duration(spec, "unused_service_age", Review.unused_service_age,
                       "review.unused_service_age", fail)
    for key, value in (("interval", interval), ("unused_service_age", unused)):
        if value <= timedelta(0):
            raise fail(f"review.{key}", "expected a duration above zero")
    enabled = spec.get("enabled", True)
    if not isinstance(enabled, bool):
        raise fail("review.enabled", "expected true or false")
    names = {}
    for key in ("groups", "roles"):
        value = spec.get(key, [])
        if not isinstance(value, list):
            raise fail(f"review.{key}", f"expected a list of IAM {key[:-1]} names")
        for index, name in enumerate(value):
            if not isinstance(name, str) or not IAM_NAME.match(name):
                raise fail(f"review.{key}[{index}]",
                           f"'{name}' is not an IAM {key[:-1]} name (in the bot's own account)")
        if len(set(value)) != len(value):
            raise fail(f"review.{key}", "names one twice")
        names[key] = tuple(value)
    return Review(interval=interval, unused_service_age=unused, enabled=enabled, **names)


def _parse_exclusions(spec: Any, fail) -> Exclusions:
    """A list of IAM user names, path prefixes (/service/) and tags (key=value)."""
    if spec is None:
        return Exclusions()
    if not isinstance(spec, list):
        raise fail("hygiene.exclude", "expected a list of IAM user names, paths like "
                   "/service/ and tags like accessbot-ignore=true")
    users, paths, tags = set(), [], []
    for index, entry in enumerate(spec):
        where = f"hygiene.exclude[{index}]"
        if not isinstance(entry, str) or not entry.strip():
            raise fail(where, "expected a user name, a /path/ or a key=value tag")
        entry = entry.strip()
        if entry.startswith("/"):
            if not entry.endswith("/"):
                raise fail(where, f"'{entry}': an IAM path starts and ends with '/'")
            paths.append(entry)
        elif "=" in entry:
            key, value = entry.split("=", 1)
            tags.append((key.strip().lower(), value.strip()))
        elif IAM_NAME.match(entry):
            users.add(entry)
        else:
            raise fail(where, f"'{entry}' is not an IAM user name, a /path/ or a key=value tag")
    return Exclusions(frozenset(users), tuple(paths), tuple(tags))


def _parse_password_policy(spec: Any, fail) -> PasswordPolicy:
    """The baseline; settings not given keep the CIS value."""
    if spec is None:
        return CIS_BASELINE
    if not isinstance(spec, dict):
        raise fail("hygiene.password_policy", "expected a mapping")
    _check_keys(spec, _PASSWORD_KEYS, "hygiene.password_policy", fail)
    values = {}
    for key, value in spec.items():
        where = f"hygiene.password_policy.{key}"
        if key.startswith(("require_", "allow_")):
            if not isinstance(value, bool):
                raise fail(where, "expected true or false")
        elif value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                    or value < 1):
            raise fail(where, "expected a whole number of at least 1, or null")
        values[key] = value
    return PasswordPolicy(**{**CIS_BASELINE.__dict__, **values})


def _parse_resource(name: str, spec: Any, accounts: dict[str, Account], fail) -> Resource:
    where = f"resources.{name}"
    if not RESOURCE_NAME.match(name):
        raise fail(where, "resource names are lowercase letters, digits, '-', '_' and '.'")
    if not isinstance(spec, dict):
        raise fail(where, "expected a mapping")
    _check_keys(spec, _RESOURCE_KEYS, where, fail)
    try:
        kind = ResourceKind(spec.get("kind"))
    except ValueError:
        raise fail(f"{where}.kind", f"expected one of {[k.value for k in ResourceKind]}") from None

    target_key = _TARGET_KEY[kind]
    target = spec.get(target_key)
    if not isinstance(target, str) or not _valid_target(kind, target):
        raise fail(f"{where}.{target_key}",
                   f"a {kind.value} needs '{target_key}': {_TARGET_TEXT[kind]}")
    for other in set(_TARGET_KEY.values()) - {target_key}:
        if other in spec:
            raise fail(f"{where}.{other}", f"not valid for kind {kind.value}")
    account_ids = _account_ids(spec, kind, accounts, where, fail)
    source_ips, require_mfa = _conditions(spec, kind, where, fail)

    approval = spec.get("approval", "required")
    if approval not in APPROVAL_MODES:
        raise fail(f"{where}.approval", f"expected one of {list(APPROVAL_MODES)}, not "
                   f"{approval!r}")
    approvers = _user_ids(spec, "approvers", where, fail, required=approval != "none",
                          groups=True)
    requesters = _user_ids(spec, "requesters", where, fail, required=False)

    max_d = _duration(spec, "max_duration", timedelta(hours=4), f"{where}.max_duration", fail)
    min_d = _duration(spec, "min_duration", min(timedelta(minutes=1), max_d),
                      f"{where}.min_duration", fail)
    default_d = _duration(spec, "default_duration", max(min_d, min(timedelta(hours=1), max_d)),
                          f"{where}.default_duration", fail)
    warning = _duration(spec, "expiry_warning", timedelta(minutes=15),
                        f"{where}.expiry_warning", fail)
    if min_d > max_d:
        raise fail(f"{where}.min_duration", "is above max_duration")
    if not min_d <= default_d <= max_d:
        raise fail(f"{where}.default_duration", "must lie between min_duration and max_duration")
    if "expiry_warning" in spec and warning >= max_d:
        raise fail(f"{where}.expiry_warning",
                   f"{format_duration(warning)} is not shorter than max_duration "
                   f"({format_duration(max_d)}): every grant would be warned as it starts")
    for requester in requesters:
        if approvers and set(approvers) <= {requester}:
            raise fail(f"{where}.approvers",
                       f"{requester} is the only approver and may request it, but nobody "
                       "approves their own request: add another approver")
    policy = _approval_policy(spec, where, approvers, max_d, fail)

    description = spec.get("description", "")
    if not isinstance(description, str) or len(description) > 300:
        raise fail(f"{where}.description", "expected text of at most 300 characters")
    return Resource(
        name=name, kind=kind, target=target, approvers=approvers, requesters=requesters,
        description=description, default_duration=default_d, min_duration=min_d,
        max_duration=max_d, expiry_warning=warning, accounts=account_ids,
        source_ips=source_ips, require_mfa=require_mfa, approval=approval, **policy,
    )


def _approval_policy(spec: dict, where: str, approvers: tuple[str, ...], max_d: timedelta,
                     fail) -> dict[str, Any]:
    """approval_channel, approvals_required (N-of-M), remind_after, max_total_duration and
    break-glass, checked against each other."""
    found: dict[str, Any] = {}
    channel = spec.get("approval_channel")
    if channel is not None:
        if not SLACK_CHANNEL_ID.match(str(channel)) or not is_channel(str(channel)):
            raise fail(f"{where}.approval_channel",
                       f"'{channel}' is not a Slack channel id (like C0123ABCD)")
        found["approval_channel"] = str(channel)
    required = spec.get("approvals_required", 1)
    if isinstance(required, bool) or not isinstance(required, int) or required < 1:
        raise fail(f"{where}.approvals_required", "expected a whole number, 1 or more")
    people = [a for a in approvers if not is_usergroup(a)]
    if required > 1 and len(people) == len(approvers) and required > len(people):
        raise fail(f"{where}.approvals_required", f"{required} approvals, but only "
                   f"{len(people)} approver(s) are listed: nobody could ever grant it")
    found["approvals_required"] = required
    found["remind_after"] = _duration(spec, "remind_after", timedelta(minutes=15),
                                      f"{where}.remind_after", fail)
    if "max_total_duration" in spec:
        total = _duration(spec, "max_total_duration", max_d, f"{where}.max_total_duration",
                          fail)
        if total < max_d:
            raise fail(f"{where}.max_total_duration",
                       f"{format_duration(total)} is shorter than max_duration "
                       f"({format_duration(max_d)})")
        found["max_total_duration"] = total
    glass = spec.get("break_glass", False)
    if not isinstance(glass, bool):
        raise fail(f"{where}.break_glass", "expected true or false")
    found["break_glass"] = glass
    found["break_glass_max_duration"] = _duration(
        spec, "break_glass_max_duration", min(timedelta(hours=1), max_d),
        f"{where}.break_glass_max_duration", fail)
    if found["break_glass_max_duration"] > max_d:
        raise fail(f"{where}.break_glass_max_duration", "is above max_duration")
    found["break_glass_review_within"] = _duration(
        spec, "break_glass_review_within", timedelta(hours=24),
        f"{where}.break_glass_review_within", fail)
    for key in ("break_glass_max_duration", "break_glass_review_within"):
        if key in spec and not glass:
            raise fail(f"{where}.{key}", "set only with break_glass: true")
    return found


def _conditions(spec: dict, kind: ResourceKind, where: str, fail) -> tuple[tuple[str, ...], bool]:
    """`source_ips` (CIDRs, checked here) and `require_mfa`, for iam_role only."""
    for key in ("source_ips", "require_mfa"):
        if key in spec and kind is not ResourceKind.IAM_ROLE:
            raise fail(f"{where}.{key}", f"only for kind iam_role (the grant's own policy "
                       f"holds the condition), not {kind.value}")
    require_mfa = spec.get("require_mfa", False)
    if not isinstance(require_mfa, bool):
        raise fail(f"{where}.require_mfa", "expected true or false")
    ips = spec.get("source_ips", [])
    if not isinstance(ips, list) or ("source_ips" in spec and not ips):
        raise fail(f"{where}.source_ips", "expected a non-empty list of CIDRs like 10.0.0.0/8")
    networks = []
    for index, value in enumerate(ips):
        try:
            networks.append(str(ipaddress.ip_network(str(value), strict=True)))
        except ValueError as exc:
            raise fail(f"{where}.source_ips[{index}]", f"'{value}' is not a CIDR: {exc}") from None
    return tuple(networks), require_mfa


def _valid_target(kind: ResourceKind, target: str) -> bool:
    if kind is ResourceKind.SSO_PERMISSION_SET:
        return bool(PERMISSION_SET_NAME.match(target) or PERMISSION_SET_ARN.match(target))
    if kind is ResourceKind.SSO_GROUP:
        return bool(SSO_GROUP_NAME.match(target.strip())) and target == target.strip()
    return bool(IAM_NAME.match(target) or (kind is ResourceKind.IAM_ROLE
                                           and ROLE_ARN.match(target)))


def _user_ids(spec: dict, key: str, where: str, fail, required: bool,
              groups: bool = False) -> tuple[str, ...]:
    """Slack user ids (U..., W...); with `groups`, user group ids (S...) too."""
    value = spec.get(key)
    path = key if where == key else f"{where}.{key}"
    if value is None and not required:
        return ()
    what = "Slack user or user group ids" if groups else "Slack user ids"
    if not isinstance(value, list) or not value:
        raise fail(path, f"expected a non-empty list of {what}")
    for index, item in enumerate(value):
        if not isinstance(item, str) or not (
                SLACK_USER_ID.match(item) or (groups and SLACK_USERGROUP_ID.match(item))):
            like = "U0123ABCD, or a user group like S0123ABCD" if groups else "U0123ABCD"
            raise fail(f"{path}[{index}]", f"'{item}' is not a Slack user id (like {like})")
    return tuple(value)


def _duration(spec: dict, key: str, default: timedelta, where: str, fail) -> timedelta:
    if key not in spec:
        return default
    try:
        return parse_duration(str(spec[key]))
    except InvalidInput as exc:
        raise fail(where, str(exc)) from None
