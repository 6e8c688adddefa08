"""Prove the OTLP test harness works against real exporters and the real rotel binary."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Literal, Protocol

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import format_span_id, format_trace_id

from tests.support.collector import RotelCollector, RotelError
from tests.support.receiver import OtlpReceiver, ReceivedSpan, attributes_to_dict

Transport = Literal["grpc", "http", "http-gzip"]
TRANSPORTS: tuple[Transport, ...] = ("grpc", "http", "http-gzip")
AUTH_HEADER = "Bearer harness-token"
SCOPE_NAME = "tests.harness"


class OtlpTarget(Protocol):
    """Anything with OTLP gRPC and HTTP endpoints (receiver or collector)."""

    @property
    def grpc_endpoint(self) -> str: ...

    @property
    def http_endpoint(self) -> str: ...


# --------------------------------------------------------------------------- #
# helpers
# --------------------------------------------------------------------------- #


def make_exporter(transport: Transport, target: OtlpTarget, timeout: float = 10.0) -> SpanExporter:
    """A real OTLP span exporter of the given transport pointed at ``target``."""
    headers = {"authorization": AUTH_HEADER}
    if transport == "grpc":
        return GrpcSpanExporter(
            endpoint=target.grpc_endpoint, insecure=True, headers=headers, timeout=timeout
        )
    compression = Compression.Gzip if transport == "http-gzip" else Compression.NoCompression
    return HttpSpanExporter(
        endpoint=target.http_endpoint, headers=headers, timeout=timeout, compression=compression
    )


@contextmanager
def exporter_for(transport: Transport, target: OtlpTarget, timeout: float = 10.0) -> Iterator[SpanExporter]:
    """``make_exporter`` that is shut down afterwards."""
    exporter = make_exporter(transport, target, timeout)
    try:
        yield exporter
    finally:
        exporter.shutdown()


def make_spans() -> list[ReadableSpan]:
    """Record a parent span and a child span with typed attributes."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "harness-test", "deployment": "ci"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer(SCOPE_NAME, "1.2.3")
    with (
        tracer.start_as_current_span("parent", attributes={"kind": "root", "count": 3}),
        tracer.start_as_current_span("child") as child,
    ):
        child.set_attribute("ratio", 0.5)
        child.set_attribute("ok", True)
        child.set_attribute("tags", ["a", "b"])
    provider.shutdown()
    return list(memory.get_finished_spans())


def by_name(spans: Sequence[ReceivedSpan]) -> dict[str, ReceivedSpan]:
    """Index received spans by name."""
    return {span.name: span for span in spans}


def assert_spans_intact(sent: Sequence[ReadableSpan], received: Sequence[ReceivedSpan]) -> None:
    """Names, ids, parent links, attributes, resource and scope survived the trip."""
    assert sorted(s.name for s in received) == sorted(s.name for s in sent)
    got = by_name(received)
    for span in sent:
        context = span.get_span_context()
        assert context is not None
        record = got[span.name]
        assert record.trace_id == format_trace_id(context.trace_id)
        assert record.span_id == format_span_id(context.span_id)
        expected_parent = format_span_id(span.parent.span_id) if span.parent is not None else ""
        assert record.parent_span_id == expected_parent
        assert record.attributes == {
            k: list(v) if isinstance(v, tuple) else v for k, v in (span.attributes or {}).items()
        }
        assert record.resource_attributes["service.name"] == "harness-test"
        assert record.resource_attributes["deployment"] == "ci"
        assert record.scope_name == SCOPE_NAME
        assert record.scope_version == "1.2.3"
        assert record.span.start_time_unix_nano == span.start_time
        assert record.span.end_time_unix_nano == span.end_time


def post_http(url: str, body: bytes, content_type: str = "application/x-protobuf") -> tuple[int, bytes]:
    """POST raw bytes; return (status, body) even for error statuses."""
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def one_span_request(name: str = "raw") -> trace_service_pb2.ExportTraceServiceRequest:
    """A minimal hand-built ExportTraceServiceRequest with one span."""
    request = trace_service_pb2.ExportTraceServiceRequest()
    scope_spans = request.resource_spans.add().scope_spans.add()
    span = scope_spans.spans.add(name=name, trace_id=bytes(range(1, 17)), span_id=bytes(range(1, 9)))
    span.start_time_unix_nano, span.end_time_unix_nano = 1, 2
    return request


def grpc_export(
    endpoint: str, request: trace_service_pb2.ExportTraceServiceRequest
) -> trace_service_pb2.ExportTraceServiceResponse:
    """Call TraceService/Export directly and return the raw response."""
    with grpc.insecure_channel(endpoint.removeprefix("http://")) as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)  # type: ignore[no-untyped-call]
        response: trace_service_pb2.ExportTraceServiceResponse = stub.Export(request, timeout=10)
        return response


# --------------------------------------------------------------------------- #
# attributes_to_dict
# --------------------------------------------------------------------------- #


def test_attributes_to_dict_converts_every_any_value_kind() -> None:
    nested = KeyValueList(values=[KeyValue(key="inner", value=AnyValue(int_value=7))])
    array = ArrayValue(values=[AnyValue(string_value="x"), AnyValue(bool_value=False)])
    attributes = [
        KeyValue(key="s", value=AnyValue(string_value="text")),
        KeyValue(key="i", value=AnyValue(int_value=-4)),
        KeyValue(key="d", value=AnyValue(double_value=1.5)),
        KeyValue(key="b", value=AnyValue(bool_value=True)),
        KeyValue(key="raw", value=AnyValue(bytes_value=b"\x00\x01")),
        KeyValue(key="arr", value=AnyValue(array_value=array)),
        KeyValue(key="kv", value=AnyValue(kvlist_value=nested)),
        KeyValue(key="empty", value=AnyValue()),
    ]
    assert attributes_to_dict(attributes) == {
        "s": "text",
        "i": -4,
        "d": 1.5,
        "b": True,
        "raw": b"\x00\x01",
        "arr": ["x", False],
        "kv": {"inner": 7},
        "empty": None,
    }


# --------------------------------------------------------------------------- #
# receiver, directly
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_receiver_gets_spans_intact(otlp_receiver: OtlpReceiver, transport: Transport) -> None:
    spans = make_spans()
    with exporter_for(transport, otlp_receiver) as exporter:
        assert exporter.export(spans) == SpanExportResult.SUCCESS
    received = otlp_receiver.wait_for_spans(2, timeout=5)
    assert_spans_intact(spans, received)
    assert len(otlp_receiver.requests) == 1
    assert otlp_receiver.headers[0]["authorization"] == AUTH_HEADER
    assert otlp_receiver.attempts[0].transport == transport.split("-")[0]


def test_receiver_records_gzip_encoding(otlp_receiver: OtlpReceiver) -> None:
    with exporter_for("http-gzip", otlp_receiver) as exporter:
        assert exporter.export(make_spans()) == SpanExportResult.SUCCESS
    assert otlp_receiver.headers[0]["content-encoding"] == "gzip"


def test_receiver_via_sdk_pipeline(otlp_receiver: OtlpReceiver) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(make_exporter("grpc", otlp_receiver)))
    with provider.get_tracer(SCOPE_NAME).start_as_current_span("via-processor") as span:
        span.set_attribute("n", 1)
    provider.shutdown()
    (record,) = otlp_receiver.wait_for_spans(1, timeout=5)
    assert (record.name, record.attributes) == ("via-processor", {"n": 1})


def test_wait_for_spans_reports_how_many_arrived(otlp_receiver: OtlpReceiver) -> None:
    with exporter_for("grpc", otlp_receiver) as exporter:
        exporter.export(make_spans())
    with pytest.raises(AssertionError, match=r"expected at least 5 spans .* got 2"):
        otlp_receiver.wait_for_spans(5, timeout=0.2)


def test_http_rejects_wrong_path_and_content_type(otlp_receiver: OtlpReceiver) -> None:
    body = one_span_request().SerializeToString()
    base = otlp_receiver.http_endpoint.removesuffix("/v1/traces")
    assert post_http(f"{base}/v1/logs", body)[0] == 404
    assert post_http(otlp_receiver.http_endpoint, body, "text/plain")[0] == 415
    assert post_http(otlp_receiver.http_endpoint, body, "application/json")[0] == 400  # protobuf is not JSON
    assert post_http(otlp_receiver.http_endpoint, b"\xff\xff\xff", "application/x-protobuf")[0] == 400
    assert otlp_receiver.requests == []


# --------------------------------------------------------------------------- #
# fault injection
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    ("transport", "grpc_code", "http_status"),
    [("grpc", grpc.StatusCode.INVALID_ARGUMENT, 400), ("http", grpc.StatusCode.INVALID_ARGUMENT, 400)],
)
def test_non_retryable_failure_reaches_exporter(
    otlp_receiver: OtlpReceiver, transport: Transport, grpc_code: grpc.StatusCode, http_status: int
) -> None:
    otlp_receiver.fail_next(1, grpc_code=grpc_code, http_status=http_status)
    with exporter_for(transport, otlp_receiver) as exporter:
        assert exporter.export(make_spans()) == SpanExportResult.FAILURE
    assert [a.accepted for a in otlp_receiver.attempts] == [False]
    assert otlp_receiver.spans() == []


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_retryable_failure_then_success(otlp_receiver: OtlpReceiver, transport: Transport) -> None:
    otlp_receiver.fail_next(2, retry_after=0.05)  # UNAVAILABLE / 503 with a short retry hint
    started = time.monotonic()
    with exporter_for(transport, otlp_receiver) as exporter:
        assert exporter.export(make_spans()) == SpanExportResult.SUCCESS
    assert time.monotonic() - started < 3.0, "retry hint should beat the SDK's 1s+2s backoff"
    assert [a.accepted for a in otlp_receiver.attempts] == [False, False, True]
    assert len(otlp_receiver.wait_for_spans(2, timeout=5)) == 2


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_persistent_failure_exhausts_retries(otlp_receiver: OtlpReceiver, transport: Transport) -> None:
    otlp_receiver.fail_next(1000, retry_after=0.01)
    with exporter_for(transport, otlp_receiver) as exporter:
        assert exporter.export(make_spans()) == SpanExportResult.FAILURE
    assert len(otlp_receiver.attempts) > 1
    assert not any(a.accepted for a in otlp_receiver.attempts)
    assert otlp_receiver.spans() == []


def test_response_delay_causes_client_timeout(otlp_receiver: OtlpReceiver) -> None:
    otlp_receiver.set_response_delay(1.0)
    started = time.monotonic()
    with exporter_for("grpc", otlp_receiver, timeout=0.3) as exporter:
        assert exporter.export(make_spans()) == SpanExportResult.FAILURE
    assert time.monotonic() - started < 3.0
    otlp_receiver.reset_faults()


def test_partial_success_visible_over_grpc(otlp_receiver: OtlpReceiver) -> None:
    otlp_receiver.partial_success(rejected=1, message="span too old")
    response = grpc_export(otlp_receiver.grpc_endpoint, one_span_request())
    assert response.partial_success.rejected_spans == 1
    assert response.partial_success.error_message == "span too old"
    assert otlp_receiver.span_names() == ["raw"]  # partially accepted requests are still stored


def test_partial_success_visible_over_http(otlp_receiver: OtlpReceiver) -> None:
    otlp_receiver.partial_success(rejected=2, message="quota")
    status, body = post_http(otlp_receiver.http_endpoint, one_span_request().SerializeToString())
    response = trace_service_pb2.ExportTraceServiceResponse.FromString(body)
    assert status == 200
    assert (response.partial_success.rejected_spans, response.partial_success.error_message) == (2, "quota")
    otlp_receiver.clear_partial_success()
    _, body = post_http(otlp_receiver.http_endpoint, one_span_request().SerializeToString())
    assert not trace_service_pb2.ExportTraceServiceResponse.FromString(body).HasField("partial_success")


def test_partial_success_does_not_fail_sdk_export(otlp_receiver: OtlpReceiver) -> None:
    otlp_receiver.partial_success(rejected=1, message="dropped one")
    with exporter_for("grpc", otlp_receiver) as exporter:
        assert exporter.export(make_spans()) == SpanExportResult.SUCCESS


# --------------------------------------------------------------------------- #
# through the real rotel collector
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_rotel_relays_spans_intact(
    otlp_receiver: OtlpReceiver, rotel_collector: RotelCollector, transport: Transport
) -> None:
    spans = make_spans()
    with exporter_for(transport, rotel_collector) as exporter:
        assert exporter.export(spans) == SpanExportResult.SUCCESS
    assert_spans_intact(spans, otlp_receiver.wait_for_spans(2, timeout=10))
    assert otlp_receiver.attempts[0].transport == "grpc"  # rotel -> receiver leg


def test_rotel_http_upstream(otlp_receiver: OtlpReceiver) -> None:
    spans = make_spans()
    with RotelCollector(otlp_receiver.http_base_endpoint, protocol="http") as collector:
        with exporter_for("grpc", collector) as exporter:
            assert exporter.export(spans) == SpanExportResult.SUCCESS
        assert_spans_intact(spans, otlp_receiver.wait_for_spans(2, timeout=10))
    assert otlp_receiver.attempts[0].transport == "http"
    assert otlp_receiver.headers[0]["content-encoding"] == "gzip"


def test_rotel_retries_upstream_failures(
    otlp_receiver: OtlpReceiver, rotel_collector: RotelCollector
) -> None:
    otlp_receiver.fail_next(2)
    with exporter_for("grpc", rotel_collector) as exporter:
        assert exporter.export(make_spans()) == SpanExportResult.SUCCESS  # rotel acks before relaying
    otlp_receiver.wait_for_spans(2, timeout=15)
    assert [a.accepted for a in otlp_receiver.attempts] == [False, False, True]


def test_rotel_does_not_forward_partial_success(
    otlp_receiver: OtlpReceiver, rotel_collector: RotelCollector
) -> None:
    otlp_receiver.partial_success(rejected=1, message="upstream rejected")
    response = grpc_export(rotel_collector.grpc_endpoint, one_span_request())
    assert not response.HasField("partial_success")
    assert otlp_receiver.wait_for_spans(1, timeout=10)[0].name == "raw"


def test_rotel_flushes_on_stop_and_restarts_on_same_ports(otlp_receiver: OtlpReceiver) -> None:
    with RotelCollector(otlp_receiver.grpc_endpoint, batch_timeout="30s") as collector:
        ports = (collector.grpc_port, collector.http_port)
        grpc_export(collector.grpc_endpoint, one_span_request("before-stop"))
        assert collector.stop() == 0
        assert otlp_receiver.span_names() == ["before-stop"]  # SIGTERM flushed the open batch
        assert not collector.is_running
        with exporter_for("grpc", collector, timeout=1.0) as exporter:
            assert exporter.export(make_spans()) == SpanExportResult.FAILURE  # nobody listening
        collector.start()
        assert (collector.grpc_port, collector.http_port) == ports
        grpc_export(collector.grpc_endpoint, one_span_request("after-restart"))
        collector.stop()
        assert collector.output().count("Starting Rotel") == 2  # output accumulates across runs
    assert otlp_receiver.span_names() == ["before-stop", "after-restart"]


def test_rotel_kill_loses_unflushed_batch(otlp_receiver: OtlpReceiver) -> None:
    with RotelCollector(otlp_receiver.grpc_endpoint, batch_timeout="30s") as collector:
        grpc_export(collector.grpc_endpoint, one_span_request("lost"))
        assert collector.kill() == -9
        collector.start()
        grpc_export(collector.grpc_endpoint, one_span_request("kept"))
    assert otlp_receiver.span_names() == ["kept"]


@pytest.mark.parametrize(
    ("endpoint", "protocol"),
    [("127.0.0.1:4317", "grpc"), ("localhost", "grpc"), ("http://127.0.0.1:4318/v1/traces", "http")],
)
def test_rotel_rejects_endpoints_it_would_mishandle(endpoint: str, protocol: Literal["grpc", "http"]) -> None:
    with pytest.raises(ValueError, match="rotel"):
        RotelCollector(endpoint, protocol=protocol)


def test_rotel_missing_binary_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RotelError, match="rotel-agent binary not found"):
        RotelCollector("http://127.0.0.1:4317", binary=tmp_path / "rotel-agent")


def test_rotel_start_failure_includes_output(otlp_receiver: OtlpReceiver) -> None:
    collector = RotelCollector(otlp_receiver.grpc_endpoint, extra_args=["--no-such-flag"])
    try:
        with pytest.raises(RotelError, match=r"(?s)exited early.*no-such-flag"):
            collector.start()
        assert not collector.is_running
    finally:
        collector.close()
