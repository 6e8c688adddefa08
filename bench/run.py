"""Benchmark the replay of large dbt runs: one markdown table of wall time, peak RSS and spans/s.

Cases, each run in its own process (wall time and that process's peak RSS are measured):

(a) floor: ``bench/floor.py`` decodes only the needed fields with msgspec and builds the OTLP
    protobuf requests directly: the least work any replay must do.
(b) ``dbt-otel-replay DIR --output FILE`` (OTLP/JSON lines).
(c) ``dbt-otel-replay DIR --endpoint <receiver> --protocol grpc``: a real OTLP/gRPC receiver
    running in this benchmark process (64 MiB message limit); the replay process is measured.
(d) the same, through the rotel collector relaying to that receiver.
(e) OpenLineage's dbt artifact processor (``bench/openlineage_case.py``) on the same artifacts,
    serializing its events to a file and sending nothing.

Every case is checked: every span must arrive (counted, with distinct span ids, in the output file
or at the receiver; for (e) the number of OpenLineage events the processor must emit for the run),
else the case is reported FAILED and the command exits 1.

Usage::

    python -m bench.run [--nodes 1000,10000,50000] [--repeat 3] [--cases a,b,c,d,e] [--json FILE]
                        [--data DIR] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.generate import summarize
from bench.measure import (
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

CASES = {
    "a": "(a) floor: msgspec + protobuf",
    "b": "(b) dbt-otel-replay --output",
    "c": "(c) dbt-otel-replay → OTLP/gRPC",
    "d": "(d) dbt-otel-replay → rotel → OTLP",
    "e": "(e) OpenLineage dbt processor",
}
RECEIVER_MAX_BYTES = 64 * 1024 * 1024
TIMEOUT_SECONDS = 3600.0


class CaseFailed(Exception):
    """A case did not deliver what it must (or did not run)."""


@dataclass
class Size:
    """One generated run."""

    nodes: int
    directory: Path
    results: int
    spans: int
    statuses: dict[str, int]
    manifest_mb: float
    run_results_mb: float
    openlineage_events: int = 0


@dataclass
class Run:
    """One measured run of one case."""

    nodes: int
    case: str
    repeat: int
    wall_seconds: float
    peak_rss_mb: float
    delivered: int
    expected: int
    unit: str
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Row:
    """The median of a case's runs at one size, or why it failed."""

    nodes: int
    case: str
    wall_seconds: float | None
    peak_rss_mb: float | None
    spans_per_second: float | None
    delivered: int
    expected: int
    unit: str
    error: str | None = None


# --------------------------------------------------------------------------- #
# Counting what arrived
# --------------------------------------------------------------------------- #


def _json_loads() -> Callable[[bytes], Any]:
    return json.loads if msgspec is None else msgspec.json.decode


def expected_openlineage_events(directory: Path) -> int:
    """How many events OpenLineage's dbt processor must emit for a `dbt build` run.

    START plus COMPLETE or FAIL for every executed (not skipped) model, source or snapshot result;
    START plus COMPLETE or FAIL for every model or source that a test result asserts on (its last
    model/source/seed parent); and for each singular test (no ``test_metadata``) two more.
    """
    loads = _json_loads()
    results = loads((directory / "run_results.json").read_bytes())["results"]
    manifest = _decode_manifest_maps(directory / "manifest.json")
    parent_map: dict[str, list[str]] = manifest["parent_map"]
    singular: set[str] = manifest["singular_tests"]
    events = 0
    asserted: set[str] = set()
    for result in results:
        uid = result["unique_id"]
        if uid.startswith(("model.", "source.", "snapshot.")) and result["status"] != "skipped":
            events += 2
        if uid.startswith("test."):
            target = None
            for parent in parent_map.get(uid, []):
                if parent.startswith(("model.", "source.", "seed.")):
                    target = parent
            if target is not None and target.startswith(("model.", "source.")):
                asserted.add(target)
            if uid in singular:
                events += 2
    return events + 2 * len(asserted)


try:
    import msgspec
except ImportError:  # pragma: no cover - only the floor needs msgspec
    msgspec = None  # type: ignore[assignment]
else:

    class _NodeTestMetadata(msgspec.Struct):
        test_metadata: dict[str, Any] | None = None

    class _ManifestMaps(msgspec.Struct):
        nodes: dict[str, _NodeTestMetadata] = msgspec.field(default_factory=dict)
        parent_map: dict[str, list[str]] = msgspec.field(default_factory=dict)


def _decode_manifest_maps(path: Path) -> dict[str, Any]:
    """The manifest's ``parent_map`` and its singular tests (with msgspec if it is installed)."""
    if msgspec is None:  # pragma: no cover
        document = json.loads(path.read_bytes())
        return {
            "parent_map": document.get("parent_map", {}),
            "singular_tests": {
                uid
                for uid, n in document["nodes"].items()
                if uid.startswith("test.") and not n.get("test_metadata")
            },
        }
    maps = msgspec.json.decode(path.read_bytes(), type=_ManifestMaps)
    return {
        "parent_map": maps.parent_map,
        "singular_tests": {
            uid for uid, node in maps.nodes.items() if uid.startswith("test.") and node.test_metadata is None
        },
    }


# --------------------------------------------------------------------------- #
# Cases
# --------------------------------------------------------------------------- #


def _check(result: Measurement, what: str) -> None:
    if result.timed_out:
        raise CaseFailed(f"{what}: killed after {TIMEOUT_SECONDS:.0f} s")
    if result.returncode != 0:
        tail = (result.stderr.strip().splitlines() or ["(no output)"])[-5:]
        raise CaseFailed(f"{what}: exit code {result.returncode}: " + " | ".join(tail))


def _verify(nodes: int, case: str, delivered: int, distinct: int, expected: int, unit: str) -> None:
    if delivered != expected or distinct != expected:
        raise CaseFailed(
            f"({case}) at {nodes} nodes: {delivered} {unit} delivered ({distinct} distinct), "
            f"expected {expected}"
        )


class Bench:
    """Runs the cases; owns the receiver (and rotel) living in this process."""

    def __init__(self, work: Path, stack: ExitStack) -> None:
        self.work = work
        self.stack = stack
        self._receiver: Any = None

    def receiver(self) -> Any:
        """The in-process OTLP receiver (started on first use)."""
        if self._receiver is None:
            from tests.support.receiver import OtlpReceiver

            self._receiver = self.stack.enter_context(OtlpReceiver(max_receive_bytes=RECEIVER_MAX_BYTES))
        return self._receiver

    def run(self, case: str, size: Size, repeat: int) -> Run:
        """Run one case once at one size, verify it, return the measurement."""
        return {
            "a": self.floor,
            "b": self.to_file,
            "c": self.direct,
            "d": self.via_rotel,
            "e": self.openlineage,
        }[case](size, repeat)

    def floor(self, size: Size, repeat: int) -> Run:
        from bench.floor import read_requests

        out = self.work / "floor.bin"
        result = measure(
            [sys.executable, "-m", "bench.floor", str(size.directory), str(out)], timeout=TIMEOUT_SECONDS
        )
        _check(result, "(a) bench.floor")
        delivered, distinct, _ = count_requests(read_requests(out))
        out.unlink()
        _verify(size.nodes, "a", delivered, distinct, size.spans, "spans")
        return Run(
            size.nodes, "a", repeat, result.wall_seconds, result.peak_rss_mb, delivered, size.spans, "spans"
        )

    def _replay(self, size: Size, *args: str) -> Measurement:
        command = [
            replay_executable(), str(size.directory), *args,
            "--traceparent-to", str(self.work / "traceparent"), "--spill", str(self.work / "spill.json"),
        ]  # fmt: skip
        return measure(command, timeout=TIMEOUT_SECONDS)

    def to_file(self, size: Size, repeat: int) -> Run:
        out = self.work / "trace.json"
        result = self._replay(size, "--output", str(out))
        _check(result, "(b) dbt-otel-replay --output")
        delivered, distinct, _ = count_otlp_json(out)
        out.unlink()
        _verify(size.nodes, "b", delivered, distinct, size.spans, "spans")
        return Run(
            size.nodes, "b", repeat, result.wall_seconds, result.peak_rss_mb, delivered, size.spans, "spans"
        )

    def direct(self, size: Size, repeat: int) -> Run:
        receiver = self.receiver()
        receiver.clear()
        result = self._replay(size, "--endpoint", receiver.grpc_endpoint, "--protocol", "grpc")
        _check(result, "(c) dbt-otel-replay --endpoint (gRPC receiver)")
        requests = receiver.requests
        delivered, distinct, _ = count_requests(requests)
        receiver.clear()
        _verify(size.nodes, "c", delivered, distinct, size.spans, "spans")
        return Run(
            size.nodes, "c", repeat, result.wall_seconds, result.peak_rss_mb, delivered, size.spans, "spans",
            {"requests": len(requests)},
        )  # fmt: skip

    def via_rotel(self, size: Size, repeat: int) -> Run:
        from tests.support.collector import RotelCollector

        receiver = self.receiver()
        receiver.clear()
        with RotelCollector(receiver.grpc_endpoint) as collector:
            began = time.perf_counter()
            result = self._replay(size, "--endpoint", collector.grpc_endpoint, "--protocol", "grpc")
            _check(result, "(d) dbt-otel-replay --endpoint (rotel)")
            deadline = time.monotonic() + 60 + size.spans / 2000
            delivered, distinct, _ = count_requests(receiver.requests)
            while delivered < size.spans and time.monotonic() < deadline:
                time.sleep(0.1)
                delivered, distinct, _ = count_requests(receiver.requests)
            delivered_after = time.perf_counter() - began
            time.sleep(0.5)  # anything more (duplicates) would arrive now
            delivered, distinct, _ = count_requests(receiver.requests)
        receiver.clear()
        _verify(size.nodes, "d", delivered, distinct, size.spans, "spans")
        return Run(
            size.nodes, "d", repeat, result.wall_seconds, result.peak_rss_mb, delivered, size.spans, "spans",
            {"all_spans_at_receiver_after_seconds": round(delivered_after, 3)},
        )  # fmt: skip

    def openlineage(self, size: Size, repeat: int) -> Run:
        out = self.work / "openlineage.jsonl"
        command = [sys.executable, "-m", "bench.openlineage_case", str(size.directory), str(out)]
        result = measure(command, timeout=TIMEOUT_SECONDS)
        _check(result, "(e) OpenLineage DbtLocalArtifactProcessor")
        with out.open("rb") as handle:
            delivered = sum(1 for line in handle if line.strip())
        out.unlink()
        _verify(size.nodes, "e", delivered, delivered, size.openlineage_events, "events")
        return Run(
            size.nodes, "e", repeat, result.wall_seconds, result.peak_rss_mb, delivered,
            size.openlineage_events, "events",
        )  # fmt: skip


# --------------------------------------------------------------------------- #
# Table
# --------------------------------------------------------------------------- #


def _ratio(value: float | None, base: float | None) -> str:
    if value is None or base is None or base <= 0:
        return "-"
    return f"{value / base:.2f}x"


def render_table(rows: list[Row], sizes: dict[int, Size]) -> str:
    """The markdown table: one row per size and case; ratios are wall time over (a)'s and (e)'s."""
    lines = [
        "| nodes | case | wall s | peak RSS MB | spans/s | ratio vs (a) | ratio vs (e) | delivered |",
        "|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    by_key = {(r.nodes, r.case): r for r in rows}
    for row in rows:
        base_a = by_key.get((row.nodes, "a"))
        base_e = by_key.get((row.nodes, "e"))
        if row.error is not None or row.wall_seconds is None:
            lines.append(f"| {row.nodes:,} | {CASES[row.case]} | FAILED | | | | | see below |")
            continue
        if row.unit == "events":
            delivered = f"{row.delivered:,} events (all)"
        else:
            delivered = f"{row.delivered:,} / {row.expected:,} spans"
        vs_a = _ratio(row.wall_seconds, base_a.wall_seconds if base_a else None)
        vs_e = _ratio(row.wall_seconds, base_e.wall_seconds if base_e else None)
        lines.append(
            f"| {row.nodes:,} | {CASES[row.case]} | {row.wall_seconds:.2f} | {row.peak_rss_mb:,.0f} | "
            f"{row.spans_per_second:,.0f} | {vs_a} | {vs_e} | {delivered} |"
        )
    return "\n".join(lines)


def _median_row(runs: list[Run], size: Size) -> Row:
    wall = statistics.median(r.wall_seconds for r in runs)
    first = runs[0]
    return Row(
        nodes=first.nodes,
        case=first.case,
        wall_seconds=wall,
        peak_rss_mb=statistics.median(r.peak_rss_mb for r in runs),
        spans_per_second=size.spans / wall,
        delivered=first.delivered,
        expected=first.expected,
        unit=first.unit,
    )


# --------------------------------------------------------------------------- #
# Main
# --------------------------------------------------------------------------- #


def prepare(nodes: int, data: Path, seed: int, with_openlineage: bool) -> Size:
    """Generate (or reuse) the artifacts of a ``nodes``-model run; count what a replay must deliver."""
    directory = data / f"nodes-{nodes}-seed-{seed}"
    marker = directory / ".complete"
    if not marker.exists():
        print(f"generating {nodes:,} models into {directory} ...", file=sys.stderr, flush=True)
        result = measure(
            [
                sys.executable,
                "-m",
                "bench.generate",
                "--nodes",
                str(nodes),
                "--out",
                str(directory),
                "--seed",
                str(seed),
            ],
            timeout=TIMEOUT_SECONDS,
        )
        _check(result, "bench.generate")
        marker.write_text("")
    summary = summarize(directory)
    size = Size(
        nodes=nodes,
        directory=directory,
        results=summary.results,
        spans=summary.spans,
        statuses=summary.statuses,
        manifest_mb=(directory / "manifest.json").stat().st_size / 1e6,
        run_results_mb=(directory / "run_results.json").stat().st_size / 1e6,
    )
    if with_openlineage:
        size.openlineage_events = expected_openlineage_events(directory)
    return size


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--nodes", default="1000,10000", help="comma-separated sizes in models (default 1000,10000)"
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs per case and size; the median is reported"
    )
    parser.add_argument("--cases", default="a,b,c,d,e", help="comma-separated cases among a,b,c,d,e")
    parser.add_argument("--json", type=Path, help="also write every measurement to this JSON file")
    parser.add_argument(
        "--data", type=Path, help="keep (and reuse) the generated artifacts in this directory"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated projects")
    args = parser.parse_args(argv)
    args.sizes = [int(n.replace("_", "")) for n in args.nodes.split(",") if n.strip()]
    args.case_list = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in args.case_list if c not in CASES]
    if unknown or not args.case_list:
        parser.error(f"unknown case(s) {unknown}; choose among {','.join(CASES)}")
    if args.repeat < 1 or not args.sizes or min(args.sizes) < 1:
        parser.error("--repeat and every --nodes size must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the machine, the sizes and the table; exit 1 if any case failed."""
    args = parse_args(argv)
    exit_on_sigterm()
    command = "python -m bench.run " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)
    )
    info = machine()
    sizes: dict[int, Size] = {}
    runs: list[Run] = []
    rows: list[Row] = []
    failures: list[str] = []
    with ExitStack() as stack, data_dir(args.data, "bench-data-") as data:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-work-")))
        bench = Bench(work, stack)
        for nodes in args.sizes:
            size = sizes[nodes] = prepare(nodes, data, args.seed, "e" in args.case_list)
            for case in args.case_list:
                case_runs: list[Run] = []
                try:
                    for repeat in range(1, args.repeat + 1):
                        run = bench.run(case, size, repeat)
                        case_runs.append(run)
                        print(
                            f"[{nodes:,} nodes] {CASES[case]} run {repeat}/{args.repeat}: "
                            f"{run.wall_seconds:.2f} s, {run.peak_rss_mb:,.0f} MB, "
                            f"{run.delivered:,} {run.unit}",
                            file=sys.stderr,
                            flush=True,
                        )
                except CaseFailed as error:
                    failures.append(str(error))
                    print(f"[{nodes:,} nodes] {CASES[case]} FAILED: {error}", file=sys.stderr, flush=True)
                    rows.append(Row(nodes, case, None, None, None, 0, 0, "", str(error)))
                    runs.extend(case_runs)
                    continue
                runs.extend(case_runs)
                rows.append(_median_row(case_runs, size))

    print(f"command: {command}")
    print(f"machine: {info['cpu']}, {info['cores']} cores, {info['memory']} RAM, {info['os']}")
    print(f"python: {info['python']}; dbt_otel_replay from {info['checkout']}, commit {info['commit']}")
    print(f"load average (1/5/15 min): {info['load_average']} at the start, {load_average()} at the end")
    print(f"packages: {info['packages']}")
    for size in sizes.values():
        statuses = ", ".join(f"{count:,} {status}" for status, count in size.statuses.items())
        print(
            f"{size.nodes:,} models: {size.results:,} results ({statuses}), {size.spans:,} spans; "
            f"manifest.json {size.manifest_mb:,.1f} MB, run_results.json {size.run_results_mb:,.1f} MB"
            + (
                f"; OpenLineage must emit {size.openlineage_events:,} events"
                if size.openlineage_events
                else ""
            )
        )
    print(f"median of {args.repeat} run(s); ratio = wall time / wall time of (a) or (e) at the same size\n")
    print(render_table(rows, sizes))
    for failure in failures:
        print(f"\nFAILED: {failure}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "command": command,
                    "machine": info,
                    "sizes": {
                        str(n): {k: str(v) if isinstance(v, Path) else v for k, v in asdict(s).items()}
                        for n, s in sizes.items()
                    },
                    "rows": [asdict(r) for r in rows],
                    "runs": [asdict(r) for r in runs],
                },
                indent=2,
            )
            + "\n"
        )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
