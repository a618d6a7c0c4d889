"""Routers of the service: probes and metrics at the root, the rate-limited JSON API under
/api/v1."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from fastapi_stack.api.routes import compute, health, hello, items, metrics, session
from fastapi_stack.ratelimit import enforce_rate_limit

api_router = APIRouter(dependencies=[Depends(enforce_rate_limit)])
api_router.include_router(hello.router)
api_router.include_router(items.router)
api_router.include_router(compute.router)
api_router.include_router(session.router)

root_router = APIRouter()
root_router.include_router(health.router)
root_router.include_router(metrics.router)
