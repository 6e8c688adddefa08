"""A second OTLP encoder, built on opentelemetry-proto's message classes: the oracle for the wire writer.

dbt-otel-replay writes the protobuf wire format itself (``export/protobuf.py``).
This builds the same spans the slow, obvious way, by setting fields on protobuf
messages as the OTLP data model defines them, so a test can compare the two,
span for span and byte for byte.
"""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from dbt_otel_replay import __version__
from dbt_otel_replay.plan import Plan
from dbt_otel_replay.spans import AttributeValue, PlannedSpan

SAMPLED, HAS_IS_REMOTE, IS_REMOTE = 0x01, 0x100, 0x200
SCHEMA_URL = "https://opentelemetry.io/schemas/1.44.0"
"""Semantic conventions v1.44, written here on its own (not imported from the package)."""


def oracle_request(
    plan: Plan, resource: Mapping[str, AttributeValue], first: int, count: int
) -> ExportTraceServiceRequest:
    """The whole export request holding ``plan.spans[first:first + count]``: resource, scope, schema URLs."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add(schema_url=SCHEMA_URL)
    resource_spans.resource.attributes.extend(key_values(resource))
    scope_spans = resource_spans.scope_spans.add(schema_url=SCHEMA_URL)
    scope_spans.scope.name = "dbt-otel-replay"
    scope_spans.scope.version = __version__
    scope_spans.spans.extend(oracle_span(plan, s) for s in plan.spans[first : first + count])
    return request


def oracle_span(plan: Plan, planned: PlannedSpan) -> Span:
    """The OTLP ``Span`` a planned span should become."""
    span = Span(
        trace_id=bytes.fromhex(plan.trace_id),
        span_id=bytes.fromhex(planned.span_id),
        parent_span_id=bytes.fromhex(planned.parent_span_id or ""),
        trace_state=plan.context.tracestate or "",
        name=planned.name,
        kind=int(planned.kind),  # type: ignore[arg-type]
        start_time_unix_nano=planned.start_time_unix_nano,
        end_time_unix_nano=planned.end_time_unix_nano,
        attributes=key_values(planned.attributes),
    )
    remote = planned.parent_span_id is not None and planned.parent_span_id == plan.invocation.parent_span_id
    span.flags = SAMPLED | HAS_IS_REMOTE | (IS_REMOTE if remote else 0)
    for event in planned.events:
        span.events.add(
            time_unix_nano=event.time_unix_nano, name=event.name, attributes=key_values(event.attributes)
        )
    for link in planned.links:
        span.links.add(
            trace_id=bytes.fromhex(link.trace_id),
            span_id=bytes.fromhex(link.span_id),
            attributes=key_values(link.attributes),
            flags=SAMPLED | HAS_IS_REMOTE,
        )
    if planned.status or planned.status_message:
        span.status.code = int(planned.status)  # type: ignore[assignment]
        span.status.message = planned.status_message
    return span


def key_values(attributes: Mapping[str, AttributeValue]) -> list[KeyValue]:
    """OTLP key-values for attributes."""
    return [KeyValue(key=key, value=any_value(value)) for key, value in attributes.items()]


def any_value(value: AttributeValue) -> AnyValue:
    """An OTLP ``AnyValue`` for one attribute value."""
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, tuple):
        return AnyValue(array_value=ArrayValue(values=[AnyValue(string_value=v) for v in value]))
    return AnyValue(string_value=value)
