from __future__ import annotations

import pytest

from fastapi_stack.bind import TcpBind, UnixBind, connect_host, parse_bind, parse_binds


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.0.0.0:8000", TcpBind("0.0.0.0", 8000)),
        ("127.0.0.1:1", TcpBind("127.0.0.1", 1)),
        ("app.internal:65535", TcpBind("app.internal", 65535)),
        ("[::]:8000", TcpBind("::", 8000)),
        ("[::1]:8080", TcpBind("::1", 8080)),
        ("unix:/run/app/app.sock", UnixBind("/run/app/app.sock")),
        (" 127.0.0.1:80 ", TcpBind("127.0.0.1", 80)),
    ],
)
def test_parse_valid(text: str, expected: TcpBind | UnixBind) -> None:
    assert parse_bind(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("8000", "expected HOST:PORT"),
        (":8000", "expected HOST:PORT"),
        ("host:0", "from 1 to 65535"),
        ("host:65536", "from 1 to 65535"),
        ("host:http", "from 1 to 65535"),
        ("::1:8000", "put an IPv6 address in brackets"),
        ("[::1:8000", "missing ']'"),
        ("[nothing]:8000", "is not an IPv6 address"),
        ("unix:run/app.sock", "must be absolute"),
    ],
)
def test_parse_invalid(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match="invalid bind") as caught:
        parse_bind(text)

    assert reason in str(caught.value)


def test_str_round_trip() -> None:
    for text in ("0.0.0.0:8000", "[::1]:8080", "unix:/tmp/app.sock"):
        assert str(parse_bind(text)) == text


def test_parse_several() -> None:
    assert parse_binds("0.0.0.0:8000, unix:/run/app/app.sock") == (
        TcpBind("0.0.0.0", 8000),
        UnixBind("/run/app/app.sock"),
    )
    assert parse_binds("[::1]:8080") == (TcpBind("::1", 8080),)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "expected HOST:PORT"),
        ("0.0.0.0:8000,", "expected HOST:PORT"),
        ("0.0.0.0:8000,unix:app.sock", "must be absolute"),
        ("unix:/a.sock,0.0.0.0:1,unix:/a.sock", "unix:/a.sock is listed twice"),
    ],
)
def test_parse_several_invalid(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match="invalid bind") as caught:
        parse_binds(text)

    assert reason in str(caught.value)


def test_connect_host_maps_wildcards() -> None:
    assert connect_host(TcpBind("0.0.0.0", 1)) == "127.0.0.1"
    assert connect_host(TcpBind("::", 1)) == "::1"
    assert connect_host(TcpBind("127.0.0.2", 1)) == "127.0.0.2"
