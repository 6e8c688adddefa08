"""Encode a plan as OTLP/JSON, straight from the planned spans: lines for files, requests for HTTP; pure.

Each line is one ``ExportTraceServiceRequest`` in OTLP/JSON, the format of the
OpenTelemetry Collector's file exporter: protobuf's JSON mapping with camelCase
names, 64-bit integers as strings, enums as numbers, and trace and span ids in
hex. The lines hold exactly what :func:`~dbt_otel_replay.export.convert.to_otlp_json`
makes of the protobuf requests, built here without protobuf (which is several
times slower at it). A line is at most ``MAX_REQUEST_BYTES`` long and holds at most
``MAX_SPANS_PER_REQUEST`` spans, so each line, re-sent with ``--resend``, is a
request a collector accepts.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping
from typing import Any

import msgspec

from .. import __version__
from ..plan import Plan
from ..spans import AttributeValue, PlannedEvent, PlannedLink, PlannedSpan
from .requests import (
    FLAG_HAS_IS_REMOTE,
    FLAG_IS_REMOTE,
    FLAG_SAMPLED,
    MAX_REQUEST_BYTES,
    MAX_SPANS_PER_REQUEST,
    SCHEMA_URL,
    SCOPE_NAME,
    EncodedRequest,
    Encoding,
    pack,
)

JsonObject = dict[str, Any]
_LINK_FLAGS = FLAG_SAMPLED | FLAG_HAS_IS_REMOTE
_NON_FINITE = {math.inf: "Infinity", -math.inf: "-Infinity"}
_NEWLINE_BYTES = len(b"\n")
"""What ends each line, besides its request."""


def iter_otlp_json_lines(
    plan: Plan,
    resource: Mapping[str, AttributeValue],
    *,
    max_line_bytes: int = MAX_REQUEST_BYTES,
    max_spans_per_line: int = MAX_SPANS_PER_REQUEST,
) -> Iterator[str]:
    """Encode every span of a plan as OTLP/JSON lines, one request per line, one line at a time.

    Args:
        plan: The spans to encode.
        resource: The resource attributes (service.name and the like).
        max_line_bytes: The longest line to write (a single span longer than that still
            goes out, alone).
        max_spans_per_line: The most spans to put in one line.

    Yields:
        Lines ending in a newline, in plan order; together they hold every span exactly once.
    """
    requests = iter_json_requests(
        plan,
        resource,
        max_request_bytes=max_line_bytes - _NEWLINE_BYTES,
        max_spans_per_request=max_spans_per_line,
    )
    for request in requests:
        yield request.payload.decode() + "\n"


def iter_json_requests(
    plan: Plan,
    resource: Mapping[str, AttributeValue],
    *,
    max_request_bytes: int = MAX_REQUEST_BYTES,
    max_spans_per_request: int = MAX_SPANS_PER_REQUEST,
    start: int = 0,
    stop: int | None = None,
) -> Iterator[EncodedRequest]:
    """Encode every span of a plan into OTLP/JSON export requests (for OTLP/HTTP JSON), one at a time.

    Args:
        plan: The spans to encode.
        resource: The resource attributes (service.name and the like).
        max_request_bytes: The largest request body to produce (a single span larger than
            that still goes out, alone).
        max_spans_per_request: The most spans to put in one request.
        start: Encode only ``plan.spans[start:stop]`` (the spans of requests not delivered).
        stop: See ``start``; None for the end.

    Yields:
        The requests (:attr:`~.requests.Encoding.JSON`), in plan order.
    """
    encode = msgspec.json.Encoder().encode
    scope: JsonObject = {"name": SCOPE_NAME, "version": __version__}
    head = (
        b'{"resourceSpans":[{"resource":{"attributes":'
        + encode(_attributes(resource))
        + b'},"scopeSpans":[{"scope":'
        + encode(scope)
        + b',"spans":['
    )
    schema_url = encode(SCHEMA_URL)
    tail = b'],"schemaUrl":' + schema_url + b'}],"schemaUrl":' + schema_url + b"}]}"
    budget = max_request_bytes - len(head) - len(tail)
    writer = _SpanWriter(plan)
    spans = (encode(writer.span(planned)) for planned in itertools.islice(plan.spans, start, stop))
    first = start
    for batch in pack(spans, budget, max_spans_per_request, separator=len(b",")):
        yield EncodedRequest(head + b",".join(batch) + tail, len(batch), Encoding.JSON, first)
        first += len(batch)


class _SpanWriter:
    """Builds the OTLP/JSON object of each span; the shape of ``to_otlp_json``'s output."""

    def __init__(self, plan: Plan) -> None:
        self.trace_id = plan.trace_id
        self.trace_state = plan.context.tracestate or ""
        self.remote_parent = plan.invocation.parent_span_id

    def span(self, span: PlannedSpan) -> JsonObject:
        """One span as protobuf's JSON mapping writes it: default values left out."""
        document: JsonObject = {"traceId": self.trace_id, "spanId": span.span_id}
        if self.trace_state:
            document["traceState"] = self.trace_state
        flags = FLAG_SAMPLED | FLAG_HAS_IS_REMOTE
        if span.parent_span_id:
            document["parentSpanId"] = span.parent_span_id
            if span.parent_span_id == self.remote_parent:
                flags |= FLAG_IS_REMOTE
        if span.name:
            document["name"] = span.name
        document["kind"] = int(span.kind)
        if span.start_time_unix_nano:
            document["startTimeUnixNano"] = str(span.start_time_unix_nano)
        if span.end_time_unix_nano:
            document["endTimeUnixNano"] = str(span.end_time_unix_nano)
        if span.attributes:
            document["attributes"] = _attributes(span.attributes)
        if span.events:
            document["events"] = [_event(e) for e in span.events]
        if span.links:
            document["links"] = [_link(link) for link in span.links]
        if span.status or span.status_message:
            status: JsonObject = {}
            if span.status_message:
                status["message"] = span.status_message
            if span.status:
                status["code"] = int(span.status)
            document["status"] = status
        document["flags"] = flags
        return document


def _event(event: PlannedEvent) -> JsonObject:
    document: JsonObject = {}
    if event.time_unix_nano:
        document["timeUnixNano"] = str(event.time_unix_nano)
    if event.name:
        document["name"] = event.name
    if event.attributes:
        document["attributes"] = _attributes(event.attributes)
    return document


def _link(link: PlannedLink) -> JsonObject:
    document: JsonObject = {"traceId": link.trace_id, "spanId": link.span_id}
    if link.attributes:
        document["attributes"] = _attributes(link.attributes)
    document["flags"] = _LINK_FLAGS
    return document


def _attributes(attributes: Mapping[str, AttributeValue]) -> list[JsonObject]:
    return [
        {"key": key, "value": _any_value(value)} if key else {"value": _any_value(value)}
        for key, value in attributes.items()
    ]


def _any_value(value: AttributeValue) -> JsonObject:
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}  # int64: a string in protobuf's JSON mapping
    if isinstance(value, float):
        if math.isfinite(value):
            return {"doubleValue": value}
        return {"doubleValue": _NON_FINITE.get(value, "NaN")}
    if not value:
        return {"arrayValue": {}}
    return {"arrayValue": {"values": [{"stringValue": item} for item in value]}}
