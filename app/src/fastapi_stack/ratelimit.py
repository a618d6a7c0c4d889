"""Per-client rate limiting of the ``/api/v1`` routes, with a fixed window counter in Redis.

``enforce_rate_limit`` is a dependency of the ``/api/v1`` router, so it runs after routing
(metrics get the route template) and before the parameters are validated.

Each client IP gets a counter at ``ratelimit:<ip>``. The first request of a window creates it
with an expiry of ``rate_limit_window_seconds``, and the window ends when the key expires. A
Lua script increments and reads the counter in one atomic step, so concurrent workers and
replicas share one exact count. IPv6 clients are counted per /64 network, since one host
usually owns a whole /64.

A fixed window lets a client send up to twice the limit across a window boundary. That is
accepted here in exchange for one small key and one round trip per request.

Every limited response carries ``RateLimit-Limit``, ``RateLimit-Remaining`` and
``RateLimit-Reset`` (seconds until the window resets), the field names of the IETF
draft-ietf-httpapi-ratelimit-headers. A rejected request gets 429 with ``Retry-After``.

When Redis fails, the limiter fails open: the request is served without rate-limit headers,
and the error is counted in ``redis_errors_total`` and logged. Failing closed would turn a
Redis outage into an outage of every API route, including those that work without Redis, such
as ``/api/v1/compute``. Caddy in front of the service remains the place for a hard limit.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Network, ip_address

from fastapi import Request
from redis import exceptions as redis_exceptions
from redis.asyncio import Redis
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fastapi_stack.errors import RateLimitExceededError
from fastapi_stack.metrics import RATE_LIMITED
from fastapi_stack.redis import record_redis_error

logger = logging.getLogger(__name__)

RATE_LIMIT_KEY_PREFIX = "ratelimit:"
IPV6_CLIENT_PREFIX_LENGTH = 64
UNKNOWN_CLIENT = "unknown"
RATE_LIMIT_SCOPE_KEY = "fastapi_stack.rate_limit"

# KEYS[1]: the counter. ARGV[1]: the window length in milliseconds.
# Returns {requests in the current window, milliseconds until the window ends}.
# PTTL is -1 right after INCR created the key, and the window starts then.
FIXED_WINDOW_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
"""


@dataclass(frozen=True, slots=True)
class RateLimitStatus:
    limit: int
    remaining: int
    reset_seconds: int
    allowed: bool

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_seconds),
        }


def client_key(client_ip: str | None) -> str:
    """Return the counter key of a client: its IPv4 address or its IPv6 /64 network."""
    if client_ip is None:
        return f"{RATE_LIMIT_KEY_PREFIX}{UNKNOWN_CLIENT}"
    try:
        address = ip_address(client_ip)
    except ValueError:
        return f"{RATE_LIMIT_KEY_PREFIX}{UNKNOWN_CLIENT}"
    if isinstance(address, IPv6Address):
        network = IPv6Network((address, IPV6_CLIENT_PREFIX_LENGTH), strict=False)
        return f"{RATE_LIMIT_KEY_PREFIX}{network}"
    return f"{RATE_LIMIT_KEY_PREFIX}{address}"


class RateLimiter:
    def __init__(self, redis: Redis, limit: int, window_seconds: int) -> None:
        self.limit = limit
        self.window_seconds = window_seconds
        # register_script runs EVALSHA and loads the script (SCRIPT LOAD) on NOSCRIPT.
        self._script = redis.register_script(FIXED_WINDOW_SCRIPT)

    async def hit(self, client_ip: str | None) -> RateLimitStatus | None:
        """Count one request of ``client_ip``. Return None when Redis failed (fail open)."""
        try:
            count, ttl_ms = await self._script(
                keys=[client_key(client_ip)], args=[self.window_seconds * 1000]
            )
        except redis_exceptions.RedisError as exc:
            record_redis_error("rate limit", exc)
            return None
        return RateLimitStatus(
            limit=self.limit,
            remaining=max(self.limit - int(count), 0),
            reset_seconds=max(math.ceil(int(ttl_ms) / 1000), 1),
            allowed=int(count) <= self.limit,
        )


async def enforce_rate_limit(request: Request) -> None:
    """Count the request against its client's limit; raise RateLimitExceededError over it.

    The status is stored in the request scope, where ``RateLimitHeadersMiddleware`` finds it
    to add the headers to whatever response the route returns. It is not stored in
    ``request.state``: uvicorn copies that dictionary per request, but asgi-lifespan (used in
    the tests) passes the same one to every request.
    """
    limiter: RateLimiter | None = request.state.rate_limiter
    if limiter is None:
        return
    result = await limiter.hit(request.client.host if request.client else None)
    if result is None:
        return
    request.scope[RATE_LIMIT_SCOPE_KEY] = result
    if not result.allowed:
        RATE_LIMITED.inc()
        raise RateLimitExceededError(
            f"Rate limit of {result.limit} requests per {limiter.window_seconds} s exceeded; "
            f"retry in {result.reset_seconds} s.",
            headers={"Retry-After": str(result.reset_seconds)},
        )


class RateLimitHeadersMiddleware:
    """Add the RateLimit-* headers of ``enforce_rate_limit`` to the response of a request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                result: RateLimitStatus | None = scope.get(RATE_LIMIT_SCOPE_KEY)
                if result is not None:
                    headers = MutableHeaders(scope=message)
                    for name, value in result.headers().items():
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)
