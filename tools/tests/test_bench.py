"""Tests of the bench's parsing and report, which need no sandbox."""

from __future__ import annotations

import pytest

from bench.report import Converge, LoadedChange, Report, Throughput, render
from bench.sandbox import parse_memory_mib, static_caddyfile
from bench.wrk import WrkResult, WrkRun, parse_wrk

WRK_OUTPUT = """\
Running 2s test @ http://127.0.0.1:18080/
  1 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     6.36ms    3.26ms  26.92ms   69.92%
    Req/Sec   628.90    110.50   810.00     65.00%
  Latency Distribution
     50%  572.00us
     75%    8.23ms
     90%   10.89ms
     99%    1.58s
  1254 requests in 2.00s, 2.90MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:    625.79
Transfer/sec:      1.45MB
"""


def test_parse_wrk_summary() -> None:
    result = parse_wrk(WRK_OUTPUT)
    assert (result.requests, result.requests_per_second, result.errors) == (1254, 625.79, 7)
    assert result.p50_ms == pytest.approx(0.572)
    assert result.p99_ms == pytest.approx(1580.0)


def test_parse_wrk_without_errors() -> None:
    output = WRK_OUTPUT.replace("  Socket errors: connect 0, read 2, write 0, timeout 1\n", "")
    output = output.replace("  Non-2xx or 3xx responses: 4\n", "")
    assert parse_wrk(output).errors == 0


def test_parse_wrk_rejects_failure() -> None:
    with pytest.raises(ValueError, match="not a wrk --latency summary"):
        parse_wrk("unable to connect to 127.0.0.1:1 Connection refused\n")


@pytest.mark.parametrize(
    ("usage", "mib"),
    [("41.5MiB / 256MiB", 41.5), ("512KiB / 1GiB", 0.5), ("1.5GiB / 2GiB", 1536.0)],
)
def test_parse_memory_used_part(usage: str, mib: float) -> None:
    assert parse_memory_mib(usage) == mib


def test_parse_memory_rejects_text() -> None:
    with pytest.raises(ValueError, match="not a docker stats memory usage"):
        parse_memory_mib("--")


CADDYFILE = """\
https://localhost {
\timport security_headers
\treverse_proxy unix//run/app-1/app.sock unix//run/app-2/app.sock {
\t\tlb_policy round_robin
\t\ttransport http {
\t\t\tkeepalive 60s
\t\t}
\t}
\tlog
}
"""


def test_static_caddyfile_replaces_proxy() -> None:
    assert static_caddyfile(CADDYFILE) == (
        "https://localhost {\n"
        "\timport security_headers\n"
        '\theader Content-Type "application/json"\n'
        '\trespond `{"message": "Hello"}` 200\n'
        "\tlog\n"
        "}\n"
    )


def _throughput(endpoint: str, path: str, rate: float) -> Throughput:
    return Throughput(endpoint, path, "wrk ...", WrkResult(1000, rate, 1.0, 2.0, 0))


def _report(caddy_item_rate: float) -> Report:
    report = Report(started="2026-12-04 00:00 UTC", machine="Linux, 2 CPUs", commit="abc1234")
    report.converge = Converge(first_seconds=200.0, rerun_seconds=40.0, rerun_changed=0)
    report.changes = [
        LoadedChange(
            "App update by this project", "ansible-playbook site.yml", 60.0, 900, 0, {}, True
        ),
        LoadedChange("Naive update", "docker compose up", 20.0, 300, 2, {"status 502": 2}, False),
    ]
    report.throughput = [
        _throughput("hello", "direct", 2000.0),
        _throughput("hello", "Caddy", 1400.0),
        _throughput("item read", "direct", 1500.0),
        _throughput("item read", "Caddy", caddy_item_rate),
        _throughput("cached", "direct", 1500.0),
        _throughput("cached", "Caddy", 1000.0),
    ]
    report.memory_mib = {"fastapi-stack-caddy-1": 30.0, "fastapi-stack-redis-1": 10.0}
    return report


def test_checks_meet_targets() -> None:
    checks = {target: (figure, met) for target, figure, met in _report(1000.0).checks()}
    assert checks["Idempotent re-run: changed=0, at most 25% of the first converge"] == (
        "changed=0, 20%",
        True,
    )
    assert checks["No failed request during: App update by this project"] == ("0 of 900", True)
    assert checks["Item read, through Caddy / direct: at least 0.6"] == ("0.67", True)
    assert checks["Item read / hello, direct: at least 0.7"] == ("0.75", True)
    assert checks["Idle memory of the stack: under 300 MiB"] == ("40 MiB", True)
    assert not any("Naive" in target for target in checks)


def test_checks_report_missed_target() -> None:
    checks = {target: met for target, _, met in _report(600.0).checks()}
    assert checks["Item read, through Caddy / direct: at least 0.6"] is False


def test_render_lists_figures() -> None:
    text = render(_report(1000.0), ["make bench"])
    assert "| Item read, through Caddy / direct: at least 0.6 | 0.67 | yes |" in text
    assert "| Naive update | `docker compose up` | 20.0 s | 300 | 2 | status 502 2 |" in text
    assert "| Total | 40.0 MiB |" in text
    assert text.endswith("```sh\nmake bench\n```\n")


def test_wrk_command_runs_from_repository() -> None:
    command = WrkRun("https://localhost/", "172.30.0.4:443", 10, 16).command()

    assert command.startswith("BENCH_CONNECT=172.30.0.4:443 nsenter --target ")
    assert "--script=tools/bench/connect.lua https://localhost/" in command
