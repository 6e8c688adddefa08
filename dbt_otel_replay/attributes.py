"""Every attribute key the replayed trace carries: the one place a key is named and documented.

The planner writes spans with these keys, the protobuf encoder shares the
low-cardinality ones, the views read them back through typed accessors
(:mod:`dbt_otel_replay.views.node`), and the attribute table of
docs/trace-contract.md is generated from :data:`CATALOGUE`. Renaming a key here
renames it everywhere; a test checks the table against what the planner emits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SpanKind = Literal[
    "resource", "invocation", "node", "phase", "statement", "batch", "connection", "hook", "link", "event"
]


@dataclass(frozen=True)
class Attribute:
    """One documented attribute.

    Attributes:
        key: The attribute's key on the wire.
        spans: Which spans (or the resource, links, events) carry it.
        source: Where its value comes from, in Markdown.
        example: A typical value, in Markdown.
        low_cardinality: Few distinct values per run: the protobuf encoder encodes each pair once.
    """

    key: str
    spans: tuple[SpanKind, ...]
    source: str
    example: str = ""
    low_cardinality: bool = False


CATALOGUE: list[Attribute] = []
"""Every attribute, in the order of the documented table."""


def _key(
    key: str, spans: tuple[SpanKind, ...], source: str, example: str = "", *, low_cardinality: bool = False
) -> str:
    CATALOGUE.append(Attribute(key, spans, source, example, low_cardinality))
    return key


# --- resource --------------------------------------------------------------------------------------
SERVICE_NAME = _key(
    "service.name",
    ("resource",),
    "`--service-name`, else `OTEL_SERVICE_NAME`, else `service.name` in `OTEL_RESOURCE_ATTRIBUTES`, "
    "else `dbt`",
    "`dbt`",
)

# --- dbt.*: the invocation -------------------------------------------------------------------------
INVOCATION_ID = _key(
    "dbt.invocation_id",
    ("invocation",),
    "run_results `metadata.invocation_id`",
    "`3a56bf74-595a-4136-9f88-097261a0797f`",
)
VERSION = _key("dbt.version", ("invocation",), "run_results `metadata.dbt_version`", "`1.11.16`")
COMMAND = _key("dbt.command", ("invocation",), "`args.which`", "`build`")
PROJECT_NAME = _key("dbt.project_name", ("invocation",), "manifest `metadata.project_name`", "`jaffle_shop`")
TARGET = _key("dbt.target", ("invocation",), "`args.target` (only when given on the command line)", "`prod`")
ADAPTER = _key("dbt.adapter", ("invocation",), "manifest `metadata.adapter_type`", "`postgres`")
ELAPSED_TIME = _key("dbt.elapsed_time", ("invocation",), "`elapsed_time` (seconds)", "`4.19`")
RESULT_COUNT = _key("dbt.result_count", ("invocation",), "number of results", "`33`")
VARS = _key(
    "dbt.vars",
    ("invocation",),
    "`args.vars` as JSON, **only with `--include-sql`**",
    '`{"day":"2024-05-01"}`',
)
DEPLOYMENT_ENVIRONMENT_NAME = _key(
    "deployment.environment.name",
    ("invocation",),
    "`args.target`, the dbt target (dbt records it only when given on the command line)",
    "`prod`",
)
ARGS_SELECT = _key(
    "dbt.args.select", ("invocation",), "`args.select` (string array)", '`["tag:nightly", "orders+"]`'
)
ARGS_EXCLUDE = _key("dbt.args.exclude", ("invocation",), "`args.exclude` (string array)", '`["tag:slow"]`')
ARGS_SELECTOR = _key("dbt.args.selector", ("invocation",), "`args.selector`", "`nightly`")
ARGS_FULL_REFRESH = _key("dbt.args.full_refresh", ("invocation",), "`args.full_refresh`", "`true`")
ARGS_THREADS = _key("dbt.args.threads", ("invocation",), "`args.threads`", "`8`")
ARGS_TARGET = _key("dbt.args.target", ("invocation",), "`args.target`", "`prod`")
ARGS_STATE = _key("dbt.args.state", ("invocation",), "`args.state` (a path)", "`prod-artifacts`")
ARGS_DEFER = _key("dbt.args.defer", ("invocation",), "`args.defer`", "`true`")
ENV_PREFIX = "dbt.env."
"""``dbt.env.<name>``: one attribute per entry of ``metadata.env``."""
_key(
    ENV_PREFIX + "<name>",
    ("invocation",),
    "run_results `metadata.env`: each `DBT_ENV_CUSTOM_ENV_<name>` variable dbt saw, by its name "
    "without the prefix; **left out with `--no-dbt-env`**",
    "`dbt.env.JOB_ID` = `4711`",
)

# --- dbt.node.* and dbt.*: one executed node ------------------------------------------------------
NODE_UNIQUE_ID = _key(
    "dbt.node.unique_id",
    ("node", "link"),
    "result `unique_id`; on a link, the linked parent",
    "`model.jaffle_shop.orders`",
)
STATUS = _key(
    "dbt.status",
    ("node",),
    "result `status`, verbatim",
    "`success`, `error`, `skipped`, `pass`, `fail`, `warn`",
    low_cardinality=True,
)
NODE_RESOURCE_TYPE = _key(
    "dbt.node.resource_type", ("node",), "manifest node `resource_type`", "`model`", low_cardinality=True
)
NODE_NAME = _key("dbt.node.name", ("node",), "manifest node `name`", "`orders`")
NODE_PACKAGE_NAME = _key(
    "dbt.node.package_name", ("node",), "manifest node `package_name`", "`jaffle_shop`", low_cardinality=True
)
NODE_MATERIALIZED = _key(
    "dbt.node.materialized",
    ("node",),
    "manifest node `config.materialized`",
    "`incremental`",
    low_cardinality=True,
)
NODE_ORIGINAL_FILE_PATH = _key(
    "dbt.node.original_file_path", ("node",), "manifest node `original_file_path`", "`models/orders.sql`"
)
NODE_TAGS = _key(
    "dbt.node.tags", ("node",), "manifest node `tags` (string array)", '`["nightly"]`', low_cardinality=True
)
NODE_OWNER = _key(
    "dbt.node.owner",
    ("node",),
    "manifest node `meta.owner`, else `config.meta.owner` (text only)",
    "`data-platform`",
    low_cardinality=True,
)
NODE_GROUP = _key(
    "dbt.node.group",
    ("node",),
    "manifest node `group`, else `config.group`",
    "`finance`",
    low_cardinality=True,
)
NODE_ACCESS = _key(
    "dbt.node.access",
    ("node",),
    "manifest node `access`, else `config.access` (models, dbt 1.5+)",
    "`protected`",
    low_cardinality=True,
)
NODE_CONTRACT_ENFORCED = _key(
    "dbt.node.contract.enforced",
    ("node",),
    "manifest node `config.contract.enforced` (models, dbt 1.5+)",
    "`false`",
)
NODE_RELATION_NAME = _key(
    "dbt.node.relation_name",
    ("node",),
    "manifest node or result `relation_name`",
    '`"db"."schema"."orders"`',
)
THREAD_ID = _key(
    "dbt.thread_id", ("node",), "result `thread_id`", "`Thread-3 (worker)`", low_cardinality=True
)
EXECUTION_TIME = _key("dbt.execution_time", ("node",), "result `execution_time` (seconds)", "`0.592`")
FAILURES = _key(
    "dbt.failures", ("node", "event"), "result `failures` (tests; also on a `dbt.warn` event)", "`2`"
)
MESSAGE = _key(
    "dbt.message",
    ("node", "event"),
    "result `message` (not for failures: those are the span status; also on a `dbt.warn` event)",
    "`SELECT 7`",
)
CRITICAL_PATH = _key(
    "dbt.critical_path", ("node",), "`true` on the nodes of the run's critical path", "`true`"
)

# --- dbt.adapter_response.*: the warehouse's answer -----------------------------------------------
ROWS_AFFECTED = _key(
    "dbt.adapter_response.rows_affected", ("node",), "`adapter_response.rows_affected`, unless -1", "`7`"
)
QUERY_ID = _key(
    "dbt.adapter_response.query_id",
    ("node", "statement"),
    "node: `adapter_response.query_id` (Snowflake, Databricks, ...); statement: the query or job id "
    "dbt's log gives (Snowflake, BigQuery, Databricks, JSON `query_id`)",
    "`01b2...`",
)
JOB_ID = _key("dbt.adapter_response.job_id", ("node",), "`adapter_response.job_id` (BigQuery)", "`job_abc`")
BYTES_PROCESSED = _key(
    "dbt.adapter_response.bytes_processed",
    ("node",),
    "`adapter_response.bytes_processed` (BigQuery)",
    "`1048576`",
)
BYTES_BILLED = _key(
    "dbt.adapter_response.bytes_billed",
    ("node",),
    "`adapter_response.bytes_billed` (BigQuery: what the query is charged for)",
    "`10485760`",
)
SLOT_MS = _key(
    "dbt.adapter_response.slot_ms",
    ("node",),
    "`adapter_response.slot_ms` (BigQuery: slot milliseconds the query used)",
    "`5120`",
)
RESPONSE_CODE = _key(
    "dbt.adapter_response.code",
    ("node",),
    "`adapter_response.code`",
    "`SELECT`, `INSERT`",
    low_cardinality=True,
)

# --- dbt.batch.*: a microbatch model's data windows -----------------------------------------------
BATCH_SUCCESSFUL_COUNT = _key(
    "dbt.batch.successful_count", ("node",), "microbatch `batch_results.successful` (count)", "`30`"
)
BATCH_FAILED_COUNT = _key(
    "dbt.batch.failed_count", ("node",), "microbatch `batch_results.failed` (count)", "`1`"
)
BATCH_WINDOW_START = _key(
    "dbt.batch.window_start",
    ("node", "batch"),
    "node: first start of the batch windows (data time); batch: its window's start as dbt's log names it",
    "`2024-01-01T00:00:00+00:00`, `2024-01-03`",
)
BATCH_WINDOW_END = _key(
    "dbt.batch.window_end",
    ("node",),
    "last end of the batch windows (data time)",
    "`2024-01-31T00:00:00+00:00`",
)
BATCH_FAILED_WINDOWS = _key(
    "dbt.batch.failed_windows", ("node",), "each failed window as `start/end` (string array)"
)

BATCH_INDEX = _key(
    "dbt.batch.index",
    ("batch",),
    "the batch's number, from 1 (dbt's log: `Batch 3 of 5`); every batch span has it",
    "`3`",
)
BATCH_TOTAL = _key("dbt.batch.total", ("batch",), "how many batches the model ran (`Batch 3 of 5`)", "`5`")

# --- dbt.statement.*, dbt.connection.*: inside a node, from dbt's log ------------------------------
STATEMENT_STATUS = _key(
    "dbt.statement.status",
    ("statement",),
    "dbt's status text for the statement (`SQL status: ...`, or JSON `SQLQueryStatus.status`)",
    "`SELECT 6`, `INSERT 0 5`, `OK`",
)
STATEMENT_ROWS = _key(
    "dbt.statement.rows",
    ("statement",),
    "the row count that status text ends with",
    "`5`",
)
HOOK_UNIQUE_ID = _key(
    "dbt.hook.unique_id",
    ("hook",),
    "the unique_id dbt 1.9 and later record the project hook under (dbt < 1.9: its log's `START hook: "
    "<package>.on-run-start.0` line); every hook span has it",
    "`operation.jaffle_shop.jaffle_shop-on-run-start-0`",
)
HOOK_TYPE = _key(
    "dbt.hook.type", ("hook",), "`on-run-start` or `on-run-end`", "`on-run-start`", low_cardinality=True
)
HOOK_STATUS = _key(
    "dbt.hook.status",
    ("hook",),
    "what the hook's end line says (`OK hook: ... [CREATE TABLE in 0.01s]`): its last statement's status",
    "`CREATE TABLE`, `INSERT 0 1`",
)
CONNECTION_NAME = _key(
    "dbt.connection.name",
    ("statement", "connection"),
    "the connection dbt ran it on (`On <name>:`): a node's unique_id, `master` (project hooks), "
    "`list_<db>_<schema>` ...; every connection span has it",
    "`model.jaffle_shop.orders`",
)

# --- dbt.phase: compile and execute ---------------------------------------------------------------
PHASE = _key("dbt.phase", ("phase",), "timing entry `name`", "`compile`, `execute`", low_cardinality=True)

# --- dbt.dropped.*: what --phases, --select and --min-duration left out (rule 14) -------------------
DROPPED_NODES = _key(
    "dbt.dropped.nodes",
    ("invocation",),
    "node spans not selected or shorter than `--min-duration`; **only when one of them, or "
    "`--phases none`, is given**, as are the keys below",
    "`21`",
)
DROPPED_PHASES = _key(
    "dbt.dropped.phases",
    ("invocation",),
    "compile and execute spans dropped (with `--phases none`, all of them)",
    "`66`",
)
DROPPED_SPANS = _key(
    "dbt.dropped.spans",
    ("invocation",),
    "every span dropped: nodes, phases and the spans from dbt's log inside dropped nodes",
    "`150`",
)
DROPPED_BY = _key(
    "dbt.dropped.by",
    ("invocation",),
    "the options that dropped them, as typed",
    '`["--select status:error,fail", "--phases none"]`',
)

# --- OpenTelemetry semantic conventions: database, code, thread -----------------------------------
DB_SYSTEM_NAME = _key(
    "db.system.name",
    ("invocation", "node", "phase", "statement"),
    "adapter type mapped to OpenTelemetry's names (`postgres`→`postgresql`, `bigquery`→`gcp.bigquery`, "
    "`redshift`→`aws.redshift`, `sqlserver`→`microsoft.sql_server`, others as is)",
    "`postgresql`",
    low_cardinality=True,
)
DB_NAMESPACE = _key(
    "db.namespace",
    ("node", "phase", "statement"),
    "manifest `database` and `schema` as OpenTelemetry's conventions name them for the system: "
    "`database|schema` (PostgreSQL and the generic rule), the schema alone (MySQL, MariaDB), the "
    "database alone (SQL Server, Oracle); for models, seeds and snapshots (their execute phase and "
    "statements)",
    "`analytics|marts`",
    low_cardinality=True,
)
DB_COLLECTION_NAME = _key(
    "db.collection.name",
    ("node", "phase"),
    "manifest `alias` (else `name`), for models, seeds and snapshots (and their execute phase)",
    "`orders`",
)
DB_QUERY_TEXT = _key(
    "db.query.text",
    ("node", "statement"),
    "node: result `compiled_code` (or `compiled_sql`); statement: the SQL dbt's log holds, without its "
    "comments (dbt's query comment included); cut at `--sql-max-chars`, **only with `--include-sql`**",
    "`select ...`",
)
DB_OPERATION_NAME = _key(
    "db.operation.name",
    ("statement",),
    "the statement's operation: its first keyword(s), upper-cased",
    "`CREATE VIEW`, `INSERT`, `COMMIT`",
    low_cardinality=True,
)
DB_QUERY_SUMMARY = _key(
    "db.query.summary",
    ("statement",),
    "operation and target, also the statement span's name; every statement span has it",
    "`CREATE VIEW lumber.stg_shipments`",
)
CODE_FILE_PATH = _key(
    "code.file.path", ("node",), "manifest node `original_file_path`", "`models/orders.sql`"
)
THREAD_NAME = _key(
    "thread.name",
    ("node", "statement", "connection"),
    "node: result `thread_id`; statement, connection: the thread in dbt's log (its text format cuts "
    "names to 10 characters)",
    "`Thread-3 (worker)`",
    low_cardinality=True,
)

# --- OpenTelemetry semantic conventions: CI/CD pipelines ------------------------------------------
PIPELINE_NAME = _key(
    "cicd.pipeline.name",
    ("invocation",),
    "manifest `metadata.project_name` (else `dbt <command>`)",
    "`jaffle_shop`",
)
PIPELINE_RUN_ID = _key("cicd.pipeline.run.id", ("invocation",), "`metadata.invocation_id`", "`3a56bf74-…`")
PIPELINE_RESULT = _key(
    "cicd.pipeline.result",
    ("invocation",),
    "`failure` when a node's status makes its span an error (`error`, `fail`, `runtime error`), "
    "else `success`",
    "`failure`",
)
TASK_NAME = _key("cicd.pipeline.task.name", ("node",), "result `unique_id`", "`model.jaffle_shop.orders`")
TASK_RUN_ID = _key("cicd.pipeline.task.run.id", ("node",), "result `unique_id`", "`model.jaffle_shop.orders`")
TASK_RUN_RESULT = _key(
    "cicd.pipeline.task.run.result",
    ("node",),
    "the result `status`, by the [status table](#statuses) (`success`, `failure`, `error`, `skip`)",
    "`skip`",
)
TASK_TYPE = _key(
    "cicd.pipeline.task.type",
    ("node",),
    "`build` for models, seeds and snapshots, `test` for tests and unit tests",
    "`build`",
)

# --- OpenTelemetry semantic conventions: errors ----------------------------------------------------
ERROR_TYPE = _key(
    "error.type",
    ("invocation", "node", "statement", "batch", "hook"),
    "on every failed span: the dbt exception class its message names (`Database Error in ...` is "
    "`DbtDatabaseError`, `Compilation Error` `CompilationError` ...), else the dbt status; on the "
    "invocation, the status of its first failed result",
    "`DbtDatabaseError`, `fail`",
    low_cardinality=True,
)

# --- the resource, from the CI/CD system the replay runs in (see dbt_otel_replay.cicontext) -------
CI_RESOURCE_KEYS = (
    "cicd.pipeline.name",
    "cicd.pipeline.run.id",
    "cicd.pipeline.run.url.full",
    "cicd.pipeline.task.run.id",
    "cicd.pipeline.task.run.url.full",
    "vcs.ref.head.revision",
    "vcs.ref.head.name",
    "vcs.repository.url.full",
)
for _ci_key, _ci_source, _ci_example in zip(
    CI_RESOURCE_KEYS,
    (
        "the CI's workflow, project or job name",
        "the CI's run (workflow run, pipeline, build) id",
        "the run's web page",
        "the CI's job (step) id",
        "the job's web page",
        "the commit the CI checked out",
        "the branch or tag the CI ran for",
        "the repository's web address",
    ),
    (
        "`nightly`",
        "`12345678`",
        "`https://github.com/o/r/actions/runs/12345678`",
        "`987`",
        "`https://gitlab.com/o/r/-/jobs/987`",
        "`9f2c...`",
        "`main`",
        "`https://github.com/o/r`",
    ),
    strict=True,
):
    _key(
        _ci_key,
        ("resource",),
        f"{_ci_source}, from its documented variables ([CI context](#ci-context)); "
        "**`replay` only, never `backfill`**; `OTEL_RESOURCE_ATTRIBUTES` wins",
        _ci_example,
    )

LOW_CARDINALITY_KEYS = frozenset(a.key for a in CATALOGUE if a.low_cardinality)
"""Keys with few distinct values in a run (statuses, types, threads): worth encoding once per value."""
