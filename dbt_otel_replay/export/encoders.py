"""Which writer encodes a plan for each encoding: the one table, read with the transport's encoding.

A protocol names its transport (:data:`~.transport.TRANSPORTS`), the transport declares the
encoding it sends, and this table names the writer of that encoding.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from ..plan import Plan
from ..spans import AttributeValue
from .otlp_json import iter_json_requests
from .protobuf import iter_requests
from .requests import EncodedRequest, Encoding

Encoder = Callable[[Plan, Mapping[str, AttributeValue]], Iterator[EncodedRequest]]
"""A plan and its resource in; its requests out, one at a time, each under the size limits."""

ENCODERS: Mapping[Encoding, Encoder] = {
    Encoding.PROTOBUF: iter_requests,
    Encoding.JSON: iter_json_requests,
}
"""Each encoding's writer."""
