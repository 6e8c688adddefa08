"""Typed read access to planned spans for the views: the only view code that reads span attributes.

Every key comes from :mod:`dbt_otel_replay.attributes`, so renaming a key in the
planner renames what the views read instead of silently blanking a column. A
:class:`Node` reads one node span, an :class:`Invocation` the invocation span;
:func:`slowest` and :func:`status_counts` are the one ranking and the one count
every view shares.

Inside the nodes, from dbt's log: a :class:`Statement` reads one statement span
and a :class:`Batch` one microbatch batch span. Neither carries the node's unique
id, so :func:`inside` walks each one's parents up to its node span once, and
gives per node a :class:`Breakdown` (time in statements, opening connections,
and the overhead between them) and, for microbatch models, a
:class:`BatchSummary`. A plan without such spans gives an empty :class:`Inside`.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from .. import attributes as attr
from ..plan import Plan
from ..shape import Dropped
from ..spans import AttributeValue, PlannedSpan, SpanRole
from ..statuses import FAILED_STATUSES, WARNING_STATUSES, Category, StatusCode, status
from ..timestamps import NANOS_PER_SECOND

UNKNOWN_THREAD = "(no thread)"
"""The thread of a node whose result names none."""


def _text(value: AttributeValue | None) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True, slots=True)
class _Timed:
    """A span's times, as every span view reads them."""

    span: PlannedSpan

    @property
    def start(self) -> int:
        """When it started, in Unix nanoseconds."""
        return self.span.start_time_unix_nano

    @property
    def end(self) -> int:
        """When it ended, in Unix nanoseconds."""
        return self.span.end_time_unix_nano

    @property
    def seconds(self) -> float:
        """How long it ran."""
        return self.span.duration_seconds


@dataclass(frozen=True, slots=True)
class Node(_Timed):
    """One node span as the views read it.

    Any other span can be read too (the tree labels every span): what it lacks
    reads as None or as the documented default.

    Attributes:
        span: The planned span.
    """

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

    @property
    def dropped(self) -> Dropped | None:
        """What --phases, --select and --min-duration dropped (:mod:`..shape`); None when none was given."""
        spans = _int(self.span.attributes.get(attr.DROPPED_SPANS))
        if spans is None:
            return None
        nodes = _int(self.span.attributes.get(attr.DROPPED_NODES)) or 0
        phases = _int(self.span.attributes.get(attr.DROPPED_PHASES)) or 0
        return Dropped(nodes=nodes, phases=phases, inside=spans - nodes - phases)

    @property
    def dropped_by(self) -> tuple[str, ...]:
        """The options that dropped spans, as typed (``--phases none``)."""
        value = self.span.attributes.get(attr.DROPPED_BY)
        return value if isinstance(value, tuple) else ()


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


def _int(value: AttributeValue | None) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


LOG_ROLES = (SpanRole.STATEMENT, SpanRole.BATCH, SpanRole.CONNECTION, SpanRole.HOOK)
"""The roles of the spans dbt's log adds, in the order the views count them."""
WINDOWS_NAMED = 3
"""Failed batch windows a microbatch model's one line names before saying how many more."""
OWNER_ROLES = (SpanRole.NODE, SpanRole.HOOK)
"""What a span from the log belongs to: a node, or a project hook dbt < 1.9 recorded only in its log."""


@dataclass(frozen=True, slots=True)
class Statement(_Timed):
    """One SQL statement span (from dbt's log) as the views read it.

    Attributes:
        span: The planned statement span.
        node: The node it ran for (its nearest node or log hook span up the parents), or None for a
            statement of no node (the cache, the catalog) or one placed under the invocation.
    """

    node: Node | None = None

    @property
    def summary(self) -> str:
        """``db.query.summary`` (``CREATE VIEW analytics.stg_orders``), else the span's name."""
        return str(self.span.attributes.get(attr.DB_QUERY_SUMMARY) or self.span.name)

    @property
    def operation(self) -> str | None:
        """``db.operation.name`` (``INSERT``), when the statement had one."""
        return _text(self.span.attributes.get(attr.DB_OPERATION_NAME))

    @property
    def status_text(self) -> str | None:
        """The status text dbt logged for the statement (``SELECT 6``, ``OK``), when its log gave one."""
        return _text(self.span.attributes.get(attr.STATEMENT_STATUS))

    @property
    def rows(self) -> int | None:
        """The row count dbt's status text ends with, when it has one."""
        return _int(self.span.attributes.get(attr.STATEMENT_ROWS))

    @property
    def query_id(self) -> str | None:
        """The warehouse's query or job id, when dbt's log gave one."""
        return _text(self.span.attributes.get(attr.QUERY_ID))

    @property
    def connection(self) -> str | None:
        """The connection dbt ran it on (a node's unique id, ``master``, ``list_db_schema``...)."""
        return _text(self.span.attributes.get(attr.CONNECTION_NAME))

    @property
    def thread(self) -> str | None:
        """The thread dbt's log names (its text format cuts names to 10 characters)."""
        return _text(self.span.attributes.get(attr.THREAD_NAME))

    @property
    def failed(self) -> bool:
        """Whether the statement failed (its span's status is ERROR)."""
        return self.span.status is StatusCode.ERROR

    @property
    def error(self) -> str:
        """The message dbt gave for a failed statement, else empty."""
        return self.span.status_message

    @property
    def owner(self) -> str:
        """A short label of what ran it: its node's short name, else ``on <connection>``, else ``-``."""
        if self.node is not None:
            return self.node.short_name
        return f"on {self.connection}" if self.connection else "-"


@dataclass(frozen=True, slots=True)
class Batch:
    """One microbatch batch span (from dbt's log) as the views read it.

    Attributes:
        span: The planned batch span.
    """

    span: PlannedSpan

    @property
    def index(self) -> int:
        """The batch's number, from 1 (``Batch 3 of 5``); 0 if the span lacks it."""
        return _int(self.span.attributes.get(attr.BATCH_INDEX)) or 0

    @property
    def total(self) -> int:
        """How many batches the model ran, as the batch's log line says; 0 if the span lacks it."""
        return _int(self.span.attributes.get(attr.BATCH_TOTAL)) or 0

    @property
    def window(self) -> str:
        """The batch window's start as dbt's log names it (``2024-01-03``), else the span's name."""
        return str(self.span.attributes.get(attr.BATCH_WINDOW_START) or self.span.name)

    @property
    def failed(self) -> bool:
        """Whether the batch failed (its span's status is ERROR)."""
        return self.span.status is StatusCode.ERROR

    @property
    def message(self) -> str:
        """The message dbt gave for a failed batch, else empty."""
        return self.span.status_message


@dataclass(frozen=True)
class Breakdown:
    """Where one node's time went, from the spans dbt's log put inside it.

    Time in statements is the union of their intervals (statements on one connection
    run one after another, but a sum would count any overlap twice), cut to the node's
    span; time opening connections is what connection spans cover besides statements;
    the overhead is the rest of the node's time (dbt's own work: compiling, rendering,
    caching, waiting). The three add up to the node's duration exactly, in nanoseconds.

    Attributes:
        node: The node.
        statements: How many statements ran for it.
        failed_statements: How many of them failed.
        connections: How many times a connection was opened for it.
        batches: How many microbatch batches it ran (0 for other nodes).
        statement_nanos: Time covered by its statements.
        connection_nanos: Time covered by opening connections and not by statements.
    """

    node: Node
    statements: int = 0
    failed_statements: int = 0
    connections: int = 0
    batches: int = 0
    statement_nanos: int = 0
    connection_nanos: int = 0

    @property
    def nanos(self) -> int:
        """The node's duration."""
        return max(self.node.end - self.node.start, 0)

    @property
    def overhead_nanos(self) -> int:
        """The node's time in neither statements nor opening connections."""
        return self.nanos - self.statement_nanos - self.connection_nanos

    @property
    def statement_seconds(self) -> float:
        """Time in statements, in seconds."""
        return self.statement_nanos / NANOS_PER_SECOND

    @property
    def connection_seconds(self) -> float:
        """Time opening connections, in seconds."""
        return self.connection_nanos / NANOS_PER_SECOND

    @property
    def overhead_seconds(self) -> float:
        """The overhead, in seconds."""
        return self.overhead_nanos / NANOS_PER_SECOND


@dataclass(frozen=True)
class BatchSummary:
    """A microbatch model's batches in a few numbers: however many there are, one line's worth.

    Attributes:
        node: The model.
        batches: How many batches it ran: the most its log lines name (``Batch 3 of 5``),
            at least the batch spans found.
        failed: Its failed batches, in batch order.
    """

    node: Node
    batches: int
    failed: tuple[Batch, ...] = ()

    @property
    def failed_windows(self) -> tuple[str, ...]:
        """The windows of the failed batches, in batch order."""
        return tuple(b.window for b in self.failed)

    def failure_line(self, text: Callable[[str], str]) -> str:
        """``model: 334 of 335 batches failed (w2, w3, w4, and 331 more)``: the summary's and the waterfall's.

        Args:
            text: Makes the model's name and each window safe for the view (escapes them).
        """
        windows = self.failed_windows
        named = ", ".join(text(w) for w in windows[:WINDOWS_NAMED])
        more = f", and {len(windows) - WINDOWS_NAMED} more" if len(windows) > WINDOWS_NAMED else ""
        count = f"{len(windows)} of {self.batches} batches failed"
        return f"{text(self.node.short_name)}: {count} ({named}{more})"


@dataclass(frozen=True)
class Inside:
    """What dbt's log put inside a plan's nodes, read once for every view.

    Attributes:
        counts: Spans by role, every role present (zero when absent).
        statements: Every statement span, in plan order, each with its node.
        breakdowns: Per node span id, for each node with a statement, connection or batch inside.
        batches: One summary per microbatch node, in run_results order.
    """

    counts: dict[SpanRole, int]
    statements: tuple[Statement, ...] = ()
    breakdowns: dict[str, Breakdown] = field(default_factory=dict)
    batches: tuple[BatchSummary, ...] = ()

    @property
    def logged(self) -> bool:
        """Whether the plan has any span from dbt's log (else every view renders as without logs)."""
        return any(self.counts[role] for role in LOG_ROLES)

    def breakdown(self, node: Node) -> Breakdown | None:
        """The node's breakdown, or None when dbt's log put nothing inside it."""
        return self.breakdowns.get(node.span.span_id)


def span_counts(plan: Plan) -> dict[SpanRole, int]:
    """How many spans of each role the plan has (every role, zero when absent).

    Args:
        plan: The plan.

    Returns:
        Counts by role, in :class:`~dbt_otel_replay.spans.SpanRole` order.
    """
    counted = Counter(span.role for span in plan.spans)
    return {role: counted[role] for role in SpanRole}


def inside(plan: Plan) -> Inside:
    """Read the statement, batch and connection spans of a plan, each with the node it belongs to.

    Args:
        plan: The plan.

    Returns:
        The statements, the per-node breakdowns and the batch summaries.
    """
    counts = span_counts(plan)
    if not any(counts[role] for role in LOG_ROLES):
        return Inside(counts)
    by_id = {span.span_id: span for span in plan.spans}
    owners: dict[str, PlannedSpan | None] = {}

    def owner(span: PlannedSpan) -> PlannedSpan | None:
        """The nearest node (or log hook) span up the parents, memoised along the way."""
        walked: list[str] = []
        current: PlannedSpan | None = span
        found: PlannedSpan | None = None
        while current is not None:
            if current.span_id in owners:
                found = owners[current.span_id]
                break
            if current.role in OWNER_ROLES:
                found = current
                break
            walked.append(current.span_id)
            parent = current.parent_span_id
            current = by_id.get(parent) if parent is not None else None
        for span_id in walked:
            owners[span_id] = found
        return found

    statements: list[Statement] = []
    statement_times: dict[str, list[tuple[int, int]]] = {}
    connection_times: dict[str, list[tuple[int, int]]] = {}
    failed: Counter[str] = Counter()
    batch_spans: dict[str, list[Batch]] = {}
    node_spans: dict[str, PlannedSpan] = {}
    for span in plan.spans:
        if span.role not in LOG_ROLES or span.role is SpanRole.HOOK:
            continue
        node_span = owner(span)
        node = Node(node_span) if node_span is not None else None
        if span.role is SpanRole.STATEMENT:
            statements.append(Statement(span, node))
        if node_span is None:
            continue
        key = node_span.span_id
        node_spans[key] = node_span
        interval = (
            max(span.start_time_unix_nano, node_span.start_time_unix_nano),
            min(span.end_time_unix_nano, node_span.end_time_unix_nano),
        )
        if span.role is SpanRole.STATEMENT:
            statement_times.setdefault(key, []).append(interval)
            failed[key] += span.status is StatusCode.ERROR
        elif span.role is SpanRole.CONNECTION:
            connection_times.setdefault(key, []).append(interval)
        else:
            batch_spans.setdefault(key, []).append(Batch(span))
    breakdowns: dict[str, Breakdown] = {}
    for key, node_span in node_spans.items():
        in_statements = statement_times.get(key, [])
        in_connections = connection_times.get(key, [])
        covered_statements = covered(in_statements)
        breakdowns[key] = Breakdown(
            Node(node_span),
            statements=len(in_statements),
            failed_statements=failed[key],
            connections=len(in_connections),
            batches=len(batch_spans.get(key, ())),
            statement_nanos=covered_statements,
            connection_nanos=covered(in_statements + in_connections) - covered_statements,
        )
    summaries = tuple(
        _batch_summary(Node(span), batch_spans[span.span_id])
        for span in plan.nodes
        if span.span_id in batch_spans
    )
    return Inside(counts, tuple(statements), breakdowns, summaries)


def _batch_summary(node: Node, batches: Sequence[Batch]) -> BatchSummary:
    ordered = sorted(batches, key=lambda b: (b.index, b.span.start_time_unix_nano))
    total = max([len(ordered), *(b.total for b in ordered)])
    return BatchSummary(node, total, tuple(b for b in ordered if b.failed))


def slowest_statements(statements: Iterable[Statement], count: int) -> list[Statement]:
    """The longest statements, longest first (ties by start, then span id).

    Args:
        statements: Statements.
        count: How many to return at most.

    Returns:
        The slowest, zero-length ones included.
    """
    return heapq.nsmallest(count, statements, key=lambda s: (s.start - s.end, s.start, s.span.span_id))


def covered(intervals: Iterable[tuple[int, int]]) -> int:
    """The time covered by the union of intervals (start, end): overlaps count once, empty ones not at all.

    Args:
        intervals: Intervals in nanoseconds.

    Returns:
        The covered nanoseconds.
    """
    total = 0
    reached: int | None = None  # the end of what is counted so far
    for start, end in sorted(intervals):
        if end <= start:
            continue
        if reached is None or start >= reached:
            total += end - start
            reached = end
        elif end > reached:
            total += end - reached
            reached = end
    return total
