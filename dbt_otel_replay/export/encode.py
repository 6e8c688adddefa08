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
from opentelemetry.proto.trace.v1.trace_pb2 import Span

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

SHARED_ATTRIBUTE_KEYS = frozenset(
    {
        "dbt.phase",
        "dbt.status",
        "dbt.node.resource_type",
        "dbt.node.package_name",
        "dbt.node.materialized",
        "dbt.node.tags",
        "dbt.thread_id",
        "thread.name",
        "db.system.name",
        "db.namespace",
        "dbt.adapter_response.code",
    }
)
"""Attributes with few distinct values in a run: their encoded messages are built once and reused."""

_KIND_INTERNAL = Span.SpanKind.SPAN_KIND_INTERNAL
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
    """Encode every span of a plan into export requests of bounded size (see :func:`iter_requests`)."""
    return list(
        iter_requests(
            plan, resource, max_request_bytes=max_request_bytes, max_spans_per_request=max_spans_per_request
        )
    )


def iter_requests(
    plan: Plan,
    resource: Mapping[str, AttributeValue],
    *,
    max_request_bytes: int = MAX_REQUEST_BYTES,
    max_spans_per_request: int = MAX_SPANS_PER_REQUEST,
) -> Iterator[ExportTraceServiceRequest]:
    """Encode every span of a plan into export requests of bounded size, one request at a time.

    Args:
        plan: The spans to encode.
        resource: The resource attributes (service.name and the like).
        max_request_bytes: The largest serialised request to produce.
        max_spans_per_request: The most spans to put in one request.

    Yields:
        The requests, in plan order (parents before children); together they
        hold every span exactly once. Each is complete when yielded.
    """
    encoder = _SpanEncoder(plan)
    resource_message = Resource(attributes=encode_attributes(resource))
    scope = InstrumentationScope(name=SCOPE_NAME, version=__version__)
    budget = max_request_bytes - REQUEST_HEADROOM_BYTES - resource_message.ByteSize() - scope.ByteSize()
    request, spans = _new_request(resource_message, scope)
    size = 0
    for planned in plan.spans:
        span = spans.add()
        encoder.fill(span, planned)
        span_size = span.ByteSize() + 8  # field tag and length prefix
        if len(spans) > 1 and (size + span_size > budget or len(spans) > max_spans_per_request):
            del spans[-1]  # it opens the next request instead
            yield request
            request, spans = _new_request(resource_message, scope)
            encoder.fill(spans.add(), planned)
            size = 0
        size += span_size
    yield request


def _new_request(resource: Resource, scope: InstrumentationScope) -> tuple[ExportTraceServiceRequest, Any]:
    """An empty request for this resource and scope, and its repeated spans field."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.CopyFrom(resource)
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.CopyFrom(scope)
    return request, scope_spans.spans


class _SpanEncoder:
    """Fills OTLP ``Span`` messages in place, reusing the key-values that repeat across spans."""

    def __init__(self, plan: Plan) -> None:
        self.trace_id = bytes.fromhex(plan.trace_id)
        self.trace_state = plan.context.tracestate or ""
        self.remote_parent = plan.invocation.parent_span_id
        self._shared: dict[tuple[str, str | tuple[str, ...]], KeyValue] = {}

    def fill(self, target: Span, span: PlannedSpan) -> None:
        """Write one planned span into an (empty) ``Span`` message."""
        is_remote = span.parent_span_id is not None and span.parent_span_id == self.remote_parent
        target.trace_id = self.trace_id
        target.span_id = bytes.fromhex(span.span_id)
        if span.parent_span_id:
            target.parent_span_id = bytes.fromhex(span.parent_span_id)
        if self.trace_state:
            target.trace_state = self.trace_state
        target.flags = _FLAG_SAMPLED | _FLAG_HAS_IS_REMOTE | (_FLAG_IS_REMOTE if is_remote else 0)
        target.name = span.name
        target.kind = _KIND_INTERNAL
        target.start_time_unix_nano = span.start_time_unix_nano
        target.end_time_unix_nano = span.end_time_unix_nano
        target.attributes.extend(self.key_values(span.attributes))
        for event in span.events:
            target.events.add(
                time_unix_nano=event.time_unix_nano,
                name=event.name,
                attributes=encode_attributes(event.attributes),
            )
        for link in span.links:
            target.links.add(
                trace_id=bytes.fromhex(link.trace_id),
                span_id=bytes.fromhex(link.span_id),
                attributes=encode_attributes(link.attributes),
                flags=_FLAG_SAMPLED | _FLAG_HAS_IS_REMOTE,
            )
        if span.status or span.status_message:
            target.status.code = int(span.status)  # type: ignore[assignment]
            target.status.message = span.status_message

    def key_values(self, attributes: Mapping[str, AttributeValue]) -> list[KeyValue]:
        """Encode attributes, sharing the messages of low-cardinality ones (status, phase, type ...)."""
        encoded = []
        shared = self._shared
        for key, value in attributes.items():
            if key in SHARED_ATTRIBUTE_KEYS and isinstance(value, (str, tuple)):
                message = shared.get((key, value))
                if message is None:
                    message = shared[(key, value)] = KeyValue(key=key, value=_any_value(value))
                encoded.append(message)
            else:
                encoded.append(KeyValue(key=key, value=_any_value(value)))
        return encoded


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
