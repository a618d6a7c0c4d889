"""Redis connection pool and the translation of redis-py errors.

Each worker process creates one client with its own connection pool in the application
lifespan. A command that fails with a connection error is retried ``redis_retries`` times with
exponential backoff. Timeouts are not retried, so a command such as INCR is never applied
twice because of a slow reply. With the defaults, a request fails within about a second when
Redis is down, and the pool reconnects by itself when Redis is back. Over a Unix domain socket,
a missing socket file is retried like a refused connection, because Redis removes the file
when it shuts down and creates it again at start.

Keys used by the service (an ACL may restrict the user to these patterns):
``item:*``, ``cache:*``, ``session:*``, ``ratelimit:*``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from redis import exceptions as redis_exceptions
from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.connection import AbstractConnection, Connection, UnixDomainSocketConnection
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from fastapi_stack.config import Settings
from fastapi_stack.errors import RedisCommandError, RedisUnavailableError
from fastapi_stack.logging import RepeatThrottle
from fastapi_stack.metrics import REDIS_ERRORS

logger = logging.getLogger(__name__)

CLIENT_NAME = "fastapi-stack"
RETRY_BACKOFF_BASE_SECONDS = 0.05
RETRY_BACKOFF_CAP_SECONDS = 0.5
ERROR_LOG_INTERVAL_SECONDS = 10.0

_throttle = RepeatThrottle(ERROR_LOG_INTERVAL_SECONDS)


class _WriteTimeoutMixin(AbstractConnection):
    """Bound writes without starting a task per command.

    With a socket timeout, redis-py 8.2 bounds each write with ``asyncio.wait_for``, and on
    Python 3.11 that starts a new task per command. Measured with wrk on one worker, the task
    costs about 80 microseconds of CPU per command, more than a tenth of an item read. This
    class sends with redis-py's timeout switched off and arms ``asyncio.timeout`` only for a
    write that has to wait for buffer space. Reads keep redis-py's own bound, which uses
    ``asyncio.timeout``.
    """

    _write_timeout: float | None = None

    async def send_packed_command(
        self, command: str | bytes | Iterable[bytes], check_health: bool = True
    ) -> None:
        # Connecting and the health check read replies, so they run before the socket
        # timeout is switched off, as redis-py would run them first.
        if not self.is_connected:
            await self.connect_check_health(check_health=False)
        if check_health:
            await self.check_health()  # type: ignore[no-untyped-call]
        self._write_timeout, self.socket_timeout = self.socket_timeout, None
        try:
            await super().send_packed_command(command, check_health=False)
        finally:
            self.socket_timeout = self._write_timeout

    async def _send_packed_command(self, command: Iterable[bytes]) -> None:
        chunks = list(command)
        writer = self._writer
        if writer is not None:
            _, high_water = writer.transport.get_write_buffer_limits()
            pending = writer.transport.get_write_buffer_size() + sum(map(len, chunks))
            if pending <= high_water:
                # drain() returns at once below the high-water mark: nothing to bound.
                await super()._send_packed_command(chunks)
                return
        try:
            async with asyncio.timeout(self._write_timeout):
                await super()._send_packed_command(chunks)
        except TimeoutError:
            # redis-py closed the connection when the timeout cancelled the write.
            raise redis_exceptions.TimeoutError("Timeout writing to socket") from None


class _TcpConnection(_WriteTimeoutMixin, Connection):
    pass


class _UnixConnection(_WriteTimeoutMixin, UnixDomainSocketConnection):
    pass


class QueueingConnectionPool(ConnectionPool):
    """A pool of up to ``max_connections`` that queues callers for up to ``timeout`` seconds.

    It behaves like redis-py's BlockingConnectionPool: when every connection is in use, a
    caller waits, in arrival order, and gets ``ConnectionError("No connection available.")``
    after ``timeout`` seconds. It costs less per command. On every checkout and release,
    redis-py 8.2's BlockingConnectionPool enters an ``asyncio.Condition``, a lock and a timeout,
    and records OpenTelemetry counts. Measured on one worker, that is about a third of the CPU
    time of a GET. Here a semaphore counts the free slots, and a checkout that finds one
    free takes a connection with no lock: the event loop runs one task at a time, and
    nothing between the check and the take awaits.

    What it leaves out, which this service does not use: redis-py's OpenTelemetry connection
    metrics, the release events that re-authenticate connections for a credential provider,
    and the maintenance notifications of Redis Enterprise.
    """

    def __init__(self, *, timeout: float | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.timeout = timeout
        self._slots = asyncio.Semaphore(self.max_connections)

    async def get_connection(self) -> AbstractConnection:  # type: ignore[override]
        if self._slots.locked():
            try:
                async with asyncio.timeout(self.timeout):
                    await self._slots.acquire()
            except TimeoutError:
                raise redis_exceptions.ConnectionError("No connection available.") from None
        else:
            await self._slots.acquire()
        try:
            # A free slot means fewer than max_connections are in use, so this reuses an idle
            # connection or makes a new one instead of raising MaxConnectionsError.
            connection: AbstractConnection = self.get_available_connection()  # type: ignore[no-untyped-call]
        except BaseException:
            self._slots.release()
            raise
        try:
            if not await _is_ready(connection):
                # Connects a new connection, or reconnects one that the server closed or
                # that has unread data.
                await self.ensure_connection(connection)
        except BaseException:
            await self.release(connection)
            raise
        return connection

    async def release(self, connection: AbstractConnection) -> None:
        # KeyError for a connection of another pool, as in redis-py.
        self._in_use_connections.remove(connection)
        try:
            if connection.should_reconnect():  # type: ignore[no-untyped-call]
                await connection.disconnect()
        except BaseException:
            # The connection is returned either way; closed, it reconnects on its next use.
            connection._force_disconnect()
            raise
        finally:
            self._available_connections.append(connection)
            self._slots.release()


async def _is_ready(connection: AbstractConnection) -> bool:
    """Return whether a connection is connected and has nothing unread, without a syscall.

    redis-py's ``ensure_connection`` runs the connect step, with its retry wrapper, before
    the same check, even for a connected connection.
    """
    if not connection.is_connected:
        return False
    try:
        return not await connection.can_read()
    except (redis_exceptions.ConnectionError, OSError):
        return False


def create_redis_client(settings: Settings) -> Redis:
    """Create a client that owns a new connection pool. No connection is opened yet.

    The pool connects to the Unix domain socket ``redis_socket`` when it is set, and otherwise
    to ``redis_host:redis_port`` over TCP.
    """
    transport: dict[str, Any]
    if settings.redis_socket is not None:
        # UnixDomainSocketConnection takes only ``path`` itself and passes the connection
        # options below on to AbstractConnection, as the TCP Connection does (redis-py 8.2).
        transport = {
            "connection_class": _UnixConnection,
            "path": str(settings.redis_socket),
        }
    else:
        transport = {
            "connection_class": _TcpConnection,
            "host": settings.redis_host,
            "port": settings.redis_port,
        }
    pool = QueueingConnectionPool(
        **transport,
        db=settings.redis_db,
        username=settings.redis_username,
        password=settings.redis_password.get_secret_value(),
        client_name=CLIENT_NAME,
        max_connections=settings.redis_max_connections,
        timeout=settings.redis_pool_timeout_seconds,
        socket_connect_timeout=settings.redis_connect_timeout_seconds,
        socket_timeout=settings.redis_socket_timeout_seconds,
        health_check_interval=settings.redis_health_check_interval_seconds,
        retry=Retry(
            ExponentialBackoff(cap=RETRY_BACKOFF_CAP_SECONDS, base=RETRY_BACKOFF_BASE_SECONDS),
            settings.redis_retries,
            supported_errors=(redis_exceptions.ConnectionError,),
        ),
        decode_responses=True,
    )
    return Redis.from_pool(pool)


@contextmanager
def redis_errors(operation: str) -> Iterator[None]:
    """Translate redis-py errors raised in the block into ``BackendError`` subclasses.

    ``operation`` names the work for the log line and the ``redis_errors_total`` counter.
    A connection error, timeout or authentication failure becomes RedisUnavailableError. Any
    other Redis error becomes RedisCommandError.
    """
    try:
        yield
    except (redis_exceptions.ConnectionError, redis_exceptions.TimeoutError) as exc:
        record_redis_error(operation, exc)
        raise RedisUnavailableError(
            f"Redis is unavailable ({_error_kind(exc)}); retry later."
        ) from exc
    except redis_exceptions.RedisError as exc:
        record_redis_error(operation, exc)
        raise RedisCommandError(f"Redis rejected the {operation} command; retry later.") from exc


def record_redis_error(operation: str, error: redis_exceptions.RedisError) -> None:
    """Count a Redis error and log it at most once per operation and error kind every 10 s.

    The limit applies in each worker process, so N workers log up to N lines.
    """
    kind = _error_kind(error)
    REDIS_ERRORS.labels(operation, kind).inc()
    should_log, suppressed = _throttle.should_log(f"{operation}:{kind}")
    if should_log:
        logger.warning(
            "Redis %s failed: %s: %s (%d similar errors not logged)",
            operation,
            type(error).__name__,
            error,
            suppressed,
            extra={"operation": operation, "error_kind": kind},
        )


def _error_kind(error: redis_exceptions.RedisError) -> str:
    if isinstance(error, redis_exceptions.AuthenticationError):
        return "authentication"
    if isinstance(error, redis_exceptions.TimeoutError):
        return "timeout"
    if isinstance(error, redis_exceptions.ConnectionError):
        return "connection"
    if isinstance(error, redis_exceptions.ResponseError) and str(error).startswith("OOM"):
        return "out_of_memory"
    if isinstance(error, redis_exceptions.NoPermissionError):
        return "no_permission"
    return "command"
