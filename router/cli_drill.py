"""`sevrouter drill TEAM`: page a team with a clearly marked test incident, end to end."""

from __future__ import annotations

import argparse
from typing import Any

from router.settings import Settings


def add_commands(commands: Any) -> None:
    drill = commands.add_parser(
        "drill",
        help="send a marked test incident through the whole paging path of a team",
        description="send a marked test incident through the whole paging path of a team",
    )
    drill.add_argument("team")
    drill.add_argument("--severity", default="SEV2", help="SEV1..SEV4 (default SEV2: pages step 1)")
    drill.add_argument("--url", default=None, help="receiver URL (default $SEVROUTER_URL)")
    drill.add_argument("--token", default=None, help="API token (default $SEVROUTER_TOKEN)")
    drill.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    drill.set_defaults(command=cmd_drill)


def cmd_drill(args: argparse.Namespace, settings: Settings) -> int:
    from router.cli_http import call as _call

    code, body = _call(
        args,
        settings,
        "POST",
        "/api/v1/drill",
        expect=("drill", "incident", "team", "severity"),
        body={"team": args.team, "severity": args.severity},
    )
    if code == 0 and body:
        print(
            f"drill {body['drill']}: {body['incident']} opened for team {body['team']} "
            f"({body['severity']}). Watch the pages arrive, then acknowledge it: "
            f"sevrouter incidents ack {body['incident']}"
        )
    return code
