"""A run too large for one OTLP message: every span still arrives, in requests under the 4 MiB limit.

The receiver is a real gRPC server with gRPC's default 4 MiB receive limit (the
collector's default too), so an oversized request would be refused, not trimmed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dbt_otel_replay.export.requests import MAX_REQUEST_BYTES
from tests.support.collector import RotelCollector
from tests.support.contract import check_contract, from_proto, load_pair
from tests.support.receiver import OtlpReceiver
from tests.support.synthetic import write_synthetic_run

NODES = 12_000


@pytest.fixture(scope="module")
def large_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_run(tmp_path_factory.mktemp("large"), NODES)


def replay(target: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).parent / "dbt-otel-replay"), str(target), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def test_direct_to_a_receiver_with_the_default_message_limit(
    large_run: Path, otlp_receiver: OtlpReceiver
) -> None:
    result = replay(
        large_run, "--endpoint", otlp_receiver.grpc_endpoint, "--protocol", "grpc", "--include-sql"
    )
    assert result.returncode == 0, result.stderr
    total = 1 + 3 * NODES
    assert otlp_receiver.span_count() == total
    assert len(otlp_receiver.requests) > 1
    assert all(r.ByteSize() <= MAX_REQUEST_BYTES for r in otlp_receiver.requests)
    assert f"in {len(otlp_receiver.requests)} requests" in result.stderr


def test_through_rotel_every_span_arrives_and_follows_the_contract(large_run: Path) -> None:
    # rotel re-batches up to 8192 spans per request to its upstream, which can exceed 4 MiB:
    # this backend accepts larger messages, as real backends behind a collector do.
    with (
        OtlpReceiver(max_receive_bytes=64 * 1024 * 1024) as backend,
        RotelCollector(backend.grpc_endpoint) as collector,
    ):
        result = replay(large_run, "--endpoint", collector.http_base_endpoint)
        assert result.returncode == 0, result.stderr
        backend.wait_for_spans(1 + 3 * NODES, timeout=60)
        spans = [from_proto(r.span) for r in backend.spans()]
    check_contract(*load_pair(large_run), spans)
