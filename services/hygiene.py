"""Credential hygiene: the findings, computed from the IAM credential report alone.

Pure functions over plain data: the report rows come from aws/ (parsed), the thresholds
from the config's `hygiene:` section. Nothing here talks to AWS, Slack or the database.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

ROOT_USER = "<root_account>"  # how the credential report names the root user


class FindingKind(StrEnum):
    KEY_TOO_OLD = "key_too_old"          # an active access key older than access_key_max_age
    KEY_UNUSED = "key_unused"            # an active key unused (or never used) for too long
    PASSWORD_UNUSED = "password_unused"  # a console password unused (or never used) too long
    NO_MFA = "no_mfa"                    # a console password without MFA
    MULTIPLE_KEYS = "multiple_keys"      # more than one active access key
    USER_INACTIVE = "user_inactive"      # no activity of any kind: propose removal
    ROOT_KEYS = "root_keys"              # the root user has access keys
    ROOT_NO_MFA = "root_no_mfa"          # the root user has no MFA
    ROOT_USED = "root_used"              # the root user was used recently
    ROLE_UNUSED = "role_unused"          # a role unused (or never used) for unused_role_age
    ROLE_LONG_SESSION = "role_long_session"  # MaxSessionDuration above max_role_session
    ROLE_OPEN_TRUST = "role_open_trust"  # trusts anyone, or another account unconditioned


KEY_KINDS = frozenset({FindingKind.KEY_TOO_OLD, FindingKind.KEY_UNUSED})
# findings about IAM roles (services/role_hygiene.py): their iam_user is the role's name
ROLE_KINDS = frozenset({FindingKind.ROLE_UNUSED, FindingKind.ROLE_LONG_SESSION,
                        FindingKind.ROLE_OPEN_TRUST})
# the findings of the credential report (evaluate below)
REPORT_KINDS = frozenset(FindingKind) - ROLE_KINDS

# what each finding is, as a sentence's object, for the audit trail
WHAT = {
    FindingKind.KEY_TOO_OLD: "an access key past its rotation age",
    FindingKind.KEY_UNUSED: "an unused access key",
    FindingKind.PASSWORD_UNUSED: "an unused console password",
    FindingKind.NO_MFA: "a console password without MFA",
    FindingKind.MULTIPLE_KEYS: "more than one active access key",
    FindingKind.USER_INACTIVE: "no activity at all",
    FindingKind.ROOT_KEYS: "root user access keys",
    FindingKind.ROOT_NO_MFA: "a root user without MFA",
    FindingKind.ROOT_USED: "a recent use of the root user",
    FindingKind.ROLE_UNUSED: "not been used for a long time",
    FindingKind.ROLE_LONG_SESSION: "a maximum session duration above the cap",
    FindingKind.ROLE_OPEN_TRUST: "a trust policy open to anyone or another account",
}


@dataclass(frozen=True)
class KeySlot:
    """access_key_1 or access_key_2 of a report row. The report carries no key id."""

    slot: int                          # 1 or 2
    active: bool
    last_rotated: datetime | None      # equals the key's CreateDate (how keys are matched)
    last_used: datetime | None
    last_used_region: str | None
    last_used_service: str | None


@dataclass(frozen=True)
class CredentialRow:
    """One user of the IAM credential report; times are aware UTC, None for N/A."""

    user: str                          # ROOT_USER for the root account
    arn: str
    user_created: datetime | None
    password_enabled: bool
    password_last_used: datetime | None
    password_last_changed: datetime | None
    mfa_active: bool
    keys: tuple[KeySlot, ...]          # both slots, active or not

    @property
    def is_root(self) -> bool:
        return self.user == ROOT_USER


@dataclass(frozen=True)
class AccessKey:
    """An access key as ListAccessKeys returns it."""

    key_id: str
    active: bool
    created: datetime


@dataclass(frozen=True)
class HygienePolicy:
    """Thresholds, with the CIS AWS Foundations benchmark's defaults."""

    access_key_max_age: timedelta = timedelta(days=90)
    unused_credential_age: timedelta = timedelta(days=45)
    unused_user_age: timedelta = timedelta(days=90)
    root_used_within: timedelta = timedelta(days=1)
    unused_role_age: timedelta = timedelta(days=90)
    max_role_session: timedelta = timedelta(hours=1)  # IAM allows 1h to 12h


@dataclass(frozen=True)
class Finding:
    """One problem with one credential, as of one report.

    (iam_user, kind, subject) identifies it across runs: for a key the subject holds the
    key's creation time, so a rotated key is a new key and its old findings resolve.
    """

    iam_user: str
    kind: FindingKind
    subject: str                        # "key:<CreateDate epoch>", "password", "keys", "user",
                                        # "root-keys", "root-mfa", "root-used:<epoch of use>"
    since: datetime | None              # what the age counts from (created, last used...)
    last_used: datetime | None = None
    last_used_where: str | None = None  # e.g. "s3 in eu-west-1"
    key_slot: int | None = None         # for key findings
    key_created: datetime | None = None # for key findings: matches the key's CreateDate
    detail: str | None = None           # for role findings: the session length, who is trusted

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.iam_user, self.kind.value, self.subject)


def key_subject(created: datetime) -> str:
    return f"key:{int(created.timestamp())}"


def describe(iam_user: str, kind: str, subject: str, key_id: str | None = None) -> str:
    """A finding in words, e.g. "alice has an unused access key (created 2026-01-05)",
    "role deploy has not been used for a long time"."""
    said = f"{iam_user} has {WHAT[FindingKind(kind)]}"
    if kind in ROLE_KINDS:
        return f"role {said}"
    if key_id:
        return f"{said} (...{key_id[-4:]})"
    if subject.startswith("key:"):
        created = datetime.fromtimestamp(int(subject[4:]), UTC)
        return f"{said} (created {created:%Y-%m-%d})"
    return said


def match_key(created: datetime | None, keys: list[AccessKey]) -> AccessKey | None:
    """The key whose CreateDate equals a report slot's last_rotated, to the second."""
    if created is None:
        return None
    wanted = int(created.timestamp())
    for key in keys:
        if int(key.created.timestamp()) == wanted:
            return key
    return None


def evaluate(rows: list[CredentialRow], policy: HygienePolicy, now: datetime) -> list[Finding]:
    """Every finding in a credential report: by row order, then in FindingKind order."""
    if now.tzinfo is None:
        raise ValueError("evaluate needs an aware UTC 'now'")
    cutoffs = _Cutoffs.of(policy, now)
    findings: list[Finding] = []
    for row in rows:
        if row.is_root:
            _add_root_findings(row, cutoffs, findings)
            continue
        _add_key_findings(row, cutoffs, findings)
        _add_password_findings(row, cutoffs, findings)
        _add_multiple_keys(row, findings)
        _add_user_inactive(row, cutoffs, findings)
    return findings


@dataclass(frozen=True)
class _Cutoffs:
    """The policy as instants, computed once: `now - t > age` is `t < now - age`."""

    key_rotated: datetime  # an active key rotated before this is too old
    unused: datetime       # a credential last used (or, never used, created) before this
    inactive: datetime     # a user whose last activity is before this is inactive
    root_used: datetime    # root use at or after this is recent

    @classmethod
    def of(cls, policy: HygienePolicy, now: datetime) -> "_Cutoffs":
        return cls(key_rotated=now - policy.access_key_max_age,
                   unused=now - policy.unused_credential_age,
                   inactive=now - policy.unused_user_age,
                   root_used=now - policy.root_used_within)


def _where(service: str | None, region: str | None) -> str | None:
    if service is None:
        return None
    return service if region is None else f"{service} in {region}"


def _key_finding(user: str, kind: FindingKind, slot: KeySlot, since: datetime) -> Finding:
    return Finding(user, kind, key_subject(slot.last_rotated), since,
                   last_used=slot.last_used,
                   last_used_where=_where(slot.last_used_service, slot.last_used_region),
                   key_slot=slot.slot, key_created=slot.last_rotated)


def _add_key_findings(row: CredentialRow, cutoffs: _Cutoffs, out: list[Finding]) -> None:
    # two passes over the (two) slots, so that every KEY_TOO_OLD precedes every KEY_UNUSED
    for slot in row.keys:
        if slot.active and slot.last_rotated is not None \
                and slot.last_rotated < cutoffs.key_rotated:
            out.append(_key_finding(row.user, FindingKind.KEY_TOO_OLD, slot, slot.last_rotated))
    for slot in row.keys:
        if not slot.active or slot.last_rotated is None:
            continue
        since = slot.last_used if slot.last_used is not None else slot.last_rotated
        if since < cutoffs.unused:
            out.append(_key_finding(row.user, FindingKind.KEY_UNUSED, slot, since))


def _add_password_findings(row: CredentialRow, cutoffs: _Cutoffs, out: list[Finding]) -> None:
    if not row.password_enabled:
        return
    set_at = row.password_last_changed if row.password_last_changed is not None \
        else row.user_created
    since = row.password_last_used if row.password_last_used is not None else set_at
    if since is not None and since < cutoffs.unused:
        out.append(Finding(row.user, FindingKind.PASSWORD_UNUSED, "password", since,
                           last_used=row.password_last_used))
    if not row.mfa_active:
        out.append(Finding(row.user, FindingKind.NO_MFA, "password", set_at))


def _add_multiple_keys(row: CredentialRow, out: list[Finding]) -> None:
    active, newest = 0, None
    for slot in row.keys:
        if slot.active:
            active += 1
            if slot.last_rotated is not None and (newest is None or slot.last_rotated > newest):
                newest = slot.last_rotated
    if active > 1:  # since: when the second key appeared
        out.append(Finding(row.user, FindingKind.MULTIPLE_KEYS, "keys", newest))


def last_used(row: CredentialRow) -> datetime | None:
    """The newest use of the user's password or of any of its keys; None if never used."""
    return _last_activity(row)[0]


def _last_activity(row: CredentialRow) -> tuple[datetime | None, str | None]:
    """The newest use of the password or of any key, active or not, and where (for a key);
    None if never used."""
    latest, where = row.password_last_used, None
    for slot in row.keys:
        if slot.last_used is not None and (latest is None or slot.last_used > latest):
            latest, where = slot.last_used, _where(slot.last_used_service, slot.last_used_region)
    return latest, where


def _add_user_inactive(row: CredentialRow, cutoffs: _Cutoffs, out: list[Finding]) -> None:
    if row.user_created is not None and row.user_created >= cutoffs.inactive:
        return  # a new user is never inactive
    latest, _ = _last_activity(row)
    since = latest if latest is not None else row.user_created
    if since is not None and since < cutoffs.inactive:
        out.append(Finding(row.user, FindingKind.USER_INACTIVE, "user", since, last_used=latest))


def _add_root_findings(row: CredentialRow, cutoffs: _Cutoffs, out: list[Finding]) -> None:
    """Root gets its own kinds only: one finding for its keys, however many."""
    if any(slot.active for slot in row.keys):
        created = [s.last_rotated for s in row.keys if s.active and s.last_rotated is not None]
        out.append(Finding(row.user, FindingKind.ROOT_KEYS, "root-keys",
                           min(created, default=None)))
    if not row.mfa_active:
        out.append(Finding(row.user, FindingKind.ROOT_NO_MFA, "root-mfa", row.user_created))
    used, where = _last_activity(row)
    if used is not None and used >= cutoffs.root_used:
        # the use's time in the subject: each new use is a new finding
        out.append(Finding(row.user, FindingKind.ROOT_USED, f"root-used:{int(used.timestamp())}",
                           used, last_used=used, last_used_where=where))
