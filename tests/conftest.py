"""Shared pytest fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import fixture_target
from tests.support.collector import RotelCollector
from tests.support.receiver import OtlpReceiver


@pytest.fixture
def target(tmp_path: Path) -> Path:
    """A copy of the fixture build's target directory (run_results.json and manifest.json)."""
    return fixture_target(tmp_path / "target")


# --------------------------------------------------------------------------- #
# OTLP test harness: a real in-process receiver and the real rotel collector.
# See tests/support/receiver.py and tests/support/collector.py.
# --------------------------------------------------------------------------- #


@pytest.fixture
def otlp_receiver() -> Iterator[OtlpReceiver]:
    """A running OtlpReceiver (gRPC + HTTP on free loopback ports)."""
    with OtlpReceiver() as receiver:
        yield receiver


@pytest.fixture
def rotel_collector(otlp_receiver: OtlpReceiver) -> Iterator[RotelCollector]:
    """The rotel binary relaying OTLP/gRPC to ``otlp_receiver``.

    Rotel's output is printed at teardown, so pytest shows it for failing tests.
    """
    with RotelCollector(otlp_receiver.grpc_endpoint) as collector:
        try:
            yield collector
        finally:
            collector.stop()
            print(f"--- rotel output ({collector.output_path}) ---\n{collector.output()}")


# --------------------------------------------------------------------------- #
# (end of OTLP test harness fixtures)
# --------------------------------------------------------------------------- #
