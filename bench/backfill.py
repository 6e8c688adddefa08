"""Benchmark a backfill: 1,000 archived runs of the fixture project replayed by one command.

The archive is made from the repository's fixture run (``fixtures/artifacts/build``): each run is a
copy with its own invocation id and every timestamp shifted (one run every 6 hours from
2026-11-01), laid out in dated folders ``archive/YYYY/MM/DD/run-NNNN/``; every second run is
gzip-compressed (``run_results.json.gz`` and ``manifest.json.gz``).

The command is a template (``{root}``: the archive, ``{out}``: an output file, ``{endpoint}``: the
gRPC endpoint of an OTLP receiver started in this process when the template uses it), run once per
repeat in its own process; its wall time and peak RSS are measured and every span is checked:
the output file (or the receiver) must hold every span of every run, and one trace per run.

Usage::

    python -m bench.backfill [--runs 1000] [--repeat 1] [--data DIR] [--json FILE]
                             [--command 'dbt-otel-replay backfill --recursive {root} --output {out}']
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import gzip
import json
import random
import re
import shlex
import statistics
import sys
import tempfile
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench.measure import (
    REPO_ROOT,
    Measurement,
    count_otlp_json,
    count_requests,
    data_dir,
    exit_on_sigterm,
    load_average,
    machine,
    measure,
    replay_executable,
)

FIXTURE = REPO_ROOT / "fixtures" / "artifacts" / "build"
DEFAULT_COMMAND = "dbt-otel-replay backfill --recursive {root} --output {out}"
ARCHIVE_START = dt.datetime(2026, 11, 1, 1, 0, tzinfo=dt.timezone.utc)
RUN_EVERY = dt.timedelta(hours=6)
TIMEOUT_SECONDS = 3600.0
RECEIVER_MAX_BYTES = 64 * 1024 * 1024
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})?$")


class BackfillFailed(Exception):
    """The command is missing, failed, or did not deliver every span."""


def _parse(value: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def _shift(value: Any, delta: dt.timedelta) -> Any:
    """Every ISO timestamp string in ``value`` moved by ``delta``, in the format it was written in."""
    if isinstance(value, dict):
        return {k: _shift(v, delta) for k, v in value.items()}
    if isinstance(value, list):
        return [_shift(v, delta) for v in value]
    if isinstance(value, str) and _TIMESTAMP.match(value):
        moved = _parse(value) + delta
        if value.endswith("Z"):
            return moved.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        if value[-6] in "+-":
            return moved.isoformat()
        return moved.replace(tzinfo=None).isoformat()
    return value


def spans_per_run(run_results: dict[str, Any]) -> int:
    """The spans a replay makes of one run: invocation, one per result, one per timing entry."""
    results = run_results["results"]
    return 1 + len(results) + sum(len(r.get("timing") or []) for r in results)


def write_archive(root: Path, runs: int, *, seed: int = 0) -> Path:
    """Write ``runs`` copies of the fixture run below ``root``, half of them gzip-compressed.

    Returns:
        ``root``.
    """
    run_results = json.loads((FIXTURE / "run_results.json").read_text())
    manifest = json.loads((FIXTURE / "manifest.json").read_text())
    started = _parse(run_results["metadata"]["invocation_started_at"])
    rng = random.Random(seed)
    for number in range(1, runs + 1):
        start = ARCHIVE_START + (number - 1) * RUN_EVERY
        delta = start - started
        invocation_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        results = _shift(copy.deepcopy(run_results), delta)
        results["metadata"]["invocation_id"] = invocation_id
        run_manifest = dict(manifest)
        run_manifest["metadata"] = _shift(dict(manifest["metadata"]), delta)
        run_manifest["metadata"]["invocation_id"] = invocation_id
        folder = root / f"{start:%Y}" / f"{start:%m}" / f"{start:%d}" / f"run-{number:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        for name, document in (("run_results.json", results), ("manifest.json", run_manifest)):
            text = json.dumps(document).encode()
            if number % 2 == 0:
                (folder / f"{name}.gz").write_bytes(gzip.compress(text, compresslevel=6, mtime=0))
            else:
                (folder / name).write_bytes(text)
    return root


def command_line(template: str, root: Path, out: Path, endpoint: str | None) -> list[str]:
    """The template split like a shell would, with its placeholders filled in."""
    words = shlex.split(template)
    filled = [w.format(root=root, out=out, endpoint=endpoint or "") for w in words]
    if filled and filled[0] == "dbt-otel-replay":
        filled[0] = replay_executable()
    return filled


def _missing_cli(result: Measurement) -> str | None:
    """Why the command looks like a backfill CLI that does not exist (yet), or None."""
    text = result.stderr + result.stdout
    if result.returncode == 2 and ("No such option" in text or "no such option" in text):
        return "the backfill CLI does not exist yet: " + " ".join(text.strip().splitlines()[-2:])
    if result.returncode == 127 or "No such file or directory" in text:
        return "the command was not found: " + text.strip()[-300:]
    return None


def run_once(
    template: str, root: Path, work: Path, expected_spans: int, runs: int, receiver: Any
) -> Measurement:
    """Run the command once, verify every span of every run arrived, return the measurement."""
    out = work / "backfill.json"
    out.unlink(missing_ok=True)
    if receiver is not None:
        receiver.clear()
    command = command_line(template, root, out, receiver.grpc_endpoint if receiver is not None else None)
    result = measure(command, timeout=TIMEOUT_SECONDS)
    missing = _missing_cli(result)
    if missing:
        raise BackfillFailed(missing)
    if result.returncode != 0 or result.timed_out:
        tail = " | ".join(result.stderr.strip().splitlines()[-5:])
        raise BackfillFailed(
            f"exit code {result.returncode}{' (timed out)' if result.timed_out else ''}: {tail}"
        )
    if receiver is not None:
        spans, _, traces = count_requests(receiver.requests)
        receiver.clear()
    elif out.exists():
        spans, _, traces = count_otlp_json(out)
        out.unlink()
    else:
        raise BackfillFailed(f"nothing to verify: the command wrote no {out} and sent nothing to a receiver")
    if spans != expected_spans or traces != runs:
        raise BackfillFailed(
            f"{spans:,} spans in {traces:,} traces delivered; expected {expected_spans:,} in {runs:,}"
        )
    return result


def main(argv: list[str] | None = None) -> int:
    """Build the archive, run the backfill command, print the machine and one table; exit 1 on failure."""
    parser = argparse.ArgumentParser(prog="python -m bench.backfill", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1000, help="archived runs (default 1000)")
    parser.add_argument(
        "--command", default=DEFAULT_COMMAND, help=f"command template (default {DEFAULT_COMMAND!r})"
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs of the command; the median is reported")
    parser.add_argument("--data", type=Path, help="keep (and reuse) the archive in this directory")
    parser.add_argument("--json", type=Path, help="also write the measurements to this JSON file")
    args = parser.parse_args(argv)
    exit_on_sigterm()
    if args.runs < 1 or args.repeat < 1:
        parser.error("--runs and --repeat must be at least 1")
    command_text = "python -m bench.backfill " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)
    )
    info = machine()
    per_run = spans_per_run(json.loads((FIXTURE / "run_results.json").read_text()))
    expected = per_run * args.runs
    measurements: list[Measurement] = []
    failure: str | None = None
    with ExitStack() as stack, data_dir(args.data, "bench-backfill-") as data:
        root = data / f"archive-{args.runs}"
        if not (root / ".complete").exists():
            print(f"writing {args.runs:,} archived runs below {root} ...", file=sys.stderr, flush=True)
            write_archive(root, args.runs)
            (root / ".complete").write_text("")
        archive_mb = sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) / 1e6
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-backfill-work-")))
        receiver = None
        if "{endpoint}" in args.command:
            from tests.support.receiver import OtlpReceiver

            receiver = stack.enter_context(OtlpReceiver(max_receive_bytes=RECEIVER_MAX_BYTES))
        try:
            for repeat in range(1, args.repeat + 1):
                result = run_once(args.command, root, work, expected, args.runs, receiver)
                measurements.append(result)
                print(
                    f"backfill run {repeat}/{args.repeat}: "
                    f"{result.wall_seconds:.2f} s, {result.peak_rss_mb:,.0f} MB",
                    file=sys.stderr,
                    flush=True,
                )
        except BackfillFailed as error:
            failure = str(error)

    print(f"command: {command_text}")
    print(f"machine: {info['cpu']}, {info['cores']} cores, {info['memory']} RAM, {info['os']}")
    print(f"python: {info['python']}; dbt_otel_replay from {info['checkout']}, commit {info['commit']}")
    print(f"load average (1/5/15 min): {info['load_average']} at the start, {load_average()} at the end")
    print(f"packages: {info['packages']}")
    print(
        f"archive: {args.runs:,} copies of fixtures/artifacts/build ({per_run} spans each), "
        f"{args.runs // 2:,} gzip-compressed, {archive_mb:,.1f} MB on disk"
    )
    print(f"backfill command: {args.command}\n")
    print("| runs | wall s | runs/s | spans/s | peak RSS MB | delivered |")
    print("|---:|---:|---:|---:|---:|---|")
    if measurements and failure is None:
        wall = statistics.median(m.wall_seconds for m in measurements)
        rss = statistics.median(m.peak_rss_mb for m in measurements)
        print(
            f"| {args.runs:,} | {wall:.2f} | {args.runs / wall:,.1f} | {expected / wall:,.0f} | {rss:,.0f} | "
            f"{expected:,} / {expected:,} spans in {args.runs:,} traces |"
        )
    else:
        print(f"| {args.runs:,} | FAILED | | | | see below |")
        print(f"\nFAILED: {failure}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "command": command_text,
                    "backfill_command": args.command,
                    "machine": info,
                    "runs": args.runs,
                    "expected_spans": expected,
                    "failure": failure,
                    "measurements": [
                        {
                            "wall_seconds": m.wall_seconds,
                            "peak_rss_mb": m.peak_rss_mb,
                            "returncode": m.returncode,
                        }
                        for m in measurements
                    ],
                },
                indent=2,
            )
            + "\n"
        )
    return 1 if failure else 0


if __name__ == "__main__":
    sys.exit(main())
