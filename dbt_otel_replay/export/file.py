"""Write a trace as OTLP/JSON lines: the format of the OpenTelemetry Collector's file exporter.

Each line is one ``ExportTraceServiceRequest`` in OTLP/JSON, so the file can
be read back by the collector's otlpjsonfile receiver, by ``jq``, or by the tests.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from .._files import write_text_atomically
from ..errors import ExportError
from .encode import to_otlp_json

STDOUT = Path("-")
"""The path that means standard output."""


def otlp_json_lines(requests: Sequence[ExportTraceServiceRequest]) -> str:
    """Render requests as OTLP/JSON, one request per line.

    Args:
        requests: The encoded requests.

    Returns:
        The text, each line ending in a newline.
    """
    return "".join(json.dumps(to_otlp_json(r), separators=(",", ":")) + "\n" for r in requests)


def write_otlp_json(requests: Sequence[ExportTraceServiceRequest], path: Path) -> None:
    """Write requests as OTLP/JSON lines to a file (atomically) or to stdout (``-``).

    Args:
        requests: The encoded requests.
        path: The file, or ``Path("-")`` for standard output.

    Raises:
        ExportError: If the file cannot be written.
    """
    text = otlp_json_lines(requests)
    if path == STDOUT:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    try:
        write_text_atomically(path, text)
    except OSError as exc:
        raise ExportError(f"{path}: cannot write the trace: {exc.strerror or exc}") from None
