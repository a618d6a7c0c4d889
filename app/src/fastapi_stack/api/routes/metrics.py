"""Prometheus metrics. Caddy blocks this path from the public side."""

from __future__ import annotations

from fastapi import APIRouter, Response

from fastapi_stack.metrics import render_latest

router = APIRouter(tags=["probes"])


@router.get("/metrics", include_in_schema=False)
def metrics() -> Response:
    body, content_type = render_latest()
    return Response(content=body, media_type=content_type)
