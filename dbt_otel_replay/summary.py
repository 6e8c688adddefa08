"""Human-readable views of a plan: the --dry-run span tree and the summary printed after a replay.

Pure text rendering; the CLI decides where it goes (the tree to stdout, the
summary to stderr).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from .backfill import BackfillReport, RunOutcome, RunReport
from .plan import FAILED_STATUSES, Plan, PlannedSpan, StatusCode, status_counts

SLOWEST_SHOWN = 5
"""How many of the slowest nodes the summary lists."""
FAILURES_SHOWN = 10
"""How many failures the summary lists before saying how many more there are."""
MESSAGE_CHARS = 160


@dataclass(frozen=True)
class Outcome:
    """Where the trace went, for the summary.

    Attributes:
        destination: E.g. ``sent to http://localhost:4318/v1/traces (http/protobuf) in 1 request``.
        traceparent: Where the next stage's context was written, or None.
    """

    destination: str
    traceparent: str | None = None


def render_tree(plan: Plan) -> str:
    """Draw the planned spans as a tree, children under their parents.

    Args:
        plan: The plan.

    Returns:
        One line per span, with its duration, dbt status and links.
    """
    children: dict[str | None, list[PlannedSpan]] = defaultdict(list)
    for span in plan.spans[1:]:
        children[span.parent_span_id].append(span)
    root = plan.invocation
    lines = [f"{_label(root)}  trace {plan.trace_id}"]

    def walk(span_id: str, prefix: str) -> None:
        kids = sorted(children.get(span_id, []), key=lambda s: (s.start_time_unix_nano, s.name))
        for index, child in enumerate(kids):
            last = index == len(kids) - 1
            lines.append(f"{prefix}{'└─ ' if last else '├─ '}{_label(child)}")
            walk(child.span_id, prefix + ("   " if last else "│  "))

    walk(root.span_id, "")
    return "\n".join(lines) + "\n"


def _label(span: PlannedSpan) -> str:
    parts = [span.name, f"{span.duration_seconds:.3f}s"]
    status = span.attributes.get("dbt.status")
    if status is not None:
        parts.append(str(status))
    elif span.status is StatusCode.ERROR:
        parts.append(f"ERROR ({span.status_message})")
    if span.links:
        parts.append(f"+{len(span.links)} link{'s' if len(span.links) > 1 else ''}")
    return "  ".join(parts)


def render_summary(plan: Plan, outcome: Outcome) -> str:
    """Summarise a replay: trace id, where it went, wall time, slowest nodes, failures.

    Args:
        plan: The replayed plan.
        outcome: Where the trace and the traceparent went.

    Returns:
        A few lines of text.
    """
    root = plan.invocation
    nodes = plan.nodes
    counts = status_counts(nodes)
    phases = len(plan.spans) - len(nodes) - 1
    lines = [
        f"trace {plan.trace_id}: {root.name}, {len(plan.spans)} spans "
        f"(1 invocation, {len(nodes)} nodes, {phases} phases)",
        f"  {outcome.destination}",
        f"  wall time {root.duration_seconds:.3f} s; "
        + ", ".join(f"{n} {status}" for status, n in counts.most_common()),
    ]
    lines.extend(_slowest(nodes))
    lines.extend(_failures(nodes))
    if outcome.traceparent:
        lines.append(f"  traceparent {plan.context.traceparent} written to {outcome.traceparent}")
    return "\n".join(lines) + "\n"


def _slowest(nodes: Sequence[PlannedSpan]) -> list[str]:
    ranked = sorted(nodes, key=lambda s: (-s.duration_seconds, s.name))[:SLOWEST_SHOWN]
    ranked = [s for s in ranked if s.duration_seconds > 0]
    if not ranked:
        return []
    return ["  slowest:"] + [f"    {s.duration_seconds:9.3f} s  {s.name}" for s in ranked]


def _failures(nodes: Sequence[PlannedSpan]) -> list[str]:
    failed = [s for s in nodes if s.attributes.get("dbt.status") in FAILED_STATUSES]
    if not failed:
        return []
    lines = [f"  failures ({len(failed)}):"]
    for span in failed[:FAILURES_SHOWN]:
        lines.append(f"    {span.attributes['dbt.status']}  {span.name}: {_one_line(span.status_message)}")
    if len(failed) > FAILURES_SHOWN:
        lines.append(f"    ... and {len(failed) - FAILURES_SHOWN} more")
    return lines


def _one_line(message: str) -> str:
    text = " ".join(message.split())
    return text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 3] + "..."


SUMMARY_FORMAT_VERSION = 1
"""The version of the JSON backfill summary (``--format json``); bumped on incompatible changes."""


def render_run_line(run: RunReport) -> str:
    """One backfill line: outcome, trace id, command, spans, file, and any remark.

    Args:
        run: The run's report.

    Returns:
        A line without its newline.
    """
    parts = [f"{run.outcome.value:<17}", run.trace_id or "-" * 32]
    if run.command:
        parts.append(f"{run.command} ({run.nodes} nodes, {run.spans} spans)")
    parts.append(str(run.run_results))
    line = "  ".join(parts)
    return f"{line}: {' '.join(run.message.split())}" if run.message else line


def backfill_summary(report: BackfillReport) -> dict[str, object]:
    """The backfill as a JSON-serialisable document (``--format json``).

    Args:
        report: The backfill's report.

    Returns:
        ``{"version": 1, "totals": {...}, "runs": [...]}``.
    """
    return {
        "version": SUMMARY_FORMAT_VERSION,
        "totals": {
            "runs": len(report.runs),
            "spans": report.spans,
            **{outcome.value.replace(" ", "_"): report.count(outcome) for outcome in RunOutcome},
            "exit_code": report.exit_code,
        },
        "runs": [
            {
                "run_results": str(run.run_results),
                "outcome": run.outcome.value,
                "trace_id": run.trace_id,
                "command": run.command,
                "nodes": run.nodes,
                "spans": run.spans,
                "message": run.message,
            }
            for run in report.runs
        ],
    }


def render_backfill_totals(report: BackfillReport) -> str:
    """The closing line of a backfill.

    Args:
        report: The backfill's report.

    Returns:
        E.g. ``1000 runs: 998 delivered, 2 skipped; 95,000 spans``.
    """
    counts = ", ".join(f"{report.count(o)} {o.value}" for o in RunOutcome if report.count(o))
    return f"{len(report.runs)} runs: {counts or 'none found'}; {report.spans:,} spans\n"
