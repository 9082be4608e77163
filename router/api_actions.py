"""Write endpoints: people acknowledging, mitigating, resolving, reopening and closing incidents.

- `POST /api/v1/incidents/{id}/{action}` with `Authorization: Bearer <token>`; the token says
  who acts. Answers 200 with the new state, 409 when the action does not apply to the state.
- `GET /act/{action}?...&sig=...` shows a confirmation page for a signed one-click link from a
  page, and `POST` to the same URL acts. The GET never changes anything: chat apps and mail
  scanners fetch links to preview them, and must not acknowledge incidents by doing so.
- `POST /api/v1/pagerduty/webhook` takes acknowledge/resolve from PagerDuty (v3 webhooks,
  signature verified), so a responder can act in either tool.
"""

from __future__ import annotations

import html
import time
from datetime import UTC, datetime

import structlog
from redis.exceptions import RedisError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from router.access import person_for_token, verify_link
from router.bodies import BodyError, read_request_body
from router.errors import PayloadError
from router.lifecycle import Action, Lifecycle, Result
from router.notify.pagerduty_inbound import parse_event, verify_signature

log = structlog.get_logger(__name__)

_ACTIONS = {"ack": Action.ACK, "acknowledge": Action.ACK} | {a.value: a for a in Action}
_STATUS = {Result.CHANGED: 200, Result.UNCHANGED: 200, Result.REFUSED: 409, Result.MISSING: 404}


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _apply(request: Request, incident: str, action: Action, actor: str) -> JSONResponse:
    lifecycle: Lifecycle = request.app.state.services.lifecycle
    try:
        transition = await run_in_threadpool(
            lifecycle.apply, incident, action, actor, now_ms=int(time.time() * 1000)
        )
    except RedisError:
        return _error(503, "storage unavailable, retry later")
    message = transition.explain(action, incident)
    log.info(
        "incident_action",
        incident=incident,
        action=action.value,
        actor=actor,
        result=transition.result.value,
    )
    body = {
        "incident": incident,
        "state": transition.state,
        "result": transition.result.value,
        "message": message,
    }
    return JSONResponse(body, status_code=_STATUS[transition.result])


async def incident_action(request: Request) -> Response:
    services = request.app.state.services
    person = person_for_token(
        services.settings.api_tokens, request.headers.get("authorization", "")
    )
    if person is None:
        return JSONResponse(
            {"error": "missing or invalid API token (Authorization: Bearer <token>)"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    name = request.path_params["action"]
    action = _ACTIONS.get(name)
    if action is None:
        choices = ", ".join(a.value for a in Action)
        return _error(404, f"unknown action {name!r}; one of {choices}")
    return await _apply(request, request.path_params["incident_id"].upper(), action, person)


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><meta name=viewport content='width=device-width'>"
        f"<title>{html.escape(title)}</title><body style='font-family:sans-serif;max-width:32em;"
        f"margin:2em auto'><h1>{html.escape(title)}</h1>{body}</body>",
        status_code=status,
    )


async def one_click(request: Request) -> Response:
    services = request.app.state.services
    secret = services.settings.link_secret
    query = request.query_params
    action = request.path_params["action"]
    incident, person = query.get("incident", ""), query.get("person", "")
    try:
        expires = int(query.get("expires", ""))
    except ValueError:
        return _page("Link not valid", "<p>This link is incomplete.</p>", 400)
    problem = (
        "one-click links are not enabled here"
        if secret is None
        else verify_link(
            secret, incident, action, person, expires, query.get("sig", ""), datetime.now(UTC)
        )
    )
    if problem is not None:
        return _page("Link not valid", f"<p>{html.escape(problem)}.</p>", 403)
    verb = "Acknowledge" if action == "ack" else "Resolve"
    if request.method == "GET":
        form = (
            f"<p>{html.escape(verb)} incident <b>{html.escape(incident)}</b> as "
            f"{html.escape(person)}?</p><form method=post><button style='font-size:1.4em'>"
            f"{html.escape(verb)}</button></form>"
        )
        return _page(f"{verb} {incident}", form)
    status = (await _apply(request, incident, _ACTIONS[action], person)).status_code
    text = {
        200: "Done.",
        409: "Nothing to do: the incident is past that.",
        404: "No such incident.",
    }
    return _page(f"{verb} {incident}", f"<p>{text.get(status, 'Try again later.')}</p>", status)


async def pagerduty_webhook(request: Request) -> Response:
    services = request.app.state.services
    secrets = services.settings.pagerduty_webhook_secrets
    if not secrets:
        return _error(
            404, "PagerDuty webhooks are not enabled (SEVROUTER_PAGERDUTY_WEBHOOK_SECRETS)"
        )
    try:
        body = await read_request_body(request)  # bounded: read before the signature is checked
    except BodyError as exc:
        return JSONResponse(exc.body, status_code=exc.status)
    if not verify_signature(body, request.headers.get("x-pagerduty-signature", ""), secrets):
        return _error(401, "invalid or missing X-PagerDuty-Signature")
    try:
        event = parse_event(body)
    except PayloadError as exc:
        return JSONResponse({"error": exc.message, "field": exc.field}, status_code=400)
    if event is None:
        return JSONResponse({"result": "ignored"})
    action = Action.ACK if event.action == "acknowledge" else Action.RESOLVE
    return await _apply(request, event.incident, action, f"pagerduty:{event.actor}")


routes = [
    Route("/api/v1/incidents/{incident_id}/{action}", incident_action, methods=["POST"]),
    Route("/act/{action}", one_click, methods=["GET", "POST"]),
    Route("/api/v1/pagerduty/webhook", pagerduty_webhook, methods=["POST"]),
]
