"""Prometheus metrics (`sevrouter_` prefix).

Receiver-side counters live in the receiver process. What workers do (pages, incidents) is counted
in Redis (`{p}:stats`) and read back at scrape time, so every replica's /metrics shows the
installation's totals no matter which process did the work.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client import Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily
from prometheus_client.registry import Collector
from redis import Redis
from redis.exceptions import RedisError

from router.keys import Keys, text
from router.severity import Severity

ALERTS_RECEIVED = Counter(
    "sevrouter_alerts_received_total",
    "Alerts received in webhooks, by integration and alert status.",
    ["integration", "status"],
)
DEDUPE_OUTCOMES = Counter(
    "sevrouter_dedupe_outcomes_total",
    "What the atomic dedupe step decided per routed alert.",
    ["outcome"],
)
WEBHOOK_REQUESTS = Counter(
    "sevrouter_webhook_requests_total",
    "Webhook requests by integration and HTTP status code.",
    ["integration", "code"],
)
WEBHOOK_LATENCY = Histogram(
    "sevrouter_webhook_duration_seconds",
    "Time from request start to the receipt being sent.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)

STATES = ("triggered", "acknowledged", "mitigated", "resolved", "closed")
# The most recent incidents counted for the by-state gauge; older ones are long closed.
_GAUGE_WINDOW = 5000

# Returns work waiting per queue name; supplied by router/jobs.py, the only module that knows rq.
QueueDepth = Callable[[], dict[str, int]]


class RedisStatsCollector(Collector):
    """Installation-wide numbers read from Redis at scrape time."""

    def __init__(self, redis: Redis, keys: Keys, queue_depth: QueueDepth) -> None:
        self._redis = redis
        self._keys = keys
        self._queue_depth = queue_depth

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily | SummaryMetricFamily]:
        try:
            stats = self._redis.hgetall(self._keys.stats)
            recent = self._redis.zrevrange(self._keys.incidents, 0, _GAUGE_WINDOW - 1)
            pipe = self._redis.pipeline(transaction=False)
            for incident in recent:
                pipe.hmget(
                    self._keys.incident(text(incident)),
                    "severity",
                    "state",
                    "next_update_at",
                    "postmortem_status",
                )
            rows = pipe.execute()
            depth = self._queue_depth()
        except RedisError:
            return
        pages = CounterMetricFamily(
            "sevrouter_pages",
            "Page delivery attempts by channel and result.",
            labels=["channel", "result"],
        )
        opened = CounterMetricFamily(
            "sevrouter_incidents_opened", "Incidents opened, by severity.", labels=["severity"]
        )
        escalated = CounterMetricFamily(
            "sevrouter_escalations",
            "Escalation steps paged after the first, by severity.",
            labels=["severity"],
        )
        durations: dict[str, SummaryMetricFamily] = {
            name: SummaryMetricFamily(
                f"sevrouter_time_to_{name}_seconds",
                f"Seconds from an incident opening to {what}, by severity.",
                labels=["severity"],
            )
            for name, what in (
                ("acknowledge", "its acknowledgement"),
                ("mitigate", "its mitigation"),
                ("resolve", "its resolution"),
            )
        }
        sums: dict[tuple[str, str], dict[str, float]] = {}
        for raw_field, raw_value in stats.items():
            name = text(raw_field)
            kind, _, rest = name.partition(":")
            if kind == "page":
                channel, _, result = rest.rpartition(":")
                pages.add_metric([channel, result], float(raw_value))
            elif kind == "opened":
                opened.add_metric([rest], float(raw_value))
            elif kind == "escalated":
                escalated.add_metric([rest], float(raw_value))
            elif kind.startswith("time_to_"):
                severity, _, part = rest.partition(":")
                sums.setdefault((kind.removeprefix("time_to_"), severity), {})[part] = float(
                    raw_value
                )
        for (name, severity), parts in sorted(sums.items()):
            family = durations.get({"ack": "acknowledge"}.get(name, name))
            if family is not None:
                family.add_metric([severity], int(parts.get("count", 0)), parts.get("sum", 0.0))
        yield pages
        yield opened
        yield escalated
        yield from durations.values()
        incidents = GaugeMetricFamily(
            "sevrouter_incidents", "Incidents by severity and state.", labels=["severity", "state"]
        )
        counts: dict[tuple[str, str], int] = {}
        overdue = open_postmortems = 0
        now_ms = time.time() * 1000
        for severity_raw, state_raw, next_update, postmortem in rows:
            if severity_raw and state_raw:
                key = (text(severity_raw), text(state_raw))
                counts[key] = counts.get(key, 0) + 1
                still_open = key[1] in ("triggered", "acknowledged", "mitigated")
                if still_open and next_update and float(text(next_update) or "inf") < now_ms:
                    overdue += 1
            if postmortem and text(postmortem) == "open":
                open_postmortems += 1
        for severity in Severity:
            for state in STATES:
                incidents.add_metric(
                    [severity.value, state], float(counts.get((severity.value, state), 0))
                )
        yield incidents
        yield GaugeMetricFamily(
            "sevrouter_status_updates_overdue",
            "Open incidents whose next status update is past due.",
            value=overdue,
        )
        yield GaugeMetricFamily(
            "sevrouter_postmortems_open",
            "Resolved SEV1/SEV2 incidents awaiting their postmortem.",
            value=open_postmortems,
        )
        queue = GaugeMetricFamily(
            "sevrouter_queue_depth",
            "Work waiting: unprocessed webhook events and queued jobs.",
            labels=["queue"],
        )
        for name, value in depth.items():
            queue.add_metric([name], float(value))
        yield queue
