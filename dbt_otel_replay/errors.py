"""The exception hierarchy of dbt-otel-replay and the exit codes the CLI maps it to.

Every error the library raises for a reason outside its own code derives from
:class:`ReplayError`, carries a message that names the file or value at fault,
and knows the process exit code the command line reports for it.
"""

from __future__ import annotations

from pathlib import Path

EXIT_OK = 0
"""The trace was delivered (or written, or printed with --dry-run)."""
EXIT_BAD_INPUT = 1
"""An artifact is missing, unreadable or not what it claims to be; nothing was sent."""
EXIT_USAGE = 2
"""The command line or the upstream trace context is wrong; nothing was sent."""
EXIT_EXPORT_FAILED = 3
"""The artifacts were fine, but the collector did not accept every span."""
EXIT_INTERNAL_ERROR = 70
"""A bug in dbt-otel-replay (EX_SOFTWARE): one line says so; DBT_OTEL_REPLAY_DEBUG=1 shows the traceback."""
EXIT_SIGNAL_BASE = 128
"""Stopped by signal N (SIGTERM, SIGINT) while sending: 128 + N, so 143 or 130; what was unsent is saved."""


class ReplayError(Exception):
    """Base class of every error dbt-otel-replay reports to its user."""

    exit_code: int = EXIT_BAD_INPUT


class ArtifactError(ReplayError):
    """A dbt artifact is missing, corrupt or not a dbt artifact of the expected kind."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, path: Path | str, problem: str) -> None:
        """Create the error.

        Args:
            path: The artifact file at fault.
            problem: What is wrong with it, as a sentence fragment.
        """
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class ContextError(ReplayError):
    """An upstream trace context (traceparent, tracestate, carrier file) is malformed."""

    exit_code = EXIT_USAGE


class ConfigError(ReplayError):
    """An export setting (flag or OTEL_* variable) has a value that cannot be used."""

    exit_code = EXIT_USAGE


class ExportError(ReplayError):
    """The collector did not accept every span, or the output file could not be written."""

    exit_code = EXIT_EXPORT_FAILED

    def __init__(self, message: str, *, sent: int = 0, total: int = 0) -> None:
        """Create the error.

        Args:
            message: What failed, naming the endpoint or file.
            sent: How many spans were accepted before the failure.
            total: How many spans the trace has.
        """
        self.sent = sent
        self.total = total
        super().__init__(message)


class StoppedError(ExportError):
    """A stop signal ended the delivery; the spans not accepted were saved (or the message says LOST)."""

    def __init__(self, message: str, *, signum: int, sent: int = 0, total: int = 0) -> None:
        """Create the error.

        Args:
            message: What was delivered and where the rest went.
            signum: The signal that stopped it; the exit code is 128 + signum.
            sent: How many spans were accepted before the stop.
            total: How many spans there were.
        """
        super().__init__(message, sent=sent, total=total)
        self.exit_code = EXIT_SIGNAL_BASE + signum
