"""Opsgenie Alert API v2: one Opsgenie alert per incident, its alias the incident id.

Wire format (FORMATS.md 3.2), all JSON POSTs with `Authorization: GenieKey <key>`:

    trigger events     POST {url}/v2/alerts                    {message, alias, description,
                                                                responders, tags, details,
                                                                entity, source, priority}
    acknowledged       POST {url}/v2/alerts/{alias}/acknowledge?identifierType=alias
    mitigated/resolved POST {url}/v2/alerts/{alias}/close?identifierType=alias
    notify/reminder    POST {url}/v2/alerts/{alias}/notes?identifierType=alias
                       (the last three with {user, source, note})

Opsgenie de-duplicates creates on the alias while the alert is open (its count goes up), so a
re-trigger does not open a second alert. Answers: 202 delivered, 429 and 5xx retried, any other
4xx permanent with Opsgenie's `message` quoted.
"""

from __future__ import annotations

import dataclasses
import json
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

import httpx
import jinja2
import structlog

from router.channelschema import OpsgenieChannelConfig
from router.errors import ConfigError
from router.notify._http import USER_AGENT, read_capped
from router.notify.base import (
    TRIGGER_EVENTS,
    Delivery,
    Message,
    Outcome,
    body_excerpt,
    classify_response,
    classify_transport_error,
)
from router.notify.pagerduty import shared_label, truncate
from router.notify.render import Renderer
from router.secrets import Secret
from router.severity import Severity

log = structlog.get_logger(__name__)

MESSAGE_TEMPLATE: Final = "opsgenie.message.j2"
DESCRIPTION_TEMPLATE: Final = "opsgenie.description.j2"
SOURCE: Final = "sevrouter"
# Field limits of the Alert API: longer values are rejected (422) or cut by Opsgenie.
MAX_MESSAGE_CHARS: Final = 130
MAX_DESCRIPTION_CHARS: Final = 15_000
MAX_NOTE_CHARS: Final = 25_000
MAX_ENTITY_CHARS: Final = 512
MAX_TAG_CHARS: Final = 50
# `details` may hold 8000 characters in all; a dozen short values stay far below that.
MAX_DETAIL_CHARS: Final = 512
# Opsgenie's own default when a create names none.
FALLBACK_PRIORITY: Final = "P3"
# The label naming what broke, for `entity` ("the domain the alert is related to").
ENTITY_LABELS: Final = ("service", "app", "component")

# Actions on an existing alert, by event; the alert is addressed by its alias.
_ACTIONS: Final[Mapping[str, str]] = {
    "incident.acknowledged": "acknowledge",
    "incident.mitigated": "close",
    "incident.resolved": "close",
    "incident.notify": "notes",
    "incident.reminder": "notes",
}
_HEADER_VALUE = re.compile(r"[\x21-\x7e]+")
_WHITESPACE = re.compile(r"\s+")


class OpsgenieChannel:
    """Sends each `Message` as one Alert API request. Satisfies `router.notify.base.Channel`.

    Trigger events create (or, through the alias, de-duplicate into) the incident's alert,
    addressed to the configured `responders` plus `message.recipient` as a user when a person
    is paged. Acknowledged acknowledges it, `RESOLVE_EVENTS` close it, notify and reminder add
    a note. `message.incident` (or the payload's `id`) is the alias.

    `api_key` never appears in `repr`, `Delivery.detail` (echoes are masked) or logs. Redirects
    are never followed. An unusable URL, timeout or API key raises `ConfigError` here.
    """

    kind: Final = "opsgenie"

    def __init__(
        self,
        config: OpsgenieChannelConfig,
        *,
        api_key: Secret,
        client: httpx.Client,
        renderer: Renderer,
    ) -> None:
        _validate(config, api_key)
        self.name = config.name
        self._config = config
        self._base_url = config.url.rstrip("/")
        self._api_key = api_key
        self._client = client
        self._renderer = renderer
        self._timeout = httpx.Timeout(config.timeout)

    def __repr__(self) -> str:
        return f"OpsgenieChannel(name={self.name!r}, url={self._config.url!r})"

    def send(self, message: Message, *, now: datetime) -> Delivery:
        """Make one attempt for `message`; never raises for delivery failures.

        `now` (timezone-aware) is the reference for an HTTP-date Retry-After. Returns PERMANENT
        without sending when the message names no incident (no alias to address the alert by)
        or its event is not one of `EVENTS`.
        """
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        alias = message.incident or _text(message.payload.get("id"))
        if not alias:
            return Delivery(Outcome.PERMANENT, "message has no incident id to use as alias")
        if message.event in TRIGGER_EVENTS:
            return self._post(f"{self._base_url}/v2/alerts", self._create(message, alias), now)
        action = _ACTIONS.get(message.event)
        if action is None:
            return Delivery(Outcome.PERMANENT, f"Opsgenie has no action for {message.event}")
        # The alias is ours, but "/" or "?" in it would address another resource.
        path = f"/v2/alerts/{urllib.parse.quote(alias, safe='')}/{action}"
        body = {"user": SOURCE, "source": SOURCE, "note": truncate(message.text, MAX_NOTE_CHARS)}
        return self._post(self._base_url + path, body, now, params={"identifierType": "alias"})

    def _create(self, message: Message, alias: str) -> dict[str, Any]:
        incident = message.payload
        severity = message.severity or _text(incident.get("severity"))
        team = _text(incident.get("team"))
        body: dict[str, Any] = {
            "message": truncate(
                _one_line(self._render(MESSAGE_TEMPLATE, message)), MAX_MESSAGE_CHARS
            ),
            "alias": alias,
            "description": truncate(
                self._render(DESCRIPTION_TEMPLATE, message).strip(), MAX_DESCRIPTION_CHARS
            ),
            "responders": self._responders(message.recipient),
            "tags": [truncate(tag, MAX_TAG_CHARS) for tag in (severity, team) if tag],
            "details": _details(alias, severity, incident, message.links),
            "source": SOURCE,
            "priority": self._priority(severity),
        }
        entity = shared_label(_alerts(incident), ENTITY_LABELS) or team
        if entity:
            body["entity"] = truncate(entity, MAX_ENTITY_CHARS)
        return body

    def _responders(self, recipient: str | None) -> list[dict[str, str]]:
        responders = [_responder(r.type, r.name) for r in self._config.responders]
        person = _responder("user", recipient) if recipient else None
        if person is not None and person not in responders:
            responders.append(person)
        return responders

    def _priority(self, severity: str) -> str:
        try:
            return self._config.priority_map.get(Severity(severity), FALLBACK_PRIORITY)
        except ValueError:
            return FALLBACK_PRIORITY

    def _render(self, template: str, message: Message) -> str:
        try:
            return self._renderer.render(template, message)
        except jinja2.TemplateError as exc:
            # A broken team override must not stop the page: say so and use the plain texts.
            log.warning(
                "template_failed",
                channel=self.name,
                template=template,
                error=type(exc).__name__,  # not the text: it can quote incident data
            )
            return message.title if template == MESSAGE_TEMPLATE else message.text

    def _post(
        self,
        url: str,
        document: Mapping[str, Any],
        now: datetime,
        params: Mapping[str, str] | None = None,
    ) -> Delivery:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Authorization": f"GenieKey {self._api_key.reveal()}",
        }
        body = json.dumps(
            document, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode()
        try:
            with self._client.stream(
                "POST",
                url,
                params=params,
                content=body,
                headers=headers,
                timeout=self._timeout,
                follow_redirects=False,
            ) as response:
                excerpt = read_capped(response)
        except httpx.TransportError as exc:
            return classify_transport_error(exc)
        # 202 means "accepted for processing", not "done": the answer's requestId could be
        # polled at GET /v2/alerts/requests/{requestId} for the real outcome (an acknowledge of
        # an alias that matches no open alert fails only there). We do not poll: it would hold
        # the worker, and the page's retries could not fix a failure it found anyway.
        delivery = classify_response(response, now=now, body=excerpt, redact=(self._api_key,))
        if delivery.outcome is Outcome.PERMANENT and (
            reason := _error_reason(excerpt, (self._api_key,))
        ):
            return dataclasses.replace(delivery, detail=f"HTTP {response.status_code}: {reason}")
        return delivery


def _responder(kind: str, name: str) -> dict[str, str]:
    # Users are addressed by username (their login email); the others by name.
    return {"username": name, "type": kind} if kind == "user" else {"name": name, "type": kind}


def _details(
    alias: str, severity: str, incident: Mapping[str, Any], links: Mapping[str, str]
) -> dict[str, str]:
    """The alert's custom properties: a string-to-string map, as the API requires."""
    details = {
        "incident": alias,
        "severity": severity,
        "state": _text(incident.get("state")),
        "team": _text(incident.get("team")),
        "rule": _text(incident.get("rule")),
        "alerts_firing": str(incident.get("alerts_firing", 0)),
        "opened_at": _text(incident.get("opened_at")),
        "runbook": _text(incident.get("runbook")),
        "incident_url": links.get("incident", ""),
    }
    return {key: truncate(value, MAX_DETAIL_CHARS) for key, value in details.items() if value}


def _error_reason(body: bytes, redact: Sequence[Secret]) -> str | None:
    """`"<message> (<field>: <error>, ...)"` from an Opsgenie error body, None if not one.

    Opsgenie answers errors with `{"message": ..., "took": ..., "requestId": ...}`, 422s adding
    `errors`, a map from field to problem.
    """
    try:
        document = json.loads(body)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError alike
        return None
    if not isinstance(document, dict) or not isinstance(document.get("message"), str):
        return None
    reason = document["message"]
    errors = document.get("errors")
    if isinstance(errors, dict) and errors:
        reason += " (" + ", ".join(f"{field}: {error}" for field, error in errors.items()) + ")"
    # One printable line, capped, secrets masked: it goes to logs and the incident timeline.
    return body_excerpt(reason.encode(), redact=redact) or None


def _one_line(text: str) -> str:
    return _WHITESPACE.sub(" ", text).strip()


def _alerts(incident: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    alerts = incident.get("alerts")
    if not isinstance(alerts, list):
        return []
    return [alert for alert in alerts if isinstance(alert, Mapping)]


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _validate(config: OpsgenieChannelConfig, api_key: Secret) -> None:
    problems: list[str] = []
    try:
        url = httpx.URL(config.url)
    except httpx.InvalidURL:
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        problems.append(f"channel {config.name!r}: url must be an absolute http:// or https:// URL")
    elif url.query or url.fragment:
        problems.append(f"channel {config.name!r}: url must be the API's base URL, no query")
    if not config.timeout > 0:
        problems.append(f"channel {config.name!r}: timeout must be > 0 seconds")
    # It goes into a header: CR/LF would split the request, and httpx refuses non-ASCII.
    if not _HEADER_VALUE.fullmatch(api_key.reveal()):
        problems.append(f"channel {config.name!r}: api_key must be non-empty visible ASCII")
    if problems:
        raise ConfigError(problems)
