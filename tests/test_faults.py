"""Not one span lost: the real collector (rotel) stopped before and in the middle of an export.

Delivered plus saved is exactly every span, every time; a re-send of the saved spans
completes the trace with no duplicates in content (span ids are deterministic).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from dbt_otel_replay.artifacts import load_artifacts
from dbt_otel_replay.cli import main
from dbt_otel_replay.export.config import resolve_export_config
from dbt_otel_replay.export.convert import to_message
from dbt_otel_replay.export.deliver import deliver
from dbt_otel_replay.export.file import append_otlp_json
from dbt_otel_replay.export.protobuf import encode_requests
from dbt_otel_replay.export.requests import EncodedRequest
from dbt_otel_replay.export.transport import Answer, Transport, open_transport
from dbt_otel_replay.plan import plan_trace
from dbt_otel_replay.replay import resend
from tests.support.collector import RotelCollector
from tests.support.contract import from_otlp_json_lines
from tests.support.receiver import OtlpReceiver
from tests.support.synthetic import write_synthetic_run

NODES = 600
REQUEST_BYTES = 48 * 1024


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_run(tmp_path_factory.mktemp("faults"), NODES)


@pytest.fixture(scope="module")
def requests(run_dir: Path) -> list[EncodedRequest]:
    plan = plan_trace(load_artifacts(run_dir))
    return encode_requests(plan, {"service.name": "dbt"}, max_request_bytes=REQUEST_BYTES)


def span_ids(requests: list[EncodedRequest]) -> list[str]:
    return [
        s.span_id.hex()
        for r in requests
        for rs in to_message(r).resource_spans
        for ss in rs.scope_spans
        for s in ss.spans
    ]


def received_ids(receiver: OtlpReceiver) -> list[str]:
    return [r.span_id for r in receiver.spans()]


class StopCollectorAfter:
    """A real transport that stops the real collector (once) when ``after`` requests went through."""

    def __init__(self, inner: Transport, collector: RotelCollector, after: int) -> None:
        self.inner, self.collector, self.after, self.sent = inner, collector, after, 0
        self.stopped = False

    def send(self, request: EncodedRequest, timeout: float) -> Answer:
        if self.sent == self.after and not self.stopped:
            self.collector.stop()
            self.stopped = True
        response = self.inner.send(request, timeout)
        self.sent += 1
        return response

    def close(self) -> None:
        self.inner.close()


@pytest.fixture(params=["grpc", "http/protobuf"])
def protocol(request: pytest.FixtureRequest) -> Iterator[str]:
    yield str(request.param)


def endpoint(collector: RotelCollector, protocol: str) -> str:
    return collector.grpc_endpoint if protocol == "grpc" else collector.http_base_endpoint


@pytest.mark.parametrize("stop_after", [0, 1, 4])
def test_collector_stopped_mid_export_and_back_within_the_deadline(
    requests: list[EncodedRequest],
    otlp_receiver: OtlpReceiver,
    rotel_collector: RotelCollector,
    protocol: str,
    stop_after: int,
) -> None:
    config = resolve_export_config(
        endpoint=endpoint(rotel_collector, protocol), protocol=protocol, timeout=15, environ={}
    )
    transport = StopCollectorAfter(open_transport(config), rotel_collector, stop_after)

    def wait_then_restart(seconds: float) -> None:
        if not rotel_collector.is_running:
            rotel_collector.start()

    delivery = deliver(requests, config, transport=transport, sleep=wait_then_restart)
    transport.close()  # deliver leaves a transport it was given open
    assert transport.stopped and len(requests) > stop_after
    assert delivery.complete, delivery.problems
    expected = span_ids(requests)
    otlp_receiver.wait_for_spans(len(expected), timeout=30)
    assert sorted(set(received_ids(otlp_receiver))) == sorted(expected)


@pytest.mark.parametrize("stop_after", [0, 1, 4])
def test_collector_stopped_mid_export_and_gone_past_the_deadline(
    requests: list[EncodedRequest],
    otlp_receiver: OtlpReceiver,
    rotel_collector: RotelCollector,
    protocol: str,
    stop_after: int,
    tmp_path: Path,
) -> None:
    config = resolve_export_config(
        endpoint=endpoint(rotel_collector, protocol), protocol=protocol, timeout=1, environ={}
    )
    transport = StopCollectorAfter(open_transport(config), rotel_collector, stop_after)
    delivery = deliver(requests, config, transport=transport)
    transport.close()
    assert transport.stopped and not delivery.complete
    spill = tmp_path / "unsent.json"
    append_otlp_json(delivery.unsent, spill)

    delivered = received_ids(otlp_receiver)  # rotel flushed what it had accepted when it stopped
    spilled = [s.span_id for s in from_otlp_json_lines(spill.read_text())]
    expected = span_ids(requests)
    assert sorted(delivered + spilled) == sorted(expected), "delivered plus spilled must be every span, once"
    assert delivery.accepted == len(delivered)

    rotel_collector.start()
    resent = resend(
        spill,
        resolve_export_config(endpoint=endpoint(rotel_collector, protocol), protocol=protocol, environ={}),
    )
    assert resent.failure is None and resent.delivery.accepted == len(spilled)
    assert not spill.exists()
    otlp_receiver.wait_for_spans(len(expected), timeout=30)
    assert sorted(received_ids(otlp_receiver)) == sorted(expected)


def test_collector_down_before_the_export_then_resent_with_the_cli(
    run_dir: Path, otlp_receiver: OtlpReceiver, rotel_collector: RotelCollector, tmp_path: Path
) -> None:
    rotel_collector.stop()
    spill = tmp_path / "spill.json"
    env = {"TRACEPARENT": "", "OTEL_EXPORTER_OTLP_ENDPOINT": rotel_collector.http_base_endpoint}
    args = [str(run_dir), "--timeout", "1", "--spill", str(spill), "--traceparent-to", str(tmp_path / "tp")]
    failed = CliRunner().invoke(main, args, env=env)
    assert failed.exit_code == 3
    total = 1 + 3 * NODES
    assert f"{total} spans saved to {spill}" in failed.stderr
    saved = from_otlp_json_lines(spill.read_text())
    assert len(saved) == total and otlp_receiver.span_count() == 0

    rotel_collector.start()
    resent = CliRunner().invoke(main, ["resend", str(spill)], env=env)
    assert resent.exit_code == 0, resent.stderr
    assert f"resent {total} of {total} spans from {spill}" in resent.stderr
    assert not spill.exists()
    otlp_receiver.wait_for_spans(total, timeout=30)
    received = {r.span_id: r.span for r in otlp_receiver.spans()}
    assert len(received) == total
    for record in saved:  # the re-sent spans are the replayed spans, unchanged
        span = received[record.span_id]
        assert (span.parent_span_id.hex(), span.start_time_unix_nano, span.end_time_unix_nano) == (
            record.parent_span_id,
            record.start,
            record.end,
        )


def test_resend_keeps_what_is_still_not_accepted(
    requests: list[EncodedRequest], otlp_receiver: OtlpReceiver, tmp_path: Path
) -> None:
    spill = tmp_path / "spill.json"
    append_otlp_json(requests, spill)
    otlp_receiver.fail_next(1000)
    config = resolve_export_config(
        endpoint=otlp_receiver.grpc_endpoint, protocol="grpc", timeout=0.5, environ={}
    )
    result = resend(spill, config)
    assert result.failure is not None and "stay in" in str(result.failure)
    assert sorted(s.span_id for s in from_otlp_json_lines(spill.read_text())) == sorted(span_ids(requests))
