"""Inhibition rules: while a source alert fires, matching targets with equal labels are muted
(recorded, never paged), consistently for every receiver because the sources live in Redis."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from router.errors import ConfigError
from router.rulefile import load_rules
from router.ruleset import compile_ruleset
from tests.support.payloads import alertmanager_body
from tests.support.rules import TOKEN
from tests.support.worker import TestWorker

AM = "/api/v1/webhooks/alertmanager"
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
OUTAGE = {"alertname": "ApiDown", "severity": "page", "cluster": "eu-1"}
WARNING = {"alertname": "LatencyHigh", "severity": "warning", "cluster": "eu-1"}


def post(client: httpx.Client, *alerts: dict[str, str], status: str = "firing") -> dict[str, Any]:
    ends = "2026-11-26T11:00:00Z" if status == "resolved" else "0001-01-01T00:00:00Z"
    body = alertmanager_body(alerts, status=status, ends_at=ends)
    response = client.post(AM, content=body, headers=HEADERS)
    assert response.status_code == 202, response.text
    answer: dict[str, Any] = response.json()
    return answer


def test_target_is_muted_while_source_fires(client: httpx.Client) -> None:
    post(client, OUTAGE)
    answer = post(client, WARNING)
    assert answer["outcomes"] == {"muted": 1}
    assert answer["muted"] == {"inhibited": 1}
    incidents = client.get("/api/v1/incidents").json()["incidents"]
    assert [(i["id"], i["severity"]) for i in incidents] == [("INC-1", "SEV1")]


def test_source_and_target_in_one_delivery(client: httpx.Client) -> None:
    # Sources are registered before targets are judged, whatever the order in the body.
    answer = post(client, WARNING, OUTAGE)
    assert answer["outcomes"] == {"opened": 1, "muted": 1}


def test_other_cluster_is_not_inhibited(client: httpx.Client) -> None:
    post(client, OUTAGE)
    answer = post(client, WARNING | {"cluster": "us-1"})
    assert answer["outcomes"] == {"opened": 1}


def test_target_pages_once_the_source_resolves(client: httpx.Client, worker: TestWorker) -> None:
    post(client, OUTAGE)
    assert post(client, WARNING)["outcomes"] == {"muted": 1}
    post(client, OUTAGE, status="resolved")
    # Alertmanager re-sends the still-firing warning: now it is handled afresh and opens.
    answer = post(client, WARNING)
    assert answer["outcomes"] == {"opened": 1}
    assert answer["incidents"]["opened"] == ["INC-2"]


def test_resolve_of_a_muted_alert_is_quiet(client: httpx.Client) -> None:
    post(client, OUTAGE)
    post(client, WARNING)
    answer = post(client, WARNING, status="resolved")
    assert answer["outcomes"] == {"muted": 1}
    assert len(client.get("/api/v1/incidents").json()["incidents"]) == 1


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        # A bad matcher names the side and index.
        pytest.param(
            {"name": "x", "source": 'severity=="page"', "target": 'a="b"'},
            "inhibit_rules[x].source[0]",
            id="bad-matcher",
        ),
        # An empty matcher would inhibit every alert.
        pytest.param(
            {"name": "x", "source": 'a="b"', "target": ""},
            "empty matcher would match every alert",
            id="empty-target",
        ),
    ],
)
def test_bad_inhibit_rules(
    tmp_path: Any, rules_path: Any, environ: dict[str, str], rule: dict[str, Any], message: str
) -> None:
    import yaml

    (rules_path / "inhibit.yaml").write_text(yaml.safe_dump({"inhibit_rules": [rule]}))
    with pytest.raises(ConfigError) as raised:
        compile_ruleset(load_rules(rules_path), environ)
    assert any(message in problem for problem in raised.value.problems)
