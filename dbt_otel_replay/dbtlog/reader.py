"""One streaming pass over the log files for one invocation, and its result.

Until the invocation is found, blocks are searched for its id as bytes (no line of another
invocation is decoded); the line holding it says the format (a dbt-core or dbt Fusion header,
or a JSON event), and from there each block goes to that format's parser (:mod:`.text`,
:mod:`.jsonlines`). Reading stops at the next invocation's header (or ``CommandCompleted``).
The result converts the collected records once, placing text times in UTC (:mod:`.align`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing
from pathlib import Path

from ..terminal import escape
from .align import US, align, check_utc, micros_of_day, midnight_ns
from .files import MAX_LINE, OVERLONG, TAIL, LineBlocks
from .jsonlines import JsonParser
from .records import ConnectionWait, InvocationLog, LogBatch, LogHook, LogStatement
from .state import Collector
from .text import CORE_HEADER, FUSION_HEADER, Clock, TextParser

_PRE_1_0_LINE = re.compile(rb"(?m)^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6} \([^)]*\): ")


class Reader:
    """Collects one invocation from the files given to :meth:`read_file`, oldest first."""

    def __init__(
        self,
        invocation_id: str,
        node_times: Mapping[str, tuple[int, int]],
        *,
        keep_sql: bool,
        max_sql_chars: int,
    ) -> None:
        self.invocation_id = invocation_id
        self.node_times = node_times
        self.c = Collector(node_times, keep_sql=keep_sql, max_sql_chars=max_sql_chars)
        self.clock = Clock()
        self.text = TextParser(self.c, invocation_id, self.clock)
        self.json = JsonParser(self.c, invocation_id)
        self.mode: str | None = None  # None (searching), "text", "fusion", "json"
        self.files: list[str] = []
        self.notes: list[str] = []
        self.pre_1_0 = False
        self.id_seen_elsewhere = False
        self.header_date: tuple[int, int, int] | None = None
        self.fusion_base_ns = 0
        self.cut_lines = 0
        self.replaced = 0
        self.truncated_tail = False

    @property
    def finished(self) -> bool:
        """The invocation's end was read: later files need not be."""
        return self.c.finished

    def read_file(self, path: Path) -> None:
        """Read one file (up to the invocation's end)."""
        blocks = LineBlocks(path, self.notes)
        used = False
        first = True
        keep = max(len(self.json.id_bytes) + 256, 1024)
        with closing(blocks.blocks(lambda: self.mode is None, keep)) as parts:
            for block, end, kind in parts:
                if first:
                    first = False
                    head = blocks.head
                    if self.mode is None and _PRE_1_0_LINE.search(head, 0, 65536) and b"=" * 30 not in head:
                        self.pre_1_0 = True
                if kind == TAIL and self.mode is not None:
                    self.truncated_tail = True
                if self._block(block, end) and kind != OVERLONG:
                    used = True
                if self.c.finished:
                    break
        self.cut_lines += blocks.cut_lines
        if used:
            self.files.append(str(path))

    def _block(self, block: bytes, end: int) -> bool:
        """Handle whole lines ``block[:end]``; True if any belonged to the invocation."""
        start = 0
        if self.mode is None:
            start = self._find_start(block, end)
            if start < 0:
                return False
        if self.mode == "json":
            self.json.lines(block, start, end)
            return True
        text = str(memoryview(block)[start:end], "utf-8", "replace")
        if "\ufffd" in text:
            self.replaced += text.count("\ufffd")
        if self.mode == "text":
            self.text.core_lines(text)
        else:
            self.text.fusion_lines(text)
        return True

    def _find_start(self, block: bytes, end: int) -> int:
        """Where the invocation begins in the block (and its format), or -1."""
        id_bytes = self.json.id_bytes
        position = block.find(id_bytes, 0, end)
        while position >= 0:
            line_start = block.rfind(b"\n", 0, position) + 1
            line_end = block.find(b"\n", position, end)
            line = block[line_start:line_end].rstrip(b"\r")
            if line.startswith(b"{"):
                if self.json.event_of_ours(line) is not None:
                    self.mode = "json"
                    self.c.json = True
                    return line_start
            elif line.startswith(b"="):
                header = line.decode("utf-8", "replace")
                core = CORE_HEADER.match(header)
                if core is not None and core.group(8) == self.invocation_id:
                    self.mode = "text"
                    if core.group(1):
                        self.header_date = (int(core.group(1)), int(core.group(2)), int(core.group(3)))
                    hours, minutes, seconds, micros = (int(core.group(i)) for i in range(4, 8))
                    self.clock.last = ((hours * 60 + minutes) * 60 + seconds) * 1_000_000 + micros
                    return line_end + 1
                fusion = FUSION_HEADER.match(header)
                if fusion is not None and fusion.group(2) == self.invocation_id:
                    self.mode = "fusion"
                    self.fusion_base_ns = midnight_ns(fusion.group(1))
                    self.clock.last = micros_of_day(fusion.group(1)[11:])
                    return line_end + 1
            self.id_seen_elsewhere = True
            position = block.find(id_bytes, line_end, end)
        return -1

    # ------------------------------------------------------------ the result

    def result(self, paths: Sequence[Path], warnings: list[str]) -> InvocationLog | None:
        """The invocation's log, or None with one warning saying why it cannot be read."""
        label = _files_label(paths)
        shown = escape(self.invocation_id[:80])
        c = self.c
        if self.mode is None:
            if self.pre_1_0:
                warnings.append(
                    f"{label}: a dbt < 1.0 log, which names no invocation ids; statements of {shown} not read"
                )
            elif self.id_seen_elsewhere:
                warnings.append(
                    f"{label}: invocation {shown} is mentioned but its header is not there "
                    "(its start was rotated away?); statements not read"
                )
            else:
                warnings.append(f"{label}: invocation {shown} is not in the log; statements not read")
            return None
        if c.collecting is not None:
            c.finish_sql(c.collecting)
        scale = 1 if self.mode == "json" else US
        problem: str | None
        if self.mode == "json":
            offset_ns, base = 0, 0
            problem = check_utc((c.anchor_nodes, c.anchor_times), self.node_times, scale)
        elif self.mode == "fusion":
            offset_ns, base = 0, self.fusion_base_ns
            problem = check_utc((c.anchor_nodes, c.anchor_times), self.node_times, scale, base)
        else:
            aligned = align(
                (c.anchor_nodes, c.anchor_times), self.node_times, self.header_date, self.clock.dst_jump
            )
            if isinstance(aligned, str):
                problem = aligned
                offset_ns = base = 0
            else:
                problem = None
                base, offset_ns = aligned
        if problem is not None:
            warnings.append(f"{label}: {problem}; statements of invocation {shown} not read")
            return None
        for note in self._notes():
            warnings.append(f"{label}: {note}")
        # converted from the last, each record let go as its result is made: the invocation's
        # statements are not held twice (with a million of them, that was 150 MB more at the peak)
        pending = c.statements
        statements: list[LogStatement] = []
        keep = statements.append
        while pending:
            s = pending.pop()
            if s.dropped or (s.tx and s.is_open):
                continue
            keep(  # positional, in the fields' order: much faster than by keyword
                LogStatement(
                    s.node_id,
                    s.connection,
                    s.thread,
                    base + s.start * scale,
                    s.elapsed_ns,
                    s.status,
                    s.rows,
                    s.operation,
                    s.summary or s.operation or "SQL",
                    s.sql,
                    s.query_id,
                    (s.error or "error") if s.error is not None else None,
                    s.batch_index,
                    base + s.answered * scale if s.answered is not None else None,
                )
            )
        statements.reverse()
        batches = [
            LogBatch(
                node_id=b.node_id,
                index=b.index,
                total=b.total,
                window_start=b.window,
                window_end=None,
                start_ns=base + b.start * scale,
                end_ns=None if b.end is None else base + b.end * scale,
                ok=b.ok,
                message=b.message,
            )
            for b in c.batches
        ]
        hooks = [
            LogHook(
                h.node_id,
                h.hook_type,
                h.index,
                base + h.start * scale,
                None if h.end is None else base + h.end * scale,
                h.ok,
                h.status,
            )
            for h in c.hooks
        ]
        waits = [
            ConnectionWait(node, connection, thread, base + start * scale, base + end * scale)
            for node, connection, thread, start, end in c.waits
        ]
        return InvocationLog(
            invocation_id=self.invocation_id,
            log_format="json" if self.mode == "json" else "text",
            utc_offset_seconds=offset_ns // 1_000_000_000,
            statements=statements,
            batches=batches,
            waits=waits,
            files=self.files,
            hooks=hooks,
        )

    def _notes(self) -> Iterator[str]:
        yield from self.notes
        if self.truncated_tail:
            yield "the log ends in the middle of a line (still being written, or cut); read up to there"
        if self.cut_lines:
            yield f"{self.cut_lines} line(s) longer than {MAX_LINE // (1 << 20)} MiB were cut"
        if self.replaced:
            yield f"{self.replaced} byte sequence(s) of the invocation were not UTF-8 and were replaced"
        if self.json.bad_json:
            bad = self.json.bad_json
            yield f"{bad} line(s) of the invocation were not dbt JSON log events and were skipped"


def _files_label(paths: Sequence[Path]) -> str:
    if not paths:
        return "dbt.log"
    if len(paths) == 1:
        return escape(str(paths[0]))
    return escape(f"{paths[-1]} (and {len(paths) - 1} rotated)")
