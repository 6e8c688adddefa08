"""Artifacts as the wild writes them: other commands, Fusion's quirks, odd statuses and formats.

Each case starts from the fixture project's real `dbt build` artifacts and changes
what the quirk changes; the independent contract checker then judges the replay.
"""

from __future__ import annotations

import json
import os
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from dbt_otel_replay.artifacts import load_artifacts
from dbt_otel_replay.cli import main
from dbt_otel_replay.errors import ArtifactError
from dbt_otel_replay.plan import plan_trace
from tests.support.contract import check_contract, from_otlp_json_lines, load_pair, nanos

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "artifacts" / "build"
PROJECT = "replay_fixture"
Document = dict[str, Any]


def variant(
    tmp_path: Path,
    change_results: Callable[[Document], None] | None = None,
    change_manifest: Callable[[Document], None] | None = None,
) -> Path:
    run_results = json.loads((FIXTURE / "run_results.json").read_text())
    manifest = json.loads((FIXTURE / "manifest.json").read_text())
    if change_results:
        change_results(run_results)
    if change_manifest:
        change_manifest(manifest)
    (tmp_path / "run_results.json").write_text(json.dumps(run_results))
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    return tmp_path


def replay_and_check(target: Path) -> tuple[dict[str, Any], str]:
    out = target / "trace.jsonl"
    result = CliRunner().invoke(main, [str(target), "-o", str(out)], env={"TRACEPARENT": ""})
    assert result.exit_code == 0, result.stderr
    spans = from_otlp_json_lines(out.read_text())
    return check_contract(*load_pair(target), spans), result.stderr


def result_of(document: Document, unique_id: str) -> Document:
    (found,) = [r for r in document["results"] if r["unique_id"] == unique_id]
    return found


def test_run_operation_macros_are_described_by_the_manifests_macros(tmp_path: Path) -> None:
    uid = f"macro.{PROJECT}.drop_fixture_schema"

    def run_operation(d: Document) -> None:
        hook = result_of(d, f"operation.{PROJECT}.{PROJECT}-on-run-start-0")
        d["results"] = [{**hook, "unique_id": uid}]
        d["args"]["which"] = "run-operation"

    spans, stderr = replay_and_check(variant(tmp_path, run_operation))
    assert spans[uid].attributes["dbt.node.resource_type"] == "macro"
    assert "warning" not in stderr


def test_no_op_exposures_and_saved_queries_nest_under_their_parents(tmp_path: Path) -> None:
    orders = f"model.{PROJECT}.orders"

    def add_results(d: Document) -> None:
        template = result_of(d, orders)
        for uid in (f"exposure.{PROJECT}.dashboard", f"saved_query.{PROJECT}.revenue"):
            d["results"].append({**template, "unique_id": uid, "status": "no-op", "timing": []})

    def add_nodes(m: Document) -> None:
        for section, uid in (("exposures", "dashboard"), ("saved_queries", "revenue")):
            unique_id = f"{section[:-1] if section == 'exposures' else 'saved_query'}.{PROJECT}.{uid}"
            m.setdefault(section, {})[unique_id] = {
                "name": uid,
                "resource_type": section.rstrip("s").replace("querie", "query"),
                "package_name": PROJECT,
                "depends_on": {"nodes": [orders]},
            }

    spans, stderr = replay_and_check(variant(tmp_path, add_results, add_nodes))
    for uid in (f"exposure.{PROJECT}.dashboard", f"saved_query.{PROJECT}.revenue"):
        assert spans[uid].parent_span_id == spans[orders].span_id
        assert spans[uid].attributes["dbt.status"] == "no-op"
    assert "warning" not in stderr


def test_an_all_zero_invocation_id_gets_a_stable_derived_trace_id(tmp_path: Path) -> None:
    def zero(d: Document) -> None:
        d["metadata"]["invocation_id"] = "00000000-0000-0000-0000-000000000000"

    target = variant(tmp_path, zero)
    first, second = plan_trace(load_artifacts(target)), plan_trace(load_artifacts(target))
    assert first.trace_id == second.trace_id and first.trace_id.strip("0")
    assert [s.span_id for s in first.spans] == [s.span_id for s in second.spans]
    assert any("is not a usable trace id" in w for w in first.warnings)


def test_fusion_like_results_identical_phase_times_and_missing_fields(tmp_path: Path) -> None:
    def fusion(d: Document) -> None:
        for result in d["results"]:
            if len(result["timing"]) == 2:
                result["timing"][1] = {**result["timing"][0], "name": "execute"}
            for key in ("message", "compiled_code", "adapter_response", "thread_id", "execution_time"):
                result.pop(key, None)

    spans, _ = replay_and_check(variant(tmp_path, fusion))
    assert spans[f"model.{PROJECT}.orders"].attributes["dbt.status"] == "success"


def test_microbatch_partial_success_records_windows_not_spans(tmp_path: Path) -> None:
    uid = f"model.{PROJECT}.payments_incremental"

    def microbatch(d: Document) -> None:
        result = result_of(d, uid)
        result["status"] = "partial success"
        result["batch_results"] = {
            "successful": [
                ["2024-01-01T00:00:00+00:00", "2024-01-02T00:00:00+00:00"],
                ["2024-01-02T00:00:00+00:00", "2024-01-03T00:00:00+00:00"],
            ],
            "failed": [["2024-01-03T00:00:00+00:00", "2024-01-04T00:00:00+00:00"]],
        }

    spans, _ = replay_and_check(variant(tmp_path, microbatch))
    span = spans[uid]
    assert span.attributes["dbt.batch.successful_count"] == 2
    assert span.attributes["dbt.batch.failed_count"] == 1
    assert span.attributes["dbt.batch.failed_windows"] == [
        "2024-01-03T00:00:00+00:00/2024-01-04T00:00:00+00:00"
    ]
    assert span.attributes["dbt.batch.window_start"] == "2024-01-01T00:00:00+00:00"
    assert span.attributes["dbt.batch.window_end"] == "2024-01-04T00:00:00+00:00"
    assert [e[0] for e in span.events] == ["dbt.partial_success"] and span.status_code == 0


@pytest.mark.parametrize("status", ["reused", "no-op", "runtime error", "partial success", "pass", "fail"])
def test_statuses_from_every_version_are_kept_verbatim(tmp_path: Path, status: str) -> None:
    uid = f"model.{PROJECT}.orders"

    def set_status(d: Document) -> None:
        result_of(d, uid)["status"] = status

    spans, _ = replay_and_check(variant(tmp_path, set_status))
    assert spans[uid].attributes["dbt.status"] == status
    assert (spans[uid].status_code == 2) == (status in ("runtime error", "fail"))


def test_timestamp_styles_are_exact(tmp_path: Path) -> None:
    uid = f"model.{PROJECT}.orders"
    styles = ("2026-11-25T10:00:00Z", "2026-11-25T10:00:00.5+00:00", "2026-11-25T10:00:01.123456")

    def restyle(d: Document) -> None:
        result = result_of(d, uid)
        result["timing"] = [
            {"name": "compile", "started_at": styles[0], "completed_at": styles[1]},
            {"name": "execute", "started_at": styles[1], "completed_at": styles[2]},
        ]

    spans, _ = replay_and_check(variant(tmp_path, restyle))
    assert (spans[uid].start, spans[uid].end) == (nanos(styles[0]), nanos(styles[2]))


@pytest.mark.parametrize("thread", ["Thread-1", "Thread-1 (worker)", "main", "MainThread"])
def test_thread_ids_of_every_version(tmp_path: Path, thread: str) -> None:
    uid = f"model.{PROJECT}.orders"

    def set_thread(d: Document) -> None:
        result_of(d, uid)["thread_id"] = thread

    spans, _ = replay_and_check(variant(tmp_path, set_thread))
    assert spans[uid].attributes["dbt.thread_id"] == spans[uid].attributes["thread.name"] == thread


def test_an_interrupted_run_replays_what_finished(tmp_path: Path) -> None:
    def interrupt(d: Document) -> None:
        d["results"] = d["results"][:10]

    spans, _ = replay_and_check(variant(tmp_path, interrupt))
    assert len(spans) == 10


def test_no_vars_or_sql_leave_the_machine_and_dbt_env_only_as_asked(tmp_path: Path) -> None:
    def secrets(d: Document) -> None:
        d["metadata"]["env"] = {"DBT_ENV_CUSTOM_ENV_TOKEN": "env-s3cret"}
        d["args"]["vars"] = {"password": "vars-s3cret"}
        d["args"]["invocation_command"] = "dbt build --vars '{password: vars-s3cret}'"
        result_of(d, f"model.{PROJECT}.orders")["compiled_code"] = "select 'sql-s3cret'"

    target = variant(tmp_path, secrets)
    replay_and_check(target)
    written = (target / "trace.jsonl").read_text()
    # metadata.env holds only what dbt users set to tag runs (DBT_ENV_CUSTOM_ENV_*; dbt never records
    # DBT_ENV_SECRET_*): exported by default as dbt.env.<name>, left out with --no-dbt-env
    assert "vars-s3cret" not in written and "sql-s3cret" not in written
    assert '"dbt.env.DBT_ENV_CUSTOM_ENV_TOKEN"' in written or '"dbt.env.TOKEN"' in written
    os.remove(target / "trace.jsonl")
    kept_out = CliRunner().invoke(
        main, [str(target), "-o", str(target / "k.json"), "--no-dbt-env"], env={"TRACEPARENT": ""}
    )
    assert kept_out.exit_code == 0 and "s3cret" not in (target / "k.json").read_text()
    result = CliRunner().invoke(
        main,
        [str(target), "-o", str(target / "t.json"), "--include-sql", "--no-dbt-env"],
        env={"TRACEPARENT": ""},
    )
    assert result.exit_code == 0
    opted_in = (target / "t.json").read_text()
    assert "vars-s3cret" in opted_in and "sql-s3cret" in opted_in and "env-s3cret" not in opted_in


def test_a_gigabyte_that_is_not_an_artifact_is_refused_at_once(tmp_path: Path) -> None:
    huge = tmp_path / "run_results.json"
    with huge.open("wb") as handle:
        handle.truncate(1024**3)  # sparse: a gigabyte of NUL bytes
    tracemalloc.start()
    try:
        with pytest.raises(ArtifactError, match="is not a dbt artifact"):
            load_artifacts(tmp_path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 1024**2, "it must not read the whole file"


def _before_0_17(d: Document) -> None:
    """run_results.json as dbt 0.16 wrote it: results and times at the top level, no metadata."""
    old = {"results": d["results"], "generated_at": d["metadata"]["generated_at"], "elapsed_time": 4.2}
    d.clear()
    d.update(old)


def _manifest_before_0_17(m: Document) -> None:
    """manifest.json as dbt 0.16 wrote it: metadata without dbt_schema_version."""
    m["metadata"] = {"project_id": "0" * 32, "user_id": None, "adapter_type": "postgres"}


@pytest.mark.parametrize("manifest", ["dbt 0.16", "current", "none"])
def test_artifacts_of_dbt_before_0_17_are_blamed_on_run_results(tmp_path: Path, manifest: str) -> None:
    target = variant(tmp_path, _before_0_17, _manifest_before_0_17 if manifest == "dbt 0.16" else None)
    if manifest == "none":
        (target / "manifest.json").unlink()
    result = CliRunner().invoke(main, [str(target), "--dry-run"], env={"TRACEPARENT": ""})
    assert result.exit_code == 1
    problem = "written by dbt < 0.17 (no metadata), not supported"
    assert result.stderr == f"dbt-otel-replay: error: {target / 'run_results.json'}: {problem}\n"


def test_a_document_without_metadata_or_results_is_not_called_old(tmp_path: Path) -> None:
    def neither(d: Document) -> None:
        d.clear()
        d["elapsed_time"] = 1.0

    with pytest.raises(ArtifactError, match=r"is not a dbt run-results artifact \(no metadata"):
        load_artifacts(variant(tmp_path, neither))
