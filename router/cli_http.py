"""The CLI's client for the receiver's API: --url/--token options, requests, clear errors.

Every command that talks to a running receiver goes through `call`: exit 0 with the API's JSON
object, 1 when the receiver refused (or the answer is not sevrouter's API), 2 when it cannot be
reached or cannot serve now. Messages go to stderr as `sevrouter: ...`, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import httpx

from router.settings import DEFAULT_PORT, Settings


def late_connection_options(parser: argparse.ArgumentParser) -> None:
    """The same options after an action: given there, they win; left out, they leave the
    value given before the action (or the default) alone."""
    parser.add_argument("--url", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    parser.add_argument("--token", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    parser.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
    )


def connection_options(parser: argparse.ArgumentParser, *, json_option: bool = True) -> None:
    """--url, --token (and --json) on `parser` (a command) with their real defaults."""
    parser.add_argument("--url", default=None, help="receiver URL (default $SEVROUTER_URL)")
    parser.add_argument("--token", default=None, help="API token (default $SEVROUTER_TOKEN)")
    if json_option:
        parser.add_argument("--json", action="store_true", help="print the API's JSON")


def client(args: argparse.Namespace, settings: Settings) -> httpx.Client:
    url = args.url or settings.environ.get("SEVROUTER_URL") or f"http://127.0.0.1:{DEFAULT_PORT}"
    token = args.token or settings.environ.get("SEVROUTER_TOKEN", "")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=url, headers=headers, timeout=10)


def fail(message: str) -> None:
    print(f"sevrouter: {message}", file=sys.stderr)


def request(
    args: argparse.Namespace,
    settings: Settings,
    method: str,
    path: str,
    *,
    params: dict[str, Any] | None = None,
    body: dict[str, Any] | None = None,
) -> httpx.Response | None:
    """The receiver's answer; None (and the reason on stderr) when it cannot be reached."""
    try:
        with client(args, settings) as http:
            return http.request(
                method,
                path,
                params={k: v for k, v in (params or {}).items() if v is not None},
                json=body,
            )
    except httpx.HTTPError as exc:
        fail(f"cannot reach the receiver: {type(exc).__name__}")
        return None


def refused(response: httpx.Response) -> int:
    """Explain a 4xx/5xx answer; 1 when refused, 2 when the receiver cannot serve it now."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and (body.get("error") or body.get("message")):
        reason = str(body.get("error") or body.get("message"))
    else:
        reason = response.text.strip()[:200] or response.reason_phrase
    fail(f"{reason} (HTTP {response.status_code})")
    return 2 if response.status_code >= 500 else 1


def not_the_api(response: httpx.Response) -> int:
    kind = response.headers.get("content-type", "no content type").split(";")[0]
    fail(
        f"the answer from {response.url} is not sevrouter's API (HTTP {response.status_code}, "
        f"{kind}); check --url"
    )
    return 1


def call(
    args: argparse.Namespace,
    settings: Settings,
    method: str,
    path: str,
    *,
    expect: Sequence[str] = (),
    params: dict[str, Any] | None = None,
    body: dict[str, Any] | None = None,
) -> tuple[int, Any]:
    """(exit code, the API's JSON object). A success must be a JSON object with every key in
    `expect`; anything else (a proxy's sign-in page, a wrong --url) is an error, exit 1."""
    response = request(args, settings, method, path, params=params, body=body)
    if response is None:
        return 2, None
    if response.status_code >= 400:
        return refused(response), None
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if not isinstance(answer, dict) or any(key not in answer for key in expect):
        return not_the_api(response), None
    return 0, answer


def dump(code: int, body: Any, as_json: bool) -> int:
    if body is not None and as_json:
        print(json.dumps(body, indent=2))
    return code


def utc(iso: str) -> str:
    return f"{datetime.fromisoformat(iso).astimezone(UTC):%Y-%m-%d %H:%M} UTC"
