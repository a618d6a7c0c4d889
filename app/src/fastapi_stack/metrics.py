"""Prometheus metrics of the service.

With several uvicorn worker processes, every worker writes its samples to files in the
directory named by ``PROMETHEUS_MULTIPROC_DIR``, and ``/metrics`` merges the files of all
workers. prometheus_client reads that variable when it is imported, so ``serve.py`` sets it
before any worker imports this module. Without the variable (tests, a single process started
another way) the metrics live in the default in-process registry.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prometheus_multiprocess

logger = logging.getLogger(__name__)

MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
UNMATCHED_ROUTE = "<unmatched>"

HTTP_REQUESTS = Counter(
    "http_requests_total",
    "HTTP requests handled, by route template, method and status code.",
    ["route", "method", "status"],
)
HTTP_REQUEST_DURATION = Histogram(
    "http_request_duration_seconds",
    "Time from receiving a request to sending the last response byte.",
    ["route", "method", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
HTTP_REQUESTS_IN_PROGRESS = Gauge(
    "http_requests_in_progress",
    "HTTP requests being handled now, summed over the live worker processes.",
    multiprocess_mode="livesum",
)
REDIS_ERRORS = Counter(
    "redis_errors_total",
    "Redis commands that failed, by operation and error kind.",
    ["operation", "kind"],
)
CACHE_LOOKUPS = Counter(
    "cache_lookups_total",
    "Cache-aside lookups, by result: hit, miss, or error when Redis failed.",
    ["result"],
)
RATE_LIMITED = Counter(
    "rate_limited_requests_total",
    "Requests rejected with 429 by the rate limiter.",
)

# Files written by prometheus_client for live gauges, such as gauge_livesum_1234.db.
_LIVE_GAUGE_FILE = re.compile(r"^gauge_live\w*?_(\d+)\.db$")


def observe_request(route: str, method: str, status: int, duration_seconds: float) -> None:
    """Record one finished HTTP request."""
    labels = (route, method, str(status))
    HTTP_REQUESTS.labels(*labels).inc()
    HTTP_REQUEST_DURATION.labels(*labels).observe(duration_seconds)


def render_latest() -> tuple[bytes, str]:
    """Return the exposition text of all metrics and its content type."""
    if os.environ.get(MULTIPROC_DIR_ENV):
        registry = CollectorRegistry()
        prometheus_multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def mark_process_dead(pid: int) -> None:
    """Remove the live-gauge samples of worker ``pid`` from the multiprocess directory."""
    if os.environ.get(MULTIPROC_DIR_ENV):
        prometheus_multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def mark_dead_workers() -> list[int]:
    """Mark every worker whose process no longer exists as dead, and return their ids.

    A worker that exits normally marks itself in its shutdown. A worker that crashed cannot,
    so each new worker calls this on start-up.
    """
    directory = os.environ.get(MULTIPROC_DIR_ENV)
    if not directory:
        return []
    dead: set[int] = set()
    for path in Path(directory).iterdir():
        match = _LIVE_GAUGE_FILE.match(path.name)
        if match and not _process_exists(int(match.group(1))):
            dead.add(int(match.group(1)))
    for pid in sorted(dead):
        logger.info("Removing live metrics of dead worker process %d", pid)
        prometheus_multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]
    return sorted(dead)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
