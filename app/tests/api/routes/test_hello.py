from __future__ import annotations

import httpx


async def test_hello_returns_a_greeting(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/hello")
    assert response.status_code == 200
    assert response.json() == {"message": "Hello"}


async def test_hello_counts_against_the_rate_limit(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/hello")
    assert "RateLimit-Remaining" in response.headers
