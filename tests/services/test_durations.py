from datetime import timedelta

import pytest

from accessbot.services.durations import format_duration, parse_duration
from accessbot.services.errors import InvalidInput


@pytest.mark.parametrize("text, expected", [
    ("30s", timedelta(seconds=30)),
    ("15m", timedelta(minutes=15)),
    ("4h", timedelta(hours=4)),
    ("2d", timedelta(days=2)),
    ("1w", timedelta(weeks=1)),
    ("1h30m", timedelta(hours=1, minutes=30)),
    ("1h 30m", timedelta(hours=1, minutes=30)),
    ("  2 h  ", timedelta(hours=2)),
    ("4H", timedelta(hours=4)),
    ("1H30M", timedelta(hours=1, minutes=30)),
    ("90m", timedelta(minutes=90)),
])
def test_parse_duration_accepts(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", [
    "", "   ", None, "abc", "0m", "0h0m", "5", "1x", "h", "-5m", "1.5h", "1h30",
    "1h" * 11,  # longer than any real duration
])
def test_parse_duration_rejects(text):
    with pytest.raises(InvalidInput):
        parse_duration(text)


@pytest.mark.parametrize("text", ["9999999999d", "99999999999999999w"])
def test_parse_duration_rejects_numbers_too_big_for_a_timedelta(text):
    with pytest.raises(InvalidInput):
        parse_duration(text)


@pytest.mark.parametrize("value, text", [
    (timedelta(seconds=45), "45s"),
    (timedelta(minutes=15), "15m"),
    (timedelta(hours=1, minutes=30), "1h30m"),
    (timedelta(days=2), "2d"),
    (timedelta(days=1, hours=2, minutes=3, seconds=4), "1d2h3m4s"),
    (timedelta(0), "0s"),
])
def test_format_duration(value, text):
    assert format_duration(value) == text


@pytest.mark.parametrize("value", [
    timedelta(seconds=1), timedelta(minutes=5), timedelta(hours=4), timedelta(hours=25),
    timedelta(days=3, minutes=1), timedelta(weeks=2, seconds=59),
])
def test_format_then_parse_round_trips(value):
    assert parse_duration(format_duration(value)) == value


@pytest.mark.parametrize("text, canonical", [("90m", "1h30m"), ("1w", "7d"), ("3600s", "1h")])
def test_parse_then_format_is_canonical(text, canonical):
    assert format_duration(parse_duration(text)) == canonical
