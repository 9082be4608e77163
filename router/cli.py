"""The `sevrouter` command: serve, worker, run, check."""

from __future__ import annotations

import argparse
import gc
import sys
from collections.abc import Sequence
from pathlib import Path

from router import __version__
from router.errors import ConfigError
from router.settings import DEFAULT_PORT, Settings


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "command"):
        parser.print_help()
        return 2
    try:
        settings = Settings.from_env()
    except ValueError as exc:
        print(f"sevrouter: {exc}", file=sys.stderr)
        return 2
    if getattr(args, "rules", None) is not None:
        settings = _with_rules(settings, args.rules)
    result: int = args.command(args, settings)
    return result


def _with_rules(settings: Settings, rules: Path) -> Settings:
    from dataclasses import replace

    return replace(settings, rules_path=rules)


def _report_config_error(exc: ConfigError, rules: Path) -> int:
    print(
        f"sevrouter: the rules in {rules} are invalid ({len(exc.problems)} problem(s)):",
        file=sys.stderr,
    )
    for problem in exc.problems:
        print(f"  - {problem}", file=sys.stderr)
    return 1


def cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    from router.ruleset import load_ruleset

    try:
        ruleset = load_ruleset(settings.rules_path, settings.environ, resolve_secrets=args.secrets)
    except ConfigError as exc:
        return _report_config_error(exc, settings.rules_path)
    from datetime import UTC, datetime

    from router.rulecheck import warnings

    found = warnings(ruleset, datetime.now(UTC))
    for warning in found:
        print(f"warning: {warning}")
    config = ruleset.config
    print(
        f"{settings.rules_path}: OK: {len(config.integrations)} integration(s), "
        f"{len(config.teams)} team(s), {len(config.channels)} channel(s), "
        f"{len(ruleset.rules)} rule(s)" + (f", {len(found)} warning(s)" if found else "")
    )
    return 1 if found and args.strict else 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from router import logs
    from router.app import create_app
    from router.jobs import queue_depth
    from router.keys import Keys
    from router.ruleset import load_ruleset

    logs.configure(settings.log_level, settings.log_format)
    try:
        ruleset = load_ruleset(settings.rules_path, settings.environ)
    except ConfigError as exc:
        return _report_config_error(exc, settings.rules_path)
    from router.redisconn import connect

    depth = queue_depth(connect(settings.redis_url), Keys(settings.key_prefix), settings.queue_name)
    app = create_app(settings, ruleset, queue_depth=depth)
    # What exists now (modules, rules, compiled templates) lives as long as the process: frozen,
    # the collector's full passes skip it instead of walking it all again under load. (The
    # first rule set stays in memory after a reload: a few hundred KiB, once.)
    gc.collect()
    gc.freeze()
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=30,
        server_header=False,
    )
    return 0


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from router import logs
    from router.jobs import run_worker
    from router.ruleset import load_ruleset

    logs.configure(settings.log_level, settings.log_format)
    try:
        ruleset = load_ruleset(settings.rules_path, settings.environ)
    except ConfigError as exc:
        return _report_config_error(exc, settings.rules_path)
    run_worker(settings, ruleset, burst=args.burst)
    return 0


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from router.runner import run_all

    return run_all(settings, host=args.host, port=args.port)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sevrouter",
        description="Alertmanager and Grafana webhooks in; deduplicated incidents and pages out.",
    )
    parser.add_argument("--version", action="version", version=f"sevrouter {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    def add(
        name: str, help_text: str, handler: object, *, rules_option: bool = True
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(command=handler)
        if rules_option:
            sub.add_argument(
                "--rules",
                type=Path,
                default=None,
                help="rules file or directory (default: $SEVROUTER_RULES or ./rules)",
            )
        return sub

    for name, help_text, handler in (
        ("serve", "run the webhook receiver and API", cmd_serve),
        (
            "run",
            "run Redis (unless REDIS_URL is set), the receiver and a worker on this machine",
            cmd_run,
        ),
    ):
        sub = add(name, help_text, handler)
        sub.add_argument(
            "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
        )
        sub.add_argument(
            "--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})"
        )
    worker = add("worker", "run a worker: incident jobs, paging and the scheduler", cmd_worker)
    worker.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    check = add(
        "check", "validate rule files offline; exit 1 on any problem", cmd_check, rules_option=False
    )
    check.add_argument("rules", type=Path, nargs="?", default=None, help="rules file or directory")
    from router.cli_incidents import add_commands

    add_commands(commands)
    from router.cli_drill import add_commands as add_drill_commands

    add_drill_commands(commands)
    from router.cli_ruletest import add_commands as add_ruletest_commands

    add_ruletest_commands(commands)
    from router.cli_silences import add_commands as add_silence_commands

    add_silence_commands(commands)
    check.add_argument(
        "--strict", action="store_true", help="exit 1 on warnings too (people nobody can reach ...)"
    )
    check.add_argument(
        "--secrets",
        action="store_true",
        help="also require every referenced secret (environment variable or file) to be present",
    )
    return parser


if __name__ == "__main__":
    sys.exit(main())
