"""Terminal escape injection: outside text reaches a person's terminal only with its controls made visible.

dbt's messages (which can quote table rows), unique ids, thread ids and args.which,
and collectors' response bodies and gRPC details, are written by others. Through
the real CLI, each human-readable output (summary, --dry-run tree, warnings, error
lines, backfill lines, library log lines, the resend line) shows them escaped, and
the JSON documents keep the exact text, JSON-escaped.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import grpc
import pytest
from click.testing import Result
from hypothesis import given
from hypothesis import strategies as st

from dbt_otel_replay.cli import _LowercaseLevelFormatter
from dbt_otel_replay.terminal import escape
from tests.support.cli import run_cli as run
from tests.support.contract import copy_pair
from tests.support.receiver import OtlpReceiver

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "artifacts"

EVIL = "\x1b[2J\x1b]0;pwned\x07\b\r\u202e"
"""Clear the screen, retitle the window, back up, return to the line's start, reverse what follows."""
SHOWN = "\\x1b[2J\\x1b]0;pwned\\x07\\x08\\r\\u202e"
"""EVIL as a terminal shows it after escaping."""
SHOWN_COLLAPSED = SHOWN.replace("\\r", " ")
"""EVIL in a line that collapses whitespace first (a failure message, a backfill remark): \\r is a space."""
RAW = ("\x1b", "\x07", "\b", "\r", "\u202e")
"""What must never reach stdout or stderr from outside text."""

BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
UNSAFE = {chr(c) for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))} | set(BIDI)
"""Written out here, apart from the package: C0, DEL, C1 and the bidi controls."""

FAILED = "model.replay_fixture.customer_ltv"
MESSAGE = f"Database Error in model customer_ltv: value '{EVIL}' row 3"
RENAMED = "test.replay_fixture.unique_customer_orders_customer_id.0e9f6da4ce"
UNIQUE_ID = f"test.evil{EVIL}"
THREADED = "test.replay_fixture.not_null_orders_amount.106140f9fd"
THREAD = f"Thread-9{EVIL}"
COMMAND = f"build{EVIL}"


def assert_safe(*texts: str) -> None:
    for text in texts:
        found = [char for char in RAW if char in text]
        assert not found, f"raw {found!r} in {text!r}"


@pytest.fixture
def target(tmp_path: Path) -> Path:
    """The fixture build with EVIL in a failure message, a unique_id, a thread_id and args.which."""
    directory = tmp_path / "target"
    copy_pair(FIXTURES / "build", directory)
    path = directory / "run_results.json"
    document = json.loads(path.read_text())
    document["args"]["which"] = COMMAND
    for result in document["results"]:
        if result["unique_id"] == FAILED:
            result["message"] = MESSAGE
        elif result["unique_id"] == RENAMED:
            result["unique_id"] = UNIQUE_ID  # not in the manifest either: a warning names it
        elif result["unique_id"] == THREADED:
            result["thread_id"] = THREAD
    path.write_text(json.dumps(document))
    return directory


# --------------------------------------------------------------------------- #
# The rules
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("\x1b[2J", "\\x1b[2J"),
        ("\x1b]0;pwned\x07", "\\x1b]0;pwned\\x07"),
        ("a\bb", "a\\x08b"),
        ("a\rb", "a\\rb"),
        ("one\ntwo", "one\\ntwo"),
        ("a\tb", "a\\tb"),
        ("\x00\x7f", "\\x00\\x7f"),
        ("\x85\x9b31m", "\\x85\\x9b31m"),
        ("abc\u202edef", "abc\\u202edef"),
        (BIDI, "".join(f"\\u{ord(c):04x}" for c in BIDI)),
    ],
)
def test_escape_makes_controls_and_bidi_visible(text: str, shown: str) -> None:
    assert escape(text) == shown


@pytest.mark.parametrize(
    "text",
    [
        "",
        "model.replay_fixture.customer_ltv",
        "Thread-1 (worker)",
        "naïve Ünïcode, Ελληνικά, עברית, العربية",  # right-to-left letters are text, not controls
        "日本語のモデル 🚀👩\u200d💻",  # CJK, emoji, and the zero-width joiner inside one
        r"C:\dbt\target and \x1b as typed",
    ],
)
def test_escape_leaves_other_text_as_it_is(text: str) -> None:
    assert escape(text) == text


@given(st.text())
def test_escape_changes_only_unsafe_characters_each_on_its_own(text: str) -> None:
    shown = escape(text)
    assert not UNSAFE & set(shown)
    assert shown == "".join(escape(c) if c in UNSAFE else c for c in text)


def test_each_unsafe_character_shows_as_a_printable_ascii_escape() -> None:
    for char in UNSAFE:
        shown = escape(char)
        assert shown.startswith("\\") and len(shown) > 1 and shown.isascii() and shown.isprintable(), char


def test_the_log_formatter_escapes_a_copy_and_leaves_the_record() -> None:
    record = logging.LogRecord(
        "dbt_otel_replay.x", logging.WARNING, __file__, 1, "%s says: %s", ("c", EVIL), None
    )
    line = _LowercaseLevelFormatter("%(levelname)s: %(message)s").format(record)
    assert line == f"warning: c says: {SHOWN}"
    assert record.levelname == "WARNING" and record.getMessage() == f"c says: {EVIL}"


# --------------------------------------------------------------------------- #
# Artifact text: summary, tree, warnings, JSON, backfill, error lines
# --------------------------------------------------------------------------- #


def test_summary_and_tree_show_artifact_text_escaped(target: Path) -> None:
    result = run(str(target), "--dry-run")
    assert result.exit_code == 0, result.output
    assert_safe(result.stdout, result.stderr)
    summary = result.stderr
    assert f"dbt {COMMAND}" not in summary and f"dbt build{SHOWN}, 94 spans" in summary
    assert (
        f"error  {FAILED}: Database Error in model customer_ltv: value '{SHOWN_COLLAPSED}' row 3" in summary
    )
    assert f"    Thread-9{SHOWN}  " in summary
    tree = result.stdout.split("\n\n")[0]
    assert tree.startswith(f"dbt build{SHOWN}  ")
    assert f"─ test.evil{SHOWN}  " in tree
    assert "?[2J?]0;pwned" in result.stdout, "the waterfall below replaces controls with '?'"


def test_warnings_with_quiet_show_artifact_text_escaped(target: Path) -> None:
    result = run(str(target), "--dry-run", "-q")
    assert result.exit_code == 0, result.output
    assert_safe(result.stdout, result.stderr)
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("dbt-otel-replay: warning: ")
    assert f"(test.evil{SHOWN})" in result.stderr


def test_json_document_keeps_the_exact_text(target: Path) -> None:
    result = run(str(target), "--dry-run", "--format", "json")
    assert result.exit_code == 0, result.output
    assert_safe(result.stdout, result.stderr)
    assert result.stdout.isascii() and "\\u202e" in result.stdout
    document = json.loads(result.stdout)
    assert document["command"] == f"dbt {COMMAND}"
    assert [f["message"] for f in document["failures"] if f["unique_id"] == FAILED] == [MESSAGE]
    assert THREAD in {t["name"] for t in document["threads"]}
    assert any(UNIQUE_ID in w for w in document["warnings"])
    assert f"(test.evil{SHOWN})" in result.stderr, "the warning on stderr is escaped"


def test_backfill_lines_show_artifact_text_and_paths_escaped(target: Path, tmp_path: Path) -> None:
    archived = tmp_path / f"archive{EVIL}"
    shutil.copytree(target, archived)
    unreadable = tmp_path / f"broken{EVIL}"
    unreadable.mkdir()
    (unreadable / "run_results.json").write_text('{"metadata": ')
    result = run("backfill", str(archived), str(unreadable), "--dry-run")
    assert result.exit_code == 1, result.output
    assert_safe(result.stdout, result.stderr)
    planned, skipped = sorted(result.stdout.splitlines(), key=lambda line: not line.startswith("planned"))
    assert (
        f"  dbt {escape(COMMAND)} (33 nodes, 94 spans)  {tmp_path}/archive{SHOWN}/run_results.json: "
        in planned
    )
    assert f"(test.evil{SHOWN_COLLAPSED})" in planned
    assert skipped.startswith("skipped ") and f"broken{SHOWN}" in skipped
    assert result.stderr == "2 runs: 1 planned, 1 skipped; 0 spans\n"

    as_json = run("backfill", str(archived), "--dry-run", "--format", "json")
    assert_safe(as_json.stdout, as_json.stderr)
    [entry] = json.loads(as_json.stdout)["runs"]
    assert entry["command"] == f"dbt {COMMAND}" and entry["run_results"] == str(archived / "run_results.json")
    assert UNIQUE_ID in entry["message"]


def test_error_lines_show_outside_text_escaped(tmp_path: Path) -> None:
    missing = tmp_path / f"run{EVIL}\nsecond line"
    result = run(str(missing), "--dry-run")
    assert result.exit_code == 1, result.output
    assert_safe(result.stdout, result.stderr)
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(
        f"dbt-otel-replay: error: {tmp_path}/run{SHOWN}\\nsecond line/run_results.json: "
    )


# --------------------------------------------------------------------------- #
# Collector text: retry lines, log lines, error lines, the resend line
# --------------------------------------------------------------------------- #

COLLECTOR = f"overloaded{EVIL}\nsee row"
"""What a hostile (or merely careless) collector answers."""
COLLECTOR_SHOWN = f"overloaded{SHOWN}\\nsee row"


@pytest.fixture(params=["grpc", "http/protobuf"])
def protocol(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def send(target: Path, receiver: OtlpReceiver, protocol: str, *extra: str) -> Result:
    endpoint = receiver.grpc_endpoint if protocol == "grpc" else receiver.http_base_endpoint
    return run(str(target), "--endpoint", endpoint, "--protocol", protocol, *extra)


def test_retry_lines_and_the_final_error_show_collector_text_escaped(
    target: Path, otlp_receiver: OtlpReceiver, protocol: str
) -> None:
    otlp_receiver.fail_next(1000, message=COLLECTOR)
    result = send(target, otlp_receiver, protocol, "--timeout", "1.2", "-q")
    assert result.exit_code == 3, result.output
    assert_safe(result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    retries = [line for line in lines if "; retrying in " in line]
    assert retries and all(line.startswith("dbt-otel-replay: warning: ") for line in retries)
    assert lines[-1].startswith("dbt-otel-replay: error: ") and "gave up after" in lines[-1]
    if protocol == "grpc":  # gRPC quotes the details; HTTP says only "HTTP 503" of a retryable status
        assert all(f"gRPC UNAVAILABLE: {COLLECTOR_SHOWN}; retrying in" in line for line in retries)
        assert f"gRPC UNAVAILABLE: {COLLECTOR_SHOWN} (gave up after" in lines[-1]


def test_a_refusal_shows_collector_text_escaped(
    target: Path, otlp_receiver: OtlpReceiver, protocol: str
) -> None:
    otlp_receiver.fail_next(1, grpc_code=grpc.StatusCode.INVALID_ARGUMENT, http_status=400, message=COLLECTOR)
    result = send(target, otlp_receiver, protocol)
    assert result.exit_code == 3, result.output
    assert_safe(result.stdout, result.stderr)
    last = result.stderr.splitlines()[-1]
    assert last.startswith("dbt-otel-replay: error: ") and f": {COLLECTOR_SHOWN}; 94 spans saved to " in last


def test_partial_success_log_and_error_lines_and_the_resend_line_are_escaped(
    target: Path, otlp_receiver: OtlpReceiver, protocol: str, tmp_path: Path
) -> None:
    otlp_receiver.partial_success(0, message=COLLECTOR)
    accepted = send(target, otlp_receiver, protocol, "-q")
    assert accepted.exit_code == 0, accepted.output
    assert_safe(accepted.stdout, accepted.stderr)
    assert f": the collector says: {COLLECTOR_SHOWN}\n" in accepted.stderr

    otlp_receiver.partial_success(1, message=COLLECTOR)
    rejected = send(target, otlp_receiver, protocol, "-q")
    assert rejected.exit_code == 3, rejected.output
    assert_safe(rejected.stdout, rejected.stderr)
    last = rejected.stderr.splitlines()[-1]
    assert last.startswith("dbt-otel-replay: error: ") and "the collector rejected 1 of " in last
    assert f": {COLLECTOR_SHOWN}; " in last

    spill = tmp_path / f"unsent{EVIL}.json"
    (target / "otel-replay-unsent.json").rename(spill)
    endpoint = otlp_receiver.grpc_endpoint if protocol == "grpc" else otlp_receiver.http_base_endpoint
    still = run("resend", str(spill), "--endpoint", endpoint, "--protocol", protocol)
    assert still.exit_code == 3, still.output
    assert_safe(still.stdout, still.stderr)
    assert f"from {tmp_path}/unsent{SHOWN}.json to " in still.stderr
    assert still.stderr.splitlines()[-1].startswith("dbt-otel-replay: error: ")
    assert (
        COLLECTOR_SHOWN in still.stderr.splitlines()[-1]
        and f"stay in {tmp_path}/unsent{SHOWN}.json" in still.stderr
    )

    otlp_receiver.clear_partial_success()
    resent = run("resend", str(spill), "--endpoint", endpoint, "--protocol", protocol)
    assert resent.exit_code == 0, resent.output
    assert_safe(resent.stdout, resent.stderr)
    assert resent.stderr.startswith("resent ") and f"from {tmp_path}/unsent{SHOWN}.json to " in resent.stderr
    assert resent.stderr.endswith("; file removed\n") and not spill.exists()
