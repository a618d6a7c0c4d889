"""``make bench``: measure the sandbox and write docs/benchmarks.md.

The run replaces the sandbox. It removes the sandbox host and times the first converge of
site.yml on a new one and the idempotent re-run. Then it changes the stack under load: an
app update by site.yml, the same update with a plain ``docker compose up --force-recreate``,
a certificate rotation and a Caddyfile change. It measures requests per second with wrk.
Last, it runs site.yml with the inventory as it is, which puts the sandbox back.

Traffic stays on this machine: the request loop uses the sandbox's published port on
127.0.0.1, and wrk runs in the sandbox host's own network namespace.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from bench import sandbox
from bench.report import Converge, LoadedChange, Report, Throughput, render
from bench.wrk import WrkRun, run_wrk

REPO = Path(__file__).resolve().parents[2]
WORK_DIR = REPO / ".sandbox" / "bench"
# The item and the cached result that wrk reads.
ITEM_BODY = {"name": "bench item", "description": "read by wrk"}
CACHED_N = 100_000
_RECAP = re.compile(r"^\S+\s+:\s+ok=\d+\s+changed=(\d+)\s", re.M)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def run_logged(argv: list[str], log_name: str) -> tuple[float, str]:
    """Run ``argv`` from the repository root, keep its output in WORK_DIR, and time it."""
    started = time.monotonic()
    completed = subprocess.run(
        argv, cwd=REPO, capture_output=True, text=True, check=False, timeout=1800
    )
    seconds = time.monotonic() - started
    (WORK_DIR / f"{log_name}.log").write_text(completed.stdout + completed.stderr)
    if completed.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} failed ({completed.returncode}); see {WORK_DIR / log_name}.log"
        )
    return seconds, completed.stdout


def playbook(playbook_path: str, log_name: str, *extra_vars: Path) -> tuple[float, int]:
    """Run a playbook and return its wall time and the changed count of its recap."""
    argv = ["ansible-playbook", playbook_path]
    for path in extra_vars:
        argv += ["--extra-vars", f"@{path}"]
    seconds, output = run_logged(argv, log_name)
    changed = sum(int(match[1]) for match in _RECAP.finditer(output))
    log(f"{playbook_path}: {seconds:.1f} s, changed={changed}")
    return seconds, changed


def write_private(path: Path, data: object) -> Path:
    """Write extra variables as JSON (which is YAML), readable by the owner only."""
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(json.dumps(data, indent=2))
    return path


def under_load(
    report: Report, name: str, command: str, ours: bool, change: Callable[[], object]
) -> None:
    """Run ``change`` while the request loop sends requests through Caddy."""
    log(f"under load: {name}")
    stop_file = WORK_DIR / "request-loop.stop"
    stop_file.unlink(missing_ok=True)
    loop = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "request_loop",
            f"https://{sandbox.SITE}/readyz",
            "--connect",
            sandbox.CONNECT,
            "--ca",
            str(REPO / ".sandbox" / "ca.crt"),
            "--seconds",
            "900",
            "--stop-file",
            str(stop_file),
        ],
        cwd=REPO / "tools",
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(2)
        started = time.monotonic()
        change()
        seconds = time.monotonic() - started
        sandbox.wait_healthy()
        # Requests on the new containers and configuration, after the change.
        time.sleep(3)
    finally:
        stop_file.touch()
        output, _ = loop.communicate(timeout=60)
    result = json.loads(output)
    log(f"{name}: {result['sent']} requests, {result['failed']} failed {result['errors']}")
    report.changes.append(
        LoadedChange(
            name=name,
            command=command,
            seconds=seconds,
            sent=result["sent"],
            failed=result["failed"],
            errors=result["errors"],
            ours=ours,
        )
    )


def measure(url: str, connect: str, seconds: int, connections: int, host_pid: int) -> Throughput:
    """Warm up for 1 second, then run wrk for ``seconds`` and keep that run."""
    run_wrk(WrkRun(url, connect, 1, connections), host_pid)
    measured = WrkRun(url, connect, seconds, connections)
    return Throughput("", "", measured.command(), run_wrk(measured, host_pid))


def measure_throughput(report: Report, seconds: int, connections: int, rounds: int) -> None:
    """Run every endpoint and path ``rounds`` times, interleaved, and keep the median run.

    Interleaving spreads a burst of load from elsewhere on the machine over all the rows
    instead of one.
    """
    host_pid = sandbox.host_pid()
    caddy = sandbox.container_address(sandbox.CADDY)
    app = sandbox.container_address(sandbox.APP)
    item_id = sandbox.create_item(ITEM_BODY)
    sandbox.warm_cache(f"/api/v1/compute/{CACHED_N}")
    endpoints = {
        "hello": "/api/v1/hello",
        "item read": f"/api/v1/items/{item_id}",
        "cached": f"/api/v1/compute/{CACHED_N}",
    }
    # Path name: (base URL, address wrk connects to).
    targets = {
        "direct": ("http://localhost:8000", f"{app}:8000"),
        "Caddy": ("https://localhost", f"{caddy}:443"),
    }
    static = sandbox.container_address(sandbox.start_static_caddy())
    cells = [
        (endpoint, name, base + path, connect)
        for endpoint, path in endpoints.items()
        for name, (base, connect) in targets.items()
    ]
    cells.append(("static body", "Caddy alone", "https://localhost/", f"{static}:443"))
    runs: dict[tuple[str, str], list[Throughput]] = {}
    try:
        for _ in range(rounds):
            for endpoint, name, url, connect in cells:
                row = measure(url, connect, seconds, connections, host_pid)
                log(f"{endpoint} via {name}: {row.result.requests_per_second:.0f} requests/s")
                runs.setdefault((endpoint, name), []).append(
                    replace(row, endpoint=endpoint, path=name)
                )
    finally:
        sandbox.stop_static_caddy()
    for rows in runs.values():
        rows.sort(key=lambda row: row.result.requests_per_second)
        report.throughput.append(rows[len(rows) // 2])
    report.throughput_rounds = rounds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5, help="length of each wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="wrk runs per row (median kept)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument(
        "--output", type=Path, default=REPO / "docs" / "benchmarks.md", help="report file"
    )
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)

    commit = subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    report = Report(
        started=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        machine=f"{platform.system()} {platform.release()}, {os.cpu_count()} CPUs",
        commit=commit,
    )

    log("removing the sandbox")
    subprocess.run(
        ["make", "--no-print-directory", "clean"], cwd=REPO, capture_output=True, check=True
    )
    WORK_DIR.mkdir(parents=True)
    playbook("playbooks/sandbox.yml", "sandbox")
    first, _ = playbook("site.yml", "converge-first")
    rerun, changed = playbook("site.yml", "converge-second")
    report.converge = Converge(first, rerun, changed)

    time.sleep(10)
    report.memory_mib = sandbox.idle_memory_mib()
    log(f"idle memory: {report.memory_mib}")

    # The bench's app configuration: no rate limit, since one load client would reach it
    # within a second. Deploying it is the app update measured here.
    app_vars = write_private(
        WORK_DIR / "app.json", {"stack_app_environment": {"APP_RATE_LIMIT_REQUESTS": "0"}}
    )
    under_load(
        report,
        "App update by this project",
        "ansible-playbook site.yml -e @app.json",
        True,
        lambda: playbook("site.yml", "app-update", app_vars),
    )
    under_load(
        report,
        "The same update done the naive way",
        sandbox.NAIVE_UPDATE,
        False,
        sandbox.naive_update,
    )

    certificate, key = sandbox.issue_certificate(REPO / ".sandbox" / "pki")
    tls_vars = write_private(
        WORK_DIR / "tls.json",
        {
            "tls_sites": [
                {
                    "name": "sandbox",
                    "names": [sandbox.SITE, "localhost"],
                    "certificate": certificate,
                    "private_key": key,
                }
            ]
        },
    )
    under_load(
        report,
        "Certificate rotation",
        "ansible-playbook playbooks/rotate-certs.yml -e @tls.json",
        True,
        lambda: playbook("playbooks/rotate-certs.yml", "rotate-certs", tls_vars),
    )
    caddy_vars = write_private(WORK_DIR / "caddy.json", {"stack_caddy_upstream_keepalive": "59s"})
    under_load(
        report,
        "Caddyfile change (graceful reload)",
        "ansible-playbook site.yml -e @app.json -e @tls.json -e @caddy.json",
        True,
        lambda: playbook("site.yml", "caddyfile-change", app_vars, tls_vars, caddy_vars),
    )

    measure_throughput(report, args.seconds, args.connections, args.rounds)

    log("putting the sandbox back to the inventory's configuration")
    playbook("site.yml", "restore")

    commands = [
        "make bench    # runs: python -m bench (in tools/)",
        *(row.command for row in report.throughput),
    ]
    args.output.write_text(render(report, commands))
    log(f"wrote {args.output}")
    for target, figure, met in report.checks():
        log(f"{'ok ' if met else 'MISSED'} {target}: {figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
