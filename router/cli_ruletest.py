"""`sevrouter test` runs rule test files; `sevrouter explain` shows why an alert is routed as it
is and who would be told when.

Both read the rules offline (secrets are not resolved, nothing is sent). `explain INC-42` also
asks a running receiver (`--url`, `--token`, as `sevrouter incidents` does) for the incident and
explains its first alert with the local rules, which may have changed since it opened.

Exit codes: `test` 0 all passed, 1 a case failed, 2 a test file or case could not be run;
`explain` 0 explained, 1 invalid rules or the receiver refused, 2 a usage error or a bad payload.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from router.errors import ConfigError, PayloadError
from router.settings import Settings

_INCIDENT = re.compile(r"INC-[0-9]+", re.IGNORECASE)


def add_commands(commands: Any) -> None:
    test = commands.add_parser(
        "test",
        help="run rule test files: alerts in, expected severity, team, group and pages out",
        description="Run rule test files (e.g. rules/tests/*.yaml); exit 1 when a case fails, "
        "2 when a file cannot be run. The format is described in router/ruletest.py.",
    )
    test.add_argument("files", nargs="+", type=Path, metavar="TESTFILE")
    test.add_argument(
        "--rules",
        type=Path,
        default=None,
        help="rules directory for every file (default: each file's `rules:`, relative to it)",
    )
    test.set_defaults(command=cmd_test)

    explain = commands.add_parser(
        "explain",
        help="why an alert gets its severity, team and group, and who would be paged when",
        description="Explain one alert given as labels (alertname=DiskFull severity=critical), "
        "the alerts of a webhook body (--payload), or the first alert of a live incident "
        "(INC-42, fetched from the receiver), with the local rules.",
    )
    explain.add_argument("subject", nargs="*", metavar="LABEL=VALUE | INC-N")
    explain.add_argument("--payload", type=Path, default=None, help="a webhook body (JSON file)")
    explain.add_argument(
        "--integration",
        default=None,
        help="the integration (or format: alertmanager, grafana) of --payload; "
        "default alertmanager",
    )
    explain.add_argument(
        "--at",
        default=None,
        help="ISO time to explain at (default now; for INC-N when it opened); without an "
        "offset, UTC",
    )
    explain.add_argument("--json", action="store_true", help="print the report as JSON")
    explain.add_argument("--rules", type=Path, default=None, help="rules directory")
    explain.add_argument("--url", default=None, help="receiver URL for INC-N ($SEVROUTER_URL)")
    explain.add_argument("--token", default=None, help="API token for INC-N ($SEVROUTER_TOKEN)")
    explain.set_defaults(command=cmd_explain)


def cmd_test(args: argparse.Namespace, settings: Settings) -> int:
    from router.ruletest import exit_code, render, run_files

    results = run_files(args.files, rules=args.rules)
    sys.stdout.write(render(results))
    return exit_code(results)


def _fail(message: str) -> None:
    print(f"sevrouter: {message}", file=sys.stderr)


def parse_labels(items: Sequence[str]) -> dict[str, str]:
    """`name=value` arguments as labels; a value in double quotes loses them (copied from a
    matcher). Raises ValueError naming the argument."""
    labels: dict[str, str] = {}
    for item in items:
        name, separator, value = item.partition("=")
        if not separator or not name:
            raise ValueError(f"{item!r} is not LABEL=VALUE")
        if name in labels:
            raise ValueError(f"label {name!r} is given twice")
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        labels[name] = value
    return labels


def cmd_explain(args: argparse.Namespace, settings: Settings) -> int:
    from router.explain import (
        alert_from_labels,
        explain,
        integration_choices,
        parse_at,
        render_text,
        source_kind,
    )
    from router.ruleset import load_ruleset
    from router.sources import parse

    incident = (
        args.subject[0].upper()
        if len(args.subject) == 1 and _INCIDENT.fullmatch(args.subject[0])
        else None
    )
    given = [incident is not None, args.payload is not None, bool(args.subject) and not incident]
    if sum(given) != 1:
        _fail("explain takes one of: LABEL=VALUE ..., --payload FILE, or INC-N")
        return 2
    if args.integration is not None and args.payload is None:
        _fail("--integration goes with --payload")
        return 2
    try:
        at = parse_at(args.at) if args.at else None
        labels = parse_labels(args.subject) if given[2] else {}
    except ValueError as exc:
        _fail(str(exc))
        return 2
    try:
        ruleset = load_ruleset(settings.rules_path, settings.environ, resolve_secrets=False)
    except ConfigError as exc:
        _fail(f"the rules in {settings.rules_path} are invalid:")
        print("\n".join(f"  - {problem}" for problem in exc.problems), file=sys.stderr)
        return 1
    live: dict[str, Any] | None = None
    if incident is not None:
        code, body = _fetch_incident(args, settings, incident)
        if code:
            return code
        if not body["alerts"]:
            _fail(f"{incident} has no alerts to explain")
            return 1
        labels = body["alerts"][0]["labels"]
        at = at or datetime.fromisoformat(body["opened_at"])
        live = {key: body[key] for key in ("rule", "severity", "team")} | {"incident": body["id"]}
    at = at or datetime.now(UTC)
    if args.payload is not None:
        name = args.integration or "alertmanager"
        kind = source_kind(ruleset, name)
        if kind is None:
            _fail(f"unknown integration {name!r}; one of {integration_choices(ruleset)}")
            return 2
        try:
            alerts = parse(kind, args.payload.read_bytes(), integration=name, now=at)
        except OSError as exc:
            _fail(f"cannot read {args.payload}: {exc.strerror}")
            return 2
        except PayloadError as exc:
            _fail(f"{args.payload} is not a valid {kind} payload: {exc}")
            return 2
    else:
        alerts = [alert_from_labels(labels, at)]
    report = explain(ruleset, alerts, at)
    if live is not None:
        report["live"] = live
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        sys.stdout.write(render_text(report))
    return 0


def _fetch_incident(args: argparse.Namespace, settings: Settings, incident: str) -> tuple[int, Any]:
    # The incident commands' client: the same --url/--token defaults, errors and exit codes.
    from router.cli_http import call as _call

    return _call(
        args,
        settings,
        "GET",
        f"/api/v1/incidents/{incident}",
        expect=("id", "rule", "severity", "team", "opened_at", "alerts"),
    )
