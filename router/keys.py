"""Every Redis key sevrouter uses, in one place.

All keys start with the installation's prefix. The ingest Lua script (`router/ingest.lua`) builds
the same names from the prefix it is given; keep the two in step.

    {p}:seq                       counter behind INC-<n>
    {p}:group:{group_hash}        id of the incident that owns an open group
    {p}:alert:{group_hash}:{fp}   hash: last status (s), incident (i), starts at ms (t)
    {p}:incident:{id}             hash: the incident's fields
    {p}:incident:{id}:alerts      hash: fingerprint -> member alert JSON
    {p}:incident:{id}:firing      set of member fingerprints still firing
    {p}:incident:{id}:timeline    list of timeline entries (JSON), oldest first
    {p}:incident:{id}:applied     set of event ids whose effects are done (idempotent jobs)
    {p}:incident:{id}:pages       set of the incident's page keys
    {p}:incident:{id}:roles       hash: role -> person
    {p}:incident:{id}:updates     list of status updates (JSON), oldest first
    {p}:incident:{id}:actions     list of postmortem action items (JSON); :seq numbers them
    {p}:incident:{id}:thread:{ch} a channel's handle for the incident's first message (Slack ts)
    {p}:incidents                 sorted set: incident id by opened-at ms
    {p}:events                    stream: what each webhook changed, consumed by the pump
    {p}:page:{page_hash}          hash: one page's record (status, attempts, last result)
    {p}:rate:{channel}            the channel's rate limiter state (GCRA arrival time, ms)
    {p}:stats                     hash: counters kept by workers, read by /metrics
    {p}:silence:{id}              hash: one silence (matchers JSON, times in ms, author, ...)
    {p}:silences                  sorted set: silence id by end time (ms)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

EVENTS_GROUP = "pump"


def text(value: object) -> str:
    """A Redis reply value as str (the client returns bytes; its types allow several shapes)."""
    if isinstance(value, bytes):
        return value.decode()
    return str(value)


def group_hash(group_key: str) -> str:
    """Short stable name for a group key, which can be long (every label of an alert)."""
    return hashlib.blake2b(group_key.encode(), digest_size=10).hexdigest()


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str

    @property
    def seq(self) -> str:
        return f"{self.prefix}:seq"

    @property
    def incidents(self) -> str:
        return f"{self.prefix}:incidents"

    @property
    def stats(self) -> str:
        return f"{self.prefix}:stats"

    @property
    def events(self) -> str:
        return f"{self.prefix}:events"

    def group(self, group_hash: str) -> str:
        return f"{self.prefix}:group:{group_hash}"

    def alert(self, group_hash: str, fingerprint: str) -> str:
        return f"{self.prefix}:alert:{group_hash}:{fingerprint}"

    def incident(self, incident_id: str) -> str:
        return f"{self.prefix}:incident:{incident_id}"

    def incident_alerts(self, incident_id: str) -> str:
        return f"{self.prefix}:incident:{incident_id}:alerts"

    def incident_firing(self, incident_id: str) -> str:
        return f"{self.prefix}:incident:{incident_id}:firing"

    def timeline(self, incident_id: str) -> str:
        return f"{self.prefix}:incident:{incident_id}:timeline"

    def applied(self, incident_id: str) -> str:
        return f"{self.prefix}:incident:{incident_id}:applied"

    def roles(self, incident_id: str) -> str:
        return f"{self.prefix}:incident:{incident_id}:roles"

    def updates(self, incident_id: str) -> str:
        return f"{self.prefix}:incident:{incident_id}:updates"

    def actions(self, incident_id: str) -> str:
        return f"{self.prefix}:incident:{incident_id}:actions"

    def incident_pages(self, incident_id: str) -> str:
        return f"{self.prefix}:incident:{incident_id}:pages"

    def thread(self, incident_id: str, channel: str) -> str:
        return f"{self.prefix}:incident:{incident_id}:thread:{channel}"

    def rate(self, channel: str) -> str:
        return f"{self.prefix}:rate:{channel}"

    def page(self, page_key: str) -> str:
        return f"{self.prefix}:page:{page_hash(page_key)}"

    def silence(self, silence_id: str) -> str:
        return f"{self.prefix}:silence:{silence_id}"

    @property
    def silences(self) -> str:
        return f"{self.prefix}:silences"


def page_hash(page_key: str) -> str:
    return hashlib.blake2b(page_key.encode(), digest_size=12).hexdigest()
