"""Reading artifacts: real files load; every kind of bad file is one clear ArtifactError."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import msgspec
import pytest

from dbt_otel_replay.artifacts import _describe, load_artifacts, load_run_results
from dbt_otel_replay.errors import ArtifactError
from dbt_otel_replay.jsonfaults import diagnose

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
            "is not valid JSON at line 1, column 89 (it ends early: was dbt interrupted while writing it?)",
        ),
        # (the column of a trailing comma is left out: Python 3.13 moved it)
        (b'{"metadata": {}, "results": [1,]}', "is not valid JSON at line 1, column "),
        (b'{"metadata": {}, "results": [],\n "x": tru e}', "is not valid JSON at line 2, column 7: "),
        (b'{"metadata": {}, "elapsed_time": NaN}', "is not valid JSON: NaN is not a JSON number"),
        (b'{"metadata": {}, "x": -Infinity}', "is not valid JSON: -Infinity is not a JSON number"),
        (b'{"metadata": {}, "x": "\\udc00"}', "half of a UTF-16 surrogate pair"),
        (b"\xff\xfe\x00garbage", "is not a dbt artifact (a JSON object must start with '{')"),
        (b"[1, 2]", "is not a dbt artifact (a JSON object must start with '{')"),
        (b'{"metadata": {"dbt_schema_version": "\xff"}}', "not JSON text (not UTF-8)"),
        (b'{"metadata": "\xff\xfe"}', "is not JSON text (not UTF-8)"),  # msgspec stops at the type
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


RUN_RESULTS_SCHEMA = "https://schemas.getdbt.com/dbt/run-results/v6.json"
ODD_BUT_VALID = {
    "metadata": {"dbt_schema_version": RUN_RESULTS_SCHEMA, "generated_at": "2024-01-01T00:00:00Z"},
    "results": [{"unique_id": "model.p.a", "status": "success", "message": 'caf\u00e9 \U0001f600 \\ " \\u'}],
    "x": [1.5e-3, -12, 0, True, False, None, {"k\n": "\U0001f601"}, [], {}],
}
ENDS_EARLY = "(it ends early: was dbt interrupted while writing it?)"


@pytest.mark.parametrize("indent", [None, 2], ids=["compact", "indented"])
@pytest.mark.parametrize("ensure_ascii", [True, False], ids=["ascii", "utf8"])
def test_a_file_cut_anywhere_ends_early_where_it_stops(
    tmp_path: Path, indent: int | None, ensure_ascii: bool
) -> None:
    """dbt killed while writing: whatever the last byte is (in a string, an escape, a number, a
    literal, a character of several bytes), the message says so and where, whatever msgspec says."""
    whole = json.dumps(ODD_BUT_VALID, indent=indent, ensure_ascii=ensure_ascii).encode()
    assert load_run_results(_write(tmp_path, whole)).results[0].unique_id == "model.p.a"
    for cut in range(1, len(whole)):
        raw = whole[:cut]
        with pytest.raises(ArtifactError) as caught:
            load_run_results(_write(tmp_path, raw))
        text = raw.decode(errors="ignore").rstrip()
        line, column = text.count("\n") + 1, len(text) - text.rfind("\n")
        assert caught.value.problem == f"is not valid JSON at line {line}, column {column} {ENDS_EARLY}", raw


def _write(directory: Path, content: bytes) -> Path:
    path = directory / "run_results.json"
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b'{"a" "b', "is not valid JSON at line 1, column 6: "),  # a cut string after a real fault
        (b'{"a": x, "b": "c', "is not valid JSON at line 1, column 7: "),
        (b'{"a": 01', "is not valid JSON at line 1, column 8: "),
        (b'{"a": "\xc3\xa9"}\xc3', "is not JSON text (not UTF-8)"),  # a stray byte, not a cut
        (b'{"a": "\xc3"}', "is not JSON text (not UTF-8)"),
        (b'{"a": "\xc3', ENDS_EARLY),  # a character cut in two at the very end
        (b'{"a": "\\ud83d', ENDS_EARLY),  # a surrogate pair cut in two
        (b'{"a": "\\u00', ENDS_EARLY),
        (b'{"a": [1.5e-', ENDS_EARLY),
        (b'{"a": [nul', ENDS_EARLY),
        (b'{"a":' + b"[" * 100_000, "is not a dbt artifact (JSON nested too deeply)"),
    ],
)
def test_what_is_wrong_comes_from_the_bytes_not_from_msgspecs_exception(content: bytes, problem: str) -> None:
    """msgspec 0.18 and 0.23 raise different exceptions, with different words, for the same bytes."""
    for exc in (msgspec.DecodeError("Input data was truncated"), UnicodeDecodeError("utf-8", b"", 0, 1, "?")):
        assert problem in diagnose(exc, content)


def test_what_only_msgspec_refuses_is_shown_with_its_message() -> None:
    """Python's json reads it, msgspec does not (no such case is known): its message, one line."""
    assert diagnose(msgspec.DecodeError("some\nnew rule"), b'{"a": 1}') == "is not valid JSON (some new rule)"
    assert diagnose(RecursionError(), b'{"a": [[1]]}') == "is not a dbt artifact (JSON nested too deeply)"


@pytest.mark.parametrize(
    ("message", "described"),
    [
        (
            "Object missing required field `completed_at` - at `$.results[1].timing[0]`",
            "results[1].timing[0].completed_at: required but missing",
        ),
        ("Object missing required field `metadata`", "metadata: required but missing"),
        (
            "Expected `str`, got `int` - at `$.metadata.dbt_schema_version`",
            "metadata.dbt_schema_version: Expected `str`, got `int`",
        ),
        ("Expected `object`, got `array`", "document: Expected `object`, got `array`"),
        # A msgspec that words it otherwise: shown whole, on one line, never taken apart wrongly.
        (
            "Missing field 'completed_at' at results[1].timing[0]",
            "document: Missing field 'completed_at' at results[1].timing[0]",
        ),
        ("Something new\nat $.x", "document: Something new at $.x"),
    ],
)
def test_validation_messages_are_read_leniently(message: str, described: str) -> None:
    assert _describe(msgspec.ValidationError(message)) == described
