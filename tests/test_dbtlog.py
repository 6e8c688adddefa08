"""dbt_otel_replay.dbtlog: dbt's own log, read after the fact, for one invocation.

Real logs first: the public corpus (``../shared/logs-corpus``, read in place) and the fixture
runs (``fixtures/logs/<scenario>``, compared statement by statement with dbt's own JSON events
for the same invocation, ``expected.jsonl``). Then synthetic logs, written into tmp_path, for
what real logs show only by chance: zones, midnight, rotation, compression, damage.
"""

from __future__ import annotations

import gzip
import json
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from dbt_otel_replay.artifacts import load_run_results
from dbt_otel_replay.dbtlog import InvocationLog, find_log_files, read_invocation
from dbt_otel_replay.errors import ArtifactError
from dbt_otel_replay.timestamps import parse_timestamp

REPO = Path(__file__).parents[1]
CORPUS = REPO.parent / "shared" / "logs-corpus"
FIXTURES = REPO / "fixtures" / "logs"
SECOND = 1_000_000_000
TOLERANCE = 2 * SECOND
DAY = 86_400 * SECOND


def node_times_of(run_results: Path) -> dict[str, tuple[int, int]]:
    results = load_run_results(run_results, [])
    return {
        r.unique_id: (r.started_at, r.completed_at)
        for r in results.results
        if r.started_at is not None and r.completed_at is not None
    }


def invocation_of(run_results: Path) -> str:
    invocation = load_run_results(run_results, []).metadata.invocation_id
    assert invocation
    return invocation


# --------------------------------------------------------------------------- #
# The public corpus
# --------------------------------------------------------------------------- #


def _corpus(in_log: bool) -> list[Any]:
    if not CORPUS.is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"{CORPUS} not present"))]
    folders = []
    for folder in sorted(p for p in CORPUS.iterdir() if (p / "SOURCE.json").exists()):
        source = json.loads((folder / "SOURCE.json").read_text())
        if (
            bool(source.get("rr_invocation_in_log")) == in_log
            and (folder / "run_results.json").exists() == in_log
        ):
            folders.append(pytest.param(folder, id=folder.name))
    return folders


def _section(log: Path, invocation_id: str) -> str:
    """The invocation's part of a text log, found independently of the parser (header to next header)."""
    text = log.read_text(encoding="utf-8", errors="replace")
    start = text.index(f"| {invocation_id} =")
    following = re.compile(r"\n={20,} \S+(?: \S+)? \| \S+ ={20,}").search(text, start)
    return text[start : following.start() if following else len(text)]


@pytest.mark.parametrize("folder", _corpus(True))
def test_corpus_invocation(folder: Path) -> None:
    source = json.loads((folder / "SOURCE.json").read_text())
    invocation = invocation_of(folder / "run_results.json")
    node_times = node_times_of(folder / "run_results.json")
    warnings: list[str] = []

    log = read_invocation([folder / "dbt.log"], invocation, node_times, warnings)

    assert log is not None, warnings
    assert warnings == []
    assert log.invocation_id == invocation
    assert log.files == [str(folder / "dbt.log")]
    # the UTC offset: header time of day against run_results.json's start, in SOURCE.json
    evidence = source["timezone_evidence"]
    expected = round(evidence["offset_hours_rounded"] * 3600)
    assert log.utc_offset_seconds is not None
    if abs(expected) >= 10 * 3600:
        # -12:00 and +12:00 (and -10:00/+14:00, -11:00/+13:00) are the same time of day: both place
        # every line at the same instant; the parser names the more populated zone (+12:00 for
        # this Auckland project: SOURCE.json's notes say so too)
        assert (log.utc_offset_seconds - expected) % 86_400 == 0
    else:
        assert log.utc_offset_seconds == expected
    # the statement count is plausible: some, no more than the whole file has
    statements = log.statements
    assert 0 < len(statements) <= source["statements"]
    assert sum(1 for s in statements if s.status is not None) <= sum(source["sql_statuses"].values())
    if source["sql_statuses"]:  # adapters that log status lines answer every statement (or it failed)
        assert all(s.status is not None or s.error is not None for s in statements)
    # every statement of a node lies within what run_results.json recorded for it
    for statement in statements:
        assert statement.summary
        window = node_times.get(statement.node_id or "")
        if window is not None:
            assert window[0] - TOLERANCE <= statement.start_ns <= window[1] + TOLERANCE, statement
            if statement.elapsed_ns is not None:
                assert statement.start_ns + statement.elapsed_ns <= window[1] + TOLERANCE, statement
    # query ids where the log names them (independently found in the invocation's lines)
    if source["query_id_examples"] and "fusion" not in source["format"]:
        section = _section(folder / "dbt.log", invocation)
        logged = set(re.findall(r"Snowflake query id: (\S+)", section))
        logged |= set(re.findall(r"command-id=([0-9a-f-]+)\) - Closing", section))
        found = {s.query_id for s in statements if s.query_id}
        assert found <= logged
        assert len(found) >= min(len(logged), len(statements)) - 2  # two threads may share a name
        if "Databricks" in section:
            assert found


def test_corpus_fusion_log() -> None:
    folder = CORPUS / "dbt-labs__dbt-query-profiler__integration_tests"
    if not folder.is_dir():
        pytest.skip(f"{folder} not present")
    warnings: list[str] = []
    run_results = folder / "run_results.json"
    log = read_invocation(
        [folder / "dbt.log"], invocation_of(run_results), node_times_of(run_results), warnings
    )
    assert log is not None and warnings == []
    assert log.utc_offset_seconds == 0  # dbt Fusion's header is UTC
    [statement] = log.statements
    assert statement.node_id is None  # "Query executed on node unknown"
    assert statement.operation == "SELECT"
    assert statement.start_ns == parse_timestamp("2026-01-29T13:05:46.086087Z")
    assert statement.elapsed_ns is None  # Fusion logs no status line


def test_fusion_statement_without_sql(tmp_path: Path) -> None:
    header = f"{'=' * 20} 2026-01-29T13:05:30.582510Z | inv-f {'=' * 20}\n"
    lines = "13:05:32.538908 [debug]: Query executed on node model.p.a:\n13:05:32.638908 [debug]: Done\n"
    warnings: list[str] = []
    log = read_invocation([write(tmp_path / "dbt.log", header + lines)], "inv-f", {}, warnings)
    assert log is not None and warnings == []
    [statement] = log.statements
    assert (statement.node_id, statement.summary, statement.operation) == ("model.p.a", "SQL", None)
    assert statement.start_ns == parse_timestamp("2026-01-29T13:05:32.538908Z")


@pytest.mark.parametrize("folder", _corpus(False))
def test_corpus_without_the_run(folder: Path) -> None:
    source = json.loads((folder / "SOURCE.json").read_text())
    warnings: list[str] = []
    log = read_invocation([folder / "dbt.log"], "5f0e3cb2-0000-4000-8000-00000000abcd", {}, warnings)
    assert log is None
    assert len(warnings) == 1
    if source["invocations_in_log"] == 0:  # dbt < 1.0: no header, no invocation id
        assert "dbt < 1.0" in warnings[0]
    else:
        assert "is not in the log" in warnings[0]


# --------------------------------------------------------------------------- #
# The fixture runs, against dbt's own JSON events for the same invocation
# --------------------------------------------------------------------------- #


def _scenarios() -> list[Any]:
    found = sorted(p for p in FIXTURES.glob("*") if (p / "expected.jsonl.gz").exists())
    assert found, (
        "fixtures/logs/*/expected.jsonl.gz are committed: regenerate them with fixtures/regenerate-logs.sh"
    )
    return [pytest.param(p, id=p.name) for p in found]


@dataclass
class Expected:
    node: str | None
    connection: str
    thread: str
    start_ns: int
    status: str | None = None
    elapsed: float | None = None
    sql: str = field(default="", repr=False)


def _expected(scenario: Path) -> tuple[list[Expected], list[dict[str, Any]]]:
    """dbt's statements, and its batch and hook events (``name``, ``ts`` and the event's data)."""
    statements: list[Expected] = []
    batches: list[dict[str, Any]] = []
    last: dict[str, Expected] = {}
    for line in gzip.decompress((scenario / "expected.jsonl.gz").read_bytes()).decode().splitlines():
        event = json.loads(line)
        info, data = event["info"], event["data"]
        if info["name"] == "SQLQuery":
            node = (data.get("node_info") or {}).get("unique_id") or None
            statement = Expected(
                node, data["conn_name"], info["thread"], parse_timestamp(info["ts"]), sql=data["sql"]
            )
            statements.append(statement)
            last[info["thread"]] = statement
        elif info["name"] == "SQLQueryStatus":
            answered = last[info["thread"]]
            answered.status, answered.elapsed = data["status"], data["elapsed"]
        elif info["name"] in ("LogStartBatch", "LogBatchResult", "LogHookStartLine", "LogHookEndLine"):
            batches.append(
                {"name": info["name"], "ts": parse_timestamp(info["ts"]), "msg": info["msg"], **data}
            )
    return statements, batches


@pytest.mark.parametrize("scenario", _scenarios())
def test_fixture_statements_match_dbts_own_events(scenario: Path) -> None:
    description = json.loads((scenario / "SCENARIO.json").read_text())
    run_results = scenario / "target" / "run_results.json"
    invocation = invocation_of(run_results)
    warnings: list[str] = []

    log = read_invocation(
        find_log_files(scenario / "target"), invocation, node_times_of(run_results), warnings
    )

    assert log is not None, warnings
    assert warnings == []
    assert log.log_format == ("json" if description["file_log_format"] == "json" else "text")
    ours = next(i for i in description["invocations"] if i["invocation_id"] == invocation)
    if log.log_format == "text":
        sign, hours, minutes = ours["utc_offset"][0], ours["utc_offset"][1:3], ours["utc_offset"][4:6]
        assert log.utc_offset_seconds == (-1 if sign == "-" else 1) * (int(hours) * 3600 + int(minutes) * 60)
    else:
        assert log.utc_offset_seconds == 0
    expected, batches = _expected(scenario)
    # same statements, in the same order on each thread (the text log cuts thread names to 10 characters)
    assert len(log.statements) == len(expected)
    by_thread: dict[str, list[Expected]] = defaultdict(list)
    for statement in expected:
        by_thread[statement.thread[:10].rstrip()].append(statement)
    got: dict[str, list[Any]] = defaultdict(list)
    for parsed in log.statements:
        got[parsed.thread[:10].rstrip()].append(parsed)
    assert sorted(got) == sorted(by_thread)
    elapsed_tolerance = 500_000 if log.log_format == "text" else 1  # the text prints milliseconds
    for thread, wanted in by_thread.items():
        assert len(got[thread]) == len(wanted), thread
        for mine, theirs in zip(got[thread], wanted, strict=True):
            assert (mine.node_id, mine.connection) == (theirs.node, theirs.connection), theirs
            assert mine.start_ns == theirs.start_ns, theirs  # microseconds, after the date and offset
            assert mine.status == theirs.status, theirs
            if theirs.elapsed is None:
                assert mine.elapsed_ns is None, theirs
            else:
                assert mine.elapsed_ns is not None
                assert abs(mine.elapsed_ns - theirs.elapsed * SECOND) <= elapsed_tolerance, theirs
            if theirs.status is None:
                assert mine.error, theirs  # every statement dbt answered with no status failed
    # the microbatch batches: one per LogStartBatch, ended by its LogBatchResult
    starts = [b for b in batches if b["name"] == "LogStartBatch"]
    results = {b["batch_index"]: b for b in batches if b["name"] == "LogBatchResult"}
    assert [(b.index, b.total, b.start_ns) for b in log.batches] == [
        (b["batch_index"], b["total_batches"], b["ts"]) for b in starts
    ]
    for batch in log.batches:
        result = results[batch.index]
        assert batch.end_ns == result["ts"]
        assert batch.ok is (result["status"] != "error")
        assert batch.node_id == result["node_info"]["unique_id"]
        assert batch.window_start in result["description"]
    for statement in log.statements:
        if statement.batch_index is not None:
            batch = next(b for b in log.batches if b.index == statement.batch_index)
            assert batch.start_ns <= statement.start_ns <= (batch.end_ns or statement.start_ns)
    # the project hooks: one per LogHookStartLine, ended by its LogHookEndLine, to the microsecond
    hook_starts = [b for b in batches if b["name"] == "LogHookStartLine"]
    hook_ends = {b["node_info"]["unique_id"]: b for b in batches if b["name"] == "LogHookEndLine"}
    assert len(hook_starts) == 3, "the fixture project has two on-run-start hooks and one on-run-end"
    assert [(h.node_id, h.start_ns) for h in log.hooks] == [
        (b["node_info"]["unique_id"], b["ts"]) for b in hook_starts
    ]
    for hook in log.hooks:
        end = hook_ends[hook.node_id]
        assert hook.end_ns == end["ts"] and hook.ok is (" OK hook: " in end["msg"])
        assert (hook.hook_type, str(hook.index)) == tuple(end["statement"].rsplit(".", 2)[1:])
        major, minor = (int(part) for part in description["dbt_version"].split(".")[:2])
        if (major, minor) < (1, 9):  # the status of the hook's last statement (later: "success")
            assert hook.status == end["status"]
    _check_waits(scenario, log, invocation)


TEXT_LINE = re.compile(r"(?:\x1b\[0m)?(\d\d:\d\d:\d\d\.\d{6}) \[.{5}\] \[(.{10})\]: (.*)")


def _expected_waits(events: list[tuple[str, str, str, Any]]) -> tuple[list[tuple[Any, ...]], int]:
    """Connection waits from (kind, thread, time, detail) events, found without the parser.

    A connection opened while the thread's last statement (of the current node) awaits its
    answer was opened by that statement: no wait. Any other opening is waited for by the next
    statement of the same node on the thread. Returns the waits and the count of the former.
    """
    unanswered: dict[str, bool] = {}
    opening: dict[str, str] = {}
    waits: list[tuple[Any, ...]] = []
    lazy = 0
    for kind, thread, time, detail in events:
        if kind == "node":
            unanswered.pop(thread, None)
            opening.pop(thread, None)
        elif kind == "statement":
            unanswered[thread] = True
            if thread in opening:
                waits.append((thread, opening.pop(thread), time, *detail))
        elif kind == "status":
            unanswered[thread] = False
        elif kind == "opening":
            if unanswered.get(thread):
                lazy += 1
            else:
                opening[thread] = time
    return waits, lazy


def _check_waits(scenario: Path, log: InvocationLog, invocation: str) -> None:
    """Every wait starts at an opening line of its thread and ends at a statement's start on that thread."""
    events: list[tuple[str, str, str, Any]] = []
    openings = 0
    if log.log_format == "json":
        for line in (scenario / "logs" / "dbt.log").read_text().splitlines():
            event = json.loads(line)
            info, data = event["info"], event.get("data", {})
            if info.get("invocation_id") != invocation:
                continue
            thread, name = info["thread"], info["name"]
            if name == "SQLQuery":
                node = (data.get("node_info") or {}).get("unique_id") or None
                events.append(("statement", thread, info["ts"], (node, data["conn_name"])))
            elif name == "SQLQueryStatus":
                events.append(("status", thread, info["ts"], None))
            elif name in ("NodeStart", "NodeFinished"):
                events.append(("node", thread, info["ts"], None))
            elif name == "NewConnectionOpening":
                openings += 1
                events.append(("opening", thread, info["ts"], None))
        expected, lazy = _expected_waits(events)
        assert [(w.thread, w.start_ns, w.end_ns, w.node_id, w.connection) for w in log.waits] == [
            (thread, parse_timestamp(start), parse_timestamp(end), node, connection)
            for thread, start, end, node, connection in expected
        ]
    else:
        [path] = find_log_files(scenario / "target")
        for line in _section(path, invocation).splitlines():
            match = TEXT_LINE.fullmatch(line)
            if match is None:
                continue
            time, thread, message = match.group(1), match.group(2).rstrip(), match.group(3)
            if message.startswith("On ") and ": " in message and not message.endswith(": Close"):
                events.append(("statement", thread, time, (None, message[3:].split(": ", 1)[0])))
            elif message.startswith("SQL status: "):
                events.append(("status", thread, time, None))
            elif message.startswith(("Began running node ", "Finished running node ")):
                events.append(("node", thread, time, None))
            elif message.startswith("Opening a new connection"):
                openings += 1
                events.append(("opening", thread, time, None))
        expected, lazy = _expected_waits(events)
        offset = (log.utc_offset_seconds or 0) * SECOND

        def local(ns: int) -> str:
            micros = (ns + offset) % DAY // 1_000
            seconds, fraction = divmod(micros, 1_000_000)
            return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}.{fraction:06d}"

        assert [(w.thread, local(w.start_ns), local(w.end_ns), w.connection) for w in log.waits] == [
            (thread, start, end, connection) for thread, start, end, _, connection in expected
        ]
    starts = {(s.thread, s.start_ns, s.connection, s.node_id) for s in log.statements}
    for wait in log.waits:
        assert wait.start_ns <= wait.end_ns
        assert (wait.thread, wait.end_ns, wait.connection, wait.node_id) in starts
    # every connection of these runs (dbt-postgres) was opened lazily by the statement logged just
    # before: dbt-adapters' add_query logs SQLQuery, then reads connection.handle, whose LazyHandle
    # fires NewConnectionOpening, so the opening is inside that statement's own elapsed time
    assert openings > 0 and lazy == openings and log.waits == []


# --------------------------------------------------------------------------- #
# Synthetic logs
# --------------------------------------------------------------------------- #

MIDNIGHT_UTC = parse_timestamp("2025-03-05T00:00:00Z")


@dataclass
class Node:
    unique_id: str
    thread: str
    start: int  # UTC ns of "Began running node"
    statements: Sequence[tuple[str, str | None]]  # (sql, "STATUS in X") or None for a failure


@dataclass
class Invocation:
    invocation_id: str
    offset_minutes: int
    nodes: list[Node]
    header_date: bool = False
    extra: list[tuple[int, str, str]] = field(default_factory=list)  # (UTC ns, thread, message)

    @property
    def node_times(self) -> dict[str, tuple[int, int]]:
        times = {}
        for node in self.nodes:
            times[node.unique_id] = (
                node.start + 1_000_000,
                node.start + (len(node.statements) + 1) * 10_000_000,
            )
        return times


def _stamp(utc_ns: int, offset_minutes: int, with_date: bool = False) -> str:
    local = utc_ns + offset_minutes * 60 * SECOND
    day, within = divmod(local, DAY)
    micros = within // 1_000
    seconds, fraction = divmod(micros, 1_000_000)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    stamp = f"{hour:02d}:{minute:02d}:{second:02d}.{fraction:06d}"
    if with_date:
        import datetime

        stamp = f"{datetime.date(1970, 1, 1) + datetime.timedelta(days=day)} {stamp}"
    return stamp


def render(invocation: Invocation, *, ansi: bool = True) -> str:
    """A dbt 1.x debug log of one invocation (the statements of each node 10 ms apart)."""
    o = invocation.offset_minutes
    reset = "\x1b[0m" if ansi else ""
    lines: list[tuple[int, str]] = []

    def line(at: int, thread: str, message: str, level: str = "debug") -> None:
        lines.append((at, f"{reset}{_stamp(at, o)} [{level:<5}] [{thread[:10]:<10}]: {message}"))

    first = min([n.start for n in invocation.nodes] + [at for at, _, _ in invocation.extra]) - SECOND
    header = (
        f"\n\n{'=' * 30} {_stamp(first, o, invocation.header_date)} | {invocation.invocation_id} {'=' * 30}"
    )
    line(first, "MainThread", "Running with dbt=1.11.16", "info")
    for node in invocation.nodes:
        line(node.start, node.thread, f"Began running node {node.unique_id}")
        line(node.start + 500_000, node.thread, f"Acquiring new postgres connection '{node.unique_id}'")
        for number, (sql, status) in enumerate(node.statements, 1):
            at = node.start + number * 10_000_000
            comment = f'/* {{"app": "dbt", "node_id": "{node.unique_id}"}} */'
            line(at, node.thread, f"On {node.unique_id}: {comment}\n{sql}\n  ")
            if status is None:
                line(at + 2_000_000, node.thread, "Postgres adapter: Postgres error: division by zero")
                line(at + 2_500_000, node.thread, f"On {node.unique_id}: ROLLBACK")
                line(
                    at + 3_000_000,
                    node.thread,
                    "Database Error in model x (models/x.sql)\n  division by zero",
                )
            else:
                line(at + 4_000_000, node.thread, f"SQL status: {status} seconds")
        end = node.start + (len(node.statements) + 1) * 10_000_000 - 1_000_000
        line(end, node.thread, f"Finished running node {node.unique_id}")
    for at, thread, message in invocation.extra:
        line(at, thread, message)
    lines.sort(key=lambda pair: pair[0])
    return header + "\n" + "\n".join(text for _, text in lines) + "\n"


def model(name: str, start: int, thread: str = "Thread-1 (worker)", failing: bool = False) -> Node:
    statements: list[tuple[str, str | None]] = [
        ("BEGIN", "BEGIN in 0.001"),
        (f'create table "db"."s"."{name}__dbt_tmp" as (select 1 as id)', "SELECT 6 in 0.004"),
        (f'alter table "db"."s"."{name}__dbt_tmp" rename to "{name}"', "ALTER TABLE in 0.002"),
    ]
    if failing:
        statements.append(("select 1 / 0", None))
    return Node(f"model.p.{name}", thread, start, statements)


def one_invocation(
    start: int,
    offset_minutes: int,
    invocation_id: str = "11111111-1111-4111-8111-111111111111",
    count: int = 3,
) -> Invocation:
    nodes = [model(f"m{i}", start + i * SECOND, f"Thread-{i % 2 + 1} (worker)") for i in range(count)]
    return Invocation(invocation_id, offset_minutes, nodes)


def write(path: Path, text: str, *, newline: str = "\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.replace("\n", newline).encode("utf-8"))
    return path


def read(
    paths: Sequence[Path], invocation: Invocation, **kwargs: Any
) -> tuple[InvocationLog | None, list[str]]:
    warnings: list[str] = []
    log = read_invocation(paths, invocation.invocation_id, invocation.node_times, warnings, **kwargs)
    return log, warnings


def check_times(log: InvocationLog | None, invocation: Invocation) -> InvocationLog:
    """Every statement at the instant it was written, with its status."""
    assert log is not None
    expected = [
        (node.unique_id, node.start + number * 10_000_000, status)
        for node in invocation.nodes
        for number, (_, status) in enumerate(node.statements, 1)
    ]
    got = [
        (s.node_id, s.start_ns, f"{s.status} in {s.elapsed_ns / SECOND:.3f}" if s.elapsed_ns else None)
        for s in log.statements
    ]
    assert sorted(got, key=lambda g: g[1]) == sorted(expected, key=lambda e: e[1])
    assert log.utc_offset_seconds == invocation.offset_minutes * 60
    return log


@pytest.mark.parametrize("offset_minutes", [0, 330, 345, -570, -180, 60, 780, -600, 525])
def test_text_offsets(tmp_path: Path, offset_minutes: int) -> None:
    invocation = one_invocation(MIDNIGHT_UTC + 10 * 3600 * SECOND, offset_minutes)
    log, warnings = read([write(tmp_path / "dbt.log", render(invocation))], invocation)
    check_times(log, invocation)
    assert warnings == []


def test_midnight_crossing(tmp_path: Path) -> None:
    # local 23:59:58.5 on the first node, the second after midnight: time of day goes back by a day
    start = MIDNIGHT_UTC - 90 * 60 * SECOND - 1_500_000_000  # 22:29:58.5 UTC = 23:59:58.5 at +01:30
    invocation = one_invocation(start, 90, count=4)
    log, warnings = read([write(tmp_path / "dbt.log", render(invocation))], invocation)
    log = check_times(log, invocation)
    assert warnings == []
    assert max(s.start_ns for s in log.statements) > MIDNIGHT_UTC - 90 * 60 * SECOND  # the next local day


def test_two_invocations_under_two_zones(tmp_path: Path) -> None:
    first = one_invocation(MIDNIGHT_UTC + 3600 * SECOND, -300, "aaaaaaaa-0000-4000-8000-000000000001")
    second = one_invocation(MIDNIGHT_UTC + 4 * 3600 * SECOND, 330, "bbbbbbbb-0000-4000-8000-000000000002")
    path = write(tmp_path / "dbt.log", render(first) + render(second))
    for invocation in (first, second):
        log, warnings = read([path], invocation)
        log = check_times(log, invocation)
        assert warnings == []
        assert {s.node_id for s in log.statements} == set(invocation.node_times)


def test_header_date_settles_a_day_apart(tmp_path: Path) -> None:
    # dbt 1.0-1.3 print the date in the header: -11:00 (Niue) is then told from +13:00
    invocation = one_invocation(MIDNIGHT_UTC + 3600 * SECOND, -660)
    invocation.header_date = True
    log, warnings = read([write(tmp_path / "dbt.log", render(invocation, ansi=False))], invocation)
    check_times(log, invocation)
    assert warnings == []


def test_without_the_date_the_populated_zone_is_named(tmp_path: Path) -> None:
    invocation = one_invocation(MIDNIGHT_UTC + 3600 * SECOND, -660)  # -11:00 gives the instants of +13:00
    log, warnings = read([write(tmp_path / "dbt.log", render(invocation))], invocation)
    assert log is not None and warnings == []
    assert log.utc_offset_seconds == 13 * 3600
    assert [s.start_ns for s in log.statements] == [
        node.start + number * 10_000_000 for node in invocation.nodes for number in range(1, 4)
    ]


def test_ambiguous_alignment(tmp_path: Path) -> None:
    invocation = one_invocation(MIDNIGHT_UTC + 3600 * SECOND, 120)
    # run_results.json says each node ran for an hour: several quarter-hour offsets fit
    node_times = {
        node: (start - 3600 * SECOND, end + 3600 * SECOND)
        for node, (start, end) in invocation.node_times.items()
    }
    warnings: list[str] = []
    path = write(tmp_path / "dbt.log", render(invocation))
    assert read_invocation([path], invocation.invocation_id, node_times, warnings) is None
    assert len(warnings) == 1
    assert "several UTC offsets" in warnings[0] and invocation.invocation_id in warnings[0]


def test_inconsistent_alignment(tmp_path: Path) -> None:
    invocation = one_invocation(MIDNIGHT_UTC + 3600 * SECOND, 120)
    node_times = invocation.node_times
    first = next(iter(node_times))
    node_times[first] = (node_times[first][0] + 7 * 60 * SECOND, node_times[first][1] + 7 * 60 * SECOND)
    warnings: list[str] = []
    path = write(tmp_path / "dbt.log", render(invocation))
    assert read_invocation([path], invocation.invocation_id, node_times, warnings) is None
    assert len(warnings) == 1 and "fit no" in warnings[0]


def test_no_node_to_align_with(tmp_path: Path) -> None:
    invocation = one_invocation(MIDNIGHT_UTC + 3600 * SECOND, 120)
    warnings: list[str] = []
    path = write(tmp_path / "dbt.log", render(invocation))
    assert read_invocation([path], invocation.invocation_id, {"model.p.other": (1, 2)}, warnings) is None
    assert len(warnings) == 1 and "cannot be placed" in warnings[0]


def test_unknown_invocation(tmp_path: Path) -> None:
    invocation = one_invocation(MIDNIGHT_UTC + 3600 * SECOND, 120)
    warnings: list[str] = []
    path = write(tmp_path / "dbt.log", render(invocation))
    assert (
        read_invocation([path], "99999999-9999-4999-8999-999999999999", invocation.node_times, warnings)
        is None
    )
    assert warnings == [
        f"{path}: invocation 99999999-9999-4999-8999-999999999999 is not in the log; statements not read"
    ]


def test_truncated_last_line(tmp_path: Path) -> None:
    invocation = one_invocation(MIDNIGHT_UTC + 3600 * SECOND, 0)
    text = render(invocation)
    cut = text.rindex("SQL status:") + len("SQL status: ALT")  # the last status line, written half
    log, warnings = read([write(tmp_path / "dbt.log", text[:cut])], invocation)
    assert log is not None
    assert len(log.statements) == 9
    assert log.statements[-1].elapsed_ns is None  # its status line was cut
    assert all(s.elapsed_ns for s in log.statements[:-1])
    assert len(warnings) == 1 and "ends in the middle of a line" in warnings[0]


def test_binary_garbage(tmp_path: Path) -> None:
    invocation = one_invocation(MIDNIGHT_UTC + 3600 * SECOND, 0)
    text = render(invocation)
    middle = text.index("Began running node model.p.m1")
    middle = text.rindex("\n", 0, middle) + 1
    garbage = bytes(range(256)) * 40 + b"\xff\xfe\x00\x1b[2J\n"
    raw = b"\x00\x01\xff" * 5000 + b"\n" + text[:middle].encode() + garbage + text[middle:].encode()
    path = tmp_path / "dbt.log"
    path.write_bytes(raw)
    log, warnings = read([path], invocation)
    log = check_times(log, invocation)
    assert len(warnings) == 1 and "were not UTF-8" in warnings[0]
    assert "\x1b" not in warnings[0] and "\x00" not in warnings[0]


def test_rotated_files(tmp_path: Path) -> None:
    before = one_invocation(MIDNIGHT_UTC + 3600 * SECOND, 60, "aaaaaaaa-0000-4000-8000-000000000001")
    ours = one_invocation(MIDNIGHT_UTC + 2 * 3600 * SECOND, 60, count=6)
    after = one_invocation(MIDNIGHT_UTC + 3 * 3600 * SECOND, 60, "cccccccc-0000-4000-8000-000000000003")
    text = render(ours)
    split = text.index("Began running node model.p.m3")
    split = text.rindex("\n", 0, split) + 1
    logs = tmp_path / "logs"
    write(logs / "dbt.log.2", render(before))
    write(
        logs / "dbt.log.1",
        render(before).replace(before.invocation_id, "dddddddd-0000-4000-8000-000000000004") + text[:split],
    )
    write(logs / "dbt.log", text[split:] + render(after))
    (logs / "other.log").write_text("not a dbt log\n")

    paths = find_log_files(tmp_path / "target")

    assert [p.name for p in paths] == ["dbt.log.2", "dbt.log.1", "dbt.log"]
    log, warnings = read(paths, ours)
    log = check_times(log, ours)
    assert warnings == []
    assert log.files == [str(logs / "dbt.log.1"), str(logs / "dbt.log")]


def test_gzip_and_crlf(tmp_path: Path) -> None:
    invocation = one_invocation(MIDNIGHT_UTC + 3600 * SECOND, -420)
    text = render(invocation).replace("\n", "\r\n")
    path = tmp_path / "logs" / "dbt.log.1.gz"
    path.parent.mkdir()
    path.write_bytes(gzip.compress(b"\xef\xbb\xbf" + text.encode()))  # with a BOM, as Windows editors write
    assert find_log_files(tmp_path / "target") == [path]
    log, warnings = read([path], invocation, keep_sql=True, max_sql_chars=20)
    log = check_times(log, invocation)
    assert warnings == []
    assert all(s.sql is not None and "\r" not in s.sql and len(s.sql) <= 20 for s in log.statements)
    assert log.statements[1].sql == 'create table "db"."s'
    assert log.statements[1].summary == "CREATE TABLE db.s.m0__dbt_tmp"


def test_crlf_without_gzip(tmp_path: Path) -> None:
    invocation = one_invocation(MIDNIGHT_UTC + 3600 * SECOND, 0)
    log, warnings = read([write(tmp_path / "dbt.log", render(invocation), newline="\r\n")], invocation)
    log = check_times(log, invocation)
    assert warnings == [] and all(s.sql is None for s in log.statements)
    assert [s.thread for s in log.statements[:3]] == ["Thread-1 ("] * 3


def test_failing_statement(tmp_path: Path) -> None:
    invocation = one_invocation(MIDNIGHT_UTC + 3600 * SECOND, 0, count=1)
    invocation.nodes.append(model("broken", MIDNIGHT_UTC + 3600 * SECOND + 5 * SECOND, failing=True))
    log, warnings = read([write(tmp_path / "dbt.log", render(invocation))], invocation)
    assert log is not None and warnings == []
    failed = [s for s in log.statements if s.error]
    assert [(s.node_id, s.error, s.status, s.elapsed_ns) for s in failed] == [
        ("model.p.broken", "division by zero", None, None)
    ]
    assert not any(s.summary == "ROLLBACK" for s in log.statements)  # dbt's rollback notice is no statement


def test_thread_pool_pairs_by_elapsed_time(tmp_path: Path) -> None:
    # ThreadPoolExecutor-0_0 and -0_1 are both "ThreadPool": their statements overlap
    invocation = one_invocation(MIDNIGHT_UTC + 3600 * SECOND, 0, count=1)
    base = MIDNIGHT_UTC + 3600 * SECOND - 500_000_000
    invocation.extra = [
        (base, "ThreadPoolExecutor-0_0", "On list_db_a: select * from information_schema.tables"),
        (base + 1_000_000, "ThreadPoolExecutor-0_1", "On list_db_b: select * from pg_namespace"),
        (base + 21_000_000, "ThreadPoolExecutor-0_1", "SQL status: SELECT 2 in 0.020 seconds"),
        (base + 300_000_000, "ThreadPoolExecutor-0_0", "SQL status: SELECT 40 in 0.300 seconds"),
    ]
    log, warnings = read([write(tmp_path / "dbt.log", render(invocation))], invocation)
    assert log is not None and warnings == []
    pool = {
        s.connection: (s.status, s.rows, s.elapsed_ns, s.node_id)
        for s in log.statements
        if s.thread == "ThreadPool"
    }
    assert pool == {
        "list_db_a": ("SELECT 40", 40, 300_000_000, None),
        "list_db_b": ("SELECT 2", 2, 20_000_000, None),
    }


def test_commit_notice_and_query_ids(tmp_path: Path) -> None:
    invocation = one_invocation(MIDNIGHT_UTC + 3600 * SECOND, 0, count=1)
    at = MIDNIGHT_UTC + 3600 * SECOND + 35_000_000
    invocation.extra = [
        (at, "Thread-1 (worker)", "On model.p.m0: COMMIT"),
        (at + 100_000, "Thread-1 (worker)", 'Using postgres connection "model.p.m0"'),
        (at + 200_000, "Thread-1 (worker)", "On model.p.m0: COMMIT"),
        (
            at + 300_000,
            "Thread-1 (worker)",
            "Snowflake adapter: Snowflake query id: 01aab9e9-0001-0037-0000-00039e2e51f9",
        ),
        (at + 900_000, "Thread-1 (worker)", "SQL status: SUCCESS 1 in 0.001 seconds"),
        (at + 950_000, "Thread-1 (worker)", "On model.p.m0: Close"),
    ]
    log, warnings = read([write(tmp_path / "dbt.log", render(invocation))], invocation)
    assert log is not None and warnings == []
    commits = [s for s in log.statements if s.summary == "COMMIT"]
    assert [(c.start_ns, c.query_id, c.status, c.rows) for c in commits] == [
        (at + 200_000, "01aab9e9-0001-0037-0000-00039e2e51f9", "SUCCESS 1", 1)
    ]
    assert not any(s.summary == "Close" for s in log.statements)
    assert log.waits == []  # "Acquiring new ... connection" opens none: only "Opening a new connection" does


def test_connection_waits(tmp_path: Path) -> None:
    start = MIDNIGHT_UTC + 3600 * SECOND
    invocation = one_invocation(start, 60, count=3)  # m0 and m2 on Thread-1, m1 on Thread-2
    opening = "Opening a new connection, currently in state init"
    invocation.extra = [
        # no node: the master connection, opened before its first statement
        (start - 500_000_000, "MainThread", opening),
        (start - 400_000_000, "MainThread", "On master: select 1"),
        (start - 399_000_000, "MainThread", "SQL status: SELECT 1 in 0.001 seconds"),
        # m0: opened (a Python model's submission, an API call) before its first statement
        (start + 5_000_000, "Thread-1 (worker)", opening),
        # m1: opened lazily by its first statement, inside that statement's own timing: no wait
        (start + SECOND + 10_100_000, "Thread-2 (worker)", opening),
        # after m0 ended, on Thread-1: no statement of that node follows, so no wait
        (start + 39_500_000, "Thread-1 (worker)", opening),
    ]
    log, warnings = read([write(tmp_path / "dbt.log", render(invocation))], invocation)
    assert log is not None and warnings == []
    assert len(log.statements) == 10 and log.utc_offset_seconds == 3600
    assert [(w.node_id, w.connection, w.thread, w.start_ns, w.end_ns) for w in log.waits] == [
        (None, "master", "MainThread", start - 500_000_000, start - 400_000_000),
        ("model.p.m0", "model.p.m0", "Thread-1 (", start + 5_000_000, start + 10_000_000),
    ]


def test_connection_waits_json(tmp_path: Path) -> None:
    ts = parse_timestamp("2025-03-05T10:00:00Z")

    def event(name: str, at: int, thread: str, data: dict[str, Any]) -> str:
        stamp = f"2025-03-05T10:00:{at // SECOND:02d}.{at % SECOND // 1_000:06d}Z"
        info = {"name": name, "ts": stamp, "thread": thread, "invocation_id": "inv", "msg": ""}
        return json.dumps({"info": info, "data": data})

    def node(unique_id: str) -> dict[str, Any]:
        return {"node_info": {"unique_id": unique_id}}

    def query(unique_id: str, sql: str) -> dict[str, Any]:
        return {**node(unique_id), "conn_name": unique_id, "sql": sql}

    lines = [
        event("NodeStart", 0, "Thread-1", node("model.p.a")),
        event("NewConnectionOpening", 100_000, "Thread-1", {"connection_state": "init"}),
        event("SQLQuery", 2 * SECOND, "Thread-1", query("model.p.a", "x")),
        event("SQLQueryStatus", 3 * SECOND, "Thread-1", {"status": "OK", "elapsed": 1.0}),
        event("NodeFinished", 4 * SECOND, "Thread-1", node("model.p.a")),
        event("NodeStart", 5 * SECOND, "Thread-2", node("model.p.b")),
        event("SQLQuery", 6 * SECOND, "Thread-2", query("model.p.b", "y")),
        event("NewConnectionOpening", 6 * SECOND + 1_000, "Thread-2", {"connection_state": "closed"}),
        event("SQLQueryStatus", 9 * SECOND, "Thread-2", {"status": "OK", "elapsed": 3.0}),
        event("NodeFinished", 9 * SECOND, "Thread-2", node("model.p.b")),
    ]
    path = write(tmp_path / "dbt.log", "\n".join(lines) + "\n")
    node_times = {"model.p.a": (ts, ts + 4 * SECOND), "model.p.b": (ts + 5 * SECOND, ts + 9 * SECOND)}
    warnings: list[str] = []
    log = read_invocation([path], "inv", node_times, warnings)
    assert log is not None and warnings == []
    assert [(w.node_id, w.connection, w.thread, w.start_ns, w.end_ns) for w in log.waits] == [
        ("model.p.a", "model.p.a", "Thread-1", ts + 100_000, ts + 2 * SECOND)
    ]


def test_dbt_before_1_0(tmp_path: Path) -> None:
    text = (
        "2021-03-01 10:00:00.000000 (MainThread): Running with dbt=0.19.1\n"
        "2021-03-01 10:00:01.000000 (Thread-1): On model.p.a: select 1\n"
    )
    warnings: list[str] = []
    assert read_invocation([write(tmp_path / "dbt.log", text)], "x", {}, warnings) is None
    assert len(warnings) == 1 and "dbt < 1.0" in warnings[0]


def test_json_log_that_disagrees_with_run_results(tmp_path: Path) -> None:
    ts = "2025-03-05T10:00:00.000000Z"
    info = {"ts": ts, "thread": "Thread-1 (worker)", "invocation_id": "inv", "msg": ""}
    node = {"node_info": {"unique_id": "model.p.a"}}
    events = [
        {"info": {"name": "NodeStart", **info}, "data": node},
        {"info": {"name": "SQLQuery", **info}, "data": {**node, "conn_name": "model.p.a", "sql": "select 1"}},
    ]
    path = write(tmp_path / "dbt.log", "\n".join(json.dumps(e) for e in events) + "\nnot json\n")
    start = parse_timestamp(ts)
    warnings: list[str] = []
    log = read_invocation([path], "inv", {"model.p.a": (start, start + SECOND)}, warnings)
    assert log is not None and log.log_format == "json" and len(log.statements) == 1
    assert warnings == []  # "not json" holds no invocation id: it is not looked at
    warnings = []
    assert (
        read_invocation(
            [path], "inv", {"model.p.a": (start + 3600 * SECOND, start + 3601 * SECOND)}, warnings
        )
        is None
    )
    assert len(warnings) == 1 and "UTC times do not agree" in warnings[0]


def test_files_that_cannot_be_read(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="not found"):
        read_invocation([tmp_path / "missing.log"], "x", {}, [])
    with pytest.raises(ArtifactError, match="is a directory"):
        read_invocation([tmp_path], "x", {}, [])
    assert find_log_files(tmp_path / "target") == []
    assert find_log_files(tmp_path, explicit=tmp_path / "nope.log") == []
    log = write(tmp_path / "mine.log", "x\n")
    assert find_log_files(tmp_path / "target", explicit=log) == [log]
