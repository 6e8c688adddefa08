"""The CI and orchestrator recipes: GitHub Action, GitLab CI, Airflow (examples/, action.yml).

Nothing here needs GitHub, GitLab or Airflow: the action's scripts run with fake
GITHUB_ENV/GITHUB_OUTPUT files, the YAML files are checked for structure and against
their published JSON schemas (shipped by check-jsonschema), the traceparent file is
checked against GitLab's dotenv rules, and the Airflow glue is plain Python. The DAG
itself is imported and run by Airflow only when AIRFLOW_PYTHON names an interpreter
that has Airflow (see test_airflow_* at the end).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from dbt_otel_replay.cli import main
from tests.support.receiver import OtlpReceiver

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURE_BUILD = REPO_ROOT / "fixtures" / "artifacts" / "build"
ACTION_FILE = REPO_ROOT / "action.yml"
GITHUB_DIR = REPO_ROOT / "examples" / "github"
EXPORT_CONTEXT = GITHUB_DIR / "export-context.sh"
REPLAY_SCRIPT = GITHUB_DIR / "replay.sh"
WORKFLOW_FILE = GITHUB_DIR / "dbt.yml"
GITLAB_FILE = REPO_ROOT / "examples" / "gitlab" / ".gitlab-ci.yml"
AIRFLOW_DIR = REPO_ROOT / "examples" / "airflow"
DAG_FILE = AIRFLOW_DIR / "dbt_trace_dag.py"
CLI_BINARY = Path(sys.executable).parent / "dbt-otel-replay"

UPSTREAM_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
UPSTREAM_SPAN = "00f067aa0ba902b7"
UPSTREAM = f"00-{UPSTREAM_TRACE}-{UPSTREAM_SPAN}-01"
TRACESTATE = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
TRACEPARENT_RE = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01")
BASH = shutil.which("bash") or "/bin/bash"


# --------------------------------------------------------------------------- #
# helpers
# --------------------------------------------------------------------------- #


def load_yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), f"{path.name} must be a YAML mapping"
    if True in data:  # YAML 1.1 reads a workflow's `on:` key as the boolean True
        data["on"] = data.pop(True)
    return data


def clean_env(**extra: str) -> dict[str, str]:
    """A minimal environment for the scripts: no TRACEPARENT, GITHUB_* or OTEL_* of the caller."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp")}
    env.update(extra)
    return env


def run_cli(*args: str, env: dict[str, str] | None = None) -> Any:
    base = {"TRACEPARENT": "", "TRACESTATE": "", "OTEL_SERVICE_NAME": "", "OTEL_RESOURCE_ATTRIBUTES": ""}
    return CliRunner().invoke(main, list(args), env={**base, **(env or {})})


def check_schema(schema: str, path: Path) -> subprocess.CompletedProcess[str]:
    """Validate a file with check-jsonschema's vendored copy of a published schema."""
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", f"vendor.{schema}", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture(scope="module")
def glue() -> Iterator[ModuleType]:
    """examples/airflow/trace_glue.py, imported by path (it is not a package)."""
    spec = importlib.util.spec_from_file_location("trace_glue", AIRFLOW_DIR / "trace_glue.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["trace_glue"] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("trace_glue", None)


# --------------------------------------------------------------------------- #
# GitHub Actions: examples/github/export-context.sh
# --------------------------------------------------------------------------- #


class GithubFiles:
    """Fake $GITHUB_ENV / $GITHUB_OUTPUT files, with what an earlier step left in them."""

    def __init__(self, directory: Path, env_text: str = "", output_text: str = "") -> None:
        self.env = directory / "github_env"
        self.output = directory / "github_output"
        self.env.write_text(env_text)
        self.output.write_text(output_text)

    def environ(self, **extra: str) -> dict[str, str]:
        return clean_env(GITHUB_ENV=str(self.env), GITHUB_OUTPUT=str(self.output), **extra)


def export_context(carrier: Path, files: GithubFiles, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BASH, str(EXPORT_CONTEXT), str(carrier)],
        env=files.environ(**env),
        capture_output=True,
        text=True,
        check=False,
    )


def test_export_context_appends_traceparent_and_keeps_what_was_there(tmp_path: Path) -> None:
    files = GithubFiles(tmp_path, env_text="DBT_TARGET=prod\n", output_text="build=ok\n")
    carrier = tmp_path / "traceparent"
    carrier.write_text(f"TRACEPARENT={UPSTREAM}\n")
    result = export_context(carrier, files)
    assert result.returncode == 0, result.stderr
    assert files.env.read_text() == f"DBT_TARGET=prod\nTRACEPARENT={UPSTREAM}\n"
    assert files.output.read_text() == f"build=ok\ntraceparent={UPSTREAM}\n"
    assert UPSTREAM in result.stdout


def test_export_context_passes_tracestate_on(tmp_path: Path) -> None:
    files = GithubFiles(tmp_path)
    carrier = tmp_path / "traceparent"
    carrier.write_text(f"TRACEPARENT={UPSTREAM}\nTRACESTATE={TRACESTATE}\n")
    assert export_context(carrier, files).returncode == 0
    assert files.env.read_text() == f"TRACEPARENT={UPSTREAM}\nTRACESTATE={TRACESTATE}\n"
    assert files.output.read_text() == f"traceparent={UPSTREAM}\ntracestate={TRACESTATE}\n"


def test_export_context_writes_no_tracestate_line_when_there_is_none(tmp_path: Path) -> None:
    files = GithubFiles(tmp_path)
    carrier = tmp_path / "traceparent"
    carrier.write_text(f"TRACEPARENT={UPSTREAM}\n")
    assert export_context(carrier, files).returncode == 0
    assert "TRACESTATE" not in files.env.read_text()
    assert "tracestate" not in files.output.read_text()


def test_export_context_starts_a_new_line_after_an_unterminated_one(tmp_path: Path) -> None:
    files = GithubFiles(tmp_path, env_text="A=1", output_text="a=1")
    carrier = tmp_path / "traceparent"
    carrier.write_text(f"TRACEPARENT={UPSTREAM}")  # no final newline either
    assert export_context(carrier, files).returncode == 0
    assert files.env.read_text() == f"A=1\nTRACEPARENT={UPSTREAM}\n"
    assert files.output.read_text() == f"a=1\ntraceparent={UPSTREAM}\n"


def test_export_context_is_lenient_like_traceparent_from(tmp_path: Path) -> None:
    files = GithubFiles(tmp_path)
    carrier = tmp_path / "traceparent"
    carrier.write_text(
        f"# otel-cli\r\nexport TRACEPARENT=\"{UPSTREAM}\"\r\n\r\nexport TRACESTATE='{TRACESTATE}'\r\n"
    )
    result = export_context(carrier, files)
    assert result.returncode == 0, result.stderr
    assert files.env.read_text() == f"TRACEPARENT={UPSTREAM}\nTRACESTATE={TRACESTATE}\n"


def test_export_context_reads_a_carrier_with_a_byte_order_mark(tmp_path: Path) -> None:
    files = GithubFiles(tmp_path)
    carrier = tmp_path / "traceparent"
    carrier.write_bytes(f"\ufeffTRACEPARENT={UPSTREAM}\r\nTRACESTATE={TRACESTATE}\r\n".encode())
    result = export_context(carrier, files)
    assert result.returncode == 0, result.stderr
    assert files.env.read_text() == f"TRACEPARENT={UPSTREAM}\nTRACESTATE={TRACESTATE}\n"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (f"TRACESTATE={TRACESTATE}\n", "no TRACEPARENT=... line"),
        ("", "no TRACEPARENT=... line"),
        ("TRACEPARENT=not-a-traceparent\n", "is not a W3C traceparent"),
        (f"TRACEPARENT={UPSTREAM.upper()}\n", "is not a W3C traceparent"),
    ],
    ids=["only-tracestate", "empty", "malformed", "uppercase"],
)
def test_export_context_fails_clearly_without_a_traceparent(
    tmp_path: Path, content: str, message: str
) -> None:
    files = GithubFiles(tmp_path, env_text="KEEP=1\n", output_text="keep=1\n")
    carrier = tmp_path / "traceparent"
    carrier.write_text(content)
    result = export_context(carrier, files)
    assert result.returncode == 1
    assert result.stderr.startswith("::error title=dbt-otel-replay::")
    assert message in result.stderr and str(carrier) in result.stderr
    assert files.env.read_text() == "KEEP=1\n" and files.output.read_text() == "keep=1\n"


def test_export_context_fails_clearly_on_a_missing_carrier(tmp_path: Path) -> None:
    files = GithubFiles(tmp_path)
    result = export_context(tmp_path / "absent", files)
    assert result.returncode == 1
    assert "no traceparent file" in result.stderr
    assert files.env.read_text() == ""


def test_export_context_needs_the_github_files(tmp_path: Path) -> None:
    carrier = tmp_path / "traceparent"
    carrier.write_text(f"TRACEPARENT={UPSTREAM}\n")
    result = subprocess.run(
        [BASH, str(EXPORT_CONTEXT), str(carrier)], env=clean_env(), capture_output=True, text=True
    )
    assert result.returncode == 1
    assert "GITHUB_ENV is not set" in result.stderr


def test_export_context_on_the_file_the_cli_writes(target: Path, tmp_path: Path) -> None:
    result = run_cli(str(target), "--output", str(tmp_path / "trace.jsonl"))
    assert result.exit_code == 0, result.stderr
    files = GithubFiles(tmp_path)
    assert export_context(target / "traceparent", files).returncode == 0
    assert files.env.read_text() == (target / "traceparent").read_text()
    assert files.output.read_text() == (target / "traceparent").read_text().replace(
        "TRACEPARENT=", "traceparent="
    )


def test_export_context_appends_through_a_symlink_and_into_a_device(tmp_path: Path) -> None:
    """GITHUB_ENV/GITHUB_OUTPUT are appended to with >>: a link and a device stay what they are."""
    if os.geteuid() != 0:
        pytest.skip("making a device node needs root")
    carrier = tmp_path / "traceparent"
    carrier.write_text(f"TRACEPARENT={UPSTREAM}\n")
    real = tmp_path / "real" / "github_env"
    real.parent.mkdir()
    real.write_text("EARLIER=1")  # an earlier step left no final newline
    link = tmp_path / "github_env"
    link.symlink_to(real)
    null = tmp_path / "null"  # a null device of our own, never the real one
    os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    result = subprocess.run(
        [BASH, str(EXPORT_CONTEXT), str(carrier)],
        env=clean_env(GITHUB_ENV=str(link), GITHUB_OUTPUT=str(null)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert link.is_symlink() and real.read_text() == f"EARLIER=1\nTRACEPARENT={UPSTREAM}\n"
    assert stat.S_ISCHR(os.lstat(null).st_mode) and os.lstat(null).st_rdev == os.makedev(1, 3)


def test_export_context_writes_into_fifos_without_reading_them(tmp_path: Path) -> None:
    """A FIFO is neither replaced nor read back (no last byte to read there): its reader gets every line."""
    carrier = tmp_path / "traceparent"
    carrier.write_text(f"TRACEPARENT={UPSTREAM}\nTRACESTATE={TRACESTATE}\n")
    pipes = {name: tmp_path / name for name in ("github_env", "github_output")}
    received: dict[str, str] = {}

    def read(name: str) -> None:
        with pipes[name].open(encoding="utf-8") as pipe:  # blocks until the script opens it
            received[name] = pipe.read()

    readers = []
    for name, path in pipes.items():
        os.mkfifo(path)
        readers.append(threading.Thread(target=read, args=(name,), daemon=True))
        readers[-1].start()
    result = subprocess.run(
        [BASH, str(EXPORT_CONTEXT), str(carrier)],
        env=clean_env(GITHUB_ENV=str(pipes["github_env"]), GITHUB_OUTPUT=str(pipes["github_output"])),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    for reader in readers:
        reader.join(60)
    assert result.returncode == 0, result.stderr
    assert received == {
        "github_env": f"TRACEPARENT={UPSTREAM}\nTRACESTATE={TRACESTATE}\n",
        "github_output": f"traceparent={UPSTREAM}\ntracestate={TRACESTATE}\n",
    }
    assert all(stat.S_ISFIFO(os.lstat(path).st_mode) for path in pipes.values())


# --------------------------------------------------------------------------- #
# GitHub Actions: examples/github/replay.sh (the action's replay step)
# --------------------------------------------------------------------------- #

FAKE_CLI = textwrap.dedent(
    """\
    #!/usr/bin/env bash
    # Records its arguments; writes a carrier to --traceparent-to unless FAKE_NO_CARRIER is set.
    printf '%s\\n' "$@" > "$FAKE_ARGS"
    while [ $# -gt 0 ]; do
        if [ "$1" = --traceparent-to ]; then to=$2; fi
        shift
    done
    if [ -z "${FAKE_NO_CARRIER:-}" ]; then
        printf 'TRACEPARENT=%s\\n' "$FAKE_TRACEPARENT" > "$to"
    fi
    exit "${FAKE_EXIT:-0}"
    """
)
FAKE_RUN = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def fake_cli(tmp_path: Path) -> Path:
    path = tmp_path / "fake-dbt-otel-replay"
    path.write_text(FAKE_CLI)
    path.chmod(0o755)
    return path


def run_replay_step(
    files: GithubFiles, cwd: Path, command: Path, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BASH, str(REPLAY_SCRIPT)],
        cwd=cwd,
        env=files.environ(DBT_OTEL_REPLAY=str(command), **env),
        capture_output=True,
        text=True,
        check=False,
    )


def test_replay_step_turns_inputs_into_options(tmp_path: Path, target: Path, fake_cli: Path) -> None:
    files = GithubFiles(tmp_path)
    args_file = tmp_path / "args"
    result = run_replay_step(
        files,
        tmp_path,
        fake_cli,
        FAKE_ARGS=str(args_file),
        FAKE_TRACEPARENT=FAKE_RUN,
        INPUT_TARGET="target",
        INPUT_ENDPOINT="https://otel.example.com:4318",
        INPUT_PROTOCOL="http/json",
        INPUT_SERVICE_NAME="dbt-nightly",
        INPUT_HEADERS="  x-api-key=s3cr3t  \n\nx-team = data, analytics\r\n",
        INPUT_ARGS="--timeout 30  --include-sql",
    )
    assert result.returncode == 0, result.stderr
    assert args_file.read_text().splitlines() == [
        "replay",
        "target",
        "--traceparent-to",
        "target/traceparent",
        "--endpoint",
        "https://otel.example.com:4318",
        "--protocol",
        "http/json",
        "--service-name",
        "dbt-nightly",
        "--header",
        "x-api-key=s3cr3t",
        "--header",
        "x-team = data, analytics",  # one per line: a value may hold a comma
        "--timeout",
        "30",
        "--include-sql",
    ]
    assert files.env.read_text() == f"TRACEPARENT={FAKE_RUN}\n"
    assert files.output.read_text() == f"traceparent={FAKE_RUN}\n"
    assert "s3cr3t" not in result.stdout + result.stderr


def test_replay_step_splits_one_line_of_headers_on_commas(
    tmp_path: Path, target: Path, fake_cli: Path
) -> None:
    args_file = tmp_path / "args"
    result = run_replay_step(
        GithubFiles(tmp_path),
        tmp_path,
        fake_cli,
        FAKE_ARGS=str(args_file),
        FAKE_TRACEPARENT=FAKE_RUN,
        INPUT_HEADERS="a=1, b=2,,c=3",
    )
    assert result.returncode == 0, result.stderr
    args = args_file.read_text().splitlines()
    assert args[:4] == ["replay", "target", "--traceparent-to", "target/traceparent"]  # the default target
    assert args[4:] == ["--header", "a=1", "--header", "b=2", "--header", "c=3"]


def test_replay_step_masks_header_values_on_github(tmp_path: Path, target: Path, fake_cli: Path) -> None:
    result = run_replay_step(
        GithubFiles(tmp_path),
        tmp_path,
        fake_cli,
        FAKE_ARGS=str(tmp_path / "args"),
        FAKE_TRACEPARENT=FAKE_RUN,
        INPUT_HEADERS="x-api-key=s3cr3t",
        GITHUB_ACTIONS="true",
    )
    assert result.returncode == 0, result.stderr
    assert "::add-mask::s3cr3t\n" in result.stdout


def test_replay_step_hands_the_context_on_when_the_export_failed(
    tmp_path: Path, target: Path, fake_cli: Path
) -> None:
    files = GithubFiles(tmp_path)
    result = run_replay_step(
        files, tmp_path, fake_cli, FAKE_ARGS=str(tmp_path / "args"), FAKE_TRACEPARENT=FAKE_RUN, FAKE_EXIT="3"
    )
    assert result.returncode == 3
    assert files.env.read_text() == f"TRACEPARENT={FAKE_RUN}\n"


def test_replay_step_hands_on_no_stale_context(tmp_path: Path, target: Path, fake_cli: Path) -> None:
    (target / "traceparent").write_text(f"TRACEPARENT={UPSTREAM}\n")  # left by an earlier run
    files = GithubFiles(tmp_path)
    result = run_replay_step(
        files, tmp_path, fake_cli, FAKE_ARGS=str(tmp_path / "args"), FAKE_NO_CARRIER="1", FAKE_EXIT="1"
    )
    assert result.returncode == 1
    assert "::warning title=dbt-otel-replay::no trace context" in result.stderr
    assert files.env.read_text() == "" and files.output.read_text() == ""
    assert not (target / "traceparent").exists()


def test_replay_step_with_the_real_cli_joins_the_upstream_trace(
    tmp_path: Path, target: Path, otlp_receiver: OtlpReceiver
) -> None:
    files = GithubFiles(tmp_path)
    result = run_replay_step(
        files,
        tmp_path,
        CLI_BINARY,
        INPUT_TARGET=str(target),
        INPUT_ENDPOINT=otlp_receiver.http_base_endpoint,
        INPUT_PROTOCOL="http/protobuf",
        INPUT_HEADERS="x-api-key=s3cr3t",
        INPUT_SERVICE_NAME="dbt-ci",
        TRACEPARENT=UPSTREAM,
        TRACESTATE=TRACESTATE,
    )
    assert result.returncode == 0, result.stderr
    spans = otlp_receiver.spans()
    assert spans and {span.trace_id for span in spans} == {UPSTREAM_TRACE}
    [invocation] = [span for span in spans if span.parent_span_id == UPSTREAM_SPAN]
    assert invocation.name == "dbt build"
    assert {span.resource_attributes["service.name"] for span in spans} == {"dbt-ci"}
    assert all(headers.get("x-api-key") == "s3cr3t" for headers in otlp_receiver.headers)
    context = f"00-{UPSTREAM_TRACE}-{invocation.span_id}-01"
    assert files.env.read_text() == f"TRACEPARENT={context}\nTRACESTATE={TRACESTATE}\n"
    assert files.output.read_text() == f"traceparent={context}\ntracestate={TRACESTATE}\n"
    assert "s3cr3t" not in result.stdout + result.stderr


def test_the_action_passes_traces_endpoint_to_the_step(action: dict[str, Any]) -> None:
    (step,) = [step for step in action["runs"]["steps"] if step.get("id") == "replay"]
    assert step["env"]["INPUT_TRACES_ENDPOINT"] == "${{ inputs.traces-endpoint }}"
    assert step["env"]["INPUT_ARGS"] == "${{ inputs.args }}"


def test_replay_step_with_a_traces_endpoint_and_a_base_endpoint(
    tmp_path: Path, target: Path, otlp_receiver: OtlpReceiver
) -> None:
    """The action's traces-endpoint input: the full URL wins over the base."""
    files = GithubFiles(tmp_path)
    result = run_replay_step(
        files,
        tmp_path,
        CLI_BINARY,
        INPUT_TARGET=str(target),
        INPUT_ENDPOINT="http://127.0.0.1:1/otlp",  # a base URL that would fail: never used
        INPUT_TRACES_ENDPOINT=otlp_receiver.http_endpoint,
        INPUT_ARGS="--quiet",
    )
    assert result.returncode == 0, result.stderr
    assert otlp_receiver.span_count() > 0


def test_the_github_scripts_pass_bash_n_and_shellcheck() -> None:
    for script in (EXPORT_CONTEXT, REPLAY_SCRIPT):
        assert subprocess.run([BASH, "-n", str(script)], check=False).returncode == 0, script
        assert os.access(script, os.X_OK), f"{script.name} should be executable"
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed")
    result = subprocess.run(
        [shellcheck, str(EXPORT_CONTEXT), str(REPLAY_SCRIPT)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout


# --------------------------------------------------------------------------- #
# GitHub Actions: action.yml
# --------------------------------------------------------------------------- #

_EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)


def expressions(node: Any) -> list[str]:
    """The ``${{ ... }}`` expressions anywhere in a parsed YAML document."""
    if isinstance(node, dict):
        return [e for key, value in node.items() for e in expressions(key) + expressions(value)]
    if isinstance(node, list):
        return [e for item in node for e in expressions(item)]
    return [m.strip() for m in _EXPRESSION.findall(node)] if isinstance(node, str) else []


@pytest.fixture(scope="module")
def action() -> dict[str, Any]:
    return load_yaml(ACTION_FILE)


def test_action_is_a_composite_action_whose_steps_all_name_a_shell(action: dict[str, Any]) -> None:
    assert action["runs"]["using"] == "composite"
    steps = action["runs"]["steps"]
    assert steps
    for step in steps:
        if "run" in step:
            assert step.get("shell") == "bash", f"step {step.get('name')!r} needs shell: bash"
        else:
            assert "uses" in step


def test_action_inputs_and_outputs(action: dict[str, Any]) -> None:
    inputs = action["inputs"]
    assert {"target", "endpoint", "protocol", "headers", "service-name", "pip-spec"} <= set(inputs)
    assert inputs["target"]["default"] == "target"
    assert all("description" in spec for spec in inputs.values())
    assert not any(spec.get("required") for spec in inputs.values())
    assert set(action["outputs"]) == {"traceparent", "tracestate"}


def test_action_references_only_inputs_that_exist_and_uses_all_of_them(action: dict[str, Any]) -> None:
    referenced = {
        m.group(1)
        for expression in expressions(action["runs"])
        for m in re.finditer(r"inputs\.([A-Za-z0-9_-]+)", expression)
    }
    assert referenced == set(action["inputs"])


def test_action_outputs_come_from_its_steps(action: dict[str, Any]) -> None:
    step_ids = {step["id"] for step in action["runs"]["steps"] if "id" in step}
    for name, output in action["outputs"].items():
        match = re.fullmatch(
            r"\$\{\{\s*steps\.([A-Za-z0-9_-]+)\.outputs\.([A-Za-z0-9_-]+)\s*\}\}", output["value"]
        )
        assert match, f"output {name} should be a step output"
        assert match.group(1) in step_ids
        assert match.group(2) == name  # what export-context.sh writes to $GITHUB_OUTPUT


def test_action_never_interpolates_inputs_into_scripts(action: dict[str, Any]) -> None:
    # Inputs reach the scripts through env: only, so a header or path can never inject shell code.
    for step in action["runs"]["steps"]:
        assert not expressions(step.get("run", "")), f"step {step.get('name')!r}: use env: for ${{{{ }}}}"


def test_action_runs_the_repository_scripts(action: dict[str, Any]) -> None:
    runs = "\n".join(step.get("run", "") for step in action["runs"]["steps"])
    assert '"$GITHUB_ACTION_PATH/examples/github/replay.sh"' in runs
    assert "export-context.sh" in REPLAY_SCRIPT.read_text()
    # The default installs the action's own checkout, in a virtual environment of its own.
    assert '"${PIP_SPEC:-$GITHUB_ACTION_PATH}"' in runs and "-m venv" in runs


def test_action_documents_running_after_a_failed_build() -> None:
    text = ACTION_FILE.read_text()
    assert "if: always()" in text
    assert "uses: your-org/dbt-otel-replay@main" in text


def test_action_matches_the_published_action_schema() -> None:
    result = check_schema("github-actions", ACTION_FILE)
    assert result.returncode == 0, result.stdout + result.stderr


# --------------------------------------------------------------------------- #
# GitHub Actions: examples/github/dbt.yml
# --------------------------------------------------------------------------- #


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    return load_yaml(WORKFLOW_FILE)


def test_workflow_traces_the_build_even_when_it_failed(
    workflow: dict[str, Any], action: dict[str, Any]
) -> None:
    assert "on" in workflow
    steps = workflow["jobs"]["dbt"]["steps"]
    build = next(i for i, step in enumerate(steps) if "dbt build" in step.get("run", ""))
    replay = next(i for i, step in enumerate(steps) if "/dbt-otel-replay@" in step.get("uses", ""))
    assert build < replay
    assert steps[replay]["if"] == "always()"
    assert set(steps[replay].get("with", {})) <= set(action["inputs"])
    later = [step.get("run", "") for step in steps[replay + 1 :]]
    assert any(re.search(r"\$\{?TRACEPARENT\b", run) for run in later)


def test_workflow_passes_the_context_to_other_jobs(workflow: dict[str, Any]) -> None:
    dbt = workflow["jobs"]["dbt"]
    replay = next(step for step in dbt["steps"] if "/dbt-otel-replay@" in step.get("uses", ""))
    assert dbt["outputs"]["traceparent"] == f"${{{{ steps.{replay['id']}.outputs.traceparent }}}}"
    notify = workflow["jobs"]["notify"]
    assert notify["needs"] == "dbt"
    assert notify["env"]["TRACEPARENT"] == "${{ needs.dbt.outputs.traceparent }}"


def test_workflow_matches_the_published_workflow_schema() -> None:
    result = check_schema("github-workflows", WORKFLOW_FILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_workflow_schema_check_catches_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "dbt.yml"
    broken.write_text(WORKFLOW_FILE.read_text().replace("runs-on:", "runs_on:", 1))
    assert check_schema("github-workflows", broken).returncode == 1


# --------------------------------------------------------------------------- #
# GitLab CI: examples/gitlab/.gitlab-ci.yml and the dotenv report
# --------------------------------------------------------------------------- #

DOTENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
DOTENV_MAX_BYTES = 5 * 1024
DOTENV_MAX_VARIABLES = 20


def check_gitlab_dotenv(text: str) -> dict[str, str]:
    """GitLab's rules for an ``artifacts:reports:dotenv`` file; returns its variables."""
    assert len(text.encode()) < DOTENV_MAX_BYTES, "a dotenv report must be smaller than 5 KB"
    assert text.endswith("\n") and "\r" not in text
    variables: dict[str, str] = {}
    for line in text[:-1].split("\n"):
        assert line, "no blank lines"
        assert not line.lstrip().startswith("#"), "no comments"
        assert not line.startswith("export "), "no export prefix"
        key, sep, value = line.partition("=")
        assert sep, f"{line!r} is not KEY=VALUE"
        assert DOTENV_KEY.fullmatch(key), f"{key!r} is not a valid variable name"
        assert not re.search(r"[\"'`]", value), "no quotes"
        assert "\\n" not in value and value == value.strip(), "no escapes or surrounding blanks"
        assert key not in variables, f"{key} twice"
        variables[key] = value
    assert len(variables) <= DOTENV_MAX_VARIABLES
    return variables


@pytest.mark.parametrize(
    ("args", "env", "expected_state"),
    [
        ((), {}, None),
        # Whether TRACESTATE joins --traceparent is the CLI's business; either way the file is valid.
        (("--traceparent", UPSTREAM), {"TRACESTATE": TRACESTATE}, "either"),
        ((), {"TRACEPARENT": UPSTREAM, "TRACESTATE": TRACESTATE}, TRACESTATE),
        ((), {"TRACEPARENT": UPSTREAM, "TRACESTATE": ",".join(f"k{i}=v{i}" for i in range(32))}, "32"),
    ],
    ids=["no-upstream", "traceparent-flag", "upstream-env", "32-member-tracestate"],
)
def test_the_traceparent_file_is_a_valid_gitlab_dotenv_report(
    target: Path, tmp_path: Path, args: tuple[str, ...], env: dict[str, str], expected_state: str | None
) -> None:
    result = run_cli(str(target), "--output", str(tmp_path / "trace.jsonl"), *args, env=env)
    assert result.exit_code == 0, result.stderr
    variables = check_gitlab_dotenv((target / "traceparent").read_text())
    assert TRACEPARENT_RE.fullmatch(variables["TRACEPARENT"])
    if args or env:
        assert variables["TRACEPARENT"].startswith(f"00-{UPSTREAM_TRACE}-")
    if expected_state is None:
        assert set(variables) == {"TRACEPARENT"}
    elif expected_state == "either":
        assert variables.get("TRACESTATE", TRACESTATE) == TRACESTATE
    elif expected_state == "32":
        assert len(variables["TRACESTATE"].split(",")) == 32
    else:
        assert variables["TRACESTATE"] == expected_state


def test_the_dotenv_check_rejects_what_gitlab_rejects() -> None:
    for bad in (
        f"TRACEPARENT={UPSTREAM}\n\n",
        f"# comment\nTRACEPARENT={UPSTREAM}\n",
        f'TRACEPARENT="{UPSTREAM}"\n',
        f"export TRACEPARENT={UPSTREAM}\n",
        f"1TRACEPARENT={UPSTREAM}\n",
        "".join(f"V{i}=x\n" for i in range(21)),
        f"TRACEPARENT={'x' * 6000}\n",
    ):
        with pytest.raises(AssertionError):
            check_gitlab_dotenv(bad)


@pytest.fixture(scope="module")
def gitlab() -> dict[str, Any]:
    return load_yaml(GITLAB_FILE)


def test_gitlab_dbt_job_replays_after_dbt_even_on_failure(gitlab: dict[str, Any]) -> None:
    job = gitlab["dbt-build"]
    assert any("dbt build" in line for line in job["script"])
    runs_after = job.get("after_script", []) if job.get("when") != "always" else job["script"]
    assert any(line.startswith("dbt-otel-replay target/") for line in runs_after)
    assert job["artifacts"]["reports"]["dotenv"] == "target/traceparent"
    assert job["artifacts"]["when"] == "always", "upload the report after a failed build too"


def test_gitlab_later_jobs_get_traceparent(gitlab: dict[str, Any]) -> None:
    stages = gitlab["stages"]
    dbt_stage = stages.index(gitlab["dbt-build"]["stage"])
    later = {
        name: job
        for name, job in gitlab.items()
        if isinstance(job, dict) and "script" in job and stages.index(job["stage"]) > dbt_stage
    }
    assert later
    for name, job in later.items():
        needs = {need["job"] if isinstance(need, dict) else need for need in job["needs"]}
        assert "dbt-build" in needs, name
        assert any("$TRACEPARENT" in line for line in job["script"]), name
    assert any(job.get("when") == "always" for job in later.values())


def test_gitlab_ci_matches_the_published_schema() -> None:
    result = check_schema("gitlab-ci", GITLAB_FILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_gitlab_schema_check_catches_a_broken_file(tmp_path: Path) -> None:
    broken = tmp_path / ".gitlab-ci.yml"
    broken.write_text(GITLAB_FILE.read_text().replace("when: always", "when: sometimes", 1))
    assert check_schema("gitlab-ci", broken).returncode == 1


# --------------------------------------------------------------------------- #
# Airflow: examples/airflow/trace_glue.py (no Airflow needed)
# --------------------------------------------------------------------------- #


class FakeTaskInstance:
    """What the XCom helpers need of Airflow's TaskInstance."""

    def __init__(self, task_id: str = "task") -> None:
        self.task_id = task_id
        self.store: dict[tuple[str, str], Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        json.dumps(value)  # XCom values must be JSON-serialisable
        self.store[(self.task_id, key)] = value

    def xcom_pull(self, task_ids: str, key: str) -> Any:
        return self.store.get((task_ids, key))


def test_glue_reads_the_file_the_cli_writes(glue: ModuleType, target: Path, tmp_path: Path) -> None:
    result = run_cli(
        str(target),
        "--output",
        str(tmp_path / "t.jsonl"),
        env={"TRACEPARENT": UPSTREAM, "TRACESTATE": TRACESTATE},
    )
    assert result.exit_code == 0, result.stderr
    carrier = glue.read_carrier(target / "traceparent")
    assert set(carrier) == {"TRACEPARENT", "TRACESTATE"}
    assert carrier["TRACEPARENT"].startswith(f"00-{UPSTREAM_TRACE}-")
    assert carrier["TRACESTATE"] == TRACESTATE
    assert glue.format_carrier(carrier) == (target / "traceparent").read_text()


def test_glue_reads_carriers_leniently(glue: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "carrier"
    path.write_text(
        f"# from otel-cli\nexport TRACEPARENT='{UPSTREAM}'\n\nOTHER=1\ntracestate=\"{TRACESTATE}\"\n"
    )
    assert glue.read_carrier(path) == {"TRACEPARENT": UPSTREAM, "TRACESTATE": TRACESTATE}


def test_glue_reads_a_carrier_with_a_byte_order_mark_and_crlf(glue: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "carrier"
    path.write_bytes(f"\ufeffTRACEPARENT={UPSTREAM}\r\nTRACESTATE={TRACESTATE}\r\n".encode())
    assert glue.read_carrier(path) == {"TRACEPARENT": UPSTREAM, "TRACESTATE": TRACESTATE}
    assert glue.parse_carrier(f"\ufeffTRACEPARENT={UPSTREAM}\r\n") == {"TRACEPARENT": UPSTREAM}


@pytest.mark.parametrize(
    "text",
    ["", f"TRACESTATE={TRACESTATE}\n", "TRACEPARENT=00-abc-def-01\n", f"TRACEPARENT={UPSTREAM.upper()}\n"],
)
def test_glue_refuses_a_carrier_without_a_valid_traceparent(
    glue: ModuleType, tmp_path: Path, text: str
) -> None:
    path = tmp_path / "carrier"
    path.write_text(text)
    with pytest.raises(glue.CarrierError):
        glue.read_carrier(path)


def test_glue_reports_a_missing_file(glue: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(glue.CarrierError, match="cannot read the traceparent file"):
        glue.read_carrier(tmp_path / "absent")


def test_glue_validates_mappings(glue: ModuleType) -> None:
    assert glue.validate_carrier({"traceparent": f" {UPSTREAM} ", "tracestate": ""}) == {
        "TRACEPARENT": UPSTREAM
    }
    for bad in (None, "00-...", {}, {"TRACEPARENT": 5}, {"TRACEPARENT": UPSTREAM, "TRACESTATE": "a=1\nB=2"}):
        with pytest.raises(glue.CarrierError):
            glue.validate_carrier(bad)


def test_glue_carrier_for_a_span_context(glue: ModuleType) -> None:
    carrier = glue.carrier_for(int(UPSTREAM_TRACE, 16), int(UPSTREAM_SPAN, 16))
    assert carrier == {"TRACEPARENT": UPSTREAM}
    unsampled = glue.carrier_for(1, 2, sampled=False, tracestate="a=b")
    assert unsampled == {"TRACEPARENT": f"00-{1:032x}-{2:016x}-00", "TRACESTATE": "a=b"}


def test_glue_bash_env(glue: ModuleType) -> None:
    base = {"PATH": "/usr/bin", "TRACEPARENT": "stale", "TRACESTATE": "stale=1"}
    assert glue.bash_env({"TRACEPARENT": UPSTREAM}, base) == {"PATH": "/usr/bin", "TRACEPARENT": UPSTREAM}
    both = glue.bash_env({"TRACEPARENT": UPSTREAM, "TRACESTATE": TRACESTATE})
    assert both == {"TRACEPARENT": UPSTREAM, "TRACESTATE": TRACESTATE}
    assert glue.bash_env(None, base) == {"PATH": "/usr/bin"}
    assert base["TRACEPARENT"] == "stale", "the base mapping is not changed"


def test_glue_xcom_env_renders_the_pushed_context(glue: ModuleType) -> None:
    ti = FakeTaskInstance("extract")
    glue.push_carrier(ti, {"TRACEPARENT": UPSTREAM, "TRACESTATE": TRACESTATE})
    templates = glue.xcom_env("extract")
    environment = SandboxedEnvironment(undefined=StrictUndefined)
    rendered = {key: environment.from_string(value).render(ti=ti) for key, value in templates.items()}
    assert rendered == {"TRACEPARENT": UPSTREAM, "TRACESTATE": TRACESTATE}
    nothing = {
        key: environment.from_string(value).render(ti=FakeTaskInstance()) for key, value in templates.items()
    }
    assert nothing == {"TRACEPARENT": "", "TRACESTATE": ""}
    with pytest.raises(ValueError, match="unsafe"):
        glue.xcom_env("x'}}{{ 7*7 }}")


def test_glue_push_and_pull(glue: ModuleType, tmp_path: Path) -> None:
    ti = FakeTaskInstance("dbt_trace")
    path = tmp_path / "traceparent"
    path.write_text(f"TRACEPARENT={UPSTREAM}\n")
    assert glue.push_carrier(ti, path) == {"TRACEPARENT": UPSTREAM}
    assert glue.push_carrier(ti, str(path), key="other") == {"TRACEPARENT": UPSTREAM}
    assert glue.pull_carrier(ti, "dbt_trace") == {"TRACEPARENT": UPSTREAM}
    assert glue.pull_carrier(ti, "dbt_trace", key="other") == {"TRACEPARENT": UPSTREAM}
    assert glue.pull_carrier(ti, "absent") is None
    ti.store[("bad", glue.XCOM_KEY)] = "TRACEPARENT=..."
    with pytest.raises(glue.CarrierError, match="XCom bad/trace_context"):
        glue.pull_carrier(ti, "bad")


def test_glue_emit_span_continues_a_carrier(glue: ModuleType) -> None:
    exporters = InMemorySpanExporter(), InMemorySpanExporter()  # each is shut down with its span
    root = glue.emit_span(
        "extract", exporter=exporters[0], attributes={"airflow.dag_id": "d"}, service_name="af"
    )
    child = glue.emit_span(
        "publish", parent={"TRACEPARENT": root["TRACEPARENT"], "TRACESTATE": "k=v"}, exporter=exporters[1]
    )
    [first], [second] = (exporter.get_finished_spans() for exporter in exporters)
    assert root == {"TRACEPARENT": f"00-{first.context.trace_id:032x}-{first.context.span_id:016x}-01"}
    assert first.parent is None and first.attributes == {"airflow.dag_id": "d"}
    assert first.resource.attributes["service.name"] == "af"
    assert second.context.trace_id == first.context.trace_id
    assert second.parent is not None and second.parent.span_id == first.context.span_id
    assert second.parent.is_remote
    assert child["TRACESTATE"] == "k=v"


def test_glue_emit_span_marks_failed_work(glue: ModuleType) -> None:
    exporter = InMemorySpanExporter()

    def work() -> None:
        raise RuntimeError("extraction failed")

    with pytest.raises(RuntimeError, match="extraction failed"):
        glue.emit_span("extract", exporter=exporter, work=work)
    [span] = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR


def test_glue_has_no_airflow_import() -> None:
    source = (AIRFLOW_DIR / "trace_glue.py").read_text()
    assert not re.search(r"^\s*(from|import)\s+airflow\b", source, re.MULTILINE)


# --------------------------------------------------------------------------- #
# examples/next_stage.py
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("flags", ["01", "00"], ids=["sampled", "unsampled"])
def test_next_stage_reads_a_bom_and_crlf_and_keeps_the_sampled_flag(
    tmp_path: Path, otlp_receiver: OtlpReceiver, flags: str
) -> None:
    carrier = tmp_path / "traceparent"
    upstream = f"00-{UPSTREAM_TRACE}-{UPSTREAM_SPAN}-{flags}"
    carrier.write_bytes(f"\ufeffTRACEPARENT={upstream}\r\nTRACESTATE={TRACESTATE}\r\n".encode())
    stage = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "examples" / "next_stage.py"),
            str(carrier),
            "--endpoint",
            otlp_receiver.http_base_endpoint,
            "--seconds",
            "0",
        ],
        env=clean_env(OTEL_SERVICE_NAME="next"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert stage.returncode == 0, stage.stderr
    match = re.fullmatch(rf"TRACEPARENT=00-{UPSTREAM_TRACE}-([0-9a-f]{{16}})-{flags}\n", stage.stdout)
    assert match, stage.stdout
    spans = otlp_receiver.spans()
    if flags == "01":
        [span] = spans
        assert span.parent_span_id == UPSTREAM_SPAN and span.span_id == match.group(1)
    else:
        assert spans == [], "an unsampled parent: the SDK's default sampler records nothing"


# --------------------------------------------------------------------------- #
# Airflow: the DAG itself, with a real Airflow (only when AIRFLOW_PYTHON is set)
# --------------------------------------------------------------------------- #

AIRFLOW_PYTHON = os.environ.get("AIRFLOW_PYTHON", "")
needs_airflow = pytest.mark.skipif(
    not AIRFLOW_PYTHON,
    reason="set AIRFLOW_PYTHON to a Python with apache-airflow installed (e.g. /tmp/airflow-venv/bin/python)",
)

FAKE_DBT = textwrap.dedent(
    """\
    #!/usr/bin/env bash
    # Stands in for `dbt build --project-dir P --target-path T`: leaves the fixture run in T.
    while [ $# -gt 0 ]; do
        if [ "$1" = --target-path ]; then target=$2; fi
        shift
    done
    cp "$FIXTURE_BUILD/run_results.json" "$FIXTURE_BUILD/manifest.json" "$target/"
    exit "${FAKE_DBT_EXIT:-0}"
    """
)

AIRFLOW_SCRIPT = textwrap.dedent(
    """\
    import json, sys
    try:  # Airflow 3.2+
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:
        from airflow.models.dagbag import DagBag

    bag = DagBag(dag_folder=sys.argv[1])  # no example DAGs: AIRFLOW__CORE__LOAD_EXAMPLES=False
    result = {"import_errors": {k: str(v) for k, v in bag.import_errors.items()}, "dags": list(bag.dags)}
    dag = bag.dags.get("dbt_trace")
    if dag is not None:
        result["tasks"] = {
            task.task_id: {"trigger_rule": str(task.trigger_rule.value if hasattr(task.trigger_rule, "value")
                                               else task.trigger_rule),
                           "upstream": sorted(task.upstream_task_ids)}
            for task in dag.tasks
        }
        if sys.argv[2] == "run":
            run = dag.test()
            result["states"] = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    print("RESULT " + json.dumps(result))
    """
)


def run_airflow(tmp_path: Path, mode: str, **env: str) -> dict[str, Any]:
    home = tmp_path / "airflow-home"
    base = clean_env(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(AIRFLOW_DIR),  # Airflow 3's dag.test() runs DAGs of its bundle
        PYTHONDONTWRITEBYTECODE="1",
        TRACEPARENT="",
        **env,
    )
    if mode == "run" and not home.exists():
        migrate = subprocess.run(
            [AIRFLOW_PYTHON, "-m", "airflow", "db", "migrate"],
            env=base,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert migrate.returncode == 0, migrate.stdout[-3000:] + migrate.stderr[-3000:]
    script = tmp_path / "airflow_check.py"
    script.write_text(AIRFLOW_SCRIPT)
    result = subprocess.run(
        [AIRFLOW_PYTHON, str(script), str(AIRFLOW_DIR), mode],
        env=base,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert result.returncode == 0 and lines, result.stdout[-5000:] + result.stderr[-5000:]
    parsed: dict[str, Any] = json.loads(lines[-1].removeprefix("RESULT "))
    parsed["log"] = result.stdout + result.stderr
    return parsed


@needs_airflow
def test_airflow_imports_and_parses_the_dag(tmp_path: Path) -> None:
    result = run_airflow(tmp_path, "parse")
    assert result["import_errors"] == {}
    assert result["dags"] == ["dbt_trace"]
    tasks = result["tasks"]
    assert tasks["dbt_build"]["upstream"] == ["extract"]
    assert tasks["dbt_trace"] == {"trigger_rule": "all_done", "upstream": ["dbt_build"]}
    assert tasks["publish"]["upstream"] == ["dbt_build", "dbt_trace"]
    assert tasks["notify"]["upstream"] == ["publish"]


@needs_airflow
@pytest.mark.parametrize("dbt_exit", [0, 1], ids=["dbt-succeeds", "dbt-fails"])
def test_airflow_runs_one_trace_through_dbt(
    tmp_path: Path, otlp_receiver: OtlpReceiver, dbt_exit: int
) -> None:
    fake_dbt = tmp_path / "dbt"
    fake_dbt.write_text(FAKE_DBT)
    fake_dbt.chmod(0o755)
    result = run_airflow(
        tmp_path,
        "run",
        DBT=str(fake_dbt),
        FAKE_DBT_EXIT=str(dbt_exit),
        FIXTURE_BUILD=str(FIXTURE_BUILD),
        DBT_PROJECT_DIR=str(tmp_path),
        DBT_TARGET_ROOT=str(tmp_path / "targets"),
        DBT_OTEL_REPLAY=str(CLI_BINARY),
        OTEL_EXPORTER_OTLP_ENDPOINT=otlp_receiver.http_base_endpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
    )
    states = result["states"]
    log = result["log"][-5000:]
    assert states["extract"] == "success", log
    assert states["dbt_build"] == ("success" if dbt_exit == 0 else "failed"), log
    assert states["dbt_trace"] == "success", log  # all_done: also after a failed build
    spans = otlp_receiver.spans()
    [extract] = [span for span in spans if span.name == "extract"]
    [invocation] = [span for span in spans if span.name == "dbt build"]
    assert {span.trace_id for span in spans} == {extract.trace_id}
    assert invocation.parent_span_id == extract.span_id
    if dbt_exit == 0:
        assert states["publish"] == "success" and states["notify"] == "success", log
        [publish] = [span for span in spans if span.name == "publish dashboards"]
        assert publish.parent_span_id == invocation.span_id
        assert f"continuing trace 00-{extract.trace_id}-{publish.span_id}-01" in result["log"]
    else:
        assert states["publish"] == "upstream_failed"
        assert not [span for span in spans if span.name == "publish dashboards"]
