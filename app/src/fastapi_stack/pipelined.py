"""One Redis connection per worker process that the concurrent item reads of the process share.

Through the redis-py client, every command takes a connection from the pool, passes through
the client's retry, timeout and observability layers, and returns the connection.
``PipelinedConnection`` writes each command to one shared connection as it comes and hands
out the replies in the order Redis sends them, which is the order of the commands. Measured
with callgrind on one worker, an item read costs 11% fewer instructions this way (1.34 instead
of 1.50 million per request).

Only commands that read and leave no state on the connection may go through it: GET, MGET
and the like. MULTI, WATCH, SELECT, blocking commands and anything that must not run twice
use the pooled redis-py client.

Failures surface as redis-py exceptions, so ``redis_errors`` translates them as it does for
the client. A connection error is retried ``redis_retries`` times with the client's backoff,
which is safe for reads. A reply that does not come within ``redis_socket_timeout_seconds``
raises TimeoutError, which is not retried, and closes the connection: the commands still
waiting on it fail with ConnectionError and are retried on a new connection.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any, cast

import hiredis
from redis import exceptions as redis_exceptions
from redis._parsers.base import BaseParser
from redis.backoff import ExponentialBackoff

from fastapi_stack.config import Settings
from fastapi_stack.redis import CLIENT_NAME, RETRY_BACKOFF_BASE_SECONDS, RETRY_BACKOFF_CAP_SECONDS

Reply = Any


class _ReplyProtocol(asyncio.Protocol):
    """Parse replies with hiredis and resolve the waiting commands in order."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.transport: asyncio.Transport | None = None
        self.waiting: collections.deque[asyncio.Future[Reply]] = collections.deque()
        self._reader = hiredis.Reader(encoding="utf-8")

    @property
    def is_open(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def send(self, args: tuple[str | bytes | int | float, ...]) -> asyncio.Future[Reply]:
        if self.transport is None:
            raise redis_exceptions.ConnectionError("Not connected to Redis.")
        reply: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self.transport.write(hiredis.pack_command(args))  # type: ignore[arg-type]
        self.waiting.append(reply)
        return reply

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        while True:
            try:
                reply = self._reader.gets()
            except hiredis.ProtocolError as exc:
                self.close(
                    redis_exceptions.ConnectionError(f"Protocol error from {self.address}: {exc}")
                )
                return
            if reply is False:
                return
            if not self.waiting:
                # No command waits for this reply, so the replies no longer match the commands.
                message = f"Unexpected reply with no waiting command from {self.address}."
                self.close(redis_exceptions.ConnectionError(message))
                return
            waiter = self.waiting.popleft()
            if waiter.done():
                # Its caller was cancelled, so the reply is dropped and the order is kept.
                continue
            if isinstance(reply, hiredis.ReplyError):
                waiter.set_exception(BaseParser.parse_error(str(reply)))  # type: ignore[no-untyped-call]
            else:
                waiter.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail_waiting(
            redis_exceptions.ConnectionError(f"Connection to Redis at {self.address} lost.")
        )

    def close(self, error: redis_exceptions.RedisError) -> None:
        """Fail every waiting command with ``error`` and close the transport."""
        self._fail_waiting(error)
        if self.transport is not None:
            self.transport.close()

    def _fail_waiting(self, error: redis_exceptions.RedisError) -> None:
        while self.waiting:
            waiter = self.waiting.popleft()
            if not waiter.done():
                waiter.set_exception(error)


class PipelinedConnection:
    """A lazily opened Redis connection shared by concurrent read commands of one process."""

    def __init__(self, settings: Settings) -> None:
        self._socket = settings.redis_socket
        self._host = settings.redis_host
        self._port = settings.redis_port
        self._address = settings.redis_address
        self._handshake: list[tuple[str | int, ...]] = [
            (
                "AUTH",
                settings.redis_username,
                settings.redis_password.get_secret_value(),
            ),
            ("CLIENT", "SETNAME", CLIENT_NAME),
        ]
        if settings.redis_db:
            self._handshake.append(("SELECT", settings.redis_db))
        self._connect_timeout = settings.redis_connect_timeout_seconds
        self._timeout = settings.redis_socket_timeout_seconds
        self._retries = settings.redis_retries
        self._backoff = ExponentialBackoff(
            cap=RETRY_BACKOFF_CAP_SECONDS, base=RETRY_BACKOFF_BASE_SECONDS
        )
        self._protocol: _ReplyProtocol | None = None
        self._connecting = asyncio.Lock()

    async def execute(self, *args: str | bytes | int | float) -> Reply:
        """Run one read command and return its reply, decoded as UTF-8 text."""
        failures = 0
        while True:
            protocol = self._protocol
            try:
                if protocol is None or not protocol.is_open:
                    protocol = await self._connect()
                reply = protocol.send(args)
                async with asyncio.timeout(self._timeout):
                    return await reply
            except redis_exceptions.ConnectionError:
                failures += 1
                if failures > self._retries:
                    raise
                await asyncio.sleep(self._backoff.compute(failures))
            except TimeoutError:
                # The replies would still come in order. The connection is closed anyway, so
                # that a Redis this slow does not collect more commands on it.
                if protocol is not None:
                    protocol.close(
                        redis_exceptions.ConnectionError("Connection closed after a timeout.")
                    )
                raise redis_exceptions.TimeoutError(
                    f"Timed out reading a reply from Redis at {self._address}"
                ) from None

    async def get(self, key: str) -> str | None:
        reply: str | None = await self.execute("GET", key)
        return reply

    async def aclose(self) -> None:
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()
        self._protocol = None

    async def _connect(self) -> _ReplyProtocol:
        async with self._connecting:
            # Another command may have connected while this one waited for the lock.
            if self._protocol is not None and self._protocol.is_open:
                return self._protocol
            protocol = await self._open()
            try:
                replies = [protocol.send(command) for command in self._handshake]
                async with asyncio.timeout(self._timeout):
                    for reply in replies:
                        await reply
            except TimeoutError:
                protocol.close(redis_exceptions.ConnectionError("Handshake timed out."))
                raise redis_exceptions.TimeoutError(
                    f"Timed out reading a reply from Redis at {self._address}"
                ) from None
            except BaseException:
                protocol.close(redis_exceptions.ConnectionError("Handshake failed."))
                raise
            self._protocol = protocol
            return protocol

    async def _open(self) -> _ReplyProtocol:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._connect_timeout):
                if self._socket is not None:
                    transport, protocol = await loop.create_unix_connection(
                        lambda: _ReplyProtocol(self._address), str(self._socket)
                    )
                else:
                    transport, protocol = await loop.create_connection(
                        lambda: _ReplyProtocol(self._address), self._host, self._port
                    )
        except TimeoutError:
            raise redis_exceptions.TimeoutError(
                f"Timed out connecting to Redis at {self._address}"
            ) from None
        except OSError as exc:
            raise redis_exceptions.ConnectionError(
                f"Error {exc.errno} connecting to Redis at {self._address}. {exc.strerror}."
            ) from exc
        # uvloop may call connection_made only after the connection is returned.
        protocol.transport = transport
        return protocol
