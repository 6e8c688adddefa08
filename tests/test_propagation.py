"""Trace context in (traceparent, environment, carrier files) and out (the carrier file format)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from dbt_otel_replay.errors import ContextError
from dbt_otel_replay.plan import TraceContext
from dbt_otel_replay.propagation import (
    context_from_environment,
    format_carrier,
    parse_traceparent,
    read_carrier,
    write_carrier,
)

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"
VALUE = f"00-{TRACE}-{SPAN}-01"
# GitLab's dotenv report rules: KEY=VALUE per line, no comments, blank lines, quotes or export.
DOTENV_LINE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=[^\s'\"#]*")


def test_parses_a_w3c_traceparent() -> None:
    context = parse_traceparent(VALUE, "rojo=00f067aa0ba902b7 , congo=t61rcWkgMzE")
    assert (context.trace_id, context.span_id, context.trace_flags) == (TRACE, SPAN, 1)
    assert context.tracestate == "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"


def test_future_versions_may_carry_more_fields() -> None:
    assert parse_traceparent(f"01-{TRACE}-{SPAN}-00-extra").trace_id == TRACE


@pytest.mark.parametrize(
    "value",
    [
        "",
        "garbage",
        f"00-{TRACE.upper()}-{SPAN}-01",
        f"00-{'0' * 32}-{SPAN}-01",
        f"00-{TRACE}-{'0' * 16}-01",
        f"ff-{TRACE}-{SPAN}-01",
        f"00-{TRACE}-{SPAN}-01-extra",
        f"00-{TRACE[:-1]}-{SPAN}-01",
    ],
)
def test_malformed_traceparents_are_refused(value: str) -> None:
    with pytest.raises(ContextError, match="--traceparent"):
        parse_traceparent(value, source="--traceparent")


def test_malformed_tracestate_is_refused() -> None:
    with pytest.raises(ContextError, match="tracestate member"):
        parse_traceparent(VALUE, "no equals sign")


def test_environment_carrier() -> None:
    assert context_from_environment({}) is None
    context = context_from_environment({"TRACEPARENT": VALUE, "TRACESTATE": "a=b"})
    assert context == TraceContext(TRACE, SPAN, 1, "a=b")
    with pytest.raises(ContextError, match=r"\$TRACEPARENT"):
        context_from_environment({"TRACEPARENT": "nope"})


def test_carrier_file_format_is_plain_key_value_lines(tmp_path: Path) -> None:
    path = tmp_path / "traceparent"
    write_carrier(path, TraceContext(TRACE, SPAN))
    assert path.read_text() == f"TRACEPARENT={VALUE}\n"
    write_carrier(path, TraceContext(TRACE, SPAN, tracestate="a=b,c=d"))
    lines = path.read_text().split("\n")
    assert lines == [f"TRACEPARENT={VALUE}", "TRACESTATE=a=b,c=d", ""]
    assert all(DOTENV_LINE.fullmatch(line) for line in lines if line)


def test_a_shell_can_source_the_carrier_file(tmp_path: Path) -> None:
    path = tmp_path / "traceparent"
    write_carrier(path, TraceContext(TRACE, SPAN, tracestate="rojo=1,congo=2"))
    script = f'set -a; . "{path}"; printf "%s|%s" "$TRACEPARENT" "$TRACESTATE"'
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True, env={})
    assert out.stdout == f"{VALUE}|rojo=1,congo=2"


def test_reads_its_own_files_and_otel_cli_style_ones(tmp_path: Path) -> None:
    own = tmp_path / "own"
    write_carrier(own, TraceContext(TRACE, SPAN, tracestate="a=b"))
    assert read_carrier(own) == TraceContext(TRACE, SPAN, 1, "a=b")
    otel_cli = tmp_path / "otel-cli"
    otel_cli.write_text(f'# trace id: {TRACE}\n#  span id: {SPAN}\nexport TRACEPARENT="{VALUE}"\n\n')
    assert read_carrier(otel_cli).span_id == SPAN


def test_a_carrier_without_traceparent_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty"
    path.write_text("FOO=bar\n")
    with pytest.raises(ContextError, match="no TRACEPARENT"):
        read_carrier(path)


def test_a_long_tracestate_is_trimmed_as_w3c_allows_so_dotenv_files_stay_small() -> None:
    long_member = "big=" + "x" * 200
    members = [f"k{i}=" + "v" * 60 for i in range(20)]
    text = format_carrier(TraceContext(TRACE, SPAN, tracestate=",".join([long_member, *members])))
    tracestate = text.splitlines()[1].removeprefix("TRACESTATE=")
    assert len(tracestate) <= 512 and "big=" not in tracestate
    assert tracestate.split(",") == members[: len(tracestate.split(","))], "the newest members are kept"
    assert format_carrier(TraceContext(TRACE, SPAN, tracestate="a=1")).endswith("TRACESTATE=a=1\n")
