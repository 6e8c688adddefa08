"""Plan the spans inside the nodes from dbt's own log: statements, microbatch batches, connections; pure.

run_results.json times a node and its compile and execute phases; dbt's log
(read by :mod:`.dbtlog`) says which statements ran in them, how long each took,
which microbatch batch they belonged to and when a connection was being opened.
This turns that into spans under the node spans already planned, with the same
determinism: ids derive from the run and the statement's place in the log.
dbt < 1.9 records no result for a project hook (``on-run-start``/``on-run-end``): the log's
hook lines give it a span of its own under the invocation, for its statements to go under.

Where each goes (rule 13 of docs/trace-contract.md): a statement or a connection
under the phase of its node whose time holds it, else under the node's span; a
batch's statements under the batch; statements of no node (project hooks, the
cache, the catalog) under the on-run-start/end hook whose span holds them, else
under the invocation span. One that falls outside its node's span by more than
:data:`CLOCK_SLACK_NS` attaches to the invocation span, with one warning for all; so do, without
a warning, those of a node dbt recorded no timing for (its span is a zero-length stand-in).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

from . import attributes as attr
from .dbtlog import ConnectionWait, InvocationLog, LogBatch, LogHook, LogStatement
from .spans import HOOK_PREFIX, SQL_TRUNCATION_MARK, AttributeValue, PlannedSpan, SpanKind, SpanRole
from .statuses import StatusCode

CLOCK_SLACK_NS = 5_000_000
"""How far (5 ms) a statement may stick out of its node's span and still be its own: the log's and
run_results' clocks are read at slightly different moments."""
OUTSIDE_SHOWN = 3
"""How many statements outside their node the warning names."""

Derive = Callable[..., str]


def inside_spans(
    log: InvocationLog,
    spans: Sequence[PlannedSpan],
    derive: Derive,
    *,
    db_system: str | None,
    include_sql: bool,
    sql_max_chars: int,
    warnings: list[str],
) -> list[PlannedSpan]:
    """The spans dbt's log adds inside the planned node spans, parents before children.

    Args:
        log: The invocation's log.
        spans: The planned invocation, node and phase spans (the invocation first).
        derive: The plan's span id derivation (``_SpanIds.derive``).
        db_system: ``db.system.name`` of the run's adapter.
        include_sql: Export each statement's SQL.
        sql_max_chars: Where that SQL is cut.
        warnings: Receives one line when statements fall outside their node's span.

    Returns:
        Hook spans (of hooks run_results does not list), then batch, connection and statement spans.
    """
    places = _Places(spans)
    out: list[PlannedSpan] = []
    for hook in log.hooks:
        if hook.node_id not in places.nodes and hook.node_id not in places.log_hooks:
            span = _hook_span(hook, log.statements, places.invocation, derive)
            places.log_hooks[hook.node_id] = span
            places.hooks.append(span)
            out.append(span)
    outside: list[str] = []
    batch_spans: dict[tuple[str, int], PlannedSpan] = {}
    for batch in log.batches:
        span = _batch_span(batch, places, derive, outside)
        batch_spans[(batch.node_id, batch.index)] = span
        out.append(span)
    for number, wait in enumerate(log.waits):
        out.append(_connection_span(number, wait, places, derive, outside))
    for number, statement in enumerate(log.statements):
        batch_span = (
            batch_spans.get((statement.node_id, statement.batch_index))
            if statement.node_id is not None and statement.batch_index is not None
            else None
        )
        out.append(
            _statement_span(
                number,
                statement,
                places,
                batch_span,
                derive,
                outside,
                db_system=db_system,
                sql_max_chars=sql_max_chars if include_sql else None,
            )
        )
    if outside:
        shown = "; ".join(outside[:OUTSIDE_SHOWN]) + (
            f"; and {len(outside) - OUTSIDE_SHOWN} more" if len(outside) > OUTSIDE_SHOWN else ""
        )
        warnings.append(
            f"dbt's log: {len(outside)} span(s) fall outside their node's time in run_results.json "
            f"({shown}); they are attached to the invocation span"
        )
    return out


class _Places:
    """Where a span of the log can go: each node's span, its phases, the hooks, the invocation."""

    def __init__(self, spans: Sequence[PlannedSpan]) -> None:
        self.invocation = spans[0]
        self.nodes: dict[str, PlannedSpan] = {}
        self.phases: dict[str, list[PlannedSpan]] = {}
        by_id: dict[str, PlannedSpan] = {}
        for span in spans:
            by_id[span.span_id] = span
            if span.role is SpanRole.NODE:
                self.nodes[str(span.attributes.get(attr.NODE_UNIQUE_ID, span.name))] = span
        for span in spans:
            if span.role is SpanRole.PHASE and span.parent_span_id in by_id:
                node = by_id[span.parent_span_id]
                self.phases.setdefault(str(node.attributes.get(attr.NODE_UNIQUE_ID, node.name)), []).append(
                    span
                )
        self.hooks = [span for uid, span in self.nodes.items() if uid.startswith(HOOK_PREFIX)]
        self.log_hooks: dict[str, PlannedSpan] = {}
        """The hooks run_results does not list (dbt < 1.9), by unique_id: their spans from the log."""

    def parent(self, node_id: str | None, start: int, end: int, outside: list[str], what: str) -> PlannedSpan:
        """The span to nest a log span of ``node_id`` lasting ``start``..``end`` under."""
        if node_id is None or node_id in self.log_hooks:
            # a hook's span from the log holds what dbt logged while it ran (dbt < 1.6 went on
            # naming the hook as the node of the statements after it: those go by their time)
            return next((h for h in self.hooks if _holds(h, start, end)), self.invocation)
        node = self.nodes.get(node_id)
        if node is None:  # a node run_results does not list (another invocation's?): not ours to place
            return self.invocation
        if node_id not in self.phases:  # dbt timed nothing (dbt < 1.6 on an error): a stand-in span
            return self.invocation
        if not _holds(node, start, end):
            outside.append(f"{what} of {node_id}")
            return self.invocation
        return next((p for p in self.phases.get(node_id, ()) if _holds(p, start, end)), node)

    def namespace(self, node_id: str | None) -> AttributeValue | None:
        node = self.nodes.get(node_id) if node_id is not None else None
        return node.attributes.get(attr.DB_NAMESPACE) if node is not None else None


def _holds(span: PlannedSpan, start: int, end: int) -> bool:
    # a hook's span from the log is timed by the same clock as what it holds: no slack
    slack = 0 if span.role is SpanRole.HOOK else CLOCK_SLACK_NS
    return span.start_time_unix_nano - slack <= start and end <= span.end_time_unix_nano + slack


def _hook_span(
    hook: LogHook, statements: Sequence[LogStatement], invocation: PlannedSpan, derive: Derive
) -> PlannedSpan:
    """A hook's span from its log lines.

    dbt < 1.9 logs no end line for a hook whose statement failed (the error ends the run's
    hooks): such a hook ends with its last statement, and fails with that statement's error.
    """
    end, error = hook.end_ns, None
    if end is None:
        own = [s for s in statements if s.node_id == hook.node_id and s.start_ns >= hook.start_ns]
        end = max((_statement_end(s) for s in own), default=hook.start_ns)
        error = next((s.error for s in own if s.error), None)
    failed = hook.ok is False or error is not None
    return PlannedSpan(
        role=SpanRole.HOOK,
        span_id=derive("hook", hook.node_id),
        parent_span_id=invocation.span_id,
        name=hook.node_id,  # as dbt 1.9 and later name the hook's node span
        start_time_unix_nano=hook.start_ns,
        end_time_unix_nano=max(end, hook.start_ns),
        attributes=_present(
            {
                attr.HOOK_UNIQUE_ID: hook.node_id,
                attr.HOOK_TYPE: hook.hook_type,
                attr.HOOK_STATUS: hook.status,
            }
        ),
        status=StatusCode.ERROR if failed else StatusCode.UNSET,
        status_message=(error or hook.status or "hook failed") if failed else "",
    )


def _statement_end(statement: LogStatement) -> int:
    """When a statement ended: its start plus dbt's elapsed time, or (dbt < 1.8) its status line."""
    if statement.answered_ns is not None and statement.start_ns <= statement.answered_ns:
        return statement.answered_ns  # dbt < 1.8 printed tenths: the status line's time is exact
    return statement.start_ns + (statement.elapsed_ns or 0)


def _batch_span(batch: LogBatch, places: _Places, derive: Derive, outside: list[str]) -> PlannedSpan:
    end = batch.end_ns if batch.end_ns is not None else batch.start_ns
    what = f"batch {batch.index} of {batch.total}"
    parent = places.parent(batch.node_id, batch.start_ns, end, outside, what)
    failed = batch.ok is False
    return PlannedSpan(
        role=SpanRole.BATCH,
        span_id=derive("batch", batch.node_id, str(batch.index)),
        parent_span_id=parent.span_id,
        name=f"batch {batch.index}/{batch.total} {batch.window_start}",
        start_time_unix_nano=batch.start_ns,
        end_time_unix_nano=end,
        attributes=_present(
            {
                attr.BATCH_INDEX: batch.index,
                attr.BATCH_TOTAL: batch.total,
                attr.BATCH_WINDOW_START: batch.window_start,
            }
        ),
        status=StatusCode.ERROR if failed else StatusCode.UNSET,
        status_message=(batch.message or "batch failed") if failed else "",
    )


def _connection_span(
    number: int, wait: ConnectionWait, places: _Places, derive: Derive, outside: list[str]
) -> PlannedSpan:
    parent = places.parent(wait.node_id, wait.start_ns, wait.end_ns, outside, "opening a connection")
    return PlannedSpan(
        role=SpanRole.CONNECTION,
        span_id=derive("connection", str(number)),
        parent_span_id=parent.span_id,
        name="open connection",
        start_time_unix_nano=wait.start_ns,
        end_time_unix_nano=wait.end_ns,
        attributes=_present({attr.CONNECTION_NAME: wait.connection, attr.THREAD_NAME: wait.thread or None}),
        kind=SpanKind.CLIENT,
    )


def _statement_span(
    number: int,
    statement: LogStatement,
    places: _Places,
    batch: PlannedSpan | None,
    derive: Derive,
    outside: list[str],
    *,
    db_system: str | None,
    sql_max_chars: int | None,
) -> PlannedSpan:
    start = statement.start_ns
    end = _statement_end(statement)
    if batch is not None and _holds(batch, start, end):
        parent = batch
    else:
        parent = places.parent(statement.node_id, start, end, outside, f"statement {statement.summary!r}")
    sql = statement.sql if sql_max_chars is not None else None
    if sql is not None and sql_max_chars is not None and len(sql) > sql_max_chars:
        sql = sql[:sql_max_chars] + SQL_TRUNCATION_MARK
    return PlannedSpan(
        role=SpanRole.STATEMENT,
        span_id=derive("statement", str(number)),
        parent_span_id=parent.span_id,
        name=statement.summary,
        start_time_unix_nano=start,
        end_time_unix_nano=end,
        attributes=_present(
            {
                attr.DB_SYSTEM_NAME: db_system,
                attr.DB_NAMESPACE: places.namespace(statement.node_id),
                attr.DB_OPERATION_NAME: statement.operation,
                attr.DB_QUERY_SUMMARY: statement.summary,
                attr.STATEMENT_STATUS: statement.status,
                attr.STATEMENT_ROWS: statement.rows,
                attr.QUERY_ID: statement.query_id,
                attr.CONNECTION_NAME: statement.connection,
                attr.THREAD_NAME: statement.thread or None,
                attr.DB_QUERY_TEXT: sql,
            }
        ),
        status=StatusCode.ERROR if statement.error else StatusCode.UNSET,
        status_message=statement.error or "",
        kind=SpanKind.CLIENT,
    )


def _present(attributes: Mapping[str, AttributeValue | None]) -> dict[str, AttributeValue]:
    return {k: v for k, v in attributes.items() if v is not None}


def node_times(results: Iterable[tuple[str, int | None, int | None]]) -> dict[str, tuple[int, int]]:
    """unique_id -> (start, end) of each timed result: what the log's times are aligned with."""
    return {uid: (start, end) for uid, start, end in results if start is not None and end is not None}
