"""Installed like a tool, as docs/install.md says: pipx, uvx, and click's shell completion.

pipx and uv are the versions requirements/constraints.txt pins (the test extra), and
what they install is constrained by the same lock: the check that the tool's own
dependencies are the locked versions is part of each test. Their homes, caches and
bin directories are temporary; the package is installed from a copy of the source
(what a clone or ``git+...`` gives them), so nothing is built inside the working tree.

They fetch the dependencies from PyPI: without it (an offline machine) these two
tests are skipped, saying so; the completion tests need nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from functools import cache
from pathlib import Path

import pytest

from dbt_otel_replay import __version__

REPO = Path(__file__).resolve().parents[1]
CONSTRAINTS = REPO / "requirements" / "constraints.txt"
FIXTURE = REPO / "fixtures" / "artifacts" / "build"
BIN = Path(sys.executable).parent
"""The test venv's scripts: pipx, uvx and the editable dbt-otel-replay."""
CHECKED = ("click", "msgspec", "grpcio", "protobuf", "requests")
"""Runtime dependencies whose installed versions must be the locked ones."""


@cache
def _pypi_unreachable() -> str | None:
    """Why PyPI cannot be reached, or None when it can."""
    try:
        with urllib.request.urlopen("https://pypi.org/simple/pip/", timeout=15):
            return None
    except (OSError, urllib.error.URLError) as exc:
        return f"PyPI is unreachable ({exc}): pipx and uvx install the dependencies from it"


@pytest.fixture
def pypi() -> None:
    reason = _pypi_unreachable()
    if reason is not None:
        pytest.skip(reason)


def locked() -> dict[str, str]:
    pins = (line.partition("==") for line in CONSTRAINTS.read_text().splitlines() if "==" in line)
    return {name: version for name, _, version in pins}


def source_copy(tmp_path: Path) -> Path:
    """What a build needs of the working tree (uncommitted changes included), outside it."""
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(
        REPO / "dbt_otel_replay", source / "dbt_otel_replay", ignore=shutil.ignore_patterns("__pycache__")
    )
    return source


def sh(*args: str | Path, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    """Run a command; its stdout, or a failure with everything it printed."""
    done = subprocess.run(
        [str(a) for a in args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{args[0]} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def versions_in(python: Path) -> dict[str, str]:
    code = (
        f"import importlib.metadata as m, json; print(json.dumps({{d: m.version(d) for d in {CHECKED!r}}}))"
    )
    return dict(json.loads(sh(python, "-c", code)))


def replays_the_fixture(command: list[str | Path], tmp_path: Path, env: dict[str, str]) -> None:
    out, carrier = tmp_path / "trace.json", tmp_path / "traceparent"
    sh(*command, FIXTURE, "--output", out, "--traceparent-to", carrier, "--quiet", env=env)
    spans = [s for line in out.read_text().splitlines() for r in json.loads(line)["resourceSpans"]
             for scope in r["scopeSpans"] for s in scope["spans"]]  # fmt: skip
    assert len(spans) > 33 and carrier.read_text().startswith("TRACEPARENT=00-")


def test_pipx_install(tmp_path: Path, pypi: None) -> None:
    env = {
        **os.environ,
        "PIPX_HOME": str(tmp_path / "pipx"),
        "PIPX_BIN_DIR": str(tmp_path / "bin"),
        "PIPX_MAN_DIR": str(tmp_path / "man"),
    }
    # --backend pip: pipx's classic path (with uv beside it, pipx would use uv; uvx covers uv)
    sh(BIN / "pipx", "install", "--backend", "pip", f"--pip-args=--constraint={CONSTRAINTS}",
       source_copy(tmp_path), env=env)  # fmt: skip
    command = tmp_path / "bin" / "dbt-otel-replay"
    assert command.resolve().is_relative_to(tmp_path / "pipx" / "venvs" / "dbt-otel-replay")
    assert sh(command, "--version") == f"dbt-otel-replay, version {__version__}\n"
    python = tmp_path / "pipx" / "venvs" / "dbt-otel-replay" / "bin" / "python"
    assert versions_in(python) == {name: locked()[name] for name in CHECKED}
    replays_the_fixture([command], tmp_path, env)


def test_uvx_from_a_path(tmp_path: Path, pypi: None) -> None:
    env = {
        **os.environ,
        "UV_CACHE_DIR": str(tmp_path / "uv-cache"),
        "UV_CONSTRAINT": str(CONSTRAINTS),
        "UV_PYTHON": sys.executable,
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_NO_CONFIG": "1",
    }
    uvx = [BIN / "uvx", "--from", source_copy(tmp_path)]
    assert sh(*uvx, "dbt-otel-replay", "--version", env=env) == f"dbt-otel-replay, version {__version__}\n"
    code = "import sys; print(sys.executable)"
    python = Path(sh(*uvx, "python", "-c", code, env=env).strip())
    assert python.is_relative_to(tmp_path / "uv-cache")
    assert versions_in(python) == {name: locked()[name] for name in CHECKED}
    replays_the_fixture([*uvx, "dbt-otel-replay"], tmp_path, env)


# --------------------------------------------------------------------------- #
# Shell completion (click's): the documented command prints a script, and it completes
# --------------------------------------------------------------------------- #


def completion_env(mode: str) -> dict[str, str]:
    return {**os.environ, "_DBT_OTEL_REPLAY_COMPLETE": mode, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}


@pytest.mark.parametrize(
    ("shell", "marker"),
    [
        ("bash", "complete -o nosort -F _dbt_otel_replay_completion dbt-otel-replay"),
        ("zsh", "compdef _dbt_otel_replay_completion dbt-otel-replay"),
        ("fish", "complete --no-files --command dbt-otel-replay"),
    ],
)
def test_completion_prints_a_script(shell: str, marker: str) -> None:
    script = sh(BIN / "dbt-otel-replay", env=completion_env(f"{shell}_source"))
    assert marker in script
    if shell == "bash":
        sh("bash", "-n", "-c", script)


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash on this machine")
@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["back"], {"backfill"}),
        (["replay", "--traceparent-"], {"--traceparent-from", "--traceparent-to"}),
        (["replay", "--trace-u"], {"--trace-url"}),
        (["replay", "--mark"], {"--markdown"}),
        (["backfill", "--trace-u"], {"--trace-url"}),
        (["backfill", "--mark"], set()),
        (["fixtures/artifacts/build", "--mark"], {"--markdown"}),
        (["replay", "--format", ""], {"text", "json"}),
    ],
)
def test_bash_completes_with_the_sourced_script(words: list[str], expected: set[str]) -> None:
    """The script bash_source prints, sourced by a real bash, completes commands, options and choices."""
    quoted = " ".join(f"'{w}'" for w in ["dbt-otel-replay", *words])
    script = (
        "source <(_DBT_OTEL_REPLAY_COMPLETE=bash_source dbt-otel-replay)\n"
        f"COMP_WORDS=({quoted}); COMP_CWORD={len(words)}\n"
        "_dbt_otel_replay_completion dbt-otel-replay\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    assert set(sh("bash", "-c", script, env=env).split()) == expected
