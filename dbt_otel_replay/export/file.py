"""OTLP/JSON lines files: the trace written with --output, and the spill file of spans not delivered.

Each line is one ``ExportTraceServiceRequest`` in OTLP/JSON (the format of the
OpenTelemetry Collector's file exporter), so a file can be read back by the
collector's otlpjsonfile receiver, by ``jq``, or by ``dbt-otel-replay --resend``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from .._files import STDOUT, open_output, write_output
from ..errors import ArtifactError, ExportError
from .convert import convert, from_otlp_json
from .requests import EncodedRequest, Encoding

__all__ = [
    "STDOUT",
    "SpillContent",
    "append_lines",
    "append_otlp_json",
    "open_trace",
    "otlp_json_lines",
    "read_otlp_json",
    "read_spill",
    "write_lines",
    "write_otlp_json",
]


def otlp_json_lines(requests: Iterable[EncodedRequest]) -> str:
    """Render requests as OTLP/JSON, one request per line.

    Args:
        requests: The encoded requests.

    Returns:
        The text, each line ending in a newline.
    """
    return "".join(_lines(requests))


def _lines(requests: Iterable[EncodedRequest]) -> Iterator[str]:
    for request in requests:
        yield convert(request, Encoding.JSON).payload.decode() + "\n"


def write_otlp_json(requests: Iterable[EncodedRequest], path: Path) -> None:
    """Write requests as OTLP/JSON lines, one at a time, to any output (see :func:`.._files.open_output`).

    Args:
        requests: The encoded requests (an iterator is consumed as it is written).
        path: A file (replaced atomically), ``Path("-")`` for standard output, a device, a FIFO
            or a symlink to one of them.

    Raises:
        ExportError: If the output cannot be written.
    """
    write_lines(_lines(requests), path)


def write_lines(lines: Iterable[str], path: Path) -> None:
    """Write OTLP/JSON lines, one at a time, to any output (see :func:`.._files.open_output`).

    Args:
        lines: The lines, each ending in a newline (an iterator is consumed as it is written).
        path: A file (replaced atomically), ``Path("-")`` for standard output, a device, a FIFO
            or a symlink to one of them.

    Raises:
        ExportError: If the output cannot be written.
    """
    try:
        write_output(path, lines)
    except OSError as exc:
        raise _cannot_write(path, exc) from None


@contextmanager
def open_trace(path: Path) -> Iterator[TextIO]:
    """Open a trace output once for several runs (a backfill), so a FIFO's reader sees one stream.

    Opening and completing the output (renaming a regular file into place) fail as
    :class:`ExportError`; errors inside the block are the caller's and pass unchanged.

    Args:
        path: As for :func:`write_lines`.

    Yields:
        The text handle to write each run's lines to.

    Raises:
        ExportError: If the output cannot be opened or completed.
    """
    inside = False
    try:
        with open_output(path) as handle:
            inside = True
            yield handle
            inside = False
    except OSError as exc:
        if inside:
            raise
        raise _cannot_write(path, exc) from None


def _cannot_write(path: Path, exc: OSError) -> ExportError:
    return ExportError(f"{path}: cannot write the trace: {exc.strerror or exc}")


def append_otlp_json(requests: Sequence[EncodedRequest], path: Path) -> None:
    """Append requests to an OTLP/JSON lines file and flush them to disk (for the spill file).

    Appending lets one spill file collect the spans of several failed runs. The append holds
    the file's lock (a ``resend`` of the file waits, and is waited for) and, if it fails (a
    full disk), leaves the file as it was: see :func:`.._files.open_output`.

    Args:
        requests: The encoded requests.
        path: The file; created with its directory when missing.

    Raises:
        OSError: If the file cannot be written.
    """
    append_lines(_lines(requests), path)


def append_lines(lines: Iterable[str], path: Path) -> None:
    """Append OTLP/JSON lines to a file and flush them to disk.

    Args:
        lines: The lines, each ending in a newline.
        path: The file (created with its directory when missing, synced to disk), a device,
            a FIFO or a symlink to one of them: never replaced.

    Raises:
        OSError: If the file cannot be written.
    """
    write_output(path, lines, append=True)


@dataclass(frozen=True)
class SpillContent:
    """What a spill file holds.

    Attributes:
        requests: One request per line, in the protobuf wire format.
        skipped: Why the last line was left out, when a write that failed part way cut it
            short (no newline at its end, and not OTLP/JSON); None when every line was read.
        lines: Each request's line as the file holds it (with its newline), so what is not
            delivered goes back into the file as it was, without converting it again.
    """

    requests: list[EncodedRequest]
    skipped: str | None = None
    lines: list[str] = field(default_factory=list)


def read_otlp_json(path: Path) -> list[EncodedRequest]:
    """Read an OTLP/JSON lines file back into export requests, every line of it.

    Args:
        path: A file written by --output or a spill file.

    Returns:
        One request per non-empty line, in the protobuf wire format (as protobuf read it).

    Raises:
        ArtifactError: If the file is missing or a line is not an OTLP/JSON trace request.
    """
    return _read(path, skip_cut_end=False).requests


def read_spill(path: Path) -> SpillContent:
    """Read a spill file back into export requests, leaving out a last line that was cut short.

    An append that failed part way (a full disk, before appends cut the file back, or a killed
    process) leaves a last line without its newline that is not OTLP/JSON: it holds no whole
    request, and refusing the file for it would keep every earlier span from being re-sent.
    Any other bad line is still an error.

    Args:
        path: A spill file (or any OTLP/JSON lines file).

    Returns:
        The requests, and why a cut-short last line was skipped, if one was.

    Raises:
        ArtifactError: If the file is missing or a whole line is not an OTLP/JSON trace request.
    """
    return _read(path, skip_cut_end=True)


def _read(path: Path, *, skip_cut_end: bool) -> SpillContent:
    try:
        data = path.read_bytes()
        tail = b""
        if skip_cut_end and data and not data.endswith(b"\n"):  # split off the line cut short, if any
            cut = data.rfind(b"\n") + 1
            data, tail = data[:cut], data[cut:]
        lines = data.decode("utf-8").splitlines()
    except OSError as exc:  # the path is in the message already: only the reason
        raise ArtifactError(path, f"cannot be read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ArtifactError(path, f"cannot be read: not UTF-8 (byte {exc.start})") from None
    requests, kept = [], []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            requests.append(_request(line))
        except (ValueError, RecursionError) as exc:
            raise ArtifactError(path, f"line {number} is not an OTLP/JSON trace request ({exc})") from None
        kept.append(line + "\n")
    if tail.strip():
        try:
            last = tail.decode("utf-8")
            requests.append(_request(last))  # a last line without its newline, but whole
            kept.append(last + "\n")
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError: cut inside a character
            number = data.count(b"\n") + 1
            skipped = (
                f"{path}: skipped line {number}, cut short by a write that failed part way "
                "(no newline at its end; not OTLP/JSON)"
            )
            return SpillContent(requests, skipped, kept)
    return SpillContent(requests, lines=kept)


def _request(line: str) -> EncodedRequest:
    """One line of OTLP/JSON as a request; ValueError (or RecursionError) if it is not one."""
    document = json.loads(line)
    if not isinstance(document, dict) or "resourceSpans" not in document:
        raise ValueError("no resourceSpans")
    return from_otlp_json(document)
