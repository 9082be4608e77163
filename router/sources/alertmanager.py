"""Prometheus Alertmanager webhook (`version: "4"`) -> `Alert`s.

Also the format of Mimir/Cortex and of Grafana's "Alertmanager-compatible" webhook. Spec:
shared/FORMATS.md section 1. Only the fields an `Alert` needs are modelled; the group-level maps
(`groupLabels`, `commonLabels`, ...) are ignored, so `null` there is accepted for free.

This is the receiver's busiest format, so a body is read twice only when it is bad: msgspec
structs (`_FastMessage`, several times cheaper per alert than a pydantic model) read every body,
and one they refuse is read again by the pydantic model `_Message`, whose error names the exact
field and problem for the 400 answer. The two describe the same schema; tests hold them equal on
every payload fixture and thousands of mangled variants.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal

import msgspec
from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from router.alert import Alert, Links, Source, fingerprint
from router.errors import PayloadError
from router.sources._common import clean_map, is_test_group_key, lifecycle, within
from router.sources._recent import RecentBodies
from router.sources._wire import WireAlert, WireModel, load, quote


class _Message(WireModel):
    # Declared first so that, in a body that is wrong everywhere, the version is what we report.
    version: str
    group_key: str = Field("", alias="groupKey")
    alerts: list[WireAlert]

    @field_validator("version")
    @classmethod
    def _only_v4(cls, version: str) -> str:
        if version != "4":
            # Alertmanager hard-codes "4"; anything else is a `webhook_config.payload` template
            # (v0.32+) or another product, which we do not guess at (FORMATS.md 1.4.7).
            raise PydanticCustomError(
                "unsupported_version",
                "unsupported version {version}: expected '4' "
                "(custom payload templates are not supported)",
                {"version": quote(version)},
            )
        return version


class _FastAlert(msgspec.Struct, frozen=True, gc=False):
    """`WireAlert` for msgspec: same fields, same types, same strictness. Untracked by the
    garbage collector, like `Alert` (strings and str -> str maps only)."""

    starts_at: str = msgspec.field(name="startsAt")
    status: Literal["firing", "resolved"] | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    ends_at: str | None = msgspec.field(default=None, name="endsAt")
    generator_url: str = msgspec.field(default="", name="generatorURL")
    fingerprint: str = ""


class _FastMessage(msgspec.Struct, frozen=True, gc=False):
    version: str
    alerts: list[_FastAlert]
    group_key: str = msgspec.field(default="", name="groupKey")


_DECODER = msgspec.json.Decoder(_FastMessage)


def _read(body: bytes) -> _FastMessage | _Message:
    try:
        message = _DECODER.decode(body)
    # ValidationError is a DecodeError; invalid UTF-8 and deep nesting have their own.
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return load(_Message, body)  # raises the precise PayloadError
    if message.version != "4":
        return load(_Message, body)
    return message


# Most bodies are re-sends of one parsed moments ago (see `_recent`).
_RECENT = RecentBodies()


def parse(body: bytes, *, integration: str, now: datetime) -> list[Alert]:
    """Every alert of an Alertmanager notification, in the order sent."""
    recent = _RECENT.get(integration, body)
    if recent is not None:
        return recent
    message = _read(body)
    is_test = is_test_group_key(message.group_key)
    # Alerts of one rule share a generatorURL, and `Links` is frozen: build each once per body.
    links: dict[str, Links] = {}
    alerts = []
    # Whether the result holds for any `now`: the sender gave every status, and `lifecycle` did
    # not fill in `now` (it returns that very object) for a missing time.
    timeless = True
    wires: Sequence[_FastAlert | WireAlert] = message.alerts
    for index, wire in enumerate(wires):
        link = links.get(wire.generator_url)
        if link is None:
            link = links[wire.generator_url] = Links(generator=wire.generator_url)
        try:
            alert = _alert(wire, link, integration=integration, now=now, is_test=is_test)
        except PayloadError as exc:
            raise within(exc, f"alerts.{index}") from None
        alerts.append(alert)
        timeless = timeless and not (
            wire.status is None or alert.starts_at is now or alert.ends_at is now
        )
    if timeless:
        _RECENT.put(integration, body, alerts)
    return alerts


def _alert(
    wire: WireAlert | _FastAlert, links: Links, *, integration: str, now: datetime, is_test: bool
) -> Alert:
    labels = clean_map(wire.labels, "labels", "label")
    if not labels:
        raise PayloadError("alert has no labels", "labels")
    status, starts_at, ends_at = lifecycle(wire.status, wire.starts_at, wire.ends_at, now)
    return Alert(
        source=Source.ALERTMANAGER,
        integration=integration,
        status=status,
        labels=labels,
        annotations=clean_map(wire.annotations, "annotations", "annotation"),
        starts_at=starts_at,
        ends_at=ends_at,
        fingerprint=fingerprint(labels),
        upstream_fingerprint=wire.fingerprint,
        links=links,
        is_test=is_test,
    )
