"""Container health check: GET /healthz on every configured listen address.

Run as ``python -m fastapi_stack.healthcheck``. It reads ``APP_BIND`` like the server (TCP
``HOST:PORT`` or ``unix:/path``, comma-separated), connects to loopback for a wildcard host,
and exits with 0 when /healthz returns 200 on every address and 1 otherwise, printing the
reasons to stderr. It uses only the standard library, so it starts fast and does not load the
application.
"""

from __future__ import annotations

import argparse
import http.client
import os
import socket
import sys
from collections.abc import Sequence

from fastapi_stack.bind import DEFAULT_BIND, BindAddress, UnixBind, connect_host, parse_binds

HEALTH_PATH = "/healthz"
DEFAULT_TIMEOUT_SECONDS = 3.0


class UnixHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection over a Unix domain socket."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def check_health(bind: BindAddress, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> str | None:
    """GET /healthz at ``bind``. Return None when healthy, otherwise the reason."""
    connection: http.client.HTTPConnection
    if isinstance(bind, UnixBind):
        connection = UnixHTTPConnection(bind.path, timeout)
    else:
        connection = http.client.HTTPConnection(connect_host(bind), bind.port, timeout=timeout)
    try:
        connection.request("GET", HEALTH_PATH, headers={"User-Agent": "fastapi-stack-healthcheck"})
        response = connection.getresponse()
        response.read()
    except (OSError, http.client.HTTPException) as exc:
        return f"GET {HEALTH_PATH} on {bind} failed: {exc}"
    finally:
        connection.close()
    if response.status != http.client.OK:
        return f"GET {HEALTH_PATH} on {bind} returned {response.status} {response.reason}"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fastapi_stack.healthcheck",
        description="Exit with 0 when GET /healthz returns 200 on every APP_BIND address.",
    )
    parser.add_argument(
        "--bind",
        default=os.environ.get("APP_BIND", DEFAULT_BIND),
        help=(
            "HOST:PORT or unix:/path/to.sock, comma-separated (default: $APP_BIND or %(default)s)"
        ),
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_SECONDS,
        help="connect and read timeout in seconds (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    try:
        binds = parse_binds(args.bind)
    except ValueError as exc:
        sys.stderr.write(f"healthcheck: {exc}\n")
        return 1
    reasons = [reason for bind in binds if (reason := check_health(bind, args.timeout))]
    for reason in reasons:
        sys.stderr.write(f"healthcheck: {reason}\n")
    return 1 if reasons else 0


if __name__ == "__main__":
    sys.exit(main())
