"""Running the real command in process, with an environment that cannot leak into the test.

Every CLI test invokes ``dbt_otel_replay.cli.main`` through click's CliRunner with
the variables the tool reads cleared, so a TRACEPARENT or OTEL_* setting of the
machine running the suite changes nothing.
"""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner, Result

from dbt_otel_replay.cli import main
from tests.support.contract import copy_pair

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "artifacts"

CLEAN_ENV = {
    "TRACEPARENT": "",
    "TRACESTATE": "",
    "OTEL_SERVICE_NAME": "",
    "OTEL_RESOURCE_ATTRIBUTES": "",
    "OTEL_EXPORTER_OTLP_PROTOCOL": "",
    "OTEL_EXPORTER_OTLP_HEADERS": "",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "",
    "OTEL_EXPORTER_OTLP_ENDPOINT": "",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "",
    "OTEL_SDK_DISABLED": "",
    "OTEL_TRACES_EXPORTER": "",
    "GITHUB_STEP_SUMMARY": "",
    "DBT_OTEL_REPLAY_TRACE_URL": "",
}
"""The variables the tool reads, empty (the tool treats an empty variable as unset)."""


def run_cli(*args: str, env: dict[str, str] | None = None) -> Result:
    """``dbt-otel-replay ARGS`` in process, its stdout and stderr apart."""
    return CliRunner().invoke(main, list(args), env={**CLEAN_ENV, **(env or {})})


def fixture_target(directory: Path) -> Path:
    """A copy of the fixture build's artifacts in ``directory`` (tests may edit or write beside them)."""
    copy_pair(FIXTURES / "build", directory)
    return directory
