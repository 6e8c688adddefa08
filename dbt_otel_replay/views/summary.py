"""The summaries: of one replay (terminal text and the ``--format json`` document) and of a backfill. Pure.

Text rendering only; the CLI decides where it goes (the summary to stderr, JSON
documents to stdout). The text forms pass every string from an artifact or a
collector through :func:`~dbt_otel_replay.terminal.escape`; the documents keep
the exact text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..backfill import BackfillReport, RunOutcome, RunReport
from ..plan import Plan
from ..replay import ResendResult
from ..spans import SpanRole
from ..terminal import escape
from .analysis import RunAnalysis, analyse
from .node import (
    LOG_ROLES,
    Breakdown,
    Inside,
    Invocation,
    Node,
    Statement,
    inside,
    nodes,
    slowest,
    slowest_statements,
    status_counts,
)

SLOWEST_SHOWN = 5
"""How many of the slowest nodes the summary lists."""
FAILURES_SHOWN = 10
"""How many failures (and models with failed batches) the summary lists before saying how many more."""
MESSAGE_CHARS = 160
SUMMARY_FORMAT_VERSION = 1
"""The version of the JSON summaries (``--format json``); bumped on incompatible changes."""


@dataclass(frozen=True)
class Outcome:
    """Where the trace went, for the summary.

    Attributes:
        destination: E.g. ``sent to http://localhost:4318/v1/traces (http/protobuf) in 1 request``.
        traceparent: Where the next stage's context was written, or None.
        trace_url: The link to the trace (``--trace-url``), or None.
    """

    destination: str
    traceparent: str | None = None
    trace_url: str | None = None


def render_summary(plan: Plan, outcome: Outcome) -> str:
    """Summarise a replay: trace id, where it went, wall time, slowest nodes, failures.

    With spans from dbt's log, also where the slowest nodes' time went (statements,
    opening connections, overhead), the slowest statements and each microbatch model
    whose batches failed.

    Args:
        plan: The replayed plan.
        outcome: Where the trace and the traceparent went.

    Returns:
        A few lines of text.
    """
    root = plan.invocation
    every = nodes(plan)
    counts = status_counts(every)
    within = inside(plan)
    lines = [
        f"trace {plan.trace_id}: {escape(root.name)}, {len(plan.spans)} spans ({_roles(within)})",
        *_dropped(Invocation(root), within),
        f"  {escape(outcome.destination)}",
        *([f"  view it at {escape(outcome.trace_url)}"] if outcome.trace_url else []),
        f"  wall time {root.duration_seconds:.3f} s; "
        + ", ".join(f"{n} {escape(status)}" for status, n in counts.most_common()),
    ]
    lines.extend(_slowest(every, within))
    lines.extend(_slowest_statements(within))
    lines.extend(_failures(every))
    lines.extend(_failed_batches(within))
    analysis = analyse(plan)
    lines.extend(_critical_path(analysis))
    lines.extend(_threads(analysis))
    if outcome.traceparent:
        lines.append(f"  traceparent {plan.context.traceparent} written to {escape(outcome.traceparent)}")
    return "\n".join(lines) + "\n"


def summary_document(
    plan: Plan, destination: str, warnings: Sequence[str] = (), trace_url: str | None = None
) -> dict[str, object]:
    """One run's summary as a JSON-serialisable document (``--format json``), versioned.

    Args:
        plan: The replayed plan.
        destination: Where the spans went, in words.
        warnings: The run's warnings.
        trace_url: The link to the trace (``--trace-url``): the key ``trace_url`` only when given.

    Returns:
        The document; its keys are pinned by a test.
    """
    analysis = analyse(plan)
    every = nodes(plan)
    document: dict[str, object] = {
        "version": SUMMARY_FORMAT_VERSION,
        "trace_id": plan.trace_id,
        "traceparent": plan.context.traceparent,
        "command": plan.invocation.name,
        "invocation_id": Invocation(plan.invocation).invocation_id,
        "destination": destination,
        "spans": len(plan.spans),
        "nodes": len(every),
        "statuses": dict(status_counts(every).most_common()),
        "wall_time_seconds": plan.invocation.duration_seconds,
        "slowest": [_node_entry(n) for n in slowest(every, SLOWEST_SHOWN)],
        "failures": [{**_node_entry(n), "message": n.failure_message} for n in every if n.failed],
        "critical_path": [
            {**_node_entry(step.node), "wait_seconds": step.wait_seconds} for step in analysis.critical_path
        ],
        "critical_path_seconds": analysis.critical_seconds,
        "threads": [
            {"name": t.name, "busy_seconds": t.busy_seconds, "utilisation": t.utilisation, "nodes": t.nodes}
            for t in analysis.threads
        ],
        "execution_window_seconds": analysis.window_seconds,
        "idle_share": analysis.idle_share,
        "warnings": list(warnings),
    }
    if trace_url is not None:
        document["trace_url"] = trace_url
    within = inside(plan)
    if within.logged:  # a plan without dbt's log keeps the document it always had
        document.update(_inside_document(every, within))
    dropped = Invocation(plan.invocation).dropped
    if dropped is not None and dropped.spans:  # only when --phases, --select or --min-duration dropped some
        document["dropped"] = {
            "nodes": dropped.nodes,
            "phases": dropped.phases,
            "inside": dropped.inside,
            "spans": dropped.spans,
            "by": list(Invocation(plan.invocation).dropped_by),
        }
    return document


def _inside_document(every: Sequence[Node], within: Inside) -> dict[str, object]:
    """The keys a plan with spans from dbt's log adds: spans by role, statements, breakdowns, batches."""
    breakdowns = [b for b in map(within.breakdown, every) if b is not None]
    return {
        "span_roles": {role.value: n for role, n in within.counts.items()},
        "slowest_statements": [
            _statement_entry(s) for s in slowest_statements(within.statements, SLOWEST_SHOWN)
        ],
        "node_breakdown": [
            {
                "unique_id": b.node.uid,
                "seconds": b.node.seconds,
                "statements": b.statements,
                "failed_statements": b.failed_statements,
                "connections": b.connections,
                "batches": b.batches,
                "statement_seconds": b.statement_seconds,
                "connection_seconds": b.connection_seconds,
                "overhead_seconds": b.overhead_seconds,
            }
            for b in breakdowns
        ],
        "batches": [
            {
                "unique_id": b.node.uid,
                "batches": b.batches,
                "failed": len(b.failed),
                "failed_windows": list(b.failed_windows),
            }
            for b in within.batches
        ],
    }


def _statement_entry(statement: Statement) -> dict[str, object]:
    return {
        "summary": statement.summary,
        "operation": statement.operation,
        "seconds": statement.seconds,
        "unique_id": statement.node.uid if statement.node is not None else None,
        "connection": statement.connection,
        "status": statement.status_text,
        "rows": statement.rows,
        "query_id": statement.query_id,
        "error": statement.error if statement.failed else None,
    }


def _node_entry(node: Node) -> dict[str, object]:
    return {"unique_id": node.uid, "status": node.status, "seconds": node.seconds}


def _critical_path(analysis: RunAnalysis) -> list[str]:
    steps = analysis.critical_path
    if not steps:
        return []
    lines = [
        f"  critical path: {len(steps)} nodes, {analysis.critical_seconds:.3f} s from first start to last end"
    ]
    for step in steps:
        wait = f"  (waited {step.wait_seconds:.3f} s)" if step.wait_seconds >= 0.0005 else ""
        lines.append(f"    {step.node.seconds:9.3f} s  {escape(step.unique_id)}{wait}")
    return lines


def _threads(analysis: RunAnalysis) -> list[str]:
    if not analysis.threads:
        return []
    lines = [
        f"  threads: {analysis.idle_share:.0%} idle over the {analysis.window_seconds:.3f} s execution window"
    ]
    names = [escape(t.name) for t in analysis.threads]
    width = max(len(name) for name in names)
    for name, thread in zip(names, analysis.threads, strict=True):
        lines.append(
            f"    {name:<{width}}  {thread.utilisation:4.0%} busy  "
            f"{thread.busy_seconds:8.3f} s  {thread.nodes} nodes"
        )
    return lines


def _dropped(invocation: Invocation, within: Inside) -> list[str]:
    """``  kept 12 of 33 nodes and 0 of 60 phases; 81 spans dropped (--phases none)``, when any were."""
    dropped = invocation.dropped
    if dropped is None or not dropped.spans:
        return []
    nodes, phases = within.counts[SpanRole.NODE], within.counts[SpanRole.PHASE]
    by = " ".join(escape(option) for option in invocation.dropped_by)
    return [
        f"  kept {nodes} of {nodes + dropped.nodes} nodes and {phases} of {phases + dropped.phases} phases; "
        f"{_plural(dropped.spans, 'span')} dropped ({by})"
    ]


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "es" if noun.endswith("ch") else "s")


def _roles(within: Inside) -> str:
    """The span count's detail: ``1 invocation, 13 nodes, 24 phases``, then whatever dbt's log added."""
    counts = within.counts
    text = f"1 invocation, {counts[SpanRole.NODE]} nodes, {counts[SpanRole.PHASE]} phases"
    return text + "".join(f", {_plural(counts[role], role.value)}" for role in LOG_ROLES if counts[role])


def _slowest(every: Sequence[Node], within: Inside) -> list[str]:
    ranked = [n for n in slowest(every, SLOWEST_SHOWN) if n.seconds > 0]
    if not ranked:
        return []
    return ["  slowest:"] + [
        f"    {n.seconds:9.3f} s  {escape(n.span.name)}{_where(within.breakdown(n))}" for n in ranked
    ]


def _where(breakdown: Breakdown | None) -> str:
    """Where a node's time went, ``  (0.860 s in 5 statements, 0.158 s overhead)``; empty without a log."""
    if breakdown is None or not (breakdown.statements or breakdown.connections):
        return ""
    failed = f" ({breakdown.failed_statements} failed)" if breakdown.failed_statements else ""
    parts = [f"{breakdown.statement_seconds:.3f} s in {_plural(breakdown.statements, 'statement')}{failed}"]
    if breakdown.connections:
        parts.append(f"{breakdown.connection_seconds:.3f} s opening connections")
    parts.append(f"{breakdown.overhead_seconds:.3f} s overhead")
    return f"  ({', '.join(parts)})"


def _slowest_statements(within: Inside) -> list[str]:
    ranked = [s for s in slowest_statements(within.statements, SLOWEST_SHOWN) if s.seconds > 0]
    if not ranked:
        return []
    return ["  slowest statements:"] + [
        f"    {s.seconds:9.3f} s  {_one_line(s.summary)}  ({escape(s.owner)})"
        + (f"  failed: {_one_line(s.error)}" if s.failed else "")
        for s in ranked
    ]


def _failed_batches(within: Inside) -> list[str]:
    """One line per microbatch model with failed batches: how many of how many, and the first windows."""
    failing = [b for b in within.batches if b.failed]
    lines = []
    for summary in failing[:FAILURES_SHOWN]:
        lines.append(f"  {summary.failure_line(escape)}")
    if len(failing) > FAILURES_SHOWN:
        lines.append(f"  ... and {len(failing) - FAILURES_SHOWN} more microbatch models with failed batches")
    return lines


def _failures(every: Sequence[Node]) -> list[str]:
    failed = [n for n in every if n.failed]
    if not failed:
        return []
    lines = [f"  failures ({len(failed)}):"]
    for node in failed[:FAILURES_SHOWN]:
        lines.append(
            f"    {escape(str(node.status))}  {escape(node.span.name)}: {_one_line(node.failure_message)}"
        )
    if len(failed) > FAILURES_SHOWN:
        lines.append(f"    ... and {len(failed) - FAILURES_SHOWN} more")
    return lines


def _one_line(message: str) -> str:
    """Whitespace collapsed, cut to MESSAGE_CHARS, then escaped (so no escape is cut in half)."""
    text = " ".join(message.split())
    return escape(text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 3] + "...")


def render_run_line(run: RunReport) -> str:
    """One backfill line: outcome, trace id, command, spans, file, and any remark.

    Args:
        run: The run's report.

    Returns:
        A line without its newline.
    """
    parts = [f"{run.outcome.value:<17}", escape(run.trace_id or "-" * 32)]
    if run.command:
        parts.append(f"{escape(run.command)} ({run.nodes} nodes, {run.spans} spans)")
    parts.append(escape(str(run.run_results)))
    line = "  ".join(parts)
    return f"{line}: {escape(' '.join(run.message.split()))}" if run.message else line


def backfill_summary(
    report: BackfillReport, trace_url: Callable[[str, str | None], str] | None = None
) -> dict[str, object]:
    """The backfill as a JSON-serialisable document (``--format json``).

    Args:
        report: The backfill's report.
        trace_url: The link to a trace from its id and its root span's (``--trace-url``): then
            each run with a trace id has the key ``trace_url``.

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
                **({"trace_url": trace_url(run.trace_id, run.span_id)} if trace_url and run.trace_id else {}),
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


def render_resend_line(resent: ResendResult) -> str:
    """The one line a re-send prints: how many spans went where, and whether the file is gone.

    "file removed" only when it was (a device node or a FIFO is read, never deleted).

    Args:
        resent: What re-sending a spill file did.

    Returns:
        A line without its newline.
    """
    delivery = resent.delivery
    line = (
        f"resent {delivery.accepted} of {delivery.total} spans from {escape(str(resent.path))} "
        f"to {escape(delivery.endpoint)}"
    )
    return line + ("; file removed" if resent.removed else "")  # a device or FIFO is never removed
