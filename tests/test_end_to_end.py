"""End to end, for real: dbt build on PostgreSQL, then dbt-otel-replay into rotel, relayed to a receiver.

Needs the local PostgreSQL that scripts/start-postgres.sh starts (scripts/test.sh does).
The receiver checks the trace contract span by span on what rotel relayed, and the statement
spans read from the live run's own logs/dbt.log.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.support.collector import RotelCollector
from tests.support.contract import SpanRecord, check_contract, from_proto, load_pair
from tests.support.logs import invocation_log
from tests.support.receiver import OtlpReceiver, attributes_to_dict

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def dbt_target(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run `dbt build` on the fixture project against PostgreSQL; return its target directory."""
    work = tmp_path_factory.mktemp("dbt")
    project = work / "project"
    shutil.copytree(REPO / "fixtures" / "project", project, ignore=shutil.ignore_patterns("target", "logs"))
    schema = f"e2e_{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "DBT_PG_SCHEMA": schema, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    command = [
        str(BIN / "dbt"),
        "build",
        "--project-dir",
        str(project),
        "--profiles-dir",
        str(project),
        "--target-path",
        str(work / "target"),
        "--log-path",
        str(work / "logs"),
    ]
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    # The fixture project fails on purpose (one model error, one failing test): exit code 1.
    assert completed.returncode == 1, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert "Completed with 2 errors" in completed.stdout or (work / "target" / "run_results.json").exists()
    return work / "target"


def replay(target: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TRACE"))}
    return subprocess.run(
        [str(BIN / "dbt-otel-replay"), str(target), *args],
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def spans_of(receiver: OtlpReceiver) -> list[Span]:
    return [r.span for r in receiver.spans()]


def node_level_span_count(target: Path) -> int:
    """The invocation, node and phase spans run_results.json asks for (counted with json alone)."""
    run_results, _ = load_pair(target)
    return 1 + len(run_results["results"]) + sum(len(r["timing"]) for r in run_results["results"])


def log_spans(target: Path) -> int:
    """The statement, batch and connection spans dbt's log beside the target asks for."""
    log = invocation_log(target)
    return len(log.statements) + len(log.batches) + len(log.waits)


def expected_span_count(target: Path) -> int:
    return node_level_span_count(target) + log_spans(target)


def from_the_log(span: SpanRecord) -> bool:
    return any(
        key in span.attributes for key in ("db.query.summary", "dbt.batch.index", "dbt.connection.name")
    )


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_dbt_build_replayed_through_rotel(
    dbt_target: Path,
    otlp_receiver: OtlpReceiver,
    rotel_collector: RotelCollector,
    tmp_path: Path,
    protocol: str,
) -> None:
    endpoint = rotel_collector.grpc_endpoint if protocol == "grpc" else rotel_collector.http_base_endpoint
    carrier = tmp_path / "traceparent"
    result = replay(
        dbt_target,
        "--endpoint",
        endpoint,
        "--protocol",
        protocol,
        "--traceparent-to",
        str(carrier),
        env={"OTEL_SERVICE_NAME": "nightly-dbt"},
    )
    assert result.returncode == 0, result.stderr
    total = expected_span_count(dbt_target)
    assert f"{total} spans" in result.stderr and "sent to" in result.stderr

    assert "fall outside" not in result.stderr and "dbt.log" not in result.stderr

    otlp_receiver.wait_for_spans(total, timeout=30)
    received = otlp_receiver.spans()
    spans = [from_proto(r.span, r.resource_attributes) for r in received]
    run_results, manifest = load_pair(dbt_target)
    by_uid = check_contract(run_results, manifest, [s for s in spans if not from_the_log(s)])
    # the live run's own dbt.log: every statement a CLIENT span inside a span of the same trace
    statements = [r.span for r in received if "db.query.summary" in attributes_to_dict(r.span.attributes)]
    assert len([s for s in spans if from_the_log(s)]) == log_spans(dbt_target)
    ids = {s.span_id for s in spans}
    assert statements and all(s.kind == Span.SpanKind.SPAN_KIND_CLIENT for s in statements)
    assert all(s.parent_span_id.hex() in ids for s in statements)
    assert all(s.name == attributes_to_dict(s.attributes)["db.query.summary"] for s in statements)
    assert {s.resource["service.name"] for s in spans} == {"nightly-dbt"}
    fan_in = by_uid["model.replay_fixture.customer_orders"]
    assert len(fan_in.links) == 2, "span links must survive the collector"
    root = next(s for s in spans if s.parent_span_id == "")
    assert carrier.read_text() == f"TRACEPARENT=00-{root.trace_id}-{root.span_id}-01\n"


def test_the_next_stage_joins_the_same_trace(
    dbt_target: Path, otlp_receiver: OtlpReceiver, rotel_collector: RotelCollector, tmp_path: Path
) -> None:
    carrier = tmp_path / "traceparent"
    upstream = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    result = replay(
        dbt_target,
        "--endpoint",
        rotel_collector.http_base_endpoint,
        "--traceparent-to",
        str(carrier),
        env={"TRACEPARENT": upstream},
    )
    assert result.returncode == 0, result.stderr
    total = expected_span_count(dbt_target)

    stage = subprocess.run(
        [
            sys.executable,
            str(REPO / "examples" / "next_stage.py"),
            str(carrier),
            "--name",
            "publish",
            "--endpoint",
            rotel_collector.http_base_endpoint,
            "--seconds",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert stage.returncode == 0, stage.stderr
    otlp_receiver.wait_for_spans(total + 1, timeout=30)
    spans = [from_proto(r.span, r.resource_attributes) for r in otlp_receiver.spans()]
    assert {s.trace_id for s in spans} == {"0af7651916cd43dd8448eb211c80319c"}
    invocation = next(s for s in spans if s.parent_span_id == "b7ad6b7169203331")
    (publish,) = [s for s in spans if s.name == "publish"]
    assert publish.parent_span_id == invocation.span_id
    assert publish.resource["service.name"] == "next-stage"
    assert stage.stdout.startswith(f"TRACEPARENT=00-0af7651916cd43dd8448eb211c80319c-{publish.span_id}-01")


def test_replaying_twice_yields_identical_spans(
    dbt_target: Path, otlp_receiver: OtlpReceiver, rotel_collector: RotelCollector
) -> None:
    for _ in range(2):
        assert (
            replay(dbt_target, "--endpoint", rotel_collector.grpc_endpoint, "--protocol", "grpc").returncode
            == 0
        )
    total = expected_span_count(dbt_target)
    otlp_receiver.wait_for_spans(2 * total, timeout=30)
    copies = Counter(
        (s.span_id, s.parent_span_id, s.start, s.end) for s in map(from_proto, spans_of(otlp_receiver))
    )
    assert len(copies) == total and set(copies.values()) == {2}
