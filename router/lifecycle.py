"""Incident state changes made by people: acknowledge, mitigate, resolve, reopen, close.

States follow the seed's process: triggered -> acknowledged -> mitigated -> resolved -> closed.
Alerts move incidents too (every alert resolved -> mitigated, a re-fire -> triggered), in the
ingest script; the changes here run in `transition.lua` so the two never interleave. A change
is announced on the events stream and workers notify whoever was paged, exactly as for alerts.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from importlib.resources import files

from redis import Redis

from router.keys import Keys, text

_SCRIPT = files("router").joinpath("transition.lua").read_text(encoding="utf-8")


class Action(StrEnum):
    ACK = "ack"
    MITIGATE = "mitigate"
    RESOLVE = "resolve"
    REOPEN = "reopen"
    CLOSE = "close"


class Result(StrEnum):
    CHANGED = "ok"
    UNCHANGED = "same"  # already in the target state: repeating an action is harmless
    REFUSED = "refused"  # the action does not apply to the current state
    MISSING = "missing"


@dataclass(frozen=True, slots=True)
class Transition:
    result: Result
    state: str  # the state after the call (before it, when refused)
    previous: str = ""

    def explain(self, action: Action, incident: str) -> str:
        if self.result is Result.REFUSED:
            return f"cannot {action.value} {incident}: it is {self.state}"
        if self.result is Result.MISSING:
            return f"no incident {incident!r}"
        if self.result is Result.UNCHANGED:
            return f"{incident} is already {self.state}"
        return f"{incident}: {self.previous} -> {self.state}"


# A person changes the severity. KEYS: none; ARGV[1] prefix, ARGV[2] incident, ARGV[3] severity,
# ARGV[4] actor, ARGV[5] now (ms), ARGV[6] reason. Returns like transition.lua.
_SEVERITY = """
local p, id, severity, actor, now, reason = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local ikey = p .. ':incident:' .. id
local current, state = unpack(redis.call('HMGET', ikey, 'severity', 'state'))
if not current then return {'missing'} end
if current == severity then return {'same', current} end
if state == 'resolved' or state == 'closed' then return {'refused', state} end
redis.call('HSET', ikey, 'severity', severity, 'updated_at', now)
local event = cjson.encode({{k = 'severity_changed', from = current, sev = severity,
  actor = actor, reason = reason}})
redis.call('XADD', p .. ':events', '*', 'incident', id, 'at', now, 'events', event)
return {'ok', current, severity}
"""


class Lifecycle:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._script = redis.register_script(_SCRIPT)
        self._severity = redis.register_script(_SEVERITY)
        self._keys = keys

    def set_severity(
        self, incident: str, severity: str, actor: str, reason: str, *, now_ms: int
    ) -> Transition:
        reply = self._severity(args=[self._keys.prefix, incident, severity, actor, now_ms, reason])
        values = [text(v) for v in reply]
        result = Result(values[0])
        if result is Result.CHANGED:
            return Transition(result, values[2], values[1])
        return Transition(result, values[1] if len(values) > 1 else "")

    def apply(self, incident: str, action: Action, actor: str, *, now_ms: int) -> Transition:
        reply = self._script(args=[self._keys.prefix, incident, action.value, actor, now_ms])
        values = [text(v) for v in reply]
        result = Result(values[0])
        if result is Result.CHANGED:
            return Transition(result, values[2], values[1])
        if result is Result.MISSING:
            return Transition(result, "")
        return Transition(result, values[1])
