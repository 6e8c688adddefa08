"""Every message the troubleshooting docs quote is one the tool really prints, with that exit code.

The tables of docs/troubleshooting.md and README.md are parsed; each quoted
message must have a scenario below that makes the real command print it (``...``
and capital letters in the quote stand for the parts that vary). A message the
tool no longer prints, or a row without a scenario, fails the test.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from click.testing import CliRunner

from dbt_otel_replay.cli import main
from tests.support.collector import free_port
from tests.support.receiver import OtlpReceiver, ServerTls
from tests.support.slow_server import SlowServer, wait_until
from tests.support.tls import OPENSSL, make_tls_files

REPO = Path(__file__).resolve().parents[1]
BUILD = REPO / "fixtures" / "artifacts" / "build"
DOCS = (REPO / "docs" / "troubleshooting.md", REPO / "README.md")
_ROW = re.compile(r"^\| (``.+?``|`[^`]+`) \| (\d{1,3}) \|", re.MULTILINE)
_VARYING = re.compile(r"\\\.\\\.\\\.|\b(?:[NMKLCS]|FILE|PATH)\b")

Outcome = tuple[int, str]
"""The exit code and stderr of one run."""


def documented() -> dict[str, int]:
    """Every quoted message of the troubleshooting tables, with its exit code."""
    rows: dict[str, int] = {}
    for path in DOCS:
        text = path.read_text()
        section = text.split("## Troubleshooting", 1)[1] if path.name == "README.md" else text
        for quoted, code in _ROW.findall(section.split("\n## How it compares", 1)[0]):
            message = quoted.strip("`").strip() if quoted.startswith("``") else quoted[1:-1]
            rows[message] = int(code)
    return rows


def pattern(message: str) -> re.Pattern[str]:
    """The quoted message as a regular expression: ``...`` and placeholders match what varies."""
    escaped = re.escape(message)

    def vary(match: re.Match[str]) -> str:
        return r".+?" if match.group(0) == r"\.\.\." else r"\S+?"

    return re.compile(_VARYING.sub(vary, escaped))


def cli(*args: str, env: dict[str, str] | None = None) -> Outcome:
    base = {"TRACEPARENT": "", "TRACESTATE": "", "OTEL_EXPORTER_OTLP_PROTOCOL": "", "OTEL_SERVICE_NAME": ""}
    result = CliRunner().invoke(main, list(args), env={**base, **(env or {})})
    return result.exit_code, result.stderr


def target(tmp: Path, run_results: bytes | None = None) -> Path:
    directory = tmp / "target"
    directory.mkdir(exist_ok=True)
    shutil.copy(BUILD / "manifest.json", directory / "manifest.json")
    (directory / "run_results.json").write_bytes(
        (BUILD / "run_results.json").read_bytes() if run_results is None else run_results
    )
    return directory


def edited(tmp: Path, change: Callable[[dict[str, object]], None]) -> Path:
    document = json.loads((BUILD / "run_results.json").read_text())
    change(document)
    return target(tmp, json.dumps(document).encode())


def _reversed_timing(document: dict[str, object]) -> None:
    result = document["results"][0]  # type: ignore[index]
    phase = result["timing"][-1]
    phase["started_at"], phase["completed_at"] = phase["completed_at"], phase["started_at"]


def _to(tmp: Path) -> list[str]:
    return ["-o", str(tmp / "trace.json")]


def send(tmp: Path, receiver: OtlpReceiver, protocol: str, *extra: str) -> Outcome:
    endpoint = receiver.grpc_endpoint if protocol == "grpc" else receiver.http_base_endpoint
    return cli(str(target(tmp)), "--endpoint", endpoint, "--protocol", protocol, "--timeout", "2", *extra)


SCENARIOS: dict[str, Callable[[Path, OtlpReceiver], Outcome]] = {
    # issue #13, misconfigurations: each against a real server set up the wrong way round
    "OTEL_EXPORTER_OTLP_CLIENT_KEY is set but OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE is not: mutual TLS "
    "needs both the client certificate and its key (set both, or neither)": lambda tmp, _: cli(
        str(target(tmp)), "--timeout", "2", env={"OTEL_EXPORTER_OTLP_CLIENT_KEY": str(tmp / "key.pem")}
    ),
    "the endpoint answered in HTTP/2 without TLS, not OTLP/HTTP: it is a gRPC port; use the collector's "
    "OTLP/HTTP port (4318), or --protocol grpc": lambda tmp, receiver: cli(
        str(target(tmp)), "--endpoint", receiver.grpc_endpoint, "--timeout", "2"
    ),
    "gRPC UNAVAILABLE: the endpoint answered in HTTP/1.1, not gRPC: it is an OTLP/HTTP port; use the "
    "collector's gRPC port (4317), or --protocol http/protobuf": lambda tmp, receiver: cli(
        str(target(tmp)), "--endpoint", receiver.http_base_endpoint, "--protocol", "grpc", "--timeout", "2"
    ),
    "gRPC UNAVAILABLE: the endpoint has no scheme, so TLS was used, and the collector answered in "
    "plaintext: write http://HOST:PORT, or set OTEL_EXPORTER_OTLP_INSECURE=true": lambda tmp, receiver: cli(
        str(target(tmp)),
        "--endpoint",
        receiver.grpc_endpoint.removeprefix("http://"),
        "--protocol",
        "grpc",
        "--timeout",
        "2",
    ),
    "TLS handshake failed: the collector does not speak TLS on this port: use http:// for a plaintext "
    "collector": lambda tmp, receiver: cli(
        str(target(tmp)),
        "--endpoint",
        receiver.http_base_endpoint.replace("http:", "https:"),
        "--timeout",
        "2",
    ),
    "gRPC UNAVAILABLE: the collector closed the connection right after the TLS handshake: it requires a "
    "client certificate; set OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and OTEL_EXPORTER_OTLP_CLIENT_KEY": (
        lambda tmp, _: _mutual_tls_without_a_certificate(tmp)
    ),
    "gRPC UNAVAILABLE: the collector speaks TLS on this port and closed the plaintext connection: use "
    "https:// (and OTEL_EXPORTER_OTLP_CERTIFICATE for a private CA)": lambda tmp, _: _plaintext_to_tls(tmp),
    "the answer was cut off: ... (gave up after N attempts in S s; see --timeout); M spans saved to FILE: "
    "re-send them with `dbt-otel-replay resend FILE`": lambda tmp, _: _cut_off(tmp),
    ".../v1/traces: the collector speaks TLS on this port and closed the plaintext connection: "
    "use https:// (and OTEL_EXPORTER_OTLP_CERTIFICATE for a private CA)": lambda tmp, _: _plaintext_to_tls(
        tmp, "http/protobuf"
    ),
    "no complete answer within S s: the collector or the network is stalled (see --timeout); M spans saved "
    "to FILE: re-send them with `dbt-otel-replay resend FILE`": lambda tmp, _: _trickling(tmp),
    "stopped by SIGTERM after N of M spans were delivered; K spans saved to FILE: re-send them with "
    "`dbt-otel-replay resend FILE`": lambda tmp, _: _signalled(tmp, twice=False),
    "SIGTERM again: exiting at once; spans not yet saved are lost": lambda tmp, _: _signalled(
        tmp, twice=True
    ),
    "run_results.json: not found (is this the target/ directory of a dbt run?)": lambda tmp, _: cli(
        str(tmp), *_to(tmp)
    ),
    "run_results.json: is empty": lambda tmp, _: cli(str(target(tmp, b"")), *_to(tmp)),
    "run_results.json: is not valid JSON at line L, column C (it ends early: was dbt interrupted while "
    "writing it?)": lambda tmp, _: cli(
        str(target(tmp, (BUILD / "run_results.json").read_bytes()[:5000])), *_to(tmp)
    ),
    "run_results.json: is not a dbt artifact (a JSON object must start with '{')": lambda tmp, _: cli(
        str(target(tmp, b"[1, 2]")), *_to(tmp)
    ),
    "run_results.json: is not JSON text (not UTF-8)": lambda tmp, _: cli(
        str(target(tmp, b'{"metadata": "\xff\xfe"}')), *_to(tmp)
    ),
    "run_results.json: is a Git LFS pointer, not the artifact; run ... first": lambda tmp, _: cli(
        str(target(tmp, b"version https://git-lfs.github.com/spec/v1\noid sha256:ab\nsize 12\n")), *_to(tmp)
    ),
    "run_results.json: is a dbt catalog artifact, not run-results": lambda tmp, _: cli(
        str(
            target(
                tmp, b'{"metadata": {"dbt_schema_version": "https://schemas.getdbt.com/dbt/catalog/v1.json"}}'
            )
        ),
        *_to(tmp),
    ),
    "run_results.json: is not a dbt run-results artifact (no metadata.dbt_schema_version)": lambda tmp, _: (
        cli(str(target(tmp, b'{"name": "package.json"}')), *_to(tmp))
    ),
    "run_results.json: has no results: the dbt command selected no nodes": lambda tmp, _: cli(
        str(edited(tmp, lambda d: d.update(results=[]))), *_to(tmp)
    ),
    "run_results.json: results[N] ('...'): 'execute' timing ends before it starts": lambda tmp, _: cli(
        str(edited(tmp, _reversed_timing)), *_to(tmp)
    ),
    "run_results.json: written by dbt < 0.17 (no metadata), not supported": lambda tmp, _: cli(
        str(target(tmp, b'{"results": [], "elapsed_time": 1.5, "generated_at": "2020-01-01T00:00:00Z"}')),
        *_to(tmp),
    ),
    "run_results.json: is not a regular file (a FIFO)": lambda tmp, _: cli(
        str(_fifo(target(tmp) / "run_results.json")), *_to(tmp)
    ),
    "PATH: is an input artifact of this run; refusing to overwrite it": lambda tmp, _: cli(
        str(target(tmp)), "-o", str(tmp / "target" / "run_results.json")
    ),
    "FILE: cannot read the traceparent file: it is a FIFO, not a regular file": lambda tmp, _: cli(
        str(target(tmp)), "--traceparent-from", str(_fifo(tmp / "carrier")), *_to(tmp)
    ),
    "PATH: cannot use it as the backfill ledger: not a regular file": lambda tmp, _: cli(
        "backfill",
        str(target(tmp)),
        "--ledger",
        str(_fifo(tmp / "ledger")),
        "--endpoint",
        f"http://127.0.0.1:{free_port()}",
    ),
    "FILE: cannot write the trace: a FIFO that nothing is reading": lambda tmp, _: cli(
        str(target(tmp)), "-o", str(_fifo(tmp / "trace.fifo"))
    ),
    "manifest.json: not found (is this the target/ directory of a dbt run?)": lambda tmp, _: cli(
        str(target(tmp)), "--manifest", str(tmp / "elsewhere" / "manifest.json"), *_to(tmp)
    ),
    "--traceparent: '...' is not a W3C traceparent (expected 00-<32 hex trace id>-<16 hex span id>-<2 hex "
    "flags>, lowercase)": lambda tmp, _: cli(str(target(tmp)), "--traceparent", "00-abc", *_to(tmp)),
    "$TRACEPARENT: '...' has an all-zero trace id or span id": lambda tmp, _: cli(
        str(target(tmp)), *_to(tmp), env={"TRACEPARENT": f"00-{'0' * 32}-{'1' * 16}-01"}
    ),
    "FILE: no TRACEPARENT=... line in the traceparent file": lambda tmp, _: cli(
        str(target(tmp)), "--traceparent-from", str(_file(tmp / "carrier.env", "# nothing\n")), *_to(tmp)
    ),
    "unknown OTLP protocol '...' (choose one of grpc, http/protobuf, http/json)": lambda tmp, _: cli(
        str(target(tmp)), env={"OTEL_EXPORTER_OTLP_PROTOCOL": "carrier-pigeon"}
    ),
    "OTEL_EXPORTER_OTLP_TIMEOUT: '...' is not a number of milliseconds": lambda tmp, _: cli(
        str(target(tmp)), env={"OTEL_EXPORTER_OTLP_TIMEOUT": "ten"}
    ),
    "OTEL_EXPORTER_OTLP_HEADERS: '...' is not a key=value header": lambda tmp, _: cli(
        str(target(tmp)), env={"OTEL_EXPORTER_OTLP_HEADERS": "api-key"}
    ),
    "OTEL_EXPORTER_OTLP_CERTIFICATE: cannot read PATH: No such file or directory": lambda tmp, _: cli(
        str(target(tmp)),
        "--endpoint",
        "https://127.0.0.1:1",
        env={"OTEL_EXPORTER_OTLP_CERTIFICATE": str(tmp / "missing-ca.pem")},
    ),
    "OTEL_EXPORTER_OTLP_HEADERS: the value of header '...' has a line break, which an HTTP header cannot "
    "carry (the value is not shown)": lambda tmp, _: cli(
        str(target(tmp)), env={"OTEL_EXPORTER_OTLP_HEADERS": "x-api-key=SEKRIT%0A"}
    ),
    "--header: header '...' is binary gRPC metadata (its name ends in -bin), so its value must be base64 "
    "(the value is not shown)": lambda tmp, _: cli(
        str(target(tmp)), "--protocol", "grpc", "--header", "x-token-bin=not base64!"
    ),
    "endpoint '...' is not a URL: Port out of range 0-65535": lambda tmp, _: cli(
        str(target(tmp)), "--endpoint", "http://localhost:99999"
    ),
    "HTTP 307: redirected to ..., not followed: exports and their headers go only to the configured "
    "endpoint (set it to the new address if you trust it)": lambda tmp, _: _redirected(tmp),
    "cannot reach the collector: ... (gave up after N attempts in S s; see --timeout); M spans saved to "
    "FILE: re-send them with `dbt-otel-replay resend FILE`": lambda tmp, _: cli(
        str(target(tmp)), "--endpoint", f"http://127.0.0.1:{free_port()}", "--timeout", "1"
    ),
    "TLS handshake failed: ... (TLS failed: set OTEL_EXPORTER_OTLP_CERTIFICATE to the collector's CA "
    "bundle)": lambda tmp, _: _untrusted_tls(tmp),
    "HTTP 401: ...": lambda tmp, receiver: _failing(tmp, receiver, "http/protobuf"),
    "gRPC UNAUTHENTICATED: ...": lambda tmp, receiver: _failing(tmp, receiver, "grpc"),
    "the collector rejected N of M spans in request K: ...": lambda tmp, receiver: _partial(tmp, receiver),
    "... M spans saved to FILE: re-send them with `dbt-otel-replay resend FILE` (cannot write PATH: ...)": (
        lambda tmp, _: _unwritable_target(tmp)
    ),
    "... and N spans are LOST: cannot write FILE: ...": lambda tmp, _: cli(
        str(target(tmp)),
        "--endpoint",
        f"http://127.0.0.1:{free_port()}",
        "--timeout",
        "0.5",
        "--spill",
        str(_file(tmp / "a-file", "") / "spill.json"),
    ),
}


def _redirected(tmp: Path) -> Outcome:
    """A loopback server that answers every export with a 307 to another loopback port."""

    class Redirect(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(307)
            self.send_header("Location", f"http://127.0.0.1:{free_port()}/v1/traces?key=x")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirect) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            return cli(str(target(tmp)), "--endpoint", f"http://127.0.0.1:{server.server_port}")
        finally:
            server.shutdown()


def _unwritable_target(tmp: Path) -> Outcome:
    """A dead collector and a TARGET_DIR whose spill path cannot be written (a directory is in the
    way, which stops root too): the spans go to the user cache, which the error line names."""
    directory = target(tmp)
    (directory / "otel-replay-unsent.json").mkdir()
    cache = tmp / "cache"
    return cli(
        str(directory),
        "--endpoint",
        f"http://127.0.0.1:{free_port()}",
        "--timeout",
        "0.5",
        env={"XDG_CACHE_HOME": str(cache)},
    )


def _cut_off(tmp: Path) -> Outcome:
    """A server that closes the connection ten bytes into its answer's body."""
    with SlowServer("cut") as server:  # 2 s: time for a second attempt on a loaded machine
        return cli(str(target(tmp)), "--endpoint", server.endpoint, "--timeout", "2")


def _trickling(tmp: Path) -> Outcome:
    """A server that sends its answer's headers, then a byte a second: the deadline covers the answer."""
    with SlowServer("trickle_body", delay=1.0) as server:
        return cli(str(target(tmp)), "--endpoint", server.endpoint, "--timeout", "1")


def _signalled(tmp: Path, *, twice: bool) -> Outcome:
    """The command as a process, sent SIGTERM while a slow server holds its request.

    ``twice``: the spill goes to a FIFO whose reader never reads, so saving blocks once the
    pipe is full (the fixture's one line is larger), and a second SIGTERM ends the process.
    """
    directory = target(tmp)
    spill = directory / "otel-replay-unsent.json"
    reader = None
    if twice:
        os.mkfifo(spill)
        reader = os.open(spill, os.O_RDONLY | os.O_NONBLOCK)
    env = {**os.environ, "TRACEPARENT": "", "TRACESTATE": "", "OTEL_EXPORTER_OTLP_PROTOCOL": ""}
    try:
        with SlowServer("slow", delay=30.0) as server:
            argv = [sys.executable, "-m", "dbt_otel_replay", str(directory), "--endpoint", server.endpoint]
            process = subprocess.Popen(argv, env=env, cwd=REPO, stderr=subprocess.PIPE, text=True)
            wait_until(lambda: server.requests() >= 1 or process.poll() is not None, 60, "the request")
            process.send_signal(signal.SIGTERM)
            if twice:
                time.sleep(1.5)  # the delivery stopped, and saving is blocked on the full FIFO
                process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=60)
    finally:
        if reader is not None:
            os.close(reader)
    return process.returncode, stderr


def _fifo(path: Path) -> Path:
    """A named pipe nobody reads or writes: the tool must refuse it at once, never block on it."""
    if path.exists():
        path.unlink()
    os.mkfifo(path)
    return path


def _file(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _failing(tmp: Path, receiver: OtlpReceiver, protocol: str) -> Outcome:
    receiver.fail_next(10, grpc_code=grpc.StatusCode.UNAUTHENTICATED, http_status=401, message="no token")
    return send(tmp, receiver, protocol)


def _partial(tmp: Path, receiver: OtlpReceiver) -> Outcome:
    receiver.partial_success(rejected=2, message="span too old")
    return send(tmp, receiver, "http/protobuf")


def _untrusted_tls(tmp: Path) -> Outcome:
    if OPENSSL is None:
        pytest.skip("needs the openssl command line")
    files = make_tls_files(tmp / "tls")
    with OtlpReceiver(tls=ServerTls(files.server_cert, files.server_key)) as receiver:
        return send(tmp, receiver, "http/protobuf")


def _mutual_tls_without_a_certificate(tmp: Path) -> Outcome:
    if OPENSSL is None:
        pytest.skip("needs the openssl command line")
    files = make_tls_files(tmp / "tls")
    with OtlpReceiver(tls=ServerTls(files.server_cert, files.server_key, client_ca=files.ca)) as receiver:
        env = {"OTEL_EXPORTER_OTLP_CERTIFICATE": str(files.ca)}
        return cli(
            str(target(tmp)),
            "--endpoint",
            receiver.grpc_endpoint,
            "--protocol",
            "grpc",
            "--timeout",
            "2",
            env=env,
        )


def _plaintext_to_tls(tmp: Path, protocol: str = "grpc") -> Outcome:
    if OPENSSL is None:
        pytest.skip("needs the openssl command line")
    files = make_tls_files(tmp / "tls")
    with OtlpReceiver(tls=ServerTls(files.server_cert, files.server_key)) as receiver:
        endpoint = receiver.grpc_endpoint if protocol == "grpc" else receiver.http_base_endpoint
        endpoint = endpoint.replace("https:", "http:")
        return cli(str(target(tmp)), "--endpoint", endpoint, "--protocol", protocol, "--timeout", "2")


def test_every_documented_message_has_a_scenario() -> None:
    assert set(documented()) == set(SCENARIOS)


@pytest.mark.parametrize("message", sorted(SCENARIOS))
def test_the_tool_prints_the_documented_message(
    message: str, tmp_path: Path, otlp_receiver: OtlpReceiver
) -> None:
    code, stderr = SCENARIOS[message](tmp_path, otlp_receiver)
    errors = [line for line in stderr.splitlines() if line.startswith("dbt-otel-replay: error: ")]
    assert len(errors) == 1, stderr
    assert pattern(message).search(errors[0]), f"{errors[0]!r} does not say {message!r}"
    assert code == documented()[message]


def test_placeholders_do_not_match_everything() -> None:
    assert not pattern("HTTP 401: ...").search("HTTP 403: forbidden")
    assert pattern("results[N] ('...'): x").search("results[3] ('model.a'): x")
