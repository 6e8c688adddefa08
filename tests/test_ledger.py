"""Run identity and the backfill ledger: runs sharing an invocation id, old ledgers, concurrent backfills.

dbt's invocation id does not tell runs apart (dbt Fusion writes all-zero ids; three corpus
runs share one and collided on 65 span ids). A run's identity is its invocation id, when it
was written and a digest of run_results.json: the ledger is keyed by it and span ids derive
from it. Two backfills sharing a ledger take turns run by run (each claims a run before it
sends it), so each run reaches the collector once.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from dbt_otel_replay.artifacts import load_artifacts, read_run_header
from dbt_otel_replay.ledger import Claim, Ledger
from dbt_otel_replay.plan import plan_trace
from tests.support.cli import run_cli
from tests.support.contract import copy_pair
from tests.support.receiver import OtlpReceiver
from tests.support.slow_server import SlowServer

REPO = Path(__file__).resolve().parents[1]
BUILD = REPO / "fixtures" / "artifacts" / "build"
CORPUS = REPO.parent / "shared" / "corpus"
ZERO = "00000000-0000-0000-0000-000000000000"


def variant(tmp: Path, name: str, *, invocation_id: str | None = None, elapsed: float | None = None) -> Path:
    """A copy of the fixture build, optionally with another invocation id or elapsed time (another run)."""
    directory = copy_pair(BUILD, tmp / name)
    document = json.loads((directory / "run_results.json").read_text())
    if invocation_id is not None:
        document["metadata"]["invocation_id"] = invocation_id
        manifest = json.loads((directory / "manifest.json").read_text())
        manifest["metadata"]["invocation_id"] = invocation_id
        (directory / "manifest.json").write_text(json.dumps(manifest))
    if elapsed is not None:
        document["elapsed_time"] = elapsed
    (directory / "run_results.json").write_text(json.dumps(document))
    return directory


def span_ids(directory: Path) -> set[str]:
    return {span.span_id for span in plan_trace(load_artifacts(directory)).spans}


def outcomes(stdout: str) -> list[str]:
    return [line.split("  ")[0].strip() for line in stdout.splitlines()]


def test_runs_sharing_an_invocation_id_share_no_span_id(tmp_path: Path) -> None:
    first = variant(tmp_path, "first", elapsed=10.0)
    second = variant(tmp_path, "second", elapsed=11.0)
    assert (
        read_run_header(first / "run_results.json").identity
        != read_run_header(second / "run_results.json").identity
    )
    assert not span_ids(first) & span_ids(second)
    assert span_ids(first) == span_ids(variant(tmp_path, "again", elapsed=10.0))  # deterministic


def test_the_corpus_runs_sharing_one_invocation_id_no_longer_collide() -> None:
    names = [
        "OpenLineage__OpenLineage__integration_common_tests_dbt_large_target",
        "OpenLineage__OpenLineage__integration_common_tests_dbt_no_test_metadata_target",
        "OpenLineage__OpenLineage__integration_common_tests_dbt_no_test_metadata_target__h1",
    ]
    if not all((CORPUS / name).is_dir() for name in names):
        pytest.skip("the shared corpus is not beside the repository")
    plans = [plan_trace(load_artifacts(CORPUS / name)) for name in names]
    assert len({plan.trace_id for plan in plans}) == 1  # trace id = their (shared) invocation id
    every = [span.span_id for plan in plans for span in plan.spans]
    assert len(every) == len(set(every))


def test_a_gzip_copy_is_the_same_run(tmp_path: Path) -> None:
    plain = variant(tmp_path, "plain")
    packed = tmp_path / "packed"
    packed.mkdir()
    (packed / "run_results.json.gz").write_bytes(gzip.compress((plain / "run_results.json").read_bytes()))
    shutil.copy(plain / "manifest.json", packed / "manifest.json")
    assert (
        read_run_header(packed / "run_results.json.gz").identity
        == read_run_header(plain / "run_results.json").identity
    )
    assert span_ids(packed / "run_results.json.gz") == span_ids(plain)


def test_all_zero_invocation_ids_are_each_sent_once(tmp_path: Path, otlp_receiver: OtlpReceiver) -> None:
    """The issue: after a run with an all-zero id, later ones were "already delivered" and never sent."""
    runs = [variant(tmp_path, f"fusion{i}", invocation_id=ZERO, elapsed=float(i)) for i in range(3)]
    ledger = tmp_path / "ledger.sqlite"
    args = [
        "backfill",
        *map(str, runs),
        "--ledger",
        str(ledger),
        "--endpoint",
        otlp_receiver.http_base_endpoint,
    ]
    first = run_cli(*args)
    assert first.exit_code == 0, first.output
    assert outcomes(first.stdout) == ["delivered"] * 3
    received = [span.span_id for span in otlp_receiver.spans()]
    assert len(received) == len(set(received)) == sum(len(span_ids(run)) for run in runs)
    again = run_cli(*args)
    assert outcomes(again.stdout) == ["already delivered"] * 3
    assert len(otlp_receiver.spans()) == len(received)


def test_a_ledger_of_invocation_ids_still_skips_its_runs_and_only_those(
    tmp_path: Path, otlp_receiver: OtlpReceiver
) -> None:
    """A ledger written before identities: its rows hold the invocation id and the file's path."""
    old = variant(tmp_path, "old")
    other = variant(tmp_path, "other", elapsed=99.0)  # shares the invocation id, another file
    invocation = json.loads((old / "run_results.json").read_text())["metadata"]["invocation_id"]
    ledger = tmp_path / "ledger.sqlite"
    with closing(sqlite3.connect(ledger)) as db:
        db.execute(
            "create table delivered (invocation text primary key, trace_id text not null, "
            "run_results text not null, spans integer not null, endpoint text not null, "
            "delivered_at text not null default 'then')"
        )
        db.execute(
            "insert into delivered values (?, 'x', ?, 94, 'http://old', 'then')",
            (invocation, str(old / "run_results.json")),
        )
        db.commit()
    result = run_cli(
        "backfill",
        str(old),
        str(other),
        "--ledger",
        str(ledger),
        "--endpoint",
        otlp_receiver.http_base_endpoint,
    )
    assert result.exit_code == 0, result.output
    lines = {line.split("  ")[-1].split(":")[0]: outcomes(line)[0] for line in result.stdout.splitlines()}
    assert lines == {
        str(old / "run_results.json"): "already delivered",
        str(other / "run_results.json"): "delivered",
    }


def test_a_claim_holds_while_its_process_lives(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    with Ledger(path) as mine:
        assert mine.claim("run-a") is Claim.CLAIMED
        sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        try:
            with closing(sqlite3.connect(path)) as db:  # as another live backfill on this host would
                db.execute("insert into claims values ('run-b', ?, ?, 0)", (os.uname().nodename, sleeper.pid))
                db.commit()
            assert mine.claim("run-b") is Claim.ELSEWHERE
        finally:
            sleeper.kill()
            sleeper.wait()
        assert mine.claim("run-b") is Claim.CLAIMED  # its owner died: taken over
        mine.record("run-a", None, "t" * 32, tmp_path / "run_results.json", 1, "e")
        assert mine.claim("run-a") is Claim.DELIVERED
        assert mine.claim("run-a", force=True) is Claim.CLAIMED


def test_two_backfills_sharing_a_ledger_send_each_run_once(tmp_path: Path) -> None:
    """The issue: two concurrent backfills sharing one ledger both sent every run."""
    runs = [variant(tmp_path, f"run{i}", elapsed=float(i)) for i in range(6)]
    ledger = tmp_path / "ledger.sqlite"
    env = {**os.environ, "TRACEPARENT": "", "TRACESTATE": "", "OTEL_EXPORTER_OTLP_PROTOCOL": ""}
    with SlowServer("slow", delay=0.5) as server:
        argv = [sys.executable, "-m", "dbt_otel_replay", "backfill", *map(str, runs), "--ledger", str(ledger)]
        argv += ["--endpoint", server.endpoint, "-q"]
        processes = [
            subprocess.Popen(
                argv, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            for _ in range(2)
        ]
        results = [process.communicate(timeout=120) for process in processes]
        received = server.span_ids()
    assert all(process.returncode == 0 for process in processes), results
    expected = set().union(*(span_ids(run) for run in runs))
    assert len(received) == len(set(received)) == len(expected)  # every span once, none twice
    assert set(received) == expected
    per_run: dict[str, list[str]] = {}
    for stdout, _ in results:
        for line in stdout.splitlines():
            per_run.setdefault(line.split("  ")[-1], []).append(outcomes(line)[0])
    assert len(per_run) == len(runs)
    for seen in per_run.values():
        assert sorted(seen) in (
            ["claimed elsewhere", "delivered"],
            ["already delivered", "delivered"],
        ), per_run
    with closing(sqlite3.connect(ledger)) as db:
        assert db.execute("select count(*) from delivered_runs").fetchone()[0] == len(runs)
        assert db.execute("select count(*) from claims").fetchone()[0] == 0
