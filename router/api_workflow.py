"""Workflow endpoints: roles, status updates, severity changes, postmortems, action items.

All writes need an API token (the token's person is the actor on the timeline) and answer 400
with the offending field for bad input. Reads of the postmortem are Markdown, ready to commit.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

from redis.exceptions import RedisError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from router import postmortem
from router.access import person_for_token
from router.bodies import BodyError, decode_json, read_request_body
from router.comms import ActionItem, IncidentView, Role, StatusUpdate, UpdateStatus
from router.durations import parse_duration
from router.keys import text
from router.lifecycle import Lifecycle, Result
from router.severity import Severity
from router.workflow_store import WorkflowStore, action_json, update_json

_STATUS = {Result.CHANGED: 200, Result.UNCHANGED: 200, Result.REFUSED: 409, Result.MISSING: 404}


class BadInputError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


async def _json_body(request: Request) -> dict[str, Any]:
    raw = await read_request_body(request)
    if not raw.strip():
        # No body at all: POST .../actions/{n}/done needs none; elsewhere the first required
        # field is reported missing, which says more than "not JSON".
        return {}
    body = decode_json(raw)
    if not isinstance(body, dict):
        raise BadInputError("", "body must be a JSON object")
    return body


def _string(body: dict[str, Any], field: str, *, required: bool = True) -> str:
    value = body.get(field)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise BadInputError(field, f"{field} must be a non-empty string")
    return value.strip()


def _strings(body: dict[str, Any], field: str) -> tuple[str, ...]:
    value = body.get(field, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadInputError(field, f"{field} must be a list of strings")
    return tuple(v.strip() for v in value if v.strip())


def _actor(request: Request) -> str | None:
    tokens = request.app.state.services.settings.api_tokens
    return person_for_token(tokens, request.headers.get("authorization", ""))


def _unauthorized() -> JSONResponse:
    return JSONResponse(
        {"error": "missing or invalid API token (Authorization: Bearer <token>)"},
        status_code=401,
        headers={"WWW-Authenticate": "Bearer"},
    )


def _fields(request: Request, incident: str) -> dict[str, str]:
    redis = request.app.state.services.sync_redis
    raw = redis.hgetall(request.app.state.services.keys.incident(incident))
    return {text(k): text(v) for k, v in raw.items()}


def _workflow(request: Request) -> WorkflowStore:
    services = request.app.state.services
    return WorkflowStore(services.sync_redis, services.keys)


async def _write(request: Request, handler: Any) -> Response:
    actor = _actor(request)
    if actor is None:
        return _unauthorized()
    incident = request.path_params["incident_id"].upper()
    try:
        body = await _json_body(request) if request.method == "POST" else {}
        return await run_in_threadpool(handler, request, incident, actor, body)
    except BadInputError as exc:
        return _error(400, str(exc), field=exc.field)
    except BodyError as exc:
        return JSONResponse(exc.body, status_code=exc.status)
    except RedisError:
        return _error(503, "storage unavailable, retry later")


def _now_ms() -> int:
    return int(time.time() * 1000)


def _assign(request: Request, incident: str, actor: str, body: dict[str, Any]) -> Response:
    if not _fields(request, incident):
        return _error(404, f"no incident {incident!r}")
    raw_role = _string(body, "role")
    try:
        role = Role(raw_role.lower().replace(" ", "_").replace("incident_", ""))
    except ValueError:
        choices = ", ".join(r.value for r in Role)
        raise BadInputError("role", f"role must be one of {choices}") from None
    person = _string(body, "person")
    previous = _workflow(request).assign(incident, role, person, actor, _now_ms())
    return JSONResponse(
        {"incident": incident, "role": role.value, "person": person, "previous": previous}
    )


def _update(request: Request, incident: str, actor: str, body: dict[str, Any]) -> Response:
    fields = _fields(request, incident)
    if not fields:
        return _error(404, f"no incident {incident!r}")
    try:
        status = UpdateStatus(_string(body, "status").lower())
    except ValueError:
        choices = "investigating, mitigating or resolved"
        raise BadInputError("status", f"status must be {choices}") from None
    now = datetime.now(UTC)
    next_update = _next_update(request, body, fields, status, now)
    update = StatusUpdate(
        now, status, actor, _strings(body, "facts"), _strings(body, "actions"), next_update
    )
    number = _workflow(request).post_update(incident, update, _now_ms())
    return JSONResponse(
        {"incident": incident, "number": number, "update": update_json(update)}, status_code=201
    )


def _next_update(
    request: Request,
    body: dict[str, Any],
    fields: dict[str, str],
    status: UpdateStatus,
    now: datetime,
) -> datetime | None:
    """Every update names its next one: given as a duration or time, else the SEV's cadence."""
    raw = body.get("next_update")
    if raw is None:
        if status is UpdateStatus.RESOLVED:
            return None
        cadence = request.app.state.services.ruleset.policy(
            Severity(fields["severity"])
        ).update_every
        return now + timedelta(seconds=cadence or 3600)
    if not isinstance(raw, str):
        raise BadInputError("next_update", "next_update must be a duration (30m) or an ISO time")
    try:
        seconds = parse_duration(raw)
    except ValueError:
        pass
    else:
        if seconds <= 0:
            raise BadInputError("next_update", "next_update must be in the future")
        return now + timedelta(seconds=seconds)
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise BadInputError(
            "next_update", "next_update must be a duration (30m) or an ISO time"
        ) from None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    if moment <= now:
        raise BadInputError("next_update", "next_update must be in the future")
    return moment


def _severity(request: Request, incident: str, actor: str, body: dict[str, Any]) -> Response:
    try:
        severity = Severity(_string(body, "severity").upper())
    except ValueError:
        raise BadInputError("severity", "severity must be one of SEV1, SEV2, SEV3, SEV4") from None
    reason = _string(body, "reason")
    lifecycle: Lifecycle = request.app.state.services.lifecycle
    transition = lifecycle.set_severity(incident, severity.value, actor, reason, now_ms=_now_ms())
    if transition.result is Result.MISSING:
        return _error(404, f"no incident {incident!r}")
    message = (
        f"cannot change the severity of {incident}: it is {transition.state}"
        if transition.result is Result.REFUSED
        else f"{incident} is {severity.value}"
    )
    return JSONResponse(
        {
            "incident": incident,
            "severity": severity.value,
            "result": transition.result.value,
            "message": message,
        },
        status_code=_STATUS[transition.result],
    )


def _add_action(request: Request, incident: str, actor: str, body: dict[str, Any]) -> Response:
    if not _fields(request, incident):
        return _error(404, f"no incident {incident!r}")
    due_raw = _string(body, "due", required=False)
    try:
        due = date.fromisoformat(due_raw) if due_raw else None
    except ValueError:
        raise BadInputError("due", "due must be a date, YYYY-MM-DD") from None
    item = ActionItem(_string(body, "text"), _string(body, "owner", required=False), due)
    number = _workflow(request).add_action(incident, item, actor, _now_ms())
    return JSONResponse(action_json(item, number), status_code=201)


def _complete_action(request: Request, incident: str, actor: str, body: dict[str, Any]) -> Response:
    number = int(request.path_params["number"])
    done = _workflow(request).complete_action(incident, number, actor, _now_ms())
    if done is None:
        return _error(404, f"{incident} has no action item #{number}")
    return JSONResponse(action_json(done, number))


async def assign_role(request: Request) -> Response:
    return await _write(request, _assign)


async def post_update(request: Request) -> Response:
    return await _write(request, _update)


async def change_severity(request: Request) -> Response:
    return await _write(request, _severity)


async def actions(request: Request) -> Response:
    if request.method == "POST":
        return await _write(request, _add_action)
    incident = request.path_params["incident_id"].upper()

    def read() -> list[ActionItem] | None:
        # An unknown incident is a 404, like every other read; not an empty list.
        return _workflow(request).actions(incident) if _fields(request, incident) else None

    try:
        items = await run_in_threadpool(read)
    except RedisError:
        return _error(503, "storage unavailable, retry later")
    if items is None:
        return _error(404, f"no incident {incident!r}")
    return JSONResponse(
        {"incident": incident, "actions": [action_json(a, n) for n, a in enumerate(items, 1)]}
    )


async def complete_action(request: Request) -> Response:
    return await _write(request, _complete_action)


async def get_postmortem(request: Request) -> Response:
    incident_id = request.path_params["incident_id"].upper()
    services = request.app.state.services

    def render() -> str | None:
        incident = services.store.get(incident_id)
        if incident is None:
            return None
        store = _workflow(request)
        view = IncidentView.from_incident(
            incident,
            _fields(request, incident_id),
            roles={role.value: person for role, person in store.roles(incident_id).items()},
            updates=tuple(store.updates(incident_id)),
            actions=tuple(store.actions(incident_id)),
        )
        return postmortem.render_postmortem(view, now=datetime.now(UTC))

    try:
        markdown = await run_in_threadpool(render)
    except RedisError:
        return _error(503, "storage unavailable, retry later")
    if markdown is None:
        return _error(404, f"no incident {incident_id!r}")
    return PlainTextResponse(markdown, media_type="text/markdown; charset=utf-8")


routes = [
    Route("/api/v1/incidents/{incident_id}/roles", assign_role, methods=["POST"]),
    Route("/api/v1/incidents/{incident_id}/updates", post_update, methods=["POST"]),
    Route("/api/v1/incidents/{incident_id}/severity", change_severity, methods=["POST"]),
    Route("/api/v1/incidents/{incident_id}/postmortem", get_postmortem, methods=["GET"]),
    Route("/api/v1/incidents/{incident_id}/actions", actions, methods=["GET", "POST"]),
    Route(
        "/api/v1/incidents/{incident_id}/actions/{number:int}/done",
        complete_action,
        methods=["POST"],
    ),
]
