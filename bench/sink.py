"""The generator's ceiling: a raw uvloop HTTP/1.1 server that answers every request with 202.

It does the least work an HTTP server can (find the header end, skip Content-Length bytes, write a
constant reply), so whatever rate the load generator reaches against it is a lower bound on what
the generator can drive. `python -m bench.sink --port N`.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import cast

import uvloop

REPLY = b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n"


class _Sink(asyncio.Protocol):
    __slots__ = ("buf", "transport")

    def __init__(self) -> None:
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        replies = 0
        while True:
            head_end = buf.find(b"\r\n\r\n")
            if head_end < 0:
                break
            head = bytes(buf[:head_end]).lower()
            cl = head.find(b"\r\ncontent-length:")
            length = 0
            if cl >= 0:
                eol = head.find(b"\r\n", cl + 2)
                length = int(head[cl + 17 : eol if eol >= 0 else len(head)])
            end = head_end + 4 + length
            if len(buf) < end:
                break
            del buf[:end]
            replies += 1
        if replies and self.transport is not None:
            self.transport.write(REPLY * replies)


async def _serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Sink, host, port, backlog=1024)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvloop.run(_serve(args.host, args.port))


if __name__ == "__main__":
    main()
