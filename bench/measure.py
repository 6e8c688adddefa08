"""Measure one command in its own process: wall time and that process's own peak RSS.

See ``measure``: the command runs under a tiny launcher whose only child it is, so its peak RSS
(``ru_maxrss``, KiB on Linux) is its own: neither the benchmark process nor its other children
(the in-process receiver, rotel) count.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGES = (
    "dbt-otel-replay", "msgspec", "protobuf", "opentelemetry-proto", "opentelemetry-sdk",
    "opentelemetry-exporter-otlp-proto-grpc", "grpcio", "pydantic", "rotel",
    "openlineage-integration-common", "openlineage-python", "openlineage-sql",
)  # fmt: skip


@dataclass(frozen=True)
class Measurement:
    """How one run of a command went.

    Attributes:
        command: The command line.
        wall_seconds: From just before the process started until it was reaped.
        peak_rss_kib: The process's peak resident set size (``ru_maxrss``).
        returncode: Its exit code (negative: killed by that signal).
        stdout: What it printed on stdout.
        stderr: What it printed on stderr.
        timed_out: True if it was killed for running past the timeout.
    """

    command: tuple[str, ...]
    wall_seconds: float
    peak_rss_kib: int
    returncode: int
    stdout: str
    stderr: str
    timed_out: bool = False

    @property
    def peak_rss_mb(self) -> float:
        """Peak RSS in MiB."""
        return self.peak_rss_kib / 1024


def clean_environment() -> dict[str, str]:
    """This environment without OTEL_*, ROTEL_* and TRACE* variables (they would change what is measured).

    ``PYTHONPATH`` starts with this checkout, so the ``dbt_otel_replay`` measured is always the one
    beside this ``bench/`` directory (also when an editable install points elsewhere).
    """
    environment = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OTEL_", "ROTEL_", "TRACEPARENT", "TRACESTATE"))
    }
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), environment.get("PYTHONPATH")]))
    return environment


_LAUNCHER = """
import json, resource, subprocess, sys, time
report, command = sys.argv[1], sys.argv[2:]
began = time.perf_counter()
try:
    returncode = subprocess.Popen(command).wait()
except OSError as error:
    print(f"cannot run {command[0]}: {error}", file=sys.stderr)
    returncode = 127
wall = time.perf_counter() - began
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(report, "w") as handle:
    json.dump({"wall_seconds": wall, "maxrss_kib": usage.ru_maxrss, "returncode": returncode}, handle)
"""


def measure(command: list[str], *, timeout: float, cwd: Path = REPO_ROOT) -> Measurement:
    """Run ``command`` to completion in its own process and measure it.

    The command is started by a small launcher process (a fresh Python of about 10 MB) that waits
    for it and reads ``getrusage(RUSAGE_CHILDREN)``: its only child is the command, so that is the
    command's own peak RSS. (Reaping the command directly from this process with ``os.wait4``
    would not do: on Linux a child's ``ru_maxrss`` includes the RSS of the process it was forked
    from, and this one holds the receiver and its spans.) Wall time is taken by the launcher
    around the command alone.

    Args:
        command: Program and arguments.
        timeout: Seconds after which the command and its launcher are killed (by their process
            group, which is theirs alone); the result says so.
        cwd: Working directory (the repository, so ``python -m bench.X`` resolves).

    Returns:
        The measurement; the caller decides whether a non-zero exit is a failure.
    """
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.TemporaryDirectory(prefix="bench-measure-") as scratch,
    ):
        report = Path(scratch) / "report.json"
        began = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-c", _LAUNCHER, str(report), *command],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            cwd=cwd,
            env=clean_environment(),
            start_new_session=True,
        )
        timed_out = False
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        except BaseException:  # interrupted (Ctrl-C, SIGTERM): leave nothing running
            _kill_group(process)
            raise
        if timed_out:
            _kill_group(process)
        outside = time.perf_counter() - began
        measured = json.loads(report.read_text()) if report.exists() else {}
        out.seek(0)
        err.seek(0)
        return Measurement(
            command=tuple(command),
            wall_seconds=float(measured.get("wall_seconds", outside)),
            peak_rss_kib=int(measured.get("maxrss_kib", 0)),
            returncode=int(measured.get("returncode", process.returncode)),
            stdout=out.read().decode(errors="replace"),
            stderr=err.read().decode(errors="replace"),
            timed_out=timed_out,
        )


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the launcher and the command (their own process group), then reap the launcher."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def exit_on_sigterm() -> None:
    """Make SIGTERM raise SystemExit, so a terminated benchmark kills the command it is measuring."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def machine() -> dict[str, str]:
    """CPU model, cores, memory, OS, Python and the versions of the packages that matter here."""
    cpu = platform.processor() or platform.machine()
    memory = "?"
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        found = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
        cpu = found.group(1).strip() if found else cpu
        meminfo = Path("/proc/meminfo").read_text()
        total = re.search(r"^MemTotal:\s*(\d+) kB", meminfo, re.MULTILINE)
        memory = f"{int(total.group(1)) / 1024 / 1024:.1f} GiB" if total else memory
    except OSError:
        pass
    versions = []
    for package in PACKAGES:
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{package} (not installed)")
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "memory": memory,
        "os": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "packages": ", ".join(versions),
        "commit": _git_commit(),
        "checkout": str(REPO_ROOT),
        "load_average": load_average(),
    }


def load_average() -> str:
    """The 1, 5 and 15 minute load averages (other work on the machine skews the timings)."""
    try:
        return " ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "?"


def _git_commit() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=10,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "?"
    return f"{head}{' (with uncommitted changes)' if dirty else ''}" if head else "?"


def replay_executable() -> str:
    """The ``dbt-otel-replay`` console script of this interpreter's environment."""
    return str(Path(sys.executable).parent / "dbt-otel-replay")


@contextlib.contextmanager
def data_dir(path: Path | None, prefix: str) -> Iterator[Path]:
    """``path`` (created if needed) to keep generated data in, else a temporary directory."""
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix=prefix) as temporary:
        yield Path(temporary)


def count_requests(requests: Iterable[Any]) -> tuple[int, int, int]:
    """Spans, distinct span ids and distinct trace ids in ``ExportTraceServiceRequest`` messages."""
    spans = 0
    span_ids: set[bytes] = set()
    trace_ids: set[bytes] = set()
    for request in requests:
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                spans += len(scope_spans.spans)
                span_ids.update(span.span_id for span in scope_spans.spans)
                trace_ids.update(span.trace_id for span in scope_spans.spans)
    return spans, len(span_ids), len(trace_ids)


def count_otlp_json(path: Path) -> tuple[int, int, int]:
    """Spans, distinct span ids and distinct trace ids in an OTLP/JSON lines file."""
    try:
        import msgspec

        loads: Callable[[bytes], Any] = msgspec.json.decode
    except ImportError:  # pragma: no cover - msgspec is a dependency of the package
        loads = json.loads
    spans = 0
    span_ids: set[str] = set()
    trace_ids: set[str] = set()
    with path.open("rb") as handle:
        for line in handle:
            if not line.strip():
                continue
            for resource_spans in loads(line)["resourceSpans"]:
                for scope_spans in resource_spans["scopeSpans"]:
                    for span in scope_spans["spans"]:
                        spans += 1
                        span_ids.add(span["spanId"])
                        trace_ids.add(span["traceId"])
    return spans, len(span_ids), len(trace_ids)
