"""`sevrouter test` and `sevrouter explain`, run as subprocesses exactly as a user or CI job runs
them: against the shipped rules and their test file, the test rules (tests/support/rules.py), and
for `explain INC-N` a receiver served for real by the `client` fixture."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import yaml

from router.explain import alert_from_labels, explain
from router.ruleset import load_ruleset
from tests.support.payloads import SHARED, alertmanager_body
from tests.support.rules import TOKEN

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "rules"
AT = "2026-11-26T10:00:00Z"


def sevrouter(*args: str) -> subprocess.CompletedProcess[str]:
    """`python -m router ARGS` in the repository, with no SEVROUTER_* variables."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SEVROUTER_")}
    return subprocess.run(
        [sys.executable, "-m", "router", *args],
        cwd=REPO,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# --- sevrouter test ------------------------------------------------------------------------------


def test_shipped_rule_tests_pass() -> None:
    # As CI runs them: `sevrouter test rules/tests/*.yaml`, paths relative to the repository.
    files = sorted(str(p.relative_to(REPO)) for p in (SHIPPED / "tests").glob("*.yaml"))
    cases = sum(len(yaml.safe_load((REPO / f).read_text())["cases"]) for f in files)
    result = sevrouter("test", *files)
    assert (result.returncode, result.stderr) == (0, ""), result.stdout
    lines = result.stdout.splitlines()
    assert [line for line in lines if line.startswith("  ") and not line.startswith("  ok ")] == []
    assert lines[-1] == f"{cases} passed, 0 failed"


def test_failing_file_exits_1_with_the_diff(tmp_path: Path) -> None:
    path = tmp_path / "wrong.yaml"
    path.write_text(
        f"rules: {SHIPPED}\n"
        f"at: {AT}\n"
        "cases:\n"
        "  - name: critical is SEV1\n"
        "    alerts: [{labels: {alertname: DiskFull, severity: critical}}]\n"
        "    expect:\n"
        "      severity: SEV1\n"
        "      pages: [{minute: 0, step: 1, target: channel:console}]\n"
        "  - name: warning is SEV3\n"
        "    alerts: [{labels: {alertname: CPUThrottlingHigh, severity: warning}}]\n"
        "    expect: {severity: SEV3}\n"
    )
    result = sevrouter("test", str(path))
    assert (result.returncode, result.stderr) == (1, "")
    assert result.stdout == (
        f"{path}\n"
        "  FAIL  critical is SEV1\n"
        "        severity: expected SEV1, got SEV2\n"
        "        pages (- expected, + actual, until minute 60):\n"
        "          + {minute: 0, step: 0, target: channel:console}\n"
        "            {minute: 0, step: 1, target: channel:console}\n"
        "  ok    warning is SEV3\n"
        "1 passed, 1 failed\n"
    )


def test_bad_file_exits_2_naming_file_and_case(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        f"at: {AT}\ncases:\n  - name: typo\n    alerts: [{{labels: {{a: b}}}}]\n"
        "    expect: {sevrity: SEV2}\n"
    )
    result = sevrouter("test", "--rules", "rules", str(path))
    assert (result.returncode, result.stderr) == (2, "")
    assert result.stdout == (
        f"{path}\n"
        "  ERROR not a valid test file\n"
        '        cases[0] "typo": expect.sevrity: unknown key\n'
        "0 passed, 0 failed, 1 error\n"
    )


def test_rules_option(tmp_path: Path) -> None:
    # No `rules:` in the file: --rules (relative to the working directory) says where.
    path = tmp_path / "t.yaml"
    path.write_text(
        f"at: {AT}\ncases:\n  - name: dropped\n    alerts: [{{labels: {{alertname: Watchdog}}}}]\n"
        "    expect: {dropped: true}\n"
    )
    result = sevrouter("test", "--rules", "rules", str(path))
    assert (result.returncode, result.stdout) == (
        0,
        f"{path}\n  ok    dropped\n1 passed, 0 failed\n",
    )


def test_test_needs_a_file() -> None:
    result = sevrouter("test")
    assert result.returncode == 2
    assert "the following arguments are required: TESTFILE" in result.stderr


# --- sevrouter explain ---------------------------------------------------------------------------


def test_explain_labels() -> None:
    result = sevrouter(
        "explain", "alertname=DiskFull", 'severity="critical"', "cluster=eu-1", "--at", AT
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == (
        'alert {alertname="DiskFull", cluster="eu-1", severity="critical"} (firing) at '
        "2026-11-26 10:00 UTC\n"
        "  rules, in order:\n"
        "    heartbeats  no match          rules/routing.yaml\n"
        '      alertname=~"Watchdog|InfoInhibitor" did not match (alertname is "DiskFull")\n'
        "    alerts      routed            rules/routing.yaml\n"
        "      matches every alert\n"
        '  decision: rule alerts -> SEV2 (severity="critical"), team platform\n'
        '    group key: alerts:{alertname="DiskFull",cluster="eu-1",namespace=""}\n'
        "    paging: page, response time 15m\n"
        "    if nobody acknowledges:\n"
        "      now     team channel: channel:console\n"
        "      now     step 1: channel:console\n"
        "      +15m    escalation exhausted: every step paged, unacknowledged\n"
    )


def test_explain_json_is_the_report() -> None:
    labels = {"alertname": "NodeClockSkew", "severity": "info"}
    result = sevrouter("explain", "alertname=NodeClockSkew", "severity=info", "--at", AT, "--json")
    assert (result.returncode, result.stderr) == (0, "")
    at = datetime(2026, 11, 26, 10, tzinfo=UTC)
    ruleset = load_ruleset(Path("rules"), {}, resolve_secrets=False)
    # Rule files are named as the command was given them: `rules/...` from the repository.
    expected = json.loads(json.dumps(explain(ruleset, [alert_from_labels(labels, at)], at)))
    assert json.loads(result.stdout) == expected


def test_explain_payload() -> None:
    # Grafana's own example: two alerts, neither with a severity label.
    result = sevrouter(
        "explain",
        "--payload",
        str(SHARED / "grafana_firing.json"),
        "--integration",
        "grafana",
        "--at",
        AT,
        "--json",
    )
    assert (result.returncode, result.stderr) == (0, "")
    alerts = json.loads(result.stdout)["alerts"]
    assert [(a["labels"]["alertname"], a["decisions"][0]["severity"]) for a in alerts] == [
        ("High memory usage", "SEV3"),
        ("High CPU usage", "SEV3"),
    ]


@pytest.mark.parametrize(
    ("args", "stderr"),
    [
        # Nothing to explain, or two things at once.
        pytest.param(
            [], "explain takes one of: LABEL=VALUE ..., --payload FILE, or INC-N", id="none"
        ),
        pytest.param(
            ["a=b", "--payload", "x.json"],
            "explain takes one of: LABEL=VALUE ..., --payload FILE, or INC-N",
            id="labels-and-payload",
        ),
        # INC-N stands alone; next to labels it is a bad label.
        pytest.param(["INC-4", "a=b"], "'INC-4' is not LABEL=VALUE", id="incident-and-labels"),
        pytest.param(["a=b", "a=c"], "label 'a' is given twice", id="duplicate-label"),
        pytest.param(["=b"], "'=b' is not LABEL=VALUE", id="no-name"),
        pytest.param(
            ["a=b", "--at", "soon"],
            "'soon' is not an ISO time (e.g. 2026-11-26T10:00:00Z)",
            id="bad-at",
        ),
        pytest.param(
            ["a=b", "--integration", "grafana"], "--integration goes with --payload", id="integ"
        ),
        pytest.param(
            ["--payload", "x.json", "--integration", "zabbix"],
            "unknown integration 'zabbix'; one of alertmanager, grafana",
            id="unknown-integration",
        ),
        pytest.param(
            ["--payload", "missing.json"],
            "cannot read missing.json: No such file or directory",
            id="missing-payload",
        ),
        pytest.param(
            ["--payload", "rules/tests/shipped.yaml"],
            "rules/tests/shipped.yaml is not a valid alertmanager payload: body is not JSON: "
            "expected value at line 1 column 1",
            id="invalid-payload",
        ),
    ],
)
def test_explain_usage_errors(args: list[str], stderr: str) -> None:
    result = sevrouter("explain", *args)
    assert (result.returncode, result.stdout, result.stderr) == (2, "", f"sevrouter: {stderr}\n")


def test_explain_with_invalid_rules(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text("rules: [{name: x, severity: SEV9}]\n")
    result = sevrouter("explain", "a=b", "--rules", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.startswith(f"sevrouter: the rules in {tmp_path} are invalid:\n  - ")


def test_explain_live_incident(client: httpx.Client, rules_path: Path) -> None:
    # INC-1 opened by a webhook; explained with the local rules at the time it opened.
    body = alertmanager_body([{"alertname": "DiskFull", "severity": "critical", "cluster": "a"}])
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    assert client.post("/api/v1/webhooks/alertmanager", content=body, headers=headers).is_success
    opened = client.get("/api/v1/incidents/INC-1").json()["opened_at"]
    url = str(client.base_url)
    result = sevrouter("explain", "inc-1", "--url", url, "--rules", str(rules_path), "--json")
    assert (result.returncode, result.stderr) == (0, "")
    report = json.loads(result.stdout)
    assert report["live"] == {
        "incident": "INC-1",
        "rule": "alerts",
        "severity": "SEV2",
        "team": "platform",
    }
    assert report["at"] == opened
    (alert,) = report["alerts"]
    assert alert["labels"] == {"alertname": "DiskFull", "severity": "critical", "cluster": "a"}
    text = sevrouter("explain", "INC-1", "--url", url, "--rules", str(rules_path))
    assert text.stdout.splitlines()[0] == (
        "INC-1 was recorded as rule alerts, SEV2, team platform; "
        "explained below with the local rules"
    )


def test_explain_unknown_incident(client: httpx.Client, rules_path: Path) -> None:
    result = sevrouter(
        "explain", "INC-99", "--url", str(client.base_url), "--rules", str(rules_path)
    )
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == "sevrouter: no incident 'INC-99' (HTTP 404)\n"
