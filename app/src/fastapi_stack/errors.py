"""Errors raised by this service.

Lower-level errors (redis-py, pydantic, OS errors) are caught where they happen and re-raised
as one of these classes with ``raise ... from exc``:

- ``AppError``: base class.
  - ``ConfigurationError``: invalid settings. The service refuses to start.
  - ``ApiError``: an error that maps to one HTTP response in the JSON error shape.
    - ``NotFoundError`` (404), ``SessionRequiredError`` (401), ``ConflictError`` (409),
      ``RateLimitExceededError`` (429).
    - ``BackendError`` (503): Redis failed. Subclasses ``RedisUnavailableError`` (no
      connection, timeout, authentication failure) and ``RedisCommandError`` (Redis replied
      with an error, such as OOM or NOPERM).

``main.py`` registers the handlers that turn these errors into responses.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from fastapi import status


class AppError(Exception):
    """Base class of the errors this service raises on purpose."""


class ConfigurationError(AppError):
    """Invalid or missing settings, detected before the server starts."""


class ApiError(AppError):
    """An error that the API returns as one JSON error response.

    ``code`` is a stable machine-readable identifier. ``message`` is for people, and must never
    contain a secret because it is sent to the client.
    """

    status_code: ClassVar[int] = status.HTTP_500_INTERNAL_SERVER_ERROR
    code: ClassVar[str] = "internal_error"

    def __init__(self, message: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers: dict[str, str] = dict(headers or {})


class NotFoundError(ApiError):
    status_code = status.HTTP_404_NOT_FOUND
    code = "not_found"


class SessionRequiredError(ApiError):
    status_code = status.HTTP_401_UNAUTHORIZED
    code = "session_required"


class ConflictError(ApiError):
    status_code = status.HTTP_409_CONFLICT
    code = "conflict"


class RateLimitExceededError(ApiError):
    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    code = "rate_limited"


class BackendError(ApiError):
    """Redis failed, so the request cannot be served now. Clients may retry later."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    code = "backend_error"


class RedisUnavailableError(BackendError):
    """No usable connection to Redis: refused, timed out, or authentication failed."""

    code = "redis_unavailable"


class RedisCommandError(BackendError):
    """Redis replied to a command with an error, for example OOM or NOPERM."""

    code = "redis_command_failed"
