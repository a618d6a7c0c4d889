"""Run wrk in a network namespace and read its summary."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

CONNECT_SCRIPT = Path(__file__).with_name("connect.lua")

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
_REQUESTS_PER_SECOND = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_TOTAL = re.compile(r"^\s*(\d+) requests in ", re.MULTILINE)
_PERCENTILE = re.compile(r"^\s+(50|99)(?:\.000)?%\s+([\d.]+)(us|ms|s|m)\s*$", re.MULTILINE)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKET_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


@dataclass(frozen=True)
class WrkResult:
    requests: int
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int

    def as_dict(self) -> dict[str, float | int]:
        return {
            "requests": self.requests,
            "requests_per_second": round(self.requests_per_second, 1),
            "p50_ms": round(self.p50_ms, 3),
            "p99_ms": round(self.p99_ms, 3),
            "errors": self.errors,
        }


def parse_wrk(output: str) -> WrkResult:
    """Read the summary that ``wrk --latency`` prints.

    Errors are the non-2xx/3xx responses plus every socket error. Raises ValueError when
    the output has no request rate or latency percentiles, for example after wrk failed.
    """
    rate = _REQUESTS_PER_SECOND.search(output)
    total = _TOTAL.search(output)
    percentiles = {
        match[1]: float(match[2]) * _UNITS_MS[match[3]] for match in _PERCENTILE.finditer(output)
    }
    if rate is None or total is None or set(percentiles) != {"50", "99"}:
        raise ValueError(f"not a wrk --latency summary:\n{output}")
    errors = 0
    if non_2xx := _NON_2XX.search(output):
        errors += int(non_2xx[1])
    if socket_errors := _SOCKET_ERRORS.search(output):
        errors += sum(int(count) for count in socket_errors.groups())
    return WrkResult(
        requests=int(total[1]),
        requests_per_second=float(rate[1]),
        p50_ms=percentiles["50"],
        p99_ms=percentiles["99"],
        errors=errors,
    )


@dataclass(frozen=True)
class WrkRun:
    """One wrk measurement: ``url`` names the site, ``connect`` is where the sockets go."""

    url: str
    connect: str
    seconds: int
    connections: int
    threads: int = 1

    def argv(self) -> list[str]:
        return [
            "wrk",
            "--latency",
            f"--threads={self.threads}",
            f"--connections={self.connections}",
            f"--duration={self.seconds}s",
            f"--script={CONNECT_SCRIPT}",
            self.url,
        ]

    def command(self) -> str:
        """Return the command as an operator would type it in the repository, for the report."""
        argv = [
            f"--script={CONNECT_SCRIPT.relative_to(CONNECT_SCRIPT.parents[2])}"
            if arg.startswith("--script=")
            else arg
            for arg in self.argv()
        ]
        return (
            f'BENCH_CONNECT={self.connect} nsenter --target "$(docker inspect --format '
            f"'{{{{.State.Pid}}}}' fastapi-stack-sandbox)\" --net " + " ".join(argv)
        )


def run_wrk(run: WrkRun, netns_pid: int) -> WrkResult:
    """Run wrk inside the network namespace of process ``netns_pid``."""
    completed = subprocess.run(
        ["nsenter", f"--target={netns_pid}", "--net", "--", *run.argv()],
        env={**os.environ, "BENCH_CONNECT": run.connect},
        capture_output=True,
        text=True,
        check=False,
        timeout=run.seconds + 60,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"wrk failed ({completed.returncode}): {completed.stderr.strip()}")
    return parse_wrk(completed.stdout)
