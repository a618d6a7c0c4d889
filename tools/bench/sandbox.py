"""Commands on the sandbox host container and the Compose project inside it."""

from __future__ import annotations

import datetime
import json
import re
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

HOST = "fastapi-stack-sandbox"
SITE = "fastapi-stack.localhost"
# The sandbox publishes its HTTPS port here (playbooks/sandbox.yml).
CONNECT = "127.0.0.1:8443"
PROJECT = "fastapi-stack"
PROJECT_DIR = "/opt/fastapi-stack"
CADDY = f"{PROJECT}-caddy-1"
APP = f"{PROJECT}-app-1-1"
SERVICES = 4  # redis, app-1, app-2, caddy
STATIC_CADDY = f"{PROJECT}-bench-static"
STATIC_DIR = "/opt/fastapi-stack-bench"
NAIVE_UPDATE = "docker compose up --detach --force-recreate --no-deps app-1 app-2"

_MEMORY_UNITS_MIB = {"B": 1 / 1024**2, "KiB": 1 / 1024, "MiB": 1.0, "GiB": 1024.0}
_MEMORY = re.compile(r"^([\d.]+)(B|KiB|MiB|GiB)\s*/")


def host(*argv: str, stdin: str | None = None, timeout: float = 300) -> str:
    """Run a command in the sandbox host container and return its standard output."""
    completed = subprocess.run(
        ["docker", "exec", "--interactive", HOST, *argv],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
    if completed.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} on {HOST} failed ({completed.returncode}): "
            f"{completed.stderr.strip()}"
        )
    return completed.stdout


def host_pid() -> int:
    """Return the process id of the host container, whose network namespace wrk enters."""
    output = subprocess.run(
        ["docker", "inspect", "--format", "{{.State.Pid}}", HOST],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return int(output)


def container_address(name: str) -> str:
    template = "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}"
    return host("docker", "inspect", "--format", template, name).strip()


def wait_healthy(timeout: float = 240) -> None:
    """Wait until every container of the project reports healthy."""
    deadline = time.monotonic() + timeout
    while True:
        statuses = host(
            "docker",
            "ps",
            "--filter",
            f"label=com.docker.compose.project={PROJECT}",
            "--format",
            "{{.Status}}",
        ).splitlines()
        if len(statuses) == SERVICES and all("(healthy)" in status for status in statuses):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"containers not healthy after {timeout:.0f} s: {statuses}")
        time.sleep(1)


def naive_update() -> None:
    host("sh", "-c", f"cd {PROJECT_DIR} && {NAIVE_UPDATE}")


def parse_memory_mib(usage: str) -> float:
    """Read the used part of a ``docker stats`` MemUsage value such as ``41.2MiB / 256MiB``."""
    match = _MEMORY.match(usage.strip())
    if match is None:
        raise ValueError(f"not a docker stats memory usage: {usage!r}")
    return float(match[1]) * _MEMORY_UNITS_MIB[match[2]]


def idle_memory_mib() -> dict[str, float]:
    output = host(
        "docker",
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}}\t{{.MemUsage}}",
    )
    memory: dict[str, float] = {}
    for line in output.splitlines():
        name, _, usage = line.partition("\t")
        if name.startswith(f"{PROJECT}-"):
            memory[name] = parse_memory_mib(usage)
    return memory


def issue_certificate(pki_dir: Path) -> tuple[str, str]:
    """Issue a new server certificate for the sandbox names from the sandbox's demo CA.

    Returns the certificate and the private key, both PEM.
    """
    ca_certificate = x509.load_pem_x509_certificate((pki_dir / "ca.crt").read_bytes())
    ca_key = serialization.load_pem_private_key((pki_dir / "ca.key").read_bytes(), None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise TypeError(f"{pki_dir / 'ca.key'} is not an EC key")
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, SITE)]))
        .issuer_name(ca_certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(SITE), x509.DNSName("localhost")]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode(), key_pem.decode()


def _app_request(method: str, path: str, body: object | None = None) -> str:
    """Send one request to app-1 from the Caddy container, which has curl."""
    argv = ["docker", "exec", CADDY, "curl", "-fsS", "-X", method]
    if body is not None:
        argv += ["-H", "Content-Type: application/json", "--data", json.dumps(body)]
    return host(*argv, f"http://app-1:8000{path}")


def create_item(body: Mapping[str, object]) -> str:
    created = json.loads(_app_request("POST", "/api/v1/items", body))
    return str(created["id"])


def warm_cache(path: str) -> None:
    _app_request("GET", path)


def static_caddyfile(caddyfile: str) -> str:
    """Replace each ``reverse_proxy`` block of a Caddyfile with a static JSON response."""
    result: list[str] = []
    lines = iter(caddyfile.splitlines())
    for line in lines:
        if line.strip().startswith("reverse_proxy "):
            indent = line[: len(line) - len(line.lstrip())]
            depth = line.count("{") - line.count("}")
            while depth > 0:
                following = next(lines)
                depth += following.count("{") - following.count("}")
            result.append(f'{indent}header Content-Type "application/json"')
            result.append(f'{indent}respond `{{"message": "Hello"}}` 200')
        else:
            result.append(line)
    return "\n".join(result) + "\n"


def start_static_caddy() -> str:
    """Start a second Caddy with the live image, certificates and site blocks.

    It sends a static body instead of proxying. Returns its container name.
    """
    stop_static_caddy()  # a container left by an interrupted run
    live = host("cat", f"{PROJECT_DIR}/caddy/Caddyfile")
    host(
        "sh",
        "-c",
        f"mkdir -p {STATIC_DIR} && cat > {STATIC_DIR}/Caddyfile",
        stdin=static_caddyfile(live),
    )
    image = host("docker", "inspect", "--format", "{{.Config.Image}}", CADDY).strip()
    certs = host(
        "docker",
        "inspect",
        "--format",
        '{{range .Mounts}}{{if eq .Destination "/certs"}}{{.Source}}{{end}}{{end}}',
        CADDY,
    ).strip()
    network = f"{PROJECT}_edge"
    host(
        "docker", "run", "--detach", "--rm", "--name", STATIC_CADDY,
        "--network", network, "--cpus", "1", "--memory", "256m",
        "--read-only", "--tmpfs", "/tmp", "--tmpfs", "/data", "--tmpfs", "/config",
        "--cap-drop", "ALL", "--security-opt", "no-new-privileges:true",
        "--sysctl", "net.ipv4.ip_unprivileged_port_start=0",
        "--volume", f"{STATIC_DIR}:/etc/caddy:ro", "--volume", f"{certs}:/certs:ro",
        image,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while True:
        try:
            host(
                "docker",
                "exec",
                STATIC_CADDY,
                "curl",
                "-fsS",
                "-o",
                "/dev/null",
                "http://localhost:2019/config/",
            )
            return STATIC_CADDY
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def stop_static_caddy() -> None:
    host("sh", "-c", f"docker rm --force {STATIC_CADDY} >/dev/null 2>&1; rm -rf {STATIC_DIR}")
