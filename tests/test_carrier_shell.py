"""The traceparent file, read every documented way: the same two values, and nothing executed.

For W3C-valid tracestates made by hypothesis (shell metacharacters and injection attempts
mixed in), the file the tool writes is read by

- ``sh`` (dash) and ``bash``: ``set -a; . FILE; set +a`` in a temporary directory with a
  controlled environment; the variables sourcing added must be exactly TRACEPARENT (and
  TRACESTATE), nothing may be printed, and no file may appear or change in the directory
  (every injection attempt below would create one);
- docker's own ``--env-file`` parser: the real docker CLI, talking to a fake Engine API
  that records the container's ``Env`` (skipped without a docker binary);
- systemd's own env-file tokenizer (the one ``EnvironmentFile=`` uses), run through
  systemd-environment-d-generator (skipped without it);
- GitLab's dotenv rule (``line.scan(/^(.*?)=(.*)$/)``, both sides stripped, ``$`` expanded
  later, so the file must hold none) and GitHub's ``$GITHUB_ENV`` rule (``NAME=VALUE``
  verbatim), the latter on what examples/github/export-context.sh appends;
- the tool's ``read_carrier``, examples/airflow/trace_glue.py and examples/next_stage.py.

Every reader must agree with the file's ``KEY=VALUE`` lines taken verbatim.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import string
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from dbt_otel_replay.cli import main
from dbt_otel_replay.plan import TraceContext
from dbt_otel_replay.propagation import parse_traceparent, read_carrier, write_carrier
from tests.support.contract import copy_pair

REPO = Path(__file__).resolve().parents[1]
EXPORT_CONTEXT = REPO / "examples" / "github" / "export-context.sh"
FIXTURE_BUILD = REPO / "fixtures" / "artifacts" / "build"
SCALE = int(os.environ.get("FUZZ_SCALE", "1"))
"""Multiplies max_examples, as in tests/test_fuzz.py: FUZZ_SCALE=20 for a long hunt."""

SAFE = set(string.ascii_letters + string.digits + "_-*/@=+.:,")
"""What the written TRACESTATE may hold: written out here, not imported, so a change is a decision."""

UPSTREAM = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
BAIT = {"a": "bait\n", "b": "bait\n", "traceparent.bak": "bait\n"}
"""Files beside the carrier: a glob would match them, a redirection would change them."""
Reader = Callable[[Path], dict[str, str]]
ENV_D_GENERATOR = next(
    (
        path
        for path in (
            Path("/usr/lib/systemd/user-environment-generators/30-systemd-environment-d-generator"),
            Path("/lib/systemd/user-environment-generators/30-systemd-environment-d-generator"),
        )
        if path.is_file()
    ),
    None,
)


# --------------------------------------------------------------------------- #
# W3C tracestates (https://www.w3.org/TR/trace-context/#tracestate-header)
# --------------------------------------------------------------------------- #

LOWER = string.ascii_lowercase
KEY_REST = LOWER + string.digits + "_-*/"
VALUE_CHARS = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) not in ",=")
INJECTIONS = [
    "$(touch pwned)",
    "`touch pwned`",
    ";touch pwned",
    " touch pwned",
    "&touch pwned",
    "&&touch pwned",
    "|touch pwned",
    "||touch pwned",
    ">pwned",
    "<pwned",
    "$((0))",
    "${PATH}",
    "$HOME",
    "~",
    ":~",
    "\\",
    "'",
    '"',
    "#",
    "*",
    "?",
    "[ab]",
    "{a,b}",
    "!!",
    "%n",
    "^touch pwned",
    "@(a)",
    "<<EOF",
]

simple_keys = st.tuples(st.sampled_from(LOWER), st.text(KEY_REST, max_size=255)).map("".join)
tenant_keys = st.tuples(
    st.sampled_from(LOWER + string.digits),
    st.text(KEY_REST, max_size=240),
    st.just("@"),
    st.sampled_from(LOWER),
    st.text(KEY_REST, max_size=13),
).map("".join)
SAFE_VALUE_CHARS = string.ascii_letters + string.digits + "_-*/@+.:"
mixed_values = (
    st.lists(
        st.one_of(
            st.text(VALUE_CHARS, min_size=1, max_size=12),
            st.text(SAFE_VALUE_CHARS, min_size=1, max_size=12),
            st.sampled_from([i for i in INJECTIONS if "," not in i and "=" not in i]),
        ),
        min_size=1,
        max_size=5,
    )
    .map(lambda parts: "".join(parts)[:256].rstrip(" "))
    .filter(bool)
)
values = st.one_of(
    mixed_values,
    st.text(SAFE_VALUE_CHARS, min_size=1, max_size=16),
    st.text(SAFE_VALUE_CHARS, min_size=100, max_size=256),  # long: trimming to 512 comes into play
)
separators = st.sampled_from([",", ", ", " ,", "\t,\t", ",,", " , ,"])


@st.composite
def tracestates(draw: st.DrawFn) -> str:
    """A tracestate header as W3C allows it: up to 32 members, blanks and empty members between."""
    members = draw(
        st.lists(
            st.tuples(st.one_of(simple_keys, tenant_keys), values), max_size=32, unique_by=lambda m: m[0]
        )
    )
    text = ""
    for index, (key, value) in enumerate(members):
        text += (draw(separators) if index else "") + f"{key}={value}"
    return text


contexts = st.builds(
    lambda trace, span, flags: f"00-{trace:032x}-{span:016x}-{flags:02x}",
    st.integers(1, 2**128 - 1),
    st.integers(1, 2**64 - 1),
    st.integers(0, 255),
)


# --------------------------------------------------------------------------- #
# the readers
# --------------------------------------------------------------------------- #


def verbatim_lines(path: Path) -> dict[str, str]:
    """What the tool wrote: each line split at its first ``=``, nothing else."""
    text = path.read_text()
    assert text.endswith("\n") and "\r" not in text
    return dict(line.split("=", 1) for line in text[:-1].split("\n"))


def controlled_env(directory: Path, **extra: str) -> dict[str, str]:
    """No TRACEPARENT, BASH_ENV, ENV or anything else of the caller's; HOME is the temp dir."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(directory), "LC_ALL": "C", **extra}


SOURCE = (
    "env -0; printf '%s\\0' --sourced--; set -a; . ./traceparent; set +a; printf '%s\\0' --after--; env -0"
    "; exit 0"  # so bash does not exec the last command, which would change SHLVL in its listing
)


def sourced_by(shell: str) -> Reader:
    """A reader that sources the file in ``shell`` and returns the variables that sourcing set.

    The directory must hold nothing new or changed afterwards, and the shell must print nothing
    but the two environment listings: either would mean the file ran something.
    """

    def read(path: Path) -> dict[str, str]:
        directory = path.parent
        before_files = listing(directory)
        result = subprocess.run(
            [shell, "-c", SOURCE],
            cwd=directory,
            env=controlled_env(directory),
            capture_output=True,
            timeout=30,
            check=False,
        )
        assert listing(directory) == before_files, f"{shell} ran something: the directory changed"
        assert result.stderr == b"", f"{shell} complained: {result.stderr!r}"
        assert result.returncode == 0
        entries = result.stdout.decode().split("\0")
        marker = entries.index("--sourced--")
        printed = entries[marker + 1].removesuffix("--after--")
        assert not printed, f"{shell} ran something: it printed {printed!r}"
        before = dict(e.split("=", 1) for e in entries[:marker] if e)
        after = dict(e.split("=", 1) for e in entries[marker + 2 :] if e)
        assert set(before) <= set(after), f"{shell}: sourcing unset variables"
        return {key: value for key, value in after.items() if before.get(key) != value}

    return read


def listing(directory: Path) -> dict[str, bytes | None]:
    """Every entry of the directory, with its content when it is a file."""
    return {p.name: p.read_bytes() if p.is_file() else None for p in directory.iterdir()}


def gitlab_dotenv(path: Path) -> dict[str, str]:
    """GitLab's ParseDotenvArtifactService: each line ``scan(/^(.*?)=(.*)$/)``, both sides stripped.

    The variables are not raw, so GitLab expands ``$NAME`` in them later: the file must hold no ``$``.
    """
    variables: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8-sig").split("\n")[:-1]:
        key, sep, value = line.partition("=")
        assert sep, f"GitLab: {line!r} is not KEY=VALUE (Invalid Format)"
        assert "$" not in value, "GitLab would expand this"
        variables[key.strip()] = value.strip()
    return variables


def github_env_rule(text: str) -> dict[str, str]:
    """The runner's $GITHUB_ENV rule: ``NAME=VALUE`` verbatim when ``=`` comes before any ``<<``."""
    variables: dict[str, str] = {}
    for line in text.split("\n"):
        if not line:
            continue
        equals, heredoc = line.find("="), line.find("<<")
        assert equals >= 0 and (heredoc < 0 or equals < heredoc), f"GitHub would read {line!r} as a heredoc"
        key, value = line.split("=", 1)
        variables[key] = value
    return variables


def github_env(path: Path) -> dict[str, str]:
    """examples/github/export-context.sh appends the carrier to $GITHUB_ENV; GitHub reads that back."""
    env_file, output_file = path.parent / "github_env", path.parent / "github_output"
    env_file.write_text("")
    output_file.write_text("")
    try:
        result = subprocess.run(
            ["bash", str(EXPORT_CONTEXT), str(path)],
            env=controlled_env(path.parent, GITHUB_ENV=str(env_file), GITHUB_OUTPUT=str(output_file)),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        variables = github_env_rule(env_file.read_text())
        outputs = github_env_rule(output_file.read_text())
        assert outputs == {key.lower(): value for key, value in variables.items()}
        return variables
    finally:
        env_file.unlink()
        output_file.unlink()


def systemd_env_file(path: Path) -> dict[str, str]:
    """systemd's env-file tokenizer, through the environment.d generator that uses it.

    The generator prints each variable as ``KEY=VALUE`` or ``KEY="..."`` with ``"\\`$`` escaped.
    (It also expands ``$`` as environment.d does; EnvironmentFile= does not, and the file holds none.)
    """
    assert ENV_D_GENERATOR is not None
    config = path.parent / "xdg"
    (config / "environment.d").mkdir(parents=True)
    shutil.copy(path, config / "environment.d" / "50-carrier.conf")
    try:
        baseline = _generated(config.parent / "empty-xdg")
        return {k: v for k, v in _generated(config).items() if baseline.get(k) != v}
    finally:
        shutil.rmtree(config)


def _generated(config: Path) -> dict[str, str]:
    assert ENV_D_GENERATOR is not None
    result = subprocess.run(
        [str(ENV_D_GENERATOR)],
        env={"XDG_CONFIG_HOME": str(config), "HOME": str(config), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    variables: dict[str, str] = {}
    for line in result.stdout.splitlines():
        key, _, value = line.partition("=")
        if len(value) >= 2 and value[0] == value[-1] == '"':
            chars, value, index = value[1:-1], "", 0
            while index < len(chars):
                index += chars[index] == "\\"
                value += chars[index]
                index += 1
        variables[key] = value
    return variables


class FakeEngine:
    """Just enough of the Docker Engine API for ``docker run`` to send its container config.

    The docker CLI parses ``--env-file`` itself and posts the result as ``Env``; the fake
    records it and refuses the container, so nothing runs.
    """

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        engine = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if self.path.endswith("/_ping"):
                    self.send_response(200)
                    self.send_header("API-Version", "1.41")
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    if self.command == "GET":
                        self.wfile.write(b"OK")
                    return
                if self.path.split("?")[0].endswith("/containers/create"):
                    engine.bodies.append(json.loads(body))
                answer = json.dumps({"message": "recorded by the test's fake engine"}).encode()
                self.send_response(500)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_GET = do_POST = do_HEAD = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeEngine:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()

    def env_file(self, docker: str, path: Path) -> dict[str, str]:
        """The variables ``docker run --env-file PATH`` would give the container."""
        count = len(self.bodies)
        port = self.server.server_address[1]
        result = subprocess.run(
            [docker, "run", "--pull", "never", "--env-file", str(path), "example", "true"],
            env=controlled_env(
                path.parent, DOCKER_HOST=f"tcp://127.0.0.1:{port}", DOCKER_CONFIG=str(path.parent / "docker")
            ),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert len(self.bodies) == count + 1, result.stderr
        shutil.rmtree(path.parent / "docker", ignore_errors=True)
        return dict(entry.split("=", 1) for entry in self.bodies[-1]["Env"])


def load_example(name: str, path: Path) -> ModuleType:
    """An example script imported by path (they are not a package)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def readers() -> Iterator[dict[str, Reader]]:
    """Every documented reader of the file that this machine has."""
    glue = load_example("carrier_shell_trace_glue", REPO / "examples" / "airflow" / "trace_glue.py")
    next_stage = load_example("carrier_shell_next_stage", REPO / "examples" / "next_stage.py")

    def own(path: Path) -> dict[str, str]:
        context = read_carrier(path)
        return {"TRACEPARENT": context.traceparent} | (
            {"TRACESTATE": context.tracestate} if context.tracestate else {}
        )

    found: dict[str, Reader] = {
        "sh": sourced_by("sh"),
        "bash": sourced_by("bash"),
        "gitlab dotenv": gitlab_dotenv,
        "github $GITHUB_ENV": github_env,
        "read_carrier": own,
        "trace_glue.read_carrier": glue.read_carrier,
        "next_stage.read_carrier": lambda path: {
            k.upper(): v for k, v in next_stage.read_carrier(path).items()
        },
    }
    if ENV_D_GENERATOR is not None:
        found["systemd"] = systemd_env_file
    docker = shutil.which("docker")
    with FakeEngine() as engine:
        if docker is not None:
            found["docker --env-file"] = lambda path: engine.env_file(docker, path)
        yield found
    sys.modules.pop("carrier_shell_trace_glue", None)
    sys.modules.pop("carrier_shell_next_stage", None)


class Warnings(logging.Handler):
    """The propagation module's log records, whatever the CLI did to the package logger."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def __enter__(self) -> Warnings:
        logging.getLogger("dbt_otel_replay.propagation").addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("dbt_otel_replay.propagation").removeHandler(self)


def members_of(tracestate: str | None) -> list[str]:
    return [m.strip() for m in (tracestate or "").split(",") if m.strip()]


# --------------------------------------------------------------------------- #
# the property
# --------------------------------------------------------------------------- #


@settings(max_examples=60 * SCALE, deadline=None, database=None)
@given(traceparent=contexts, tracestate=tracestates())
@example(traceparent=UPSTREAM, tracestate="a=$(touch pwned),b=x;touch pwned")
@example(traceparent=UPSTREAM, tracestate="congo=t61 id")
@example(traceparent=UPSTREAM, tracestate="rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")
@example(traceparent=UPSTREAM, tracestate="t@s*/=a:b+c.d/e-f_g@h,k=*")
@example(traceparent=UPSTREAM, tracestate="k=:~,x=~root")
def test_every_reader_reads_exactly_what_was_written_and_nothing_runs(
    readers: dict[str, Reader], traceparent: str, tracestate: str
) -> None:
    context = parse_traceparent(traceparent, tracestate)  # the generator makes only what W3C allows
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        for bait, content in BAIT.items():
            (directory / bait).write_text(content)
        path = directory / "traceparent"
        with Warnings() as warnings:
            write_carrier(path, context)
        written = verbatim_lines(path)

        assert written["TRACEPARENT"] == context.traceparent
        assert set(written) <= {"TRACEPARENT", "TRACESTATE"}
        state = written.get("TRACESTATE")
        assert state is None or (set(state) <= SAFE and len(state) <= 512)
        given_members = members_of(context.tracestate)
        safe_members = [m for m in given_members if set(m) <= SAFE]
        kept = members_of(state)
        assert all(m in safe_members for m in kept)
        if len(",".join(safe_members)) <= 512:
            assert kept == safe_members, "only unsafe members are dropped from a tracestate that fits"
        dropped = [m for m in given_members if m not in safe_members]
        event(f"members dropped: {'some' if dropped else 'none'}")
        event(f"trimmed to 512: {len(','.join(safe_members)) > 512}")
        event(f"tracestate written: {state is not None}")
        if dropped:
            [message] = warnings.messages
            assert f"leaves out {len(dropped)} tracestate member" in message
            assert not any(m in message for m in dropped), "the warning names no member"
        else:
            assert warnings.messages == []

        for reader_name, reader in readers.items():
            assert reader(path) == written, reader_name


def test_the_readers_here_would_catch_the_old_file(readers: dict[str, Reader], tmp_path: Path) -> None:
    """The checks are not vacuous: a file written as before the fix fails them."""
    path = tmp_path / "traceparent"
    path.write_text(f"TRACEPARENT={UPSTREAM}\nTRACESTATE=a=$(touch pwned),b=x;touch pwned\n")
    with pytest.raises(AssertionError, match="bash ran something: the directory changed"):
        readers["bash"](path)
    (tmp_path / "pwned").unlink()
    path.write_text(f"TRACEPARENT={UPSTREAM}\nTRACESTATE=congo=t61 id\n")
    with pytest.raises(AssertionError, match="sh ran something: it printed 'uid="):
        readers["sh"](path)  # the shell runs `id` with TRACESTATE=congo=t61 in its environment
    path.write_text(f'TRACEPARENT={UPSTREAM}\nTRACESTATE=k="v"\n')
    assert readers["sh"](path)["TRACESTATE"] == "k=v"
    assert readers["gitlab dotenv"](path)["TRACESTATE"] == 'k="v"', "GitLab keeps the quotes"
    if "docker --env-file" in readers:
        assert readers["docker --env-file"](path)["TRACESTATE"] == 'k="v"', "so does docker"


# --------------------------------------------------------------------------- #
# the CLI, end to end (the reproduction)
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    ("tracestate", "left", "dropped"),
    [
        ("a=$(touch P1),b=x;touch P2", None, 2),
        ("congo=t61 id", None, 1),
        ("rojo=00f067aa0ba902b7,congo=`touch P1`,vendor@t=ok", "rojo=00f067aa0ba902b7,vendor@t=ok", 1),
    ],
    ids=["command-substitution", "blank", "mixed"],
)
def test_the_cli_drops_unsafe_members_with_one_warning_and_the_file_runs_nothing(
    readers: dict[str, Reader], tmp_path: Path, tracestate: str, left: str | None, dropped: int
) -> None:
    target = tmp_path / "T"
    copy_pair(FIXTURE_BUILD, target)
    env = {
        "TRACEPARENT": UPSTREAM,
        "TRACESTATE": tracestate,
        "OTEL_SERVICE_NAME": "",
        "OTEL_RESOURCE_ATTRIBUTES": "",
    }
    result = CliRunner().invoke(main, [str(target), "-o", str(tmp_path / "o.json")], env=env)
    assert result.exit_code == 0, result.stderr
    noun = "member" if dropped == 1 else "members"
    assert result.stderr.count("dbt-otel-replay: warning: the traceparent file leaves out") == 1
    assert (
        f"dbt-otel-replay: warning: the traceparent file leaves out {dropped} tracestate {noun} holding "
        "characters that a shell or env-file reader would not take literally "
        "(it writes only letters, digits and _-*/@=+.:)\n"
    ) in result.stderr
    assert "touch" not in result.stderr and "t61" not in result.stderr
    written = verbatim_lines(target / "traceparent")
    assert written.get("TRACESTATE") == left
    for reader_name, reader in readers.items():
        assert reader(target / "traceparent") == written, reader_name
    assert not (tmp_path / "P1").exists() and not (tmp_path / "P2").exists()
    assert not (target / "P1").exists() and not (target / "P2").exists()
    spans = [json.loads(line) for line in (tmp_path / "o.json").read_text().splitlines()]
    states = {
        span["traceState"]
        for document in spans
        for resource in document["resourceSpans"]
        for scope in resource["scopeSpans"]
        for span in scope["spans"]
        if span.get("traceState")
    }
    assert states == {tracestate}, "the trace itself keeps the upstream's tracestate whole"


def test_the_written_context_round_trips_through_read_carrier(tmp_path: Path) -> None:
    context = TraceContext("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", 0, "k=v,t@s=1:2")
    write_carrier(tmp_path / "traceparent", context)
    assert read_carrier(tmp_path / "traceparent") == context
