"""Inputs that are not regular files: refused from their metadata, with one line, never opened.

Opening a FIFO for reading blocks until something writes to it, so each read here
runs in a thread with a deadline: past it, the test writes nothing into the FIFO
(opening it for writing and closing it ends the read with EOF) and fails, instead
of hanging the suite. The CLI cases run in a subprocess with a timeout.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from dbt_otel_replay.artifacts import load_artifacts, read_run_header
from dbt_otel_replay.errors import ArtifactError
from dbt_otel_replay.plan import plan_trace

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "artifacts" / "build"
DEADLINE = 10.0
T = TypeVar("T")


def _release(fifo: Path) -> None:
    """End a read blocked on the FIFO: a writer that opens and closes it gives the reader EOF."""
    for _ in range(50):
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            return
        except OSError as exc:
            if exc.errno != errno.ENXIO:  # ENXIO: no reader (yet)
                return
            time.sleep(0.02)


def within_deadline(call: Callable[[], T], fifos: list[Path]) -> T:
    """``call()``, failing the test (after unblocking it) when it does not return within the deadline."""
    values: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            values.append(call())
        except BaseException as exc:  # handed to the test below
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(DEADLINE)
    if thread.is_alive():
        for fifo in fifos:
            _release(fifo)
        thread.join(DEADLINE)
        pytest.fail(f"blocked on a FIFO for {DEADLINE:.0f}s instead of refusing it")
    if errors:
        raise errors[0]
    return values[0]


def refusal(call: Callable[[], object], fifos: list[Path]) -> str:
    """The ArtifactError message ``call`` raises, within the deadline."""
    with pytest.raises(ArtifactError) as caught:
        within_deadline(call, fifos)
    return str(caught.value)


def pair(directory: Path, **fifo: bool) -> Path:
    """The fixture build in ``directory``, each name in ``fifo`` (run_results, manifest) a FIFO instead."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("run_results", "manifest"):
        path = directory / f"{name}.json"
        if fifo.get(name):
            os.mkfifo(path)
        else:
            shutil.copy(FIXTURE / path.name, path)
    return directory


def test_a_fifo_as_run_results_json_is_refused(tmp_path: Path) -> None:
    fifo = pair(tmp_path, run_results=True) / "run_results.json"
    expected = f"{fifo}: is not a regular file (a FIFO)"
    assert refusal(lambda: load_artifacts(tmp_path), [fifo]) == expected
    assert refusal(lambda: load_artifacts(fifo), [fifo]) == expected, (
        "named itself, not taken for a directory"
    )
    assert refusal(lambda: read_run_header(fifo), [fifo]) == expected


def test_a_fifo_as_manifest_json_is_refused(tmp_path: Path) -> None:
    fifo = pair(tmp_path, manifest=True) / "manifest.json"
    expected = f"{fifo}: is not a regular file (a FIFO)"
    assert refusal(lambda: load_artifacts(tmp_path), [fifo]) == expected
    beside = pair(tmp_path / "other")
    assert refusal(lambda: load_artifacts(beside, fifo), [fifo]) == expected, "--manifest FIFO"


def test_a_symlink_to_a_fifo_is_refused_and_one_to_a_regular_file_is_fine(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "run_results.json").symlink_to(FIXTURE / "run_results.json")
    (linked / "manifest.json").symlink_to(fifo)
    assert refusal(lambda: load_artifacts(linked), [fifo]).endswith(": is not a regular file (a FIFO)")
    (linked / "manifest.json").unlink()
    (linked / "manifest.json").symlink_to(FIXTURE / "manifest.json")
    replayed = within_deadline(lambda: plan_trace(load_artifacts(linked)), [])
    assert [s.span_id for s in replayed.spans] == [
        s.span_id for s in plan_trace(load_artifacts(FIXTURE)).spans
    ]


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory with a short path: a Unix socket's path must fit in about 100 bytes."""
    with tempfile.TemporaryDirectory(prefix="dor-") as directory:
        yield Path(directory)


def test_a_socket_and_a_device_are_refused(short_dir: Path) -> None:
    pair(short_dir, manifest=False)
    (short_dir / "manifest.json").unlink()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(short_dir / "manifest.json"))
        message = refusal(lambda: load_artifacts(short_dir), [])
    assert message == f"{short_dir / 'manifest.json'}: is not a regular file (a socket)"
    (short_dir / "manifest.json").unlink()
    # a symlink to the null device: only looked at (stat), never opened
    (short_dir / "manifest.json").symlink_to(os.devnull)
    message = refusal(lambda: load_artifacts(short_dir), [])
    assert message == f"{short_dir / 'manifest.json'}: is not a regular file (a character device)"


def test_a_directory_is_still_called_a_directory(tmp_path: Path) -> None:
    (tmp_path / "run_results.json").mkdir()
    message = refusal(lambda: load_artifacts(tmp_path), [])
    assert message == f"{tmp_path / 'run_results.json'}: is a directory, not a dbt artifact"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The command line in its own process, killed if it blocks."""
    env = {**os.environ, "TRACEPARENT": "", "OTEL_EXPORTER_OTLP_ENDPOINT": ""}
    return subprocess.run(
        [sys.executable, "-m", "dbt_otel_replay", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_the_command_line_says_it_in_one_line_and_exits_1(tmp_path: Path) -> None:
    fifo = pair(tmp_path, run_results=True) / "run_results.json"
    done = _cli(str(tmp_path), "--dry-run")
    assert done.returncode == 1
    assert done.stderr.splitlines() == [f"dbt-otel-replay: error: {fifo}: is not a regular file (a FIFO)"]


def test_a_backfill_skips_a_fifo_and_replays_the_rest(tmp_path: Path) -> None:
    pair(tmp_path / "archive" / "good")
    fifo = pair(tmp_path / "archive" / "pipe", run_results=True) / "run_results.json"
    done = _cli("backfill", "--recursive", str(tmp_path / "archive"), "--dry-run")
    assert done.returncode == 1, done.stderr
    skipped = [line for line in done.stdout.splitlines() if line.startswith("skipped")]
    assert len(skipped) == 1 and skipped[0].endswith(f"{fifo}: is not a regular file (a FIFO)")
    assert sum(line.startswith("planned") for line in done.stdout.splitlines()) == 1
