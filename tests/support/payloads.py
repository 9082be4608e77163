"""Webhook bodies for tests: the shared fixtures, and Alertmanager-shaped bodies built to order."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "payloads"
ZERO_TIME = "0001-01-01T00:00:00Z"


def shared(name: str) -> bytes:
    return (SHARED / name).read_bytes()


def alertmanager_body(
    alerts: Sequence[Mapping[str, str]],
    *,
    status: str = "firing",
    starts_at: str = "2026-11-26T10:00:00Z",
    ends_at: str = ZERO_TIME,
    annotations: Mapping[str, str] | None = None,
) -> bytes:
    """An Alertmanager v4 webhook body (compact JSON + newline, as Alertmanager sends it)."""
    items: list[dict[str, Any]] = [
        {
            "status": status,
            "labels": dict(labels),
            "annotations": dict(annotations or {"summary": f"{labels.get('alertname')} fired"}),
            "startsAt": starts_at,
            "endsAt": ends_at,
            "generatorURL": "http://prometheus:9090/graph?g0.expr=up\u0026g0.tab=1",
            "fingerprint": "0123456789abcdef",
        }
        for labels in alerts
    ]
    message = {
        "receiver": "sevrouter",
        "status": status,
        "alerts": items,
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "version": "4",
        "groupKey": "{}:{}",
        "truncatedAlerts": 0,
    }
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"
