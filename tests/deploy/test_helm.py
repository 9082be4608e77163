"""The Helm chart: lint, render every value set, validate each manifest against the Kubernetes
API schema of a fixed version, and pin the fields a deployment depends on."""

from __future__ import annotations

import re
import shutil
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import promql_parser
import pytest
import yaml

from router.redisurl import parse_url
from router.ruleset import load_ruleset
from tests.deploy.conftest import (
    CHART,
    NAMESPACE,
    RELEASE,
    VALUE_SETS,
    Manifest,
    Rendered,
    run_helm,
    template_args,
)
from tests.deploy.tools import ROOT

KUBERNETES_VERSION = "1.30.0"
RULES_PATH = "/etc/sevrouter/rules"
PORT = 9095
UID = 10001
# Kinds from prometheus-operator: not in the Kubernetes schema, checked by check_custom().
CUSTOM_KINDS = {"ServiceMonitor", "PrometheusRule"}
# Metrics the alerts use that the application does not export yet.
PENDING_METRICS: set[str] = set()
COMPONENTS = ("receiver", "worker")


def test_helm_lint_is_clean_for_every_value_set(helm: Path) -> None:
    for name, files in VALUE_SETS.items():
        args = ["lint", "--strict", str(CHART), "--namespace", NAMESPACE]
        for values in files:
            args += ["--values", str(CHART / values)]
        result = run_helm(helm, *args)
        assert "0 chart(s) failed" in result.stdout, f"{name}: {result.stdout}"
        assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout, result.stdout


@pytest.mark.parametrize("value_set", list(VALUE_SETS))
def test_manifests_validate_against_kubernetes_schema(
    rendered: dict[str, Rendered], value_set: str
) -> None:
    for manifest in rendered[value_set].manifests:
        if manifest["kind"] in CUSTOM_KINDS:
            check_custom(manifest)
            continue
        # strict: unknown fields are errors too, as a typo in a template would be.
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
        labels = manifest["metadata"]["labels"]
        assert labels["app.kubernetes.io/instance"] == RELEASE
        assert manifest["metadata"]["namespace"] == NAMESPACE


def test_each_value_set_renders_the_expected_resources(rendered: dict[str, Rendered]) -> None:
    base = {"Deployment", "Service", "ServiceAccount", "PodDisruptionBudget"}
    assert rendered["defaults"].kinds() == base | {"ConfigMap"}
    assert rendered["sentinel"].kinds() == base | {"ConfigMap"}
    # GitOps: the rules ConfigMap and the Secret are someone else's.
    assert rendered["gitops"].kinds() == base
    assert rendered["full"].kinds() == base | {
        "ConfigMap",
        "Secret",
        "HorizontalPodAutoscaler",
        "ServiceMonitor",
        "PrometheusRule",
        "NetworkPolicy",
    }
    assert len(rendered["full"].all("NetworkPolicy")) == 2
    assert len(rendered["full"].all("HorizontalPodAutoscaler")) == 2


@pytest.mark.parametrize("value_set", list(VALUE_SETS))
def test_pods_run_locked_down(rendered: dict[str, Rendered], value_set: str) -> None:
    for component in COMPONENTS:
        pod = rendered[value_set].deployment(component)["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == UID
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        assert pod["serviceAccountName"] == RELEASE
        container = rendered[value_set].container(component)
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["runAsNonRoot"] is True
        assert security["capabilities"] == {"drop": ["ALL"]}
        assert security["seccompProfile"] == {"type": "RuntimeDefault"}
        # A read-only root still needs a writable /tmp.
        mounts = {m["name"]: m for m in container["volumeMounts"]}
        assert mounts["tmp"]["mountPath"] == "/tmp"  # noqa: S108 - a path in a manifest
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes["tmp"]["emptyDir"]["medium"] == "Memory"
        assert container["resources"]["requests"]["memory"]
        assert container["resources"]["limits"]["memory"]


def test_receiver_probes_and_port(rendered: dict[str, Rendered]) -> None:
    container = rendered["defaults"].container("receiver")
    assert container["args"] == ["serve", "--host", "0.0.0.0", "--port", str(PORT)]
    assert container["ports"] == [{"name": "http", "containerPort": PORT, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "5"]
    deployment = rendered["defaults"].deployment("receiver")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > 30


def test_worker_runs_the_worker_command_without_http(rendered: dict[str, Rendered]) -> None:
    container = rendered["defaults"].container("worker")
    assert container["args"] == ["worker"]
    assert "ports" not in container
    assert "readinessProbe" not in container and "livenessProbe" not in container
    assert rendered["defaults"].deployment("worker")["spec"]["replicas"] == 2
    # A probe given in values is used as is.
    probe = rendered["full"].container("worker")["livenessProbe"]
    assert probe["exec"]["command"][0] == "python"


def test_service_gives_the_documented_webhook_url(rendered: dict[str, Rendered]) -> None:
    service = rendered["defaults"].one("Service", RELEASE)
    assert service["spec"]["ports"] == [
        {"name": "http", "port": PORT, "targetPort": "http", "protocol": "TCP"}
    ]
    assert service["spec"]["selector"]["app.kubernetes.io/component"] == "receiver"
    receiver_labels = rendered["defaults"].deployment("receiver")["spec"]["template"]["metadata"][
        "labels"
    ]
    assert service["spec"]["selector"].items() <= receiver_labels.items()


def test_notes_print_the_alertmanager_webhook_url(helm: Path, tmp_path: Path) -> None:
    # helm template leaves NOTES.txt out: render it as a ConfigMap in a copy of the chart.
    chart = tmp_path / "sevrouter"
    shutil.copytree(CHART, chart)
    notes = (chart / "templates" / "NOTES.txt").read_text(encoding="utf-8")
    probe = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n  notes: |\n"
    (chart / "templates" / "notes-probe.yaml").write_text(
        probe + textwrap.indent(notes, "    "), encoding="utf-8"
    )
    output = run_helm(
        helm,
        "template",
        RELEASE,
        str(chart),
        "--namespace",
        NAMESPACE,
        "--show-only",
        "templates/notes-probe.yaml",
    ).stdout
    text = yaml.safe_load(output)["data"]["notes"]
    url = f"http://{RELEASE}.{NAMESPACE}.svc:{PORT}/api/v1/webhooks/alertmanager"
    assert url in text
    assert "SEVROUTER_WEBHOOK_TOKEN" in text  # the defaults name no Secret: say what to create


@pytest.mark.parametrize("value_set", list(VALUE_SETS))
def test_rules_are_mounted_where_sevrouter_rules_points(
    rendered: dict[str, Rendered], value_set: str
) -> None:
    for component in COMPONENTS:
        container = rendered[value_set].container(component)
        env = env_values(container)
        assert env["SEVROUTER_RULES"] == RULES_PATH
        assert env["SEVROUTER_LOG_FORMAT"] == "json"
        mount = next(m for m in container["volumeMounts"] if m["name"] == "rules")
        assert mount == {"name": "rules", "mountPath": RULES_PATH, "readOnly": True}


def test_rules_configmap_holds_the_shipped_rules_and_passes_check(
    rendered: dict[str, Rendered], tmp_path: Path
) -> None:
    configmap = rendered["defaults"].one("ConfigMap", f"{RELEASE}-rules")
    assert sorted(configmap["data"]) == sorted(p.name for p in (ROOT / "rules").glob("*.yaml"))
    rules = mount_rules(rendered["defaults"], tmp_path)
    ruleset = load_ruleset(rules, {"SEVROUTER_WEBHOOK_TOKEN": "t"}, resolve_secrets=True)
    assert ruleset.integrations


def test_changed_rules_and_templates_pass_check_with_the_pods_environment(
    rendered: dict[str, Rendered], tmp_path: Path
) -> None:
    full = rendered["full"]
    rules = mount_rules(full, tmp_path)
    assert (rules / "templates" / "slack.text.j2").read_text().startswith(":rotating_light:")
    assert "oncall-webhook" in (rules / "teams.yaml").read_text()
    # The environment a pod gets: plain env values plus the chart-made Secret (envFrom).
    secret = full.one("Secret", f"{RELEASE}-env")
    environ = {**env_values(full.container("worker")), **secret["stringData"]}
    ruleset = load_ruleset(rules, environ, resolve_secrets=True)
    assert {c.name for c in ruleset.config.channels} == {"console", "oncall-webhook"}


def test_chart_default_rules_are_the_repository_rules() -> None:
    """files/rules is a copy of rules/ (helm cannot read outside the chart): `make chart-rules`."""
    shipped = {p.name: p.read_bytes() for p in (ROOT / "rules").glob("*.yaml")}
    in_chart = {p.name: p.read_bytes() for p in (CHART / "files" / "rules").glob("*.yaml")}
    assert in_chart == shipped, "helm/sevrouter/files/rules differs from rules/: make chart-rules"


def test_rules_checksum_rolls_pods_when_rules_change(
    rendered: dict[str, Rendered], render: Callable[..., list[Manifest]]
) -> None:
    def checksums(manifests: Rendered) -> list[str | None]:
        return [
            manifests.deployment(c)["spec"]["template"]["metadata"]
            .get("annotations", {})
            .get("checksum/rules")
            for c in COMPONENTS
        ]

    before = checksums(rendered["defaults"])
    assert before[0] is not None and re.fullmatch(r"[0-9a-f]{64}", before[0])
    assert before[0] == before[1]
    changed = Rendered(
        "changed", render(sets=["rules.files.severities\\.yaml=" + "incidents: {flap_window: 5m}"])
    )
    after = checksums(changed)
    assert after[0] == after[1] and after[0] != before[0]
    # Other value changes leave it alone: no needless restarts.
    other = Rendered("other", render(sets=["config.logLevel=debug"]))
    assert checksums(other) == before
    # Existing ConfigMaps are invisible to the chart: no checksum, a Reloader annotation instead.
    gitops = rendered["gitops"]
    assert checksums(gitops) == [None, None]
    for component in COMPONENTS:
        annotations = gitops.deployment(component)["metadata"]["annotations"]
        assert annotations["configmap.reloader.stakater.com/reload"] == "sevrouter-rules-from-git"


def test_existing_configmap_and_secret_are_mounted_as_given(rendered: dict[str, Rendered]) -> None:
    gitops = rendered["gitops"]
    for component in COMPONENTS:
        container = gitops.container(component)
        assert container["envFrom"] == [{"secretRef": {"name": "sevrouter-env"}}]
        # REDIS_URL comes from that Secret: the chart sets none that would override it.
        assert "REDIS_URL" not in env_values(container)
        pod = gitops.deployment(component)["spec"]["template"]["spec"]
        volume = next(v for v in pod["volumes"] if v["name"] == "rules")
        assert volume["configMap"]["name"] == "sevrouter-rules-from-git"
        assert {"key": "slack-text", "path": "templates/slack.text.j2"} in volume["configMap"][
            "items"
        ]
        assert container["image"] == (
            "registry.example.com/platform/sevrouter:0.1.0@sha256:"
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
        )


def test_chart_made_secret_is_used_and_rolls_pods(rendered: dict[str, Rendered]) -> None:
    full = rendered["full"]
    assert full.one("Secret", f"{RELEASE}-env")["type"] == "Opaque"
    for component in COMPONENTS:
        assert full.container(component)["envFrom"] == [{"secretRef": {"name": f"{RELEASE}-env"}}]
        annotations = full.deployment(component)["spec"]["template"]["metadata"]["annotations"]
        assert re.fullmatch(r"[0-9a-f]{64}", annotations["checksum/secret"])
    # The defaults name no Secret at all.
    assert "envFrom" not in rendered["defaults"].container("receiver")


def test_redis_urls(rendered: dict[str, Rendered]) -> None:
    assert env_values(rendered["defaults"].container("worker"))["REDIS_URL"] == (
        "redis://redis-master:6379/0"
    )
    for name, url in (
        (
            "sentinel",
            "redis+sentinel://:$(REDIS_PASSWORD)@redis.redis.svc:26379/mymaster/0"
            "?sentinel_password=$(REDIS_PASSWORD)",
        ),
        ("full", "rediss://:$(REDIS_PASSWORD)@redis.redis.svc:6380/2"),
    ):
        for component in COMPONENTS:
            env = rendered[name].container(component)["env"]
            names = [e["name"] for e in env]
            # Kubernetes expands $(REDIS_PASSWORD) only from variables defined before it.
            assert names.index("REDIS_PASSWORD") < names.index("REDIS_URL")
            password = env[names.index("REDIS_PASSWORD")]["valueFrom"]["secretKeyRef"]
            assert password == {"name": "redis", "key": "redis-password"}
            assert env[names.index("REDIS_URL")]["value"] == url


@pytest.mark.parametrize("value_set", ["defaults", "sentinel", "full"])
def test_redis_urls_are_ones_sevrouter_reads(rendered: dict[str, Rendered], value_set: str) -> None:
    url = env_values(rendered[value_set].container("receiver"))["REDIS_URL"]
    # What the pod sees once Kubernetes has expanded $(REDIS_PASSWORD).
    target = parse_url(url.replace("$(REDIS_PASSWORD)", "s3cret"))
    expected = {"defaults": None, "sentinel": "s3cret", "full": "s3cret"}[value_set]
    assert target.password == expected
    if value_set == "sentinel":
        assert target.scheme == "redis+sentinel"
        assert target.options.sentinel_password == "s3cret"


def test_redis_options_join_the_query_string(render: Callable[..., list[Manifest]]) -> None:
    manifests = Rendered(
        "options",
        render(sets=["redis.url=rediss://r:6380/1?ssl_cert_reqs=none", "redis.options.retries=5"]),
    )
    url = env_values(manifests.container("worker"))["REDIS_URL"]
    assert url == "rediss://r:6380/1?ssl_cert_reqs=none&retries=5"
    assert parse_url(url).db == 1


def test_bad_values_are_refused(helm: Path) -> None:
    def refused(*sets: str) -> str:
        args = template_args(sets=sets)
        result = run_helm(helm, *args, check=False)
        assert result.returncode != 0, f"accepted: {sets}"
        return result.stderr

    assert "logFormat" in refused("config.logFormat=xml")
    assert "hosts" in refused("redis.sentinel.enabled=true")
    assert "recevier" in refused("recevier.replicas=3")
    assert "redis.url" in refused("redis.url=http://redis:6379")
    assert "no rule files" in refused("rules.includeDefaults=false")


def test_autoscaling_and_disruption_budgets(rendered: dict[str, Rendered]) -> None:
    full = rendered["full"]
    hpa = full.one("HorizontalPodAutoscaler", f"{RELEASE}-receiver")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": f"{RELEASE}-receiver",
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 10)
    # The autoscaler owns the replica count.
    assert "replicas" not in full.deployment("receiver")["spec"]
    assert full.one("PodDisruptionBudget", f"{RELEASE}-receiver")["spec"]["maxUnavailable"] == 1
    assert full.one("PodDisruptionBudget", f"{RELEASE}-worker")["spec"]["minAvailable"] == "50%"
    for component in COMPONENTS:
        budget = rendered["defaults"].one("PodDisruptionBudget", f"{RELEASE}-{component}")
        assert budget["spec"]["minAvailable"] == 1
        assert budget["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == (
            component
        )


def test_network_policies(rendered: dict[str, Rendered]) -> None:
    full = rendered["full"]
    receiver = full.one("NetworkPolicy", f"{RELEASE}-receiver")["spec"]
    worker = full.one("NetworkPolicy", f"{RELEASE}-worker")["spec"]
    assert receiver["policyTypes"] == worker["policyTypes"] == ["Ingress", "Egress"]
    [ingress] = receiver["ingress"]
    assert ingress["ports"] == [{"port": "http", "protocol": "TCP"}]
    namespaces = [
        peer["namespaceSelector"]["matchExpressions"][0]["values"]
        for peer in ingress["from"]
        if "namespaceSelector" in peer
    ]
    assert namespaces == [["monitoring", "grafana"]]
    assert {"podSelector": {}} in ingress["from"]
    assert {"ipBlock": {"cidr": "10.0.0.0/8"}} in ingress["from"]
    assert worker["ingress"] == []

    def egress_ports(spec: Manifest) -> set[tuple[int, str]]:
        return {(p["port"], p["protocol"]) for rule in spec["egress"] for p in rule["ports"]}

    assert egress_ports(receiver) == {(53, "UDP"), (53, "TCP"), (6380, "TCP")}
    assert egress_ports(worker) == {
        (53, "UDP"),
        (53, "TCP"),
        (6380, "TCP"),
        (443, "TCP"),
        (587, "TCP"),
    }
    redis_rule = next(r for r in worker["egress"] if r["ports"][0]["port"] == 6380)
    assert redis_rule["to"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "redis"
    }
    channel_rule = next(r for r in worker["egress"] if r["ports"][0]["port"] == 443)
    assert channel_rule["to"] == [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}}]


def test_service_monitor_scrapes_the_receivers(rendered: dict[str, Rendered]) -> None:
    monitor = rendered["full"].one("ServiceMonitor", RELEASE)
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    [endpoint] = monitor["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("http", "/metrics")
    service = rendered["full"].one("Service", RELEASE)
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}


def test_prometheus_rules_parse_and_watch_sevrouter(rendered: dict[str, Rendered]) -> None:
    rule = rendered["full"].one("PrometheusRule", RELEASE)
    [group] = rule["spec"]["groups"]
    alerts = {r["alert"]: r for r in group["rules"] if "alert" in r}
    assert set(alerts) == {
        "SevrouterPagesFailing",
        "SevrouterPagesMostlyFailing",
        "SevrouterWebhookErrors",
        "SevrouterQueueBacklog",
        "SevrouterRulesReloadFailing",
        "SevrouterMetricsAbsent",
        "SevrouterReceiversNotReady",
        "SevrouterWorkersDown",
    }  # SevrouterReceiversDegraded is disabled in full-values.yaml
    assert any(r.get("record") == "sevrouter:webhook_requests:rate5m" for r in group["rules"])
    for name, alert in alerts.items():
        assert alert["labels"]["severity"] in {"warning", "critical"}, name
        assert alert["labels"]["route"] == "around-sevrouter", name
        assert alert["annotations"]["summary"] and alert["annotations"]["description"], name
    expr = {name: alert["expr"] for name, alert in alerts.items()}
    assert 'sevrouter_pages_total{result="permanent"' in expr["SevrouterPagesFailing"]
    assert 'code=~"5.."' in expr["SevrouterWebhookErrors"]
    assert "sevrouter_queue_depth" in expr["SevrouterQueueBacklog"]
    assert "> 1000" in expr["SevrouterQueueBacklog"]
    assert "sevrouter_rules_reload_failures_total" in expr["SevrouterRulesReloadFailing"]
    assert f'deployment="{RELEASE}-receiver"' in expr["SevrouterReceiversNotReady"]
    assert f'namespace="{NAMESPACE}",job="{RELEASE}"' in expr["SevrouterQueueBacklog"]


def test_alerts_use_metrics_sevrouter_exports(rendered: dict[str, Rendered]) -> None:
    rule = rendered["full"].one("PrometheusRule", RELEASE)
    used: set[str] = set()
    for entry in rule["spec"]["groups"][0]["rules"]:
        used |= set(re.findall(r"\b(sevrouter_[a-z_]+)\b", entry["expr"]))
    assert "sevrouter_pages_total" in used
    unknown = used - exported_metrics() - PENDING_METRICS
    assert not unknown, f"alerts use metrics sevrouter does not export: {sorted(unknown)}"


def exported_metrics() -> set[str]:
    """Metric names the application registers, with the `_total` a counter is exposed as."""
    names: set[str] = set()
    for path in (ROOT / "router").rglob("*.py"):
        source = path.read_text(encoding="utf-8")
        for kind, name in re.findall(
            r"(Counter|Histogram|Gauge|CounterMetricFamily|GaugeMetricFamily)\(\s*\"(sevrouter_[a-z_]+)\"",
            source,
        ):
            base = name.removesuffix("_total")
            names.add(base)
            if kind.startswith("Counter"):
                names.add(base + "_total")
    return names


@pytest.mark.parametrize("value_set", ["full"])
def test_prometheus_expressions_are_valid_promql(
    rendered: dict[str, Rendered], value_set: str
) -> None:
    rule = rendered[value_set].one("PrometheusRule", RELEASE)
    for entry in rule["spec"]["groups"][0]["rules"]:
        promql_parser.parse(entry["expr"])
        if "for" in entry:
            promql_parser.parse_duration(entry["for"])


def test_values_are_documented_and_typed() -> None:
    """Each key of values.yaml has a `# --` comment and a schema entry with a description."""
    values_text = (CHART / "values.yaml").read_text(encoding="utf-8")
    schema = yaml.safe_load((CHART / "values.schema.json").read_text(encoding="utf-8"))
    values = yaml.safe_load(values_text)
    lines = values_text.splitlines()
    undocumented = []
    for path, line_number in key_lines(lines):
        if not documented(lines, line_number) and not is_section(values, path):
            undocumented.append(".".join(path))
    assert not undocumented, f"values.yaml keys without a '# --' comment: {undocumented}"

    def walk(value: Any, node: dict[str, Any], path: str) -> Iterator[str]:
        assert "description" in node, f"{path or 'values'}: no description in the schema"
        if isinstance(value, dict) and node.get("additionalProperties") is False:
            properties = node["properties"]
            extra = set(value) - set(properties)
            assert not extra, f"{path}: not in the schema: {extra}"
            for key in set(properties) - set(value) - {"global"}:
                yield f"{path}.{key}".lstrip(".")
            for key, child in value.items():
                yield from walk(child, properties[key], f"{path}.{key}")

    schema_root = {"description": "values", **schema}
    missing_from_values = list(walk(values, schema_root, ""))
    assert not missing_from_values, f"in the schema but not in values.yaml: {missing_from_values}"


# Maps whose children are Kubernetes objects documented as one value (a securityContext, a probe).
_OPAQUE = {
    "podSecurityContext",
    "securityContext",
    "resources",
    "startupProbe",
    "livenessProbe",
    "readinessProbe",
}


def key_lines(lines: list[str]) -> Iterator[tuple[tuple[str, ...], int]]:
    """(key path, line index) of every mapping key in values.yaml, skipping opaque objects."""
    stack: list[tuple[int, str]] = []
    key = re.compile(r"^(\s*)([A-Za-z][A-Za-z0-9]*):(\s|$)")
    for number, line in enumerate(lines):
        match = key.match(line)
        if not match:
            continue
        indent = len(match.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        parents = [name for _, name in stack]
        stack.append((indent, match.group(2)))
        if any(p in _OPAQUE for p in parents):
            continue
        yield (*parents, match.group(2)), number


def documented(lines: list[str], number: int) -> bool:
    """Whether a `# --` comment block ends right above line `number`."""
    index = number - 1
    while index >= 0 and lines[index].strip().startswith("#"):
        if lines[index].strip().startswith("# --"):
            return True
        index -= 1
    return False


def is_section(values: dict[str, Any], path: tuple[str, ...]) -> bool:
    """A grouping key (its children are documented), not a value."""
    node: Any = values
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return isinstance(node, dict) and bool(node) and path[-1] not in _OPAQUE


def env_values(container: Manifest) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


def mount_rules(manifests: Rendered, root: Path) -> Path:
    """Writes the rules ConfigMap the way the pod's volume lays it out; returns the directory."""
    configmap = manifests.one("ConfigMap", f"{RELEASE}-rules")
    pod = manifests.deployment("worker")["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "rules")
    rules = root / "rules"
    for item in volume["configMap"]["items"]:
        target = rules / item["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(configmap["data"][item["key"]], encoding="utf-8")
    assert set(configmap["data"]) == {i["key"] for i in volume["configMap"]["items"]}
    return rules


def check_custom(manifest: Manifest) -> None:
    """The prometheus-operator resources' shape (their CRD schemas are not available here)."""
    assert manifest["apiVersion"] == "monitoring.coreos.com/v1"
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", manifest["metadata"]["name"])
    spec = manifest["spec"]
    if manifest["kind"] == "ServiceMonitor":
        assert set(spec) == {"namespaceSelector", "selector", "endpoints"}
        for endpoint in spec["endpoints"]:
            assert set(endpoint) <= {
                "port",
                "path",
                "interval",
                "scrapeTimeout",
                "relabelings",
                "metricRelabelings",
            }
            for key in ("interval", "scrapeTimeout"):
                promql_parser.parse_duration(endpoint[key])
    else:
        assert set(spec) == {"groups"}
        for group in spec["groups"]:
            assert set(group) == {"name", "rules"}
            for rule in group["rules"]:
                assert ("alert" in rule) != ("record" in rule)
                allowed = {"alert", "record", "expr", "for", "labels", "annotations"}
                assert set(rule) <= allowed, set(rule) - allowed
                assert isinstance(rule["expr"], str)
                texts = [*rule.get("labels", {}).values(), *rule.get("annotations", {}).values()]
                assert all(isinstance(text, str) for text in texts)
