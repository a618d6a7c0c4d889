from __future__ import annotations

import asyncio
import errno
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from redis import exceptions as redis_exceptions
from redis.asyncio import Redis
from redis.asyncio.connection import UnixDomainSocketConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from fastapi_stack import redis as app_redis
from fastapi_stack.config import Settings, load_settings
from fastapi_stack.errors import RedisCommandError, RedisUnavailableError
from tests.conftest import ClientFactory, RedisServer, free_port, running_client

# The outage must be reported well within the ~1 s budget of a request that needs Redis.
MAX_FAILURE_SECONDS = 1.0


@pytest.fixture
def private_redis(start_redis_server: Callable[[], RedisServer]) -> RedisServer:
    return start_redis_server()


@pytest.fixture
def settings(app_env: Callable[..., None], private_redis: RedisServer) -> Settings:
    app_env(redis_host="127.0.0.1", redis_port=private_redis.port)
    return load_settings()


async def timed_get(client: httpx.AsyncClient, url: str) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    response = await client.get(url)
    return response, time.perf_counter() - started


async def test_outage_and_recovery(make_client: ClientFactory, private_redis: RedisServer) -> None:
    client = make_client()
    created = await client.post("/api/v1/items", json={"name": "before-outage"})
    assert created.status_code == 201

    private_redis.stop()

    ready, ready_seconds = await timed_get(client, "/readyz")
    assert ready.status_code == 503
    assert ready.json()["error"]["code"] == "redis_unavailable"
    assert "unavailable" in ready.json()["error"]["message"]
    assert ready_seconds < MAX_FAILURE_SECONDS

    items, items_seconds = await timed_get(client, "/api/v1/items")
    assert items.status_code == 503
    assert items.json()["error"]["code"] == "redis_unavailable"
    assert items.json()["error"]["request_id"] == items.headers["x-request-id"]
    assert items_seconds < MAX_FAILURE_SECONDS

    session = await client.post("/api/v1/session")
    assert session.status_code == 503

    health = await client.get("/healthz")
    assert health.status_code == 200

    # The cache and the rate limiter fail open: the computation is still served.
    computed, _ = await timed_get(client, "/api/v1/compute/1000")
    assert computed.status_code == 200
    assert computed.headers["x-cache"] == "MISS"
    assert "ratelimit-limit" not in computed.headers

    private_redis.start()

    recovered = await client.get("/readyz")
    assert recovered.status_code == 200
    again = await client.post("/api/v1/items", json={"name": "after-outage"})
    assert again.status_code == 201
    assert "ratelimit-limit" in again.headers


async def test_redis_not_running_at_startup(
    make_client: ClientFactory, private_redis: RedisServer
) -> None:
    # make_client started the app while Redis was up; this checks a restart of Redis with
    # the pool's connections broken while idle.
    client = make_client()
    await client.get("/readyz")
    private_redis.stop()
    private_redis.start()

    response = await client.get("/readyz")

    assert response.status_code == 200


async def test_startup_without_redis(
    app_env: Callable[..., None], caplog: pytest.LogCaptureFixture
) -> None:
    app_env(redis_host="127.0.0.1", redis_port=free_port())

    async with running_client(load_settings()) as client:
        ready = await client.get("/readyz")
        health = await client.get("/healthz")

    assert ready.status_code == 503
    assert health.status_code == 200
    assert any("not reachable at start-up" in record.getMessage() for record in caplog.records)


async def test_hung_redis_times_out(app_env: Callable[..., None]) -> None:
    async def accept_and_ignore(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(-1)
        writer.close()

    server = await asyncio.start_server(accept_and_ignore, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    app_env(redis_host="127.0.0.1", redis_port=port)
    try:
        async with running_client(load_settings()) as client:
            ready, ready_seconds = await timed_get(client, "/readyz")
            items, items_seconds = await timed_get(client, "/api/v1/items")
    finally:
        server.close()
        await server.wait_closed()

    assert ready.status_code == 503
    assert ready.json()["error"]["code"] == "redis_unavailable"
    assert ready_seconds < MAX_FAILURE_SECONDS
    assert items.status_code == 503
    # The rate limiter and the item list each wait for one socket timeout.
    assert items_seconds < 2 * MAX_FAILURE_SECONDS


async def test_wrong_password_is_unavailable(
    app_env: Callable[..., None], private_redis: RedisServer, secrets_dir: Path
) -> None:
    (secrets_dir / "redis_password").write_text("wrong-password-0123456789")
    app_env(redis_host="127.0.0.1", redis_port=private_redis.port)

    async with running_client(load_settings()) as client:
        ready = await client.get("/readyz")

    assert ready.status_code == 503
    assert ready.json()["error"]["code"] == "redis_unavailable"
    assert "authentication" in ready.json()["error"]["message"]
    assert "wrong-password" not in ready.text


def test_redis_errors_translates_connection_error() -> None:
    with pytest.raises(RedisUnavailableError) as caught, app_redis.redis_errors("test op"):
        raise redis_exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:1.")

    assert isinstance(caught.value.__cause__, redis_exceptions.ConnectionError)
    assert caught.value.status_code == 503


def test_redis_errors_translates_response_error() -> None:
    with pytest.raises(RedisCommandError) as caught, app_redis.redis_errors("test op"):
        raise redis_exceptions.ResponseError("OOM command not allowed")

    assert caught.value.code == "redis_command_failed"
    assert "test op" in caught.value.message


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (redis_exceptions.AuthenticationError("invalid"), "authentication"),
        (redis_exceptions.TimeoutError("slow"), "timeout"),
        (redis_exceptions.ConnectionError("refused"), "connection"),
        (redis_exceptions.ResponseError("OOM command not allowed"), "out_of_memory"),
        (redis_exceptions.NoPermissionError("NOPERM"), "no_permission"),
        (redis_exceptions.DataError("bad"), "command"),
    ],
)
def test_error_kind(error: redis_exceptions.RedisError, kind: str) -> None:
    assert app_redis._error_kind(error) == kind


def test_repeated_errors_are_throttled(caplog: pytest.LogCaptureFixture) -> None:
    error = redis_exceptions.ConnectionError("refused")
    for _ in range(5):
        app_redis.record_redis_error("throttle test", error)

    lines = [r for r in caplog.records if "throttle test" in r.getMessage()]
    assert len(lines) == 1


async def test_client_uses_settings(settings: Settings, private_redis: RedisServer) -> None:
    client = app_redis.create_redis_client(settings)
    try:
        assert await client.ping()
        kwargs = client.connection_pool.connection_kwargs
        with private_redis.admin() as admin:
            connected = admin.client_list()
    finally:
        await client.aclose()

    assert kwargs["username"] == "app"
    assert kwargs["socket_connect_timeout"] == settings.redis_connect_timeout_seconds
    assert kwargs["socket_timeout"] == settings.redis_socket_timeout_seconds
    assert kwargs["health_check_interval"] == settings.redis_health_check_interval_seconds
    assert [c["name"] for c in connected if c["user"] == "app"] == ["fastapi-stack"]


@pytest.fixture
async def small_pool(
    app_env: Callable[..., None], private_redis: RedisServer
) -> AsyncIterator[Callable[..., Redis]]:
    """Return a factory of clients with a pool of at most ``size`` connections."""
    clients: list[Redis] = []

    def make(size: int, wait_seconds: float = 1.0) -> Redis:
        app_env(
            redis_host="127.0.0.1",
            redis_port=private_redis.port,
            redis_max_connections=size,
            redis_pool_timeout_seconds=wait_seconds,
        )
        client = app_redis.create_redis_client(load_settings())
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


def pool_of(client: Redis) -> app_redis.QueueingConnectionPool:
    pool = client.connection_pool
    assert isinstance(pool, app_redis.QueueingConnectionPool)
    return pool


async def test_pool_queues_callers_in_arrival_order(small_pool: Callable[..., Redis]) -> None:
    pool = pool_of(small_pool(2))
    first = await pool.get_connection()
    second = await pool.get_connection()
    served: list[str] = []

    async def wait_for_connection(name: str) -> None:
        connection = await pool.get_connection()
        served.append(name)
        await pool.release(connection)

    waiters = [asyncio.create_task(wait_for_connection(name)) for name in ("a", "b", "c")]
    await asyncio.sleep(0.05)
    assert served == []
    await pool.release(first)
    await asyncio.gather(*waiters)
    await pool.release(second)

    assert served == ["a", "b", "c"]
    assert len(pool._available_connections) == 2


async def test_pool_wait_is_bounded(small_pool: Callable[..., Redis]) -> None:
    pool = pool_of(small_pool(1, wait_seconds=0.2))
    in_use = await pool.get_connection()
    started = time.monotonic()
    with pytest.raises(redis_exceptions.ConnectionError, match="No connection available"):
        await pool.get_connection()
    waited = time.monotonic() - started
    await pool.release(in_use)

    assert 0.15 < waited < 1
    # The caller that gave up took no slot: the connection is free again.
    await pool.release(await pool.get_connection())


async def test_cancelled_wait_keeps_every_slot(small_pool: Callable[..., Redis]) -> None:
    client = small_pool(1)
    pool = pool_of(client)
    in_use = await pool.get_connection()
    waiter = asyncio.create_task(pool.get_connection())
    await asyncio.sleep(0.05)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    await pool.release(in_use)

    assert await client.ping()


async def test_more_commands_than_connections(small_pool: Callable[..., Redis]) -> None:
    client = small_pool(3)
    await client.set("cache:counter", 0)

    increments = (client.execute_command("INCR", "cache:counter") for _ in range(200))  # type: ignore[no-untyped-call]
    results = await asyncio.gather(*increments)

    assert sorted(results) == list(range(1, 201))
    assert len(client.connection_pool._available_connections) == 3


async def test_pool_replaces_a_connection_the_server_closed(
    small_pool: Callable[..., Redis], private_redis: RedisServer
) -> None:
    client = small_pool(1)
    assert await client.ping()
    with private_redis.admin() as admin:
        admin.client_kill_filter(_type="normal", user="app")
    # The server's close arrives at the idle connection's stream before the next checkout.
    await asyncio.sleep(0.05)

    assert await client.ping()


async def test_pool_discards_unread_replies(small_pool: Callable[..., Redis]) -> None:
    """A connection returned with a reply still unread is reset before its next use."""
    client = small_pool(1)
    pool = pool_of(client)
    await client.set("cache:key", "value")
    connection = await pool.get_connection()
    await connection.send_command("PING")
    await asyncio.sleep(0.05)
    await pool.release(connection)

    assert await client.get("cache:key") == "value"


@pytest.fixture
def socket_settings(app_env: Callable[..., None], private_redis: RedisServer) -> Settings:
    """Settings that reach ``private_redis`` over its Unix socket, with db 2.

    The TCP address points at a closed port, so a test fails when the client uses it.
    """
    app_env(
        redis_socket=private_redis.socket_path,
        redis_host="127.0.0.1",
        redis_port=free_port(),
        redis_db=2,
    )
    return load_settings()


async def test_socket_client_uses_settings(
    socket_settings: Settings, private_redis: RedisServer
) -> None:
    client = app_redis.create_redis_client(socket_settings)
    try:
        assert await client.ping()
        pool = client.connection_pool
        connection = await pool.get_connection()  # type: ignore[no-untyped-call]
        await pool.release(connection)
        with private_redis.admin() as admin:
            connected = [c for c in admin.client_list() if c["user"] == "app"]
    finally:
        await client.aclose()

    assert issubclass(pool.connection_class, UnixDomainSocketConnection)
    assert pool.connection_kwargs["path"] == str(private_redis.socket_path)
    assert "host" not in pool.connection_kwargs
    assert "port" not in pool.connection_kwargs
    assert isinstance(connection, UnixDomainSocketConnection)
    assert connection.username == "app"
    assert connection.db == 2
    assert connection.socket_connect_timeout == socket_settings.redis_connect_timeout_seconds
    assert connection.socket_timeout == socket_settings.redis_socket_timeout_seconds
    assert connection.health_check_interval == socket_settings.redis_health_check_interval_seconds
    assert connection.retry.get_retries() == socket_settings.redis_retries
    assert [c["name"] for c in connected] == ["fastapi-stack"]
    assert [c["db"] for c in connected] == ["2"]
    # CLIENT LIST marks a client connected over a Unix domain socket with the flag U.
    assert "U" in connected[0]["flags"]


async def test_items_round_trip_over_socket(
    socket_settings: Settings, private_redis: RedisServer
) -> None:
    async with running_client(socket_settings) as client:
        created = await client.post("/api/v1/items", json={"name": "over-socket"})
        assert created.status_code == 201
        item_id = created.json()["id"]
        read = await client.get(f"/api/v1/items/{item_id}")
        listed = await client.get("/api/v1/items")
        with private_redis.admin(db=2) as admin:
            stored_keys = set(admin.keys("item:*"))
        deleted = await client.delete(f"/api/v1/items/{item_id}")
        missing = await client.get(f"/api/v1/items/{item_id}")

    assert read.status_code == 200
    assert read.json()["name"] == "over-socket"
    assert [item["id"] for item in listed.json()["items"]] == [item_id]
    assert stored_keys == {f"item:{item_id}", "item:index"}
    assert deleted.status_code == 204
    assert missing.status_code == 404


async def test_socket_outage_and_recovery(
    socket_settings: Settings, private_redis: RedisServer
) -> None:
    async with running_client(socket_settings) as client:
        created = await client.post("/api/v1/items", json={"name": "before-outage"})
        assert created.status_code == 201

        private_redis.stop()
        # redis-server removes its socket file when it shuts down.
        assert not private_redis.socket_path.exists()

        ready, ready_seconds = await timed_get(client, "/readyz")
        items, items_seconds = await timed_get(client, "/api/v1/items")
        health = await client.get("/healthz")
        computed = await client.get("/api/v1/compute/1000")

        private_redis.start()

        recovered = await client.get("/readyz")
        again = await client.post("/api/v1/items", json={"name": "after-outage"})

    assert ready.status_code == 503
    assert ready.json()["error"]["code"] == "redis_unavailable"
    assert ready_seconds < MAX_FAILURE_SECONDS
    assert items.status_code == 503
    assert items.json()["error"]["code"] == "redis_unavailable"
    assert items_seconds < MAX_FAILURE_SECONDS
    assert health.status_code == 200
    assert computed.status_code == 200
    assert computed.headers["x-cache"] == "MISS"
    assert recovered.status_code == 200
    assert again.status_code == 201


@pytest.mark.parametrize(
    ("socket_file", "expected_errno"),
    [("missing", errno.ENOENT), ("stale", errno.ECONNREFUSED)],
)
async def test_no_server_on_socket(
    app_env: Callable[..., None],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    socket_file: str,
    expected_errno: int,
) -> None:
    path = tmp_path / "redis.sock"
    if socket_file == "stale":
        # A socket file that no process listens on, as a killed redis-server leaves behind.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
            listener.bind(str(path))
    app_env(redis_socket=path, redis_host="127.0.0.1", redis_port=free_port())

    async with running_client(load_settings()) as client:
        ready, ready_seconds = await timed_get(client, "/readyz")
        health = await client.get("/healthz")

    assert ready.status_code == 503
    assert ready.json()["error"]["code"] == "redis_unavailable"
    assert ready_seconds < MAX_FAILURE_SECONDS
    assert health.status_code == 200
    messages = [record.getMessage() for record in caplog.records]
    assert any(f"Redis at unix:{path} is not reachable" in message for message in messages)
    # redis-py words a failed connect as "Error <errno> connecting to <path>."
    assert any(f"Error {expected_errno} connecting to {path}." in message for message in messages)


@asynccontextmanager
async def silent_peer() -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """Yield a client stream to a local server that accepts and never reads or replies."""
    peers: list[asyncio.StreamWriter] = []

    async def accept_and_ignore(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peers.append(writer)

    server = await asyncio.start_server(accept_and_ignore, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield reader, writer
    finally:
        writer.transport.abort()
        for peer in peers:
            peer.transport.abort()
        server.close()
        await server.wait_closed()


async def test_blocked_write_times_out() -> None:
    """A write that waits for buffer space is bounded by the socket timeout."""
    connection = app_redis._TcpConnection(host="127.0.0.1", socket_timeout=0.2)
    started = time.monotonic()
    async with silent_peer() as (reader, writer):
        writer.transport.set_write_buffer_limits(high=1024)
        connection._reader, connection._writer = reader, writer
        with pytest.raises(redis_exceptions.TimeoutError, match="Timeout writing to socket"):
            # More than the peer's receive buffer and ours hold, so drain() has to wait.
            await connection.send_packed_command([b"x" * 32 * 1024 * 1024], check_health=False)

    assert time.monotonic() - started < 2
    assert connection.socket_timeout == 0.2
    assert not connection.is_connected


async def test_health_check_read_times_out() -> None:
    """The health check's PING still waits at most one socket timeout for its reply."""
    connection = app_redis._TcpConnection(
        host="127.0.0.1", socket_timeout=0.2, health_check_interval=1, retry=Retry(NoBackoff(), 0)
    )
    started = time.monotonic()
    async with silent_peer() as (reader, writer):
        connection._reader, connection._writer = reader, writer
        # A parser that reads from this stream, as connect() would set up.
        connection._parser.on_connect(connection)  # type: ignore[no-untyped-call]
        connection.next_health_check = 0
        with pytest.raises(redis_exceptions.TimeoutError):
            await connection.send_packed_command(b"*1\r\n$4\r\nPING\r\n")

    assert time.monotonic() - started < 2
    assert connection.socket_timeout == 0.2
