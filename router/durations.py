"""Durations as people write them in rule files: `30s`, `5m`, `1h`, `1h30m`, `2d`."""

from __future__ import annotations

import re

_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_duration(text: str) -> float:
    """Seconds in `text`; raises ValueError naming the text when it is not a duration."""
    cleaned = text.strip()
    if cleaned == "0":
        return 0.0
    position, total = 0, 0.0
    for part in _PART.finditer(cleaned):
        if part.start() != position:
            break
        total += float(part.group(1)) * _UNIT_SECONDS[part.group(2)]
        position = part.end()
    if position == 0 or position != len(cleaned):
        raise ValueError(
            f"invalid duration {text!r}: use a number and a unit, like 30s, 5m, 1h or 1h30m"
        )
    return total


def format_duration(seconds: float) -> str:
    """The shortest `1h30m` style text for `seconds` (whole seconds); `-1m30s` when negative."""
    remaining = round(seconds)
    if remaining == 0:
        return "0s"
    if remaining < 0:
        # divmod floors towards -inf, which would turn -90 into "-1d23h58m30s".
        return f"-{format_duration(-remaining)}"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
