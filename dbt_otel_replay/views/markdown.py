"""The run as a Markdown job summary, and the link to its trace. Pure.

:func:`render_markdown` gives what a CI job shows on its summary page (GitHub's
``$GITHUB_STEP_SUMMARY``, or a file for GitLab and others, ``--markdown FILE``):
the run's status, duration, where the trace went and a link to it, the critical
path, the failures and the slowest nodes. Text from the artifacts (node names,
dbt's messages) is escaped by :func:`cell`, so none of it can break a table,
start a link, a code span or LaTeX, or inject HTML.

:func:`check_trace_url` and :func:`trace_url` read and fill a ``--trace-url``
template such as ``https://grafana.example/explore?traceId={trace_id}``; the only
placeholders are those of :data:`TRACE_URL_PLACEHOLDERS`.
"""

from __future__ import annotations

import re
import string
from collections.abc import Collection, Sequence

from ..plan import Plan
from ..terminal import escape
from .analysis import analyse
from .node import Node, nodes, slowest, status_counts

SLOWEST_SHOWN = 5
"""How many of the slowest nodes the summary lists."""
FAILURES_SHOWN = 10
"""How many failures the summary lists before saying how many more."""
CRITICAL_SHOWN = 15
"""How many steps of the critical path the summary lists (the last ones, which ended the run)."""
CELL_CHARS = 160
"""Where a message is cut, before escaping (so no escape is cut in half)."""

TRACE_URL_PLACEHOLDERS = {
    "trace_id": "the trace id, 32 lowercase hex digits",
    "span_id": "the run's root (invocation) span id, 16 lowercase hex digits",
}
"""The placeholders a --trace-url template may use, with what each becomes."""

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|~$])")
"""ASCII punctuation Markdown gives a meaning (with GitHub's tables, strikethrough and math): backslashed."""
_HTML_SPECIAL = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_URL_UNSAFE = {" ": "%20", '"': "%22", "<": "%3C", ">": "%3E", "`": "%60", "|": "%7C", "\\": "%5C"}


def cell(text: str, limit: int = CELL_CHARS) -> str:
    r"""Outside text made safe for a Markdown table cell, or anywhere in a line of Markdown.

    Whitespace runs become one blank (a newline would end the table row), the text is
    cut at ``limit`` characters, control and bidi characters are made visible (as on a
    terminal), ``&``, ``<`` and ``>`` become HTML entities (so no tag is ever written),
    and every other character Markdown gives a meaning (``\ ` * _ { } [ ] ( ) # + ! | ~ $``)
    is backslashed: a pipe cannot split a cell, nor a backquote open a code span.

    Args:
        text: A node name, a status or a message from dbt.
        limit: Characters kept (after collapsing whitespace), the rest replaced by ``...``.

    Returns:
        Markdown that renders as exactly the (collapsed, cut) text.
    """
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    text = _MARKDOWN_SPECIAL.sub(r"\\\1", escape(text))
    return "".join(_HTML_SPECIAL.get(char, char) for char in text)


def check_trace_url(template: str, known: Collection[str] = tuple(TRACE_URL_PLACEHOLDERS)) -> None:
    """Refuse a --trace-url template that cannot be filled in.

    Literal braces are written doubled (``{{`` and ``}}``), as in Python's format strings.

    Args:
        template: E.g. ``https://grafana.example/explore?traceId={trace_id}``.
        known: The placeholders this command can fill in.

    Raises:
        ValueError: Naming what is wrong: an unknown placeholder, a format spec, a lone brace.
    """
    offered = ", ".join(f"{{{name}}}" for name in known)
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"{exc} (write a literal brace twice: {{{{ or }}}})") from None
    for _, name, spec, conversion in fields:
        if name is None:
            continue
        if name not in known:
            raise ValueError(f"unknown placeholder {{{name}}}: use {offered}")
        if spec or conversion:
            raise ValueError(f"{{{name}}} takes no format spec or conversion: write it as {{{name}}}")


def trace_url(template: str, trace_id: str, span_id: str | None = None) -> str:
    """Fill a template checked by :func:`check_trace_url` in.

    Args:
        template: The template.
        trace_id: The trace's id.
        span_id: The root span's id (a backfill's run entries have none: their templates use
            ``{trace_id}`` alone).

    Returns:
        The URL.
    """
    return template.format(trace_id=trace_id, span_id=span_id)


def _link(url: str) -> str:
    """A URL as a Markdown link destination that no table or link syntax can split."""
    return "".join(_URL_UNSAFE.get(char, char) for char in url if char.isprintable())


def render_markdown(plan: Plan, destination: str, url: str | None = None) -> str:
    """The run as Markdown for a CI job's summary page.

    It starts and ends with a blank line, so appended to a summary that other steps write
    (``$GITHUB_STEP_SUMMARY``) it never joins their last paragraph, nor they its last table.

    Args:
        plan: The replayed plan.
        destination: Where the spans went, in words (as the summary says it).
        url: A link to the trace (:func:`trace_url`), or None.

    Returns:
        The Markdown.
    """
    every = nodes(plan)
    failed = [n for n in every if n.failed]
    warned = [n for n in every if n.warned]
    analysis = analyse(plan)
    root = plan.invocation
    if failed:
        status = f"❌ {len(failed)} failed"
    elif warned:
        status = f"⚠️ passed with {len(warned)} warning" + ("" if len(warned) == 1 else "s")
    else:
        status = "✅ passed"
    counts = ", ".join(f"{n} {cell(status_name)}" for status_name, n in status_counts(every).most_common())
    trace = f"`{plan.trace_id}`"
    lines = [
        "",
        f"### dbt-otel-replay: {cell(root.name)}",
        "",
        "| | |",
        "|---|---|",
        f"| status | {status} |",
        f"| duration | {root.duration_seconds:.3f} s |",
        f"| nodes | {len(every)}" + (f" ({counts})" if counts else "") + " |",
        f"| trace | [{trace}](<{_link(url)}>) |" if url else f"| trace | {trace} |",
        f"| spans | {len(plan.spans)}, {cell(destination)} |",
    ]
    if analysis.critical_path:
        steps = analysis.critical_path
        lines += [
            "",
            f"**Critical path**: {len(steps)} nodes, {analysis.critical_seconds:.3f} s",
            "",
            "| seconds | node | waited (s) |",
            "|---:|---|---:|",
        ]
        if len(steps) > CRITICAL_SHOWN:
            lines.append(f"| | ... {len(steps) - CRITICAL_SHOWN} earlier | |")
        lines += [
            f"| {s.node.seconds:.3f} | {cell(s.unique_id)} | {s.wait_seconds:.3f} |"
            for s in steps[-CRITICAL_SHOWN:]
        ]
    lines += _failures(failed)
    ranked = [n for n in slowest(every, SLOWEST_SHOWN) if n.seconds > 0]
    if ranked:
        lines += ["", "**Slowest nodes**", "", "| seconds | node | status |", "|---:|---|---|"]
        lines += [f"| {n.seconds:.3f} | {cell(n.uid)} | {cell(str(n.status))} |" for n in ranked]
    return "\n".join(lines) + "\n\n"


def _failures(failed: Sequence[Node]) -> list[str]:
    if not failed:
        return []
    lines = ["", f"**Failures** ({len(failed)})", "", "| status | node | message |", "|---|---|---|"]
    lines += [
        f"| {cell(str(n.status))} | {cell(n.uid)} | {cell(n.failure_message)} |"
        for n in failed[:FAILURES_SHOWN]
    ]
    if len(failed) > FAILURES_SHOWN:
        lines.append(f"| | ... and {len(failed) - FAILURES_SHOWN} more | |")
    return lines
