"""The command line: where output goes, the traceparent file, and the documented exit codes."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from dbt_otel_replay.cli import main
from tests.support.contract import copy_pair, from_otlp_json_lines

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "artifacts"
UPSTREAM = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture
def target(tmp_path: Path) -> Path:
    directory = tmp_path / "target"
    copy_pair(FIXTURES / "build", directory)
    return directory


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    base = {"TRACEPARENT": "", "TRACESTATE": "", "OTEL_SERVICE_NAME": "", "OTEL_RESOURCE_ATTRIBUTES": ""}
    return CliRunner().invoke(main, list(args), env={**base, **(env or {})})


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
    assert last.endswith(f"94 spans saved to {spill}: re-send them with `dbt-otel-replay --resend {spill}`")
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


def test_help_documents_exit_codes_and_version() -> None:
    help_text = run("--help").stdout
    assert "Exit codes: 0 delivered, 1 bad input, 2 usage, 3 export failed." in " ".join(help_text.split())
    assert run("--version").stdout.startswith("dbt-otel-replay, version ")


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


def test_views_are_for_one_run(tmp_path: Path) -> None:
    result = run(
        str(FIXTURES / "run"), str(FIXTURES / "test"), "--dry-run", "--html", str(tmp_path / "r.html")
    )
    assert result.exit_code == 2 and "--html: for one run" in result.stderr


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
