from __future__ import annotations

import httpx
import redis

COMPUTE = "/api/v1/compute"


async def test_compute_miss_then_hit(client: httpx.AsyncClient) -> None:
    first = await client.get(f"{COMPUTE}/1000000")
    second = await client.get(f"{COMPUTE}/1000000")

    assert first.status_code == 200
    assert first.headers["x-cache"] == "MISS"
    assert first.json() == {"n": 1000000, "prime_count": 78498, "largest_prime": 999983}
    assert second.status_code == 200
    assert second.headers["x-cache"] == "HIT"
    assert second.json() == first.json()


async def test_compute_caches_with_ttl(client: httpx.AsyncClient, redis_admin: redis.Redis) -> None:
    await client.get(f"{COMPUTE}/100")

    keys = redis_admin.keys("cache:*")
    assert keys == ["cache:primes:v1:100"]
    ttl = redis_admin.ttl(keys[0])
    assert 0 < ttl <= 300


async def test_compute_out_of_range_is_422(client: httpx.AsyncClient) -> None:
    for n in ("-1", "5000001", "ten"):
        response = await client.get(f"{COMPUTE}/{n}")
        assert response.status_code == 422, n
        assert response.json()["error"]["details"][0]["field"] == "n"


async def test_compute_ignores_invalid_cached_value(
    client: httpx.AsyncClient, redis_admin: redis.Redis
) -> None:
    redis_admin.set("cache:primes:v1:10", "{not json")

    response = await client.get(f"{COMPUTE}/10")

    assert response.status_code == 200
    assert response.headers["x-cache"] == "MISS"
    assert response.json()["prime_count"] == 4


async def test_compute_survives_redis_oom(
    client: httpx.AsyncClient, redis_admin: redis.Redis
) -> None:
    redis_admin.config_set("maxmemory-policy", "noeviction")
    redis_admin.config_set("maxmemory", 1)

    first = await client.get(f"{COMPUTE}/50")
    second = await client.get(f"{COMPUTE}/50")

    redis_admin.config_set("maxmemory", 0)
    assert first.status_code == 200
    assert first.headers["x-cache"] == "MISS"
    assert second.headers["x-cache"] == "MISS"
    assert second.json()["prime_count"] == 15
    assert redis_admin.keys("cache:*") == []
