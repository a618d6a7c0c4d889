"""A small JSON endpoint that reads nothing from Redis.

It costs what every API route costs (routing, middleware, serialization) and nothing more,
so comparing it with an endpoint that reads Redis shows what the Redis round trip adds.
"""

from __future__ import annotations

from fastapi import APIRouter

from fastapi_stack.api import API_V1_PREFIX
from fastapi_stack.models import Greeting

router = APIRouter(prefix=API_V1_PREFIX, tags=["hello"])


@router.get("/hello")
async def hello() -> Greeting:
    """Return a fixed greeting."""
    return Greeting(message="Hello")
