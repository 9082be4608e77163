"""Alerts of recently parsed bodies, by their exact bytes.

Alertmanager re-sends a group's notification unchanged every `group_interval` until the group
changes (and every `repeat_interval` after), and an HA pair sends each notification once per
member: most bodies a receiver gets are, byte for byte, one it parsed moments ago. Hashing a
20-alert body costs about 3 µs where parsing and fingerprinting its alerts costs about 100.

Only time-independent results may be kept: the caller decides (a parse that filled in the
request's clock for a time the sender left out would go stale). A body's alerts are kept from its
second delivery on: the first is only remembered by hash, so a stream of bodies that never come
again (an alert storm) does not fill memory with alerts nobody asks for again, which cost such
traffic about 8% in `make bench`. Bounded by an estimate of the memory held (each body and its
parsed alerts), least recently used out first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from router.alert import Alert

DEFAULT_MAX_BYTES = 32 * 2**20
# Measured with tracemalloc: a parsed alert holds about 1.7-2.2 KB, mostly its label and
# annotation entries (~100-175 bytes each, whether values are short or long).
_ALERT_BYTES, _ENTRY_BYTES = 400, 150
# Hashes of bodies seen once; a collision only keeps a body a delivery early.
SEEN_ONCE_LIMIT = 8192


class RecentBodies:
    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self._max_bytes = max_bytes
        self._held = 0
        # (integration, body) -> (estimated bytes held, alerts)
        self._entries: OrderedDict[tuple[str, bytes], tuple[int, tuple[Alert, ...]]] = OrderedDict()
        self._seen_once: dict[int, None] = {}  # insertion-ordered: the oldest goes first
        self._lock = threading.Lock()  # the receiver's loop, and explain/tests from threads

    def get(self, integration: str, body: bytes) -> list[Alert] | None:
        """The alerts parsed from this body for this integration, if still held."""
        key = (integration, body)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
        return list(entry[1])

    def put(self, integration: str, body: bytes, alerts: list[Alert]) -> None:
        """Keep `alerts` for this body, if it was delivered before (see the module's doc)."""
        size = _footprint(body, alerts)
        if size > self._max_bytes:
            return
        key = (integration, body)
        seen = hash(key)  # the body's hash is cached by `get`'s lookup
        with self._lock:
            if seen not in self._seen_once:
                self._seen_once[seen] = None
                if len(self._seen_once) > SEEN_ONCE_LIMIT:
                    del self._seen_once[next(iter(self._seen_once))]
                return
            if key in self._entries:
                return
            self._entries[key] = (size, tuple(alerts))
            self._held += size
            while self._held > self._max_bytes:
                _, (old_size, _) = self._entries.popitem(last=False)
                self._held -= old_size

    def __len__(self) -> int:
        return len(self._entries)


def _footprint(body: bytes, alerts: list[Alert]) -> int:
    entries = sum(len(alert.labels) + len(alert.annotations) for alert in alerts)
    return len(body) + _ALERT_BYTES * len(alerts) + _ENTRY_BYTES * entries
