"""The spill file under stress: a resend racing a replay, a read-only TARGET_DIR, a full disk, a torn line.

Every fault is real: two processes share one spill file while a slow receiver keeps the
resend draining; TARGET_DIR is a read-only file system (a tmpfs remounted read-only, as
root, whom permissions do not stop; an immutable directory where mounting is not allowed;
mode 0555 for anyone else); the disk is a tmpfs that really fills up, or a process whose
file size limit (RLIMIT_FSIZE, SIGXFSZ ignored) makes its writes fail with EFBIG part way.
Every command runs as a subprocess with a timeout, so none can hang, and with its own
XDG_CACHE_HOME and TMPDIR, so no fallback spill escapes the test's temporary directory.
"""

from __future__ import annotations

import functools
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.collector import free_port as closed_port
from tests.support.contract import copy_pair, from_otlp_json_lines
from tests.support.receiver import OtlpReceiver

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "fixtures" / "artifacts"
BUILD_SPANS = 94
"""Spans of the fixture `dbt build`: one request, one line of about 80 KB in a spill file."""
TIMEOUT = 60.0
"""Seconds before a subprocess is killed or a wait gives up: a hang fails, it never blocks."""
PROG = "dbt-otel-replay"
WAITING = "waiting for another dbt-otel-replay (a resend or a spill) to finish with it"


# --------------------------------------------------------------------------- #
# helpers: the command as a real process, in an environment of the test's own
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Places:
    """The fallback locations the commands see: a cache directory and a temporary directory of the test's."""

    cache: Path
    tmp: Path

    @property
    def cache_spill(self) -> Path:
        return self.cache / "dbt-otel-replay" / "otel-replay-unsent.json"

    @property
    def tmp_spill(self) -> Path:
        return self.tmp / f"dbt-otel-replay-{os.geteuid()}" / "otel-replay-unsent.json"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "TRACEPARENT": "",
            "TRACESTATE": "",
            "OTEL_SERVICE_NAME": "",
            "OTEL_RESOURCE_ATTRIBUTES": "",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "",
            "XDG_CACHE_HOME": str(self.cache),
            "TMPDIR": str(self.tmp),
        }


@pytest.fixture
def places(tmp_path: Path) -> Places:
    cache, tmp = tmp_path / "cache", tmp_path / "tmp"
    cache.mkdir()
    tmp.mkdir(mode=0o700)
    return Places(cache, tmp)


def command(*args: str) -> list[str]:
    return [sys.executable, "-B", "-m", "dbt_otel_replay", *args]


def run(places: Places, *args: str) -> subprocess.CompletedProcess[str]:
    """The command in a subprocess, killed after TIMEOUT."""
    return run_argv(places, command(*args))


def run_argv(places: Places, argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Any program in a subprocess in the test's environment, killed after TIMEOUT."""
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
        cwd=REPO,
        env=places.env(),
    )


def dead_collector() -> tuple[str, list[str]]:
    """An endpoint nothing listens on, and the options that make the export fail fast there."""
    endpoint = f"http://127.0.0.1:{closed_port()}"
    return f"{endpoint}/v1/traces", ["--endpoint", endpoint, "--timeout", "1"]


def error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith(f"{PROG}: error: ")]
    assert len(lines) == 1, stderr
    return lines[0]


def spans_in(path: Path) -> int:
    return len(from_otlp_json_lines(path.read_text()))


def trace_line(places: Places, fixture: str, tmp_path: Path) -> bytes:
    """One run's trace as one OTLP/JSON line, written with --output (resend reads it as it reads a spill)."""
    out = tmp_path / f"{fixture}.json"
    done = run(places, str(FIXTURES / fixture), "--output", str(out), "-q", "--traceparent-to", "-")
    assert done.returncode == 0, done.stderr
    return out.read_bytes()


# --------------------------------------------------------------------------- #
# real file systems: a tmpfs (full, or remounted read-only) where mounting works
# --------------------------------------------------------------------------- #


@functools.cache
def can_mount() -> bool:
    """Whether this process may mount a tmpfs (root with CAP_SYS_ADMIN, as in CI here)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    with tempfile.TemporaryDirectory() as directory:
        tried = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", directory],
            capture_output=True,
            timeout=TIMEOUT,
            check=False,
        )
        if tried.returncode != 0:
            return False
        unmount(Path(directory))
    return True


def unmount(directory: Path) -> None:
    done = subprocess.run(["umount", str(directory)], capture_output=True, timeout=TIMEOUT, check=False)
    if done.returncode != 0:  # still busy: detach it now, the kernel frees it when it can
        subprocess.run(["umount", "-l", str(directory)], capture_output=True, timeout=TIMEOUT, check=True)


def mount_tmpfs(directory: Path, size: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(directory)],
        capture_output=True,
        timeout=TIMEOUT,
        check=True,
    )


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A small tmpfs (2 MiB: the fixture artifacts and a few spill lines), filled by the tests with `fill`."""
    if not can_mount():
        pytest.skip("mounting a tmpfs needs root with CAP_SYS_ADMIN (the RLIMIT_FSIZE test covers the rest)")
    directory = tmp_path / "small-disk"
    mount_tmpfs(directory, "2m")
    try:
        yield directory
    finally:
        unmount(directory)


def fill(disk: Path, leave: int) -> None:
    """Fill a file system until only ``leave`` bytes are free, with a file that is really written."""
    info = os.statvfs(disk)
    free = info.f_bavail * info.f_frsize
    assert free > leave, "the disk is already fuller than the test needs"
    (disk / "filler").write_bytes(b"\0" * (free - leave))


@dataclass(frozen=True)
class ReadOnlyTarget:
    """A TARGET_DIR holding the fixture build's artifacts, where no file can be created."""

    path: Path
    refusal: str
    """The error a write there gets (strerror)."""


@pytest.fixture
def read_only_target(tmp_path: Path) -> Iterator[ReadOnlyTarget]:
    """TARGET_DIR made read-only in a way that stops root too.

    As root, permission bits stop nothing: a tmpfs with the artifacts, remounted read-only,
    refuses every write (EROFS); where mounting is not allowed, an immutable directory
    (``chattr +i``, EPERM) refuses new files. Anyone else gets mode 0555 (EACCES).
    """
    directory = tmp_path / "target"
    if os.geteuid() != 0:
        copy_pair(FIXTURES / "build", directory)
        directory.chmod(0o555)
        try:
            yield ReadOnlyTarget(directory, os.strerror(13))
        finally:
            directory.chmod(0o755)
        return
    if can_mount():
        mount_tmpfs(directory, "1m")
        try:
            copy_pair(FIXTURES / "build", directory)
            subprocess.run(
                ["mount", "-o", "remount,ro", str(directory)],
                capture_output=True,
                timeout=TIMEOUT,
                check=True,
            )
            assert_read_only(directory)
            yield ReadOnlyTarget(directory, "Read-only file system")
        finally:
            unmount(directory)
        return
    copy_pair(FIXTURES / "build", directory)
    chattr = shutil.which("chattr")
    if (
        chattr is None
        or subprocess.run([chattr, "+i", str(directory)], capture_output=True, check=False).returncode
    ):
        pytest.skip("no way to make a directory read-only for root here (no mount, no chattr +i)")
    try:
        assert_read_only(directory)
        yield ReadOnlyTarget(directory, "Operation not permitted")
    finally:
        subprocess.run([chattr, "-i", str(directory)], capture_output=True, check=True)


def assert_read_only(directory: Path) -> None:
    with pytest.raises(OSError):
        (directory / "probe").touch()


def under_a_file(tmp_path: Path, name: str) -> Path:
    """A path below a regular file: creating it fails for root too (ENOTDIR)."""
    blocker = tmp_path / name
    blocker.write_text("a regular file, not a directory\n")
    return blocker / "below"


# --------------------------------------------------------------------------- #
# 7. a resend and a replay on one spill file at the same time
# --------------------------------------------------------------------------- #


class Background:
    """The command as a process of its own, its stderr read on a daemon thread as it comes.

    ``seen`` is set when a line containing ``marker`` arrives. Leaving the ``with`` block
    kills the process if it still runs and closes its pipe, so a failing test leaves nothing.
    """

    def __init__(self, places: Places, args: list[str], marker: str) -> None:
        self.process = subprocess.Popen(
            command(*args),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env=places.env(),
        )
        self.lines: list[str] = []
        self.seen = threading.Event()
        self._marker = marker
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)
            if self._marker in line:
                self.seen.set()

    def __enter__(self) -> Background:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(TIMEOUT)
        self._thread.join(TIMEOUT)
        assert self.process.stderr is not None
        self.process.stderr.close()

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def finish(self) -> tuple[int, str]:
        """Wait for the process to end (TIMEOUT at most): its exit code and everything it wrote on stderr."""
        code = self.process.wait(TIMEOUT)
        self._thread.join(TIMEOUT)
        return code, "".join(self.lines)


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


DRAINED_LINES = 40
"""Lines of the spill file the resend drains: at half a second each, far longer than a replay takes."""


@pytest.mark.parametrize("collector", ["accepts", "refuses"])
def test_a_replay_spilling_while_resend_drains_loses_nothing(
    tmp_path: Path, places: Places, otlp_receiver: OtlpReceiver, collector: str
) -> None:
    """The issue: a replay spilled 94 spans into the file a resend was draining; the resend deleted it.

    A resend (a process) drains a spill file into a slow receiver; once it is under way, a
    replay (another process) fails to deliver and spills into the same file. The replay must
    wait for the resend to rewrite or delete the file and then append, so at the end the file
    holds the replay's spans (and, when the collector starts refusing, what the resend could
    not send), and a second resend delivers every span.
    """
    build, run_line = trace_line(places, "build", tmp_path), trace_line(places, "run", tmp_path)
    build_trace = {s.trace_id for s in from_otlp_json_lines(build.decode())}
    run_trace = {s.trace_id for s in from_otlp_json_lines(run_line.decode())}
    spill = tmp_path / "spill.json"
    spill.write_bytes(build * DRAINED_LINES)
    otlp_receiver.set_response_delay(0.5)
    endpoint = otlp_receiver.http_base_endpoint
    _, dead = dead_collector()
    with Background(
        places, ["resend", str(spill), "--endpoint", endpoint, "--timeout", "5"], "resent"
    ) as resend:
        wait_until(lambda: bool(otlp_receiver.attempts) or not resend.running, "the resend's first request")
        assert resend.running, resend.finish()
        spilling = [str(FIXTURES / "run"), "--spill", str(spill), "--traceparent-to", "-", "-q", *dead]
        with Background(places, spilling, WAITING) as replay:
            wait_until(lambda: replay.seen.is_set() or not replay.running, "the replay to spill")
            assert resend.running, "the race did not happen: the resend ended before the replay spilled"
            if collector == "refuses":
                otlp_receiver.fail_next(100_000)
            otlp_receiver.set_response_delay(0)
            resent_code, resent_text = resend.finish()
            replay_code, replay_text = replay.finish()

    assert replay_code == 3, replay_text
    in_file = from_otlp_json_lines(spill.read_text()) if spill.exists() else []
    appended = [s for s in in_file if s.trace_id in run_trace]
    left_over = [s for s in in_file if s.trace_id in build_trace]
    assert appended, "the replay's spans were deleted by the resend"
    assert f"{PROG}: warning: {spill}: {WAITING}" in replay_text
    assert f"{len(appended)} spans saved to {spill}: re-send them" in error_line(replay_text)
    accepted = len(otlp_receiver.requests)
    if collector == "accepts":
        assert resent_code == 0, resent_text
        assert f"resent {DRAINED_LINES * BUILD_SPANS} of {DRAINED_LINES * BUILD_SPANS} spans" in resent_text
        assert accepted == DRAINED_LINES and not left_over
    else:
        assert resent_code == 3, resent_text
        assert 0 < accepted < DRAINED_LINES
        assert len(left_over) == (DRAINED_LINES - accepted) * BUILD_SPANS
        assert f"{len(left_over)} spans stay in {spill}" in resent_text

    otlp_receiver.reset_faults()
    otlp_receiver.clear()
    again = run(places, "resend", str(spill), "--endpoint", endpoint)
    assert again.returncode == 0, again.stderr
    assert otlp_receiver.span_count() == len(in_file)
    assert {s.trace_id for s in otlp_receiver.spans()} >= run_trace
    assert not spill.exists()


# --------------------------------------------------------------------------- #
# 8. a read-only TARGET_DIR: the spans go to a fallback, and the error line says where
# --------------------------------------------------------------------------- #


def test_a_read_only_target_spills_to_the_cache_directory_and_says_so(
    read_only_target: ReadOnlyTarget, places: Places, otlp_receiver: OtlpReceiver
) -> None:
    target = read_only_target.path
    endpoint, dead = dead_collector()
    result = run(places, str(target), *dead)
    assert result.returncode == 3, result.stderr
    line = error_line(result.stderr)
    fallback = places.cache_spill
    assert line.startswith(
        f"{PROG}: error: {target / 'traceparent'}: cannot write the traceparent file: "
        f"{read_only_target.refusal}; and {endpoint}: cannot reach the collector: "
    ), line
    assert line.endswith(
        f"; {BUILD_SPANS} spans saved to {fallback}: re-send them with `dbt-otel-replay resend {fallback}` "
        f"(cannot write {target / 'otel-replay-unsent.json'}: {read_only_target.refusal})"
    ), line
    assert "LOST" not in result.stderr
    assert spans_in(fallback) == BUILD_SPANS
    assert stat.S_IMODE(fallback.parent.stat().st_mode) == 0o700
    assert sorted(p.name for p in target.iterdir()) == ["manifest.json", "run_results.json"]

    resent = run(places, "resend", str(fallback), "--endpoint", otlp_receiver.http_base_endpoint)
    assert resent.returncode == 0, resent.stderr
    assert otlp_receiver.span_count() == BUILD_SPANS and not fallback.exists()


def test_without_a_cache_directory_the_spill_goes_to_a_private_temporary_directory(
    read_only_target: ReadOnlyTarget, tmp_path: Path, places: Places
) -> None:
    cache = under_a_file(tmp_path, "not-a-cache")
    everywhere = Places(cache, places.tmp)
    _, dead = dead_collector()
    result = run(everywhere, str(read_only_target.path), *dead, "--traceparent-to", "-", "-q")
    assert result.returncode == 3, result.stderr
    fallback = everywhere.tmp_spill
    assert error_line(result.stderr).endswith(
        f"; {BUILD_SPANS} spans saved to {fallback}: re-send them with `dbt-otel-replay resend {fallback}` "
        f"(cannot write {read_only_target.path / 'otel-replay-unsent.json'}: {read_only_target.refusal}; "
        f"nor {cache / 'dbt-otel-replay' / 'otel-replay-unsent.json'}: Not a directory)"
    )
    assert spans_in(fallback) == BUILD_SPANS
    info = fallback.parent.lstat()
    assert stat.S_ISDIR(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o700 and info.st_uid == os.geteuid()


def test_when_nothing_is_writable_the_spans_are_reported_lost_with_their_count(
    read_only_target: ReadOnlyTarget, tmp_path: Path, places: Places
) -> None:
    """No cache directory, and the temporary one taken by a symlink planted by someone else: LOST, said."""
    cache = under_a_file(tmp_path, "not-a-cache")
    elsewhere = tmp_path / "someone-elses"
    elsewhere.mkdir()
    planted = places.tmp / f"dbt-otel-replay-{os.geteuid()}"
    planted.symlink_to(elsewhere)
    endpoint, dead = dead_collector()
    result = run(Places(cache, places.tmp), str(read_only_target.path), *dead)
    assert result.returncode == 3, result.stderr
    line = error_line(result.stderr)
    assert line.startswith(
        f"{PROG}: error: {read_only_target.path / 'traceparent'}: cannot write the traceparent file: "
        f"{read_only_target.refusal}; and {endpoint}: cannot reach the collector: "
    ), line
    default = read_only_target.path / "otel-replay-unsent.json"
    assert line.endswith(
        f"; and {BUILD_SPANS} spans are LOST: cannot write {default}: "
        f"{read_only_target.refusal}; nor {cache / 'dbt-otel-replay' / 'otel-replay-unsent.json'}: "
        f"Not a directory; nor {planted / 'otel-replay-unsent.json'}: not a directory of this user's alone"
    ), line
    assert list(elsewhere.iterdir()) == [], "nothing is written through a symlink in the shared directory"
    assert planted.is_symlink()


def test_an_explicit_spill_that_cannot_be_written_is_lost_not_redirected(
    read_only_target: ReadOnlyTarget, places: Places
) -> None:
    spill = read_only_target.path / "spill.json"
    _, dead = dead_collector()
    result = run(places, str(read_only_target.path), "--spill", str(spill), *dead, "--traceparent-to", "-")
    assert result.returncode == 3, result.stderr
    assert error_line(result.stderr).endswith(
        f"; and {BUILD_SPANS} spans are LOST: cannot write {spill}: {read_only_target.refusal}"
    )
    assert list(places.cache.iterdir()) == [] and list(places.tmp.iterdir()) == []


@pytest.mark.parametrize("how", ["sent", "written"])
def test_a_traceparent_file_that_cannot_be_written_still_reports_the_trace(
    tmp_path: Path, places: Places, otlp_receiver: OtlpReceiver, how: str
) -> None:
    carrier = under_a_file(tmp_path, "a-file")
    out = tmp_path / "trace.json"
    where = ["--output", str(out)] if how == "written" else ["--endpoint", otlp_receiver.http_base_endpoint]
    result = run(places, str(FIXTURES / "build"), *where, "--traceparent-to", str(carrier))
    assert result.returncode == 3, result.stderr
    problem = f"{PROG}: error: {carrier}: cannot write the traceparent file: File exists; the trace was "
    if how == "written":
        assert error_line(result.stderr) == f"{problem}written as OTLP/JSON to {out}"
        assert spans_in(out) == BUILD_SPANS
    else:
        assert error_line(result.stderr) == (
            f"{problem}sent to {otlp_receiver.http_endpoint} (http/protobuf) in 1 request"
        )
        assert otlp_receiver.span_count() == BUILD_SPANS


# --------------------------------------------------------------------------- #
# 9. a full disk during an append leaves the spill file as it was
# --------------------------------------------------------------------------- #


def test_a_full_disk_leaves_the_spill_file_as_it_was(
    tmpfs: Path, tmp_path: Path, places: Places, otlp_receiver: OtlpReceiver
) -> None:
    spill = tmpfs / "spill.json"
    _, dead = dead_collector()
    first = run(places, str(FIXTURES / "build"), "--spill", str(spill), *dead, "--traceparent-to", "-", "-q")
    assert first.returncode == 3 and f"{BUILD_SPANS} spans saved to {spill}" in first.stderr, first.stderr
    before = spill.read_bytes()
    fill(tmpfs, leave=len(before) // 4)  # the next line starts, and the disk is full a quarter of the way in

    second = run(places, str(FIXTURES / "build"), "--spill", str(spill), *dead, "--traceparent-to", "-", "-q")
    assert second.returncode == 3, second.stderr
    assert error_line(second.stderr).endswith(
        f"; and {BUILD_SPANS} spans are LOST: cannot write {spill}: No space left on device"
    )
    assert spill.read_bytes() == before, "a failed append must leave the file exactly as it was"

    resent = run(places, "resend", str(spill), "--endpoint", otlp_receiver.http_base_endpoint)
    assert resent.returncode == 0, resent.stderr
    assert otlp_receiver.span_count() == BUILD_SPANS and not spill.exists()


def test_a_full_target_dir_spills_to_the_fallback_and_keeps_its_own_file(tmpfs: Path, places: Places) -> None:
    target = copy_pair(FIXTURES / "build", tmpfs / "target")
    spill = target / "otel-replay-unsent.json"
    _, dead = dead_collector()
    first = run(places, str(target), *dead, "-q")
    assert first.returncode == 3 and f"{BUILD_SPANS} spans saved to {spill}:" in first.stderr, first.stderr
    before = spill.read_bytes()
    fill(tmpfs, leave=len(before) // 4)  # room for the traceparent file, not for another spill

    second = run(places, str(target), *dead, "-q")
    assert second.returncode == 3, second.stderr
    fallback = places.cache_spill
    assert error_line(second.stderr).endswith(
        f"; {BUILD_SPANS} spans saved to {fallback}: re-send them with `dbt-otel-replay resend {fallback}` "
        f"(cannot write {spill}: No space left on device)"
    )
    assert spill.read_bytes() == before
    assert spans_in(fallback) == BUILD_SPANS
    assert (target / "traceparent").read_text().startswith("TRACEPARENT=00-")


LIMITED = """\
import resource, runpy, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of killing
limit = int(sys.argv.pop(1))
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
sys.argv[0] = "dbt-otel-replay"
runpy.run_module("dbt_otel_replay", run_name="__main__")
"""
"""Runs the command with a file size limit: any write that would make a file larger fails part way."""


@pytest.mark.parametrize("existing", [True, False], ids=["earlier-spill", "new-file"])
def test_a_write_failing_part_way_leaves_the_spill_file_as_it_was(
    tmp_path: Path, places: Places, otlp_receiver: OtlpReceiver, existing: bool
) -> None:
    """Works anywhere (no mount needed): RLIMIT_FSIZE stops the append a quarter into its line."""
    spill = tmp_path / "spill.json"
    line = trace_line(places, "build", tmp_path)
    if existing:
        spill.write_bytes(line)
    limit = len(line) * (2 if existing else 1) // 2 + len(line) // 4
    _, dead = dead_collector()
    args = [str(FIXTURES / "build"), "--spill", str(spill), *dead, "--traceparent-to", "-", "-q"]
    result = run_argv(places, [sys.executable, "-B", "-c", LIMITED, str(limit), *args])
    assert result.returncode == 3, result.stderr
    assert error_line(result.stderr).endswith(
        f"; and {BUILD_SPANS} spans are LOST: cannot write {spill}: File too large"
    )
    if existing:
        assert spill.read_bytes() == line, "a failed append must leave the file exactly as it was"
        resent = run(places, "resend", str(spill), "--endpoint", otlp_receiver.http_base_endpoint)
        assert resent.returncode == 0, resent.stderr
        assert otlp_receiver.span_count() == BUILD_SPANS
    else:
        assert not spill.exists(), "a file the failed append created is removed"


# --------------------------------------------------------------------------- #
# resend: a torn last line is skipped with a warning; "file removed" only when it was
# --------------------------------------------------------------------------- #


def test_resend_skips_a_torn_last_line_and_delivers_the_rest(
    tmp_path: Path, places: Places, otlp_receiver: OtlpReceiver
) -> None:
    build, run_line = trace_line(places, "build", tmp_path), trace_line(places, "run", tmp_path)
    spill = tmp_path / "spill.json"
    spill.write_bytes(build + run_line + build[: len(build) // 3])  # a third line, cut short
    good = len(from_otlp_json_lines((build + run_line).decode()))
    result = run(places, "resend", str(spill), "--endpoint", otlp_receiver.http_base_endpoint)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[0] == (
        f"{PROG}: warning: {spill}: skipped line 3, cut short by a write that failed part way "
        "(no newline at its end; not OTLP/JSON)"
    )
    assert f"resent {good} of {good} spans from {spill}" in result.stderr and "file removed" in result.stderr
    assert otlp_receiver.span_count() == good and not spill.exists()


def test_resend_skips_a_line_cut_inside_a_character(
    tmp_path: Path, places: Places, otlp_receiver: OtlpReceiver
) -> None:
    """A trace written with --output keeps UTF-8 as it is: a cut can split a character in two."""
    out = tmp_path / "trace.json"
    done = run(
        places,
        str(FIXTURES / "build"),
        "--output",
        str(out),
        "--service-name",
        "dbt-ü",
        "-q",
        "--traceparent-to",
        "-",
    )
    assert done.returncode == 0, done.stderr
    line = out.read_bytes()
    cut = line.index("ü".encode()) + 1
    spill = tmp_path / "spill.json"
    spill.write_bytes(line + line[:cut])
    result = run(places, "resend", str(spill), "--endpoint", otlp_receiver.http_base_endpoint)
    assert result.returncode == 0, result.stderr
    assert f"{spill}: skipped line 2, cut short" in result.stderr
    assert otlp_receiver.span_count() == BUILD_SPANS


def test_a_torn_line_is_dropped_when_the_rest_is_kept_for_later(
    tmp_path: Path, places: Places, otlp_receiver: OtlpReceiver
) -> None:
    build = trace_line(places, "build", tmp_path)
    spill = tmp_path / "spill.json"
    spill.write_bytes(build + build[:100])
    otlp_receiver.fail_next(100_000)
    result = run(
        places, "resend", str(spill), "--endpoint", otlp_receiver.http_base_endpoint, "--timeout", "1"
    )
    assert result.returncode == 3, result.stderr
    assert "skipped line 2" in result.stderr and f"{BUILD_SPANS} spans stay in {spill}" in result.stderr
    assert spill.read_bytes().count(b"\n") == 1 and spans_in(spill) == BUILD_SPANS


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"{not json}\n" + b"LINE", "line 1 is not an OTLP/JSON trace request"),  # not the last line
        (b"LINE" + b"{not json\n", "line 2 is not an OTLP/JSON trace request"),  # last, but whole
    ],
    ids=["bad-middle-line", "bad-last-line-with-newline"],
)
def test_other_bad_lines_still_refuse_the_file(
    tmp_path: Path, places: Places, otlp_receiver: OtlpReceiver, content: bytes, problem: str
) -> None:
    spill = tmp_path / "spill.json"
    spill.write_bytes(content.replace(b"LINE", trace_line(places, "build", tmp_path)))
    result = run(places, "resend", str(spill), "--endpoint", otlp_receiver.http_base_endpoint)
    assert result.returncode == 1, result.stderr
    assert problem in result.stderr and otlp_receiver.span_count() == 0
    assert spill.exists()


def test_a_whole_last_line_without_its_newline_is_sent(
    tmp_path: Path, places: Places, otlp_receiver: OtlpReceiver
) -> None:
    spill = tmp_path / "spill.json"
    spill.write_bytes(trace_line(places, "build", tmp_path).rstrip(b"\n"))
    result = run(places, "resend", str(spill), "--endpoint", otlp_receiver.http_base_endpoint)
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr and otlp_receiver.span_count() == BUILD_SPANS


def test_resend_says_file_removed_only_when_it_was(
    tmp_path: Path, places: Places, otlp_receiver: OtlpReceiver
) -> None:
    if os.geteuid() != 0:
        pytest.skip("making a device node needs root")
    null = tmp_path / "null"
    os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # our own null device, never the real one
    kept = run(places, "resend", str(null), "--endpoint", otlp_receiver.http_base_endpoint)
    assert kept.returncode == 0, kept.stderr
    assert kept.stderr.strip().endswith(f"resent 0 of 0 spans from {null} to {otlp_receiver.http_endpoint}")
    assert stat.S_ISCHR(os.lstat(null).st_mode)

    spill = tmp_path / "spill.json"
    spill.write_bytes(trace_line(places, "build", tmp_path))
    removed = run(places, "resend", str(spill), "--endpoint", otlp_receiver.http_base_endpoint)
    assert removed.returncode == 0, removed.stderr
    assert removed.stderr.strip().endswith("; file removed") and not spill.exists()
