"""The silence endpoints through the receiver served for real (the `client` fixture): create,
list, get and expire, and every way a request is refused (400 naming the field, 401, 404).

The API uses the real clock, so times are checked against bounds taken around each request.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.support.rules import ALICE_TOKEN, BOB_TOKEN

SILENCES = "/api/v1/silences"
ALICE = {"Authorization": f"Bearer {ALICE_TOKEN}"}
BOB = {"Authorization": f"Bearer {BOB_TOKEN}"}
DISK = 'alertname="DiskFull",cluster=~"eu.*"'


def create(client: httpx.Client, **fields: Any) -> dict[str, Any]:
    body = {"matchers": DISK, "duration": "2h", "comment": "disk swap on db-1"} | fields
    response = client.post(SILENCES, json=body, headers=ALICE)
    assert response.status_code == 201, response.text
    answer: dict[str, Any] = response.json()
    return answer


def at(iso: str) -> datetime:
    return datetime.fromisoformat(iso)


def test_create_with_a_duration(client: httpx.Client) -> None:
    before = datetime.now(UTC)
    response = client.post(
        SILENCES,
        json={"matchers": DISK, "duration": "2h", "comment": "disk swap on db-1"},
        headers=ALICE,
    )
    after = datetime.now(UTC)
    assert response.status_code == 201
    body = response.json()
    assert response.headers["location"] == f"/api/v1/silences/{body['id']}"
    assert sorted(body) == [
        "comment",
        "created_at",
        "created_by",
        "ends_at",
        "expire_on_resolve",
        "id",
        "matchers",
        "starts_at",
        "state",
    ]
    assert body["id"].startswith("sil-")
    assert len(body["id"]) == 16
    assert body["state"] == "active"
    # The canonical text of each matcher, one per entry.
    assert body["matchers"] == ['alertname="DiskFull"', 'cluster=~"eu.*"']
    assert body["created_by"] == "alice"  # the token's person
    assert body["comment"] == "disk swap on db-1"
    assert body["expire_on_resolve"] is False
    start = at(body["starts_at"])
    assert before - timedelta(milliseconds=1) <= start <= after
    assert at(body["created_at"]) == start
    assert at(body["ends_at"]) - start == timedelta(hours=2)


def test_create_pending_with_a_list_and_times(client: httpx.Client) -> None:
    body = create(
        client,
        matchers=['alertname="Deploy"', "team=~db|storage,env!=staging"],
        duration=None,
        starts_at="2099-01-01T10:00:00",  # no offset: UTC
        ends_at="2099-01-01T12:30:00+01:00",
        expire_on_resolve=True,
        comment="  release window  ",
    )
    assert body["state"] == "pending"
    # Every list item may hold several matchers; all are kept, in order.
    assert body["matchers"] == ['alertname="Deploy"', 'team=~"db|storage"', 'env!="staging"']
    assert body["starts_at"] == "2099-01-01T10:00:00+00:00"
    assert body["ends_at"] == "2099-01-01T11:30:00+00:00"
    assert body["expire_on_resolve"] is True
    assert body["comment"] == "release window"


def test_a_start_in_the_past_is_now_and_the_duration_counts_from_it(
    client: httpx.Client,
) -> None:
    before = datetime.now(UTC)
    body = create(client, starts_at="2020-01-01T00:00:00Z", duration="30m")
    start = at(body["starts_at"])
    assert start >= before - timedelta(milliseconds=1)
    assert at(body["ends_at"]) - start == timedelta(minutes=30)


def test_list_get_and_expire(client: httpx.Client) -> None:
    later = create(client, duration="3h")
    soon = create(client, duration="1h", matchers='alertname="CPUHigh"')
    listed = client.get(SILENCES)
    assert listed.status_code == 200
    # Soonest end first.
    assert [s["id"] for s in listed.json()["silences"]] == [soon["id"], later["id"]]
    assert listed.json()["silences"][0] == soon

    shown = client.get(f"{SILENCES}/{soon['id']}")
    assert (shown.status_code, shown.json()) == (200, soon)

    before = datetime.now(UTC)
    expired = client.delete(f"{SILENCES}/{soon['id']}", headers=BOB)
    assert expired.status_code == 200
    ended = expired.json()
    assert ended["state"] == "expired"
    assert at(ended["ends_at"]) >= before - timedelta(milliseconds=1)
    # Nothing else changes: the author stays alice although bob expired it.
    assert {k: v for k, v in ended.items() if k not in ("state", "ends_at")} == {
        k: v for k, v in soon.items() if k not in ("state", "ends_at")
    }

    assert [s["id"] for s in client.get(SILENCES).json()["silences"]] == [later["id"]]
    with_expired = client.get(SILENCES, params={"expired": "true"}).json()["silences"]
    assert [(s["id"], s["state"]) for s in with_expired] == [
        (soon["id"], "expired"),
        (later["id"], "active"),
    ]
    assert client.get(f"{SILENCES}/{soon['id']}").json()["state"] == "expired"

    # Expiring again answers the silence as it is.
    again = client.delete(f"{SILENCES}/{soon['id']}", headers=ALICE)
    assert (again.status_code, again.json()) == (200, ended)


def test_expire_a_pending_silence(client: httpx.Client) -> None:
    pending = create(client, starts_at="2099-01-01T10:00Z", duration="1h")
    ended = client.delete(f"{SILENCES}/{pending['id']}", headers=ALICE).json()
    assert ended["state"] == "expired"
    assert ended["starts_at"] == ended["ends_at"]


def test_empty_list(client: httpx.Client) -> None:
    assert client.get(SILENCES).json() == {"silences": []}
    assert client.get(SILENCES, params={"expired": "TRUE"}).json() == {"silences": []}


@pytest.mark.parametrize(
    "path",
    [
        # Well formed, never created.
        pytest.param(f"{SILENCES}/sil-000000000000", id="unknown"),
        # Not an id.
        pytest.param(f"{SILENCES}/INC-1", id="malformed"),
    ],
)
def test_unknown_silence_is_404(client: httpx.Client, path: str) -> None:
    name = path.rsplit("/", 1)[1]
    for response in (client.get(path), client.delete(path, headers=ALICE)):
        assert response.status_code == 404
        assert response.json() == {"error": f"no silence {name!r}"}


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-token"),
        pytest.param({"Authorization": "Bearer not-a-token"}, id="wrong-token"),
        pytest.param({"Authorization": ALICE_TOKEN}, id="no-bearer-scheme"),
    ],
)
def test_writes_need_a_token(client: httpx.Client, headers: dict[str, str]) -> None:
    existing = create(client)
    refused = [
        client.post(
            SILENCES, json={"matchers": DISK, "duration": "1h", "comment": "x"}, headers=headers
        ),
        client.delete(f"{SILENCES}/{existing['id']}", headers=headers),
    ]
    for response in refused:
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json() == {
            "error": "missing or invalid API token (Authorization: Bearer <token>)"
        }
    # Nothing was created or expired.
    assert client.get(SILENCES).json()["silences"] == [existing]


BAD_BODIES = [
    # The matcher parser's own message, prefixed with the field.
    pytest.param(
        {"matchers": 'alertname="DiskFull",cluster=~"[[:alpha:]]"'},
        "matchers",
        'matchers: invalid regex "[[:alpha:]]" in matcher cluster=~"[[:alpha:]]": POSIX classes '
        "such as [[:alpha:]] are not supported, write e.g. [a-zA-Z]",
        id="matcher-syntax",
    ),
    # In a list, the error says which item.
    pytest.param(
        {"matchers": ['alertname="X"', "severity>3"]},
        "matchers",
        'matchers[1]: expected one of =, !=, =~, !~ after label name "severity" at column 9',
        id="matcher-list-item",
    ),
    # No matchers at all would silence everything.
    pytest.param(
        {"matchers": ""},
        "matchers",
        "at least one matcher is required (an empty list would silence every alert)",
        id="empty-string",
    ),
    pytest.param(
        {"matchers": []},
        "matchers",
        "at least one matcher is required (an empty list would silence every alert)",
        id="empty-list",
    ),
    pytest.param(
        {"matchers": "{}"},
        "matchers",
        "at least one matcher is required (an empty list would silence every alert)",
        id="empty-braces",
    ),
    # Matchers that also match alerts lacking the label are as good as none.
    pytest.param(
        {"matchers": 'alertname=~".*"'},
        "matchers",
        'at least one matcher must require a label value: alertname=~".*" also matches alerts '
        "without these labels",
        id="matches-everything",
    ),
    pytest.param(
        {"matchers": 42},
        "matchers",
        'matchers must be a string such as alertname="X",cluster=~"eu.*" or a list of such strings',
        id="matchers-not-text",
    ),
    pytest.param(
        {"matchers": None},
        "matchers",
        'matchers is required: a string such as alertname="X",cluster=~"eu.*" or a list of such '
        "strings",
        id="matchers-missing",
    ),
    pytest.param(
        {"comment": None},
        "comment",
        "comment must be a non-empty string (why the silence?)",
        id="comment-missing",
    ),
    pytest.param(
        {"comment": " "},
        "comment",
        "comment must be a non-empty string (why the silence?)",
        id="comment-blank",
    ),
    pytest.param(
        {"ends_at": "2099-01-01T00:00Z"},
        "duration",
        "give either ends_at or duration, not both",
        id="both-ends",
    ),
    pytest.param(
        {"duration": None},
        "ends_at",
        "ends_at (an ISO time) or duration (such as 2h) is required",
        id="no-end",
    ),
    pytest.param(
        {"duration": "2 hours"},
        "duration",
        "invalid duration '2 hours': use a number and a unit, like 30s, 5m, 1h or 1h30m",
        id="duration-syntax",
    ),
    pytest.param(
        {"duration": 7200},
        "duration",
        "duration must be a string such as 2h or 1h30m",
        id="duration-number",
    ),
    # A zero duration ends the silence as it starts: now.
    pytest.param(
        {"duration": "0"}, "duration", "the silence must end in the future", id="duration-zero"
    ),
    # At most 30 days.
    pytest.param(
        {"duration": "31d"},
        "duration",
        "a silence may last at most 30d, this one would last 31d",
        id="duration-too-long",
    ),
    # Far too long for date arithmetic: still a 400, not a crash.
    pytest.param(
        {"duration": "99999999999d"},
        "duration",
        "a silence may last at most 30d, this one would last 99999999999d",
        id="duration-overflow",
    ),
    pytest.param(
        {"duration": None, "starts_at": "2099-01-01T00:00Z", "ends_at": "2099-02-01T00:00Z"},
        "ends_at",
        "a silence may last at most 30d, this one would last 31d",
        id="window-too-long",
    ),
    pytest.param(
        {"duration": None, "ends_at": "2020-01-01T00:00Z"},
        "ends_at",
        "the silence must end in the future",
        id="ends-in-the-past",
    ),
    pytest.param(
        {"duration": None, "starts_at": "2099-01-02T00:00Z", "ends_at": "2099-01-01T00:00Z"},
        "ends_at",
        "the silence must end after it starts",
        id="ends-before-start",
    ),
    pytest.param(
        {"duration": None, "ends_at": "tomorrow"},
        "ends_at",
        "ends_at must be an ISO time such as 2026-11-26T14:30Z (without an offset, UTC)",
        id="ends-not-iso",
    ),
    pytest.param(
        {"starts_at": 1764151200},
        "starts_at",
        "starts_at must be an ISO time such as 2026-11-26T14:30Z (without an offset, UTC)",
        id="starts-not-iso",
    ),
    pytest.param(
        {"expire_on_resolve": "yes"},
        "expire_on_resolve",
        "expire_on_resolve must be true or false",
        id="expire-on-resolve-not-bool",
    ),
    # Alertmanager's camelCase is not silently ignored.
    pytest.param(
        {"endsAt": "2099-01-01T00:00Z"},
        "endsAt",
        "unknown field 'endsAt'; fields: matchers, starts_at, ends_at, duration, comment, "
        "expire_on_resolve",
        id="unknown-field",
    ),
]


@pytest.mark.parametrize(("change", "field", "message"), BAD_BODIES)
def test_create_refuses_bad_input(
    client: httpx.Client, change: dict[str, Any], field: str, message: str
) -> None:
    body = {"matchers": DISK, "duration": "2h", "comment": "why"} | change
    response = client.post(
        SILENCES, json={k: v for k, v in body.items() if v is not None}, headers=ALICE
    )
    assert response.status_code == 400
    assert response.json() == {"error": message, "field": field}
    assert client.get(SILENCES, params={"expired": "true"}).json() == {"silences": []}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(b"matchers=x", "body is not JSON", id="not-json"),
        pytest.param(b'["alertname=\\"X\\""]', "body must be a JSON object", id="not-an-object"),
    ],
)
def test_create_refuses_a_body_that_is_not_an_object(
    client: httpx.Client, content: bytes, message: str
) -> None:
    response = client.post(
        SILENCES, content=content, headers=ALICE | {"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json() == {"error": message, "field": ""}


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        pytest.param({"expired": "yes"}, "expired", "expired must be true or false", id="expired"),
        pytest.param({"state": "active"}, "state", "unknown query parameter 'state'", id="unknown"),
    ],
)
def test_list_refuses_bad_query(
    client: httpx.Client, params: dict[str, str], field: str, message: str
) -> None:
    response = client.get(SILENCES, params=params)
    assert response.status_code == 400
    assert response.json() == {"error": message, "field": field}
