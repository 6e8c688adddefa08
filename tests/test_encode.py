"""OTLP encoding: every span exactly once, byte for byte what protobuf writes, requests under the limits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from dbt_otel_replay.artifacts import load_artifacts
from dbt_otel_replay.export.convert import convert, to_message, to_otlp_json
from dbt_otel_replay.export.file import otlp_json_lines
from dbt_otel_replay.export.otlp_json import iter_json_requests, iter_otlp_json_lines
from dbt_otel_replay.export.protobuf import encode_requests
from dbt_otel_replay.export.requests import MAX_REQUEST_BYTES, MAX_SPANS_PER_REQUEST, EncodedRequest, Encoding
from dbt_otel_replay.plan import Plan, PlanOptions, StatusCode, TraceContext, plan_trace
from dbt_otel_replay.spans import AttributeValue, PlannedEvent, PlannedLink, PlannedSpan, SpanRole
from tests.support.contract import from_otlp_json_lines, from_proto
from tests.support.proto_oracle import key_values, oracle_request, oracle_span

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "fixtures" / "artifacts"
CORPUS = REPO.parent / "shared" / "corpus"
RESOURCE = {"service.name": "dbt", "deployment.environment.name": "ci"}
UPSTREAM = TraceContext("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", tracestate="vendor=1")
RUNS = sorted(p.parent for p in FIXTURES.glob("**/run_results.json")) + (
    sorted(p.parent for p in CORPUS.glob("*/run_results.json")) if CORPUS.is_dir() else []
)


def spans_of(request: EncodedRequest) -> list[Span]:
    return list(to_message(request).resource_spans[0].scope_spans[0].spans)


@pytest.mark.parametrize("target", RUNS, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_the_wire_format_is_what_protobuf_writes(target: Path) -> None:
    # Every fixture run and every corpus run, plain and with an upstream context and SQL: each
    # span decodes, and re-serialises, to exactly the message built field by field with protobuf.
    for options in (PlanOptions(), PlanOptions(upstream=UPSTREAM, include_sql=True)):
        plan = plan_trace(load_artifacts(target, include_sql=options.include_sql), options)
        requests = encode_requests(plan, RESOURCE)
        decoded = [span for request in requests for span in spans_of(request)]
        assert [r.spans for r in requests] == [len(spans_of(r)) for r in requests]
        assert len(decoded) == len(plan.spans)
        for planned, span in zip(plan.spans, decoded, strict=True):
            expected = oracle_span(plan, planned)
            assert span == expected, planned.name
            assert span.SerializeToString() == expected.SerializeToString()
        resource = to_message(requests[0]).resource_spans[0].resource
        assert list(resource.attributes) == key_values(RESOURCE)
        # and each whole request: the resource, the scope and both schema URLs, byte for byte
        first = 0
        for request in requests:
            assert request.payload == oracle_request(plan, RESOURCE, first, request.spans).SerializeToString()
            first += request.spans


TEXT = st.text(st.characters(exclude_categories=("Cs",)))  # lone surrogates: see the test below


@pytest.mark.parametrize("target", RUNS, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_otlp_json_lines_are_what_protobuf_json_makes_of_the_requests(target: Path) -> None:
    # --output writes OTLP/JSON straight from the plan; it must equal protobuf's JSON mapping
    # (with hex ids) of the protobuf requests, which is what the collector's file exporter writes.
    for options in (PlanOptions(), PlanOptions(upstream=UPSTREAM, include_sql=True)):
        plan = plan_trace(load_artifacts(target, include_sql=options.include_sql), options)
        lines = list(iter_otlp_json_lines(plan, RESOURCE))
        assert all(line.endswith("}\n") and line.count("\n") == 1 for line in lines)
        requests = encode_requests(plan, RESOURCE)
        assert [json.loads(line) for line in lines] == [to_otlp_json(r) for r in requests]
        # the same as OTLP/HTTP JSON requests, and back to protobuf: the very bytes encoded directly
        as_json = list(iter_json_requests(plan, RESOURCE))
        assert [r.encoding for r in as_json] == [Encoding.JSON] * len(requests)
        assert [convert(r, Encoding.PROTOBUF).payload for r in as_json] == [r.payload for r in requests]
        assert [json.loads(r.payload) for r in as_json] == [
            json.loads(convert(r, Encoding.JSON).payload) for r in requests
        ]


ATTRIBUTE_VALUES: st.SearchStrategy[AttributeValue] = st.one_of(
    TEXT,
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.lists(TEXT, max_size=3).map(tuple),
)
ATTRIBUTES = st.dictionaries(TEXT, ATTRIBUTE_VALUES, max_size=6)
HEX16 = st.binary(min_size=8, max_size=8).map(bytes.hex)
NANOS = st.integers(min_value=0, max_value=2**64 - 1)


@st.composite
def plans(draw: st.DrawFn) -> Plan:
    trace_id = draw(st.binary(min_size=16, max_size=16)).hex()
    upstream = draw(st.one_of(st.none(), HEX16))
    spans = []
    for index in range(draw(st.integers(min_value=1, max_value=5))):
        spans.append(
            PlannedSpan(
                role=SpanRole.INVOCATION if index == 0 else SpanRole.NODE,
                span_id=draw(HEX16),
                parent_span_id=upstream if index == 0 else draw(st.one_of(st.none(), HEX16)),
                name=draw(TEXT),
                start_time_unix_nano=draw(NANOS),
                end_time_unix_nano=draw(NANOS),
                attributes=draw(ATTRIBUTES),
                events=tuple(
                    PlannedEvent(draw(TEXT), draw(NANOS), draw(ATTRIBUTES))
                    for _ in range(draw(st.integers(0, 2)))
                ),
                links=tuple(
                    PlannedLink(trace_id, draw(HEX16), draw(ATTRIBUTES))
                    for _ in range(draw(st.integers(0, 2)))
                ),
                status=draw(st.sampled_from(StatusCode)),
                status_message=draw(TEXT),
            )
        )
    tracestate = draw(st.one_of(st.none(), st.just("vendor=1")))
    context = TraceContext(trace_id, spans[0].span_id, tracestate=tracestate)
    return Plan(trace_id=trace_id, spans=tuple(spans), context=context)


def _same(a: Span, b: Span) -> bool:
    # NaN is not equal to itself: compare the bytes, which are what goes on the wire.
    return a.SerializeToString() == b.SerializeToString()


@settings(max_examples=300, deadline=None, database=None)
@given(plans())
def test_any_planned_span_encodes_as_protobuf_would(plan: Plan) -> None:
    expected = [oracle_span(plan, s) for s in plan.spans]
    decoded = [span for request in encode_requests(plan, RESOURCE) for span in spans_of(request)]
    # compare the bytes that go on the wire (a NaN attribute is not equal to itself as a message)
    assert [s.SerializeToString() for s in decoded] == [s.SerializeToString() for s in expected]
    (request,) = encode_requests(plan, RESOURCE)
    assert request.payload == oracle_request(plan, RESOURCE, 0, len(plan.spans)).SerializeToString()


@settings(max_examples=300, deadline=None, database=None)
@given(plans())
def test_any_planned_span_becomes_the_otlp_json_protobuf_would_write(plan: Plan) -> None:
    (line,) = iter_otlp_json_lines(plan, RESOURCE)
    (request,) = encode_requests(plan, RESOURCE)
    assert json.loads(line) == to_otlp_json(request)  # NaN and infinities are strings in both


def test_otlp_json_lines_stay_under_the_limits() -> None:
    plan = plan_trace(load_artifacts(FIXTURES / "build"), PlanOptions(include_sql=True))
    limit = 16 * 1024
    lines = list(iter_otlp_json_lines(plan, RESOURCE, max_line_bytes=limit))
    assert len(lines) > 1 and all(len(line.encode()) <= limit for line in lines)
    ids = [
        s["spanId"] for line in lines for s in json.loads(line)["resourceSpans"][0]["scopeSpans"][0]["spans"]
    ]
    assert ids == [s.span_id for s in plan.spans]
    capped = list(iter_otlp_json_lines(plan, RESOURCE, max_spans_per_line=10))
    counts = [len(json.loads(line)["resourceSpans"][0]["scopeSpans"][0]["spans"]) for line in capped]
    assert counts == [10] * 9 + [len(plan.spans) - 90]


def test_text_that_is_not_unicode_is_replaced_not_fatal() -> None:
    # An environment variable with undecodable bytes arrives as lone surrogates (PEP 383).
    plan = plan_trace(load_artifacts(FIXTURES / "run"))
    (request,) = encode_requests(plan, {"service.name": "dbt\udcff"})
    resource = to_message(request).resource_spans[0].resource
    assert resource.attributes[0].value.string_value == "dbt?"


def test_every_span_once_in_plan_order() -> None:
    plan = plan_trace(load_artifacts(FIXTURES / "build"))
    (request,) = encode_requests(plan, RESOURCE)
    (resource_spans,) = to_message(request).resource_spans
    assert {kv.key: kv.value.string_value for kv in resource_spans.resource.attributes} == RESOURCE
    (scope_spans,) = resource_spans.scope_spans
    assert scope_spans.scope.name == "dbt-otel-replay"
    assert scope_spans.schema_url == resource_spans.schema_url == "https://opentelemetry.io/schemas/1.44.0"
    assert [s.span_id.hex() for s in scope_spans.spans] == [s.span_id for s in plan.spans]
    assert request.spans == len(plan.spans)


def test_requests_are_split_under_the_size_limit() -> None:
    plan = plan_trace(load_artifacts(FIXTURES / "build"), PlanOptions(include_sql=True))
    limit = 16 * 1024
    requests = encode_requests(plan, RESOURCE, max_request_bytes=limit)
    assert len(requests) > 1
    assert all(len(r.payload) <= limit for r in requests)
    assert all(to_message(r).ByteSize() == len(r.payload) for r in requests)
    sent = [s.span_id.hex() for r in requests for s in spans_of(r)]
    assert sent == [s.span_id for s in plan.spans]
    assert MAX_REQUEST_BYTES == 4 * 1024 * 1024


def test_a_span_larger_than_the_limit_goes_alone() -> None:
    plan = plan_trace(load_artifacts(FIXTURES / "build"), PlanOptions(include_sql=True))
    requests = encode_requests(plan, RESOURCE, max_request_bytes=1024)
    assert [r.spans for r in requests] == [1] * len(plan.spans)


def test_remote_parent_flags_and_tracestate() -> None:
    plan = plan_trace(load_artifacts(FIXTURES / "run"), PlanOptions(upstream=UPSTREAM))
    spans = spans_of(encode_requests(plan, RESOURCE)[0])
    root = spans[0]
    assert root.parent_span_id.hex() == UPSTREAM.span_id
    assert root.flags == 0x301  # sampled, has-is-remote, is-remote
    assert all(s.flags == 0x101 for s in spans[1:])
    assert {s.trace_state for s in spans} == {"vendor=1"}


def test_otlp_json_matches_the_protobuf_content() -> None:
    plan = plan_trace(load_artifacts(FIXTURES / "build"))
    requests = encode_requests(plan, RESOURCE)
    from_json = from_otlp_json_lines(otlp_json_lines(requests))
    from_pb = [from_proto(s) for s in spans_of(requests[0])]
    assert [vars(a) | {"resource": {}} for a in from_json] == [vars(b) for b in from_pb]
    document = to_otlp_json(requests[0])
    assert document == to_otlp_json(ExportTraceServiceRequest.FromString(requests[0].payload))
    span = document["resourceSpans"][0]["scopeSpans"][0]["spans"][1]
    assert len(span["traceId"]) == 32 and len(span["spanId"]) == 16 and len(span["parentSpanId"]) == 16
    assert span["kind"] == 1
    json.dumps(document)  # serialisable


def test_requests_hold_at_most_the_span_cap() -> None:
    plan = plan_trace(load_artifacts(FIXTURES / "build"))
    requests = encode_requests(plan, RESOURCE, max_spans_per_request=10)
    counts = [len(spans_of(r)) for r in requests]
    assert counts == [10] * 9 + [len(plan.spans) - 90]
    assert [r.spans for r in requests] == counts
    assert MAX_SPANS_PER_REQUEST == 8192
