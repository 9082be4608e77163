"""`sevrouter silence add|list|expire`: silences through a running receiver's API.

    sevrouter silence add 'alertname="DiskFull"' 'cluster=~"eu.*"' --duration 2h --comment "swap"
    sevrouter silence add 'alertname=Deploy' --until 2026-11-26T18:00Z --comment "release"
    sevrouter silence list [--expired]
    sevrouter silence expire sil-0123456789ab

Like the incident commands: `--url` (default $SEVROUTER_URL or http://127.0.0.1:9095),
`--token` (default $SEVROUTER_TOKEN; the silence is created in the token's person's name) and
`--json` go before or after the action. Each MATCHER argument holds one or more matchers
(`a="b"` or `a="b",c=~"d"`); all of them must match. Quote them for the shell.

Exit codes: 0 done; 1 the receiver refused (bad input, no such silence, no token) or answered
something that is not sevrouter's API; 2 a usage error, or the receiver cannot be reached or
cannot serve the request now (5xx).
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import Any
from urllib.parse import quote

from router.cli_http import call, utc
from router.durations import parse_duration
from router.matchers import MatcherError, parse_matchers
from router.settings import Settings
from router.silences import SILENCE_ID

_SILENCE_KEYS = ("id", "state", "matchers", "starts_at", "ends_at", "created_by", "comment")


def _matchers(value: str) -> str:
    """One MATCHER argument, checked here so a typo fails before anything is sent."""
    try:
        parse_matchers(value)
    except MatcherError as exc:
        raise argparse.ArgumentTypeError(f"{value!r}: {exc.message}") from None
    return value


def _duration(value: str) -> str:
    try:
        parse_duration(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def _iso(value: str) -> str:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an ISO time (2026-11-26T14:30Z; without an offset, UTC)"
        ) from None
    return value


def _silence_id(value: str) -> str:
    if not SILENCE_ID.fullmatch(value):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a silence id (sil- and 12 hex digits, e.g. sil-0123456789ab)"
        )
    return value


def add_commands(commands: Any) -> None:
    silence = commands.add_parser(
        "silence",
        help="add, list and expire silences",
        description="Mute alerts that match label matchers for a while (Alertmanager-style).",
    )
    silence.add_argument("--url", default=None, help="receiver URL (default $SEVROUTER_URL)")
    silence.add_argument("--token", default=None, help="API token (default $SEVROUTER_TOKEN)")
    silence.add_argument("--json", action="store_true", help="print the API's JSON")
    verbs = silence.add_subparsers(title="actions", metavar="add|list|expire", required=True)

    add = verbs.add_parser(
        "add",
        help="silence alerts matching MATCHERS",
        description="Silence alerts matching every MATCHER, e.g. "
        "`sevrouter silence add 'alertname=\"DiskFull\"' 'cluster=~\"eu.*\"' --duration 2h "
        '--comment "disk swap"`.',
    )
    add.add_argument(
        "matchers",
        nargs="+",
        type=_matchers,
        metavar="MATCHER",
        help='label matchers such as alertname="X" or cluster=~"eu.*" (all must match)',
    )
    until = add.add_mutually_exclusive_group(required=True)
    until.add_argument("--duration", type=_duration, metavar="2h", help="how long, from the start")
    until.add_argument("--until", type=_iso, metavar="ISO", help="when it ends (UTC unless given)")
    add.add_argument("--starts", type=_iso, default=None, metavar="ISO", help="default now")
    add.add_argument("--comment", required=True, help="why (shown with the silence)")
    add.add_argument(
        "--expire-on-resolve",
        action="store_true",
        help="expire the silence once an alert it silenced resolves",
    )
    add.set_defaults(command=cmd_add)

    listing = verbs.add_parser("list", help="pending and active silences, soonest end first")
    listing.add_argument(
        "--expired", action="store_true", help="also those that ended within the retention"
    )
    listing.set_defaults(command=cmd_list)

    expire = verbs.add_parser("expire", help="end a silence now")
    expire.add_argument(
        "id", type=_silence_id, metavar="ID", help="the silence, e.g. sil-0123456789ab"
    )
    expire.set_defaults(command=cmd_expire)

    for verb in (add, listing, expire):
        # The same options after the action: given there they win, left out they leave the
        # value given before the action (or the default) alone.
        verb.add_argument("--url", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        verb.add_argument("--token", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        verb.add_argument(
            "--json", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )


def _window(silence: dict[str, Any]) -> str:
    state = silence["state"]
    if state == "pending":
        return f"from {utc(silence['starts_at'])} until {utc(silence['ends_at'])}"
    if state == "active":
        return f"until {utc(silence['ends_at'])}"
    return f"ended {utc(silence['ends_at'])}"


def _line(silence: dict[str, Any]) -> str:
    matchers = ", ".join(silence["matchers"])
    return (
        f"{silence['id']}  {silence['state']:<7}  {_window(silence)}  {silence['created_by']}  "
        f"{matchers}  # {silence['comment']}"
    )


def cmd_add(args: argparse.Namespace, settings: Settings) -> int:
    request: dict[str, Any] = {"matchers": args.matchers, "comment": args.comment}
    if args.duration is not None:
        request["duration"] = args.duration
    else:
        request["ends_at"] = args.until
    if args.starts is not None:
        request["starts_at"] = args.starts
    if args.expire_on_resolve:
        request["expire_on_resolve"] = True
    code, body = call(
        args, settings, "POST", "/api/v1/silences", expect=_SILENCE_KEYS, body=request
    )
    if code or args.json:
        return _print_json(code, body, args.json)
    matchers = ", ".join(body["matchers"])
    print(f"{body['id']}: silenced {matchers} {_window(body)}")
    return 0


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    params = {"expired": "true"} if args.expired else None
    code, body = call(
        args, settings, "GET", "/api/v1/silences", expect=("silences",), params=params
    )
    if code or args.json:
        return _print_json(code, body, args.json)
    if not body["silences"]:
        print("no silences")
    for silence in body["silences"]:
        print(_line(silence))
    return 0


def cmd_expire(args: argparse.Namespace, settings: Settings) -> int:
    code, body = call(
        args,
        settings,
        "DELETE",
        f"/api/v1/silences/{quote(args.id, safe='')}",
        expect=_SILENCE_KEYS,
    )
    if code or args.json:
        return _print_json(code, body, args.json)
    print(f"{body['id']}: expired, ended {utc(body['ends_at'])}")
    return 0


def _print_json(code: int, body: Any, as_json: bool) -> int:
    if body is not None and as_json:
        print(json.dumps(body, indent=2))
    return code
