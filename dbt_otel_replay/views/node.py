"""Typed read access to planned spans for the views: the only view code that reads span attributes.

Every key comes from :mod:`dbt_otel_replay.attributes`, so renaming a key in the
planner renames what the views read instead of silently blanking a column. A
:class:`Node` reads one node span, an :class:`Invocation` the invocation span;
:func:`slowest` and :func:`status_counts` are the one ranking and the one count
every view shares.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from .. import attributes as attr
from ..plan import AttributeValue, Plan, PlannedSpan
from ..statuses import FAILED_STATUSES, WARNING_STATUSES, Category, status

UNKNOWN_THREAD = "(no thread)"
"""The thread of a node whose result names none."""


def _text(value: AttributeValue | None) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True, slots=True)
class Node:
    """One node span as the views read it.

    Any other span can be read too (the tree labels every span): what it lacks
    reads as None or as the documented default.

    Attributes:
        span: The planned span.
    """

    span: PlannedSpan

    @property
    def uid(self) -> str:
        """The node's unique id, else the span's name (the planner's stand-in for a missing id)."""
        return str(self.span.attributes.get(attr.NODE_UNIQUE_ID, self.span.name))

    @property
    def status(self) -> str | None:
        """The dbt status verbatim; None on spans that carry none (invocation, phases)."""
        return _text(self.span.attributes.get(attr.STATUS))

    @property
    def category(self) -> Category:
        """The status's class for drawing (colour, glyph, CSS class); unknown statuses are ``other``."""
        return status(self.status).category

    @property
    def failed(self) -> bool:
        """Whether dbt failed the node (error, fail, runtime error): the views list these."""
        return self.status in FAILED_STATUSES

    @property
    def warned(self) -> bool:
        """Whether dbt warned about the node (warn, partial success)."""
        return self.status in WARNING_STATUSES

    @property
    def thread(self) -> str:
        """The dbt thread the node ran on, or :data:`UNKNOWN_THREAD`: one name for lanes and utilisation."""
        return str(self.span.attributes.get(attr.THREAD_ID) or UNKNOWN_THREAD)

    @property
    def critical(self) -> bool:
        """Whether the planner marked the node as on the run's critical path."""
        return self.span.attributes.get(attr.CRITICAL_PATH) is True

    @property
    def short_name(self) -> str:
        """The manifest name (``stg_orders``), else the unique id's last part: for labels with little room."""
        name = self.span.attributes.get(attr.NODE_NAME)
        return str(name) if name else self.span.name.rsplit(".", 1)[-1]

    @property
    def resource_type(self) -> str:
        """The manifest's resource type (``model``), or empty when the manifest did not describe it."""
        return str(self.span.attributes.get(attr.NODE_RESOURCE_TYPE, ""))

    @property
    def message(self) -> str:
        """The message dbt wrote for a node that did not fail (a warning's text), or empty.

        A failure's message is the span's status message, :attr:`failure_message`.
        """
        return str(self.span.attributes.get(attr.MESSAGE, ""))

    @property
    def failure_message(self) -> str:
        """The span's status message: dbt's message for a failed node, else empty."""
        return self.span.status_message

    @property
    def start(self) -> int:
        """When the node started, in Unix nanoseconds."""
        return self.span.start_time_unix_nano

    @property
    def end(self) -> int:
        """When the node ended, in Unix nanoseconds."""
        return self.span.end_time_unix_nano

    @property
    def seconds(self) -> float:
        """How long the node ran."""
        return self.span.duration_seconds

    @property
    def instant(self) -> bool:
        """Whether the node took no time (a skip, drawn as a mark rather than a bar)."""
        return self.span.end_time_unix_nano <= self.span.start_time_unix_nano


@dataclass(frozen=True, slots=True)
class Invocation:
    """The invocation span as the views read it; each field is None when the run did not record it.

    Attributes:
        span: The planned invocation span.
    """

    span: PlannedSpan

    @property
    def command(self) -> str | None:
        """The dbt command (``build``)."""
        return _text(self.span.attributes.get(attr.COMMAND))

    @property
    def project(self) -> str | None:
        """The dbt project's name, from the manifest."""
        return _text(self.span.attributes.get(attr.PROJECT_NAME))

    @property
    def dbt_version(self) -> str | None:
        """The dbt version that wrote the run."""
        return _text(self.span.attributes.get(attr.VERSION))

    @property
    def adapter(self) -> str | None:
        """The adapter type (``postgres``)."""
        return _text(self.span.attributes.get(attr.ADAPTER))

    @property
    def target(self) -> str | None:
        """The target, when it was given on the command line."""
        return _text(self.span.attributes.get(attr.TARGET))

    @property
    def invocation_id(self) -> str | None:
        """The invocation id dbt wrote, verbatim."""
        return _text(self.span.attributes.get(attr.INVOCATION_ID))


def nodes(plan: Plan) -> tuple[Node, ...]:
    """The plan's node spans, in run_results order, as :class:`Node` views.

    Args:
        plan: The plan.

    Returns:
        One view per node span.
    """
    return tuple(Node(span) for span in plan.nodes)


def slowest(nodes: Iterable[Node], count: int) -> list[Node]:
    """The longest nodes, longest first (ties by span name): the one ranking every view lists.

    Args:
        nodes: Nodes.
        count: How many to return at most.

    Returns:
        The slowest, zero-length ones included.
    """
    return heapq.nsmallest(count, nodes, key=lambda n: (n.start - n.end, n.span.name))


def status_counts(nodes: Iterable[Node]) -> Counter[str]:
    """Count nodes by dbt status.

    Args:
        nodes: Nodes.

    Returns:
        A counter keyed by status (a node without one counts as ``None``).
    """
    return Counter(str(n.status) for n in nodes)
