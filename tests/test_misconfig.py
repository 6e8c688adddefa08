"""Misconfigurations against real servers: one line naming the likely cause and the fix, at once.

Each test runs the installed command in its own process (so gRPC's C core writes to that
process's stderr, as a user would see it) against the in-process ``OtlpReceiver``, plaintext,
TLS or mutual TLS, set up the wrong way round. The error must be the only line on stderr,
carry no raw protocol bytes, name the fix, and come without retries (issue #13).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.receiver import OtlpReceiver
from tests.support.tls import OPENSSL, TlsFiles, make_tls_files

BUILD = Path(__file__).resolve().parents[1] / "fixtures" / "artifacts" / "build"
COMMAND = Path(sys.executable).with_name("dbt-otel-replay")
TIMEOUT_SECONDS = 5.0
PROMPT_SECONDS = 3.0
"""Refused at once: a retried failure takes the whole --timeout (5 s)."""
EXIT_USAGE = 2
EXIT_EXPORT_FAILED = 3
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="needs the openssl command line")


@dataclass(frozen=True)
class Run:
    """One run of the command."""

    exit_code: int
    lines: list[str]
    seconds: float


def run(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> Run:
    """The real command on the fixture build, quiet, its outputs in ``tmp_path``."""
    base = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OTEL_", "GRPC_", "TRACEPARENT", "TRACESTATE"))
    }
    started = time.monotonic()
    done = subprocess.run(
        [
            str(COMMAND),
            str(BUILD),
            "--quiet",
            "--timeout",
            str(TIMEOUT_SECONDS),
            "--spill",
            str(tmp_path / "unsent.json"),
            "--traceparent-to",
            str(tmp_path / "traceparent"),
            *args,
        ],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        timeout=60,
        check=False,
    )
    return Run(done.returncode, done.stderr.splitlines(), time.monotonic() - started)


def assert_one_line(result: Run, exit_code: int, *fragments: str) -> str:
    """The only line on stderr is the error, with the fragments and no raw bytes; said at once."""
    assert result.exit_code == exit_code, result.lines
    assert len(result.lines) == 1, result.lines
    (line,) = result.lines
    assert line.startswith("dbt-otel-replay: error: "), line
    assert all(fragment in line for fragment in fragments), line
    assert all(char.isprintable() for char in line), repr(line)
    assert "retrying" not in line and "gave up" not in line, line
    assert result.seconds < PROMPT_SECONDS, f"took {result.seconds:.1f} s: it was retried"
    return line


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    if OPENSSL is None:
        pytest.skip("needs the openssl command line")
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def mtls_receiver(tls_files: TlsFiles) -> Iterator[OtlpReceiver]:
    with OtlpReceiver(tls=tls_files.server_tls(mutual=True)) as receiver:
        yield receiver


@pytest.fixture
def tls_receiver(tls_files: TlsFiles) -> Iterator[OtlpReceiver]:
    with OtlpReceiver(tls=tls_files.server_tls()) as receiver:
        yield receiver


def test_http_sent_to_a_grpc_port(otlp_receiver: OtlpReceiver, tmp_path: Path) -> None:
    """It printed the collector's raw HTTP/2 SETTINGS frame, NUL bytes and all, and retried."""
    result = run(tmp_path, "--endpoint", otlp_receiver.grpc_endpoint)
    assert_one_line(
        result,
        EXIT_EXPORT_FAILED,
        "the endpoint answered in HTTP/2 without TLS, not OTLP/HTTP: it is a gRPC port; "
        "use the collector's OTLP/HTTP port (4318), or --protocol grpc",
    )
    assert otlp_receiver.span_count() == 0


def test_grpc_sent_to_an_http_port(otlp_receiver: OtlpReceiver, tmp_path: Path) -> None:
    """It printed gRPC's "Expected SETTINGS frame" and retried."""
    result = run(tmp_path, "--protocol", "grpc", "--endpoint", otlp_receiver.http_base_endpoint)
    line = assert_one_line(
        result,
        EXIT_EXPORT_FAILED,
        "gRPC UNAVAILABLE: the endpoint answered in HTTP/1.1, not gRPC: it is an OTLP/HTTP port; "
        "use the collector's gRPC port (4317), or --protocol http/protobuf",
    )
    assert "SETTINGS" not in line


def test_a_grpc_endpoint_without_a_scheme_at_a_plaintext_collector(
    otlp_receiver: OtlpReceiver, tmp_path: Path
) -> None:
    """It suggested client certificates; the fix is http:// or OTEL_EXPORTER_OTLP_INSECURE."""
    target = otlp_receiver.grpc_endpoint.removeprefix("http://")
    result = run(tmp_path, "--protocol", "grpc", "--endpoint", target)
    line = assert_one_line(
        result,
        EXIT_EXPORT_FAILED,
        "the endpoint has no scheme, so TLS was used, and the collector answered in plaintext: "
        "write http://HOST:PORT, or set OTEL_EXPORTER_OTLP_INSECURE=true",
    )
    assert "client certificate" not in line.lower()
    insecure = run(
        tmp_path, "--protocol", "grpc", "--endpoint", target, env={"OTEL_EXPORTER_OTLP_INSECURE": "true"}
    )
    assert insecure.exit_code == 0 and insecure.lines == [], "the fix it names works"


def test_grpcs_own_log_lines_are_kept_only_when_the_user_asks_for_them(
    otlp_receiver: OtlpReceiver, tmp_path: Path
) -> None:
    """gRPC's C core logs the failed handshake itself (an I... line) unless GRPC_VERBOSITY says no."""
    target = otlp_receiver.grpc_endpoint.removeprefix("http://")
    asked = run(tmp_path, "--protocol", "grpc", "--endpoint", target, env={"GRPC_VERBOSITY": "INFO"})
    assert asked.exit_code == EXIT_EXPORT_FAILED
    assert len(asked.lines) > 1, "the user's explicit GRPC_VERBOSITY is not overridden"
    assert asked.lines[-1].startswith("dbt-otel-replay: error: ")


def test_plaintext_https_over_http(otlp_receiver: OtlpReceiver, tmp_path: Path) -> None:
    result = run(tmp_path, "--endpoint", otlp_receiver.http_base_endpoint.replace("http://", "https://"))
    assert_one_line(
        result,
        EXIT_EXPORT_FAILED,
        "TLS handshake failed: the collector does not speak TLS on this port: use http:// for a "
        "plaintext collector",
    )


@needs_openssl
def test_mutual_tls_without_a_client_certificate_over_grpc(
    mtls_receiver: OtlpReceiver, tls_files: TlsFiles, tmp_path: Path
) -> None:
    """gRPC said only "Socket closed", and it was retried until the deadline."""
    env = {"OTEL_EXPORTER_OTLP_CERTIFICATE": str(tls_files.ca)}
    result = run(tmp_path, "--protocol", "grpc", "--endpoint", mtls_receiver.grpc_endpoint, env=env)
    assert_one_line(
        result,
        EXIT_EXPORT_FAILED,
        "gRPC UNAVAILABLE: the collector closed the connection right after the TLS handshake: it "
        "requires a client certificate; set OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and "
        "OTEL_EXPORTER_OTLP_CLIENT_KEY",
    )
    env |= {
        "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": str(tls_files.client_cert),
        "OTEL_EXPORTER_OTLP_CLIENT_KEY": str(tls_files.client_key),
    }
    fixed = run(tmp_path, "--protocol", "grpc", "--endpoint", mtls_receiver.grpc_endpoint, env=env)
    assert fixed.exit_code == 0 and fixed.lines == [], "the fix it names works"


@needs_openssl
def test_plaintext_grpc_at_a_tls_collector(tls_receiver: OtlpReceiver, tmp_path: Path) -> None:
    result = run(
        tmp_path, "--protocol", "grpc", "--endpoint", tls_receiver.grpc_endpoint.replace("https", "http")
    )
    assert_one_line(
        result,
        EXIT_EXPORT_FAILED,
        "the collector speaks TLS on this port and closed the plaintext connection: use https://",
    )


@needs_openssl
def test_plaintext_http_at_a_tls_collector(
    tls_receiver: OtlpReceiver, tls_files: TlsFiles, tmp_path: Path
) -> None:
    """It was retried until --timeout as "cannot reach the collector: Connection reset by peer"."""
    endpoint = tls_receiver.http_base_endpoint.replace("https", "http")
    result = run(tmp_path, "--endpoint", endpoint)
    assert_one_line(
        result,
        EXIT_EXPORT_FAILED,
        "the collector speaks TLS on this port and closed the plaintext connection: use https://",
    )
    fixed = run(
        tmp_path,
        "--endpoint",
        tls_receiver.http_base_endpoint,
        env={"OTEL_EXPORTER_OTLP_CERTIFICATE": str(tls_files.ca)},
    )
    assert fixed.exit_code == 0 and fixed.lines == [], "the fix it names works"


GO_PLAINTEXT_AT_TLS = b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"
"""What Go's net/http (the OpenTelemetry Collector's server) writes to a plaintext request on a TLS
port, byte for byte (net/http's server.go): no Go toolchain here, so a socket writes it."""


def test_plaintext_http_at_a_collector_that_answers_400_for_it(tmp_path: Path) -> None:
    """The Collector answers instead of resetting: the same hint, not "HTTP 400: Client sent..."."""
    with socket.create_server(("127.0.0.1", 0)) as server:

        def answer() -> None:
            connection, _ = server.accept()
            with connection:
                connection.recv(65536)
                connection.sendall(GO_PLAINTEXT_AT_TLS)

        threading.Thread(target=answer, daemon=True).start()
        result = run(tmp_path, "--endpoint", f"http://127.0.0.1:{server.getsockname()[1]}")
    assert_one_line(
        result,
        EXIT_EXPORT_FAILED,
        "HTTP 400: the collector speaks TLS on this port and closed the plaintext connection: use https://",
    )


@needs_openssl
@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_a_client_key_without_its_certificate_is_refused(
    mtls_receiver: OtlpReceiver, tls_files: TlsFiles, tmp_path: Path, protocol: str
) -> None:
    """Over HTTP the key alone was silently ignored (and the collector then refused the handshake)."""
    env = {
        "OTEL_EXPORTER_OTLP_CERTIFICATE": str(tls_files.ca),
        "OTEL_EXPORTER_OTLP_CLIENT_KEY": str(tls_files.client_key),
    }
    endpoint = mtls_receiver.grpc_endpoint if protocol == "grpc" else mtls_receiver.http_base_endpoint
    result = run(tmp_path, "--protocol", protocol, "--endpoint", endpoint, env=env)
    assert_one_line(
        result,
        EXIT_USAGE,
        "OTEL_EXPORTER_OTLP_CLIENT_KEY is set but OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE is not: "
        "mutual TLS needs both",
    )
    assert not (tmp_path / "unsent.json").exists(), "nothing was tried"
