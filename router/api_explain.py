"""`POST /api/v1/explain`: the `explain` report (see `router.explain`) for labels or a webhook
body, with the receiver's current rules.

The body::

    {"labels": {"alertname": "DiskFull", "severity": "critical"}}
    {"payload": <an Alertmanager or Grafana webhook body>,
     "integration": "alertmanager"}     optional: an integration of the rules, or a format
                                        (alertmanager, grafana); default alertmanager
    "at": "2026-11-26T10:00Z"           optional with either, default now; without an offset, UTC

Answers 200 with the report, 400 with `field` naming the bad input. Nothing is stored or sent,
so the endpoint is open, like the incident reads.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from router.alert import Alert
from router.bodies import BodyError, decode_json, read_request_body
from router.errors import PayloadError
from router.explain import (
    alert_from_labels,
    explain,
    integration_choices,
    parse_at,
    source_kind,
)
from router.ruleset import Ruleset
from router.sources import parse

_FIELDS = ("labels", "payload", "integration", "at")


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


async def explain_endpoint(request: Request) -> Response:
    services = request.app.state.services
    # Read once: a reload during the request does not mix two rule sets.
    ruleset: Ruleset = services.ruleset
    try:
        body = decode_json(await read_request_body(request))
    except BodyError as exc:
        return JSONResponse(exc.body, status_code=exc.status)
    if not isinstance(body, dict):
        return _error(400, 'body must be a JSON object: {"labels": {...}} or {"payload": ...}')
    try:
        at, alerts = _alerts(ruleset, body, datetime.now(UTC))
    except PayloadError as exc:
        return _error(400, exc.message, field=exc.field)
    report = await run_in_threadpool(explain, ruleset, alerts, at)
    # What only this receiver knows: the silences in force, and whether an inhibition's source
    # fires right now.
    services = request.app.state.services
    # Read for `at` itself (any time the caller chose), not through the webhooks' copy.
    silences = await services.silences.unexpired_async(services.redis, at)
    for alert, entry in zip(alerts, report["alerts"], strict=True):
        entry["silences"] = [s.id for s in silences if s.is_active(at) and s.matches(alert.labels)]
        for inhibition in entry["inhibitions"]:
            rule = next(r for r in ruleset.inhibit if r.name == inhibition["rule"])
            key = f"{services.keys.prefix}:inhibit:{rule.token(alert.labels)}"
            inhibition["active"] = bool(await services.redis.scard(key))
    return JSONResponse(report)


def _alerts(ruleset: Ruleset, body: dict[str, Any], now: datetime) -> tuple[datetime, list[Alert]]:
    unknown = sorted(set(body) - set(_FIELDS))
    if unknown:
        raise PayloadError(
            f"unknown field {unknown[0]!r}; fields: {', '.join(_FIELDS)}", unknown[0]
        )
    if ("labels" in body) == ("payload" in body):
        raise PayloadError("give either labels or payload", "labels")
    at = now
    if "at" in body:
        if not isinstance(body["at"], str):
            raise PayloadError("at must be an ISO time string", "at")
        try:
            at = parse_at(body["at"])
        except ValueError as exc:
            raise PayloadError(str(exc), "at") from None
    if "labels" in body:
        if "integration" in body:
            raise PayloadError("integration goes with payload", "integration")
        return at, [alert_from_labels(_labels(body["labels"]), at)]
    integration = body.get("integration", "alertmanager")
    kind = source_kind(ruleset, integration) if isinstance(integration, str) else None
    if kind is None:
        raise PayloadError(
            f"integration must be one of {integration_choices(ruleset)}", "integration"
        )
    try:
        alerts = parse(kind, msgspec.json.encode(body["payload"]), integration=integration, now=at)
    except PayloadError as exc:
        field = f"payload.{exc.field}" if exc.field else "payload"
        raise PayloadError(f"not a valid {kind} payload: {exc.message}", field) from None
    return at, alerts


def _labels(labels: object) -> dict[str, str]:
    if not isinstance(labels, dict) or not labels:
        raise PayloadError("labels must be an object of label names to values", "labels")
    for name, value in labels.items():
        if not isinstance(value, str):
            raise PayloadError(f"label {name!r} must be a string", f"labels.{name}")
    return labels


routes = [Route("/api/v1/explain", explain_endpoint, methods=["POST"])]
