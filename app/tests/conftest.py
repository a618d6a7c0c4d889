"""Shared fixtures: a real redis-server with ACL users, settings and an in-process client.

The Redis server listens on a free loopback port and on the Unix domain socket
``redis.sock`` in its directory. The ``app`` user gets exactly the commands and
key patterns that the README documents for the production ACL, so a test fails when the code
starts using a command that the ACL does not allow.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import redis
from asgi_lifespan import LifespanManager

from fastapi_stack.config import Settings, load_settings
from fastapi_stack.main import create_app

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
APP_USER = "app"
APP_PASSWORD = "test-app-password-0123456789abcdef"
ADMIN_USER = "admin"
ADMIN_PASSWORD = "test-admin-password-0123456789abcdef"
# Keep in sync with the ACL section of README.md.
APP_ACL_RULES = (
    "resetkeys ~item:* ~cache:* ~session:* ~ratelimit:* resetchannels -@all "
    "+hello +auth +ping +client|setname +select "
    "+get +set +getex +del +mget +incr +pexpire +pttl "
    "+zadd +zrem +zrange +zcard "
    "+multi +exec +discard +watch +unwatch "
    "+evalsha +script|load"
)
# A peer address outside the default trusted networks, for requests of the test client.
CLIENT_IP = "192.0.2.10"
BASE_URL = "https://testserver"


def free_port() -> int:
    """Return a loopback TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class RedisServer:
    """A redis-server process on 127.0.0.1 and ``socket_path``, with the users ``admin`` and
    ``app``."""

    def __init__(self, directory: Path, port: int) -> None:
        self.directory = directory
        self.port = port
        # redis-server fails to start when this path is longer than 107 bytes (the Linux limit).
        self.socket_path = directory / "redis.sock"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        acl_file = self.directory / "users.acl"
        acl_file.write_text(
            "user default off\n"
            f"user {ADMIN_USER} on >{ADMIN_PASSWORD} ~* &* +@all\n"
            f"user {APP_USER} on >{APP_PASSWORD} {APP_ACL_RULES}\n"
        )
        config = self.directory / "redis.conf"
        config.write_text(
            f"bind 127.0.0.1\nport {self.port}\ndir {self.directory}\n"
            f"unixsocket {self.socket_path}\nunixsocketperm 700\n"
            f'aclfile {acl_file}\nsave ""\nappendonly no\n'
            f"logfile {self.directory / 'redis.log'}\n"
        )
        self.process = subprocess.Popen([REDIS_SERVER, str(config)])
        deadline = time.monotonic() + 10
        while True:
            try:
                with self.admin() as admin:
                    admin.ping()
                return
            except redis.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    log = (self.directory / "redis.log").read_text(errors="replace")
                    self.stop()
                    raise RuntimeError(f"redis-server did not start:\n{log}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def admin(self, db: int = 0) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1",
            port=self.port,
            db=db,
            username=ADMIN_USER,
            password=ADMIN_PASSWORD,
            decode_responses=True,
            socket_connect_timeout=1,
            protocol=2,
        )


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"), free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def start_redis_server(tmp_path: Path) -> Iterator[Callable[[], RedisServer]]:
    """Return a function that starts a private redis-server, for tests that stop it."""
    servers: list[RedisServer] = []

    def start() -> RedisServer:
        server = RedisServer(tmp_path / f"redis-{len(servers)}", free_port())
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def redis_admin(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """An admin connection to an empty database."""
    with redis_server.admin() as admin:
        admin.flushdb()
        admin.config_set("maxmemory", 0)
        yield admin


@pytest.fixture
def secrets_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "secrets"
    directory.mkdir()
    (directory / "redis_password").write_text(APP_PASSWORD + "\n")
    return directory


@pytest.fixture
def app_env(
    monkeypatch: pytest.MonkeyPatch, secrets_dir: Path, tmp_path: Path
) -> Callable[..., None]:
    """Clear APP_* variables and return a function that sets some."""
    for name in list(os.environ):
        if name.upper().startswith("APP_") or name == "PROMETHEUS_MULTIPROC_DIR":
            monkeypatch.delenv(name)
    monkeypatch.setenv("APP_SECRETS_DIR", str(secrets_dir))
    monkeypatch.setenv("APP_METRICS_DIR", str(tmp_path / "metrics"))

    def set_env(**values: object) -> None:
        for name, value in values.items():
            monkeypatch.setenv(f"APP_{name.upper()}", str(value))

    return set_env


@pytest.fixture
def settings(
    app_env: Callable[..., None], redis_server: RedisServer, redis_admin: redis.Redis
) -> Settings:
    """Settings for the test Redis server, with an empty database."""
    app_env(redis_host="127.0.0.1", redis_port=redis_server.port)
    return load_settings()


ClientFactory = Callable[..., httpx.AsyncClient]


@pytest.fixture
async def make_client(settings: Settings) -> AsyncIterator[ClientFactory]:
    """Start one application for the test and return a factory of clients for it.

    Each client can use its own peer address, to test the handling of X-Forwarded-For.
    """
    app = create_app(settings)
    clients: list[httpx.AsyncClient] = []
    async with LifespanManager(app) as manager:

        def factory(peer: str = CLIENT_IP) -> httpx.AsyncClient:
            transport = httpx.ASGITransport(app=manager.app, client=(peer, 50000))
            client = httpx.AsyncClient(transport=transport, base_url=BASE_URL)
            clients.append(client)
            return client

        yield factory
        for client in clients:
            await client.aclose()


@asynccontextmanager
async def running_client(
    settings: Settings, peer: str = CLIENT_IP
) -> AsyncIterator[httpx.AsyncClient]:
    """Run an application for ``settings`` and yield a client connected to it."""
    async with LifespanManager(create_app(settings)) as manager:
        transport = httpx.ASGITransport(app=manager.app, client=(peer, 50000))
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            yield client


@pytest.fixture
async def client(make_client: ClientFactory) -> httpx.AsyncClient:
    return make_client()
