"""Why an alert is muted right now: a maintenance window or a silence (inhibition is decided
inside the ingest script, where the firing sources are).

The receiver consults this for every alert, so it holds what it needs in memory: the compiled
maintenance windows of the current rule set, and the active silences, refreshed from Redis in
the background about once a second (a silence takes effect within a second everywhere).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from router.alert import Alert
from router.silences import Silence, silencing

# (labels, at) -> a window's name, or None
MaintenanceLookup = Callable[[Alert, datetime], str | None]


class Mutes:
    def __init__(self, maintenance: MaintenanceLookup | None = None) -> None:
        self.maintenance = maintenance

    def reason(self, alert: Alert, at: datetime, silences: Sequence[Silence]) -> str:
        """'' when the alert may page, else "maintenance:<name>" or "silence:<id>"."""
        if self.maintenance is not None and (window := self.maintenance(alert, at)):
            return f"maintenance:{window}"
        if silences and (silence := silencing(silences, alert.labels, at)):
            return f"silence:{silence.id}"
        return ""
