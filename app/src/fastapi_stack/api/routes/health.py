"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter

from fastapi_stack.deps import RedisDep
from fastapi_stack.errors import RedisUnavailableError
from fastapi_stack.models import ErrorResponse, HealthStatus, ReadinessStatus
from fastapi_stack.redis import redis_errors

router = APIRouter(tags=["probes"])


@router.get("/healthz")
async def healthz() -> HealthStatus:
    """Report that the process serves requests.

    Checks no dependency, so that a Redis outage does not make the orchestrator restart the
    container.
    """
    return HealthStatus(status="ok")


@router.get(
    "/readyz",
    responses={503: {"model": ErrorResponse, "description": "Redis is not reachable."}},
)
async def readyz(redis: RedisDep) -> ReadinessStatus:
    """Report whether Redis replies to PING. Returns 503 with the reason in the error shape."""
    with redis_errors("readiness ping"):
        if not await redis.ping():  # pragma: no cover - PING returns True or raises
            raise RedisUnavailableError("Redis did not reply to PING.")
    return ReadinessStatus(status="ready", redis="ok")
