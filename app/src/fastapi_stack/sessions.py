"""Server-side sessions in Redis.

The cookie holds only a random session id of 256 bits (``secrets.token_urlsafe(32)``). Redis
stores the session data as JSON at ``session:<sha256 of the id>``, so a copy of the Redis data
contains no usable session ids. Each read refreshes the expiry (GETEX), which gives a sliding
idle timeout of ``session_ttl_seconds``.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import UTC, datetime

from pydantic import BaseModel, ValidationError
from redis.asyncio import Redis

from fastapi_stack.errors import ConflictError
from fastapi_stack.models import SessionData
from fastapi_stack.redis import redis_errors

SESSION_KEY_PREFIX = "session:"
SESSION_COOKIE = "session_id"
SESSION_ID_BYTES = 32
# token_urlsafe(32) returns 43 characters of the URL-safe base64 alphabet.
_SESSION_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{43}$")


class StoredSession(BaseModel):
    name: str | None
    created_at: datetime


def session_key(session_id: str) -> str:
    digest = hashlib.sha256(session_id.encode("ascii")).hexdigest()
    return f"{SESSION_KEY_PREFIX}{digest}"


def is_valid_session_id(value: str) -> bool:
    return _SESSION_ID_PATTERN.fullmatch(value) is not None


class SessionStore:
    def __init__(self, redis: Redis, ttl_seconds: int) -> None:
        self._redis = redis
        self._ttl_seconds = ttl_seconds

    async def create(self, name: str | None) -> tuple[str, SessionData]:
        """Store a new session and return its id and data."""
        session_id = secrets.token_urlsafe(SESSION_ID_BYTES)
        stored = StoredSession(name=name, created_at=datetime.now(UTC))
        with redis_errors("session create"):
            created = await self._redis.set(
                session_key(session_id), stored.model_dump_json(), ex=self._ttl_seconds, nx=True
            )
        if not created:  # pragma: no cover - 256-bit random ids do not collide in practice
            # Never hand out the id of an existing session.
            raise ConflictError("Session id collision; retry the request.")
        return session_id, self._to_data(stored)

    async def read(self, session_id: str) -> SessionData | None:
        """Return the session data and restart its expiry, or None if there is no such session."""
        if not is_valid_session_id(session_id):
            return None
        with redis_errors("session read"):
            raw = await self._redis.getex(session_key(session_id), ex=self._ttl_seconds)
        if raw is None:
            return None
        try:
            return self._to_data(StoredSession.model_validate_json(raw))
        except ValidationError:
            return None

    async def delete(self, session_id: str) -> None:
        if not is_valid_session_id(session_id):
            return
        with redis_errors("session delete"):
            await self._redis.delete(session_key(session_id))

    def _to_data(self, stored: StoredSession) -> SessionData:
        return SessionData(
            name=stored.name,
            created_at=stored.created_at,
            expires_in_seconds=self._ttl_seconds,
        )
