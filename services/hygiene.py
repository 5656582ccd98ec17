"""Credential hygiene: the findings, computed from the IAM credential report alone.

Pure functions over plain data: the report rows come from aws/ (parsed), the thresholds
from the config's `hygiene:` section. Nothing here talks to AWS, Slack or the database.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
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


KEY_KINDS = frozenset({FindingKind.KEY_TOO_OLD, FindingKind.KEY_UNUSED})


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


@dataclass(frozen=True)
class Finding:
    """One problem with one credential, as of one report.

    (iam_user, kind, subject) identifies it across runs: for a key the subject holds the
    key's creation time, so a rotated key is a new key and its old findings resolve.
    """

    iam_user: str
    kind: FindingKind
    subject: str                        # "key:<CreateDate epoch>", "password", "user", "root"
    since: datetime | None              # what the age counts from (created, last used...)
    last_used: datetime | None = None
    last_used_where: str | None = None  # e.g. "s3 in eu-west-1"
    key_slot: int | None = None         # for key findings
    key_created: datetime | None = None # for key findings: matches the key's CreateDate

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.iam_user, self.kind.value, self.subject)


def key_subject(created: datetime) -> str:
    return f"key:{int(created.timestamp())}"


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
    """Every finding in a credential report."""
    raise NotImplementedError  # helper fills in
