"""The benchmarks (bench/) at smoke size: they run, print their tables, and every span arrives.

Correctness only, never time: CI machines vary. Case (a) needs msgspec and case (e) needs
OpenLineage's dbt integration (``openlineage-integration-common``); each is skipped, visibly,
where its package is missing.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.backfill import FIXTURE, spans_per_run
from bench.generate import summarize, write_run

REPO_ROOT = Path(__file__).resolve().parent.parent
SMOKE_NODES = 300
ALL_CASES = ("a", "b", "c", "d", "e")
NEEDS = {
    "a": ("msgspec", "msgspec"),
    "e": ("openlineage.common.provider.dbt.local", "openlineage-integration-common"),
}


def _available(case: str) -> bool:
    if case not in NEEDS:
        return True
    module = NEEDS[case][0]
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


def _bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False
    )


@pytest.fixture(scope="module")
def smoke(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    cases = ",".join(c for c in ALL_CASES if _available(c))
    result = _bench("-m", "bench.run", "--nodes", str(SMOKE_NODES), "--cases", cases, "--json", str(out))
    return result, json.loads(out.read_text()) if out.exists() else {}


def test_the_benchmark_prints_the_machine_and_one_table(
    smoke: tuple[subprocess.CompletedProcess[str], dict[str, Any]],
) -> None:
    result, report = smoke
    assert result.returncode == 0, result.stdout + result.stderr
    assert "machine: " in result.stdout and "python: " in result.stdout and "packages: " in result.stdout
    header = "| nodes | case | wall s | peak RSS MB | spans/s | ratio vs (a) | ratio vs (e) | delivered |"
    assert result.stdout.count(header) == 1
    assert "FAILED" not in result.stdout
    assert report["machine"]["cores"]


@pytest.mark.parametrize("case", ALL_CASES)
def test_every_case_delivers_every_span(
    smoke: tuple[subprocess.CompletedProcess[str], dict[str, Any]], case: str
) -> None:
    if not _available(case):
        pytest.skip(f"case ({case}) needs {NEEDS[case][1]}, which is not installed")
    result, report = smoke
    assert result.returncode == 0, result.stdout + result.stderr
    rows = [r for r in report["rows"] if r["case"] == case]
    assert len(rows) == 1
    row = rows[0]
    assert row["error"] is None
    assert row["expected"] > 0
    assert row["delivered"] == row["expected"]
    if case != "e":
        assert row["expected"] == report["sizes"][str(SMOKE_NODES)]["spans"]
    table_rows = [
        line for line in result.stdout.splitlines() if line.startswith(f"| {SMOKE_NODES} | ({case})")
    ]
    assert len(table_rows) == 1, result.stdout


def test_the_generated_run_has_the_promised_shape(tmp_path: Path) -> None:
    directory = write_run(tmp_path / "run", SMOKE_NODES, seed=3)
    run_results = json.loads((directory / "run_results.json").read_text())
    manifest = json.loads((directory / "manifest.json").read_text())
    results = run_results["results"]
    by_type: dict[str, int] = {}
    for result in results:
        kind = result["unique_id"].split(".")[0]
        by_type[kind] = by_type.get(kind, 0) + 1
        if result["status"] == "skipped":
            assert result["timing"] == []
        else:
            assert [t["name"] for t in result["timing"]] == ["compile", "execute"]
    assert by_type["model"] == SMOKE_NODES
    assert by_type["test"] == 2 * SMOKE_NODES
    assert by_type["seed"] >= 1
    assert run_results["args"]["which"] == "build"
    statuses = {r["status"] for r in results}
    assert {"success", "pass", "error", "skipped"} <= statuses
    assert manifest["sources"] and len(manifest["macros"]) >= 200
    models = [n for n in manifest["nodes"].values() if n["resource_type"] == "model"]
    assert {m["config"]["materialized"] for m in models} == {"view", "table", "incremental"}
    assert all(5 <= len(m["columns"]) <= 30 for m in models)
    assert all(1 <= len(m["depends_on"]["nodes"]) <= 5 for m in models)
    for test in (n for n in manifest["nodes"].values() if n["resource_type"] == "test"):
        assert test["test_metadata"]["name"] in ("unique", "not_null")
        assert manifest["nodes"][test["depends_on"]["nodes"][0]]["resource_type"] == "model"
    # results are in completion order, and nothing downstream of an error ran
    ends = [r["timing"][-1]["completed_at"] for r in results if r["timing"]]
    assert ends == sorted(ends)
    errored = {r["unique_id"] for r in results if r["status"] == "error"}
    for uid in errored:
        for child in manifest["child_map"][uid]:
            assert next(r for r in results if r["unique_id"] == child)["status"] == "skipped"
    assert summarize(directory).spans == 1 + len(results) + sum(len(r["timing"]) for r in results)


def test_the_generator_is_deterministic(tmp_path: Path) -> None:
    first = write_run(tmp_path / "first", 120, seed=7)
    second = write_run(tmp_path / "second", 120, seed=7)
    other = write_run(tmp_path / "other", 120, seed=8)
    for name in ("manifest.json", "run_results.json"):
        assert (first / name).read_bytes() == (second / name).read_bytes()
        assert (first / name).read_bytes() != (other / name).read_bytes()


def test_the_backfill_benchmark_delivers_every_run(tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = _bench(
        "-m", "bench.backfill", "--runs", "12", "--data", str(data), "--json", str(tmp_path / "b.json")
    )
    assert result.returncode == 0, result.stdout + result.stderr
    expected = 12 * spans_per_run(json.loads((FIXTURE / "run_results.json").read_text()))
    assert "| 12 |" in result.stdout and f"{expected:,} / {expected:,} spans in 12 traces" in result.stdout
    archived = sorted(
        p.relative_to(data / "archive-12") for p in (data / "archive-12").rglob("run_results.json*")
    )
    assert len(archived) == 12
    assert str(archived[0]).startswith("2026/11/01/run-0001")
    compressed = [p for p in archived if p.suffix == ".gz"]
    assert len(compressed) == 6
    document = json.loads(gzip.decompress((data / "archive-12" / compressed[0]).read_bytes()))
    assert document["metadata"]["invocation_id"]
