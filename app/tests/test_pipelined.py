from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
import redis
from redis import exceptions as redis_exceptions

from fastapi_stack.config import Settings, load_settings
from fastapi_stack.pipelined import PipelinedConnection
from tests.conftest import RedisServer, free_port


@pytest.fixture
async def reads(settings: Settings) -> AsyncIterator[PipelinedConnection]:
    connection = PipelinedConnection(settings)
    yield connection
    await connection.aclose()


@asynccontextmanager
async def pipelined(
    app_env: Callable[..., None], **env: object
) -> AsyncIterator[PipelinedConnection]:
    """A PipelinedConnection built from settings with ``env`` on top."""
    app_env(**env)
    connection = PipelinedConnection(load_settings())
    try:
        yield connection
    finally:
        await connection.aclose()


@asynccontextmanager
async def fake_redis(
    reply: bytes, *, answered_reads: int | None = None
) -> AsyncIterator[tuple[int, list[asyncio.StreamWriter]]]:
    """Yield the port of a local server, and the list of the connections it accepted.

    The server writes ``reply`` after each read of a connection, up to ``answered_reads``
    reads per connection, and then stays silent. An empty ``reply`` writes nothing.
    """
    peers: list[asyncio.StreamWriter] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peers.append(writer)
        reads = 0
        while await reader.read(4096):
            reads += 1
            if reply and (answered_reads is None or reads <= answered_reads):
                writer.write(reply)

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], peers
    finally:
        for peer in peers:
            peer.transport.abort()
        server.close()
        await server.wait_closed()


async def test_concurrent_reads_get_their_own_replies(
    reads: PipelinedConnection, redis_admin: redis.Redis
) -> None:
    for n in range(100):
        redis_admin.set(f"item:{n}", f"value {n}")

    values = await asyncio.gather(*(reads.get(f"item:{n}") for n in range(100)))

    assert values == [f"value {n}" for n in range(100)]
    assert await reads.get("item:missing") is None


async def test_cancelled_read_keeps_the_order(
    reads: PipelinedConnection, redis_admin: redis.Redis
) -> None:
    redis_admin.set("item:a", "a")
    redis_admin.set("item:b", "b")
    await reads.get("item:a")

    cancelled = asyncio.create_task(reads.get("item:a"))
    await asyncio.sleep(0)
    cancelled.cancel()
    value = await reads.get("item:b")

    assert value == "b"
    assert cancelled.cancelled()


async def test_error_replies_raise_redis_py_errors(reads: PipelinedConnection) -> None:
    # The app user may read only its own key patterns.
    with pytest.raises(redis_exceptions.NoPermissionError):
        await reads.get("other:key")
    with pytest.raises(redis_exceptions.ResponseError, match="wrong number of arguments"):
        await reads.execute("GET")

    assert await reads.get("item:after-errors") is None


async def test_wrong_password_is_an_authentication_error(
    app_env: Callable[..., None], redis_server: RedisServer, secrets_dir: object
) -> None:
    async with pipelined(
        app_env, redis_host="127.0.0.1", redis_port=redis_server.port, redis_username="admin"
    ) as connection:
        with pytest.raises(redis_exceptions.AuthenticationError):
            await connection.get("item:x")


async def test_reads_reconnect_after_the_server_closed_the_connection(
    reads: PipelinedConnection, redis_admin: redis.Redis
) -> None:
    redis_admin.set("item:k", "v")
    assert await reads.get("item:k") == "v"

    redis_admin.client_kill_filter(_type="normal", user="app")

    assert await reads.get("item:k") == "v"


async def test_reads_over_a_unix_socket_use_the_database(
    app_env: Callable[..., None], start_redis_server: Callable[[], RedisServer]
) -> None:
    server = start_redis_server()
    with server.admin(db=3) as admin:
        admin.set("item:k", "in db 3")

    async with pipelined(
        app_env, redis_socket=server.socket_path, redis_port=free_port(), redis_db=3
    ) as connection:
        value = await connection.get("item:k")

    assert value == "in db 3"


async def test_no_server_fails_after_the_retries(app_env: Callable[..., None]) -> None:
    port = free_port()
    started = time.monotonic()
    async with pipelined(
        app_env, redis_host="127.0.0.1", redis_port=port, redis_retries=2
    ) as connection:
        with pytest.raises(
            redis_exceptions.ConnectionError, match=f"connecting to Redis at 127.0.0.1:{port}"
        ):
            await connection.get("item:x")

    assert time.monotonic() - started < 1


async def test_silent_server_handshake_times_out(
    app_env: Callable[..., None],
) -> None:
    async with (
        fake_redis(b"") as (port, peers),
        pipelined(
            app_env, redis_host="127.0.0.1", redis_port=port, redis_socket_timeout_seconds=0.2
        ) as connection,
    ):
        started = time.monotonic()
        with pytest.raises(redis_exceptions.TimeoutError, match="Timed out reading"):
            await connection.get("item:x")
        waited = time.monotonic() - started
        with pytest.raises(redis_exceptions.TimeoutError):
            await connection.get("item:x")

        assert 0.15 < waited < 1
        assert len(peers) == 2


async def test_timed_out_read_closes_the_connection(
    app_env: Callable[..., None],
) -> None:
    # The two handshake commands go out in one write; the read after them gets no reply.
    async with (
        fake_redis(b"+OK\r\n+OK\r\n", answered_reads=1) as (port, peers),
        pipelined(
            app_env, redis_host="127.0.0.1", redis_port=port, redis_socket_timeout_seconds=0.2
        ) as connection,
    ):
        with pytest.raises(redis_exceptions.TimeoutError, match="Timed out reading"):
            await connection.get("item:x")
        with pytest.raises(redis_exceptions.TimeoutError):
            await connection.get("item:x")

        assert len(peers) == 2


async def test_unrequested_reply_closes_the_connection(
    app_env: Callable[..., None],
) -> None:
    # The two handshake commands go out in one write and get their two replies. A read
    # gets two replies too: the second has no command waiting for it.
    async with (
        fake_redis(b"+OK\r\n+OK\r\n") as (port, peers),
        pipelined(app_env, redis_host="127.0.0.1", redis_port=port) as connection,
    ):
        first = await connection.get("item:x")
        await asyncio.sleep(0.05)
        second = await connection.get("item:x")

        assert [first, second] == ["OK", "OK"]
        assert len(peers) == 2


async def test_protocol_error_closes_the_connection(app_env: Callable[..., None]) -> None:
    async with (
        fake_redis(b"?not redis\r\n") as (port, peers),
        pipelined(app_env, redis_host="127.0.0.1", redis_port=port, redis_retries=1) as connection,
    ):
        with pytest.raises(redis_exceptions.ConnectionError, match="Protocol error"):
            await connection.get("item:x")

        # The retry opened a second connection.
        assert len(peers) == 2
