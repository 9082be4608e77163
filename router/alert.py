"""The one internal alert type.

Every source (Alertmanager, Grafana unified, legacy Grafana) is normalized into `Alert` at the
edge, in `router/sources/`; nothing past that package sees a wire model. An `Alert` is frozen and
already sanitized: label and annotation values are strings, empty labels are gone (Alertmanager
treats an empty label as an absent one), and times are timezone-aware UTC.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import orjson


class AlertStatus(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


class Source(StrEnum):
    """Which wire format an alert arrived in."""

    ALERTMANAGER = "alertmanager"
    GRAFANA = "grafana"
    GRAFANA_LEGACY = "grafana_legacy"


@dataclass(frozen=True, slots=True)
class Links:
    """Backlinks a responder clicks; every one is optional and opaque (never parsed)."""

    generator: str = ""
    dashboard: str = ""
    panel: str = ""
    silence: str = ""
    image: str = ""


@dataclass(frozen=True, slots=True)
class Alert:
    source: Source
    integration: str
    status: AlertStatus
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: datetime
    # None while firing: upstream sends 0001-01-01T00:00:00Z, which we never let past the edge.
    ends_at: datetime | None
    fingerprint: str
    upstream_fingerprint: str = ""
    links: Links = field(default_factory=Links)
    # Grafana's evaluated values by refId (`values`), None when the sender had none.
    values: Mapping[str, float] | None = None
    value_string: str = ""
    # Grafana "Test" contact-point notifications: shown, never paged.
    is_test: bool = False


_SEPARATOR = "\udcff"


def fingerprint(labels: Mapping[str, str]) -> str:
    """Stable, source-independent identity of a label set (16 hex chars).

    Unlike the upstream fingerprint it is computed from the labels we can see, so the same alert
    sent by Alertmanager and by Grafana's Alertmanager-compatible webhook gets the same identity.
    """
    # name 0xFF value 0xFF 0xFF name ... as one string, encoded once: "\udcff" becomes the byte
    # 0xFF under surrogateescape. No label holds a lone surrogate (the JSON parsers reject them),
    # so the separator cannot be forged. Measured 2.2 µs against 3.6 for encoding part by part.
    text = _SEPARATOR.join(
        [f"{name}{_SEPARATOR}{labels[name]}{_SEPARATOR}" for name in sorted(labels)]
    )
    return hashlib.blake2b(text.encode("utf-8", "surrogateescape"), digest_size=8).hexdigest()


def to_record(alert: Alert) -> dict[str, object]:
    """The JSON-ready form stored with an incident and shown by the API."""
    record: dict[str, object] = {
        "status": alert.status.value,
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "starts_at": alert.starts_at.isoformat(),
        "ends_at": alert.ends_at.isoformat() if alert.ends_at else None,
        "fingerprint": alert.fingerprint,
        "source": alert.source.value,
        "integration": alert.integration,
    }
    if alert.upstream_fingerprint:
        record["upstream_fingerprint"] = alert.upstream_fingerprint
    links = {name: getattr(alert.links, name) for name in Links.__slots__}
    if any(links.values()):
        record["links"] = {name: url for name, url in links.items() if url}
    if alert.values is not None:
        record["values"] = dict(alert.values)
    if alert.value_string:
        record["value_string"] = alert.value_string
    if alert.is_test:
        record["is_test"] = True
    return record


def record_json(alert: Alert) -> bytes:
    """`to_record(alert)` as compact JSON. It runs for every alert of every webhook, so it uses
    orjson (about ten times faster than the standard library for these small objects)."""
    return orjson.dumps(to_record(alert))


def from_record(record: Mapping[str, Any]) -> Alert:
    """Inverse of `to_record`, for records we wrote ourselves."""
    ends_at = record.get("ends_at")
    return Alert(
        source=Source(record["source"]),
        integration=record["integration"],
        status=AlertStatus(record["status"]),
        labels=record["labels"],
        annotations=record["annotations"],
        starts_at=datetime.fromisoformat(record["starts_at"]),
        ends_at=datetime.fromisoformat(ends_at) if ends_at else None,
        fingerprint=record["fingerprint"],
        upstream_fingerprint=record.get("upstream_fingerprint", ""),
        links=Links(**record.get("links", {})),
        values=record.get("values"),
        value_string=record.get("value_string", ""),
        is_test=record.get("is_test", False),
    )
