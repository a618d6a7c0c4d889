from __future__ import annotations

import logging
import re

import httpx
import pytest
from asgi_lifespan import LifespanManager

from fastapi_stack.config import Settings
from fastapi_stack.main import create_app
from fastapi_stack.metrics import UNMATCHED_ROUTE
from fastapi_stack.middleware import route_template
from tests.conftest import BASE_URL, CLIENT_IP

GENERATED_ID = re.compile(r"^[0-9a-f]{32}$")


async def test_request_id_from_header_is_kept(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz", headers={"X-Request-ID": "0a1b-2c3d.4e5f:6"})

    assert response.headers["x-request-id"] == "0a1b-2c3d.4e5f:6"


@pytest.mark.parametrize("incoming", ["", "has space", "x" * 129, "line\tbreak", "ü"])
async def test_invalid_request_id_is_replaced(client: httpx.AsyncClient, incoming: str) -> None:
    headers = [(b"x-request-id", incoming.encode("utf-8"))]
    response = await client.get("/healthz", headers=headers)

    assert GENERATED_ID.match(response.headers["x-request-id"])


async def test_request_id_generated_when_absent(client: httpx.AsyncClient) -> None:
    first = await client.get("/healthz")
    second = await client.get("/healthz")

    assert GENERATED_ID.match(first.headers["x-request-id"])
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


async def test_unhandled_error_is_json_500(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(settings)

    async def fail() -> None:
        raise RuntimeError("unexpected failure")

    app.add_api_route("/fail", fail)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app, client=(CLIENT_IP, 1))
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            response = await client.get("/fail")

    assert response.status_code == 500
    error = response.json()["error"]
    assert error["code"] == "internal_error"
    assert "unexpected failure" not in error["message"]
    assert error["request_id"] == response.headers["x-request-id"]
    logged = [r for r in caplog.records if r.name == "fastapi_stack.middleware"]
    assert len(logged) == 1
    assert logged[0].levelno == logging.ERROR
    assert logged[0].exc_info is not None


async def test_unknown_path_uses_error_shape(client: httpx.AsyncClient) -> None:
    response = await client.get("/nowhere")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert response.json()["error"]["message"] == "Not Found"


async def test_wrong_method_uses_error_shape(client: httpx.AsyncClient) -> None:
    response = await client.put("/healthz")

    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert response.headers["allow"] == "GET"


async def test_openapi_documents_endpoints(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    docs = await client.get("/docs")

    assert docs.status_code == 200
    assert set(schema["paths"]) == {
        "/healthz",
        "/readyz",
        "/api/v1/hello",
        "/api/v1/items",
        "/api/v1/items/{item_id}",
        "/api/v1/compute/{n}",
        "/api/v1/session",
    }
    not_found = schema["paths"]["/api/v1/items/{item_id}"]["get"]["responses"]["404"]
    assert not_found["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")


def test_route_template_without_route() -> None:
    assert route_template({"type": "http", "path": "/x"}) == UNMATCHED_ROUTE
