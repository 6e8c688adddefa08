"""Why a run took as long as it did: its critical path and how busy dbt's threads were. Pure.

The critical path is the chain of executed nodes that decided when the run
ended: from the last node to finish, step back to the parent that finished
last before it started (the one that held it back), until a node with no such
parent. The planner marks it (:mod:`dbt_otel_replay.critical`); this module
reads the marks back as steps with the wait before each. Thread utilisation is
each dbt thread's busy time against the run's execution window; its
complement, the idle share, tells whether more threads would help. Busy time
is the union of a thread's node windows, not their sum: dbt Fusion runs
concurrent nodes under one thread id, and a sum would count overlaps twice.
"""

from __future__ import annotations

import weakref
from collections import defaultdict
from dataclasses import dataclass

from ..plan import Plan
from ..spans import HOOK_PREFIX
from ..timestamps import NANOS_PER_SECOND
from .node import Node, covered, nodes


@dataclass(frozen=True)
class CriticalStep:
    """One node on the critical path, with the wait between its parent's end and its start."""

    node: Node
    wait_seconds: float

    @property
    def unique_id(self) -> str:
        """The node's unique id."""
        return self.node.uid


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
        first, last = self.critical_path[0].node, self.critical_path[-1].node
        return (last.end - first.start) / NANOS_PER_SECOND


_last: tuple[weakref.ref[Plan], RunAnalysis] | None = None
"""The last plan analysed and its analysis: the summary, waterfall, HTML report and job summary
of one run all start from it, and a plan is frozen."""


def analyse(plan: Plan) -> RunAnalysis:
    """Analyse a planned run: its critical path (as marked by the planner) and its threads.

    Args:
        plan: The plan.

    Returns:
        The analysis (the same object for the same plan, asked again).
    """
    global _last
    if _last is not None and _last[0]() is plan:
        return _last[1]
    analysis = _analyse(plan)
    _last = (weakref.ref(plan), analysis)
    return analysis


def _analyse(plan: Plan) -> RunAnalysis:
    every = nodes(plan)
    # on-run-start/end hooks run on dbt's main thread, outside the DAG and its worker threads
    timed = [n for n in every if n.end > n.start and not n.span.name.startswith(HOOK_PREFIX)]
    critical = sorted((n for n in every if n.critical), key=lambda n: n.start)
    steps = []
    previous_end: int | None = None
    for node in critical:
        wait = 0 if previous_end is None else max(node.start - previous_end, 0)
        steps.append(CriticalStep(node, wait / NANOS_PER_SECOND))
        previous_end = node.end
    if not timed:
        return RunAnalysis(tuple(steps), (), 0.0, 0.0)
    start = min(n.start for n in timed)
    end = max(n.end for n in timed)
    window = max(end - start, 1)
    spans: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for node in timed:
        spans[node.thread].append((node.start, node.end))
    busy = {thread: covered(intervals) for thread, intervals in spans.items()}
    counts = {thread: len(intervals) for thread, intervals in spans.items()}
    threads = tuple(
        ThreadUse(name, busy[name] / NANOS_PER_SECOND, counts[name], min(busy[name] / window, 1.0))
        for name in sorted(busy)
    )
    idle = 1.0 - min(sum(busy.values()) / (window * len(busy)), 1.0)
    return RunAnalysis(tuple(steps), threads, window / NANOS_PER_SECOND, idle)
