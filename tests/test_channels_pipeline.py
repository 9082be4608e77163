"""Real channel types through the whole pipeline: webhook -> ingest -> events -> rq jobs ->
PagerDuty / Slack / webhook wire formats, received by local HTTP sinks.

The module's own rule set (written to tmp_path; tokens and secrets from `rules_env`):

- team `payments` pages `pd` (PagerDuty Events v2 at the PagerDuty sink's /v2/enqueue, with a
  severity map of its own) and `chat` (a Slack bot posting with chat.postMessage to the Slack
  sink) in step 1; alerts get their severity from the `severity` label;
- teams `hooks` and `drills` page webhooks that answer 400 and fall back to a second webhook
  (`backup-hook`) and to a log channel (`drill-log`);
- team `bulk` pages the webhook `slow`, limited to one message a second with no burst.

Every team's channel is the log channel `team-log`, so the sinks see only pages.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from router.errors import ConfigError
from router.ruleset import load_ruleset
from tests.support.http_receiver import Receiver, Recorded, Reply, serve_receiver
from tests.support.payloads import alertmanager_body
from tests.support.rules import ALICE_TOKEN, TOKEN, rules_env
from tests.support.worker import TestWorker

AM = "/api/v1/webhooks/alertmanager"
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
ALICE = {"Authorization": f"Bearer {ALICE_TOKEN}"}
# A whole second: scheduled jobs are kept in whole seconds, so advancing the clock by exactly
# one second makes a job due one second later.
THURSDAY_10 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
ROUTING_KEY = "R0UT1NGKEY0000000000000000000000"
BOT_TOKEN = "xoxb-test-bot-token"
SLACK_TS = "1700000000.000100"
DISK = {"alertname": "DiskFull", "cluster": "eu-1", "instance": "db-1"}


@pytest.fixture
def pd_sink() -> Iterator[Receiver]:
    with serve_receiver() as receiver:
        yield receiver


@pytest.fixture
def slack_sink() -> Iterator[Receiver]:
    with serve_receiver() as receiver:
        yield receiver


@pytest.fixture
def hook_sink() -> Iterator[Receiver]:
    """Stands in for every plain webhook: /flaky, /backup and /slow."""
    with serve_receiver() as receiver:
        yield receiver


@pytest.fixture
def environ(hook_sink: Receiver) -> dict[str, str]:
    return rules_env("http://127.0.0.1:9/unused") | {
        "TEST_PD_ROUTING_KEY": ROUTING_KEY,
        "TEST_SLACK_BOT_TOKEN": BOT_TOKEN,
        "TEST_FLAKY_URL": f"{hook_sink.url}/flaky",
        "TEST_BACKUP_HOOK_URL": f"{hook_sink.url}/backup",
        "TEST_SLOW_URL": f"{hook_sink.url}/slow",
    }


@pytest.fixture
def rules_path(
    request: pytest.FixtureRequest, tmp_path: Path, pd_sink: Receiver, slack_sink: Receiver
) -> Path:
    """The module's rules; parametrized indirectly with True, they add a fallback cycle."""
    return write_channel_rules(
        tmp_path / "rules",
        pd_url=f"{pd_sink.url}/v2/enqueue",
        slack_api=slack_sink.url,
        fallback_cycle=bool(getattr(request, "param", False)),
    )


@pytest.fixture
def at_thursday(worker: TestWorker) -> TestWorker:
    worker.clock.now = THURSDAY_10
    return worker


def write_channel_rules(
    directory: Path, *, pd_url: str, slack_api: str, fallback_cycle: bool = False
) -> Path:
    """The rule set described above; `fallback_cycle` adds webhooks `ping` and `pong` (on the
    hook sink's /flaky and /backup) that fall back to each other, paged by team `loop`."""
    directory.mkdir(parents=True)

    def team(name: str, channel: str) -> dict[str, Any]:
        return {
            "name": name,
            "channel": "team-log",
            "escalation": [{"notify": [channel], "wait": "5m"}],
        }

    documents: dict[str, Any] = {
        "integrations.yaml": {
            "integrations": [
                {
                    "name": "alertmanager",
                    "type": "alertmanager",
                    "auth": {"bearer": {"env": "TEST_WEBHOOK_TOKEN"}},
                }
            ]
        },
        "severities.yaml": {
            "severities": {
                "SEV1": {"response_time": "0s", "update_every": "15m", "paging": "page"},
                "SEV2": {"response_time": "15m", "update_every": "30m", "paging": "page"},
                "SEV3": {"response_time": "1h", "update_every": "1h", "paging": "notify_then_page"},
                "SEV4": {"response_time": "next_business_day", "paging": "notify_business_hours"},
            },
            "incidents": {"flap_window": "30m", "retention": "7d"},
        },
        "teams.yaml": {
            "channels": [
                {
                    "name": "pd",
                    "type": "pagerduty",
                    "url": pd_url,
                    "routing_key": {"env": "TEST_PD_ROUTING_KEY"},
                    "timeout": "2s",
                    # Not the default (SEV2 is `critical` there), to see the map is used.
                    "severity_map": {
                        "SEV1": "critical",
                        "SEV2": "error",
                        "SEV3": "warning",
                        "SEV4": "info",
                    },
                },
                {
                    "name": "chat",
                    "type": "slack",
                    "bot_token": {"env": "TEST_SLACK_BOT_TOKEN"},
                    "channel": "#incidents",
                    "api_url": slack_api,
                    "timeout": "2s",
                },
                {
                    "name": "flaky",
                    "type": "webhook",
                    "url": {"env": "TEST_FLAKY_URL"},
                    "timeout": "2s",
                    "fallback": "backup-hook",
                },
                {
                    "name": "flaky-drill",
                    "type": "webhook",
                    "url": {"env": "TEST_FLAKY_URL"},
                    "timeout": "2s",
                    "fallback": "drill-log",
                },
                {
                    "name": "backup-hook",
                    "type": "webhook",
                    "url": {"env": "TEST_BACKUP_HOOK_URL"},
                    "timeout": "2s",
                },
                {
                    "name": "slow",
                    "type": "webhook",
                    "url": {"env": "TEST_SLOW_URL"},
                    "timeout": "2s",
                    "rate_limit": {"per_second": 1, "burst": 1},
                },
                {"name": "drill-log", "type": "log"},
                {"name": "team-log", "type": "log"},
            ],
            "teams": [
                {
                    "name": "payments",
                    "channel": "team-log",
                    "escalation": [{"notify": ["pd", "chat"], "wait": "5m"}],
                },
                team("hooks", "flaky"),
                team("drills", "flaky-drill"),
                team("bulk", "slow"),
            ],
        },
        "routing.yaml": {
            "defaults": {"team": "payments", "severity": "SEV3", "group_by": ["alertname"]},
            "rules": [
                *(
                    {"name": name, "match": f'team="{name}"', "team": name, "severity": "SEV2"}
                    for name in ("hooks", "drills", "bulk")
                ),
                {
                    "name": "payments",
                    "team": "payments",
                    "severity": "SEV3",
                    "severity_from_label": {
                        "label": "severity",
                        "values": {"page": "SEV1", "critical": "SEV2", "warning": "SEV3"},
                    },
                    "title": "{{ labels.alertname }} on {{ labels.instance }}",
                },
            ],
        },
    }
    if fallback_cycle:
        teams_yaml, routing_yaml = documents["teams.yaml"], documents["routing.yaml"]
        for name, env, other in (
            ("ping", "TEST_FLAKY_URL", "pong"),
            ("pong", "TEST_BACKUP_HOOK_URL", "ping"),
        ):
            teams_yaml["channels"].append(
                {"name": name, "type": "webhook", "url": {"env": env}, "fallback": other}
            )
        teams_yaml["teams"].append(team("loop", "ping"))
        routing_yaml["rules"].insert(
            0, {"name": "loop", "match": 'team="loop"', "team": "loop", "severity": "SEV2"}
        )
    for name, document in documents.items():
        (directory / name).write_text(yaml.safe_dump(document, sort_keys=False))
    return directory


def post(client: httpx.Client, *alerts: dict[str, str], status: str = "firing") -> dict[str, Any]:
    ends = "2026-11-26T11:00:00Z" if status == "resolved" else "0001-01-01T00:00:00Z"
    response = client.post(
        AM, content=alertmanager_body(alerts, status=status, ends_at=ends), headers=HEADERS
    )
    assert response.status_code == 202, response.text
    answer: dict[str, Any] = response.json()
    return answer


def bodies(requests: list[Recorded]) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in requests]


def timeline(client: httpx.Client, incident: str = "INC-1") -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = client.get(f"/api/v1/incidents/{incident}").json()["timeline"]
    return entries


def pages(client: httpx.Client, incident: str = "INC-1") -> list[tuple[str, str, str]]:
    """(kind, channel, text) of every page attempt on the incident's timeline."""
    return [
        (e["kind"], e["data"]["channel"], e["text"])
        for e in timeline(client, incident)
        if e["kind"].startswith("page_")
    ]


def page_jobs(worker: TestWorker) -> list[str]:
    return sorted(job for job in worker.scheduled() if job.startswith("page-"))


def slack_ok(ts: str) -> Reply:
    body = json.dumps({"ok": True, "channel": "C0INCIDENTS", "ts": ts}).encode()
    return Reply(200, body=body, headers=(("Content-Type", "application/json"),))


# --- PagerDuty ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "severity", "pd_severity", "wait"),
    [
        # SEV1 pages step 1 at once; the channel's map says critical.
        pytest.param("page", "SEV1", "critical", timedelta(0), id="sev1-critical"),
        # SEV2 pages at once too; this channel maps it to error (the default would be critical).
        pytest.param("critical", "SEV2", "error", timedelta(0), id="sev2-error"),
        # SEV3 notifies the team channel first and pages step 1 only when its hour-long
        # response time passes unacknowledged; mapped to warning.
        pytest.param("warning", "SEV3", "warning", timedelta(hours=1), id="sev3-warning"),
    ],
)
def test_pagerduty_trigger_event(
    client: httpx.Client,
    at_thursday: TestWorker,
    pd_sink: Receiver,
    label: str,
    severity: str,
    pd_severity: str,
    wait: timedelta,
) -> None:
    worker = at_thursday
    post(client, DISK | {"severity": label}, DISK | {"severity": label, "instance": "db-2"})
    worker.drain()
    if wait:
        assert pd_sink.requests == []
        worker.advance(wait)
    assert len(pd_sink.requests) == 1
    request = pd_sink.requests[0]
    assert (request.method, request.path) == ("POST", "/v2/enqueue")
    assert request.headers["content-type"] == "application/json"
    event = json.loads(request.body)
    incident = client.get("/api/v1/incidents/INC-1").json()
    assert incident["severity"] == severity
    assert {k: event[k] for k in ("routing_key", "dedup_key", "event_action", "client")} == {
        "routing_key": ROUTING_KEY,
        "dedup_key": "INC-1",
        "event_action": "trigger",
        "client": "sevrouter",
    }
    assert event["client_url"] == "http://sevrouter.test/api/v1/incidents/INC-1"
    assert [link["text"] for link in event["links"]] == [
        "INC-1 in sevrouter",
        "Acknowledge INC-1",
        "Resolve INC-1",
    ]
    payload = event["payload"]
    assert payload["summary"] == f"{severity} INC-1: DiskFull on db-1 [team payments]"
    assert payload["severity"] == pd_severity
    assert payload["source"] == "payments"
    assert payload["timestamp"] == incident["opened_at"]
    # Labels every member alert shares become PD-CEF fields; the instances differ.
    assert (payload["group"], payload["class"]) == ("eu-1", "DiskFull")
    assert "component" not in payload
    details = payload["custom_details"]
    assert (details["incident"], details["state"], details["alerts_firing"]) == (
        "INC-1",
        "triggered",
        2,
    )
    assert sorted(a["instance"] for a in details["alerts"]) == ["db-1", "db-2"]


def test_pagerduty_follows_ack_and_resolve_with_the_same_dedup_key(
    client: httpx.Client, at_thursday: TestWorker, pd_sink: Receiver
) -> None:
    worker = at_thursday
    alert = DISK | {"severity": "critical"}
    post(client, alert)
    worker.drain()
    worker.advance(timedelta(minutes=3))
    ack = client.post("/api/v1/incidents/INC-1/ack", headers=ALICE)
    assert (ack.status_code, ack.json()["state"]) == (200, "acknowledged")
    worker.drain()
    worker.advance(timedelta(minutes=3))
    assert post(client, alert, status="resolved")["outcomes"] == {"all_resolved": 1}
    worker.drain()
    events = bodies(pd_sink.requests)
    assert [(e["dedup_key"], e["event_action"]) for e in events] == [
        ("INC-1", "trigger"),
        ("INC-1", "acknowledge"),
        ("INC-1", "resolve"),
    ]
    # Acknowledge and resolve are bare envelopes: PagerDuty takes nothing else with them.
    envelope = {"routing_key": ROUTING_KEY, "dedup_key": "INC-1"}
    assert events[1:] == [
        envelope | {"event_action": "acknowledge"},
        envelope | {"event_action": "resolve"},
    ]
    assert [(k, c) for k, c, _ in pages(client) if c == "pd"] == [("page_sent", "pd")] * 3


# --- Slack ----------------------------------------------------------------------------------


def test_slack_bot_threads_ack_and_mitigation_under_the_first_message(
    client: httpx.Client, at_thursday: TestWorker, slack_sink: Receiver
) -> None:
    worker = at_thursday
    # Slack answers every post with the new message's ts; replies get their own.
    slack_sink.script(
        slack_ok(SLACK_TS), slack_ok("1700000000.000200"), slack_ok("1700000000.000300")
    )
    alert = DISK | {"severity": "critical"}
    post(client, alert)
    worker.drain()
    assert client.post("/api/v1/incidents/INC-1/ack", headers=ALICE).status_code == 200
    worker.drain()
    post(client, alert, status="resolved")
    worker.drain()
    assert [(r.method, r.path) for r in slack_sink.requests] == [("POST", "/chat.postMessage")] * 3
    assert {r.headers["authorization"] for r in slack_sink.requests} == {f"Bearer {BOT_TOKEN}"}
    assert {r.headers["content-type"] for r in slack_sink.requests} == {
        "application/json; charset=utf-8"
    }
    first, ack, mitigated = bodies(slack_sink.requests)
    # The first message opens the thread: posted to the channel, not as a reply.
    assert first["channel"] == "#incidents"
    assert "thread_ts" not in first
    assert first["text"].startswith("[SEV2] INC-1 DiskFull on db-1 (triggered)\n")
    assert first["unfurl_links"] is False
    assert isinstance(first["blocks"], list)
    assert first["blocks"]
    # The acknowledgement is a reply in that thread, under the first message's ts.
    assert (ack["channel"], ack["thread_ts"]) == ("#incidents", SLACK_TS)
    assert ack["text"].startswith("[SEV2] INC-1 DiskFull on db-1 (acknowledged)\n")
    assert "reply_broadcast" not in ack
    # The mitigation too, and broadcast to the channel: everyone learns it is over.
    assert (mitigated["thread_ts"], mitigated["reply_broadcast"]) == (SLACK_TS, True)
    assert mitigated["text"].startswith("[SEV2] INC-1 DiskFull on db-1 (mitigated)\n")
    assert [(k, c) for k, c, _ in pages(client) if c == "chat"] == [("page_sent", "chat")] * 3


@pytest.mark.parametrize(
    ("reply", "kind", "detail"),
    [
        # Slack says no with HTTP 200: `ok: false` decides, the error code is shown.
        pytest.param(
            Reply(200, body=b'{"ok":false,"error":"channel_not_found"}'),
            "page_failed",
            "trigger page to chat failed permanently after 1 attempt(s): "
            "HTTP 200: channel_not_found",
            id="channel-not-found",
        ),
        # A 2xx that is not a Slack reply (a proxy's page) cannot be trusted as delivered.
        pytest.param(
            Reply(200, body=b"<html>sign in</html>"),
            "page_failed",
            "trigger page to chat failed permanently after 1 attempt(s): "
            "HTTP 200: not a Slack Web API reply",
            id="not-slack",
        ),
        # Rate limited by Slack: retried after its Retry-After.
        pytest.param(
            Reply(200, body=b'{"ok":false,"error":"ratelimited"}', headers=(("Retry-After", "9"),)),
            "page_retry",
            "trigger page to chat attempt 1 failed: HTTP 200: ratelimited; retrying in 9s",
            id="ratelimited",
        ),
    ],
)
def test_slack_api_refusals(
    client: httpx.Client,
    at_thursday: TestWorker,
    slack_sink: Receiver,
    reply: Reply,
    kind: str,
    detail: str,
) -> None:
    slack_sink.script(reply)
    post(client, DISK | {"severity": "critical"})
    at_thursday.drain()
    assert len(slack_sink.requests) == 1
    assert (kind, "chat", detail) in pages(client)


# --- fallback -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("team", "channel", "fallback", "backup_requests"),
    [
        # A webhook answering 400 falls back to a second webhook, which gets the same page.
        pytest.param("hooks", "flaky", "backup-hook", 1, id="to-webhook"),
        # ... or to a log channel, which only writes a line (nothing more reaches the sink).
        pytest.param("drills", "flaky-drill", "drill-log", 0, id="to-log"),
    ],
)
def test_permanent_failure_falls_back(
    client: httpx.Client,
    at_thursday: TestWorker,
    hook_sink: Receiver,
    team: str,
    channel: str,
    fallback: str,
    backup_requests: int,
) -> None:
    worker = at_thursday
    hook_sink.script(Reply(400, body=b'{"error":"unknown route"}'))
    post(client, DISK | {"team": team})
    worker.drain()
    assert [r.path for r in hook_sink.requests] == ["/flaky"] + ["/backup"] * backup_requests
    trigger = [p for p in pages(client) if p[1] != "team-log"]
    assert trigger == [
        (
            "page_failed",
            channel,
            f"trigger page to {channel} failed permanently after 1 attempt(s): "
            'HTTP 400: {"error":"unknown route"}',
        ),
        (
            "page_sent",
            fallback,
            f"trigger-fallback page to {channel} via {fallback} delivered (attempt 1)",
        ),
    ]
    if backup_requests:
        backup = hook_sink.requests[1]
        assert backup.headers["x-sevrouter-event"] == "incident.opened"
        assert (
            backup.headers["x-sevrouter-idempotency-key"]
            == f"INC-1:1:channel:{channel}:{fallback}:trigger-fallback"
        )
        assert json.loads(backup.body)["incident"]["id"] == "INC-1"


def test_follow_ups_go_to_the_fallback_that_delivered(
    client: httpx.Client, at_thursday: TestWorker, hook_sink: Receiver
) -> None:
    worker = at_thursday
    hook_sink.script(Reply(400))
    post(client, DISK | {"team": "hooks"})
    worker.drain()
    assert client.post("/api/v1/incidents/INC-1/ack", headers=ALICE).status_code == 200
    worker.drain()
    # The channel that refused the page is not told of the ack; the one that delivered it is.
    assert [(r.path, r.headers["x-sevrouter-event"]) for r in hook_sink.requests] == [
        ("/flaky", "incident.opened"),
        ("/backup", "incident.opened"),
        ("/backup", "incident.acknowledged"),
    ]


# Two channels that fall back to each other would ping-pong a refused page: the rules refuse
# such a cycle when they load (and at run time a fallback never falls back again).
def test_fallback_cycle_is_refused_when_rules_load(tmp_path: Path, environ: dict[str, str]) -> None:
    rules = write_channel_rules(
        tmp_path / "cycle",
        pd_url="http://127.0.0.1:9/",
        slack_api="http://127.0.0.1:9",
        fallback_cycle=True,
    )
    with pytest.raises(ConfigError) as raised:
        load_ruleset(rules, environ)
    assert any("fallbacks must not form a cycle" in problem for problem in raised.value.problems)


# --- rate limit -----------------------------------------------------------------------------


def test_rate_limited_channel_spreads_pages_without_failing_them(
    client: httpx.Client, at_thursday: TestWorker, hook_sink: Receiver
) -> None:
    worker = at_thursday
    answer = post(
        client,
        *({"alertname": name, "team": "bulk"} for name in ("DiskFull", "CPUHigh", "OOMKilled")),
    )
    assert answer["incidents"]["opened"] == ["INC-1", "INC-2", "INC-3"]
    worker.drain()

    def delivered() -> list[str]:
        return [json.loads(r.body)["incident"]["id"] for r in hook_sink.requests]

    # One message a second, no burst: the first page goes at once, the two others wait their
    # turn, rescheduled without spending an attempt.
    assert delivered() == ["INC-1"]
    first_turn = page_jobs(worker)
    assert len(first_turn) == 2
    assert all(job.endswith("-1-t1") for job in first_turn)
    worker.advance(timedelta(milliseconds=999))
    assert delivered() == ["INC-1"]
    worker.advance(timedelta(milliseconds=1))  # one second after the first page
    assert len(delivered()) == 2
    # The third was turned away once more, and waits another second.
    assert [job[-5:] for job in page_jobs(worker)] == ["-1-t2"]
    worker.advance(timedelta(seconds=1))
    assert sorted(delivered()) == ["INC-1", "INC-2", "INC-3"]
    assert page_jobs(worker) == []
    for incident in ("INC-1", "INC-2", "INC-3"):
        # Each page went out on its first attempt: waiting for the limit is not a failure.
        assert [p for p in pages(client, incident) if p[1] == "slow"] == [
            ("page_sent", "slow", "trigger page to slow delivered (attempt 1)")
        ]
    keys = worker.context.keys
    records = [
        worker.redis.hmget(keys.page(f"{i}:1:channel:slow:slow:trigger"), "attempts", "throttled")
        for i in ("INC-1", "INC-2", "INC-3")
    ]
    counts = sorted((int(a or 0), int(t or 0)) for a, t in records)
    assert counts == [(1, 0), (1, 1), (1, 2)]
    stats = worker.redis.hgetall(keys.stats)
    assert stats[b"page:slow:delivered"] == b"3"
    assert b"page:slow:retry" not in stats
    assert b"page:slow:permanent" not in stats
