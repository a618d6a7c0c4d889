from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis

from fastapi_stack.config import Settings
from fastapi_stack.redis import create_redis_client
from fastapi_stack.sessions import SessionStore, is_valid_session_id, session_key


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[SessionStore]:
    client = create_redis_client(settings)
    yield SessionStore(client, ttl_seconds=1)
    await client.aclose()


async def test_reads_extend_idle_timeout(store: SessionStore) -> None:
    session_id, _ = await store.create("slider")

    # Four reads 0.6 s apart span 2.4 s, more than twice the 1 s TTL.
    for _ in range(4):
        await asyncio.sleep(0.6)
        assert await store.read(session_id) is not None


async def test_idle_session_expires(store: SessionStore) -> None:
    session_id, _ = await store.create("idle")

    await asyncio.sleep(1.2)

    assert await store.read(session_id) is None


async def test_session_ids_are_unique_and_long(store: SessionStore) -> None:
    ids = {(await store.create(None))[0] for _ in range(20)}

    assert len(ids) == 20
    assert all(is_valid_session_id(session_id) for session_id in ids)


async def test_corrupt_session_data_reads_as_missing(
    store: SessionStore, redis_admin: redis.Redis
) -> None:
    session_id, _ = await store.create("x")
    redis_admin.set(session_key(session_id), "not json")

    assert await store.read(session_id) is None


def test_session_id_format() -> None:
    assert is_valid_session_id("A" * 43)
    assert not is_valid_session_id("A" * 42)
    assert not is_valid_session_id("A" * 42 + "=")
