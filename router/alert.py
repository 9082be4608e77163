"""The one internal alert type.

Every source (Alertmanager, Grafana unified, legacy Grafana) is normalized into `Alert` at the
edge, in `router/sources/`; nothing past that package sees a wire model. An `Alert` is frozen and
already sanitized: label and annotation values are strings, empty labels are gone (Alertmanager
treats an empty label as an absent one), and times are timezone-aware UTC.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any

import msgspec


class AlertStatus(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


class Source(StrEnum):
    """Which wire format an alert arrived in."""

    ALERTMANAGER = "alertmanager"
    GRAFANA = "grafana"
    GRAFANA_LEGACY = "grafana_legacy"


class Links(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    """Backlinks a responder clicks; every one is optional and opaque (never parsed)."""

    generator: str = ""
    dashboard: str = ""
    panel: str = ""
    silence: str = ""
    image: str = ""


# A msgspec Struct rather than a dataclass: the receiver builds and serializes one per alert
# received, and a Struct is several times cheaper at both (measured: building and storing an
# alert went from about 13 to 6 µs). Untracked by the cyclic garbage collector (gc=False): an
# alert holds only strings, times and str -> str maps, so it can never be part of a cycle, and
# the collector's passes over thousands of live alerts were pausing the receiver for 5-15 ms.
class Alert(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
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
    links: Links = Links()
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


_RECORD = msgspec.json.Encoder()


def record_json(alert: Alert) -> bytes:
    """The JSON record stored with an incident and shown by the API: every field by name, times
    in RFC 3339 UTC, fields still at their defaults (no links, no values, not a test) left out."""
    return _RECORD.encode(alert)


def from_record(record: Mapping[str, Any]) -> Alert:
    """Inverse of `record_json` (decoded), for records we wrote ourselves; also reads those
    written before times were stored with a `Z`, or with every link key."""
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
