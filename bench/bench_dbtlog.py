"""Benchmark dbt_otel_replay.dbtlog.read_invocation on a large text dbt.log against a plain line count.

Generates (once per size, into ``--data`` or a temporary directory) a dbt 1.11-style debug log:
``--invocations`` invocations appended to one file, each under its own UTC offset, the target one
in the middle (under +05:30, starting at 23:55 local so that it crosses midnight), every node
logging what dbt-postgres logs for a table model (node and connection lines, BEGIN, a multi-line
CREATE TABLE AS with dbt's query comment, two ALTERs, the COMMIT notice and COMMIT, a DROP, each
answered by its ``SQL status`` line). About 1 KB of log per statement: ``--mb 1000`` is about a
million statements.

Then, each in its own process (bench/measure.py: wall time and that process's own peak RSS), the two
alternated ``--repeat`` times:

- the floor: ``sum(1 for _ in open(path, 'rb'))``, a plain Python line count of the same file;
- ``read_invocation`` for the target invocation (node times as run_results.json would give them).

Usage::

    python -m bench.bench_dbtlog --mb 1000 [--invocations 5] [--repeat 3] [--data DIR]
    python -m bench.bench_dbtlog --mb 5            # a quick smoke run

Prints the machine, the file, one markdown table and whether the parser is within 3x the floor.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.measure import Measurement

DAY_US = 86_400_000_000
NODES_PER_THREAD_ROUND = 4
STATEMENTS_PER_NODE = 6
ZONES_MINUTES = (-300, 60, 330, -480, 540, -180, 600)
"""UTC offsets of the invocations, in order; the target (the middle one) gets +05:30."""
TARGET_ZONE_MINUTES = 330
_FILLER_COLUMNS = 48


def _stamp(local_us: int) -> str:
    local_us %= DAY_US
    seconds, micros = divmod(local_us, 1_000_000)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    return f"\x1b[0m{hour:02d}:{minute:02d}:{second:02d}.{micros:06d}"


def _node_lines(node: str, name: str, thread: str, clock: list[int], index: int, total: int) -> list[str]:
    """One table model's lines; ``clock`` is [local microseconds] and advances."""
    out: list[str] = []

    def line(level: str, message: str, step: int = 150) -> None:
        clock[0] += step
        out.append(f"{_stamp(clock[0])} [{level}] [{thread}]: {message}\n")

    comment = (
        '/* {"app": "dbt", "dbt_version": "1.11.16", "profile_name": "bench", "target_name": "ci", '
        f'"node_id": "{node}"}} */'
    )
    relation = f'"bench"."analytics"."{name}"'
    columns = ",\n".join(
        f"        cast(src.column_{c} as varchar) as {name}_column_{c}" for c in range(_FILLER_COLUMNS)
    )
    line("debug", f"Began running node {node}")
    line("info ", f"{index} of {total} START sql table model analytics.{name} {'.' * 30} [RUN]")
    line("debug", f"Re-using an available connection from the pool (formerly list_bench, now {node})")
    line("debug", f"Began compiling node {node}")
    line("debug", f'Writing injected SQL for node "{node}"')
    line("debug", f"Began executing node {node}")
    line("debug", f'Writing runtime sql for node "{node}"')
    line("debug", f'Using postgres connection "{node}"')
    line("debug", f"On {node}: BEGIN")
    line("debug", "Opening a new connection, currently in state closed")
    line("debug", "SQL status: BEGIN in 0.001 seconds", 1000)
    line("debug", f'Using postgres connection "{node}"')
    line(
        "debug",
        f"On {node}: {comment}\n\n  \n    \n\n"
        f'  create  table {relation[:-1]}__dbt_tmp"\n  \n  \n    as\n  \n  (\n'
        f'    with src as (\n        select * from "bench"."raw"."{name}_source"\n    )\n'
        f"    select\n{columns}\n    from src\n    where src.loaded_at > now() - interval '7 days'\n  );\n  ",
    )
    line("debug", "SQL status: SELECT 1234 in 0.052 seconds", 52_000)
    line("debug", f'Using postgres connection "{node}"')
    line("debug", f'On {node}: {comment}\nalter table {relation} rename to "{name}__dbt_backup"')
    line("debug", "SQL status: ALTER TABLE in 0.002 seconds", 2000)
    line("debug", f'Using postgres connection "{node}"')
    line("debug", f'On {node}: {comment}\nalter table {relation[:-1]}__dbt_tmp" rename to "{name}"')
    line("debug", "SQL status: ALTER TABLE in 0.002 seconds", 2000)
    line("debug", f"On {node}: COMMIT")
    line("debug", f'Using postgres connection "{node}"')
    line("debug", f"On {node}: COMMIT")
    line("debug", "SQL status: COMMIT in 0.004 seconds", 4000)
    line("debug", f'Using postgres connection "{node}"')
    line("debug", f'On {node}: {comment}\ndrop table if exists {relation[:-1]}__dbt_backup" cascade')
    line("debug", "SQL status: DROP TABLE in 0.003 seconds", 3000)
    line("debug", f"On {node}: Close")
    line(
        "info ",
        f"{index} of {total} OK created sql table model analytics.{name} {'.' * 30} [SELECT 1234 in 0.07s]",
    )
    line("debug", f"Finished running node {node}")
    return out


def generate(
    directory: Path, megabytes: float, invocations: int, target_statements: int | None = None
) -> dict[str, object]:
    """Write ``directory/logs/dbt.log`` and ``directory/case.json`` (the target and its node times).

    The target invocation has an equal share of the statements, or ``target_statements``.
    """
    logs = directory / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    path = logs / "dbt.log"
    node_bytes = sum(
        len(s.encode()) for s in _node_lines("model.bench.m_000000", "m_000000", "Thread-1 (", [0], 1, 1)
    )
    nodes_total = max(invocations, int(megabytes * 1_000_000 / node_bytes))
    per_invocation = max(1, nodes_total // invocations)
    target_nodes = per_invocation
    if target_statements is not None:
        target_nodes = max(1, target_statements // STATEMENTS_PER_NODE)
        per_invocation = max(1, (nodes_total - target_nodes) // max(1, invocations - 1))
    target_index = invocations // 2
    statements_total = 0
    utc_us = 1_735_000_000 * 1_000_000  # 2024-12-24, the first invocation's start
    case: dict[str, object] = {}
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        for number in range(invocations):
            offset_minutes = TARGET_ZONE_MINUTES if number == target_index else ZONES_MINUTES[number % 7]
            offset_us = offset_minutes * 60_000_000
            if number == target_index:  # start at 23:55 local: the invocation crosses midnight
                local_day = (utc_us + offset_us) // DAY_US
                utc_us = (local_day + 1) * DAY_US - 5 * 60_000_000 - offset_us
            invocation_id = f"00000000-0000-4000-8000-{number:012d}"
            clock = [utc_us + offset_us]
            handle.write(f"\n\n{'=' * 30} {_stamp(clock[0])[4:]} | {invocation_id} {'=' * 30}\n")
            handle.write(f"{_stamp(clock[0])} [info ] [MainThread]: Running with dbt=1.11.16\n")
            node_times: dict[str, tuple[int, int]] = {}
            count = target_nodes if number == target_index else per_invocation
            statements_total += count * STATEMENTS_PER_NODE
            for i in range(count):
                name = f"m_{i:06d}"
                node = f"model.bench.{name}"
                thread = f"Thread-{i % NODES_PER_THREAD_ROUND + 1} ("
                began = clock[0]
                handle.writelines(_node_lines(node, name, thread, clock, i + 1, count))
                if number == target_index:
                    start_ns = (began + 2_000 - offset_us) * 1_000
                    end_ns = (clock[0] - 2_000 - offset_us) * 1_000
                    node_times[node] = (start_ns, end_ns)
            clock[0] += 1000
            handle.write(f"{_stamp(clock[0])} [debug] [MainThread]: Command `dbt run` succeeded\n")
            if number == target_index:
                case = {
                    "invocation_id": invocation_id,
                    "node_times": node_times,
                    "statements": count * STATEMENTS_PER_NODE,
                    "offset_seconds": offset_minutes * 60,
                }
            utc_us = clock[0] - offset_us + 3_600_000_000
    case["bytes"] = path.stat().st_size
    case["statements_total"] = statements_total
    (directory / "case.json").write_text(json.dumps(case))
    return case


def child(directory: Path) -> None:
    """Run in the measured process: read the target invocation and print what was found."""
    from dbt_otel_replay.dbtlog import read_invocation

    case = json.loads((directory / "case.json").read_text())
    node_times = {node: (int(a), int(b)) for node, (a, b) in case["node_times"].items()}
    del case["node_times"]
    warnings: list[str] = []
    began = time.perf_counter()
    log = read_invocation([directory / "logs" / "dbt.log"], case["invocation_id"], node_times, warnings)
    parse_seconds = time.perf_counter() - began
    if log is None:
        print(json.dumps({"error": warnings}))
        sys.exit(1)
    print(
        json.dumps(
            {
                "statements": len(log.statements),
                "with_status": sum(1 for s in log.statements if s.elapsed_ns is not None),
                "offset_seconds": log.utc_offset_seconds,
                "warnings": warnings,
                "parse_seconds": parse_seconds,
            }
        )
    )


def _row(label: str, runs: list[Measurement], size: int, floor: float | None) -> str:
    wall = statistics.median(r.wall_seconds for r in runs)
    rss = max(r.peak_rss_mb for r in runs)
    ratio = f"{wall / floor:.2f}x" if floor else "1.00x"
    return f"| {label} | {size / 1e6:,.0f} | {wall:.2f} | {size / 1e6 / wall:,.0f} | {rss:,.0f} | {ratio} |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=float, default=1000.0, help="log size in MB (default 1000)")
    parser.add_argument("--invocations", type=int, default=5)
    parser.add_argument(
        "--target-statements", type=int, help="statements of the target invocation (default: an equal share)"
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs of each case (the median is shown)")
    parser.add_argument("--data", type=Path, help="keep the generated log there and reuse it")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        child(args.child)
        return 0
    # the harness is imported by the parent alone: the measured child imports the package and no more
    from bench.measure import data_dir, load_average, machine, measure

    with data_dir(args.data, "bench-dbtlog-") as root:
        target = f"-t{args.target_statements}" if args.target_statements else ""
        directory = root / f"log-{args.mb:g}mb-{args.invocations}{target}"
        if not (directory / "case.json").exists():
            began = time.perf_counter()
            generate(directory, args.mb, args.invocations, args.target_statements)
            print(f"generated in {time.perf_counter() - began:.1f} s", file=sys.stderr)
        case = json.loads((directory / "case.json").read_text())
        log = directory / "logs" / "dbt.log"
        size = int(case["bytes"])
        print(json.dumps(machine(), indent=1))
        print(
            f"log: {size / 1e6:,.0f} MB, {args.invocations} invocations, "
            f"{case['statements_total']:,} statements; target: {case['statements']:,} statements, "
            f"UTC{case['offset_seconds'] / 3600:+g} h; load average {load_average()}"
        )
        floor_command = [
            sys.executable,
            "-c",
            "import sys; print(sum(1 for _ in open(sys.argv[1], 'rb')))",
            str(log),
        ]
        parse_command = [sys.executable, "-m", "bench.bench_dbtlog", "--child", str(directory)]
        floors: list[Measurement] = []
        parses: list[Measurement] = []
        for _ in range(args.repeat):  # alternated, so that a change of the machine's load hits both alike
            floors.append(measure(floor_command, timeout=3600))
            parses.append(measure(parse_command, timeout=3600))
        for run in (*floors, *parses):
            if run.returncode != 0:
                print(run.stderr or run.stdout, file=sys.stderr)
                return 1
        found = json.loads(parses[-1].stdout)
        if found["statements"] != case["statements"] or found["offset_seconds"] != case["offset_seconds"]:
            print(f"wrong result: {found} (expected {case['statements']} statements)", file=sys.stderr)
            return 1
        floor = statistics.median(r.wall_seconds for r in floors)
        print(f"lines: {floors[-1].stdout.strip()}; read_invocation found {found['statements']:,} statements")
        print(f"load average after: {load_average()}\n")
        print("| case | MB | wall s | MB/s | peak RSS MB | vs floor |")
        print("|---|---:|---:|---:|---:|---:|")
        print(_row("floor: line count (`for _ in open(path, 'rb')`)", floors, size, None))
        print(_row("`dbtlog.read_invocation`", parses, size, floor))
        ratio = statistics.median(r.wall_seconds for r in parses) / floor
        print(
            f"\nread_invocation / floor = {ratio:.2f}x ({'within' if ratio <= 3 else 'OVER'} the 3x target)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
