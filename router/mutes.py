"""Why an alert is muted right now: a maintenance window or a silence (inhibition is decided
inside the ingest script, where the firing sources are).

The receiver consults this for every alert, so it holds what it needs in memory: the compiled
maintenance windows of the current rule set, and the active silences, refreshed from Redis in
the background about once a second (a silence takes effect within a second everywhere).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from router.alert import Alert

# (labels, at) -> a window's name, or None
MaintenanceLookup = Callable[[Alert, datetime], str | None]
# (labels, at) -> a silence id, or None
SilenceLookup = Callable[[Alert, datetime], str | None]


class Mutes:
    def __init__(
        self,
        maintenance: MaintenanceLookup | None = None,
        silences: SilenceLookup | None = None,
    ) -> None:
        self.maintenance = maintenance
        self.silences = silences

    def reason(self, alert: Alert, now: float) -> str:
        """'' when the alert may page, else "maintenance:<name>" or "silence:<id>"."""
        if self.maintenance is None and self.silences is None:
            return ""
        at = datetime.fromtimestamp(now, UTC)
        if self.maintenance is not None and (window := self.maintenance(alert, at)):
            return f"maintenance:{window}"
        if self.silences is not None and (silence := self.silences(alert, at)):
            return f"silence:{silence}"
        return ""
