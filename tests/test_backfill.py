"""Backfill: many archived runs, oldest first, each its own trace, with a ledger and bad runs skipped."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from dbt_otel_replay.cli import main
from dbt_otel_replay.progress import Progress
from tests.support.contract import copy_pair
from tests.support.receiver import OtlpReceiver

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "artifacts"
RUNS = ["build", "run", "test", "dbt-1.5/build", "dbt-1.8/build"]


def span_total(run: str) -> int:
    results = json.loads((FIXTURES / run / "run_results.json").read_text())["results"]
    return 1 + len(results) + sum(len(r["timing"]) for r in results)


SPANS = {run: span_total(run) for run in RUNS}


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    """An archive of runs in nested dated folders, half of them gzip-compressed, plus one corrupt run."""
    root = tmp_path / "archive"
    for index, run in enumerate(RUNS):
        folder = root / "2026" / f"{index + 1:02d}" / f"run-{index}"
        folder.mkdir(parents=True)
        for name in ("run_results.json", "manifest.json"):
            data = (FIXTURES / run / name).read_bytes()
            if index % 2:
                (folder / f"{name}.gz").write_bytes(gzip.compress(data))
            else:
                (folder / name).write_bytes(data)
    broken = root / "2026" / "broken"
    broken.mkdir()
    (broken / "run_results.json").write_text(
        '{"metadata": {"dbt_schema_version": "https://schemas.getdbt.com/dbt/ru'
    )
    return root


def run(*args: str) -> Result:
    """``dbt-otel-replay backfill ARGS``."""
    return CliRunner().invoke(
        main, ["backfill", *args], env={"TRACEPARENT": "", "OTEL_EXPORTER_OTLP_ENDPOINT": ""}
    )


def started(run_name: str) -> str:
    metadata = json.loads((FIXTURES / run_name / "run_results.json").read_text())["metadata"]
    return str(metadata.get("invocation_started_at") or metadata["generated_at"])


def test_recursive_backfill_sends_every_run_in_order_and_skips_the_bad_one(
    archive: Path, otlp_receiver: OtlpReceiver
) -> None:
    result = run("--recursive", str(archive), "--endpoint", otlp_receiver.grpc_endpoint, "--protocol", "grpc")
    assert result.exit_code == 1, result.stderr  # something was skipped
    lines = result.stdout.splitlines()
    assert (
        lines[0].startswith("skipped") and "broken/run_results.json" in lines[0] and "ends early" in lines[0]
    )
    delivered = [line for line in lines if line.startswith("delivered")]
    assert len(delivered) == len(RUNS)
    by_start = sorted(RUNS, key=started)
    expected_traces = [
        json.loads((FIXTURES / name / "run_results.json").read_text())["metadata"]["invocation_id"].replace(
            "-", ""
        )
        for name in by_start
    ]
    assert [line.split()[1] for line in delivered] == expected_traces, (
        "replayed in the order the runs happened"
    )
    assert otlp_receiver.span_count() == sum(SPANS.values())
    traces = {r.trace_id for r in otlp_receiver.spans()}
    assert traces == set(expected_traces), "each run is its own trace"
    assert f"{len(RUNS) + 1} runs: {len(RUNS)} delivered, 1 skipped" in result.stderr


def test_the_ledger_sends_only_what_is_new_and_force_resends(
    archive: Path, otlp_receiver: OtlpReceiver, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.sqlite"
    args = [
        "--recursive",
        str(archive),
        "--endpoint",
        otlp_receiver.http_base_endpoint,
        "--ledger",
        str(ledger),
    ]
    assert run(*args).exit_code == 1
    assert otlp_receiver.span_count() == sum(SPANS.values())

    again = run(*args)
    assert again.exit_code == 1  # the corrupt run is still skipped
    assert sum(line.startswith("already delivered") for line in again.stdout.splitlines()) == len(RUNS)
    assert otlp_receiver.span_count() == sum(SPANS.values()), "nothing was sent twice"

    extra = archive / "2026" / "12" / "new-run"
    copy_pair(FIXTURES / "dbt-1.7" / "build", extra)
    newer = run(*args)
    assert sum(line.startswith("delivered") for line in newer.stdout.splitlines()) == 1
    assert otlp_receiver.span_count() == sum(SPANS.values()) + span_total("dbt-1.7/build")

    forced = run(*args, "--force")
    assert sum(line.startswith("delivered") for line in forced.stdout.splitlines()) == len(RUNS) + 1


def test_the_ledger_is_updated_only_after_the_collector_accepted(
    archive: Path, otlp_receiver: OtlpReceiver, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.sqlite"
    args = [
        "--recursive",
        str(archive),
        "--endpoint",
        otlp_receiver.grpc_endpoint,
        "--protocol",
        "grpc",
        "--ledger",
        str(ledger),
        "--timeout",
        "0.5",
    ]
    otlp_receiver.fail_next(10_000)
    failed = run(*args)
    assert failed.exit_code == 3
    outcomes = [line.split("  ")[0].strip() for line in failed.stdout.splitlines()]
    assert outcomes == ["skipped", "failed"] + ["not attempted"] * (len(RUNS) - 1)
    assert "not in the ledger, so the next backfill sends this run again" in failed.stdout

    otlp_receiver.reset_faults()
    resumed = run(*args)
    assert sum(line.startswith("delivered") for line in resumed.stdout.splitlines()) == len(RUNS)
    assert otlp_receiver.span_count() == sum(SPANS.values())


def test_json_summary_is_stable(archive: Path, tmp_path: Path) -> None:
    result = run("--recursive", str(archive), "-o", str(tmp_path / "all.jsonl"), "--format", "json")
    assert result.exit_code == 1
    summary = json.loads(result.stdout)
    assert summary["version"] == 1
    assert set(summary["totals"]) == {
        "runs",
        "spans",
        "delivered",
        "written",
        "planned",
        "already_delivered",
        "claimed_elsewhere",
        "skipped",
        "failed",
        "stopped",
        "not_attempted",
        "exit_code",
    }
    assert summary["totals"]["written"] == len(RUNS) and summary["totals"]["spans"] == sum(SPANS.values())
    assert set(summary["runs"][0]) == {
        "run_results",
        "outcome",
        "trace_id",
        "command",
        "nodes",
        "spans",
        "message",
    }
    lines = (tmp_path / "all.jsonl").read_text().splitlines()
    traces = {json.loads(line)["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"] for line in lines}
    assert len(traces) == len(RUNS)


def test_dirs_given_one_by_one(tmp_path: Path) -> None:
    result = run(str(FIXTURES / "run"), str(FIXTURES / "test"), "--dry-run")
    assert result.exit_code == 0
    assert [line.split()[0] for line in result.stdout.splitlines()] == ["planned", "planned"]
    assert "\r" not in result.stderr, "no progress bar off a terminal"


@pytest.mark.parametrize("option", ["--traceparent", "--traceparent-from", "--traceparent-to", "--manifest"])
def test_single_run_options_are_not_backfill_options(archive: Path, option: str) -> None:
    result = run("--recursive", str(archive), "--dry-run", option, "x")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"dbt-otel-replay: error: No such option '{option}'")
    assert result.stderr.endswith(" (see 'dbt-otel-replay backfill --help')\n")


def test_a_backfill_needs_a_dir_or_a_root() -> None:
    result = run("--dry-run")
    assert (
        result.exit_code == 2 and result.stderr == "dbt-otel-replay: error: give a DIR or --recursive ROOT\n"
    )


def test_the_old_backfill_forms_name_the_backfill_command(tmp_path: Path) -> None:
    old = CliRunner().invoke(
        main, [str(FIXTURES / "run"), "--dry-run", "--ledger", str(tmp_path / "l.sqlite")]
    )
    assert old.exit_code == 2
    assert old.stderr == (
        "dbt-otel-replay: error: --ledger moved: use `dbt-otel-replay backfill DIR… --ledger FILE`\n"
    )
    assert not (tmp_path / "l.sqlite").exists()


def test_progress_bar_shows_runs_spans_rate_and_eta() -> None:
    ticks = iter([0.0, 2.0, 4.0])
    stream = io.StringIO()
    progress = Progress(4, stream, clock=lambda: next(ticks))
    progress.advance(1000)
    progress.advance(3000)
    progress.clear()
    assert stream.getvalue().endswith("\r\x1b[K"), "a run line can take the bar's place"
    progress.close()
    last = stream.getvalue().split("\r")[-2]  # the last drawing, before the clear
    assert "2/4 runs" in last and "4,000 spans" in last and "1,000 spans/s" in last and "eta 4s" in last


def test_a_skipped_runs_line_names_its_file_once_and_the_manifest_when_at_fault(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    copy_pair(FIXTURES / "build", root / "good")
    empty = json.loads((FIXTURES / "run" / "run_results.json").read_text())
    empty["results"] = []  # the header reads fine: the whole file is refused only when replayed
    copy_pair(FIXTURES / "run", root / "empty")
    (root / "empty" / "run_results.json").write_text(json.dumps(empty))
    copy_pair(FIXTURES / "test", root / "bad-manifest")
    (root / "bad-manifest" / "manifest.json").write_text('{"metadata": {')
    ancient = {"results": json.loads((FIXTURES / "run" / "run_results.json").read_text())["results"]}
    copy_pair(FIXTURES / "run", root / "ancient")
    (root / "ancient" / "run_results.json").write_text(json.dumps(ancient))  # dbt < 0.17: no metadata
    result = run("--recursive", str(root), "--dry-run")
    assert result.exit_code == 1
    lines = {line.split("/archive/")[1].split("/")[0]: line for line in result.stdout.splitlines()}
    assert lines["empty"].startswith("skipped")
    assert lines["empty"].endswith(
        f"{root / 'empty' / 'run_results.json'}: has no results: the dbt command selected no nodes"
    )
    assert lines["empty"].count("run_results.json") == 1, "the path is not repeated"
    assert lines["bad-manifest"].startswith("skipped")
    at_fault = f"{root / 'bad-manifest' / 'run_results.json'}: {root / 'bad-manifest' / 'manifest.json'}: "
    assert at_fault in lines["bad-manifest"], "the manifest at fault is named"
    assert lines["ancient"].endswith(
        f"{root / 'ancient' / 'run_results.json'}: written by dbt < 0.17 (no metadata), not supported"
    )
    assert lines["good"].startswith("planned")


@pytest.mark.parametrize("switch", [{"OTEL_SDK_DISABLED": "true"}, {"OTEL_TRACES_EXPORTER": "none"}])
def test_a_switched_off_exporter_lists_the_runs_and_sends_nothing(
    archive: Path, otlp_receiver: OtlpReceiver, tmp_path: Path, switch: dict[str, str]
) -> None:
    ledger = tmp_path / "ledger.sqlite"
    env = {"TRACEPARENT": "", "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_receiver.http_base_endpoint, **switch}
    result = CliRunner().invoke(
        main, ["backfill", "--recursive", str(archive), "--ledger", str(ledger)], env=env
    )
    assert result.exit_code == 1, result.output  # the corrupt run is still reported
    assert "not sent: the exporter is off" in result.stderr
    outcomes = [line.split("  ")[0].strip() for line in result.stdout.splitlines()]
    assert sorted(outcomes) == ["planned"] * len(RUNS) + ["skipped"]
    assert otlp_receiver.span_count() == 0 and not ledger.exists()


def test_the_console_exporter_writes_every_run_to_stdout(archive: Path, otlp_receiver: OtlpReceiver) -> None:
    env = {"TRACEPARENT": "", "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_receiver.http_base_endpoint}
    result = CliRunner().invoke(
        main, ["backfill", "--recursive", str(archive)], env={**env, "OTEL_TRACES_EXPORTER": "console"}
    )
    spans = [
        span
        for line in result.stdout.splitlines()
        for rs in json.loads(line)["resourceSpans"]
        for ss in rs["scopeSpans"]
        for span in ss["spans"]
    ]
    assert len(spans) == sum(SPANS.values()) and otlp_receiver.span_count() == 0
    assert "written" in result.stderr  # the run lines go to stderr when the trace takes stdout


def test_resend_with_the_exporter_off_keeps_the_file(tmp_path: Path) -> None:
    spill = tmp_path / "spill.json"
    written = CliRunner().invoke(
        main, [str(FIXTURES / "build"), "-o", str(spill), "--traceparent-to", str(tmp_path / "tp"), "-q"]
    )
    assert written.exit_code == 0, written.output
    before = spill.read_bytes()
    result = CliRunner().invoke(main, ["resend", str(spill)], env={"OTEL_SDK_DISABLED": "true"})
    assert result.exit_code == 2
    assert result.stderr.strip().endswith("the file is kept") and spill.read_bytes() == before
