from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from fastapi_stack.config import Settings
from fastapi_stack.logging import JsonFormatter, RepeatThrottle, request_id_var, setup_logging
from tests.conftest import free_port, running_client


@pytest.fixture
def json_logs() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """Configure JSON logging, and return a function that returns the new lines, parsed."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    setup_logging("DEBUG")
    buffer = io.StringIO()
    for handler in root.handlers:
        if isinstance(handler, logging.StreamHandler) and handler not in saved_handlers:
            handler.setStream(buffer)

    def read() -> list[dict[str, Any]]:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return [json.loads(line) for line in text.splitlines() if line]

    yield read
    for handler in root.handlers:
        if handler not in saved_handlers:
            root.removeHandler(handler)
    for handler in saved_handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(saved_level)


def make_record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("test.logger", logging.WARNING, __file__, 1, message, args, None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_formatter_writes_one_json_object() -> None:
    record = make_record("peer %s down", "rtr-1", interface="xe-0/0/0")

    entry = json.loads(JsonFormatter().format(record))

    assert entry["message"] == "peer rtr-1 down"
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "test.logger"
    assert entry["interface"] == "xe-0/0/0"
    assert entry["time"].endswith("+00:00")
    assert "request_id" not in entry


def test_formatter_includes_exception() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = make_record("failed")
        record.exc_info = __import__("sys").exc_info()

    entry = json.loads(JsonFormatter().format(record))

    assert "RuntimeError: boom" in entry["exception"]


def test_log_line_carries_context_request_id(
    json_logs: Callable[[], list[dict[str, Any]]],
) -> None:
    token = request_id_var.set("req-123")
    try:
        logging.getLogger("fastapi_stack.test").info("inside %s", "request")
    finally:
        request_id_var.reset(token)
    logging.getLogger("fastapi_stack.test").info("outside")

    inside, outside = json_logs()

    assert inside["request_id"] == "req-123"
    assert inside["message"] == "inside request"
    assert "request_id" not in outside


async def test_request_lines_share_request_id(
    json_logs: Callable[[], list[dict[str, Any]]], settings: Settings
) -> None:
    async with running_client(settings) as client:
        json_logs()
        response = await client.post(
            "/api/v1/items", json={"name": "x"}, headers={"X-Request-ID": "caddy-req-42"}
        )

    access = [e for e in json_logs() if e["logger"] == "fastapi_stack.access"]

    assert response.headers["x-request-id"] == "caddy-req-42"
    assert len(access) == 1
    assert access[0]["request_id"] == "caddy-req-42"
    assert access[0]["method"] == "POST"
    assert access[0]["path"] == "/api/v1/items"
    assert access[0]["status"] == 201
    assert access[0]["client_ip"] == "192.0.2.10"
    assert access[0]["duration_ms"] >= 0


async def test_logs_never_contain_secrets(
    json_logs: Callable[[], list[dict[str, Any]]],
    settings: Settings,
) -> None:
    password = settings.redis_password.get_secret_value()
    async with running_client(settings) as client:
        created = await client.post("/api/v1/session", json={"name": "n"})
        session_id = client.cookies["session_id"]
        await client.get("/api/v1/session")
        await client.get("/api/v1/items?token=query-secret")
    # An authentication failure and a refused connection log errors from redis-py.
    wrong_password = "wrong-password-0123456789"
    for update in ({"redis_password": SecretStr(wrong_password)}, {"redis_port": free_port()}):
        async with running_client(settings.model_copy(update=update)) as client:
            await client.get("/readyz")

    # The test client's own httpx log lines contain the full URL; they are not the service's.
    lines = [e for e in json_logs() if not e["logger"].startswith(("httpx", "httpcore"))]
    text = json.dumps(lines)

    assert created.status_code == 201
    kinds = {e.get("error_kind") for e in lines if e["logger"] == "fastapi_stack.redis"}
    assert kinds == {"authentication", "connection"}
    assert password not in text
    assert wrong_password not in text
    assert session_id not in text
    assert "query-secret" not in text
    assert "session_id=" not in text


def test_throttle_allows_one_line_per_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr("fastapi_stack.logging.time.monotonic", lambda: now[0])
    throttle = RepeatThrottle(10.0)

    first = throttle.should_log("redis")
    repeats = [throttle.should_log("redis") for _ in range(3)]
    other_key = throttle.should_log("cache")
    now[0] += 10.0
    after_interval = throttle.should_log("redis")

    assert first == (True, 0)
    assert repeats == [(False, 0)] * 3
    assert other_key == (True, 0)
    assert after_interval == (True, 3)
