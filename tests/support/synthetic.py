"""Synthetic dbt artifacts of any size, shaped like a real project's (for scale tests).

Deterministic: the same arguments always write the same files.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path
from typing import Any

PROJECT = "synthetic"
EPOCH = dt.datetime(2026, 1, 1, 2, 0, tzinfo=dt.timezone.utc)


def _at(seconds: float) -> str:
    return (EPOCH + dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parents(index: int, fan_in: int) -> list[str]:
    if index == 0:
        return []
    picks = sorted({(index * 7 + k * 13) % index for k in range(fan_in)})
    return [f"model.{PROJECT}.m{j:06d}" for j in picks]


def write_synthetic_run(directory: Path, nodes: int, *, fan_in: int = 3, sql_chars: int = 400) -> Path:
    """Write run_results.json and manifest.json of a `dbt run` over ``nodes`` models.

    Returns:
        The directory.
    """
    directory.mkdir(parents=True, exist_ok=True)
    invocation_id = str(uuid.UUID(int=nodes * 1_000_003 + fan_in))
    results: list[dict[str, Any]] = []
    manifest_nodes: dict[str, dict[str, Any]] = {}
    sql = ("select * from upstream where value > 0 -- " * (sql_chars // 40 + 1))[:sql_chars]
    for index in range(nodes):
        uid = f"model.{PROJECT}.m{index:06d}"
        start = index * 0.01
        results.append(
            {
                "status": "success",
                "timing": [
                    {"name": "compile", "started_at": _at(start), "completed_at": _at(start + 0.002)},
                    {"name": "execute", "started_at": _at(start + 0.002), "completed_at": _at(start + 0.05)},
                ],
                "thread_id": f"Thread-{index % 8 + 1} (worker)",
                "execution_time": 0.05,
                "adapter_response": {"_message": "SELECT 10", "code": "SELECT", "rows_affected": 10},
                "message": "SELECT 10",
                "failures": None,
                "unique_id": uid,
                "compiled": True,
                "compiled_code": sql,
                "relation_name": f'"warehouse"."analytics"."m{index:06d}"',
            }
        )
        manifest_nodes[uid] = {
            "unique_id": uid,
            "resource_type": "model",
            "name": f"m{index:06d}",
            "package_name": PROJECT,
            "original_file_path": f"models/m{index:06d}.sql",
            "tags": ["synthetic"],
            "config": {"materialized": "table"},
            "depends_on": {"nodes": _parents(index, fan_in), "macros": []},
            "database": "warehouse",
            "schema": "analytics",
            "alias": f"m{index:06d}",
            "raw_code": sql,
            "columns": {f"c{c}": {"name": f"c{c}", "description": ""} for c in range(5)},
        }
    end = nodes * 0.01 + 0.05
    run_results = {
        "metadata": {
            "dbt_schema_version": "https://schemas.getdbt.com/dbt/run-results/v6.json",
            "dbt_version": "1.11.0",
            "generated_at": _at(end + 0.1),
            "invocation_id": invocation_id,
            "invocation_started_at": _at(-0.5),
            "env": {},
        },
        "results": results,
        "elapsed_time": end + 0.6,
        "args": {"which": "run"},
    }
    manifest = {
        "metadata": {
            "dbt_schema_version": "https://schemas.getdbt.com/dbt/manifest/v12.json",
            "dbt_version": "1.11.0",
            "invocation_id": invocation_id,
            "project_name": PROJECT,
            "adapter_type": "postgres",
        },
        "nodes": manifest_nodes,
    }
    (directory / "run_results.json").write_text(json.dumps(run_results))
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return directory
