"""Tests of request_loop against a real TLS server on loopback."""

from __future__ import annotations

import datetime
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from request_loop.loop import LoopConfig, run_loop

SITE = "loop.test"


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = 503 if self.path.startswith("/fail") else 200
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        pass


def _write_pki(directory: Path) -> tuple[Path, Path, Path]:
    """Write a CA and a server certificate for SITE and return the CA, certificate and key paths."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "request_loop test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, SITE)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(SITE)]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = directory / "ca.crt", directory / "s.crt", directory / "s.key"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_path, cert_path, key_path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """Serve HTTPS for SITE on a free loopback port, and yield the port and the CA path."""
    ca_path, cert_path, key_path = _write_pki(tmp_path_factory.mktemp("pki"))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1], ca_path
    httpd.shutdown()
    httpd.server_close()


def _config(
    port: int,
    ca: Path,
    path: str = "/",
    seconds: float = 0.5,
    keep_alive: bool = False,
    stop_file: Path | None = None,
) -> LoopConfig:
    return LoopConfig(
        url=f"https://{SITE}{path}",
        connect=f"127.0.0.1:{port}",
        ca_file=ca,
        seconds=seconds,
        keep_alive=keep_alive,
        stop_file=stop_file,
    )


def test_loop_counts_successes(server: tuple[int, Path]) -> None:
    port, ca = server
    result = run_loop(_config(port, ca, seconds=0.5))
    assert result.sent > 0
    assert result.failed == 0
    assert len(result.serials) == 1


def test_loop_keep_alive_reuses_connection(server: tuple[int, Path]) -> None:
    port, ca = server
    result = run_loop(_config(port, ca, seconds=0.5, keep_alive=True))
    assert result.sent > 0
    assert result.failed == 0


def test_loop_counts_server_errors(server: tuple[int, Path]) -> None:
    port, ca = server
    result = run_loop(_config(port, ca, path="/fail", seconds=0.3))
    assert result.sent > 0
    assert result.failed == result.sent
    assert result.errors == {"status 503": result.sent}


def test_loop_counts_refused_connections(server: tuple[int, Path]) -> None:
    _, ca = server
    result = run_loop(_config(1, ca, seconds=0.2))
    assert result.failed == result.sent
    assert set(result.errors) == {"ConnectionRefusedError"}


def test_loop_stops_at_stop_file(server: tuple[int, Path], tmp_path: Path) -> None:
    port, ca = server
    stop_file = tmp_path / "stop"
    stop_file.touch()
    result = run_loop(_config(port, ca, seconds=10, stop_file=stop_file))
    assert result.sent == 0
    assert result.seconds < 1


def test_loop_rejects_plain_http_url(server: tuple[int, Path]) -> None:
    _, ca = server
    with pytest.raises(ValueError, match="expected https"):
        run_loop(LoopConfig(url="http://loop.test/", ca_file=ca))


def test_loop_rejects_bad_connect_value(server: tuple[int, Path]) -> None:
    _, ca = server
    with pytest.raises(ValueError, match="expected ADDRESS:PORT"):
        run_loop(LoopConfig(url="https://loop.test/", ca_file=ca, connect="127.0.0.1"))
