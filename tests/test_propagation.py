"""Trace context in (traceparent, environment, carrier files) and out (the carrier file format)."""

from __future__ import annotations

import logging
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from dbt_otel_replay.cli import main
from dbt_otel_replay.errors import ContextError
from dbt_otel_replay.plan import TraceContext
from dbt_otel_replay.propagation import (
    carrier_tracestate,
    context_from_environment,
    format_carrier,
    parse_traceparent,
    read_carrier,
    write_carrier,
)
from tests.support.contract import copy_pair

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"
VALUE = f"00-{TRACE}-{SPAN}-01"
# GitLab's dotenv report rules: KEY=VALUE per line, no comments, blank lines, quotes or export.
DOTENV_LINE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=[^\s'\"#]*")
BUILD = Path(__file__).resolve().parents[1] / "fixtures" / "artifacts" / "build"


@pytest.fixture
def logged() -> Iterator[list[str]]:
    """The propagation module's warnings (the CLI may have stopped the package logger propagating)."""
    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    handler = Collect(logging.WARNING)
    logger = logging.getLogger("dbt_otel_replay.propagation")
    logger.addHandler(handler)
    yield messages
    logger.removeHandler(handler)


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


def test_unsafe_tracestate_members_are_left_out_with_one_warning(logged: list[str]) -> None:
    context = TraceContext(TRACE, SPAN, tracestate="a=$(touch x),rojo=1,b=x;id,c=t61 id,t@s=*/+.:-_@")
    assert format_carrier(context) == f"TRACEPARENT={VALUE}\nTRACESTATE=rojo=1,t@s=*/+.:-_@\n"
    assert logged == [
        "the traceparent file leaves out 3 tracestate members holding characters that a shell or "
        "env-file reader would not take literally (it writes only letters, digits and _-*/@=+.:)"
    ]
    assert format_carrier(TraceContext(TRACE, SPAN, tracestate="k=`id`")) == f"TRACEPARENT={VALUE}\n"
    assert logged[-1].startswith("the traceparent file leaves out 1 tracestate member holding")
    assert len(logged) == 2


@pytest.mark.parametrize("char", list("$`\\\"' ;&|<>()~#!%^?[]{}\t"))
def test_every_special_character_drops_its_member(char: str) -> None:
    assert carrier_tracestate(f"k=a{char}b,ok=1") == ("ok=1", 1)


def test_carrier_tracestate_drops_before_it_trims() -> None:
    members = [f"k{i}=" + "v" * 60 for i in range(8)]  # 8 x 64 - 1 = 511 characters: fits only without x
    assert carrier_tracestate(",".join(["x=$(id)", *members])) == (",".join(members), 1)
    assert carrier_tracestate(" a=1 ,\t,b=2") == ("a=1,b=2", 0)
    assert carrier_tracestate(None) == (None, 0)
    assert carrier_tracestate("a=b c") == (None, 1)


def test_a_malformed_context_is_never_written() -> None:
    with pytest.raises(ValueError, match="not a W3C traceparent"):
        format_carrier(TraceContext("$(id)", SPAN))
    with pytest.raises(ValueError, match="not a W3C traceparent"):
        format_carrier(TraceContext(TRACE, SPAN, trace_flags=256))


@pytest.mark.parametrize(
    "text",
    [
        f"\ufeffTRACEPARENT={VALUE}\nTRACESTATE=a=b\n",
        f"TRACEPARENT={VALUE}\r\nTRACESTATE=a=b\r\n",
        f"\ufeff# otel-cli\r\nexport TRACEPARENT=\"{VALUE}\"\r\n\r\nexport TRACESTATE='a=b'\r\n",
        f"TRACEPARENT={VALUE}\rTRACESTATE=a=b",
    ],
    ids=["bom", "crlf", "bom-crlf-otel-cli", "cr"],
)
def test_carrier_files_with_a_bom_or_crlf_line_ends_are_read(tmp_path: Path, text: str) -> None:
    path = tmp_path / "carrier"
    path.write_bytes(text.encode())
    assert read_carrier(path) == TraceContext(TRACE, SPAN, 1, "a=b")


def test_a_carrier_file_that_is_not_utf8_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "carrier"
    path.write_bytes(f"TRACEPARENT={VALUE}\n\xff\n".encode("latin-1"))
    with pytest.raises(
        ContextError, match=r"carrier: cannot read the traceparent file: not UTF-8 \(byte 68\)"
    ):
        read_carrier(path)


def test_a_missing_carrier_file_is_refused_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(ContextError) as raised:
        read_carrier(tmp_path / "absent")
    assert (
        str(raised.value)
        == f"{tmp_path / 'absent'}: cannot read the traceparent file: No such file or directory"
    )


READ_FIFO = """
import sys
from pathlib import Path
from dbt_otel_replay.errors import ContextError
from dbt_otel_replay.propagation import read_carrier
try:
    read_carrier(Path(sys.argv[1]))
except ContextError as exc:
    print(exc)
"""


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_a_fifo_is_refused_at_once_instead_of_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "carrier"
    os.mkfifo(fifo)
    # In a child process with a timeout: if read_carrier blocked, the test fails instead of hanging.
    result = subprocess.run(
        [sys.executable, "-c", READ_FIFO, str(fifo)], capture_output=True, text=True, timeout=30, check=True
    )
    assert result.stdout == f"{fifo}: cannot read the traceparent file: it is a FIFO, not a regular file\n"
    assert result.stderr == ""


def test_other_non_regular_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ContextError, match=r"it is a directory, not a regular file$"):
        read_carrier(tmp_path)
    path = tmp_path / "s"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        with pytest.raises(ContextError, match=r"it is a socket, not a regular file$"):
            read_carrier(path)
    regular = tmp_path / "regular"
    regular.write_text(f"TRACEPARENT={VALUE}\n")
    (tmp_path / "link").symlink_to(regular)
    assert read_carrier(tmp_path / "link").span_id == SPAN, "a symlink to a regular file is read"


@pytest.mark.parametrize(
    ("upstream_flags", "written_flags"), [("00", "00"), ("01", "01"), ("03", "03"), ("ff", "03")]
)
def test_the_upstream_sampled_flag_is_handed_on(
    tmp_path: Path, upstream_flags: str, written_flags: str
) -> None:
    target = tmp_path / "target"
    copy_pair(BUILD, target)
    env = {"TRACEPARENT": f"00-{TRACE}-{SPAN}-{upstream_flags}", "TRACESTATE": "", "OTEL_SERVICE_NAME": ""}
    result = CliRunner().invoke(main, [str(target), "-o", str(tmp_path / "t.json")], env=env)
    assert result.exit_code == 0, result.stderr
    written = read_carrier(target / "traceparent")
    assert written.trace_id == TRACE and written.span_id != SPAN
    assert written.traceparent.endswith(f"-{written_flags}")
