"""`sevrouter incidents ...`, `postmortem`, `actions` and `oncall`: the operator's commands.

Incident commands talk to a running receiver's API (`--url`, default $SEVROUTER_URL or
http://127.0.0.1:9095) with `--token` (default $SEVROUTER_TOKEN), so they work from a laptop as
well as on the server, and every write is attributed to the token's person. `--url`, `--token`
and `--json` go before or after the action (`sevrouter incidents --url U ack INC-1` or
`sevrouter incidents ack INC-1 --url U`). `oncall` reads the rules offline.

Exit codes: 0 done; 1 the receiver refused (bad input, no such incident, not allowed in this
state, no token) or answered something that is not sevrouter's API; 2 a usage error, or the
receiver cannot be reached or cannot serve the request now (5xx).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from router.cli_http import (
    call,
    connection_options,
    dump,
    late_connection_options,
    not_the_api,
    refused,
    request,
    utc,
)
from router.durations import parse_duration
from router.errors import ConfigError
from router.settings import Settings

_WRITE_ACTIONS = ("ack", "mitigate", "resolve", "reopen", "close")
ROLES = ("commander", "tech_lead", "communications", "scribe")
STATUSES = ("investigating", "mitigating", "resolved")
SEVERITIES = ("SEV1", "SEV2", "SEV3", "SEV4")


def _choice(choices: Sequence[str], normalize: Callable[[str], str]) -> Callable[[str], str]:
    def convert(value: str) -> str:
        normalized = normalize(value)
        if normalized not in choices:
            raise argparse.ArgumentTypeError(f"{value!r} is not one of {', '.join(choices)}")
        return normalized

    return convert


def _role(value: str) -> str:
    return value.strip().lower().replace("-", "_").replace(" ", "_").removeprefix("incident_")


def _next_update(value: str) -> str:
    """A duration (30m) or an ISO time; whether it lies in the future is the receiver's call."""
    try:
        parse_duration(value)
    except ValueError:
        try:
            datetime.fromisoformat(value)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{value!r} is neither a duration (30m, 1h) nor an ISO time "
                "(2026-11-26T14:30Z; without an offset, UTC)"
            ) from None
    return value


def _due_date(value: str) -> str:
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date (YYYY-MM-DD)") from None


def _positive(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not an action item number (1, 2, ...)")
    return int(value)


def add_commands(commands: Any) -> None:
    incidents = commands.add_parser(
        "incidents",
        help="list, show and act on incidents",
        description="list, show and act on incidents",
    )
    connection_options(incidents)
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
    late = [listing, show]
    for action in _WRITE_ACTIONS:
        verb = verbs.add_parser(action, help=f"{action} an incident")
        verb.add_argument("incident")
        verb.set_defaults(command=cmd_action, action=action)
        late.append(verb)

    update = verbs.add_parser(
        "update",
        help="post a status update (it goes to the team channel and sets the next deadline)",
        description="Post the seed's status update: current status, what we know, what we are "
        "doing, and when the next update is due (default: the severity's update cadence).",
    )
    update.add_argument("incident")
    update.add_argument(
        "--status",
        required=True,
        type=_choice(STATUSES, str.lower),
        metavar="|".join(STATUSES),
        help="current status",
    )
    update.add_argument(
        "--fact", dest="facts", action="append", default=[], metavar="TEXT", help="what we know"
    )
    update.add_argument(
        "--action",
        dest="doing",
        action="append",
        default=[],
        metavar="TEXT",
        help="what we are doing",
    )
    update.add_argument(
        "--next",
        dest="next_update",
        type=_next_update,
        default=None,
        metavar="30m|ISO",
        help="when the next update is due: a duration from now or an ISO time (UTC unless it "
        "says otherwise); default the severity's cadence, none once resolved",
    )
    update.set_defaults(command=cmd_update)

    role = verbs.add_parser(
        "role",
        help="give an incident role to a person (a handover when someone had it)",
        description="Assign ROLE (commander, tech_lead, communications, scribe) to PERSON.",
    )
    role.add_argument("incident")
    role.add_argument("role", type=_choice(ROLES, _role), metavar="ROLE", help=", ".join(ROLES))
    role.add_argument("person")
    role.set_defaults(command=cmd_role)

    severity = verbs.add_parser(
        "severity",
        help="change an incident's severity, with the reason",
        description="Change the severity; the reason goes on the timeline. Raising it while "
        "nobody has acknowledged re-evaluates escalation at once.",
    )
    severity.add_argument("incident")
    severity.add_argument(
        "severity",
        type=_choice(SEVERITIES, str.upper),
        metavar="SEV",
        help=", ".join(SEVERITIES),
    )
    severity.add_argument("--reason", required=True, help="why (shown on the timeline)")
    severity.set_defaults(command=cmd_severity)
    for parser in (*late, update, role, severity):
        late_connection_options(parser)

    postmortem = commands.add_parser(
        "postmortem",
        help="print an incident's postmortem draft (Markdown)",
        description="Print the postmortem draft in Markdown, e.g. "
        "`sevrouter postmortem INC-42 > docs/postmortems/INC-42.md`.",
    )
    postmortem.add_argument("incident")
    connection_options(postmortem, json_option=False)
    postmortem.set_defaults(command=cmd_postmortem)

    actions = commands.add_parser(
        "actions",
        help="list, add and complete an incident's postmortem action items",
        description="Postmortem action items: list (the default), add TEXT, done N.",
    )
    actions.add_argument("incident")
    connection_options(actions)
    actions.set_defaults(command=cmd_actions_list)
    items = actions.add_subparsers(
        title="commands", metavar="list|add|done", prog="sevrouter actions INCIDENT"
    )
    listed = items.add_parser("list", help="the action items (the default)")
    listed.set_defaults(command=cmd_actions_list)
    add = items.add_parser("add", help="add an action item")
    add.add_argument("text")
    add.add_argument("--owner", default=None, metavar="NAME")
    add.add_argument("--due", type=_due_date, default=None, metavar="YYYY-MM-DD")
    add.set_defaults(command=cmd_actions_add)
    done = items.add_parser("done", help="mark action item N done")
    done.add_argument("number", type=_positive, metavar="N")
    done.set_defaults(command=cmd_actions_done)
    for parser in (listed, add, done):
        late_connection_options(parser)

    oncall = commands.add_parser(
        "oncall", help="who is on call now (or --at a time)", description="who is on call"
    )
    oncall.add_argument("team", nargs="?", default=None, help="only this team's schedules")
    oncall.add_argument("--at", default=None, help="ISO time, e.g. 2026-12-24T22:00+01:00")
    oncall.add_argument("--rules", type=Path, default=None, help="rules directory")
    oncall.set_defaults(command=cmd_oncall)


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    code, body = call(
        args,
        settings,
        "GET",
        "/api/v1/incidents",
        expect=("incidents",),
        params={
            "state": args.state,
            "severity": args.severity,
            "team": args.team,
            "limit": args.limit,
        },
    )
    if code or args.json:
        return dump(code, body, args.json)
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
    code, body = call(
        args,
        settings,
        "GET",
        f"/api/v1/incidents/{args.incident}",
        expect=("id", "severity", "title", "state", "team", "rule", "alerts_firing", "timeline"),
    )
    if code or args.json:
        return dump(code, body, args.json)
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
    code, body = call(
        args,
        settings,
        "POST",
        f"/api/v1/incidents/{args.incident}/{args.action}",
        expect=("message",),
    )
    if code or args.json:
        return dump(code, body, args.json)
    print(body["message"])
    return 0


def cmd_update(args: argparse.Namespace, settings: Settings) -> int:
    request: dict[str, Any] = {"status": args.status, "facts": args.facts, "actions": args.doing}
    if args.next_update is not None:
        request["next_update"] = args.next_update
    code, body = call(
        args,
        settings,
        "POST",
        f"/api/v1/incidents/{args.incident}/updates",
        expect=("incident", "number", "update"),
        body=request,
    )
    if code or args.json:
        return dump(code, body, args.json)
    next_update = body["update"].get("next_update")
    after = f"next update due {utc(next_update)}" if next_update else "no further update due"
    print(f"{body['incident']}: status update #{body['number']} posted ({args.status}); {after}")
    return 0


def cmd_role(args: argparse.Namespace, settings: Settings) -> int:
    code, body = call(
        args,
        settings,
        "POST",
        f"/api/v1/incidents/{args.incident}/roles",
        expect=("incident", "role", "person"),
        body={"role": args.role, "person": args.person},
    )
    if code or args.json:
        return dump(code, body, args.json)
    from router.comms import role_name

    name = role_name(body["role"])
    previous = body.get("previous")
    if previous and previous != body["person"]:
        print(f"{body['incident']}: {name} handed over from {previous} to {body['person']}")
    else:
        print(f"{body['incident']}: {body['person']} is {name}")
    return 0


def cmd_severity(args: argparse.Namespace, settings: Settings) -> int:
    code, body = call(
        args,
        settings,
        "POST",
        f"/api/v1/incidents/{args.incident}/severity",
        expect=("incident", "severity", "result"),
        body={"severity": args.severity, "reason": args.reason},
    )
    if code or args.json:
        return dump(code, body, args.json)
    if body["result"] == "same":
        print(f"{body['incident']} is already {body['severity']}")
    else:
        print(f"{body['incident']} is now {body['severity']}: {args.reason}")
    return 0


def cmd_postmortem(args: argparse.Namespace, settings: Settings) -> int:
    response = request(args, settings, "GET", f"/api/v1/incidents/{args.incident}/postmortem")
    if response is None:
        return 2
    if response.status_code >= 400:
        return refused(response)
    if not response.headers.get("content-type", "").startswith("text/markdown"):
        return not_the_api(response)
    # As served, byte for byte: `> docs/postmortems/INC-42.md` commits exactly the draft.
    sys.stdout.write(response.text)
    return 0


def _item_line(item: dict[str, Any]) -> str:
    mark = "x" if item["done"] else " "
    owner = item.get("owner") or "unassigned"
    due = item.get("due") or "no date"
    return f"#{item['number']} [{mark}] {item['text']} - Owner: {owner} - Due: {due}"


def cmd_actions_list(args: argparse.Namespace, settings: Settings) -> int:
    code, body = call(
        args, settings, "GET", f"/api/v1/incidents/{args.incident}/actions", expect=("actions",)
    )
    if code or args.json:
        return dump(code, body, args.json)
    if not body["actions"]:
        print(f"{args.incident.upper()} has no action items")
    for item in body["actions"]:
        print(_item_line(item))
    return 0


def cmd_actions_add(args: argparse.Namespace, settings: Settings) -> int:
    request = {"text": args.text, "owner": args.owner, "due": args.due}
    code, body = call(
        args,
        settings,
        "POST",
        f"/api/v1/incidents/{args.incident}/actions",
        expect=("number", "text", "done"),
        body={k: v for k, v in request.items() if v is not None},
    )
    if code or args.json:
        return dump(code, body, args.json)
    print(f"{args.incident.upper()}: added {_item_line(body)}")
    return 0


def cmd_actions_done(args: argparse.Namespace, settings: Settings) -> int:
    code, body = call(
        args,
        settings,
        "POST",
        f"/api/v1/incidents/{args.incident}/actions/{args.number}/done",
        expect=("number", "text", "done"),
    )
    if code or args.json:
        return dump(code, body, args.json)
    print(f"{args.incident.upper()}: done {_item_line(body)}")
    return 0


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
