"""Parsing dbt's JSON log (``--log-format-file json``): one event per line, with its UTC time.

Only lines holding the invocation id are decoded (a byte search finds them), and only the
fields read here (msgspec structs with defaults: dbt adds fields between versions). The
events: ``SQLQuery`` / ``SQLQueryStatus`` (statements), ``NodeStart`` / ``NodeFinished``,
``NewConnectionOpening`` (a connection being opened), ``LogStartBatch`` / ``LogBatchResult``
(microbatch), ``LogHookStartLine`` / ``LogHookEndLine`` (project hooks), adapter events (query
ids, errors), error events, ``CommandCompleted`` (the end).
"""

from __future__ import annotations

import re

import msgspec

from ..timestamps import parse_timestamp
from .state import Collector, rows_of

_BATCH_DESCRIPTION = re.compile(r"batch (.+?) of (\S+)\Z")
_ADAPTER = re.compile(r"([\w .-]{1,40}?) adapter: ")
_HOOK_WORD = re.compile(r"\d+ of \d+ ([A-Z]+) hook: ")
"""``1 of 2 OK hook: ...``: the word that says how the hook ended."""
_ERROR_EVENTS = frozenset({"CatchableExceptionOnRun", "GenericExceptionOnRun", "RunningOperationCaughtError"})


class Info(msgspec.Struct, gc=False):
    """The envelope's ``info``: what every event has."""

    name: str = ""
    ts: str = ""
    thread: str = ""
    msg: str = ""
    invocation_id: str = ""


class Envelope(msgspec.Struct, gc=False):
    """One JSON log line; ``data`` is decoded by the event's name."""

    info: Info
    data: msgspec.Raw = msgspec.Raw(b"{}")


class _NodeInfo(msgspec.Struct, gc=False):
    unique_id: str = ""


class _QueryData(msgspec.Struct, gc=False):
    node_info: _NodeInfo | None = None
    conn_name: str = ""
    sql: str = ""


class _StatusData(msgspec.Struct, gc=False):
    status: str = ""
    elapsed: float | None = None
    query_id: str | None = None


class _NodeData(msgspec.Struct, gc=False):
    node_info: _NodeInfo | None = None


class _BatchData(msgspec.Struct, gc=False):
    node_info: _NodeInfo | None = None
    description: str = ""
    status: str = ""
    batch_index: int = 0
    total_batches: int = 0


class _HookData(msgspec.Struct, gc=False):
    node_info: _NodeInfo | None = None
    status: str = ""


class JsonParser:
    """Events of one invocation of a JSON log, into a :class:`Collector`."""

    def __init__(self, collector: Collector, invocation_id: str) -> None:
        self.c = collector
        self.invocation_id = invocation_id
        self.id_bytes = invocation_id.encode("utf-8", "replace")
        self.bad_json = 0

    def event_of_ours(self, line: bytes) -> Envelope | None:
        """The line's event if it is one of the invocation's (a line that is no event is counted)."""
        try:
            event = msgspec.json.decode(line, type=Envelope)
        except (msgspec.DecodeError, msgspec.ValidationError):
            self.bad_json += 1
            return None
        return event if event.info.invocation_id == self.invocation_id else None

    def lines(self, block: bytes, start: int, end: int) -> None:
        """The invocation's events among the whole lines ``block[start:end]``."""
        id_bytes = self.id_bytes
        c = self.c
        position = block.find(id_bytes, start, end)
        while position >= 0 and not c.finished:
            line_start = block.rfind(b"\n", 0, position) + 1
            line_end = block.find(b"\n", position, end)
            if line_start >= start:
                line = block[line_start:line_end].strip()
                if line.startswith(b"{"):
                    event = self.event_of_ours(line)
                    if event is not None:
                        self.event(event)
                elif line:
                    self.bad_json += 1
            position = block.find(id_bytes, line_end, end)

    def event(self, event: Envelope) -> None:
        """One event of the invocation."""
        c = self.c
        info = event.info
        name = info.name
        thread = info.thread.strip()
        try:
            if name == "SQLQuery":
                query = msgspec.json.decode(event.data, type=_QueryData)
                node_id = query.node_info.unique_id if query.node_info else ""
                statement = c.start_statement(
                    query.conn_name, query.sql, thread, parse_timestamp(info.ts), node_id=node_id or ""
                )
                c.finish_sql(statement)
            elif name == "SQLQueryStatus":
                self._status(msgspec.json.decode(event.data, type=_StatusData), thread, info.ts)
            elif name in ("NodeStart", "NodeFinished"):
                node = msgspec.json.decode(event.data, type=_NodeData)
                node_id = node.node_info.unique_id if node.node_info else ""
                if node_id:
                    if name == "NodeStart":
                        c.node_start(node_id, thread, parse_timestamp(info.ts))
                    else:
                        c.node_end(node_id, thread, parse_timestamp(info.ts))
            elif name == "NewConnectionOpening":
                if c.opens_for_next(thread):
                    c.opening[thread] = parse_timestamp(info.ts)
            elif name in ("LogStartBatch", "LogBatchResult"):
                data = msgspec.json.decode(event.data, type=_BatchData)
                self._batch(name, data, thread, parse_timestamp(info.ts))
            elif name in ("LogHookStartLine", "LogHookEndLine"):
                hook = msgspec.json.decode(event.data, type=_HookData)
                word = _HOOK_WORD.search(info.msg)
                self.c.hook_event(
                    hook.node_info.unique_id if hook.node_info else "",
                    started=name == "LogHookStartLine",
                    word=word.group(1) if word is not None else "",
                    status=hook.status,
                    time=parse_timestamp(info.ts),
                )
            elif name.startswith("AdapterEvent"):
                match = _ADAPTER.match(info.msg)
                c.adapter_detail(info.msg[match.end() :] if match else info.msg, thread)
            elif name in _ERROR_EVENTS or info.msg.startswith("Database Error"):
                self._error(info.msg, thread)
            elif name == "CommandCompleted":
                c.end_invocation()
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError):
            self.bad_json += 1

    def _status(self, data: _StatusData, thread: str, stamp: str) -> None:
        statement = self.c.open.get(thread)
        if statement is None or not statement.is_open:
            return
        statement.status = data.status.strip()
        statement.rows = rows_of(statement.status)
        if data.elapsed is not None:
            statement.elapsed_ns = round(data.elapsed * 1_000_000_000)
            if round(data.elapsed, 1) == data.elapsed:  # tenths (dbt < 1.8): end it when it was answered
                statement.answered = parse_timestamp(stamp)
        if data.query_id:
            statement.query_id = str(data.query_id)[:200]

    def _error(self, message: str, thread: str) -> None:
        lines = [line.strip() for line in message.split("\n") if line.strip()]
        if not lines:
            return
        if lines[0].startswith(("Database Error", "Runtime Error")) and len(lines) > 1:
            self.c.error(thread, lines[1], rank=3)
        else:
            self.c.error(thread, lines[0], rank=3)

    def _batch(self, name: str, data: _BatchData, thread: str, time: int) -> None:
        match = _BATCH_DESCRIPTION.match(data.description.strip())
        window, relation = (match.group(1), match.group(2)) if match else (data.description, "")
        node_id = data.node_info.unique_id if data.node_info else ""
        if name == "LogStartBatch":
            kind = "START"
        else:
            lowered = data.status.lower()
            kind = (
                "ERROR creating" if lowered == "error" else "SKIP" if lowered == "skipped" else "OK created"
            )
        status = data.status.upper() if data.status.lower() in ("error", "skipped") else data.status
        self.c.batch_event(
            node_id, data.batch_index, data.total_batches, window, relation, kind, status, thread, time
        )
