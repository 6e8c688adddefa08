"""What an encoded export request is, and how spans are packed into requests a collector accepts; pure.

Shared by both encoders (:mod:`.protobuf` and :mod:`.otlp_json`): the two
encodings and their media types, the OTLP constants both write, the limits on
one request, and :func:`pack`, which groups encoded spans into requests under
those limits so each can be sent and acknowledged on its own. Nothing here
imports protobuf.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import Enum


class Encoding(Enum):
    """How a request is serialised; the value is its media type (the HTTP Content-Type)."""

    PROTOBUF = "application/x-protobuf"
    """The protobuf wire format (OTLP/gRPC, OTLP/HTTP protobuf)."""
    JSON = "application/json"
    """OTLP/JSON (OTLP/HTTP JSON, the collector's file exporter, --output and spill files)."""

    @property
    def media_type(self) -> str:
        """The media type of a request in this encoding."""
        media_type: str = self.value
        return media_type


@dataclass(frozen=True)
class EncodedRequest:
    """One serialised ``ExportTraceServiceRequest``, ready to send.

    Converting it to the other encoding needs protobuf: see :mod:`.convert`.

    Attributes:
        payload: The request, serialised as ``encoding`` says.
        spans: How many spans it holds.
        encoding: The protobuf wire format or OTLP/JSON.
        first_span: Where its spans start in the plan it was encoded from (``Plan.spans``), so
            spans that were not delivered can be encoded again for a spill file straight from
            the plan, far faster than converting; None for a request read back from a file.
    """

    payload: bytes
    spans: int
    encoding: Encoding
    first_span: int | None = None


SCOPE_NAME = "dbt-otel-replay"
"""The instrumentation scope of every span."""
SCHEMA_URL = "https://opentelemetry.io/schemas/1.44.0"
"""The semantic conventions the attributes follow (``schema_url`` of the resource and the scope)."""
FLAG_SAMPLED = 0x01
"""W3C trace flags: sampled (a replayed span is always recorded)."""
FLAG_HAS_IS_REMOTE = 0x100
"""OTLP span flags: whether the parent is remote is known."""
FLAG_IS_REMOTE = 0x200
"""OTLP span flags: the parent is remote (the upstream context the run joins)."""

MAX_REQUEST_BYTES = 4 * 1024 * 1024
"""The OpenTelemetry Collector's default limit for one received message (gRPC)."""
MAX_SPANS_PER_REQUEST = 8192
"""At most this many spans per request: the OpenTelemetry Collector's default batch size.
Some collectors (rotel, for one) drop a request they would have to split into several batches."""
REQUEST_HEADROOM_BYTES = 1024
"""Room left under the limit for the protobuf request's envelope (tags and length prefixes)."""


def pack(
    encoded_spans: Iterable[bytes], budget: int, most: int, *, separator: int = 0
) -> Iterator[list[bytes]]:
    """Group encoded spans, in order, into the batches that make one request each.

    Args:
        encoded_spans: Each span, encoded.
        budget: The most bytes a batch's spans may take, ``separator`` bytes between each
            two included; a span larger than that still goes, alone.
        most: The most spans in one batch.
        separator: Bytes the encoding puts between two spans (the comma of OTLP/JSON).

    Yields:
        Non-empty batches; one empty batch when there are no spans at all.
    """
    batch: list[bytes] = []
    size = 0
    yielded = False
    for span in encoded_spans:
        if batch and (size + len(span) + separator > budget or len(batch) >= most):
            yield batch
            yielded = True
            batch, size = [], 0
        batch.append(span)
        size += len(span) + separator
    if batch or not yielded:
        yield batch
