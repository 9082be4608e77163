"""What the HTTP channels share: their User-Agent and a capped read of an answer's body."""

from __future__ import annotations

import contextlib
from typing import Final

import httpx

import router

USER_AGENT: Final = f"sevrouter/{router.__version__}"

# The response body only feeds `Delivery.detail`, so a receiver answering with megabytes (or a
# never-ending stream) costs the worker at most this much memory.
MAX_RESPONSE_BYTES: Final = 4096


def read_capped(response: httpx.Response, limit: int = MAX_RESPONSE_BYTES) -> bytes:
    """At most `limit` bytes of a streamed response body.

    The status line has already decided the outcome (a 200 stays delivered); a body that breaks
    off or fails to decode only shortens the excerpt quoted in `Delivery.detail`.
    """
    buffer = bytearray()
    with contextlib.suppress(httpx.TransportError, httpx.DecodingError):
        for chunk in response.iter_bytes():
            buffer += chunk
            if len(buffer) >= limit:
                break
    return bytes(buffer[:limit])
