"""A CPU-bound endpoint with a cache-aside layer in Redis."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response
from starlette.concurrency import run_in_threadpool

from fastapi_stack.api import API_V1_PREFIX
from fastapi_stack.compute import MAX_N, count_primes
from fastapi_stack.deps import CacheDep
from fastapi_stack.models import PrimeCount

CACHE_HEADER = "X-Cache"
CACHE_KEY_VERSION = "v1"

router = APIRouter(prefix=f"{API_V1_PREFIX}/compute", tags=["compute"])


@router.get("/{n}")
async def get_prime_count(
    n: Annotated[int, Path(ge=0, le=MAX_N, description="Upper bound, inclusive.")],
    cache: CacheDep,
    response: Response,
) -> PrimeCount:
    """Count the primes <= ``n``, a deliberately costly computation (tens of ms near MAX_N).

    Results are cached in Redis for ``APP_CACHE_TTL_SECONDS``. The ``X-Cache`` header is HIT
    when the result came from the cache and MISS when it was computed. When Redis is down or
    rejects the write, the result is computed and returned with MISS.
    """
    key = f"primes:{CACHE_KEY_VERSION}:{n}"
    cached = await cache.get(key, PrimeCount)
    if cached is not None:
        response.headers[CACHE_HEADER] = "HIT"
        return cached
    # A worker thread keeps the event loop free for other requests, such as the probes.
    result = await run_in_threadpool(count_primes, n)
    await cache.set(key, result)
    response.headers[CACHE_HEADER] = "MISS"
    return result
