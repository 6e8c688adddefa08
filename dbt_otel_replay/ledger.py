"""The backfill ledger: which dbt runs a collector has already accepted, and which are being sent (SQLite).

A run is recorded only after the collector accepted every one of its spans, so
re-running a backfill after a crash, or on a schedule, sends only what is new. Runs
are keyed by their identity (:func:`~.artifacts.run_identity`), not by dbt's
invocation id alone, which several runs can share. Backfills sharing one ledger
take turns run by run: one claims a run before sending it, and the others skip it
while the claim holds (its process is alive, or, for a process on another host,
for :data:`CLAIM_LEASE_SECONDS`).
"""

from __future__ import annotations

import os
import socket
import sqlite3
import stat
import time
from enum import Enum
from pathlib import Path
from types import TracebackType

from .errors import ConfigError

CLAIM_LEASE_SECONDS = 3600.0
"""How long a claim by a process on another host holds (its liveness cannot be checked from here)."""
BUSY_TIMEOUT_SECONDS = 30.0
"""How long to wait for another backfill's write to the ledger to end."""

_SCHEMA = """
create table if not exists delivered_runs (
    identity text primary key,
    invocation_id text not null,
    trace_id text not null,
    run_results text not null,
    spans integer not null,
    endpoint text not null,
    delivered_at text not null default (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
create table if not exists claims (
    identity text primary key,
    host text not null,
    pid integer not null,
    claimed_at real not null
);
"""
_LEGACY_TABLE = "delivered"
"""The table of ledgers written before runs had an identity: keyed by invocation id alone."""
_ZERO_INVOCATION = "00000000-0000-0000-0000-000000000000"


class Claim(Enum):
    """What trying to claim a run found."""

    CLAIMED = "claimed"
    """It is this process's to send."""
    DELIVERED = "delivered"
    """Another backfill delivered it meanwhile."""
    ELSEWHERE = "claimed elsewhere"
    """Another backfill, still running, is sending it."""


class Ledger:
    """A SQLite file of delivered runs and of runs being sent; use as a context manager."""

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
        self._host = socket.gethostname()
        self._pid = os.getpid()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # autocommit: every transaction below is explicit, so its lock is taken when it begins
            self._db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
            self._db.executescript(_SCHEMA)
            self._legacy = (
                self._db.execute(
                    "select 1 from sqlite_master where type = 'table' and name = ?", (_LEGACY_TABLE,)
                ).fetchone()
                is not None
            )
        except (sqlite3.Error, OSError) as exc:
            raise ConfigError(f"{path}: cannot use it as the backfill ledger: {exc}") from None

    def __enter__(self) -> Ledger:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def delivered(self, identity: str, invocation_id: str | None, run_results: Path) -> bool:
        """Whether this run was already accepted by a collector.

        A ledger written before runs had an identity lists invocation ids: such a row still
        counts for the same run_results file with that (non-zero) invocation id, so an old
        ledger does not send its runs again, and a run that merely shares the id is not skipped.

        Args:
            identity: The run's identity.
            invocation_id: Its invocation id, for the rows of an older ledger.
            run_results: Its run_results file, likewise.

        Returns:
            True when it is recorded.
        """
        if self._db.execute("select 1 from delivered_runs where identity = ?", (identity,)).fetchone():
            return True
        if not self._legacy or not invocation_id or invocation_id == _ZERO_INVOCATION:
            return False
        row = self._db.execute(
            f"select 1 from {_LEGACY_TABLE} where invocation = ? and run_results = ?",
            (invocation_id, str(run_results)),
        ).fetchone()
        return row is not None

    def claim(self, identity: str, *, force: bool = False) -> Claim:
        """Claim a run for this process to send, unless it is delivered or another live backfill has it.

        A claim left by a process that died (on this host) or that is older than the lease (on
        another host) is taken over.

        Args:
            identity: The run's identity.
            force: Claim it even when it is recorded as delivered (--force).

        Returns:
            Whether the run is this process's to send.
        """
        with self._transaction():
            delivered = self._db.execute("select 1 from delivered_runs where identity = ?", (identity,))
            if not force and delivered.fetchone():
                return Claim.DELIVERED
            row = self._db.execute(
                "select host, pid, claimed_at from claims where identity = ?", (identity,)
            ).fetchone()
            if row is not None and self._alive(*row):
                return Claim.ELSEWHERE
            self._db.execute(
                "insert or replace into claims (identity, host, pid, claimed_at) values (?, ?, ?, ?)",
                (identity, self._host, self._pid, time.time()),
            )
        return Claim.CLAIMED

    def release(self, identity: str) -> None:
        """Give up this process's claim on a run it did not deliver whole (the next backfill sends it)."""
        self._db.execute(
            "delete from claims where identity = ? and host = ? and pid = ?",
            (identity, self._host, self._pid),
        )

    def record(
        self,
        identity: str,
        invocation_id: str | None,
        trace_id: str,
        run_results: Path,
        spans: int,
        endpoint: str,
    ) -> None:
        """Record an accepted run (again, with --force) and release its claim, at once.

        Args:
            identity: The run's identity.
            invocation_id: Its invocation id (for people reading the ledger).
            trace_id: The trace it became.
            run_results: Where its run_results.json was.
            spans: How many spans were accepted.
            endpoint: Where they went.
        """
        with self._transaction():
            self._db.execute(
                "insert or replace into delivered_runs "
                "(identity, invocation_id, trace_id, run_results, spans, endpoint) values (?, ?, ?, ?, ?, ?)",
                (identity, invocation_id or "", trace_id, str(run_results), spans, endpoint),
            )
            self._db.execute("delete from claims where identity = ?", (identity,))

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def _transaction(self) -> _Immediate:
        return _Immediate(self._db)

    def _alive(self, host: str, pid: int, claimed_at: float) -> bool:
        if host != self._host:
            return time.time() - claimed_at < CLAIM_LEASE_SECONDS
        if pid == self._pid:
            return False  # this process's own claim, left by a run it did not finish
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # another user's live process
            return True
        return True


class _Immediate:
    """``BEGIN IMMEDIATE`` … ``COMMIT``: the write lock from the first read; two claims never interleave."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("begin immediate")

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._db.execute("commit" if kind is None else "rollback")
