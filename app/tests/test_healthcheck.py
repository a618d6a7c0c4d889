from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from fastapi_stack.bind import TcpBind, UnixBind
from fastapi_stack.healthcheck import check_health, main
from tests.conftest import free_port


class StatusHandler(http.server.BaseHTTPRequestHandler):
    """Responds to every GET with the status code set on the server."""

    def do_GET(self) -> None:
        status: int = self.server.status  # type: ignore[attr-defined]
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[http.server.HTTPServer]:
    server = http.server.HTTPServer(("127.0.0.1", 0), StatusHandler)
    server.status = 200  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def test_healthy_server(http_server: http.server.HTTPServer) -> None:
    port = http_server.server_address[1]

    assert check_health(TcpBind("127.0.0.1", port)) is None
    assert main(["--bind", f"127.0.0.1:{port}"]) == 0


def test_wildcard_bind_connects_to_loopback(http_server: http.server.HTTPServer) -> None:
    port = http_server.server_address[1]

    assert main(["--bind", f"0.0.0.0:{port}"]) == 0


def test_error_status_fails(
    http_server: http.server.HTTPServer, capsys: pytest.CaptureFixture[str]
) -> None:
    http_server.status = 503  # type: ignore[attr-defined]
    port = http_server.server_address[1]

    assert main(["--bind", f"127.0.0.1:{port}"]) == 1
    assert "returned 503 Service Unavailable" in capsys.readouterr().err


def test_closed_port_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--bind", f"127.0.0.1:{free_port()}", "--timeout", "1"]) == 1
    assert "Connection refused" in capsys.readouterr().err


def test_missing_socket_fails(tmp_path: Path) -> None:
    reason = check_health(UnixBind(str(tmp_path / "none.sock")), timeout=1)

    assert reason is not None
    assert "No such file or directory" in reason


def test_invalid_bind_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--bind", "nonsense"]) == 1
    assert "invalid bind 'nonsense'" in capsys.readouterr().err


def test_bind_from_environment(
    http_server: http.server.HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APP_BIND", f"127.0.0.1:{http_server.server_address[1]}")

    assert main([]) == 0


def test_every_address_is_checked(
    http_server: http.server.HTTPServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = http_server.server_address[1]
    missing = tmp_path / "none.sock"

    assert main(["--bind", f"127.0.0.1:{port},unix:{missing}", "--timeout", "1"]) == 1
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 1
    assert f"on unix:{missing} failed" in errors[0]
