"""The dependency graph of a dbt run, rebuilt from the manifest.

It answers the questions the planner asks: which of a node's parents ran in
this run (in the manifest's ``depends_on.nodes`` order), and which of its
ancestors, however far up, failed.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
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
