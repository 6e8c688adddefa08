"""What dbt's log beside a target directory says of the run, read as the replay reads it."""

from __future__ import annotations

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
