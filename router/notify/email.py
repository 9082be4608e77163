"""The email channel: one multipart/alternative message per page, sent over SMTP.

The message has a plain-text and an HTML part rendered from `email.subject.j2`,
`email.text.j2` and `email.html.j2` (see `router.notify.render`; a file of the same name in
rules/templates replaces the shipped one). Besides the common context, templates see `what`
(the event in words, "New incident", "Resolved") and the body templates `subject`.

Headers, so that mail clients thread an incident without sevrouter storing anything:

    Message-ID   <INC-42.{digest of idempotency key}.{scope}@{sender domain}>: a retried
                 page keeps its id, so a receiver that saw the first attempt drops the repeat
    In-Reply-To  <INC-42.opened.{scope}@{sender domain}>, the same for every message about
    References   the incident: a shared parent that is never sent itself
    Auto-Submitted: auto-generated   (RFC 3834: no vacation auto-replies to the pager)

`scope` is a digest of the sender address, so a staging and a production router paging the
same mailbox (both count INC-1, INC-2, ...) neither thread nor deduplicate into each other.

Failures are classified where SMTP reports them: 4xx replies, timeouts and dropped connections
are retried; 5xx replies, TLS failures and a server that cannot do what the configuration
demands (STARTTLS, AUTH) are permanent. See `classify_error`.
"""

from __future__ import annotations

import base64
import hashlib
import re
import smtplib
import socket
import ssl
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import default as default_policy
from email.utils import format_datetime
from enum import StrEnum
from typing import Final

import jinja2

from router.channelschema import EmailChannelConfig
from router.errors import ConfigError
from router.notify.base import Delivery, Message, Outcome, body_excerpt
from router.notify.render import Renderer
from router.secrets import Secret

SUBJECT_TEMPLATE: Final = "email.subject.j2"
TEXT_TEMPLATE: Final = "email.text.j2"
HTML_TEMPLATE: Final = "email.html.j2"

# The event in words, for the templates' `what`; unknown events show as they are.
WHAT: Final[Mapping[str, str]] = {
    "incident.opened": "New incident",
    "incident.severity_raised": "Severity raised",
    "incident.reopened": "Incident reopened",
    "incident.escalated": "Escalated: not acknowledged",
    "incident.acknowledged": "Acknowledged",
    "incident.mitigated": "Mitigated",
    "incident.resolved": "Resolved",
    "incident.notify": "Update",
    "incident.reminder": "Reminder: still open",
}

# What a failing template raises: Jinja's own errors, and what its expressions can raise (the
# same list `router.templates.render` absorbs).
_TEMPLATE_FAILURES = (
    jinja2.TemplateError,
    TypeError,
    ValueError,
    ArithmeticError,
    LookupError,
    RecursionError,
)

# What may stand in the left part of a Message-ID (RFC 5322 dot-atom, conservatively).
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_DOMAIN = re.compile(r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")
_WHITESPACE = re.compile(r"\s+")


class Step(StrEnum):
    """Where in the SMTP conversation an attempt failed; named in `Delivery.detail`."""

    CONNECT = "connect"
    EHLO = "EHLO"
    STARTTLS = "STARTTLS"
    AUTH = "AUTH"
    SEND = "send"  # the mail transaction, when smtplib does not say which command failed
    MAIL = "MAIL"
    RCPT = "RCPT"
    DATA = "DATA"


class EmailChannel:
    """Sends each `Message` as one email. Satisfies `router.notify.base.Channel`.

    Recipients are `message.recipient` (the paged person's address) when set, else the
    channel's `to` list. `security` is honoured strictly: with `starttls`, a server that does
    not offer STARTTLS fails the page permanently rather than receiving it in clear text.
    `ssl_context` verifies the server (default: the system's CAs and hostname checking).
    `password` never appears in `repr` or `Delivery.detail`, even when the server echoes it.
    Unusable settings (bad addresses, a username without password, timeout <= 0) raise
    `ConfigError` here, not at send time.

    The SMTP conversation blocks for up to `config.timeout` seconds per socket operation;
    channels run in the worker, where that is fine.
    """

    kind: Final = "email"

    def __init__(
        self,
        config: EmailChannelConfig,
        *,
        password: Secret | None,
        renderer: Renderer,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.name = config.name
        self._sender = _validate(config, password)
        self._config = config
        self._password = password
        self._renderer = renderer
        self._ssl_context = ssl_context if ssl_context is not None else ssl.create_default_context()
        self._domain = _id_domain(self._sender)
        self._scope = _digest(self._sender.addr_spec.lower(), 4)
        self._redact = _auth_secrets(config.username, password)

    def __repr__(self) -> str:
        return (
            f"EmailChannel(name={self.name!r}, smtp={self._config.smtp_host}:"
            f"{self._config.smtp_port}, security={self._config.security!r})"
        )

    def send(self, message: Message, *, now: datetime) -> Delivery:
        """Compose and send `message` once and classify the outcome. Never raises for delivery
        failures. `now` (timezone-aware) is the Date header."""
        if now.tzinfo is None:
            # A naive datetime would be formatted as if it were UTC, or local: refuse it.
            raise ValueError("now must be timezone-aware")
        raw = [message.recipient] if message.recipient else list(self._config.to)
        if not raw:
            return Delivery(Outcome.PERMANENT, "no recipient")
        recipients = [_mailbox(value) for value in raw]
        if any(address is None for address in recipients):
            # Only the person's own address can get here: the channel's `to` was validated.
            return Delivery(Outcome.PERMANENT, "invalid recipient address")
        try:
            subject, text, html = self._render(message)
        except _TEMPLATE_FAILURES as exc:
            # An override template that fails will fail on every retry: let the fallback act.
            reason = body_excerpt(str(exc).encode()) or type(exc).__name__
            return Delivery(Outcome.PERMANENT, f"template error: {reason}")
        mail = self._compose(message, raw, subject, text, html, now=now)
        return self._transmit(mail, [address.addr_spec for address in recipients if address])

    def _render(self, message: Message) -> tuple[str, str, str]:
        """Subject, plain text and HTML of `message`."""
        what = WHAT.get(message.event, message.event)
        # Collapsed to one line: a template's stray newline must not become a header break.
        subject = _WHITESPACE.sub(
            " ", self._renderer.render(SUBJECT_TEMPLATE, message, what=what)
        ).strip()
        text = self._renderer.render(TEXT_TEMPLATE, message, what=what, subject=subject)
        html = self._renderer.render(HTML_TEMPLATE, message, what=what, subject=subject)
        return subject, text, html

    def _compose(
        self,
        message: Message,
        recipients: Sequence[str],
        subject: str,
        text: str,
        html: str,
        *,
        now: datetime,
    ) -> EmailMessage:
        mail = EmailMessage(policy=default_policy)
        mail["From"] = self._config.sender
        mail["To"] = ", ".join(recipients)
        mail["Subject"] = subject
        mail["Date"] = format_datetime(now)
        mail["Message-ID"] = self.message_id(message)
        thread = self.thread_id(message.incident)
        if thread is not None:
            # Every message, the first included, replies to the same never-sent parent: the
            # ids of real messages are per page, so the parent is the one anchor they share.
            mail["In-Reply-To"] = thread
            mail["References"] = thread
        mail["Auto-Submitted"] = "auto-generated"
        mail["X-Sevrouter-Event"] = message.event
        mail["X-Sevrouter-Idempotency-Key"] = message.idempotency_key
        mail.set_content(text)
        mail.add_alternative(html, subtype="html")
        return mail

    def message_id(self, message: Message) -> str:
        """The Message-ID of `message`: the same for every attempt of the same page."""
        incident = _id_atom(message.incident)
        key = _digest(message.idempotency_key, 10)
        left = f"{incident}.{key}" if incident else key
        return f"<{left}.{self._scope}@{self._domain}>"

    def thread_id(self, incident: str) -> str | None:
        """The id every message about `incident` refers to; None without an incident."""
        atom = _id_atom(incident)
        return f"<{atom}.opened.{self._scope}@{self._domain}>" if atom else None

    def _transmit(self, mail: EmailMessage, recipients: list[str]) -> Delivery:
        config = self._config
        step = Step.CONNECT
        smtp: smtplib.SMTP | None = None
        try:
            # Connecting in the constructor: smtplib closes the socket itself when the greeting
            # fails, and remembers the host for verifying the certificate after STARTTLS.
            if config.security == "ssl":
                smtp = smtplib.SMTP_SSL(
                    config.smtp_host,
                    config.smtp_port,
                    timeout=config.timeout,
                    context=self._ssl_context,
                )
            else:
                smtp = smtplib.SMTP(config.smtp_host, config.smtp_port, timeout=config.timeout)
            if config.security == "starttls":
                step = Step.STARTTLS
                # starttls() says EHLO and raises SMTPNotSupportedError when the answer lacks
                # STARTTLS. After the upgrade smtplib drops that clear-text answer and asks
                # again, so AUTH is chosen from what the server offers under encryption.
                smtp.starttls(context=self._ssl_context)
            if config.username is not None and self._password is not None:
                step = Step.AUTH
                smtp.login(config.username, self._password.reveal())
            step = Step.SEND
            refused = smtp.send_message(mail, from_addr=self._sender.addr_spec, to_addrs=recipients)
        except (smtplib.SMTPException, OSError) as exc:
            if smtp is not None:
                smtp.close()
            return classify_error(exc, step, redact=self._redact)
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            # DATA was accepted: the page is delivered, and a retry would page twice.
            smtp.close()
        if refused:
            # Some recipients got it; retrying would page them again. Say who did not.
            codes = sorted({str(code) for code, _ in refused.values()})
            return Delivery(
                Outcome.DELIVERED,
                f"SMTP 250; {len(refused)} of {len(recipients)} recipients refused "
                f"(SMTP {', '.join(codes)})",
                status_code=250,
            )
        return Delivery(Outcome.DELIVERED, "SMTP 250", status_code=250)


def classify_error(
    exc: smtplib.SMTPException | OSError, step: Step, *, redact: Collection[Secret] = ()
) -> Delivery:
    """Map a failed SMTP conversation onto an outcome; `detail` names the step and the reply.

    | failure                                             | outcome   |
    | --------------------------------------------------- | --------- |
    | 4xx reply (421, 450, 451, 452, 454 ...)             | RETRY     |
    | 5xx reply (535 auth, 550 mailbox, 554 ...)          | PERMANENT |
    | every recipient refused, all with 5xx               | PERMANENT |
    | every recipient refused, one at least with 4xx/552  | RETRY     |
    | some recipients refused, the others accepted        | DELIVERED |
    | server disconnected, connection refused or reset,   | RETRY     |
    | timeout, name resolution, TLS cut off (EOF)         |           |
    | STARTTLS or AUTH not offered, no common AUTH        | PERMANENT |
    | TLS certificate or handshake failure                | PERMANENT |

    (The partial refusal is `send`'s: it is not an exception.)
    The server's reply text is quoted (one line, secrets in `redact` masked); the text of an
    OS-level error never is, since it can carry host names and paths of no use on a timeline.
    """
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        replies = list(exc.recipients.values())
        # 552 to RCPT means "too many recipients" and is to be taken as 452 (RFC 5321 4.5.3.1.10)
        transient = [r for r in replies if not _permanent(r[0]) or r[0] == 552]
        code, text = transient[0] if transient else replies[0]
        delivery = _reply_delivery(code, text, Step.RCPT, redact)
        outcome = Outcome.RETRY if transient else Outcome.PERMANENT
        suffix = f" ({len(replies)} recipients refused)" if len(replies) > 1 else ""
        return Delivery(outcome, delivery.detail + suffix, status_code=code)
    if isinstance(exc, smtplib.SMTPResponseException):
        if isinstance(exc, smtplib.SMTPSenderRefused):
            step = Step.MAIL
        elif isinstance(exc, smtplib.SMTPDataError):
            step = Step.DATA
        elif isinstance(exc, smtplib.SMTPAuthenticationError):
            step = Step.AUTH
        elif isinstance(exc, smtplib.SMTPHeloError):
            step = Step.EHLO
        return _reply_delivery(exc.smtp_code, exc.smtp_error, step, redact)
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        # smtplib reports a read that timed out or was reset as a disconnect; say which.
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, TimeoutError | ConnectionResetError):
            return _os_error_delivery(cause, step)
        return Delivery(Outcome.RETRY, f"server disconnected at {step}")
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return Delivery(Outcome.PERMANENT, _NOT_SUPPORTED.get(step, f"not supported at {step}"))
    if isinstance(exc, smtplib.SMTPException):
        if step is Step.AUTH:
            # smtplib's "No suitable authentication method found."
            return Delivery(Outcome.PERMANENT, "no AUTH mechanism in common with the server")
        return Delivery(Outcome.RETRY, f"SMTP protocol error at {step}")
    return _os_error_delivery(exc, step)


_NOT_SUPPORTED: Final[Mapping[Step, str]] = {
    Step.STARTTLS: "server does not offer STARTTLS; not sending in clear text",
    Step.AUTH: "server does not offer AUTH",
    # smtplib refuses non-ASCII addresses to a server without SMTPUTF8.
    Step.SEND: "server does not support SMTPUTF8 (non-ASCII address)",
}


def _os_error_delivery(exc: OSError, step: Step) -> Delivery:
    # Subclasses before their bases: every ssl error and timeout is also an OSError.
    if isinstance(exc, TimeoutError):
        return Delivery(Outcome.RETRY, f"timeout at {step}")
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = exc.verify_message or "unknown reason"
        return Delivery(Outcome.PERMANENT, f"TLS certificate verification failed: {reason}")
    if isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError):
        # The peer hung up mid-TLS, like a reset connection: not a configuration problem.
        return Delivery(Outcome.RETRY, f"connection closed during TLS at {step}")
    if isinstance(exc, ssl.SSLError):
        # `reason` is OpenSSL's short code, WRONG_VERSION_NUMBER when TLS meets plain SMTP.
        return Delivery(Outcome.PERMANENT, f"TLS handshake failed: {exc.reason or 'TLS error'}")
    if isinstance(exc, ConnectionRefusedError):
        return Delivery(Outcome.RETRY, "connection refused")
    if isinstance(exc, ConnectionResetError):
        return Delivery(Outcome.RETRY, f"connection reset at {step}")
    if isinstance(exc, socket.gaierror):
        return Delivery(Outcome.RETRY, "name resolution failed")
    return Delivery(Outcome.RETRY, f"network error at {step}")


def _reply_delivery(
    code: int, text: bytes | str, step: Step, redact: Collection[Secret]
) -> Delivery:
    raw = text.encode(errors="replace") if isinstance(text, str) else text
    excerpt = body_excerpt(raw, redact=redact)
    detail = f"SMTP {code} at {step}: {excerpt}" if excerpt else f"SMTP {code} at {step}"
    outcome = Outcome.PERMANENT if _permanent(code) else Outcome.RETRY
    return Delivery(outcome, detail, status_code=code)


def _permanent(code: int) -> bool:
    # Anything but a 5xx (4xx, or a code no server should send) may succeed later.
    return 500 <= code < 600


def _auth_secrets(username: str | None, password: Secret | None) -> tuple[Secret, ...]:
    """The password as the server could echo it back: plain, and as AUTH PLAIN and AUTH LOGIN
    send it (base64)."""
    if password is None or not password.reveal():
        return ()
    plain = password.reveal()
    forms = [plain, base64.b64encode(plain.encode()).decode()]
    if username is not None:
        forms.append(base64.b64encode(f"\0{username}\0{plain}".encode()).decode())
    return tuple(Secret(form) for form in forms)


def _validate(config: EmailChannelConfig, password: Secret | None) -> Address:
    """Check what the schema cannot; return the parsed sender."""
    where = f"channel {config.name!r}"
    problems: list[str] = []
    sender = _mailbox(config.sender)
    if sender is None:
        problems.append(f"{where}: from is not an email address")
    problems.extend(
        f"{where}: to[{index}] is not an email address"
        for index, value in enumerate(config.to)
        if _mailbox(value) is None
    )
    if not config.smtp_host.strip():
        problems.append(f"{where}: smtp_host is empty")
    if config.username is not None and password is None:
        problems.append(f"{where}: username is set but the password did not resolve")
    if not config.timeout > 0:
        problems.append(f"{where}: timeout must be > 0 seconds")
    if problems or sender is None:
        raise ConfigError(problems)
    return sender


def _mailbox(value: str) -> Address | None:
    """`value` ("a@b.example" or "Name <a@b.example>") as one address, None if it is not one."""
    if not value or "\r" in value or "\n" in value:
        return None
    try:
        header = default_policy.header_factory("To", value)
    except (ValueError, IndexError, TypeError):
        # The header parser raises on some malformed input instead of recording a defect.
        return None
    addresses: tuple[Address, ...] = header.addresses
    if header.defects or len(addresses) != 1:
        return None
    address = addresses[0]
    return address if address.username and address.domain else None


def _id_domain(sender: Address) -> str:
    # The right part of a message id: the sender's domain when it is plain ASCII.
    domain = sender.domain.lower()
    return domain if _DOMAIN.fullmatch(domain) else "sevrouter.invalid"


def _id_atom(incident: str) -> str:
    return _ID_UNSAFE.sub("-", incident).strip("-")[:64]


def _digest(text: str, size: int) -> str:
    return hashlib.blake2b(text.encode(), digest_size=size).hexdigest()
