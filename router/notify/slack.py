"""Slack: an incoming webhook, or a bot token posting with `chat.postMessage` (FORMATS.md 3.3).

Both modes post the same content, rendered from two templates (overridable, see
`router.notify.render`):

* `slack.text.j2`: the top-level `text`, Slack mrkdwn. Mobile notifications, screen readers and
  clients without Block Kit show only this, so it is always sent.
* `slack.blocks.j2`: a JSON array of Block Kit blocks. Besides `router.notify.render.context`,
  it sees `mention` (`"<@U012AB3CD>"` when a person is paged, else `""`) and `mrkdwn(s)`, which
  escapes Slack's control characters in user-provided text.

A paged person (`Message.recipient`, a Slack member id) is mentioned at the start of `text` by
the channel itself, so an overridden template cannot drop the mention that notifies them.
Slack's size limits are enforced after rendering (`fit_text`, `fit_blocks`), whatever the
templates produce.

Only the bot mode threads: the first message about an incident becomes its thread, later ones
reply in it (see `SlackChannel`). Incoming webhooks do not return the message's `ts`.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from typing import Any, Final

import httpx
import jinja2

from router.channelschema import SlackChannelConfig
from router.errors import ConfigError
from router.notify._http import USER_AGENT, read_capped
from router.notify.base import (
    RESOLVE_EVENTS,
    Delivery,
    Message,
    Outcome,
    ThreadStore,
    body_excerpt,
    classify_response,
    classify_transport_error,
    parse_retry_after,
)
from router.notify.render import Renderer

# A package-internal helper: the generic webhook's URL validation also yields every form of the
# URL's token that an error body might echo.
from router.notify.webhook import _validate as _validate_url
from router.secrets import Secret

TEXT_TEMPLATE: Final = "slack.text.j2"
BLOCKS_TEMPLATE: Final = "slack.blocks.j2"

# Slack's documented limits (FORMATS.md 3.3; Block Kit reference). Slack itself truncates `text`
# silently and rejects the whole message (`invalid_blocks`) for an oversized block, so a long
# alert summary would otherwise cost the page.
MAX_TEXT_CHARS: Final = 40_000
MAX_BLOCKS: Final = 50
MAX_SECTION_CHARS: Final = 3_000
MAX_FIELD_CHARS: Final = 2_000
MAX_FIELDS: Final = 10
MAX_HEADER_CHARS: Final = 150
ELLIPSIS: Final = "\u2026"

# chat.postMessage echoes the posted message (up to 40,000 chars of text and 50 blocks, JSON
# escaped) in its reply, and the reply must be read whole to find `ok` and `ts`.
MAX_API_RESPONSE_BYTES: Final = 2 * 1024 * 1024

# Slack Web API error codes worth another attempt; every other code (channel_not_found,
# not_in_channel, invalid_auth, token_revoked, msg_too_long, invalid_blocks, ...) fails the
# same way however often it is repeated.
RETRYABLE_ERRORS: Final = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)

# User ids (U...) and Enterprise Grid ids (W...): anything else cannot be mentioned.
_MEMBER_ID = re.compile(r"[UW][A-Z0-9]{2,}")
# A bot token goes into the Authorization header: CR/LF or spaces would corrupt the request.
_TOKEN = re.compile(r"[\x21-\x7e]+")
# Part of an entity a cut may leave at the end of mrkdwn ("&am"), which Slack would show as
# typed. (An opened "<https://exa..." sequence is dropped by `fit_text` as well.)
_PARTIAL_ENTITY = re.compile(r"&(?:a|am|amp|l|lt|g|gt)?$")


class RenderError(Exception):
    """A Slack template failed to render or rendered something that is not Block Kit."""

    def __init__(self, template: str, reason: str) -> None:
        super().__init__(f"{template}: {reason}")
        self.template = template
        self.reason = reason


class SlackChannel:
    """Posts each `Message` to Slack. Satisfies `router.notify.base.Channel`.

    Exactly one of `webhook_url` (incoming webhook mode) and `bot_token` (`chat.postMessage` to
    `config.channel` at `config.api_url`) is given, matching `config`; `ConfigError` otherwise,
    and for an unusable URL, token or timeout. Neither secret ever appears in `repr`,
    `Delivery.detail` or exceptions. `client` is shared (pooling); redirects are never followed.

    Threading (bot mode, messages with an `incident`): when `threads` has no handle for
    (`config.name`, incident), the message is posted to the channel and the `ts` Slack answers
    with is stored as the handle; otherwise it is posted as a reply with `thread_ts`, and
    resolve/mitigate replies are also broadcast to the channel. Errors of `threads` itself
    propagate: they are the store's, not Slack's.
    """

    kind: Final = "slack"

    def __init__(
        self,
        config: SlackChannelConfig,
        *,
        webhook_url: Secret | None,
        bot_token: Secret | None,
        client: httpx.Client,
        threads: ThreadStore,
        renderer: Renderer,
    ) -> None:
        name = config.name
        self.name = name
        self._client = client
        self._threads = threads
        self._renderer = renderer
        self._timeout = httpx.Timeout(config.timeout)
        self._bot_token: Secret | None = None
        self._slack_channel = config.channel or ""
        if webhook_url is not None and bot_token is None and config.webhook_url is not None:
            # What an error body must never echo into `Delivery.detail`.
            self._redact = _validate_url(name, webhook_url, config.timeout)
            self._endpoint = webhook_url.reveal()
        elif bot_token is not None and webhook_url is None and config.bot_token is not None:
            _validate_bot(name, bot_token, config)
            self._bot_token = bot_token
            self._redact = (bot_token,)
            self._endpoint = config.api_url.rstrip("/") + "/chat.postMessage"
        else:
            raise ConfigError(
                [f"channel {name!r}: give exactly one of webhook_url or bot_token, as configured"]
            )

    def __repr__(self) -> str:
        mode = "webhook" if self._bot_token is None else "bot"
        return f"SlackChannel(name={self.name!r}, mode={mode!r})"

    def send(self, message: Message, *, now: datetime) -> Delivery:
        """Post `message` once and classify the answer. Never raises for delivery failures.

        `now` (timezone-aware) is the reference for an HTTP-date Retry-After. A recipient that
        is not a Slack member id, or a template that fails or renders invalid blocks, is a
        configuration problem: `PERMANENT` without a request, so the fallback channel takes
        over.
        """
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        if message.recipient is not None and not _MEMBER_ID.fullmatch(message.recipient):
            return Delivery(Outcome.PERMANENT, "recipient is not a Slack member id (U...)")
        try:
            text, blocks = render_content(self._renderer, message)
        except RenderError as problem:
            reason = body_excerpt(problem.reason.encode())
            return Delivery(Outcome.PERMANENT, f"template {problem.template}: {reason}")
        if self._bot_token is None:
            return self._post_webhook(text, blocks, now=now)
        return self._post_message(message, text, blocks, self._bot_token, now=now)

    def _post_webhook(self, text: str, blocks: list[dict[str, Any]], *, now: datetime) -> Delivery:
        body = _encode({"text": text, "blocks": blocks})
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        try:
            with self._stream(body, headers) as response:
                excerpt = read_capped(response)
        except httpx.TransportError as exc:
            return classify_transport_error(exc)
        return classify_response(response, now=now, body=excerpt, redact=self._redact)

    def _post_message(
        self,
        message: Message,
        text: str,
        blocks: list[dict[str, Any]],
        token: Secret,
        *,
        now: datetime,
    ) -> Delivery:
        # An empty handle is as good as none: Slack would reject thread_ts "".
        thread_ts = self._threads.get(self.name, message.incident) if message.incident else None
        thread_ts = thread_ts or None
        document: dict[str, Any] = {"channel": self._slack_channel, "text": text, "blocks": blocks}
        if thread_ts is not None:
            document["thread_ts"] = thread_ts
            if message.event in RESOLVE_EVENTS:
                # Everyone in the channel learns the incident is over, not only the thread.
                document["reply_broadcast"] = True
        document["unfurl_links"] = False
        headers = {
            "Authorization": f"Bearer {token.reveal()}",
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": USER_AGENT,
        }
        try:
            with self._stream(_encode(document), headers) as response:
                raw = read_capped(response, MAX_API_RESPONSE_BYTES)
        except httpx.TransportError as exc:
            return classify_transport_error(exc)
        delivery, ts = classify_api_reply(response, raw, now=now, redact=self._redact)
        if delivery.outcome is Outcome.DELIVERED and thread_ts is None and message.incident and ts:
            self._threads.set(self.name, message.incident, ts)
        return delivery

    @contextlib.contextmanager
    def _stream(self, body: bytes, headers: dict[str, str]) -> Iterator[httpx.Response]:
        with self._client.stream(
            "POST",
            self._endpoint,
            content=body,
            headers=headers,
            timeout=self._timeout,
            follow_redirects=False,
        ) as response:
            yield response


def render_content(renderer: Renderer, message: Message) -> tuple[str, list[dict[str, Any]]]:
    """The `text` and `blocks` to post for `message`, within Slack's limits.

    Raises `RenderError` when a template fails or the blocks are not a JSON array of
    objects.
    """
    mention = f"<@{message.recipient}>" if message.recipient else ""
    extra = {"mention": mention, "mrkdwn": escape_mrkdwn}
    rendered_text = _render(renderer, TEXT_TEMPLATE, message, extra).strip()
    text = fit_text(f"{mention} {rendered_text}".strip(), MAX_TEXT_CHARS)
    source = _render(renderer, BLOCKS_TEMPLATE, message, extra)
    try:
        blocks = json.loads(source)
    except ValueError as exc:
        raise RenderError(BLOCKS_TEMPLATE, f"not JSON: {exc}") from None
    if not isinstance(blocks, list) or not all(isinstance(block, dict) for block in blocks):
        raise RenderError(BLOCKS_TEMPLATE, "must render a JSON array of block objects")
    return text, fit_blocks(blocks)


def _render(renderer: Renderer, name: str, message: Message, extra: dict[str, Any]) -> str:
    try:
        return renderer.render(name, message, **extra)
    except jinja2.TemplateError as exc:
        raise RenderError(name, f"{type(exc).__name__}: {exc}") from None


def escape_mrkdwn(value: object) -> str:
    """`value` as text Slack shows literally: `&`, `<` and `>` become entities.

    Those three are Slack's only control characters; unescaped, an alert title could carry
    `<!channel>` (notifying everyone) or a disguised link `<https://evil|runbook>`. Bold and
    italics markers are left alone: they cannot ping or mislead.
    """
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def fit_text(text: str, limit: int) -> str:
    """`text` (mrkdwn) cut to at most `limit` characters, ending with an ellipsis if cut.

    The cut never leaves half an entity or an unclosed `<...` sequence behind.
    """
    if len(text) <= limit:
        return text
    cut = _PARTIAL_ENTITY.sub("", text[: limit - len(ELLIPSIS)])
    if cut.rfind("<") > cut.rfind(">"):
        cut = cut[: cut.rfind("<")]
    return cut + ELLIPSIS


def fit_blocks(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`blocks` within Slack's limits: at most 50, headers 150 characters, section text 3,000,
    up to 10 section fields of 2,000. Modifies the blocks in place; returns the kept ones.

    The first blocks are kept: templates put the headline and the state first.
    """
    kept = blocks[:MAX_BLOCKS]
    for block in kept:
        if block.get("type") == "header":
            _fit_text_object(block.get("text"), MAX_HEADER_CHARS)
        elif block.get("type") == "section":
            _fit_text_object(block.get("text"), MAX_SECTION_CHARS)
            fields = block.get("fields")
            if isinstance(fields, list):
                block["fields"] = fields[:MAX_FIELDS]
                for text_object in block["fields"]:
                    _fit_text_object(text_object, MAX_FIELD_CHARS)
    return kept


def _fit_text_object(text_object: object, limit: int) -> None:
    if isinstance(text_object, dict) and isinstance(text_object.get("text"), str):
        text: str = text_object["text"]
        if text_object.get("type") == "mrkdwn":
            text_object["text"] = fit_text(text, limit)
        elif len(text) > limit:
            # plain_text has no markup to keep whole.
            text_object["text"] = text[: limit - len(ELLIPSIS)] + ELLIPSIS


def classify_api_reply(
    response: httpx.Response, body: bytes, *, now: datetime, redact: tuple[Secret, ...] = ()
) -> tuple[Delivery, str | None]:
    """Classify a Slack Web API answer; also return the posted message's `ts` when delivered.

    Slack answers errors with HTTP 200 and `{"ok": false, "error": "<code>"}`, so `ok` decides,
    not the status: `RETRYABLE_ERRORS` are retried (with Retry-After), every other code is
    permanent with the code (and Slack's explanation, if any) in `detail`. A 2xx whose body is
    not a Slack reply (a proxy's login page, a wrong `api_url`) is permanent too. Other statuses
    are classified as HTTP (`classify_response`), naming the Slack error code when there is one.
    """
    code = response.status_code
    reply = _json_object(body)
    error = reply.get("error") if reply is not None else None
    error_detail = (
        _error_detail(code, reply, redact) if reply is not None and isinstance(error, str) else None
    )
    if not 200 <= code < 300:
        delivery = classify_response(response, now=now, body=body, redact=redact)
        return (replace(delivery, detail=error_detail) if error_detail else delivery), None
    if reply is None or not isinstance(reply.get("ok"), bool):
        return Delivery(
            Outcome.PERMANENT, f"HTTP {code}: not a Slack Web API reply", status_code=code
        ), None
    if reply["ok"]:
        ts = reply.get("ts")
        return Delivery(Outcome.DELIVERED, f"HTTP {code}", status_code=code), (
            ts if isinstance(ts, str) and ts else None
        )
    detail = error_detail or f"HTTP {code}: unknown error"
    if error in RETRYABLE_ERRORS:
        retry_after = parse_retry_after(response.headers.get("Retry-After"), now=now)
        return Delivery(Outcome.RETRY, detail, status_code=code, retry_after=retry_after), None
    return Delivery(Outcome.PERMANENT, detail, status_code=code), None


def _error_detail(code: int, reply: dict[str, Any], redact: tuple[Secret, ...]) -> str:
    # invalid_blocks and friends explain themselves in response_metadata.messages
    # ("[ERROR] must be less than 3001 characters [json-pointer:/blocks/1/text/text]").
    text = str(reply["error"])
    metadata = reply.get("response_metadata")
    messages = metadata.get("messages") if isinstance(metadata, dict) else None
    if isinstance(messages, list) and messages:
        text += " (" + "; ".join(str(item) for item in messages) + ")"
    return f"HTTP {code}: {body_excerpt(text.encode(), redact=redact)}"


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        document = json.loads(body)
    except ValueError:  # also UnicodeDecodeError
        return None
    return document if isinstance(document, dict) else None


def _validate_bot(name: str, token: Secret, config: SlackChannelConfig) -> None:
    problems: list[str] = []
    if not _TOKEN.fullmatch(token.reveal()):
        # Never quote the token, not even a part of it.
        problems.append(f"channel {name!r}: bot_token must be visible ASCII without spaces")
    if not config.channel:
        problems.append(f"channel {name!r}: bot_token needs channel: the Slack channel to post to")
    try:
        api = httpx.URL(config.api_url)
    except httpx.InvalidURL:
        problems.append(f"channel {name!r}: api_url is not a valid URL")
    else:
        if api.scheme not in ("http", "https") or not api.host:
            problems.append(
                f"channel {name!r}: api_url must be an absolute http:// or https:// URL"
            )
    if not config.timeout > 0:
        problems.append(f"channel {name!r}: timeout must be > 0 seconds")
    if problems:
        raise ConfigError(problems)


def _encode(document: dict[str, Any]) -> bytes:
    # allow_nan=False: NaN is not JSON; Slack would answer invalid_payload.
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
