"""Helpers every source shares: RFC 3339 times, label sanitizing, status, test notifications."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from datetime import UTC, datetime

from router.alert import AlertStatus
from router.errors import PayloadError
from router.sources._wire import quote

# Go's zero `time.Time` as `encoding/json` writes it; Alertmanager and Grafana send it as the
# endsAt of every firing alert ("do not expose it", alertmanager `alert/alert.go`).
GO_ZERO_TIME = "0001-01-01T00:00:00Z"

# RFC 3339 `date-time` (section 5.6), as Go's RFC3339Nano writes it: 0-9 fractional digits, `Z`
# or a numeric offset. Checked before `fromisoformat`, which also takes ISO 8601 forms RFC 3339
# forbids (date only, basic format, week dates, missing seconds, "+05").
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?"
    r"(?:[Zz]|[+-][0-9]{2}:[0-9]{2})",
    re.ASCII,
)

# Group keys of Grafana's "Test" button (no real dispatcher key has these shapes: those are
# `<route key>:<label set>` and always end in "}"):
#   grafana/alerting `notify/test_receivers.go`: "<integration name>-<labels fingerprint>-<unix s>"
_TEST_KEY = re.compile(r"-[0-9a-f]{16}-[0-9]+\Z", re.ASCII)
#   older Grafana (`TestReceivers`): label set followed by Go's `time.Time.String()`,
#   '{alertname="TestAlert", instance="Grafana"}2024-01-11 15:04:03.1 +0000 UTC m=+9.1'
_OLD_TEST_KEY = re.compile(r"\}[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}", re.ASCII)


def parse_time(raw: str, field: str) -> datetime | None:
    """An RFC 3339 time as aware UTC, or None for Go's zero time (any time in year 1).

    Fractional digits beyond microseconds are truncated (Python's resolution).
    """
    if raw == GO_ZERO_TIME:
        return None
    try:
        return _utc(raw)
    except OverflowError:
        raise PayloadError(f"time out of range {quote(raw)}", field) from None
    except ValueError:
        raise PayloadError(f"invalid RFC 3339 time {quote(raw)}", field) from None


# Alertmanager re-sends every group each group_interval with unchanged startsAt, and the alerts
# of one Grafana evaluation share one, so most times parsed were parsed moments ago: a hit costs
# ~0.1 µs against ~1 µs for a parse (with an offset). Only valid times are cached (failures
# raise), and those are at most 35 characters, so the cache stays small whatever senders send.
@functools.lru_cache(maxsize=4096)
def _utc(raw: str) -> datetime | None:
    if _RFC3339.fullmatch(raw) is None:
        raise ValueError(raw)
    # `fromisoformat` rejects lowercase t/z, which RFC 3339 allows; there is no other letter.
    # It raises ValueError for month 13, hour 24, second 60 (Go never writes a leap second).
    parsed = datetime.fromisoformat(raw.upper())
    if parsed.year == 1:
        # Year 1 is "unset" whatever the offset; converting it could underflow.
        return None
    return parsed.astimezone(UTC)


def lifecycle(
    status: str | None, starts_raw: str, ends_raw: str | None, now: datetime
) -> tuple[AlertStatus, datetime, datetime | None]:
    """Status, starts_at and ends_at of one wire alert.

    Without a status (very old senders) an alert is resolved iff its endsAt is set and not in the
    future. A firing alert never carries an end; a resolved one always does (`now` if the sender
    gave none). A zero startsAt means the sender did not know: we say `now`. Where it fills in a
    time, it returns the `now` object itself, so a caller can tell (`is now`) that it did.
    """
    starts_at = parse_time(starts_raw, "startsAt") or now
    ends_at = None if ends_raw is None else parse_time(ends_raw, "endsAt")
    if status is None:
        resolved = ends_at is not None and ends_at <= now
    else:
        resolved = status == AlertStatus.RESOLVED
    if resolved:
        return AlertStatus.RESOLVED, starts_at, ends_at or now
    return AlertStatus.FIRING, starts_at, None


def clean_map(raw: Mapping[str, str] | None, field: str, what: str) -> Mapping[str, str]:
    """Labels or annotations without empty values; `what` names an entry in the error message.

    Alertmanager treats an empty label value as an absent label, so dropping it keeps our
    fingerprint equal for `{a="", b="x"}` and `{b="x"}`. An empty name is a sender bug. A clean
    map is returned as it is (not copied): it comes from a wire model used once and dropped.
    """
    if not raw:
        return {}
    if "" in raw:
        raise PayloadError(f"{what} name must not be empty", field)
    if "" in raw.values():
        return {name: value for name, value in raw.items() if value}
    return raw


def within(error: PayloadError, prefix: str) -> PayloadError:
    """`error`, whose field is relative to the object at `prefix` (`alerts.3`), made absolute.

    Helpers name fields relative to what they look at, and the loop that knows the index adds
    it, so the happy path never formats a path.
    """
    return PayloadError(error.message, f"{prefix}.{error.field}" if error.field else prefix)


def is_test_group_key(group_key: str) -> bool:
    """Whether `group_key` is one Grafana makes for a contact point's "Test" notification.

    Decided on the group key, not on the default test labels (alertname=TestAlert,
    instance=Grafana, summary "Notification test"): users replace those in the custom-test dialog,
    and a real rule may use them, while the group key shapes cannot come from a real dispatch.
    """
    return _TEST_KEY.search(group_key) is not None or _OLD_TEST_KEY.search(group_key) is not None
