"""The critical path of a dbt run's DAG, from the nodes' recorded windows. Pure.

The critical path is the chain of executed nodes that decided when the run
ended: from the last node to finish, step back to the parent that finished
last before it started (the one that held it back), until a node with no such
parent. The planner marks it on the spans and, with ``--nesting critical``,
nests each node under the parent that held it back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Window:
    """A node's recorded execution window, in Unix nanoseconds."""

    start: int
    end: int


def critical_chain(windows: Mapping[str, Window], parents: Mapping[str, Sequence[str]]) -> list[str]:
    """The chain of nodes that decided the end of the run, first node first.

    No node is stepped to twice, so the walk ends on a manifest whose depends_on has a
    cycle too (zero-length windows at one moment can each "finish before" the other starts).

    Args:
        windows: Each executed node's window (nodes without timing left out).
        parents: Each node's executed parents.

    Returns:
        Unique ids from the start of the chain to the last node to finish; empty
        when no node has a window.
    """
    if not windows:
        return []
    current = max(windows, key=lambda uid: (windows[uid].end, uid))
    chain = [current]
    seen = {current}
    while True:
        start = windows[current].start
        held_back_by = [
            p for p in parents.get(current, ()) if p in windows and p not in seen and windows[p].end <= start
        ]
        if not held_back_by:
            return chain[::-1]
        current = max(held_back_by, key=lambda uid: (windows[uid].end, uid))
        chain.append(current)
        seen.add(current)


def holding_parent(unique_id: str, candidates: Sequence[str], windows: Mapping[str, Window]) -> str | None:
    """The parent that finished last before the node started (what ``--nesting critical`` nests under).

    Args:
        unique_id: The node.
        candidates: Its executed parents.
        windows: Executed nodes' windows.

    Returns:
        That parent, or None when the node has no window or no parent finished before it started.
    """
    window = windows.get(unique_id)
    if window is None:
        return None
    before = [p for p in candidates if p in windows and windows[p].end <= window.start]
    return max(before, key=lambda uid: (windows[uid].end, uid)) if before else None
