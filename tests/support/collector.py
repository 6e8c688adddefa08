"""Run the real rotel OTLP collector (shipped in the ``rotel`` wheel) for tests.

``RotelCollector`` starts ``rotel-agent start`` in the foreground as a child
process, listening for OTLP on free loopback ports and relaying every trace to
an upstream OTLP endpoint (normally an ``OtlpReceiver``).  It can be stopped
and started again on the *same* ports to simulate a collector outage.

The process is only ever signalled through its own pid (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Literal
from urllib.parse import urlsplit

from tests.support.receiver import LOOPBACK, TRACES_PATH, LoopbackEndpoints

__all__ = [
    "RotelCollector",
    "RotelError",
    "check_rotel_binary",
    "find_rotel_binary",
    "free_port",
    "port_accepts",
]

Protocol = Literal["grpc", "http"]


class RotelError(RuntimeError):
    """The rotel binary is missing, failed to start or misbehaved."""


def find_rotel_binary() -> Path:
    """Return the ``rotel-agent`` executable bundled with the ``rotel`` wheel.

    Raises RotelError with an actionable message when it cannot be found.
    """
    spec = importlib.util.find_spec("rotel")
    if spec is None or not spec.submodule_search_locations:
        raise RotelError("the 'rotel' package is not installed; `pip install rotel` to get rotel-agent")
    package_dir = Path(next(iter(spec.submodule_search_locations)))
    return check_rotel_binary(package_dir / "rotel-agent")


def check_rotel_binary(binary: Path) -> Path:
    """Return ``binary`` if it is an executable file, else raise RotelError."""
    if not binary.is_file():
        raise RotelError(
            f"rotel-agent binary not found at {binary}; reinstall the 'rotel' wheel for this platform"
        )
    if not os.access(binary, os.X_OK):
        raise RotelError(f"rotel-agent at {binary} is not executable")
    return binary


def free_port() -> int:
    """Return a loopback TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _two_free_ports() -> tuple[int, int]:
    """Two distinct free loopback ports."""
    first = free_port()
    second = free_port()
    while second == first:
        second = free_port()
    return first, second


def port_accepts(port: int, host: str = LOOPBACK, timeout: float = 0.2) -> bool:
    """True when a TCP connection to ``host:port`` succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _validate_upstream(endpoint: str, protocol: Protocol) -> None:
    """Reject upstream endpoints rotel would mis-handle.

    rotel needs a full URL: ``127.0.0.1:4317`` makes it exit with "relative URL
    without a base" *after* its receivers already listened.  For OTLP/HTTP it
    appends ``/v1/traces`` itself, so a traces URL would become
    ``/v1/traces/v1/traces`` (404, data dropped).
    """
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.port is None:
        raise ValueError(f"rotel needs an upstream endpoint like 'http://127.0.0.1:4317', got {endpoint!r}")
    if protocol == "http" and parts.path.rstrip("/").endswith(TRACES_PATH):
        raise ValueError(f"give rotel the OTLP/HTTP base URL without {TRACES_PATH!r}, got {endpoint!r}")


class RotelCollector(LoopbackEndpoints):
    """The rotel collector binary relaying OTLP traces to ``upstream_endpoint``.

    ``upstream_endpoint`` is a URL with scheme.  With ``protocol="grpc"`` it is
    the gRPC address (``http://127.0.0.1:PORT``); with ``protocol="http"`` it is
    the OTLP/HTTP *base* URL (rotel appends ``/v1/traces`` itself).
    """

    def __init__(
        self,
        upstream_endpoint: str,
        *,
        protocol: Protocol = "grpc",
        batch_timeout: str = "100ms",
        retry_initial_backoff: str = "200ms",
        retry_max_backoff: str = "1s",
        retry_max_elapsed_time: str = "30s",
        request_timeout: str = "5s",
        debug_log: bool = False,
        extra_args: Sequence[str] = (),
        startup_timeout: float = 10.0,
        binary: Path | None = None,
    ) -> None:
        _validate_upstream(upstream_endpoint, protocol)
        self.upstream_endpoint = upstream_endpoint
        self.protocol: Protocol = protocol
        self.batch_timeout = batch_timeout
        self.retry_initial_backoff = retry_initial_backoff
        self.retry_max_backoff = retry_max_backoff
        self.retry_max_elapsed_time = retry_max_elapsed_time
        self.request_timeout = request_timeout
        self.debug_log = debug_log
        self.extra_args = tuple(extra_args)
        self.startup_timeout = startup_timeout
        self.binary = check_rotel_binary(binary) if binary is not None else find_rotel_binary()
        self.grpc_port, self.http_port = _two_free_ports()
        self._workdir = Path(tempfile.mkdtemp(prefix="rotel-test-"))
        self.output_path = self._workdir / "rotel-output.log"
        self._output_file: IO[bytes] | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """Pid of the running rotel process, if any."""
        return self._process.pid if self._process is not None else None

    @property
    def is_running(self) -> bool:
        """True while the child process is alive."""
        return self._process is not None and self._process.poll() is None

    # -- lifecycle --------------------------------------------------------- #

    def __enter__(self) -> RotelCollector:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def command(self) -> list[str]:
        """The exact rotel command line used by ``start``."""
        args = [
            str(self.binary), "start",
            "--otlp-grpc-endpoint", f"{LOOPBACK}:{self.grpc_port}",
            "--otlp-http-endpoint", f"{LOOPBACK}:{self.http_port}",
            "--exporter", "otlp",
            "--otlp-exporter-endpoint", self.upstream_endpoint,
            "--otlp-exporter-protocol", self.protocol,
            "--batch-timeout", self.batch_timeout,
            "--otlp-exporter-request-timeout", self.request_timeout,
            "--otlp-exporter-retry-initial-backoff", self.retry_initial_backoff,
            "--otlp-exporter-retry-max-backoff", self.retry_max_backoff,
            "--otlp-exporter-retry-max-elapsed-time", self.retry_max_elapsed_time,
            "--pid-file", str(self._workdir / "rotel.pid"),
            "--log-file", str(self._workdir / "rotel-daemon.log"),
        ]  # fmt: skip
        if self.debug_log:
            args += ["--debug-log", "traces", "--debug-log-verbosity", "detailed"]
        return args + list(self.extra_args)

    def start(self) -> None:
        """Launch rotel on this instance's ports and wait until both accept TCP."""
        if self.is_running:
            raise RotelError(f"rotel is already running (pid {self.pid})")
        self._wait_ports_released()
        self._output_file = self.output_path.open("ab")
        self._process = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=self._output_file,
            stderr=subprocess.STDOUT,
            env=_clean_environment(),
            cwd=self._workdir,
        )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM rotel by pid, wait, SIGKILL if needed. Returns the exit code."""
        process, self._process = self._process, None
        returncode = None
        if process is not None:
            returncode = _terminate(process, timeout)
        self._close_output()
        return returncode

    def kill(self) -> int | None:
        """Simulate a crash: SIGKILL rotel by pid (no flush). Returns the exit code."""
        process, self._process = self._process, None
        returncode = None
        if process is not None:
            if process.poll() is None:
                process.kill()
            returncode = process.wait(timeout=10.0)
        self._close_output()
        return returncode

    def restart(self) -> None:
        """Stop and start again on the same ports."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop rotel and delete its temporary directory."""
        self.stop()
        shutil.rmtree(self._workdir, ignore_errors=True)

    def output(self) -> str:
        """Everything rotel wrote to stdout/stderr so far (all runs)."""
        try:
            return self.output_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # -- internals --------------------------------------------------------- #

    def _close_output(self) -> None:
        """Close our handle on the output file (rotel keeps its own until exit)."""
        if self._output_file is not None:
            self._output_file.close()
            self._output_file = None

    def _wait_ready(self) -> None:
        """Wait (bounded) for both receivers to accept TCP, then check rotel stayed up."""
        deadline = time.monotonic() + self.startup_timeout
        while not (port_accepts(self.grpc_port) and port_accepts(self.http_port)):
            self._raise_if_exited()
            if time.monotonic() >= deadline:
                raise RotelError(self._describe(f"rotel did not listen within {self.startup_timeout:.1f}s"))
            time.sleep(0.02)
        # rotel binds its receivers before building exporters; a bad exporter
        # config makes it exit a few ms *after* the ports opened.
        time.sleep(0.1)
        self._raise_if_exited()

    def _wait_ports_released(self, timeout: float = 5.0) -> None:
        """Before a restart, wait until nothing listens on our ports any more."""
        deadline = time.monotonic() + timeout
        while port_accepts(self.grpc_port) or port_accepts(self.http_port):
            if time.monotonic() >= deadline:
                raise RotelError(
                    f"ports {self.grpc_port}/{self.http_port} are still in use by another process"
                )
            time.sleep(0.05)

    def _raise_if_exited(self) -> None:
        """Raise RotelError (with rotel's output) if the process has exited."""
        if self._process is not None and self._process.poll() is not None:
            raise RotelError(self._describe(f"rotel exited early with code {self._process.returncode}"))

    def _describe(self, problem: str) -> str:
        """Problem text plus command line and captured output."""
        return f"{problem}\ncommand: {' '.join(self.command())}\noutput:\n{self.output()}"


def _clean_environment() -> dict[str, str]:
    """The current environment without ROTEL_* variables, which rotel would read as flags."""
    return {key: value for key, value in os.environ.items() if not key.startswith("ROTEL_")}


def _terminate(process: subprocess.Popen[bytes], timeout: float) -> int:
    """SIGTERM ``process`` (by its pid), then SIGKILL after ``timeout`` seconds."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait(timeout=timeout)
