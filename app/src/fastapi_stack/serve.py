"""Start the service under uvicorn with the configured workers and listen address.

Run as ``fastapi-stack-serve`` or ``python -m fastapi_stack.serve``. The process:

1. loads the settings, and exits with status 2 and a message on stderr if they are invalid;
2. sets up JSON logging and empties the Prometheus multiprocess directory, exporting it as
   PROMETHEUS_MULTIPROC_DIR before any worker imports prometheus_client;
3. for a Unix socket, removes a stale socket file left by an earlier run, so that uvicorn
   creates the socket with mode 0666 and a proxy running as another user can connect;
4. runs uvicorn with uvloop and httptools. SIGTERM stops accepting connections and gives open
   requests ``APP_GRACEFUL_SHUTDOWN_SECONDS`` to finish. With several workers the process then
   exits with status 0. With one worker, uvicorn re-raises SIGTERM after the shutdown, so the
   status is 143 (128 + SIGTERM), except as PID 1 of a container, where the kernel ignores
   that signal and the status is 0.

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

from fastapi_stack.bind import TcpBind, UnixBind
from fastapi_stack.config import Settings, load_settings
from fastapi_stack.errors import ConfigurationError
from fastapi_stack.logging import logging_config, setup_logging

logger = logging.getLogger(__name__)

APP_FACTORY = "fastapi_stack.main:create_app"
# Read by prometheus_client when it is imported.
MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
EXIT_CONFIGURATION_ERROR = 2


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


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """Return the keyword arguments of ``uvicorn.run`` for these settings."""
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
    bind = settings.bind_address
    if isinstance(bind, UnixBind):
        options["uds"] = bind.path
    else:
        assert isinstance(bind, TcpBind)  # noqa: S101 - BindAddress has two variants
        options["host"] = bind.host
        options["port"] = bind.port
    return options


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
        if isinstance(settings.bind_address, UnixBind):
            remove_stale_socket(Path(settings.bind_address.path))
    except ConfigurationError as exc:
        sys.stderr.write(f"fastapi-stack-serve: {exc}\n")
        return EXIT_CONFIGURATION_ERROR

    logger.info(
        "Starting %d worker(s) on %s, Redis at %s",
        settings.workers,
        settings.bind_address,
        settings.redis_address,
    )
    uvicorn.run(APP_FACTORY, **uvicorn_options(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
