"""The protobuf wire format of OTLP trace export requests, written straight from the planned spans; pure.

The few OTLP messages a trace needs (request, resource spans, scope spans,
span, event, link, status, key-value) are written here directly, field by
field in field-number order, as protobuf itself would serialise them; building
opentelemetry-proto message objects first costs more than planning the trace.
Spans are packed (:func:`~.requests.pack`) into as few requests as fit under
the collector's limits. Nothing here imports protobuf.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Mapping

from .. import __version__
from ..attributes import LOW_CARDINALITY_KEYS
from ..plan import Plan
from ..spans import AttributeValue, PlannedEvent, PlannedLink, PlannedSpan
from .requests import (
    FLAG_HAS_IS_REMOTE,
    FLAG_IS_REMOTE,
    FLAG_SAMPLED,
    MAX_REQUEST_BYTES,
    MAX_SPANS_PER_REQUEST,
    REQUEST_HEADROOM_BYTES,
    SCHEMA_URL,
    SCOPE_NAME,
    EncodedRequest,
    Encoding,
    pack,
)

# Field tags: (field number << 3) | wire type (0 varint, 1 fixed64, 2 length-delimited, 5 fixed32).
_REQUEST_RESOURCE_SPANS = b"\x0a"
_RESOURCE_SPANS_RESOURCE, _RESOURCE_SPANS_SCOPE_SPANS, _RESOURCE_SPANS_SCHEMA_URL = b"\x0a", b"\x12", b"\x1a"
_RESOURCE_ATTRIBUTES = b"\x0a"
_SCOPE_SPANS_SCOPE, _SCOPE_SPANS_SPANS, _SCOPE_SPANS_SCHEMA_URL = b"\x0a", b"\x12", b"\x1a"
_SCOPE_NAME, _SCOPE_VERSION = b"\x0a", b"\x12"
_SPAN_TRACE_ID, _SPAN_SPAN_ID, _SPAN_TRACE_STATE, _SPAN_PARENT_SPAN_ID = b"\x0a", b"\x12", b"\x1a", b"\x22"
_SPAN_NAME, _SPAN_KIND = b"\x2a", b"\x30"
_SPAN_START, _SPAN_END = b"\x39", b"\x41"
_SPAN_ATTRIBUTE, _SPAN_EVENT, _SPAN_LINK, _SPAN_STATUS = b"\x4a", b"\x5a", b"\x6a", b"\x7a"
_SPAN_FLAGS = b"\x85\x01"
_EVENT_TIME, _EVENT_NAME, _EVENT_ATTRIBUTE = b"\x09", b"\x12", b"\x1a"
_LINK_TRACE_ID, _LINK_SPAN_ID, _LINK_ATTRIBUTE, _LINK_FLAGS = b"\x0a", b"\x12", b"\x22", b"\x35"
_STATUS_MESSAGE, _STATUS_CODE = b"\x12", b"\x18"
_KEY_VALUE_KEY, _KEY_VALUE_VALUE = b"\x0a", b"\x12"
_ANY_STRING, _ANY_BOOL, _ANY_INT, _ANY_DOUBLE, _ANY_ARRAY = b"\x0a", b"\x10", b"\x18", b"\x21", b"\x2a"
_ARRAY_VALUE = b"\x0a"
_ID_LENGTH = {8: b"\x08", 16: b"\x10"}

_fixed64 = struct.Struct("<Q").pack
_fixed32 = struct.Struct("<I").pack
_double = struct.Struct("<d").pack
_SMALL_VARINTS = tuple(bytes((n,)) for n in range(128))
_STRING_HEADS = tuple(bytes((n + 2,)) + _ANY_STRING + bytes((n,)) for n in range(126))
"""For a string of n < 126 bytes: the AnyValue's length, string_value's tag and the string's length."""


def encode_requests(
    plan: Plan,
    resource: Mapping[str, AttributeValue],
    *,
    max_request_bytes: int = MAX_REQUEST_BYTES,
    max_spans_per_request: int = MAX_SPANS_PER_REQUEST,
) -> list[EncodedRequest]:
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
) -> Iterator[EncodedRequest]:
    """Encode every span of a plan into export requests of bounded size, one request at a time.

    Args:
        plan: The spans to encode.
        resource: The resource attributes (service.name and the like).
        max_request_bytes: The largest serialised request to produce (a single span larger
            than that still goes out, alone).
        max_spans_per_request: The most spans to put in one request.

    Yields:
        The requests, in plan order (parents before children); together they
        hold every span exactly once. Each is complete when yielded.
    """
    encoder = _SpanEncoder(plan)
    attributes = b"".join(_key_value(_RESOURCE_ATTRIBUTES, k, v) for k, v in resource.items())
    head = _field(_RESOURCE_SPANS_RESOURCE, attributes)
    name_and_version = _string(_SCOPE_NAME, SCOPE_NAME) + _string(_SCOPE_VERSION, __version__)
    scope = _field(_SCOPE_SPANS_SCOPE, name_and_version)
    # schema_url follows the spans in ScopeSpans and the scope spans in ResourceSpans (field 3 of each)
    scope_schema = _string(_SCOPE_SPANS_SCHEMA_URL, SCHEMA_URL)
    resource_schema = _string(_RESOURCE_SPANS_SCHEMA_URL, SCHEMA_URL)
    budget = (
        max_request_bytes
        - REQUEST_HEADROOM_BYTES
        - len(head)
        - len(scope)
        - len(scope_schema)
        - len(resource_schema)
    )
    spans = (encoder.span(planned) for planned in plan.spans)
    first = 0
    for batch in pack(spans, budget, max_spans_per_request):
        scope_spans = _field(_RESOURCE_SPANS_SCOPE_SPANS, b"".join([scope, *batch, scope_schema]))
        yield EncodedRequest(
            _field(_REQUEST_RESOURCE_SPANS, head + scope_spans + resource_schema),
            len(batch),
            Encoding.PROTOBUF,
            first,
        )
        first += len(batch)


class _SpanEncoder:
    """Writes planned spans as ``ScopeSpans.spans`` fields, reusing the key-values that repeat."""

    def __init__(self, plan: Plan) -> None:
        self.trace_id = _field(_SPAN_TRACE_ID, bytes.fromhex(plan.trace_id))
        self.trace_state = _string(_SPAN_TRACE_STATE, plan.context.tracestate or "")
        self.remote_parent = plan.invocation.parent_span_id
        self._shared: dict[tuple[str, AttributeValue], bytes] = {}
        self._keys: dict[str, bytes] = {}

    def span(self, span: PlannedSpan) -> bytes:
        """One span, encoded with its field tag and length (an element of ``ScopeSpans.spans``)."""
        parts = [self.trace_id, _SPAN_SPAN_ID, b"\x08", bytes.fromhex(span.span_id)]
        parts.append(self.trace_state)
        flags = FLAG_SAMPLED | FLAG_HAS_IS_REMOTE
        if span.parent_span_id:
            parts += (_SPAN_PARENT_SPAN_ID, b"\x08", bytes.fromhex(span.parent_span_id))
            if span.parent_span_id == self.remote_parent:
                flags |= FLAG_IS_REMOTE
        parts += (_string(_SPAN_NAME, span.name), _SPAN_KIND, _SMALL_VARINTS[span.kind])
        if span.start_time_unix_nano:
            parts += (_SPAN_START, _fixed64(span.start_time_unix_nano))
        if span.end_time_unix_nano:
            parts += (_SPAN_END, _fixed64(span.end_time_unix_nano))
        self._attributes(parts, span.attributes)
        for event in span.events:
            parts.append(_field(_SPAN_EVENT, _event(event)))
        for link in span.links:
            parts.append(_field(_SPAN_LINK, _link(link)))
        if span.status or span.status_message:
            status = _string(_STATUS_MESSAGE, span.status_message)
            if span.status:
                status += _STATUS_CODE + _varint(int(span.status))
            parts.append(_field(_SPAN_STATUS, status))
        parts += (_SPAN_FLAGS, _fixed32(flags))
        body = b"".join(parts)
        return b"".join((_SCOPE_SPANS_SPANS, _varint(len(body)), body))

    def _attributes(self, parts: list[bytes], attributes: Mapping[str, AttributeValue]) -> None:
        """Append a span's attributes; short strings (the commonest case) written inline."""
        shared, keys, heads, small = self._shared, self._keys, _STRING_HEADS, _SMALL_VARINTS
        for key, value in attributes.items():
            if key in LOW_CARDINALITY_KEYS and isinstance(value, (str, tuple)):
                encoded = shared.get((key, value))
                if encoded is None:
                    encoded = shared[(key, value)] = _key_value(_SPAN_ATTRIBUTE, key, value)
                parts.append(encoded)
                continue
            if type(value) is str:
                key_field = keys.get(key)
                if key_field is None:  # the key's field, then the value's tag
                    key_field = keys[key] = _string(_KEY_VALUE_KEY, key) + _KEY_VALUE_VALUE
                text = value.encode("utf-8", "replace")
                size = len(key_field) + 3 + len(text)  # KeyValue: key, value tag, AnyValue's length,
                if size < 128:  # ... string_value's tag and length, the text; one-byte lengths
                    parts += (_SPAN_ATTRIBUTE, small[size], key_field, heads[len(text)], text)
                    continue
            parts.append(_key_value(_SPAN_ATTRIBUTE, key, value))


def _event(event: PlannedEvent) -> bytes:
    time = _EVENT_TIME + _fixed64(event.time_unix_nano) if event.time_unix_nano else b""
    attributes = b"".join(_key_value(_EVENT_ATTRIBUTE, k, v) for k, v in event.attributes.items())
    return time + _string(_EVENT_NAME, event.name) + attributes


def _link(link: PlannedLink) -> bytes:
    attributes = b"".join(_key_value(_LINK_ATTRIBUTE, k, v) for k, v in link.attributes.items())
    return b"".join(
        (
            _id_field(_LINK_TRACE_ID, link.trace_id),
            _id_field(_LINK_SPAN_ID, link.span_id),
            attributes,
            _LINK_FLAGS,
            _fixed32(FLAG_SAMPLED | FLAG_HAS_IS_REMOTE),
        )
    )


def _key_value(tag: bytes, key: str, value: AttributeValue) -> bytes:
    """A ``KeyValue`` as the field ``tag`` (a span's, event's, link's or resource's attribute)."""
    return _field(tag, _string(_KEY_VALUE_KEY, key) + _field(_KEY_VALUE_VALUE, _any_value(value)))


def _any_value(value: AttributeValue) -> bytes:
    # The value is a oneof: it is written even when it is the type's default ("", 0, false).
    if isinstance(value, str):
        encoded = value.encode("utf-8", "replace")
        return b"".join((_ANY_STRING, _varint(len(encoded)), encoded))
    if isinstance(value, bool):
        return _ANY_BOOL + (b"\x01" if value else b"\x00")
    if isinstance(value, int):
        return _ANY_INT + _varint(value & 0xFFFF_FFFF_FFFF_FFFF)  # int64: two's complement
    if isinstance(value, float):
        return _ANY_DOUBLE + _double(value)
    values = b"".join(_field(_ARRAY_VALUE, _any_value(item)) for item in value)
    return _field(_ANY_ARRAY, values)


def _id_field(tag: bytes, hex_id: str) -> bytes:
    raw = bytes.fromhex(hex_id)
    return b"".join((tag, _ID_LENGTH.get(len(raw)) or _varint(len(raw)), raw)) if raw else b""


def _string(tag: bytes, value: str) -> bytes:
    """A string field; empty strings are left out, as protobuf does for proto3 scalars."""
    if not value:
        return b""
    encoded = value.encode("utf-8", "replace")
    return b"".join((tag, _varint(len(encoded)), encoded))


def _field(tag: bytes, body: bytes) -> bytes:
    """A length-delimited field (an embedded message or bytes)."""
    return b"".join((tag, _varint(len(body)), body))


def _varint(value: int) -> bytes:
    if value < 128:
        return _SMALL_VARINTS[value]
    out = bytearray()
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)
