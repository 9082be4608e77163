"""Request bodies for every endpoint: read within the size limit, and decoded as JSON.

One place, so that no endpoint reads an unbounded body (a memory attack) or answers a hostile one
(deep nesting, invalid UTF-8) with a traceback: each failure is a `BodyError` carrying the 4xx
to answer, and a sender that went away is Starlette's `ClientDisconnect`.
"""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import ClientDisconnect, Request
from starlette.types import Receive


class BodyError(Exception):
    """The body cannot be used: `status` (413 or 400) and `message` say why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    @property
    def body(self) -> dict[str, str]:
        """The JSON answer: a 400 names the field at fault, the whole body ('')."""
        return (
            {"error": self.message, "field": ""} if self.status == 400 else {"error": self.message}
        )


async def read_body(receive: Receive, declared: str, limit: int) -> bytes:
    """The body of the request `receive` belongs to, whose Content-Length header is `declared`
    ('' when absent); over `limit` bytes it is a 413, checked before and while reading."""
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def read_request_body(request: Request) -> bytes:
    """`read_body` for a Starlette endpoint, with the installation's limit."""
    limit: int = request.app.state.services.settings.max_body_bytes
    return await read_body(request.receive, request.headers.get("content-length", ""), limit)


def decode_json(raw: bytes) -> Any:
    """`raw` as JSON; a 400 for anything that is not (including nesting too deep to decode)."""
    try:
        return msgspec.json.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        raise BodyError(400, "body is not JSON") from None


def _too_large(limit: int) -> BodyError:
    return BodyError(413, f"body larger than the {limit}-byte limit (SEVROUTER_MAX_BODY_BYTES)")
