"""Application factory and lifespan.

``create_app()`` is the uvicorn factory (``fastapi_stack.main:create_app``). The Redis client,
with its connection pool, and the pipelined connection for item reads are created in the
lifespan of each worker process and closed on shutdown. Redis being down at start-up is logged
but does not stop the server: ``/readyz`` reports it, and both connect once Redis is back.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TypedDict

from fastapi import FastAPI
from redis import exceptions as redis_exceptions
from redis.asyncio import Redis

from fastapi_stack import __version__
from fastapi_stack.api.main import api_router, root_router
from fastapi_stack.client_ip import ProxyHeadersMiddleware
from fastapi_stack.config import Settings, load_settings
from fastapi_stack.error_handlers import register_error_handlers
from fastapi_stack.metrics import mark_dead_workers, mark_process_dead
from fastapi_stack.middleware import RequestContextMiddleware
from fastapi_stack.pipelined import PipelinedConnection
from fastapi_stack.ratelimit import RateLimiter, RateLimitHeadersMiddleware
from fastapi_stack.redis import create_redis_client

logger = logging.getLogger(__name__)


class AppState(TypedDict):
    """Lifespan state, copied into ``request.state`` of every request."""

    settings: Settings
    redis: Redis
    reads: PipelinedConnection
    rate_limiter: RateLimiter | None


def _lifespan(settings: Settings) -> Callable[[FastAPI], AbstractAsyncContextManager[AppState]]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[AppState]:
        mark_dead_workers()
        redis = create_redis_client(settings)
        reads = PipelinedConnection(settings)
        limiter = (
            RateLimiter(redis, settings.rate_limit_requests, settings.rate_limit_window_seconds)
            if settings.rate_limit_requests > 0
            else None
        )
        try:
            await redis.ping()
        except redis_exceptions.RedisError as exc:
            logger.warning(
                "Redis at %s is not reachable at start-up (%s: %s); /readyz reports 503 "
                "until it is",
                settings.redis_address,
                type(exc).__name__,
                exc,
            )
        else:
            logger.info("Connected to Redis at %s", settings.redis_address)
        try:
            yield AppState(settings=settings, redis=redis, reads=reads, rate_limiter=limiter)
        finally:
            await reads.aclose()
            await redis.aclose()
            mark_process_dead(os.getpid())
            logger.info("Closed the Redis connection pool")

    return lifespan


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the application. Without ``settings``, they are loaded from the environment."""
    settings = settings or load_settings()
    # NOTE: /docs and /redoc load their scripts from a CDN, which the Content-Security-Policy
    # of the stack's Caddy blocks. Serving them from the image would need a CSP exception.
    app = FastAPI(
        title="fastapi-stack",
        version=__version__,
        summary="Items, cached computations and sessions stored in Redis.",
        lifespan=_lifespan(settings),
    )
    register_error_handlers(app)
    app.include_router(root_router)
    app.include_router(api_router)

    # add_middleware wraps the application, so the last one added runs first on a request.
    app.add_middleware(RateLimitHeadersMiddleware)
    app.add_middleware(RequestContextMiddleware)
    app.add_middleware(ProxyHeadersMiddleware, trusted=settings.trusted_networks)
    return app
