"""Inbound normalizers: a webhook body in one of the supported wire formats -> `list[Alert]`.

The integration's declared kind picks the format; bodies are never sniffed across formats (an
Alertmanager body posted to a Grafana integration is an error, not a guess). Within `grafana`,
unified and legacy bodies are told apart by shape, as they share one contact-point type.

Every malformed body raises `PayloadError` with a dotted `field` (`alerts.3.startsAt`); nothing
else escapes for a bad body. Wire models stay private to this package.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import assert_never

from router.alert import Alert
from router.sources import alertmanager, grafana

__all__ = ["SourceKind", "parse"]


class SourceKind(StrEnum):
    """The wire format an integration declares."""

    ALERTMANAGER = "alertmanager"
    GRAFANA = "grafana"


def parse(kind: SourceKind, body: bytes, *, integration: str, now: datetime) -> list[Alert]:
    """The alerts in `body`, normalized, sanitized and stamped with `integration`.

    `now` (timezone-aware; the request's single clock reading) decides the status of alerts
    sent without one and stands in for times the sender did not give.

    Raises `PayloadError` for any body that is not a valid payload of `kind`, and `TypeError`
    for a naive `now` (a caller bug, not a payload problem).
    """
    if now.utcoffset() is None:
        raise TypeError("now must be timezone-aware")
    now = now.astimezone(UTC)
    match kind:
        case SourceKind.ALERTMANAGER:
            return alertmanager.parse(body, integration=integration, now=now)
        case SourceKind.GRAFANA:
            return grafana.parse(body, integration=integration, now=now)
        case _:
            assert_never(kind)
