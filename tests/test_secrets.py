"""Secrets never printed nor saved, never sent elsewhere; headers the wire cannot carry refused up front.

Through the command line, against the real receiver and hand-written loopback HTTP servers: a
header value with a line break is a usage error naming the header, never its value; what a
collector echoes of a header value, and the endpoint's query, are redacted from everything
printed or saved; a redirect is not followed, so no header reaches another origin; a ``-bin``
header is gRPC binary metadata, never a traceback.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc
import pytest
from click.testing import Result

from dbt_otel_replay.artifacts import load_artifacts
from dbt_otel_replay.export.config import resolve_export_config
from dbt_otel_replay.export.deliver import deliver
from dbt_otel_replay.export.protobuf import encode_requests
from dbt_otel_replay.plan import plan_trace
from tests.support.cli import run_cli as run
from tests.support.contract import from_otlp_json_lines
from tests.support.receiver import OtlpReceiver

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "artifacts"
SECRET = "SEKRIT-4f9a2c"
SPANS = 94


def endpoint_for(receiver: OtlpReceiver, protocol: str) -> str:
    return receiver.grpc_endpoint if protocol == "grpc" else receiver.http_base_endpoint


def send(
    target: Path, receiver: OtlpReceiver, protocol: str, *args: str, env: dict[str, str] | None = None
) -> Result:
    """Replay the target into the receiver over ``protocol``, with further options and variables."""
    return run(
        str(target), "--endpoint", endpoint_for(receiver, protocol), "--protocol", protocol, *args, env=env
    )


def everything_written(result: Result, target: Path) -> str:
    """All the command printed, and every file it left in the target directory."""
    files = [p.read_text(errors="replace") for p in sorted(target.iterdir()) if p.is_file()]
    return "\n".join([result.stdout, result.stderr, *files])


# --------------------------------------------------------------------------- #
# Headers the wire cannot carry: a usage error before anything is sent
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf", "http/json"])
@pytest.mark.parametrize(
    ("args", "env", "source"),
    [
        ([], {"OTEL_EXPORTER_OTLP_HEADERS": f"x-api-key={SECRET}%0A"}, "OTEL_EXPORTER_OTLP_HEADERS"),
        (
            [],
            {"OTEL_EXPORTER_OTLP_TRACES_HEADERS": f"x-api-key={SECRET}%0D%0Ax-evil: 1"},
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        ),
        (["--header", f"x-api-key={SECRET}\nx-evil: 1"], {}, "--header"),
    ],
)
def test_a_line_break_in_a_header_value_is_a_usage_error_that_never_shows_the_value(
    otlp_receiver: OtlpReceiver,
    target: Path,
    protocol: str,
    args: list[str],
    env: dict[str, str],
    source: str,
) -> None:
    result = send(target, otlp_receiver, protocol, *args, env=env)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(
        f"dbt-otel-replay: error: {source}: the value of header 'x-api-key' has a line break"
    )
    assert (
        result.stderr.endswith("cannot carry (the value is not shown)\n") and result.stderr.count("\n") == 1
    )
    assert SECRET not in result.output
    assert otlp_receiver.attempts == [], "refused before anything is sent"
    assert sorted(p.name for p in target.iterdir()) == ["manifest.json", "run_results.json"], (
        "no spill, no traceparent"
    )


def test_a_header_value_http_cannot_encode_is_a_usage_error_not_a_traceback(
    otlp_receiver: OtlpReceiver, target: Path
) -> None:
    result = run(
        str(target), "--endpoint", otlp_receiver.http_base_endpoint, "--header", f"x-api-key={SECRET}\u20ac"
    )
    assert result.exit_code == 2, result.output
    assert "the value of header 'x-api-key' has a character outside Latin-1" in result.stderr
    assert SECRET not in result.output and otlp_receiver.attempts == []


def test_resend_refuses_such_a_header_before_sending(otlp_receiver: OtlpReceiver, tmp_path: Path) -> None:
    spill = tmp_path / "spill.json"
    spill.write_text("{}\n")
    env = {"OTEL_EXPORTER_OTLP_HEADERS": f"x-api-key={SECRET}%00"}
    result = run("resend", str(spill), "--endpoint", otlp_receiver.http_base_endpoint, env=env)
    assert result.exit_code == 2, result.output
    assert "has a NUL character" in result.stderr and SECRET not in result.output


# --------------------------------------------------------------------------- #
# gRPC binary metadata (-bin)
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf", "http/json"])
@pytest.mark.parametrize("how", ["env", "flag"])
def test_a_bin_header_is_sent_as_binary_metadata_over_grpc_and_as_given_over_http(
    otlp_receiver: OtlpReceiver, target: Path, protocol: str, how: str
) -> None:
    value = "AAH/Ymlu"  # base64 of 00 01 ff "bin"
    args = ["--header", f"x-token-bin={value}"] if how == "flag" else []
    env = {"OTEL_EXPORTER_OTLP_HEADERS": f"x-token-bin={value}"} if how == "env" else {}
    result = send(target, otlp_receiver, protocol, *args, env=env)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert otlp_receiver.span_count() == SPANS
    expected = "0001ff62696e" if protocol == "grpc" else value  # the receiver shows gRPC's bytes in hex
    assert otlp_receiver.headers[0]["x-token-bin"] == expected
    assert (target / "traceparent").read_text().startswith("TRACEPARENT=00-")


def test_a_bin_header_that_is_not_base64_is_a_usage_error_over_grpc(
    otlp_receiver: OtlpReceiver, target: Path
) -> None:
    result = run(
        str(target),
        "--endpoint",
        otlp_receiver.grpc_endpoint,
        "--protocol",
        "grpc",
        env={"OTEL_EXPORTER_OTLP_HEADERS": f"x-token-bin={SECRET}!"},
    )
    assert result.exit_code == 2, result.output
    assert result.stderr == (
        "dbt-otel-replay: error: OTEL_EXPORTER_OTLP_HEADERS: header 'x-token-bin' is binary gRPC metadata "
        "(its name ends in -bin), so its value must be base64 (the value is not shown)\n"
    )
    assert otlp_receiver.attempts == [] and not (target / "traceparent").exists()


# --------------------------------------------------------------------------- #
# What a collector echoes, and the endpoint's query: never printed, never saved
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_a_refusal_echoing_the_key_is_redacted_in_the_error_the_summary_and_the_spill(
    otlp_receiver: OtlpReceiver, target: Path, protocol: str
) -> None:
    otlp_receiver.fail_next(
        5, grpc_code=grpc.StatusCode.UNAUTHENTICATED, http_status=401, message=f"unknown api key {SECRET}"
    )
    result = send(
        target,
        otlp_receiver,
        protocol,
        "--format",
        "json",
        env={"OTEL_EXPORTER_OTLP_HEADERS": f"x-api-key={SECRET}"},
    )
    assert result.exit_code == 3, result.output
    assert "unknown api key [REDACTED]" in result.stderr
    assert SECRET not in everything_written(result, target)
    assert len(from_otlp_json_lines((target / "otel-replay-unsent.json").read_text())) == SPANS


def test_the_endpoints_query_is_redacted_in_the_summary_and_its_json(
    otlp_receiver: OtlpReceiver, target: Path
) -> None:
    endpoint = f"{otlp_receiver.http_endpoint}?api_key={SECRET}"
    shown = f"{otlp_receiver.http_endpoint}?[REDACTED]"
    text = run(str(target), "--traces-endpoint", endpoint)
    assert text.exit_code == 0, text.output
    assert f"sent to {shown} (http/protobuf) in 1 request" in text.stderr
    document = run(str(target), "--traces-endpoint", endpoint, "--format", "json")
    assert json.loads(document.stdout)["destination"] == f"sent to {shown} (http/protobuf) in 1 request"
    assert SECRET not in text.output + document.output
    assert otlp_receiver.span_count() == 2 * SPANS, "the query is still sent"


def test_the_endpoints_query_is_redacted_in_errors(target: Path) -> None:
    endpoint = f"ftp://127.0.0.1:1/v1/traces?api_key={SECRET}"  # requests' error quotes the whole URL
    result = run(str(target), "--traces-endpoint", endpoint)
    assert result.exit_code == 3, result.output
    assert (
        "dbt-otel-replay: error: ftp://127.0.0.1:1/v1/traces?[REDACTED]: HTTP request failed" in result.stderr
    )
    assert SECRET not in everything_written(result, target)


def test_the_ledger_records_the_endpoint_without_its_query(
    otlp_receiver: OtlpReceiver, target: Path, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.sqlite"
    endpoint = f"{otlp_receiver.http_endpoint}?api_key={SECRET}"
    result = run(
        "backfill", str(target), "--ledger", str(ledger), "--traces-endpoint", endpoint, "--format", "json"
    )
    assert result.exit_code == 0, result.output
    with closing(sqlite3.connect(ledger)) as db:
        rows = db.execute("select endpoint from delivered_runs").fetchall()
    assert rows == [(f"{otlp_receiver.http_endpoint}?[REDACTED]",)]
    assert SECRET not in result.output


# --------------------------------------------------------------------------- #
# Hand-written loopback servers: error bodies and redirects
# --------------------------------------------------------------------------- #


@dataclass
class Seen:
    """What a loopback server was sent: method, path and headers (lowercased names) per request."""

    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False


@contextmanager
def loopback_server(answer: Callable[[BaseHTTPRequestHandler], None]) -> Iterator[tuple[str, Seen]]:
    """An HTTP server on a free 127.0.0.1 port that records every request and answers with ``answer``."""
    seen = Seen()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def handle_any(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            seen.requests.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
            answer(self)

        do_GET = do_POST = do_PUT = do_HEAD = handle_any

        def log_message(self, format: str, *args: object) -> None:
            """Silent."""

    server = _Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def respond(
    status: int, body: bytes = b"", headers: dict[str, str] | None = None
) -> Callable[[BaseHTTPRequestHandler], None]:
    def answer(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        for key, value in {"Content-Length": str(len(body)), **(headers or {})}.items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(body)

    return answer


PLAN = plan_trace(load_artifacts(FIXTURES / "build"))


@pytest.mark.parametrize("offset", [0, 284])  # the key from character 293: cut at 300
def test_a_plain_text_error_body_is_redacted_before_it_is_cut_short(offset: int) -> None:
    body = ("x" * offset + f" the key {SECRET} is revoked").encode()
    with loopback_server(respond(401, body, {"Content-Type": "text/plain"})) as (url, _):
        config = resolve_export_config(endpoint=url, headers=[("x-api-key", SECRET)], environ={})
        delivery = deliver(encode_requests(PLAN, {"service.name": "dbt"}), config)
    (problem,) = delivery.problems
    assert "HTTP 401: " in problem
    assert SECRET[:5] not in problem, "no part of the key survives where the text is cut"


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_to_another_origin_is_not_followed_and_never_sees_the_headers(
    target: Path, status: int
) -> None:
    with loopback_server(respond(200)) as (elsewhere, seen_elsewhere):
        location = f"{elsewhere}/v1/traces?token=L0CATION-T0KEN"
        with loopback_server(respond(status, headers={"Location": location})) as (collector, seen_collector):
            result = run(
                str(target),
                "--endpoint",
                collector,
                "--header",
                f"x-api-key={SECRET}",
                "--header",
                "authorization=Bearer t0ken",
            )
    assert seen_elsewhere.requests == [], "nothing, and no header, reaches another origin"
    assert [(method, headers["x-api-key"]) for method, _, headers in seen_collector.requests] == [
        ("POST", SECRET)
    ]
    assert result.exit_code == 3, result.output
    assert (
        f"{collector}/v1/traces: HTTP {status}: redirected to {elsewhere}, not followed: exports and their "
        "headers go only to the configured endpoint (set it to the new address if you trust it)"
    ) in result.stderr
    assert "L0CATION-T0KEN" not in result.output
    assert len(from_otlp_json_lines((target / "otel-replay-unsent.json").read_text())) == SPANS, "kept"


def test_a_redirect_within_the_origin_is_not_followed_either() -> None:
    with loopback_server(respond(308, headers={"Location": "/v2/traces"})) as (collector, seen):
        config = resolve_export_config(endpoint=collector, headers=[("x-api-key", SECRET)], environ={})
        delivery = deliver(encode_requests(PLAN, {"service.name": "dbt"}), config)
    assert [path for _, path, _ in seen.requests] == ["/v1/traces"]
    assert not delivery.complete
    assert f"HTTP 308: redirected to {collector}, not followed" in delivery.problems[0]


def test_a_redirect_without_a_location_is_a_permanent_error() -> None:
    with loopback_server(respond(302)) as (collector, seen):
        config = resolve_export_config(endpoint=collector, environ={})
        delivery = deliver(encode_requests(PLAN, {"service.name": "dbt"}), config)
    assert len(seen.requests) == 1
    assert delivery.problems == (
        f"{collector}/v1/traces: HTTP 302: a redirect without a Location, not followed",
    )
