"""Volume and shape (#13): --phases, --select, --min-duration and --nesting flat on real runs.

Every fixture run, every pair of ../shared/corpus (read in place) and every scenario of
fixtures/logs (with the statement, batch and connection spans of dbt's log) is planned whole
and shaped, and the shaped trace is checked against what the artifacts say, read with
``json`` alone: the tree stays whole (every parent kept, every chain ending at the
invocation), no link leads to a dropped span, kept + dropped = planned, and the kept nodes
are exactly those the option names, each under its nearest kept ancestor by depends_on.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dbt_otel_replay import attributes as attr
from dbt_otel_replay.plan import Plan, PlanOptions
from dbt_otel_replay.replay import ReplayOptions, prepare
from dbt_otel_replay.shape import Selector, SelectorError, Shape, shape_spans
from dbt_otel_replay.spans import PlannedSpan, SpanRole
from tests.support.cli import fixture_target, run_cli
from tests.support.contract import from_otlp_json_lines, load_pair, nanos

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "fixtures" / "artifacts"
LOGS = REPO / "fixtures" / "logs"
CORPUS = REPO.parent / "shared" / "corpus"


def _runs() -> dict[str, Path]:
    found = {
        f"fixture/{p.parent.relative_to(FIXTURES)}": p.parent for p in FIXTURES.rglob("run_results.json")
    }
    found |= {f"logs/{p.parent.parent.name}": p.parent for p in LOGS.glob("*/target/run_results.json")}
    if CORPUS.is_dir():
        found |= {f"corpus/{p.name}": p for p in CORPUS.iterdir() if (p / "run_results.json").exists()}
    return dict(sorted(found.items()))


RUNS = _runs()
LOG_RUNS = [name for name in RUNS if name.startswith("logs/")]
FAILED = ("error", "fail")


def planned(name: str, **options: Any) -> Plan:
    """The run as the command plans it (dbt's log read where it is beside the target), nothing written."""
    return prepare(RUNS[name], ReplayOptions(dry_run=True, plan=PlanOptions(**options))).plan


def uid(span: PlannedSpan) -> str:
    return str(span.attributes[attr.NODE_UNIQUE_ID])


def kept_uids(plan: Plan) -> set[str]:
    return {uid(s) for s in plan.nodes}


# --------------------------------------------------------------------------- #
# What the artifacts say, read with json alone
# --------------------------------------------------------------------------- #


class Run:
    """One run's results and the manifest's depends_on, independently of the package."""

    def __init__(self, target: Path) -> None:
        run_results, manifest = load_pair(target)
        if manifest is None and (target / "manifest.json.gz").exists():  # the log scenarios keep it gzipped
            manifest = json.loads(gzip.decompress((target / "manifest.json.gz").read_bytes()))
        self.results: list[dict[str, Any]] = run_results["results"]
        self.executed = [r["unique_id"] for r in self.results]
        self.manifest_nodes: dict[str, dict[str, Any]] = {}
        for section in ("nodes", "unit_tests"):
            self.manifest_nodes |= (manifest or {}).get(section) or {}

    def parents(self, unique_id: str) -> list[str]:
        """The executed parents in depends_on order."""
        executed = set(self.executed)
        found: list[str] = []
        node = self.manifest_nodes.get(unique_id) or {}
        for parent in (node.get("depends_on") or {}).get("nodes") or []:
            if parent in executed and parent not in found and parent != unique_id:
                found.append(parent)
        return found

    def resource_type(self, unique_id: str) -> str:
        node = self.manifest_nodes.get(unique_id)
        return str(node["resource_type"]) if node and node.get("resource_type") else unique_id.split(".")[0]

    def seconds(self, unique_id: str) -> float:
        (result,) = [r for r in self.results if r["unique_id"] == unique_id]
        timing = result.get("timing") or []
        if not timing:
            return 0.0
        return (
            max(nanos(t["completed_at"]) for t in timing) - min(nanos(t["started_at"]) for t in timing)
        ) / 1e9

    def nearest_kept(self, unique_id: str, kept: set[str]) -> str | None:
        """The first kept node up the first-parent chain (None: the invocation); a loop counts as the top."""
        seen = {unique_id}
        current = unique_id
        while parents := self.parents(current):
            current = parents[0]
            if current in seen:
                return None
            if current in kept:
                return current
            seen.add(current)
        return None


# --------------------------------------------------------------------------- #
# The tree stays whole
# --------------------------------------------------------------------------- #


def assert_whole(plan: Plan) -> None:
    """Ids unique, the invocation first, every parent kept, every chain ends at the invocation."""
    root = plan.spans[0]
    assert root.role is SpanRole.INVOCATION
    by_id = {s.span_id: s for s in plan.spans}
    assert len(by_id) == len(plan.spans)
    for span in plan.spans[1:]:
        assert span.parent_span_id in by_id, f"{span.name}: parent dropped"
        hops, current = 0, span
        while current is not root:
            current = by_id[current.parent_span_id]  # type: ignore[index]
            hops += 1
            assert hops <= len(plan.spans)
        for link in span.links:
            assert link.span_id in by_id, f"{span.name}: a link to a dropped span"


SHAPES: dict[str, dict[str, Any]] = {
    "phases-none": {"phases": "none"},
    "failed": {"select": Selector.parse(["status:error,fail"])},
    "models-and-failed": {"select": Selector.parse(["resource_type:model", "status:error,fail"])},
    "tests": {"select": Selector.parse(["resource_type:test,unit_test"])},
    "min-duration": {"min_duration": 0.5},
    "everything-flat": {
        "phases": "none",
        "select": Selector.parse(["resource_type:model,seed"]),
        "min_duration": 0.05,
        "nesting": "flat",
    },
}


@pytest.fixture(scope="module", params=sorted(RUNS))
def run_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def whole(run_name: str) -> Plan:
    return planned(run_name)


@pytest.mark.parametrize("shape_name", sorted(SHAPES))
def test_the_shaped_tree_is_whole_and_the_counts_add_up(run_name: str, whole: Plan, shape_name: str) -> None:
    options = SHAPES[shape_name]
    shaped = planned(run_name, **options)
    assert_whole(shaped)
    base = whole if "nesting" not in options else planned(run_name, nesting=options["nesting"])
    result = shape_spans(
        base.spans, Shape(options.get("phases", "all"), options.get("select"), options.get("min_duration"))
    )
    assert result.spans == shaped.spans
    dropped = result.dropped
    assert len(shaped.spans) + dropped.spans == len(base.spans)
    assert len(base.nodes) - len(shaped.nodes) == dropped.nodes
    phases = [s for s in base.spans if s.role is SpanRole.PHASE]
    assert len(phases) - sum(s.role is SpanRole.PHASE for s in shaped.spans) == dropped.phases
    root = shaped.invocation.attributes
    assert (root[attr.DROPPED_NODES], root[attr.DROPPED_PHASES], root[attr.DROPPED_SPANS]) == (
        dropped.nodes,
        dropped.phases,
        dropped.spans,
    )
    # kept spans keep their ids and everything but their parent and links
    planned_by_id = {s.span_id: s for s in base.spans}
    for span in shaped.spans[1:]:
        before = planned_by_id[span.span_id]
        assert (span.role, span.name, span.start_time_unix_nano, span.end_time_unix_nano) == (
            before.role,
            before.name,
            before.start_time_unix_nano,
            before.end_time_unix_nano,
        )
        assert span.attributes == before.attributes and span.events == before.events
        assert {link.span_id for link in span.links} <= {link.span_id for link in before.links}


def test_phases_none_removes_exactly_the_phase_spans(run_name: str, whole: Plan) -> None:
    shaped = planned(run_name, phases="none")
    phases = {s.span_id: s for s in whole.spans if s.role is SpanRole.PHASE}
    assert [s.span_id for s in shaped.spans] == [s.span_id for s in whole.spans if s.span_id not in phases]
    assert shaped.invocation.attributes[attr.DROPPED_PHASES] == len(phases)
    assert shaped.invocation.attributes[attr.DROPPED_NODES] == 0
    was = {s.span_id: s.parent_span_id for s in whole.spans}
    for span in shaped.spans[1:]:
        if was[span.span_id] in phases:  # what ran in a phase is now directly under its node
            assert span.parent_span_id == phases[was[span.span_id]].parent_span_id
        else:
            assert span.parent_span_id == was[span.span_id]


def test_the_log_runs_move_statements_from_the_phases_to_their_nodes() -> None:
    moved = 0
    for name in LOG_RUNS:
        whole, shaped = planned(name), planned(name, phases="none")
        phase_ids = {s.span_id for s in whole.spans if s.role is SpanRole.PHASE}
        node_ids = {s.span_id for s in whole.nodes}
        under_phase = [
            s for s in whole.spans if s.role is SpanRole.STATEMENT and s.parent_span_id in phase_ids
        ]
        kept = {s.span_id: s for s in shaped.spans}
        assert all(kept[s.span_id].parent_span_id in node_ids for s in under_phase)
        moved += len(under_phase)
    assert len(LOG_RUNS) >= 10 and moved > 100


@pytest.mark.parametrize(
    "terms", [["status:error,fail"], ["resource_type:model", "status:error,fail"], ["resource_type:seed"]]
)
def test_select_keeps_exactly_the_matching_nodes_under_their_nearest_kept_ancestor(
    run_name: str, terms: list[str]
) -> None:
    run = Run(RUNS[run_name])
    types = {t.split(":")[1] for t in terms if t.startswith("resource_type:")}
    expected = {
        r["unique_id"]
        for r in run.results
        if (r["status"] in FAILED and any(t.startswith("status:") for t in terms))
        or run.resource_type(r["unique_id"]) in {v for t in types for v in t.split(",")}
    }
    shaped = planned(run_name, select=Selector.parse(terms))
    assert kept_uids(shaped) == expected
    node_ids = {uid(s): s.span_id for s in shaped.nodes}
    for span in shaped.nodes:
        above = run.nearest_kept(uid(span), expected)
        expected_parent = shaped.invocation.span_id if above is None else node_ids[above]
        assert span.parent_span_id == expected_parent, uid(span)
        for link in span.links:
            assert str(link.attributes[attr.NODE_UNIQUE_ID]) in expected


def test_select_reattaches_on_the_fixture_build() -> None:
    """The fixture's failing test depends on a model whose first parent is a model: it moves up to it."""
    shaped = planned("fixture/build", select=Selector.parse(["resource_type:model", "status:error,fail"]))
    (failing_test,) = [s for s in shaped.nodes if s.attributes[attr.STATUS] == "fail"]
    by_id = {s.span_id: s for s in shaped.spans}
    assert uid(by_id[failing_test.parent_span_id]) == "model.replay_fixture.orders"  # type: ignore[index]
    assert len(shaped.nodes) == 10 and shaped.invocation.attributes[attr.DROPPED_NODES] == 23
    assert [s.role for s in shaped.spans].count(SpanRole.PHASE) == 2 * 8  # the timed models and the test


LOG_ROLES = (SpanRole.STATEMENT, SpanRole.BATCH, SpanRole.CONNECTION)


def node_of(span: PlannedSpan, by_id: dict[str, PlannedSpan]) -> str | None:
    """The node span a span of the log is inside, walking up the whole plan; None: not in a node."""
    current: PlannedSpan | None = span
    while current is not None and current.role not in (SpanRole.NODE, SpanRole.INVOCATION):
        current = by_id.get(current.parent_span_id or "")
    return current.span_id if current is not None and current.role is SpanRole.NODE else None


def test_a_dropped_node_takes_its_spans_from_the_log_with_it() -> None:
    total = 0
    for name in LOG_RUNS:
        whole = planned(name)
        shaped = planned(name, select=Selector.parse(["status:error,fail"]))
        kept_nodes = {s.span_id for s in shaped.nodes}
        by_id = {s.span_id: s for s in whole.spans}
        inside = [s for s in whole.spans if s.role in LOG_ROLES]
        gone = [s for s in inside if node_of(s, by_id) not in (None, *kept_nodes)]
        kept = {s.span_id for s in shaped.spans}
        assert all(s.span_id not in kept for s in gone)
        assert all(s.span_id in kept for s in inside if s not in gone)
        dropped_spans = shaped.invocation.attributes[attr.DROPPED_SPANS]
        phases = shaped.invocation.attributes[attr.DROPPED_PHASES]
        assert dropped_spans == shaped.invocation.attributes[attr.DROPPED_NODES] + phases + len(gone)
        total += len(gone)
    assert total > 100


def test_min_duration_keeps_only_the_nodes_that_long(run_name: str) -> None:
    run = Run(RUNS[run_name])
    shaped = planned(run_name, min_duration=0.5)
    assert kept_uids(shaped) == {u for u in run.executed if run.seconds(u) >= 0.5}
    assert all(s.duration_seconds >= 0.5 for s in shaped.nodes)


def test_min_duration_drops_something_somewhere() -> None:
    kept = [len(planned(name, min_duration=0.5).nodes) for name in RUNS]
    every = [len(planned(name).nodes) for name in RUNS]
    assert 0 < sum(kept) < sum(every)


def test_flat_nesting_puts_every_node_under_the_invocation_with_its_parents_as_links(run_name: str) -> None:
    run = Run(RUNS[run_name])
    flat = planned(run_name, nesting="flat")
    nested = planned(run_name)
    assert_whole(flat)
    node_ids = {uid(s): s.span_id for s in flat.nodes}
    for span in flat.nodes:
        assert span.parent_span_id == flat.invocation.span_id
        parents = run.parents(uid(span))
        assert [link.span_id for link in span.links] == [node_ids[p] for p in parents], uid(span)
        assert [link.attributes[attr.NODE_UNIQUE_ID] for link in span.links] == parents
    # only the nodes' parents and links differ; nothing is dropped and the root says nothing of it
    assert [s.span_id for s in flat.spans] == [s.span_id for s in nested.spans]
    assert flat.invocation == nested.invocation and attr.DROPPED_SPANS not in flat.invocation.attributes


def test_flat_nesting_on_the_fixture_build() -> None:
    flat = planned("fixture/build", nesting="flat")
    fan_in = [s for s in flat.nodes if len(s.links) == 3]
    assert [uid(s) for s in fan_in] == ["model.replay_fixture.customer_orders"]


# --------------------------------------------------------------------------- #
# Defaults, and the selector's syntax
# --------------------------------------------------------------------------- #


def test_the_default_shape_changes_nothing() -> None:
    whole = planned("fixture/build")
    assert shape_spans(whole.spans, Shape()).spans == whole.spans
    assert not any(key.startswith("dbt.dropped.") for key in whole.invocation.attributes)


def test_a_shape_that_drops_nothing_still_says_so_on_the_root() -> None:
    shaped = planned("fixture/build", min_duration=0)
    assert shaped.spans[1:] == planned("fixture/build").spans[1:]
    assert shaped.invocation.attributes[attr.DROPPED_SPANS] == 0
    assert shaped.invocation.attributes[attr.DROPPED_BY] == ("--min-duration 0",)


def test_selector_syntax() -> None:
    selector = Selector.parse(["resource_type:model,seed", "status:runtime_error, fail", "status:fail"])
    assert selector is not None
    assert selector.terms == (
        ("resource_type", ("model", "seed")),
        ("status", ("runtime error", "fail")),
        ("status", ("fail",)),
    )
    assert selector.matches("seed", "success") and selector.matches("test", "runtime error")
    assert not selector.matches("test", "pass")
    assert str(selector) == (
        "--select resource_type:model,seed --select status:runtime error,fail --select status:fail"
    )
    assert Selector.parse([]) is None


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("model", "is not METHOD:VALUE"),
        ("tag:nightly", "select by resource_type or status"),
        ("status:", "empty value"),
        ("status:error,", "empty value"),
        ("status:errror", "'errror' in 'status:errror' is not a status"),
        ("resource_type:models", "is not a resource_type"),
    ],
)
def test_bad_selectors_say_why(text: str, says: str) -> None:
    with pytest.raises(SelectorError, match=says):
        Selector.parse([text])


# --------------------------------------------------------------------------- #
# The command
# --------------------------------------------------------------------------- #


@pytest.fixture
def target(tmp_path: Path) -> Iterator[Path]:
    yield fixture_target(tmp_path / "target")


def test_the_options_end_to_end_to_a_file(target: Path, tmp_path: Path) -> None:
    out = tmp_path / "trace.jsonl"
    result = run_cli(
        str(target),
        "--output",
        str(out),
        "--phases",
        "none",
        "--select",
        "status:error,fail",
        "--nesting",
        "flat",
    )
    assert result.exit_code == 0, result.stderr
    spans = from_otlp_json_lines(out.read_text())
    root, *nodes = spans
    assert len(spans) == 3 and {n.attributes["dbt.status"] for n in nodes} == {"error", "fail"}
    assert all(n.parent_span_id == root.span_id and n.links == [] for n in nodes)
    assert root.attributes["dbt.dropped.nodes"] == 31 and root.attributes["dbt.dropped.phases"] == 60
    assert root.attributes["dbt.dropped.spans"] == 91
    assert root.attributes["dbt.dropped.by"] == ["--select status:error,fail", "--phases none"]
    summary = result.stderr.splitlines()
    assert summary[0].endswith("3 spans (1 invocation, 2 nodes, 0 phases)")
    assert summary[1] == (
        "  kept 2 of 33 nodes and 0 of 60 phases; 91 spans dropped (--select status:error,fail --phases none)"
    )


def test_the_options_end_to_end_in_a_dry_run_and_json(target: Path) -> None:
    dry = run_cli(str(target), "--dry-run", "--min-duration", "0.4", "--select", "resource_type:model")
    assert dry.exit_code == 0, dry.stderr
    tree = [line for line in dry.stdout.splitlines() if "─ model." in line or "─ test." in line]
    assert len(tree) == 2
    assert {line.split()[1] for line in tree} == {
        f"model.replay_fixture.{n}" for n in ("stg_payments", "orders")
    }
    assert "kept 2 of 33 nodes and 4 of 60 phases" in dry.stderr
    document = json.loads(run_cli(str(target), "--dry-run", "--format", "json", "--phases", "none").stdout)
    expected = {"nodes": 0, "phases": 60, "inside": 0, "spans": 60, "by": ["--phases none"]}
    assert document["dropped"] == expected
    assert document["spans"] == 34
    plain = run_cli(str(target), "--dry-run", "--format", "json")
    assert "dropped" not in json.loads(plain.stdout)
    nothing = run_cli(str(target), "--dry-run", "--min-duration", "0")
    assert nothing.exit_code == 0 and " kept " not in nothing.stderr


def test_a_backfill_shapes_each_run(target: Path, tmp_path: Path) -> None:
    out = tmp_path / "runs.jsonl"
    result = run_cli("backfill", str(target), "--output", str(out), "--phases", "none")
    assert result.exit_code == 0, result.stderr
    assert "(33 nodes, 34 spans)" in result.stdout
    assert len(from_otlp_json_lines(out.read_text())) == 34


@pytest.mark.parametrize("command", ["replay", "backfill"])
def test_bad_selector_syntax_is_a_one_line_usage_error(target: Path, command: str) -> None:
    result = run_cli(command, str(target), "--dry-run", "--select", "tag:nightly")
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("dbt-otel-replay: error: --select: 'tag' in 'tag:nightly': select by ")
    bad_duration = run_cli(command, str(target), "--dry-run", "--min-duration", "-1")
    assert bad_duration.exit_code == 2 and bad_duration.stderr.count("\n") == 1
