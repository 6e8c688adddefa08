"""Atomic file writes shared by the modules that write results (trace files, carrier files)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path


def write_text_atomically(path: Path, text: str | Iterable[str]) -> None:
    """Write a text file so that a reader sees either the old file or the whole new one.

    Args:
        path: The file; its directory is created when missing.
        text: The content, whole or in pieces (written as they come, so they need not fit in memory).

    Raises:
        OSError: If the directory or file cannot be written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        "w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.", delete=False
    ) as handle:
        try:
            handle.writelines([text] if isinstance(text, str) else text)
        except BaseException:
            os.unlink(handle.name)
            raise
    os.chmod(handle.name, 0o644)
    os.replace(handle.name, path)
