"""Legacy Grafana alerting webhook (dashboard alerts, Grafana 4.0 - 10.x) -> `Alert`s.

Spec: shared/FORMATS.md section 2.7. One rule per request, no `alerts` array, no times, no
fingerprint. How it maps:

* labels: the rule's `tags`, plus `alertname` = `ruleName` (which wins over a tag of that name:
  it is the alert's identity), plus `grafana_state` when the state is anything but
  alerting/ok (see below).
* status: `alerting` -> firing, `ok` -> resolved, `no_data` -> firing with label
  `grafana_state="no_data"`. Any other state (the docs list `paused`/`pending`; Grafana cannot
  actually build such a notification) -> firing with `grafana_state="<state>"`: an alerting
  system telling us something we do not understand is shown to a human rather than dropped, and
  the label lets a rule route or drop it.
* `no_data` is a label, not an annotation, so rules can route it (usually lower severity) and it
  is a different alert from the same rule's `alerting` one, as DatasourceNoData is in unified
  alerting. Grafana's `ok` does not say which state it ends, so an `ok` body resolves both: the
  plain alert and its `grafana_state="no_data"` twin (a resolve of an alert never seen is a no-op
  downstream).
* annotations: `summary` = `title` ("[Alerting] <rule name>"), `description` = `message`.
* links: `ruleUrl` (or 4.x `rule_url`) is the panel's alert tab, i.e. where the alert comes from
  -> `Links.generator`; `imageUrl`/`image_url` -> `Links.image`.
* times: none on the wire, so `starts_at` = `now`, and `ends_at` = `now` when resolved.
* `evalMatches` -> `values` (metric -> value, null values skipped; a repeated metric keeps the
  last) and `value_string` in unified Grafana's style (`[ metric='m' labels={k=v} value=1 ]`).
* test notifications (`pkg/services/alerting/test_notification.go`) carry `ruleId` 0, which no
  stored rule has (database ids start at 1).
"""

from __future__ import annotations

from datetime import datetime

from pydantic import AliasChoices, Field

from router.alert import Alert, AlertStatus, Links, Source, fingerprint
from router.errors import PayloadError
from router.sources._common import clean_map
from router.sources._wire import WireModel

STATE_LABEL = "grafana_state"
NO_DATA = "no_data"


class _EvalMatch(WireModel):
    # `null.Float` in Grafana: null when the series had no value.
    value: float | None = None
    metric: str = ""
    tags: dict[str, str] | None = None


class LegacyFields(WireModel):
    """The top-level keys of a legacy body (mixed into the Grafana body model, see grafana.py)."""

    rule_id: int | None = Field(None, alias="ruleId")
    # Required for a legacy body; optional here because the model also reads unified bodies.
    rule_name: str | None = Field(None, alias="ruleName")
    state: str | None = None
    title: str = ""
    message: str = ""
    eval_matches: list[_EvalMatch] | None = Field(None, alias="evalMatches")
    tags: dict[str, str] | None = None
    # Grafana 4.x wrote snake_case keys; later versions camelCase.
    rule_url: str = Field("", validation_alias=AliasChoices("ruleUrl", "rule_url"))
    image_url: str = Field("", validation_alias=AliasChoices("imageUrl", "image_url"))

    def is_legacy(self) -> bool:
        """Whether the body has the legacy shape (FORMATS.md 2.8; the caller checked `alerts`)."""
        return "rule_name" in self.model_fields_set or "eval_matches" in self.model_fields_set


def to_alerts(body: LegacyFields, *, integration: str, now: datetime) -> list[Alert]:
    """The alert(s) a legacy notification stands for: one, or two for `ok` (module docstring)."""
    if body.rule_name is None:
        raise PayloadError("field required", "ruleName")
    if not body.rule_name:
        raise PayloadError("must not be empty", "ruleName")
    if body.state is None:
        raise PayloadError("field required", "state")
    labels = dict(clean_map(body.tags, "tags", "tag"))  # a copy: we add to it
    labels["alertname"] = body.rule_name
    resolved = body.state == "ok"
    if not resolved and body.state != "alerting":
        # An empty value would be dropped like any empty label; the marker must stay.
        labels[STATE_LABEL] = body.state or "unknown"
    values, value_string = _values(body.eval_matches or [])
    links = Links(generator=body.rule_url, image=body.image_url)
    texts = (("summary", body.title), ("description", body.message))
    annotations = {name: text for name, text in texts if text}

    def alert(identity: dict[str, str]) -> Alert:
        return Alert(
            source=Source.GRAFANA_LEGACY,
            integration=integration,
            status=AlertStatus.RESOLVED if resolved else AlertStatus.FIRING,
            labels=identity,
            annotations=annotations,
            starts_at=now,
            ends_at=now if resolved else None,
            fingerprint=fingerprint(identity),
            links=links,
            values=values,
            value_string=value_string,
            is_test=body.rule_id == 0,
        )

    if resolved:
        return [alert(labels), alert({**labels, STATE_LABEL: NO_DATA})]
    return [alert(labels)]


def _values(matches: list[_EvalMatch]) -> tuple[dict[str, float] | None, str]:
    values = {match.metric: match.value for match in matches if match.value is not None}
    value_string = ", ".join(
        f"[ metric='{match.metric}' labels={_render(match.tags)} value={_number(match.value)} ]"
        for match in matches
    )
    return values or None, value_string


def _render(tags: dict[str, str] | None) -> str:
    return "{" + ", ".join(f"{name}={value}" for name, value in sorted((tags or {}).items())) + "}"


def _number(value: float | None) -> str:
    # Like Go's %v: 1, not 1.0.
    return "null" if value is None else repr(value).removesuffix(".0")
