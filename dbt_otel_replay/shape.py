"""What to keep of a planned trace: phases, a selection of nodes, a minimum duration; pure.

A dbt build is three spans a node (the node, compile, execute) and, with dbt's log, a few
more per statement: more than some backends want to store or bill. :func:`shape_spans`
takes the planned spans and a :class:`Shape` and returns the spans to keep, with the tree
still whole (rule 14 of docs/trace-contract.md):

- a kept span whose parent was dropped is re-attached to its nearest kept ancestor (a
  statement that ran in a dropped ``compile`` phase to its node, a node whose first parent
  was dropped to that parent's nearest kept ancestor, else the invocation span);
- a dropped node takes its own phases and the spans dbt's log placed inside it with it;
- links to dropped nodes are removed;
- the invocation span says what was dropped (``dbt.dropped.*``) whenever a shape was asked for.

Kept spans keep their ids: only their parent and links can change.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import msgspec

from . import attributes as attr
from .spans import AttributeValue, PlannedSpan, SpanRole
from .statuses import STATUSES
from .timestamps import NANOS_PER_SECOND

Phases = Literal["all", "none"]
"""``all`` keeps each node's compile and execute spans; ``none`` drops them."""

SELECT_METHODS = ("resource_type", "status")
"""What ``--select`` can choose nodes by."""
RESOURCE_TYPES = (
    "model",
    "seed",
    "snapshot",
    "test",
    "unit_test",
    "operation",
    "analysis",
    "sql_operation",
    "function",
)
"""The resource types a dbt invocation executes (``operation``: on-run-start/end hooks)."""


class SelectorError(ValueError):
    """A ``--select`` term that cannot be read; its message is one line saying why."""


@dataclass(frozen=True)
class Selector:
    """Which nodes to keep: those matching any of its terms.

    Each term is ``METHOD:VALUE[,VALUE...]`` with METHOD ``resource_type`` or ``status``;
    a node matches a term when its resource type (or status) is one of the values. Written
    as ``--select resource_type:model --select status:error,fail``: the models, and every
    node that failed.

    Attributes:
        terms: ``(method, values)`` pairs, in the order they were given.
    """

    terms: tuple[tuple[str, tuple[str, ...]], ...]

    @classmethod
    def parse(cls, texts: Iterable[str]) -> Selector | None:
        """Read ``--select`` values; None when there are none.

        Args:
            texts: Each ``METHOD:VALUE[,VALUE...]``. A status with a space may be written with
                an underscore (``status:runtime_error``).

        Raises:
            SelectorError: If a term has no method, an unknown method, no value or an unknown value.
        """
        terms = tuple(_term(text) for text in texts)
        return cls(terms) if terms else None

    def matches(self, resource_type: str, status: str) -> bool:
        """Whether a node of this resource type and status is selected."""
        of = {"resource_type": resource_type, "status": status}
        return any(of[method] in values for method, values in self.terms)

    def __str__(self) -> str:
        """The selector as ``--select`` options (``--select resource_type:model --select status:error``)."""
        return " ".join(f"--select {method}:{','.join(values)}" for method, values in self.terms)


def _term(text: str) -> tuple[str, tuple[str, ...]]:
    method, colon, rest = text.strip().partition(":")
    if not colon:
        raise SelectorError(
            f"{text!r} is not METHOD:VALUE[,VALUE...] (e.g. resource_type:model or status:error,fail)"
        )
    if method not in SELECT_METHODS:
        raise SelectorError(f"{method!r} in {text!r}: select by {' or '.join(SELECT_METHODS)}")
    known = RESOURCE_TYPES if method == "resource_type" else tuple(STATUSES)
    values: list[str] = []
    for raw in rest.split(","):
        value = raw.strip() if method == "resource_type" else raw.strip().replace("_", " ")
        if not value:
            raise SelectorError(f"{text!r} has an empty value: give {method}:VALUE[,VALUE...]")
        if value not in known:
            raise SelectorError(f"{value!r} in {text!r} is not a {method}: one of {', '.join(known)}")
        if value not in values:
            values.append(value)
    return method, tuple(values)


@dataclass(frozen=True)
class Shape:
    """What to keep of the planned spans.

    Attributes:
        phases: ``none`` drops every compile and execute span.
        select: Keep only the nodes it matches (None: every node).
        min_duration: Keep only the nodes that took at least this many seconds (None: every node).
    """

    phases: Phases = "all"
    select: Selector | None = None
    min_duration: float | None = None

    @property
    def active(self) -> bool:
        """Whether anything may be dropped: the default shape keeps the plan exactly as it is."""
        return self.phases != "all" or self.select is not None or self.min_duration is not None

    def describe(self) -> tuple[str, ...]:
        """The options that asked for this shape, as a person would type them."""
        said = [str(self.select)] if self.select is not None else []
        if self.min_duration is not None:
            said.append(f"--min-duration {self.min_duration:g}")
        if self.phases != "all":
            said.append(f"--phases {self.phases}")
        return tuple(said)

    def keeps(self, node: PlannedSpan) -> bool:
        """Whether a node span is kept by the selection and the minimum duration."""
        if self.min_duration is not None:
            nanos = node.end_time_unix_nano - node.start_time_unix_nano
            if nanos < round(self.min_duration * NANOS_PER_SECOND):
                return False
        if self.select is None:
            return True
        return self.select.matches(resource_type(node), str(node.attributes.get(attr.STATUS, "")))


def resource_type(node: PlannedSpan) -> str:
    """A node span's resource type: the manifest's, else the first part of its unique_id."""
    known = node.attributes.get(attr.NODE_RESOURCE_TYPE)
    if known is not None:
        return str(known)
    return str(node.attributes.get(attr.NODE_UNIQUE_ID, node.name)).split(".", 1)[0]


@dataclass(frozen=True)
class Dropped:
    """How many planned spans a shape dropped, by what they were.

    Attributes:
        nodes: Node spans (not selected, or shorter than the minimum duration).
        phases: Compile and execute spans (``--phases none``, or their node was dropped).
        inside: Spans from dbt's log (statements, batches, connections) inside dropped nodes.
    """

    nodes: int = 0
    phases: int = 0
    inside: int = 0

    @property
    def spans(self) -> int:
        """Every dropped span."""
        return self.nodes + self.phases + self.inside


@dataclass(frozen=True)
class Shaped:
    """The spans a shape kept, in the planned order, and what it dropped."""

    spans: tuple[PlannedSpan, ...]
    dropped: Dropped


def shape_spans(spans: Sequence[PlannedSpan], shape: Shape) -> Shaped:
    """Keep what ``shape`` asks for, with every kept span's parent and links among the kept spans.

    Args:
        spans: The planned spans, the invocation first (a node may come before its parent node).
        shape: What to keep.

    Returns:
        The kept spans (the same objects where nothing about them changed) and the counts of
        the dropped ones; kept + dropped = planned. The default shape returns ``spans`` as they are.
    """
    if not shape.active or not spans:
        return Shaped(tuple(spans), Dropped())
    by_id = {span.span_id: span for span in spans}
    dropped_nodes = {s.span_id for s in spans if s.role is SpanRole.NODE and not shape.keeps(s)}
    owners: dict[str, str | None] = {}

    def owner(span: PlannedSpan) -> str | None:
        """The node span a span belongs to (a node: itself; the invocation and what is under it: None)."""
        path: list[str] = []
        current: PlannedSpan | None = span
        found: str | None = None
        while current is not None and current.span_id not in path:
            if current.span_id in owners:
                found = owners[current.span_id]
                break
            path.append(current.span_id)
            if current.role is SpanRole.NODE:
                found = current.span_id
                break
            current = by_id.get(current.parent_span_id or "")
        owners.update(dict.fromkeys(path, found))
        return found

    gone: set[str] = set()
    counts = {SpanRole.NODE: 0, SpanRole.PHASE: 0}
    inside = 0
    for span in spans:
        if span.role is SpanRole.INVOCATION:
            continue
        if (span.role is SpanRole.PHASE and shape.phases == "none") or owner(span) in dropped_nodes:
            gone.add(span.span_id)
            if span.role in counts:
                counts[span.role] += 1
            else:
                inside += 1
    counted = Dropped(nodes=counts[SpanRole.NODE], phases=counts[SpanRole.PHASE], inside=inside)
    kept = [_reattached(span, gone, by_id) for span in spans if span.span_id not in gone]
    kept[0] = _saying_what_was_dropped(kept[0], shape, counted)
    return Shaped(tuple(kept), counted)


def _reattached(span: PlannedSpan, gone: set[str], by_id: dict[str, PlannedSpan]) -> PlannedSpan:
    """The span under its nearest kept ancestor, without links to dropped spans."""
    parent = new_parent = span.parent_span_id
    while new_parent is not None and new_parent in gone:  # the planner's parents never loop
        new_parent = by_id[new_parent].parent_span_id
    links = tuple(link for link in span.links if link.span_id not in gone)
    if new_parent == parent and len(links) == len(span.links):
        return span
    return msgspec.structs.replace(span, parent_span_id=new_parent, links=links)


def _saying_what_was_dropped(root: PlannedSpan, shape: Shape, dropped: Dropped) -> PlannedSpan:
    if root.role is not SpanRole.INVOCATION:  # pragma: no cover - the planner puts it first
        raise AssertionError("the first planned span is not the invocation")
    said: dict[str, AttributeValue] = {
        attr.DROPPED_NODES: dropped.nodes,
        attr.DROPPED_PHASES: dropped.phases,
        attr.DROPPED_SPANS: dropped.spans,
        attr.DROPPED_BY: shape.describe(),
    }
    return msgspec.structs.replace(root, attributes={**root.attributes, **said})
