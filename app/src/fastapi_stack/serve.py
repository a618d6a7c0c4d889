"""Start the service under uvicorn with the configured workers and listen addresses.

Run as ``fastapi-stack-serve`` or ``python -m fastapi_stack.serve``. The process:

1. loads the settings, and exits with status 2 and a message on stderr if they are invalid;
2. sets up JSON logging and empties the Prometheus multiprocess directory, exporting it as
   PROMETHEUS_MULTIPROC_DIR before any worker imports prometheus_client;
3. binds one socket per address in ``APP_BIND``, and exits with status 2 if one cannot be
   bound. For a Unix socket it first removes a stale socket file left by an earlier run. The
   new socket gets mode 0666 so that a proxy running as another user can connect, and the
   permissions of its directory decide who can;
4. runs uvicorn with uvloop and httptools; every worker accepts on all the sockets. SIGTERM
   stops accepting connections and gives open requests ``APP_GRACEFUL_SHUTDOWN_SECONDS`` to
   finish. With several workers the process then exits with status 0. With one worker,
   uvicorn re-raises SIGTERM after the shutdown, so the status is 143 (128 + SIGTERM), except
   as PID 1 of a container, where the kernel ignores that signal and the status is 0. A
   normal exit removes the Unix socket files; one left behind by the re-raised SIGTERM is
   removed at the next start.

This module must not import prometheus_client, directly or through fastapi_stack.metrics.
With one worker, uvicorn runs the application in this process, and prometheus_client reads
PROMETHEUS_MULTIPROC_DIR only once, when it is first imported.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import stat
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.supervisors import Multiprocess

from fastapi_stack.bind import BindAddress, TcpBind, UnixBind
from fastapi_stack.config import Settings, load_settings
from fastapi_stack.errors import ConfigurationError
from fastapi_stack.logging import logging_config, setup_logging

logger = logging.getLogger(__name__)

APP_FACTORY = "fastapi_stack.main:create_app"
# Read by prometheus_client when it is imported.
MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
EXIT_CONFIGURATION_ERROR = 2
# Any user who can reach the socket file may connect. Its directory limits who can.
UNIX_SOCKET_MODE = 0o666


def prepare_multiprocess_dir(directory: Path) -> None:
    """Create ``directory`` or delete the sample files in it, and export it to the workers.

    Samples left by an earlier run would otherwise be added to the new counters.
    """
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink()
    except OSError as exc:
        raise ConfigurationError(
            f"APP_METRICS_DIR: cannot prepare {directory}: {exc.strerror}. It must be a "
            f"writable directory, for example on tmpfs."
        ) from exc
    os.environ[MULTIPROC_DIR_ENV] = str(directory)


def remove_stale_socket(path: Path) -> None:
    """Delete a Unix socket file that no server listens on.

    Raises ConfigurationError if a server still accepts connections on it, or if the path
    exists and is not a socket.
    """
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise ConfigurationError(
            f"APP_BIND: {path} exists and is not a socket; remove it or choose another path."
        )
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError as exc:
            if exc.errno not in (errno.ECONNREFUSED, errno.ENOENT):
                raise ConfigurationError(
                    f"APP_BIND: cannot check whether the socket {path} is in use: {exc.strerror}."
                ) from exc
        else:
            raise ConfigurationError(
                f"APP_BIND: another server is listening on {path}; stop it or choose another path."
            )
    logger.info("Removing stale socket %s", path)
    try:
        path.unlink()
    except OSError as exc:
        raise ConfigurationError(
            f"APP_BIND: cannot remove the stale socket {path}: {exc.strerror}."
        ) from exc


def bind_socket(bind: BindAddress) -> socket.socket:
    """Return a socket bound to ``bind`` but not listening yet. Each worker listens on it.

    Raises ConfigurationError when the address cannot be bound.
    """
    if isinstance(bind, UnixBind):
        remove_stale_socket(Path(bind.path))
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    else:
        family = socket.AF_INET6 if ":" in bind.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        if isinstance(bind, UnixBind):
            sock.bind(bind.path)
            Path(bind.path).chmod(UNIX_SOCKET_MODE)
        else:
            sock.bind((bind.host, bind.port))
    except OSError as exc:
        sock.close()
        raise ConfigurationError(
            f"APP_BIND: cannot listen on {bind}: {exc.strerror}. Free the address or set "
            f"APP_BIND to another one."
        ) from exc
    sock.set_inheritable(True)
    return sock


def bind_sockets(binds: Sequence[BindAddress]) -> list[socket.socket]:
    """Bind a socket for every address. On an error, close the sockets bound so far and re-raise."""
    sockets: list[socket.socket] = []
    try:
        for bind in binds:
            sockets.append(bind_socket(bind))
    except ConfigurationError:
        close_sockets(sockets, binds[: len(sockets)])
        raise
    return sockets


def close_sockets(sockets: Sequence[socket.socket], binds: Sequence[BindAddress]) -> None:
    """Close the sockets and remove the socket files of the Unix addresses in ``binds``.

    A server in this process closes its sockets when it stops, so the paths come from
    ``binds``: a closed socket no longer has a name.
    """
    for sock in sockets:
        sock.close()
    for bind in binds:
        if isinstance(bind, UnixBind):
            Path(bind.path).unlink(missing_ok=True)


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """Return the keyword arguments of ``uvicorn.Config`` for these settings."""
    options: dict[str, Any] = {
        "factory": True,
        "workers": settings.workers,
        "loop": "uvloop",
        "http": "httptools",
        "lifespan": "on",
        "log_config": logging_config(settings.log_level),
        "log_level": settings.log_level.lower(),
        # The service writes its own access log line with the request id.
        "access_log": False,
        # ProxyHeadersMiddleware in the application handles X-Forwarded-For and -Proto for
        # the networks in APP_TRUSTED_PROXIES. Turning uvicorn's handling off keeps one
        # implementation that behaves the same in the server and in tests.
        "proxy_headers": False,
        "server_header": False,
        "timeout_keep_alive": settings.keep_alive_timeout_seconds,
        "timeout_graceful_shutdown": settings.graceful_shutdown_seconds,
    }
    # The sockets come from bind_sockets(); uvicorn uses these options only to name the
    # first address in its "running on" log line.
    first = settings.bind_addresses[0]
    if isinstance(first, UnixBind):
        options["uds"] = first.path
    else:
        assert isinstance(first, TcpBind)  # noqa: S101 - BindAddress has two variants
        options["host"] = first.host
        options["port"] = first.port
    return options


def run(settings: Settings, sockets: list[socket.socket]) -> int:
    """Serve on ``sockets`` until stopped, then close them. Returns the exit status.

    uvicorn exits with status 3 (SystemExit) when the application fails to start.
    """
    config = uvicorn.Config(APP_FACTORY, **uvicorn_options(settings))
    server = uvicorn.Server(config)
    try:
        if config.workers > 1:
            Multiprocess(config, sockets=sockets).run()
        else:
            server.run(sockets=sockets)
    finally:
        close_sockets(sockets, settings.bind_addresses)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server until it is stopped. Returns the process exit status."""
    if argv is None:
        argv = sys.argv[1:]
    if argv:
        sys.stderr.write(
            "fastapi-stack-serve takes no arguments; it is configured with APP_* environment "
            "variables (see README.md).\n"
        )
        return EXIT_CONFIGURATION_ERROR
    try:
        settings = load_settings()
        setup_logging(settings.log_level)
        prepare_multiprocess_dir(settings.metrics_dir)
        sockets = bind_sockets(settings.bind_addresses)
    except ConfigurationError as exc:
        sys.stderr.write(f"fastapi-stack-serve: {exc}\n")
        return EXIT_CONFIGURATION_ERROR

    logger.info(
        "Starting %d worker(s) on %s, Redis at %s",
        settings.workers,
        ", ".join(str(bind) for bind in settings.bind_addresses),
        settings.redis_address,
    )
    return run(settings, sockets)


if __name__ == "__main__":
    sys.exit(main())
