"""The response workflow on a timeline: a real rq worker, a test clock, a local paged endpoint.

The receiver's clock is the worker's test clock too (`clock` fixture), so times the API stamps
(alerts, status updates, state changes) and times the worker stamps (reminders, pages) are on
one timeline, exactly as in production where both read the wall clock.

The rules are the suite's test rules with `requires_commander: true` on SEV1, as shipped:
- `pager` (/page at the sink) is escalation step 1 of team `platform`; step 2 pages whoever is
  on call in `primary` (alice, the week of 2026-11-23) through `backup` (/page/backup);
- bob's (and alice's) contact is `backup`, so reminders to a person arrive at /page/backup;
- the team channel `team-log` is a log channel: what it is sent shows on the timeline as
  `page_sent` and in the page record's `body`, never at the sink;
- SEV1 updates are due every 15 minutes, SEV2 every 30; the incidents policy is the default:
  commander reminders every 5 minutes, a 30 minute quiet period, postmortems due in 48 hours.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
import yaml
from redis import Redis

import router.api_actions
import router.api_workflow
import router.webhook
from router.keys import Keys, text
from router.ruleset import Ruleset
from router.settings import Settings
from tests.support.http_receiver import Receiver, serve_receiver
from tests.support.payloads import alertmanager_body
from tests.support.rules import ALICE_TOKEN, BOB_TOKEN, TOKEN, write_rules
from tests.support.worker import Clock, TestWorker

AM = "/api/v1/webhooks/alertmanager"
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
ALICE = {"Authorization": f"Bearer {ALICE_TOKEN}"}
BOB = {"Authorization": f"Bearer {BOB_TOKEN}"}
# Thursday 10:00 UTC: alice is on call in `primary`, and it is within business hours.
T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
DISK = {"alertname": "DiskFull", "cluster": "eu-1", "instance": "db-1"}
INCIDENT = "/api/v1/incidents/INC-1"


# --- one clock for the receiver and the worker -------------------------------------------------


class _ReceiverTime:
    """Stands in for the `time` module in the receiver's modules: `time()` reads the test
    clock; `perf_counter()` (latency metrics) stays real."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def time(self) -> float:
        return self._clock.now.timestamp()

    def perf_counter(self) -> float:
        return time.perf_counter()


class _ReceiverDatetime(datetime):
    """`datetime` whose `now()` is the test clock (the workflow API reads `datetime.now`)."""

    clock: ClassVar[Clock]

    @classmethod
    def now(cls, tz: tzinfo | None = None) -> _ReceiverDatetime:
        return cls.fromtimestamp(cls.clock.now.timestamp(), tz)


def share_clock(monkeypatch: pytest.MonkeyPatch, clock: Clock) -> None:
    """Make the receiver served in this process read `clock`, like the worker does."""
    receiver_time = _ReceiverTime(clock)
    for module in (router.webhook, router.api_actions, router.api_workflow):
        monkeypatch.setattr(module, "time", receiver_time)
    monkeypatch.setattr(_ReceiverDatetime, "clock", clock, raising=False)
    monkeypatch.setattr(router.api_workflow, "datetime", _ReceiverDatetime)


def write_workflow_rules(directory: Path) -> Path:
    """The test rules, with SEV1 requiring an Incident Commander (as the shipped rules do)."""
    write_rules(directory)
    severities = directory / "severities.yaml"
    document = yaml.safe_load(severities.read_text())
    document["severities"]["SEV1"]["requires_commander"] = True
    severities.write_text(yaml.safe_dump(document, sort_keys=False))
    return directory


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture
def sink() -> Iterator[Receiver]:
    with serve_receiver() as receiver:
        yield receiver


@pytest.fixture
def page_url(sink: Receiver) -> str:
    return f"{sink.url}/page"


@pytest.fixture
def rules_path(tmp_path: Path) -> Path:
    return write_workflow_rules(tmp_path / "rules")


@pytest.fixture
def clock(worker: TestWorker, monkeypatch: pytest.MonkeyPatch) -> Clock:
    worker.clock.now = T0
    share_clock(monkeypatch, worker.clock)
    return worker.clock


@pytest.fixture
def new_york_local_time() -> Iterator[None]:
    """The process's local time zone is not UTC: every time we print must say UTC and be it."""
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "America/New_York"
    time.tzset()
    try:
        yield
    finally:
        if saved is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = saved
        time.tzset()


# --- helpers -----------------------------------------------------------------------------------


def ms(offset: timedelta) -> int:
    """T0 + offset in epoch milliseconds, as deadlines are stored and named."""
    return int((T0 + offset).timestamp() * 1000)


def go(worker: TestWorker, offset: timedelta) -> None:
    """Move the clock to T0 + offset, running every job due on the way."""
    assert worker.clock.now <= T0 + offset, "the clock only moves forward"
    worker.advance(T0 + offset - worker.clock.now)


def post_alert(client: httpx.Client, severity: str, status: str = "firing") -> None:
    body = alertmanager_body(
        [DISK | {"severity": severity}],
        status=status,
        ends_at="2026-11-26T10:10:00Z" if status == "resolved" else "0001-01-01T00:00:00Z",
    )
    response = client.post(AM, content=body, headers=HEADERS)
    assert response.status_code == 202, response.text


def call(
    client: httpx.Client,
    method: str,
    path: str,
    status: int = 200,
    body: dict[str, Any] | None = None,
    headers: dict[str, str] = ALICE,
) -> Any:
    """One API call that must answer `status`; returns the JSON answer."""
    response = client.request(method, path, json=body, headers=headers)
    assert response.status_code == status, response.text
    return response.json()


class Watch:
    """What is new since the last look: timeline entries of INC-1, requests at the sink."""

    def __init__(self, client: httpx.Client, sink: Receiver, incident: str = "INC-1") -> None:
        self._client, self._sink, self._incident = client, sink, incident
        self._entries = self._pages = 0

    def timeline(self) -> list[tuple[str, str, str, str]]:
        """New entries as (time since T0, kind, actor, text), in time order."""
        entries = self._client.get(f"/api/v1/incidents/{self._incident}").json()["timeline"]
        new, self._entries = entries[self._entries :], len(entries)
        return sorted(
            (str(datetime.fromisoformat(e["at"]) - T0), e["kind"], e["actor"], e["text"])
            for e in new
        )

    def pages(self) -> list[tuple[str, str, str]]:
        """New requests at the sink as (path, event, idempotency key), sorted."""
        new, self._pages = self._sink.requests[self._pages :], len(self._sink.requests)
        return sorted(
            (r.path, r.headers["x-sevrouter-event"], r.headers["x-sevrouter-idempotency-key"])
            for r in new
        )

    def nothing(self) -> bool:
        """True when nothing happened since the last look."""
        return self.timeline() == [] and self.pages() == []

    def skip(self) -> None:
        """Look, and forget what was seen: the next look starts from now."""
        self.timeline()
        self.pages()


def page_record(redis: Redis, settings: Settings, key: str) -> dict[str, str]:
    raw = redis.hgetall(Keys(settings.key_prefix).page(key))
    return {text(k): text(v) for k, v in raw.items()}


def delivered(kind: str, to: str, at: str) -> tuple[str, str, str, str]:
    """The timeline entry of a page delivered at its first attempt."""
    return (at, "page_sent", "sevrouter", f"{kind} page to {to} delivered (attempt 1)")


def section(lines: list[str], heading: str) -> list[str]:
    """The non-empty lines under a Markdown heading, up to the next heading or the end."""
    body = lines[lines.index(heading) + 1 :]
    ends = [i for i, line in enumerate(body) if line.startswith(("#", "_Draft"))]
    return [line for line in body[: ends[0] if ends else None] if line]


def incident_field(redis: Redis, settings: Settings, name: str) -> str | None:
    value = redis.hget(Keys(settings.key_prefix).incident("INC-1"), name)
    return None if value is None else text(value)


# --- the full SEV1 timeline --------------------------------------------------------------------

COMMANDER_NOTE = (
    "SEV1 without an Incident Commander: assign one (sevrouter incidents role ... commander)"
)
POSTMORTEM_NOTE = (
    "Postmortem of INC-1 is due: write it (sevrouter postmortem INC-1) and close the incident"
)
OVERDUE_NOTE = "Status update still overdue: the Communications lead has been reminded"


@pytest.mark.usefixtures("new_york_local_time")
def test_sev1_from_first_alert_to_closed_postmortem(
    client: httpx.Client,
    worker: TestWorker,
    clock: Clock,
    sink: Receiver,
    redis: Redis,
    settings: Settings,
    ruleset: Ruleset,
) -> None:
    policy = ruleset.config.incidents
    assert (policy.commander_reminder, policy.postmortem_due) == (300, 48 * 3600)
    watch = Watch(client, sink)
    m = timedelta(minutes=1)

    # 10:00 The first alert opens INC-1 as SEV1: step 1 is paged, the team channel hears the
    # seed's "Incident Started" with the first update due in 15 minutes (the SEV1 cadence).
    post_alert(client, "page")
    worker.drain()
    assert watch.pages() == [("/page", "incident.opened", "INC-1:1:channel:pager:pager:trigger")]
    assert watch.timeline() == [
        (
            "0:00:00",
            "escalation",
            "sevrouter",
            "paging step 1: channel pager; next step at 10:05:00 UTC unless acknowledged",
        ),
        (
            "0:00:00",
            "opened",
            "sevrouter",
            "Incident opened: DiskFull on db-1 (SEV1, team platform, rule alerts)",
        ),
        delivered("notify", "team-log", "0:00:00"),
        delivered("trigger", "pager", "0:00:00"),
    ]
    started = page_record(redis, settings, "INC-1:0:channel:team-log:team-log:notify")
    assert (started["event"], started["status"]) == ("incident.opened", "delivered")
    assert started["body"] == (
        "**Incident Started**: 2026-11-26 10:00 UTC\n"
        "**Severity**: SEV1 (Complete outage)\n"
        "**Impact**: INC-1: DiskFull on db-1. DiskFull fired.\n"
        "**Status**: Investigating\n"
        "**Next Update**: 2026-11-26 10:15 UTC\n"
    )
    assert incident_field(redis, settings, "next_update_at") == str(ms(15 * m))

    # 10:05 Nobody is Incident Commander: step 1 is paged again, and the team channel told.
    # (Unacknowledged, escalation pages step 2, alice, at the same time.)
    go(worker, 5 * m - timedelta(seconds=1))
    assert watch.nothing()
    go(worker, 5 * m)
    assert watch.pages() == [
        ("/page", "incident.reminder", "INC-1:0:channel:pager:pager:commander-1"),
        ("/page/backup", "incident.escalated", "INC-1:2:person:alice:backup:escalate-2-r0"),
    ]
    assert watch.timeline() == [
        (
            "0:05:00",
            "escalation",
            "sevrouter",
            "paging step 2: schedule primary; next step at 10:15:00 UTC unless acknowledged",
        ),
        delivered("commander-1", "pager", "0:05:00"),
        delivered("commander-1", "team-log", "0:05:00"),
        delivered("escalate-2-r0", "person:alice via backup", "0:05:00"),
        ("0:05:00", "reminder", "sevrouter", COMMANDER_NOTE),
    ]
    reminder = next(r for r in sink.requests if r.headers["x-sevrouter-event"].endswith("reminder"))
    assert json.loads(reminder.body)["text"] == COMMANDER_NOTE

    # 10:10 Still nobody: the reminder repeats five minutes later.
    go(worker, 10 * m)
    assert watch.pages() == [
        ("/page", "incident.reminder", "INC-1:0:channel:pager:pager:commander-2")
    ]
    assert watch.timeline() == [
        delivered("commander-2", "pager", "0:10:00"),
        delivered("commander-2", "team-log", "0:10:00"),
        ("0:10:00", "reminder", "sevrouter", COMMANDER_NOTE),
    ]

    # 10:12 alice takes command and makes bob Communications.
    go(worker, 12 * m)
    assert call(
        client, "POST", f"{INCIDENT}/roles", body={"role": "commander", "person": "alice"}
    ) == {"incident": "INC-1", "role": "commander", "person": "alice", "previous": None}
    assert call(
        client, "POST", f"{INCIDENT}/roles", body={"role": "Communications", "person": "bob"}
    ) == {"incident": "INC-1", "role": "communications", "person": "bob", "previous": None}
    worker.drain()
    assert watch.timeline() == [
        ("0:12:00", "role_assigned", "alice", "alice is Incident Commander (assigned by alice)"),
        ("0:12:00", "role_assigned", "alice", "bob is Communications (assigned by alice)"),
    ]

    # 10:15 The commander reminders have stopped. The first status update is due and none came:
    # bob (Communications) is reminded, at his contact. Escalation has run out of steps.
    go(worker, 15 * m)
    first_due = ms(15 * m)
    assert watch.pages() == [
        (
            "/page/backup",
            "incident.reminder",
            f"INC-1:0:person:bob:backup:update-reminder-{first_due}",
        )
    ]
    assert watch.timeline() == [
        (
            "0:15:00",
            "escalation",
            "sevrouter",
            "escalation exhausted: every step paged, unacknowledged",
        ),
        delivered(f"update-reminder-{first_due}", "person:bob via backup", "0:15:00"),
        (
            "0:15:00",
            "reminder",
            "sevrouter",
            "Status update overdue (was due 10:15 UTC): reminded bob",
        ),
    ]
    go(worker, 22 * m)
    assert watch.nothing()  # no commander reminder at 10:20; the team channel waits till 10:22:30

    # 10:22:30 Half a cadence after reminding bob, still no update: the team channel hears.
    go(worker, 22 * m + timedelta(seconds=30))
    assert watch.pages() == []
    assert watch.timeline() == [
        delivered(f"update-overdue-{first_due}", "team-log", "0:22:30"),
        ("0:22:30", "reminder", "sevrouter", OVERDUE_NOTE),
    ]

    # 10:25 bob posts update #1, the next due in 20 minutes: the team channel gets the seed's
    # Status Update, and the deadline moves to 10:45.
    go(worker, 25 * m)
    update = call(
        client,
        "POST",
        f"{INCIDENT}/updates",
        201,
        {
            "status": "investigating",
            "facts": ["db-1 data volume is full", "writes fail since 09:58"],
            "actions": ["Moving WAL archives off the volume"],
            "next_update": "20m",
        },
        BOB,
    )
    assert (update["number"], update["update"]["next_update"]) == (1, "2026-11-26T10:45:00+00:00")
    worker.drain()
    assert watch.timeline() == [
        delivered("update-1", "team-log", "0:25:00"),
        ("0:25:00", "status_update", "bob", "Status update #1 posted by bob"),
    ]
    posted = page_record(redis, settings, "INC-1:0:channel:team-log:team-log:update-1")
    assert (posted["event"], posted["body"]) == (
        "incident.notify",
        "**Status Update - 2026-11-26 10:25 UTC**\n\n"
        "INC-1 (SEV1): DiskFull on db-1\n\n"
        "Current Status: Investigating\n\n"
        "What we know:\n- db-1 data volume is full\n- writes fail since 09:58\n\n"
        "What we're doing:\n- Moving WAL archives off the volume\n\n"
        "Next update: 2026-11-26 10:45 UTC\n",
    )
    assert incident_field(redis, settings, "next_update_at") == str(ms(45 * m))

    # 10:44:59 nothing; 10:45 the new deadline passes: bob is reminded again.
    go(worker, 45 * m - timedelta(seconds=1))
    assert watch.nothing()
    go(worker, 45 * m)
    second_due = ms(45 * m)
    assert watch.pages() == [
        (
            "/page/backup",
            "incident.reminder",
            f"INC-1:0:person:bob:backup:update-reminder-{second_due}",
        )
    ]
    assert [entry[3] for entry in watch.timeline()] == [
        f"update-reminder-{second_due} page to person:bob via backup delivered (attempt 1)",
        "Status update overdue (was due 10:45 UTC): reminded bob",
    ]

    # 10:46 Update #2 (no next time given: the SEV1 cadence, 11:01) stops that reminder's
    # escalation to the team channel at 10:52:30.
    go(worker, 46 * m)
    update = call(client, "POST", f"{INCIDENT}/updates", 201, {"status": "investigating"}, BOB)
    assert (update["number"], update["update"]["next_update"]) == (2, "2026-11-26T11:01:00+00:00")
    worker.drain()
    assert watch.timeline() == [
        delivered("update-2", "team-log", "0:46:00"),
        ("0:46:00", "status_update", "bob", "Status update #2 posted by bob"),
    ]
    go(worker, 53 * m)
    assert watch.nothing()

    # 10:53 alice lowers the severity with a reason: on the timeline; nobody is paged again.
    reason = "Only EU customers are affected"
    assert call(
        client, "POST", f"{INCIDENT}/severity", body={"severity": "sev2", "reason": reason}
    ) == {"incident": "INC-1", "severity": "SEV2", "result": "ok", "message": "INC-1 is SEV2"}
    worker.drain()
    assert watch.timeline() == [
        (
            "0:53:00",
            "severity_changed",
            "alice",
            f"Severity changed from SEV1 to SEV2 by alice: {reason}",
        ),
    ]
    assert watch.pages() == []

    # 10:54 ... and raises it again: still unacknowledged, so escalation is re-evaluated at
    # once: the step already paged (alice) hears of it and the deadline restarts (10:59).
    reason = "US customers are failing too"
    go(worker, 54 * m)
    raised = call(
        client, "POST", f"{INCIDENT}/severity", body={"severity": "SEV1", "reason": reason}
    )
    assert raised["result"] == "ok"
    worker.drain()
    assert watch.pages() == [
        ("/page/backup", "incident.severity_raised", "INC-1:2:person:alice:backup:raised-SEV1")
    ]
    assert watch.timeline() == [
        ("0:54:00", "escalation", "sevrouter", "severity raised to SEV1; deadline reset"),
        delivered("raised-SEV1", "person:alice via backup", "0:54:00"),
        (
            "0:54:00",
            "severity_changed",
            "alice",
            f"Severity changed from SEV2 to SEV1 by alice: {reason}",
        ),
    ]
    go(worker, 59 * m)
    assert watch.timeline() == [
        (
            "0:59:00",
            "escalation",
            "sevrouter",
            "escalation exhausted: every step paged, unacknowledged",
        ),
    ]

    # 11:00 alice acknowledges: everyone paged hears it, and the team channel.
    go(worker, 60 * m)
    assert call(client, "POST", f"{INCIDENT}/ack")["state"] == "acknowledged"
    worker.drain()
    assert watch.pages() == [
        ("/page", "incident.acknowledged", "INC-1:1:channel:pager:pager:ack-0"),
        ("/page/backup", "incident.acknowledged", "INC-1:2:person:alice:backup:ack-0"),
    ]
    assert watch.timeline() == [
        ("1:00:00", "acknowledged", "alice", "Acknowledged by alice"),
        delivered("ack-0", "pager", "1:00:00"),
        delivered("ack-0", "person:alice via backup", "1:00:00"),
        delivered("ack-0", "team-log", "1:00:00"),  # the team channel heard of it too
    ]

    # 11:01 Update #2's deadline passes: acknowledged or not, bob is reminded.
    go(worker, 61 * m)
    assert watch.pages() == [
        (
            "/page/backup",
            "incident.reminder",
            f"INC-1:0:person:bob:backup:update-reminder-{ms(61 * m)}",
        )
    ]
    assert watch.timeline() == [
        delivered(f"update-reminder-{ms(61 * m)}", "person:bob via backup", "1:01:00"),
        (
            "1:01:00",
            "reminder",
            "sevrouter",
            "Status update overdue (was due 11:01 UTC): reminded bob",
        ),
    ]

    # 11:02 Update #3, mitigating; 11:05 alice mitigates (service restored).
    go(worker, 62 * m)
    call(
        client,
        "POST",
        f"{INCIDENT}/updates",
        201,
        {"status": "mitigating", "actions": ["Failing over to db-2"], "next_update": "20m"},
        BOB,
    )
    go(worker, 65 * m)
    assert call(client, "POST", f"{INCIDENT}/mitigate")["state"] == "mitigated"
    worker.drain()
    assert watch.pages() == [
        ("/page", "incident.mitigated", "INC-1:1:channel:pager:pager:mitigated-0"),
        ("/page/backup", "incident.mitigated", "INC-1:2:person:alice:backup:mitigated-0"),
    ]
    assert [entry[1:] for entry in watch.timeline() if entry[1] != "page_sent"] == [
        ("status_update", "bob", "Status update #3 posted by bob"),
        ("mitigated_by_hand", "alice", "Marked mitigated by alice"),
    ]

    # 11:20 The final update says resolved: no next update is due, so no reminder ever again:
    # 11:22, update #3's deadline, passes quietly though the incident is still open (mitigated).
    go(worker, 80 * m)
    update = call(
        client,
        "POST",
        f"{INCIDENT}/updates",
        201,
        {"status": "resolved", "facts": ["db-2 serves all writes"]},
        BOB,
    )
    assert (update["number"], update["update"]["next_update"]) == (4, None)
    worker.drain()
    assert incident_field(redis, settings, "next_update_at") == ""
    assert [entry[1:] for entry in watch.timeline()] == [
        ("page_sent", "sevrouter", "update-4 page to team-log delivered (attempt 1)"),
        ("status_update", "bob", "Status update #4 posted by bob"),
    ]
    go(worker, 85 * m)
    assert watch.nothing()

    # 11:25 alice resolves: the paged hear it; the postmortem is due 48 hours later.
    assert call(client, "POST", f"{INCIDENT}/resolve")["state"] == "resolved"
    worker.drain()
    assert watch.pages() == [
        ("/page", "incident.resolved", "INC-1:1:channel:pager:pager:resolved-0"),
        ("/page/backup", "incident.resolved", "INC-1:2:person:alice:backup:resolved-0"),
    ]
    assert [entry for entry in watch.timeline() if entry[1] != "page_sent"] == [
        ("1:25:00", "postmortem", "sevrouter", "Postmortem due 2026-11-28 11:25 UTC"),
        ("1:25:00", "resolved_by_hand", "alice", "Resolved by alice"),
    ]

    # 11:30 Action items for the postmortem: added, listed, one completed.
    go(worker, 90 * m)
    added = call(
        client,
        "POST",
        f"{INCIDENT}/actions",
        201,
        {"text": "Alert at 80% disk on db hosts", "owner": "bob", "due": "2026-12-04"},
    )
    assert added == {
        "number": 1,
        "text": "Alert at 80% disk on db hosts",
        "owner": "bob",
        "due": "2026-12-04",
        "done": False,
    }
    call(client, "POST", f"{INCIDENT}/actions", 201, {"text": "Move WAL archives to S3"})
    assert call(client, "POST", f"{INCIDENT}/actions/2/done")["done"] is True
    assert call(client, "GET", f"{INCIDENT}/actions") == {
        "incident": "INC-1",
        "actions": [
            added,
            {
                "number": 2,
                "text": "Move WAL archives to S3",
                "owner": "",
                "due": None,
                "done": True,
            },
        ],
    }
    worker.drain()
    assert watch.timeline() == [
        ("1:30:00", "action_added", "alice", "Action item #1 added by alice"),
        ("1:30:00", "action_added", "alice", "Action item #2 added by alice"),
        ("1:30:00", "action_done", "alice", "Action item #2 done, marked by alice"),
    ]

    # Sat 11:24:59 not yet; 11:25 the postmortem is due: alice (Commander) is reminded.
    resolved_at = 85 * m
    go(worker, resolved_at + timedelta(hours=48) - timedelta(seconds=1))
    assert watch.nothing()
    go(worker, resolved_at + timedelta(hours=48))
    assert watch.pages() == [
        ("/page/backup", "incident.reminder", "INC-1:0:person:alice:backup:postmortem-0")
    ]
    assert watch.timeline() == [
        delivered("postmortem-0", "person:alice via backup", "2 days, 1:25:00"),
        ("2 days, 1:25:00", "reminder", "sevrouter", POSTMORTEM_NOTE),
    ]
    # ... and every day after, until the incident is closed.
    go(worker, resolved_at + timedelta(hours=72) - timedelta(seconds=1))
    assert watch.nothing()
    go(worker, resolved_at + timedelta(hours=72))
    assert watch.pages() == [
        ("/page/backup", "incident.reminder", "INC-1:0:person:alice:backup:postmortem-1")
    ]
    assert watch.timeline()[-1] == ("3 days, 1:25:00", "reminder", "sevrouter", POSTMORTEM_NOTE)

    # The postmortem draft: the seed's template with the milestones, roles and action items.
    markdown = client.get(f"{INCIDENT}/postmortem")
    assert markdown.headers["content-type"] == "text/markdown; charset=utf-8"
    lines = markdown.text.splitlines()
    assert lines[:5] == [
        "## Incident Postmortem: INC-1 DiskFull on db-1",
        "",
        "**Date**: 2026-11-26",
        "**Duration**: 2026-11-26 10:00 UTC - 2026-11-26 11:25 UTC (1h 25m)",
        "**Severity**: SEV1 (Complete outage)",
    ]
    assert "**Author**: alice" in lines  # the Incident Commander
    # The timeline: the seed's milestones in bold, every decision in between, no reminders.
    assert section(lines, "### Timeline") == [
        "- 2026-11-26 10:00:00 UTC - **First alert**: DiskFull {cluster=eu-1, instance=db-1, "
        "severity=page} fired",
        "- 2026-11-26 10:00:00 UTC - Incident opened: DiskFull on db-1 (SEV1, team platform, "
        "rule alerts)",
        "- 2026-11-26 10:00:00 UTC - paging step 1: channel pager; next step at 10:05:00 UTC "
        "unless acknowledged",
        "- 2026-11-26 10:00:00 UTC - **Team engaged**: trigger page to pager delivered (attempt 1)",
        "- 2026-11-26 10:05:00 UTC - paging step 2: schedule primary; next step at 10:15:00 UTC "
        "unless acknowledged",
        "- 2026-11-26 10:12:00 UTC - alice is Incident Commander (assigned by alice)",
        "- 2026-11-26 10:12:00 UTC - bob is Communications (assigned by alice)",
        "- 2026-11-26 10:15:00 UTC - escalation exhausted: every step paged, unacknowledged",
        "- 2026-11-26 10:25:00 UTC - Status update #1 posted by bob",
        "- 2026-11-26 10:46:00 UTC - Status update #2 posted by bob",
        "- 2026-11-26 10:53:00 UTC - Severity changed from SEV1 to SEV2 by alice: Only EU "
        "customers are affected",
        "- 2026-11-26 10:54:00 UTC - Severity changed from SEV2 to SEV1 by alice: US customers "
        "are failing too",
        "- 2026-11-26 10:54:00 UTC - severity raised to SEV1; deadline reset",
        "- 2026-11-26 10:59:00 UTC - escalation exhausted: every step paged, unacknowledged",
        "- 2026-11-26 11:00:00 UTC - **Acknowledged**: Acknowledged by alice",
        "- 2026-11-26 11:02:00 UTC - Status update #3 posted by bob",
        "- 2026-11-26 11:05:00 UTC - **Mitigated (service restored)**: Marked mitigated by alice",
        "- 2026-11-26 11:20:00 UTC - Status update #4 posted by bob",
        "- 2026-11-26 11:25:00 UTC - **Resolved (root cause fixed)**: Resolved by alice",
    ]
    assert section(lines, "### Roles") == [
        "| Role | Person |",
        "| --- | --- |",
        "| Incident Commander | alice |",
        "| Tech Lead | _(unassigned)_ |",
        "| Communications | bob |",
        "| Scribe | _(unassigned)_ |",
    ]
    assert section(lines, "### Action Items") == [
        "- [ ] Alert at 80% disk on db hosts - Owner: bob - Due: 2026-12-04",
        "- [x] Move WAL archives to S3 - Owner: _(unassigned)_ - Due: _(no date)_",
    ]
    assert lines[-1] == (
        "_Draft generated by sevrouter at 2026-11-29 11:25 UTC from the incident's timeline._"
    )

    # Closing marks the postmortem done: no reminder on the following days.
    go(worker, resolved_at + timedelta(hours=72, minutes=5))
    assert call(client, "POST", f"{INCIDENT}/close")["state"] == "closed"
    worker.drain()
    assert incident_field(redis, settings, "postmortem_status") == "done"
    assert watch.timeline() == [("3 days, 1:30:00", "closed", "alice", "Closed by alice")]
    for day in (4, 5, 6):
        go(worker, resolved_at + timedelta(days=day))
    assert watch.nothing()
    assert worker.scheduled() == []

    # Time to acknowledge, mitigate and resolve, for /metrics.
    metrics = [
        line
        for line in client.get("/metrics").text.splitlines()
        if line.startswith("sevrouter_time_to_") and 'severity="SEV1"' in line
    ]
    assert metrics == [
        'sevrouter_time_to_acknowledge_seconds_count{severity="SEV1"} 1.0',
        'sevrouter_time_to_acknowledge_seconds_sum{severity="SEV1"} 3600.0',
        'sevrouter_time_to_mitigate_seconds_count{severity="SEV1"} 1.0',
        'sevrouter_time_to_mitigate_seconds_sum{severity="SEV1"} 3900.0',
        'sevrouter_time_to_resolve_seconds_count{severity="SEV1"} 1.0',
        'sevrouter_time_to_resolve_seconds_sum{severity="SEV1"} 5100.0',
    ]


# --- who is reminded -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("roles", "reminded"),
    [
        # Communications posts the updates, so Communications is reminded, at their contact;
        # half a cadence later (SEV2: 15 minutes) the team channel hears it is still overdue.
        pytest.param({"communications": "bob", "commander": "alice"}, "bob", id="communications"),
        # Without Communications, the Incident Commander.
        pytest.param({"commander": "alice"}, "alice", id="commander"),
        # Nobody in either role: the team channel at once, and nothing more later.
        pytest.param({"scribe": "bob"}, None, id="nobody"),
        # Someone the rules do not know cannot be paged: the team channel instead.
        pytest.param({"communications": "carol"}, None, id="unknown-person"),
    ],
)
def test_overdue_update_reminds_communications_else_commander_else_team(
    client: httpx.Client,
    worker: TestWorker,
    clock: Clock,
    sink: Receiver,
    roles: dict[str, str],
    reminded: str | None,
) -> None:
    post_alert(client, "critical")  # SEV2: an update every 30 minutes
    worker.drain()
    call(client, "POST", f"{INCIDENT}/ack")
    for role, person in roles.items():
        call(client, "POST", f"{INCIDENT}/roles", body={"role": role, "person": person})
    worker.drain()
    watch = Watch(client, sink)
    watch.skip()
    kind = f"update-reminder-{ms(timedelta(minutes=30))}"
    go(worker, timedelta(minutes=29, seconds=59))
    assert watch.nothing()
    go(worker, timedelta(minutes=30))
    if reminded is None:
        assert watch.pages() == []
        assert watch.timeline() == [
            delivered(kind, "team-log", "0:30:00"),
            (
                "0:30:00",
                "reminder",
                "sevrouter",
                "Status update overdue (was due 10:30 UTC): reminded the team channel",
            ),
        ]
        go(worker, timedelta(minutes=45))
        assert watch.nothing()  # the team channel already knows
    else:
        assert watch.pages() == [
            ("/page/backup", "incident.reminder", f"INC-1:0:person:{reminded}:backup:{kind}")
        ]
        assert watch.timeline() == [
            delivered(kind, f"person:{reminded} via backup", "0:30:00"),
            (
                "0:30:00",
                "reminder",
                "sevrouter",
                f"Status update overdue (was due 10:30 UTC): reminded {reminded}",
            ),
        ]
        go(worker, timedelta(minutes=45))
        assert watch.pages() == []
        assert watch.timeline() == [
            delivered(kind.replace("reminder", "overdue"), "team-log", "0:45:00"),
            ("0:45:00", "reminder", "sevrouter", OVERDUE_NOTE),
        ]
    go(worker, timedelta(hours=3))
    assert watch.nothing()  # one reminder (and one escalation) per missed deadline


@pytest.mark.parametrize(
    ("roles", "page", "to"),
    [
        # The Incident Commander writes the postmortem: reminded at their contact.
        pytest.param(
            {"commander": "alice"},
            [("/page/backup", "incident.reminder", "INC-1:0:person:alice:backup:postmortem-0")],
            "person:alice via backup",
            id="commander",
        ),
        # No Commander: the team channel is reminded instead.
        pytest.param({"communications": "bob"}, [], "team-log", id="no-commander"),
    ],
)
def test_postmortem_reminder_goes_to_the_commander_else_the_team(
    client: httpx.Client,
    worker: TestWorker,
    clock: Clock,
    sink: Receiver,
    roles: dict[str, str],
    page: list[tuple[str, str, str]],
    to: str,
) -> None:
    post_alert(client, "critical")
    worker.drain()
    for role, person in roles.items():
        call(client, "POST", f"{INCIDENT}/roles", body={"role": role, "person": person})
    call(client, "POST", f"{INCIDENT}/resolve")
    worker.drain()
    watch = Watch(client, sink)
    watch.skip()
    go(worker, timedelta(hours=47, minutes=59, seconds=59))
    assert watch.nothing()
    go(worker, timedelta(hours=48))
    assert watch.pages() == page
    assert watch.timeline() == [
        delivered("postmortem-0", to, "2 days, 0:00:00"),
        ("2 days, 0:00:00", "reminder", "sevrouter", POSTMORTEM_NOTE),
    ]


# --- quiet SEV3/SEV4 incidents resolve themselves ------------------------------------------


@pytest.mark.parametrize(
    ("label", "state"),
    [
        # SEV3: every alert resolved and 30 quiet minutes: sevrouter resolves it.
        pytest.param("warning", "resolved", id="sev3-resolves"),
        # SEV4 likewise.
        pytest.param("info", "resolved", id="sev4-resolves"),
        # SEV2 waits for a human to resolve it (and for its postmortem).
        pytest.param("critical", "mitigated", id="sev2-waits"),
        # SEV1 likewise.
        pytest.param("page", "mitigated", id="sev1-waits"),
    ],
)
def test_quiet_incident_resolves_after_the_quiet_period_unless_sev1_or_sev2(
    client: httpx.Client,
    worker: TestWorker,
    clock: Clock,
    redis: Redis,
    settings: Settings,
    label: str,
    state: str,
) -> None:
    post_alert(client, label)
    worker.drain()
    go(worker, timedelta(minutes=10))
    post_alert(client, label, status="resolved")
    worker.drain()
    assert call(client, "GET", INCIDENT)["state"] == "mitigated"
    go(worker, timedelta(minutes=39, seconds=59))
    assert call(client, "GET", INCIDENT)["state"] == "mitigated"
    go(worker, timedelta(minutes=40))
    incident = call(client, "GET", INCIDENT)
    assert incident["state"] == state
    resolved = [
        (e["at"], e["actor"], e["text"])
        for e in incident["timeline"]
        if e["kind"] == "resolved_by_hand"
    ]
    quietly = (
        "2026-11-26T10:40:00+00:00",
        "sevrouter (quiet period)",
        "Resolved by sevrouter (quiet period)",
    )
    assert resolved == ([quietly] if state == "resolved" else [])
    # No postmortem for what resolved itself; SEV1/SEV2 get theirs when a human resolves.
    assert incident_field(redis, settings, "postmortem_status") is None


def test_refiring_within_the_quiet_period_starts_it_again(
    client: httpx.Client, worker: TestWorker, clock: Clock
) -> None:
    post_alert(client, "warning")
    worker.drain()
    go(worker, timedelta(minutes=10))
    post_alert(client, "warning", status="resolved")  # quiet from 10:10 ...
    go(worker, timedelta(minutes=20))
    post_alert(client, "warning")  # ... but it fires again at 10:20: reopened
    worker.drain()
    assert call(client, "GET", INCIDENT)["state"] == "triggered"
    go(worker, timedelta(minutes=25))
    post_alert(client, "warning", status="resolved")  # quiet from 10:25
    worker.drain()
    go(worker, timedelta(minutes=40))  # 30 minutes after the first resolve: not quiet that long
    assert call(client, "GET", INCIDENT)["state"] == "mitigated"
    go(worker, timedelta(minutes=54, seconds=59))
    assert call(client, "GET", INCIDENT)["state"] == "mitigated"
    go(worker, timedelta(minutes=55))
    incident = call(client, "GET", INCIDENT)
    assert incident["state"] == "resolved"
    assert [(e["at"], e["kind"]) for e in incident["timeline"] if e["actor"] != "sevrouter"] == [
        ("2026-11-26T10:55:00+00:00", "resolved_by_hand")
    ]
    assert (
        "Alert DiskFull {cluster=eu-1, instance=db-1, severity=warning} fired again within "
        "the flap window: incident reopened" in [e["text"] for e in incident["timeline"]]
    )


def test_raised_to_sev2_while_quiet_waits_for_a_human(
    client: httpx.Client, worker: TestWorker, clock: Clock, redis: Redis, settings: Settings
) -> None:
    post_alert(client, "warning")
    worker.drain()
    go(worker, timedelta(minutes=10))
    post_alert(client, "warning", status="resolved")
    go(worker, timedelta(minutes=15))
    call(
        client,
        "POST",
        f"{INCIDENT}/severity",
        body={"severity": "SEV2", "reason": "Customers reported failed checkouts"},
    )
    worker.drain()
    go(worker, timedelta(hours=3))
    assert call(client, "GET", INCIDENT)["state"] == "mitigated"
    call(client, "POST", f"{INCIDENT}/resolve")
    worker.drain()
    assert incident_field(redis, settings, "postmortem_status") == "open"


# A SEV1 lowered and raised back gets its commander reminders again (they are numbered for the
# life of the incident, so neither job ids nor page keys collide with the first cycle's).
def test_commander_reminders_resume_when_raised_back_to_sev1(
    client: httpx.Client, worker: TestWorker, clock: Clock, sink: Receiver
) -> None:
    post_alert(client, "page")
    worker.drain()
    call(client, "POST", f"{INCIDENT}/ack")
    go(worker, timedelta(minutes=5))  # commander reminder 1
    call(client, "POST", f"{INCIDENT}/severity", body={"severity": "SEV2", "reason": "EU only"})
    go(worker, timedelta(minutes=20))  # SEV2: no reminders
    call(client, "POST", f"{INCIDENT}/severity", body={"severity": "SEV1", "reason": "Global"})
    worker.drain()
    watch = Watch(client, sink)
    watch.skip()
    go(worker, timedelta(minutes=25))
    assert ("0:25:00", "reminder", "sevrouter", COMMANDER_NOTE) in watch.timeline()


# --- refusals --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status", "answer"),
    [
        # A role the seed does not have.
        pytest.param(
            "POST",
            "roles",
            {"role": "boss", "person": "bob"},
            ALICE,
            400,
            {
                "field": "role",
                "error": "role must be one of commander, tech_lead, communications, scribe",
            },
            id="bad-role",
        ),
        # A role for nobody.
        pytest.param(
            "POST",
            "roles",
            {"role": "scribe", "person": " "},
            ALICE,
            400,
            {"field": "person", "error": "person must be a non-empty string"},
            id="role-blank-person",
        ),
        # No body at all: the first field is missing.
        pytest.param(
            "POST",
            "roles",
            None,
            ALICE,
            400,
            {"field": "role", "error": "role must be a non-empty string"},
            id="role-no-body",
        ),
        # A body that is not a JSON object.
        pytest.param(
            "POST",
            "roles",
            ["commander", "bob"],
            ALICE,
            400,
            {"field": "", "error": "body must be a JSON object"},
            id="role-array-body",
        ),
        # A status the seed does not have.
        pytest.param(
            "POST",
            "updates",
            {"status": "fixed"},
            ALICE,
            400,
            {"field": "status", "error": "status must be investigating, mitigating or resolved"},
            id="bad-status",
        ),
        # The next update cannot be due before now (10:00) ...
        pytest.param(
            "POST",
            "updates",
            {"status": "investigating", "next_update": "2026-11-26T09:59:00Z"},
            ALICE,
            400,
            {"field": "next_update", "error": "next_update must be in the future"},
            id="next-update-in-the-past",
        ),
        # ... nor now.
        pytest.param(
            "POST",
            "updates",
            {"status": "investigating", "next_update": "0m"},
            ALICE,
            400,
            {"field": "next_update", "error": "next_update must be in the future"},
            id="next-update-now",
        ),
        # Neither a duration nor a time.
        pytest.param(
            "POST",
            "updates",
            {"status": "investigating", "next_update": "soon"},
            ALICE,
            400,
            {
                "field": "next_update",
                "error": "next_update must be a duration (30m) or an ISO time",
            },
            id="next-update-garbage",
        ),
        # Facts are a list of lines.
        pytest.param(
            "POST",
            "updates",
            {"status": "investigating", "facts": "it broke"},
            ALICE,
            400,
            {"field": "facts", "error": "facts must be a list of strings"},
            id="facts-not-a-list",
        ),
        # A severity that does not exist.
        pytest.param(
            "POST",
            "severity",
            {"severity": "SEV5", "reason": "worse"},
            ALICE,
            400,
            {"field": "severity", "error": "severity must be one of SEV1, SEV2, SEV3, SEV4"},
            id="bad-severity",
        ),
        # A severity change needs its reason.
        pytest.param(
            "POST",
            "severity",
            {"severity": "SEV1"},
            ALICE,
            400,
            {"field": "reason", "error": "reason must be a non-empty string"},
            id="missing-reason",
        ),
        # An action item's due date is a date.
        pytest.param(
            "POST",
            "actions",
            {"text": "Fix it", "due": "next week"},
            ALICE,
            400,
            {"field": "due", "error": "due must be a date, YYYY-MM-DD"},
            id="bad-due-date",
        ),
        # An action item needs its text.
        pytest.param(
            "POST",
            "actions",
            {"owner": "bob"},
            ALICE,
            400,
            {"field": "text", "error": "text must be a non-empty string"},
            id="action-without-text",
        ),
        # Writes need a token: roles ...
        pytest.param(
            "POST",
            "roles",
            {"role": "commander", "person": "bob"},
            {},
            401,
            {"error": "missing or invalid API token (Authorization: Bearer <token>)"},
            id="role-without-token",
        ),
        # ... status updates (a token nobody has is no token) ...
        pytest.param(
            "POST",
            "updates",
            {"status": "investigating"},
            {"Authorization": "Bearer guess"},
            401,
            {"error": "missing or invalid API token (Authorization: Bearer <token>)"},
            id="update-wrong-token",
        ),
        # ... severity changes ...
        pytest.param(
            "POST",
            "severity",
            {"severity": "SEV1", "reason": "x"},
            {},
            401,
            {"error": "missing or invalid API token (Authorization: Bearer <token>)"},
            id="severity-without-token",
        ),
        # ... and action items.
        pytest.param(
            "POST",
            "actions",
            {"text": "Fix it"},
            {},
            401,
            {"error": "missing or invalid API token (Authorization: Bearer <token>)"},
            id="action-without-token",
        ),
        # An action item that does not exist.
        pytest.param(
            "POST",
            "actions/1/done",
            None,
            ALICE,
            404,
            {"error": "INC-1 has no action item #1"},
            id="unknown-action-item",
        ),
    ],
)
def test_bad_input_is_refused_naming_the_field_and_changes_nothing(
    client: httpx.Client,
    worker: TestWorker,
    clock: Clock,
    method: str,
    path: str,
    body: Any,
    headers: dict[str, str],
    status: int,
    answer: dict[str, str],
) -> None:
    post_alert(client, "critical")
    worker.drain()
    before = call(client, "GET", INCIDENT)
    response = client.request(method, f"{INCIDENT}/{path}", json=body, headers=headers)
    assert (response.status_code, response.json()) == (status, answer)
    worker.drain()
    assert call(client, "GET", INCIDENT) == before
    assert call(client, "GET", f"{INCIDENT}/actions")["actions"] == []


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        # Every workflow endpoint answers 404 for an incident that does not exist: roles ...
        pytest.param("POST", "roles", {"role": "commander", "person": "bob"}, id="roles"),
        # ... status updates ...
        pytest.param("POST", "updates", {"status": "investigating"}, id="updates"),
        # ... severity changes ...
        pytest.param("POST", "severity", {"severity": "SEV1", "reason": "x"}, id="severity"),
        # ... new action items ...
        pytest.param("POST", "actions", {"text": "Fix it"}, id="add-action"),
        # ... the list of action items (not an empty list for a mistyped id) ...
        pytest.param("GET", "actions", None, id="list-actions"),
        # ... and the postmortem.
        pytest.param("GET", "postmortem", None, id="postmortem"),
    ],
)
def test_unknown_incident_is_404(
    client: httpx.Client, method: str, path: str, body: dict[str, str] | None
) -> None:
    response = client.request(method, f"/api/v1/incidents/inc-9/{path}", json=body, headers=ALICE)
    assert (response.status_code, response.json()) == (404, {"error": "no incident 'INC-9'"})


@pytest.mark.parametrize(
    ("before", "action", "body", "message"),
    [
        # Closing needs a resolved incident.
        pytest.param([], "close", None, "cannot close INC-1: it is triggered", id="close-open"),
        # A resolved incident is past acknowledging ...
        pytest.param(
            ["resolve"], "ack", None, "cannot ack INC-1: it is resolved", id="ack-resolved"
        ),
        # ... and past mitigating.
        pytest.param(
            ["resolve"],
            "mitigate",
            None,
            "cannot mitigate INC-1: it is resolved",
            id="mitigate-resolved",
        ),
        # A closed incident does not reopen.
        pytest.param(
            ["resolve", "close"],
            "reopen",
            None,
            "cannot reopen INC-1: it is closed",
            id="reopen-closed",
        ),
        # The severity of a resolved incident is history.
        pytest.param(
            ["resolve"],
            "severity",
            {"severity": "SEV1", "reason": "in hindsight"},
            "cannot change the severity of INC-1: it is resolved",
            id="severity-resolved",
        ),
    ],
)
def test_invalid_transitions_are_refused_with_409(
    client: httpx.Client,
    worker: TestWorker,
    clock: Clock,
    before: list[str],
    action: str,
    body: dict[str, str] | None,
    message: str,
) -> None:
    post_alert(client, "critical")
    for step in before:
        call(client, "POST", f"{INCIDENT}/{step}")
    state = call(client, "GET", INCIDENT)["state"]
    response = client.post(f"{INCIDENT}/{action}", json=body, headers=ALICE)
    assert (response.status_code, response.json()["result"], response.json()["message"]) == (
        409,
        "refused",
        message,
    )
    assert call(client, "GET", INCIDENT)["state"] == state
