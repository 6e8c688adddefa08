"""Computed apart from the package, for the view tests to check it against."""

from __future__ import annotations

SUMMARY_KEYS = frozenset(
    {
        "version",
        "trace_id",
        "traceparent",
        "command",
        "invocation_id",
        "destination",
        "spans",
        "nodes",
        "statuses",
        "wall_time_seconds",
        "slowest",
        "failures",
        "critical_path",
        "critical_path_seconds",
        "threads",
        "execution_window_seconds",
        "idle_share",
        "warnings",
    }
)
"""The keys of --format json, pinned: a plan with spans from dbt's log adds four more."""


def union_by_sweep(intervals: list[tuple[int, int]]) -> int:
    """Covered time: walk the sorted boundaries, count what is open."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    covered, open_count, since = 0, 0, 0
    for moment, step in events:
        if open_count > 0:
            covered += moment - since
        open_count += step
        since = moment
    return covered
