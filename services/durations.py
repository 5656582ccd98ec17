"""Parsing and formatting of human durations: 30s, 15m, 4h, 2d, 1h30m."""

import re
from datetime import timedelta

from accessbot.services.errors import InvalidInput

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+)\s*([smhdw])")
MAX_SECONDS = 366 * 86400
_WHOLE = re.compile(r"^(?:\s*\d+\s*[smhdw])+\s*$")


def parse_duration(text: str) -> timedelta:
    """Parse '90m', '1h30m' or '2d' into a timedelta; raise InvalidInput otherwise."""
    cleaned = (text or "").strip().lower()
    if not cleaned or len(cleaned) > 20 or not _WHOLE.match(cleaned):
        raise InvalidInput(
            f"'{text}' is not a duration. Use a number and a unit: 30s, 15m, 4h, 2d."
        )
    seconds = sum(int(n) * _UNITS[unit] for n, unit in _PART.findall(cleaned))
    if seconds <= 0:
        raise InvalidInput("A duration must be longer than zero.")
    if seconds > MAX_SECONDS:
        raise InvalidInput(f"'{text}' is longer than a year; nothing here lasts that long.")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """Render a timedelta compactly: 1h30m, 2d, 45s."""
    seconds = int(value.total_seconds())
    if seconds <= 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
