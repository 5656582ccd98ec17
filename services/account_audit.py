"""The weekly account audit: password policy, administrators, access added outside the bot.

Pure functions: the CredentialSource reads the account, these decide what deviates.
"""

from collections.abc import Callable
from dataclasses import dataclass, fields


@dataclass(frozen=True)
class PasswordPolicy:
    """The account password policy; IAM's settings, None where the account sets nothing."""

    minimum_length: int | None = None
    reuse_prevention: int | None = None
    require_symbols: bool = False
    require_numbers: bool = False
    require_uppercase: bool = False
    require_lowercase: bool = False
    allow_users_to_change: bool = False
    max_age_days: int | None = None


# The CIS AWS Foundations baseline the audit compares against unless the config says otherwise.
CIS_BASELINE = PasswordPolicy(minimum_length=14, reuse_prevention=24, require_symbols=True,
                              require_numbers=True, require_uppercase=True,
                              require_lowercase=True, allow_users_to_change=True)

_LABELS = {
    "minimum_length": "minimum password length",
    "reuse_prevention": "passwords remembered (reuse prevention)",
    "require_symbols": "require a symbol",
    "require_numbers": "require a number",
    "require_uppercase": "require an uppercase letter",
    "require_lowercase": "require a lowercase letter",
    "allow_users_to_change": "users may change their own password",
    "max_age_days": "maximum password age (days)",
}


@dataclass(frozen=True)
class Deviation:
    check: str      # "password_policy", "administrators", "unmanaged_member"
    subject: str    # the setting, or the group
    detail: str     # what is wrong, for people


def password_policy_deviations(actual: PasswordPolicy | None,
                               baseline: PasswordPolicy) -> list[Deviation]:
    """Every setting weaker than the baseline; no policy at all deviates everywhere.

    Numbers: at least the baseline (max age: at most, when the baseline sets one).
    Flags: on where the baseline has them on.
    """
    actual = actual or PasswordPolicy()
    found = []
    for setting in fields(PasswordPolicy):
        want, have = getattr(baseline, setting.name), getattr(actual, setting.name)
        if want is None or want is False:
            continue
        label = _LABELS[setting.name]
        if isinstance(want, bool):
            weak = not have
            detail = f"{label}: off, baseline on"
        elif setting.name == "max_age_days":
            weak = have is None or have > want
            detail = f"{label}: {have or 'never expires'}, baseline at most {want}"
        else:
            weak = have is None or have < want
            detail = f"{label}: {have or 'not set'}, baseline at least {want}"
        if weak:
            found.append(Deviation("password_policy", setting.name, detail))
    return found


def administrator_deviations(admins: set[str], minimum: int) -> list[Deviation]:
    """Fewer administrators than `minimum`: one whose password expires locks everyone out."""
    if len(admins) >= minimum:
        return []
    named = ", ".join(sorted(admins)) or "none"
    return [Deviation("administrators", "administrators",
                      f"{len(admins)} IAM user(s) hold administrator access ({named}); "
                      f"at least {minimum} should, so that one locked-out admin is not fatal")]


def unmanaged_member_deviations(members: dict[str, set[str]],
                                granted: dict[str, set[str]],
                                name: Callable[[str], str] = str,
                                holds: str = "is in") -> list[Deviation]:
    """Holders of bot-managed access without a live grant (members of its IAM groups,
    Identity Center assignments and groups): added outside the bot, or left behind.
    Reported only: the bot never imports them as grants, nor removes them."""
    found = []
    for access in sorted(members):
        for user in sorted(members[access] - granted.get(access, set())):
            found.append(Deviation("unmanaged_member", access, f"{name(user)} {holds} "
                                   f"{access} without an active accessbot grant"))
    return found
