"""Output paths are written into, never replaced: device nodes, FIFOs, symlinks, and the run's own inputs.

As root (container CI), replacing ``/dev/null`` with a regular file breaks every later
step on the machine, so every output (--output, --html, --spill, --traceparent-to, a
backfill's --output and --ledger, resend's spill file) is checked here against real
nodes made in temporary directories: a null device made with mknod (never the real one),
FIFOs read by a thread, symlinks, a Unix socket. Anything that could block runs the
command in a subprocess with a timeout, and FIFO readers give up after a deadline, so
no test can hang.
"""

from __future__ import annotations

import os
import select
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dbt_otel_replay.errors import ConfigError
from dbt_otel_replay.replay import ReplayOptions, replay
from dbt_otel_replay.views import write_html
from tests.support.cli import CLEAN_ENV
from tests.support.cli import run_cli as run
from tests.support.collector import free_port as closed_port
from tests.support.contract import copy_pair, from_otlp_json_lines
from tests.support.receiver import OtlpReceiver

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "fixtures" / "artifacts"
BUILD_SPANS = 94
"""Spans of the fixture `dbt build` (the invocation, 33 nodes, their compile and execute phases)."""
TIMEOUT = 60.0
"""Seconds before a subprocess is killed or a FIFO reader gives up: a hang fails, it never blocks."""
NULL_DEVICE = os.makedev(1, 3)
INPUT_REFUSED = "is an input artifact of this run; refusing to overwrite it"


# --------------------------------------------------------------------------- #
# helpers: nodes in temporary directories, the command in and out of process
# --------------------------------------------------------------------------- #


def null_device(directory: Path, name: str = "null") -> Path:
    """A null device node of our own (major 1, minor 3) inside a temporary directory."""
    if os.geteuid() != 0:
        pytest.skip("making a device node needs root")
    path = directory / name
    os.mknod(path, 0o666 | stat.S_IFCHR, NULL_DEVICE)
    return path


def assert_still_null_device(path: Path) -> None:
    info = os.lstat(path)
    assert stat.S_ISCHR(info.st_mode), f"{path} is no longer a character device"
    assert info.st_rdev == NULL_DEVICE


def fifo(directory: Path, name: str = "pipe") -> Path:
    path = directory / name
    os.mkfifo(path)
    return path


def unreachable() -> list[str]:
    """Options that make the export fail fast, so the spill file is written."""
    return ["--endpoint", f"http://127.0.0.1:{closed_port()}", "--timeout", "1.2"]


def run_process(*args: str) -> subprocess.CompletedProcess[str]:
    """The command in a subprocess, killed after TIMEOUT (for FIFOs, which could block)."""
    return subprocess.run(
        [sys.executable, "-m", "dbt_otel_replay", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
        cwd=REPO,
        env={**os.environ, **CLEAN_ENV},
    )


class FifoReader:
    """Reads a FIFO on a daemon thread until its writer closes it (or the deadline passes).

    The read end is opened (without blocking) before the command runs, so the command
    finds a reader; the first end of file after some data ends the reading, so a writer
    that closed and reopened the FIFO between runs would be caught.
    """

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self._data = bytearray()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            readable, _, _ = select.select([self._fd], [], [], 0.05)
            if not readable:
                continue
            try:
                chunk = os.read(self._fd, 1 << 16)
            except BlockingIOError:
                continue
            if chunk:
                self._data += chunk
            elif self._data:
                return  # the writer closed it
            else:
                time.sleep(0.01)  # no writer yet

    def text(self) -> str:
        """Everything read, once the writer closed the FIFO."""
        self._thread.join(TIMEOUT)
        os.close(self._fd)
        return self._data.decode()


def carrier_line(text: str) -> bool:
    return text.startswith("TRACEPARENT=00-") and text.endswith("\n")


def check_content(option: str, text: str) -> None:
    """What each output holds when written."""
    if option == "--output":
        assert len(from_otlp_json_lines(text)) == BUILD_SPANS
    elif option == "--traceparent-to":
        assert carrier_line(text), text
    elif option == "--html":
        assert text.lstrip().lower().startswith("<!doctype html") and "</html>" in text
    else:  # --spill
        assert len(from_otlp_json_lines(text)) == BUILD_SPANS


def args_writing(option: str, target: Path, path: Path, tmp_path: Path) -> list[str]:
    """Replay arguments that write ``path`` with ``option`` (and everything else into tmp_path)."""
    if option == "--output":
        return [str(target), "--output", str(path)]
    if option == "--spill":
        return [str(target), "--spill", str(path), *unreachable()]
    return [str(target), "--output", str(tmp_path / "trace.json"), option, str(path)]


OPTIONS = ["--output", "--traceparent-to", "--html", "--spill"]
EXIT_WHEN_WRITTEN = {"--output": 0, "--traceparent-to": 0, "--html": 0, "--spill": 3}


# --------------------------------------------------------------------------- #
# device nodes: written into, still device nodes afterwards
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("option", OPTIONS)
def test_a_device_node_stays_a_device_node(target: Path, tmp_path: Path, option: str) -> None:
    null = null_device(tmp_path)
    result = run(*args_writing(option, target, null, tmp_path))
    assert result.exit_code == EXIT_WHEN_WRITTEN[option], result.stderr
    assert_still_null_device(null)
    if option == "--spill":
        assert f"{BUILD_SPANS} spans saved to {null}" in result.stderr  # not "LOST": no fsync on a device


def test_the_issue_repro_a_device_and_a_link_to_stdout(target: Path, tmp_path: Path) -> None:
    """``ln -s /proc/self/fd/1 d/stdout; mknod d/null c 1 3``: both survive, the trace reaches stdout."""
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc")
    d = tmp_path / "d"
    d.mkdir()
    null = null_device(d)
    stdout = d / "stdout"
    stdout.symlink_to("/proc/self/fd/1")  # the subprocess's stdout: our pipe
    result = run_process(str(target), "--output", str(stdout), "--traceparent-to", str(null), "-q")
    assert result.returncode == 0, result.stderr
    assert_still_null_device(null)
    assert stdout.is_symlink() and os.readlink(stdout) == "/proc/self/fd/1"
    assert len(from_otlp_json_lines(result.stdout)) == BUILD_SPANS


def test_a_link_to_an_open_file_appends_like_the_shell_redirection(target: Path, tmp_path: Path) -> None:
    """``-o /dev/stdout >> log``: the log keeps what earlier steps wrote, and is not replaced."""
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc")
    log = tmp_path / "log"
    log.write_text("earlier step\n")
    inode = log.stat().st_ino
    with log.open("a") as handle:
        link = tmp_path / "stdout"
        link.symlink_to(f"/proc/self/fd/{handle.fileno()}")
        result = run(str(target), "--output", str(link), "-q")
    assert result.exit_code == 0, result.stderr
    assert link.is_symlink()
    assert log.stat().st_ino == inode
    earlier, rest = log.read_text().split("\n", 1)
    assert earlier == "earlier step"
    assert len(from_otlp_json_lines(rest)) == BUILD_SPANS


def test_a_backfill_writes_into_a_device_and_spills_into_one(tmp_path: Path) -> None:
    null = null_device(tmp_path)
    written = run("backfill", str(FIXTURES / "build"), str(FIXTURES / "run"), "--output", str(null))
    assert written.exit_code == 0, written.stderr
    assert_still_null_device(null)
    spilled = run("backfill", str(FIXTURES / "build"), "--spill", str(null), *unreachable())
    assert spilled.exit_code == 3, spilled.stderr
    assert f"spans saved to {null}" in spilled.stdout
    assert_still_null_device(null)


def test_a_device_is_refused_as_the_ledger(tmp_path: Path) -> None:
    null = null_device(tmp_path)
    result = run("backfill", str(FIXTURES / "run"), "--ledger", str(null), *unreachable())
    assert result.exit_code == 2, result.output
    assert result.stderr == (
        f"dbt-otel-replay: error: {null}: cannot use it as the backfill ledger: not a regular file\n"
    )
    assert_still_null_device(null)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["null"]  # no journal beside it


def test_resend_never_deletes_a_device(tmp_path: Path) -> None:
    null = null_device(tmp_path)
    result = run("resend", str(null), "--endpoint", f"http://127.0.0.1:{closed_port()}")
    assert result.exit_code == 0, result.stderr  # nothing to send: all of nothing was delivered
    assert_still_null_device(null)


# --------------------------------------------------------------------------- #
# symlinks: the target is written (atomically when it is a regular file), the link stays
# --------------------------------------------------------------------------- #


def make_link(tmp_path: Path, how: str) -> tuple[Path, Path]:
    """A link in links/ and the regular file it leads to in real/ (absent for a dangling link)."""
    real = tmp_path / "real" / "file"
    real.parent.mkdir()
    links = tmp_path / "links"
    links.mkdir()
    link = links / "out"
    if how == "absolute":
        real.write_text("old content\n")
        real.chmod(0o640)
        link.symlink_to(real)
    elif how == "relative-chain":
        real.write_text("old content\n")
        real.chmod(0o640)
        (links / "hop").symlink_to("../real/file")
        link.symlink_to("hop")
    else:  # dangling: the target does not exist yet
        link.symlink_to("../real/file")
    return link, real


@pytest.mark.parametrize("how", ["absolute", "relative-chain", "dangling"])
@pytest.mark.parametrize("option", OPTIONS)
def test_a_symlink_stays_and_its_target_gets_the_content(
    target: Path, tmp_path: Path, option: str, how: str
) -> None:
    link, real = make_link(tmp_path, how)
    text_before = os.readlink(link)
    result = run(*args_writing(option, target, link, tmp_path))
    assert result.exit_code == EXIT_WHEN_WRITTEN[option], result.stderr
    assert link.is_symlink() and os.readlink(link) == text_before
    text = real.read_text()
    if option == "--spill" and how != "dangling":
        assert text.startswith("old content\n")  # appended to, never replaced
        text = text.removeprefix("old content\n")
    check_content(option, text)
    if how != "dangling":
        assert stat.S_IMODE(real.stat().st_mode) == 0o640, "the target keeps its mode"
    assert sorted(p.name for p in real.parent.iterdir()) == ["file"], "no temporary file is left"


def test_a_regular_output_keeps_its_mode(target: Path, tmp_path: Path) -> None:
    out = tmp_path / "trace.json"
    out.write_text("old\n")
    out.chmod(0o600)
    result = run(str(target), "--output", str(out))
    assert result.exit_code == 0, result.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert len(from_otlp_json_lines(out.read_text())) == BUILD_SPANS


def test_a_backfill_writes_through_a_symlink(tmp_path: Path) -> None:
    link, real = make_link(tmp_path, "absolute")
    result = run("backfill", str(FIXTURES / "build"), str(FIXTURES / "run"), "--output", str(link))
    assert result.exit_code == 0, result.stderr
    assert link.is_symlink()
    assert len({span.trace_id for span in from_otlp_json_lines(real.read_text())}) == 2
    assert stat.S_IMODE(real.stat().st_mode) == 0o640


def test_resend_through_a_symlink_deletes_the_file_and_keeps_the_link(
    target: Path, tmp_path: Path, otlp_receiver: OtlpReceiver
) -> None:
    link, real = make_link(tmp_path, "absolute")
    assert run(str(target), "--output", str(real)).exit_code == 0
    result = run("resend", str(link), "--endpoint", otlp_receiver.http_base_endpoint)
    assert result.exit_code == 0, result.stderr
    assert otlp_receiver.span_count() == BUILD_SPANS
    assert link.is_symlink() and not real.exists()


# --------------------------------------------------------------------------- #
# FIFOs: written to their reader; without a reader, an error (never a hang)
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("option", OPTIONS)
def test_a_fifo_output_reaches_its_reader(target: Path, tmp_path: Path, option: str) -> None:
    pipe = fifo(tmp_path)
    reader = FifoReader(pipe)
    result = run_process(*args_writing(option, target, pipe, tmp_path))
    text = reader.text()
    assert result.returncode == EXIT_WHEN_WRITTEN[option], result.stderr
    assert stat.S_ISFIFO(os.lstat(pipe).st_mode)
    check_content(option, text)
    if option == "--spill":
        assert f"{BUILD_SPANS} spans saved to {pipe}" in result.stderr  # not "LOST": no fsync on a FIFO


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("--output", "{path}: cannot write the trace: a FIFO that nothing is reading"),
        ("--traceparent-to", "{path}: cannot write the traceparent file: a FIFO that nothing is reading"),
        ("--html", "{path}: cannot write the report: a FIFO that nothing is reading"),
        ("--spill", "spans are LOST: cannot write {path}: a FIFO that nothing is reading"),
    ],
)
def test_a_fifo_nobody_reads_is_an_error_not_a_hang(
    target: Path, tmp_path: Path, option: str, message: str
) -> None:
    pipe = fifo(tmp_path)
    result = run_process(*args_writing(option, target, pipe, tmp_path))
    assert result.returncode == 3, result.stderr
    assert message.format(path=pipe) in result.stderr
    assert stat.S_ISFIFO(os.lstat(pipe).st_mode)


def test_a_backfill_writes_every_run_into_one_fifo_stream(tmp_path: Path) -> None:
    pipe = fifo(tmp_path)
    reader = FifoReader(pipe)
    result = run_process("backfill", str(FIXTURES / "build"), str(FIXTURES / "run"), "--output", str(pipe))
    text = reader.text()
    assert result.returncode == 0, result.stderr
    assert len({span.trace_id for span in from_otlp_json_lines(text)}) == 2, "both runs, one stream"
    assert stat.S_ISFIFO(os.lstat(pipe).st_mode)


def test_a_fifo_is_refused_as_the_ledger(tmp_path: Path) -> None:
    pipe = fifo(tmp_path)
    result = run_process("backfill", str(FIXTURES / "run"), "--ledger", str(pipe), *unreachable())
    assert result.returncode == 2, result.stderr
    assert f"{pipe}: cannot use it as the backfill ledger: not a regular file" in result.stderr
    assert stat.S_ISFIFO(os.lstat(pipe).st_mode)


def test_a_socket_is_refused_and_stays_a_socket(target: Path, tmp_path: Path) -> None:
    path = tmp_path / "sock"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        result = run(str(target), "--output", str(path))
    assert result.exit_code == 3, result.output
    assert f"{path}: cannot write the trace: a socket, not a file, a device or a FIFO" in result.stderr
    assert stat.S_ISSOCK(os.lstat(path).st_mode)


# --------------------------------------------------------------------------- #
# the run's own inputs: refused before anything is written or sent
# --------------------------------------------------------------------------- #


@pytest.fixture
def untouched(target: Path) -> Iterator[dict[str, bytes]]:
    """The artifacts' bytes before the test; checked unchanged after it."""
    before = {name: (target / name).read_bytes() for name in ("run_results.json", "manifest.json")}
    yield before
    assert {name: (target / name).read_bytes() for name in before} == before


@pytest.mark.parametrize("artifact", ["run_results.json", "manifest.json"])
@pytest.mark.parametrize("option", OPTIONS)
def test_an_output_naming_an_input_artifact_is_refused(
    target: Path, tmp_path: Path, untouched: dict[str, bytes], option: str, artifact: str
) -> None:
    victim = target / artifact
    result = run(*args_writing(option, target, victim, tmp_path))
    assert result.exit_code == 2, result.output
    assert result.stderr == f"dbt-otel-replay: error: {victim}: {INPUT_REFUSED}\n"
    assert not (target / "traceparent").exists() and not (tmp_path / "trace.json").exists()
    assert sorted(p.name for p in target.iterdir()) == ["manifest.json", "run_results.json"]


def test_a_link_to_an_input_artifact_is_refused(
    target: Path, tmp_path: Path, untouched: dict[str, bytes]
) -> None:
    link = tmp_path / "trace.json"
    link.symlink_to(target / "run_results.json")
    result = run(str(target), "--output", str(link))
    assert result.exit_code == 2, result.output
    assert f"{link}: {INPUT_REFUSED}" in result.stderr
    assert link.is_symlink()


def test_an_explicit_manifest_is_an_input_too(target: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "elsewhere" / "manifest.json"
    manifest.parent.mkdir()
    manifest.write_bytes((target / "manifest.json").read_bytes())
    before = manifest.read_bytes()
    result = run(str(target), "--manifest", str(manifest), "--output", str(manifest))
    assert result.exit_code == 2, result.output
    assert manifest.read_bytes() == before


def test_a_dry_run_refuses_too(target: Path, untouched: dict[str, bytes]) -> None:
    """A dry run previews the real run, so it refuses what the real one would do."""
    result = run(str(target), "--dry-run", "--traceparent-to", str(target / "manifest.json"))
    assert result.exit_code == 2, result.output
    assert INPUT_REFUSED in result.stderr


def test_write_html_refuses_the_inputs_it_is_given(target: Path, untouched: dict[str, bytes]) -> None:
    result = replay(target, ReplayOptions(dry_run=True))
    assert result.inputs == (target / "run_results.json", target / "manifest.json")
    with pytest.raises(ConfigError, match=INPUT_REFUSED):
        write_html(result.plan, target / "run_results.json", inputs=result.inputs)


def test_a_backfill_output_naming_an_archived_artifact_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    runs = [copy_pair(FIXTURES / name, archive / name) for name in ("build", "run")]
    before = {path: path.read_bytes() for run_dir in runs for path in run_dir.iterdir()}
    for option, extra in (("--output", []), ("--spill", unreachable())):
        victim = runs[1] / "manifest.json"
        result = run("backfill", "--recursive", str(archive), option, str(victim), *extra)
        assert result.exit_code == 2, result.output
        assert result.stderr == f"dbt-otel-replay: error: {victim}: {INPUT_REFUSED}\n"
    assert {path: path.read_bytes() for path in before} == before
