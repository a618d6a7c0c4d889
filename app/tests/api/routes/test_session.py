from __future__ import annotations

import asyncio
import hashlib

import httpx
import redis

SESSION = "/api/v1/session"


def session_key(client: httpx.AsyncClient) -> str:
    session_id = client.cookies["session_id"]
    return "session:" + hashlib.sha256(session_id.encode()).hexdigest()


async def test_create_sets_secure_cookie(client: httpx.AsyncClient) -> None:
    response = await client.post(SESSION, json={"name": "noc-operator"})

    assert response.status_code == 201
    body = response.json()
    assert body["name"] == "noc-operator"
    assert body["expires_in_seconds"] == 1800
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("session_id=")
    assert "HttpOnly" in cookie
    assert "Secure" in cookie
    assert "SameSite=lax" in cookie
    assert "Path=/" in cookie
    session_id = client.cookies["session_id"]
    assert len(session_id) == 43


async def test_create_without_body(client: httpx.AsyncClient) -> None:
    response = await client.post(SESSION)

    assert response.status_code == 201
    assert response.json()["name"] is None


async def test_create_rejects_long_name(client: httpx.AsyncClient) -> None:
    response = await client.post(SESSION, json={"name": "x" * 101})

    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "name"


async def test_redis_stores_hash_of_id(client: httpx.AsyncClient, redis_admin: redis.Redis) -> None:
    await client.post(SESSION, json={"name": "a"})
    session_id = client.cookies["session_id"]

    keys = redis_admin.keys("session:*")

    assert keys == [session_key(client)]
    stored = redis_admin.get(keys[0])
    assert session_id not in keys[0]
    assert isinstance(stored, str)
    assert session_id not in stored


async def test_read_returns_session(client: httpx.AsyncClient) -> None:
    created = (await client.post(SESSION, json={"name": "reader"})).json()

    response = await client.get(SESSION)

    assert response.status_code == 200
    assert response.json() == created


async def test_read_without_cookie_is_401(client: httpx.AsyncClient) -> None:
    response = await client.get(SESSION)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "session_required"


async def test_read_unknown_session_is_404(client: httpx.AsyncClient) -> None:
    client.cookies.set("session_id", "A" * 43)

    response = await client.get(SESSION)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert 'session_id=""' in response.headers["set-cookie"]


async def test_read_malformed_cookie_is_404(client: httpx.AsyncClient) -> None:
    client.cookies.set("session_id", "../../etc")

    response = await client.get(SESSION)

    assert response.status_code == 404


async def test_read_refreshes_expiry(client: httpx.AsyncClient, redis_admin: redis.Redis) -> None:
    await client.post(SESSION)
    key = session_key(client)
    redis_admin.pexpire(key, 1000)

    response = await client.get(SESSION)

    assert response.status_code == 200
    assert redis_admin.ttl(key) > 1700


async def test_session_expires_when_idle(
    client: httpx.AsyncClient, redis_admin: redis.Redis
) -> None:
    await client.post(SESSION)
    redis_admin.pexpire(session_key(client), 50)
    await asyncio.sleep(0.1)

    response = await client.get(SESSION)

    assert response.status_code == 404


async def test_delete_ends_session(client: httpx.AsyncClient, redis_admin: redis.Redis) -> None:
    await client.post(SESSION)
    session_id = client.cookies["session_id"]

    response = await client.delete(SESSION)

    assert response.status_code == 204
    assert redis_admin.keys("session:*") == []
    assert 'session_id=""' in response.headers["set-cookie"]
    client.cookies.set("session_id", session_id)
    assert (await client.get(SESSION)).status_code == 404


async def test_delete_without_session_is_204(client: httpx.AsyncClient) -> None:
    response = await client.delete(SESSION)

    assert response.status_code == 204


async def test_delete_with_malformed_cookie_is_204(client: httpx.AsyncClient) -> None:
    client.cookies.set("session_id", "short")

    response = await client.delete(SESSION)

    assert response.status_code == 204
