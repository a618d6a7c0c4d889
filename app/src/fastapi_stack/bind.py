"""Parse the listen addresses of the server.

This module uses only the standard library, because the container health check imports it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

# Listening on all interfaces is intended: the container's port is the service's interface.
DEFAULT_BIND = "0.0.0.0:8000"
UNIX_PREFIX = "unix:"


@dataclass(frozen=True, slots=True)
class TcpBind:
    """A TCP listen address. ``host`` is an IP address or a host name without brackets."""

    host: str
    port: int

    def __str__(self) -> str:
        if ":" in self.host:
            return f"[{self.host}]:{self.port}"
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class UnixBind:
    """A Unix domain socket path."""

    path: str

    def __str__(self) -> str:
        return f"{UNIX_PREFIX}{self.path}"


BindAddress = TcpBind | UnixBind


def parse_bind(value: str) -> BindAddress:
    """Parse ``unix:/absolute/path`` or ``HOST:PORT`` (IPv6 hosts in brackets).

    Raises ValueError with a message that shows the rejected value.
    """
    text = value.strip()
    if text.startswith(UNIX_PREFIX):
        path = text.removeprefix(UNIX_PREFIX)
        if not path.startswith("/"):
            raise ValueError(f"invalid bind {value!r}: the unix socket path must be absolute")
        return UnixBind(path)

    host, separator, port_text = text.rpartition(":")
    if not separator or not host:
        raise ValueError(f"invalid bind {value!r}: expected HOST:PORT or unix:/path/to.sock")
    if host.startswith("["):
        if not host.endswith("]"):
            raise ValueError(f"invalid bind {value!r}: missing ']' after the IPv6 address")
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError as exc:
            raise ValueError(f"invalid bind {value!r}: {host!r} is not an IPv6 address") from exc
    elif ":" in host:
        raise ValueError(f"invalid bind {value!r}: put an IPv6 address in brackets, as [::]:8000")

    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"invalid bind {value!r}: the port must be a number from 1 to 65535")
    return TcpBind(host, int(port_text))


def parse_binds(value: str) -> tuple[BindAddress, ...]:
    """Parse one or more listen addresses separated by commas, such as
    ``0.0.0.0:8000,unix:/run/app/app.sock``.

    A Unix socket path therefore cannot contain a comma. Raises ValueError with a message
    that shows the rejected value.
    """
    binds = tuple(parse_bind(part) for part in value.split(","))
    for index, bind in enumerate(binds):
        if bind in binds[:index]:
            raise ValueError(f"invalid bind {value!r}: {bind} is listed twice")
    return binds


def connect_host(bind: TcpBind) -> str:
    """Return the address a local client connects to for ``bind``.

    A wildcard listen address (0.0.0.0 or ::) maps to the loopback address of its family.
    """
    if bind.host == "0.0.0.0":  # noqa: S104
        return "127.0.0.1"
    if bind.host == "::":
        return "::1"
    return bind.host
