r"""Parsing dbt's text logs: dbt-core's default file format and dbt Fusion's.

dbt-core (1.0 and later) writes a header per invocation,
``============================== HH:MM:SS.ffffff | <id> ==============================``
(1.0 to 1.3 with the date), then ``\x1b[0mHH:MM:SS.ffffff [debug] [Thread-1 (]: message``
lines, a statement's SQL running on over the lines that follow its ``On <connection>:``
line. The time is the machine's local time of day: :class:`Clock` counts it on from the
header across midnight, and :mod:`.align` places it in UTC afterwards.

dbt Fusion writes a header with the UTC date, ``HH:MM:SS.ffffff [info ]: ...`` lines and
``Query executed on node <id>:`` statements (no status lines, so no durations).

This is the hot path of reading a large log: a block of the invocation's lines is searched
by one regular expression for the events that matter, whose alternatives are numbered
groups (the line's kind, with no string comparison), and a statement's SQL is taken from
its ``On`` line to the next event in one slice.
"""

from __future__ import annotations

import re

from .state import Collector, hook_id

_HALF_DAY_US = 12 * 3600 * 1_000_000
_DAY_US = 24 * 3600 * 1_000_000
_DST_JUMP_US = 10 * 60 * 1_000_000

CORE_HEADER = re.compile(
    r"={30} (?:(\d{4})-(\d\d)-(\d\d) )?(\d\d):(\d\d):(\d\d)\.(\d{6}) \| (\S+) ={30}\s*\Z"
)
FUSION_HEADER = re.compile(r"={20} (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z) \| (\S+) ={20}\s*\Z")
_LINE_PREFIX = r"(\d\d:\d\d:\d\d\.\d{6} \[[^\]\n]{5}\] \[[^\n]{10}\]: )"
_USEFUL = (
    r"(?:(On )|(SQL status: )|(Began running node )|(Finished running node )"
    r"|(Opening a new connection)|(Batch \d)|(Database Error|Runtime Error in )|(Execution status: )"
    r"|(\d+ of \d+ [A-Z]+ hook: )|([\w-]+ adapter: )|(Running with dbt=))"
)
_ANY_EVENT = re.compile(r"\n(?:\x1b\[0m)?" + _LINE_PREFIX)
_USEFUL_EVENT = re.compile(r"\n(?:\x1b\[0m)?" + _LINE_PREFIX + _USEFUL)
"""A dbt-core text line whose message matters; ``group(1)`` starts the line, ``lastindex`` is its kind."""
_ANSI = "\n\x1b[0m"
_ANSI_EVENT = re.compile(r"\n\x1b\[0m" + _LINE_PREFIX)
_ANSI_USEFUL_EVENT = re.compile(r"\n\x1b\[0m" + _LINE_PREFIX + _USEFUL)
"""The same for a log whose lines begin with dbt's colour reset (the default): a literal prefix the
regular expression engine finds fast, where the optional one makes it try every line end."""
(_ON, _STATUS, _BEGAN, _FINISHED, _OPENING, _BATCH_LINE, _ERROR, _EXECUTION, _HOOK_LINE, _ADAPTER_LINE) = (
    range(2, 12)
)
_ADAPTER = re.compile(r"([\w .-]{1,40}?) adapter: ")
_BATCH = re.compile(
    r"Batch (\d+) of (\d+) (START|OK created|ERROR creating|SKIP) batch (.+?) of (\S+)"
    r"(?: \.+)? *\[(.*)\]\s*\Z"
)
_HOOK = re.compile(
    r"\d+ of \d+ (START|OK|ERROR|SKIP|PASS|FAIL)\w* hook: (\S+)\.(on-run-(?:start|end))\.(\d+) "
)
_HOOK_RESULT = re.compile(r"\[(.*?)(?: in [\d.]+s)?\]\s*\Z")
"""The end of a hook's end line: ``[CREATE TABLE in 0.01s]``, ``[ERROR in 0.02s]``."""
_VERSION = re.compile(r"=?(\d+)\.(\d+)")
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
_EVENT_NOT_STATEMENT = frozenset({"Close", "No close available on handle"})


class Clock:
    """Local time of day to microseconds since the invocation's first local midnight."""

    def __init__(self) -> None:
        self.day_base = 0
        self.last = -1
        self.dst_jump: int | None = None
        """How far local time went back (more than 10 minutes, less than 12 hours), if it did."""
        self._seconds: dict[str, int] = {}

    def time(self, stamp: str) -> int:
        """``HH:MM:SS.ffffff`` in microseconds; a time 12 hours before the last one is on the next day."""
        second = self._seconds.get(stamp[:8])
        if second is None:
            try:
                second = (int(stamp[0:2]) * 60 + int(stamp[3:5])) * 60 + int(stamp[6:8])
            except ValueError:
                second = 0
            if len(self._seconds) > 100_000:
                self._seconds.clear()
            self._seconds[stamp[:8]] = second
        try:
            value = second * 1_000_000 + int(stamp[9:15]) + self.day_base
        except ValueError:
            value = second * 1_000_000 + self.day_base
        last = self.last
        if value < last:
            if value < last - _HALF_DAY_US:
                self.day_base += _DAY_US
                value += _DAY_US
            elif value < last - _DST_JUMP_US and self.dst_jump is None:
                self.dst_jump = last - value
        if value > last:
            self.last = value
        return value


class TextParser:
    """Lines of one invocation of a dbt-core or dbt Fusion text log, into a :class:`Collector`."""

    def __init__(self, collector: Collector, invocation_id: str, clock: Clock) -> None:
        self.c = collector
        self.invocation_id = invocation_id
        self.clock = clock
        self.ansi: bool | None = None
        """Whether the invocation's lines begin with ``\\x1b[0m`` (dbt's ``use_colors_file``, the default).

        One dbt process writes all of an invocation's lines alike, so the first event line
        decides: then events are found by their literal start (``str.find``), much faster."""
        self._useful = _USEFUL_EVENT.search

    def _next_event(self, text: str, position: int) -> int:
        r"""Where the next event line begins (its ``\n``) at or after ``position``, or -1."""
        if self.ansi:
            find = text.find
            match = _ANSI_EVENT.match
            found = find(_ANSI, position)
            while found >= 0 and match(text, found) is None:
                found = find(_ANSI, found + 1)
            return found
        event = _ANY_EVENT.search(text, position)
        return -1 if event is None else event.start()

    # ----------------------------------------------------------- dbt-core

    def core_lines(self, text: str) -> None:
        """Parse whole lines of a dbt-core text log (``text`` ends with a newline)."""
        c = self.c
        text = "\n" + text
        size = len(text) - 1  # the final newline
        if self.ansi is None:
            first = _ANY_EVENT.search(text)
            if first is not None:
                self.ansi = text.startswith(_ANSI, first.start())
                self._useful = _ANSI_USEFUL_EVENT.search if self.ansi else _USEFUL_EVENT.search
        next_event = self._next_event
        useful_event = self._useful
        find = text.find
        names = c.names
        setname = names.setdefault
        time = self.clock.time
        start_statement = c.start_statement
        answer = c.answer
        pool_open = c.pool_open
        cap = c.sql_cap
        position = 0  # at a newline
        while position < size:
            if c.collecting is not None or c.error_target is not None:
                position = self._continuation(text, position, size)
                if position < 0:
                    return
            found = useful_event(text, position)
            event = found.start() if found is not None else size
            if find("\n=====", position, event) >= 0 and self._headers(text[position:event]):
                return
            if found is None:
                return
            at = found.start(1)
            line_end = find("\n", found.end())
            stop = line_end - 1 if text[line_end - 1] == "\r" else line_end
            position = line_end
            kind = found.lastindex
            thread = text[at + 25 : at + 35].rstrip()
            thread = setname(thread, thread)
            if kind == _ON:
                connection, separator, sql = text[at + 41 : stop].partition(": ")
                if not separator or sql in _EVENT_NOT_STATEMENT:
                    continue
                connection = setname(connection, connection)
                statement = start_statement(connection, sql, thread, time(text[at : at + 15]))
                end = next_event(text, line_end)
                if end < 0:
                    continue  # the SQL runs on into the next block
                if end > line_end:
                    if find("=====", line_end, end) >= 0:
                        continue  # perhaps a header: read the lines one by one
                    rest = text[line_end : min(end, line_end + 2 * cap + 2)]
                    if "\r" in rest:
                        rest = rest.replace("\r", "")
                    sql += rest
                c.finish_text(statement, sql if len(sql) <= cap else sql[:cap])
                position = end
            elif kind == _STATUS:  # inline: one line per statement
                status, elapsed, coarse = status_parts(text[at + 50 : stop])
                answer(
                    status,
                    elapsed,
                    thread,
                    time(text[at : at + 15]) if thread in pool_open else 0,
                    answered=time(text[at : at + 15]) if coarse else None,
                )
            elif kind == _BEGAN:
                c.node_start(text[at + 57 : stop].strip(), thread, time(text[at : at + 15]))
            elif kind == _FINISHED:
                c.node_end(text[at + 60 : stop].strip(), thread, time(text[at : at + 15]))
            elif kind == _OPENING:
                if c.opens_for_next(thread):
                    c.opening[thread] = time(text[at : at + 15])
            else:
                self._rare(kind, text[at + 38 : stop], thread, text[at : at + 15])

    def _continuation(self, text: str, position: int, size: int) -> int:
        """Lines after a statement's or an error's line up to the next event; where parsing goes on, or -1."""
        c = self.c
        found = self._next_event(text, position)
        end = found if found >= 0 else size
        if end > position and self._between(text[position + 1 : end]):
            return -1
        if found < 0:
            return -1  # continued in the next block
        if c.collecting is not None:
            c.finish_sql(c.collecting)
        c.error_target = None
        return end

    def _between(self, lines: str) -> bool:
        """Lines that are no event: continuation of the last one, or a header (True: another invocation's)."""
        if "=====" in lines and self._headers(lines):
            return True
        if "\r" in lines:
            lines = lines.replace("\r", "")
        statement = self.c.collecting
        if statement is not None:
            cap = self.c.sql_cap
            if statement.size < cap:
                piece = lines[: cap - statement.size + 1]
                if statement.parts is None:
                    statement.parts = [piece]
                else:
                    statement.parts.append(piece)
                statement.size += len(piece) + 1
            return False
        self.c.error_detail(lines)
        return False

    def _headers(self, lines: str) -> bool:
        """True when the lines hold another invocation's header (this one ends there)."""
        for line in lines.split("\n"):
            if line.startswith("=====") and self.other_header(line.rstrip("\r")):
                return True
        return False

    def other_header(self, line: str) -> bool:
        """True (and the invocation ends) when ``line`` is the header of another invocation."""
        core = CORE_HEADER.match(line)
        if core is None:
            core = FUSION_HEADER.match(line)
            other = core.group(2) if core is not None else None
        else:
            other = core.group(8)
        if other is not None and other != self.invocation_id:
            self.c.end_invocation()
            return True
        return False

    def _status(self, rest: str, thread: str, text: str, at: int) -> None:
        status, elapsed, coarse = status_parts(rest)
        pooled = thread in self.c.pool_open
        self.c.answer(
            status,
            elapsed,
            thread,
            self.clock.time(text[at : at + 15]) if pooled else 0,
            answered=self.clock.time(text[at : at + 15]) if coarse else None,
        )

    def _rare(self, kind: int | None, message: str, thread: str, stamp: str) -> None:
        """The events of a few lines per node or invocation."""
        c = self.c
        if kind == _BATCH_LINE:
            self._batch(message, thread, self.clock.time(stamp))
        elif kind == _ERROR:
            c.error(thread, message, rank=2)
        elif kind == _EXECUTION:
            c.code_status(thread)
        elif kind == _HOOK_LINE:
            self._hook(message, thread, stamp)
        elif kind == _ADAPTER_LINE:
            self._adapter(message, thread, stamp)
        else:  # Running with dbt=
            version = _VERSION.match(message[17:])
            if version is not None:
                c.dbt_version = (int(version.group(1)), int(version.group(2)))

    def _adapter(self, message: str, thread: str, stamp: str) -> None:
        match = _ADAPTER.match(message)
        if match is None:
            return
        rest = message[match.end() :]
        if rest.startswith("On "):
            connection, separator, sql = rest[3:].partition(": ")
            if not separator:
                return
            connection = self.c.names.setdefault(connection, connection)
            if sql not in _EVENT_NOT_STATEMENT:
                self.c.start_statement(connection, sql, thread, self.clock.time(stamp))
        elif rest.startswith("SQL status: "):
            self._status(rest[12:], thread, stamp, 0)
        else:
            self.c.adapter_detail(rest, thread)

    def _hook(self, message: str, thread: str, stamp: str) -> None:
        match = _HOOK.match(message)
        if match is None:
            return
        word, package, hook_type, index = match.group(1), match.group(2), match.group(3), match.group(4)
        node_id = hook_id(package, hook_type, index)
        c = self.c
        time = self.clock.time(stamp)
        if word == "START":
            c.current_node[thread] = node_id
            c.anchor_nodes.append(node_id)
            c.anchor_times.append(time)
            c.hook_event(node_id, started=True, word=word, status="", time=time)
            return
        if c.current_node.get(thread) == node_id and c.dbt_version >= (1, 6):
            del c.current_node[thread]  # dbt < 1.6 kept the hook as the node of what followed
        result = _HOOK_RESULT.search(_ANSI_ESCAPE.sub("", message[match.end() :]))
        status = result.group(1) if result is not None else ""
        c.hook_event(node_id, started=False, word=word, status=status, time=time)

    def _batch(self, message: str, thread: str, time: int) -> None:
        match = _BATCH.match(_ANSI_ESCAPE.sub("", message))
        if match is None:
            return
        index, total = int(match.group(1)), int(match.group(2))
        kind, window, relation, result = match.group(3), match.group(4), match.group(5), match.group(6)
        node_id = self.c.current_node.get(thread, "")
        self.c.batch_event(node_id, index, total, window, relation, kind, result, thread, time)

    # ---------------------------------------------------------- dbt Fusion

    def fusion_lines(self, text: str) -> None:
        """Parse whole lines of a dbt Fusion text log."""
        c = self.c
        for raw in text.split("\n"):
            line = raw[:-1] if raw.endswith("\r") else raw
            if (
                len(line) > 25
                and line[2] == ":"
                and line[8] == "."
                and line[15:17] == " ["
                and line[22:25] == "]: "
            ):
                if c.collecting is not None:
                    c.finish_sql(c.collecting)
                message = line[25:]
                if message.startswith("Query executed on node "):
                    node = message[23:].rstrip().rstrip(":")
                    node_id = None if node in ("", "unknown") else node
                    statement = c.start_statement(
                        node or "unknown", "", "", self.clock.time(line), node_id=node_id or ""
                    )
                    statement.first = None
                    statement.size = 0
            elif line.startswith("====="):
                if self.other_header(line):
                    return
            elif c.collecting is not None or c.error_target is not None:
                self._between(line)


def status_parts(rest: str) -> tuple[str, int | None, bool]:
    """``SELECT 6 in 0.012 seconds``: the status, the elapsed nanoseconds, and whether they are coarse.

    Coarse: tenths of a second or less (dbt < 1.8 prints ``in 1.0 seconds`` for 0.81 s), too
    coarse to end a statement by; the status line's own time is used then.
    """
    status, separator, seconds = rest.rpartition(" in ")
    if not separator or not seconds.endswith(" seconds"):
        return rest.strip(), None, False
    number = seconds[:-8]
    try:
        elapsed = round(float(number) * 1_000_000_000)
    except ValueError:
        return rest.strip(), None, False
    dot = number.find(".")
    return status.strip(), elapsed, dot < 0 or len(number) - dot - 1 < 2
