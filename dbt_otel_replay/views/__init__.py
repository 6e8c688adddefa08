"""Views of a planned run for people: one library function per view.

The span tree (:mod:`.tree`), the replay and backfill summaries (:mod:`.summary`),
the terminal waterfall (:mod:`.waterfall`), the HTML report (:mod:`.report`) and the
Markdown job summary with the trace's link (:mod:`.markdown`),
built on the run's analysis (:mod:`.analysis`), the shared timeline
(:mod:`.timeline`) and the typed node accessors (:mod:`.node`). Pure rendering
apart from :func:`write_html`; the CLI calls one function per view and decides
where the text goes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .._files import refuse_inputs, write_output
from ..errors import ExportError
from ..plan import Plan
from .analysis import analyse
from .markdown import TRACE_URL_PLACEHOLDERS, check_trace_url, render_markdown, trace_url
from .report import render_html as _render_html
from .summary import (
    Outcome,
    backfill_summary,
    render_backfill_totals,
    render_resend_line,
    render_run_line,
    render_summary,
    summary_document,
)
from .tree import render_tree
from .waterfall import render_waterfall as _render_waterfall

__all__ = [
    "TRACE_URL_PLACEHOLDERS",
    "Outcome",
    "backfill_summary",
    "check_trace_url",
    "render_backfill_totals",
    "render_html",
    "render_markdown",
    "render_resend_line",
    "render_run_line",
    "render_summary",
    "render_tree",
    "render_waterfall",
    "summary_document",
    "trace_url",
    "write_html",
    "write_markdown",
]


def render_waterfall(plan: Plan, *, width: int, color: bool) -> str:
    """The run as lanes per dbt thread on a time axis, with the critical path listed underneath."""
    return _render_waterfall(plan, analyse(plan), width=width, color=color)


def render_html(plan: Plan) -> str:
    """The run as one self-contained HTML page."""
    return _render_html(plan, analyse(plan))


def write_html(plan: Plan, path: Path, inputs: Sequence[Path] = ()) -> None:
    """Write the HTML report of a run to a file (replaced atomically), "-", a device, a FIFO or a symlink.

    Args:
        plan: The run.
        path: Where to write it.
        inputs: The run's artifacts (:attr:`~..replay.ReplayResult.inputs`), which it must not overwrite.

    Raises:
        ConfigError: If the path names one of the inputs (nothing is written).
        ExportError: If the file cannot be written.
    """
    refuse_inputs(path, inputs)
    try:
        write_output(path, render_html(plan))
    except OSError as exc:
        raise ExportError(f"{path}: cannot write the report: {exc.strerror or exc}") from None


def write_markdown(plan: Plan, path: Path, destination: str, url: str | None = None, *, append: bool) -> None:
    """Write the Markdown job summary of a run (:func:`render_markdown`) to a file, "-", a device or a FIFO.

    Args:
        plan: The run.
        path: Where to write it.
        destination: Where the spans went, in words.
        url: The link to the trace, or None.
        append: Add it to what the file holds (``$GITHUB_STEP_SUMMARY``, which every step of a
            job writes to) instead of replacing the file atomically.

    Raises:
        ExportError: If the file cannot be written (when appending, it is left as it was).
    """
    try:
        write_output(path, render_markdown(plan, destination, url), append=append)
    except OSError as exc:
        raise ExportError(f"{path}: cannot write the Markdown summary: {exc.strerror or exc}") from None
