"""The --dry-run view: the planned spans as a tree, children under their parents. Pure.

Names, statuses and messages come from the artifacts: each is passed through
:func:`~dbt_otel_replay.terminal.escape` before it reaches the terminal.
"""

from __future__ import annotations

from collections import defaultdict

from ..plan import Plan
from ..spans import PlannedSpan, SpanRole
from ..statuses import StatusCode
from ..terminal import escape
from .node import Node

BATCHES_SHOWN = 10
"""Batch spans the tree draws under one node (the earliest); one line counts the rest."""


def render_tree(plan: Plan) -> str:
    """Draw the planned spans as a tree, children under their parents.

    Args:
        plan: The plan.

    Returns:
        One line per span, with its duration, dbt status and links; past :data:`BATCHES_SHOWN`
        batches of one node, one line for the rest.
    """
    children: dict[str | None, list[PlannedSpan]] = defaultdict(list)
    for span in plan.spans[1:]:
        children[span.parent_span_id].append(span)
    root = plan.invocation
    lines = [f"{_label(root)}  trace {plan.trace_id}"]

    def walk(span_id: str, prefix: str) -> None:
        kids = sorted(children.get(span_id, []), key=lambda s: (s.start_time_unix_nano, s.name))
        batches = [k for k in kids if k.role is SpanRole.BATCH]
        hidden = batches[BATCHES_SHOWN:]
        if hidden:  # a backfilled microbatch model runs hundreds of batches: the trace has them all
            gone = {k.span_id for k in hidden}
            kids = [k for k in kids if k.span_id not in gone]
        for index, child in enumerate(kids):
            last = index == len(kids) - 1 and not hidden
            lines.append(f"{prefix}{'└─ ' if last else '├─ '}{_label(child)}")
            walk(child.span_id, prefix + ("   " if last else "│  "))
        if hidden:
            failed = sum(k.status is StatusCode.ERROR for k in hidden)
            lines.append(f"{prefix}└─ … and {len(hidden)} more batches ({failed} failed)")

    walk(root.span_id, "")
    return "\n".join(lines) + "\n"


def _label(span: PlannedSpan) -> str:
    """One span's line: name, duration, status and links, its artifact text escaped."""
    parts = [escape(span.name), f"{span.duration_seconds:.3f}s"]
    status = Node(span).status  # only node spans carry a dbt status
    if status is not None:
        parts.append(escape(status))
    elif span.status is StatusCode.ERROR:
        parts.append(f"ERROR ({escape(span.status_message)})")
    if span.links:
        parts.append(f"+{len(span.links)} link{'s' if len(span.links) > 1 else ''}")
    return "  ".join(parts)
