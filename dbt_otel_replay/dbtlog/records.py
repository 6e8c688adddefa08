"""The public records of :mod:`dbt_otel_replay.dbtlog`: what the log says about one invocation.

They are frozen msgspec structs, apart from the parsing (which builds mutable records of its
own and converts them once, in :mod:`.reader`), so a consumer such as ``plan.py`` depends on
these shapes alone.
"""

from __future__ import annotations

import msgspec


class LogStatement(msgspec.Struct, frozen=True, gc=False):
    """One SQL statement dbt sent, as its log recorded it."""

    node_id: str | None
    """The unique_id it ran for; None for statements of no node (``master``, ``list_db_schema``...)."""
    connection: str
    """The connection name logged after ``On`` (or ``data.conn_name``)."""
    thread: str
    """The thread as logged (the text log cuts it to 10 characters), stripped."""
    start_ns: int
    """UTC nanoseconds since the epoch of the line that began the statement."""
    elapsed_ns: int | None
    """From ``SQL status: ... in X seconds`` / ``SQLQueryStatus.elapsed``; None if the log gives none."""
    status: str | None
    """dbt's status text: ``SELECT 6``, ``CREATE VIEW``, ``OK``, ``SUCCESS 1``..."""
    rows: int | None
    """The row count the status text ends with (``INSERT 0 5`` is 5)."""
    operation: str | None
    """``db.operation.name`` (see :mod:`~dbt_otel_replay.sqlsummary`)."""
    summary: str
    """``db.query.summary``; never empty."""
    sql: str | None
    """The SQL without comments, only when asked for, cut to ``max_sql_chars``."""
    query_id: str | None
    """The warehouse's query or job id when logged (Snowflake, BigQuery, Databricks, JSON ``query_id``)."""
    error: str | None
    """dbt's one-line error message when the statement failed."""
    batch_index: int | None
    """The 1-based microbatch batch it ran in, if any."""
    answered_ns: int | None = None
    """When dbt logged the statement's status, where its elapsed time is too coarse to end it by
    (dbt < 1.8 prints tenths of a second: ``in 1.0 seconds`` for 0.81 s); None otherwise."""


class LogBatch(msgspec.Struct, frozen=True, gc=False):
    """One microbatch batch of a node (the data window ``window_start``; the end is not logged)."""

    node_id: str
    index: int
    total: int
    window_start: str
    window_end: str | None
    start_ns: int
    end_ns: int | None
    ok: bool | None
    """True for ``OK created``, False for ``ERROR creating``, None when skipped or never finished."""
    message: str | None
    """The result dbt printed (``SUCCESS 1``, ``ERROR``, ``SKIP``), or the failing statement's error."""


class LogHook(msgspec.Struct, frozen=True, gc=False):
    """One project hook (``on-run-start``/``on-run-end``) as dbt's log recorded it.

    dbt 1.9 and later also record each hook as a result in run_results.json; before, the log's
    ``N of M START hook: <package>.on-run-start.<i>`` and ``N of M OK hook: ... [<status> in
    0.01s]`` lines (JSON: ``LogHookStartLine``/``LogHookEndLine``) are all that says when it ran.
    """

    node_id: str
    """The unique_id dbt 1.9 and later give it: ``operation.<package>.<package>-on-run-start-<i>``."""
    hook_type: str
    """``on-run-start`` or ``on-run-end``."""
    index: int
    """Its place in the project's list of hooks of that type, from 0, as in its unique_id."""
    start_ns: int
    end_ns: int | None
    """When its end line was logged; None when the log has none (the run was cut short)."""
    ok: bool | None
    """True for an ``OK`` end line, False for ``ERROR``, None for none or another word."""
    status: str | None
    """dbt's status text of its last statement (``CREATE TABLE``, ``INSERT 0 1``), or ``ERROR``."""


class ConnectionWait(msgspec.Struct, frozen=True, gc=False):
    """Time a thread spent opening a connection before a statement could use it.

    It starts at the line that began opening the connection (text: ``Opening a new
    connection, currently in state ...``; JSON: the ``NewConnectionOpening`` event) and ends
    at the start of the next statement on the same thread, the first one to use it. dbt
    logs that line when something first touches the connection's lazy handle: a statement
    (dbt-adapters' ``add_query`` logs the statement, then opens the connection inside its
    timing, so that opening is part of the statement's own elapsed time and gives no wait),
    or anything else before the statement (a Python model's submission, an API call of the
    adapter): only the latter is a wait. Waits of no statement (the thread's node ended, or the
    invocation did, before one began) are not reported.
    """

    node_id: str | None
    """The node of the statement that used the connection; None for connections of no node (``master``)."""
    connection: str
    """That statement's connection name."""
    thread: str
    """The thread, as its statements name it."""
    start_ns: int
    """UTC nanoseconds of the line that began opening the connection."""
    end_ns: int
    """UTC nanoseconds of the start of the statement that used it (``>= start_ns``)."""


class InvocationLog(msgspec.Struct, frozen=True, gc=False):
    """What the log says about one invocation."""

    invocation_id: str
    log_format: str
    """``text`` or ``json``."""
    utc_offset_seconds: int | None
    """The local time's offset from UTC recovered for a text log (0 for JSON and dbt Fusion)."""
    statements: list[LogStatement]
    batches: list[LogBatch]
    waits: list[ConnectionWait]
    files: list[str]
    """The files the invocation's lines came from, oldest first."""
    hooks: list[LogHook] = msgspec.field(default_factory=list)
    """The project hooks it ran, in the order they started."""
