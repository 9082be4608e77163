"""Redis URLs, and clients that follow a Sentinel-managed primary through a failover.

`sentinel_cluster` starts a real primary, replica(s) and three sentinels on free loopback
ports; the end-to-end failover test uses it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.exceptions import ConnectionError
from rq import Queue, SimpleWorker

from router.redisconn import StalePrimaryError, connect, connect_async
from router.redisurl import Options, RedisTarget, RedisURLError, parse_url
from tests.support.processes import free_port, stop, wait_for_port

SERVICE = "sevrouter"


# --- a primary, replicas and sentinels ------------------------------------------------------


@dataclass
class SentinelCluster:
    """Redis servers (by port) under three sentinels monitoring `SERVICE`."""

    directory: Path
    primary: int
    replicas: list[int]
    sentinels: list[int]
    servers: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    sentinel_processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def url(self, db: int = 0, query: str = "") -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinels)
        return f"redis+sentinel://{hosts}/{SERVICE}/{db}" + (f"?{query}" if query else "")

    def server(self, port: int, db: int = 0) -> redis.Redis:
        return redis.Redis(port=port, db=db, socket_timeout=5, decode_responses=True)

    def primary_by_sentinels(self) -> int | None:
        """The primary's port if every sentinel names the same one, else None."""
        named: set[int | None] = set()
        for port in self.sentinels:
            with redis.Redis(port=port, socket_timeout=1, decode_responses=True) as sentinel:
                try:
                    address = sentinel.sentinel_get_master_addr_by_name(SERVICE)
                except redis.RedisError:
                    return None
            named.add(int(address[1]) if address else None)
        return named.pop() if len(named) == 1 else None

    def wait_for_primary(self, *, other_than: int | None = None, timeout: float = 30) -> int:
        """Until all sentinels agree on a primary (not `other_than`) that says it is one."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            port = self.primary_by_sentinels()
            if port is not None and port != other_than:
                with contextlib.suppress(redis.RedisError), self.server(port) as server:
                    if server.info("replication")["role"] == "master":
                        self.primary = port
                        return port
            time.sleep(0.1)
        raise TimeoutError(f"sentinels did not agree on a new primary within {timeout}s")

    def kill(self, port: int) -> None:
        """SIGKILL: no shutdown, no last AOF write, sockets reset."""
        process = self.servers[port]
        process.send_signal(signal.SIGKILL)
        process.wait()


def _server_args(port: int, directory: Path, *, aof: bool, extra: list[str]) -> list[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed; `make test` installs it")
    directory.mkdir(parents=True, exist_ok=True)
    return [
        binary,
        *("--port", str(port), "--bind", "127.0.0.1", "--dir", str(directory)),
        *("--save", "", "--appendonly", "yes" if aof else "no", "--appendfsync", "always"),
        # Replicas sync at once instead of waiting for more replicas to share a transfer.
        *("--repl-diskless-sync-delay", "0"),
        *extra,
    ]


def _distinct_free_ports(count: int) -> list[int]:
    """Free ports, all different: each socket stays bound until all ports are known."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


def _start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as handle:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(args, stdout=handle, stderr=subprocess.STDOUT)


def _wait_for_link(server: redis.Redis, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while server.info("replication").get("master_link_status") != "up":
        if time.monotonic() > deadline:
            raise TimeoutError("the replica did not finish its first sync")
        time.sleep(0.05)


@contextlib.contextmanager
def sentinel_cluster(
    directory: Path,
    *,
    replicas: int = 1,
    aof: bool = False,
    primary_options: tuple[str, ...] = (),
    down_after_ms: int = 1000,
    failover_timeout_ms: int = 3000,
) -> Iterator[SentinelCluster]:
    """A primary, `replicas` replicas and three sentinels (quorum 2), every one stopped on the
    way out. `primary_options` are extra redis-server arguments for every server (a replica
    may become the primary)."""
    if shutil.which("redis-sentinel") is None:
        raise RuntimeError(
            "redis-sentinel is not installed (Debian package redis-sentinel); `make test` "
            "installs it"
        )
    ports = _distinct_free_ports(1 + replicas + 3)
    cluster = SentinelCluster(
        directory, primary=ports[0], replicas=ports[1 : 1 + replicas], sentinels=ports[-3:]
    )
    try:
        for port in [cluster.primary, *cluster.replicas]:
            extra = list(primary_options)
            if port != cluster.primary:
                extra += ["--replicaof", "127.0.0.1", str(cluster.primary)]
            process = _start(
                _server_args(port, directory / f"redis-{port}", aof=aof, extra=extra),
                directory / f"redis-{port}.log",
            )
            cluster.servers[port] = process
            wait_for_port(port, process)
        for port in cluster.replicas:
            with cluster.server(port) as replica:
                _wait_for_link(replica)
        for port in cluster.sentinels:
            config = directory / f"sentinel-{port}.conf"
            config.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {directory}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {cluster.primary} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} {down_after_ms}\n"
                f"sentinel failover-timeout {SERVICE} {failover_timeout_ms}\n"
                f"sentinel parallel-syncs {SERVICE} 1\n"
            )
            process = _start(
                [str(shutil.which("redis-sentinel")), str(config)],
                directory / f"sentinel-{port}.log",
            )
            cluster.sentinel_processes.append(process)
            wait_for_port(port, process)
        _wait_until_sentinels_see_everyone(cluster, replicas)
        yield cluster
    finally:
        for process in cluster.sentinel_processes:
            stop(process)
        for process in cluster.servers.values():
            stop(process)


def _wait_until_sentinels_see_everyone(
    cluster: SentinelCluster, replicas: int, timeout: float = 20
) -> None:
    """A failover needs the sentinels to know each other (quorum, election) and the replicas."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready = 0
        for port in cluster.sentinels:
            with redis.Redis(port=port, socket_timeout=1, decode_responses=True) as sentinel:
                state: dict[str, Any] = sentinel.sentinel_master(SERVICE)
                seen = len(sentinel.sentinel_slaves(SERVICE))
            if state["num-other-sentinels"] == len(cluster.sentinels) - 1 and seen == replicas:
                ready += 1
        if ready == len(cluster.sentinels):
            return
        time.sleep(0.1)
    raise TimeoutError("the sentinels did not discover each other and the replicas")


# --- URL parsing ----------------------------------------------------------------------------

GOOD = [
    ("redis://127.0.0.1:6379/0", RedisTarget("redis", host="127.0.0.1", port=6379)),
    ("redis://localhost", RedisTarget("redis", host="localhost", port=6379)),
    ("redis://h:1/", RedisTarget("redis", host="h", port=1)),
    (
        "redis://:p%40ss@h/3",
        RedisTarget("redis", db=3, password="p@ss", host="h", port=6379),
    ),
    (
        "redis://alice:pw@[::1]:6380/1",
        RedisTarget("redis", db=1, username="alice", password="pw", host="::1", port=6380),
    ),
    (
        "rediss://h:6380/2?ssl_cert_reqs=none&ssl_check_hostname=false",
        RedisTarget(
            "rediss",
            db=2,
            host="h",
            port=6380,
            options=Options(tls={"ssl_cert_reqs": "none", "ssl_check_hostname": False}),
        ),
    ),
    ("unix:///run/redis.sock", RedisTarget("unix", path="/run/redis.sock")),
    (
        "unix://:pw@/run/redis.sock?db=4&socket_timeout=0.5",
        RedisTarget(
            "unix",
            db=4,
            password="pw",
            path="/run/redis.sock",
            options=Options(socket_timeout=0.5),
        ),
    ),
    (
        "redis+sentinel://h1:26379,h2:26380/mymaster",
        RedisTarget(
            "redis+sentinel", sentinels=(("h1", 26379), ("h2", 26380)), service_name="mymaster"
        ),
    ),
    (
        "redis+sentinel://:pw@h1,[::1],h3:1/mymaster/5",
        RedisTarget(
            "redis+sentinel",
            db=5,
            password="pw",
            sentinels=(("h1", 26379), ("::1", 26379), ("h3", 1)),
            service_name="mymaster",
        ),
    ),
    (
        "REDIS+SENTINEL://s/svc/0?sentinel_password=s%26p&sentinel_username=mon"
        "&sentinel_timeout=0.25&socket_timeout=2&socket_connect_timeout=0.5"
        "&health_check_interval=0&retries=0&client_name=receiver",
        RedisTarget(
            "redis+sentinel",
            sentinels=(("s", 26379),),
            service_name="svc",
            options=Options(
                socket_timeout=2,
                socket_connect_timeout=0.5,
                health_check_interval=0,
                retries=0,
                client_name="receiver",
                sentinel_timeout=0.25,
                sentinel_username="mon",
                sentinel_password="s&p",
            ),
        ),
    ),
]

BAD = [
    ("127.0.0.1:6379", "expected <scheme>://"),
    ("http://h/0", "unknown scheme 'http'"),
    ("sentinel://h/svc", "Sentinel URLs start with redis+sentinel://"),
    ("redis+sentinel://h1:26379,h2:26379", "needs the monitored service name"),
    ("redis+sentinel://h1:26379/", "needs the monitored service name"),
    ("redis+sentinel://h1/svc/x", "database 'x' after the service name must be a number"),
    ("redis+sentinel://h1/svc/0/extra", "expected /<service_name>[/<db>]"),
    ("redis+sentinel://h1:abc/svc", "sentinel address 'h1:abc': port must be a number"),
    ("redis+sentinel://h1:0/svc", "port must be a number from 1 to 65535"),
    ("redis+sentinel://h1,,h2/svc", "a sentinel address is missing"),
    ("redis+sentinel:///svc", "a sentinel address is missing"),
    ("redis+sentinel://:26379/svc", "has no host name"),
    ("redis+sentinel://[::1/svc", "unclosed '['"),
    ("redis+sentinel://::1:26379/svc", "write IPv6 addresses as [addr]:port"),
    ("redis://h1,h2/0", "takes one host; for several sentinels use redis+sentinel://"),
    ("redis://h/abc", "database 'abc' must be a number"),
    ("redis://h:99999/0", "port must be a number from 1 to 65535"),
    ("redis://secret@h/0", "a password alone needs the leading colon"),
    ("redis://h/0?sockettimeout=1", "unknown option 'sockettimeout' for redis://"),
    ("redis://h/0?sentinel_password=x", "unknown option 'sentinel_password' for redis://"),
    ("redis://h/0?db=1", "unknown option 'db' for redis://"),
    ("redis://h/0?socket_timeout=", "option 'socket_timeout' needs a value"),
    ("redis://h/0?retries=1&retries=2", "option 'retries' is given twice"),
    ("redis://h/0?socket_timeout=0", "socket_timeout='0': expected a positive number"),
    ("redis://h/0?socket_timeout=soon", "socket_timeout='soon'"),
    ("redis://h/0?retries=-1", "retries='-1': expected a whole number"),
    ("redis://h/0#frag", "a fragment (#...) is not allowed"),
    ("rediss://h/0?ssl_cert_reqs=maybe", "expected required, optional or none"),
    ("unix://host/run/redis.sock", "unix:// takes a socket path, not a host"),
    ("unix://", "needs the socket's path"),
    ("redis+sentinel://h/svc?sentinel_timeout=x", "sentinel_timeout='x'"),
]


@pytest.mark.parametrize(("url", "expected"), GOOD, ids=[url for url, _ in GOOD])
def test_good_urls(url: str, expected: RedisTarget) -> None:
    assert parse_url(url) == expected


@pytest.mark.parametrize(("url", "problem"), BAD, ids=[url for url, _ in BAD])
def test_bad_urls_name_the_problem(url: str, problem: str) -> None:
    with pytest.raises(RedisURLError, match="invalid Redis URL") as caught:
        parse_url(url)
    assert problem in str(caught.value)
    with pytest.raises(RedisURLError):
        connect(url)
    with pytest.raises(RedisURLError):
        connect_async(url)


def test_errors_never_show_the_password() -> None:
    for url in (
        "redis+sentinel://:hunter2@h1:x/svc",
        "redis+sentinel://h1/svc?sentinel_password=hunter2&sentinel_timeout=x",
        "redis://:hunter2@h/abc",
        "redis+sentinel://h/svc?sentinel_password=",
    ):
        with pytest.raises(RedisURLError) as caught:
            parse_url(url)
        assert "hunter2" not in str(caught.value)
    assert "hunter2" not in repr(parse_url("redis://:hunter2@h/0"))
    assert "hunter2" not in repr(parse_url("redis+sentinel://h/s?sentinel_password=hunter2"))


def test_plain_urls_connect_with_the_options(redis_url: str) -> None:
    client = connect(redis_url + "?socket_timeout=0.75&retries=1&client_name=sevrouter-test")
    try:
        assert client.ping()
        assert client.client_getname() == "sevrouter-test"
        kwargs = client.connection_pool.connection_kwargs
        assert kwargs["socket_timeout"] == 0.75
        assert kwargs["health_check_interval"] == 10
        assert kwargs["retry"].get_retries() == 1
    finally:
        client.close()
    with connect(redis_url, decode=True) as text_client:
        text_client.set("redisconn:decode", "é")
        assert text_client.get("redisconn:decode") == "é"


def test_unix_socket_url(tmp_path: Path) -> None:
    binary = shutil.which("redis-server")
    assert binary is not None
    path = tmp_path / "redis.sock"
    process = subprocess.Popen(
        [binary, "--port", "0", "--unixsocket", str(path), "--save", "", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not path.exists():
            assert time.monotonic() < deadline, "redis-server did not create its socket"
            time.sleep(0.02)
        with connect(f"unix://{path}?db=2", decode=True) as client:
            client.set("k", "v")
            assert client.get("k") == "v"
            assert client.connection_pool.connection_kwargs["db"] == 2
    finally:
        stop(process)


def test_a_dead_redis_fails_fast() -> None:
    """Connection refused: a few quick retries, then an error; no hanging."""
    url = f"redis://127.0.0.1:{free_port()}/0"
    started = time.monotonic()
    with pytest.raises(ConnectionError), connect(url) as client:
        client.ping()
    assert time.monotonic() - started < 2


# --- through real sentinels -----------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelCluster]:
    with sentinel_cluster(tmp_path_factory.mktemp("sentinel")) as running:
        yield running


def test_sentinel_url_reaches_the_primary(cluster: SentinelCluster) -> None:
    with connect(cluster.url(db=3), decode=True) as client:
        client.set("redisconn:where", "primary")
        assert client.info("server")["tcp_port"] == cluster.primary
        assert client.info("replication")["role"] == "master"
        assert client.connection_pool.connection_kwargs["db"] == 3
    with cluster.server(cluster.primary, db=3) as primary:
        assert primary.get("redisconn:where") == "primary"


def test_sentinel_url_async(cluster: SentinelCluster) -> None:
    async def main() -> tuple[Any, Any]:
        client = connect_async(cluster.url(db=1))
        try:
            await client.set("redisconn:async", "yes")
            info = await client.info("server")
            return info["tcp_port"], await client.get("redisconn:async")
        finally:
            await client.aclose()

    assert asyncio.run(main()) == (cluster.primary, b"yes")


def test_unknown_service_is_a_connection_error(cluster: SentinelCluster) -> None:
    url = cluster.url().replace(f"/{SERVICE}/", "/no-such-service/")
    started = time.monotonic()
    with (
        pytest.raises(ConnectionError, match="No master found for 'no-such-service'"),
        connect(url) as client,
    ):
        client.ping()
    assert time.monotonic() - started < 2


def test_dead_sentinels_are_skipped_quickly(cluster: SentinelCluster) -> None:
    dead = [free_port(), free_port()]
    hosts = ",".join(f"127.0.0.1:{port}" for port in [*dead, cluster.sentinels[0]])
    started = time.monotonic()
    with connect(f"redis+sentinel://{hosts}/{SERVICE}/0") as client:
        assert client.ping()
    assert time.monotonic() - started < 1


# --- failover ---------------------------------------------------------------------------------


def _in_thread(function: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    """Run `function` in a thread; the list gets its result or the exception it raised."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(function())
        except Exception as exc:  # noqa: BLE001 - handed to the test to assert on
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def test_clients_follow_a_killed_primary(tmp_path: Path) -> None:
    with (
        sentinel_cluster(tmp_path) as cluster,
        connect(cluster.url(), retry_for=30) as worker,
        connect(cluster.url(), retry_for=30) as blocker,
    ):
        old = cluster.primary
        worker.set("n", 1)
        # A worker waiting for a job (rq's BLMOVE) when the primary dies.
        waiting, taken = _in_thread(lambda: blocker.blmove("jobs", "taken", 20))
        time.sleep(0.3)
        cluster.kill(old)
        started = time.monotonic()
        assert worker.incr("n") == 2  # retried until a replica was promoted
        rode_out = time.monotonic() - started
        new = cluster.wait_for_primary(other_than=old)
        assert worker.info("server")["tcp_port"] == new
        assert rode_out < 15, f"the command waited {rode_out:.1f}s for the new primary"
        worker.lpush("jobs", "job-1")
        waiting.join(10)
        assert taken == [b"job-1"]

        async def receiver() -> tuple[Any, Any]:
            client = connect_async(cluster.url())
            try:
                await client.set("async", "ok")
                return (await client.info("server"))["tcp_port"], await client.get("async")
            finally:
                await client.aclose()

        assert asyncio.run(receiver()) == (new, b"ok")


def test_a_client_fails_fast_while_there_is_no_primary(tmp_path: Path) -> None:
    with sentinel_cluster(tmp_path) as cluster, connect(cluster.url()) as receiver:
        receiver.ping()
        cluster.kill(cluster.primary)
        started = time.monotonic()
        with pytest.raises(ConnectionError):
            receiver.ping()
        assert time.monotonic() - started < 1


def test_a_deposed_primary_sends_clients_to_the_new_one(tmp_path: Path) -> None:
    """`SENTINEL FAILOVER` leaves the old primary up, still a primary until the sentinels
    reconfigure it (about ten seconds later). Clients must leave it on NOREPLICAS (it runs with
    min-replicas-to-write and lost its replica), UNBLOCKED (a blocking command it served was
    cut short by its demotion) and READONLY (it is a replica now).

    Only the old primary refuses writes without a replica: the promoted one has none until the
    old one follows it (with a single replica, min-replicas-to-write 1 everywhere would leave no
    writable server after a failover)."""
    with (
        sentinel_cluster(tmp_path) as cluster,
        connect(cluster.url(query="retries=0")) as writer,
        connect(cluster.url()) as reader,
        connect(cluster.url(), retry_for=20) as blocker,
    ):
        old = cluster.primary
        with cluster.server(old) as primary:
            primary.config_set("min-replicas-to-write", 1)
        writer.set("k", "before")
        assert reader.get("k") == b"before"  # an idle connection to the old primary
        waiting, taken = _in_thread(lambda: blocker.blmove("jobs", "taken", 30))
        time.sleep(0.3)
        with redis.Redis(port=cluster.sentinels[0]) as sentinel:
            sentinel.sentinel_failover(SERVICE)
        new = cluster.wait_for_primary(other_than=old)
        with cluster.server(old) as deposed:
            assert deposed.info("replication")["role"] == "master"

            with pytest.raises(StalePrimaryError, match="NOREPLICAS"):
                writer.set("k", "lost")
            writer.set("k", "after")  # the next connection asked the sentinels
            assert writer.info("server")["tcp_port"] == new

            # What the sentinels would do some seconds later.
            deposed.replicaof("127.0.0.1", new)
        writer.lpush("jobs", "job-1")
        waiting.join(10)
        assert taken == [b"job-1"]  # BLMOVE was unblocked on the old one, retried on the new
        reader.set("r", "x")  # READONLY from the old primary, retried on the new one
        with cluster.server(new) as primary:
            assert primary.mget("k", "r") == ["after", "x"]


# --- timeouts -------------------------------------------------------------------------------


@contextlib.contextmanager
def _own_redis(directory: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    process = _start(_server_args(port, directory, aof=False, extra=[]), directory / "redis.log")
    try:
        wait_for_port(port, process)
        yield f"redis://127.0.0.1:{port}/0", process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGCONT)
        stop(process)


def test_blocking_commands_outlast_the_read_timeout(redis_url: str) -> None:
    with connect(redis_url + "?socket_timeout=0.3&retries=0") as client:
        client.delete("redisconn:stream", "redisconn:list")
        client.xgroup_create("redisconn:stream", "g", id="0", mkstream=True)
        started = time.monotonic()
        assert client.blmove("redisconn:list", "redisconn:to", 1) is None
        assert client.xreadgroup("g", "c", {"redisconn:stream": ">"}, block=800) == []
        assert client.brpoplpush("redisconn:list", "redisconn:to", 1) is None
        assert 2.7 < time.monotonic() - started < 4


def test_a_hung_server_times_out_even_after_rq_raised_the_timeout(tmp_path: Path) -> None:
    """rq raises the pool's socket_timeout to ~415 s when a worker is created; our connections
    keep the URL's read timeout for ordinary commands (blocking ones get their own)."""
    with _own_redis(tmp_path) as (url, process), connect(url + "?socket_timeout=0.5") as client:
        client.ping()  # a connection made before the worker, like the event pump's
        worker = SimpleWorker([Queue("redisconn", connection=client)], connection=client)
        assert worker.connection.connection_pool.connection_kwargs["socket_timeout"] > 400
        second = client.connection_pool.make_connection()  # one made after
        client.connection_pool.release(second)
        process.send_signal(signal.SIGSTOP)
        for _ in range(2):
            started = time.monotonic()
            with pytest.raises(redis.exceptions.TimeoutError):
                client.get("x")
            assert time.monotonic() - started < 3
        process.send_signal(signal.SIGCONT)
        assert client.ping()
