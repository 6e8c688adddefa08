"""Sending over OTLP to a real receiver: every protocol, every answer checked, retries and refusals."""

from __future__ import annotations

import http.server
import re
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from email.utils import formatdate
from pathlib import Path
from typing import ClassVar

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped]

from dbt_otel_replay import __version__
from dbt_otel_replay.artifacts import load_artifacts
from dbt_otel_replay.export.config import resolve_export_config
from dbt_otel_replay.export.deliver import deliver
from dbt_otel_replay.export.otlp_json import iter_json_requests
from dbt_otel_replay.export.protobuf import encode_requests
from dbt_otel_replay.export.requests import EncodedRequest
from dbt_otel_replay.export.transport import Answer, Transport, open_transport
from dbt_otel_replay.plan import plan_trace
from tests.support.contract import check_contract, from_proto, load_pair
from tests.support.receiver import OtlpReceiver

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "artifacts"
PLAN = plan_trace(load_artifacts(FIXTURES / "build"))
TOTAL = len(PLAN.spans)


def endpoint_for(receiver: OtlpReceiver, protocol: str) -> str:
    return receiver.grpc_endpoint if protocol == "grpc" else receiver.http_base_endpoint


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf", "http/json"])
@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_every_protocol_delivers_the_whole_contract(
    otlp_receiver: OtlpReceiver, protocol: str, compression: str
) -> None:
    config = resolve_export_config(
        endpoint=endpoint_for(otlp_receiver, protocol),
        protocol=protocol,
        headers=[("authorization", "Bearer t0ken")],
        environ={"OTEL_EXPORTER_OTLP_COMPRESSION": compression},
    )
    delivery = deliver(encode_requests(PLAN, {"service.name": "dbt"}), config)
    assert delivery.complete and delivery.accepted == delivery.total == TOTAL and delivery.requests == 1
    spans = [from_proto(r.span, r.resource_attributes) for r in otlp_receiver.spans()]
    check_contract(*load_pair(FIXTURES / "build"), spans)
    assert otlp_receiver.headers[0]["authorization"] == "Bearer t0ken"


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf", "http/json"])
def test_requests_encoded_as_otlp_json_go_over_every_protocol(
    otlp_receiver: OtlpReceiver, protocol: str
) -> None:
    # http/json sends them as they are; gRPC and http/protobuf convert them (a spill file re-sent)
    config = resolve_export_config(
        endpoint=endpoint_for(otlp_receiver, protocol), protocol=protocol, environ={}
    )
    requests = list(iter_json_requests(PLAN, {"service.name": "dbt"}, max_request_bytes=16 * 1024))
    delivery = deliver(requests, config)
    assert delivery.complete and delivery.accepted == TOTAL and delivery.requests == len(requests) > 1
    spans = [from_proto(r.span, r.resource_attributes) for r in otlp_receiver.spans()]
    check_contract(*load_pair(FIXTURES / "build"), spans)


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_large_traces_go_in_several_checked_requests(otlp_receiver: OtlpReceiver, protocol: str) -> None:
    config = resolve_export_config(
        endpoint=endpoint_for(otlp_receiver, protocol), protocol=protocol, environ={}
    )
    requests = encode_requests(PLAN, {"service.name": "dbt"}, max_request_bytes=8 * 1024)
    delivery = deliver(requests, config)
    assert delivery.requests == len(requests) > 3
    assert len(otlp_receiver.requests) == len(requests)
    assert sorted(r.span.span_id.hex() for r in otlp_receiver.spans()) == sorted(
        s.span_id for s in PLAN.spans
    )


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_transient_failures_are_retried(otlp_receiver: OtlpReceiver, protocol: str) -> None:
    otlp_receiver.fail_next(2, grpc_code=grpc.StatusCode.UNAVAILABLE, http_status=503)
    config = resolve_export_config(
        endpoint=endpoint_for(otlp_receiver, protocol), protocol=protocol, environ={}
    )
    waits: list[float] = []
    delivery = deliver(
        encode_requests(PLAN, {"service.name": "dbt"}), config, sleep=waits.append, jitter=lambda: 0.5
    )
    assert delivery.complete and delivery.accepted == TOTAL
    assert waits == [0.5, 1.0]  # exponential backoff (a jitter of 0.5 is the middle of its range)
    assert len(otlp_receiver.attempts) == 3 and otlp_receiver.span_count() == TOTAL


def test_backoff_has_jitter(otlp_receiver: OtlpReceiver) -> None:
    """The OTLP Exporter specification: "exponential back-off with jitter" (issue #13)."""
    config = resolve_export_config(endpoint=otlp_receiver.http_base_endpoint, environ={})
    nominal = [0.5, 1.0, 2.0, 4.0]
    for jitter, factor in ((lambda: 0.0, 0.8), (lambda: 0.999999, 1.2)):
        otlp_receiver.fail_next(4, http_status=503)
        waits: list[float] = []
        deliver(encode_requests(PLAN, {"service.name": "dbt"}), config, sleep=waits.append, jitter=jitter)
        assert waits == pytest.approx([n * factor for n in nominal])
    seen: list[list[float]] = []
    for _ in range(2):  # the real random source: within +-20 %, and never the bare schedule
        otlp_receiver.fail_next(4, http_status=503)
        waits = []
        assert deliver(encode_requests(PLAN, {"service.name": "dbt"}), config, sleep=waits.append).complete
        assert all(0.8 * n <= w <= 1.2 * n for w, n in zip(waits, nominal, strict=True)), waits
        seen.append(waits)
    assert seen[0] != nominal and seen[0] != seen[1], "two runs do not retry in lockstep"


def test_retry_after_is_honoured(otlp_receiver: OtlpReceiver) -> None:
    otlp_receiver.fail_next(1, http_status=429, retry_after=2)
    config = resolve_export_config(endpoint=otlp_receiver.http_base_endpoint, environ={})
    waits: list[float] = []
    deliver(encode_requests(PLAN, {"service.name": "dbt"}), config, sleep=waits.append)
    assert waits == [2.0]


@pytest.mark.parametrize(
    ("protocol", "failure"),
    [("grpc", {"grpc_code": grpc.StatusCode.INVALID_ARGUMENT}), ("http/protobuf", {"http_status": 400})],
)
def test_permanent_refusals_are_not_retried(
    otlp_receiver: OtlpReceiver, protocol: str, failure: dict[str, object]
) -> None:
    otlp_receiver.fail_next(5, message="bad spans", **failure)  # type: ignore[arg-type]
    config = resolve_export_config(
        endpoint=endpoint_for(otlp_receiver, protocol), protocol=protocol, environ={}
    )
    requests = encode_requests(PLAN, {"service.name": "dbt"}, max_request_bytes=8 * 1024)
    delivery = deliver(requests, config, sleep=lambda _: None)
    assert delivery.accepted == 0 and delivery.total == TOTAL
    assert delivery.unsent == tuple(requests), "the refused request and every one after it come back"
    assert len(otlp_receiver.attempts) == 1
    (problem,) = delivery.problems
    assert ("INVALID_ARGUMENT: bad spans" if protocol == "grpc" else "HTTP 400: bad spans") in problem


def test_giving_up_at_the_deadline(otlp_receiver: OtlpReceiver) -> None:
    otlp_receiver.fail_next(100)
    config = resolve_export_config(
        endpoint=otlp_receiver.grpc_endpoint, protocol="grpc", timeout=1.0, environ={}
    )
    started = time.monotonic()
    delivery = deliver(encode_requests(PLAN, {"service.name": "dbt"}), config)
    elapsed = time.monotonic() - started
    assert not delivery.complete and delivery.accepted == 0
    found = re.search(
        r"UNAVAILABLE: injected failure \(gave up after (\d+) attempts in (\d+(?:\.\d)?) s; see --timeout\)",
        delivery.problems[0],
    )
    assert found, delivery.problems[0]
    # the time really spent (issue #13: "in 10 s" was printed after 7.5 s): the next wait would pass
    # the deadline, so it is given up before it
    assert float(found.group(2)) == pytest.approx(elapsed, abs=0.15) and elapsed < 1.0
    assert int(found.group(1)) == len(otlp_receiver.attempts) >= 2
    assert otlp_receiver.span_count() == 0


def test_a_retry_delay_past_the_deadline_is_given_up_at_once(otlp_receiver: OtlpReceiver) -> None:
    otlp_receiver.fail_next(1, http_status=429, retry_after=30)
    config = resolve_export_config(endpoint=otlp_receiver.http_base_endpoint, timeout=2.0, environ={})
    waits: list[float] = []
    delivery = deliver(encode_requests(PLAN, {"service.name": "dbt"}), config, sleep=waits.append)
    assert waits == [] and len(otlp_receiver.attempts) == 1
    assert re.search(
        r"HTTP 429 \(gave up after 1 attempt in \d+(?:\.\d)? s, the collector asking to wait 30 s more; "
        r"see --timeout\)$",
        delivery.problems[0],
    ), delivery.problems[0]


class _RetryAfterDate(http.server.BaseHTTPRequestHandler):
    """Answers the first POST 429 with Retry-After as an HTTP date, later ones 200; keeps the headers."""

    protocol_version = "HTTP/1.1"
    seen: ClassVar[list[dict[str, str]]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).seen.append({k.lower(): v for k, v in self.headers.items()})
        first = len(type(self).seen) == 1
        self.send_response(429 if first else 200)
        if first:
            self.send_header("Retry-After", formatdate(time.time() + 3, usegmt=True))
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


def test_retry_after_as_an_http_date_is_honoured() -> None:
    _RetryAfterDate.seen = []
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RetryAfterDate) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            config = resolve_export_config(endpoint=f"http://127.0.0.1:{server.server_port}", environ={})
            waits: list[float] = []
            assert deliver(
                encode_requests(PLAN, {"service.name": "dbt"}), config, sleep=waits.append
            ).complete
        finally:
            server.shutdown()
    (wait,) = waits
    assert 1.5 < wait <= 3.0, "the date's seconds from now (it has whole seconds), no backoff of our own"
    assert [h["user-agent"] for h in _RetryAfterDate.seen] == [f"dbt-otel-replay/{__version__}"] * 2


def _retry_info_server(delay: float, *, bare: bool = False) -> tuple[grpc.Server, int, list[dict[str, str]]]:
    """A gRPC server whose first Export fails RESOURCE_EXHAUSTED with RetryInfo: in the status details,
    or (``bare``) alone in ``google.rpc.retryinfo-bin``, as opentelemetry-python's exporter reads it."""
    calls: list[dict[str, str]] = []

    def export(request: bytes, context: grpc.ServicerContext) -> bytes:
        calls.append({k: v for k, v in context.invocation_metadata() if isinstance(v, str)})
        if len(calls) == 1:
            info = error_details_pb2.RetryInfo()
            info.retry_delay.FromNanoseconds(int(delay * 1e9))
            status = status_pb2.Status(code=grpc.StatusCode.RESOURCE_EXHAUSTED.value[0], message="slow down")
            status.details.add().Pack(info)
            if bare:
                context.set_trailing_metadata((("google.rpc.retryinfo-bin", info.SerializeToString()),))
            else:
                context.set_trailing_metadata((("grpc-status-details-bin", status.SerializeToString()),))
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "slow down")
        return b""

    handler = grpc.method_handlers_generic_handler(
        "opentelemetry.proto.collector.trace.v1.TraceService",
        {"Export": grpc.unary_unary_rpc_method_handler(export)},
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), handlers=[handler])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port, calls


@pytest.mark.parametrize("bare", [False, True], ids=["status-details", "bare-retry-info"])
def test_grpc_retry_info_is_honoured_and_the_user_agent_names_the_tool(bare: bool) -> None:
    server, port, calls = _retry_info_server(1.25, bare=bare)
    try:
        config = resolve_export_config(endpoint=f"http://127.0.0.1:{port}", protocol="grpc", environ={})
        waits: list[float] = []
        assert deliver(encode_requests(PLAN, {"service.name": "dbt"}), config, sleep=waits.append).complete
    finally:
        server.stop(None)
    assert waits == [1.25], "the collector's RetryInfo delay, not our backoff (0.5 s)"
    assert all(c["user-agent"].startswith(f"dbt-otel-replay/{__version__} grpc-python/") for c in calls)


def test_resource_exhausted_without_retry_info_is_not_retried(otlp_receiver: OtlpReceiver) -> None:
    """OTLP: RESOURCE_EXHAUSTED is retryable only when the server says recovery is possible (RetryInfo)."""
    otlp_receiver.fail_next(5, grpc_code=grpc.StatusCode.RESOURCE_EXHAUSTED, message="queue full")
    config = resolve_export_config(endpoint=otlp_receiver.grpc_endpoint, protocol="grpc", environ={})
    waits: list[float] = []
    delivery = deliver(encode_requests(PLAN, {"service.name": "dbt"}), config, sleep=waits.append)
    assert not delivery.complete and waits == [] and len(otlp_receiver.attempts) == 1
    assert "gRPC RESOURCE_EXHAUSTED: queue full (no RetryInfo" in delivery.problems[0]
    otlp_receiver.reset_faults()
    otlp_receiver.fail_next(1, grpc_code=grpc.StatusCode.RESOURCE_EXHAUSTED, retry_after=0.2)
    assert deliver(encode_requests(PLAN, {"service.name": "dbt"}), config, sleep=waits.append).complete
    assert waits == [0.2], "with RetryInfo it is retried after the delay the collector asked for"


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_partial_success_is_a_failure_in_the_collectors_words(
    otlp_receiver: OtlpReceiver, protocol: str
) -> None:
    otlp_receiver.partial_success(rejected=3, message="span too old")
    config = resolve_export_config(
        endpoint=endpoint_for(otlp_receiver, protocol), protocol=protocol, environ={}
    )
    requests = encode_requests(PLAN, {"service.name": "dbt"}, max_request_bytes=8 * 1024)
    delivery = deliver(requests, config)
    assert delivery.accepted == TOTAL - 3 * len(requests)
    assert delivery.unsent == tuple(requests), "every partly rejected request is kept for a re-send"
    assert re.search(r"rejected 3 of \d+ spans in request 1: span too old", delivery.problems[0])
    assert len(delivery.problems) == len(requests)


def test_partial_success_with_only_a_message_is_a_warning(
    otlp_receiver: OtlpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    otlp_receiver.partial_success(rejected=0, message="attribute truncated")
    config = resolve_export_config(endpoint=otlp_receiver.grpc_endpoint, protocol="grpc", environ={})
    assert deliver(encode_requests(PLAN, {"service.name": "dbt"}), config).complete
    assert "attribute truncated" in caplog.text


class Watched:
    """The real transport, watched: when each send ends, and the most sends on the wire at once."""

    def __init__(self, inner: Transport) -> None:
        self.inner, self.active, self.most, self.closed = inner, 0, 0, False
        self.finished: list[float] = []
        self.lock = threading.Lock()

    def send(self, request: EncodedRequest, timeout: float) -> Answer:
        with self.lock:
            self.active += 1
            self.most = max(self.most, self.active)
        try:
            time.sleep(0.05)  # a collector a little farther away than loopback
            return self.inner.send(request, timeout)
        finally:
            with self.lock:
                self.active -= 1
                self.finished.append(time.monotonic())

    def close(self) -> None:
        self.closed = True
        self.inner.close()


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_the_next_request_is_encoded_while_one_is_on_the_wire(
    otlp_receiver: OtlpReceiver, protocol: str
) -> None:
    config = resolve_export_config(
        endpoint=endpoint_for(otlp_receiver, protocol), protocol=protocol, environ={}
    )
    transport = Watched(open_transport(config))
    taken: list[float] = []

    def encoded_lazily() -> Iterator[EncodedRequest]:
        for request in encode_requests(PLAN, {"service.name": "dbt"}, max_request_bytes=8 * 1024):
            taken.append(time.monotonic())
            yield request

    delivery = deliver(encoded_lazily(), config, transport=transport)
    assert delivery.complete and len(taken) == len(transport.finished) > 3
    assert transport.most == 1, "one request on the wire at a time"
    # request i+1 is taken from the encoder before request i's send has ended
    assert all(taken[i + 1] < transport.finished[i] for i in range(len(taken) - 1))
    received = [r.span.span_id.hex() for r in otlp_receiver.spans()]
    assert received == [s.span_id for s in PLAN.spans], "sent, and accepted, in order"
    assert not transport.closed, "a transport the caller passed in stays open for the next run"
    assert deliver(encode_requests(PLAN, {"service.name": "dbt"}), config, transport=transport).complete
    transport.close()


SECRET = "SEKRIT/k3y+v4lue"
"""A header value with characters a collector's echo may percent-encode."""


@pytest.mark.parametrize(
    ("protocol", "failure"),
    [
        ("grpc", {"grpc_code": grpc.StatusCode.UNAUTHENTICATED}),
        ("http/protobuf", {"http_status": 401}),
        ("http/json", {"http_status": 403}),
    ],
)
def test_a_collector_echoing_a_header_value_is_redacted(
    otlp_receiver: OtlpReceiver, protocol: str, failure: dict[str, object]
) -> None:
    echo = f"bad key {SECRET}, encoded SEKRIT%2Fk3y%2Bv4lue, in the token Bearer t0ken-0123456789"
    otlp_receiver.fail_next(1, message=echo, **failure)  # type: ignore[arg-type]
    config = resolve_export_config(
        endpoint=endpoint_for(otlp_receiver, protocol),
        protocol=protocol,
        headers=[("x-api-key", SECRET), ("authorization", "Bearer t0ken-0123456789")],
        environ={},
    )
    delivery = deliver(encode_requests(PLAN, {"service.name": "dbt"}), config)
    (problem,) = delivery.problems
    assert "bad key [REDACTED], encoded [REDACTED], in the token [REDACTED]" in problem
    assert "SEKRIT" not in problem and "t0ken" not in problem
    assert otlp_receiver.attempts[0].headers["x-api-key"] == SECRET, "sent as configured"


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf", "http/json"])
def test_partial_success_messages_and_retry_lines_are_redacted(
    otlp_receiver: OtlpReceiver, protocol: str, caplog: pytest.LogCaptureFixture
) -> None:
    otlp_receiver.fail_next(1, grpc_code=grpc.StatusCode.UNAVAILABLE, message=f"busy with {SECRET}")
    otlp_receiver.partial_success(rejected=2, message=f"x-api-key {SECRET} may not send")
    config = resolve_export_config(
        endpoint=endpoint_for(otlp_receiver, protocol),
        protocol=protocol,
        headers=[("x-api-key", SECRET)],
        environ={},
    )
    delivery = deliver(encode_requests(PLAN, {"service.name": "dbt"}), config, sleep=lambda _: None)
    assert delivery.accepted == TOTAL - 2
    assert delivery.problems[0].endswith("in request 1: x-api-key [REDACTED] may not send")
    assert "retrying in" in caplog.text and "SEKRIT" not in caplog.text
    if protocol == "grpc":
        assert "UNAVAILABLE: busy with [REDACTED]; retrying" in caplog.text


def test_a_warning_only_partial_success_is_logged_redacted(
    otlp_receiver: OtlpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    otlp_receiver.partial_success(rejected=0, message=f"deprecated key {SECRET}")
    config = resolve_export_config(
        endpoint=otlp_receiver.grpc_endpoint, protocol="grpc", headers=[("x-api-key", SECRET)], environ={}
    )
    assert deliver(encode_requests(PLAN, {"service.name": "dbt"}), config).complete
    assert "the collector says: deprecated key [REDACTED]" in caplog.text and "SEKRIT" not in caplog.text


def test_an_http_library_error_quoting_the_url_shows_no_query_and_no_password() -> None:
    # requests quotes the whole URL when it has no adapter for the scheme
    config = resolve_export_config(
        traces_endpoint="ftp://apiuser:passw0rd@127.0.0.1:1/v1/traces?api_key=qu3rySEKRIT", environ={}
    )
    delivery = deliver(encode_requests(PLAN, {"service.name": "dbt"}), config)
    (problem,) = delivery.problems
    assert problem.startswith("ftp://127.0.0.1:1/v1/traces?[REDACTED]: HTTP request failed: ")
    assert "qu3rySEKRIT" not in problem and "passw0rd" not in problem and "apiuser" not in problem
    assert delivery.endpoint == "ftp://127.0.0.1:1/v1/traces?[REDACTED]"


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_binary_metadata_reaches_the_collector(otlp_receiver: OtlpReceiver, protocol: str) -> None:
    config = resolve_export_config(
        endpoint=endpoint_for(otlp_receiver, protocol),
        protocol=protocol,
        headers=[("x-token-bin", "AAH/Ymlu")],
        environ={},
    )
    assert deliver(encode_requests(PLAN, {"service.name": "dbt"}), config).complete
    # gRPC carries the bytes (the receiver shows them in hex); HTTP the base64 text as given
    expected = "0001ff62696e" if protocol == "grpc" else "AAH/Ymlu"
    assert otlp_receiver.headers[0]["x-token-bin"] == expected
