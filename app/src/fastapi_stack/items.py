"""Item storage in Redis.

Each item is a JSON string at ``item:<uuid>``. The sorted set ``item:index`` contains every item
id, scored by creation time in milliseconds, for paging in creation order. Create and delete
change both keys in one MULTI/EXEC transaction, so an item and its index entry never diverge.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

from redis import exceptions as redis_exceptions
from redis.asyncio import Redis

from fastapi_stack.errors import ConflictError, NotFoundError
from fastapi_stack.models import Item, ItemCreate, ItemPage, ItemUpdate
from fastapi_stack.pipelined import PipelinedConnection
from fastapi_stack.redis import redis_errors

logger = logging.getLogger(__name__)

ITEM_KEY_PREFIX = "item:"
ITEM_INDEX_KEY = "item:index"
MAX_UPDATE_ATTEMPTS = 5


def item_key(item_id: uuid.UUID) -> str:
    return f"{ITEM_KEY_PREFIX}{item_id}"


class ItemStore:
    """Items in Redis. Reads of one item go through ``reads``, everything else ``redis``."""

    def __init__(self, redis: Redis, reads: PipelinedConnection) -> None:
        self._redis = redis
        self._reads = reads

    async def create(self, data: ItemCreate) -> Item:
        now = datetime.now(UTC)
        item = Item(
            id=uuid.uuid4(),
            name=data.name,
            description=data.description,
            created_at=now,
            updated_at=now,
        )
        with redis_errors("item create"):
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.set(item_key(item.id), item.model_dump_json())
                pipe.zadd(ITEM_INDEX_KEY, {str(item.id): _milliseconds(now)})
                await pipe.execute()
        return item

    async def get(self, item_id: uuid.UUID) -> Item:
        return Item.model_validate_json(await self.get_json(item_id))

    async def get_json(self, item_id: uuid.UUID) -> str:
        """Return the item's JSON as stored, which ``Item.model_dump_json`` wrote.

        A read that returns this text as the response skips parsing and serializing the item.
        """
        with redis_errors("item get"):
            raw = await self._reads.get(item_key(item_id))
        if raw is None:
            raise NotFoundError(f"Item {item_id} not found.")
        return raw

    async def list(self, *, limit: int, offset: int) -> ItemPage:
        """Return up to ``limit`` items, skipping the ``offset`` oldest ones."""
        with redis_errors("item list"):
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.zcard(ITEM_INDEX_KEY)
                pipe.zrange(ITEM_INDEX_KEY, offset, offset + limit - 1)
                total, ids = await pipe.execute()
            values = await self._redis.mget([f"{ITEM_KEY_PREFIX}{i}" for i in ids]) if ids else []
        # An item deleted between the two round trips has no value, and is left out.
        items = [Item.model_validate_json(value) for value in values if value is not None]
        return ItemPage(items=items, total=total, limit=limit, offset=offset)

    async def update(self, item_id: uuid.UUID, changes: ItemUpdate) -> Item:
        """Apply ``changes`` with optimistic locking (WATCH), so concurrent updates never mix.

        Raises ConflictError after 5 attempts that all lost a race with another writer.
        """
        key = item_key(item_id)
        fields = changes.model_dump(exclude_unset=True)
        with redis_errors("item update"):
            async with self._redis.pipeline(transaction=True) as pipe:
                for _ in range(MAX_UPDATE_ATTEMPTS):
                    try:
                        await pipe.watch(key)
                        raw = await pipe.get(key)
                        if raw is None:
                            raise NotFoundError(f"Item {item_id} not found.")
                        item = _apply_changes(Item.model_validate_json(raw), fields)
                        pipe.multi()  # type: ignore[no-untyped-call]
                        pipe.set(key, item.model_dump_json(), xx=True)
                        await pipe.execute()
                    except redis_exceptions.WatchError:
                        logger.info("Item %s changed during an update; retrying", item_id)
                        continue
                    return item
        raise ConflictError(f"Item {item_id} was changed by other requests; retry the update.")

    async def delete(self, item_id: uuid.UUID) -> None:
        with redis_errors("item delete"):
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.delete(item_key(item_id))
                pipe.zrem(ITEM_INDEX_KEY, str(item_id))
                deleted, _ = await pipe.execute()
        if not deleted:
            raise NotFoundError(f"Item {item_id} not found.")


def _apply_changes(item: Item, fields: dict[str, object]) -> Item:
    return item.model_copy(update=fields | {"updated_at": datetime.now(UTC)})


def _milliseconds(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)
