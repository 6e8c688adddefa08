"""The planner on the fixture project's real `dbt build`: each rule of the contract with concrete values."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import msgspec
import pytest

from dbt_otel_replay.artifacts import Artifacts, load_artifacts
from dbt_otel_replay.plan import Plan, PlanOptions, StatusCode, TraceContext, plan_trace
from dbt_otel_replay.spans import SQL_TRUNCATION_MARK, PlannedSpan, SpanKind, SpanRole
from tests.support.contract import nanos

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "artifacts"
PROJECT = "replay_fixture"


@pytest.fixture(scope="module")
def build() -> Artifacts:
    return load_artifacts(FIXTURES / "build")


@pytest.fixture(scope="module")
def plan(build: Artifacts) -> Plan:
    return plan_trace(build)


def node(plan: Plan, unique_id: str) -> PlannedSpan:
    (span,) = [s for s in plan.nodes if s.attributes["dbt.node.unique_id"] == unique_id]
    return span


def by_span_id(plan: Plan, span_id: str | None) -> PlannedSpan:
    (span,) = [s for s in plan.spans if s.span_id == span_id]
    return span


def test_trace_id_is_the_invocation_id_without_dashes(build: Artifacts, plan: Plan) -> None:
    invocation_id = build.run_results.metadata.invocation_id
    assert invocation_id and plan.trace_id == invocation_id.replace("-", "")
    assert plan.context.traceparent == f"00-{plan.trace_id}-{plan.invocation.span_id}-01"


def test_invocation_span(build: Artifacts, plan: Plan) -> None:
    root = plan.invocation
    assert root.role is SpanRole.INVOCATION and root.parent_span_id is None
    assert root.name == "dbt build"
    assert root.start_time_unix_nano == build.run_results.metadata.invocation_started_at
    assert root.end_time_unix_nano == build.run_results.metadata.generated_at
    assert root.status is StatusCode.ERROR
    # the counts, then the failing nodes in run_results order
    assert root.status_message == (
        f"1 error, 1 fail: test.{PROJECT}.not_null_orders_amount.106140f9fd, model.{PROJECT}.customer_ltv"
    )
    assert root.kind is SpanKind.SERVER
    assert root.attributes["error.type"] == "fail"  # its first failed result's status
    assert root.attributes["dbt.command"] == "build"
    assert root.attributes["dbt.project_name"] == PROJECT
    assert root.attributes["dbt.adapter"] == "postgres"
    assert root.attributes["db.system.name"] == "postgresql"
    assert str(root.attributes["dbt.version"]).startswith("1.")
    assert root.attributes["dbt.invocation_id"] == build.run_results.metadata.invocation_id


def test_one_node_span_per_result_with_exact_times(build: Artifacts, plan: Plan) -> None:
    assert [s.attributes["dbt.node.unique_id"] for s in plan.nodes] == [
        r.unique_id for r in build.run_results.results
    ]
    raw = (FIXTURES / "build" / "run_results.json").read_text()
    for result, span in zip(json.loads(raw)["results"], plan.nodes, strict=True):
        assert span.attributes["dbt.status"] == result["status"]
        if result["timing"]:
            assert span.start_time_unix_nano == min(nanos(t["started_at"]) for t in result["timing"])
            assert span.end_time_unix_nano == max(nanos(t["completed_at"]) for t in result["timing"])


def test_failures_are_errors_with_dbts_message(plan: Plan) -> None:
    failed = node(plan, f"model.{PROJECT}.customer_ltv")
    assert failed.status is StatusCode.ERROR
    assert "customer_ltv" in failed.status_message and failed.attributes["dbt.status"] == "error"
    failing_test = [s for s in plan.nodes if s.attributes["dbt.status"] == "fail"]
    assert len(failing_test) == 1 and failing_test[0].status is StatusCode.ERROR
    assert failing_test[0].attributes["dbt.failures"] >= 1  # type: ignore[operator]


def test_warn_is_an_event_not_an_error(plan: Plan) -> None:
    (warned,) = [s for s in plan.nodes if s.attributes["dbt.status"] == "warn"]
    assert warned.status is StatusCode.UNSET
    (event,) = warned.events
    assert event.name == "dbt.warn" and event.time_unix_nano == warned.end_time_unix_nano
    assert event.attributes["dbt.failures"] >= 1  # type: ignore[operator]


def test_skipped_nodes_sit_at_the_failure_that_caused_them(plan: Plan) -> None:
    failed = node(plan, f"model.{PROJECT}.customer_ltv")
    for name in ("customer_segments", "customer_segment_summary"):
        skipped = node(plan, f"model.{PROJECT}.{name}")
        assert skipped.attributes["dbt.status"] == "skipped"
        assert skipped.start_time_unix_nano == skipped.end_time_unix_nano == failed.end_time_unix_nano
    chain = node(plan, f"model.{PROJECT}.customer_segment_summary")
    assert by_span_id(plan, chain.parent_span_id).name == f"model.{PROJECT}.customer_segments"


def test_fan_in_nests_under_the_first_parent_and_links_the_others(build: Artifacts, plan: Plan) -> None:
    uid = f"model.{PROJECT}.customer_orders"
    assert build.manifest is not None
    parents = build.manifest.nodes[uid].depends_on.nodes
    assert len(parents) >= 3
    span = node(plan, uid)
    assert span.parent_span_id == node(plan, parents[0]).span_id
    assert [link.span_id for link in span.links] == [node(plan, p).span_id for p in parents[1:]]
    assert all(link.trace_id == plan.trace_id for link in span.links)


def test_nodes_without_an_executed_parent_and_hooks_nest_under_the_invocation(plan: Plan) -> None:
    seed = node(plan, f"seed.{PROJECT}.raw_customers")
    hook = node(plan, f"operation.{PROJECT}.{PROJECT}-on-run-start-0")
    assert seed.parent_span_id == hook.parent_span_id == plan.invocation.span_id


def test_unit_tests_are_found_in_the_manifests_unit_tests(plan: Plan) -> None:
    (unit,) = [s for s in plan.nodes if s.attributes["dbt.node.resource_type"] == "unit_test"]
    assert by_span_id(plan, unit.parent_span_id).name == f"model.{PROJECT}.customer_orders"


def test_phases_are_children_with_their_own_times(build: Artifacts, plan: Plan) -> None:
    for result in build.run_results.results:
        span = node(plan, result.unique_id)
        phases = [s for s in plan.spans if s.role is SpanRole.PHASE and s.parent_span_id == span.span_id]
        assert [(p.name, p.start_time_unix_nano, p.end_time_unix_nano) for p in phases] == [
            (t.name, t.started_at, t.completed_at) for t in result.timing
        ]
        assert all(p.attributes["dbt.phase"] == p.name for p in phases)
        assert all(
            set(p.attributes) <= {"dbt.phase", "db.system.name", "db.namespace", "db.collection.name"}
            for p in phases
        )


def test_span_ids_are_deterministic_and_unique(build: Artifacts, plan: Plan) -> None:
    again = plan_trace(load_artifacts(FIXTURES / "build"))
    assert [s.span_id for s in again.spans] == [s.span_id for s in plan.spans]
    assert len({s.span_id for s in plan.spans}) == len(plan.spans)
    other_run = plan_trace(load_artifacts(FIXTURES / "run"))
    assert not {s.span_id for s in plan.spans} & {s.span_id for s in other_run.spans}


def test_node_attributes(plan: Plan) -> None:
    model = node(plan, f"model.{PROJECT}.orders")
    attributes = dict(model.attributes)
    assert attributes["dbt.node.resource_type"] == "model"
    assert attributes["dbt.node.name"] == "orders"
    assert attributes["dbt.node.package_name"] == PROJECT
    assert attributes["dbt.node.materialized"] == "table"
    assert attributes["dbt.node.original_file_path"] == "models/marts/orders.sql"
    assert isinstance(attributes["dbt.node.tags"], tuple) and attributes["dbt.node.tags"]
    assert str(attributes["dbt.thread_id"]).startswith("Thread-")
    assert isinstance(attributes["dbt.execution_time"], float)
    assert attributes["dbt.adapter_response.code"] == "SELECT"
    assert isinstance(attributes["dbt.adapter_response.rows_affected"], int)
    assert attributes["db.system.name"] == "postgresql"
    assert attributes["db.namespace"] == "dbt_replay|replay"  # semconv v1.44: {database}|{schema}
    assert attributes["db.collection.name"] == "orders"
    assert "db.query.text" not in attributes
    assert attributes["dbt.node.access"] == "protected"
    assert attributes["dbt.node.contract.enforced"] is False
    assert "dbt.node.owner" not in attributes and "dbt.node.group" not in attributes  # none recorded
    assert model.kind is SpanKind.INTERNAL


def test_rows_affected_of_minus_one_is_left_out(plan: Plan) -> None:
    hook = node(plan, f"operation.{PROJECT}.{PROJECT}-on-run-start-0")
    assert "dbt.adapter_response.rows_affected" not in hook.attributes


def test_sql_and_vars_only_on_request(tmp_path: Path) -> None:
    document = json.loads((FIXTURES / "build" / "run_results.json").read_text())
    document["args"]["vars"] = {"api_key": "s3cret"}
    (tmp_path / "run_results.json").write_text(json.dumps(document))
    shutil.copy(FIXTURES / "build" / "manifest.json", tmp_path / "manifest.json")
    hidden = plan_trace(load_artifacts(tmp_path))
    assert all("db.query.text" not in s.attributes and "dbt.vars" not in s.attributes for s in hidden.spans)
    not_read = plan_trace(load_artifacts(tmp_path), PlanOptions(include_sql=True))
    assert "dbt.vars" not in not_read.invocation.attributes, "vars must be read to be exported"
    shown = plan_trace(
        load_artifacts(tmp_path, include_sql=True), PlanOptions(include_sql=True, sql_max_chars=20)
    )
    assert shown.invocation.attributes["dbt.vars"] == '{"api_key":"s3cret"}'
    sql = node(shown, f"model.{PROJECT}.orders").attributes["db.query.text"]
    assert (
        isinstance(sql, str)
        and sql.endswith(SQL_TRUNCATION_MARK)
        and len(sql) == 20 + len(SQL_TRUNCATION_MARK)
    )


def test_upstream_context_adopts_the_trace_and_parents_the_invocation(build: Artifacts, plan: Plan) -> None:
    upstream = TraceContext("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", tracestate="rojo=1")
    joined = plan_trace(build, PlanOptions(upstream=upstream))
    assert joined.trace_id == upstream.trace_id
    assert joined.invocation.parent_span_id == upstream.span_id
    assert joined.context.tracestate == "rojo=1"
    assert joined.context.trace_id == upstream.trace_id
    assert {s.span_id for s in joined.spans}.isdisjoint({s.span_id for s in plan.spans})


def test_results_missing_from_the_manifest_nest_under_the_invocation_with_a_warning(build: Artifacts) -> None:
    assert build.manifest is not None
    uid = f"model.{PROJECT}.orders"
    nodes = {k: v for k, v in build.manifest.nodes.items() if k != uid}
    stale = dataclasses.replace(build, manifest=msgspec.structs.replace(build.manifest, nodes=nodes))
    plan = plan_trace(stale)
    assert node(plan, uid).parent_span_id == plan.invocation.span_id
    assert any(uid in w and "nested directly under the invocation span" in w for w in plan.warnings)


def test_cicd_semantic_conventions(build: Artifacts, plan: Plan) -> None:
    root = plan.invocation.attributes
    assert root["cicd.pipeline.name"] == PROJECT
    assert root["cicd.pipeline.run.id"] == build.run_results.metadata.invocation_id
    assert root["cicd.pipeline.result"] == "failure"
    expected = {
        "success": "success",
        "pass": "success",
        "warn": "success",
        "fail": "failure",
        "error": "failure",
        "skipped": "skip",
    }
    for span in plan.nodes:
        assert (
            span.attributes["cicd.pipeline.task.run.result"] == expected[str(span.attributes["dbt.status"])]
        )
        assert span.attributes["cicd.pipeline.task.name"] == span.attributes["dbt.node.unique_id"]
    assert node(plan, f"model.{PROJECT}.orders").attributes["cicd.pipeline.task.type"] == "build"
    (unit,) = [s for s in plan.nodes if s.attributes["dbt.node.resource_type"] == "unit_test"]
    assert unit.attributes["cicd.pipeline.task.type"] == "test"
    assert (
        "cicd.pipeline.task.type"
        not in node(plan, f"operation.{PROJECT}.{PROJECT}-on-run-start-0").attributes
    )


def _edited(
    tmp_path: Path, run: dict[str, object] | None = None, manifest: dict[str, object] | None = None
) -> Artifacts:
    """The fixture build with run_results.json and manifest.json changed as given (top-level merge)."""
    for name, changes in (("run_results.json", run), ("manifest.json", manifest)):
        document = json.loads((FIXTURES / "build" / name).read_text())
        for key, value in (changes or {}).items():
            if isinstance(value, dict) and isinstance(document.get(key), dict):
                document[key].update(value)
            else:
                document[key] = value
        (tmp_path / name).write_text(json.dumps(document))
    return load_artifacts(tmp_path)


def test_span_kinds_and_the_execute_phase_as_a_database_call(plan: Plan) -> None:
    orders = node(plan, f"model.{PROJECT}.orders")
    phases = {
        s.name: s for s in plan.spans if s.parent_span_id == orders.span_id and s.role is SpanRole.PHASE
    }
    assert phases["compile"].kind is SpanKind.INTERNAL and dict(phases["compile"].attributes) == {
        "dbt.phase": "compile"
    }
    execute = phases["execute"]
    assert execute.kind is SpanKind.CLIENT
    assert dict(execute.attributes) == {
        "dbt.phase": "execute",
        "db.system.name": "postgresql",
        "db.namespace": "dbt_replay|replay",
        "db.collection.name": "orders",
    }
    # a test has no relation: its execute phase is still a call to the warehouse, named by the system
    test = next(s for s in plan.nodes if s.attributes.get("dbt.node.resource_type") == "test")
    (test_execute,) = [s for s in plan.spans if s.parent_span_id == test.span_id and s.name == "execute"]
    assert test_execute.kind is SpanKind.CLIENT and "db.namespace" not in test_execute.attributes
    assert {s.kind for s in plan.nodes} == {SpanKind.INTERNAL}


def test_every_failed_span_has_an_error_type(plan: Plan) -> None:
    failed = [s for s in plan.spans if s.status is StatusCode.ERROR]
    assert len(failed) == 3 and all("error.type" in s.attributes for s in failed)
    # dbt's message names the exception: "Database Error in model customer_ltv (...)"
    assert node(plan, f"model.{PROJECT}.customer_ltv").attributes["error.type"] == "DbtDatabaseError"
    assert node(plan, f"test.{PROJECT}.not_null_orders_amount.106140f9fd").attributes["error.type"] == "fail"
    assert not any("error.type" in s.attributes for s in plan.spans if s.status is not StatusCode.ERROR)


def test_the_root_names_a_few_failing_nodes_and_counts_the_rest(tmp_path: Path) -> None:
    document = json.loads((FIXTURES / "build" / "run_results.json").read_text())
    for result in document["results"]:
        if result["status"] == "success":
            result["status"] = "error"
    failed = [r["unique_id"] for r in document["results"] if r["status"] in ("error", "fail")]
    artifacts = _edited(tmp_path, run={"results": document["results"]})
    message = plan_trace(artifacts).invocation.status_message
    assert message.endswith(f": {', '.join(failed[:3])} and {len(failed) - 3} more")
    assert message.startswith(f"{len(failed) - 1} error, 1 fail: ")


@pytest.mark.parametrize(
    ("which", "name"),
    [
        ("generate", "dbt docs generate"),
        ("serve", "dbt docs serve"),
        ("freshness", "dbt source freshness"),
        ("source-freshness", "dbt source freshness"),
        ("run-operation", "dbt run-operation"),
        ("build", "dbt build"),
    ],
)
def test_the_root_is_named_by_the_command_people_typed(tmp_path: Path, which: str, name: str) -> None:
    artifacts = _edited(tmp_path, run={"args": {"which": which}})
    root = plan_trace(artifacts).invocation
    assert root.name == name
    assert root.attributes["dbt.command"] == which  # args.which, verbatim


def test_invocation_arguments_and_environment(tmp_path: Path) -> None:
    arguments = {
        "select": ["tag:nightly", "orders+"],
        "exclude": "tag:slow",
        "selector": "nightly",
        "full_refresh": True,
        "threads": 8,
        "target": "prod",
        "state": "prod-artifacts",
        "defer": False,
        "vars": {"api_key": "s3cret"},
    }
    env = {"JOB_ID": "4711", "TEAM": "data"}
    artifacts = _edited(tmp_path, run={"args": arguments, "metadata": {"env": env}})
    root = plan_trace(artifacts).invocation.attributes
    assert root["deployment.environment.name"] == "prod"
    assert {k: v for k, v in root.items() if k.startswith("dbt.args.")} == {
        "dbt.args.select": ("tag:nightly", "orders+"),
        "dbt.args.exclude": ("tag:slow",),
        "dbt.args.selector": "nightly",
        "dbt.args.full_refresh": True,
        "dbt.args.threads": 8,
        "dbt.args.target": "prod",
        "dbt.args.state": "prod-artifacts",
        "dbt.args.defer": False,
    }
    assert root["dbt.env.JOB_ID"] == "4711" and root["dbt.env.TEAM"] == "data"
    assert not any("s3cret" in str(v) for v in root.values())
    off = plan_trace(artifacts, PlanOptions(dbt_env=False)).invocation.attributes
    assert not any(k.startswith("dbt.env.") for k in off)


def test_owner_group_and_contract_from_the_manifest(tmp_path: Path) -> None:
    manifest = json.loads((FIXTURES / "build" / "manifest.json").read_text())
    orders, ltv = (
        manifest["nodes"][f"model.{PROJECT}.orders"],
        manifest["nodes"][f"model.{PROJECT}.customer_ltv"],
    )
    orders["meta"] = {"owner": "finance-team"}
    orders["group"], orders["access"] = "finance", "public"
    orders["config"]["contract"]["enforced"] = True
    ltv["config"]["meta"] = {"owner": "growth"}  # config.meta when the node's meta has none
    artifacts = _edited(tmp_path, manifest={"nodes": manifest["nodes"]})
    plan = plan_trace(artifacts)
    attributes = node(plan, f"model.{PROJECT}.orders").attributes
    assert attributes["dbt.node.owner"] == "finance-team"
    assert attributes["dbt.node.group"] == "finance"
    assert attributes["dbt.node.access"] == "public"
    assert attributes["dbt.node.contract.enforced"] is True
    assert node(plan, f"model.{PROJECT}.customer_ltv").attributes["dbt.node.owner"] == "growth"


def test_warehouse_cost_fields(tmp_path: Path) -> None:
    document = json.loads((FIXTURES / "build" / "run_results.json").read_text())
    first = document["results"][0]
    first["adapter_response"] = {"bytes_billed": 10485760, "slot_ms": "5120", "query_id": "01b2-q"}
    plan = plan_trace(_edited(tmp_path, run={"results": document["results"]}))
    attributes = node(plan, first["unique_id"]).attributes
    assert attributes["dbt.adapter_response.bytes_billed"] == 10485760
    assert attributes["dbt.adapter_response.slot_ms"] == 5120
    assert attributes["dbt.adapter_response.query_id"] == "01b2-q"


@pytest.mark.parametrize(
    ("adapter", "namespace"),
    [
        ("postgres", "dbt_replay|replay"),
        ("snowflake", "dbt_replay|replay"),
        ("mysql", "replay"),
        ("sqlserver", "dbt_replay"),
        ("oracle", "dbt_replay"),
    ],
)
def test_db_namespace_follows_each_systems_convention(tmp_path: Path, adapter: str, namespace: str) -> None:
    artifacts = _edited(tmp_path, manifest={"metadata": {"adapter_type": adapter}})
    assert node(plan_trace(artifacts), f"model.{PROJECT}.orders").attributes["db.namespace"] == namespace
