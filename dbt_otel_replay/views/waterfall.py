"""A terminal waterfall of a planned run: one lane per dbt thread, nodes as bars on a time axis. Pure.

Each lane is one row per node that ran at the same time as another on the same
thread (normally one row: a dbt thread runs one node at a time), capped at
:data:`MAX_ROWS_PER_LANE`; nodes beyond the cap are drawn in the lane's last
row and counted. Where several nodes share a character cell, the one that
matters most is drawn: a failure over a warning over the critical path over a
success over a skip, so a 5,000-node run stays a few lines per thread and still
shows every failure. The glyphs tell the status apart without colour; colour
(ANSI) is added on top when asked for. Every dbt-provided string goes through
:func:`~dbt_otel_replay.views.timeline.clean` before it reaches the terminal.
With spans from dbt's log, the slowest statements and the microbatch models
whose batches failed are listed under the critical path, their text from the
log through :func:`~dbt_otel_replay.terminal.escape`.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

from ..plan import Plan
from ..statuses import Category
from ..terminal import escape
from ..timestamps import NANOS_PER_SECOND
from .analysis import CriticalStep, RunAnalysis
from .node import Inside, Invocation, Node, inside, nodes, slowest_statements, status_counts
from .timeline import (
    cell_rank,
    clean,
    display_width,
    fit,
    nice_step,
    node_window,
    pad,
    seconds_label,
    shows_critical,
    thread_lanes,
)

MIN_WIDTH = 40
"""The narrowest waterfall :func:`render_waterfall` draws."""
MAX_ROWS_PER_LANE = 4
"""Rows a thread's lane may take in the waterfall before overlapping nodes are merged."""
CRITICAL_SHOWN = 20
"""Critical-path steps listed under the chart before the middle of the path is elided."""
STATEMENTS_SHOWN = 5
"""The slowest statements listed under the critical path (with spans from dbt's log)."""
BATCH_MODELS_SHOWN = 5
"""Microbatch models with failed batches listed, one line each, before saying how many more."""

_FILL = {Category.OK: "=", Category.WARN: "~", Category.FAIL: "X", Category.SKIPPED: ".", Category.OTHER: "-"}
_CRITICAL_FILL = "#"
_INSTANT = "|"
_SKIP_MARK = "o"
_SGR = {
    Category.OK: "32",
    Category.WARN: "33",
    Category.FAIL: "31",
    Category.SKIPPED: "2",
    Category.OTHER: "36",
}
_CRITICAL_SGR = "1;7"
_RESET = "\x1b[0m"
_WORKER_SUFFIX = re.compile(r"\s*\(worker\)$")


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
    every = nodes(plan)
    lines = [fit(line, width) for line in _wrap(_header(plan, every, analysis), width)]
    if not every:
        return "\n".join([*lines, "(no nodes)"]) + "\n"
    lanes = thread_lanes(every, max_rows=MAX_ROWS_PER_LANE)
    use = {t.name: t.utilisation for t in analysis.threads}
    names = {lane.thread: clean(_WORKER_SUFFIX.sub("", lane.thread)) for lane in lanes}
    name_width = min(max(display_width(n) for n in names.values()), width // 3 - 6)
    labels = {
        thread: f"{pad(fit(name, name_width), name_width)} "
        + (f"{use[thread]:4.0%}" if thread in use else "   -")
        for thread, name in names.items()
    }
    label_width = min(max(display_width(label) for label in labels.values()) + 1, width // 3)
    chart_width = width - label_width
    start, end = node_window(every)
    axis = _Axis(start, end - start, chart_width)
    blank = " " * label_width
    lines.extend(blank + line for line in _ruler(axis))
    for lane in lanes:
        for index, row in enumerate(lane.rows):
            label = fit(labels[lane.thread], label_width - 1) if index == 0 else ""
            label += " " * (label_width - display_width(label))
            lines.append((label + _draw_row(row, axis, color)).rstrip())
        if lane.merged:
            note = fit(f"+{lane.merged} more overlapping nodes drawn in the row above", chart_width)
            lines.append(blank + (_style(note, _SGR[Category.SKIPPED]) if color else note))
    lines.extend(_legend(width, color))
    lines.extend(_critical_lines(analysis, start, width, color))
    within = inside(plan)
    lines.extend(_statement_lines(within, start, width, color))
    lines.extend(_batch_lines(within, width, color))
    return "\n".join(lines) + "\n"


def _header(plan: Plan, every: Sequence[Node], analysis: RunAnalysis) -> list[str]:
    root = plan.invocation
    project = Invocation(root).project
    threads = len({n.thread for n in every})
    title = f"{clean(root.name)}" + (f" ({clean(project)})" if project else "")
    counts = ", ".join(f"{n} {clean(status)}" for status, n in status_counts(every).most_common())
    lines = [
        f"{title}: {len(every)} nodes on {threads} thread{_s(threads)}; trace {plan.trace_id}",
        f"  {counts}",
    ]
    if every:
        start, end = node_window(every)
        offset = (start - root.start_time_unix_nano) / NANOS_PER_SECOND
        lines.append(
            f"  wall time {root.duration_seconds:.3f} s; nodes ran {(end - start) / NANOS_PER_SECOND:.3f} s "
            f"from +{offset:.3f} s (t=0 below); critical path {analysis.critical_seconds:.3f} s; "
            f"threads idle {analysis.idle_share:.0%}"
        )
    return lines


def _s(count: int) -> str:
    return "" if count == 1 else "s"


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


def _draw_row(row: Sequence[Node], axis: _Axis, color: bool) -> str:
    canvas = _Canvas(axis.columns)
    touching = [0] * axis.columns  # how many nodes each column shows part of
    bars: list[tuple[Node, int, int]] = []
    for node in sorted(row, key=lambda n: (cell_rank(n), n.start)):
        kind = node.category
        rank = cell_rank(node)
        style = _SGR[kind] + (";" + _CRITICAL_SGR if node.critical else "")
        first = axis.column(node.start)
        if node.instant:
            canvas.paint(first, _SKIP_MARK if kind is Category.SKIPPED else _INSTANT, style, rank)
            touching[first] += 1
            continue
        last = max(axis.end_column(node.end), first)
        fill = _CRITICAL_FILL if shows_critical(node) else _FILL[kind]
        for column in range(first, last + 1):
            canvas.paint(column, fill, style, rank)
            touching[column] += 1
        bars.append((node, first, last))
    # brackets on a bar's end cells that show no other node; its name inside when it fits
    for node, first, last in bars:
        if last - first < 2 or any(touching[c] != 1 for c in range(first + 1, last)):
            continue
        if touching[first] == 1:
            canvas.text(first, "[")
        if touching[last] == 1:
            canvas.text(last, "]")
        name = clean(node.short_name)
        if len(name) <= last - first - 1 and display_width(name) == len(name):
            canvas.text(first + 1, name)
    return canvas.render(color)


def _style(text: str, sgr: str) -> str:
    return f"\x1b[0;{sgr}m{text}{_RESET}"


def _legend(width: int, color: bool) -> list[str]:
    ok, skipped = Category.OK, Category.SKIPPED
    items = [
        (_FILL[ok], _SGR[ok], "success/pass"),
        (_FILL[Category.WARN], _SGR[Category.WARN], "warn"),
        (_FILL[Category.FAIL], _SGR[Category.FAIL], "error/fail"),
        (_CRITICAL_FILL, f"{_SGR[ok]};{_CRITICAL_SGR}", "critical path"),
        (_INSTANT, _SGR[ok], "instant"),
        (_SKIP_MARK, _SGR[skipped], "skipped"),
        ("[name]", _SGR[ok], "one node"),
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
        node = step.node
        at = (node.start - origin) / NANOS_PER_SECOND
        status = node.status or ""
        kind = node.category
        prefix = f"  {number:>3}. {at:7.3f}s {node.seconds:8.3f}s {step.wait_seconds:10.3f}s  "
        tag = "" if kind in (Category.OK, Category.OTHER) else f"[{clean(status)}] "
        name = fit(clean(step.unique_id), max(width - len(prefix) - len(tag), 3), keep_end=True)
        if color and tag:
            tag = _style(tag.strip(), _SGR[kind]) + " "
        lines.append(prefix + tag + name)
    return lines


def _log_text(text: str) -> str:
    """Text from dbt's log on one line, its control and bidi characters escaped."""
    return escape(" ".join(text.split()))


def _statement_lines(within: Inside, origin: int, width: int, color: bool) -> list[str]:
    ranked = [s for s in slowest_statements(within.statements, STATEMENTS_SHOWN) if s.seconds > 0]
    if not ranked:
        return []
    count = len(within.statements)
    lines = [
        fit(f"slowest statements: {len(ranked)} of {count}", width),
        fit(f"{'':7}{'start':>8} {'duration':>9}  node: statement", width),
    ]
    for number, statement in enumerate(ranked, 1):
        at = (statement.start - origin) / NANOS_PER_SECOND
        prefix = f"  {number:>3}. {at:7.3f}s {statement.seconds:8.3f}s  "
        tag = "[failed] " if statement.failed else ""
        text = fit(
            f"{_log_text(statement.owner)}: {_log_text(statement.summary)}",
            max(width - len(prefix) - len(tag), 3),
        )
        if color and tag:
            tag = _style(tag.strip(), _SGR[Category.FAIL]) + " "
        lines.append(prefix + tag + text)
    return lines


def _batch_lines(within: Inside, width: int, color: bool) -> list[str]:
    failing = [b for b in within.batches if b.failed]
    lines = []
    for summary in failing[:BATCH_MODELS_SHOWN]:
        line = fit(summary.failure_line(_log_text), width)
        lines.append(_style(line, _SGR[Category.FAIL]) if color else line)
    if len(failing) > BATCH_MODELS_SHOWN:
        lines.append(
            fit(f"... and {len(failing) - BATCH_MODELS_SHOWN} more models with failed batches", width)
        )
    return lines
