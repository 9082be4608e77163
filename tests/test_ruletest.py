"""Tests for router.ruletest: the test file format, what a case checks, the failure diffs, bad
files, and the shipped rules' own test file.

Test files are written into `rules/tests/` beside the test rules (tests/support/rules.py) with
`rules: ..`. Under those rules a SEV2 (`severity: critical`) is announced on `team-log` and pages
`pager` at minute 0, then schedule `primary` at minute 15 (alice that week, via `backup`), and is
exhausted at 25; a SEV3 (`warning`) pages `pager` after an hour. See tests/test_explain.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from router.rulefile import rule_paths
from router.ruleset import load_ruleset
from router.ruletest import exit_code, render, run_files
from tests.support.payloads import alertmanager_body

SHIPPED = Path(__file__).resolve().parents[1] / "rules"
AT = "2026-11-26T10:00:00Z"  # Thursday: alice is on call, business hours
DISK = {"alertname": "DiskFull", "severity": "critical"}
TEAM_LOG = "{minute: 0, step: 0, target: channel:team-log}"
PAGER = "{minute: 0, step: 1, target: channel:pager}"
ALICE = "{minute: 15, step: 2, target: person:alice, channel: backup}"


def write(rules_path: Path, document: Any, name: str = "case.yaml") -> Path:
    """A test file in `rules/tests/`: YAML text as is, anything else dumped."""
    path = rules_path / "tests" / name
    path.parent.mkdir(exist_ok=True)
    text = document if isinstance(document, str) else yaml.safe_dump(document, sort_keys=False)
    path.write_text(text, encoding="utf-8")
    return path


def one_case(expect: dict[str, Any], alerts: list[dict[str, str]], **extra: Any) -> Any:
    case = {"name": "the case", "alerts": [{"labels": labels} for labels in alerts]}
    return {"rules": "..", "at": AT, "cases": [case | extra | {"expect": expect}]}


def run(path: Path, rules: Path | None = None) -> tuple[int, list[str]]:
    results = run_files([path], rules=rules)
    return exit_code(results), render(results).splitlines()


PASSING = f"""\
rules: ..
at: {AT}
cases:
  - name: critical pages the pager, then whoever is on call
    alerts:
      - labels: {{alertname: DiskFull, severity: critical, cluster: eu-1}}
        annotations: {{summary: disk full}}
    expect:
      severity: SEV2
      team: platform
      rule: alerts
      group_key: 'alerts:{{alertname="DiskFull",cluster="eu-1"}}'
      incidents: 1
      dropped: false
      pages:
        - {{minute: 0, step: 1, target: channel:pager}}
        - {{minute: 0, step: 0, target: channel:team-log}}
        - {{minute: 15, step: 2, target: person:alice}}      # any channel
  - name: a page's address is checked when given; a duration bounds the pages
    alerts:
      - labels: {{alertname: Latency, severity: warning}}
    expect:
      pages_until: 2h
      pages:
        - {{minute: 0, step: 0, target: channel:team-log}}
        - {{minute: 60, step: 1, target: channel:pager}}
        - {{minute: 120, step: 2, target: person:alice, channel: backup,
            address: alice@example.com}}
  - name: one value per incident, in order of arrival
    alerts:
      - labels: {{alertname: B, severity: warning}}
      - labels: {{alertname: A, team: db, code: 500}}   # a number is a string label
    expect:
      severity: [SEV3, SEV2]
      team: [platform, db]
      rule: [alerts, database]
      incidents: 2
  - name: a case may set its own clock
    at: 2026-11-30T10:00:00Z          # the next week: bob
    alerts:
      - labels: {{alertname: DiskFull, severity: critical}}
    expect:
      pages:
        - {{minute: 0, step: 0, target: channel:team-log}}
        - {{minute: 0, step: 1, target: channel:pager}}
        - {{minute: 15, step: 2, target: person:bob, channel: backup}}
  - name: dropped alerts and resolved ones open nothing
    alerts:
      - labels: {{alertname: Watchdog}}
      - labels: {{alertname: DiskFull, severity: critical}}
        status: resolved
    expect:
      incidents: 0
      severity: []
      pages: []
  - name: from a webhook body
    payload: am.json
    integration: alertmanager
    expect:
      severity: SEV1
  - name: a silence given in the case mutes its alert
    alerts:
      - labels: {{alertname: DiskFull, severity: critical}}
      - labels: {{alertname: CPUHigh, severity: critical}}
    silences: ['alertname="DiskFull"']
    expect:
      severity: SEV2
      incidents: 1
      silenced: true
      in_maintenance: false
"""


def test_passing_file(rules_path: Path) -> None:
    (rules_path / "tests").mkdir()
    body = alertmanager_body([{"alertname": "CPUHigh", "severity": "page"}])
    (rules_path / "tests" / "am.json").write_bytes(body)
    path = write(rules_path, PASSING)
    assert run(path) == (
        0,
        [
            str(path),
            "  ok    critical pages the pager, then whoever is on call",
            "  ok    a page's address is checked when given; a duration bounds the pages",
            "  ok    one value per incident, in order of arrival",
            "  ok    a case may set its own clock",
            "  ok    dropped alerts and resolved ones open nothing",
            "  ok    from a webhook body",
            "  ok    a silence given in the case mutes its alert",
            "7 passed, 0 failed",
        ],
    )


def test_test_files_beside_the_rules_are_not_rules(rules_path: Path) -> None:
    # `rules: ..` puts test files inside the rules directory; the loader reads only its top.
    write(rules_path, PASSING)
    assert all(path.parent == rules_path for path in rule_paths(rules_path))
    load_ruleset(rules_path, {}, resolve_secrets=False)


@pytest.mark.parametrize(
    ("alerts", "expect", "extra", "details"),
    [
        # A scalar mismatch fits on one line.
        pytest.param(
            [DISK],
            {"severity": "SEV1"},
            {},
            ["severity: expected SEV1, got SEV2"],
            id="severity",
        ),
        # Every failing key is reported, in the order of the format.
        pytest.param(
            [DISK],
            {"rule": "database", "team": "db"},
            {},
            ["team: expected db, got platform", "rule: expected database, got alerts"],
            id="team-and-rule",
        ),
        # A long value goes on two lines, expected above actual.
        pytest.param(
            [DISK],
            {"group_key": 'alerts:{alertname="DiskFull"}'},
            {},
            [
                "group_key:",
                '  expected alerts:{alertname="DiskFull"}',
                '  got      alerts:{alertname="DiskFull",cluster=""}',
            ],
            id="group-key",
        ),
        # Several incidents: the actual value is a list, one per incident.
        pytest.param(
            [DISK, {"alertname": "Latency", "severity": "warning"}],
            {"severity": "SEV2", "incidents": 1},
            {},
            ["severity: expected SEV2, got [SEV2, SEV3]", "incidents: expected 1, got 2"],
            id="several-incidents",
        ),
        # No incident at all.
        pytest.param(
            [{"alertname": "Watchdog"}],
            {"team": "platform"},
            {},
            ["team: expected platform, got nothing"],
            id="no-incident",
        ),
        # `dropped: true` means every alert; a mix shows each alert.
        pytest.param(
            [{"alertname": "Watchdog"}, DISK],
            {"dropped": True},
            {},
            ["dropped: expected true, got [true, false]"],
            id="dropped-mixed",
        ),
        pytest.param(
            [DISK],
            {"dropped": True},
            {},
            ["dropped: expected true, got false"],
            id="dropped",
        ),
        # Pages: both lists in time order; matched lines unmarked, missing `-`, unexpected `+`.
        pytest.param(
            [DISK],
            {
                "pages": [
                    {"minute": 0, "step": 1, "target": "channel:pager"},
                    {"minute": 15, "step": 2, "target": "person:bob"},
                ]
            },
            {},
            [
                "pages (- expected, + actual, until minute 60):",
                f"  + {TEAM_LOG}",
                f"    {PAGER}",
                f"  + {ALICE}",
                "  - {minute: 15, step: 2, target: person:bob}",
            ],
            id="pages",
        ),
        # A person's channel, when given, must match.
        pytest.param(
            [DISK],
            {
                "pages": [
                    {"minute": 0, "step": 0, "target": "channel:team-log"},
                    {"minute": 0, "step": 1, "target": "channel:pager"},
                    {"minute": 15, "step": 2, "target": "person:alice", "channel": "pager"},
                ]
            },
            {},
            [
                "pages (- expected, + actual, until minute 60):",
                f"    {TEAM_LOG}",
                f"    {PAGER}",
                f"  - {ALICE.replace('backup', 'pager')}",
                f"  + {ALICE}",
            ],
            id="page-channel",
        ),
        # An address, when any expectation gives one, is shown for unexpected pages too.
        pytest.param(
            [DISK],
            {
                "pages_until": 15,
                "pages": [
                    {"minute": 0, "step": 0, "target": "channel:team-log"},
                    {"minute": 0, "step": 1, "target": "channel:pager"},
                    {"minute": 15, "step": 2, "target": "person:alice", "address": "a@b.c"},
                ],
            },
            {},
            [
                "pages (- expected, + actual, until minute 15):",
                f"    {TEAM_LOG}",
                f"    {PAGER}",
                "  - {minute: 15, step: 2, target: person:alice, address: a@b.c}",
                "  + {minute: 15, step: 2, target: person:alice, channel: backup, "
                "address: alice@example.com}",
            ],
            id="page-address",
        ),
        # pages_until bounds the simulation: the minute-15 page is beyond 10.
        pytest.param(
            [DISK],
            {
                "pages_until": 10,
                "pages": [
                    {"minute": 0, "step": 0, "target": "channel:team-log"},
                    {"minute": 0, "step": 1, "target": "channel:pager"},
                    {"minute": 15, "step": 2, "target": "person:alice"},
                ],
            },
            {},
            [
                "pages (- expected, + actual, until minute 10):",
                f"    {TEAM_LOG}",
                f"    {PAGER}",
                "  - {minute: 15, step: 2, target: person:alice}",
            ],
            id="pages-until",
        ),
        # Nobody on call (before the rotation starts): said below the pages.
        pytest.param(
            [DISK],
            {"pages": []},
            {"at": "2026-01-01T10:00:00Z"},
            [
                "pages (- expected, + actual, until minute 60):",
                f"  + {TEAM_LOG}",
                f"  + {PAGER}",
                "  ! minute 15: schedule primary has nobody on call",
            ],
            id="nobody-on-call",
        ),
    ],
)
def test_failing_case(
    rules_path: Path,
    alerts: list[dict[str, str]],
    expect: dict[str, Any],
    extra: dict[str, Any],
    details: list[str],
) -> None:
    path = write(rules_path, one_case(expect, alerts, **extra))
    assert run(path) == (
        1,
        [
            str(path),
            "  FAIL  the case",
            *(f"        {line}" for line in details),
            "0 passed, 1 failed",
        ],
    )


@pytest.mark.parametrize(
    ("text", "problems"),
    [
        # YAML errors say where.
        pytest.param(
            "at: [\n",
            [
                "not valid YAML: line 2, column 1: expected the node content, but found "
                "'<stream end>'"
            ],
            id="yaml",
        ),
        # A key given twice is an error, not the last one silently.
        pytest.param(
            f"at: {AT}\nat: {AT}\ncases: []\n",
            ["not valid YAML: line 2, column 1: duplicate key 'at'"],
            id="duplicate-key",
        ),
        pytest.param("- a\n", ["expected a mapping with at and cases"], id="not-a-mapping"),
        # Required keys, unknown keys.
        pytest.param(
            "rules: ..\ncase: []\n",
            ["at: Field required", "cases: Field required", "case: unknown key"],
            id="missing-and-unknown",
        ),
        pytest.param(
            f"at: {AT}\ncases: []\n",
            ["cases: List should have at least 1 item after validation, not 0"],
            id="no-cases",
        ),
        # Problems inside a case name the case by index and name.
        pytest.param(
            f"at: {AT}\ncases:\n"
            "  - name: one\n"
            "    alerts: [{labels: {a: b}, state: firing}]\n"
            "    expect: {severity: SEV9, team: [a, 3]}\n"
            "  - name: two\n"
            "    alerts: [{labels: {a: b}}]\n"
            "    expect: {pages: [{minute: 0, step: 1, target: schedule:primary}]}\n",
            [
                'cases[0] "one": alerts[0].state: unknown key',
                "cases[0] \"one\": expect.severity: Input should be 'SEV1', 'SEV2', 'SEV3' or "
                "'SEV4' (got 'SEV9')",
                'cases[0] "one": expect.team[1]: Input should be a valid string (got 3)',
                'cases[1] "two": expect.pages[0].target: write channel:NAME or person:NAME '
                "(a schedule pages the person on call) (got 'schedule:primary')",
            ],
            id="case-problems",
        ),
        # A case needs a name, alerts or a payload (not both), and something to check.
        pytest.param(
            f"at: {AT}\ncases:\n  - alerts: [{{labels: {{a: b}}}}]\n    expect: {{incidents: 1}}\n",
            ["cases[0]: name: Field required"],
            id="no-name",
        ),
        pytest.param(
            f"at: {AT}\ncases:\n  - name: x\n    expect: {{incidents: 1}}\n",
            ['cases[0] "x": give either alerts or payload'],
            id="no-alerts",
        ),
        pytest.param(
            f"at: {AT}\ncases:\n  - name: x\n    alerts: [{{labels: {{a: b}}}}]\n"
            "    integration: grafana\n    expect: {incidents: 1}\n",
            ['cases[0] "x": integration goes with payload (alerts are given as labels)'],
            id="integration-without-payload",
        ),
        pytest.param(
            f"at: {AT}\ncases:\n  - name: x\n    alerts: [{{labels: {{a: b}}}}]\n"
            "    expect: {pages_until: 5}\n",
            [
                'cases[0] "x": expect: give at least one of severity, team, rule, group_key, '
                "incidents, dropped, pages, silenced, inhibited, in_maintenance"
            ],
            id="nothing-expected",
        ),
        pytest.param(
            f"at: {AT}\ncases:\n"
            "  - {name: x, alerts: [{labels: {a: b}}], expect: {incidents: 1}}\n"
            "  - {name: x, alerts: [{labels: {a: b}}], expect: {incidents: 0}}\n",
            ["cases: two cases are named 'x'; names must be unique"],
            id="duplicate-names",
        ),
    ],
)
def test_bad_file(rules_path: Path, text: str, problems: list[str]) -> None:
    path = write(rules_path, text)
    assert run(path) == (
        2,
        [
            str(path),
            "  ERROR not a valid test file",
            *(f"        {problem}" for problem in problems),
            "0 passed, 0 failed, 1 error",
        ],
    )


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        # The payload path is relative to the test file.
        pytest.param(
            {"payload": "missing.json"},
            "payload: cannot read {tests}/missing.json: No such file or directory",
            id="missing-payload",
        ),
        pytest.param(
            {"payload": "case.yaml", "integration": "zabbix"},
            "integration: unknown integration 'zabbix'; one of alertmanager, basic, grafana, open",
            id="unknown-integration",
        ),
        pytest.param(
            {"payload": "case.yaml", "integration": "grafana"},
            "payload: {tests}/case.yaml is not a valid grafana payload: body is not JSON: "
            "expected value at line 1 column 1",
            id="invalid-payload",
        ),
    ],
)
def test_case_that_cannot_run(rules_path: Path, extra: dict[str, str], error: str) -> None:
    # The other cases of the file still run.
    document = one_case({"severity": "SEV2"}, [DISK])
    document["cases"].insert(0, {"name": "bad", **extra, "expect": {"severity": "SEV2"}})
    path = write(rules_path, document)
    assert run(path) == (
        2,
        [
            str(path),
            "  ERROR bad",
            f"        {error.format(tests=path.parent)}",
            "  ok    the case",
            "1 passed, 0 failed, 1 error",
        ],
    )


def test_rules_option_wins_over_the_file(rules_path: Path, tmp_path: Path) -> None:
    document = one_case({"severity": "SEV2"}, [DISK]) | {"rules": "nowhere"}
    path = write(rules_path, document)
    assert run(path, rules=rules_path)[0] == 0
    assert run(path)[1][1:3] == [
        "  ERROR the rules in " + str(path.parent / "nowhere") + " are invalid",
        f"        {path.parent / 'nowhere'}: no such file or directory",
    ]


def test_file_without_rules(rules_path: Path) -> None:
    document = one_case({"severity": "SEV2"}, [DISK])
    del document["rules"]
    path = write(rules_path, document)
    assert run(path) == (
        2,
        [
            str(path),
            "  ERROR no rules: add `rules: ..` (relative to this file) or pass --rules",
            "0 passed, 0 failed, 1 error",
        ],
    )


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    assert run(path) == (
        2,
        [
            str(path),
            "  ERROR not a valid test file",
            "        cannot read: No such file or directory",
            "0 passed, 0 failed, 1 error",
        ],
    )


def test_several_files_one_summary(rules_path: Path) -> None:
    # Exit 2 (could not run) outranks 1 (failed); rules are shared between files.
    good = write(rules_path, one_case({"severity": "SEV2"}, [DISK]), "good.yaml")
    bad = write(rules_path, one_case({"severity": "SEV3"}, [DISK]), "bad.yaml")
    broken = write(rules_path, "at: [\n", "broken.yaml")
    results = run_files([good, bad])
    assert (exit_code(results), render(results).splitlines()[-1]) == (1, "1 passed, 1 failed")
    results = run_files([good, bad, broken])
    assert (exit_code(results), render(results).splitlines()[-1]) == (
        2,
        "1 passed, 1 failed, 1 error",
    )


def test_shipped_rules_pass_their_tests() -> None:
    results = run_files(sorted((SHIPPED / "tests").glob("*.yaml")))
    output = render(results)
    assert exit_code(results) == 0, output
    assert output.endswith(" passed, 0 failed\n")


def test_shipped_test_files_are_not_rules() -> None:
    assert [path.name for path in rule_paths(SHIPPED)] == [
        path.name for path in sorted(SHIPPED.glob("*.yaml"))
    ]
    assert not any("tests" in path.parts for path in rule_paths(SHIPPED))
