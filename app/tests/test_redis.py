from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from redis import exceptions as redis_exceptions

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
