"""What dbt's log beside a target directory says of the run, read as the replay reads it."""

from __future__ import annotations

import shutil
from pathlib import Path

from dbt_otel_replay.artifacts import load_artifacts
from dbt_otel_replay.dbtlog import InvocationLog, find_log_files, read_invocation
from dbt_otel_replay.inside import node_times


def invocation_log(target: Path) -> InvocationLog:
    """The statements, batches and connections of the run in ``target`` (failing when there are none)."""
    artifacts = load_artifacts(target)
    results = artifacts.run_results.results
    warnings: list[str] = []
    log = read_invocation(
        find_log_files(target),
        artifacts.run_results.metadata.invocation_id or "",
        node_times((r.unique_id, r.started_at, r.completed_at) for r in results),
        warnings,
    )
    assert log is not None and log.statements, warnings
    return log


def with_a_failing_hook(source: Path, directory: Path) -> Path:
    """A copy of a dbt < 1.9 fixture run (``fixtures/logs/<scenario>``) whose on-run-end hook failed.

    As dbt < 1.9 logs it (dbt-core's ``run_hooks``: the failing statement raises before
    ``LogHookEndLine``): the hook's statement is answered by the adapter's error instead of its
    status, and the hook has no end line. Returns the copy's target directory.
    """
    shutil.copytree(source, directory)
    log = directory / "logs" / "dbt.log"
    lines = log.read_text().split("\n")
    began = max(i for i, line in enumerate(lines) if "START hook: replay_logs.on-run-end.0 " in line)
    status = next(i for i in range(began, len(lines)) if "SQL status: INSERT 0 1 in " in lines[i])
    stamp = lines[status].split(" [debug] ")[0]
    error = "Postgres adapter: Postgres error: permission denied for table run_audit"
    lines[status] = f"{stamp} [debug] [MainThread]: {error}"
    ended = next(i for i in range(status, len(lines)) if "OK hook: replay_logs.on-run-end.0 " in lines[i])
    del lines[ended]
    log.write_text("\n".join(lines))
    return directory / "target"
