"""A terminal waterfall of a planned run: one lane per dbt thread, nodes as bars on a time axis. Pure.

Each lane is one row per node that ran at the same time as another on the same
thread (normally one row: a dbt thread runs one node at a time), capped at
:data:`MAX_ROWS_PER_LANE`; nodes beyond the cap are drawn in the lane's last
row and counted. Where several nodes share a character cell, the one that
matters most is drawn: a failure over a warning over the critical path over a
success over a skip, so a 5,000-node run stays a few lines per thread and still
shows every failure. The glyphs tell the status apart without colour; colour
(ANSI) is added on top when asked for.

The lane and status helpers here are shared with the HTML report.
"""

from __future__ import annotations

import math
import re
import textwrap
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .analysis import UNKNOWN_THREAD, CriticalStep, RunAnalysis
from .plan import Plan, PlannedSpan, status_counts
from .timestamps import NANOS_PER_SECOND

MIN_WIDTH = 40
"""The narrowest waterfall :func:`render_waterfall` draws."""
MAX_ROWS_PER_LANE = 4
"""Rows a thread's lane may take in the waterfall before overlapping nodes are merged."""
CRITICAL_SHOWN = 20
"""Critical-path steps listed under the chart before the middle of the path is elided."""

OK, WARN, FAIL, SKIPPED, OTHER = "ok", "warn", "fail", "skipped", "other"
_KINDS = {
    "success": OK,
    "pass": OK,
    "warn": WARN,
    "partial success": WARN,
    "error": FAIL,
    "fail": FAIL,
    "runtime error": FAIL,
    "skipped": SKIPPED,
}
# which node a shared cell shows: the higher rank wins
_RANKS = {SKIPPED: 0, OTHER: 1, OK: 2, WARN: 4, FAIL: 5}
_CRITICAL_RANK = 3
_FILL = {OK: "=", WARN: "~", FAIL: "X", SKIPPED: ".", OTHER: "-"}
_CRITICAL_FILL = "#"
_INSTANT = "|"
_SKIP_MARK = "o"
_SGR = {OK: "32", WARN: "33", FAIL: "31", SKIPPED: "2", OTHER: "36"}
_CRITICAL_SGR = "1;7"
_RESET = "\x1b[0m"
_WORKER_SUFFIX = re.compile(r"\s*\(worker\)$")
_DIGITS = re.compile(r"(\d+)")


def status_kind(status: object) -> str:
    """Classify a dbt status for drawing.

    Args:
        status: A node's ``dbt.status`` attribute.

    Returns:
        ``ok`` (success, pass), ``warn``, ``fail`` (error, fail, runtime error),
        ``skipped`` or ``other`` (no-op, reused, anything else).
    """
    return _KINDS.get(str(status), OTHER)


def thread_of(span: PlannedSpan) -> str:
    """The dbt thread a node ran on, as the analysis names it.

    Args:
        span: A node span.

    Returns:
        Its ``dbt.thread_id``, or ``(no thread)``.
    """
    return str(span.attributes.get("dbt.thread_id") or UNKNOWN_THREAD)


def is_critical(span: PlannedSpan) -> bool:
    """Whether a node is on the run's critical path.

    Args:
        span: A node span.

    Returns:
        True when the planner marked it ``dbt.critical_path``.
    """
    return span.attributes.get("dbt.critical_path") is True


def short_name(span: PlannedSpan) -> str:
    """A node's short name (``stg_orders``), for labels that have little room.

    Args:
        span: A node span.

    Returns:
        The manifest name, or the unique id's last part.
    """
    name = span.attributes.get("dbt.node.name")
    return str(name) if name else span.name.rsplit(".", 1)[-1]


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
    rows: tuple[tuple[PlannedSpan, ...], ...]
    merged: int = 0

    @property
    def nodes(self) -> int:
        """How many nodes ran on the thread."""
        return sum(len(row) for row in self.rows)


def thread_lanes(nodes: Iterable[PlannedSpan], *, max_rows: int) -> tuple[Lane, ...]:
    """Group nodes by thread and pack each thread's nodes into rows.

    Args:
        nodes: Node spans.
        max_rows: The most rows a lane may take (at least 1).

    Returns:
        One lane per thread, in natural thread-name order.
    """
    by_thread: dict[str, list[PlannedSpan]] = {}
    for span in nodes:
        by_thread.setdefault(thread_of(span), []).append(span)
    lanes = []
    for thread in sorted(by_thread, key=thread_sort_key):
        spans = sorted(
            by_thread[thread], key=lambda s: (s.start_time_unix_nano, s.end_time_unix_nano, s.name)
        )
        rows: list[list[PlannedSpan]] = []
        ends: list[int] = []
        merged = 0
        for span in spans:
            row = next((i for i, end in enumerate(ends) if end <= span.start_time_unix_nano), None)
            if row is None:
                if len(rows) < max(max_rows, 1):
                    rows.append([])
                    ends.append(0)
                else:
                    merged += 1
                row = len(rows) - 1
            rows[row].append(span)
            ends[row] = max(ends[row], span.end_time_unix_nano)
        lanes.append(Lane(thread, tuple(tuple(r) for r in rows), merged))
    return tuple(lanes)


def node_window(nodes: Sequence[PlannedSpan]) -> tuple[int, int]:
    """The time the nodes span, from the first start to the last end.

    Args:
        nodes: Node spans (at least one).

    Returns:
        Start and end in Unix nanoseconds; the end is after the start even when every node is instant.
    """
    start = min(s.start_time_unix_nano for s in nodes)
    end = max(s.end_time_unix_nano for s in nodes)
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
    return sum(_char_width(c) for c in text)


def _char_width(char: str) -> int:
    if unicodedata.combining(char):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def _fit(text: str, width: int, *, keep_end: bool = False) -> str:
    """Cut text to ``width`` columns, marking the cut with ``...``."""
    if display_width(text) <= width:
        return text
    if width <= 3:
        return "." * max(width, 0)
    chars = list(reversed(text)) if keep_end else list(text)
    kept: list[str] = []
    used = 0
    for char in chars:
        if used + _char_width(char) > width - 3:
            break
        kept.append(char)
        used += _char_width(char)
    body = "".join(reversed(kept)) if keep_end else "".join(kept)
    return "..." + body if keep_end else body + "..."


@dataclass
class _Cell:
    char: str = " "
    style: str | None = None
    rank: int = -1


class _Canvas:
    """The chart part of one lane row: cells with a glyph, a style and the rank of the node drawn."""

    def __init__(self, width: int) -> None:
        self.cells = [_Cell() for _ in range(width)]

    def paint(self, column: int, char: str, style: str, rank: int) -> None:
        cell = self.cells[column]
        if rank >= cell.rank:
            cell.char, cell.style, cell.rank = char, style, rank

    def text(self, start: int, text: str) -> None:
        """Write text over cells already painted, in their style (a bar's name)."""
        for offset, char in enumerate(text):
            self.cells[start + offset].char = char

    def render(self, color: bool) -> str:
        cells = list(self.cells)
        while cells and cells[-1].style is None:
            cells.pop()
        if not color:
            return "".join(c.char for c in cells)
        out: list[str] = []
        current: str | None = None
        for cell in cells:
            if cell.style != current:
                out.append(_RESET if cell.style is None else f"\x1b[0;{cell.style}m")
                current = cell.style
            out.append(cell.char)
        if current is not None:
            out.append(_RESET)
        return "".join(out)


@dataclass(frozen=True)
class _Axis:
    start: int
    span: int
    columns: int

    def column(self, nanos: int) -> int:
        return min(max((nanos - self.start) * self.columns // self.span, 0), self.columns - 1)

    def end_column(self, nanos: int) -> int:
        """The last column a bar ending at ``nanos`` covers."""
        exact = -(-(nanos - self.start) * self.columns // self.span)  # ceiling
        return min(max(exact - 1, 0), self.columns - 1)


def render_waterfall(plan: Plan, analysis: RunAnalysis, *, width: int, color: bool) -> str:
    """Draw the run as a waterfall: one lane per dbt thread, nodes as bars on a time axis.

    Bars show status by glyph (``=`` success or pass, ``~`` warn, ``X`` error, fail or
    runtime error, ``#`` on the critical path, ``|`` an instant node, ``o`` a skip)
    and, with ``color``, by ANSI colour (green, yellow, red, dim; the critical path
    bold and inverse). A bar wide enough shows the node's name. The critical path
    is listed under the chart.

    Args:
        plan: The plan.
        analysis: The plan's analysis (critical path, thread utilisation).
        width: Columns the output may take (at least :data:`MIN_WIDTH`); every line fits.
        color: Add ANSI colours; without, the output is plain ASCII apart from the
            characters of dbt-provided names.

    Returns:
        The waterfall, one line per row, ending with a newline.

    Raises:
        ValueError: If ``width`` is below :data:`MIN_WIDTH`.
    """
    if width < MIN_WIDTH:
        raise ValueError(f"a waterfall needs at least {MIN_WIDTH} columns, not {width}")
    nodes = plan.nodes
    lines = [_fit(line, width) for line in _wrap(_header(plan, analysis), width)]
    if not nodes:
        return "\n".join([*lines, "(no nodes)"]) + "\n"
    lanes = thread_lanes(nodes, max_rows=MAX_ROWS_PER_LANE)
    use = {t.name: t.utilisation for t in analysis.threads}
    names = {lane.thread: clean(_WORKER_SUFFIX.sub("", lane.thread)) for lane in lanes}
    name_width = min(max(display_width(n) for n in names.values()), width // 3 - 6)
    labels = {
        thread: f"{_pad(_fit(name, name_width), name_width)} "
        + (f"{use[thread]:4.0%}" if thread in use else "   -")
        for thread, name in names.items()
    }
    label_width = min(max(display_width(label) for label in labels.values()) + 1, width // 3)
    chart_width = width - label_width
    start, end = node_window(nodes)
    axis = _Axis(start, end - start, chart_width)
    blank = " " * label_width
    lines.extend(blank + line for line in _ruler(axis))
    for lane in lanes:
        for index, row in enumerate(lane.rows):
            label = _fit(labels[lane.thread], label_width - 1) if index == 0 else ""
            label += " " * (label_width - display_width(label))
            lines.append((label + _draw_row(row, axis, color)).rstrip())
        if lane.merged:
            note = _fit(f"+{lane.merged} more overlapping nodes drawn in the row above", chart_width)
            lines.append(blank + (_style(note, _SGR[SKIPPED]) if color else note))
    lines.extend(_legend(width, color))
    lines.extend(_critical_lines(analysis, start, width, color))
    return "\n".join(lines) + "\n"


def _header(plan: Plan, analysis: RunAnalysis) -> list[str]:
    root = plan.invocation
    project = root.attributes.get("dbt.project_name")
    nodes = plan.nodes
    threads = len({thread_of(s) for s in nodes})
    title = f"{clean(root.name)}" + (f" ({clean(str(project))})" if project else "")
    counts = ", ".join(f"{n} {clean(status)}" for status, n in status_counts(nodes).most_common())
    lines = [
        f"{title}: {len(nodes)} nodes on {threads} thread{_s(threads)}; trace {plan.trace_id}",
        f"  {counts}",
    ]
    if nodes:
        start, end = node_window(nodes)
        offset = (start - root.start_time_unix_nano) / NANOS_PER_SECOND
        lines.append(
            f"  wall time {root.duration_seconds:.3f} s; nodes ran {(end - start) / NANOS_PER_SECOND:.3f} s "
            f"from +{offset:.3f} s (t=0 below); critical path {analysis.critical_seconds:.3f} s; "
            f"threads idle {analysis.idle_share:.0%}"
        )
    return lines


def _s(count: int) -> str:
    return "" if count == 1 else "s"


def _pad(text: str, width: int) -> str:
    return text + " " * (width - display_width(text))


def _ruler(axis: _Axis) -> list[str]:
    """Two lines: tick labels in seconds, then the axis with ``+`` at each tick."""
    span_seconds = axis.span / NANOS_PER_SECOND
    step = nice_step(span_seconds, axis.columns / 9)
    labels = [" "] * axis.columns
    ruler = ["-"] * axis.columns
    free = 0  # first column a label may use
    count = int(span_seconds / step + 1e-9)
    for index in range(count + 1):
        value = index * step
        column = axis.column(axis.start + round(value * NANOS_PER_SECOND))
        ruler[column] = "+"
        text = seconds_label(value, step)
        at = min(column, axis.columns - len(text))  # the last label may end at the last tick
        if at >= free:
            labels[at : at + len(text)] = text
            free = at + len(text) + 1
    return ["".join(labels).rstrip(), "".join(ruler)]


def _draw_row(row: Sequence[PlannedSpan], axis: _Axis, color: bool) -> str:
    canvas = _Canvas(axis.columns)
    touching = [0] * axis.columns  # how many nodes each column shows part of
    bars: list[tuple[PlannedSpan, int, int]] = []
    for span in sorted(row, key=lambda s: (_rank(s), s.start_time_unix_nano)):
        kind = status_kind(span.attributes.get("dbt.status"))
        critical = is_critical(span)
        rank = _rank(span)
        style = _SGR[kind] + (";" + _CRITICAL_SGR if critical else "")
        first = axis.column(span.start_time_unix_nano)
        if span.end_time_unix_nano <= span.start_time_unix_nano:
            canvas.paint(first, _SKIP_MARK if kind == SKIPPED else _INSTANT, style, rank)
            touching[first] += 1
            continue
        last = max(axis.end_column(span.end_time_unix_nano), first)
        fill = _CRITICAL_FILL if critical and kind not in (WARN, FAIL) else _FILL[kind]
        for column in range(first, last + 1):
            canvas.paint(column, fill, style, rank)
            touching[column] += 1
        bars.append((span, first, last))
    # brackets on a bar's end cells that show no other node; its name inside when it fits
    for span, first, last in bars:
        if last - first < 2 or any(touching[c] != 1 for c in range(first + 1, last)):
            continue
        if touching[first] == 1:
            canvas.text(first, "[")
        if touching[last] == 1:
            canvas.text(last, "]")
        name = clean(short_name(span))
        if len(name) <= last - first - 1 and display_width(name) == len(name):
            canvas.text(first + 1, name)
    return canvas.render(color)


def _rank(span: PlannedSpan) -> int:
    kind = status_kind(span.attributes.get("dbt.status"))
    if is_critical(span) and kind not in (WARN, FAIL):
        return _CRITICAL_RANK
    return _RANKS[kind]


def _style(text: str, sgr: str) -> str:
    return f"\x1b[0;{sgr}m{text}{_RESET}"


def _legend(width: int, color: bool) -> list[str]:
    items = [
        (_FILL[OK], _SGR[OK], "success/pass"),
        (_FILL[WARN], _SGR[WARN], "warn"),
        (_FILL[FAIL], _SGR[FAIL], "error/fail"),
        (_CRITICAL_FILL, f"{_SGR[OK]};{_CRITICAL_SGR}", "critical path"),
        (_INSTANT, _SGR[OK], "instant"),
        (_SKIP_MARK, _SGR[SKIPPED], "skipped"),
        ("[name]", _SGR[OK], "one node"),
    ]
    lines: list[str] = []
    line, used = "", 0
    for glyph, sgr, text in items:
        visible = len(glyph) + 1 + len(text)
        if used and used + 2 + visible > width:
            lines.append(line)
            line, used = "", 0
        shown = _style(glyph, sgr) if color else glyph
        line += ("  " if used else "") + f"{shown} {text}"
        used += (2 if used else 0) + visible
    return [*lines, line]


def _wrap(lines: list[str], width: int) -> list[str]:
    """Wrap header lines at spaces, continuing them indented."""
    wrapped: list[str] = []
    for line in lines:
        indent = " " * (len(line) - len(line.lstrip(" ")))
        wrapped.extend(textwrap.wrap(line, width, subsequent_indent=indent + "  ") or [""])
    return wrapped


def _critical_lines(analysis: RunAnalysis, origin: int, width: int, color: bool) -> list[str]:
    steps = analysis.critical_path
    if not steps:
        return ["critical path: none (no node ran after another)"]
    lines = [
        f"critical path: {len(steps)} node{_s(len(steps))}, {analysis.critical_seconds:.3f} s",
        f"{'':7}{'start':>8} {'duration':>9} {'wait before':>11}  node",
    ]
    numbered: list[tuple[int, CriticalStep] | None] = list(enumerate(steps, 1))
    if len(steps) > CRITICAL_SHOWN:
        half = CRITICAL_SHOWN // 2
        numbered = [*numbered[:half], None, *numbered[-half:]]
    for entry in numbered:
        if entry is None:
            lines.append(f"  ... {len(steps) - 2 * (CRITICAL_SHOWN // 2)} more steps ...")
            continue
        number, step = entry
        span = step.span
        at = (span.start_time_unix_nano - origin) / NANOS_PER_SECOND
        status = str(span.attributes.get("dbt.status", ""))
        kind = status_kind(status)
        prefix = f"  {number:>3}. {at:7.3f}s {span.duration_seconds:8.3f}s {step.wait_seconds:10.3f}s  "
        tag = "" if kind in (OK, OTHER) else f"[{clean(status)}] "
        name = _fit(clean(step.unique_id), max(width - len(prefix) - len(tag), 8), keep_end=True)
        if color and tag:
            tag = _style(tag.strip(), _SGR[kind]) + " "
        lines.append(prefix + tag + name)
    return lines
