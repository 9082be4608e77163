"""The email channel against a real local SMTP server (aiosmtpd on 127.0.0.1), and against bare
TCP listeners for the failures no well-behaved server produces."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import smtplib
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from pathlib import Path
from typing import Any, Literal

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from router.channelschema import EmailChannelConfig
from router.errors import ConfigError
from router.notify.base import Channel, Delivery, Message, Outcome
from router.notify.email import EmailChannel, Step, classify_error
from router.notify.render import Renderer
from router.secrets import Secret

NOW = datetime(2025, 1, 1, 0, 0, 0, tzinfo=UTC)
SENDER = "Sevrouter <pager@example.com>"
TEAM = "oncall@example.com"
USERNAME = "pager"
PASSWORD = "hunter2-Sm7p-pa55"
# How AUTH PLAIN and AUTH LOGIN carry the password: a server may echo either form.
PASSWORD_FORMS = (
    PASSWORD,
    base64.b64encode(PASSWORD.encode()).decode(),
    base64.b64encode(f"\0{USERNAME}\0{PASSWORD}".encode()).decode(),
)

PAYLOAD: dict[str, Any] = {
    "id": "INC-42",
    "title": "checkout 5xx above 2%",
    "severity": "SEV1",
    "state": "triggered",
    "team": "payments",
    "rule": "checkout-errors",
    "opened_at": "2025-01-01T00:00:00+00:00",
    "alerts_firing": 1,
    "summary": "Error rate 3.1% on checkout.",
    "runbook": "https://runbooks.example.com/checkout",
    "alerts": [
        {"status": "firing", "labels": {"alertname": "HighErrorRate", "service": "checkout"}},
    ],
}
MESSAGE = Message(
    idempotency_key="INC-42:1:oncall-email:email:trigger",
    event="incident.opened",
    title="[SEV1] INC-42 checkout 5xx above 2% (triggered)",
    text="SEV1 incident INC-42 for team payments: triggered",
    payload=PAYLOAD,
    incident="INC-42",
    severity="SEV1",
    links={
        "ack": "https://sevrouter.example.com/a/INC-42?sig=abc&exp=1",
        "resolve": "https://sevrouter.example.com/r/INC-42?sig=def",
    },
)
# Written out by hand, not by the channel: mail clients thread and deduplicate on these, so a
# change of derivation would split threads across an upgrade.
MESSAGE_ID = "<INC-42.1a49259dd9cfa40614e8.a9b2c031@example.com>"
THREAD_ID = "<INC-42.opened.a9b2c031@example.com>"
# "-- " (dash dash space) is the signature separator mail clients recognise.
EXPECTED_TEXT = """\
New incident: [SEV1] INC-42 checkout 5xx above 2% (triggered)

Severity:  SEV1
State:     triggered
Team:      payments
Opened:    2025-01-01T00:00:00+00:00
Firing:    1 alert(s)

Error rate 3.1% on checkout.

Runbook:   https://runbooks.example.com/checkout

Acknowledge: https://sevrouter.example.com/a/INC-42?sig=abc&exp=1
Resolve:     https://sevrouter.example.com/r/INC-42?sig=def

Alerts:
- [firing] alertname=HighErrorRate service=checkout

--\x20
sevrouter incident.opened INC-42
"""


# --- the test SMTP server ---------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    """One message the server accepted."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    tls: bool  # whether the session was encrypted when DATA arrived


@dataclass
class Mailbox:
    """The server's handler: records what arrives and answers MAIL, RCPT and DATA as scripted
    (a full reply line such as "451 4.3.0 Try again later"); unscripted commands succeed."""

    mail_reply: str | None = None
    rcpt_replies: dict[str, str] = field(default_factory=dict)
    data_reply: str | None = None
    senders: list[str] = field(default_factory=list)  # every MAIL FROM, accepted or not
    logins: list[str] = field(default_factory=list)  # the mechanism of each successful AUTH
    received: list[Received] = field(default_factory=list)

    async def handle_MAIL(  # noqa: N802 # the hook name aiosmtpd looks up
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        self.senders.append(address)
        if self.mail_reply is not None:
            return self.mail_reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(  # noqa: N802 # the hook name aiosmtpd looks up
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if address in self.rcpt_replies:
            return self.rcpt_replies[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 # the hook name aiosmtpd looks up
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        if self.data_reply is not None:
            return self.data_reply
        assert envelope.mail_from is not None
        assert envelope.original_content is not None
        message = BytesParser(policy=default_policy).parsebytes(envelope.original_content)
        assert isinstance(message, EmailMessage)
        # The transport's TLS object, whether TLS came with STARTTLS or from the first byte.
        tls = server.transport is not None and server.transport.get_extra_info("ssl_object")
        self.received.append(
            Received(envelope.mail_from, list(envelope.rcpt_tos), message, tls=bool(tls))
        )
        return "250 Message accepted for delivery"

    def authenticate(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        mechanism: str,
        auth_data: object,
    ) -> AuthResult:
        good = LoginPassword(USERNAME.encode(), PASSWORD.encode())
        success = isinstance(auth_data, LoginPassword) and auth_data == good
        if success:
            self.logins.append(mechanism)
        # handled=False: aiosmtpd then answers a failure itself, with 535.
        return AuthResult(success=success, handled=False)


class _Controller(Controller):
    """aiosmtpd's threaded controller, listening on whatever port the OS picks (port 0)."""

    def _trigger_server(self) -> None:
        # start() connects to `self.port` to finish starting the server; with port 0 that has
        # to become the port actually bound first.
        assert isinstance(self.server, asyncio.Server)
        self.port = self.server.sockets[0].getsockname()[1]
        # aiosmtpd leaves this method unannotated, so mypy --strict flags calling it.
        super()._trigger_server()  # type: ignore[no-untyped-call]


TLSMode = Literal["none", "starttls", "implicit"]


@contextlib.contextmanager
def smtp_server(
    mailbox: Mailbox,
    *,
    tls: TLSMode = "none",
    server_context: ssl.SSLContext | None = None,
    auth_require_tls: bool = True,
) -> Iterator[int]:
    """Run an SMTP server on 127.0.0.1 with `mailbox` as handler; yields its port.

    `tls` "starttls" offers STARTTLS, "implicit" speaks TLS from the first byte (port 465
    style); both need `server_context`. AUTH (PLAIN, LOGIN) is offered only over TLS unless
    `auth_require_tls` is false.
    """
    controller = _Controller(
        mailbox,
        hostname="127.0.0.1",
        port=0,
        server_hostname="smtp.test",  # else aiosmtpd asks DNS for this machine's name
        ssl_context=server_context if tls == "implicit" else None,
        tls_context=server_context if tls == "starttls" else None,
        authenticator=mailbox.authenticate,
        auth_require_tls=auth_require_tls,
    )
    controller.start()
    try:
        yield controller.port
    finally:
        controller.stop()


@contextlib.contextmanager
def bare_server(greeting: bytes | None, *, hang: bool) -> Iterator[int]:
    """A TCP listener that is not an SMTP server: it accepts one connection, sends `greeting`
    (if any), then hangs (`hang`, until the test ends) or closes. Yields its port."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5)  # never outlives a test whose client did not connect
    stop = threading.Event()

    def serve() -> None:
        with contextlib.suppress(OSError):
            connection, _ = listener.accept()
            with connection:
                if greeting is not None:
                    connection.sendall(greeting)
                if hang:
                    stop.wait(5)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        listener.close()


@dataclass(frozen=True)
class Certificate:
    cert_file: Path
    key_file: Path
    pem: str


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A throwaway self-signed certificate for 127.0.0.1 and localhost."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sevrouter test SMTP")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    directory = tmp_path_factory.mktemp("tls")
    pem = cert.public_bytes(serialization.Encoding.PEM)
    (directory / "cert.pem").write_bytes(pem)
    (directory / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Certificate(directory / "cert.pem", directory / "key.pem", pem.decode())


@pytest.fixture
def server_context(certificate: Certificate) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate.cert_file, certificate.key_file)
    return context


@pytest.fixture
def client_context(certificate: Certificate) -> ssl.SSLContext:
    """Verifies the server as production does (chain and hostname), trusting only the test
    certificate."""
    return ssl.create_default_context(cadata=certificate.pem)


@pytest.fixture
def mailbox() -> Mailbox:
    return Mailbox()


def free_port() -> int:
    """A port nothing listens on: connecting is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def email_config(port: int, *, sender: str = SENDER, **changes: Any) -> EmailChannelConfig:
    """Settings as a rules file would give them (`from` is a keyword, hence `sender`)."""
    document: dict[str, Any] = {
        "type": "email",
        "name": "oncall-email",
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "security": "none",
        "from": sender,
        "to": [TEAM],
        "timeout": 5,
    }
    if changes.get("username") is not None:
        # The schema wants the reference; the channel gets the resolved secret.
        document["password"] = {"env": "SMTP_PASSWORD"}
    return EmailChannelConfig.model_validate(document | changes)


def email_channel(
    port: int,
    *,
    password: str | None = None,
    renderer: Renderer | None = None,
    ssl_context: ssl.SSLContext | None = None,
    sender: str = SENDER,
    **changes: Any,
) -> EmailChannel:
    return EmailChannel(
        email_config(port, sender=sender, **changes),
        password=Secret(password) if password is not None else None,
        renderer=renderer or Renderer(),
        ssl_context=ssl_context,
    )


def part(mail: EmailMessage, subtype: Literal["plain", "html"]) -> str:
    """The text of `mail`'s text/`subtype` part, the wire's CRLF line ends read back as LF."""
    found = mail.get_body((subtype,))
    assert found is not None
    assert found.get_content_charset() == "utf-8"
    content: str = found.get_content()
    return content.replace("\r\n", "\n")


# --- what goes on the wire --------------------------------------------------------------------


def test_sends_exact_headers_and_both_parts(mailbox: Mailbox) -> None:
    with smtp_server(mailbox) as port:
        delivery = email_channel(port).send(MESSAGE, now=NOW)

    assert delivery == Delivery(Outcome.DELIVERED, "SMTP 250", status_code=250)
    [received] = mailbox.received
    assert (received.mail_from, received.rcpt_tos) == ("pager@example.com", [TEAM])
    mail = received.message
    headers = [(name, str(value)) for name, value in mail.items()]
    assert headers[:-1] == [
        ("From", SENDER),
        ("To", TEAM),
        ("Subject", "[SEV1] INC-42 checkout 5xx above 2% (triggered)"),
        ("Date", "Wed, 01 Jan 2025 00:00:00 +0000"),
        ("Message-ID", MESSAGE_ID),
        ("In-Reply-To", THREAD_ID),
        ("References", THREAD_ID),
        ("Auto-Submitted", "auto-generated"),
        ("X-Sevrouter-Event", "incident.opened"),
        ("X-Sevrouter-Idempotency-Key", "INC-42:1:oncall-email:email:trigger"),
        ("MIME-Version", "1.0"),
    ]
    # The last header is the multipart's, with a random boundary.
    assert mail.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in mail.iter_parts()] == ["text/plain", "text/html"]

    assert part(mail, "plain") == EXPECTED_TEXT
    body = part(mail, "html")
    assert body.startswith("<!DOCTYPE html>")
    for fragment in (
        "<title>[SEV1] INC-42 checkout 5xx above 2% (triggered)</title>",
        ">New incident</div>",
        ">SEV1</span>",
        "<td>triggered</td>",
        "<td>payments</td>",
        "<td>1 alert(s)</td>",
        ">Error rate 3.1% on checkout.</p>",
        '<a href="https://runbooks.example.com/checkout"',
        # Buttons; `&` in an attribute is written `&amp;`, which browsers read back as `&`.
        '<a href="https://sevrouter.example.com/a/INC-42?sig=abc&amp;exp=1"',
        ">Acknowledge</a>",
        '<a href="https://sevrouter.example.com/r/INC-42?sig=def"',
        ">Resolve</a>",
        ">alertname=HighErrorRate</span>",
        ">service=checkout</span>",
    ):
        assert fragment in body


def test_paged_person_replaces_the_channel_recipients(mailbox: Mailbox) -> None:
    # message.recipient is the person's own address: only they get the page.
    message = replace(MESSAGE, recipient="alice@example.com")
    with smtp_server(mailbox) as port:
        delivery = email_channel(port, to=[TEAM, "sre@example.com"]).send(message, now=NOW)

    assert delivery.outcome is Outcome.DELIVERED
    [received] = mailbox.received
    assert received.rcpt_tos == ["alice@example.com"]
    assert received.message["To"] == "alice@example.com"


def test_every_configured_recipient_gets_one_message(mailbox: Mailbox) -> None:
    with smtp_server(mailbox) as port:
        email_channel(port, to=[TEAM, "SRE <sre@example.com>"]).send(MESSAGE, now=NOW)

    [received] = mailbox.received
    # Display names stay in the header; the envelope carries bare addresses.
    assert received.rcpt_tos == [TEAM, "sre@example.com"]
    assert received.message["To"] == f"{TEAM}, SRE <sre@example.com>"


def test_retries_keep_the_message_id_and_an_incident_threads(mailbox: Mailbox) -> None:
    escalated = replace(
        MESSAGE, idempotency_key="INC-42:2:oncall-email:email:trigger", event="incident.escalated"
    )
    other = replace(
        MESSAGE, idempotency_key="INC-43:1:oncall-email:email:trigger", incident="INC-43"
    )
    with smtp_server(mailbox) as port:
        channel = email_channel(port)
        for message in (MESSAGE, MESSAGE, escalated, other):
            assert channel.send(message, now=NOW).outcome is Outcome.DELIVERED

    ids = [(r.message["Message-ID"], r.message["In-Reply-To"]) for r in mailbox.received]
    first, retry, step2, elsewhere = ids
    # The same page sent twice is one message to a receiver that dedupes on Message-ID.
    assert first == retry == (MESSAGE_ID, THREAD_ID)
    # Another page about the same incident is a new message in the same thread.
    assert step2[0] != MESSAGE_ID
    assert step2[1] == THREAD_ID
    assert elsewhere == (
        "<INC-43.ec794ba2bfe93d4761e4.a9b2c031@example.com>",
        "<INC-43.opened.a9b2c031@example.com>",
    )


def test_another_sender_is_another_message_and_thread(mailbox: Mailbox) -> None:
    # A staging and a production router both count INC-1, INC-2...: paging the same mailbox
    # from different senders must neither thread together nor dedupe each other away.
    with smtp_server(mailbox) as port:
        email_channel(port).send(MESSAGE, now=NOW)
        email_channel(port, sender="staging@example.com").send(MESSAGE, now=NOW)

    prod, staging = (r.message for r in mailbox.received)
    assert prod["Message-ID"] != staging["Message-ID"]
    assert prod["In-Reply-To"] != staging["In-Reply-To"]


def test_message_without_incident_has_no_thread(mailbox: Mailbox) -> None:
    # A test page: the message's own title and text stand in for the incident document.
    message = Message("drill-1", "incident.notify", "Test page from sevrouter", "Just a drill.", {})
    with smtp_server(mailbox) as port:
        email_channel(port).send(message, now=NOW)

    [received] = mailbox.received
    mail = received.message
    assert mail["Subject"] == "Test page from sevrouter"
    assert mail["Message-ID"].endswith(".a9b2c031@example.com>")
    assert "In-Reply-To" not in mail
    assert "References" not in mail
    assert part(mail, "plain") == (
        "Update: Test page from sevrouter\n\nJust a drill.\n\n-- \nsevrouter incident.notify\n"
    )


def test_hostile_label_is_escaped_in_html(mailbox: Mailbox) -> None:
    # Labels and annotations come from whoever can push alerts: never markup in the HTML part.
    hostile = '<script>alert("x")</script>'
    payload = {
        **PAYLOAD,
        "summary": "<b>bold</b> & <img src=x onerror=alert(1)>",
        "runbook": "javascript:alert(1)",
        "alerts": [{"status": "firing", "labels": {"alertname": "Evil", "pod": hostile}}],
    }
    message = replace(MESSAGE, payload=payload)
    with smtp_server(mailbox) as port:
        email_channel(port).send(message, now=NOW)

    [received] = mailbox.received
    body = part(received.message, "html")
    assert "<script>" not in body
    assert "<img" not in body
    assert "pod=&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in body
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; &lt;img src=x onerror=alert(1)&gt;" in body
    # A runbook that is not an http(s) URL is shown, never linked.
    assert 'href="javascript:' not in body
    assert "<td>javascript:alert(1)</td>" in body
    # The plain-text part is not HTML: there the label reads as sent.
    assert f"pod={hostile}" in part(received.message, "plain")


def test_rules_templates_override_the_shipped_ones(mailbox: Mailbox, tmp_path: Path) -> None:
    # A file named like a shipped template in rules/templates replaces it; the others stay.
    (tmp_path / "email.subject.j2").write_text(
        "{{ severity }} {{ incident.id }} for {{ incident.team }}\n:\n{{ what }}"
    )
    with smtp_server(mailbox) as port:
        email_channel(port, renderer=Renderer(tmp_path)).send(MESSAGE, now=NOW)

    [received] = mailbox.received
    # Line breaks a template leaves in the subject are folded into spaces.
    assert received.message["Subject"] == "SEV1 INC-42 for payments : New incident"
    assert part(received.message, "plain") == EXPECTED_TEXT.replace(
        "[SEV1] INC-42 checkout 5xx above 2% (triggered)",
        "SEV1 INC-42 for payments : New incident",
        1,
    )


@pytest.mark.parametrize(
    ("name", "source", "detail"),
    [
        # Templates run with StrictUndefined: a misspelt field is an error, not an empty string.
        pytest.param(
            "email.html.j2",
            "{{ incident.no_such_field }}",
            "template error: 'dict object' has no attribute 'no_such_field'",
            id="undefined-field",
        ),
        # An expression failing at run time (here a TypeError) is a template error too.
        pytest.param(
            "email.subject.j2",
            "{{ incident.alerts_firing + 'x' }}",
            "template error: unsupported operand type(s) for +: 'int' and 'str'",
            id="type-error",
        ),
        # The sandbox refuses unsafe attribute access.
        pytest.param(
            "email.text.j2",
            "{{ message.__class__.__mro__ }}",
            "template error: access to attribute '__class__' of 'Message' object is unsafe.",
            id="sandbox",
        ),
    ],
)
def test_broken_override_template_fails_permanently(
    mailbox: Mailbox, tmp_path: Path, name: str, source: str, detail: str
) -> None:
    # It would fail the same way on every retry; permanent lets the fallback channel act.
    (tmp_path / name).write_text(source)
    with smtp_server(mailbox) as port:
        delivery = email_channel(port, renderer=Renderer(tmp_path)).send(MESSAGE, now=NOW)

    assert delivery == Delivery(Outcome.PERMANENT, detail)
    assert mailbox.senders == []


@pytest.mark.parametrize(
    ("recipient", "to", "detail"),
    [
        # Nobody to page: the person has no address on this channel and the channel has no list.
        pytest.param(None, [], "no recipient", id="no-recipient"),
        # A person's address comes from the people file, not validated with the channel.
        pytest.param("not an address", [TEAM], "invalid recipient address", id="bad-person"),
        # CR/LF would let an address inject headers.
        pytest.param(
            "a@example.com\r\nBcc: x@evil.test",
            [TEAM],
            "invalid recipient address",
            id="header-injection",
        ),
    ],
)
def test_unusable_recipient_is_permanent_and_sends_nothing(
    mailbox: Mailbox, recipient: str | None, to: list[str], detail: str
) -> None:
    message = replace(MESSAGE, recipient=recipient)
    with smtp_server(mailbox) as port:
        delivery = email_channel(port, to=to).send(message, now=NOW)

    assert delivery == Delivery(Outcome.PERMANENT, detail)
    assert mailbox.senders == []


def test_naive_now_is_refused(mailbox: Mailbox) -> None:
    # The Date header needs a zone; a naive datetime is a bug upstream.
    with smtp_server(mailbox) as port, pytest.raises(ValueError, match="timezone-aware"):
        email_channel(port).send(MESSAGE, now=datetime(2025, 1, 1))
    assert mailbox.senders == []


def test_channel_protocol_and_repr_hide_the_password() -> None:
    channel = email_channel(25, password=PASSWORD, username=USERNAME)
    assert isinstance(channel, EmailChannel)
    as_protocol: Channel = channel
    assert (as_protocol.name, as_protocol.kind) == ("oncall-email", "email")
    assert PASSWORD not in repr(channel)
    assert repr(channel) == (
        "EmailChannel(name='oncall-email', smtp=127.0.0.1:25, security='none')"
    )


# --- security and authentication --------------------------------------------------------------


@dataclass(frozen=True)
class SecurityCase:
    server_tls: TLSMode
    security: Literal["starttls", "ssl", "none"]
    expected: Delivery
    password: str | None = PASSWORD
    auth_require_tls: bool = True
    trust_test_cert: bool = True
    logins: tuple[str, ...] = ()  # AUTH mechanisms the server saw succeed


@pytest.mark.parametrize(
    "case",
    [
        # The default: upgrade with STARTTLS, then AUTH (smtplib prefers PLAIN to LOGIN). The
        # server offers AUTH only over TLS, so success proves AUTH came after the upgrade.
        pytest.param(
            SecurityCase(
                "starttls",
                "starttls",
                Delivery(Outcome.DELIVERED, "SMTP 250", 250),
                logins=("PLAIN",),
            ),
            id="starttls-auth-plain",
        ),
        # Port 465 style: TLS from the first byte. (aiosmtpd counts only STARTTLS as TLS for
        # its AUTH-over-TLS rule, so that rule is off for this server.)
        pytest.param(
            SecurityCase(
                "implicit",
                "ssl",
                Delivery(Outcome.DELIVERED, "SMTP 250", 250),
                auth_require_tls=False,
                logins=("PLAIN",),
            ),
            id="implicit-tls-auth",
        ),
        # No credentials configured: no AUTH is attempted.
        pytest.param(
            SecurityCase(
                "starttls",
                "starttls",
                Delivery(Outcome.DELIVERED, "SMTP 250", 250),
                password=None,
            ),
            id="starttls-no-auth",
        ),
        # 535 is final: retrying the same password cannot succeed, and it is never quoted.
        pytest.param(
            SecurityCase(
                "starttls",
                "starttls",
                Delivery(
                    Outcome.PERMANENT,
                    "SMTP 535 at AUTH: 5.7.8 Authentication credentials invalid",
                    535,
                ),
                password="wrong-" + PASSWORD,
            ),
            id="wrong-password-535",
        ),
        # Same over a plain connection (security: none, server allowing AUTH without TLS).
        pytest.param(
            SecurityCase(
                "none",
                "none",
                Delivery(
                    Outcome.PERMANENT,
                    "SMTP 535 at AUTH: 5.7.8 Authentication credentials invalid",
                    535,
                ),
                password="wrong-" + PASSWORD,
                auth_require_tls=False,
            ),
            id="wrong-password-plain-535",
        ),
        # starttls is a requirement, not a wish: no clear-text fallback.
        pytest.param(
            SecurityCase(
                "none",
                "starttls",
                Delivery(
                    Outcome.PERMANENT,
                    "server does not offer STARTTLS; not sending in clear text",
                ),
            ),
            id="starttls-not-offered",
        ),
        # Credentials configured but the server offers no AUTH: a configuration mismatch.
        pytest.param(
            SecurityCase("none", "none", Delivery(Outcome.PERMANENT, "server does not offer AUTH")),
            id="auth-not-offered",
        ),
        # A certificate the system does not trust: a configuration problem, not a hiccup.
        pytest.param(
            SecurityCase(
                "starttls",
                "starttls",
                Delivery(
                    Outcome.PERMANENT,
                    "TLS certificate verification failed: self-signed certificate",
                ),
                trust_test_cert=False,
            ),
            id="untrusted-certificate",
        ),
        # security: ssl against a plain SMTP port: TLS reads the 220 greeting as garbage.
        pytest.param(
            SecurityCase(
                "none",
                "ssl",
                Delivery(Outcome.PERMANENT, "TLS handshake failed: WRONG_VERSION_NUMBER"),
            ),
            id="ssl-to-plain-port",
        ),
    ],
)
def test_security_and_authentication(
    mailbox: Mailbox,
    server_context: ssl.SSLContext,
    client_context: ssl.SSLContext,
    case: SecurityCase,
) -> None:
    with smtp_server(
        mailbox,
        tls=case.server_tls,
        server_context=server_context,
        auth_require_tls=case.auth_require_tls,
    ) as port:
        channel = email_channel(
            port,
            security=case.security,
            username=USERNAME if case.password is not None else None,
            password=case.password,
            ssl_context=client_context if case.trust_test_cert else None,
        )
        delivery = channel.send(MESSAGE, now=NOW)

    assert delivery == case.expected
    assert tuple(mailbox.logins) == case.logins
    if delivery.outcome is Outcome.DELIVERED:
        [received] = mailbox.received
        assert received.tls == (case.server_tls != "none")
    else:
        assert mailbox.received == []
        # Failing before MAIL FROM: nothing was offered to the server in clear text.
        assert mailbox.senders == []
    for form in PASSWORD_FORMS:
        assert form not in delivery.detail


def test_password_echoed_by_the_server_is_masked(mailbox: Mailbox) -> None:
    # A server quoting the credentials back (plain or base64) must not put them on the timeline.
    mailbox.data_reply = f"554 5.7.1 rejected for {' '.join(PASSWORD_FORMS)} ok"
    with smtp_server(mailbox, auth_require_tls=False) as port:
        delivery = email_channel(port, username=USERNAME, password=PASSWORD).send(MESSAGE, now=NOW)

    assert delivery == Delivery(
        Outcome.PERMANENT,
        "SMTP 554 at DATA: 5.7.1 rejected for ********** ********** ********** ok",
        554,
    )


# --- server replies ---------------------------------------------------------------------------

BOB = "bob@example.com"


@dataclass(frozen=True)
class ReplyCase:
    expected: Delivery
    mail_reply: str | None = None
    rcpt_replies: dict[str, str] = field(default_factory=dict)
    data_reply: str | None = None
    to: tuple[str, ...] = (TEAM,)
    delivered_to: tuple[str, ...] = ()


@pytest.mark.parametrize(
    "case",
    [
        # 4xx on RCPT is transient (greylisting, a full mailbox): try again later.
        pytest.param(
            ReplyCase(
                Delivery(Outcome.RETRY, "SMTP 451 at RCPT: 4.3.0 Try again later", 451),
                rcpt_replies={TEAM: "451 4.3.0 Try again later"},
            ),
            id="rcpt-451-retry",
        ),
        # 452: insufficient storage, also transient.
        pytest.param(
            ReplyCase(
                Delivery(Outcome.RETRY, "SMTP 452 at RCPT: 4.2.2 Mailbox full", 452),
                rcpt_replies={TEAM: "452 4.2.2 Mailbox full"},
            ),
            id="rcpt-452-retry",
        ),
        # RFC 5321 4.5.3.1.10: a 552 to RCPT is to be treated as 452.
        pytest.param(
            ReplyCase(
                Delivery(Outcome.RETRY, "SMTP 552 at RCPT: 5.5.3 Too many recipients", 552),
                rcpt_replies={TEAM: "552 5.5.3 Too many recipients"},
            ),
            id="rcpt-552-is-452",
        ),
        # 550: the mailbox does not exist; retrying cannot help.
        pytest.param(
            ReplyCase(
                Delivery(Outcome.PERMANENT, "SMTP 550 at RCPT: 5.1.1 Mailbox unavailable", 550),
                rcpt_replies={TEAM: "550 5.1.1 Mailbox unavailable"},
            ),
            id="rcpt-550-permanent",
        ),
        # Every recipient refused for good: permanent, and the count is said.
        pytest.param(
            ReplyCase(
                Delivery(
                    Outcome.PERMANENT,
                    "SMTP 550 at RCPT: 5.1.1 Mailbox unavailable (2 recipients refused)",
                    550,
                ),
                rcpt_replies={
                    TEAM: "550 5.1.1 Mailbox unavailable",
                    BOB: "553 5.1.3 Bad address",
                },
                to=(TEAM, BOB),
            ),
            id="rcpt-all-5xx-permanent",
        ),
        # Every recipient refused, one only for now: a retry may reach that one.
        pytest.param(
            ReplyCase(
                Delivery(
                    Outcome.RETRY,
                    "SMTP 450 at RCPT: 4.2.1 Try later (2 recipients refused)",
                    450,
                ),
                rcpt_replies={TEAM: "550 5.1.1 Mailbox unavailable", BOB: "450 4.2.1 Try later"},
                to=(TEAM, BOB),
            ),
            id="rcpt-any-4xx-retry",
        ),
        # Some recipients accepted: delivered (a retry would page them twice), refusals noted.
        pytest.param(
            ReplyCase(
                Delivery(Outcome.DELIVERED, "SMTP 250; 1 of 2 recipients refused (SMTP 550)", 250),
                rcpt_replies={TEAM: "550 5.1.1 Mailbox unavailable"},
                to=(TEAM, BOB),
                delivered_to=(BOB,),
            ),
            id="rcpt-partial-delivered",
        ),
        # MAIL FROM refused for now (sender rate limit): retry.
        pytest.param(
            ReplyCase(
                Delivery(Outcome.RETRY, "SMTP 451 at MAIL: 4.7.1 Rate limited", 451),
                mail_reply="451 4.7.1 Rate limited",
            ),
            id="mail-451-retry",
        ),
        # MAIL FROM refused for good (sender not allowed to relay): permanent.
        pytest.param(
            ReplyCase(
                Delivery(Outcome.PERMANENT, "SMTP 550 at MAIL: 5.7.1 Relaying denied", 550),
                mail_reply="550 5.7.1 Relaying denied",
            ),
            id="mail-550-permanent",
        ),
        # 451 after DATA: local processing error on the server, transient.
        pytest.param(
            ReplyCase(
                Delivery(Outcome.RETRY, "SMTP 451 at DATA: 4.3.0 Local error", 451),
                data_reply="451 4.3.0 Local error",
            ),
            id="data-451-retry",
        ),
        # 554 after DATA: rejected (spam, policy); the same message will be rejected again.
        pytest.param(
            ReplyCase(
                Delivery(Outcome.PERMANENT, "SMTP 554 at DATA: 5.7.1 Message rejected", 554),
                data_reply="554 5.7.1 Message rejected",
            ),
            id="data-554-permanent",
        ),
    ],
)
def test_server_replies_are_classified(mailbox: Mailbox, case: ReplyCase) -> None:
    mailbox.mail_reply = case.mail_reply
    mailbox.rcpt_replies = dict(case.rcpt_replies)
    mailbox.data_reply = case.data_reply
    with smtp_server(mailbox) as port:
        delivery = email_channel(port, to=list(case.to)).send(MESSAGE, now=NOW)

    assert delivery == case.expected
    assert [tuple(r.rcpt_tos) for r in mailbox.received] == (
        [case.delivered_to] if case.delivered_to else []
    )


# --- connection failures ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("greeting", "hang", "expected"),
    [
        # Nothing listens (server down, restarting): retry.
        pytest.param(None, None, Delivery(Outcome.RETRY, "connection refused"), id="refused"),
        # Connected, but no greeting within the timeout (overloaded server): retry.
        pytest.param(None, True, Delivery(Outcome.RETRY, "timeout at connect"), id="timeout"),
        # Connection closed before the greeting (a proxy in front of a dead server): retry.
        pytest.param(
            None,
            False,
            Delivery(Outcome.RETRY, "server disconnected at connect"),
            id="closed-before-greeting",
        ),
        # 421 greeting: the server is shutting down or too busy; retry.
        pytest.param(
            b"421 4.3.2 Service not available\r\n",
            False,
            Delivery(Outcome.RETRY, "SMTP 421 at connect: 4.3.2 Service not available", 421),
            id="greeting-421",
        ),
        # 554 greeting: "no SMTP service here" for this client; retrying will not change that.
        pytest.param(
            b"554 5.7.1 No SMTP service here\r\n",
            True,
            Delivery(Outcome.PERMANENT, "SMTP 554 at connect: 5.7.1 No SMTP service here", 554),
            id="greeting-554",
        ),
    ],
)
def test_connection_failures(greeting: bytes | None, hang: bool | None, expected: Delivery) -> None:
    with contextlib.ExitStack() as stack:
        if hang is None:
            port = free_port()
        else:
            port = stack.enter_context(bare_server(greeting, hang=hang))
        delivery = email_channel(port, timeout=0.3).send(MESSAGE, now=NOW)

    assert delivery == expected


# --- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "password", "problem"),
    [
        # The sender must be one address: it is the envelope's MAIL FROM.
        pytest.param({"sender": "pager"}, None, "from is not an email address", id="bad-from"),
        # Checked when the rules load, not at 3 a.m. when the page goes out.
        pytest.param({"to": [TEAM, "nobody"]}, None, "to[1] is not an email address", id="bad-to"),
        # A header break in a configured address would inject headers into every page.
        pytest.param(
            {"to": ["a@example.com\nBcc: x@evil.test"]},
            None,
            "to[0] is not an email address",
            id="to-header-injection",
        ),
        # The factory passes None when the secret could not be resolved.
        pytest.param(
            {"username": USERNAME},
            None,
            "username is set but the password did not resolve",
            id="unresolved-password",
        ),
        # timeout 0 would make smtplib's sockets non-blocking.
        pytest.param({"timeout": 0}, None, "timeout must be > 0 seconds", id="zero-timeout"),
        pytest.param({"smtp_host": " "}, None, "smtp_host is empty", id="empty-host"),
    ],
)
def test_unusable_settings_raise_config_error(
    changes: dict[str, Any], password: str | None, problem: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        email_channel(25, password=password, **changes)
    assert raised.value.problems == [f"channel 'oncall-email': {problem}"]


def _disconnected_by(cause: OSError) -> smtplib.SMTPServerDisconnected:
    """The exception smtplib raises when reading a reply fails with `cause`: raised inside its
    `except OSError`, so `cause` is the context."""
    exc = smtplib.SMTPServerDisconnected(f"Connection unexpectedly closed: {cause}")
    exc.__context__ = cause
    return exc


@pytest.mark.parametrize(
    ("exc", "step", "expected"),
    [
        # smtplib's own complaint when none of its mechanisms is offered: configuration.
        pytest.param(
            smtplib.SMTPException("No suitable authentication method found."),
            Step.AUTH,
            Delivery(Outcome.PERMANENT, "no AUTH mechanism in common with the server"),
            id="no-common-auth-mechanism",
        ),
        # Non-ASCII address to a server without SMTPUTF8: the same message never goes through.
        pytest.param(
            smtplib.SMTPNotSupportedError("SMTPUTF8 required"),
            Step.SEND,
            Delivery(Outcome.PERMANENT, "server does not support SMTPUTF8 (non-ASCII address)"),
            id="no-smtputf8",
        ),
        # A peer hanging up mid-handshake is a network event, unlike a failed handshake.
        pytest.param(
            ssl.SSLEOFError(8, "EOF occurred in violation of protocol"),
            Step.STARTTLS,
            Delivery(Outcome.RETRY, "connection closed during TLS at STARTTLS"),
            id="tls-eof",
        ),
        # smtplib turns a reset read into a disconnect; the detail names the reset.
        pytest.param(
            _disconnected_by(ConnectionResetError(104, "Connection reset by peer")),
            Step.SEND,
            Delivery(Outcome.RETRY, "connection reset at send"),
            id="reset-during-send",
        ),
        # DNS hiccups pass; a wrong host name keeps failing until retries run out.
        pytest.param(
            socket.gaierror(-3, "Temporary failure in name resolution"),
            Step.CONNECT,
            Delivery(Outcome.RETRY, "name resolution failed"),
            id="name-resolution",
        ),
        # Any other OS error: the OS's text (hosts, paths) is not quoted.
        pytest.param(
            OSError(113, "No route to host smtp.internal"),
            Step.CONNECT,
            Delivery(Outcome.RETRY, "network error at connect"),
            id="other-os-error",
        ),
    ],
)
def test_failures_no_test_server_produces(
    exc: smtplib.SMTPException | OSError, step: Step, expected: Delivery
) -> None:
    assert classify_error(exc, step) == expected
