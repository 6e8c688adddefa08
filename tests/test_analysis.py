"""Why a run took as long as it did: critical path, --nesting critical, thread utilisation, JSON summary."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from dbt_otel_replay.artifacts import load_artifacts
from dbt_otel_replay.cli import main
from dbt_otel_replay.critical import Window, critical_chain, holding_parent
from dbt_otel_replay.plan import PlanOptions, plan_trace
from dbt_otel_replay.spans import PlannedSpan
from dbt_otel_replay.views.analysis import analyse
from tests.support.contract import nanos
from tests.support.oracles import SUMMARY_KEYS, union_by_sweep

BUILD = Path(__file__).resolve().parents[1] / "fixtures" / "artifacts" / "build"
LOGGED = Path(__file__).resolve().parents[1] / "fixtures" / "logs" / "dbt-1.11-text" / "target"
P = "replay_fixture"


def by_uid(spans: tuple[PlannedSpan, ...]) -> dict[str, PlannedSpan]:
    return {str(s.attributes["dbt.node.unique_id"]): s for s in spans}


def test_critical_path_of_the_fixture_build_matches_the_hand_computed_chain() -> None:
    # By hand, from fixtures/artifacts/build/run_results.json (seconds after the first node started):
    # the last DAG node to finish is model customer_ltv (ends last; hooks run outside the DAG).
    # Its only executed parent, customer_orders, ended before it started.
    # customer_orders has three parents; stg_payments (pg_sleep pre-hook) finished last of them.
    # stg_payments' parent is the seed raw_payments, which has no parent: the chain ends there.
    plan = plan_trace(load_artifacts(BUILD))
    analysis = analyse(plan)
    expected = [
        f"seed.{P}.raw_payments",
        f"model.{P}.stg_payments",
        f"model.{P}.customer_orders",
        f"model.{P}.customer_ltv",
    ]
    assert [step.unique_id for step in analysis.critical_path] == expected
    marked = [uid for uid, span in by_uid(plan.nodes).items() if span.attributes.get("dbt.critical_path")]
    assert sorted(marked) == sorted(expected)
    results = {r["unique_id"]: r for r in json.loads((BUILD / "run_results.json").read_text())["results"]}

    def window(uid: str) -> tuple[int, int]:
        timing = results[uid]["timing"]
        return min(nanos(t["started_at"]) for t in timing), max(nanos(t["completed_at"]) for t in timing)

    for before, after, step in zip(expected[:-1], expected[1:], analysis.critical_path[1:], strict=True):
        assert step.wait_seconds == (window(after)[0] - window(before)[1]) / 1e9
    assert analysis.critical_seconds == (window(expected[-1])[1] - window(expected[0])[0]) / 1e9


def test_a_plan_is_analysed_once_for_all_its_views() -> None:
    """--html, --waterfall and the summary of one run each asked for it: three analyses of one plan."""
    plan = plan_trace(load_artifacts(BUILD))
    first = analyse(plan)
    assert analyse(plan) is first
    other = plan_trace(load_artifacts(LOGGED))
    assert analyse(other) is not first
    assert analyse(other).critical_path != first.critical_path
    again = plan_trace(load_artifacts(BUILD))  # an equal plan, another object: analysed anew, alike
    assert analyse(again) is not first and analyse(again) == first


def test_the_chain_steps_to_the_parent_that_finished_last_before_the_start() -> None:
    windows = {
        "a": Window(0, 10),
        "b": Window(0, 30),
        "late": Window(0, 45),  # still running when c started: it did not hold c back
        "c": Window(40, 50),
        "d": Window(55, 60),
    }
    parents = {"c": ["a", "b", "late"], "d": ["c"]}
    assert critical_chain(windows, parents) == ["b", "c", "d"]
    assert holding_parent("c", parents["c"], windows) == "b"
    assert holding_parent("a", [], windows) is None
    assert critical_chain({}, {}) == []


def test_nesting_critical_nests_under_the_parent_that_held_the_node_back() -> None:
    artifacts = load_artifacts(BUILD)
    first = by_uid(plan_trace(artifacts).nodes)
    critical = by_uid(plan_trace(artifacts, PlanOptions(nesting="critical")).nodes)
    uid = f"model.{P}.customer_orders"
    parents = [f"model.{P}.stg_customers", f"model.{P}.stg_orders", f"model.{P}.stg_payments"]
    assert first[uid].parent_span_id == first[parents[0]].span_id
    assert critical[uid].parent_span_id == critical[parents[2]].span_id
    assert [link.span_id for link in critical[uid].links] == [critical[p].span_id for p in parents[:2]]
    assert {s.span_id for s in critical.values()} == {s.span_id for s in first.values()}, "same span ids"


def test_thread_utilisation_counts_each_worker_threads_busy_time() -> None:
    analysis = analyse(plan_trace(load_artifacts(BUILD)))
    busy: dict[str, int] = defaultdict(int)
    ends, starts = [], []
    for result in json.loads((BUILD / "run_results.json").read_text())["results"]:
        if result["timing"] and not result["unique_id"].startswith("operation."):
            start = min(nanos(t["started_at"]) for t in result["timing"])
            end = max(nanos(t["completed_at"]) for t in result["timing"])
            busy[result["thread_id"]] += end - start
            starts.append(start)
            ends.append(end)
    window = max(ends) - min(starts)
    assert {t.name: t.busy_seconds for t in analysis.threads} == {k: v / 1e9 for k, v in busy.items()}
    assert analysis.window_seconds == window / 1e9
    assert abs(analysis.idle_share - (1 - sum(busy.values()) / (window * len(busy)))) < 1e-12
    assert len(analysis.threads) == 4, "the four worker threads; hooks run on main, outside the DAG"


def test_summary_and_json_format(tmp_path: Path) -> None:
    text = CliRunner().invoke(main, [str(BUILD), "--dry-run"], env={"TRACEPARENT": ""})
    assert "critical path: 4 nodes" in text.stderr and "threads: " in text.stderr
    assert f"model.{P}.customer_orders  (waited " in text.stderr
    document = _json_summary(BUILD, tmp_path / "build")
    assert set(document) == SUMMARY_KEYS, "a run without dbt's log keeps the document it always had"
    assert document["version"] == 1 and document["spans"] == 94 and document["nodes"] == 33
    assert [step["unique_id"] for step in document["critical_path"]][-1] == f"model.{P}.customer_ltv"
    assert {f["status"] for f in document["failures"]} == {"error", "fail"}
    assert set(document["threads"][0]) == {"name", "busy_seconds", "utilisation", "nodes"}


def test_json_summary_with_dbt_log(tmp_path: Path) -> None:
    document = _json_summary(LOGGED, tmp_path)
    assert set(document) == SUMMARY_KEYS | {"span_roles", "slowest_statements", "node_breakdown", "batches"}
    roles = document["span_roles"]
    assert set(roles) == {"invocation", "node", "phase", "statement", "batch", "connection", "hook"}
    assert roles["hook"] == 0, "dbt 1.11 records its hooks as results: node spans"
    assert sum(roles.values()) == document["spans"] and roles["node"] == document["nodes"]
    assert roles["statement"] > 0 and roles["batch"] == 5
    assert set(document["slowest_statements"][0]) == {
        "summary",
        "operation",
        "seconds",
        "unique_id",
        "connection",
        "status",
        "rows",
        "query_id",
        "error",
    }
    seconds = [s["seconds"] for s in document["slowest_statements"]]
    assert len(seconds) == 5 and seconds == sorted(seconds, reverse=True)
    breakdown = {b["unique_id"]: b for b in document["node_breakdown"]}
    parallel = breakdown["model.replay_logs.parallel_a"]
    assert parallel["statements"] >= 1 and parallel["failed_statements"] == 0
    assert 0 < parallel["statement_seconds"] < parallel["seconds"]
    assert breakdown["model.replay_logs.broken_model"]["failed_statements"] == 1
    for entry in breakdown.values():
        parts = entry["statement_seconds"] + entry["connection_seconds"] + entry["overhead_seconds"]
        assert abs(parts - entry["seconds"]) < 1e-9 and entry["overhead_seconds"] >= 0
    assert document["batches"] == [
        {
            "unique_id": "model.replay_logs.events_microbatch",
            "batches": 5,
            "failed": 1,
            "failed_windows": ["2024-01-03"],
        }
    ]


def _json_summary(target: Path, out: Path) -> dict[str, Any]:
    out.mkdir(exist_ok=True)
    result = CliRunner().invoke(
        main,
        [
            str(target),
            "-o",
            str(out / "t.json"),
            "--traceparent-to",
            str(out / "tp"),
            "--format",
            "json",
        ],
        env={"TRACEPARENT": ""},
    )
    assert result.exit_code == 0, result.output
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def _one_thread_run(tmp_path: Path, timings: dict[str, tuple[str, str]] | None = None) -> Path:
    """The fixture build with threads as dbt Fusion writes them: one thread id for concurrent nodes.

    With ``timings``, only those nodes keep a timing, the one given (start, end).
    """
    document = json.loads((BUILD / "run_results.json").read_text())
    for result in document["results"]:
        if not result["unique_id"].startswith("operation."):
            result["thread_id"] = "Thread-1"
        if timings is not None:
            start, end = timings.get(result["unique_id"], (None, None))
            result["timing"] = (
                [{"name": "execute", "started_at": start, "completed_at": end}] if start else []
            )
    (tmp_path / "run_results.json").write_text(json.dumps(document))
    (tmp_path / "manifest.json").write_bytes((BUILD / "manifest.json").read_bytes())
    return tmp_path


def test_concurrent_nodes_on_one_thread_count_their_overlap_once(tmp_path: Path) -> None:
    analysis = analyse(plan_trace(load_artifacts(_one_thread_run(tmp_path))))
    intervals = []
    for result in json.loads((BUILD / "run_results.json").read_text())["results"]:
        if result["timing"] and not result["unique_id"].startswith("operation."):
            start = min(nanos(t["started_at"]) for t in result["timing"])
            intervals.append((start, max(nanos(t["completed_at"]) for t in result["timing"])))
    window = max(end for _, end in intervals) - min(start for start, _ in intervals)
    assert sum(end - start for start, end in intervals) > window, (
        "the nodes do overlap: a sum would pass 100 %"
    )
    (thread,) = analysis.threads
    assert thread.name == "Thread-1" and thread.nodes == len(intervals)
    assert thread.busy_seconds == union_by_sweep(intervals) / 1e9 <= analysis.window_seconds
    assert thread.utilisation == union_by_sweep(intervals) / window <= 1.0
    assert abs(analysis.idle_share - (1 - union_by_sweep(intervals) / window)) < 1e-12


def test_overlap_on_one_thread_by_hand(tmp_path: Path) -> None:
    # three models on one thread: 0-10 s and 5-15 s overlap, 20-25 s stands apart: 20 s busy, not 25
    day = "2030-01-01T00:00:"
    timings = {
        f"model.{P}.stg_customers": (f"{day}00Z", f"{day}10Z"),
        f"model.{P}.stg_orders": (f"{day}05Z", f"{day}15Z"),
        f"model.{P}.stg_payments": (f"{day}20Z", f"{day}25Z"),
    }
    analysis = analyse(plan_trace(load_artifacts(_one_thread_run(tmp_path, timings))))
    (thread,) = analysis.threads
    assert (thread.nodes, thread.busy_seconds, analysis.window_seconds) == (3, 20.0, 25.0)
    assert thread.utilisation == 0.8 and abs(analysis.idle_share - 0.2) < 1e-12
