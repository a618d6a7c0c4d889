"""Cache-aside storage of JSON results in Redis under ``cache:*`` keys.

A cache must never make a request fail: when Redis is down or rejects a write (for example
OOM when ``maxmemory`` is reached), the error is counted and logged, and the caller computes
the value as on a miss.
"""

from __future__ import annotations

import logging
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from redis import exceptions as redis_exceptions
from redis.asyncio import Redis

from fastapi_stack.metrics import CACHE_LOOKUPS
from fastapi_stack.redis import record_redis_error

logger = logging.getLogger(__name__)

CACHE_KEY_PREFIX = "cache:"

ModelT = TypeVar("ModelT", bound=BaseModel)


class JsonCache:
    def __init__(self, redis: Redis, ttl_seconds: int) -> None:
        self._redis = redis
        self._ttl_seconds = ttl_seconds

    async def get(self, key: str, model: type[ModelT]) -> ModelT | None:
        """Return the cached value of ``key``, or None on a miss or a Redis error."""
        try:
            raw = await self._redis.get(f"{CACHE_KEY_PREFIX}{key}")
        except redis_exceptions.RedisError as exc:
            record_redis_error("cache get", exc)
            CACHE_LOOKUPS.labels("error").inc()
            return None
        if raw is None:
            CACHE_LOOKUPS.labels("miss").inc()
            return None
        try:
            value = model.model_validate_json(raw)
        except ValidationError:
            logger.warning("Ignoring invalid cached value at %s%s", CACHE_KEY_PREFIX, key)
            CACHE_LOOKUPS.labels("miss").inc()
            return None
        CACHE_LOOKUPS.labels("hit").inc()
        return value

    async def set(self, key: str, value: BaseModel) -> bool:
        """Store ``value`` with the cache TTL. Return False when Redis failed."""
        try:
            await self._redis.set(
                f"{CACHE_KEY_PREFIX}{key}", value.model_dump_json(), ex=self._ttl_seconds
            )
        except redis_exceptions.RedisError as exc:
            record_redis_error("cache set", exc)
            return False
        return True
