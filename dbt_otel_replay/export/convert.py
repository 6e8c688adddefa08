"""Conversions that need the protobuf library: between the two encodings, to and from protobuf messages.

The encoders write requests without protobuf; protobuf is needed only to turn a
request into the other encoding (a spill file, written in OTLP/JSON, re-sent
over gRPC; a request written to a file as OTLP/JSON), to read OTLP/JSON back,
and for tests to decode what was encoded. It is imported inside each function,
not here: a replay that needs no conversion never loads it.
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any

from .requests import EncodedRequest, Encoding

if TYPE_CHECKING:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

ID_FIELDS = frozenset({"traceId", "spanId", "parentSpanId"})
"""The OTLP/JSON fields holding ids: hex in OTLP/JSON, base64 in protobuf's JSON mapping."""
_COMPACT = (",", ":")
"""JSON separators without spaces: each request one compact line."""


def convert(request: EncodedRequest, encoding: Encoding) -> EncodedRequest:
    """The request in ``encoding``: itself when it is encoded so already, else converted.

    Args:
        request: An encoded request.
        encoding: The encoding wanted (a transport's, or OTLP/JSON for a file).

    Returns:
        The same spans, serialised in ``encoding``.
    """
    if request.encoding is encoding:
        return request
    if encoding is Encoding.JSON:
        payload = json.dumps(to_otlp_json(request), separators=_COMPACT).encode()
    else:
        payload = to_message(request).SerializeToString()
    return EncodedRequest(payload, request.spans, encoding, request.first_span)


def to_message(request: EncodedRequest) -> ExportTraceServiceRequest:
    """The request decoded by protobuf (to convert it, and for tests).

    Args:
        request: An encoded request, in either encoding.

    Returns:
        The ``ExportTraceServiceRequest`` message.
    """
    from google.protobuf.json_format import ParseDict
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    if request.encoding is Encoding.JSON:
        document = ids_to_base64(json.loads(request.payload))
        parsed: ExportTraceServiceRequest = ParseDict(document, ExportTraceServiceRequest())
        return parsed
    message: ExportTraceServiceRequest = ExportTraceServiceRequest.FromString(request.payload)
    return message


def from_message(message: ExportTraceServiceRequest) -> EncodedRequest:
    """A protobuf message as an encoded request in the protobuf wire format, its spans counted.

    Args:
        message: An ``ExportTraceServiceRequest``.

    Returns:
        The request, serialised by protobuf.
    """
    spans = sum(len(s.spans) for rs in message.resource_spans for s in rs.scope_spans)
    return EncodedRequest(message.SerializeToString(), spans, Encoding.PROTOBUF)


def from_otlp_json(document: dict[str, Any]) -> EncodedRequest:
    """An OTLP/JSON request read back (a line of a spill file) in the protobuf wire format.

    Going through protobuf checks the document and writes it as protobuf would,
    whoever wrote the line.

    Args:
        document: A parsed OTLP/JSON ``ExportTraceServiceRequest``.

    Returns:
        The request, serialised by protobuf.

    Raises:
        ValueError: If the document is not an ``ExportTraceServiceRequest`` (an id not in hex,
            a field that is not OTLP's); RecursionError if it is nested too deeply.
    """
    from google.protobuf.json_format import ParseDict, ParseError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    try:
        message = ParseDict(ids_to_base64(document), ExportTraceServiceRequest())
    except ParseError as exc:
        raise ValueError(str(exc)) from None
    return from_message(message)


def to_otlp_json(request: EncodedRequest | ExportTraceServiceRequest) -> dict[str, Any]:
    """Convert a request to OTLP/JSON, the format of the collector's file exporter.

    OTLP/JSON differs from protobuf's canonical JSON in two ways handled here:
    trace and span ids are hex strings rather than base64, and enums are integers.

    Args:
        request: The request, encoded or as a protobuf message.

    Returns:
        A JSON-serialisable dict (``{"resourceSpans": [...]}``).
    """
    if isinstance(request, EncodedRequest) and request.encoding is Encoding.JSON:
        parsed: dict[str, Any] = json.loads(request.payload)
        return parsed
    from google.protobuf.json_format import MessageToDict

    message = to_message(request) if isinstance(request, EncodedRequest) else request
    document: dict[str, Any] = MessageToDict(message, use_integers_for_enums=True)
    _hex_ids(document)
    return document


def _hex_ids(node: Any) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ID_FIELDS and isinstance(value, str):
                node[key] = base64.b64decode(value).hex()
            else:
                _hex_ids(value)
    elif isinstance(node, list):
        for item in node:
            _hex_ids(item)


def ids_to_base64(node: Any) -> Any:
    """OTLP/JSON writes ids in hex; protobuf's JSON mapping reads bytes as base64.

    Args:
        node: An OTLP/JSON document, or a part of one.

    Returns:
        A copy with every trace and span id in base64.
    """
    if isinstance(node, dict):
        return {
            key: base64.b64encode(bytes.fromhex(value)).decode()
            if key in ID_FIELDS and isinstance(value, str)
            else ids_to_base64(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [ids_to_base64(item) for item in node]
    return node
