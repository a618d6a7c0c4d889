"""FastAPI dependencies and their ``Annotated`` aliases for route signatures.

The dependencies are ``async def`` although they do not await anything: FastAPI runs a plain
``def`` dependency in a worker thread, which costs a thread hand-off per request.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis

from fastapi_stack.cache import JsonCache
from fastapi_stack.config import Settings
from fastapi_stack.items import ItemStore
from fastapi_stack.sessions import SessionStore


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.state.settings
    return settings


async def get_redis(request: Request) -> Redis:
    redis: Redis = request.state.redis
    return redis


SettingsDep = Annotated[Settings, Depends(get_settings)]
RedisDep = Annotated[Redis, Depends(get_redis)]


async def get_item_store(redis: RedisDep) -> ItemStore:
    return ItemStore(redis)


async def get_cache(redis: RedisDep, settings: SettingsDep) -> JsonCache:
    return JsonCache(redis, settings.cache_ttl_seconds)


async def get_session_store(redis: RedisDep, settings: SettingsDep) -> SessionStore:
    return SessionStore(redis, settings.session_ttl_seconds)


ItemStoreDep = Annotated[ItemStore, Depends(get_item_store)]
CacheDep = Annotated[JsonCache, Depends(get_cache)]
SessionStoreDep = Annotated[SessionStore, Depends(get_session_store)]
