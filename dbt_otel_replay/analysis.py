"""Why a run took as long as it did: its critical path and how busy dbt's threads were. Pure.

The critical path is the chain of executed nodes that decided when the run
ended: from the last node to finish, step back to the parent that finished
last before it started (the one that held it back), until a node with no such
parent. Thread utilisation is each dbt thread's busy time against the run's
execution window; its complement, the idle share, tells whether more threads
would help.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from .plan import HOOK_PREFIX, Plan, PlannedSpan
from .timestamps import NANOS_PER_SECOND

UNKNOWN_THREAD = "(no thread)"


@dataclass(frozen=True)
class CriticalStep:
    """One node on the critical path, with the wait between its parent's end and its start."""

    span: PlannedSpan
    wait_seconds: float

    @property
    def unique_id(self) -> str:
        """The node's unique id."""
        return str(self.span.attributes.get("dbt.node.unique_id", self.span.name))


@dataclass(frozen=True)
class ThreadUse:
    """How busy one dbt thread was during the run's execution window."""

    name: str
    busy_seconds: float
    nodes: int
    utilisation: float


@dataclass(frozen=True)
class RunAnalysis:
    """The critical path and the thread utilisation of one run."""

    critical_path: tuple[CriticalStep, ...]
    threads: tuple[ThreadUse, ...]
    window_seconds: float
    idle_share: float

    @property
    def critical_seconds(self) -> float:
        """The critical path's length: from its first node's start to its last node's end."""
        if not self.critical_path:
            return 0.0
        first, last = self.critical_path[0].span, self.critical_path[-1].span
        return (last.end_time_unix_nano - first.start_time_unix_nano) / NANOS_PER_SECOND


def analyse(plan: Plan) -> RunAnalysis:
    """Analyse a planned run: its critical path (as marked by the planner) and its threads.

    Args:
        plan: The plan.

    Returns:
        The analysis.
    """
    # on-run-start/end hooks run on dbt's main thread, outside the DAG and its worker threads
    nodes = [
        s
        for s in plan.nodes
        if s.end_time_unix_nano > s.start_time_unix_nano and not s.name.startswith(HOOK_PREFIX)
    ]
    critical = sorted(
        (s for s in plan.nodes if s.attributes.get("dbt.critical_path") is True),
        key=lambda s: s.start_time_unix_nano,
    )
    steps = []
    previous_end: int | None = None
    for span in critical:
        wait = 0 if previous_end is None else max(span.start_time_unix_nano - previous_end, 0)
        steps.append(CriticalStep(span, wait / NANOS_PER_SECOND))
        previous_end = span.end_time_unix_nano
    if not nodes:
        return RunAnalysis(tuple(steps), (), 0.0, 0.0)
    start = min(s.start_time_unix_nano for s in nodes)
    end = max(s.end_time_unix_nano for s in nodes)
    window = max(end - start, 1)
    busy: dict[str, int] = defaultdict(int)
    counts: dict[str, int] = defaultdict(int)
    for span in nodes:
        thread = str(span.attributes.get("dbt.thread_id") or UNKNOWN_THREAD)
        busy[thread] += span.end_time_unix_nano - span.start_time_unix_nano
        counts[thread] += 1
    threads = tuple(
        ThreadUse(name, busy[name] / NANOS_PER_SECOND, counts[name], min(busy[name] / window, 1.0))
        for name in sorted(busy)
    )
    idle = 1.0 - min(sum(busy.values()) / (window * len(busy)), 1.0)
    return RunAnalysis(tuple(steps), threads, window / NANOS_PER_SECOND, idle)
