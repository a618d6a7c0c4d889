from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest
import redis

from fastapi_stack.config import Settings, load_settings
from fastapi_stack.ratelimit import RateLimiter, client_key
from fastapi_stack.redis import create_redis_client
from tests.conftest import ClientFactory, RedisServer, running_client

LIMIT = 3
ITEMS = "/api/v1/items"
TRUSTED_PROXY = "127.0.0.1"


@pytest.fixture
def settings(
    app_env: Callable[..., None], redis_server: RedisServer, redis_admin: redis.Redis
) -> Settings:
    app_env(
        redis_host="127.0.0.1",
        redis_port=redis_server.port,
        rate_limit_requests=LIMIT,
        rate_limit_window_seconds=1,
    )
    return load_settings()


async def test_requests_up_to_limit_pass(client: httpx.AsyncClient) -> None:
    for expected_remaining in range(LIMIT - 1, -1, -1):
        response = await client.get(ITEMS)
        assert response.status_code == 200
        assert response.headers["ratelimit-limit"] == str(LIMIT)
        assert response.headers["ratelimit-remaining"] == str(expected_remaining)
        assert response.headers["ratelimit-reset"] == "1"


async def test_request_over_limit_is_429(client: httpx.AsyncClient) -> None:
    for _ in range(LIMIT):
        await client.get(ITEMS)

    response = await client.get(ITEMS)

    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"
    assert response.headers["ratelimit-remaining"] == "0"
    assert response.headers["ratelimit-limit"] == str(LIMIT)
    error = response.json()["error"]
    assert error["code"] == "rate_limited"
    assert error["request_id"] == response.headers["x-request-id"]


async def test_new_window_passes_again(client: httpx.AsyncClient) -> None:
    for _ in range(LIMIT + 1):
        await client.get(ITEMS)

    await asyncio.sleep(1.1)
    response = await client.get(ITEMS)

    assert response.status_code == 200
    assert response.headers["ratelimit-remaining"] == str(LIMIT - 1)


async def test_error_responses_carry_headers(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{ITEMS}/00000000-0000-0000-0000-000000000000")

    assert response.status_code == 404
    assert response.headers["ratelimit-remaining"] == str(LIMIT - 1)


async def test_probes_are_not_limited(client: httpx.AsyncClient) -> None:
    for _ in range(LIMIT + 2):
        response = await client.get("/healthz")
        assert response.status_code == 200
        assert "ratelimit-limit" not in response.headers


async def test_spoofed_forwarded_for_is_ignored(
    make_client: ClientFactory, redis_admin: redis.Redis
) -> None:
    client = make_client(peer="192.0.2.10")
    statuses = []
    for index in range(LIMIT + 1):
        response = await client.get(ITEMS, headers={"X-Forwarded-For": f"198.51.100.{index}"})
        statuses.append(response.status_code)

    assert statuses == [200] * LIMIT + [429]
    assert redis_admin.keys("ratelimit:*") == ["ratelimit:192.0.2.10"]


async def test_forwarded_for_from_trusted_proxy_is_used(
    make_client: ClientFactory, redis_admin: redis.Redis
) -> None:
    proxy = make_client(peer=TRUSTED_PROXY)
    for _ in range(LIMIT):
        response = await proxy.get(ITEMS, headers={"X-Forwarded-For": "192.0.2.20"})
        assert response.status_code == 200

    other_client = await proxy.get(ITEMS, headers={"X-Forwarded-For": "192.0.2.21"})
    limited = await proxy.get(ITEMS, headers={"X-Forwarded-For": "192.0.2.20"})

    assert other_client.status_code == 200
    assert limited.status_code == 429
    assert sorted(redis_admin.keys("ratelimit:*")) == [
        "ratelimit:192.0.2.20",
        "ratelimit:192.0.2.21",
    ]


async def test_forwarded_for_skips_trusted_hops(
    make_client: ClientFactory, redis_admin: redis.Redis
) -> None:
    proxy = make_client(peer=TRUSTED_PROXY)

    await proxy.get(ITEMS, headers={"X-Forwarded-For": "198.51.100.7, 192.0.2.30, 127.0.0.9"})

    assert redis_admin.keys("ratelimit:*") == ["ratelimit:192.0.2.30"]


async def test_ipv6_clients_share_their_64(
    make_client: ClientFactory, redis_admin: redis.Redis
) -> None:
    first = make_client(peer="2001:db8:1:2::10")
    second = make_client(peer="2001:db8:1:2:aaaa::1")

    await first.get(ITEMS)
    response = await second.get(ITEMS)

    assert response.headers["ratelimit-remaining"] == str(LIMIT - 2)
    assert redis_admin.keys("ratelimit:*") == ["ratelimit:2001:db8:1:2::/64"]


def test_client_key_forms() -> None:
    assert client_key("192.0.2.1") == "ratelimit:192.0.2.1"
    assert client_key("2001:db8::1") == "ratelimit:2001:db8::/64"
    assert client_key(None) == "ratelimit:unknown"
    assert client_key("not an address") == "ratelimit:unknown"


async def test_limiter_counts_atomically(settings: Settings, redis_admin: redis.Redis) -> None:
    redis_client = create_redis_client(settings)
    limiter = RateLimiter(redis_client, limit=50, window_seconds=60)
    try:
        results = await asyncio.gather(*(limiter.hit("192.0.2.40") for _ in range(60)))
    finally:
        await redis_client.aclose()

    allowed = [result for result in results if result is not None and result.allowed]
    assert len(allowed) == 50
    assert redis_admin.get("ratelimit:192.0.2.40") == "60"
    assert 0 < redis_admin.pttl("ratelimit:192.0.2.40") <= 60_000


async def test_limiter_restores_missing_expiry(
    settings: Settings, redis_admin: redis.Redis
) -> None:
    redis_admin.set("ratelimit:192.0.2.41", 5)
    redis_client = create_redis_client(settings)
    limiter = RateLimiter(redis_client, limit=10, window_seconds=2)
    try:
        result = await limiter.hit("192.0.2.41")
    finally:
        await redis_client.aclose()

    assert result is not None
    assert result.remaining == 4
    assert 0 < redis_admin.pttl("ratelimit:192.0.2.41") <= 2000


async def test_zero_limit_disables_limiter(settings: Settings) -> None:
    unlimited = settings.model_copy(update={"rate_limit_requests": 0})

    async with running_client(unlimited) as client:
        responses = [await client.get(ITEMS) for _ in range(LIMIT + 2)]

    assert {response.status_code for response in responses} == {200}
    assert all("ratelimit-limit" not in response.headers for response in responses)
