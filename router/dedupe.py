"""Deduplication and grouping: one atomic Redis step per webhook.

`ingest` hands every (alert, decision) pair of a webhook to `ingest.lua`, which decides for each
whether it opens an incident, joins one, reopens one, resolves, or is a duplicate, and appends
what changed to the events stream for the workers. Nothing else happens on the request path: the
receiver answers as soon as this one call has succeeded.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from importlib.resources import files
from typing import Any

from redis.asyncio import Redis

from router.alert import Alert, to_record
from router.keys import group_hash
from router.ruleset import Decision

_SCRIPT = files("router").joinpath("ingest.lua").read_text(encoding="utf-8")


class Outcome(StrEnum):
    OPENED = "opened"
    ADDED = "added"
    REOPENED = "reopened"
    DUPLICATE = "duplicate"
    RESOLVED = "resolved"
    ALL_RESOLVED = "all_resolved"
    # A resolve for an alert we never saw firing.
    IGNORED = "ignored"


@dataclass(frozen=True, slots=True)
class Routed:
    """One alert as routed by one decision (an alert routed by `continue` rules appears twice)."""

    alert: Alert
    decision: Decision


@dataclass(slots=True)
class Receipt:
    """What a webhook changed; the body of the 202 answer."""

    alerts: int = 0
    outcomes: Counter[Outcome] = field(default_factory=Counter)
    opened: list[str] = field(default_factory=list)
    touched: list[str] = field(default_factory=list)
    dropped: int = 0
    tests: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "status": "accepted",
            "alerts": self.alerts,
            "duplicates": self.outcomes[Outcome.DUPLICATE] + self.outcomes[Outcome.IGNORED],
            "dropped": self.dropped,
            "tests": self.tests,
            "outcomes": {o.value: n for o, n in sorted(self.outcomes.items())},
            "incidents": {"opened": self.opened, "touched": self.touched},
        }


class Deduper:
    """The ingest script bound to one Redis client and key prefix."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self._script = redis.register_script(_SCRIPT)
        self._prefix = prefix

    async def ingest(
        self, routed: Sequence[Routed], *, now_ms: int, flap_window_s: float, ttl_s: float
    ) -> list[tuple[Outcome, str]]:
        """Run the atomic step; returns (outcome, incident id) per routed alert, in order."""
        if not routed:
            return []
        args: list[str | int] = [
            self._prefix,
            now_ms,
            int(flap_window_s * 1000),
            int(ttl_s),
            len(routed),
        ]
        for item in routed:
            alert, decision = item.alert, item.decision
            args += [
                alert.fingerprint,
                group_hash(decision.group_key),
                decision.group_key,
                alert.status.value,
                decision.severity.value,
                decision.team,
                decision.rule,
                json.dumps(to_record(alert), separators=(",", ":"), ensure_ascii=False),
            ]
        reply = await self._script(args=args)
        return [(Outcome(_text(reply[i])), _text(reply[i + 1])) for i in range(0, len(reply), 2)]


def summarize(receipt: Receipt, results: Sequence[tuple[Outcome, str]]) -> Receipt:
    """Fold per-alert outcomes into the receipt (incident ids listed once each)."""
    for outcome, incident in results:
        receipt.outcomes[outcome] += 1
        if outcome is Outcome.OPENED and incident not in receipt.opened:
            receipt.opened.append(incident)
        elif outcome not in (Outcome.DUPLICATE, Outcome.IGNORED, Outcome.OPENED) and (
            incident and incident not in receipt.touched and incident not in receipt.opened
        ):
            receipt.touched.append(incident)
    return receipt


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
