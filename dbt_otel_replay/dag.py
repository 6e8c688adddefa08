"""The dependency graph of a dbt run, rebuilt from the manifest.

It answers the questions the planner asks: which of a node's parents ran in
this run (in the manifest's ``depends_on.nodes`` order), which of its
ancestors, however far up, failed, and where the chosen parents run in a circle.
A manifest is not always a DAG (hand-edited, or stale against the run), so
nothing here assumes one: every walk remembers where it has been.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from .artifacts import ManifestNode


@dataclass(frozen=True)
class Dag:
    """Parent lists per node, in the order dbt recorded them in ``depends_on.nodes``."""

    parents: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def executed_parents(self, unique_id: str, executed: Collection[str]) -> tuple[str, ...]:
        """The node's direct parents that have a result in this run, first parent first.

        Args:
            unique_id: The node.
            executed: The unique ids that have a result in run_results.json.

        Returns:
            The parents, without duplicates, in manifest order.
        """
        seen: dict[str, None] = {}
        for parent in self.parents.get(unique_id, ()):
            if parent in executed and parent != unique_id:
                seen.setdefault(parent)
        return tuple(seen)

    def ancestors(self, unique_id: str) -> Iterator[str]:
        """Every node upstream of ``unique_id``, nearest first, each once.

        Safe on a cyclic graph: each node is visited once, and ``unique_id`` itself is never
        yielded, even when a cycle leads back to it.

        Args:
            unique_id: The node to start from (not itself yielded).

        Yields:
            Unique ids in breadth-first order.
        """
        seen = {unique_id}
        frontier = list(self.parents.get(unique_id, ()))
        while frontier:
            next_frontier: list[str] = []
            for node in frontier:
                if node in seen:
                    continue
                seen.add(node)
                yield node
                next_frontier.extend(self.parents.get(node, ()))
            frontier = next_frontier


def build_dag(nodes: Mapping[str, ManifestNode]) -> Dag:
    """Build the graph of a manifest's entries (see :meth:`Manifest.lookup`); none give no edges.

    Args:
        nodes: Every manifest entry by unique id.

    Returns:
        The graph.
    """
    return Dag({unique_id: tuple(node.parents) for unique_id, node in nodes.items() if node.parents})


def parent_cycles(parent_of: Mapping[str, str], order: Sequence[str]) -> list[tuple[str, ...]]:
    """The cycles of a graph in which each node has at most one parent (the span each node nests under).

    A span whose parent chain loops never reaches the invocation span, and a trace
    viewer cannot place it; the planner breaks each cycle this finds. One walk per
    node, each node visited once: linear in the number of nodes.

    Args:
        parent_of: Each node's one parent (nodes without a parent left out).
        order: Every node, in the order that decides where a cycle starts (run_results order).

    Returns:
        Each cycle once, starting at its member that comes first in ``order`` and
        going parent-ward; the cycles in the order of those first members.
    """
    position = {node: index for index, node in enumerate(order)}
    walked: dict[str, int] = {}  # node -> the walk that reached it first
    cycles: list[tuple[str, ...]] = []
    for walk, start in enumerate(order):
        path: list[str] = []
        node: str | None = start
        while node is not None and node not in walked:
            walked[node] = walk
            path.append(node)
            node = parent_of.get(node)
        if node is not None and walked[node] == walk:  # this walk came back onto its own path
            loop = path[path.index(node) :]
            first = min(range(len(loop)), key=lambda i: position.get(loop[i], len(position)))
            cycles.append((*loop[first:], *loop[:first]))
    cycles.sort(key=lambda cycle: position.get(cycle[0], len(position)))
    return cycles


def on_cycles(parents: Mapping[str, Sequence[str]], order: Sequence[str]) -> list[str]:
    """The nodes that lie on a cycle of the graph: those that are, through their parents, their own ancestor.

    dbt refuses a cyclic project, so a cycle means a hand-edited manifest or one that does
    not match the run; the planner warns about it whether or not the spans' nesting loops.
    Tarjan's strongly connected components, without recursion (a chain of 50,000 models
    is deeper than Python's stack): linear in nodes and edges. A node that names itself
    as its parent alone is not counted (rule 4 already ignores that edge).

    Args:
        parents: Each node's parents.
        order: Every node, in the order to report them (run_results order).

    Returns:
        The nodes on cycles, in ``order``.
    """
    # Walking a cycle parent-ward, the positions cannot fall all the way round: some node on it has a
    # parent that comes later. dbt writes results as they finish, so such nodes are few (skipped ones,
    # unit tests) or none, and the search starts from them alone; it reaches every cycle through them.
    position = {node: at for at, node in enumerate(order)}
    roots: list[str] = []
    for node, at in position.items():
        for parent in parents.get(node, ()):
            if position.get(parent, -1) > at:
                roots.append(node)
                break
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cyclic: set[str] = set()
    for root in roots:
        if root in index:
            continue
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        work = [(root, iter(parents.get(root, ())))]
        while work:
            node, remaining = work[-1]
            for parent in remaining:
                if parent not in index:
                    index[parent] = low[parent] = len(index)
                    stack.append(parent)
                    on_stack.add(parent)
                    work.append((parent, iter(parents.get(parent, ()))))
                    break
                if parent in on_stack:
                    low[node] = min(low[node], index[parent])
            else:
                work.pop()
                if work:
                    child = work[-1][0]
                    low[child] = min(low[child], low[node])
                if low[node] == index[node]:  # node is the root of a component: pop it whole
                    component = [stack.pop()]
                    while component[-1] != node:
                        component.append(stack.pop())
                    on_stack.difference_update(component)
                    if len(component) > 1:
                        cyclic.update(component)
    return [node for node in order if node in cyclic]
