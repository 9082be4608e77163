"""Grafana webhook contact point -> `Alert`s: unified alerting (`version: "1"`) and legacy.

Spec: shared/FORMATS.md sections 2.2-2.3 and 2.7. An integration of kind `grafana` takes both
generations, told apart by the body as FORMATS.md 2.8 says: `alerts` present -> unified (and then
`version` must be "1"); otherwise `ruleName` or `evalMatches` present -> legacy; otherwise
neither. Both generations' top-level keys are declared on one model so the bytes are parsed once.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from router.alert import Alert, Links, Source, fingerprint
from router.errors import PayloadError
from router.sources import grafana_legacy
from router.sources._common import clean_map, is_test_group_key, lifecycle, within
from router.sources._wire import WireAlert, load, quote


class _Alert(WireAlert):
    silence_url: str = Field("", alias="silenceURL")
    dashboard_url: str = Field("", alias="dashboardURL")
    panel_url: str = Field("", alias="panelURL")
    image_url: str = Field("", alias="imageURL")
    # refId -> value; null for test notifications and alerts without evaluated values.
    values: dict[str, float] | None = None
    # Missing from Grafana's docs example, present in real bodies.
    value_string: str = Field("", alias="valueString")


class _Body(grafana_legacy.LegacyFields):
    # Unified-only keys. `version` is optional here because legacy bodies have none.
    version: str | None = None
    group_key: str = Field("", alias="groupKey")
    alerts: list[_Alert] = Field(default_factory=list)

    @field_validator("version")
    @classmethod
    def _only_v1(cls, version: str | None) -> str | None:
        if version is not None and version != "1":
            hint = " (the Alertmanager format: declare the integration as alertmanager)"
            raise PydanticCustomError(
                "unsupported_version",
                "unsupported version {version}: expected '1'{hint}",
                {"version": quote(version), "hint": hint if version == "4" else ""},
            )
        return version


def parse(body: bytes, *, integration: str, now: datetime) -> list[Alert]:
    """Every alert of a Grafana notification (unified or legacy), in the order sent."""
    message = load(_Body, body)
    if "alerts" in message.model_fields_set:
        if message.version is None:
            raise PayloadError("field required", "version")
        return _unified(message, integration=integration, now=now)
    if message.is_legacy():
        return grafana_legacy.to_alerts(message, integration=integration, now=now)
    raise PayloadError(
        "field required (neither a unified body with `alerts` nor a legacy one with `ruleName`)",
        "alerts",
    )


def _unified(message: _Body, *, integration: str, now: datetime) -> list[Alert]:
    is_test = is_test_group_key(message.group_key)
    alerts = []
    for index, wire in enumerate(message.alerts):
        try:
            alerts.append(_alert(wire, integration=integration, now=now, is_test=is_test))
        except PayloadError as exc:
            raise within(exc, f"alerts.{index}") from None
    return alerts


def _alert(wire: _Alert, *, integration: str, now: datetime, is_test: bool) -> Alert:
    labels = clean_map(wire.labels, "labels", "label")
    if not labels:
        raise PayloadError("alert has no labels", "labels")
    status, starts_at, ends_at = lifecycle(wire.status, wire.starts_at, wire.ends_at, now)
    return Alert(
        source=Source.GRAFANA,
        integration=integration,
        status=status,
        labels=labels,
        annotations=clean_map(wire.annotations, "annotations", "annotation"),
        starts_at=starts_at,
        ends_at=ends_at,
        fingerprint=fingerprint(labels),
        # Grafana hashes labels it strips from the body (`__alert_rule_uid__`, ...), so this
        # cannot be recomputed from `labels`; kept for correlating with Grafana's own UI.
        upstream_fingerprint=wire.fingerprint,
        links=Links(
            generator=wire.generator_url,
            dashboard=wire.dashboard_url,
            panel=wire.panel_url,
            silence=wire.silence_url,
            image=wire.image_url,
        ),
        values=wire.values,
        value_string=wire.value_string,
        is_test=is_test,
    )
