"""The floor: a bare Starlette app that accepts a webhook with 202 and does nothing else.

It reads the body (so keep-alive framing stays correct) but never parses it. Run it exactly as
sevrouter is run: `uvicorn bench.bare_app:app --loop uvloop --http httptools --no-access-log`.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def webhook(request: Request) -> Response:
    await request.body()
    return Response(status_code=202)


async def healthz(request: Request) -> Response:
    return Response("ok", media_type="text/plain")


app = Starlette(
    routes=[
        Route("/api/v1/webhooks/{integration}", webhook, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
)
