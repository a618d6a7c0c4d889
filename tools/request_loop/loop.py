"""The request loop and its result."""

from __future__ import annotations

import http.client
import ssl
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit


@dataclass(frozen=True)
class LoopConfig:
    url: str
    ca_file: Path
    connect: str | None = None
    seconds: float = 30.0
    stop_file: Path | None = None
    timeout: float = 5.0
    keep_alive: bool = False


@dataclass
class LoopResult:
    sent: int = 0
    failed: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    serials: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "sent": self.sent,
            "failed": self.failed,
            "errors": dict(self.errors),
            "serials": self.serials,
            "seconds": round(self.seconds, 3),
        }


def _target(config: LoopConfig) -> tuple[str, str, int, str]:
    """Return the SNI host name, the address and port to dial, and the request path."""
    parts = urlsplit(config.url)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError(f"invalid URL {config.url!r}: expected https://HOST[:PORT]/PATH")
    port = parts.port or 443
    address = parts.hostname
    if config.connect:
        address, _, port_text = config.connect.rpartition(":")
        if not address or not port_text.isdigit():
            raise ValueError(f"invalid --connect {config.connect!r}: expected ADDRESS:PORT")
        port = int(port_text)
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return parts.hostname, address, port, path


class _PinnedConnection(http.client.HTTPSConnection):
    """An HTTPS connection that dials a fixed address but verifies the URL's host name."""

    def __init__(
        self, server_name: str, address: str, port: int, context: ssl.SSLContext, timeout: float
    ) -> None:
        super().__init__(server_name, port, context=context, timeout=timeout)
        self._context = context
        self._address = address

    def connect(self) -> None:
        self.host, server_name = self._address, self.host
        try:
            http.client.HTTPConnection.connect(self)
        finally:
            self.host = server_name
        self.sock = self._context.wrap_socket(self.sock, server_hostname=server_name)


def _serial(connection: http.client.HTTPSConnection) -> str | None:
    sock = connection.sock
    if not isinstance(sock, ssl.SSLSocket):
        return None
    certificate = sock.getpeercert()
    serial = certificate.get("serialNumber") if certificate else None
    return serial if isinstance(serial, str) else None


def run_loop(config: LoopConfig) -> LoopResult:
    """Send requests until the time is up or the stop file exists.

    A failed request is counted, never raised.
    """
    server_name, address, port, path = _target(config)
    context = ssl.create_default_context(cafile=str(config.ca_file))
    result = LoopResult()
    started = time.monotonic()
    deadline = started + config.seconds
    connection: http.client.HTTPSConnection | None = None

    while time.monotonic() < deadline:
        if config.stop_file is not None and config.stop_file.exists():
            break
        result.sent += 1
        try:
            if connection is None:
                connection = _PinnedConnection(
                    server_name, address, port, context=context, timeout=config.timeout
                )
                connection.connect()
                # Read now: the server closes a non-keep-alive connection with the response.
                serial = _serial(connection)
                if serial and serial not in result.serials:
                    result.serials.append(serial)
            connection_header = "keep-alive" if config.keep_alive else "close"
            connection.request("GET", path, headers={"Connection": connection_header})
            response = connection.getresponse()
            response.read()
            if response.status >= 500:
                result.failed += 1
                result.errors[f"status {response.status}"] += 1
        except (OSError, http.client.HTTPException) as exc:
            result.failed += 1
            result.errors[type(exc).__name__] += 1
            if connection is not None:
                connection.close()
            connection = None
            continue
        if not config.keep_alive:
            connection.close()
            connection = None

    if connection is not None:
        connection.close()
    result.seconds = time.monotonic() - started
    return result
