r"""Read dbt's own log (``logs/dbt.log``) after the fact; artifacts.py reads the JSON artifacts.

run_results.json times each node; the log says what happened inside it: every SQL
statement dbt sent (``On <node or connection>: <sql>`` then ``SQL status: ... in X
seconds`` on the same thread), each microbatch batch, and when a thread waited for a
connection to open. :func:`read_invocation` returns those of exactly one invocation, the
one run_results.json names, with UTC times.

The log is written by dbt, appended to across invocations and rotated at 10 MB
(``dbt.log.1`` ... older), so it is read in one streaming pass over raw bytes: other
invocations are skipped with a byte search for the invocation id (no line of theirs is
decoded), the invocation's own lines are decoded and parsed, and reading stops at the
next invocation's header. Memory is bounded by the invocation's statement count, never
by the log's size; SQL text is dropped once summarized unless asked for.

Formats: dbt-core text (1.0 and later, the default for the file) and dbt Fusion text
(:mod:`.text`), JSON lines (:mod:`.jsonlines`); dbt before 1.0 wrote no invocation ids: such
a log is recognised and refused with a warning. A text log's local times are placed in UTC
by :mod:`.align`.

Nothing here raises for what a log contains: a malformed, truncated, foreign or partly
written log gives a warning (and None when the invocation cannot be read); only a file
that cannot be opened or read raises :class:`~dbt_otel_replay.errors.ArtifactError`.

The package, one job per module: :mod:`.records` (the public records), :mod:`.files`
(finding and reading files), :mod:`.reader` (the pass and its result), :mod:`.state`
(what the lines say, whatever the format), :mod:`.text`, :mod:`.jsonlines`, :mod:`.align`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from .align import ALIGNMENT_TOLERANCE_NS
from .files import LOG_FILENAME, find_log_files
from .reader import Reader
from .records import ConnectionWait, InvocationLog, LogBatch, LogHook, LogStatement

__all__ = [
    "ALIGNMENT_TOLERANCE_NS",
    "LOG_FILENAME",
    "ConnectionWait",
    "InvocationLog",
    "LogBatch",
    "LogHook",
    "LogStatement",
    "find_log_files",
    "read_invocation",
]


def read_invocation(
    paths: Sequence[Path],
    invocation_id: str,
    node_times: Mapping[str, tuple[int, int]],
    warnings: list[str],
    *,
    keep_sql: bool = False,
    max_sql_chars: int = 4096,
) -> InvocationLog | None:
    """Read one invocation's statements, batches and connection waits from dbt's log.

    Text logs carry only the local time of day. The date and the UTC offset are recovered
    by aligning the invocation's node lines (``Began running node``, ``Finished running
    node``, statements on a node's connection) with ``node_times``: the offset is the one
    multiple of 15 minutes in [-12 h, +14 h] under which every such line falls inside its
    node's recorded window (give or take 2 s). A time of day that goes back by more than
    12 hours is the next day. The date in 1.0-1.3 headers settles which of two offsets a day
    apart (``-10:00``/``+14:00`` ... ``-12:00``/``+12:00``) it was; otherwise, as both give the same
    instants, the one of the more populated zone is reported (east of UTC, but -10:00, Hawaii).

    Args:
        paths: The log files, oldest first (see :func:`find_log_files`).
        invocation_id: run_results.json's ``metadata.invocation_id``.
        node_times: unique_id -> (start, end) in UTC nanoseconds, as run_results.json timed each node.
        warnings: Receives one short line per problem.
        keep_sql: Keep each statement's SQL (without comments) in ``sql``.
        max_sql_chars: How much SQL to keep per statement.

    Returns:
        The invocation's log, or None (with one warning) when it is not in the files, or its
        times cannot be aligned with ``node_times``.

    Raises:
        ArtifactError: When one of ``paths`` cannot be opened or read (not for what it contains).
    """
    reader = Reader(invocation_id.strip(), node_times, keep_sql=keep_sql, max_sql_chars=max_sql_chars)
    for path in paths:
        reader.read_file(path)
        if reader.finished:
            break
    return reader.result(paths, warnings)
