"""Find the real client address behind trusted reverse proxies.

The service reads ``X-Forwarded-For`` only when the direct peer is inside one of the trusted
networks. It walks the list from the right, skipping addresses that are themselves trusted
proxies, and takes the first untrusted address. A client can put any value at the left of the
header, but it cannot change what the trusted proxies appended at the right, so it cannot
choose its rate-limit key.

A peer on a Unix domain socket has no address. Only processes that can open the socket file
reach it, so it is treated as a trusted proxy.

uvicorn's own proxy-header handling is turned off in ``serve.py`` so that this middleware is
the only code that rewrites the client address, in the server and in tests alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address, IPv6Address, ip_address

from starlette.types import ASGIApp, Receive, Scope, Send

from fastapi_stack.config import IPNetwork

IPAddress = IPv4Address | IPv6Address


def is_trusted(address: IPAddress, trusted: Sequence[IPNetwork]) -> bool:
    return any(address.version == network.version and address in network for network in trusted)


def parse_address(value: str) -> IPAddress | None:
    """Parse one X-Forwarded-For entry. Accepts ``[v6]:port`` and ``v4:port`` forms too."""
    text = value.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ip_address(text)
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def resolve_client_ip(
    peer: str | None, forwarded_for: Sequence[str], trusted: Sequence[IPNetwork]
) -> str | None:
    """Return the client address for a request from ``peer`` with these X-Forwarded-For values.

    ``peer`` is None on a Unix domain socket. Returns ``peer`` unchanged when it is not a
    trusted proxy, and None when the peer is a socket and no usable header is present.
    """
    peer_address = parse_address(peer) if peer is not None else None
    if peer is not None and (peer_address is None or not is_trusted(peer_address, trusted)):
        return peer

    entries = [entry for value in forwarded_for for entry in value.split(",")]
    closest_trusted: IPAddress | None = None
    for entry in reversed(entries):
        address = parse_address(entry)
        if address is None:
            # A malformed entry ends the walk: nothing to its left can be trusted.
            break
        if not is_trusted(address, trusted):
            return str(address)
        closest_trusted = address
    if closest_trusted is not None:
        # Every hop is a trusted proxy, so the leftmost parsed hop is the origin.
        return str(closest_trusted)
    return peer


class ProxyHeadersMiddleware:
    """Replace ``scope["client"]`` and ``scope["scheme"]`` with the values sent by a proxy.

    Only requests whose direct peer is a trusted proxy are changed. The port of a rewritten
    client is 0 because X-Forwarded-For carries no port.
    """

    def __init__(self, app: ASGIApp, trusted: Sequence[IPNetwork]) -> None:
        self.app = app
        self.trusted = tuple(trusted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self._rewrite(scope)
        await self.app(scope, receive, send)

    def _rewrite(self, scope: Scope) -> None:
        client = scope.get("client")
        peer: str | None = client[0] if client else None
        if peer is not None:
            peer_address = parse_address(peer)
            if peer_address is None or not is_trusted(peer_address, self.trusted):
                return

        forwarded_for: list[str] = []
        forwarded_proto: str | None = None
        for name, value in scope["headers"]:
            if name == b"x-forwarded-for":
                forwarded_for.append(value.decode("latin-1"))
            elif name == b"x-forwarded-proto":
                forwarded_proto = value.decode("latin-1").strip().lower()

        client_ip = resolve_client_ip(peer, forwarded_for, self.trusted)
        if client_ip is not None and client_ip != peer:
            scope["client"] = (client_ip, 0)
        if forwarded_proto in {"http", "https"}:
            scope["scheme"] = forwarded_proto
