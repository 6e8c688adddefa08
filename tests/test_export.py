"""Sending over OTLP to a real receiver: every protocol, every answer checked, retries and refusals."""

from __future__ import annotations

import re
from pathlib import Path

import grpc
import pytest

from dbt_otel_replay.artifacts import load_artifacts
from dbt_otel_replay.export.config import resolve_export_config
from dbt_otel_replay.export.encode import encode_requests
from dbt_otel_replay.export.otlp import deliver
from dbt_otel_replay.plan import plan_trace
from tests.support.contract import check_contract, from_proto, load_pair
from tests.support.receiver import OtlpReceiver

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "artifacts"
PLAN = plan_trace(load_artifacts(FIXTURES / "build"))
TOTAL = len(PLAN.spans)


def endpoint_for(receiver: OtlpReceiver, protocol: str) -> str:
    return receiver.grpc_endpoint if protocol == "grpc" else receiver.http_base_endpoint


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf", "http/json"])
@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_every_protocol_delivers_the_whole_contract(
    otlp_receiver: OtlpReceiver, protocol: str, compression: str
) -> None:
    config = resolve_export_config(
        endpoint=endpoint_for(otlp_receiver, protocol),
        protocol=protocol,
        headers=[("authorization", "Bearer t0ken")],
        environ={"OTEL_EXPORTER_OTLP_COMPRESSION": compression},
    )
    delivery = deliver(encode_requests(PLAN, {"service.name": "dbt"}), config)
    assert delivery.complete and delivery.accepted == delivery.total == TOTAL and delivery.requests == 1
    spans = [from_proto(r.span, r.resource_attributes) for r in otlp_receiver.spans()]
    check_contract(*load_pair(FIXTURES / "build"), spans)
    assert otlp_receiver.headers[0]["authorization"] == "Bearer t0ken"


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_large_traces_go_in_several_checked_requests(otlp_receiver: OtlpReceiver, protocol: str) -> None:
    config = resolve_export_config(
        endpoint=endpoint_for(otlp_receiver, protocol), protocol=protocol, environ={}
    )
    requests = encode_requests(PLAN, {"service.name": "dbt"}, max_request_bytes=8 * 1024)
    delivery = deliver(requests, config)
    assert delivery.requests == len(requests) > 3
    assert len(otlp_receiver.requests) == len(requests)
    assert sorted(r.span.span_id.hex() for r in otlp_receiver.spans()) == sorted(
        s.span_id for s in PLAN.spans
    )


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_transient_failures_are_retried(otlp_receiver: OtlpReceiver, protocol: str) -> None:
    otlp_receiver.fail_next(2, grpc_code=grpc.StatusCode.UNAVAILABLE, http_status=503)
    config = resolve_export_config(
        endpoint=endpoint_for(otlp_receiver, protocol), protocol=protocol, environ={}
    )
    waits: list[float] = []
    delivery = deliver(encode_requests(PLAN, {"service.name": "dbt"}), config, sleep=waits.append)
    assert delivery.complete and delivery.accepted == TOTAL
    assert waits == [0.5, 1.0]  # exponential backoff
    assert len(otlp_receiver.attempts) == 3 and otlp_receiver.span_count() == TOTAL


def test_retry_after_is_honoured(otlp_receiver: OtlpReceiver) -> None:
    otlp_receiver.fail_next(1, http_status=429, retry_after=2)
    config = resolve_export_config(endpoint=otlp_receiver.http_base_endpoint, environ={})
    waits: list[float] = []
    deliver(encode_requests(PLAN, {"service.name": "dbt"}), config, sleep=waits.append)
    assert waits == [2.0]


@pytest.mark.parametrize(
    ("protocol", "failure"),
    [("grpc", {"grpc_code": grpc.StatusCode.INVALID_ARGUMENT}), ("http/protobuf", {"http_status": 400})],
)
def test_permanent_refusals_are_not_retried(
    otlp_receiver: OtlpReceiver, protocol: str, failure: dict[str, object]
) -> None:
    otlp_receiver.fail_next(5, message="bad spans", **failure)  # type: ignore[arg-type]
    config = resolve_export_config(
        endpoint=endpoint_for(otlp_receiver, protocol), protocol=protocol, environ={}
    )
    requests = encode_requests(PLAN, {"service.name": "dbt"}, max_request_bytes=8 * 1024)
    delivery = deliver(requests, config, sleep=lambda _: None)
    assert delivery.accepted == 0 and delivery.total == TOTAL
    assert delivery.unsent == tuple(requests), "the refused request and every one after it come back"
    assert len(otlp_receiver.attempts) == 1
    (problem,) = delivery.problems
    assert ("INVALID_ARGUMENT: bad spans" if protocol == "grpc" else "HTTP 400: bad spans") in problem


def test_giving_up_at_the_deadline(otlp_receiver: OtlpReceiver) -> None:
    otlp_receiver.fail_next(100)
    config = resolve_export_config(
        endpoint=otlp_receiver.grpc_endpoint, protocol="grpc", timeout=1.0, environ={}
    )
    delivery = deliver(encode_requests(PLAN, {"service.name": "dbt"}), config)
    assert not delivery.complete and delivery.accepted == 0
    assert re.search(
        r"UNAVAILABLE: injected failure \(gave up after \d+ attempts in 1 s", delivery.problems[0]
    )
    assert otlp_receiver.span_count() == 0


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_partial_success_is_a_failure_in_the_collectors_words(
    otlp_receiver: OtlpReceiver, protocol: str
) -> None:
    otlp_receiver.partial_success(rejected=3, message="span too old")
    config = resolve_export_config(
        endpoint=endpoint_for(otlp_receiver, protocol), protocol=protocol, environ={}
    )
    requests = encode_requests(PLAN, {"service.name": "dbt"}, max_request_bytes=8 * 1024)
    delivery = deliver(requests, config)
    assert delivery.accepted == TOTAL - 3 * len(requests)
    assert delivery.unsent == tuple(requests), "every partly rejected request is kept for a re-send"
    assert re.search(r"rejected 3 of \d+ spans in request 1: span too old", delivery.problems[0])
    assert len(delivery.problems) == len(requests)


def test_partial_success_with_only_a_message_is_a_warning(
    otlp_receiver: OtlpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    otlp_receiver.partial_success(rejected=0, message="attribute truncated")
    config = resolve_export_config(endpoint=otlp_receiver.grpc_endpoint, protocol="grpc", environ={})
    assert deliver(encode_requests(PLAN, {"service.name": "dbt"}), config).complete
    assert "attribute truncated" in caplog.text
