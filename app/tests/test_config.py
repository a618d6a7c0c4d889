from __future__ import annotations

from collections.abc import Callable
from ipaddress import ip_network
from pathlib import Path

import pytest

from fastapi_stack.bind import TcpBind, UnixBind
from fastapi_stack.config import Settings, available_cpus, load_settings
from fastapi_stack.errors import ConfigurationError

PASSWORD = "s3cret-Password-for-config-tests"


@pytest.fixture
def password_file(secrets_dir: Path) -> Path:
    path = secrets_dir / "redis_password"
    path.write_text(PASSWORD + "\n")
    return path


def load_error(forbidden: str | None = None) -> str:
    """Return the ConfigurationError message of load_settings(), checking that it omits
    ``forbidden``."""
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    message = str(caught.value)
    if forbidden is not None:
        assert forbidden not in message
    return message


def test_defaults(app_env: Callable[..., None], password_file: Path) -> None:
    settings = load_settings()

    assert settings.redis_host == "redis"
    assert settings.redis_port == 6379
    assert settings.redis_db == 0
    assert settings.redis_username == "app"
    assert settings.redis_password.get_secret_value() == PASSWORD
    assert settings.trusted_networks == (ip_network("127.0.0.0/8"), ip_network("::1/128"))
    assert settings.rate_limit_requests == 120
    assert settings.rate_limit_window_seconds == 60
    assert settings.session_ttl_seconds == 1800
    assert settings.cache_ttl_seconds == 300
    assert settings.workers == available_cpus()
    assert settings.bind_addresses == (TcpBind("0.0.0.0", 8000),)
    assert settings.keep_alive_timeout_seconds == 75
    assert settings.graceful_shutdown_seconds == 8
    assert settings.log_level == "INFO"
    assert settings.redis_socket is None
    assert settings.redis_address == "redis:6379"


def test_environment_overrides(app_env: Callable[..., None], password_file: Path) -> None:
    app_env(
        redis_host="10.1.2.3",
        redis_port="6380",
        workers="3",
        bind="0.0.0.0:8001,unix:/run/app/app.sock",
        log_level="debug",
        trusted_proxies="172.18.0.0/16, fd00::/8",
    )

    settings = load_settings()

    assert settings.redis_address == "10.1.2.3:6380"
    assert settings.workers == 3
    assert settings.bind_addresses == (TcpBind("0.0.0.0", 8001), UnixBind("/run/app/app.sock"))
    assert settings.log_level == "DEBUG"
    assert settings.trusted_networks == (ip_network("172.18.0.0/16"), ip_network("fd00::/8"))


def test_redis_socket_takes_precedence(app_env: Callable[..., None], password_file: Path) -> None:
    app_env(redis_socket="/run/redis/redis.sock", redis_host="10.1.2.3", redis_port="6380")

    settings = load_settings()

    assert settings.redis_socket == Path("/run/redis/redis.sock")
    assert settings.redis_address == "unix:/run/redis/redis.sock"


@pytest.mark.parametrize("value", ["", "  "])
def test_empty_redis_socket_uses_tcp(
    app_env: Callable[..., None], password_file: Path, value: str
) -> None:
    app_env(redis_socket=value, redis_host="10.1.2.3")

    settings = load_settings()

    assert settings.redis_socket is None
    assert settings.redis_address == "10.1.2.3:6379"


def test_trusted_proxies_json_list(app_env: Callable[..., None], password_file: Path) -> None:
    app_env(trusted_proxies='["192.0.2.0/24", "192.0.2.254"]')

    settings = load_settings()

    assert settings.trusted_networks == (ip_network("192.0.2.0/24"), ip_network("192.0.2.254/32"))


def test_trusted_proxies_empty_trusts_none(
    app_env: Callable[..., None], password_file: Path
) -> None:
    app_env(trusted_proxies="")

    assert load_settings().trusted_networks == ()


def test_password_secret_is_hidden(app_env: Callable[..., None], password_file: Path) -> None:
    settings = load_settings()

    assert PASSWORD not in repr(settings)
    assert PASSWORD not in str(settings)
    assert "redis_password" not in settings.model_dump()
    assert PASSWORD not in settings.model_dump_json()


@pytest.mark.parametrize(
    ("content", "expected"),
    [(PASSWORD, PASSWORD), (PASSWORD + "\n", PASSWORD), (PASSWORD + "\r\n", PASSWORD)],
)
def test_password_strips_one_newline(
    app_env: Callable[..., None], password_file: Path, content: str, expected: str
) -> None:
    password_file.write_bytes(content.encode())

    assert load_settings().redis_password.get_secret_value() == expected


def test_missing_password_file(app_env: Callable[..., None], password_file: Path) -> None:
    password_file.unlink()

    message = load_error()

    path = password_file
    assert f"Redis password file {path} is missing" in message
    assert "APP_SECRETS_DIR" in message
    assert "openssl rand" in message


def test_default_secrets_dir_is_run_secrets(
    app_env: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("APP_SECRETS_DIR")

    message = load_error()

    assert "/run/secrets/redis_password" in message


def test_empty_password_file(app_env: Callable[..., None], password_file: Path) -> None:
    password_file.write_text("\n")

    assert f"Redis password file {password_file} is empty" in load_error()


def test_short_password(app_env: Callable[..., None], password_file: Path) -> None:
    password_file.write_text("short-pw-123\n")

    message = load_error(forbidden="short-pw-123")

    assert f"{password_file} is shorter than 16 characters" in message


def test_password_with_inner_newline(app_env: Callable[..., None], password_file: Path) -> None:
    password_file.write_text(PASSWORD + "\n\n")

    message = load_error(forbidden=PASSWORD)

    assert "whitespace or control characters" in message


def test_password_not_utf8(app_env: Callable[..., None], password_file: Path) -> None:
    password_file.write_bytes(b"\xff" * 20)

    assert "is not valid UTF-8" in load_error()


def test_password_path_is_directory(app_env: Callable[..., None], password_file: Path) -> None:
    password_file.unlink()
    password_file.mkdir()

    assert "cannot be read: Is a directory" in load_error()


def test_password_from_environment_rejected(
    app_env: Callable[..., None], password_file: Path
) -> None:
    app_env(redis_password="env-password-0123456789")

    message = load_error(forbidden="env-password-0123456789")

    assert "APP_REDIS_PASSWORD is set" in message
    assert "Remove APP_REDIS_PASSWORD" in message


def test_password_field_ignores_environment(
    app_env: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APP_REDIS_PASSWORD", "env-password-0123456789")

    with pytest.raises(ValueError, match="redis_password"):
        Settings()


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("redis_port", "abc", "APP_REDIS_PORT: Input should be a valid integer"),
        ("redis_port", "70000", "APP_REDIS_PORT: Input should be less than or equal to 65535"),
        ("redis_db", "-1", "APP_REDIS_DB"),
        ("trusted_proxies", "10.0.0.300/8", "APP_TRUSTED_PROXIES"),
        ("trusted_proxies", "10.0.0.1/8", "APP_TRUSTED_PROXIES"),
        ("trusted_proxies", "[not json", "APP_TRUSTED_PROXIES"),
        ("workers", "0", "APP_WORKERS: Input should be greater than or equal to 1"),
        ("bind", "localhost", "APP_BIND: Value error, invalid bind 'localhost'"),
        ("bind", "unix:relative.sock", "the unix socket path must be absolute"),
        ("redis_socket", "redis.sock", "APP_REDIS_SOCKET: Value error, the Redis socket path"),
        ("redis_socket", "run/redis/redis.sock", "must be absolute, such as /run/redis/redis.sock"),
        ("keep_alive_timeout_seconds", "60", "longer than Caddy's upstream keep-alive of 60 s"),
        ("log_level", "verbose", "APP_LOG_LEVEL"),
        ("rate_limit_window_seconds", "0", "APP_RATE_LIMIT_WINDOW_SECONDS"),
        ("redis_socket_timeout_seconds", "0", "APP_REDIS_SOCKET_TIMEOUT_SECONDS"),
    ],
)
def test_invalid_value_names_variable(
    app_env: Callable[..., None], password_file: Path, variable: str, value: str, expected: str
) -> None:
    app_env(**{variable: value})

    message = load_error(forbidden=PASSWORD)

    assert message.startswith("Invalid settings:")
    assert expected in message
    assert f"(got {value!r})".lower() in message.lower()


def test_every_invalid_variable_listed(app_env: Callable[..., None], password_file: Path) -> None:
    app_env(redis_port="x", workers="-2")

    message = load_error()

    assert "APP_REDIS_PORT" in message
    assert "APP_WORKERS" in message


def test_available_cpus_is_positive() -> None:
    assert available_cpus() >= 1
