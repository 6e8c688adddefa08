"""Reading artifacts: real files load; every kind of bad file is one clear ArtifactError."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from dbt_otel_replay.artifacts import load_artifacts
from dbt_otel_replay.errors import ArtifactError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "artifacts"


@pytest.fixture
def target(tmp_path: Path) -> Path:
    for name in ("run_results.json", "manifest.json"):
        shutil.copy(FIXTURES / "build" / name, tmp_path / name)
    return tmp_path


def rewrite(path: Path, change: Any) -> None:
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


def test_loads_a_real_build(target: Path) -> None:
    artifacts = load_artifacts(target)
    assert len(artifacts.run_results.results) == 33
    assert artifacts.manifest is not None and artifacts.warnings == ()


def test_accepts_the_run_results_file_itself(target: Path) -> None:
    assert load_artifacts(target / "run_results.json").manifest is not None


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "is empty"),
        (
            b'{"metadata": {"dbt_schema_version": "https://schemas.getdbt.com/dbt/run-results/v6.json"',
            "not valid JSON",
        ),
        (b"\xff\xfe\x00garbage", "is not a dbt artifact (a JSON object must start with '{')"),
        (b"[1, 2]", "is not a dbt artifact (a JSON object must start with '{')"),
        (b'{"metadata": {"dbt_schema_version": "\xff"}}', "not JSON text (not UTF-8)"),
        (b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply"),
        (b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 12\n", "Git LFS pointer"),
        (
            b'{"metadata": {"dbt_schema_version": "https://schemas.getdbt.com/dbt/catalog/v1.json"}}',
            "catalog",
        ),
        (b'{"metadata": {}, "results": []}', "no metadata.dbt_schema_version"),
    ],
)
def test_bad_run_results_name_the_file_and_the_problem(target: Path, content: bytes, problem: str) -> None:
    (target / "run_results.json").write_bytes(content)
    with pytest.raises(ArtifactError) as caught:
        load_artifacts(target)
    assert str(caught.value).startswith(str(target / "run_results.json"))
    assert problem in str(caught.value)


def test_missing_run_results(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match=r"run_results\.json: not found"):
        load_artifacts(tmp_path)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda d: d.update(results=[]), "has no results"),
        (lambda d: d["results"].append(d["results"][1]), "appears twice"),
        (lambda d: d["results"][1]["timing"][0].pop("completed_at"), "results[1].timing[0].completed_at"),
        (
            lambda d: d["results"][1]["timing"][0].update(started_at="2099-01-01T00:00:00Z"),
            "ends before it starts",
        ),
        (lambda d: d["results"][1]["timing"][0].update(started_at="not a time"), "ISO 8601"),
        (lambda d: d["metadata"].pop("generated_at"), "metadata.generated_at"),
    ],
)
def test_inconsistent_results_are_refused(target: Path, change: Any, problem: str) -> None:
    rewrite(target / "run_results.json", change)
    with pytest.raises(ArtifactError) as caught:
        load_artifacts(target)
    assert problem in str(caught.value)


def test_missing_manifest_is_a_warning(target: Path) -> None:
    (target / "manifest.json").unlink()
    artifacts = load_artifacts(target)
    assert artifacts.manifest is None
    assert "manifest.json: not found" in artifacts.warnings[0]


def test_an_explicit_manifest_must_exist(target: Path) -> None:
    with pytest.raises(ArtifactError, match=r"elsewhere\.json: not found"):
        load_artifacts(target, target / "elsewhere.json")


def test_a_manifest_from_another_invocation_is_a_warning(target: Path) -> None:
    shutil.copy(FIXTURES / "run" / "manifest.json", target / "manifest.json")
    artifacts = load_artifacts(target)
    assert artifacts.manifest is not None
    assert any("written by another dbt invocation" in w for w in artifacts.warnings)


def test_a_newer_schema_version_is_a_warning(target: Path) -> None:
    rewrite(
        target / "run_results.json",
        lambda d: d["metadata"].update(
            dbt_schema_version="https://schemas.getdbt.com/dbt/run-results/v7.json"
        ),
    )
    artifacts = load_artifacts(target)
    assert any("v7 is newer than v6" in w for w in artifacts.warnings)


def test_unknown_keys_are_ignored_and_loose_counts_accepted(target: Path) -> None:
    def change(d: dict[str, Any]) -> None:
        d["results"][1]["brand_new_field"] = {"x": 1}
        d["results"][1]["failures"] = "3"
        d["metadata"]["something"] = [1]

    rewrite(target / "run_results.json", change)
    assert load_artifacts(target).run_results.results[1].failure_count == 3


def test_compiled_sql_of_old_versions_is_read(target: Path) -> None:
    def change(d: dict[str, Any]) -> None:
        result = d["results"][1]
        result["compiled_sql"] = result.pop("compiled_code", None) or "select 1"

    rewrite(target / "run_results.json", change)
    assert load_artifacts(target, include_sql=True).run_results.results[1].sql
    assert load_artifacts(target).run_results.results[1].sql is None, "SQL is only read when asked for"
