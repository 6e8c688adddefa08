"""Turn validated artifacts into the list of spans that replays the run: pure.

The planner reads no file, no clock and no random source: the same artifacts
and options always give the same spans with the same ids, so a retry or a
backfill never forks one run into two traces. The trace contract it implements
is listed rule by rule in the README.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

import msgspec

from . import attributes as attr
from .artifacts import (
    AdapterResponse,
    Artifacts,
    BatchResults,
    ManifestNode,
    NodeResult,
    RunResults,
    loose_int,
)
from .critical import Window, critical_chain, holding_parent
from .dag import Dag, build_dag, on_cycles, parent_cycles
from .dbtlog import InvocationLog
from .inside import inside_spans
from .shape import Phases, Selector, Shape, shape_spans
from .spans import (
    HOOK_PREFIX,
    SQL_TRUNCATION_MARK,
    AttributeValue,
    PlannedEvent,
    PlannedLink,
    PlannedSpan,
    SpanKind,
    SpanRole,
)
from .statuses import FAILED_STATUSES, StatusCode, status
from .timestamps import NANOS_PER_SECOND

DEFAULT_SQL_MAX_CHARS = 4096
"""How much compiled SQL --include-sql exports per node."""
_RELATION_TYPES = frozenset({"model", "seed", "snapshot"})
_TASK_TYPES = {"model": "build", "seed": "build", "snapshot": "build", "test": "test", "unit_test": "test"}
_DB_SYSTEM_NAMES = {
    "postgres": "postgresql",
    "redshift": "aws.redshift",
    "bigquery": "gcp.bigquery",
    "sqlserver": "microsoft.sql_server",
    "fabric": "microsoft.sql_server",
    "synapse": "microsoft.sql_server",
    "oracle": "oracle.db",
    "mysql": "mysql",
    "databricks": "databricks",
    "spark": "spark",
    "trino": "trino",
    "clickhouse": "clickhouse",
    "duckdb": "duckdb",
    "snowflake": "snowflake",
}
# db.namespace per system, as OpenTelemetry semantic conventions v1.44 define it (docs/db/*.md):
# the generic rule (docs/db/sql.md) joins the components from the most general, `{database}|{schema}`,
# leaving out what is missing; PostgreSQL says the same (docs/db/postgresql.md). MySQL and MariaDB
# (docs/db/mysql.md, mariadb.md) name the database alone, which dbt calls the schema; SQL Server
# (docs/db/sql-server.md) `{instance}|{database}`, and dbt knows no instance; Oracle (docs/db/oracledb.md)
# the database's unique name, which dbt calls the database.
_NAMESPACE_SCHEMA_ONLY = frozenset({"mysql", "mariadb"})
_NAMESPACE_DATABASE_ONLY = frozenset({"microsoft.sql_server", "oracle.db"})
_COMMANDS = {
    "generate": "docs generate",
    "serve": "docs serve",
    "freshness": "source freshness",
    "source-freshness": "source freshness",
    "snapshot-freshness": "source snapshot-freshness",
}
"""``args.which`` to the command people type: dbt-core's ``cli/types.py`` ``Command`` (1.5+) names
``docs generate`` ``generate``, ``docs serve`` ``serve`` and ``source freshness`` ``freshness``;
the argparse CLI before 1.5 wrote ``source-freshness`` (``snapshot-freshness`` before 0.21). The
others (``build``, ``run``, ``run-operation``, ``list`` ...) are typed as written."""
_ARGS = {
    "select": attr.ARGS_SELECT,
    "exclude": attr.ARGS_EXCLUDE,
    "selector": attr.ARGS_SELECTOR,
    "full_refresh": attr.ARGS_FULL_REFRESH,
    "threads": attr.ARGS_THREADS,
    "target": attr.ARGS_TARGET,
    "state": attr.ARGS_STATE,
    "defer": attr.ARGS_DEFER,
}
"""The invocation arguments people filter on (never ``vars``: see --include-sql)."""
_LIST_ARGS = frozenset({"select", "exclude"})
_FAILED_SHOWN = 3
"""How many failing nodes the invocation span's status message names."""
_ERROR_CLASSES = {
    "Database Error": "DbtDatabaseError",
    "Compilation Error": "CompilationError",
    "Runtime Error": "DbtRuntimeError",
    "Internal Error": "DbtInternalError",
    "Parsing Error": "ParsingError",
    "Validation Error": "DbtValidationError",
}
"""The exception classes (dbt_common.exceptions) whose ``MESSAGE`` starts a failed node's message:
``Database Error in model orders (models/orders.sql)``."""
_ERROR_PREFIX = re.compile(r"\s*([A-Z][a-z]+ Error)\b")


Nesting = Literal["first-parent", "critical", "flat"]


@dataclass(frozen=True)
class TraceContext:
    """A W3C trace context: the upstream parent of a run, or what the next stage joins.

    Attributes:
        trace_id: 32 lowercase hex digits.
        span_id: 16 lowercase hex digits.
        trace_flags: The W3C flags byte (1 = sampled).
        tracestate: The vendor-specific ``tracestate`` header, if any.
    """

    trace_id: str
    span_id: str
    trace_flags: int = 1
    tracestate: str | None = None

    @property
    def traceparent(self) -> str:
        """The context as a version-00 ``traceparent`` header value."""
        return f"00-{self.trace_id}-{self.span_id}-{self.trace_flags:02x}"


@dataclass(frozen=True)
class Plan:
    """The replay of one dbt invocation: every span, in parent-before-child order."""

    trace_id: str
    spans: tuple[PlannedSpan, ...]
    context: TraceContext
    warnings: tuple[str, ...] = ()

    @property
    def invocation(self) -> PlannedSpan:
        """The span of the dbt invocation itself (the first span)."""
        return self.spans[0]

    @cached_property
    def nodes(self) -> tuple[PlannedSpan, ...]:
        """The node spans, in run_results order."""
        return tuple(s for s in self.spans if s.role is SpanRole.NODE)


@dataclass(frozen=True)
class PlanOptions:
    """Choices that change what the trace contains.

    Attributes:
        upstream: A context to join: the invocation span becomes its child.
        include_sql: Export compiled SQL and ``args.vars`` (off: they can hold secrets).
        dbt_env: Export ``metadata.env`` (dbt's ``DBT_ENV_CUSTOM_ENV_*`` variables) as
            ``dbt.env.<name>`` on the invocation span (--no-dbt-env: off).
        sql_max_chars: Where compiled SQL is cut when it is exported.
        nesting: ``first-parent`` nests a node under its first executed parent (the
            contract's default); ``critical`` under the parent that finished last
            before it started. The other parents are links either way; ``flat`` nests every
            node under the invocation span, with all of its parents as links.
        phases: ``none`` leaves out the compile and execute spans (see :mod:`.shape`).
        select: Keep only the nodes it matches, re-attaching the rest of the tree.
        min_duration: Keep only the nodes that took at least this many seconds.
    """

    upstream: TraceContext | None = None
    include_sql: bool = False
    sql_max_chars: int = DEFAULT_SQL_MAX_CHARS
    nesting: Nesting = "first-parent"
    dbt_env: bool = True
    phases: Phases = "all"
    select: Selector | None = None
    min_duration: float | None = None


def command_name(which: str) -> str:
    """The dbt command as people type it, from ``args.which``: ``generate`` is ``docs generate``.

    Args:
        which: run_results' ``args.which``.

    Returns:
        The command (the invocation span is named ``dbt <command>``).
    """
    return _COMMANDS.get(which, which)


def plan_trace(
    artifacts: Artifacts, options: PlanOptions | None = None, log: InvocationLog | None = None
) -> Plan:
    """Plan the spans that replay one dbt invocation.

    Args:
        artifacts: The run's validated artifacts.
        options: What to include and which upstream context to join.
        log: What dbt's log says of this invocation (see :mod:`.dbtlog`): its statements,
            microbatch batches and connections become spans inside the nodes (:mod:`.inside`).

    Returns:
        The plan: the invocation span first, then each node span followed by its phases, then
        the spans from the log (batches, connections, statements).
    """
    options = options or PlanOptions()
    run = artifacts.run_results
    warnings: list[str] = []
    invocation_key = _invocation_key(run, artifacts, warnings)
    trace_id = options.upstream.trace_id if options.upstream else invocation_key
    # the run's identity, not only its invocation id: runs that share one never share span ids
    ids = _SpanIds(trace_id, artifacts.identity or invocation_key)
    invocation = _invocation_span(artifacts, ids, options)
    spans = [invocation]
    nodes = artifacts.manifest.lookup() if artifacts.manifest else {}
    spans.extend(_node_spans(artifacts, nodes, ids, invocation, options, warnings))
    if log is not None:
        adapter = artifacts.manifest.metadata.adapter_type if artifacts.manifest else None
        spans.extend(
            inside_spans(
                log,
                spans,
                ids.derive,
                db_system=db_system_name(adapter),
                include_sql=options.include_sql,
                sql_max_chars=options.sql_max_chars,
                warnings=warnings,
            )
        )
    spans = [_with_error_type(span) for span in spans]
    context = TraceContext(
        trace_id=trace_id,
        span_id=invocation.span_id,
        # The upstream's sampled and random-trace-id flags go on to the next stage; unknown bits are zeroed.
        trace_flags=options.upstream.trace_flags & 0x03 if options.upstream else 1,
        tracestate=options.upstream.tracestate if options.upstream else None,
    )
    shape = Shape(phases=options.phases, select=options.select, min_duration=options.min_duration)
    kept = shape_spans(spans, shape).spans
    return Plan(trace_id=trace_id, spans=kept, context=context, warnings=tuple(warnings))


class _SpanIds:
    """Derives span ids from the trace id, the run's identity and the span's role and node."""

    def __init__(self, trace_id: str, run_identity: str) -> None:
        self.trace_id = trace_id
        self.run_identity = run_identity
        self._prefix = _json_array([trace_id, run_identity])[:-1] + ", "

    def derive(self, *parts: str) -> str:
        """The span id for these parts: the first non-zero 8 bytes of SHA-256 over a JSON array.

        JSON keeps the parts apart whatever characters they hold (no separator can collide);
        the array is ``[trace_id, run_identity, *parts]`` as ``json.dumps`` writes it.
        """
        if _JSON_ESCAPED.search("".join(parts)) is None:
            key = self._prefix + '"' + '", "'.join(parts) + '"]'
        else:
            key = json.dumps([self.trace_id, self.run_identity, *parts], ensure_ascii=False)
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()
        for offset in range(0, len(digest) - 7, 8):
            candidate = digest[offset : offset + 8]
            if candidate != _ZERO_ID:
                return candidate.hex()
        raise AssertionError("a SHA-256 digest of only zero bytes")  # pragma: no cover


_ZERO_ID = bytes(8)
_JSON_ESCAPED = re.compile(r'["\\\x00-\x1f]')
"""The characters json.dumps escapes in a string (with ensure_ascii=False)."""


def _json_array(parts: list[str]) -> str:
    """``json.dumps(parts, ensure_ascii=False)``, built directly when no part needs escaping."""
    if _JSON_ESCAPED.search("".join(parts)) is None:
        return '["' + '", "'.join(parts) + '"]'
    return json.dumps(parts, ensure_ascii=False)


def _invocation_key(run: RunResults, artifacts: Artifacts, warnings: list[str]) -> str:
    """The invocation id without dashes, or a stable stand-in derived from the artifacts."""
    raw = (run.metadata.invocation_id or "").replace("-", "").lower()
    if len(raw) == 32 and all(c in "0123456789abcdef" for c in raw) and raw.strip("0"):
        return raw
    seed = "\x1f".join([str(run.metadata.generated_at), run.command, *(r.unique_id for r in run.results)])
    derived = hashlib.sha256(seed.encode()).hexdigest()[:32]
    warnings.append(
        f"{artifacts.run_results_path}: invocation_id {run.metadata.invocation_id!r} is not a usable "
        f"trace id; using {derived}, derived from the artifacts (stable across replays)"
    )
    return derived


def _invocation_span(artifacts: Artifacts, ids: _SpanIds, options: PlanOptions) -> PlannedSpan:
    run = artifacts.run_results
    end = run.metadata.generated_at
    start: int | None = run.metadata.invocation_started_at
    if start is None:
        start = end - _elapsed_nanos(run.elapsed_time, end)
    failures = [r for r in run.results if r.status in FAILED_STATUSES]
    attributes = _invocation_attributes(artifacts, options)
    if failures:  # the pipeline run failed as its first failed task did
        attributes[attr.ERROR_TYPE] = failures[0].status
    return PlannedSpan(
        role=SpanRole.INVOCATION,
        span_id=ids.derive("invocation"),
        parent_span_id=options.upstream.span_id if options.upstream else None,
        name=f"dbt {command_name(run.command)}",
        start_time_unix_nano=start,
        end_time_unix_nano=end,
        attributes=attributes,
        status=StatusCode.ERROR if failures else StatusCode.UNSET,
        status_message=_failure_summary(failures),
        kind=SpanKind.SERVER,
    )


def _failure_summary(failures: Sequence[NodeResult]) -> str:
    """``1 error, 1 fail: model.p.a, test.p.b``: how many of each failed status, then the first few nodes."""
    if not failures:
        return ""
    counts = Counter(r.status for r in failures)
    message = ", ".join(f"{count} {status}" for status, count in sorted(counts.items()))
    shown = ", ".join(r.unique_id or "''" for r in failures[:_FAILED_SHOWN])
    more = f" and {len(failures) - _FAILED_SHOWN} more" if len(failures) > _FAILED_SHOWN else ""
    return f"{message}: {shown}{more}"


def error_type(status_name: str, message: str | None) -> str:
    """``error.type`` of a failed span: the dbt exception class its message names, else the dbt status.

    Args:
        status_name: The result's dbt status.
        message: dbt's message for it (``Database Error in model orders ...``).

    Returns:
        ``DbtDatabaseError``, ``CompilationError`` ... when the message starts with one's
        ``MESSAGE``, else the status (``error``, ``fail``, ``runtime error``).
    """
    match = _ERROR_PREFIX.match(message or "")
    known = _ERROR_CLASSES.get(match.group(1)) if match else None
    return known or status_name


def _with_error_type(span: PlannedSpan) -> PlannedSpan:
    """A failed span from dbt's log (a statement, a batch) with ``error.type``; any other as it is."""
    if span.status is not StatusCode.ERROR or attr.ERROR_TYPE in span.attributes:
        return span
    attributes = {**span.attributes, attr.ERROR_TYPE: error_type("error", span.status_message)}
    return msgspec.structs.replace(span, attributes=attributes)


def _invocation_attributes(artifacts: Artifacts, options: PlanOptions) -> dict[str, AttributeValue]:
    run, manifest = artifacts.run_results, artifacts.manifest
    adapter = manifest.metadata.adapter_type if manifest else None
    attributes: dict[str, AttributeValue | None] = {
        attr.INVOCATION_ID: run.metadata.invocation_id,
        attr.VERSION: run.metadata.dbt_version,
        attr.COMMAND: run.command,
        attr.PROJECT_NAME: manifest.metadata.project_name if manifest else None,
        attr.TARGET: run.arguments.target,
        attr.DEPLOYMENT_ENVIRONMENT_NAME: run.arguments.target,
        attr.ADAPTER: adapter,
        attr.DB_SYSTEM_NAME: db_system_name(adapter),
        attr.ELAPSED_TIME: run.elapsed_time,
        attr.RESULT_COUNT: len(run.results),
        attr.VARS: run.arguments.vars_json if options.include_sql else None,
        attr.PIPELINE_NAME: (manifest.metadata.project_name if manifest else None)
        or f"dbt {command_name(run.command)}",
        attr.PIPELINE_RUN_ID: run.metadata.invocation_id,
        attr.PIPELINE_RESULT: (
            "failure" if any(r.status in FAILED_STATUSES for r in run.results) else "success"
        ),
    }
    for name, key in _ARGS.items():
        attributes[key] = _argument(getattr(run.arguments, name), listed=name in _LIST_ARGS)
    if options.dbt_env and isinstance(run.metadata.env, dict):
        for name, value in sorted(run.metadata.env.items()):
            if isinstance(name, str) and name and isinstance(value, (str, int, float)):
                attributes[attr.ENV_PREFIX + name] = str(value)
    return _present(attributes)


def _argument(value: object, *, listed: bool) -> AttributeValue | None:
    """An invocation argument as an attribute: lists as string arrays; flags, counts and text as they are."""
    if listed:
        if isinstance(value, str):
            return (value,) if value else None
        if isinstance(value, list):
            return tuple(str(item) for item in value if isinstance(item, (str, int, float)))
        return None
    return value if isinstance(value, (str, bool, int)) else None


def _elapsed_nanos(elapsed_time: float | None, end: int) -> int:
    """elapsed_time in nanoseconds, or 0 when it is missing or cannot be right (negative, before 1970)."""
    nanos = (elapsed_time or 0.0) * NANOS_PER_SECOND
    return round(nanos) if math.isfinite(nanos) and 0 <= nanos <= end else 0


def db_system_name(adapter_type: str | None) -> str | None:
    """Map a dbt adapter type to OpenTelemetry's ``db.system.name`` value.

    Args:
        adapter_type: The manifest's ``metadata.adapter_type`` (``postgres``, ...).

    Returns:
        The well-known value where OpenTelemetry defines one, else the adapter type itself.
    """
    if not adapter_type:
        return None
    return _DB_SYSTEM_NAMES.get(adapter_type.lower(), adapter_type.lower())


def _node_spans(
    artifacts: Artifacts,
    nodes: Mapping[str, ManifestNode],
    ids: _SpanIds,
    invocation: PlannedSpan,
    options: PlanOptions,
    warnings: list[str],
) -> list[PlannedSpan]:
    results = artifacts.run_results.results
    dag = build_dag(nodes)
    executed = {r.unique_id for r in results}
    parents_of = {r.unique_id: dag.executed_parents(r.unique_id, executed) for r in results}
    windows = _windows(results)
    # on-run-start/end hooks run outside the DAG: they cannot hold a node back
    dag_windows = {uid: w for uid, w in windows.items() if not uid.startswith(HOOK_PREFIX)}
    critical = set(critical_chain(dag_windows, parents_of))
    node_ids = {uid: ids.derive("node", uid) for uid in executed}
    failure_ends = {
        r.unique_id: windows[r.unique_id].end
        for r in results
        if r.status in FAILED_STATUSES and r.unique_id in windows
    }
    adapter = artifacts.manifest.metadata.adapter_type if artifacts.manifest else None
    nesting = {
        r.unique_id: _nesting_order(r.unique_id, parents_of[r.unique_id], windows, options.nesting)
        for r in results
    }
    order = [r.unique_id for r in results]
    cyclic = on_cycles(parents_of, order)
    unparented: set[str] = set()
    if cyclic:  # the spans' parents can loop only where depends_on does
        warnings.append(_cycle_warning(artifacts.manifest_path, cyclic))
        # each loop's first result in run_results order nests under the invocation; its parents become links
        unparented = {loop[0] for loop in parent_cycles({u: ps[0] for u, ps in nesting.items() if ps}, order)}
    unknown: list[str] = []
    spans: list[PlannedSpan] = []
    for result in results:
        node = nodes.get(result.unique_id)
        if node is None and artifacts.manifest is not None:
            unknown.append(result.unique_id)
        parents = nesting[result.unique_id]
        nested = parents and options.nesting != "flat" and result.unique_id not in unparented
        nest_under = parents[0] if nested else None
        links = parents[1:] if nest_under is not None else parents
        window = windows.get(result.unique_id)
        if window is not None:
            start, end = window.start, window.end
        else:
            start, end = _caused_at(result, dag, failure_ends, invocation)
        attributes = _node_attributes(result, node, adapter, options)
        if result.unique_id in critical:
            attributes[attr.CRITICAL_PATH] = True
        span = PlannedSpan(
            role=SpanRole.NODE,
            span_id=node_ids[result.unique_id],
            parent_span_id=node_ids[nest_under] if nest_under is not None else invocation.span_id,
            name=result.unique_id or "(no unique_id)",
            start_time_unix_nano=start,
            end_time_unix_nano=end,
            attributes=attributes,
            events=_node_events(result, end),
            links=tuple(PlannedLink(ids.trace_id, node_ids[p], {attr.NODE_UNIQUE_ID: p}) for p in links),
            status=status(result.status).span_status,
            status_message=(result.message or result.status) if result.status in FAILED_STATUSES else "",
        )
        spans.append(span)
        spans.extend(_phase_spans(result, span, ids, attributes))
    if unknown:
        shown = ", ".join(u or "''" for u in unknown[:3]) + (
            f" and {len(unknown) - 3} more" if len(unknown) > 3 else ""
        )
        warnings.append(
            f"{artifacts.manifest_path}: does not describe {len(unknown)} result(s) ({shown}); "
            "they are nested directly under the invocation span"
        )
    return spans


def _cycle_warning(manifest_path: Path | None, cyclic: Sequence[str]) -> str:
    """One warning for all of a run's cycles: how many results, a few of them, and what the replay does."""
    shown = ", ".join(u or "''" for u in cyclic[:3]) + (
        f" and {len(cyclic) - 3} more" if len(cyclic) > 3 else ""
    )
    return (
        f"{manifest_path}: depends_on is not a DAG: {len(cyclic)} result(s) are on a cycle ({shown}); "
        "where the spans' parents would loop, the loop is broken at its first result in run_results.json, "
        "which nests directly under the invocation span (its parents become links)"
    )


def _nesting_order(
    unique_id: str, parents: tuple[str, ...], windows: Mapping[str, Window], nesting: Nesting
) -> tuple[str, ...]:
    """The parents with the one to nest under first (the others become links, in dbt's order)."""
    if nesting != "critical":
        return parents
    chosen = holding_parent(unique_id, parents, windows)
    if chosen is None:
        return parents
    return (chosen, *(p for p in parents if p != chosen))


def _windows(results: Sequence[NodeResult]) -> dict[str, Window]:
    """Each timed result's window, from its first phase's start to its last phase's end."""
    windows = {}
    for result in results:
        start, end = result.started_at, result.completed_at
        if start is not None and end is not None:
            windows[result.unique_id] = Window(start, end)
    return windows


def _caused_at(
    result: NodeResult, dag: Dag, failure_ends: Mapping[str, int], invocation: PlannedSpan
) -> tuple[int, int]:
    """For a result without timing (skipped), the moment that caused it: its failed ancestor's end."""
    failed_ancestors = [failure_ends[a] for a in dag.ancestors(result.unique_id) if a in failure_ends]
    moment = min(failed_ancestors or failure_ends.values(), default=invocation.end_time_unix_nano)
    return moment, moment


def _node_attributes(
    result: NodeResult, node: ManifestNode | None, adapter: str | None, options: PlanOptions
) -> dict[str, AttributeValue]:
    response = result.adapter_response or AdapterResponse()
    rows_affected = loose_int(response.rows_affected)
    attributes: dict[str, AttributeValue | None] = {
        attr.NODE_UNIQUE_ID: result.unique_id,
        attr.STATUS: result.status,
        attr.THREAD_ID: result.thread_id,
        attr.THREAD_NAME: result.thread_id,
        attr.EXECUTION_TIME: result.execution_time,
        attr.FAILURES: result.failure_count,
        attr.MESSAGE: result.message if result.status not in FAILED_STATUSES else None,
        attr.ROWS_AFFECTED: rows_affected if rows_affected != -1 else None,
        attr.QUERY_ID: _text(response.query_id),
        attr.JOB_ID: _text(response.job_id),
        attr.BYTES_PROCESSED: loose_int(response.bytes_processed),
        attr.BYTES_BILLED: loose_int(response.bytes_billed),
        attr.SLOT_MS: loose_int(response.slot_ms),
        attr.RESPONSE_CODE: _text(response.code),
        attr.DB_QUERY_TEXT: _sql(result.sql, options) if options.include_sql else None,
        attr.TASK_NAME: result.unique_id,
        attr.TASK_RUN_ID: result.unique_id,
        attr.TASK_RUN_RESULT: status(result.status).task_result,
        attr.ERROR_TYPE: error_type(result.status, result.message)
        if result.status in FAILED_STATUSES
        else None,
    }
    if result.batch_results is not None:
        attributes.update(_batch_attributes(result.batch_results))
    if node is not None:
        attributes.update(_manifest_attributes(node, adapter))
    attributes.setdefault(attr.NODE_RELATION_NAME, result.relation_name)
    return _present(attributes)


def _batch_attributes(batches: BatchResults) -> dict[str, AttributeValue | None]:
    """A microbatch model's data windows: counts, the overall window, and each failed window."""
    successful, failed = batches.successful_windows, batches.failed_windows
    windows = [w for w in successful + failed if len(w) == 2]
    return {
        attr.BATCH_SUCCESSFUL_COUNT: len(successful),
        attr.BATCH_FAILED_COUNT: len(failed),
        attr.BATCH_WINDOW_START: min((w[0] for w in windows), default=None),
        attr.BATCH_WINDOW_END: max((w[1] for w in windows), default=None),
        attr.BATCH_FAILED_WINDOWS: tuple("/".join(w) for w in failed),
    }


def _manifest_attributes(node: ManifestNode, adapter: str | None) -> dict[str, AttributeValue | None]:
    has_relation = node.resource_type in _RELATION_TYPES and node.materialized != "ephemeral"
    return {
        attr.NODE_RESOURCE_TYPE: node.resource_type,
        attr.NODE_NAME: node.name,
        attr.NODE_PACKAGE_NAME: node.package_name,
        attr.NODE_MATERIALIZED: node.materialized,
        attr.NODE_ORIGINAL_FILE_PATH: node.original_file_path,
        attr.CODE_FILE_PATH: node.original_file_path,
        attr.NODE_TAGS: node.tag_list,
        attr.NODE_OWNER: node.owner,
        attr.NODE_GROUP: node.group_name,
        attr.NODE_ACCESS: node.access_level,
        attr.NODE_CONTRACT_ENFORCED: node.contract_enforced,
        attr.NODE_RELATION_NAME: node.relation_name,
        attr.DB_SYSTEM_NAME: db_system_name(adapter),
        attr.DB_NAMESPACE: _namespace(node, adapter) if has_relation else None,
        attr.DB_COLLECTION_NAME: (node.alias or node.name) if has_relation else None,
        attr.TASK_TYPE: _TASK_TYPES.get(node.resource_type or ""),
    }


def _namespace(node: ManifestNode, adapter: str | None) -> str | None:
    system = db_system_name(adapter)
    if system in _NAMESPACE_SCHEMA_ONLY:
        parts = [node.schema_name]
    elif system in _NAMESPACE_DATABASE_ONLY:
        parts = [node.database]
    else:
        parts = [node.database, node.schema_name]
    return "|".join(p for p in parts if p) or None


def _text(value: str | int | None) -> str | None:
    return None if value is None else str(value)


def _sql(compiled_code: str | None, options: PlanOptions) -> str | None:
    if compiled_code is None or len(compiled_code) <= options.sql_max_chars:
        return compiled_code
    return compiled_code[: options.sql_max_chars] + SQL_TRUNCATION_MARK


def _node_events(result: NodeResult, end: int) -> tuple[PlannedEvent, ...]:
    event = status(result.status).event
    if event is None:
        return ()
    attributes = _present({attr.MESSAGE: result.message, attr.FAILURES: result.failure_count})
    return (PlannedEvent(event, end, attributes),)


def _phase_spans(
    result: NodeResult, node_span: PlannedSpan, ids: _SpanIds, node_attributes: Mapping[str, AttributeValue]
) -> list[PlannedSpan]:
    """The node's phases; ``execute`` is a CLIENT call to the warehouse, with the node's db.* attributes."""
    seen: dict[str, int] = {}
    spans: list[PlannedSpan] = []
    database = {k: node_attributes[k] for k in _CLIENT_KEYS if k in node_attributes}
    for timing in result.timing:
        occurrence = seen[timing.name] = seen.get(timing.name, -1) + 1
        # a phase named twice gets its occurrence as a part of its own; the first keeps the plain key
        key = (timing.name,) if occurrence == 0 else (timing.name, str(occurrence))
        spans.append(
            PlannedSpan(
                role=SpanRole.PHASE,
                span_id=ids.derive("phase", result.unique_id, *key),
                parent_span_id=node_span.span_id,
                name=timing.name,
                start_time_unix_nano=timing.started_at,
                end_time_unix_nano=timing.completed_at,
                attributes={attr.PHASE: timing.name, **(database if timing.name == _EXECUTE else {})},
                kind=SpanKind.CLIENT if timing.name == _EXECUTE else SpanKind.INTERNAL,
            )
        )
    return spans


_EXECUTE = "execute"
_CLIENT_KEYS = (attr.DB_SYSTEM_NAME, attr.DB_NAMESPACE, attr.DB_COLLECTION_NAME)
"""What the execute phase (a CLIENT span) carries of its node: the warehouse and the relation."""


def _present(attributes: Mapping[str, AttributeValue | None]) -> dict[str, AttributeValue]:
    """Drop the attributes whose value is missing (None or an empty list)."""
    return {k: v for k, v in attributes.items() if v is not None and v != ()}
