"""The shipped `rules/` directory: it loads, and routes kube-prometheus and Grafana alerts the way
its comments say."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from router.alert import Alert, AlertStatus, Source, fingerprint
from router.errors import ConfigError
from router.ruleset import Decision, Ruleset, TraceStep, load_ruleset
from router.severity import Severity

SHIPPED = Path(__file__).resolve().parents[2] / "rules"
TOKEN = "shipped-rules-test-token"
ENVIRON = {"SEVROUTER_WEBHOOK_TOKEN": TOKEN}


def make_alert(labels: dict[str, str], annotations: dict[str, str] | None = None) -> Alert:
    return Alert(
        source=Source.ALERTMANAGER,
        integration="alertmanager",
        status=AlertStatus.FIRING,
        labels=labels,
        annotations=annotations or {},
        starts_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        ends_at=None,
        fingerprint=fingerprint(labels),
    )


@pytest.fixture(scope="module")
def shipped() -> Ruleset:
    return load_ruleset(SHIPPED, ENVIRON)


def test_loads_without_secrets() -> None:
    ruleset = load_ruleset(SHIPPED, {}, resolve_secrets=False)
    assert [rule.name for rule in ruleset.rules] == ["heartbeats", "alerts"]
    assert sorted(ruleset.integrations) == ["alertmanager", "grafana"]
    assert ruleset.secrets == {}


def test_loads_with_secrets_from_the_environment(shipped: Ruleset) -> None:
    for name in ("alertmanager", "grafana"):
        integration = shipped.integration(name)
        assert integration is not None
        assert integration.auth.bearer is not None
        assert shipped.secret(integration.auth.bearer).reveal() == TOKEN


def test_missing_token_names_the_variable() -> None:
    with pytest.raises(ConfigError) as caught:
        load_ruleset(SHIPPED, {})
    integrations = SHIPPED / "integrations.yaml"
    assert caught.value.problems == [
        f"{integrations}: integrations[{name}].auth.bearer: environment variable "
        "SEVROUTER_WEBHOOK_TOKEN is not set or empty"
        for name in ("alertmanager", "grafana")
    ]


def test_policies_are_the_documented_table(shipped: Ruleset) -> None:
    policies = {sev: (p.response_time, p.paging) for sev, p in shipped.config.severities.items()}
    assert policies == {
        Severity.SEV1: (0.0, "page"),
        Severity.SEV2: (900.0, "page"),
        Severity.SEV3: (3600.0, "notify_then_page"),
        Severity.SEV4: (None, "notify_business_hours"),
    }


ROUTES = [
    # kube-prometheus heartbeats fire by design and are dropped.
    pytest.param({"alertname": "Watchdog", "severity": "none"}, None, id="watchdog-dropped"),
    pytest.param({"alertname": "InfoInhibitor", "severity": "none"}, None, id="infoinhibitor"),
    # kube-prometheus severity=critical -> SEV2.
    pytest.param({"alertname": "KubeAPIDown", "severity": "critical"}, "SEV2", id="critical"),
    # severity=warning -> SEV3.
    pytest.param({"alertname": "KubePodCrashLooping", "severity": "warning"}, "SEV3", id="warning"),
    # severity=info -> SEV4.
    pytest.param({"alertname": "KubeQuotaAlmostFull", "severity": "info"}, "SEV4", id="info"),
    # severity=none on an alert that is not a heartbeat -> SEV4.
    pytest.param({"alertname": "Silent", "severity": "none"}, "SEV4", id="none-not-dropped"),
    # No severity label -> the rule's fallback, SEV3 (and the default team, platform).
    pytest.param({"alertname": "NoSeverity"}, "SEV3", id="no-severity-label"),
    # An unlisted value -> SEV3 as well.
    pytest.param({"alertname": "Odd", "severity": "bogus"}, "SEV3", id="unlisted-value"),
    # Grafana free text, compared case-insensitively.
    pytest.param({"alertname": "Checkout", "severity": "Critical"}, "SEV2", id="grafana-Critical"),
    pytest.param({"alertname": "Checkout", "severity": "HIGH"}, "SEV2", id="grafana-HIGH"),
    pytest.param({"alertname": "Checkout", "severity": "p1"}, "SEV1", id="grafana-p1"),
    pytest.param({"alertname": "Checkout", "severity": "Outage"}, "SEV1", id="grafana-Outage"),
    pytest.param({"alertname": "Checkout", "severity": "P3"}, "SEV3", id="grafana-P3"),
    pytest.param({"alertname": "Checkout", "severity": "low"}, "SEV4", id="grafana-low"),
]


@pytest.mark.parametrize(("labels", "severity"), ROUTES)
def test_routes(shipped: Ruleset, labels: dict[str, str], severity: str | None) -> None:
    evaluation = shipped.evaluate(make_alert(labels))
    if severity is None:
        assert evaluation.decisions == ()
        assert evaluation.dropped_by == "heartbeats"
        return
    assert evaluation.dropped_by is None
    assert [(d.rule, d.severity, d.team) for d in evaluation.decisions] == [
        ("alerts", Severity(severity), "platform")
    ]


def test_group_key_is_alertname_cluster_namespace(shipped: Ruleset) -> None:
    labels = {
        "alertname": "KubePodCrashLooping",
        "cluster": "prod-eu",
        "namespace": "shop",
        "pod": "cart-7d9f",
        "instance": "10.0.0.1:8080",
        "severity": "warning",
    }
    (decision,) = shipped.evaluate(make_alert(labels)).decisions
    assert decision == Decision(
        "alerts",
        Severity.SEV3,
        "platform",
        'alerts:{alertname="KubePodCrashLooping",cluster="prod-eu",namespace="shop"}',
    )


GROUPING = [
    # Alerts differing only in instance share one incident.
    pytest.param({"instance": "10.0.0.2:8080"}, True, id="other-instance-same-group"),
    # warning and critical of one alert share one incident (the critical raises its SEV).
    pytest.param({"severity": "critical"}, True, id="other-severity-same-group"),
    # Another namespace or cluster is another incident.
    pytest.param({"namespace": "billing"}, False, id="other-namespace"),
    pytest.param({"cluster": "prod-us"}, False, id="other-cluster"),
    pytest.param({"alertname": "KubePodNotReady"}, False, id="other-alertname"),
]


@pytest.mark.parametrize(("change", "same_group"), GROUPING)
def test_grouping(shipped: Ruleset, change: dict[str, str], same_group: bool) -> None:
    base = {
        "alertname": "KubePodCrashLooping",
        "cluster": "prod-eu",
        "namespace": "shop",
        "instance": "10.0.0.1:8080",
        "severity": "warning",
    }
    (first,) = shipped.evaluate(make_alert(base)).decisions
    (second,) = shipped.evaluate(make_alert(base | change)).decisions
    assert (first.group_key == second.group_key) is same_group


def test_explain_shows_the_catch_all_rule(shipped: Ruleset) -> None:
    evaluation = shipped.explain({"alertname": "KubeAPIDown", "severity": "critical"})
    assert evaluation.trace == (
        TraceStep(
            "heartbeats",
            False,
            ('alertname=~"Watchdog|InfoInhibitor" did not match (alertname is "KubeAPIDown")',),
            "no match",
        ),
        TraceStep("alerts", True, ("matches every alert",), "routed"),
    )


def test_messages_use_the_default_title_and_the_runbook_annotation(shipped: Ruleset) -> None:
    alert = make_alert(
        {"alertname": "KubePodCrashLooping", "namespace": "shop", "severity": "warning"},
        {
            "description": "Pod shop/cart is restarting 2.5 times / 10 minutes.",
            "runbook_url": "https://runbooks.prometheus-operator.dev/runbooks/kubernetes/x",
        },
    )
    (decision,) = shipped.evaluate(alert).decisions
    assert shipped.render_title(decision, alert) == "KubePodCrashLooping in shop"
    assert shipped.render_summary(decision, alert) == (
        "Pod shop/cart is restarting 2.5 times / 10 minutes."
    )
    assert shipped.render_runbook(decision, alert) == (
        "https://runbooks.prometheus-operator.dev/runbooks/kubernetes/x"
    )
