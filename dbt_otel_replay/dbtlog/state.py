"""What one invocation's lines say, gathered whatever the log's format: the parsers' common target.

The text, Fusion and JSON parsers (:mod:`.text`, :mod:`.jsonlines`) turn lines into calls of
:class:`Collector` (a statement began, a status answered it, a node started, a connection was
being opened, a batch began or ended, an error was logged); the collector pairs them into
mutable :class:`Statement` and :class:`Batch` records, the connection waits and the anchors
that :mod:`.align` places in time. Times are whatever the format gives (local microseconds
for text, UTC nanoseconds for JSON) until :mod:`.reader` converts them once at the end.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import msgspec

from ..sqlsummary import strip_comments, summarize

SQL_SCAN = 16384
"""SQL kept while a statement is read, when its text is not asked for: what the summary reads."""
US = 1_000
NODE_ID = re.compile(
    r"(?:model|seed|snapshot|test|unit_test|operation|analysis|sql_operation|source|exposure|metric|"
    r"semantic_model|saved_query|function)\.\S+\Z"
)
TRANSACTION_EVENT = frozenset({"COMMIT", "ROLLBACK"})
"""dbt logs ``On <conn>: COMMIT`` before sending COMMIT and ``On <conn>: ROLLBACK`` for a driver rollback:
such a line is a statement only when a status line answers it."""
_ADAPTER_ERROR = re.compile(r"(?:[\w .-]{0,40}? error|Database error)\s*:?\s*(.*)", re.I | re.S)
_SNOWFLAKE_ID = "Snowflake query id: "
_BIGQUERY_JOB = re.compile(r"[?&]j=bq:([^:&\s]+):([^&\s]+)")
_DATABRICKS_COMMAND = re.compile(r"command-id=([0-9a-fA-F-]{8,})")


class Statement(msgspec.Struct, gc=False):
    """A statement being read (mutable until the invocation is aligned).

    A msgspec struct that the garbage collector does not track (it holds no containers
    but ``parts``, in no cycle): an invocation's hundreds of thousands of statements would
    otherwise be traversed again by every collection while the log is read.
    """

    node_id: str | None
    connection: str
    thread: str
    start: int
    """Local microseconds since the first day's midnight (text), UTC nanoseconds (JSON)."""
    first: str | None = None
    """The SQL on the statement's own line (all of it for JSON); None when it has none (dbt Fusion)."""
    size: int = 0
    """Characters of SQL collected so far, with line ends."""
    parts: list[str] | None = None
    """The SQL's following lines, when they are not taken in one piece (across blocks)."""
    elapsed_ns: int | None = None
    answered: int | None = None
    """When the status was logged (same scale as ``start``), kept only when the elapsed time is coarse."""
    status: str | None = None
    rows: int | None = None
    operation: str | None = None
    summary: str = "SQL"
    sql: str | None = None
    query_id: str | None = None
    error: str | None = None
    error_pending: bool = False
    error_rank: int = 0
    batch_index: int | None = None
    dropped: bool = False
    tx: bool = False

    @property
    def is_open(self) -> bool:
        """Not answered yet: no status, no error, no elapsed time."""
        return self.status is None and self.error is None and self.elapsed_ns is None


class Batch:
    """A microbatch batch being read."""

    __slots__ = ("end", "index", "message", "node_id", "ok", "relation", "start", "total", "window")

    def __init__(self, node_id: str, index: int, total: int, window: str, relation: str, start: int) -> None:
        self.node_id = node_id
        self.index = index
        self.total = total
        self.window = window
        self.relation = relation
        self.start = start
        self.end: int | None = None
        self.ok: bool | None = None
        self.message: str | None = None


class Hook(msgspec.Struct, gc=False):
    """A project hook being read (its times as :class:`Statement`'s)."""

    node_id: str
    hook_type: str
    index: int
    start: int
    end: int | None = None
    ok: bool | None = None
    status: str | None = None


HOOK_ID = re.compile(r"operation\.(.+)\.\1-(on-run-(?:start|end))-(\d+)\Z")
"""A hook's unique_id: ``operation.<package>.<package>-on-run-start-<index>``."""


def hook_id(package: str, hook_type: str, index: str) -> str:
    """The unique_id dbt 1.9 and later record the hook under (what its statements' node is)."""
    return f"operation.{package}.{package}-{hook_type}-{index}"


def rows_of(status: str | None) -> int | None:
    """The row count a status text ends with (``INSERT 0 5`` is 5), or None."""
    if not status:
        return None
    last = status.rsplit(None, 1)[-1]
    if last.isdigit() and last.isascii() and len(last) < 19:
        return int(last)
    return None


class Collector:
    """One invocation's statements, batches, connection waits and time anchors, as they are read."""

    def __init__(
        self, node_times: Mapping[str, tuple[int, int]], *, keep_sql: bool, max_sql_chars: int
    ) -> None:
        self.node_times = node_times
        self.keep_sql = keep_sql
        self.max_sql_chars = max(0, max_sql_chars)
        self.sql_cap = max(self.max_sql_chars, SQL_SCAN) if keep_sql else SQL_SCAN
        self.json = False
        """JSON events: full thread names, statements announced only once (no COMMIT notices)."""
        self.finished = False
        self.dbt_version = (1, 99)
        self.statements: list[Statement] = []
        self.batches: list[Batch] = []
        self.hooks: list[Hook] = []
        self.waits: list[tuple[str | None, str, str, int, int]] = []
        self.anchor_nodes: list[str] = []
        """The nodes named by lines (node, hook and statement lines), and when (:attr:`anchor_times`)."""
        self.anchor_times: list[int] = []
        self.open: dict[str, Statement] = {}  # thread -> its last statement
        self.last_real: dict[str, Statement] = {}  # thread -> its last statement but COMMIT/ROLLBACK notices
        self.pool_open: dict[str, list[Statement]] = {}  # open statements of a thread name threads share
        self.unanswered: dict[str, Statement] = {}  # thread -> its last statement, within the current node
        self.opening: dict[str, int] = {}  # thread -> when it began opening a connection no statement had
        self.current_node: dict[str, str] = {}
        self.current_batch: dict[str, Batch] = {}
        self.collecting: Statement | None = None
        self.error_target: Statement | None = None
        self.names: dict[str, str] = {}  # one copy of each thread and connection name
        self.statuses: dict[str, tuple[str, int | None]] = {}  # one copy of each status, with its row count

    # ------------------------------------------------------------ statements

    def start_statement(
        self, connection: str, sql: str, thread: str, start: int, node_id: str | None = None
    ) -> Statement:
        """A statement began (``sql`` is its first line, or all of it for JSON); it is being collected."""
        pool = self.pool_open.get(thread)
        if pool is None and not self.json and thread.startswith("ThreadPool"):
            pool = self.pool_open[thread] = []
        if pool is None:
            previous = self.open.get(thread)
            if previous is not None and previous.tx and previous.is_open:
                previous.dropped = True  # the COMMIT announced before the real one
        else:
            for previous in pool:
                if previous.tx and previous.is_open and previous.connection == connection:
                    previous.dropped = True
        if node_id is None:
            node_id = self.node_of(connection, thread)
        statement = Statement(node_id or None, connection, thread, start, sql, len(sql))
        if not self.json and sql.strip() in TRANSACTION_EVENT:
            statement.tx = True
        else:
            self.last_real[thread] = statement
        batch = self.current_batch.get(thread)
        if batch is not None and batch.node_id == statement.node_id:
            statement.batch_index = batch.index
        self.statements.append(statement)
        self.open[thread] = statement
        self.unanswered[thread] = statement
        if pool is not None:
            pool.append(statement)
        self.collecting = statement
        if statement.node_id is not None and not self.json:
            self.anchor_nodes.append(statement.node_id)
            self.anchor_times.append(start)
        opened = self.opening.pop(thread, None)
        if opened is not None and opened <= start:
            self.waits.append((statement.node_id, connection, thread, opened, start))
        return statement

    def node_of(self, connection: str, thread: str) -> str | None:
        """The node a statement on this connection and thread ran for."""
        if connection in self.node_times or NODE_ID.match(connection):
            return connection
        return self.current_node.get(thread)

    def finish_sql(self, statement: Statement) -> None:
        """The statement's SQL is complete: join what was collected and summarize it."""
        first = statement.first
        parts = statement.parts
        if first is None:
            text = "\n".join(parts) if parts else ""
        else:
            text = "\n".join([first, *parts]) if parts else first
        if statement.size > self.sql_cap:
            text = text[: self.sql_cap]
        self.finish_text(statement, text)

    def finish_text(self, statement: Statement, text: str) -> None:
        r"""The statement's SQL is ``text`` (at most ``sql_cap`` characters, no ``\r``): summarize it."""
        self.collecting = None
        statement.first = statement.parts = None
        statement.operation, statement.summary = summarize(text)
        if self.keep_sql:
            statement.sql = strip_comments(text)[: self.max_sql_chars]
        if statement.tx and text.strip() not in TRANSACTION_EVENT:
            statement.tx = False
            self.last_real[statement.thread] = statement

    def answer(
        self, status: str, elapsed: int | None, thread: str, time: int, *, answered: int | None = None
    ) -> None:
        """A text log's ``SQL status`` line on a thread, at ``time`` (``answered``: when coarse)."""
        known = self.statuses.get(status)
        if known is None:
            known = self.statuses[status] = (status, rows_of(status))
        pool = self.pool_open.get(thread)
        if pool is None:
            statement = self.open.get(thread)
            if statement is None or not statement.is_open:
                return
        else:
            found = _pool_match(pool, time, elapsed)
            if found is None:
                return
            statement = found
        statement.status, statement.rows = known
        statement.elapsed_ns = elapsed
        statement.answered = answered
        if statement.tx:  # answered: a real COMMIT or ROLLBACK
            statement.tx = False
            self.last_real[thread] = statement

    def code_status(self, thread: str) -> None:
        """``Execution status`` answers a Python model's code, which is no SQL statement."""
        statement = self.open.get(thread)
        if statement is not None and statement.is_open:
            statement.dropped = True

    def error(self, thread: str, message: str, *, rank: int) -> None:
        """An error line on a thread: the message of its last statement if that got no status.

        ``rank``: 1 for a placeholder (``Error running SQL``), 2 for dbt's ``Database Error in
        model ...`` (the message is on the next line), 3 for the adapter's own (``Postgres
        error: ...``). The first message of the highest rank wins; one that ends with a colon
        takes the next non-empty continuation line too.
        """
        statement = self.last_real.get(thread)
        if statement is None or statement.dropped or statement.status is not None:
            return
        if statement.error is not None and (statement.error_rank >= 2 or rank <= statement.error_rank):
            return
        first = message.split("\n", 1)[0].strip()
        if rank == 2:
            first = ""
        statement.error = first[:500]
        statement.error_rank = rank
        statement.error_pending = not first or first.endswith(":")
        self.error_target = statement

    def error_detail(self, lines: str) -> None:
        """Continuation lines after an error line that asked for one."""
        target = self.error_target
        if target is not None and target.error_pending:
            detail = next((line.strip() for line in lines.split("\n", 8) if line.strip()), "")
            if detail:
                target.error = f"{target.error} {detail}"[:500].strip() if target.error else detail[:500]
                target.error_pending = False

    def adapter_detail(self, rest: str, thread: str) -> None:
        """An adapter's own line (after ``<Name> adapter: ``): query ids and errors."""
        if rest.startswith(_SNOWFLAKE_ID):
            self.query_id(thread, rest[len(_SNOWFLAKE_ID) :].strip())
        elif rest.startswith("Cursor(") and "command-id=" in rest:
            command = _DATABRICKS_COMMAND.search(rest)
            if command is not None:
                self.query_id(thread, command.group(1))
        elif "j=bq:" in rest:
            job = _BIGQUERY_JOB.search(rest)
            if job is not None:
                self.query_id(thread, job.group(2))
        elif rest.startswith("Error running SQL"):
            self.error(thread, rest, rank=1)
        elif rest.startswith("Exception while trying to execute query"):
            self.error(thread, "", rank=3)
        else:
            error = _ADAPTER_ERROR.match(rest)
            if error is not None:
                self.error(thread, error.group(1), rank=3)

    def query_id(self, thread: str, query_id: str) -> None:
        """The warehouse's id of the thread's last statement."""
        statement = self.open.get(thread)
        if statement is None or statement.dropped or (statement.tx and not statement.is_open):
            statement = self.last_real.get(thread)
        if statement is not None and statement.query_id is None and query_id:
            statement.query_id = query_id[:200]

    # ------------------------------------------------- nodes and connections

    def node_start(self, node_id: str, thread: str, time: int) -> None:
        """``Began running node`` / ``NodeStart``."""
        self.current_node[thread] = node_id
        self.anchor_nodes.append(node_id)
        self.anchor_times.append(time)
        self.unanswered.pop(thread, None)
        self.opening.pop(thread, None)

    def node_end(self, node_id: str, thread: str, time: int) -> None:
        """``Finished running node`` / ``NodeFinished``."""
        if self.current_node.get(thread) == node_id:
            del self.current_node[thread]
        self.anchor_nodes.append(node_id)
        self.anchor_times.append(time)
        self.unanswered.pop(thread, None)
        self.opening.pop(thread, None)
        batch = self.current_batch.get(thread)
        if batch is not None and batch.node_id == node_id:
            del self.current_batch[thread]

    def opens_for_next(self, thread: str) -> bool:
        """Whether a connection being opened on ``thread`` now is for a statement yet to begin.

        When the thread's statement is still unanswered, that statement opened it (dbt logs
        the statement, then touches the connection's lazy handle within the statement's own
        timing): no wait. Otherwise the next statement on the thread is the first to use it,
        and the caller records when the opening began in :attr:`opening`.
        """
        pool = self.pool_open.get(thread)
        if pool is not None:
            return not any(s.is_open and not s.dropped for s in pool)
        statement = self.unanswered.get(thread)
        return statement is None or not statement.is_open or statement.dropped

    # ------------------------------------------------------------- batches

    def batch_event(
        self,
        node_id: str,
        index: int,
        total: int,
        window: str,
        relation: str,
        kind: str,
        result: str,
        thread: str,
        time: int,
    ) -> None:
        """A batch began (``kind`` ``START``) or ended (``OK created``, ``ERROR creating``, ``SKIP``)."""
        batch: Batch | None
        if kind == "START":
            batch = Batch(node_id, index, total, window, relation, time)
            self.batches.append(batch)
            self.current_batch[thread] = batch
            return
        batch = self.current_batch.pop(thread, None)
        if batch is None or batch.index != index or batch.relation != relation:
            batch = next(
                (
                    b
                    for b in reversed(self.batches)
                    if b.index == index and b.relation == relation and b.end is None
                ),
                None,
            )
        if batch is None:
            batch = Batch(node_id, index, total, window, relation, time)
            self.batches.append(batch)
        batch.end = time
        batch.ok = True if kind.startswith("OK") else False if kind.startswith("ERROR") else None
        status = result.rsplit(" in ", 1)[0].strip() if " in " in result else result.strip()
        batch.message = status or kind
        if batch.ok is False:
            failed = next(
                (
                    s.error
                    for s in reversed(self.statements)
                    if s.batch_index == index and s.error and s.node_id == batch.node_id
                ),
                None,
            )
            if failed:
                batch.message = failed

    # --------------------------------------------------------------- hooks

    def hook_event(self, node_id: str, *, started: bool, word: str, status: str, time: int) -> None:
        """A project hook's ``START`` line (``started``), or its end line: ``word`` ``OK``, ``ERROR``...

        ``status`` is what the end line's brackets say before `` in <seconds>s``.
        """
        found = HOOK_ID.match(node_id)
        if found is None:
            return
        if started:
            self.hooks.append(Hook(node_id, found.group(2), int(found.group(3)), time))
            return
        hook = next((h for h in reversed(self.hooks) if h.node_id == node_id and h.end is None), None)
        if hook is None:  # its start line was not read (another file, or cut)
            return
        hook.end = time
        hook.ok = True if word == "OK" else False if word == "ERROR" else None
        hook.status = status.strip() or word or None

    def end_invocation(self) -> None:
        """The invocation ended (another one's header, or ``CommandCompleted``)."""
        if self.collecting is not None:
            self.finish_sql(self.collecting)
        self.finished = True


def _pool_match(pool: list[Statement], time: int, elapsed: int | None) -> Statement | None:
    """The open statement a status line answers on a thread name several threads share.

    dbt cuts thread names to 10 characters, so every ``ThreadPoolExecutor-N_M`` is
    ``ThreadPool`` (and two of them may even use connections of the same name). The
    answer is the open statement that began closest to the elapsed time before the status
    line (dbt rounds it to the millisecond; the oldest of equals), preferring those that
    could have begun by then.
    """
    pool[:] = [s for s in pool if s.is_open and not s.dropped]
    candidates = [s for s in pool if not s.tx] or pool  # a ROLLBACK notice is answered by no status
    if not candidates:
        return None
    if elapsed is None or len(candidates) == 1:
        chosen = candidates[0]
    else:
        began = time - elapsed // US
        possible = [s for s in candidates if s.start <= began + 1_000] or candidates
        chosen = min(possible, key=lambda s: abs(s.start - began))
    pool.remove(chosen)
    return chosen
