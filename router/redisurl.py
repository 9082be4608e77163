"""`REDIS_URL`, parsed: one Redis, TLS, a unix socket, or a primary found through Sentinel.

URL forms (the parts in brackets are optional)::

    redis://[[username]:password@]host[:port][/db][?option=value&...]
    rediss://[[username]:password@]host[:port][/db][?option=value&...]        (TLS)
    unix://[[username]:password@]/path/to/redis.sock[?db=N&option=value&...]
    redis+sentinel://[[username]:password@]host[:port][,host[:port]...]/service_name[/db]
                    [?option=value&...]

`port` defaults to 6379, and to 26379 for sentinels; `db` defaults to 0. IPv6 addresses go in
brackets (`[::1]:26379`). Characters such as `@ : / , ? #` in a user name or password must be
percent-encoded (`p%40ss` for `p@ss`).

For `redis+sentinel://` the hosts are the sentinels, `service_name` is the name the sentinels
monitor (`sentinel monitor <service_name> ...`), and `username`/`password` are those of the Redis
primary and its replicas (`requirepass`/ACL), not of the sentinels. Example::

    redis+sentinel://:s3cret@sentinel-a:26379,sentinel-b:26379,sentinel-c/sevrouter/0?sentinel_password=s3nt

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

Options, all schemes (seconds may be fractional):

    socket_timeout=5           seconds to wait for a reply before the command fails
    socket_connect_timeout=2   seconds to wait for a connection to be accepted
    health_check_interval=10   PING a connection idle this many seconds before reusing it
                               (0: never)
    retries=1                  retries of a command that failed on a connection error, after
                               0.05-0.1, 0.1-0.2, 0.2-0.4, then 0.25-0.5 s; 0 fails at once.
                               `connect(..., retry_for=SECONDS)` (the worker) retries for that
                               long instead, to ride out a failover
    client_name=NAME           the name shown by CLIENT LIST

Options of `rediss://` only: `ssl_cert_reqs=required|optional|none`, `ssl_ca_certs=PATH`,
`ssl_certfile=PATH`, `ssl_keyfile=PATH`, `ssl_check_hostname=true|false`.
Option of `unix://` only: `db=N`.
Options of `redis+sentinel://` only:

    sentinel_username=NAME, sentinel_password=PASSWORD   the sentinels' own credentials
    sentinel_timeout=1         seconds to wait for one sentinel before asking the next

Unknown options, a missing service name, a port or db that is not a number, and the like are
rejected with a `RedisURLError` (a `ValueError`) naming the problem; messages never include the
password. Making clients from a parsed URL is `router/redisconn.py`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import parse_qsl, unquote

SCHEMES: Final = ("redis", "rediss", "unix", "redis+sentinel")
DEFAULT_PORT: Final = 6379
DEFAULT_SENTINEL_PORT: Final = 26379


class RedisURLError(ValueError):
    """`REDIS_URL` cannot be used; the message says why (never with the password)."""

    def __init__(self, problem: str) -> None:
        super().__init__(f"invalid Redis URL: {problem}")


def _boolean(value: str) -> bool:
    lowered = value.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _seconds(value: str) -> float:
    number = float(value)
    if not number > 0 or number == float("inf"):
        raise ValueError("expected a positive number of seconds")
    return number


def _count(value: str) -> int:
    number = int(value)
    if number < 0:
        raise ValueError("expected a whole number, 0 or more")
    return number


def _text(value: str) -> str:
    return value


def _cert_reqs(value: str) -> str:
    if value not in ("required", "optional", "none"):
        raise ValueError("expected required, optional or none")
    return value


_COMMON_OPTIONS: Final[Mapping[str, Callable[[str], Any]]] = {
    "socket_timeout": _seconds,
    "socket_connect_timeout": _seconds,
    "health_check_interval": _count,
    "retries": _count,
    "client_name": _text,
}
_SCHEME_OPTIONS: Final[Mapping[str, Mapping[str, Callable[[str], Any]]]] = {
    "redis": {},
    "rediss": {
        "ssl_cert_reqs": _cert_reqs,
        "ssl_ca_certs": _text,
        "ssl_certfile": _text,
        "ssl_keyfile": _text,
        "ssl_check_hostname": _boolean,
    },
    "unix": {"db": _count},
    "redis+sentinel": {
        "sentinel_username": _text,
        "sentinel_password": _text,
        "sentinel_timeout": _seconds,
    },
}


@dataclass(frozen=True, slots=True)
class Options:
    socket_timeout: float = 5.0
    socket_connect_timeout: float = 2.0
    health_check_interval: int = 10
    retries: int = 1
    client_name: str | None = None
    # rediss:// only; the ssl_* keyword arguments of redis.Redis.
    tls: Mapping[str, Any] = field(default_factory=dict)
    # redis+sentinel:// only
    sentinel_timeout: float = 1.0
    sentinel_username: str | None = None
    sentinel_password: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class RedisTarget:
    """A parsed Redis URL. According to `scheme`, either `host` and `port`, or `path`, or
    `sentinels` and `service_name` are set; the others are empty."""

    scheme: str
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    host: str = ""
    port: int = 0
    path: str = ""
    sentinels: tuple[tuple[str, int], ...] = ()
    service_name: str = ""
    options: Options = field(default_factory=Options)


def parse_url(url: str) -> RedisTarget:
    """Check `url` and split it into what a client needs; `RedisURLError` names any problem."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        raise RedisURLError("expected <scheme>://..., with scheme one of " + ", ".join(SCHEMES))
    scheme = scheme.lower()
    if scheme not in SCHEMES:
        hint = ""
        if "sentinel" in scheme:
            hint = " (Sentinel URLs start with redis+sentinel://)"
        raise RedisURLError(
            f"unknown scheme {scheme!r}{hint}; expected one of " + ", ".join(SCHEMES)
        )
    if "#" in rest:
        raise RedisURLError("a fragment (#...) is not allowed; percent-encode '#' as %23")
    location, _, query = rest.partition("?")
    authority, slash, path = location.partition("/")
    path = slash + path
    userinfo, at, hosts = authority.rpartition("@")
    username, password = _credentials(userinfo) if at else (None, None)
    values = _query(query, scheme)
    options = _options(values)
    db = int(values.get("db", 0))
    if scheme == "unix":
        if hosts:
            raise RedisURLError(
                f"unix:// takes a socket path, not a host ({hosts!r}); "
                "write unix:///path/to/redis.sock"
            )
        socket_path = unquote(path)
        if socket_path in ("", "/"):
            raise RedisURLError("unix:// needs the socket's path: unix:///path/to/redis.sock")
        return RedisTarget(scheme, db, username, password, path=socket_path, options=options)
    if scheme == "redis+sentinel":
        sentinels = tuple(
            _address(item, DEFAULT_SENTINEL_PORT, "sentinel") for item in hosts.split(",")
        )
        service_name, db = _service_and_db(path)
        return RedisTarget(
            scheme,
            db,
            username,
            password,
            sentinels=sentinels,
            service_name=service_name,
            options=options,
        )
    if "," in hosts:
        raise RedisURLError(
            f"{scheme}:// takes one host; for several sentinels use redis+sentinel://"
        )
    host, port = _address(hosts, DEFAULT_PORT, "host")
    return RedisTarget(scheme, _db(path), username, password, host=host, port=port, options=options)


def _credentials(userinfo: str) -> tuple[str | None, str | None]:
    name, colon, secret = userinfo.partition(":")
    username = unquote(name) or None
    if not colon:
        # `redis://secret@host` is a common slip for `redis://:secret@host`; redis-py would
        # send it as a user name with no password. Say so instead of failing at AUTH.
        raise RedisURLError(
            "credentials must be written user:password@ or :password@ (a password alone "
            "needs the leading colon)"
        )
    return username, unquote(secret) or None


def _query(query: str, scheme: str) -> dict[str, str]:
    allowed = {**_COMMON_OPTIONS, **_SCHEME_OPTIONS[scheme]}
    values: dict[str, str] = {}
    for item in query.split("&") if query else ():
        name, equals, raw = item.partition("=")
        name = unquote(name)
        if name not in allowed:
            raise RedisURLError(
                f"unknown option {name!r} for {scheme}://; known: " + ", ".join(sorted(allowed))
            )
        if not equals or not raw:
            raise RedisURLError(f"option {name!r} needs a value ({name}=...)")
        if name in values:
            raise RedisURLError(f"option {name!r} is given twice")
        value = parse_qsl(f"v={raw}")[0][1]
        try:
            allowed[name](value)
        except ValueError as exc:
            shown = "***" if "password" in name else repr(value)
            raise RedisURLError(f"option {name}={shown}: {exc}") from None
        values[name] = value
    return values


def _options(values: Mapping[str, str]) -> Options:
    tls: dict[str, Any] = {}
    for name in ("ssl_cert_reqs", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile"):
        if name in values:
            tls[name] = values[name]
    if "ssl_check_hostname" in values:
        tls["ssl_check_hostname"] = _boolean(values["ssl_check_hostname"])
    defaults = Options()
    return Options(
        socket_timeout=float(values.get("socket_timeout", defaults.socket_timeout)),
        socket_connect_timeout=float(
            values.get("socket_connect_timeout", defaults.socket_connect_timeout)
        ),
        health_check_interval=int(
            values.get("health_check_interval", defaults.health_check_interval)
        ),
        retries=int(values.get("retries", defaults.retries)),
        client_name=values.get("client_name"),
        tls=tls,
        sentinel_timeout=float(values.get("sentinel_timeout", defaults.sentinel_timeout)),
        sentinel_username=values.get("sentinel_username"),
        sentinel_password=values.get("sentinel_password"),
    )


def _address(text: str, default_port: int, what: str) -> tuple[str, int]:
    """`host`, `host:port`, `[v6]` or `[v6]:port`."""
    if not text:
        raise RedisURLError(f"a {what} address is missing (empty entry before '/' or ',')")
    if text.startswith("["):
        host, bracket, after = text[1:].partition("]")
        if not bracket or not host:
            raise RedisURLError(f"{what} address {text!r}: unclosed '[' of an IPv6 address")
        if after and not after.startswith(":"):
            raise RedisURLError(f"{what} address {text!r}: expected ':port' after ']'")
        port_text = after[1:] if after else ""
        has_port = bool(after)
    else:
        host, colon, port_text = text.partition(":")
        has_port = bool(colon)
        if ":" in port_text:
            raise RedisURLError(f"{what} address {text!r}: write IPv6 addresses as [addr]:port")
        if not host:
            raise RedisURLError(f"{what} address {text!r} has no host name")
    if not has_port:
        return unquote(host), default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise RedisURLError(f"{what} address {text!r}: port must be a number from 1 to 65535")
    return unquote(host), int(port_text)


def _db(path: str) -> int:
    """The database of a redis:// or rediss:// URL: nothing, `/` or `/N`."""
    text = path.strip("/")
    if not text:
        return 0
    if not text.isdigit():
        raise RedisURLError(f"database {text!r} must be a number (redis://host:port/0)")
    return int(text)


def _service_and_db(path: str) -> tuple[str, int]:
    parts = path.strip("/").split("/") if path.strip("/") else []
    if not parts:
        raise RedisURLError(
            "redis+sentinel:// needs the monitored service name: "
            "redis+sentinel://host:26379,host2:26379/<service_name>[/<db>]"
        )
    if len(parts) > 2:
        raise RedisURLError(f"expected /<service_name>[/<db>] after the sentinels, got {path!r}")
    service_name = unquote(parts[0])
    if not service_name:
        raise RedisURLError("the service name after the sentinels is empty")
    if len(parts) == 1:
        return service_name, 0
    if not parts[1].isdigit():
        raise RedisURLError(f"database {parts[1]!r} after the service name must be a number")
    return service_name, int(parts[1])
