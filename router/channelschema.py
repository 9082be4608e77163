"""Settings of each channel type in `rules/` (`channels:`), a union told apart by `type`.

Every URL that embeds a token, every API key and password is a `SecretRef`. A channel may name a
`fallback` channel, used when it fails permanently (a 4xx, or retries exhausted).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from router.schemabase import Duration, Name, SecretRef, Strict
from router.severity import Severity


class RateLimit(Strict):
    """At most `per_second` messages a second on average, with bursts of `burst`."""

    per_second: float = Field(gt=0)
    burst: int = Field(default=1, ge=1)


class ChannelBase(Strict):
    name: Name
    fallback: Name | None = None
    # Seconds for each phase of one HTTP attempt (connect, write, each read).
    timeout: Duration = 10.0
    # None: the type's default (DEFAULT_RATE_LIMITS), the documented limit of the real API.
    rate_limit: RateLimit | None = None


class LogChannelConfig(ChannelBase):
    type: Literal["log"]


class WebhookChannelConfig(ChannelBase):
    type: Literal["webhook"]
    url: SecretRef
    signing_secret: SecretRef | None = None


class SlackChannelConfig(ChannelBase):
    """An incoming webhook, or a bot token posting with chat.postMessage (threads replies)."""

    type: Literal["slack"]
    webhook_url: SecretRef | None = None
    bot_token: SecretRef | None = None
    # Required with bot_token: a channel id (C0123) or name (#sre-incidents).
    channel: str | None = None
    # Base URL of Slack's Web API; changed only for tests or an enterprise proxy.
    api_url: str = "https://slack.com/api"

    @model_validator(mode="after")
    def _one_way_in(self) -> SlackChannelConfig:
        if (self.webhook_url is None) == (self.bot_token is None):
            raise ValueError("give exactly one of webhook_url or bot_token")
        if self.bot_token is not None and not self.channel:
            raise ValueError("bot_token needs channel: the Slack channel to post to")
        return self


PagerDutySeverity = Literal["critical", "error", "warning", "info"]


class PagerDutyChannelConfig(ChannelBase):
    type: Literal["pagerduty"]
    routing_key: SecretRef
    # EU accounts use https://events.eu.pagerduty.com/v2/enqueue.
    url: str = "https://events.pagerduty.com/v2/enqueue"
    severity_map: dict[Severity, PagerDutySeverity] = Field(
        default_factory=lambda: {  # type: ignore[arg-type] # literal values, inferred as str
            Severity.SEV1: "critical",
            Severity.SEV2: "critical",
            Severity.SEV3: "warning",
            Severity.SEV4: "info",
        }
    )


class OpsgenieResponder(Strict):
    type: Literal["team", "user", "escalation", "schedule"]
    name: str


class OpsgenieChannelConfig(ChannelBase):
    type: Literal["opsgenie"]
    api_key: SecretRef
    # EU accounts use https://api.eu.opsgenie.com.
    url: str = "https://api.opsgenie.com"
    responders: list[OpsgenieResponder] = Field(default_factory=list)
    priority_map: dict[Severity, Literal["P1", "P2", "P3", "P4", "P5"]] = Field(
        default_factory=lambda: {  # type: ignore[arg-type] # literal values, inferred as str
            Severity.SEV1: "P1",
            Severity.SEV2: "P2",
            Severity.SEV3: "P3",
            Severity.SEV4: "P4",
        }
    )


class TeamsChannelConfig(ChannelBase):
    """A Microsoft Teams Workflows ("When a Teams webhook request is received") URL."""

    type: Literal["msteams"]
    url: SecretRef


class EmailChannelConfig(ChannelBase):
    type: Literal["email"]
    smtp_host: str
    smtp_port: int = Field(default=587, ge=1, le=65535)
    # STARTTLS upgrades the connection before authenticating; `ssl` connects with TLS at once.
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: str | None = None
    password: SecretRef | None = None
    sender: str = Field(alias="from")
    # Default recipients; a person's own address replaces them when the person is paged.
    to: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _auth_pair(self) -> EmailChannelConfig:
        if (self.username is None) != (self.password is None):
            raise ValueError("give both username and password, or neither")
        return self


ChannelConfig = Annotated[
    LogChannelConfig
    | WebhookChannelConfig
    | SlackChannelConfig
    | PagerDutyChannelConfig
    | OpsgenieChannelConfig
    | TeamsChannelConfig
    | EmailChannelConfig,
    Field(discriminator="type"),
]

# Secret-bearing fields per channel, resolved when a rule set is compiled.
SECRET_FIELDS = (
    "url",
    "signing_secret",
    "webhook_url",
    "bot_token",
    "routing_key",
    "api_key",
    "password",
)

# The real APIs' documented limits, so a burst of incidents is spread out instead of answered
# with 429s: Slack about 1 message/s per channel or webhook, PagerDuty 120 events/min per
# integration key, Teams Workflows about 4 requests/s per flow. Opsgenie, email, webhooks and
# logs have no default.
DEFAULT_RATE_LIMITS = {
    "slack": RateLimit(per_second=1.0, burst=3),
    "pagerduty": RateLimit(per_second=2.0, burst=10),
    "msteams": RateLimit(per_second=4.0, burst=4),
}


def rate_limit(config: ChannelConfig) -> RateLimit | None:
    return config.rate_limit or DEFAULT_RATE_LIMITS.get(config.type)
