"""A real HTTP receiver on 127.0.0.1 standing in for Slack, PagerDuty or a paging webhook: it
records every request and answers with scripted replies, so tests exercise real sockets."""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Reply:
    """One scripted answer. `delay` holds the answer back that many seconds (cut short when the
    test ends), to outlast a client's read timeout."""

    status: int = 200
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0


@dataclass(frozen=True)
class Recorded:
    """One request as the receiver saw it."""

    method: str
    path: str
    headers: dict[str, str]  # names lower-cased; httpx sends each of ours once
    body: bytes


@dataclass
class Receiver:
    """The running server: `url` is its base URL; `replies` are used in order, then 200."""

    url: str
    requests: list[Recorded] = field(default_factory=list)
    replies: deque[Reply] = field(default_factory=deque)
    errors: list[BaseException | None] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def script(self, *replies: Reply) -> None:
        with self.lock:
            self.replies.extend(replies)


class _Server(ThreadingHTTPServer):
    receiver: Receiver

    def handle_error(self, request: object, client_address: object) -> None:
        """Record handler failures for the fixture to report, instead of printing them.

        A client that gives up with the response unread (timeouts, capped reads) resets the
        connection; that is the behaviour under test, not a failure of the receiver.
        """
        error = sys.exception()
        if not isinstance(error, ConnectionResetError | BrokenPipeError):
            self.receiver.errors.append(error)


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 keeps connections open between requests, as a real receiver behind a pool would.
    protocol_version = "HTTP/1.1"

    def _handle(self) -> None:
        assert isinstance(self.server, _Server)
        receiver = self.server.receiver
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        with receiver.lock:
            receiver.requests.append(
                Recorded(
                    method=self.command,
                    path=self.path,
                    headers={name.lower(): value for name, value in self.headers.items()},
                    body=body,
                )
            )
            reply = receiver.replies.popleft() if receiver.replies else Reply()
        if reply.delay:
            receiver.release.wait(reply.delay)
        # The client may have given up (timeout tests); a dead socket is the expected end then.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.send_response(reply.status)
            for name, value in reply.headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)

    # BaseHTTPRequestHandler dispatches on `do_<METHOD>`; the name is not ours to choose.
    do_POST = _handle  # noqa: N815

    def log_message(self, format: str, *args: object) -> None:
        """Keep pytest's output clean; the test asserts on `Receiver.requests` instead."""


@contextlib.contextmanager
def serve_receiver() -> Iterator[Receiver]:
    server = _Server(("127.0.0.1", 0), _Handler)
    host, port = server.server_address[:2]
    server.receiver = Receiver(url=f"http://{host!s}:{port}")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server.receiver
    finally:
        server.receiver.release.set()
        server.shutdown()
        server.server_close()
        thread.join()
    assert server.receiver.errors == [], "the test receiver itself failed"


def wait_for_requests(receiver: Receiver, count: int, timeout: float = 10) -> list[Recorded]:
    """Block until the receiver has seen `count` requests (or more); return them."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with receiver.lock:
            if len(receiver.requests) >= count:
                return list(receiver.requests)
        time.sleep(0.02)
    raise AssertionError(f"expected {count} request(s), got {len(receiver.requests)}")
