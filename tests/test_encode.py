"""OTLP encoding: every span exactly once, requests under the collector's limit, OTLP/JSON ids in hex."""

from __future__ import annotations

import json
from pathlib import Path

from dbt_otel_replay.artifacts import load_artifacts
from dbt_otel_replay.export.encode import (
    MAX_REQUEST_BYTES,
    MAX_SPANS_PER_REQUEST,
    encode_requests,
    to_otlp_json,
)
from dbt_otel_replay.export.file import otlp_json_lines
from dbt_otel_replay.plan import PlanOptions, TraceContext, plan_trace
from tests.support.contract import from_otlp_json_lines, from_proto

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "artifacts"
RESOURCE = {"service.name": "dbt", "deployment.environment.name": "ci"}


def test_every_span_once_in_plan_order() -> None:
    plan = plan_trace(load_artifacts(FIXTURES / "build"))
    (request,) = encode_requests(plan, RESOURCE)
    (resource_spans,) = request.resource_spans
    assert {kv.key: kv.value.string_value for kv in resource_spans.resource.attributes} == RESOURCE
    (scope_spans,) = resource_spans.scope_spans
    assert scope_spans.scope.name == "dbt-otel-replay"
    assert [s.span_id.hex() for s in scope_spans.spans] == [s.span_id for s in plan.spans]


def test_requests_are_split_under_the_size_limit() -> None:
    plan = plan_trace(load_artifacts(FIXTURES / "build"), PlanOptions(include_sql=True))
    limit = 16 * 1024
    requests = encode_requests(plan, RESOURCE, max_request_bytes=limit)
    assert len(requests) > 1
    assert all(r.ByteSize() <= limit for r in requests)
    sent = [s.span_id.hex() for r in requests for s in r.resource_spans[0].scope_spans[0].spans]
    assert sent == [s.span_id for s in plan.spans]
    assert MAX_REQUEST_BYTES == 4 * 1024 * 1024


def test_remote_parent_flags_and_tracestate() -> None:
    upstream = TraceContext("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", tracestate="vendor=1")
    plan = plan_trace(load_artifacts(FIXTURES / "run"), PlanOptions(upstream=upstream))
    spans = encode_requests(plan, RESOURCE)[0].resource_spans[0].scope_spans[0].spans
    root = spans[0]
    assert root.parent_span_id.hex() == upstream.span_id
    assert root.flags == 0x301  # sampled, has-is-remote, is-remote
    assert all(s.flags == 0x101 for s in spans[1:])
    assert {s.trace_state for s in spans} == {"vendor=1"}


def test_otlp_json_matches_the_protobuf_content() -> None:
    plan = plan_trace(load_artifacts(FIXTURES / "build"))
    requests = encode_requests(plan, RESOURCE)
    from_json = from_otlp_json_lines(otlp_json_lines(requests))
    from_pb = [from_proto(s) for s in requests[0].resource_spans[0].scope_spans[0].spans]
    assert [vars(a) | {"resource": {}} for a in from_json] == [vars(b) for b in from_pb]
    document = to_otlp_json(requests[0])
    span = document["resourceSpans"][0]["scopeSpans"][0]["spans"][1]
    assert len(span["traceId"]) == 32 and len(span["spanId"]) == 16 and len(span["parentSpanId"]) == 16
    assert span["kind"] == 1
    json.dumps(document)  # serialisable


def test_requests_hold_at_most_the_span_cap() -> None:
    plan = plan_trace(load_artifacts(FIXTURES / "build"))
    requests = encode_requests(plan, RESOURCE, max_spans_per_request=10)
    counts = [len(r.resource_spans[0].scope_spans[0].spans) for r in requests]
    assert counts == [10] * 9 + [len(plan.spans) - 90]
    assert MAX_SPANS_PER_REQUEST == 8192
