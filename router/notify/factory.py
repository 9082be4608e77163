"""Channel objects from the channel settings in `rules/`, secrets resolved."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from router.channelschema import (
    ChannelConfig,
    EmailChannelConfig,
    LogChannelConfig,
    OpsgenieChannelConfig,
    PagerDutyChannelConfig,
    SlackChannelConfig,
    TeamsChannelConfig,
    WebhookChannelConfig,
)
from router.errors import ConfigError
from router.notify.base import Channel, ThreadStore
from router.notify.email import EmailChannel
from router.notify.log import LogChannel
from router.notify.msteams import TeamsChannel
from router.notify.opsgenie import OpsgenieChannel
from router.notify.pagerduty import PagerDutyChannel
from router.notify.render import Renderer
from router.notify.slack import SlackChannel
from router.notify.webhook import WebhookChannel
from router.schemabase import SecretRef
from router.secrets import Secret

SecretResolver = Callable[[SecretRef], Secret]


def build_channel(
    config: ChannelConfig,
    secret: SecretResolver,
    http: httpx.Client,
    threads: ThreadStore,
    renderer: Renderer,
) -> Channel:
    """The channel for one `channels:` entry. Raises ConfigError for unusable settings."""
    match config:
        case LogChannelConfig():
            return LogChannel(config.name)
        case WebhookChannelConfig():
            return WebhookChannel(
                config.name,
                secret(config.url),
                signing_secret=secret(config.signing_secret) if config.signing_secret else None,
                client=http,
                timeout=config.timeout,
            )
        case PagerDutyChannelConfig():
            return PagerDutyChannel(
                config, routing_key=secret(config.routing_key), client=http, renderer=renderer
            )
        case OpsgenieChannelConfig():
            return OpsgenieChannel(
                config, api_key=secret(config.api_key), client=http, renderer=renderer
            )
        case SlackChannelConfig():
            return SlackChannel(
                config,
                webhook_url=secret(config.webhook_url) if config.webhook_url else None,
                bot_token=secret(config.bot_token) if config.bot_token else None,
                client=http,
                threads=threads,
                renderer=renderer,
            )
        case TeamsChannelConfig():
            return TeamsChannel(config, url=secret(config.url), client=http, renderer=renderer)
        case EmailChannelConfig():
            password = secret(config.password) if config.password else None
            return EmailChannel(config, password=password, renderer=renderer)
    raise ConfigError([f"channels[{config.name}]: unknown channel type {config.type!r}"])
