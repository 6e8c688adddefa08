"""Manifests whose depends_on is not a DAG: every span still reaches the invocation span, with one warning.

dbt refuses a cyclic graph, but a hand-edited manifest, or one from another
invocation, can still make two results each other's parent. Each case edits the
fixture project's real `dbt build` manifest in a temporary folder; the checks
here walk the parent ids themselves rather than trusting the planner.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from dbt_otel_replay.artifacts import load_artifacts
from dbt_otel_replay.cli import main
from dbt_otel_replay.critical import Window, critical_chain
from dbt_otel_replay.dag import Dag, on_cycles, parent_cycles
from dbt_otel_replay.plan import Nesting, Plan, PlanOptions, plan_trace
from dbt_otel_replay.spans import PlannedSpan
from dbt_otel_replay.views import render_tree

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "artifacts" / "build"
P = "replay_fixture"
Document = dict[str, Any]

STG_CUSTOMERS, STG_ORDERS = f"model.{P}.stg_customers", f"model.{P}.stg_orders"
CUSTOMER_ORDERS, CUSTOMER_LTV = f"model.{P}.customer_orders", f"model.{P}.customer_ltv"
RAW_CUSTOMERS = f"seed.{P}.raw_customers"


def cyclic(tmp_path: Path, edges: dict[str, list[str]]) -> Path:
    """The fixture build with these nodes' depends_on.nodes replaced (run_results.json untouched)."""
    manifest = json.loads((FIXTURE / "manifest.json").read_text())
    for unique_id, parents in edges.items():
        manifest["nodes"][unique_id]["depends_on"]["nodes"] = parents
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    (tmp_path / "run_results.json").write_bytes((FIXTURE / "run_results.json").read_bytes())
    return tmp_path


TWO = {STG_CUSTOMERS: [STG_ORDERS], STG_ORDERS: [STG_CUSTOMERS]}
"""Two models that depend on each other."""
THREE = {STG_CUSTOMERS: [CUSTOMER_LTV]}
"""stg_customers -> customer_ltv -> customer_orders -> stg_customers (customer_orders' first parent)."""
BOTH = {
    STG_CUSTOMERS: [CUSTOMER_LTV],
    f"model.{P}.stg_payments": [f"model.{P}.payments_incremental"],
    f"model.{P}.payments_incremental": [f"model.{P}.stg_payments"],
}
"""Two separate cycles in one run."""


def by_uid(plan: Plan) -> dict[str, PlannedSpan]:
    return {str(s.attributes["dbt.node.unique_id"]): s for s in plan.nodes}


def assert_every_span_reaches_the_invocation(plan: Plan) -> None:
    """Follow parent_span_id from every span: each chain ends at the invocation, no span visited twice."""
    by_id = {s.span_id: s for s in plan.spans}
    assert len(by_id) == len(plan.spans), "span ids are unique"
    root = plan.invocation.span_id
    for span in plan.spans[1:]:
        seen = {span.span_id}
        current = span
        while current.span_id != root:
            assert current.parent_span_id in by_id, f"{span.name}: parent {current.parent_span_id} is no span"
            current = by_id[current.parent_span_id]
            assert current.span_id not in seen, f"{span.name} is its own ancestor"
            seen.add(current.span_id)


def cycle_warnings(plan: Plan) -> list[str]:
    return [w for w in plan.warnings if "depends_on is not a DAG" in w]


@pytest.mark.parametrize("nesting", ["first-parent", "critical"])
@pytest.mark.parametrize("edges", [TWO, THREE, BOTH], ids=["two", "three", "two-cycles"])
def test_every_result_has_one_span_on_a_chain_to_the_invocation(
    tmp_path: Path, edges: dict[str, list[str]], nesting: Nesting
) -> None:
    artifacts = load_artifacts(cyclic(tmp_path, edges))
    plan = plan_trace(artifacts, PlanOptions(nesting=nesting))
    assert [s.name for s in plan.nodes] == [r.unique_id for r in artifacts.run_results.results]
    assert_every_span_reaches_the_invocation(plan)
    assert len(cycle_warnings(plan)) == 1


def test_two_models_that_depend_on_each_other(tmp_path: Path) -> None:
    plan = plan_trace(load_artifacts(cyclic(tmp_path, TWO)))
    spans = by_uid(plan)
    # stg_customers comes first in run_results.json: the cycle is broken there
    assert spans[STG_CUSTOMERS].parent_span_id == plan.invocation.span_id
    assert [link.span_id for link in spans[STG_CUSTOMERS].links] == [spans[STG_ORDERS].span_id]
    assert spans[STG_CUSTOMERS].links[0].attributes == {"dbt.node.unique_id": STG_ORDERS}
    assert spans[STG_ORDERS].parent_span_id == spans[STG_CUSTOMERS].span_id
    (warning,) = cycle_warnings(plan)
    assert warning == (
        f"{tmp_path / 'manifest.json'}: depends_on is not a DAG: 2 result(s) are on a cycle "
        f"({STG_CUSTOMERS}, {STG_ORDERS}); where the spans' parents would loop, the loop is broken at its "
        "first result in run_results.json, which nests directly under the invocation span "
        "(its parents become links)"
    )


def test_a_longer_cycle_and_what_hangs_below_it(tmp_path: Path) -> None:
    plan = plan_trace(load_artifacts(cyclic(tmp_path, THREE)))
    spans = by_uid(plan)
    assert spans[STG_CUSTOMERS].parent_span_id == plan.invocation.span_id
    assert spans[CUSTOMER_LTV].parent_span_id == spans[CUSTOMER_ORDERS].span_id
    assert spans[CUSTOMER_ORDERS].parent_span_id == spans[STG_CUSTOMERS].span_id
    # below the cycle nothing moves: the skipped model still sits at the failure that caused it
    segments = spans[f"model.{P}.customer_segments"]
    assert segments.parent_span_id == spans[CUSTOMER_LTV].span_id
    assert segments.start_time_unix_nano == spans[CUSTOMER_LTV].end_time_unix_nano
    (warning,) = cycle_warnings(plan)
    assert f": 3 result(s) are on a cycle ({STG_CUSTOMERS}, {CUSTOMER_ORDERS}, {CUSTOMER_LTV});" in warning


def test_one_warning_for_several_cycles(tmp_path: Path) -> None:
    plan = plan_trace(load_artifacts(cyclic(tmp_path, BOTH)))
    (warning,) = cycle_warnings(plan)
    shown = f"{STG_CUSTOMERS}, model.{P}.stg_payments, model.{P}.payments_incremental and 2 more"
    assert f": 5 result(s) are on a cycle ({shown});" in warning
    spans = by_uid(plan)
    assert spans[f"model.{P}.stg_payments"].parent_span_id == plan.invocation.span_id


def test_the_break_is_deterministic(tmp_path: Path) -> None:
    target = cyclic(tmp_path, BOTH)
    first, second = plan_trace(load_artifacts(target)), plan_trace(load_artifacts(target))
    assert [(s.span_id, s.parent_span_id, s.links) for s in first.spans] == [
        (s.span_id, s.parent_span_id, s.links) for s in second.spans
    ]
    assert first.warnings == second.warnings
    acyclic = plan_trace(load_artifacts(FIXTURE))
    assert [s.span_id for s in first.spans] == [s.span_id for s in acyclic.spans], "span ids never change"


def test_a_cycle_the_spans_do_not_follow_is_noticed_and_changes_no_parent(tmp_path: Path) -> None:
    # each model's first executed parent is its seed, so the spans' parents form no loop
    edges = {STG_CUSTOMERS: [RAW_CUSTOMERS, STG_ORDERS], STG_ORDERS: [f"seed.{P}.raw_orders", STG_CUSTOMERS]}
    plan = plan_trace(load_artifacts(cyclic(tmp_path, edges)))
    (warning,) = cycle_warnings(plan)
    assert f": 2 result(s) are on a cycle ({STG_CUSTOMERS}, {STG_ORDERS});" in warning
    assert_every_span_reaches_the_invocation(plan)
    spans = by_uid(plan)
    assert spans[STG_CUSTOMERS].parent_span_id == spans[RAW_CUSTOMERS].span_id
    assert [link.span_id for link in spans[STG_CUSTOMERS].links] == [spans[STG_ORDERS].span_id]


@pytest.mark.parametrize("edges", [TWO, THREE, BOTH], ids=["two", "three", "two-cycles"])
def test_the_dry_run_tree_shows_every_node(tmp_path: Path, edges: dict[str, list[str]]) -> None:
    target = cyclic(tmp_path, edges)
    plan = plan_trace(load_artifacts(target))
    tree = render_tree(plan)
    assert len(tree.splitlines()) == len(plan.spans), "one line per span"
    for span in plan.nodes:
        assert span.name in tree
    result = CliRunner().invoke(main, [str(target), "--dry-run"], env={"TRACEPARENT": ""})
    assert result.exit_code == 0, result.stderr
    assert all(span.name in result.stdout for span in plan.nodes)
    assert result.stderr.count("depends_on is not a DAG") == 1


def test_parent_cycles_finds_each_cycle_once_from_its_first_member() -> None:
    order = ["a", "b", "c", "d", "e", "f", "g"]
    # g -> d -> e -> f -> d (a tail into a cycle); c -> b -> c; a has no parent
    parent_of = {"g": "d", "d": "e", "e": "f", "f": "d", "c": "b", "b": "c"}
    assert parent_cycles(parent_of, order) == [("b", "c"), ("d", "e", "f")]
    assert parent_cycles({"x": "x"}, ["x"]) == [("x",)]
    assert parent_cycles({"b": "a"}, ["a", "b"]) == []
    assert parent_cycles({}, []) == []


def test_on_cycles_finds_the_nodes_on_cycles_only() -> None:
    order = ["a", "b", "c", "d", "e", "f", "x"]
    # a <- b <- c <- a is a cycle; d hangs below it; e <-> f; x names itself alone
    parents = {"b": ["a"], "c": ["b"], "a": ["c"], "d": ["c"], "e": ["f"], "f": ["e"], "x": ["x"]}
    assert on_cycles(parents, order) == ["a", "b", "c", "e", "f"]
    assert on_cycles({"b": ["a"], "c": ["a", "b"]}, ["a", "b", "c"]) == []
    assert on_cycles({"a": ["b"], "b": []}, ["a", "b"]) == [], "a parent later in the order is no cycle"
    chain = [f"n{i}" for i in range(100_000)]  # deeper than Python's recursion limit
    assert on_cycles({n: [m] for n, m in itertools.pairwise(chain)}, chain) == []
    assert (
        len(on_cycles({n: [m] for n, m in zip(chain, chain[1:] + chain[:1], strict=True)}, chain)) == 100_000
    )


def test_ancestors_and_the_critical_chain_terminate_on_cycles() -> None:
    dag = Dag({"a": ("b",), "b": ("c",), "c": ("a", "b")})
    assert list(dag.ancestors("a")) == ["b", "c"]
    assert dag.executed_parents("c", {"a", "b", "c"}) == ("a", "b")
    windows = {"a": Window(0, 10), "b": Window(20, 30), "c": Window(5, 5), "d": Window(5, 5)}
    parents = {"a": ["b"], "b": ["a"], "c": ["d"], "d": ["c"]}
    assert critical_chain(windows, parents) == ["a", "b"]
    # zero-length windows at one moment: each "finished before" the other started
    assert critical_chain({"c": Window(5, 5), "d": Window(5, 5)}, parents) == ["c", "d"]


def _skipped_inside_a_cycle(tmp_path: Path) -> Path:
    return cyclic(tmp_path, {f"model.{P}.customer_segments": [f"model.{P}.customer_segment_summary"]})


def test_a_skipped_result_on_a_cycle_still_sits_at_a_failure(tmp_path: Path) -> None:
    # customer_segments <-> customer_segment_summary, both skipped: no failed ancestor on the cycle
    plan = plan_trace(load_artifacts(_skipped_inside_a_cycle(tmp_path)))
    assert_every_span_reaches_the_invocation(plan)
    spans = by_uid(plan)
    first_failure = min(
        s.end_time_unix_nano for s in plan.nodes if s.attributes["dbt.status"] in ("error", "fail")
    )
    for uid in (f"model.{P}.customer_segments", f"model.{P}.customer_segment_summary"):
        assert spans[uid].start_time_unix_nano == spans[uid].end_time_unix_nano == first_failure
