"""The incident store: reading incidents and appending to their timelines.

The ingest script creates incidents and keeps their membership and state; this module reads them
for the API and the workers, and records what workers do. Writes that must happen once (a
timeline entry for an event a retried job sees again) go through `append_once`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from redis import Redis

from router.keys import Keys, text
from router.severity import Severity

# Appends a timeline entry unless `member` is already in the applied set, atomically.
# KEYS[1] applied set, KEYS[2] timeline list; ARGV[1] member, ARGV[2] entry JSON.
_APPEND_ONCE = """
if redis.call('SADD', KEYS[1], ARGV[1]) == 1 then
  redis.call('RPUSH', KEYS[2], ARGV[2])
  return 1
end
return 0
"""


class IncidentState(StrEnum):
    TRIGGERED = "triggered"
    ACKNOWLEDGED = "acknowledged"
    MITIGATED = "mitigated"
    RESOLVED = "resolved"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    at: datetime
    kind: str
    text: str
    actor: str = "sevrouter"
    data: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {"at": self.at.isoformat(), "kind": self.kind, "actor": self.actor, "text": self.text}
            | ({"data": dict(self.data)} if self.data else {}),
            separators=(",", ":"),
        )


@dataclass(frozen=True, slots=True)
class Incident:
    id: str
    title: str
    summary: str
    runbook: str
    severity: Severity
    state: IncidentState
    team: str
    rule: str
    group_key: str
    opened_at: datetime
    updated_at: datetime
    mitigated_at: datetime | None
    reopen_count: int
    alerts_firing: int
    alerts: Sequence[Mapping[str, Any]] = ()
    timeline: Sequence[Mapping[str, Any]] = ()
    flapping: bool = False

    def summary_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "severity": self.severity.value,
            "state": self.state.value,
            "team": self.team,
            "rule": self.rule,
            "opened_at": self.opened_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "mitigated_at": self.mitigated_at.isoformat() if self.mitigated_at else None,
            "alerts_firing": self.alerts_firing,
            "reopen_count": self.reopen_count,
            "flapping": self.flapping,
        }

    def to_json(self) -> dict[str, Any]:
        return self.summary_json() | {
            "summary": self.summary,
            "runbook": self.runbook,
            "group_key": self.group_key,
            "alerts": list(self.alerts),
            "timeline": list(self.timeline),
        }


class IncidentStore:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys
        self._append_once = redis.register_script(_APPEND_ONCE)

    def get(self, incident_id: str, *, full: bool = True) -> Incident | None:
        keys = self._keys
        pipe = self._redis.pipeline(transaction=False)
        pipe.hgetall(keys.incident(incident_id))
        pipe.scard(keys.incident_firing(incident_id))
        if full:
            pipe.hvals(keys.incident_alerts(incident_id))
            pipe.lrange(keys.timeline(incident_id), 0, -1)
        replies = pipe.execute()
        fields = {k.decode(): v.decode() for k, v in replies[0].items()}
        if not fields:
            return None
        alerts = (
            sorted(
                (member_record(raw) for raw in replies[2]),
                key=lambda a: (a["starts_at"], a["fingerprint"]),
            )
            if full
            else []
        )
        timeline = [json.loads(raw) for raw in replies[3]] if full else []
        return _incident(fields, replies[1], alerts, timeline)

    def list(
        self,
        *,
        state: IncidentState | None = None,
        severity: Severity | None = None,
        team: str | None = None,
        limit: int = 50,
        scan: int = 5000,
    ) -> list[Incident]:
        """Newest first, filtered; looks at the `scan` most recent incidents."""
        ids = [text(raw) for raw in self._redis.zrevrange(self._keys.incidents, 0, scan - 1)]
        pipe = self._redis.pipeline(transaction=False)
        for incident_id in ids:
            pipe.hgetall(self._keys.incident(incident_id))
            pipe.scard(self._keys.incident_firing(incident_id))
        replies = pipe.execute()
        found: list[Incident] = []
        for index in range(0, len(replies), 2):
            fields = {k.decode(): v.decode() for k, v in replies[index].items()}
            if not fields:
                continue  # expired after retention
            incident = _incident(fields, replies[index + 1], [], [])
            if state and incident.state is not state:
                continue
            if severity and incident.severity is not severity:
                continue
            if team and incident.team != team:
                continue
            found.append(incident)
            if len(found) >= limit:
                break
        return found

    def alert_record(self, incident_id: str, fingerprint: str) -> dict[str, Any] | None:
        raw = self._redis.hget(self._keys.incident_alerts(incident_id), fingerprint)
        return member_record(raw) if raw else None

    def set_fields_once(self, incident_id: str, fields: Mapping[str, str]) -> None:
        """Set fields that are written once (title, summary) without overwriting a value."""
        pipe = self._redis.pipeline(transaction=False)
        for name, value in fields.items():
            pipe.hsetnx(self._keys.incident(incident_id), name, value)
        pipe.execute()

    def append_once(self, incident_id: str, member: str, entry: TimelineEntry) -> bool:
        """Append `entry` unless an entry for `member` (an event id) was already appended."""
        keys = [self._keys.applied(incident_id), self._keys.timeline(incident_id)]
        return bool(self._append_once(keys=keys, args=[member, entry.to_json()]))

    def append(self, incident_id: str, entry: TimelineEntry) -> None:
        self._redis.rpush(self._keys.timeline(incident_id), entry.to_json())


def from_ms(value: str) -> datetime:
    return datetime.fromtimestamp(int(value) / 1000, UTC)


def member_record(raw: bytes | str) -> dict[str, Any]:
    """A member alert's stored record (`router.alert.record_json`) as the API shows it: times in
    the same `+00:00` form as every other time the API gives (the store writes `Z`)."""
    record: dict[str, Any] = json.loads(raw)
    for name in ("starts_at", "ends_at"):
        if record.get(name):
            record[name] = datetime.fromisoformat(record[name]).isoformat()
    return record


def _incident(
    fields: Mapping[str, str],
    firing: int,
    alerts: Sequence[Mapping[str, Any]],
    timeline: Sequence[Mapping[str, Any]],
) -> Incident:
    mitigated = fields.get("mitigated_at")
    return Incident(
        id=fields["id"],
        title=fields.get("title") or fields["rule"],
        summary=fields.get("summary", ""),
        runbook=fields.get("runbook", ""),
        severity=Severity(fields["severity"]),
        state=IncidentState(fields["state"]),
        team=fields["team"],
        rule=fields["rule"],
        group_key=fields["group_key"],
        opened_at=from_ms(fields["opened_at"]),
        updated_at=from_ms(fields["updated_at"]),
        mitigated_at=from_ms(mitigated) if mitigated else None,
        reopen_count=int(fields.get("reopen_count", 0)),
        alerts_firing=firing,
        flapping=fields.get("flapping") == "1",
        alerts=alerts,
        timeline=timeline,
    )


class RedisThreads:
    """`ThreadStore` in Redis: the first message's handle per incident and channel."""

    def __init__(self, redis: Redis, keys: Keys, ttl_seconds: int) -> None:
        self._redis = redis
        self._keys = keys
        self._ttl = ttl_seconds

    def get(self, channel: str, incident: str) -> str | None:
        value = self._redis.get(self._keys.thread(incident, channel))
        return text(value) if value is not None else None

    def set(self, channel: str, incident: str, handle: str) -> None:
        # NX: the first message of the incident is the thread, whoever posts later.
        self._redis.set(self._keys.thread(incident, channel), handle, nx=True, ex=self._ttl)
