"""Inside the node: the spans dbt's own log adds, replayed from real dbt runs' logs.

Every scenario of fixtures/logs (dbt 1.5 to 1.11, text and JSON file logs, several
invocations in one file, a half-hour time zone, a run across local midnight, a
microbatch model with a failing batch, project and model hooks, a failing statement,
four threads) is replayed as the command does (the log found beside the target
directory), and every statement of the log is checked against its span: one span each,
the log's start and elapsed time, the parent the trace contract names, and the marks
that tell statement, batch and connection spans apart from node and phase spans.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from dbt_otel_replay import attributes as attr
from dbt_otel_replay.dbtlog import InvocationLog
from dbt_otel_replay.inside import CLOCK_SLACK_NS
from dbt_otel_replay.plan import Plan, PlanOptions
from dbt_otel_replay.replay import ReplayOptions, prepare
from dbt_otel_replay.spans import PlannedSpan, SpanKind, SpanRole
from dbt_otel_replay.statuses import StatusCode
from tests.support.cli import run_cli
from tests.support.logs import invocation_log, with_a_failing_hook

REPO = Path(__file__).resolve().parents[1]
LOGS = REPO / "fixtures" / "logs"
SCENARIOS = sorted(p.name for p in LOGS.iterdir() if (p / "target" / "run_results.json").exists())
MICROBATCH = [s for s in SCENARIOS if s >= "dbt-1.9" or s.startswith("dbt-1.1")]


def replayed(scenario: str, **options: object) -> Plan:
    return prepare(LOGS / scenario / "target", ReplayOptions(dry_run=True, **options)).plan  # type: ignore[arg-type]


def the_log(scenario: str) -> InvocationLog:
    return invocation_log(LOGS / scenario / "target")


def of_role(plan: Plan, role: SpanRole) -> list[PlannedSpan]:
    return [s for s in plan.spans if s.role is role]


def uid_of(span: PlannedSpan) -> str:
    return str(span.attributes[attr.NODE_UNIQUE_ID])


@pytest.fixture(scope="module", params=SCENARIOS)
def scenario(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_every_scenario_is_here() -> None:
    assert len(SCENARIOS) >= 10 and {"dbt-1.5-text", "dbt-1.11-json", "dbt-1.11-text-midnight"} <= set(
        SCENARIOS
    )


def test_each_statement_of_the_log_is_one_span_with_its_times(scenario: str) -> None:
    plan, log = replayed(scenario), the_log(scenario)
    statements = of_role(plan, SpanRole.STATEMENT)
    assert len(statements) == len(log.statements) > 0
    for span, statement in zip(statements, log.statements, strict=True):
        assert span.start_time_unix_nano == statement.start_ns
        if statement.answered_ns is None:
            assert span.end_time_unix_nano == statement.start_ns + (statement.elapsed_ns or 0)
        else:  # dbt < 1.8 prints tenths of a second: ended when dbt logged the answer
            assert scenario < "dbt-1.8" and span.end_time_unix_nano == statement.answered_ns
            assert statement.answered_ns >= statement.start_ns
        assert span.name == span.attributes[attr.DB_QUERY_SUMMARY] == statement.summary
        assert span.attributes[attr.CONNECTION_NAME] == statement.connection
        assert span.attributes.get(attr.STATEMENT_STATUS) == statement.status
        assert span.kind is SpanKind.CLIENT
        assert (span.status is StatusCode.ERROR) == (statement.error is not None)
    assert not [w for w in plan.warnings if "fall outside" in w], plan.warnings


def test_span_types_are_told_apart_by_their_marks(scenario: str) -> None:
    plan = replayed(scenario)
    for span in plan.spans:
        keys = set(span.attributes)
        assert (attr.DB_QUERY_SUMMARY in keys) == (span.role is SpanRole.STATEMENT), span
        assert (attr.BATCH_INDEX in keys) == (span.role is SpanRole.BATCH), span
        assert (attr.NODE_UNIQUE_ID in keys) == (span.role is SpanRole.NODE), span
        assert (attr.PHASE in keys) == (span.role is SpanRole.PHASE), span
        if span.role is SpanRole.CONNECTION:
            assert attr.CONNECTION_NAME in keys and span.kind is SpanKind.CLIENT


def test_each_statement_nests_where_the_contract_says(scenario: str) -> None:
    plan = replayed(scenario)
    by_id = {s.span_id: s for s in plan.spans}
    node_of = {s.span_id: uid_of(s) for s in of_role(plan, SpanRole.NODE)}
    for span in of_role(plan, SpanRole.STATEMENT) + of_role(plan, SpanRole.CONNECTION):
        parent = by_id[span.parent_span_id or ""]
        assert parent.start_time_unix_nano - CLOCK_SLACK_NS <= span.start_time_unix_nano
        assert span.end_time_unix_nano <= parent.end_time_unix_nano + CLOCK_SLACK_NS
        connection = str(span.attributes[attr.CONNECTION_NAME])
        timed = {
            uid_of(p) for p in of_role(plan, SpanRole.NODE) if p.end_time_unix_nano > p.start_time_unix_nano
        }
        if connection in set(node_of.values()) & timed:
            # a node's statement: under that node's phase, batch or span
            owner = parent
            while owner.role is not SpanRole.NODE:
                owner = by_id[owner.parent_span_id or ""]
            assert uid_of(owner) == connection
            if parent.role is SpanRole.PHASE:
                assert parent.name == "execute" or parent.name == "compile"
    # every chain of parents ends at the invocation span
    for span in plan.spans[1:]:
        seen = 0
        while span.parent_span_id is not None and span is not plan.invocation:
            span = by_id[span.parent_span_id]
            seen += 1
            assert seen < 10
        assert span is plan.invocation


def test_four_threads_ran_statements(scenario: str) -> None:
    threads = {
        str(s.attributes.get(attr.THREAD_NAME)) for s in of_role(replayed(scenario), SpanRole.STATEMENT)
    }
    assert len({t[:8] for t in threads if t.startswith("Thread-")}) == 4, threads


def test_project_and_model_hooks_show_their_statements_under_the_hook_or_model(scenario: str) -> None:
    plan = replayed(scenario, plan=PlanOptions(include_sql=True))
    by_id = {s.span_id: s for s in plan.spans}

    def node_above(span: PlannedSpan) -> str | None:
        while span.role is not SpanRole.NODE:
            if span.parent_span_id is None or span.parent_span_id not in by_id:
                return None
            span = by_id[span.parent_span_id]
        return uid_of(span)

    sql = {
        s.span_id: str(s.attributes.get(attr.DB_QUERY_TEXT, "")) for s in of_role(plan, SpanRole.STATEMENT)
    }
    statements = of_role(plan, SpanRole.STATEMENT)
    start = [s for s in statements if "values ('on-run-start')" in sql[s.span_id]]
    end = [s for s in statements if "values ('on-run-end')" in sql[s.span_id]]
    pre = [s for s in statements if "values ('pre_hook hooked_model')" in sql[s.span_id]]
    post = [s for s in statements if "values ('post_hook hooked_model')" in sql[s.span_id]]
    assert start and end and pre and post
    hooks = {uid_of(s) for s in of_role(plan, SpanRole.NODE) if uid_of(s).startswith("operation.")}
    from_log = of_role(plan, SpanRole.HOOK)
    if hooks:  # dbt >= 1.9 records the project hooks as results: their statements go under them
        assert all("on-run-start" in (node_above(s) or "") for s in start)
        assert all("on-run-end" in (node_above(s) or "") for s in end)
        assert from_log == [], "a hook run_results lists is its node span, not one from the log"
    else:  # dbt < 1.9: a span from the log's hook lines, named as dbt 1.9 names the hook's node
        log_hooks = the_log(scenario).hooks
        assert (
            [s.name for s in from_log]
            == [h.node_id for h in log_hooks]
            == [
                f"operation.replay_logs.replay_logs-{kind}-{i}"
                for kind, i in (("on-run-start", 0), ("on-run-start", 1), ("on-run-end", 0))
            ]
        )
        for span, hook in zip(from_log, log_hooks, strict=True):
            assert span.parent_span_id == plan.invocation.span_id and span.kind is SpanKind.INTERNAL
            assert (span.start_time_unix_nano, span.end_time_unix_nano) == (hook.start_ns, hook.end_ns)
            assert span.attributes[attr.HOOK_UNIQUE_ID] == span.name
            assert span.attributes[attr.HOOK_TYPE] == hook.hook_type
            assert attr.NODE_UNIQUE_ID not in span.attributes and attr.PHASE not in span.attributes
            under = [s for s in statements if s.parent_span_id == span.span_id]
            assert [s.attributes[attr.DB_OPERATION_NAME] for s in under] == (
                ["CREATE TABLE"] if span.name.endswith("on-run-start-0") else ["INSERT"]
            )
            assert span.attributes[attr.HOOK_STATUS] == under[0].attributes[attr.STATEMENT_STATUS]
        parents = {s.parent_span_id for s in start + end}
        assert parents == {h.span_id for h in from_log if "-1" in h.name or "end" in h.name}
    assert {node_above(s) for s in pre + post} == {"model.replay_logs.hooked_model"}


def test_a_failed_project_hook_of_dbt_before_1_9_is_an_error_with_its_statements_message(
    tmp_path: Path,
) -> None:
    """dbt < 1.9 logs no end line for a hook whose statement failed: it ends with that statement."""
    target = with_a_failing_hook(LOGS / "dbt-1.8-text", tmp_path / "run")
    plan = prepare(target, ReplayOptions(dry_run=True)).plan
    hooks = {
        s.name.removeprefix("operation.replay_logs.replay_logs-"): s for s in of_role(plan, SpanRole.HOOK)
    }
    assert sorted(hooks) == ["on-run-end-0", "on-run-start-0", "on-run-start-1"]
    failed = hooks["on-run-end-0"]
    [statement] = [s for s in of_role(plan, SpanRole.STATEMENT) if s.parent_span_id == failed.span_id]
    assert statement.status is StatusCode.ERROR
    assert failed.status is StatusCode.ERROR
    assert failed.status_message == statement.status_message == "permission denied for table run_audit"
    assert failed.end_time_unix_nano == statement.end_time_unix_nano > failed.start_time_unix_nano
    assert attr.HOOK_STATUS not in failed.attributes and attr.ERROR_TYPE in failed.attributes
    assert all(hooks[k].status is StatusCode.UNSET for k in ("on-run-start-0", "on-run-start-1"))


def test_the_failing_statement_is_an_error_with_dbts_message(scenario: str) -> None:
    plan = replayed(scenario, plan=PlanOptions(include_sql=True))
    failing = [
        s
        for s in of_role(plan, SpanRole.STATEMENT)
        if "missing_column" in str(s.attributes.get(attr.DB_QUERY_TEXT))
    ]
    assert failing and all(s.status is StatusCode.ERROR for s in failing)
    assert all("missing_column" in s.status_message for s in failing), [s.status_message for s in failing]


@pytest.mark.parametrize("scenario", MICROBATCH)
def test_each_microbatch_batch_is_a_span_and_the_failed_one_is_an_error(scenario: str) -> None:
    plan = replayed(scenario)
    batches = [s for s in of_role(plan, SpanRole.BATCH)]
    model = next(
        s for s in of_role(plan, SpanRole.NODE) if uid_of(s) == "model.replay_logs.events_microbatch"
    )
    by_id = {s.span_id: s for s in plan.spans}
    assert [s.attributes[attr.BATCH_INDEX] for s in batches] == [1, 2, 3, 4, 5]
    assert {s.attributes[attr.BATCH_TOTAL] for s in batches} == {5}
    failed = [s for s in batches if s.status is StatusCode.ERROR]
    assert [s.attributes[attr.BATCH_WINDOW_START] for s in failed] == ["2024-01-03"]
    for batch in batches:
        parent = by_id[batch.parent_span_id or ""]
        assert parent is model or by_id[parent.parent_span_id or ""] is model
    under_batches = [
        s for s in of_role(plan, SpanRole.STATEMENT) if by_id[s.parent_span_id or ""].role is SpanRole.BATCH
    ]
    assert len({s.parent_span_id for s in under_batches}) == 5


def test_only_the_invocation_of_run_results_is_used() -> None:
    """dbt-1.11-text holds a seed, a run and the build run_results belongs to, in two time zones."""
    plan = replayed("dbt-1.11-text")
    root = plan.invocation
    statements = of_role(plan, SpanRole.STATEMENT)
    assert all(
        root.start_time_unix_nano - CLOCK_SLACK_NS <= s.start_time_unix_nano <= root.end_time_unix_nano
        for s in statements
    )


def test_the_same_artifacts_and_log_give_the_same_spans(scenario: str) -> None:
    first, second = replayed(scenario), replayed(scenario)
    assert [(s.span_id, s.parent_span_id) for s in first.spans] == [
        (s.span_id, s.parent_span_id) for s in second.spans
    ]


def test_without_the_log_the_node_spans_do_not_change(scenario: str) -> None:
    with_log, without = replayed(scenario), replayed(scenario, read_dbt_log=False)
    kept = [s for s in with_log.spans if s.role in (SpanRole.INVOCATION, SpanRole.NODE, SpanRole.PHASE)]
    assert kept == list(without.spans)


def test_a_log_without_the_invocation_gives_one_warning(tmp_path: Path) -> None:
    target = tmp_path / "project" / "target"
    shutil.copytree(LOGS / "dbt-1.11-text" / "target", target)
    logs = tmp_path / "project" / "logs"
    logs.mkdir()
    # the log of another scenario: other invocations only
    shutil.copy(LOGS / "dbt-1.8-text" / "logs" / "dbt.log", logs / "dbt.log")
    prepared = prepare(target, ReplayOptions(dry_run=True))
    assert not of_role(prepared.plan, SpanRole.STATEMENT)
    assert len([w for w in prepared.warnings if "dbt.log" in w]) == 1, prepared.warnings


def test_the_command_reads_the_log_and_can_be_told_not_to(tmp_path: Path) -> None:
    target = LOGS / "dbt-1.11-text" / "target"
    out, bare = tmp_path / "trace.json", tmp_path / "bare.json"
    assert run_cli(str(target), "-o", str(out), "--traceparent-to", str(tmp_path / "tp"), "-q").exit_code == 0
    assert (
        run_cli(
            str(target), "-o", str(bare), "--no-dbt-log", "--traceparent-to", str(tmp_path / "tp"), "-q"
        ).exit_code
        == 0
    )

    def client_kinds(path: Path) -> Counter[object]:  # CLIENT spans besides the execute phases (rule 5)
        return Counter(
            span.get("kind")
            for line in path.read_text().splitlines()
            for rs in json.loads(line)["resourceSpans"]
            for ss in rs["scopeSpans"]
            for span in ss["spans"]
            if not any(kv["key"] == "dbt.phase" for kv in span.get("attributes", []))
        )

    kinds = client_kinds(out)
    assert kinds[3] == len(the_log("dbt-1.11-text").statements) + len(the_log("dbt-1.11-text").waits)
    assert client_kinds(bare)[3] == 0
    named = run_cli(
        str(target), "-o", str(tmp_path / "named.json"), "--dbt-log", str(LOGS / "dbt-1.11-text" / "logs"),
        "--traceparent-to", str(tmp_path / "tp"), "-q",
    )  # fmt: skip
    assert named.exit_code == 0 and (tmp_path / "named.json").read_text() == out.read_text()
    both = run_cli(str(target), "--dry-run", "--dbt-log", "x", "--no-dbt-log")
    assert both.exit_code == 2 and "--dbt-log cannot be combined with --no-dbt-log" in both.stderr
    missing = run_cli(str(target), "--dry-run", "--dbt-log", str(tmp_path / "nope.log"))
    assert missing.exit_code == 1 and "nope.log: not found" in missing.stderr


def test_a_backfill_reads_each_runs_own_log(tmp_path: Path) -> None:
    runs = ["dbt-1.8-text", "dbt-1.11-json"]
    out = tmp_path / "all.json"
    result = run_cli("backfill", *(str(LOGS / r / "target") for r in runs), "-o", str(out), "-q")
    assert result.exit_code == 0, result.output
    per_trace = Counter(
        span["traceId"]
        for line in out.read_text().splitlines()
        for rs in json.loads(line)["resourceSpans"]
        for ss in rs["scopeSpans"]
        for span in ss["spans"]
    )
    expected = {plan.trace_id: len(plan.spans) for plan in (replayed(r) for r in runs)}
    assert dict(per_trace) == expected
    assert all(len(replayed(r).spans) > len(replayed(r, read_dbt_log=False).spans) for r in runs)
