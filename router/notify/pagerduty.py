"""PagerDuty Events API v2: one PagerDuty alert per incident, triggered, acknowledged, resolved.

Wire format (FORMATS.md 3.1): one JSON object POSTed to the configured `url` (default
`https://events.pagerduty.com/v2/enqueue`); the `routing_key` in the body is the only
authentication. The incident id (`INC-42`) is the `dedup_key`, so every trigger for an incident
updates the same PagerDuty alert and a later acknowledge or resolve finds it:

    {"routing_key": "...", "dedup_key": "INC-42", "event_action": "trigger",
     "payload": {"summary": "...", "source": "payments", "severity": "critical", ...},
     "client": "sevrouter", "client_url": "...", "links": [{"href": "...", "text": "..."}]}
    {"routing_key": "...", "dedup_key": "INC-42", "event_action": "acknowledge"}
    {"routing_key": "...", "dedup_key": "INC-42", "event_action": "resolve"}

Answers: 202 delivered; 400 permanent (PagerDuty's `message` and `errors` quoted); 429 retried,
after 30 s unless Retry-After says otherwise; 5xx and network failures retried.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

import httpx
import jinja2
import structlog

from router.channelschema import PagerDutyChannelConfig
from router.errors import ConfigError
from router.notify._http import USER_AGENT, read_capped
from router.notify.base import (
    RESOLVE_EVENTS,
    TRIGGER_EVENTS,
    Delivery,
    Message,
    Outcome,
    body_excerpt,
    classify_response,
    classify_transport_error,
)
from router.notify.render import Renderer
from router.secrets import Secret
from router.severity import Severity

log = structlog.get_logger(__name__)

SUMMARY_TEMPLATE: Final = "pagerduty.summary.j2"
CLIENT: Final = "sevrouter"
# PagerDuty's limit for the summary (FORMATS.md 3.1). Alertmanager truncates to the same 1024
# runes; a Python str counts code points, as runes do.
MAX_SUMMARY_CHARS: Final = 1024
# Events larger than 512 KB are rejected. Alertmanager drops custom_details above 512000 bytes;
# staying strictly under that number is under the limit whichever "KB" PagerDuty means.
MAX_EVENT_BYTES: Final = 512_000
# PagerDuty's rate-limit page asks for retries "30 seconds apart" when a 429 carries no
# Retry-After; our own backoff would start sooner and burn the per-key budget further.
DEFAULT_429_RETRY_AFTER: Final = 30.0
# Used when the severity map has no entry for the incident's severity: PagerDuty's middle
# value, the same default Alertmanager sends. A gap in the map must not drop the page.
FALLBACK_SEVERITY: Final = "error"

# PD-CEF fields filled from the incident document when it has them, else from a label every
# member alert shares, first name that matches wins. `component` is the piece that broke
# ("mysql"), `group` the logical group it belongs to ("prod-datapipe"), `class` the kind of
# problem ("HighErrorRate").
CEF_LABELS: Final[tuple[tuple[str, tuple[str, ...]], ...]] = (
    ("component", ("component", "service", "app")),
    ("group", ("group", "cluster", "namespace")),
    ("class", ("class", "alertname")),
)
_WHITESPACE = re.compile(r"\s+")


class PagerDutyChannel:
    """Sends each `Message` as one Events API v2 event. Satisfies `router.notify.base.Channel`.

    Trigger events (`TRIGGER_EVENTS`) trigger or re-trigger the incident's alert, acknowledged
    acknowledges it, `RESOLVE_EVENTS` resolve it. `incident.notify` and `incident.reminder` have
    no Events API equivalent (there are no notes in Events v2), so they are reported delivered
    without a request. `message.incident` (or the payload's `id`) is the `dedup_key`.

    `routing_key` never appears in `repr`, `Delivery.detail` (echoes in error bodies are
    masked) or logs. Redirects are never followed. An unusable URL, timeout or empty routing
    key raises `ConfigError` here, not at send time. Keep the `httpx` logger at WARNING: it logs
    request URLs at INFO (harmless here, the key is in the body, but noisy).
    """

    kind: Final = "pagerduty"

    def __init__(
        self,
        config: PagerDutyChannelConfig,
        *,
        routing_key: Secret,
        client: httpx.Client,
        renderer: Renderer,
    ) -> None:
        _validate(config, routing_key)
        self.name = config.name
        self._config = config
        self._routing_key = routing_key
        self._client = client
        self._renderer = renderer
        self._timeout = httpx.Timeout(config.timeout)

    def __repr__(self) -> str:
        return f"PagerDutyChannel(name={self.name!r}, url={self._config.url!r})"

    def send(self, message: Message, *, now: datetime) -> Delivery:
        """Make one attempt for `message`; never raises for delivery failures.

        `now` (timezone-aware) is the fallback event timestamp and the reference for an
        HTTP-date Retry-After. Returns PERMANENT without sending when the message names no
        incident (there would be no `dedup_key` to acknowledge or resolve later) or its event
        is not one of `EVENTS`.
        """
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        dedup_key = message.incident or _text(message.payload.get("id"))
        if not dedup_key:
            return Delivery(Outcome.PERMANENT, "message has no incident id to use as dedup_key")
        if message.event in TRIGGER_EVENTS:
            event = self._trigger(message, dedup_key, now)
        elif message.event == "incident.acknowledged":
            event = self._envelope(dedup_key, "acknowledge")
        elif message.event in RESOLVE_EVENTS:
            event = self._envelope(dedup_key, "resolve")
        elif message.event in ("incident.notify", "incident.reminder"):
            return Delivery(Outcome.DELIVERED, f"nothing to send to PagerDuty for {message.event}")
        else:
            return Delivery(Outcome.PERMANENT, f"PagerDuty has no action for {message.event}")
        return self._post(_encode(event), now)

    def _envelope(self, dedup_key: str, action: str) -> dict[str, Any]:
        return {
            "routing_key": self._routing_key.reveal(),
            "dedup_key": dedup_key,
            "event_action": action,
        }

    def _trigger(self, message: Message, dedup_key: str, now: datetime) -> dict[str, Any]:
        incident = message.payload
        payload: dict[str, Any] = {
            "summary": self._summary(message),
            "source": _text(incident.get("team")) or CLIENT,
            "severity": self._severity(message),
            # When the problem was detected, stable across re-triggers and retries.
            "timestamp": _text(incident.get("opened_at")) or now.isoformat(),
        }
        alerts = _alerts(incident)
        for field, labels in CEF_LABELS:
            value = _text(incident.get(field)) or shared_label(alerts, labels)
            if value:
                payload[field] = value
        event = self._envelope(dedup_key, "trigger") | {"payload": payload, "client": CLIENT}
        links = dict(message.links)
        if links.get("incident"):
            event["client_url"] = links["incident"]
        event_links = _links(dedup_key, links, _text(incident.get("runbook")))
        if event_links:
            event["links"] = event_links
        payload["custom_details"] = {
            "incident": dedup_key,
            "state": _text(incident.get("state")),
            "team": _text(incident.get("team")),
            "rule": _text(incident.get("rule")),
            "alerts_firing": incident.get("alerts_firing", 0),
            "alerts": [],
        }
        _fill_alert_labels(event, payload["custom_details"], alerts)
        return event

    def _summary(self, message: Message) -> str:
        try:
            text = self._renderer.render(SUMMARY_TEMPLATE, message)
        except jinja2.TemplateError as exc:
            # A broken team override must not stop the page: say so and use the plain title.
            log.warning(
                "template_failed",
                channel=self.name,
                template=SUMMARY_TEMPLATE,
                error=type(exc).__name__,  # not the text: it can quote incident data
            )
            text = message.title
        # Phone calls and SMS read the summary: one line.
        return truncate(_WHITESPACE.sub(" ", text).strip() or message.title, MAX_SUMMARY_CHARS)

    def _severity(self, message: Message) -> str:
        raw = message.severity or _text(message.payload.get("severity"))
        try:
            severity = Severity(raw)
        except ValueError:
            return FALLBACK_SEVERITY
        return self._config.severity_map.get(severity, FALLBACK_SEVERITY)

    def _post(self, body: bytes, now: datetime) -> Delivery:
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        try:
            with self._client.stream(
                "POST",
                self._config.url,
                content=body,
                headers=headers,
                timeout=self._timeout,
                follow_redirects=False,
            ) as response:
                excerpt = read_capped(response)
        except httpx.TransportError as exc:
            return classify_transport_error(exc)
        return _classify(response, excerpt, now=now, redact=(self._routing_key,))


def shared_label(alerts: Sequence[Mapping[str, Any]], names: Iterable[str]) -> str | None:
    """The value of the first of `names` that every alert carries with one same value.

    None when there are no alerts or no such label: a value only some alerts share would
    describe part of the incident as the whole.
    """
    if not alerts:
        return None
    for name in names:
        values = {_text(_labels(alert).get(name)) for alert in alerts}
        if len(values) == 1 and (value := values.pop()):
            return value
    return None


def truncate(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, ending in an ellipsis when it was cut."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _classify(
    response: httpx.Response, excerpt: bytes, *, now: datetime, redact: Sequence[Secret]
) -> Delivery:
    delivery = classify_response(response, now=now, body=excerpt, redact=redact)
    if response.status_code == 429 and delivery.retry_after is None:
        return dataclasses.replace(delivery, retry_after=DEFAULT_429_RETRY_AFTER)
    if delivery.outcome is Outcome.PERMANENT and (reason := _error_reason(excerpt, redact)):
        return dataclasses.replace(delivery, detail=f"HTTP {response.status_code}: {reason}")
    return delivery


def _error_reason(body: bytes, redact: Sequence[Secret]) -> str | None:
    """`"<message>: <error>; <error>"` from a PagerDuty error body, None if it is not one."""
    try:
        document = json.loads(body)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError alike
        return None
    if not isinstance(document, dict) or not isinstance(document.get("message"), str):
        return None
    reason = document["message"]
    errors = document.get("errors")
    if isinstance(errors, list) and (parts := [str(error) for error in errors]):
        reason = f"{reason}: {'; '.join(parts)}"
    # One printable line, capped, secrets masked: it goes to logs and the incident timeline.
    return body_excerpt(reason.encode(), redact=redact) or None


def _fill_alert_labels(
    event: dict[str, Any], details: dict[str, Any], alerts: Sequence[Mapping[str, Any]]
) -> None:
    """Add member alerts' label sets to `details["alerts"]` while the event stays small enough.

    Labels are the only unbounded part of the event (an incident may group thousands of
    alerts); the rest is capped or short. What does not fit is counted in `alerts_omitted`.
    """
    # Room for `,"alerts_omitted":<count>` should it be needed.
    budget = MAX_EVENT_BYTES - len(_encode(event)) - len(',"alerts_omitted":') - 20
    kept: list[dict[str, str]] = details["alerts"]
    for alert in alerts:
        labels = dict(_labels(alert))
        cost = len(_encode(labels)) + (1 if kept else 0)  # a comma between items
        if cost > budget:
            break
        kept.append(labels)
        budget -= cost
    if len(kept) < len(alerts):
        details["alerts_omitted"] = len(alerts) - len(kept)
    if len(_encode(event)) >= MAX_EVENT_BYTES:
        # Only reachable through an oversized summary template or link; keep the page small
        # enough to be accepted rather than lose it.
        details["alerts_omitted"] = len(alerts)
        kept.clear()


def _links(dedup_key: str, links: Mapping[str, str], runbook: str) -> list[dict[str, str]]:
    found = [
        (links.get("incident"), f"{dedup_key} in sevrouter"),
        (links.get("ack"), f"Acknowledge {dedup_key}"),
        (links.get("resolve"), f"Resolve {dedup_key}"),
        # Runbooks are free text in rules; only a URL makes a link.
        (runbook if runbook.startswith(("https://", "http://")) else None, "Runbook"),
    ]
    return [{"href": href, "text": text} for href, text in found if href]


def _alerts(incident: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    alerts = incident.get("alerts")
    if not isinstance(alerts, list):
        return []
    return [alert for alert in alerts if isinstance(alert, Mapping)]


def _labels(alert: Mapping[str, Any]) -> Mapping[str, Any]:
    labels = alert.get("labels")
    return labels if isinstance(labels, Mapping) else {}


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _encode(document: Mapping[str, Any]) -> bytes:
    # allow_nan=False: NaN is not JSON and PagerDuty would reject the whole event.
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def _validate(config: PagerDutyChannelConfig, routing_key: Secret) -> None:
    problems: list[str] = []
    try:
        url = httpx.URL(config.url)
    except httpx.InvalidURL:
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        problems.append(f"channel {config.name!r}: url must be an absolute http:// or https:// URL")
    if not config.timeout > 0:
        problems.append(f"channel {config.name!r}: timeout must be > 0 seconds")
    if not routing_key.reveal().strip():
        problems.append(f"channel {config.name!r}: routing_key is empty")
    if problems:
        raise ConfigError(problems)
