"""The timeline both charts draw (the terminal waterfall and the HTML Gantt chart). Pure.

Lanes (one per dbt thread, packed into rows of nodes that do not overlap), the
time scale (the nodes' window, round tick steps, tick labels), which node a
shared cell shows (critical-path marks and status ranks, from the one status
table in :mod:`dbt_otel_replay.statuses`), and the text helpers a terminal
needs (control characters out, display width, cutting to a width).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..statuses import CRITICAL_RANK
from .node import Node

_DIGITS = re.compile(r"(\d+)")


def thread_sort_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """Order thread names naturally (``Thread-2`` before ``Thread-10``).

    Args:
        name: A thread name.

    Returns:
        A sort key.
    """
    parts = _DIGITS.split(name.casefold())
    return tuple((1, int(p)) if p.isdigit() else (0, p) for p in parts)


@dataclass(frozen=True)
class Lane:
    """One dbt thread's nodes, packed into rows of nodes that do not overlap in time.

    Attributes:
        thread: The thread's name.
        rows: The rows, each in start order.
        merged: How many nodes overlapped every allowed row and were put in the last one.
    """

    thread: str
    rows: tuple[tuple[Node, ...], ...]
    merged: int = 0

    @property
    def nodes(self) -> int:
        """How many nodes ran on the thread."""
        return sum(len(row) for row in self.rows)


def thread_lanes(nodes: Iterable[Node], *, max_rows: int) -> tuple[Lane, ...]:
    """Group nodes by thread and pack each thread's nodes into rows.

    Args:
        nodes: Nodes.
        max_rows: The most rows a lane may take (at least 1).

    Returns:
        One lane per thread, in natural thread-name order.
    """
    by_thread: dict[str, list[Node]] = {}
    for node in nodes:
        by_thread.setdefault(node.thread, []).append(node)
    lanes = []
    for thread in sorted(by_thread, key=thread_sort_key):
        ordered = sorted(by_thread[thread], key=lambda n: (n.start, n.end, n.span.name))
        rows: list[list[Node]] = []
        ends: list[int] = []
        merged = 0
        for node in ordered:
            row = next((i for i, end in enumerate(ends) if end <= node.start), None)
            if row is None:
                if len(rows) < max(max_rows, 1):
                    rows.append([])
                    ends.append(0)
                else:
                    merged += 1
                row = len(rows) - 1
            rows[row].append(node)
            ends[row] = max(ends[row], node.end)
        lanes.append(Lane(thread, tuple(tuple(r) for r in rows), merged))
    return tuple(lanes)


def node_window(nodes: Sequence[Node]) -> tuple[int, int]:
    """The time the nodes span, from the first start to the last end.

    Args:
        nodes: Nodes (at least one).

    Returns:
        Start and end in Unix nanoseconds; the end is after the start even when every node is instant.
    """
    start = min(n.start for n in nodes)
    end = max(n.end for n in nodes)
    return start, max(end, start + 1)


def nice_step(span_seconds: float, ticks: float) -> float:
    """A round tick interval (1, 2 or 5 times a power of ten) giving at most about ``ticks`` ticks.

    Args:
        span_seconds: The axis length.
        ticks: How many intervals fit.

    Returns:
        The interval in seconds.
    """
    raw = span_seconds / max(ticks, 1.0)
    magnitude = 10.0 ** math.floor(math.log10(raw)) if raw > 0 else 1e-3
    for factor in (1.0, 2.0, 5.0, 10.0):
        if factor * magnitude >= raw * (1 - 1e-9):
            return factor * magnitude
    return 10.0 * magnitude  # pragma: no cover


def seconds_label(value: float, step: float) -> str:
    """A tick label with as many decimals as the step needs (``0.5s``, ``10s``).

    Args:
        value: Seconds.
        step: The tick interval.

    Returns:
        The label.
    """
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) if step < 1 else 0
    return f"{value:.{decimals}f}s"


def shows_critical(node: Node) -> bool:
    """Whether a chart marks the node as critical: a warning or failure keeps its own look.

    Args:
        node: A node.

    Returns:
        True for a node on the critical path whose status ranks below the critical mark.
    """
    return node.critical and node.category.rank < CRITICAL_RANK


def cell_rank(node: Node) -> int:
    """Which node a shared cell shows: the highest rank wins (a failure, a warning, the critical path...).

    Args:
        node: A node.

    Returns:
        Its status's rank, raised to :data:`~dbt_otel_replay.statuses.CRITICAL_RANK` when marked critical.
    """
    return CRITICAL_RANK if shows_critical(node) else node.category.rank


def clean(text: str) -> str:
    """Replace control characters (escape sequences, newlines) in dbt-provided text.

    Args:
        text: Any text from the artifacts.

    Returns:
        The text with each control character as ``?`` and runs of whitespace as one space.
    """
    text = " ".join(text.split())
    return "".join("?" if unicodedata.category(c).startswith("C") else c for c in text)


def display_width(text: str) -> int:
    """How many terminal columns text takes (wide East Asian characters take two).

    Args:
        text: Text without escape sequences.

    Returns:
        The column count.
    """
    return sum(char_width(c) for c in text)


def char_width(char: str) -> int:
    """How many terminal columns one character takes (0 for a combining mark, 2 for a wide one).

    Args:
        char: One character.

    Returns:
        0, 1 or 2.
    """
    if unicodedata.combining(char):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def fit(text: str, width: int, *, keep_end: bool = False) -> str:
    """Cut text to ``width`` columns, marking the cut with ``...``.

    Args:
        text: Text without escape sequences.
        width: The columns it may take.
        keep_end: Keep the end rather than the start (unique ids differ at their end).

    Returns:
        The text, or its cut.
    """
    if display_width(text) <= width:
        return text
    if width <= 3:
        return "." * max(width, 0)
    chars = list(reversed(text)) if keep_end else list(text)
    kept: list[str] = []
    used = 0
    for char in chars:
        if used + char_width(char) > width - 3:
            break
        kept.append(char)
        used += char_width(char)
    body = "".join(reversed(kept)) if keep_end else "".join(kept)
    return "..." + body if keep_end else body + "..."


def pad(text: str, width: int) -> str:
    """Pad text with spaces to ``width`` columns.

    Args:
        text: Text no wider than ``width``.
        width: The columns it takes afterwards.

    Returns:
        The padded text.
    """
    return text + " " * (width - display_width(text))
