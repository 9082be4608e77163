"""Alert payloads, shaped exactly as Alertmanager 0.25 sends and receives them.

Two wire shapes are produced from the same alerts:

* the webhook body Alertmanager POSTs to a receiver (notify/webhook, message version "4"): Go's
  `json.Encoder` output, i.e. compact JSON, map keys sorted, `<`, `>` and `&` escaped as `\\u003c`,
  `\\u003e`, `\\u0026`, raw UTF-8, and a trailing newline;
* the body Prometheus POSTs to Alertmanager's `/api/v2/alerts`: a JSON array of
  `{labels, annotations, startsAt, generatorURL}` (`endsAt` omitted while firing).

Labels follow kube-prometheus: alertname, cluster, instance, job, namespace, pod, severity.
Each alert's `fingerprint` is Alertmanager's own (FNV-1a 64 over the sorted label pairs), so a
receiver that trusts the upstream fingerprint sees fresh alerts as fresh.

Generation is deterministic (seeded) and happens before any timing starts.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import quote_plus

RECEIVER = "sevrouter"
EXTERNAL_URL = "http://alertmanager-main-0.alertmanager-operated:9093"
PROMETHEUS_URL = "http://prometheus-k8s-0:9090"
ZERO_TIME = "0001-01-01T00:00:00Z"
RUNBOOKS = "https://runbooks.prometheus-operator.dev/runbooks"

CLUSTERS = ("prod-eu-west-1", "prod-us-east-1", "staging-eu-west-1")
NAMESPACES = (
    "payments",
    "checkout",
    "catalog",
    "search",
    "identity",
    "orders",
    "shipping",
    "billing",
    "notifications",
    "inventory",
    "pricing",
    "recommendations",
    "media",
    "gateway",
    "ledger",
    "reporting",
    "fraud",
    "loyalty",
    "support",
    "analytics",
    "kube-system",
    "monitoring",
    "ingress-nginx",
    "cert-manager",
)
DEPLOYMENTS = ("api", "worker", "web", "consumer", "scheduler", "cache", "grpc", "cron")


@dataclass(frozen=True, slots=True)
class Rule:
    """One kube-prometheus-like alerting rule: what its alerts' labels and annotations look like."""

    alertname: str
    job: str
    instance: str
    severity: str
    summary: str
    description: str  # formatted with namespace=, pod=
    expr: str

    def runbook_url(self) -> str:
        return f"{RUNBOOKS}/kubernetes/{self.alertname.lower()}"

    def generator_url(self) -> str:
        return f"{PROMETHEUS_URL}/graph?g0.expr={quote_plus(self.expr)}&g0.tab=1"


KSM = ("kube-state-metrics", "10.42.3.17:8443")
KUBELET = ("kubelet", "10.0.12.4:10250")
RULES = (
    Rule(
        "KubePodCrashLooping",
        *KSM,
        "warning",
        "Pod is crash looping.",
        'Pod {namespace}/{pod} (app) is in waiting state (reason: "CrashLoopBackOff").',
        'max_over_time(kube_pod_container_status_waiting_reason{reason="CrashLoopBackOff",'
        'job="kube-state-metrics"}[5m]) >= 1',
    ),
    Rule(
        "KubePodNotReady",
        *KSM,
        "warning",
        "Pod has been in a non-ready state for more than 15 minutes.",
        "Pod {namespace}/{pod} has been in a non-ready state for longer than 15 minutes.",
        "sum by (namespace, pod, cluster) (max by (namespace, pod, cluster) "
        '(kube_pod_status_phase{job="kube-state-metrics", phase=~"Pending|Unknown|Failed"}) '
        "* on (namespace, pod, cluster) group_left (owner_kind) "
        "topk by (namespace, pod, cluster) (1, max by (namespace, pod, owner_kind, cluster) "
        '(kube_pod_owner{owner_kind!="Job"}))) > 0',
    ),
    Rule(
        "KubeContainerWaiting",
        *KSM,
        "warning",
        "Pod container waiting longer than 1 hour",
        "pod/{pod} in namespace {namespace} on container app has been in waiting state for "
        "longer than 1 hour.",
        "sum by (namespace, pod, container, cluster) "
        '(kube_pod_container_status_waiting_reason{job="kube-state-metrics"}) > 0',
    ),
    Rule(
        "KubeContainerOOMKilled",
        *KSM,
        "critical",
        "Container was OOM killed.",
        "Container app in pod {namespace}/{pod} has been OOMKilled 3 times in the last 10 minutes.",
        "(kube_pod_container_status_restarts_total - kube_pod_container_status_restarts_total "
        "offset 10m >= 1) and ignoring (reason) min_over_time("
        'kube_pod_container_status_last_terminated_reason{reason="OOMKilled"}[10m]) == 1',
    ),
    Rule(
        "CPUThrottlingHigh",
        *KUBELET,
        "warning",
        "Processes experience elevated CPU throttling.",
        "87.3% throttling of CPU in namespace {namespace} for container app in pod {pod}.",
        "sum by (container, pod, namespace) (increase(container_cpu_cfs_throttled_periods_total"
        '{container!=""}[5m])) / sum by (container, pod, namespace) (increase('
        "container_cpu_cfs_periods_total[5m])) > (25 / 100)",
    ),
    Rule(
        "KubePodEvictedHighMemory",
        *KUBELET,
        "critical",
        "Pod was evicted under memory pressure.",
        "Pod {namespace}/{pod} was evicted: the node was low on resource: memory. "
        "Threshold quantity: 100Mi, available: <92Mi>.",
        'kube_pod_status_reason{reason="Evicted"} > 0',
    ),
)


# --- Alertmanager's fingerprint: FNV-1a 64 over "name\xffvalue\xff" for the sorted labels ------

_FNV_OFFSET = 14695981039346656037
_FNV_PRIME = 1099511628211
_MASK64 = (1 << 64) - 1


def _fnv1a(h: int, data: bytes) -> int:
    for byte in data:
        h = ((h ^ byte) * _FNV_PRIME) & _MASK64
    return h


def _encode_pairs(labels: dict[str, str]) -> bytes:
    # 0xFF is the separator byte in Prometheus; it is not valid UTF-8 so it must be raw.
    return b"".join(
        name.encode() + b"\xff" + labels[name].encode() + b"\xff" for name in sorted(labels)
    )


def fingerprint(labels: dict[str, str]) -> str:
    """Alertmanager's `model.LabelSet.Fingerprint()` as 16 hex digits."""
    return f"{_fnv1a(_FNV_OFFSET, _encode_pairs(labels)):016x}"


def fnv_state(labels: dict[str, str]) -> int:
    return _fnv1a(_FNV_OFFSET, _encode_pairs(labels))


# --- JSON as Go's encoding/json writes it -----------------------------------------------------

_GO_ESCAPES = (
    ("<", "\\u003c"),
    (">", "\\u003e"),
    ("&", "\\u0026"),
    ("\u2028", "\\u2028"),
    ("\u2029", "\\u2029"),
)


def go_json(value: object) -> str:
    """Compact JSON with Go's HTML-safe escaping (only string contents can hold these chars)."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    for raw, escaped in _GO_ESCAPES:
        if raw in text:
            text = text.replace(raw, escaped)
    return text


def go_time(ts: datetime) -> str:
    """RFC 3339 with fractional seconds trimmed of trailing zeros (Go's RFC3339Nano), UTC."""
    base = ts.strftime("%Y-%m-%dT%H:%M:%S")
    frac = f"{ts.microsecond:06d}".rstrip("0")
    return f"{base}.{frac}Z" if frac else f"{base}Z"


# --- alerts, groups, bodies -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Alert:
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: str
    generator_url: str
    fingerprint: str


@dataclass(slots=True)
class Bodies:
    """Pre-encoded bodies of one webhook size; `webhook[i]` and `am_v2[i]` hold the same alerts."""

    alerts_per_body: int
    webhook: list[bytes] = field(default_factory=list)
    am_v2: list[bytes] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.webhook)

    def mean_size(self, shape: str) -> float:
        items = self.webhook if shape == "webhook" else self.am_v2
        return sum(map(len, items)) / len(items) if items else 0.0


def _common(dicts: list[dict[str, str]]) -> dict[str, str]:
    first, *rest = dicts
    return {k: v for k, v in first.items() if all(d.get(k) == v for d in rest)}


def _label_string(labels: dict[str, str]) -> str:
    return "{" + ", ".join(f'{k}="{labels[k]}"' for k in sorted(labels)) + "}"


def webhook_body(alerts: list[Alert], group_labels: dict[str, str]) -> bytes:
    """The body of Alertmanager's webhook notifier (message version 4) for one group."""
    message = {
        "receiver": RECEIVER,
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": a.labels,
                "annotations": a.annotations,
                "startsAt": a.starts_at,
                "endsAt": ZERO_TIME,
                "generatorURL": a.generator_url,
                "fingerprint": a.fingerprint,
            }
            for a in alerts
        ],
        "groupLabels": group_labels,
        "commonLabels": _common([a.labels for a in alerts]),
        "commonAnnotations": _common([a.annotations for a in alerts]),
        "externalURL": EXTERNAL_URL,
        "version": "4",
        "groupKey": "{}:" + _label_string(group_labels),  # the root route's key
        "truncatedAlerts": 0,
    }
    return (go_json(message) + "\n").encode()


def am_v2_body(alerts: list[Alert]) -> bytes:
    """What Prometheus POSTs to Alertmanager's /api/v2/alerts for the same alerts."""
    return go_json(
        [
            {
                "labels": a.labels,
                "annotations": a.annotations,
                "startsAt": a.starts_at,
                "generatorURL": a.generator_url,
            }
            for a in alerts
        ]
    ).encode()


@dataclass(frozen=True, slots=True)
class Group:
    """The random choices behind one webhook: a rule, where it fired, and its alerts' own parts."""

    rule: Rule
    cluster: str
    namespace: str
    alerts: tuple[tuple[str, str, str], ...]  # (pod, severity, startsAt) per alert

    @property
    def group_labels(self) -> dict[str, str]:
        return {"alertname": self.rule.alertname, "namespace": self.namespace}

    def shared_labels(self) -> dict[str, str]:
        """The labels every alert of the group has; they all sort before `pod` and `severity`."""
        return {
            "alertname": self.rule.alertname,
            "cluster": self.cluster,
            "instance": self.rule.instance,
            "job": self.rule.job,
            "namespace": self.namespace,
        }

    def to_alerts(self) -> list[Alert]:
        """The reference decoding of this group (slow, obviously right)."""
        shared = self.shared_labels()
        return [
            Alert(
                labels=shared | {"pod": pod, "severity": severity},
                annotations={
                    "description": self.rule.description.format(namespace=self.namespace, pod=pod),
                    "runbook_url": self.rule.runbook_url(),
                    "summary": self.rule.summary,
                },
                starts_at=starts_at,
                generator_url=self.rule.generator_url(),
                fingerprint=fingerprint(shared | {"pod": pod, "severity": severity}),
            )
            for pod, severity, starts_at in self.alerts
        ]


_POD = "\x00pod\x00"  # placeholder inside pre-encoded JSON; pods are [a-z0-9-] so need no escaping


def _inner(value: dict[str, str]) -> str:
    """`go_json` of an object without its braces, to splice further members after it."""
    return go_json(value)[1:-1]


class _Template:
    """Pre-encoded JSON pieces of one (rule, cluster, namespace): only pod, severity, startsAt and
    fingerprint vary per alert, so a body is a join of constant strings around those."""

    def __init__(self, group: Group) -> None:
        rule = group.rule
        shared = group.shared_labels()
        self.fnv_pod = _fnv1a(fnv_state(shared), b"pod\xff")  # FNV state up to the pod value
        description = go_json(rule.description.format(namespace=group.namespace, pod=_POD))
        desc_head, desc_tail = description.split(go_json(_POD)[1:-1])
        runbook, summary = go_json(rule.runbook_url()), go_json(rule.summary)
        labels = '"labels":{' + _inner(shared) + ',"pod":"'
        annotations = '"},"annotations":{"description":' + desc_head
        self.alert = (
            '{"status":"firing",' + labels,  # pod
            '","severity":"',  # severity
            annotations,  # pod
            desc_tail
            + ',"runbook_url":'
            + runbook
            + ',"summary":'
            + summary
            + '},"startsAt":"',  # startsAt
            '","endsAt":"'
            + ZERO_TIME
            + '","generatorURL":'
            + go_json(rule.generator_url())
            + ',"fingerprint":"',  # fingerprint
            '"}',
        )
        self.v2 = (
            "{" + labels,  # pod
            '","severity":"',  # severity
            annotations,  # pod
            desc_tail
            + ',"runbook_url":'
            + runbook
            + ',"summary":'
            + summary
            + '},"startsAt":"',  # startsAt
            '","generatorURL":' + go_json(rule.generator_url()) + "}",
        )
        self.head = '{"receiver":' + go_json(RECEIVER) + ',"status":"firing","alerts":['
        self.shared = _inner(shared)
        self.group_labels = go_json(group.group_labels)
        self.common_annotations = (',"runbook_url":' + runbook + ',"summary":' + summary)[1:]
        self.description = (desc_head, desc_tail)
        self.tail = (
            ',"externalURL":'
            + go_json(EXTERNAL_URL)
            + ',"version":"4","groupKey":'
            + go_json("{}:" + _label_string(group.group_labels))
            + ',"truncatedAlerts":0}\n'
        )

    def fingerprint(self, pod: str, severity: str) -> str:
        data = f"{pod}\xffseverity\xff{severity}\xff".encode("latin-1")
        return f"{_fnv1a(self.fnv_pod, data):016x}"

    def encode(self, group: Group) -> tuple[bytes, bytes]:
        a0, a1, a2, a3, a4, a5 = self.alert
        v0, v1, v2, v3, v4 = self.v2
        alerts, v2_alerts = [], []
        for pod, severity, starts_at in group.alerts:
            fp = self.fingerprint(pod, severity)
            alerts.append(f"{a0}{pod}{a1}{severity}{a2}{pod}{a3}{starts_at}{a4}{fp}{a5}")
            v2_alerts.append(f"{v0}{pod}{v1}{severity}{v2}{pod}{v3}{starts_at}{v4}")
        common = self.shared
        pods = {pod for pod, _, _ in group.alerts}
        severities = {severity for _, severity, _ in group.alerts}
        if len(pods) == 1:
            common += f',"pod":"{next(iter(pods))}"'
        if len(severities) == 1:
            common += f',"severity":"{next(iter(severities))}"'
        annotations = self.common_annotations
        if len(pods) == 1:
            head, tail = self.description
            annotations = f'"description":{head}{next(iter(pods))}{tail},{annotations}'
        webhook = (
            f'{self.head}{",".join(alerts)}],"groupLabels":{self.group_labels},'
            f'"commonLabels":{{{common}}},"commonAnnotations":{{{annotations}}}{self.tail}'
        )
        return webhook.encode(), ("[" + ",".join(v2_alerts) + "]").encode()


class AlertFactory:
    """Deterministic stream of webhook groups; every alert it ever makes has a new label set."""

    def __init__(self, seed: int, tag: str) -> None:
        self._rng = random.Random(seed)
        self._tag = tag  # keeps pods of different factories (fresh vs repeated) disjoint
        self._counter = 0
        now = datetime.now(UTC).replace(microsecond=0)
        self._starts = [
            go_time(
                now
                - timedelta(
                    seconds=self._rng.randrange(60, 7200), milliseconds=self._rng.randrange(1000)
                )
            )
            for _ in range(4096)
        ]
        self._templates: dict[tuple[str, str, str], _Template] = {}
        self._checked = 0

    def group(self, size: int) -> Group:
        rng = self._rng
        rule = rng.choice(RULES)
        cluster = rng.choice(CLUSTERS)
        namespace = rng.choice(NAMESPACES)
        other = "critical" if rule.severity == "warning" else "warning"
        prefix = f"{namespace[:8]}-{rng.choice(DEPLOYMENTS)}-{self._tag}"
        alerts = []
        for _ in range(size):
            self._counter += 1
            # Mostly the rule's severity, sometimes the other one: severity is mixed within and
            # across webhooks, so commonLabels sometimes drops it.
            severity = rule.severity if rng.random() < 0.7 else other
            starts_at = self._starts[(self._counter * 2654435761) % len(self._starts)]
            alerts.append((f"{prefix}{self._counter:07x}", severity, starts_at))
        return Group(rule, cluster, namespace, tuple(alerts))

    def encode(self, group: Group) -> tuple[bytes, bytes]:
        """Both bodies for `group`; the first groups are checked against the reference encoder."""
        key = (group.rule.alertname, group.cluster, group.namespace)
        template = self._templates.get(key)
        if template is None:
            template = self._templates[key] = _Template(group)
        bodies = template.encode(group)
        if self._checked < 50:
            self._checked += 1
            alerts = group.to_alerts()
            expected = (webhook_body(alerts, group.group_labels), am_v2_body(alerts))
            if bodies != expected:
                raise AssertionError(f"fast encoder disagrees with reference for {group}")
        return bodies

    def extend(self, bodies: Bodies, count: int) -> None:
        """Append `count` new webhooks (and their /api/v2/alerts twins) to `bodies`."""
        for _ in range(count):
            webhook, v2 = self.encode(self.group(bodies.alerts_per_body))
            bodies.webhook.append(webhook)
            bodies.am_v2.append(v2)


def repeated_bodies(size: int, count: int = 32, seed: int = 7) -> Bodies:
    """A small fixed set of webhooks, re-sent over and over like repeat_interval notifications."""
    bodies = Bodies(alerts_per_body=size)
    AlertFactory(seed=seed * 1000 + size, tag="r").extend(bodies, count)
    return bodies


class FreshPool:
    """Grows on demand (between measurements, never during one) so each alert is sent once."""

    def __init__(self, size: int, seed: int = 11) -> None:
        self.bodies = Bodies(alerts_per_body=size)
        self._factory = AlertFactory(seed=seed * 1000 + size, tag="f")

    def ensure(self, count: int) -> None:
        missing = count - len(self.bodies)
        if missing > 0:
            self._factory.extend(self.bodies, missing)
