"""Finding dbt's log files and reading them as blocks of whole lines; nothing here parses a line.

dbt appends every invocation to ``logs/dbt.log`` and rotates it at 10 MB (``dbt.log.1`` ...
older), and people gzip old logs or copy them from Windows machines. This module finds the
files in age order, refuses what is not a regular file (FIFOs, devices, directories) with
:class:`~dbt_otel_replay.errors.ArtifactError`, decompresses gzip (found by its magic bytes,
whatever the name), drops a UTF-8 BOM, and reads in large chunks that are cut at the last line
end, so that the parsers only ever see whole lines and memory stays bounded by the chunk and
the longest line (cut at :data:`MAX_LINE`), never by the file's size.
"""

from __future__ import annotations

import gzip
import os
import re
import stat
import zlib
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from .._files import file_kind
from ..errors import ArtifactError
from ..terminal import escape

LOG_FILENAME = "dbt.log"
CHUNK = 1 << 19
"""Bytes read at a time (512 KiB): per-chunk work is negligible from 256 KiB on; chunks of 2 MiB and
more measured slower (each fresh allocation that size is mapped and faulted in anew, out of the cache)."""
MAX_LINE = 1 << 22
"""A line longer than this (4 MiB) is cut: nothing dbt logs needs more, and memory stays bounded."""
HEAD = 1 << 20
"""How much of a file's first chunk is looked at to recognise a dbt < 1.0 log."""
_GZIP_MAGIC = b"\x1f\x8b"
_BOM = b"\xef\xbb\xbf"
_ROTATED = re.compile(re.escape(LOG_FILENAME) + r"(?:\.(\d{1,6}))?(\.gz)?\Z")

BLOCK = 0
"""A block of whole lines."""
OVERLONG = 1
"""The first :data:`MAX_LINE` bytes of a line too long to keep, as one line."""
TAIL = 2
"""The file's last line, which had no line end."""


def find_log_files(target_dir: Path, explicit: Path | None = None) -> list[Path]:
    """The log files to read, oldest first.

    Args:
        target_dir: The run's target directory; by default its sibling ``logs/`` is read.
        explicit: A log file (read alone) or a logs directory given instead.

    Returns:
        ``dbt.log`` after its rotated siblings ``dbt.log.N`` ... ``dbt.log.1`` (each possibly
        ``.gz``), or ``[]`` when there is none.
    """
    if explicit is not None and not explicit.is_dir():
        return [explicit] if explicit.exists() else []
    directory = explicit if explicit is not None else target_dir.parent / "logs"
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    rotated: dict[int, str] = {}
    for name in names:
        match = _ROTATED.match(name)
        if match is None:
            continue
        number = int(match.group(1)) if match.group(1) else 0
        if number not in rotated or not match.group(2):  # a plain file wins over its .gz copy
            rotated[number] = name
    return [directory / rotated[number] for number in sorted(rotated, reverse=True)]


@contextmanager
def open_log(path: Path) -> Iterator[IO[bytes]]:
    """Open a log file for binary reading, decompressing gzip (found by its magic bytes).

    Raises:
        ArtifactError: When the path is missing, not a regular file, or cannot be read.
    """
    try:
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):
            if stat.S_ISDIR(mode):
                raise ArtifactError(path, "is a directory, not a dbt log")
            kind = file_kind(mode)
            raise ArtifactError(
                path, "is not a regular file" + (f" ({kind})" if kind.startswith("a ") else "")
            )
        raw = path.open("rb")
    except FileNotFoundError:
        raise ArtifactError(path, "not found") from None
    except OSError as exc:
        raise ArtifactError(path, f"cannot be read: {exc.strerror or exc}") from None
    with raw:
        try:
            magic = raw.read(2)
            raw.seek(0)
        except OSError as exc:
            raise ArtifactError(path, f"cannot be read: {exc.strerror or exc}") from None
        if magic == _GZIP_MAGIC:
            with gzip.GzipFile(fileobj=raw, mode="rb") as unpacked:
                yield unpacked  # type: ignore[misc]  # a GzipFile reads bytes like any IO[bytes]
        else:
            yield raw


class LineBlocks:
    """One file read as blocks of whole lines (see :meth:`blocks`)."""

    def __init__(self, path: Path, notes: list[str]) -> None:
        self.path = path
        self.notes = notes
        self.head = b""
        """The start of the file (BOM removed), up to :data:`HEAD` bytes."""
        self.cut_lines = 0

    def blocks(
        self, searching: Callable[[], bool], keep: int
    ) -> Generator[tuple[bytes, int, int], None, None]:
        r"""Yield ``(block, end, kind)``: ``block[:end]`` is whole lines, each ending with ``\n``.

        Args:
            searching: Whether the invocation is still being looked for: a line without end
                is then kept by its tail (where an invocation id may begin), else by its head.
            keep: How much of such a tail to keep while searching.

        Raises:
            ArtifactError: When the file cannot be opened or read (corrupt gzip data is a note).
        """
        path = self.path
        with open_log(path) as handle:
            read = handle.read
            first = True
            leftover = b""
            while True:
                try:
                    chunk = read(CHUNK)
                except (OSError, EOFError, zlib.error) as exc:
                    if isinstance(exc, OSError) and not isinstance(exc, gzip.BadGzipFile):
                        raise ArtifactError(path, f"cannot be read: {exc.strerror or exc}") from None
                    self.notes.append(
                        f"{escape(path.name)}: compressed data is corrupt after some point; read up to there"
                    )
                    break
                if not chunk:
                    break
                if first:
                    first = False
                    if chunk.startswith(_BOM):
                        chunk = chunk[len(_BOM) :]
                    self.head = chunk[:HEAD]
                buffer = leftover + chunk if leftover else chunk
                cut = buffer.rfind(b"\n") + 1
                if cut == 0:
                    if searching():
                        leftover = buffer[-keep:] if len(buffer) > MAX_LINE else buffer
                    elif len(buffer) > MAX_LINE:
                        self.cut_lines += 1
                        leftover = b""
                        yield buffer[:MAX_LINE] + b"\n", MAX_LINE + 1, OVERLONG
                    else:
                        leftover = buffer
                    continue
                leftover = buffer[cut:]
                yield buffer, cut, BLOCK
            if leftover:
                yield leftover + b"\n", len(leftover) + 1, TAIL
