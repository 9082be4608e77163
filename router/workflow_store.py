"""Roles, status updates and postmortem action items of incidents, in Redis.

Each write is one MULTI transaction that also appends an event to the events stream, so the
workers record it on the timeline and act on it (post the update, stop a reminder) exactly as
they act on alerts. Reads serve the API, the templates and the postmortem.
"""

from __future__ import annotations

import json
from typing import Any

from redis import Redis

from router.comms import ActionItem, Role, StatusUpdate
from router.keys import Keys, text

# Appends a status update, moves the next-update deadline and announces it with its number.
# KEYS[1] updates list, KEYS[2] incident hash, KEYS[3] events stream;
# ARGV[1] update JSON, ARGV[2] next update (ms or ''), ARGV[3] incident id, ARGV[4] now (ms),
# ARGV[5] author.
_POST_UPDATE = """
local n = redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], 'next_update_at', ARGV[2])
local event = cjson.encode({{k = 'status_update', n = n, actor = ARGV[5]}})
redis.call('XADD', KEYS[3], '*', 'incident', ARGV[3], 'at', ARGV[4], 'events', event)
return n
"""


def update_json(update: StatusUpdate) -> dict[str, Any]:
    return {
        "at": update.at.isoformat(),
        "author": update.author,
        "status": update.status.value,
        "facts": list(update.facts),
        "actions": list(update.actions),
        "next_update": update.next_update.isoformat() if update.next_update else None,
    }


def action_json(item: ActionItem, number: int) -> dict[str, Any]:
    return {
        "number": number,
        "text": item.text,
        "owner": item.owner,
        "due": item.due.isoformat() if item.due else None,
        "done": item.done,
    }


class WorkflowStore:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys
        self._post = redis.register_script(_POST_UPDATE)

    def _announce(self, pipe: Any, incident: str, now_ms: int, event: dict[str, Any]) -> None:
        pipe.xadd(
            self._keys.events,
            {"incident": incident, "at": now_ms, "events": json.dumps([event])},
        )

    def roles(self, incident: str) -> dict[Role, str]:
        raw = self._redis.hgetall(self._keys.roles(incident))
        return {Role(text(k)): text(v) for k, v in raw.items()}

    def assign(self, incident: str, role: Role, person: str, actor: str, now_ms: int) -> str | None:
        """Give `role` to `person`; returns who had it before (a handover), if anyone."""
        previous = self.roles(incident).get(role)
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(self._keys.roles(incident), role.value, person)
        event = {"k": "role_assigned", "role": role.value, "person": person, "actor": actor}
        if previous:
            event["previous"] = previous
        self._announce(pipe, incident, now_ms, event)
        pipe.execute()
        return previous

    def updates(self, incident: str) -> list[StatusUpdate]:
        raw = self._redis.lrange(self._keys.updates(incident), 0, -1)
        return [StatusUpdate.from_json(json.loads(item)) for item in raw]

    def post_update(self, incident: str, update: StatusUpdate, now_ms: int) -> int:
        """Store a status update and announce it, atomically; returns its 1-based number."""
        next_ms = int(update.next_update.timestamp() * 1000) if update.next_update else ""
        number = self._post(
            keys=[self._keys.updates(incident), self._keys.incident(incident), self._keys.events],
            args=[json.dumps(update_json(update)), next_ms, incident, now_ms, update.author],
        )
        return int(number)

    def actions(self, incident: str) -> list[ActionItem]:
        """Action items in order; an item's number is its position, from 1."""
        raw = self._redis.lrange(self._keys.actions(incident), 0, -1)
        return [ActionItem.from_json(json.loads(item)) for item in raw]

    def add_action(self, incident: str, item: ActionItem, actor: str, now_ms: int) -> int:
        """Append an action item; returns its number."""
        number = int(
            self._redis.rpush(self._keys.actions(incident), json.dumps(action_json(item, 0)))
        )
        pipe = self._redis.pipeline(transaction=True)
        self._announce(pipe, incident, now_ms, {"k": "action_added", "n": number, "actor": actor})
        pipe.execute()
        return number

    def complete_action(
        self, incident: str, number: int, actor: str, now_ms: int
    ) -> ActionItem | None:
        items = self.actions(incident)
        if not 1 <= number <= len(items):
            return None
        item = items[number - 1]
        done = ActionItem(item.text, item.owner, item.due, done=True)
        pipe = self._redis.pipeline(transaction=True)
        pipe.lset(self._keys.actions(incident), number - 1, json.dumps(action_json(done, number)))
        self._announce(pipe, incident, now_ms, {"k": "action_done", "n": number, "actor": actor})
        pipe.execute()
        return done
