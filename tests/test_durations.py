"""Tests for router.durations: rule-file durations in and out."""

from __future__ import annotations

import pytest

from router.durations import format_duration, parse_duration

PARSE = [
    # A bare zero needs no unit.
    pytest.param("0", 0.0, id="zero"),
    # One number and one unit, every unit.
    pytest.param("250ms", 0.25, id="milliseconds"),
    pytest.param("30s", 30.0, id="seconds"),
    pytest.param("5m", 300.0, id="minutes"),
    pytest.param("2h", 7200.0, id="hours"),
    pytest.param("2d", 172800.0, id="days"),
    pytest.param("1w", 604800.0, id="weeks"),
    # Several parts add up, largest first as people write them.
    pytest.param("1h30m", 5400.0, id="compound"),
    pytest.param("1d2h3m4s", 93784.0, id="compound-all"),
    # Fractions are allowed.
    pytest.param("1.5h", 5400.0, id="fraction"),
    # Surrounding whitespace is ignored.
    pytest.param(" 5m\n", 300.0, id="whitespace-around"),
]


@pytest.mark.parametrize(("text", "seconds"), PARSE)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


INVALID = [
    # Nothing, or only whitespace.
    pytest.param("", id="empty"),
    pytest.param("  ", id="blank"),
    # A number without a unit (other than 0) is ambiguous: seconds? minutes?
    pytest.param("300", id="no-unit"),
    pytest.param("0.0", id="zero-with-decimals"),
    # A unit without a number.
    pytest.param("m", id="no-number"),
    # Units are lower case; M is not minutes (nor months).
    pytest.param("5M", id="upper-case-unit"),
    # No spaces inside, no words, no signs.
    pytest.param("5 m", id="space-inside"),
    pytest.param("1h 30m", id="space-between-parts"),
    pytest.param("5 minutes", id="words"),
    pytest.param("-5m", id="negative"),
    pytest.param("+5m", id="plus-sign"),
    # Trailing or leading garbage is not silently ignored.
    pytest.param("5m3", id="trailing-number"),
    pytest.param("5mx", id="trailing-letter"),
    pytest.param("x5m", id="leading-letter"),
    # Go-style or ISO-8601 spellings are not accepted.
    pytest.param("PT5M", id="iso-8601"),
    pytest.param("1e3s", id="exponent"),
]


@pytest.mark.parametrize("text", INVALID)
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration") as caught:
        parse_duration(text)
    # The message quotes the text exactly as given.
    assert f"invalid duration {text!r}: " in str(caught.value)


FORMAT = [
    # Zero, and anything that rounds to it.
    pytest.param(0, "0s", id="zero"),
    pytest.param(0.4, "0s", id="rounds-to-zero"),
    # Whole seconds, rounded.
    pytest.param(59.6, "1m", id="rounds-up"),
    pytest.param(90, "1m30s", id="minutes-seconds"),
    # Zero parts are left out.
    pytest.param(3600, "1h", id="hour"),
    pytest.param(86400 + 60, "1d1m", id="skips-zero-parts"),
    pytest.param(93784, "1d2h3m4s", id="every-part"),
    # Weeks are shown as days.
    pytest.param(604800, "7d", id="week-as-days"),
    # Negative durations (e.g. overdue) keep their parts: -90s is -1m30s.
    pytest.param(-90, "-1m30s", id="negative"),
]


@pytest.mark.parametrize(("seconds", "text"), FORMAT)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("seconds", [1, 59, 61, 3599, 3661, 86399, 90061, 1209600])
def test_format_then_parse_round_trips(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds
