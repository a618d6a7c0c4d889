"""Turn the figures of one bench run into docs/benchmarks.md."""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.wrk import WrkResult

# Targets of the project, checked against the figures of the same run.
TARGET_PROXY_RATIO = 0.6
TARGET_ITEM_TO_HELLO_RATIO = 0.7
TARGET_RERUN_SHARE = 0.25
TARGET_IDLE_MEMORY_MIB = 300.0


@dataclass(frozen=True)
class Converge:
    first_seconds: float
    rerun_seconds: float
    rerun_changed: int


@dataclass(frozen=True)
class LoadedChange:
    """Requests sent through Caddy while one change ran, and how many failed."""

    name: str
    command: str
    seconds: float
    sent: int
    failed: int
    errors: dict[str, int]
    ours: bool


@dataclass(frozen=True)
class Throughput:
    endpoint: str
    path: str
    command: str
    result: WrkResult


@dataclass
class Report:
    started: str
    machine: str
    commit: str
    converge: Converge | None = None
    changes: list[LoadedChange] = field(default_factory=list)
    throughput: list[Throughput] = field(default_factory=list)
    memory_mib: dict[str, float] = field(default_factory=dict)
    throughput_rounds: int = 1

    def rate(self, endpoint: str, path: str) -> float:
        for row in self.throughput:
            if row.endpoint == endpoint and row.path == path:
                return row.result.requests_per_second
        raise KeyError(f"no throughput figure for {endpoint} via {path}")

    def checks(self) -> list[tuple[str, str, bool]]:
        """Return each target as (target, figure, met)."""
        checks: list[tuple[str, str, bool]] = []
        if self.converge is not None:
            share = self.converge.rerun_seconds / self.converge.first_seconds
            checks.append(
                (
                    "Idempotent re-run: changed=0, at most 25% of the first converge",
                    f"changed={self.converge.rerun_changed}, {share:.0%}",
                    self.converge.rerun_changed == 0 and share <= TARGET_RERUN_SHARE,
                )
            )
        for change in self.changes:
            if change.ours:
                checks.append(
                    (
                        f"No failed request during: {change.name}",
                        f"{change.failed} of {change.sent}",
                        change.failed == 0 and change.sent > 0,
                    )
                )
        for endpoint in ("item read", "cached"):
            ratio = self.rate(endpoint, "Caddy") / self.rate(endpoint, "direct")
            checks.append(
                (
                    f"{endpoint.capitalize()}, through Caddy / direct: at least "
                    f"{TARGET_PROXY_RATIO}",
                    f"{ratio:.2f}",
                    ratio >= TARGET_PROXY_RATIO,
                )
            )
        ratio = self.rate("item read", "direct") / self.rate("hello", "direct")
        checks.append(
            (
                f"Item read / hello, direct: at least {TARGET_ITEM_TO_HELLO_RATIO}",
                f"{ratio:.2f}",
                ratio >= TARGET_ITEM_TO_HELLO_RATIO,
            )
        )
        total = sum(self.memory_mib.values())
        checks.append(
            (
                f"Idle memory of the stack: under {TARGET_IDLE_MEMORY_MIB:.0f} MiB",
                f"{total:.0f} MiB",
                total < TARGET_IDLE_MEMORY_MIB,
            )
        )
        return checks


def _errors(errors: dict[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in sorted(errors.items())) or "none"


def render(report: Report, commands: list[str]) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (tools/bench). Every figure below comes from one run on one",
        "machine; compare figures of the same run with each other, not with another machine.",
        "",
        f"- Run started: {report.started}",
        f"- Machine: {report.machine}",
        f"- Commit: {report.commit}",
        "",
        "## Targets",
        "",
        "| Target | Figure | Met |",
        "| --- | --- | --- |",
    ]
    lines += [
        f"| {target} | {figure} | {'yes' if met else 'NO'} |"
        for target, figure, met in report.checks()
    ]

    if report.converge is not None:
        converge = report.converge
        lines += [
            "",
            "## Converge of site.yml on a fresh sandbox host",
            "",
            "| Run | Wall time | Changed |",
            "| --- | --- | --- |",
            f"| First converge | {converge.first_seconds:.1f} s | (all) |",
            f"| Second run | {converge.rerun_seconds:.1f} s | {converge.rerun_changed} |",
            "",
            f"The second run takes {converge.rerun_seconds / converge.first_seconds:.0%} of the "
            "first.",
        ]

    lines += [
        "",
        "## Failed requests under load",
        "",
        "A client sends `GET /readyz` through Caddy (HTTPS, a new TLS connection per request,",
        "no pause) while the change runs, and for a few seconds after it. `/readyz` passes",
        "through an app replica to Redis. A request fails on a connection error, a timeout",
        "(5 s) or a 5xx status.",
        "",
        "| Change | Done by | Duration | Requests | Failed | Errors |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for change in report.changes:
        lines.append(
            f"| {change.name} | `{change.command}` | {change.seconds:.1f} s | {change.sent} "
            f"| {change.failed} | {_errors(change.errors)} |"
        )

    lines += [
        "",
        "## Requests per second and latency",
        "",
        "wrk runs in the sandbox host's network namespace and sends every request on a",
        "keep-alive connection. It measures three paths. Caddy is the live proxy over HTTPS,",
        "with two app replicas behind it on Unix sockets. Direct is one app container over",
        "HTTP on its TCP port. Caddy alone",
        "is a second Caddy container that answers with a static body and proxies nothing: the",
        "ceiling of Caddy on this machine.",
        f"Each row is the median of {report.throughput_rounds} runs; the runs of all rows",
        "take turns, so a burst of other load on the machine does not fall on one row only.",
        "",
        "| Endpoint | Path | Requests/s | p50 | p99 | Errors |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in report.throughput:
        result = row.result
        lines.append(
            f"| {row.endpoint} | {row.path} | {result.requests_per_second:,.0f} "
            f"| {result.p50_ms:.2f} ms | {result.p99_ms:.2f} ms | {result.errors} |"
        )
    lines += ["", "Ratios of the same run:", ""]
    for endpoint in ("hello", "item read", "cached"):
        ratio = report.rate(endpoint, "Caddy") / report.rate(endpoint, "direct")
        lines.append(f"- {endpoint}, through Caddy / direct: {ratio:.2f}")
    for path in ("direct", "Caddy"):
        ratio = report.rate("item read", path) / report.rate("hello", path)
        lines.append(f"- item read / hello, {path}: {ratio:.2f}")

    lines += [
        "",
        "## Idle memory per container",
        "",
        "Resident memory from `docker stats` inside the sandbox host, with no traffic.",
        "",
        "| Container | Memory |",
        "| --- | --- |",
    ]
    lines += [f"| {name} | {mib:.1f} MiB |" for name, mib in sorted(report.memory_mib.items())]
    lines.append(f"| Total | {sum(report.memory_mib.values()):.1f} MiB |")

    lines += ["", "## Commands", "", "```sh", *commands, "```", ""]
    return "\n".join(lines)
