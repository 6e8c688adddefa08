"""The views of what dbt's log adds inside the nodes, on the real runs of fixtures/logs.

Each scenario is replayed as the command does (its log found beside the target
directory). What the views say is checked against the spans themselves, found
apart from :mod:`dbt_otel_replay.views.node`: the slowest statement listed is the
longest statement span; a node's time in statements is the union of its statements'
intervals (computed here by a sweep), and with the time opening connections and the
overhead it adds up to the node's duration; a failed batch is named by its window.
A 335-batch model with 334 failures stays one line; text from the log is escaped.
"""

from __future__ import annotations

import dataclasses
import html
import json
import re
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any, cast

import msgspec
import pytest

from dbt_otel_replay import attributes as attr
from dbt_otel_replay import views
from dbt_otel_replay.plan import Plan
from dbt_otel_replay.replay import ReplayOptions, prepare
from dbt_otel_replay.spans import PlannedSpan, SpanRole
from dbt_otel_replay.statuses import StatusCode
from dbt_otel_replay.terminal import escape
from dbt_otel_replay.views.node import Node, inside
from dbt_otel_replay.views.timeline import display_width
from dbt_otel_replay.views.tree import BATCHES_SHOWN
from tests.support.oracles import SUMMARY_KEYS, union_by_sweep
from tests.test_report import Dom

REPO = Path(__file__).resolve().parents[1]
LOGS = REPO / "fixtures" / "logs"
SCENARIOS = sorted(p.name for p in LOGS.iterdir() if (p / "target" / "run_results.json").exists())
MICROBATCH = [s for s in SCENARIOS if tuple(int(n) for n in s.split("-")[1].split(".")) >= (1, 9)]
"""dbt 1.9 and later ran the fixture project's microbatch model, whose batch 3 divides by zero."""
ANSI = re.compile(r"\x1b\[[0-9;]*m")
HOSTILE = "\x1b]0;pwned\x07<script>alert(1)</script>\u202e\nrest"
BASE_KEYS = SUMMARY_KEYS
LOG_KEYS = {"span_roles", "slowest_statements", "node_breakdown", "batches"}


@cache
def replayed(scenario: str, read_dbt_log: bool = True) -> Plan:
    return prepare(LOGS / scenario / "target", ReplayOptions(dry_run=True, read_dbt_log=read_dbt_log)).plan


def summary_of(plan: Plan) -> str:
    return views.render_summary(plan, views.Outcome("sent somewhere"))


def document_of(plan: Plan) -> dict[str, Any]:
    return cast(dict[str, Any], views.summary_document(plan, "sent somewhere"))


def of_role(plan: Plan, role: SpanRole) -> list[PlannedSpan]:
    return [s for s in plan.spans if s.role is role]


def owner(plan: Plan, span: PlannedSpan) -> PlannedSpan | None:
    """The node span above a span, walked here apart from the views."""
    by_id = {s.span_id: s for s in plan.spans}
    current: PlannedSpan | None = span
    while current is not None and current.role is not SpanRole.NODE:
        current = by_id.get(current.parent_span_id or "")
    return current


def section(text: str, heading: str) -> list[str]:
    """The lines under a heading line of the summary, up to the next line indented as little."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == heading)
    indent = len(lines[start]) - len(lines[start].lstrip())
    out = []
    for line in lines[start + 1 :]:
        if len(line) - len(line.lstrip()) <= indent:
            break
        out.append(line)
    return out


@pytest.fixture(params=SCENARIOS)
def scenario(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_the_scenarios_are_here() -> None:
    assert len(SCENARIOS) >= 10 and len(MICROBATCH) >= 5
    assert [s for s in SCENARIOS if of_role(replayed(s), SpanRole.BATCH)], "a microbatch run"


def test_the_span_count_is_by_role(scenario: str) -> None:
    plan = replayed(scenario)
    first = summary_of(plan).splitlines()[0]
    match = re.search(r", (\d+) spans \((.*)\)$", first)
    assert match, first
    said = {}
    for part in match.group(2).split(", "):
        number, word = part.split(" ", 1)
        said[word] = int(number)
    roles = Counter(s.role for s in plan.spans)
    expected = {"invocation": 1, "nodes": roles[SpanRole.NODE], "phases": roles[SpanRole.PHASE]}
    for role, word in (
        (SpanRole.STATEMENT, "statement"),
        (SpanRole.BATCH, "batch"),
        (SpanRole.CONNECTION, "connection"),
        (SpanRole.HOOK, "hook"),
    ):
        if roles[role]:
            expected[word + ("" if roles[role] == 1 else "es" if word.endswith("ch") else "s")] = roles[role]
    assert said == expected
    assert int(match.group(1)) == len(plan.spans) == sum(said.values())
    assert roles[SpanRole.STATEMENT] > 0 and said["phases"] != len(plan.spans) - said["nodes"] - 1, (
        "the old count (total minus nodes minus one) would be wrong here"
    )


def test_without_the_log_the_summary_is_what_it_was(scenario: str) -> None:
    plan = replayed(scenario, read_dbt_log=False)
    assert not inside(plan).logged
    text = summary_of(plan)
    nodes = len(plan.nodes)
    assert text.splitlines()[0].endswith(
        f"(1 invocation, {nodes} nodes, {len(plan.spans) - nodes - 1} phases)"
    )
    assert "slowest statements" not in text and "batches failed" not in text and " overhead)" not in text
    assert set(document_of(plan)) == BASE_KEYS
    waterfall = views.render_waterfall(plan, width=120, color=False)
    assert "slowest statements" not in waterfall
    page = views.render_html(plan)
    assert 'id="slowest-statements"' not in page and 'id="batches"' not in page


def test_the_slowest_statement_listed_is_the_longest_span(scenario: str) -> None:
    plan = replayed(scenario)
    statements = of_role(plan, SpanRole.STATEMENT)
    nanos = max(s.end_time_unix_nano - s.start_time_unix_nano for s in statements)
    tied = [s for s in statements if s.end_time_unix_nano - s.start_time_unix_nano == nanos]
    longest = min(tied, key=lambda s: (s.start_time_unix_nano, s.span_id))  # ties: the earliest first
    seconds = longest.duration_seconds
    assert seconds > 0
    node = owner(plan, longest)
    name = str(node.attributes[attr.NODE_NAME]) if node is not None else None
    summary = str(longest.attributes[attr.DB_QUERY_SUMMARY])

    listed = section(summary_of(plan), "slowest statements:")
    assert 1 <= len(listed) <= 5
    assert listed[0].startswith(f"    {seconds:9.3f} s  {escape(summary)}  (")
    if name is not None:
        assert listed[0].endswith(f"({escape(name)})")
    durations = [float(line.split()[0]) for line in listed]
    assert durations == sorted(durations, reverse=True)

    document = document_of(plan)
    assert set(document) == BASE_KEYS | LOG_KEYS
    top = document["slowest_statements"]
    assert top[0]["seconds"] == seconds and top[0]["summary"] == summary
    assert top[0]["unique_id"] == (node.attributes[attr.NODE_UNIQUE_ID] if node is not None else None)
    assert len(top) == min(5, len(statements))
    assert [t["seconds"] for t in top] == sorted((s.duration_seconds for s in statements), reverse=True)[
        : len(top)
    ]

    waterfall = views.render_waterfall(plan, width=120, color=False).splitlines()
    at = waterfall.index(next(line for line in waterfall if line.startswith("slowest statements: ")))
    assert waterfall[at] == f"slowest statements: {len(listed)} of {len(statements)}"
    assert f" {seconds:8.3f}s  " in waterfall[at + 2] and escape(summary)[:40] in waterfall[at + 2]

    page = Dom(views.render_html(plan))
    rows = page.find("tr", within="slowest-statements")[1:]  # under the header row
    assert (
        len(rows) == min(20, len(statements))
        and f"{seconds:.3f} s" in rows[0].content()
        and summary in rows[0].content()
    )


def test_each_node_breakdown_adds_up_to_its_duration(scenario: str) -> None:
    plan = replayed(scenario)
    within = inside(plan)
    statements: dict[str, list[PlannedSpan]] = {}
    connections: dict[str, list[PlannedSpan]] = {}
    for span in plan.spans:
        if span.role in (SpanRole.STATEMENT, SpanRole.CONNECTION):
            node = owner(plan, span)
            if node is not None:
                into = statements if span.role is SpanRole.STATEMENT else connections
                into.setdefault(node.span_id, []).append(span)
    assert statements, "statements inside nodes"
    entries = {e["unique_id"]: e for e in document_of(plan)["node_breakdown"]}
    for node_span in plan.nodes:
        mine = statements.get(node_span.span_id, [])
        opening = connections.get(node_span.span_id, [])
        breakdown = within.breakdown(Node(node_span))
        if not mine and not opening:
            continue
        assert breakdown is not None, node_span.name

        def clipped(spans: list[PlannedSpan], node: PlannedSpan = node_span) -> list[tuple[int, int]]:
            return [
                (
                    max(s.start_time_unix_nano, node.start_time_unix_nano),
                    min(s.end_time_unix_nano, node.end_time_unix_nano),
                )
                for s in spans
                if min(s.end_time_unix_nano, node.end_time_unix_nano)
                > max(s.start_time_unix_nano, node.start_time_unix_nano)
            ]

        in_statements = union_by_sweep(clipped(mine))
        assert (
            breakdown.statement_nanos
            == in_statements
            <= sum(s.end_time_unix_nano - s.start_time_unix_nano for s in mine)
        )
        assert breakdown.connection_nanos == union_by_sweep(clipped(mine) + clipped(opening)) - in_statements
        duration = node_span.end_time_unix_nano - node_span.start_time_unix_nano
        assert breakdown.statement_nanos + breakdown.connection_nanos + breakdown.overhead_nanos == duration
        assert breakdown.overhead_nanos >= 0
        assert (breakdown.statements, breakdown.connections) == (len(mine), len(opening))
        assert breakdown.failed_statements == sum(s.status is StatusCode.ERROR for s in mine)
        entry = entries[str(node_span.attributes[attr.NODE_UNIQUE_ID])]
        total = entry["statement_seconds"] + entry["connection_seconds"] + entry["overhead_seconds"]
        assert abs(total - entry["seconds"]) < 1e-9


def test_the_slowest_nodes_say_where_their_time_went(scenario: str) -> None:
    plan = replayed(scenario)
    within = inside(plan)
    listed = section(summary_of(plan), "slowest:")
    assert listed
    by_name = {s.name: s for s in plan.nodes}
    explained = 0
    for line in listed:
        name = line.split()[2]
        breakdown = within.breakdown(Node(by_name[name]))
        if breakdown is None or not breakdown.statements:
            continue
        explained += 1
        plural = "" if breakdown.statements == 1 else "s"
        assert f"({breakdown.statement_seconds:.3f} s in {breakdown.statements} statement{plural}" in line
        assert line.endswith(f"{breakdown.overhead_seconds:.3f} s overhead)")
    assert explained, "the slowest nodes ran statements"


def failed_batches(plan: Plan) -> dict[str, list[PlannedSpan]]:
    out: dict[str, list[PlannedSpan]] = {}
    for span in of_role(plan, SpanRole.BATCH):
        node = owner(plan, span)
        assert node is not None
        out.setdefault(str(node.attributes[attr.NODE_NAME]), []).append(span)
    return out


@pytest.mark.parametrize("scenario", MICROBATCH)
def test_a_failed_batch_is_named(scenario: str) -> None:
    plan = replayed(scenario)
    batches = failed_batches(plan)
    ((model, spans),) = batches.items()
    failed = sorted(
        (s for s in spans if s.status is StatusCode.ERROR), key=lambda s: s.attributes[attr.BATCH_INDEX]
    )
    windows = [str(s.attributes[attr.BATCH_WINDOW_START]) for s in failed]
    assert model == "events_microbatch" and windows == ["2024-01-03"], "the fixture's batch 3 divides by zero"
    line = f"{model}: 1 of {len(spans)} batches failed (2024-01-03)"
    assert f"  {line}" in summary_of(plan).splitlines()
    assert line in views.render_waterfall(plan, width=120, color=False).splitlines()
    (entry,) = document_of(plan)["batches"]
    assert entry["failed"] == 1 and entry["batches"] == 5 and entry["failed_windows"] == ["2024-01-03"]
    page = Dom(views.render_html(plan))
    (row,) = [r for r in page.find("tr", within="batches") if "data-node" in r.attrs]
    assert row.attrs["data-node"].endswith(".events_microbatch")
    assert "2024-01-03" in row.content() and "division by zero" in row.content()


def many_batches(plan: Plan, total: int, succeeded: int) -> Plan:
    """The run with its microbatch model running ``total`` batches, all but ``succeeded`` of them failing."""
    batches = of_role(plan, SpanRole.BATCH)
    parent = batches[0].parent_span_id
    template = batches[0]
    made = []
    for index in range(1, total + 1):
        base = batches[index - 1] if index <= len(batches) else template
        made.append(
            msgspec.structs.replace(
                base,
                span_id=base.span_id if index <= len(batches) else f"{index:016x}",
                parent_span_id=base.parent_span_id if index <= len(batches) else parent,
                attributes={
                    **base.attributes,
                    attr.BATCH_INDEX: index,
                    attr.BATCH_TOTAL: total,
                    attr.BATCH_WINDOW_START: f"window-{index:03d}",
                },
                status=StatusCode.UNSET if index <= succeeded else StatusCode.ERROR,
                status_message="" if index <= succeeded else "division by zero\n  in batch",
            )
        )
    others = [s for s in plan.spans if s.role is not SpanRole.BATCH]
    return dataclasses.replace(plan, spans=(others[0], *made, *others[1:]))


def test_a_335_batch_model_with_334_failures_reads_clearly() -> None:
    plan = many_batches(replayed("dbt-1.11-text"), 335, 1)
    assert len(of_role(plan, SpanRole.BATCH)) == 335
    summary = summary_of(plan)
    mentions = [line for line in summary.splitlines() if "batches failed" in line]
    assert mentions == [
        "  events_microbatch: 334 of 335 batches failed (window-002, window-003, window-004, and 331 more)"
    ]
    assert "335 batches" in summary.splitlines()[0]
    assert len(summary.splitlines()) < 40
    waterfall = views.render_waterfall(plan, width=120, color=False).splitlines()
    assert [line for line in waterfall if "batches failed" in line] == [mentions[0].strip()]
    assert len(waterfall) < 45
    page = Dom(views.render_html(plan))
    (row,) = [r for r in page.find("tr", within="batches") if "data-node" in r.attrs]
    assert "window-002" in row.content() and "window-011" in row.content()
    assert "window-012" not in row.content() and "… and 324 more" in row.content()
    (entry,) = document_of(plan)["batches"]
    assert (entry["batches"], entry["failed"], len(entry["failed_windows"])) == (335, 334, 334)
    tree = views.render_tree(plan).splitlines()
    drawn = [line for line in tree if "─ batch " in line]
    assert len(drawn) == BATCHES_SHOWN and len(tree) < 100
    shown = sorted(of_role(plan, SpanRole.BATCH), key=lambda s: (s.start_time_unix_nano, s.name))
    failed = sum(s.status is StatusCode.ERROR for s in shown[BATCHES_SHOWN:])
    assert [line.split("└─ ")[1] for line in tree if "more batches" in line] == [
        f"… and {335 - BATCHES_SHOWN} more batches ({failed} failed)"
    ]


def hostile(plan: Plan) -> Plan:
    """The run with the longest statement's summary and error, and a failed batch's window, made hostile."""
    statements = of_role(plan, SpanRole.STATEMENT)
    longest = max(statements, key=lambda s: s.end_time_unix_nano - s.start_time_unix_nano)
    spans = []
    for span in plan.spans:
        if span is longest:
            span = msgspec.structs.replace(
                span,
                attributes={**span.attributes, attr.DB_QUERY_SUMMARY: HOSTILE},
                status=StatusCode.ERROR,
                status_message=HOSTILE,
            )
        elif span.role is SpanRole.BATCH and span.status is StatusCode.ERROR:
            span = msgspec.structs.replace(
                span, attributes={**span.attributes, attr.BATCH_WINDOW_START: HOSTILE}, status_message=HOSTILE
            )
        spans.append(span)
    return dataclasses.replace(plan, spans=tuple(spans))


def test_text_from_the_log_is_escaped() -> None:
    plan = hostile(replayed("dbt-1.11-text"))
    summary = summary_of(plan)
    waterfall = views.render_waterfall(plan, width=120, color=False)
    coloured = views.render_waterfall(plan, width=120, color=True)
    for text in (summary, waterfall, ANSI.sub("", coloured)):
        assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
        assert "\\x1b]0;pwned\\x07<script>" in text
    assert escape(" ".join(HOSTILE.split())) in waterfall
    assert f"  events_microbatch: 1 of 5 batches failed ({escape(HOSTILE)})" in summary
    assert f"failed: {escape(' '.join(HOSTILE.split()))}" in summary
    page = views.render_html(plan)
    assert "<script>alert(1)</script>" not in page
    assert html.escape(HOSTILE, quote=True) in page
    document = json.loads(json.dumps(document_of(plan)))
    assert document["slowest_statements"][0]["summary"] == HOSTILE, "documents keep the exact text"


@pytest.mark.parametrize("color", [False, True])
@pytest.mark.parametrize("width", [40, 60, 120, 160])
def test_every_waterfall_line_fits(scenario: str, width: int, color: bool) -> None:
    plan = replayed(scenario)
    for run in (plan, hostile(plan)):
        lines = views.render_waterfall(run, width=width, color=color).splitlines()
        start = next(i for i, line in enumerate(lines) if line.startswith("slowest statements: "))
        if width == 40:  # the critical path's lines are wider than 40 columns: the lists under it are not
            lines = lines[start:]
        too_wide = [line for line in lines if display_width(ANSI.sub("", line)) > width]
        assert not too_wide


def test_overlapping_statements_count_once() -> None:
    # dbt Fusion and adapters that run a node's queries concurrently: a sum would pass the node's time
    plan = replayed("dbt-1.11-text")
    node = next(s for s in plan.nodes if s.name == "model.replay_logs.parallel_a")
    mine = [s for s in of_role(plan, SpanRole.STATEMENT) if owner(plan, s) is node]
    longest = max(mine, key=lambda s: s.end_time_unix_nano - s.start_time_unix_nano)
    moved = {
        s.span_id: msgspec.structs.replace(
            s,
            start_time_unix_nano=longest.start_time_unix_nano + offset,
            end_time_unix_nano=longest.end_time_unix_nano - offset,
        )
        for offset, s in enumerate((s for s in mine if s is not longest), 1)
    }
    overlapping = dataclasses.replace(plan, spans=tuple(moved.get(s.span_id, s) for s in plan.spans))
    breakdown = inside(overlapping).breakdown(Node(node))
    assert breakdown is not None and breakdown.statements == len(mine) >= 3
    assert breakdown.statement_nanos == longest.end_time_unix_nano - longest.start_time_unix_nano
    assert sum(s.end_time_unix_nano - s.start_time_unix_nano for s in moved.values()) > 0
    duration = node.end_time_unix_nano - node.start_time_unix_nano
    assert breakdown.statement_nanos + breakdown.connection_nanos + breakdown.overhead_nanos == duration


def test_time_opening_connections_is_apart_from_statements() -> None:
    # no fixture run waited for a connection: add one to parallel_a, overlapping its longest statement
    plan = replayed("dbt-1.11-text")
    node = next(s for s in plan.nodes if s.name == "model.replay_logs.parallel_a")
    mine = [s for s in of_role(plan, SpanRole.STATEMENT) if owner(plan, s) is node]
    longest = max(mine, key=lambda s: s.end_time_unix_nano - s.start_time_unix_nano)
    opening = PlannedSpan(
        role=SpanRole.CONNECTION,
        span_id="c0ffee0000000001",
        parent_span_id=node.span_id,
        name="open connection",
        start_time_unix_nano=longest.start_time_unix_nano - 20_000_000,
        end_time_unix_nano=longest.start_time_unix_nano + 5_000_000,
        attributes={attr.CONNECTION_NAME: node.name},
    )
    at = plan.spans.index(longest)
    connected = dataclasses.replace(plan, spans=(*plan.spans[:at], opening, *plan.spans[at:]))
    breakdown = inside(connected).breakdown(Node(node))
    assert breakdown is not None and breakdown.connections == 1
    intervals = [(s.start_time_unix_nano, s.end_time_unix_nano) for s in mine]
    alone = union_by_sweep(intervals)
    with_opening = union_by_sweep([*intervals, (opening.start_time_unix_nano, opening.end_time_unix_nano)])
    assert breakdown.connection_nanos == with_opening - alone
    assert 0 < breakdown.connection_nanos <= 20_000_000
    duration = node.end_time_unix_nano - node.start_time_unix_nano
    assert breakdown.statement_nanos + breakdown.connection_nanos + breakdown.overhead_nanos == duration
    summary = summary_of(connected)
    assert summary.splitlines()[0].endswith(" batches, 1 connection)")
    (line,) = [line for line in summary.splitlines() if line.split()[2:3] == [node.name]]
    assert f", {breakdown.connection_seconds:.3f} s opening connections, " in line
