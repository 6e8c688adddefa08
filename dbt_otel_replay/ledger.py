"""The backfill ledger: which dbt invocations a collector has already accepted (SQLite).

A run is recorded only after the collector accepted every one of its spans, so
re-running a backfill after a crash, or on a schedule, sends only what is new.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path
from types import TracebackType

from .errors import ConfigError

_SCHEMA = """
create table if not exists delivered (
    invocation text primary key,
    trace_id text not null,
    run_results text not null,
    spans integer not null,
    endpoint text not null,
    delivered_at text not null default (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
)
"""


class Ledger:
    """A SQLite file of delivered invocations; use as a context manager."""

    def __init__(self, path: Path) -> None:
        """Open (or create) the ledger.

        Args:
            path: The SQLite file: a regular file, a new one, or a symlink to either.

        Raises:
            ConfigError: If the file cannot be opened, is not a ledger, or is not a regular
                file (SQLite would write journals beside /dev/null or hang reading a FIFO).
        """
        self.path = path
        try:
            kind = os.stat(path).st_mode
        except (FileNotFoundError, NotADirectoryError):
            kind = stat.S_IFREG  # a new ledger
        except OSError as exc:
            raise ConfigError(
                f"{path}: cannot use it as the backfill ledger: {exc.strerror or exc}"
            ) from None
        if not stat.S_ISREG(kind):
            raise ConfigError(f"{path}: cannot use it as the backfill ledger: not a regular file")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path)
            self._db.execute(_SCHEMA)
            self._db.commit()
        except (sqlite3.Error, OSError) as exc:
            raise ConfigError(f"{path}: cannot use it as the backfill ledger: {exc}") from None

    def __enter__(self) -> Ledger:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def delivered(self, invocation: str) -> bool:
        """Whether this invocation was already accepted by a collector.

        Args:
            invocation: The run's invocation key (see :func:`dbt_otel_replay.backfill.Run.key`).

        Returns:
            True when it is recorded.
        """
        row = self._db.execute("select 1 from delivered where invocation = ?", (invocation,)).fetchone()
        return row is not None

    def record(self, invocation: str, trace_id: str, run_results: Path, spans: int, endpoint: str) -> None:
        """Record an accepted run (again, with --force), committing at once.

        Args:
            invocation: The run's invocation key.
            trace_id: The trace it became.
            run_results: Where its run_results.json was.
            spans: How many spans were accepted.
            endpoint: Where they went.
        """
        self._db.execute(
            "insert or replace into delivered (invocation, trace_id, run_results, spans, endpoint) "
            "values (?, ?, ?, ?, ?)",
            (invocation, trace_id, str(run_results), spans, endpoint),
        )
        self._db.commit()

    def close(self) -> None:
        """Close the database."""
        self._db.close()
