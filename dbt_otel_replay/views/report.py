"""A one-page HTML report of a planned run: metadata, a Gantt chart by thread, the critical path. Pure.

The page is self-contained: inline CSS, an inline SVG chart and a few lines of
inline JavaScript (a filter box), under a Content-Security-Policy that lets it
load nothing, so it can be archived with the artifacts, attached to a CI job or
mailed, and opened offline. Every string that comes from the artifacts is
escaped. Elements tests and scripts can rely on: ``#metadata``, ``#gantt`` (the
SVG; one ``rect.bar`` per node that took time, one ``path.marker`` per instant
node, each with ``data-node``), ``#critical-path``, ``#slowest``, ``#failures``,
``#warnings``, ``#threads`` and ``#filter`` (``report.html#q=stg_`` opens the page
filtered to the nodes whose unique id contains ``stg_``). With spans from dbt's log,
``#slowest`` also says where each node's time went (statements, opening connections,
overhead), ``#slowest-statements`` lists the slowest statements and ``#batches`` sums
up each microbatch model's batches in one row, however many there are; without them
the page is what it always was.
"""

from __future__ import annotations

import datetime as dt
import html
import itertools
from collections.abc import Callable, Iterable, Sequence

from ..plan import Plan
from ..statuses import Category, status
from ..timestamps import NANOS_PER_SECOND
from .analysis import RunAnalysis
from .node import (
    Batch,
    BatchSummary,
    Inside,
    Invocation,
    Node,
    inside,
    nodes,
    slowest,
    slowest_statements,
    status_counts,
)
from .timeline import nice_step, node_window, seconds_label, thread_lanes

SLOWEST_SHOWN = 20
"""How many of the slowest nodes the report lists."""
STATEMENTS_SHOWN = 20
"""How many of the slowest statements the report lists (with spans from dbt's log)."""
WINDOWS_SHOWN = 10
"""How many failed batch windows a microbatch model's row names before saying how many more."""
MESSAGES_SHOWN = 500
"""How many failures (and warnings) the report lists before saying how many more there are."""
MAX_ROWS_PER_LANE = 24
"""Rows a thread's lane may take in the chart before overlapping nodes share its last row."""
MESSAGE_CHARS = 4000

# chart geometry, in SVG user units (the chart scales to the page's width)
_WIDTH = 1320
_LABEL_WIDTH = 170
_CHART_LEFT = 180
_CHART_RIGHT = _WIDTH - 24
_AXIS_HEIGHT = 30
_ROW_HEIGHT = 26
_BAR_HEIGHT = 18
_LANE_GAP = 10
_CHAR_WIDTH = 6.6  # the bar labels' average glyph width at 11px

_CSS = """
:root { --ok: #2e7d32; --warn: #f9a825; --fail: #c62828; --skipped: #9e9e9e; --other: #607d8b;
  --crit: #6a1b9a; --ink: #1f2328; --muted: #59636e; --line: #d1d9e0; --soft: #f6f8fa; }
* { box-sizing: border-box; }
body { margin: 0; padding: 20px 24px 40px; font: 14px/1.45 system-ui, -apple-system, "Segoe UI",
  Roboto, "Helvetica Neue", Arial, sans-serif; color: var(--ink); background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 26px 0 8px; }
.sub { color: var(--muted); margin: 0 0 14px; }
code, .mono, td.num, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
table { border-collapse: collapse; }
th, td { text-align: left; padding: 3px 10px 3px 0; vertical-align: top;
  border-bottom: 1px solid var(--line); }
th { font-weight: 600; color: var(--muted); white-space: nowrap; }
td { white-space: nowrap; }
td.node, td.msg { white-space: normal; }
td.num, th.num { text-align: right; padding-left: 10px; }
td.node { word-break: break-all; }
#metadata th { width: 130px; border: none; padding-top: 2px; padding-bottom: 2px; }
#metadata td { border: none; padding: 2px 40px 2px 0; }
.chip { display: inline-block; padding: 0 8px; margin: 0 6px 2px 0; border-radius: 10px; color: #fff;
  font-size: 12px; font-weight: 600; }
.chip.ok { background: var(--ok); } .chip.warn { background: var(--warn); color: #222; }
.chip.fail { background: var(--fail); } .chip.skipped { background: var(--skipped); }
.chip.other { background: var(--other); }
.status { font-weight: 600; } .status.ok { color: var(--ok); } .status.warn { color: #a86d00; }
.status.fail { color: var(--fail); } .status.skipped { color: var(--skipped); }
.status.other { color: var(--other); }
.tools { display: flex; gap: 14px; align-items: center; margin: 8px 0; flex-wrap: wrap; }
#filter { width: 320px; padding: 5px 8px; font: inherit; border: 1px solid var(--line); border-radius: 6px; }
.legend span { margin-right: 12px; white-space: nowrap; color: var(--muted); font-size: 13px; }
.sw { display: inline-block; width: 12px; height: 10px; margin-right: 4px; vertical-align: baseline;
  border-radius: 2px; }
.sw.ok { background: var(--ok); } .sw.warn { background: var(--warn); } .sw.fail { background: var(--fail); }
.sw.skipped { background: var(--skipped); } .sw.other { background: var(--other); }
.sw.crit { background: #fff; border: 2px solid var(--crit); }
.chart { border: 1px solid var(--line); border-radius: 6px; overflow-x: auto; }
#gantt { display: block; width: 100%; height: auto; min-width: 900px; }
#gantt text { font: 11px system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif; }
#gantt .axis text { fill: var(--muted); }
#gantt .grid { stroke: var(--line); stroke-width: 1; }
#gantt .lane-bg { fill: var(--soft); }
#gantt .lane-label { fill: var(--ink); font-weight: 600; }
#gantt .lane-use { fill: var(--muted); }
#gantt .ok { fill: var(--ok); } #gantt .warn { fill: var(--warn); } #gantt .fail { fill: var(--fail); }
#gantt .skipped { fill: var(--skipped); } #gantt .other { fill: var(--other); }
#gantt .bar.crit, #gantt .marker.crit { stroke: var(--crit); stroke-width: 2.5; }
#gantt .crit-link { stroke: var(--crit); stroke-width: 1.5; stroke-dasharray: 4 3; fill: none; }
#gantt .bar-label { fill: #fff; pointer-events: none; }
#gantt .bar-label.warn-label { fill: #222; }
#gantt .filtered-out { opacity: 0.12; }
#gantt .bar:hover, #gantt .marker:hover { stroke: var(--ink); stroke-width: 2; }
tr.filtered-out { display: none; }
tr.crit td:first-child { border-left: 3px solid var(--crit); padding-left: 6px; }
pre { margin: 0; white-space: pre-wrap; word-break: break-word; font-size: 12px; max-width: 760px; }
.use { display: inline-block; width: 160px; height: 10px; background: var(--soft);
  border: 1px solid var(--line); border-radius: 2px; vertical-align: middle; margin-right: 8px; }
.use i { display: block; height: 100%; background: var(--ok); }
.note { color: var(--muted); font-size: 13px; }
"""

_SCRIPT = """
(function () {
  var box = document.getElementById("filter"), count = document.getElementById("filter-count");
  if (!box) { return; }
  var items = document.querySelectorAll("[data-node]");
  function apply() {
    var q = box.value.trim().toLowerCase(), shown = 0;
    for (var i = 0; i < items.length; i++) {
      var hit = !q || items[i].getAttribute("data-node").toLowerCase().indexOf(q) >= 0;
      items[i].classList.toggle("filtered-out", !hit);
      if (hit && items[i].tagName.toLowerCase() !== "tr") { shown++; }
    }
    count.textContent = q ? shown + " matching nodes" : "";
  }
  box.addEventListener("input", apply);
  var given = /^#q=(.*)$/.exec(window.location.hash);  // report.html#q=stg_ opens filtered
  if (given) {
    try { box.value = decodeURIComponent(given[1]); } catch (e) { box.value = given[1]; }
    apply();
  }
})();
"""

_CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _or(value: str | None, default: str) -> str:
    return default if value is None else value


def render_html(plan: Plan, analysis: RunAnalysis, *, title: str | None = None) -> str:
    """Render the run as one self-contained HTML page.

    Args:
        plan: The plan.
        analysis: The plan's analysis (critical path, thread utilisation).
        title: The page's title; by default the command and the project.

    Returns:
        The page, an HTML5 document that loads nothing from anywhere.
    """
    root = plan.invocation
    project = Invocation(root).project
    title = title or f"{root.name}" + (f" · {project}" if project else "") + " · dbt run report"
    every = nodes(plan)
    within = inside(plan)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="generator" content="dbt-otel-replay">',
        f"<title>{_e(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head><body>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="sub">{_e(_subtitle(plan, every, analysis))}</p>',
        _metadata(plan, every, analysis),
        _gantt_section(every, analysis, within),
        _critical_section(every, analysis),
        _slowest_section(every, analysis, within),
        *_inside_sections(every, within),
        _messages_section(
            "failures",
            "Failures",
            [n for n in every if n.failed],
            lambda n: n.failure_message or _or(n.status, ""),
            "No node failed.",
        ),
        _messages_section(
            "warnings",
            "Warnings",
            [n for n in every if n.warned],
            lambda n: n.message,
            "No warnings.",
        ),
        _threads_section(analysis),
        f"<script>{_SCRIPT}</script>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _subtitle(plan: Plan, every: Sequence[Node], analysis: RunAnalysis) -> str:
    root = plan.invocation
    failed = sum(1 for n in every if n.failed)
    outcome = f"{failed} failed" if failed else "no failures"
    return (
        f"{len(every)} nodes in {root.duration_seconds:.3f} s, {outcome}; critical path "
        f"{analysis.critical_seconds:.3f} s over {len(analysis.critical_path)} nodes; "
        f"threads idle {analysis.idle_share:.0%} of the time."
    )


def _when(nanos: int) -> str:
    moment = dt.datetime.fromtimestamp(nanos // NANOS_PER_SECOND, tz=dt.timezone.utc)
    millis = nanos % NANOS_PER_SECOND // 1_000_000
    return f"{moment:%Y-%m-%d %H:%M:%S}.{millis:03d} UTC"


def _metadata(plan: Plan, every: Sequence[Node], analysis: RunAnalysis) -> str:
    root = plan.invocation
    run = Invocation(root)
    rows: list[tuple[str, str]] = [
        ("Command", f"<code>{_e(_or(run.command, root.name))}</code>"),
        ("Project", _e(_or(run.project, "—"))),
        ("dbt version", _e(_or(run.dbt_version, "—"))),
    ]
    for value, label in ((run.adapter, "Adapter"), (run.target, "Target")):
        if value is not None:
            rows.append((label, _e(value)))
    rows += [
        ("Trace id", f'<code id="trace-id">{_e(plan.trace_id)}</code>'),
        ("Invocation id", f"<code>{_e(_or(run.invocation_id, '—'))}</code>"),
        ("Started", _e(_when(root.start_time_unix_nano))),
        ("Wall time", f'<span id="wall-time">{root.duration_seconds:.3f} s</span>'),
    ]
    if every:
        start, end = node_window(every)
        rows.append(
            (
                "Nodes ran",
                f"{(end - start) / NANOS_PER_SECOND:.3f} s, from "
                f"+{(start - root.start_time_unix_nano) / NANOS_PER_SECOND:.3f} s after dbt started",
            )
        )
    rows.append(
        (
            "Threads",
            f"{len(analysis.threads)}; idle {analysis.idle_share:.0%} of {analysis.window_seconds:.3f} s",
        )
    )
    counts = status_counts(every)
    chips = "".join(
        f'<span class="chip {status(name).category.value}" data-status="{_e(name)}">{n} {_e(name)}</span>'
        for name, n in counts.most_common()
    )
    rows.append(("Results", f'<span id="status-counts">{len(every)} nodes: {chips}</span>'))
    results = rows.pop()
    half = (len(rows) + 1) // 2  # two columns of facts, then the results across the page
    body = "".join(
        "<tr>" + "".join(f"<th>{key}</th><td>{value}</td>" for key, value in rows[i::half]) + "</tr>"
        for i in range(half)
    )
    body += f'<tr><th>{results[0]}</th><td colspan="3">{results[1]}</td></tr>'

    return f'<section><h2>Run</h2><table id="metadata">{body}</table></section>'


def _gantt_section(every: Sequence[Node], analysis: RunAnalysis, within: Inside) -> str:
    legend = "".join(
        f'<span><i class="sw {cls}"></i>{text}</span>'
        for cls, text in (
            ("ok", "success / pass"),
            ("warn", "warn"),
            ("fail", "error / fail"),
            ("skipped", "skipped (◆ at the moment it was skipped)"),
            ("other", "other"),
            ("crit", "critical path"),
        )
    )
    return (
        '<section><h2>Timeline by thread</h2><div class="tools">'
        '<input id="filter" type="search" placeholder="Filter nodes by name…" autocomplete="off">'
        f'<span id="filter-count" class="note"></span><span class="legend">{legend}</span></div>'
        f'<div class="chart">{_gantt(every, analysis, within)}</div>'
        '<p class="note">Hover a bar for the node, its status and duration. Time runs from the first '
        "node's start; the dashed line links the critical path.</p></section>"
    )


def _gantt(every: Sequence[Node], analysis: RunAnalysis, within: Inside) -> str:
    if not every:
        return '<svg id="gantt" viewBox="0 0 1320 40"><text x="10" y="24">No nodes.</text></svg>'
    lanes = thread_lanes(every, max_rows=MAX_ROWS_PER_LANE)
    start, end = node_window(every)
    span = end - start
    chart = _CHART_RIGHT - _CHART_LEFT
    height = _AXIS_HEIGHT + sum(len(lane.rows) * _ROW_HEIGHT + _LANE_GAP for lane in lanes) + 6

    def x_of(nanos: int) -> float:
        return _CHART_LEFT + (nanos - start) * chart / span

    out = [
        f'<svg id="gantt" viewBox="0 0 {_WIDTH} {height}" role="img" '
        f'aria-label="Gantt chart of {len(every)} nodes by dbt thread">'
    ]
    out.append('<g class="axis">')
    seconds = span / NANOS_PER_SECOND
    step = nice_step(seconds, chart / 110)
    tick = 0
    while tick * step <= seconds * (1 + 1e-9):
        x = x_of(start + round(tick * step * NANOS_PER_SECOND))
        anchor = "end" if x > _CHART_RIGHT - 20 else "middle" if tick else "start"
        out.append(
            f'<line class="grid" x1="{x:.1f}" y1="{_AXIS_HEIGHT - 6}" x2="{x:.1f}" y2="{height - 4}"/>'
            f'<text x="{x:.1f}" y="{_AXIS_HEIGHT - 11}" text-anchor="{anchor}">'
            f"{seconds_label(tick * step, step)}</text>"
        )
        tick += 1
    out.append("</g>")
    use = {t.name: t.utilisation for t in analysis.threads}
    centres: dict[str, tuple[float, float, float]] = {}  # unique id -> (x start, x end, y centre)
    bars: list[str] = []
    y = _AXIS_HEIGHT
    for index, lane in enumerate(lanes):
        lane_height = len(lane.rows) * _ROW_HEIGHT
        if index % 2 == 0:
            out.append(
                f'<rect class="lane-bg" x="0" y="{y - _LANE_GAP / 2:.1f}" width="{_WIDTH}" '
                f'height="{lane_height + _LANE_GAP}"/>'
            )
        label = lane.thread if len(lane.thread) <= 20 else lane.thread[:19] + "…"
        detail = f"{lane.nodes} node{'s' if lane.nodes != 1 else ''}"
        if lane.merged:
            detail += f", {lane.merged} of them overlapping in the last row"
        share = f"{use[lane.thread]:.0%}" if lane.thread in use else "-"
        out.append(
            f'<text class="lane-label" x="10" y="{y + _ROW_HEIGHT / 2 + 4:.1f}">'
            f"<title>{_e(lane.thread)}: {_e(detail)}</title>{_e(label)}</text>"
            f'<text class="lane-use" x="{_LABEL_WIDTH}" y="{y + _ROW_HEIGHT / 2 + 4:.1f}" '
            f'text-anchor="end">{share}</text>'
        )
        for row_index, row in enumerate(lane.rows):
            top = y + row_index * _ROW_HEIGHT + (_ROW_HEIGHT - _BAR_HEIGHT) / 2
            for node in row:
                bars.append(_bar(node, x_of, top, start, centres, within))
        y += lane_height + _LANE_GAP
    out.extend(_critical_links(analysis, centres))  # under the bars
    out.extend(bars)
    out.append("</svg>")
    return "".join(out)


def _bar(
    node: Node,
    x_of: Callable[[int], float],
    top: float,
    origin: int,
    centres: dict[str, tuple[float, float, float]],
    within: Inside,
) -> str:
    dbt_status = _or(node.status, "")
    kind = node.category
    uid = node.uid
    classes = kind.value + (" crit" if node.critical else "")
    at = (node.start - origin) / NANOS_PER_SECOND
    tip = [uid, f"{dbt_status} · {node.seconds:.3f} s", f"{node.thread}, start +{at:.3f} s"]
    if node.critical:
        tip.append("on the critical path")
    where = _where(within, node)
    if where:
        tip.append(where)
    if node.failure_message:
        tip.append(node.failure_message[:300])
    title = f"<title>{_e(chr(10).join(tip))}</title>"
    x0 = x_of(node.start)
    middle = top + _BAR_HEIGHT / 2
    if node.instant:
        centres[uid] = (x0, x0, middle)
        half = _BAR_HEIGHT / 2
        return (
            f'<path class="marker {classes}" data-node="{_e(uid)}" data-status="{_e(dbt_status)}" '
            f'd="M{x0:.2f} {top:.1f}l{half * 0.7:.1f} {half:.1f}l{-half * 0.7:.1f} {half:.1f}'
            f'l{-half * 0.7:.1f} {-half:.1f}z">{title}</path>'
        )
    x1 = x_of(node.end)
    width = max(x1 - x0, 0.8)
    drawn = width - 0.6 if width > 2 else width  # a hairline gap between neighbours
    centres[uid] = (x0, x0 + width, middle)
    bar = (
        f'<rect class="bar {classes}" data-node="{_e(uid)}" data-status="{_e(dbt_status)}" x="{x0:.2f}" '
        f'y="{top:.1f}" width="{drawn:.2f}" height="{_BAR_HEIGHT}" rx="2">{title}</rect>'
    )
    name = node.short_name
    if width >= len(name) * _CHAR_WIDTH + 8:
        label_class = "bar-label warn-label" if kind is Category.WARN else "bar-label"
        baseline = top + _BAR_HEIGHT / 2 + 4
        bar += f'<text class="{label_class}" x="{x0 + 4:.2f}" y="{baseline:.1f}">{_e(name)}</text>'
    return bar


def _critical_links(analysis: RunAnalysis, centres: dict[str, tuple[float, float, float]]) -> list[str]:
    links = []
    steps = [centres[s.unique_id] for s in analysis.critical_path if s.unique_id in centres]
    for (_, end, y1), (begin, _, y2) in itertools.pairwise(steps):
        links.append(f'<path class="crit-link" d="M{end:.2f} {y1:.1f}L{begin:.2f} {y2:.1f}"/>')
    return links


def _node_cell(node: Node) -> str:
    return f'<td class="node mono">{_e(node.uid)}</td>'


def _status_cell(node: Node) -> str:
    return f'<td class="status {node.category.value}">{_e(_or(node.status, ""))}</td>'


def _row_attrs(node: Node) -> str:
    crit = ' class="crit"' if node.critical else ""
    return f'data-node="{_e(node.uid)}"{crit}'


def _table(ident: str, header: Sequence[str], rows: Iterable[str]) -> str:
    head = "".join(f'<th class="num">{h[1:]}</th>' if h.startswith("#") else f"<th>{h}</th>" for h in header)
    return f'<table id="{ident}"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _critical_section(every: Sequence[Node], analysis: RunAnalysis) -> str:
    steps = analysis.critical_path
    if not steps:
        return (
            '<section><h2>Critical path</h2><table id="critical-path"><tbody></tbody></table>'
            '<p class="note">No node waited for another.</p></section>'
        )
    origin = node_window(every)[0]
    rows = [
        f"<tr {_row_attrs(step.node)}>"
        f'<td class="num">{number}</td>{_node_cell(step.node)}'
        f"<td>{_e(step.node.thread)}</td>{_status_cell(step.node)}"
        f'<td class="num">+{(step.node.start - origin) / NANOS_PER_SECOND:.3f} s</td>'
        f'<td class="num">{step.node.seconds:.3f} s</td>'
        f'<td class="num">{step.wait_seconds:.3f} s</td></tr>'
        for number, step in enumerate(steps, 1)
    ]
    busy = sum(s.node.seconds for s in steps)
    return (
        "<section><h2>Critical path</h2>"
        f'<p class="note">The chain of nodes that decided when the run ended: {len(steps)} nodes, '
        f"{analysis.critical_seconds:.3f} s from the first one's start to the last one's end, "
        f"{busy:.3f} s of it running and the rest waiting (for a thread, or on dbt).</p>"
        + _table(
            "critical-path",
            ["#step", "node", "thread", "status", "#start", "#duration", "#wait before"],
            rows,
        )
        + "</section>"
    )


def _slowest_section(every: Sequence[Node], analysis: RunAnalysis, within: Inside) -> str:
    ranked = [n for n in slowest(every, SLOWEST_SHOWN) if n.seconds > 0]
    window = analysis.window_seconds or 1.0
    header = ["#", "node", "type", "thread", "status", "#duration", "#of window"]
    if within.logged:
        header += ["#statements", "#in statements", "#connecting", "#overhead"]
    rows = [
        f"<tr {_row_attrs(node)}>"
        f'<td class="num">{number}</td>{_node_cell(node)}'
        f"<td>{_e(node.resource_type)}</td>"
        f"<td>{_e(node.thread)}</td>{_status_cell(node)}"
        f'<td class="num">{node.seconds:.3f} s</td>'
        f'<td class="num">{node.seconds / window:.0%}</td>'
        + (_breakdown_cells(within, node) if within.logged else "")
        + "</tr>"
        for number, node in enumerate(ranked, 1)
    ]
    note = (
        "<p class=\"note\">Where each node's time went, from dbt's log: the time its statements ran "
        "(overlaps counted once), the time spent opening connections (connecting), and the "
        "overhead: the rest of the node's time, dbt's own work between the statements.</p>"
        if within.logged
        else ""
    )
    return (
        f"<section><h2>Slowest nodes (top {SLOWEST_SHOWN})</h2>"
        + note
        + _table("slowest", header, rows)
        + "</section>"
    )


def _where(within: Inside, node: Node) -> str:
    """A node's breakdown in words (``0.860 s in 5 statements, 0.158 s overhead``), or empty."""
    breakdown = within.breakdown(node)
    if breakdown is None or not (breakdown.statements or breakdown.connections):
        return ""
    plural = "" if breakdown.statements == 1 else "s"
    failed = f" ({breakdown.failed_statements} failed)" if breakdown.failed_statements else ""
    parts = [f"{breakdown.statement_seconds:.3f} s in {breakdown.statements} statement{plural}{failed}"]
    if breakdown.connections:
        parts.append(f"{breakdown.connection_seconds:.3f} s opening connections")
    parts.append(f"{breakdown.overhead_seconds:.3f} s overhead")
    return ", ".join(parts)


def _breakdown_cells(within: Inside, node: Node) -> str:
    breakdown = within.breakdown(node)
    if breakdown is None:
        return '<td class="num">0</td>' + '<td class="num">—</td>' * 3
    failed = (
        f' <span class="status fail">({breakdown.failed_statements} failed)</span>'
        if breakdown.failed_statements
        else ""
    )
    return (
        f'<td class="num">{breakdown.statements}{failed}</td>'
        f'<td class="num">{breakdown.statement_seconds:.3f} s</td>'
        f'<td class="num">{breakdown.connection_seconds:.3f} s</td>'
        f'<td class="num">{breakdown.overhead_seconds:.3f} s</td>'
    )


def _inside_sections(every: Sequence[Node], within: Inside) -> list[str]:
    """The sections only dbt's log makes possible: the slowest statements, the microbatch batches."""
    if not within.logged:
        return []
    return [_statements_section(every, within), _batches_section(within)]


def _statements_section(every: Sequence[Node], within: Inside) -> str:
    ranked = slowest_statements(within.statements, STATEMENTS_SHOWN)
    origin = node_window(every)[0] if every else 0
    rows = []
    for number, statement in enumerate(ranked, 1):
        node = statement.node
        attrs = f' data-node="{_e(node.uid)}"' if node is not None else ""
        owner = node.uid if node is not None else _or(statement.connection, "—")
        if statement.failed:
            result = f'<td class="status fail msg"><pre>{_e(_clip(statement.error or "failed"))}</pre></td>'
        else:
            result = f"<td>{_e(_or(statement.status_text, ''))}</td>"
        rows.append(
            f"<tr{attrs}>"
            f'<td class="num">{number}</td>'
            f'<td class="node mono">{_e(statement.summary)}</td>'
            f'<td class="node mono">{_e(owner)}</td>'
            f"{result}"
            f'<td class="num">{"" if statement.rows is None else statement.rows}</td>'
            f'<td class="num">{(statement.start - origin) / NANOS_PER_SECOND:+.3f} s</td>'
            f'<td class="num">{statement.seconds:.3f} s</td></tr>'
        )
    failed = sum(1 for s in within.statements if s.failed)
    return (
        f"<section><h2>Slowest statements (top {STATEMENTS_SHOWN})</h2>"
        f'<p class="note">{len(within.statements)} statements in dbt\'s log, {failed} failed. '
        "Start is from the first node's start; a statement of no node is shown with its connection.</p>"
        + _table(
            "slowest-statements",
            ["#", "statement", "node", "result", "#rows", "#start", "#duration"],
            rows,
        )
        + "</section>"
    )


def _batches_section(within: Inside) -> str:
    if not within.batches:
        return ""
    rows = [_batch_row(summary) for summary in within.batches]
    return (
        "<section><h2>Microbatch batches</h2>"
        '<p class="note">One row per microbatch model, however many batches it ran.</p>'
        + _table("batches", ["model", "#batches", "#failed", "failed windows", "first failure"], rows)
        + "</section>"
    )


def _batch_row(summary: BatchSummary) -> str:
    node = summary.node
    failed: tuple[Batch, ...] = summary.failed
    windows = ", ".join(_e(w) for w in summary.failed_windows[:WINDOWS_SHOWN])
    if len(failed) > WINDOWS_SHOWN:
        windows += f" … and {len(failed) - WINDOWS_SHOWN} more"
    first = _e(_clip(failed[0].message)) if failed else ""
    kind = "fail" if failed else "ok"
    return (
        f"<tr {_row_attrs(node)}>{_node_cell(node)}"
        f'<td class="num">{summary.batches}</td>'
        f'<td class="num status {kind}">{len(failed)}</td>'
        f'<td class="node mono">{windows or "—"}</td>'
        f'<td class="msg"><pre>{first}</pre></td></tr>'
    )


def _messages_section(
    ident: str,
    heading: str,
    listed: Sequence[Node],
    message: Callable[[Node], str],
    empty: str,
) -> str:
    rows = [
        f"<tr {_row_attrs(node)}>{_status_cell(node)}{_node_cell(node)}"
        f'<td class="msg"><pre>{_e(_clip(message(node)))}</pre></td></tr>'
        for node in listed[:MESSAGES_SHOWN]
    ]
    more = (
        f'<p class="note">… and {len(listed) - MESSAGES_SHOWN} more.</p>'
        if len(listed) > MESSAGES_SHOWN
        else ""
    )
    note = "" if listed else f'<p class="note">{_e(empty)}</p>'
    return (
        f"<section><h2>{heading} ({len(listed)})</h2>"
        + _table(ident, ["status", "node", "message"], rows)
        + note
        + more
        + "</section>"
    )


def _clip(text: str) -> str:
    return text if len(text) <= MESSAGE_CHARS else text[:MESSAGE_CHARS] + " …"


def _threads_section(analysis: RunAnalysis) -> str:
    rows = [
        f'<tr><td>{_e(t.name)}</td><td class="num">{t.nodes}</td>'
        f'<td class="num">{t.busy_seconds:.3f} s</td>'
        f'<td><span class="use"><i style="width:{t.utilisation * 100:.1f}%"></i></span>'
        f"{t.utilisation:.0%}</td></tr>"
        for t in analysis.threads
    ]
    return (
        "<section><h2>Thread utilisation</h2>"
        f'<p class="note">Busy time of each dbt thread over the {analysis.window_seconds:.3f} s the nodes '
        f'ran (on-run-start/end hooks aside). Idle share: <b id="idle-share">{analysis.idle_share:.0%}'
        "</b> of the threads' time; a high idle share with a long critical path means more threads "
        "would not help.</p>"
        + _table("threads", ["thread", "#nodes", "#busy", "utilisation"], rows)
        + "</section>"
    )
