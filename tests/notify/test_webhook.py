"""The webhook channel against a real local HTTP receiver, and the classification it relies on."""

from __future__ import annotations

import json
import socket
import ssl
from datetime import UTC, datetime, timedelta

import httpx
import pytest

import router
from router.errors import ConfigError
from router.notify import (
    Channel,
    Delivery,
    Message,
    Outcome,
    WebhookChannel,
    classify_response,
    classify_transport_error,
    sign,
    verify,
)
from router.notify.webhook import encode_message
from router.secrets import Secret

from .conftest import Receiver, Reply

NOW = datetime(2025, 1, 1, 0, 0, 0, tzinfo=UTC)  # Unix 1735689600
SIGNING_SECRET = Secret("my-hmac-secret")
TOKEN_PATH = "/hooks/T0KEN-s3cr3t-path"

MESSAGE = Message(
    idempotency_key="INC-42:1:oncall-webhook:webhook:trigger",
    event="incident.opened",
    title="SEV2 INC-42 \u2014 checkout 5xx above 2%",
    text="Opened by HighErrorRate.\nTeam: payments",
    payload={"id": "INC-42", "sev": "SEV2", "labels": {"service": "checkout"}},
)
# Written out by hand, not by encode_message: this is the wire format receivers depend on.
EXPECTED_BODY = (
    '{"version":"1","event":"incident.opened",'
    '"idempotency_key":"INC-42:1:oncall-webhook:webhook:trigger",'
    '"title":"SEV2 INC-42 \u2014 checkout 5xx above 2%",'
    '"text":"Opened by HighErrorRate.\\nTeam: payments",'
    '"incident":{"id":"INC-42","sev":"SEV2","labels":{"service":"checkout"}}}'
).encode()

# Captured error bodies (FORMATS.md 3.1 and 3.3, shared/payloads/).
PAGERDUTY_400 = (
    b'{\n  "status": "Unrecognized object",\n  "message": "Event object format is unrecognized",'
    b'\n  "errors": [\n    "JSON parse error"\n  ]\n}\n'
)
PAGERDUTY_202 = b'{"status":"success","message":"Event processed","dedup_key":"srv01/HTTP"}'


def webhook(
    url: str, client: httpx.Client, *, signed: bool = True, timeout: float = 10.0
) -> WebhookChannel:
    return WebhookChannel(
        "oncall-webhook",
        Secret(url),
        signing_secret=SIGNING_SECRET if signed else None,
        client=client,
        timeout=timeout,
    )


# --- what goes on the wire -------------------------------------------------------------------


def test_posts_exact_body_and_headers(receiver: Receiver, client: httpx.Client) -> None:
    delivery = webhook(receiver.url + TOKEN_PATH, client).send(MESSAGE, now=NOW)

    assert delivery == Delivery(Outcome.DELIVERED, "HTTP 200", status_code=200)
    [request] = receiver.requests
    assert (request.method, request.path, request.body) == ("POST", TOKEN_PATH, EXPECTED_BODY)
    ours = {name: value for name, value in request.headers.items() if name.startswith("x-")}
    assert ours == {
        "x-sevrouter-event": "incident.opened",
        "x-sevrouter-idempotency-key": "INC-42:1:oncall-webhook:webhook:trigger",
        "x-sevrouter-timestamp": "1735689600",
        "x-sevrouter-signature": sign(SIGNING_SECRET, 1735689600, EXPECTED_BODY),
    }
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == f"sevrouter/{router.__version__}"
    assert request.headers["content-length"] == str(len(EXPECTED_BODY))
    # Nothing else but what httpx adds to every request.
    assert set(request.headers) - set(ours) == {
        "host",
        "accept",
        "accept-encoding",
        "connection",
        "content-type",
        "content-length",
        "user-agent",
    }


def test_signature_verifies_with_verify(receiver: Receiver, client: httpx.Client) -> None:
    webhook(receiver.url + TOKEN_PATH, client).send(MESSAGE, now=NOW)

    [request] = receiver.requests
    assert verify(
        SIGNING_SECRET,
        timestamp=request.headers["x-sevrouter-timestamp"],
        body=request.body,
        signature=request.headers["x-sevrouter-signature"],
        now=NOW + timedelta(seconds=2),
    )


def test_unsigned_channel_sends_no_signature(receiver: Receiver, client: httpx.Client) -> None:
    webhook(receiver.url, client, signed=False).send(MESSAGE, now=NOW)

    [request] = receiver.requests
    assert "x-sevrouter-signature" not in request.headers
    assert "x-sevrouter-timestamp" not in request.headers
    assert request.body == EXPECTED_BODY


def test_body_is_the_documented_envelope() -> None:
    assert json.loads(encode_message(MESSAGE)) == {
        "version": "1",
        "event": MESSAGE.event,
        "idempotency_key": MESSAGE.idempotency_key,
        "title": MESSAGE.title,
        "text": MESSAGE.text,
        "incident": MESSAGE.payload,
    }


def test_payload_that_is_not_json_is_a_bug_not_a_delivery_failure() -> None:
    # NaN is not JSON; strict receivers would reject the page forever, so fail loudly instead.
    message = Message("k", "incident.opened", "t", "x", {"value": float("nan")})
    with pytest.raises(ValueError, match="JSON"):
        encode_message(message)


@pytest.mark.parametrize("signed", [True, False])
def test_naive_now_is_refused(receiver: Receiver, client: httpx.Client, signed: bool) -> None:
    # A naive datetime would be read as local time: refused before anything is sent.
    with pytest.raises(ValueError, match="timezone-aware"):
        webhook(receiver.url, client, signed=signed).send(MESSAGE, now=datetime(2025, 1, 1))
    assert receiver.requests == []


# --- replayed answers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        # Any 2xx is delivered (Alertmanager Retrier.Check): Slack answers 200 "ok" ...
        pytest.param(
            Reply(200, b"ok"),
            Delivery(Outcome.DELIVERED, "HTTP 200", status_code=200),
            id="200-slack-ok",
        ),
        # ... PagerDuty and Opsgenie 202 with a JSON body ...
        pytest.param(
            Reply(202, PAGERDUTY_202, (("Content-Type", "application/json"),)),
            Delivery(Outcome.DELIVERED, "HTTP 202", status_code=202),
            id="202-pagerduty",
        ),
        # ... and plain receivers 204 with none.
        pytest.param(
            Reply(204),
            Delivery(Outcome.DELIVERED, "HTTP 204", status_code=204),
            id="204-empty",
        ),
        # A 400 will never be accepted: permanent, quoting the JSON error on one line.
        pytest.param(
            Reply(400, PAGERDUTY_400, (("Content-Type", "application/json"),)),
            Delivery(
                Outcome.PERMANENT,
                'HTTP 400: { "status": "Unrecognized object", "message": "Event object format '
                'is unrecognized", "errors": [ "JSON parse error" ] }',
                status_code=400,
            ),
            id="400-pagerduty-json-error",
        ),
        # Slack's plain-text error codes are quoted as they are.
        pytest.param(
            Reply(400, b"invalid_payload"),
            Delivery(Outcome.PERMANENT, "HTTP 400: invalid_payload", status_code=400),
            id="400-slack-invalid-payload",
        ),
        pytest.param(
            Reply(410, b"channel_is_archived"),
            Delivery(Outcome.PERMANENT, "HTTP 410: channel_is_archived", status_code=410),
            id="410-slack-archived",
        ),
        # A 4xx without a body still says which status it was.
        pytest.param(
            Reply(403),
            Delivery(Outcome.PERMANENT, "HTTP 403", status_code=403),
            id="403-empty",
        ),
        # 429 is retried (unlike Alertmanager's webhook), honouring delta-seconds Retry-After.
        pytest.param(
            Reply(429, b"rate_limited", (("Retry-After", "7"),)),
            Delivery(Outcome.RETRY, "HTTP 429", status_code=429, retry_after=7.0),
            id="429-retry-after-seconds",
        ),
        # An HTTP-date Retry-After is measured from the injected `now`, not the server's clock.
        pytest.param(
            Reply(429, b"", (("Retry-After", "Wed, 01 Jan 2025 00:01:30 GMT"),)),
            Delivery(Outcome.RETRY, "HTTP 429", status_code=429, retry_after=90.0),
            id="429-retry-after-http-date",
        ),
        # Without Retry-After the caller falls back to its own backoff.
        pytest.param(
            Reply(429),
            Delivery(Outcome.RETRY, "HTTP 429", status_code=429),
            id="429-no-retry-after",
        ),
        # 5xx is transient; the body (often an HTML error page) is not quoted.
        pytest.param(
            Reply(500, b"rollup_error"),
            Delivery(Outcome.RETRY, "HTTP 500", status_code=500),
            id="500-slack-rollup-error",
        ),
        pytest.param(
            Reply(503, b"<html>down for maintenance</html>", (("Retry-After", "120"),)),
            Delivery(Outcome.RETRY, "HTTP 503", status_code=503, retry_after=120.0),
            id="503-retry-after",
        ),
        # A redirect is not followed: the endpoint moved, which is a configuration change.
        pytest.param(
            Reply(301, b"", (("Location", "/elsewhere"),)),
            Delivery(Outcome.PERMANENT, "HTTP 301", status_code=301),
            id="301-not-followed",
        ),
    ],
)
def test_classifies_real_answers(
    receiver: Receiver, client: httpx.Client, reply: Reply, expected: Delivery
) -> None:
    receiver.script(reply)

    assert webhook(receiver.url + TOKEN_PATH, client).send(MESSAGE, now=NOW) == expected
    assert len(receiver.requests) == 1


def test_redirect_not_followed_even_by_a_following_client(receiver: Receiver) -> None:
    receiver.script(Reply(302, b"", (("Location", "/elsewhere"),)))

    with httpx.Client(follow_redirects=True) as following:
        delivery = webhook(receiver.url + TOKEN_PATH, following).send(MESSAGE, now=NOW)

    assert delivery.outcome is Outcome.PERMANENT
    assert [request.path for request in receiver.requests] == [TOKEN_PATH]


def test_error_body_echoing_the_url_is_masked(receiver: Receiver, client: httpx.Client) -> None:
    url = receiver.url + TOKEN_PATH + "?token=q5ecret"
    receiver.script(Reply(404, f"no hook at {url} (path {TOKEN_PATH})".encode()))

    delivery = webhook(url, client).send(MESSAGE, now=NOW)

    assert delivery.outcome is Outcome.PERMANENT
    assert "T0KEN" not in delivery.detail
    assert "q5ecret" not in delivery.detail
    assert delivery.detail == "HTTP 404: no hook at ********** (path **********)"


def test_long_multiline_error_body_becomes_one_short_line(
    receiver: Receiver, client: httpx.Client
) -> None:
    receiver.script(Reply(422, b"bad field\r\nInjected: log line\n" + b"x" * 100_000))

    delivery = webhook(receiver.url, client).send(MESSAGE, now=NOW)

    assert delivery.detail.startswith("HTTP 422: bad field Injected: log line xxx")
    assert delivery.detail.endswith("...")
    assert len(delivery.detail) == len("HTTP 422: ") + 200
    assert delivery.detail.isprintable()


def test_large_success_body_is_still_delivered(receiver: Receiver, client: httpx.Client) -> None:
    # Only the first few KiB are read; the status line already said "delivered".
    receiver.script(Reply(200, b"y" * 1_000_000))

    assert webhook(receiver.url, client).send(MESSAGE, now=NOW).outcome is Outcome.DELIVERED


# --- no answer at all ------------------------------------------------------------------------


def test_connection_refused_is_retried(closed_port_url: str, client: httpx.Client) -> None:
    delivery = webhook(closed_port_url, client).send(MESSAGE, now=NOW)

    assert delivery == Delivery(Outcome.RETRY, "connection refused")


def test_receiver_slower_than_timeout_is_retried(receiver: Receiver, client: httpx.Client) -> None:
    receiver.script(Reply(200, delay=5.0))

    delivery = webhook(receiver.url, client, timeout=0.2).send(MESSAGE, now=NOW)

    assert delivery == Delivery(Outcome.RETRY, "read timeout")
    assert len(receiver.requests) == 1  # it arrived; the idempotency key covers the retry


# --- configuration and secrecy ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "timeout"),
    [
        # Only http(s) can be posted to.
        pytest.param("ftp://hooks.example.com/T0KEN", 10.0, id="ftp-scheme"),
        # A relative or scheme-less URL has no host to connect to.
        pytest.param("hooks.example.com/T0KEN", 10.0, id="no-scheme"),
        # Unparseable: the parser's message would quote the URL, ours must not.
        pytest.param("http://hooks.example.com:T0KEN/x", 10.0, id="bad-port"),
        # A zero timeout would fail every send.
        pytest.param("https://hooks.example.com/T0KEN", 0.0, id="zero-timeout"),
    ],
)
def test_unusable_settings_fail_at_construction(
    client: httpx.Client, url: str, timeout: float
) -> None:
    with pytest.raises(ConfigError, match="oncall-webhook") as info:
        webhook(url, client, timeout=timeout)
    assert "T0KEN" not in str(info.value)
    # Nor in the traceback: no chained parser error quoting the URL.
    assert info.value.__cause__ is None
    assert info.value.__context__ is None or info.value.__suppress_context__


def test_repr_hides_url_and_secret(client: httpx.Client) -> None:
    channel = webhook("https://hooks.example.com/T0KEN", client)

    assert repr(channel) == "WebhookChannel(name='oncall-webhook', signed=True)"
    assert "T0KEN" not in str(channel)


def test_satisfies_channel_protocol(client: httpx.Client) -> None:
    # The annotation is the check (mypy --strict); the asserts pin the runtime values.
    channel: Channel = webhook("https://hooks.example.com/T0KEN", client)
    assert (channel.name, channel.kind) == ("oncall-webhook", "webhook")


# --- signing ---------------------------------------------------------------------------------


def test_sign_matches_grafana_test_vector() -> None:
    # grafana/alerting http/hmac.go unit-test inputs with the timestamp header configured and
    # the clock at Unix 0 (shared/payloads/grafana_hmac_test_vectors.json): same scheme.
    assert (
        sign(Secret("secret"), 0, b"test message")
        == "ac18a483a582b60a883e974541afe25aa1026136163e94665649743324183ef1"
    )


_BODY = b'{"version":"1"}'
_SIGNATURE = sign(SIGNING_SECRET, 1735689600, _BODY)


@pytest.mark.parametrize(
    ("secret", "timestamp", "body", "signature", "valid"),
    [
        # The signature of exactly this body, timestamp and secret verifies.
        pytest.param(SIGNING_SECRET, "1735689600", _BODY, _SIGNATURE, True, id="valid"),
        # Integer timestamps are accepted too.
        pytest.param(SIGNING_SECRET, 1735689600, _BODY, _SIGNATURE, True, id="valid-int"),
        # Hex is case-insensitive and surrounding whitespace is not part of it.
        pytest.param(
            SIGNING_SECRET, "1735689600", _BODY, f" {_SIGNATURE.upper()} ", True, id="upper"
        ),
        # One changed byte of body breaks it.
        pytest.param(
            SIGNING_SECRET, "1735689600", b'{"version":"2"}', _SIGNATURE, False, id="body"
        ),
        # So does another secret.
        pytest.param(Secret("other"), "1735689600", _BODY, _SIGNATURE, False, id="secret"),
        # The timestamp is signed: moving it breaks the signature.
        pytest.param(SIGNING_SECRET, "1735689601", _BODY, _SIGNATURE, False, id="timestamp"),
        # A timestamp that is not decimal seconds is refused before any HMAC.
        pytest.param(SIGNING_SECRET, "1735689600.0", _BODY, _SIGNATURE, False, id="float-ts"),
        pytest.param(SIGNING_SECRET, "", _BODY, _SIGNATURE, False, id="empty-ts"),
        # Non-ASCII junk in the header is a mismatch, not a crash.
        pytest.param(SIGNING_SECRET, "1735689600", _BODY, "\u00e9" * 64, False, id="non-ascii"),
        pytest.param(SIGNING_SECRET, "1735689600", _BODY, "", False, id="empty-signature"),
    ],
)
def test_verify(
    secret: Secret, timestamp: str | int, body: bytes, signature: str, valid: bool
) -> None:
    assert verify(secret, timestamp=timestamp, body=body, signature=signature, now=NOW) is valid


@pytest.mark.parametrize(
    ("skew", "valid"),
    [
        # Within the default 5-minute window either way: clocks drift.
        pytest.param(300, True, id="300s-late"),
        pytest.param(-300, True, id="300s-early"),
        # Outside it the request may be a replay.
        pytest.param(301, False, id="301s-late"),
        pytest.param(-301, False, id="301s-early"),
    ],
)
def test_verify_replay_window(skew: int, valid: bool) -> None:
    now = NOW + timedelta(seconds=skew)
    assert (
        verify(SIGNING_SECRET, timestamp=1735689600, body=_BODY, signature=_SIGNATURE, now=now)
        is valid
    )


# --- classification without a server ---------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        # Edges of the ranges the real-server cases do not reach.
        pytest.param(299, Outcome.DELIVERED, id="299"),
        pytest.param(304, Outcome.PERMANENT, id="304"),
        pytest.param(408, Outcome.PERMANENT, id="408"),
        pytest.param(499, Outcome.PERMANENT, id="499"),
        pytest.param(599, Outcome.RETRY, id="599"),
        # Not HTTP at all: nothing says a retry would help.
        pytest.param(999, Outcome.PERMANENT, id="999"),
    ],
)
def test_classify_status_ranges(status: int, outcome: Outcome) -> None:
    assert classify_response(httpx.Response(status), now=NOW).outcome is outcome


def test_classify_prefers_the_given_body_excerpt() -> None:
    # A streaming caller passes what it read; response.content is never touched then.
    response = httpx.Response(400, content=b"full body")
    delivery = classify_response(response, now=NOW, body=b"start")
    assert delivery.detail == "HTTP 400: start"


def _caused(exc: httpx.TransportError, cause: BaseException) -> httpx.TransportError:
    exc.__cause__ = cause
    return exc


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        # Timeouts are named by phase, so an operator can tell a dead host from a slow one.
        pytest.param(
            httpx.ConnectTimeout("t"), Delivery(Outcome.RETRY, "connect timeout"), id="connect"
        ),
        pytest.param(httpx.ReadTimeout("t"), Delivery(Outcome.RETRY, "read timeout"), id="read"),
        pytest.param(httpx.WriteTimeout("t"), Delivery(Outcome.RETRY, "write timeout"), id="write"),
        pytest.param(httpx.PoolTimeout("t"), Delivery(Outcome.RETRY, "pool timeout"), id="pool"),
        # The OS error under httpx's wrapper names the network failure ...
        pytest.param(
            _caused(httpx.ConnectError("x"), ConnectionRefusedError(111, "refused")),
            Delivery(Outcome.RETRY, "connection refused"),
            id="refused",
        ),
        pytest.param(
            _caused(httpx.ConnectError("x"), socket.gaierror(-2, "Name or service not known")),
            Delivery(Outcome.RETRY, "name resolution failed"),
            id="dns",
        ),
        pytest.param(
            _caused(httpx.ConnectError("x"), ssl.SSLCertVerificationError("bad cert")),
            Delivery(Outcome.RETRY, "TLS certificate verification failed"),
            id="tls-cert",
        ),
        # ... and without one the wrapper's kind is enough; its text (may hold the host) is not
        # quoted.
        pytest.param(
            httpx.ConnectError("hooks.example.com: boom"),
            Delivery(Outcome.RETRY, "connect error"),
            id="connect-error",
        ),
        pytest.param(
            httpx.RemoteProtocolError("Server disconnected without sending a response."),
            Delivery(Outcome.RETRY, "remote protocol error"),
            id="disconnected",
        ),
        pytest.param(
            _caused(httpx.ReadError("x"), ConnectionResetError(104, "reset")),
            Delivery(Outcome.RETRY, "connection reset"),
            id="reset",
        ),
        # The same request can never succeed: permanent.
        pytest.param(
            httpx.UnsupportedProtocol("Request URL has an unsupported protocol 'ftp://'."),
            Delivery(Outcome.PERMANENT, "unsupported URL scheme"),
            id="unsupported-protocol",
        ),
        pytest.param(
            httpx.LocalProtocolError("Illegal header value"),
            Delivery(Outcome.PERMANENT, "invalid request"),
            id="local-protocol",
        ),
    ],
)
def test_classify_transport_error(exc: httpx.TransportError, expected: Delivery) -> None:
    assert classify_transport_error(exc) == expected


# --- the message -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        # CR/LF would split the HTTP request (header injection).
        pytest.param("INC-42\r\nX-Evil: 1", id="crlf"),
        # Non-ASCII is not portable in a header value.
        pytest.param("INC-42:caf\u00e9", id="non-ascii"),
        # An empty key dedupes everything into one page.
        pytest.param("", id="empty"),
        # Leading/trailing whitespace is stripped by some servers, changing the key.
        pytest.param(" INC-42", id="leading-space"),
    ],
)
def test_message_rejects_keys_unfit_for_a_header(key: str) -> None:
    with pytest.raises(ValueError, match="idempotency_key"):
        Message(key, "incident.opened", "t", "x", {})
