"""The terminal waterfall: every line fits, colour only when asked, every thread and the critical path."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import msgspec
import pytest

from dbt_otel_replay.artifacts import load_artifacts
from dbt_otel_replay.plan import Plan, plan_trace
from dbt_otel_replay.replay import ReplayOptions, prepare
from dbt_otel_replay.spans import SpanRole
from dbt_otel_replay.views.analysis import RunAnalysis, analyse
from dbt_otel_replay.views.node import nodes
from dbt_otel_replay.views.timeline import display_width, thread_lanes
from dbt_otel_replay.views.waterfall import MAX_ROWS_PER_LANE, MIN_WIDTH, render_waterfall
from tests.support.synthetic import write_synthetic_run

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "artifacts"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def visible(line: str) -> str:
    return ANSI.sub("", line)


@pytest.fixture(scope="module")
def build() -> tuple[Plan, RunAnalysis]:
    plan = plan_trace(load_artifacts(FIXTURES / "build"))
    return plan, analyse(plan)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> tuple[Plan, RunAnalysis]:
    plan = plan_trace(load_artifacts(write_synthetic_run(tmp_path_factory.mktemp("synthetic"), 5000)))
    return plan, analyse(plan)


def threads(plan: Plan) -> set[str]:
    return {str(s.attributes.get("dbt.thread_id")) for s in plan.nodes}


@pytest.mark.parametrize("color", [False, True])
@pytest.mark.parametrize("width", [60, 100, 160])
def test_every_line_fits_the_width(build: tuple[Plan, RunAnalysis], width: int, color: bool) -> None:
    text = render_waterfall(*build, width=width, color=color)
    assert text.endswith("\n")
    lines = text.splitlines()
    assert all(display_width(visible(line)) <= width for line in lines), [
        line for line in lines if display_width(visible(line)) > width
    ]
    # the time axis (label column + chart) takes the whole width
    assert any(re.fullmatch(r" +\+[-+]*", line) and len(line) == width for line in lines)


@pytest.mark.parametrize("width", [60, 100, 160])
def test_plain_text_has_no_escape_sequences(build: tuple[Plan, RunAnalysis], width: int) -> None:
    text = render_waterfall(*build, width=width, color=False)
    assert "\x1b" not in text
    assert text.isascii()


def test_colour_marks_status_and_the_critical_path(build: tuple[Plan, RunAnalysis]) -> None:
    text = render_waterfall(*build, width=120, color=True)
    assert "\x1b[0;32m" in text  # success green
    assert "\x1b[0;31m" in text  # failure red
    assert "\x1b[0;33m" in text  # warn yellow
    assert "\x1b[0;2m" in text  # skipped dim
    assert ";1;7m" in text  # critical path: bold inverse
    assert visible(text) != text


def test_every_thread_has_a_lane(build: tuple[Plan, RunAnalysis]) -> None:
    plan, analysis = build
    lines = render_waterfall(plan, analysis, width=100, color=False).splitlines()
    for thread in threads(plan):
        label = thread.removesuffix(" (worker)")
        assert sum(line.startswith(label + " ") for line in lines) == 1, thread
    assert {t.name for t in analysis.threads} <= threads(plan)


def test_the_glyphs_show_status(build: tuple[Plan, RunAnalysis]) -> None:
    lanes = {line.split()[0]: line for line in render_waterfall(*build, width=160, color=False).splitlines()}
    assert "X" in lanes["Thread-2"], "the error (customer_ltv)"
    assert "X" in lanes["Thread-3"], "the failed test"
    assert "~" in lanes["Thread-1"], "the warning"
    assert "#" in lanes["Thread-2"], "the critical path"
    assert sum(lane.count("o") for name, lane in lanes.items() if name.startswith("Thread-")) >= 3, "skips"
    assert "[orders" in lanes["Thread-4"], "a wide bar shows its name"


def test_the_critical_path_is_listed_in_order(build: tuple[Plan, RunAnalysis]) -> None:
    plan, analysis = build
    text = render_waterfall(plan, analysis, width=160, color=False)
    listing = text[text.index("critical path:") :]
    positions = [listing.find(step.unique_id) for step in analysis.critical_path]
    assert len(positions) == 4
    assert -1 not in positions
    assert positions == sorted(positions)
    assert "[error] model.replay_fixture.customer_ltv" in listing


def test_it_is_pure(build: tuple[Plan, RunAnalysis]) -> None:
    assert render_waterfall(*build, width=100, color=True) == render_waterfall(*build, width=100, color=True)


def test_too_narrow_is_refused(build: tuple[Plan, RunAnalysis]) -> None:
    with pytest.raises(ValueError, match="at least"):
        render_waterfall(*build, width=MIN_WIDTH - 1, color=False)
    render_waterfall(*build, width=MIN_WIDTH, color=False)


def test_names_cannot_inject_escape_sequences(build: tuple[Plan, RunAnalysis]) -> None:
    plan, _ = build
    evil = "model.x.\x1b[2J\x1b[31mevil\nname"
    spans = tuple(
        msgspec.structs.replace(
            s, attributes={**s.attributes, "dbt.node.unique_id": evil, "dbt.node.name": evil}
        )
        if s.role is SpanRole.NODE and s.attributes.get("dbt.critical_path")
        else s
        for s in plan.spans
    )
    plan = dataclasses.replace(plan, spans=spans)
    text = render_waterfall(plan, analyse(plan), width=160, color=False)
    assert "\x1b" not in text
    assert "?[2J?[31mevil name" in text


@pytest.mark.parametrize("color", [False, True])
def test_a_5000_node_run_stays_within_bounds(synthetic: tuple[Plan, RunAnalysis], color: bool) -> None:
    plan, analysis = synthetic
    for width in (60, 100, 160):
        lines = render_waterfall(plan, analysis, width=width, color=color).splitlines()
        assert all(display_width(visible(line)) <= width for line in lines)
        assert len(lines) < 40, "one row per thread, not one per node"
        assert sum(visible(line).startswith("Thread-") for line in lines) == 8


def test_overlapping_nodes_are_capped_per_lane(synthetic: tuple[Plan, RunAnalysis]) -> None:
    plan, _ = synthetic
    # every node on one thread: they overlap five deep
    spans = tuple(
        msgspec.structs.replace(s, attributes={**s.attributes, "dbt.thread_id": "Thread-1 (worker)"})
        if s.role is SpanRole.NODE
        else s
        for s in plan.spans
    )
    plan = dataclasses.replace(plan, spans=spans)
    (lane,) = thread_lanes(nodes(plan), max_rows=MAX_ROWS_PER_LANE)
    assert len(lane.rows) == MAX_ROWS_PER_LANE
    assert lane.merged > 0
    assert lane.nodes == 5000
    text = render_waterfall(plan, analyse(plan), width=100, color=False)
    assert f"+{lane.merged} more overlapping nodes" in text
    assert all(len(line) <= 100 for line in text.splitlines())


LOGGED = Path(__file__).resolve().parents[1] / "fixtures" / "logs" / "dbt-1.11-text" / "target"


@pytest.mark.parametrize("color", [False, True])
def test_dbt_log_adds_lists_under_the_chart_and_changes_nothing_above(color: bool) -> None:
    plans = {
        read: prepare(LOGGED, ReplayOptions(dry_run=True, read_dbt_log=read)).plan for read in (False, True)
    }
    assert len(plans[True].spans) > len(plans[False].spans)
    before, after = (render_waterfall(p, analyse(p), width=120, color=color) for p in plans.values())
    assert after.startswith(before), "the lanes, the legend and the critical path stay as they were"
    added = after[len(before) :].splitlines()
    assert visible(added[0]).startswith("slowest statements: 5 of ")
    statements = [s for s in plans[True].spans if s.role is SpanRole.STATEMENT]
    longest = max(s.duration_seconds for s in statements)
    assert f" {longest:8.3f}s  parallel_a: CREATE TABLE " in added[2]
    (batch_line,) = [line for line in added if "batches failed" in line]
    assert visible(batch_line) == "events_microbatch: 1 of 5 batches failed (2024-01-03)"
    assert (batch_line != visible(batch_line)) is color and ("\x1b[0;31m" in batch_line) is color
