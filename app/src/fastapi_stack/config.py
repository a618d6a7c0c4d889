"""Service settings, read from ``APP_*`` environment variables and one secret file.

Call ``load_settings()`` once per process. Nothing is read at import time, so tests can set the
environment first. The Redis password is read only from the file ``redis_password`` in the
secrets directory (``APP_SECRETS_DIR``, default ``/run/secrets``) and never from an environment
variable, because environment variables are visible in ``docker inspect`` and ``/proc``.
"""

from __future__ import annotations

import json
import os
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    IPvAnyNetwork,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from fastapi_stack.bind import DEFAULT_BIND, BindAddress, parse_binds
from fastapi_stack.errors import ConfigurationError

ENV_PREFIX = "APP_"
SECRETS_DIR_ENV = "APP_SECRETS_DIR"
DEFAULT_SECRETS_DIR = Path("/run/secrets")
REDIS_PASSWORD_FILE = "redis_password"  # noqa: S105 - a file name
MIN_REDIS_PASSWORD_LENGTH = 16
# The Caddy configuration of this project sets the upstream keep-alive to 60 s.
CADDY_UPSTREAM_KEEPALIVE_SECONDS = 60

# Fields that are never read from the environment. load_settings() fills them from files.
_FILE_ONLY_FIELDS = frozenset({"redis_password"})

IPNetwork = IPv4Network | IPv6Network
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


def available_cpus() -> int:
    """Return the number of CPUs this process may run on.

    This honours CPU affinity (``docker run --cpuset-cpus``) but not CPU quotas
    (``--cpus``), which Python cannot see. Set ``APP_WORKERS`` when a quota applies.
    """
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - sched_getaffinity is missing on macOS
        return os.cpu_count() or 1


def _loopback_networks() -> list[IPNetwork]:
    return [IPv4Network("127.0.0.0/8"), IPv6Network("::1/128")]


class _EnvironmentSource(EnvSettingsSource):
    """Environment variables, except for the fields that are only read from files."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        if field_name in _FILE_ONLY_FIELDS:
            return None, field_name, False
        return super().get_field_value(field, field_name)


class Settings(BaseSettings):
    """Settings of one service process. Each field is read from ``APP_<FIELD NAME>``."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        case_sensitive=False,
        frozen=True,
        extra="ignore",
        validate_default=True,
    )

    secrets_dir: Path = Field(
        default=DEFAULT_SECRETS_DIR,
        description="Directory that contains the file redis_password.",
    )

    redis_host: str = Field(default="redis", min_length=1, description="Redis host name or IP.")
    redis_port: int = Field(default=6379, ge=1, le=65535)
    redis_socket: Path | None = Field(
        default=None,
        description=(
            "Absolute path of the Redis Unix domain socket. When set, the service connects "
            "through it and ignores redis_host and redis_port. Unset or empty uses TCP."
        ),
    )
    redis_db: int = Field(default=0, ge=0, le=15)
    redis_username: str = Field(default="app", min_length=1, description="Redis ACL user.")
    redis_password: SecretStr = Field(
        exclude=True,
        description="Read only from <secrets_dir>/redis_password.",
    )
    redis_max_connections: int = Field(
        default=50, ge=1, description="Maximum connections in the pool of one worker process."
    )
    redis_pool_timeout_seconds: float = Field(
        default=1.0, gt=0, description="Maximum wait for a free pooled connection."
    )
    redis_connect_timeout_seconds: float = Field(default=0.5, gt=0)
    redis_socket_timeout_seconds: float = Field(
        default=0.5, gt=0, description="Maximum wait for the reply to one command."
    )
    redis_retries: int = Field(
        default=2, ge=0, le=10, description="Retries of a command after a connection error."
    )
    redis_health_check_interval_seconds: int = Field(
        default=30, ge=0, description="PING a pooled connection idle for longer than this."
    )

    trusted_proxies: Annotated[list[IPvAnyNetwork], NoDecode] = Field(
        default_factory=_loopback_networks,
        description=(
            "Networks whose X-Forwarded-For and X-Forwarded-Proto headers are trusted. "
            "Comma-separated CIDRs or a JSON list. Empty trusts no proxy."
        ),
    )

    rate_limit_requests: int = Field(
        default=120, ge=0, description="Requests per client IP and window; 0 disables the limit."
    )
    rate_limit_window_seconds: int = Field(default=60, ge=1)
    session_ttl_seconds: int = Field(default=1800, ge=1)
    cache_ttl_seconds: int = Field(default=300, ge=1)

    workers: int = Field(default_factory=available_cpus, ge=1, le=64)
    bind: str = Field(
        default=DEFAULT_BIND,
        description=(
            "Listen addresses, comma-separated: HOST:PORT or unix:/path/to.sock. Every worker "
            "accepts on all of them."
        ),
    )
    keep_alive_timeout_seconds: int = Field(
        default=75,
        ge=1,
        description=(
            "Idle time before the server closes a keep-alive connection. It must be longer "
            "than the proxy's upstream keep-alive (Caddy is set to 60 s), so that the proxy "
            "never reuses a connection that the server is closing."
        ),
    )
    graceful_shutdown_seconds: int = Field(
        default=8,
        ge=0,
        description=(
            "Time that open requests get to finish after SIGTERM. Keep it below the container "
            "stop timeout (Docker's default is 10 s)."
        ),
    )
    log_level: LogLevel = "INFO"
    metrics_dir: Path = Field(
        default=Path("/tmp/fastapi-stack-metrics"),  # noqa: S108
        description="Prometheus multiprocess directory. Put it on tmpfs.",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # No .env file and no pydantic secrets source: the password file is read by
        # load_settings(), which gives clearer errors.
        return (init_settings, _EnvironmentSource(settings_cls))

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_networks(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]

    @field_validator("redis_socket", mode="before")
    @classmethod
    def _empty_socket_is_unset(cls, value: object) -> object:
        # Compose substitutions such as ${REDIS_SOCKET:-} pass an empty string when unset.
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("redis_socket")
    @classmethod
    def _check_socket_is_absolute(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_absolute():
            raise ValueError(
                "the Redis socket path must be absolute, such as /run/redis/redis.sock"
            )
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("bind")
    @classmethod
    def _check_bind(cls, value: str) -> str:
        parse_binds(value)
        return value

    @field_validator("keep_alive_timeout_seconds")
    @classmethod
    def _check_keep_alive(cls, value: int) -> int:
        if value <= CADDY_UPSTREAM_KEEPALIVE_SECONDS:
            raise ValueError(
                f"must be longer than Caddy's upstream keep-alive of "
                f"{CADDY_UPSTREAM_KEEPALIVE_SECONDS} s"
            )
        return value

    @property
    def bind_addresses(self) -> tuple[BindAddress, ...]:
        return parse_binds(self.bind)

    @property
    def trusted_networks(self) -> tuple[IPNetwork, ...]:
        return tuple(self.trusted_proxies)

    @property
    def redis_address(self) -> str:
        """Redis address for log lines: ``unix:<path>`` or ``<host>:<port>``."""
        if self.redis_socket is not None:
            return f"unix:{self.redis_socket}"
        return f"{self.redis_host}:{self.redis_port}"


def read_redis_password(secrets_dir: Path) -> SecretStr:
    """Read the Redis password from ``<secrets_dir>/redis_password``.

    One trailing newline (LF or CRLF) is removed. Raises ConfigurationError when the file is
    missing, unreadable, empty, shorter than 16 characters or contains whitespace. The message
    names the file and never contains its content.
    """
    path = secrets_dir / REDIS_PASSWORD_FILE
    fix = (
        f"Write a password of at least {MIN_REDIS_PASSWORD_LENGTH} characters on one line to "
        f"{path} (for example: openssl rand -hex 32 > {path}), or set {SECRETS_DIR_ENV} to "
        f"the directory that contains {REDIS_PASSWORD_FILE}."
    )
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigurationError(f"Redis password file {path} is missing. {fix}") from None
    except OSError as exc:
        raise ConfigurationError(
            f"Redis password file {path} cannot be read: {exc.strerror}. {fix}"
        ) from None

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        # Not chained: the decode error carries the file content.
        raise ConfigurationError(f"Redis password file {path} is not valid UTF-8. {fix}") from None

    text = text.removesuffix("\n").removesuffix("\r")
    if not text:
        raise ConfigurationError(f"Redis password file {path} is empty. {fix}")
    if any(character.isspace() or not character.isprintable() for character in text):
        raise ConfigurationError(
            f"Redis password file {path} contains whitespace or control characters "
            f"other than one trailing newline. {fix}"
        )
    if len(text) < MIN_REDIS_PASSWORD_LENGTH:
        raise ConfigurationError(
            f"Redis password in {path} is shorter than {MIN_REDIS_PASSWORD_LENGTH} characters. "
            f"{fix}"
        )
    return SecretStr(text)


def load_settings() -> Settings:
    """Build the settings from the environment and the secret file.

    Raises ConfigurationError with one line per invalid variable, naming the variable.
    """
    for name in os.environ:
        if name.upper() == f"{ENV_PREFIX}REDIS_PASSWORD":
            raise ConfigurationError(
                f"{name} is set, but the Redis password is read only from the file "
                f"{REDIS_PASSWORD_FILE} in {SECRETS_DIR_ENV} (default {DEFAULT_SECRETS_DIR}). "
                f"Remove {name} and put the password in that file."
            )

    secrets_dir = Path(os.environ.get(SECRETS_DIR_ENV) or DEFAULT_SECRETS_DIR)
    password = read_redis_password(secrets_dir)
    try:
        return Settings(secrets_dir=secrets_dir, redis_password=password)
    except ValidationError as exc:
        raise ConfigurationError(_describe_validation_error(exc)) from None


def _describe_validation_error(error: ValidationError) -> str:
    # The pydantic error is not chained or printed as a whole because its input values
    # could include file-only fields.
    lines = ["Invalid settings:"]
    for detail in error.errors(include_url=False):
        location = detail["loc"]
        field = str(location[0]) if location else ""
        variable = f"{ENV_PREFIX}{field.upper()}" if field else "settings"
        message = detail["msg"]
        if field in _FILE_ONLY_FIELDS or not field:
            lines.append(f"  {variable}: {message}")
        else:
            lines.append(f"  {variable}: {message} (got {detail['input']!r})")
    return "\n".join(lines)
