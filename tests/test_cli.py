"""The command line: the default command, where output goes, the traceparent file, the exit codes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from dbt_otel_replay import __version__
from dbt_otel_replay.cli import main
from tests.support.cli import run_cli as run
from tests.support.collector import free_port as closed_port
from tests.support.contract import copy_pair, from_otlp_json_lines

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "artifacts"
UPSTREAM = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_output_writes_otlp_json_and_the_traceparent_file(target: Path, tmp_path: Path) -> None:
    out = tmp_path / "trace.jsonl"
    result = run(str(target), "--output", str(out))
    assert result.exit_code == 0, result.stderr
    spans = from_otlp_json_lines(out.read_text())
    assert len(spans) == 1 + 33 + sum(1 for s in spans if "dbt.phase" in s.attributes)
    root = spans[0]
    assert (target / "traceparent").read_text() == f"TRACEPARENT=00-{root.trace_id}-{root.span_id}-01\n"
    assert result.stdout == ""
    assert f"trace {root.trace_id}: dbt build" in result.stderr
    assert "slowest:" in result.stderr and "failures (2):" in result.stderr
    assert f"written as OTLP/JSON to {out}" in result.stderr
    assert {s.resource["service.name"] for s in spans} == {"dbt"}


def test_dry_run_prints_the_tree_and_writes_nothing(target: Path) -> None:
    result = run(str(target), "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("dbt build ")
    assert "└─ " in result.stdout and "+2 links" in result.stdout
    assert "dry run: nothing sent" in result.stderr
    assert not (target / "traceparent").exists()


def test_output_to_stdout_and_traceparent_to_a_path(target: Path, tmp_path: Path) -> None:
    carrier = tmp_path / "ctx" / "next.env"
    result = run(str(target), "-o", "-", "--traceparent-to", str(carrier), "--quiet")
    assert result.exit_code == 0
    spans = from_otlp_json_lines(result.stdout)
    assert carrier.read_text() == f"TRACEPARENT=00-{spans[0].trace_id}-{spans[0].span_id}-01\n"
    assert result.stderr == ""


def test_traceparent_to_stdout(target: Path, tmp_path: Path) -> None:
    result = run(str(target), "-o", str(tmp_path / "t.json"), "--traceparent-to", "-", "-q")
    assert result.exit_code == 0
    assert result.stdout.startswith("TRACEPARENT=00-") and result.stdout.count("\n") == 1


@pytest.mark.parametrize("how", ["env", "flag", "file"])
def test_upstream_context_is_joined(target: Path, tmp_path: Path, how: str) -> None:
    out = tmp_path / "t.json"
    args = [str(target), "-o", str(out)]
    env = {}
    if how == "env":
        env = {"TRACEPARENT": UPSTREAM, "TRACESTATE": "team=data"}
    elif how == "flag":
        args += ["--traceparent", UPSTREAM]
    else:
        carrier = tmp_path / "upstream"
        carrier.write_text(f"TRACEPARENT={UPSTREAM}\nTRACESTATE=team=data\n")
        args += ["--traceparent-from", str(carrier)]
    result = run(*args, env=env)
    assert result.exit_code == 0, result.stderr
    spans = from_otlp_json_lines(out.read_text())
    assert {s.trace_id for s in spans} == {"4bf92f3577b34da6a3ce929d0e0e4736"}
    assert spans[0].parent_span_id == "00f067aa0ba902b7"
    written = (target / "traceparent").read_text()
    assert written.startswith(f"TRACEPARENT=00-4bf92f3577b34da6a3ce929d0e0e4736-{spans[0].span_id}-01\n")
    assert ("TRACESTATE=team=data\n" in written) == (how != "flag")


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--traceparent", "00-nothex-01"], {}, "--traceparent: '00-nothex-01' is not a W3C traceparent"),
        ([], {"TRACEPARENT": "garbage"}, "$TRACEPARENT"),
        (["--traceparent", UPSTREAM, "--traceparent-from", "run_results.json"], {}, "cannot be combined"),
        (["--dry-run", "--endpoint", "http://x:4318"], {}, "only for sending"),
        (["--protocol", "smoke"], {}, "Invalid value for '--protocol'"),
        ([], {"OTEL_EXPORTER_OTLP_PROTOCOL": "smoke"}, "unknown OTLP protocol"),
    ],
)
def test_usage_errors_exit_2_and_send_nothing(
    target: Path, args: list[str], env: dict[str, str], message: str
) -> None:
    args = [str(target / a) if a == "run_results.json" else a for a in args]
    result = run(str(target), *args, env=env)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert not (target / "traceparent").exists()


def test_bad_input_exits_1_with_one_line(target: Path) -> None:
    (target / "run_results.json").write_text('{"metadata": {"dbt_schema_version": "https://schemas')
    result = run(str(target), "--dry-run")
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(
        f"dbt-otel-replay: error: {target / 'run_results.json'}: is not valid JSON"
    )
    assert not (target / "traceparent").exists()


def test_missing_target_exits_1(tmp_path: Path) -> None:
    result = run(str(tmp_path / "nowhere"), "--dry-run")
    assert result.exit_code == 1
    assert "run_results.json: not found" in result.stderr


def test_unreachable_collector_exits_3_saves_the_spans_and_hands_the_context_on(target: Path) -> None:
    endpoint = f"http://127.0.0.1:{closed_port()}"
    result = run(str(target), "--endpoint", endpoint, "--timeout", "1.2")
    assert result.exit_code == 3
    spill = target / "otel-replay-unsent.json"
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"dbt-otel-replay: error: {endpoint}/v1/traces: cannot reach the collector")
    assert last.endswith(f"94 spans saved to {spill}: re-send them with `dbt-otel-replay resend {spill}`")
    assert f"NOT all delivered to {endpoint}/v1/traces: 0 of 94 spans accepted" in result.stderr
    assert len(from_otlp_json_lines(spill.read_text())) == 94
    assert (target / "traceparent").read_text().startswith("TRACEPARENT=00-")


def test_headers_never_reach_the_output(target: Path) -> None:
    endpoint = f"http://127.0.0.1:{closed_port()}"
    result = run(
        str(target),
        "--endpoint",
        endpoint,
        "--timeout",
        "0.6",
        "--header",
        "Authorization=Bearer s3cr3t",
        env={"OTEL_EXPORTER_OTLP_HEADERS": "x-api-key=k3y"},
    )
    assert result.exit_code == 3
    assert "s3cr3t" not in result.output and "k3y" not in result.output


def test_html_report_and_waterfall(target: Path, tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    result = run(str(target), "-o", str(tmp_path / "t.json"), "--html", str(report), "--waterfall", "-q")
    assert result.exit_code == 0, result.stderr
    page = report.read_text()
    assert (
        'id="gantt"' in page and 'id="critical-path"' in page and "model.replay_fixture.customer_ltv" in page
    )
    assert "Thread-2 " in result.stdout and "critical path: 4 nodes" in result.stdout
    assert "\x1b[" not in result.stdout, "no colour off a terminal"
    assert max(len(line) for line in result.stdout.splitlines()) <= 120


def test_dry_run_draws_the_waterfall_after_the_tree_but_json_stays_pure(target: Path) -> None:
    text = run(str(target), "--dry-run", "-q").stdout
    assert text.index("└─ ") < text.index("critical path: 4 nodes")
    document = run(str(target), "--dry-run", "--format", "json").stdout
    assert json.loads(document)["version"] == 1


@pytest.mark.parametrize("output", ["trace.json", None], ids=["output", "dry-run"])
def test_undecodable_bytes_in_the_environment_are_replaced_not_a_traceback(
    tmp_path: Path, output: str | None
) -> None:
    # os.environ holds bytes that are not UTF-8 as lone surrogates (PEP 383); OTLP carries UTF-8.
    target = tmp_path / "run"
    copy_pair(FIXTURES / "run", target)
    env = {"OTEL_SERVICE_NAME": "dbt\udcff", "OTEL_RESOURCE_ATTRIBUTES": "team=d\udcffata"}
    args = [str(target), "--output", str(tmp_path / output)] if output else [str(target), "--dry-run"]
    result = CliRunner().invoke(main, args, env=env)
    assert result.exit_code == 0, result.output
    if output:
        line = (tmp_path / output).read_text(encoding="utf-8").splitlines()[0]
        resource = json.loads(line)["resourceSpans"][0]["resource"]["attributes"]
        assert resource == [
            {"key": "service.name", "value": {"stringValue": "dbt\ufffd"}},
            {"key": "team", "value": {"stringValue": "d\ufffdata"}},
        ]


# --------------------------------------------------------------------------- #
# The commands: the default one, each with only its own options, the removed forms
# --------------------------------------------------------------------------- #


def test_target_dir_alone_routes_to_replay(target: Path, tmp_path: Path) -> None:
    short = run(str(target), "-o", str(tmp_path / "short.json"), "--traceparent-to", "-", "-q")
    long = run("replay", str(target), "-o", str(tmp_path / "long.json"), "--traceparent-to", "-", "-q")
    options_first = run("-q", "--dry-run", str(target))
    assert short.exit_code == long.exit_code == options_first.exit_code == 0, short.stderr + long.stderr
    assert short.stdout == long.stdout and short.stdout.startswith("TRACEPARENT=00-")
    assert (tmp_path / "short.json").read_text() == (tmp_path / "long.json").read_text()
    assert options_first.stdout.startswith("dbt build ")


def test_a_target_dir_named_like_a_command_needs_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy_pair(FIXTURES / "run", tmp_path / "backfill")
    monkeypatch.chdir(tmp_path)
    long_form = run("replay", "backfill", "--dry-run", "-q")
    as_a_path = run("./backfill", "--dry-run", "-q")
    assert long_form.exit_code == as_a_path.exit_code == 0, long_form.stderr + as_a_path.stderr
    assert long_form.stdout.startswith("dbt run ") and long_form.stdout == as_a_path.stdout
    assert run("backfill", "--dry-run").stderr.startswith("dbt-otel-replay: error: give a DIR"), "the command"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["DIR", "DIR2"], "several TARGET_DIRs: use `dbt-otel-replay backfill DIR…`"),
        (["--recursive", "ROOT"], "--recursive moved: use `dbt-otel-replay backfill --recursive ROOT`"),
        (
            ["--recursive", "ROOT", "--ledger", "l.sqlite"],
            "--recursive moved: use `dbt-otel-replay backfill --recursive ROOT`",
        ),
        (
            ["DIR", "--ledger", "l.sqlite"],
            "--ledger moved: use `dbt-otel-replay backfill DIR… --ledger FILE`",
        ),
        (["DIR", "--force"], "--force moved: use `dbt-otel-replay backfill DIR… --force`"),
        (["--resend", "spill.json"], "--resend moved: use `dbt-otel-replay resend FILE`"),
        (["DIR", "--dry-run", "--resend", "spill.json"], "--resend moved: use `dbt-otel-replay resend FILE`"),
    ],
    ids=["several-dirs", "recursive", "recursive-ledger", "ledger", "force", "resend", "resend-late"],
)
def test_removed_forms_name_the_new_form_in_one_usage_line(
    target: Path, args: list[str], message: str
) -> None:
    args = [str(target) if a == "DIR" else str(FIXTURES / "run") if a == "DIR2" else a for a in args]
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert result.stderr == f"dbt-otel-replay: error: {message}\n"
    assert result.stdout == ""
    assert not (target / "traceparent").exists()


def options_in(help_text: str) -> set[str]:
    """The long options a --help lists (the first column of each option line)."""
    lines = help_text.split("Options:\n")[1].splitlines()
    return {
        o for line in lines if line.startswith("  -") for o in re.findall(r"--[a-z-]+", line.split("  ")[1])
    }


REPLAY_OPTIONS = {
    "--manifest", "--endpoint", "--traces-endpoint", "--protocol", "--header", "--timeout", "--output",
    "--dry-run",
    "--service-name", "--traceparent", "--traceparent-from", "--traceparent-to", "--include-sql",
    "--sql-max-chars", "--spill", "--format", "--html", "--waterfall", "--nesting", "--dbt-log",
    "--markdown", "--trace-url",
    "--no-dbt-log", "--no-dbt-env", "--quiet", "--help", "--phases", "--select", "--min-duration",
}  # fmt: skip
BACKFILL_OPTIONS = {
    "--recursive", "--ledger", "--force", "--endpoint", "--traces-endpoint", "--protocol", "--header",
    "--timeout", "--output",
    "--dry-run", "--service-name", "--include-sql", "--sql-max-chars", "--spill", "--format", "--nesting",
    "--trace-url",
    "--dbt-log", "--no-dbt-log", "--no-dbt-env", "--quiet", "--help", "--phases", "--select",
    "--min-duration",
}  # fmt: skip
RESEND_OPTIONS = {
    "--endpoint",
    "--traces-endpoint",
    "--protocol",
    "--header",
    "--timeout",
    "--quiet",
    "--help",
}


@pytest.mark.parametrize(
    ("command", "expected"),
    [("replay", REPLAY_OPTIONS), ("backfill", BACKFILL_OPTIONS), ("resend", RESEND_OPTIONS)],
)
def test_each_command_lists_only_its_own_options_and_its_exit_codes(command: str, expected: set[str]) -> None:
    result = run(command, "--help")
    assert result.exit_code == 0
    assert options_in(result.stdout) == expected
    assert "Exit codes: 0 " in result.stdout and "2 usage" in " ".join(result.stdout.split())


def test_replay_help_hides_the_removed_options_and_says_when_the_waterfall_is_drawn() -> None:
    text = run("replay", "--help").stdout
    assert "--resend" not in text and "--recursive" not in text and "--ledger" not in text
    assert "Implied by --dry-run, except with --format json." in " ".join(text.split())


def test_group_help_lists_the_commands_and_version() -> None:
    result = run("--help")
    assert result.exit_code == 0
    commands = result.stdout.split("Commands:")[1].split()
    assert commands[0] == "replay" and "backfill" in commands and "resend" in commands
    assert (
        "Exit codes: 0 delivered, 1 bad input, 2 usage, 3 export failed, 130/143 stopped by SIGINT/SIGTERM"
        in " ".join(result.stdout.split())
    )
    assert "dbt-otel-replay replay backfill" in result.stdout
    assert run("-h").stdout == result.stdout
    version = run("--version")
    assert version.exit_code == 0 and version.stdout.startswith("dbt-otel-replay, version ")


def test_python_dash_m_runs_the_command() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "dbt_otel_replay", "--version"], capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0 and completed.stdout.startswith("dbt-otel-replay, version ")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give a TARGET_DIR, or a command: see 'dbt-otel-replay --help'"),
        (["replay"], "Missing argument 'TARGET_DIR' (see 'dbt-otel-replay replay --help')"),
        (["DIR", "--bogus"], "No such option '--bogus'"),
        (
            ["DIR", "--dry-run", "--dbt-log", "x", "--no-dbt-log"],
            "--dbt-log cannot be combined with --no-dbt-log",
        ),
        (["backfill"], "give a DIR or --recursive ROOT"),
        (["backfill", "DIR", "--traceparent", UPSTREAM], "No such option '--traceparent'"),
        (["backfill", "DIR", "--html", "r.html"], "No such option '--html'"),
        (["resend"], "Missing argument 'FILE' (see 'dbt-otel-replay resend --help')"),
        (["resend", "spill.json", "--output", "x.json"], "No such option '--output'"),
        (["resend", "spill.json", "--dry-run"], "No such option '--dry-run'"),
        (["DIR", "--dry-run", "--output", "x.json"], "--dry-run cannot be combined with --output"),
        (["backfill", "DIR", "-o", "x.json", "--timeout", "3"], "--timeout cannot be combined with --output"),
    ],
)
def test_usage_errors_are_one_line(target: Path, args: list[str], message: str) -> None:
    result = run(*[str(target) if a == "DIR" else a for a in args])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"dbt-otel-replay: error: {message}"), result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output


def test_resend_of_a_missing_file_exits_1(tmp_path: Path) -> None:
    result = run("resend", str(tmp_path / "spill.json"), "--endpoint", "http://127.0.0.1:9")
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith(f"dbt-otel-replay: error: {tmp_path / 'spill.json'}: ")
    assert result.stderr.count("\n") == 1


def test_a_bug_is_one_line_and_exit_70_unless_the_traceback_is_asked_for(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """No real input makes the tool fail unexpectedly (that would be a bug to fix), so one is planted."""

    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("boom \x1b[2J")

    monkeypatch.setattr("dbt_otel_replay.cli.replay", broken)
    result = run(str(FIXTURES / "build"), "--dry-run")
    assert result.exit_code == 70
    assert result.stderr.splitlines() == [
        "dbt-otel-replay: error: internal error: ValueError: boom \\x1b[2J (a bug in dbt-otel-replay "
        f"{__version__}: please report it with the command you ran; DBT_OTEL_REPLAY_DEBUG=1 shows the "
        "traceback)"
    ]
    shown = CliRunner().invoke(
        main, [str(FIXTURES / "build"), "--dry-run"], env={"DBT_OTEL_REPLAY_DEBUG": "1"}
    )
    assert isinstance(shown.exception, ValueError)


def test_the_console_exporter_and_a_json_summary_cannot_share_stdout(target: Path) -> None:
    result = run(str(target), "--format", "json", env={"OTEL_TRACES_EXPORTER": "console"})
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith(
        "dbt-otel-replay: error: --format json cannot share standard output with OTEL_TRACES_EXPORTER=console"
    )
    assert not (target / "traceparent").exists(), "refused before anything is written"
    written = run(
        str(target), "--format", "json", "-o", str(target / "t.json"), env={"OTEL_TRACES_EXPORTER": "console"}
    )
    assert written.exit_code == 0 and json.loads(written.stdout)["version"] == 1
