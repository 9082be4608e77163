"""`sevrouter incidents ...` and `sevrouter oncall`: the operator's commands.

Incident commands talk to a running receiver's API (`--url`, default $SEVROUTER_URL or
http://127.0.0.1:9095) with `--token` (default $SEVROUTER_TOKEN), so they work from a laptop as
well as on the server, and every write is attributed to the token's person. `oncall` reads the
rules offline.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from router.errors import ConfigError
from router.settings import DEFAULT_PORT, Settings

_WRITE_ACTIONS = ("ack", "mitigate", "resolve", "reopen", "close")


def add_commands(commands: Any) -> None:
    incidents = commands.add_parser(
        "incidents",
        help="list, show and act on incidents",
        description="list, show and act on incidents",
    )
    incidents.add_argument("--url", default=None, help="receiver URL (default $SEVROUTER_URL)")
    incidents.add_argument("--token", default=None, help="API token (default $SEVROUTER_TOKEN)")
    incidents.add_argument("--json", action="store_true", help="print the API's JSON")
    verbs = incidents.add_subparsers(title="actions", metavar="ACTION", required=True)
    listing = verbs.add_parser("list", help="open incidents, newest first")
    listing.add_argument("--state", default=None)
    listing.add_argument("--severity", default=None)
    listing.add_argument("--team", default=None)
    listing.add_argument("--limit", type=int, default=50)
    listing.set_defaults(command=cmd_list)
    show = verbs.add_parser("show", help="one incident with its alerts and timeline")
    show.add_argument("incident")
    show.set_defaults(command=cmd_show)
    for action in _WRITE_ACTIONS:
        verb = verbs.add_parser(action, help=f"{action} an incident")
        verb.add_argument("incident")
        verb.set_defaults(command=cmd_action, action=action)

    oncall = commands.add_parser(
        "oncall", help="who is on call now (or --at a time)", description="who is on call"
    )
    oncall.add_argument("team", nargs="?", default=None, help="only this team's schedules")
    oncall.add_argument("--at", default=None, help="ISO time, e.g. 2026-12-24T22:00+01:00")
    oncall.add_argument("--rules", type=Path, default=None, help="rules directory")
    oncall.set_defaults(command=cmd_oncall)


def _client(args: argparse.Namespace, settings: Settings) -> httpx.Client:
    url = args.url or settings.environ.get("SEVROUTER_URL") or f"http://127.0.0.1:{DEFAULT_PORT}"
    token = args.token or settings.environ.get("SEVROUTER_TOKEN", "")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=url, headers=headers, timeout=10)


def _call(
    args: argparse.Namespace, settings: Settings, method: str, path: str, **params: Any
) -> tuple[int, Any]:
    try:
        with _client(args, settings) as client:
            response = client.request(
                method, path, params={k: v for k, v in params.items() if v is not None}
            )
    except httpx.HTTPError as exc:
        print(f"sevrouter: cannot reach the receiver: {type(exc).__name__}", file=sys.stderr)
        return 2, None
    try:
        body = response.json()
    except ValueError:
        body = {"error": response.text[:200]}
    if response.status_code >= 400:
        print(
            f"sevrouter: {body.get('error') or body.get('message')} (HTTP {response.status_code})",
            file=sys.stderr,
        )
        return 1, body
    return 0, body


def _dump(code: int, body: Any, as_json: bool) -> int:
    if body is not None and as_json:
        print(json.dumps(body, indent=2))
    return code


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    code, body = _call(
        args,
        settings,
        "GET",
        "/api/v1/incidents",
        state=args.state,
        severity=args.severity,
        team=args.team,
        limit=args.limit,
    )
    if code or args.json:
        return _dump(code, body, args.json)
    rows = body["incidents"]
    if not rows:
        print("no incidents")
    for i in rows:
        opened = i["opened_at"][:16]
        print(
            f"{i['id']:<8} {i['severity']}  {i['state']:<12} {i['team']:<12} {opened}  {i['title']}"
        )
    return 0


def cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    code, body = _call(args, settings, "GET", f"/api/v1/incidents/{args.incident}")
    if code or args.json:
        return _dump(code, body, args.json)
    print(f"{body['id']} [{body['severity']}] {body['title']}")
    firing = body["alerts_firing"]
    print(f"  state {body['state']}, team {body['team']}, rule {body['rule']}, {firing} firing")
    if body.get("summary"):
        print(f"  {body['summary']}")
    if body.get("runbook"):
        print(f"  runbook: {body['runbook']}")
    print("timeline:")
    for entry in body["timeline"]:
        print(f"  {entry['at'][:19]}  {entry['actor']:<12} {entry['text']}")
    return 0


def cmd_action(args: argparse.Namespace, settings: Settings) -> int:
    code, body = _call(args, settings, "POST", f"/api/v1/incidents/{args.incident}/{args.action}")
    if body and not code:
        print(body["message"])
    return code


def cmd_oncall(args: argparse.Namespace, settings: Settings) -> int:
    from router.ruleset import load_ruleset
    from router.schedules import next_handoff, on_call

    try:
        ruleset = load_ruleset(settings.rules_path, settings.environ, resolve_secrets=False)
    except ConfigError as exc:
        print("\n".join(exc.problems), file=sys.stderr)
        return 1
    try:
        at = datetime.fromisoformat(args.at) if args.at else datetime.now(UTC)
    except ValueError:
        print(f"sevrouter: --at {args.at!r} is not an ISO time", file=sys.stderr)
        return 2
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    schedules = {s.name: s for s in ruleset.config.schedules}
    wanted = set(schedules)
    if args.team:
        team = ruleset.team(args.team)
        if team is None:
            print(f"sevrouter: no team {args.team!r}", file=sys.stderr)
            return 1
        wanted = {t.ref for step in team.escalation for t in step.notify if t.kind == "schedule"}
    if not wanted:
        print("no schedules" + (f" in team {args.team}'s escalation" if args.team else ""))
    for name in sorted(wanted):
        schedule = schedules[name]
        person = on_call(schedule, at) or "nobody"
        until = next_handoff(schedule, at)
        handoff = f" until {until.astimezone(at.tzinfo):%Y-%m-%d %H:%M %Z}" if until else ""
        print(f"{name:<20} {person}{handoff}")
    return 0
