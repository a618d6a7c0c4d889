from __future__ import annotations

import uuid

import httpx
from prometheus_client import REGISTRY


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_metrics_label_route_template(client: httpx.AsyncClient) -> None:
    labels = {"route": "/api/v1/items/{item_id}", "method": "GET", "status": "404"}
    before = sample("http_requests_total", **labels)
    before_count = sample("http_request_duration_seconds_count", **labels)

    for _ in range(3):
        await client.get(f"/api/v1/items/{uuid.uuid4()}")

    assert sample("http_requests_total", **labels) == before + 3
    assert sample("http_request_duration_seconds_count", **labels) == before_count + 3


async def test_unmatched_paths_share_one_label(client: httpx.AsyncClient) -> None:
    labels = {"route": "<unmatched>", "method": "GET", "status": "404"}
    before = sample("http_requests_total", **labels)

    await client.get("/wp-login.php")
    await client.get("/.env")

    assert sample("http_requests_total", **labels) == before + 2


async def test_metrics_endpoint_exposes_text(client: httpx.AsyncClient) -> None:
    await client.get("/healthz")

    response = await client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert 'http_requests_total{method="GET",route="/healthz",status="200"}' in response.text
    assert "redis_errors_total" in response.text
    assert "http_requests_in_progress" in response.text
