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


class Lifecycle:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._script = redis.register_script(_SCRIPT)
        self._keys = keys

    def apply(self, incident: str, action: Action, actor: str, *, now_ms: int) -> Transition:
        reply = self._script(args=[self._keys.prefix, incident, action.value, actor, now_ms])
        values = [text(v) for v in reply]
        result = Result(values[0])
        if result is Result.CHANGED:
            return Transition(result, values[2], values[1])
        if result is Result.MISSING:
            return Transition(result, "")
        return Transition(result, values[1])
