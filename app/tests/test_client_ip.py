from __future__ import annotations

from ipaddress import ip_network

import httpx
import pytest

from fastapi_stack.client_ip import ProxyHeadersMiddleware, parse_address, resolve_client_ip
from fastapi_stack.config import IPNetwork

TRUSTED: tuple[IPNetwork, ...] = (ip_network("127.0.0.0/8"), ip_network("172.18.0.0/16"))


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "expected"),
    [
        # Untrusted peers keep their own address, whatever they send.
        ("192.0.2.1", ["198.51.100.1"], "192.0.2.1"),
        ("192.0.2.1", [], "192.0.2.1"),
        # A trusted proxy's header is read from the right.
        ("172.18.0.5", ["198.51.100.1"], "198.51.100.1"),
        ("172.18.0.5", ["203.0.113.9, 198.51.100.1"], "198.51.100.1"),
        ("172.18.0.5", ["203.0.113.9, 198.51.100.1, 172.18.0.7"], "198.51.100.1"),
        # Several header lines form one list, in order.
        ("172.18.0.5", ["203.0.113.9", "198.51.100.1"], "198.51.100.1"),
        # All hops trusted: the leftmost one is the origin.
        ("127.0.0.1", ["172.18.0.9, 127.0.0.2"], "172.18.0.9"),
        # No header, or a malformed rightmost entry: the proxy itself.
        ("127.0.0.1", [], "127.0.0.1"),
        ("127.0.0.1", ["198.51.100.1, garbage"], "127.0.0.1"),
        # A malformed entry ends the walk at the last trusted hop.
        ("127.0.0.1", ["198.51.100.1, garbage, 172.18.0.3"], "172.18.0.3"),
        # Ports and brackets are accepted.
        ("127.0.0.1", ["198.51.100.1:4711"], "198.51.100.1"),
        ("127.0.0.1", ["[2001:db8::1]:4711"], "2001:db8::1"),
        ("127.0.0.1", ["2001:db8::2"], "2001:db8::2"),
        # A Unix socket peer is trusted.
        (None, ["198.51.100.1"], "198.51.100.1"),
        (None, [], None),
        # A peer that is not an IP address is never trusted.
        ("testclient", ["198.51.100.1"], "testclient"),
    ],
)
def test_resolve_client_ip(
    peer: str | None, forwarded_for: list[str], expected: str | None
) -> None:
    assert resolve_client_ip(peer, forwarded_for, TRUSTED) == expected


def test_ipv4_mapped_address_is_ipv4() -> None:
    assert str(parse_address("::ffff:127.0.0.1")) == "127.0.0.1"


async def echo_client(scope: dict[str, object], receive: object, send: object) -> None:
    client = scope.get("client")
    body = f"{client[0] if client else None} {scope['scheme']}".encode()  # type: ignore[index]
    await send({"type": "http.response.start", "status": 200, "headers": []})  # type: ignore[operator]
    await send({"type": "http.response.body", "body": body})  # type: ignore[operator]


@pytest.mark.parametrize(
    ("peer", "headers", "expected"),
    [
        (
            "172.18.0.5",
            {"X-Forwarded-For": "198.51.100.1", "X-Forwarded-Proto": "https"},
            "198.51.100.1 https",
        ),
        ("172.18.0.5", {"X-Forwarded-Proto": "gopher"}, "172.18.0.5 http"),
        (
            "192.0.2.1",
            {"X-Forwarded-For": "198.51.100.1", "X-Forwarded-Proto": "https"},
            "192.0.2.1 http",
        ),
    ],
)
async def test_middleware_rewrites_scope(peer: str, headers: dict[str, str], expected: str) -> None:
    app = ProxyHeadersMiddleware(echo_client, TRUSTED)  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=app, client=(peer, 1234))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.get("/", headers=headers)

    assert response.text == expected
