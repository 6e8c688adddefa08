"""SIGTERM, SIGINT and slow collectors: nothing is lost, nothing waits past its deadline.

CI cancellation and Kubernetes send SIGTERM, people press Ctrl-C, collectors answer late
or a byte at a time. Each test runs the real command as a process, sends it real signals
and points it at a real (deliberately slow) server, then checks the promise: sending stops
within about a second, every span is either delivered or saved (and a re-send completes
the trace), the traceparent file is written, the exit code is 128 + the signal's number,
and one error line says how many spans were delivered and where the rest went. A second
signal exits at once. A request never outlives --timeout, even when the answer trickles.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from dbt_otel_replay.artifacts import load_artifacts
from dbt_otel_replay.export.config import resolve_export_config
from dbt_otel_replay.export.protobuf import encode_requests
from dbt_otel_replay.export.transport import RetryableError, StalledError, open_transport
from dbt_otel_replay.plan import plan_trace
from tests.support.contract import copy_pair, from_otlp_json_lines
from tests.support.receiver import OtlpReceiver
from tests.support.slow_server import SlowServer, wait_until
from tests.support.synthetic import write_synthetic_run

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "fixtures" / "artifacts"
PROG = "dbt-otel-replay"
NODES = 12_000
"""36,001 spans: five requests of at most 8,192, so a signal can arrive between them."""
BUILD_SPANS = 94
RUN_SPANS = 30
"""Spans of the fixture `dbt run`, the second of the three fixture runs in time."""
STOP_SECONDS = 3.0
"""The most a stop may take from signal to exit, with slack for a loaded CI machine (about 1 s here)."""
TIMEOUT = 120.0
"""A hang fails the test instead of blocking the suite."""
STOPPED_LINE = re.compile(
    rf"^{PROG}: error: stopped by (SIG\w+) after (\d+) of (\d+) spans were delivered; "
    rf"(\d+) spans saved to (.+): re-send them with `dbt-otel-replay resend .+`$"
)


@pytest.fixture(scope="module")
def big_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_run(tmp_path_factory.mktemp("signals"), NODES)


@pytest.fixture(scope="module")
def big_run_ids(big_run: Path) -> set[str]:
    return {span.span_id for span in plan_trace(load_artifacts(big_run)).spans}


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    cache, tmp = tmp_path / "cache", tmp_path / "tmp"
    cache.mkdir()
    tmp.mkdir(mode=0o700)
    return {
        **os.environ,
        "TRACEPARENT": "",
        "TRACESTATE": "",
        "OTEL_RESOURCE_ATTRIBUTES": "",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "",
        "XDG_CACHE_HOME": str(cache),
        "TMPDIR": str(tmp),
    }


def start(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-B", "-m", "dbt_otel_replay", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop_and_time(process: subprocess.Popen[str], signum: int) -> tuple[int, float, str, str]:
    """Send the signal; the exit code, the seconds until the exit, stdout and stderr."""
    sent = time.monotonic()
    process.send_signal(signum)
    code, stdout, stderr = finish(process)
    return code, time.monotonic() - sent, stdout, stderr


def finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    try:
        stdout, stderr = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
        raise AssertionError(f"still running after {TIMEOUT} s: {stderr}") from None
    return process.returncode, stdout, stderr


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith(f"{PROG}: error: ")]


def ids_in(path: Path) -> list[str]:
    return [span.span_id for span in from_otlp_json_lines(path.read_text())]


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as otlp:
        yield otlp


def received_ids(receiver: OtlpReceiver) -> set[str]:
    return {span.span_id for span in receiver.spans()}


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_a_signal_mid_export_saves_every_unsent_span(
    tmp_path: Path,
    env: dict[str, str],
    big_run: Path,
    big_run_ids: set[str],
    receiver: OtlpReceiver,
    signum: int,
    protocol: str,
) -> None:
    """The issue: SIGTERM gave exit 143 with 24,576 of 60,001 spans delivered, no spill, no traceparent."""
    receiver.set_response_delay(1.0)
    endpoint = receiver.grpc_endpoint if protocol == "grpc" else receiver.http_base_endpoint
    spill, carrier = tmp_path / "unsent.json", tmp_path / "traceparent"
    process = start(
        env, str(big_run), "--endpoint", endpoint, "--protocol", protocol, "--timeout", "30",
        "--spill", str(spill), "--traceparent-to", str(carrier), "-q",
    )  # fmt: skip
    wait_until(lambda: len(receiver.requests) >= 1 or process.poll() is not None, TIMEOUT, "a first answer")
    assert process.poll() is None, finish(process)

    code, seconds, _, stderr = stop_and_time(process, signum)

    name = signal.Signals(signum).name
    assert code == 128 + signum, stderr
    assert seconds < STOP_SECONDS, f"took {seconds:.1f} s to stop"
    [line] = error_lines(stderr)
    match = STOPPED_LINE.match(line)
    assert match is not None, line
    assert match[1] == name and match[5] == str(spill)
    delivered, total, saved = int(match[2]), int(match[3]), int(match[4])
    assert total == len(big_run_ids) and 0 < delivered < total
    assert delivered + saved == total
    in_spill = ids_in(spill)
    assert len(in_spill) == saved
    assert set(in_spill) | received_ids(receiver) == big_run_ids  # nothing lost
    assert carrier.read_text().startswith("TRACEPARENT=00-")

    receiver.set_response_delay(0)
    code, _, stderr = finish(start(env, "resend", str(spill), "--endpoint", endpoint, "--protocol", protocol))
    assert code == 0, stderr
    assert received_ids(receiver) == big_run_ids and not spill.exists()


def test_a_second_signal_exits_at_once(
    tmp_path: Path, env: dict[str, str], big_run: Path, receiver: OtlpReceiver
) -> None:
    """The first signal saves; if saving blocks (a FIFO whose reader never reads), the second ends it."""
    receiver.set_response_delay(1.0)
    fifo = tmp_path / "spill.fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader that never reads: writes block when full
    try:
        process = start(
            env, str(big_run), "--endpoint", receiver.http_base_endpoint, "--timeout", "30",
            "--spill", str(fifo), "--traceparent-to", str(tmp_path / "traceparent"), "-q",
        )  # fmt: skip
        wait_until(lambda: len(receiver.requests) >= 1 or process.poll() is not None, TIMEOUT, "an answer")
        process.send_signal(signal.SIGTERM)
        time.sleep(1.5)  # the stop is done sending, and blocked writing the spill into the full FIFO
        assert process.poll() is None, finish(process)
        code, seconds, _, stderr = stop_and_time(process, signal.SIGTERM)
    finally:
        os.close(reader)
    assert code == 128 + signal.SIGTERM, stderr
    assert seconds < STOP_SECONDS
    assert error_lines(stderr) == [
        f"{PROG}: error: SIGTERM again: exiting at once; spans not yet saved are lost"
    ]


@pytest.mark.parametrize("mode", ["trickle_body", "trickle_headers", "hang"])
@pytest.mark.parametrize("setting", ["--timeout", "OTEL_EXPORTER_OTLP_TIMEOUT"])
def test_a_slow_answer_never_outlives_the_timeout(
    tmp_path: Path, env: dict[str, str], mode: str, setting: str
) -> None:
    """The issue: headers then one byte a second kept a run with --timeout 2 alive for more than 45 s."""
    target = tmp_path / "target"
    copy_pair(FIXTURES / "build", target)
    with SlowServer(mode, delay=1.0) as server:
        args = [str(target), "--endpoint", server.endpoint, "-q"]
        if setting == "--timeout":
            args += ["--timeout", "2"]
        else:
            env = {**env, "OTEL_EXPORTER_OTLP_TIMEOUT": "2000"}
        began = time.monotonic()
        code, _, stderr = finish(start(env, *args))
        seconds = time.monotonic() - began
    assert code == 3, stderr
    assert seconds < 2 + STOP_SECONDS + 3, f"took {seconds:.1f} s with a 2 s timeout"  # plus start-up
    [line] = error_lines(stderr)
    # the same words whether the deadline (trickles) or the attempt's read timeout (hang) saw it first
    assert "no complete answer within 2 s: the collector or the network is stalled (see --timeout)" in line
    spill = target / "otel-replay-unsent.json"
    assert f"{BUILD_SPANS} spans saved to {spill}" in line
    assert len(ids_in(spill)) == BUILD_SPANS
    assert (target / "traceparent").exists()


@pytest.mark.parametrize("mode", ["trickle_body", "trickle_headers", "hang"])
def test_an_attempt_whose_time_runs_out_mid_answer_is_a_stall(mode: str) -> None:
    """A CI failure: a body late past the attempt's read timeout read as "cannot reach the collector".

    Which of the deadline and the socket's read timeout sees a trickle first is a race, so the
    transport itself must call both a stall; here the read timeout (0.5 s) always comes first.
    """
    request = encode_requests(plan_trace(load_artifacts(FIXTURES / "build")), {})[0]
    with SlowServer(mode, delay=2.0) as server:
        config = resolve_export_config(endpoint=server.endpoint, timeout=10, environ={})
        transport = open_transport(config)
        try:
            with pytest.raises(StalledError):
                transport.send(request, timeout=0.5)
        finally:
            transport.close()


def test_a_grpc_call_past_its_deadline_is_a_stall_and_a_collectors_deadline_exceeded_is_retried(
    otlp_receiver: OtlpReceiver,
) -> None:
    """gRPC's own deadline is the request's, spent; DEADLINE_EXCEEDED sent early is the collector's."""
    request = encode_requests(plan_trace(load_artifacts(FIXTURES / "build")), {})[0]
    config = resolve_export_config(
        endpoint=otlp_receiver.grpc_endpoint, protocol="grpc", timeout=10, environ={}
    )
    transport = open_transport(config)
    try:
        otlp_receiver.set_response_delay(2.0)
        with pytest.raises(StalledError, match="DEADLINE_EXCEEDED"):
            transport.send(request, timeout=0.5)
        otlp_receiver.set_response_delay(0)
        otlp_receiver.fail_next(1, grpc_code=grpc.StatusCode.DEADLINE_EXCEEDED)
        with pytest.raises(RetryableError, match="DEADLINE_EXCEEDED") as raised:
            transport.send(request, timeout=5)
        assert not isinstance(raised.value, StalledError)
        assert transport.send(request, timeout=5).rejected_spans == 0
    finally:
        transport.close()


def test_an_answer_cut_off_midway_is_retried_and_said_so(tmp_path: Path, env: dict[str, str]) -> None:
    """Headers, ten bytes of a promised 64, then the connection closes: retryable, and not a stall."""
    target = tmp_path / "target"
    copy_pair(FIXTURES / "build", target)
    with SlowServer("cut") as server:
        code, _, stderr = finish(start(env, str(target), "--endpoint", server.endpoint, "--timeout", "2"))
        tried = server.requests()
    assert code == 3, stderr
    assert tried > 1, "a cut-off answer is retried"
    [line] = error_lines(stderr)
    assert "the answer was cut off: " in line and "stalled" not in line, line
    assert f"{BUILD_SPANS} spans saved to " in line


def test_ctrl_c_while_the_answer_trickles_stops_at_once(tmp_path: Path, env: dict[str, str]) -> None:
    """The issue: the trickling answer also ignored SIGINT."""
    target = tmp_path / "target"
    copy_pair(FIXTURES / "build", target)
    with SlowServer("trickle_body", delay=1.0) as server:
        process = start(env, str(target), "--endpoint", server.endpoint, "--timeout", "60", "-q")
        wait_until(lambda: server.requests() >= 1 or process.poll() is not None, TIMEOUT, "the request")
        code, seconds, _, stderr = stop_and_time(process, signal.SIGINT)
    assert code == 130, stderr
    assert seconds < STOP_SECONDS
    [line] = error_lines(stderr)
    assert line.startswith(
        f"{PROG}: error: stopped by SIGINT after 0 of {BUILD_SPANS} spans were delivered; "
    )
    assert len(ids_in(target / "otel-replay-unsent.json")) == BUILD_SPANS


def three_runs(tmp_path: Path) -> list[Path]:
    runs = []
    for name in ("build", "run", "test"):
        runs.append(copy_pair(FIXTURES / name, tmp_path / "runs" / name))
    return runs


def test_a_signal_stops_a_backfill_and_the_ledger_keeps_only_whole_runs(
    tmp_path: Path, env: dict[str, str]
) -> None:
    runs = three_runs(tmp_path)
    ledger, spill = tmp_path / "ledger.sqlite", tmp_path / "unsent.json"
    with SlowServer("slow", delay=2.0) as server:
        process = start(
            env, "backfill", *map(str, runs), "--ledger", str(ledger), "--spill", str(spill),
            "--endpoint", server.endpoint, "--timeout", "30",
        )  # fmt: skip
        # the first run accepted, the second on the wire
        wait_until(lambda: server.requests() >= 2 or process.poll() is not None, TIMEOUT, "the second run")
        code, seconds, stdout, stderr = stop_and_time(process, signal.SIGTERM)

    assert code == 143, stderr
    assert seconds < STOP_SECONDS
    lines = stdout.splitlines()
    assert [line.split("  ")[0].strip() for line in lines] == ["delivered", "stopped", "not attempted"], (
        stdout
    )
    assert f"stopped by SIGTERM after 0 of {RUN_SPANS} spans were delivered; " in lines[1]
    assert f"{RUN_SPANS} spans saved to {spill}" in lines[1]
    assert lines[2].endswith("run_results.json: stopped by SIGTERM")
    with sqlite3.connect(ledger) as db:
        recorded = [row[0] for row in db.execute("select run_results from delivered_runs")]
    assert recorded == [str(runs[0] / "run_results.json")]  # only the run delivered whole
    assert stderr.splitlines()[-1].startswith("3 runs: 1 delivered, 1 stopped, 1 not attempted")
    assert len(ids_in(spill)) == RUN_SPANS


def test_a_signal_stops_a_resend_and_the_file_keeps_the_rest(
    tmp_path: Path, env: dict[str, str], receiver: OtlpReceiver
) -> None:
    runs = three_runs(tmp_path)
    spill = tmp_path / "three.json"
    code, _, stderr = finish(start(env, "backfill", *map(str, runs), "--output", str(spill), "-q"))
    assert code == 0, stderr
    every = ids_in(spill)
    receiver.set_response_delay(1.0)
    process = start(env, "resend", str(spill), "--endpoint", receiver.http_base_endpoint, "--timeout", "30")
    wait_until(lambda: len(receiver.requests) >= 1 or process.poll() is not None, TIMEOUT, "a first answer")
    code, seconds, _, stderr = stop_and_time(process, signal.SIGTERM)

    assert code == 143, stderr
    assert seconds < STOP_SECONDS
    [line] = error_lines(stderr)
    delivered = len(received_ids(receiver))
    kept = ids_in(spill)
    assert line == (
        f"{PROG}: error: stopped by SIGTERM after {delivered} of {len(every)} spans were delivered; "
        f"{len(kept)} spans stay in {spill}"
    ) or len(kept) + delivered >= len(every), line
    assert set(kept) | received_ids(receiver) == set(every)
    assert 0 < len(kept) < len(every)
