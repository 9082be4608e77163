"""Silence endpoints (see `router.silences`).

    POST   /api/v1/silences        create; 201 with the silence and its Location
    GET    /api/v1/silences        pending and active silences; ?expired=true adds those that
                                   ended within the retention
    GET    /api/v1/silences/{id}   one silence, whatever its state
    DELETE /api/v1/silences/{id}   expire it now; 200 with the silence (unchanged if it had
                                   already ended)

The POST body::

    {"matchers": "alertname=\\"DiskFull\\",cluster=~\\"eu.*\\"",   (or a list of such strings)
     "starts_at": "2026-11-26T14:00Z",      optional, default now; without an offset, UTC
     "ends_at": "2026-11-26T16:00Z",        or "duration": "2h" (from the start), not both
     "comment": "disk swap on db-1",
     "expire_on_resolve": false}            optional: expire once an alert it silenced resolves

Writes need `Authorization: Bearer <token>`; the token's person is the silence's `created_by`.
Reads are open, like the incident reads. Bad input answers 400 with `field` naming the input.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from redis.exceptions import RedisError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from router.access import person_for_token
from router.bodies import BodyError, decode_json, read_request_body
from router.durations import format_duration, parse_duration
from router.matchers import Matcher, MatcherError, parse_matchers
from router.silences import MAX_DURATION, Silence, SilenceError, SilenceStore

log = structlog.get_logger(__name__)

_BODY_FIELDS = ("matchers", "starts_at", "ends_at", "duration", "comment", "expire_on_resolve")
_MATCHERS_HELP = 'a string such as alertname="X",cluster=~"eu.*" or a list of such strings'


def silence_json(silence: Silence, now: datetime) -> dict[str, Any]:
    """A silence as the API shows it; `state` is pending, active or expired at `now`."""
    return {
        "id": silence.id,
        "state": silence.state(now).value,
        "matchers": [str(m) for m in silence.matchers],
        "starts_at": silence.starts_at.isoformat(),
        "ends_at": silence.ends_at.isoformat(),
        "created_by": silence.created_by,
        "comment": silence.comment,
        "expire_on_resolve": silence.expire_on_resolve,
        "created_at": silence.created_at.isoformat(),
    }


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


def _unauthorized() -> JSONResponse:
    return JSONResponse(
        {"error": "missing or invalid API token (Authorization: Bearer <token>)"},
        status_code=401,
        headers={"WWW-Authenticate": "Bearer"},
    )


def _store(request: Request) -> SilenceStore:
    services = request.app.state.services
    return SilenceStore(services.sync_redis, services.keys)


def _matchers(value: object) -> list[Matcher]:
    if value is None:
        raise SilenceError("matchers", f"matchers is required: {_MATCHERS_HELP}")
    if isinstance(value, str):
        try:
            return parse_matchers(value)
        except MatcherError as exc:
            raise SilenceError("matchers", f"matchers: {exc.message}") from None
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        parsed: list[Matcher] = []
        for index, item in enumerate(value):
            try:
                parsed.extend(parse_matchers(item))
            except MatcherError as exc:
                raise SilenceError("matchers", f"matchers[{index}]: {exc.message}") from None
        return parsed
    raise SilenceError("matchers", f"matchers must be {_MATCHERS_HELP}")


def _moment(value: object, field: str) -> datetime:
    problem = f"{field} must be an ISO time such as 2026-11-26T14:30Z (without an offset, UTC)"
    if not isinstance(value, str):
        raise SilenceError(field, problem)
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise SilenceError(field, problem) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _create(request: Request, actor: str, body: dict[str, Any], now: datetime) -> Silence:
    unknown = sorted(set(body) - set(_BODY_FIELDS))
    if unknown:
        raise SilenceError(
            unknown[0], f"unknown field {unknown[0]!r}; fields: {', '.join(_BODY_FIELDS)}"
        )
    matchers = _matchers(body.get("matchers"))
    starts_at = now if body.get("starts_at") is None else _moment(body["starts_at"], "starts_at")
    raw_ends, raw_duration = body.get("ends_at"), body.get("duration")
    if raw_ends is not None and raw_duration is not None:
        raise SilenceError("duration", "give either ends_at or duration, not both")
    if raw_duration is not None:
        if not isinstance(raw_duration, str):
            raise SilenceError("duration", "duration must be a string such as 2h or 1h30m")
        try:
            seconds = parse_duration(raw_duration)
        except ValueError as exc:
            raise SilenceError("duration", str(exc)) from None
        if seconds > MAX_DURATION.total_seconds():
            # Refused here: a huge duration would overflow the datetime arithmetic below.
            raise SilenceError(
                "duration",
                f"a silence may last at most {format_duration(MAX_DURATION.total_seconds())}, "
                f"this one would last {format_duration(seconds)}",
            )
        # From the effective start: a start in the past is now (as the store records it).
        ends_at = max(starts_at, now) + timedelta(seconds=seconds)
    elif raw_ends is not None:
        ends_at = _moment(raw_ends, "ends_at")
    else:
        raise SilenceError("ends_at", "ends_at (an ISO time) or duration (such as 2h) is required")
    comment = body.get("comment")
    if not isinstance(comment, str):
        raise SilenceError("comment", "comment must be a non-empty string (why the silence?)")
    expire_on_resolve = body.get("expire_on_resolve", False)
    if not isinstance(expire_on_resolve, bool):
        raise SilenceError("expire_on_resolve", "expire_on_resolve must be true or false")
    return _store(request).create(
        matchers,
        starts_at=starts_at,
        ends_at=ends_at,
        created_by=actor,
        comment=comment,
        now=now,
        expire_on_resolve=expire_on_resolve,
    )
    return silence


async def create_silence(request: Request) -> Response:
    actor = person_for_token(
        request.app.state.services.settings.api_tokens, request.headers.get("authorization", "")
    )
    if actor is None:
        return _unauthorized()
    try:
        body = decode_json(await read_request_body(request))
    except BodyError as exc:
        return JSONResponse(exc.body, status_code=exc.status)
    if not isinstance(body, dict):
        return _error(400, "body must be a JSON object", field="")
    now = datetime.now(UTC)
    try:
        created = await run_in_threadpool(_create, request, actor, body, now)
        request.app.state.services.silence_cache.invalidate()  # in force here at once
    except SilenceError as exc:
        # The store says "ends_at" about the end; the caller may have given it as a duration.
        field = "duration" if exc.field == "ends_at" and "duration" in body else exc.field
        return _error(400, exc.message, field=field)
    except RedisError:
        return _error(503, "storage unavailable, retry later")
    log.info(
        "silence_created",
        silence=created.id,
        by=actor,
        matchers=created.matchers_text(),
        ends_at=created.ends_at.isoformat(),
    )
    return JSONResponse(
        silence_json(created, now),
        status_code=201,
        headers={"Location": f"/api/v1/silences/{created.id}"},
    )


async def list_silences(request: Request) -> Response:
    query = request.query_params
    unknown = sorted(set(query) - {"expired"})
    if unknown:
        return _error(400, f"unknown query parameter {unknown[0]!r}", field=unknown[0])
    expired = query.get("expired", "false").lower()
    if expired not in ("true", "false"):
        return _error(400, "expired must be true or false", field="expired")
    now = datetime.now(UTC)
    store = _store(request)
    try:
        silences = await run_in_threadpool(store.list, now, include_expired=expired == "true")
    except RedisError:
        return _error(503, "storage unavailable, retry later")
    return JSONResponse({"silences": [silence_json(s, now) for s in silences]})


async def get_silence(request: Request) -> Response:
    silence_id = request.path_params["silence_id"]
    try:
        silence = await run_in_threadpool(_store(request).get, silence_id)
    except RedisError:
        return _error(503, "storage unavailable, retry later")
    if silence is None:
        return _error(404, f"no silence {silence_id!r}")
    return JSONResponse(silence_json(silence, datetime.now(UTC)))


async def expire_silence(request: Request) -> Response:
    actor = person_for_token(
        request.app.state.services.settings.api_tokens, request.headers.get("authorization", "")
    )
    if actor is None:
        return _unauthorized()
    silence_id = request.path_params["silence_id"]
    now = datetime.now(UTC)
    try:
        silence = await run_in_threadpool(_store(request).expire, silence_id, now)
        request.app.state.services.silence_cache.invalidate()
    except RedisError:
        return _error(503, "storage unavailable, retry later")
    if silence is None:
        return _error(404, f"no silence {silence_id!r}")
    log.info("silence_expired", silence=silence_id, by=actor)
    return JSONResponse(silence_json(silence, now))


async def silences(request: Request) -> Response:
    if request.method == "POST":
        return await create_silence(request)
    return await list_silences(request)


async def silence(request: Request) -> Response:
    if request.method == "DELETE":
        return await expire_silence(request)
    return await get_silence(request)


routes = [
    Route("/api/v1/silences", silences, methods=["GET", "POST"]),
    Route("/api/v1/silences/{silence_id}", silence, methods=["GET", "DELETE"]),
]
