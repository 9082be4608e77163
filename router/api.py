"""Read endpoints for incidents: `GET /api/v1/incidents` and `GET /api/v1/incidents/{id}`."""

from __future__ import annotations

from typing import Any

from redis.exceptions import RedisError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from router.incidents import IncidentState, IncidentStore
from router.severity import Severity

MAX_LIMIT = 500


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


def _store(request: Request) -> IncidentStore:
    store: IncidentStore = request.app.state.services.store
    return store


async def list_incidents(request: Request) -> Response:
    query = request.query_params
    unknown = sorted(set(query) - {"state", "severity", "team", "limit"})
    if unknown:
        return _error(400, f"unknown query parameter {unknown[0]!r}", field=unknown[0])
    try:
        state = IncidentState(query["state"]) if "state" in query else None
    except ValueError:
        choices = ", ".join(s.value for s in IncidentState)
        return _error(400, f"state must be one of {choices}", field="state")
    try:
        severity = Severity(query["severity"].upper()) if "severity" in query else None
    except ValueError:
        return _error(400, "severity must be one of SEV1, SEV2, SEV3, SEV4", field="severity")
    raw_limit = query.get("limit", "50")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIMIT:
        return _error(400, f"limit must be a whole number from 1 to {MAX_LIMIT}", field="limit")
    try:
        incidents = await run_in_threadpool(
            _store(request).list,
            state=state,
            severity=severity,
            team=query.get("team"),
            limit=int(raw_limit),
        )
    except RedisError:
        return _error(503, "storage unavailable, retry later")
    return JSONResponse({"incidents": [i.summary_json() for i in incidents]})


async def get_incident(request: Request) -> Response:
    incident_id = request.path_params["incident_id"].upper()
    try:
        incident = await run_in_threadpool(_store(request).get, incident_id)
    except RedisError:
        return _error(503, "storage unavailable, retry later")
    if incident is None:
        return _error(404, f"no incident {incident_id!r}")
    return JSONResponse(incident.to_json())


routes = [
    Route("/api/v1/incidents", list_incidents),
    Route("/api/v1/incidents/{incident_id}", get_incident),
]
