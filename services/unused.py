"""Unused permissions: services a principal may use but has not, from IAM's last-accessed data."""

from datetime import datetime, timedelta

from accessbot.services.durations import format_duration
from accessbot.services.ports import ServiceUse

SHOWN = 5  # used services named in the sentence; the rest are counted


def used_within(uses: list[ServiceUse], now: datetime, age: timedelta) -> list[ServiceUse]:
    """The services used since `now - age`, the most recently used first."""
    cutoff = now - age
    used = [use for use in uses if use.last_accessed is not None and use.last_accessed >= cutoff]
    return sorted(used, key=lambda use: (-use.last_accessed.timestamp(), use.namespace))


def unused_summary(uses: list[ServiceUse], now: datetime, age: timedelta) -> str | None:
    """"grants 14 services, used 2 in 90d: s3, logs"; None when every granted service was
    used within `age` (nothing to trim) or nothing is granted."""
    if not uses:
        return None
    used = used_within(uses, now, age)
    if len(used) == len(uses):
        return None
    granted = f"grants {len(uses)} service{'s' if len(uses) != 1 else ''}"
    within = format_duration(age)
    if not used:
        return f"{granted}, used none in {within}"
    names = ", ".join(use.namespace for use in used[:SHOWN])
    more = f" and {len(used) - SHOWN} more" if len(used) > SHOWN else ""
    return f"{granted}, used {len(used)} in {within}: {names}{more}"
