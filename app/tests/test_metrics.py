from __future__ import annotations

import os
from pathlib import Path

import pytest

from fastapi_stack import metrics


@pytest.fixture
def multiproc_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(metrics.MULTIPROC_DIR_ENV, str(tmp_path))
    return tmp_path


def test_mark_dead_workers_removes_only_dead(multiproc_dir: Path) -> None:
    dead_pid = 2**22 + 12345  # above the default pid_max of 4194304, so never a live process
    dead = multiproc_dir / f"gauge_livesum_{dead_pid}.db"
    alive = multiproc_dir / f"gauge_livesum_{os.getpid()}.db"
    counter = multiproc_dir / f"counter_{dead_pid}.db"
    for path in (dead, alive, counter):
        path.write_bytes(b"")

    removed = metrics.mark_dead_workers()

    assert removed == [dead_pid]
    assert not dead.exists()
    assert alive.exists()
    assert counter.exists()


def test_mark_dead_workers_without_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(metrics.MULTIPROC_DIR_ENV, raising=False)

    assert metrics.mark_dead_workers() == []
    metrics.mark_process_dead(os.getpid())


def test_mark_process_dead_removes_live_gauge(multiproc_dir: Path) -> None:
    live = multiproc_dir / "gauge_livesum_4242.db"
    live.write_bytes(b"")

    metrics.mark_process_dead(4242)

    assert not live.exists()


def test_render_merges_multiprocess_files(multiproc_dir: Path) -> None:
    body, content_type = metrics.render_latest()

    assert content_type.startswith("text/plain")
    assert body == b""


def test_render_single_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(metrics.MULTIPROC_DIR_ENV, raising=False)
    metrics.observe_request("/test", "GET", 200, 0.01)

    body, _ = metrics.render_latest()

    assert b'http_requests_total{method="GET",route="/test",status="200"}' in body


def test_process_exists() -> None:
    assert metrics._process_exists(os.getpid())
    assert not metrics._process_exists(2**22 + 12345)
    # pid 1 exists but may belong to another user; either way it exists.
    assert metrics._process_exists(1)
