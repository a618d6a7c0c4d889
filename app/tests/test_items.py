from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from fastapi_stack import items as items_module
from fastapi_stack.config import Settings
from fastapi_stack.errors import ConflictError
from fastapi_stack.items import ItemStore, item_key
from fastapi_stack.models import ItemCreate, ItemUpdate
from fastapi_stack.pipelined import PipelinedConnection
from fastapi_stack.redis import create_redis_client


@pytest.fixture
async def redis_client(settings: Settings) -> AsyncIterator[Redis]:
    client = create_redis_client(settings)
    yield client
    await client.aclose()


@pytest.fixture
async def reads(settings: Settings) -> AsyncIterator[PipelinedConnection]:
    connection = PipelinedConnection(settings)
    yield connection
    await connection.aclose()


class InterferingRedis:
    """Wraps a client so that another writer changes the key inside every WATCH window."""

    def __init__(self, client: Redis, writer: Redis) -> None:
        self._client = client
        self._writer = writer

    def pipeline(self, transaction: bool = True) -> object:
        pipe = self._client.pipeline(transaction=transaction)
        original_get = pipe.get
        writer = self._writer

        async def get_then_interfere(key: str) -> bytes | str | None:
            value = await original_get(key)
            if value is not None:
                await writer.set(key, value)
            return value

        pipe.get = get_then_interfere  # type: ignore[method-assign,assignment]
        return pipe


async def test_update_retries_then_conflicts(
    redis_client: Redis,
    reads: PipelinedConnection,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="fastapi_stack.items")
    item = await ItemStore(redis_client, reads).create(ItemCreate(name="contended"))
    writer = create_redis_client(settings)
    store = ItemStore(InterferingRedis(redis_client, writer), reads)  # type: ignore[arg-type]
    try:
        with pytest.raises(ConflictError, match=str(item.id)):
            await store.update(item.id, ItemUpdate(name="mine"))
    finally:
        await writer.aclose()

    retries = [r for r in caplog.records if "changed during an update" in r.getMessage()]
    assert len(retries) == items_module.MAX_UPDATE_ATTEMPTS
    assert (await ItemStore(redis_client, reads).get(item.id)).name == "contended"


def test_item_key_format() -> None:
    item_id = uuid.UUID("12345678-1234-5678-1234-567812345678")

    assert item_key(item_id) == "item:12345678-1234-5678-1234-567812345678"
