"""Helpers for the end-to-end tests: our own commands and Prometheus Alertmanager as real child
processes, Alertmanager-shaped webhook bodies, and polling with deadlines.

Everything here starts processes inside context managers that stop them on the way out, so a
failing assertion never leaves a receiver, worker, Redis or Alertmanager running.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families
from redis import Redis
from rq import Queue
from rq.worker_registration import WORKERS_BY_QUEUE_KEY

from router.keys import Keys
from router.notify.webhook import (
    EVENT_HEADER,
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    verify,
)
from router.secrets import Secret
from tests.support.http_receiver import Receiver
from tests.support.processes import free_port, sevrouter, stop, wait_for_http, wait_for_port
from tests.support.rules import HMAC_SECRET

T = TypeVar("T")

ALERTMANAGER = Path("/usr/bin/prometheus-alertmanager")
CAPTURED = Path(__file__).resolve().parents[1] / "fixtures" / "captured"
# Alertmanager's zero time: what it sends as `endsAt` for every firing alert.
GO_ZERO_TIME = "0001-01-01T00:00:00Z"
# A dot in the receiver's name shows Alertmanager's regexp.QuoteMeta of it in the body.
RECEIVER = "sevrouter.e2e"
EXTERNAL_URL = "http://alertmanager.e2e.test:9093"
KEY_PREFIX = "sevrouter"  # Settings' default; the processes under test run with it
QUEUE_NAME = "sevrouter"


# --- polling ---------------------------------------------------------------------------------


def poll(check: Callable[[], T | None], *, timeout: float, what: str, every: float = 0.05) -> T:
    """Call `check` until it returns something other than None; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout}s waiting for {what}")
        time.sleep(every)


# --- processes -------------------------------------------------------------------------------


def tail(log: Path, lines: int = 40) -> str:
    if not log.exists():
        return f"({log} was never written)"
    text = log.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])


@dataclass(frozen=True)
class Service:
    """A running child process and where it answers (empty for a worker)."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path


@contextlib.contextmanager
def serving(env: Mapping[str, str], log: Path) -> Iterator[Service]:
    """`sevrouter serve` on a free port, ready to answer when yielded."""
    port = free_port()
    process = sevrouter(["serve", "--port", str(port)], env, log)
    try:
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for_port(port, process)
            wait_for_http(f"{url}/healthz")
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"sevrouter serve did not start: {exc}\n{tail(log)}") from exc
        yield Service(url, process, log)
    finally:
        stop(process)


@contextlib.contextmanager
def working(env: Mapping[str, str], log: Path) -> Iterator[Service]:
    """`sevrouter worker`, registered with rq (so consuming) when yielded."""
    with Redis.from_url(env["REDIS_URL"]) as redis:
        before = _worker_names(redis)
        process = sevrouter(["worker"], env, log)
        try:

            def registered() -> bool | None:
                if process.poll() is not None:
                    raise RuntimeError(f"sevrouter worker exited early:\n{tail(log)}")
                return True if _worker_names(redis) - before else None

            poll(registered, timeout=15, what="the worker to register with rq")
            yield Service("", process, log)
        finally:
            stop(process)


def _worker_names(redis: Redis) -> set[bytes | str]:
    return set(redis.smembers(WORKERS_BY_QUEUE_KEY % QUEUE_NAME))


@contextlib.contextmanager
def processes(
    count: int, start: Callable[[int], contextlib.AbstractContextManager[Service]]
) -> Iterator[list[Service]]:
    """`count` services started by `start(index)`. On exit all are sent SIGTERM at once and
    waited for together (each takes about a second to drain), then cleaned up one by one."""
    with contextlib.ExitStack() as stack:
        services = [stack.enter_context(start(index)) for index in range(count)]
        try:
            yield services
        finally:
            running = [s.process for s in services if s.process.poll() is None]
            for process in running:
                process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 10
            for process in running:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=max(deadline - time.monotonic(), 0.1))


@contextlib.contextmanager
def redis_on_port(directory: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """A redis-server on a given port with the append-only file on, so that stopping it and
    starting another on the same port and directory keeps every write (SIGTERM syncs the AOF)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed; `make test` installs it")
    process = subprocess.Popen(
        [
            binary,
            *("--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory)),
            *("--save", "", "--appendonly", "yes", "--appendfsync", "always"),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, process)
        yield process
    finally:
        stop(process)


# --- Alertmanager ----------------------------------------------------------------------------


def alertmanager_config(
    webhook_url: str, token: str, capture_url: str, *, repeat_interval: str = "2s"
) -> dict[str, Any]:
    """One route, grouped by alertname, to one receiver with two webhooks: our receiver (with
    the bearer token) and a capture sink that records the bodies Alertmanager sends."""
    return {
        "route": {
            "receiver": RECEIVER,
            "group_by": ["alertname"],
            "group_wait": "1s",
            "group_interval": "1s",
            # Alertmanager only requires repeat_interval > 0 (and warns below group_interval).
            "repeat_interval": repeat_interval,
        },
        "receivers": [
            {
                "name": RECEIVER,
                "webhook_configs": [
                    {
                        "url": webhook_url,
                        "send_resolved": True,
                        "http_config": {"authorization": {"credentials": token}},
                    },
                    {
                        "url": capture_url,
                        "send_resolved": True,
                        "http_config": {"authorization": {"credentials": token}},
                    },
                ],
            }
        ],
    }


@contextlib.contextmanager
def alertmanager(
    config: Mapping[str, Any], directory: Path, log: Path, *, external_url: str
) -> Iterator[str]:
    """The real Prometheus Alertmanager, clustering off; yields its base URL."""
    directory.mkdir(parents=True, exist_ok=True)
    config_file = directory / "alertmanager.yml"
    config_file.write_text(yaml.safe_dump(dict(config), sort_keys=False))
    port = free_port()
    with log.open("ab") as handle:
        process = subprocess.Popen(
            [
                str(ALERTMANAGER),
                f"--config.file={config_file}",
                f"--storage.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                f"--web.external-url={external_url}",
                "--cluster.listen-address=",
                "--log.level=debug",
            ],
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for_port(port, process)
            wait_for_http(f"{url}/-/ready")
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"alertmanager did not start: {exc}\n{tail(log)}") from exc
        yield url
    finally:
        stop(process)


def post_alerts(alertmanager_url: str, alerts: Sequence[Mapping[str, Any]]) -> None:
    """Push alerts the way Prometheus does: `POST /api/v2/alerts`."""
    response = httpx.post(f"{alertmanager_url}/api/v2/alerts", json=list(alerts), timeout=5)
    assert response.status_code == 200, (response.status_code, response.text)


# --- Alertmanager webhook bodies -------------------------------------------------------------


def go_time(moment: datetime) -> str:
    """RFC 3339 as Go's `time.Time` marshals it: fraction with trailing zeros trimmed, `Z`."""
    moment = moment.astimezone(UTC)
    fraction = f"{moment.microsecond:06d}".rstrip("0")
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if fraction else "") + "Z"


def go_escape(text: str) -> str:
    """Go's HTML-safe JSON escaping; `&`, `<`, `>` only ever occur inside JSON strings."""
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def go_quote_meta(text: str) -> str:
    """Go's `regexp.QuoteMeta`, which Alertmanager applies to the receiver name it sends."""
    return "".join(f"\\{char}" if char in "\\.+*?()|[]{}^$" else char for char in text)


def go_json(document: Any) -> bytes:
    """A body as Alertmanager's `json.Encoder` writes it: one compact line and a newline."""
    text = json.dumps(document, separators=(",", ":"), ensure_ascii=False)
    return (go_escape(text) + "\n").encode()


def prometheus_fingerprint(labels: Mapping[str, str]) -> str:
    """`model.LabelSet.Fingerprint` (prometheus/common): FNV-1a 64 over the sorted labels, each
    name and value followed by a 0xff byte; printed as 16 hex digits."""
    value = 0xCBF29CE484222325
    for name in sorted(labels):
        for part in (name, labels[name]):
            for byte in part.encode() + b"\xff":
                value = ((value ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{value:016x}"


def webhook_alert(
    labels: Mapping[str, str],
    *,
    starts_at: datetime,
    ends_at: datetime | None = None,
    annotations: Mapping[str, str] | None = None,
    generator_url: str = "",
) -> dict[str, Any]:
    return {
        "status": "resolved" if ends_at is not None else "firing",
        "labels": dict(labels),
        "annotations": dict(annotations or {}),
        "startsAt": go_time(starts_at),
        "endsAt": go_time(ends_at) if ends_at is not None else GO_ZERO_TIME,
        "generatorURL": generator_url,
        "fingerprint": prometheus_fingerprint(labels),
    }


def webhook_body(alerts: Sequence[dict[str, Any]], group_by: Sequence[str]) -> dict[str, Any]:
    """An Alertmanager v4 notification for one group, laid out as AM 0.25 sends it."""
    common = _common([alert["labels"] for alert in alerts])
    group = {name: common[name] for name in group_by if name in common}
    rendered = ", ".join(f'{name}="{value}"' for name, value in sorted(group.items()))
    return {
        "receiver": go_quote_meta(RECEIVER),
        "status": "firing" if any(a["status"] == "firing" for a in alerts) else "resolved",
        "alerts": list(alerts),
        "groupLabels": group,
        "commonLabels": common,
        "commonAnnotations": _common([alert["annotations"] for alert in alerts]),
        "externalURL": EXTERNAL_URL,
        "version": "4",
        "groupKey": f"{{}}:{{{rendered}}}",
        "truncatedAlerts": 0,
    }


def _common(maps: Sequence[Mapping[str, str]]) -> dict[str, str]:
    return {k: v for k, v in maps[0].items() if all(other.get(k) == v for other in maps[1:])}


def pretty_go_json(document: Any) -> str:
    """A captured body for a fixture file: indented, but with Go's escapes kept."""
    return go_escape(json.dumps(document, indent=2, ensure_ascii=False)) + "\n"


def shape(value: Any) -> Any:
    """The JSON structure of `value` with every leaf replaced by its type name; objects whose
    values are all strings (labels, annotations, even when empty) are just `{str: str}`."""
    if isinstance(value, dict) and all(isinstance(child, str) for child in value.values()):
        return "{str: str}"
    if isinstance(value, dict):
        return {key: shape(child) for key, child in value.items()}
    if isinstance(value, list):
        return [shape(child) for child in value[:1]]
    return type(value).__name__


# --- our receiver's API and metrics ----------------------------------------------------------


def incidents(base_url: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{base_url}/api/v1/incidents", params={"limit": 500}, timeout=5)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["incidents"]
    return found


def incident(base_url: str, incident_id: str) -> dict[str, Any]:
    response = httpx.get(f"{base_url}/api/v1/incidents/{incident_id}", timeout=5)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def metric(base_url: str, sample: str, labels: Mapping[str, str] | None = None) -> float:
    """The value of one sample on `/metrics` (0 when absent, as for a counter never incremented)."""
    response = httpx.get(f"{base_url}/metrics", timeout=5)
    assert response.status_code == 200, response.text
    wanted = dict(labels or {})
    for family in text_string_to_metric_families(response.text):
        for found in family.samples:
            if found.name == sample and all(found.labels.get(k) == v for k, v in wanted.items()):
                return float(found.value)
    return 0.0


def drained(redis: Redis) -> bool | None:
    """True when no webhook event and no job is waiting, running or due (one snapshot).

    A unit of work is always visible in one of these places: events stream -> rq queue ->
    intermediate list -> started registry, and a job enqueues its follow-ups before it leaves.
    """
    queue = Queue(QUEUE_NAME, connection=redis)
    pipe = redis.pipeline(transaction=True)
    pipe.xlen(Keys(KEY_PREFIX).events)
    pipe.llen(queue.key)
    pipe.llen(queue.intermediate_queue_key)
    pipe.zcard(queue.started_job_registry.key)
    # Scheduled jobs that are due (page retries); later ones (escalation deadlines) are not
    # work waiting now.
    pipe.zcount(queue.scheduled_job_registry.key, "-inf", time.time())
    counts = pipe.execute()
    return True if not any(counts) else None


def wait_drained(redis: Redis, timeout: float = 15) -> None:
    poll(lambda: drained(redis), timeout=timeout, what="events and jobs to drain")


# Timeline entries that record what alerts did (others record pages, escalation, people).
ALERT_EVENTS = frozenset(
    {"opened", "added", "reopened", "severity_raised", "resolved", "all_resolved"}
)


def alert_history(detail: Mapping[str, Any]) -> list[str]:
    return [entry["kind"] for entry in detail["timeline"] if entry["kind"] in ALERT_EVENTS]


def pages_sent(detail: Mapping[str, Any], channel: str) -> list[str]:
    """The kinds (trigger, mitigated-0, ...) of the pages delivered to `channel`, in order."""
    return [
        entry["data"]["kind"]
        for entry in detail["timeline"]
        if entry["kind"] == "page_sent" and entry["data"]["channel"] == channel
    ]


# --- pages at the sink -----------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    event: str
    idempotency_key: str
    body: bytes
    document: dict[str, Any]
    headers: Mapping[str, str]


def check_page(page: Page, incident_id: str, event: str, kind: str, channel: str) -> None:
    """The page's event and what it says about itself; its idempotency key names the incident,
    the channel and the kind."""
    assert page.event == event
    assert {k: page.document["incident"]["page"][k] for k in ("kind", "step", "channel")} == {
        "kind": kind,
        "step": 1,
        "channel": channel,
    }
    parts = page.idempotency_key.split(":")
    assert (parts[0], parts[-1]) == (incident_id, kind), page.idempotency_key
    assert channel in parts, page.idempotency_key


def pages(sink: Receiver) -> list[Page]:
    """Every page the sink received, each checked to carry a valid signature."""
    with sink.lock:
        recorded = list(sink.requests)
    found = []
    for request in recorded:
        assert request.method == "POST"
        headers = request.headers
        assert verify(
            Secret(HMAC_SECRET),
            timestamp=headers[TIMESTAMP_HEADER.lower()],
            body=request.body,
            signature=headers[SIGNATURE_HEADER.lower()],
            now=datetime.now(UTC),
        ), f"bad signature on {request.body[:200]!r}"
        document = json.loads(request.body)
        assert document["event"] == headers[EVENT_HEADER.lower()]
        assert document["idempotency_key"] == headers[IDEMPOTENCY_HEADER.lower()]
        found.append(
            Page(document["event"], document["idempotency_key"], request.body, document, headers)
        )
    return found
