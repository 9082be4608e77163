"""`POST /api/v1/drill`: a clearly marked test incident for a team, through the whole pipeline
(dedupe, incident, escalation, real channels), to prove the paging path works before 3 a.m.
proves it for you. Acknowledge it (one-click link or CLI) to complete the drill."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from router.access import person_for_token
from router.alert import Alert, AlertStatus, Source, fingerprint
from router.bodies import BodyError, decode_json, read_request_body
from router.dedupe import Receipt, Routed, summarize
from router.ruleset import Decision
from router.severity import Severity

DRILL_ALERTNAME = "DRILL-paging-test"


async def drill(request: Request) -> Response:
    services = request.app.state.services
    person = person_for_token(
        services.settings.api_tokens, request.headers.get("authorization", "")
    )
    if person is None:
        return JSONResponse({"error": "missing or invalid API token"}, status_code=401)
    try:
        body = decode_json(await read_request_body(request))
    except BodyError as exc:
        return JSONResponse(exc.body, status_code=exc.status)
    team = body.get("team") if isinstance(body, dict) else None
    if not isinstance(team, str) or services.ruleset.team(team) is None:
        return JSONResponse(
            {"error": f"no team {team!r} in the rules", "field": "team"}, status_code=400
        )
    try:
        severity = Severity(str(body.get("severity", "SEV2")).upper())
    except ValueError:
        return JSONResponse(
            {"error": "severity must be SEV1..SEV4", "field": "severity"}, status_code=400
        )
    now = time.time()
    drill_id = secrets.token_hex(4)
    labels = {
        "alertname": DRILL_ALERTNAME,
        "team": team,
        "drill": drill_id,
        "sevrouter_drill": "true",
    }
    alert = Alert(
        source=Source.ALERTMANAGER,
        integration="drill",
        status=AlertStatus.FIRING,
        labels=labels,
        annotations={
            "summary": f"DRILL started by {person}: a test of team {team}'s paging path. "
            "Acknowledge it to complete the drill; nothing is broken."
        },
        starts_at=datetime.fromtimestamp(now, UTC),
        ends_at=None,
        fingerprint=fingerprint(labels),
    )
    decision = Decision("drill", severity, team, f'drill:{{drill="{drill_id}"}}')
    policy = services.ruleset.config.incidents
    try:
        results = await services.deduper.ingest(
            [Routed(alert, decision)],
            now_ms=int(now * 1000),
            flap_window_s=policy.flap_window,
            ttl_s=policy.retention,
        )
    except RedisError:
        return JSONResponse({"error": "storage unavailable, retry later"}, status_code=503)
    receipt = summarize(Receipt(alerts=1), results)
    return JSONResponse(
        {
            "drill": drill_id,
            "team": team,
            "severity": severity.value,
            "incident": receipt.opened[0] if receipt.opened else None,
        },
        status_code=202,
    )


routes = [Route("/api/v1/drill", drill, methods=["POST"])]
