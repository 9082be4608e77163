"""Redis clients from `REDIS_URL`: one Redis, TLS, a unix socket, or a primary found through
Redis Sentinel.

URLs and their options are described in `router/redisurl.py`.

The client asks the sentinels for the current primary whenever it opens a connection (also
when a command is retried: redis-py itself would reconnect to the old address). When a failover
happens, connections to the old primary fail (it died), or it answers `READONLY` (demoted to a
replica), `UNBLOCKED` (a blocking command it was serving was cut short by the demotion) or
`NOREPLICAS` (it lost its replicas, as an old primary does once a replica has been promoted, if
it runs with `min-replicas-to-write`). Each of those closes the connection and raises a
`redis.exceptions.ConnectionError`, and the command is retried on a fresh connection to
whichever server the sentinels now name as primary.

A deposed primary that nobody told (`SENTINEL FAILOVER` leaves it running; the sentinels demote
it some ten seconds later) keeps accepting writes that are then lost: run Redis with
`min-replicas-to-write 1` and at least two replicas (after a failover the new primary needs a
replica of its own), and let the receiver wait for a replica (SEVROUTER_REDIS_WAIT_REPLICAS=1).

Timeouts are short on purpose: when the primary is gone, commands fail within a second or so
(the receiver answers 503 and the sender retries) instead of hanging. A blocking command
(BLMOVE, BLPOP, XREADGROUP BLOCK, WAIT, ...) gets its own time limit added to `socket_timeout`,
so it is neither cut short nor left without a limit. TCP keepalive probes an idle connection
after 5 s, so a primary that vanished without closing its sockets (a host or network failure)
is noticed within about 11 s even by a client waiting in a blocking command.

Unknown options, a missing service name, a port or db that is not a number, and the like are
rejected with a `RedisURLError` (a `ValueError`) naming the problem; messages never include the
password.
"""

from __future__ import annotations

import math
import socket
import time
from collections.abc import Callable
from typing import Any, Final, TypeVar

import redis
import redis.asyncio
from redis.asyncio.connection import AbstractConnection as AsyncAbstractConnection
from redis.asyncio.connection import Connection as AsyncConnection
from redis.asyncio.connection import SSLConnection as AsyncSSLConnection
from redis.asyncio.connection import UnixDomainSocketConnection as AsyncUnixDomainSocketConnection
from redis.asyncio.retry import Retry as AsyncRetry
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.asyncio.sentinel import SentinelConnectionPool as AsyncSentinelConnectionPool
from redis.asyncio.sentinel import SentinelManagedConnection as AsyncSentinelManagedConnection
from redis.backoff import EqualJitterBackoff, NoBackoff
from redis.connection import (
    AbstractConnection,
    Connection,
    SSLConnection,
    UnixDomainSocketConnection,
)
from redis.exceptions import ConnectionError, ResponseError
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool, SentinelManagedConnection

from router.redisurl import RedisTarget, parse_url

T = TypeVar("T")

# How long a worker keeps retrying Redis through an outage before a command fails: longer than
# a Sentinel failover (down-after-milliseconds, 30 s by default, plus the election).
WORKER_RETRY_SECONDS: Final = 60.0

# Retry backoff: half to all of min(cap, base * 2**failures) seconds.
_BACKOFF_BASE = 0.05
_BACKOFF_CAP = 0.5
# Dead-peer detection on idle connections (also those waiting in BLMOVE / XREADGROUP BLOCK):
# first probe after 5 s of silence, then every 2 s, give up after 3 unanswered probes.
_KEEPALIVE: Final = {
    option: value
    for name, value in (("TCP_KEEPIDLE", 5), ("TCP_KEEPINTVL", 2), ("TCP_KEEPCNT", 3))
    if (option := getattr(socket, name, None)) is not None
}
# Error replies that mean "this server is no longer the primary you want": see the docstring.
# (READONLY is handled the same way by redis-py itself.)
_STALE_PRIMARY_REPLIES: Final = ("UNBLOCKED", "NOREPLICAS")


class StalePrimaryError(ConnectionError):
    """The server a primary connection reached no longer acts as the primary."""


# --- connections ----------------------------------------------------------------------------

# Commands the server may answer only after waiting: where their time limit is, and its unit.
_LAST_ARG_SECONDS: Final = frozenset(
    {"BLPOP", "BRPOP", "BLMOVE", "BRPOPLPUSH", "BZPOPMIN", "BZPOPMAX"}
)
_FIRST_ARG_SECONDS: Final = frozenset({"BLMPOP", "BZMPOP"})


def _word(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _blocks_for(args: tuple[Any, ...]) -> float | None:
    """How long the server may hold back the reply to this command, in seconds: None for a
    command that answers at once, `math.inf` for one told to wait forever."""
    if not args:
        return None
    name = _word(args[0]).upper()
    try:
        if name in _LAST_ARG_SECONDS:
            seconds = float(_word(args[-1]))
        elif name in _FIRST_ARG_SECONDS:
            seconds = float(_word(args[1]))
        elif name == "WAIT":
            seconds = float(_word(args[-1])) / 1000
        elif name in ("XREAD", "XREADGROUP"):
            # Options come before STREAMS; XREADGROUP's GROUP <group> <consumer> first.
            index = 4 if name == "XREADGROUP" else 1
            while index < len(args) - 1 and _word(args[index]).upper() != "STREAMS":
                if _word(args[index]).upper() == "BLOCK":
                    break
                index += 1
            else:
                return None
            seconds = float(_word(args[index + 1])) / 1000
        else:
            return None
    except (IndexError, ValueError, UnicodeDecodeError):
        return None
    return math.inf if seconds == 0 else seconds


class _Timeouts(AbstractConnection):
    """What our connections add to redis-py's, for every scheme:

    - The reply to a blocking command (rq's BLMOVE for up to 405 s, XREADGROUP BLOCK, WAIT) is
      awaited for the command's own time limit plus the read timeout; every other reply for the
      read timeout. rq instead raises the whole pool's socket_timeout to ~415 s when a Worker is
      created, which leaves connections made earlier (the pump's) cutting BLMOVE short every 5 s
      (rq then backs off for up to a minute), and every later command waiting 415 s on a hung
      server; so the pool's socket_timeout is ignored in favour of `read_timeout`.
    - A broken connection reconnects with one attempt per attempt of the command: redis-py
      would nest its connect retries inside the command's retries.
    """

    def __init__(self, *, read_timeout: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.socket_timeout = read_timeout
        self._reply_within: float | None = None

    def send_command(self, *args: Any, **kwargs: Any) -> None:
        super().send_command(*args, **kwargs)  # type: ignore[no-untyped-call]
        blocks = _blocks_for(args)
        read_timeout = self.socket_timeout
        self._reply_within = (
            None if blocks is None or read_timeout is None else blocks + read_timeout
        )

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        within, self._reply_within = self._reply_within, None
        if within is not None and "timeout" not in kwargs:
            kwargs["timeout"] = None if within == math.inf else within
        return super().read_response(*args, **kwargs)

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if not self._sock:
            self._connect_once()
        super().send_packed_command(command, check_health)  # type: ignore[no-untyped-call]

    def _connect_once(self) -> None:
        self.connect_check_health(check_health=False, retry_socket_connect=False)


class _TCPConnection(_Timeouts, Connection):
    pass


class _TLSConnection(_Timeouts, SSLConnection):
    pass


class _UnixConnection(_Timeouts, UnixDomainSocketConnection):
    pass


def _is_stale_primary(exc: ResponseError) -> bool:
    return str(exc).startswith(_STALE_PRIMARY_REPLIES)


class _PrimaryConnection(_Timeouts, SentinelManagedConnection):
    """A connection to whichever server the sentinels name as primary.

    redis-py asks the sentinels only when the pool hands out a connection; a command retried on
    the same connection would reconnect to the old address. Here every (re)connection asks. And
    UNBLOCKED or NOREPLICAS from a primary connection, like READONLY in redis-py, mean the server
    is no longer the primary: disconnect and raise a ConnectionError, which the retry policy
    (and rq's dequeue loop) handle.
    """

    def _connect_once(self) -> None:
        self._connect_retry()  # type: ignore[no-untyped-call]

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().read_response(*args, **kwargs)
        except ResponseError as exc:
            if self.connection_pool.is_master and _is_stale_primary(exc):
                self.disconnect()  # type: ignore[no-untyped-call]
                raise StalePrimaryError(f"the primary is gone: {exc}") from exc
            raise


class _AsyncTimeouts(AsyncAbstractConnection):
    """`_Timeouts` for redis.asyncio."""

    def __init__(self, *, read_timeout: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.socket_timeout = read_timeout
        self._reply_within: float | None = None

    async def send_command(self, *args: Any, **kwargs: Any) -> None:
        await super().send_command(*args, **kwargs)
        blocks = _blocks_for(args)
        read_timeout = self.socket_timeout
        self._reply_within = (
            None if blocks is None or read_timeout is None else blocks + read_timeout
        )

    async def read_response(self, *args: Any, **kwargs: Any) -> Any:
        within, self._reply_within = self._reply_within, None
        if within is not None and "timeout" not in kwargs and len(args) < 2:
            kwargs["timeout"] = within  # math.inf: no limit
        return await super().read_response(*args, **kwargs)

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if not self.is_connected:
            await self._connect_once()
        await super().send_packed_command(command, check_health)

    async def _connect_once(self) -> None:
        await self.connect_check_health(check_health=False, retry_socket_connect=False)


class _AsyncTCPConnection(_AsyncTimeouts, AsyncConnection):
    pass


class _AsyncTLSConnection(_AsyncTimeouts, AsyncSSLConnection):
    pass


class _AsyncUnixConnection(_AsyncTimeouts, AsyncUnixDomainSocketConnection):
    pass


class _AsyncPrimaryConnection(_AsyncTimeouts, AsyncSentinelManagedConnection):
    """`_PrimaryConnection` for redis.asyncio."""

    async def _connect_once(self) -> None:
        await self._connect_retry()  # type: ignore[no-untyped-call]

    async def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().read_response(*args, **kwargs)
        except ResponseError as exc:
            if self.connection_pool.is_master and _is_stale_primary(exc):
                await self.disconnect()
                raise StalePrimaryError(f"the primary is gone: {exc}") from exc
            raise


class _SentinelRedis(redis.Redis):
    """A primary's client that also closes its sentinel clients when closed."""

    def close(self) -> None:
        try:
            super().close()
        finally:
            pool = self.connection_pool
            if self.auto_close_connection_pool and isinstance(pool, SentinelConnectionPool):
                pool.sentinel_manager.close()


class _AsyncSentinelRedis(redis.asyncio.Redis):
    """`_SentinelRedis` for redis.asyncio."""

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        closing = close_connection_pool or (
            close_connection_pool is None and self.auto_close_connection_pool
        )
        try:
            await super().aclose(close_connection_pool)
        finally:
            pool = self.connection_pool
            if closing and isinstance(pool, AsyncSentinelConnectionPool):
                await pool.sentinel_manager.aclose()


class _RetryFor(Retry):
    """Retries a command that failed on a connection error until `seconds` have passed."""

    def __init__(self, seconds: float) -> None:
        super().__init__(_backoff(), retries=1_000_000)
        self._seconds = seconds

    def call_with_retry(
        self,
        do: Callable[[], T],
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> T:
        give_up_at = time.monotonic() + self._seconds

        def retryable(error: Exception) -> bool:
            allowed = is_retryable is None or is_retryable(error)
            return allowed and time.monotonic() < give_up_at

        return super().call_with_retry(do, fail, retryable, with_failure_count)


def _backoff() -> EqualJitterBackoff:
    return EqualJitterBackoff(cap=_BACKOFF_CAP, base=_BACKOFF_BASE)


def _connection_kwargs(target: RedisTarget) -> dict[str, Any]:
    """For our connection classes (and Sentinel.master_for, which passes them on)."""
    options = target.options
    kwargs: dict[str, Any] = {
        "db": target.db,
        "username": target.username,
        "password": target.password,
        "read_timeout": options.socket_timeout,
        "socket_timeout": options.socket_timeout,
        "health_check_interval": options.health_check_interval,
        "client_name": options.client_name,
    }
    if target.scheme == "unix":
        return kwargs | {"path": target.path}
    kwargs |= {
        "socket_connect_timeout": options.socket_connect_timeout,
        "socket_keepalive": True,
        "socket_keepalive_options": dict(_KEEPALIVE),
    }
    if target.scheme == "redis+sentinel":
        return kwargs
    return kwargs | {"host": target.host, "port": target.port, **options.tls}


def _sentinel_kwargs(target: RedisTarget) -> dict[str, Any]:
    """For the clients of the sentinels themselves: one quick try each, then the next one."""
    options = target.options
    return {
        "username": options.sentinel_username,
        "password": options.sentinel_password,
        "socket_timeout": options.sentinel_timeout,
        "socket_connect_timeout": options.sentinel_timeout,
        "socket_keepalive": True,
        "socket_keepalive_options": dict(_KEEPALIVE),
    }


def connect(url: str, *, decode: bool = False, retry_for: float = 0.0) -> redis.Redis:
    """A client for the Redis (the current primary, for Sentinel URLs) that `url` names.

    `decode` returns strings instead of bytes. `retry_for` keeps retrying a command that fails
    on a connection error for that many seconds (`WORKER_RETRY_SECONDS` rides out a Sentinel
    failover) instead of the URL's `retries` times. Raises `RedisURLError` for a bad URL; no
    connection is made until the first command.
    """
    target = parse_url(url)
    retry = _RetryFor(retry_for) if retry_for > 0 else Retry(_backoff(), target.options.retries)
    kwargs = _connection_kwargs(target) | {"decode_responses": decode, "retry": retry}
    if target.scheme == "redis+sentinel":
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            list(target.sentinels),
            sentinel_kwargs={**_sentinel_kwargs(target), "retry": Retry(NoBackoff(), 0)},
        )
        client: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
            target.service_name,
            redis_class=_SentinelRedis,
            connection_class=_PrimaryConnection,
            **kwargs,
        )
        return client
    classes = {"redis": _TCPConnection, "rediss": _TLSConnection, "unix": _UnixConnection}
    pool = redis.ConnectionPool(connection_class=classes[target.scheme], **kwargs)
    return redis.Redis.from_pool(pool)


def connect_async(url: str) -> redis.asyncio.Redis:
    """`connect` for redis.asyncio (replies as bytes)."""
    target = parse_url(url)
    kwargs = _connection_kwargs(target) | {"retry": AsyncRetry(_backoff(), target.options.retries)}
    if target.scheme == "redis+sentinel":
        sentinel = AsyncSentinel(  # type: ignore[no-untyped-call]
            list(target.sentinels),
            sentinel_kwargs={**_sentinel_kwargs(target), "retry": AsyncRetry(NoBackoff(), 0)},
        )
        client: redis.asyncio.Redis = sentinel.master_for(
            target.service_name,
            redis_class=_AsyncSentinelRedis,
            connection_class=_AsyncPrimaryConnection,
            **kwargs,
        )
        return client
    connection_class: type[AsyncConnection | AsyncUnixDomainSocketConnection]
    if target.scheme == "unix":
        connection_class = _AsyncUnixConnection
    else:
        connection_class = _AsyncTLSConnection if target.scheme == "rediss" else _AsyncTCPConnection
    pool = redis.asyncio.ConnectionPool(connection_class=connection_class, **kwargs)
    return redis.asyncio.Redis.from_pool(pool)
