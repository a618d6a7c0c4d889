from __future__ import annotations

import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from uvicorn.config import STARTUP_FAILURE

from fastapi_stack import serve
from fastapi_stack.bind import BindAddress, TcpBind, UnixBind, parse_binds
from fastapi_stack.config import Settings, load_settings
from fastapi_stack.errors import ConfigurationError
from fastapi_stack.healthcheck import check_health
from tests.conftest import RedisServer, free_port

STARTUP_TIMEOUT_SECONDS = 30
SHUTDOWN_TIMEOUT_SECONDS = 20


class ServerProcess:
    """``python -m fastapi_stack.serve`` in a subprocess, with stdout in a file.

    Start-up waits for the first address of ``APP_BIND``; ``client()`` connects to it too.
    """

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.bind = parse_binds(env["APP_BIND"])[0]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "fastapi_stack.serve"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while check_health(self.bind, timeout=1) is not None:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"server did not start:\n{self.log_path.read_text()}")
            time.sleep(0.1)

    def stop(self) -> int | None:
        """Send SIGTERM, wait for the exit and return the exit status."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            status = self.process.wait(timeout=SHUTDOWN_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            status = None
        self.process = None
        return status

    def client(self, bind: BindAddress | None = None) -> httpx.Client:
        """A client that opens a new connection per request, to spread them over workers."""
        bind = bind or self.bind
        limits = httpx.Limits(max_keepalive_connections=0)
        if isinstance(bind, UnixBind):
            transport = httpx.HTTPTransport(uds=bind.path, limits=limits)
            return httpx.Client(transport=transport, base_url="http://localhost")
        assert isinstance(bind, TcpBind)
        return httpx.Client(base_url=f"http://{bind}", limits=limits)

    def log_lines(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line]


@pytest.fixture
def server_env(
    redis_server: RedisServer, secrets_dir: Path, tmp_path: Path, redis_admin: object
) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("APP_") and name != "PROMETHEUS_MULTIPROC_DIR"
    }
    env.update(
        APP_REDIS_HOST="127.0.0.1",
        APP_REDIS_PORT=str(redis_server.port),
        APP_SECRETS_DIR=str(secrets_dir),
        APP_METRICS_DIR=str(tmp_path / "metrics"),
        APP_RATE_LIMIT_REQUESTS="1000",
        APP_GRACEFUL_SHUTDOWN_SECONDS="5",
    )
    return env


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], ServerProcess]]:
    servers: list[ServerProcess] = []

    def start(env: dict[str, str]) -> ServerProcess:
        server = ServerProcess(env, tmp_path / f"server-{len(servers)}.log")
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.stop()


def metric_value(text: str, name: str, **labels: str) -> float:
    """Return the sample of ``name`` whose labels include ``labels``, or 0."""
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"^{name}\{{(.*)\}} (\S+)$", line)
        if not match:
            continue
        sample_labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
        if all(sample_labels.get(key) == value for key, value in labels.items()):
            total += float(match.group(2))
    return total


def test_two_workers_share_metrics(
    server_env: dict[str, str], start_server: Callable[[dict[str, str]], ServerProcess]
) -> None:
    server_env.update(APP_BIND=f"127.0.0.1:{free_port()}", APP_WORKERS="2")
    metrics_dir = Path(server_env["APP_METRICS_DIR"])
    metrics_dir.mkdir()
    (metrics_dir / "counter_1.db").write_bytes(b"stale samples of an earlier run")
    server = start_server(server_env)
    requests = 60

    with server.client() as client:
        statuses = {client.get("/api/v1/items").status_code for _ in range(requests)}
        scrapes = [client.get("/metrics").text for _ in range(6)]

    assert statuses == {200}
    counts = [
        metric_value(text, "http_requests_total", route="/api/v1/items", status="200")
        for text in scrapes
    ]
    assert counts == [requests] * len(scrapes)
    pids = {int(p.stem.rsplit("_", 1)[1]) for p in metrics_dir.glob("counter_*.db")}
    assert len(pids) == 2
    assert 1 not in pids


def test_sigterm_stops_gracefully(
    server_env: dict[str, str], start_server: Callable[[dict[str, str]], ServerProcess]
) -> None:
    server_env.update(APP_BIND=f"127.0.0.1:{free_port()}", APP_WORKERS="2")
    server = start_server(server_env)

    status = server.stop()

    assert status == 0
    messages = [str(entry["message"]) for entry in server.log_lines()]
    assert any(message.startswith("Starting 2 worker(s) on 127.0.0.1:") for message in messages)
    assert "Received SIGTERM, exiting." in messages
    assert messages.count("Closed the Redis connection pool") == 2


def test_unix_socket_single_worker(
    server_env: dict[str, str],
    start_server: Callable[[dict[str, str]], ServerProcess],
    tmp_path: Path,
) -> None:
    socket_path = tmp_path / "app.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(socket_path))
    stale.close()
    socket_path.chmod(0o600)
    server_env.update(APP_BIND=f"unix:{socket_path}", APP_WORKERS="1")

    server = start_server(server_env)
    with server.client() as client:
        ready = client.get("/readyz")
        client.get("/api/v1/items")
        metrics_text = client.get("/metrics").text
    healthcheck = subprocess.run(
        [sys.executable, "-m", "fastapi_stack.healthcheck"],
        env={**server_env, "APP_BIND": f"unix:{socket_path}"},
        capture_output=True,
        check=False,
    )

    assert stat.S_IMODE(socket_path.stat().st_mode) == 0o666
    assert ready.status_code == 200
    assert metric_value(metrics_text, "http_requests_total", route="/api/v1/items") == 1
    assert healthcheck.returncode == 0
    # A single uvicorn server re-raises SIGTERM after its graceful shutdown.
    assert server.stop() == -signal.SIGTERM
    messages = [entry["message"] for entry in server.log_lines()]
    assert "Closed the Redis connection pool" in messages


def test_tcp_and_unix_socket_together(
    server_env: dict[str, str],
    start_server: Callable[[dict[str, str]], ServerProcess],
    tmp_path: Path,
) -> None:
    tcp = TcpBind("127.0.0.1", free_port())
    unix = UnixBind(str(tmp_path / "app.sock"))
    server_env.update(APP_BIND=f"{tcp},{unix}", APP_WORKERS="2")

    server = start_server(server_env)
    statuses = []
    for bind in (tcp, unix):
        with server.client(bind) as client:
            statuses += [client.get("/api/v1/items").status_code for _ in range(10)]
    healthcheck = subprocess.run(
        [sys.executable, "-m", "fastapi_stack.healthcheck"],
        env=server_env,
        capture_output=True,
        check=False,
    )

    assert statuses == [200] * 20
    assert healthcheck.returncode == 0, healthcheck.stderr
    assert server.stop() == 0
    assert not Path(unix.path).exists()
    messages = [str(entry["message"]) for entry in server.log_lines()]
    assert f"Starting 2 worker(s) on {tcp}, {unix}, Redis at 127.0.0.1:" in "\n".join(messages)


def test_address_in_use_exit_2(
    app_env: Callable[..., None],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # main() exports the metrics directory; monkeypatch restores the variable afterwards.
    monkeypatch.setenv(serve.MULTIPROC_DIR_ENV, "")
    socket_path = tmp_path / "app.sock"
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        app_env(bind=f"unix:{socket_path},127.0.0.1:{port}")

        status = serve.main([])

    assert status == serve.EXIT_CONFIGURATION_ERROR
    assert (
        f"APP_BIND: cannot listen on 127.0.0.1:{port}: Address already in use."
        in capsys.readouterr().err
    )
    # The socket bound before the failure is closed and its file removed.
    assert not socket_path.exists()


def test_single_worker_as_pid_1_exit_0(
    app_env: Callable[..., None],
    redis_server: RedisServer,
    tmp_path: Path,
) -> None:
    socket_path = tmp_path / "app.sock"
    app_env(
        bind=f"unix:{socket_path}",
        workers=1,
        redis_host="127.0.0.1",
        redis_port=redis_server.port,
    )
    settings = load_settings()
    sockets = serve.bind_sockets(settings.bind_addresses)

    def stop_when_healthy() -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if check_health(UnixBind(str(socket_path)), timeout=1) is None:
                break
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)

    # As PID 1 of a container, the kernel ignores the SIGTERM that uvicorn re-raises after
    # its shutdown. Here this handler catches it, so the test process keeps running.
    received: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
    stopper = threading.Thread(target=stop_when_healthy, daemon=True)
    try:
        stopper.start()
        status = serve.run(settings, sockets)
        stopper.join()
    finally:
        signal.signal(signal.SIGTERM, previous)

    assert status == 0
    assert received == [signal.SIGTERM]
    assert not socket_path.exists()


def failing_app() -> Callable[..., Any]:
    """An ASGI application factory whose start-up fails."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.failed", "message": "start-up refused"})

    return app


def test_startup_failure_exit_3(
    app_env: Callable[..., None], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    socket_path = tmp_path / "app.sock"
    app_env(bind=f"unix:{socket_path}", workers=1)
    monkeypatch.setattr(serve, "APP_FACTORY", f"{__name__}:failing_app")
    settings = load_settings()
    sockets = serve.bind_sockets(settings.bind_addresses)

    with pytest.raises(SystemExit) as caught:
        serve.run(settings, sockets)

    assert caught.value.code == STARTUP_FAILURE
    assert not socket_path.exists()


def test_access_log_lines_are_json(
    server_env: dict[str, str], start_server: Callable[[dict[str, str]], ServerProcess]
) -> None:
    server_env.update(APP_BIND=f"127.0.0.1:{free_port()}", APP_WORKERS="1")
    server = start_server(server_env)
    with server.client() as client:
        client.get("/api/v1/items", headers={"X-Request-ID": "serve-test-1"})
    server.stop()

    access = [e for e in server.log_lines() if e["logger"] == "fastapi_stack.access"]
    matching = [e for e in access if e.get("request_id") == "serve-test-1"]
    assert len(matching) == 1
    assert matching[0]["client_ip"] == "127.0.0.1"
    assert matching[0]["status"] == 200


def test_invalid_settings_exit_2(
    app_env: Callable[..., None], capsys: pytest.CaptureFixture[str]
) -> None:
    app_env(redis_port="not-a-port")

    status = serve.main([])

    assert status == serve.EXIT_CONFIGURATION_ERROR
    assert "APP_REDIS_PORT" in capsys.readouterr().err


def test_arguments_are_rejected(capsys: pytest.CaptureFixture[str]) -> None:
    assert serve.main(["--port", "80"]) == serve.EXIT_CONFIGURATION_ERROR
    assert "takes no arguments" in capsys.readouterr().err


def test_unwritable_metrics_dir(
    app_env: Callable[..., None], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    app_env(metrics_dir=blocker / "metrics")

    assert serve.main([]) == serve.EXIT_CONFIGURATION_ERROR
    assert "APP_METRICS_DIR: cannot prepare" in capsys.readouterr().err


def test_uvicorn_options_tcp(app_env: Callable[..., None]) -> None:
    app_env(bind="[::]:9000", workers=3, keep_alive_timeout_seconds=90)
    settings = load_settings()

    options = serve.uvicorn_options(settings)

    assert options["host"] == "::"
    assert options["port"] == 9000
    assert "uds" not in options
    assert options["workers"] == 3
    assert options["timeout_keep_alive"] == 90
    assert options["timeout_graceful_shutdown"] == 8
    assert options["loop"] == "uvloop"
    assert options["http"] == "httptools"
    assert options["access_log"] is False
    assert options["proxy_headers"] is False
    assert options["factory"] is True


def test_uvicorn_options_name_the_first_address(app_env: Callable[..., None]) -> None:
    app_env(bind="unix:/run/app/app.sock,0.0.0.0:8000")
    settings: Settings = load_settings()

    options = serve.uvicorn_options(settings)

    assert options["uds"] == "/run/app/app.sock"
    assert "host" not in options


def test_prepare_multiprocess_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(serve.MULTIPROC_DIR_ENV, raising=False)
    directory = tmp_path / "metrics"
    directory.mkdir()
    (directory / "counter_123.db").write_bytes(b"")
    (directory / "keep.txt").write_text("")

    serve.prepare_multiprocess_dir(directory)

    assert os.environ[serve.MULTIPROC_DIR_ENV] == str(directory)
    assert sorted(p.name for p in directory.iterdir()) == ["keep.txt"]


def test_remove_stale_socket_cases(tmp_path: Path) -> None:
    missing = tmp_path / "missing.sock"
    serve.remove_stale_socket(missing)

    regular = tmp_path / "regular"
    regular.write_text("")
    with pytest.raises(ConfigurationError, match="is not a socket"):
        serve.remove_stale_socket(regular)

    live_path = tmp_path / "live.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as live:
        live.bind(str(live_path))
        live.listen()
        with pytest.raises(ConfigurationError, match="another server is listening"):
            serve.remove_stale_socket(live_path)

    assert live_path.exists()
    serve.remove_stale_socket(live_path)
    assert not live_path.exists()
