"""Encode a plan as OTLP: protobuf export requests and OTLP/JSON: pure, no I/O.

Spans are packed into as few ``ExportTraceServiceRequest`` messages as fit
under the collector's default 4 MiB receive limit, so each request can be sent
and acknowledged on its own.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Mapping
from typing import Any

from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from .. import __version__
from ..plan import AttributeValue, Plan, PlannedSpan

SCOPE_NAME = "dbt-otel-replay"
MAX_REQUEST_BYTES = 4 * 1024 * 1024
"""The OpenTelemetry Collector's default limit for one received message (gRPC)."""
MAX_SPANS_PER_REQUEST = 8192
"""At most this many spans per request: the OpenTelemetry Collector's default batch size.
Some collectors (rotel, for one) drop a request they would have to split into several batches."""
REQUEST_HEADROOM_BYTES = 1024
"""Room left under the limit for the request's envelope (tags and length prefixes)."""

_FLAG_SAMPLED = 0x01
_FLAG_HAS_IS_REMOTE = 0x100
_FLAG_IS_REMOTE = 0x200
ID_FIELDS = frozenset({"traceId", "spanId", "parentSpanId"})


def encode_requests(
    plan: Plan,
    resource: Mapping[str, AttributeValue],
    *,
    max_request_bytes: int = MAX_REQUEST_BYTES,
    max_spans_per_request: int = MAX_SPANS_PER_REQUEST,
) -> list[ExportTraceServiceRequest]:
    """Encode every span of a plan into export requests of bounded size.

    Args:
        plan: The spans to encode.
        resource: The resource attributes (service.name and the like).
        max_request_bytes: The largest serialised request to produce.
        max_spans_per_request: The most spans to put in one request.

    Returns:
        The requests, in plan order (parents before children); together they
        hold every span exactly once.
    """
    resource_message = Resource(attributes=encode_attributes(resource))
    scope = InstrumentationScope(name=SCOPE_NAME, version=__version__)
    remote_parent = plan.invocation.parent_span_id
    budget = max_request_bytes - REQUEST_HEADROOM_BYTES - resource_message.ByteSize() - scope.ByteSize()
    requests: list[ExportTraceServiceRequest] = []
    spans = (encode_span(plan, s, remote_parent) for s in plan.spans)
    for chunk in _chunks(spans, budget, max_spans_per_request):
        requests.append(
            ExportTraceServiceRequest(
                resource_spans=[
                    ResourceSpans(
                        resource=resource_message,
                        scope_spans=[ScopeSpans(scope=scope, spans=chunk)],
                    )
                ]
            )
        )
    return requests


def _chunks(spans: Iterator[Span], budget: int, max_spans: int) -> Iterator[list[Span]]:
    chunk: list[Span] = []
    size = 0
    for span in spans:
        span_size = span.ByteSize() + 8  # field tag and length prefix
        if chunk and (size + span_size > budget or len(chunk) >= max_spans):
            yield chunk
            chunk, size = [], 0
        chunk.append(span)
        size += span_size
    if chunk:
        yield chunk


def encode_span(plan: Plan, span: PlannedSpan, remote_parent: str | None = None) -> Span:
    """Encode one planned span as an OTLP ``Span`` message.

    Args:
        plan: The plan the span belongs to (for the trace id and trace state).
        span: The span.
        remote_parent: The upstream span id, whose child is marked as having a remote parent.

    Returns:
        The protobuf message.
    """
    is_remote = span.parent_span_id is not None and span.parent_span_id == remote_parent
    return Span(
        trace_id=bytes.fromhex(plan.trace_id),
        span_id=bytes.fromhex(span.span_id),
        parent_span_id=bytes.fromhex(span.parent_span_id) if span.parent_span_id else b"",
        trace_state=plan.context.tracestate or "",
        flags=_FLAG_SAMPLED | _FLAG_HAS_IS_REMOTE | (_FLAG_IS_REMOTE if is_remote else 0),
        name=span.name,
        kind=Span.SpanKind.SPAN_KIND_INTERNAL,
        start_time_unix_nano=span.start_time_unix_nano,
        end_time_unix_nano=span.end_time_unix_nano,
        attributes=encode_attributes(span.attributes),
        events=[
            Span.Event(
                time_unix_nano=e.time_unix_nano, name=e.name, attributes=encode_attributes(e.attributes)
            )
            for e in span.events
        ],
        links=[
            Span.Link(
                trace_id=bytes.fromhex(link.trace_id),
                span_id=bytes.fromhex(link.span_id),
                attributes=encode_attributes(link.attributes),
                flags=_FLAG_SAMPLED | _FLAG_HAS_IS_REMOTE,
            )
            for link in span.links
        ],
        status=Status(code=int(span.status), message=span.status_message),  # type: ignore[arg-type]
    )


def encode_attributes(attributes: Mapping[str, AttributeValue]) -> list[KeyValue]:
    """Encode attributes as OTLP key-values.

    Args:
        attributes: Attribute names and values (strings, booleans, numbers, string tuples).

    Returns:
        The key-values, in the mapping's order.
    """
    return [KeyValue(key=key, value=_any_value(value)) for key, value in attributes.items()]


def _any_value(value: AttributeValue) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, tuple):
        return AnyValue(array_value=ArrayValue(values=[AnyValue(string_value=v) for v in value]))
    return AnyValue(string_value=value)


def to_otlp_json(request: ExportTraceServiceRequest) -> dict[str, Any]:
    """Convert a request to OTLP/JSON, the format of the collector's file exporter.

    OTLP/JSON differs from protobuf's canonical JSON in two ways handled here:
    trace and span ids are hex strings rather than base64, and enums are integers.

    Args:
        request: The request.

    Returns:
        A JSON-serialisable dict (``{"resourceSpans": [...]}``).
    """
    document: dict[str, Any] = MessageToDict(request, use_integers_for_enums=True)
    _hex_ids(document)
    return document


def _hex_ids(node: Any) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ID_FIELDS and isinstance(value, str):
                node[key] = _base64_to_hex(value)
            else:
                _hex_ids(value)
    elif isinstance(node, list):
        for item in node:
            _hex_ids(item)


def _base64_to_hex(value: str) -> str:
    return base64.b64decode(value).hex()
