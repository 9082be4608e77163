"""`sevrouter check`, run as a subprocess exactly as a user or CI job runs it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "rules"
BAD = REPO / "tests" / "rules" / "bad"
TOKEN = "cli-check-test-token"
# The shipped rules page only the console (a log channel) until a team configures a real one,
# and `check` says so.
SHIPPED_OK = (
    "warning: rules[alerts]: routes SEV1 to team platform, whose escalation never reaches a "
    "channel that pages a human (only log channels)\n"
    f"{SHIPPED}: OK: 2 integration(s), 1 team(s), 1 channel(s), 2 rule(s), 1 warning(s)\n"
)


def check(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m router check ARGS` with no SEVROUTER_* variables but those in `env`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SEVROUTER_")}
    return subprocess.run(
        [sys.executable, "-m", "router", "check", *args],
        cwd=REPO,
        env=clean | (env or {}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def shipped_copy(directory: Path, edits: dict[str, list[tuple[str, str]]]) -> Path:
    """The shipped rules copied to `directory`, with (old, new) text edits per file."""
    shutil.copytree(SHIPPED, directory)
    for name, replacements in edits.items():
        path = directory / name
        text = path.read_text(encoding="utf-8")
        for old, new in replacements:
            assert text.count(old) == 1, (name, old)
            text = text.replace(old, new)
        path.write_text(text, encoding="utf-8")
    return directory


def test_shipped_rules_are_ok() -> None:
    result = check(str(SHIPPED))
    assert (result.returncode, result.stdout, result.stderr) == (0, SHIPPED_OK, "")


def test_rules_path_defaults_to_sevrouter_rules() -> None:
    result = check(env={"SEVROUTER_RULES": str(SHIPPED)})
    assert (result.returncode, result.stdout) == (0, SHIPPED_OK)


BROKEN = [
    # Schema problems in three files: all three reported, in file order.
    pytest.param(
        {
            "integrations.yaml": [
                ("bearer: {env: SEVROUTER_WEBHOOK_TOKEN}\n\n", "bearer: abc\n\n")
            ],
            "routing.yaml": [("    match: 'alertname", "    matchers: 'alertname")],
            "teams.yaml": [("wait: 5m", "wait: 5 minutes")],
        },
        [
            "{d}/integrations.yaml: integrations[alertmanager].auth.bearer: a secret is never "
            "written in a rule file; reference it as {{env: NAME}} or {{file: /path}}",
            "{d}/routing.yaml: rules[heartbeats].matchers: unknown key",
            "{d}/teams.yaml: teams[platform].escalation[0].wait: invalid duration '5 minutes': "
            "use a number and a unit, like 30s, 5m, 1h or 1h30m (got '5 minutes')",
        ],
        id="schema",
    ),
    # Cross-file problems: a missing severity, a dangling channel, an unknown default team.
    pytest.param(
        {
            "severities.yaml": [
                (
                    "  SEV4:\n    description: Cosmetic, minimal impact\n"
                    "    response_time: next_business_day\n    paging: notify_business_hours\n",
                    "",
                )
            ],
            "teams.yaml": [("notify: [console]", "notify: [pagerduty]")],
            "routing.yaml": [("  team: platform", "  team: sre")],
        },
        [
            "{d}/severities.yaml: severities: missing SEV4 (every level needs a policy)",
            "{d}/teams.yaml: teams[platform].escalation[0].notify: unknown channel 'pagerduty'",
            "{d}/routing.yaml: defaults.team: unknown team 'sre'",
            "{d}/routing.yaml: rules[alerts].team: unknown team 'sre'",
        ],
        id="references",
    ),
    # Compile problems: a bad regex and a template error, both reported.
    pytest.param(
        {
            "routing.yaml": [
                ('"Watchdog|InfoInhibitor"', '"Watchdog|(InfoInhibitor"'),
                ('runbook: "{{ annotations.runbook_url }}"', 'runbook: "{{ annotations. }}"'),
            ],
        },
        [
            "{d}/routing.yaml: rules[heartbeats].match[0]: invalid regex "
            '"Watchdog|(InfoInhibitor" in matcher alertname=~"Watchdog|(InfoInhibitor": missing '
            "), unterminated subpattern (got 'alertname=~\"Watchdog|(InfoInhibitor\"')",
            "{d}/routing.yaml: rules[alerts].runbook: template syntax error on line 1: expected "
            "name or number (got '{{{{ annotations. }}}}')",
        ],
        id="compile",
    ),
]


@pytest.mark.parametrize(("edits", "problems"), BROKEN)
def test_bad_directory_lists_every_problem(
    tmp_path: Path, edits: dict[str, list[tuple[str, str]]], problems: list[str]
) -> None:
    directory = shipped_copy(tmp_path / "rules", edits)
    result = check(str(directory))
    assert result.returncode == 1
    assert result.stdout == ""
    expected = [
        f"sevrouter: the rules in {directory} are invalid ({len(problems)} problem(s)):",
        *(f"  - {problem.format(d=directory)}" for problem in problems),
    ]
    assert result.stderr.splitlines() == expected


def test_single_bad_file() -> None:
    result = check(str(BAD / "empty-matcher.yaml"))
    assert result.returncode == 1
    assert result.stderr.splitlines()[1:] == [
        f"  - {BAD / 'empty-matcher.yaml'}: rules[critical].match[1]: empty matcher, which would "
        "match every alert; to match every alert, leave out match (got '')"
    ]


def test_missing_path() -> None:
    result = check("no/such/rules")
    assert result.returncode == 1
    assert result.stderr.splitlines()[1:] == ["  - no/such/rules: no such file or directory"]


def test_secrets_reports_missing_env_vars() -> None:
    result = check(str(SHIPPED), "--secrets")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"sevrouter: the rules in {SHIPPED} are invalid (2 problem(s)):",
        *(
            f"  - {SHIPPED / 'integrations.yaml'}: integrations[{name}].auth.bearer: environment "
            "variable SEVROUTER_WEBHOOK_TOKEN is not set or empty"
            for name in ("alertmanager", "grafana")
        ),
    ]


def test_secrets_present() -> None:
    result = check(str(SHIPPED), "--secrets", env={"SEVROUTER_WEBHOOK_TOKEN": TOKEN})
    assert (result.returncode, result.stdout, result.stderr) == (0, SHIPPED_OK, "")


def test_secret_values_are_never_printed(tmp_path: Path) -> None:
    # One secret resolves, one does not: the error output must not contain the one that did.
    directory = shipped_copy(
        tmp_path / "rules",
        {
            "integrations.yaml": [
                (
                    "bearer: {env: SEVROUTER_WEBHOOK_TOKEN}\n\n",
                    "bearer: {env: SEVROUTER_OTHER_TOKEN}\n\n",
                )
            ]
        },
    )
    result = check(str(directory), "--secrets", env={"SEVROUTER_WEBHOOK_TOKEN": TOKEN})
    assert result.returncode == 1
    assert "SEVROUTER_OTHER_TOKEN is not set or empty" in result.stderr
    assert TOKEN not in result.stdout + result.stderr
