"""Fuzzing the artifact reader, the planner and the encoder: bad input is an ArtifactError, never a crash.

The contract under test: whatever bytes sit in run_results.json or manifest.json,
``load_artifacts`` either succeeds, and then ``plan_trace`` and ``encode_requests``
succeed too (one span for the invocation, one per result, one per timing entry),
or it raises :class:`ArtifactError` whose message starts with the file's path.
Any other exception is a bug. Through the CLI, a bad artifact is exit code 1 and
exactly one stderr line ``dbt-otel-replay: error: <path>: ...``, no traceback.

The crashes this file found (timestamps and counts beyond what OTLP carries, a
huge elapsed_time, deeply nested vars, giant schema version numbers, newlines in
error messages, span-id collisions) are fixed and kept as examples below. Set
FUZZ_SCALE=N to run N times as many examples in a longer hunt.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from dbt_otel_replay.artifacts import Artifacts, load_artifacts
from dbt_otel_replay.cli import main
from dbt_otel_replay.errors import ArtifactError
from dbt_otel_replay.export.convert import to_message, to_otlp_json
from dbt_otel_replay.export.protobuf import encode_requests
from dbt_otel_replay.plan import Plan, PlanOptions, plan_trace
from dbt_otel_replay.views import Outcome, render_summary, render_tree
from tests.support.mutate import DeepNesting, JsonPath, Mutation, apply_all, dumps, get_in, json_paths

BUILD = Path(__file__).resolve().parents[1] / "fixtures" / "artifacts" / "build"
RUN_RESULTS = "run_results.json"
MANIFEST = "manifest.json"
RUN_RESULTS_SCHEMA = "https://schemas.getdbt.com/dbt/run-results/v6.json"
MANIFEST_SCHEMA = "https://schemas.getdbt.com/dbt/manifest/v12.json"
SCALE = int(os.environ.get("FUZZ_SCALE", "1"))
"""Multiplies every max_examples: FUZZ_SCALE=20 for a long hunt."""

WEIRD_TIMESTAMPS = [
    "2024-01-01T00:00:00",
    "2024-01-01 00:00:00+05:30",
    "2024-01-01T00:00:00.1234567890Z",
    "Z",
    "",
    "9999-12-31T23:59:59Z",
    "1970-01-01T00:00:00Z",
]

FAST = settings(max_examples=100 * SCALE, deadline=None, database=None)
HEAVY = settings(
    max_examples=200 * SCALE,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# --------------------------------------------------------------------------- #
# The contract check
# --------------------------------------------------------------------------- #


@cache
def _fixture_bytes(name: str) -> bytes:
    return (BUILD / name).read_bytes()


@cache
def _fixture_document(name: str) -> Any:
    return json.loads(_fixture_bytes(name))


@contextmanager
def target_dir(run_results: bytes | None, manifest: bytes | None = None) -> Iterator[Path]:
    """A fresh directory holding the given run_results.json and manifest.json (None: absent)."""
    directory = Path(tempfile.mkdtemp(prefix="fuzz-"))
    try:
        if run_results is not None:
            (directory / RUN_RESULTS).write_bytes(run_results)
        if manifest is not None:
            (directory / MANIFEST).write_bytes(manifest)
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def check_contract(
    target: Path,
    *,
    error_files: tuple[str, ...] = (RUN_RESULTS, MANIFEST),
) -> str:
    """Load, plan and encode ``target``; anything but success or ArtifactError fails the test.

    Returns:
        ``"replayed"`` or ``"artifact error"``.
    """
    plain = _check_one_way(target, error_files, include_sql=False)
    with_sql = _check_one_way(target, error_files, include_sql=True)
    # Reading SQL and vars too may find a problem in them, never the other way round.
    assert (plain, with_sql) != ("artifact error", "replayed")
    return min(plain, with_sql, key=_rank)


def _rank(outcome: str) -> int:
    return 1 if outcome == "artifact error" else 2


def _check_one_way(target: Path, error_files: tuple[str, ...], include_sql: bool) -> str:
    try:
        artifacts = load_artifacts(target, include_sql=include_sql)
    except ArtifactError as exc:
        _check_error(exc, target, error_files)
        return "artifact error"
    check_replay(artifacts, PlanOptions(include_sql=include_sql, sql_max_chars=16))
    return "replayed"


def _check_error(exc: ArtifactError, target: Path, error_files: tuple[str, ...]) -> None:
    message = str(exc)
    prefixes = tuple(f"{target / name}: " for name in error_files)
    assert message.startswith(prefixes), message
    assert exc.path in {target / name for name in error_files}
    assert exc.problem.strip()
    assert "\n" not in message and "\r" not in message, "an error is one line"


def check_replay(artifacts: Artifacts, options: PlanOptions) -> Plan:
    """Plan and encode valid artifacts; check the span count, ids and parents."""
    run = artifacts.run_results
    expected = 1 + len(run.results) + sum(len(r.timing) for r in run.results)
    plan = plan_trace(artifacts, options)
    assert len(plan.spans) == expected
    ids = [s.span_id for s in plan.spans]
    assert len(set(ids)) == len(ids), "span ids are unique"
    known = set(ids)
    assert plan.spans[0].parent_span_id is None
    assert all(s.parent_span_id in known for s in plan.spans[1:])
    requests = encode_requests(plan, {"service.name": "fuzz"})
    encoded = [
        span
        for r in requests
        for rs in to_message(r).resource_spans
        for ss in rs.scope_spans
        for span in ss.spans
    ]
    assert len(encoded) == expected
    for request in requests:
        json.dumps(to_otlp_json(request))
    render_tree(plan)
    render_summary(plan, Outcome("fuzzed", None))
    return plan


def check_bytes(run_results: bytes | None, manifest: bytes | None, error_files: tuple[str, ...]) -> str:
    with target_dir(run_results, manifest) as target:
        outcome = check_contract(target, error_files=error_files)
    event(outcome)
    return outcome


# --------------------------------------------------------------------------- #
# Strategies
# --------------------------------------------------------------------------- #

ODD_CHARACTERS = ["\x00", "\n", "\r", "\x1f", "#", "\u2028", "\ufeff", "\U0001f600"]
"""Characters that are valid in JSON strings but odd in ids and names (lone surrogates are in ODD_STRINGS)."""


def mostly(
    valid: st.SearchStrategy[Any], *odd: st.SearchStrategy[Any], weight: int = 4
) -> st.SearchStrategy[Any]:
    """``valid`` ``weight`` times as often as each of the ``odd`` strategies."""
    return st.one_of(*([valid] * weight), *odd)


plain_texts = st.text(max_size=20)
odd_texts = st.text(st.characters(codec="utf-8") | st.sampled_from(ODD_CHARACTERS), max_size=20)
texts = mostly(plain_texts, odd_texts)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([0, -1, 2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**30])
    | st.floats(allow_nan=True, allow_infinity=True)
    | texts
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
    max_leaves=20,
)
json_objects = st.dictionaries(texts, json_values, max_size=6)
clean_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | plain_texts,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(plain_texts, children, max_size=3),
    max_leaves=10,
)
"""JSON values every parser accepts (no NaN, no lone surrogate, no integer beyond 64 bits)."""


def _format_time(moment: dt.datetime, separator: str, fraction: str, offset: str) -> str:
    return f"{moment:%Y-%m-%d}{separator}{moment:%H:%M:%S}{'.' + fraction if fraction else ''}{offset}"


OFFSETS = ["", "Z", "z", "+00:00", "+05:30", "-08:00", "-0800", "+01", "+23:59", " Z"]
plausible_times = st.datetimes(min_value=dt.datetime(1971, 1, 1), max_value=dt.datetime(2500, 1, 1))
timestamps = st.builds(
    _format_time,
    plausible_times,
    st.sampled_from(["T", " ", "t"]),
    st.text("0123456789", max_size=12),
    st.sampled_from(OFFSETS),
)
"""Timestamps the parser accepts, in every spelling dbt (or a hand edit) might use."""
odd_timestamps = st.one_of(
    st.sampled_from(WEIRD_TIMESTAMPS),
    st.builds(_format_time, st.datetimes(), st.just("T"), st.just(""), st.just("Z")),
    st.builds(_format_time, plausible_times, st.just("T"), st.just(""), st.sampled_from(["+24:00", "+0960"])),
    st.text(st.sampled_from("0123456789-:T.Z+ "), max_size=32),
    json_values,
)


@st.composite
def ordered_timing(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Timing entries that start before they end, as dbt writes them."""
    moment = draw(plausible_times)
    entries = []
    for name in draw(st.lists(mostly(st.sampled_from(["compile", "execute"]), texts), max_size=3)):
        moment += dt.timedelta(microseconds=draw(st.integers(0, 10**7)))
        start = moment
        moment += dt.timedelta(microseconds=draw(st.integers(0, 10**8)))
        entries.append(
            {
                "name": name,
                "started_at": _format_time(start, "T", f"{start:%f}", "Z"),
                "completed_at": _format_time(moment, "T", f"{moment:%f}", "Z"),
            }
        )
    return entries


# Values a mutation puts in place of a real one.
WEIRD_VALUES: list[Any] = [
    None,
    "",
    0,
    -1,
    [],
    {},
    True,
    2**63,
    2**64 + 1,
    -(2**63) - 1,
    10**4000,
    math.nan,
    math.inf,
    -math.inf,
    1e308,
    "x" * 100_000,
    "\ud800",
    "a\nb",
    DeepNesting(100_000),
    DeepNesting(500),
]
weird_values = st.sampled_from(WEIRD_VALUES) | json_values | odd_timestamps


timing_entries = st.fixed_dictionaries(
    {"name": mostly(st.sampled_from(["compile", "execute"]), texts)},
    optional={"started_at": timestamps, "completed_at": timestamps, "extra": clean_json},
)
timings = mostly(ordered_timing(), st.lists(timing_entries, max_size=3))
loose_ints = mostly(
    st.none() | st.integers(-(2**63), 2**63 - 1),
    st.sampled_from(["1", "1.0", "-1", "1e3", "nan", "", "abc", "0x10", " 7 "]),
    st.floats(min_value=-1e15, max_value=1e15),
)
UNIQUE_IDS = [
    "model.p.a",
    "model.p.b",
    "model.p.c",
    "seed.p.s",
    "test.p.t",
    "unit_test.p.u",
    "operation.p.o",
    "macro.p.m",
    "",
]
unique_ids = mostly(st.sampled_from(UNIQUE_IDS), texts)
STATUSES = ["success", "error", "fail", "warn", "pass", "skipped", "runtime error", "partial success", ""]
optional_texts = st.none() | texts
adapter_responses = st.fixed_dictionaries(
    {},
    optional={
        "_message": texts,
        "code": optional_texts,
        "rows_affected": loose_ints,
        "query_id": optional_texts,
        "job_id": optional_texts,
        "bytes_processed": loose_ints,
    },
)
windows = st.lists(st.lists(timestamps | st.integers(), max_size=3), max_size=3)
batch_results = st.none() | st.fixed_dictionaries({}, optional={"successful": windows, "failed": windows})
results = st.fixed_dictionaries(
    {"unique_id": unique_ids, "status": mostly(st.sampled_from(STATUSES), texts)},
    optional={
        "timing": timings,
        "thread_id": optional_texts,
        "execution_time": st.none() | st.floats(min_value=0, max_value=1e6),
        "message": optional_texts,
        "failures": loose_ints,
        "adapter_response": adapter_responses,
        "compiled_code": optional_texts,
        "compiled_sql": optional_texts,
        "relation_name": optional_texts,
        "batch_results": batch_results,
        "compiled": clean_json,
    },
)
run_results_metadata = st.fixed_dictionaries(
    {
        "dbt_schema_version": st.sampled_from(
            [
                RUN_RESULTS_SCHEMA,
                "https://schemas.getdbt.com/dbt/run-results/v4.json",
                "https://schemas.getdbt.com/dbt/run-results/v99.json",
            ]
        ),
        "generated_at": timestamps,
    },
    optional={
        "dbt_version": optional_texts,
        "invocation_id": mostly(st.uuids().map(str), st.just("0" * 32), st.none() | texts),
        "invocation_started_at": timestamps,
        "env": clean_json,
    },
)
args = st.fixed_dictionaries(
    {},
    optional={
        "which": st.none() | mostly(st.sampled_from(["build", "run", "test", "seed"]), texts),
        "target": optional_texts,
        "vars": clean_json,
    },
)
well_typed_run_results = st.fixed_dictionaries(
    {
        "metadata": run_results_metadata,
        "results": st.lists(results, min_size=1, max_size=6, unique_by=lambda r: r["unique_id"]),
    },
    optional={"elapsed_time": st.none() | st.floats(min_value=0, max_value=1e6), "args": args},
)

manifest_nodes = st.fixed_dictionaries(
    {},
    optional={
        "unique_id": unique_ids,
        "resource_type": mostly(st.sampled_from(["model", "seed", "snapshot", "test", "unit_test"]), texts),
        "name": optional_texts,
        "package_name": optional_texts,
        "original_file_path": optional_texts,
        "tags": st.none() | st.lists(texts, max_size=3) | texts,
        "config": st.fixed_dictionaries(
            {}, optional={"materialized": st.none() | st.sampled_from(["table", "view", "ephemeral"]) | texts}
        ),
        "depends_on": st.fixed_dictionaries(
            {}, optional={"nodes": st.none() | st.lists(unique_ids, max_size=4) | unique_ids}
        ),
        "database": optional_texts,
        "schema": optional_texts,
        "alias": optional_texts,
        "relation_name": optional_texts,
    },
)
manifest_sections = st.dictionaries(unique_ids, manifest_nodes, max_size=6)
well_typed_manifests = st.fixed_dictionaries(
    {
        "metadata": st.fixed_dictionaries(
            {
                "dbt_schema_version": st.sampled_from(
                    [MANIFEST_SCHEMA, "https://schemas.getdbt.com/dbt/manifest/v99.json"]
                )
            },
            optional={
                "adapter_type": st.none()
                | mostly(st.sampled_from(["postgres", "snowflake", "POSTGRES"]), texts),
                "project_name": optional_texts,
                "invocation_id": st.none() | st.uuids().map(str),
                "dbt_version": optional_texts,
            },
        ),
    },
    optional={
        "nodes": manifest_sections,
        "unit_tests": manifest_sections,
        "macros": manifest_sections,
        "sources": manifest_sections,
        "exposures": manifest_sections,
        "parent_map": clean_json,
    },
)


@st.composite
def corrupted(draw: st.DrawFn, documents: st.SearchStrategy[Any]) -> Any:
    """A document from ``documents`` with up to two values replaced by odd ones or deleted."""
    document = draw(documents)
    paths = json_paths(document)
    if not paths:
        return document
    for _ in range(draw(st.integers(0, 2))):
        path = draw(st.sampled_from(paths))
        if draw(st.booleans()):
            document = Mutation("delete", path).apply(document)
        else:
            document = Mutation("replace", path, draw(weird_values)).apply(document)
    return document


@cache
def _paths(name: str) -> tuple[list[JsonPath], list[JsonPath], list[JsonPath]]:
    """All paths of a fixture document, the paths to fields the replay reads, and timestamp paths."""
    document = _fixture_document(name)
    if name == MANIFEST:
        # The manifest is large: skip the bulk of macros and docs and go at most 5 deep.
        paths = [
            p
            for p in json_paths(document, max_depth=5)
            if p[0] not in ("macros", "docs", "parent_map", "child_map") or len(p) <= 2
        ]
    else:
        paths = json_paths(document)
    read = {
        *("metadata", "results", "nodes", "unit_tests", "macros", "args", "vars", "which", "timing"),
        *("unique_id", "status", "name", "started_at", "completed_at", "generated_at", "elapsed_time"),
        *("invocation_started_at", "invocation_id", "dbt_schema_version", "adapter_type", "failures"),
        *("rows_affected", "bytes_processed", "execution_time", "depends_on", "config", "tags"),
        *("materialized", "resource_type", "schema", "database", "alias", "adapter_response"),
        *("batch_results", "compiled_code", "relation_name", "project_name", "thread_id", "message"),
    }
    relevant = [p for p in paths if isinstance(p[-1], int) or p[-1] in read]
    times = [
        p for p in paths if p[-1] in ("started_at", "completed_at", "generated_at", "invocation_started_at")
    ]
    return paths, relevant, times


ODD_STRINGS = ["", "\ud800", "a\udfffb", "a\nb", "\x00", "\x1f", "x" * 100_000, "\U0001f600" * 3]
ODD_INTS = [-1, 0, 2**31, 2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**30, 10**4000]
ODD_FLOATS = [math.nan, math.inf, -math.inf, -0.0, 1e-300, 1e300, -1e300]


def _odd_value_like(current: Any) -> st.SearchStrategy[Any]:
    """A strange value of the same JSON type as ``current`` (or of a scalar type, for null)."""
    if isinstance(current, str):
        return st.sampled_from(ODD_STRINGS) | odd_texts
    if isinstance(current, bool):
        return st.booleans()
    if isinstance(current, int):
        return st.sampled_from(ODD_INTS) | st.integers()
    if isinstance(current, float):
        return st.sampled_from(ODD_FLOATS) | st.floats()
    if isinstance(current, list):
        return st.lists(json_values, max_size=3) | st.just([DeepNesting(700)])
    if isinstance(current, dict):
        return json_objects
    return st.sampled_from(ODD_STRINGS + ODD_INTS + ODD_FLOATS)


@st.composite
def mutations(draw: st.DrawFn, name: str) -> list[Mutation]:
    """1 to 6 random changes to a fixture document."""
    paths, relevant, times = _paths(name)
    document = _fixture_document(name)
    lists = [p for p in relevant if isinstance(get_in(document, p)[1], list)]
    items = [p for p in relevant if isinstance(p[-1], int)]
    changes = []
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(
            st.sampled_from(["replace", "delete", "delete", "time", "duplicate", "shuffle", "same-type"] * 2)
        )
        if kind == "same-type":
            path = draw(st.sampled_from(relevant))
            current = get_in(document, path)[1]
            changes.append(Mutation("replace", path, draw(_odd_value_like(current))))
        elif kind == "time" and times:
            changes.append(
                Mutation("replace", draw(st.sampled_from(times)), draw(timestamps | odd_timestamps))
            )
        elif kind == "duplicate" and items:
            changes.append(Mutation("duplicate", draw(st.sampled_from(items))))
        elif kind == "shuffle" and lists:
            changes.append(Mutation("shuffle", draw(st.sampled_from(lists)), draw(st.integers(0, 2**32))))
        else:
            path = draw(st.sampled_from(relevant) | st.sampled_from(paths))
            if kind == "delete":
                changes.append(Mutation("delete", path))
            else:
                changes.append(Mutation("replace", path, draw(weird_values)))
    return changes


def artifact_bytes(name: str) -> st.SearchStrategy[bytes]:
    """Bytes for an artifact file: random, JSON-ish, or the real file truncated or with a byte changed."""
    raw = _fixture_bytes(name)
    compressed = gzip.compress(raw)
    return st.one_of(
        st.binary(max_size=512),
        st.binary(max_size=512).map(lambda b: b"{" + b),
        st.binary(max_size=64).map(lambda b: b"\xef\xbb\xbf \n{" + b + b"}"),
        st.text(st.sampled_from('{}[]":,0123456789.eE+-truefalsnNaIiy \n\\u'), max_size=200).map(str.encode),
        st.integers(0, len(raw)).map(lambda i: raw[:i]),
        st.builds(_flip_byte, st.just(raw), st.integers(0, len(raw) - 1), st.integers(0, 255)),
        # gzip-compressed (archived artifacts): whole, of random bytes, truncated or corrupted.
        st.just(compressed),
        st.binary(max_size=256).map(gzip.compress),
        st.integers(0, len(compressed)).map(lambda i: compressed[:i]),
        st.builds(_flip_byte, st.just(compressed), st.integers(0, len(compressed) - 1), st.integers(0, 255)),
        st.binary(max_size=64).map(lambda b: b"\x1f\x8b" + b),
    )


def _flip_byte(data: bytes, position: int, value: int) -> bytes:
    return data[:position] + bytes([value]) + data[position + 1 :]


# --------------------------------------------------------------------------- #
# 1. Arbitrary bytes
# --------------------------------------------------------------------------- #


@HEAVY
@given(data=artifact_bytes(RUN_RESULTS))
@example(data=b"")
@example(data=b"\xef\xbb\xbf")
@example(data=b"\xef\xbb\xbf{}")
@example(data=b"\xff\xfe{\x00}\x00")
@example(data=b"{" * 5000)
@example(data=b"null")
@example(data=b"NaN")
@example(data=b'{"metadata": NaN}')
def test_bytes_as_run_results(data: bytes) -> None:
    check_bytes(data, _fixture_bytes(MANIFEST), (RUN_RESULTS,))


@HEAVY
@given(data=artifact_bytes(MANIFEST))
@example(data=b"")
@example(data=b"[]")
@example(data=b'{"metadata": {"dbt_schema_version": "' + MANIFEST_SCHEMA.encode() + b'"}}')
def test_bytes_as_manifest(data: bytes) -> None:
    check_bytes(_fixture_bytes(RUN_RESULTS), data, (MANIFEST,))


# --------------------------------------------------------------------------- #
# 2. Arbitrary and almost-valid JSON documents
# --------------------------------------------------------------------------- #


@FAST
@given(document=json_values | json_objects)
def test_any_json_document_as_run_results(document: Any) -> None:
    check_bytes(dumps(document), None, (RUN_RESULTS,))


@FAST
@given(document=json_values | json_objects)
def test_any_json_document_as_manifest(document: Any) -> None:
    check_bytes(_fixture_bytes(RUN_RESULTS), dumps(document), (MANIFEST,))


@HEAVY
@given(
    metadata=st.fixed_dictionaries(
        {"dbt_schema_version": st.just(RUN_RESULTS_SCHEMA)},
        optional={
            "generated_at": timestamps,
            "invocation_id": json_values,
            "invocation_started_at": timestamps,
        },
    ),
    more_metadata=json_objects,
    results_=json_values
    | st.lists(
        json_objects | st.dictionaries(st.sampled_from(["unique_id", "status", "timing"]), json_values)
    ),
    rest=st.dictionaries(st.sampled_from(["elapsed_time", "args"]), json_values),
)
def test_right_schema_version_with_random_content(
    metadata: dict[str, Any], more_metadata: dict[str, Any], results_: Any, rest: dict[str, Any]
) -> None:
    document = {"metadata": {**more_metadata, **metadata}, "results": results_, **rest}
    check_bytes(dumps(document), None, (RUN_RESULTS,))


@HEAVY
@given(document=corrupted(well_typed_run_results))
def test_almost_valid_run_results(document: dict[str, Any]) -> None:
    check_bytes(dumps(document), None, (RUN_RESULTS,))


@HEAVY
@given(run_results=corrupted(well_typed_run_results), manifest=corrupted(well_typed_manifests))
def test_almost_valid_run_results_and_manifest(run_results: dict[str, Any], manifest: dict[str, Any]) -> None:
    check_bytes(dumps(run_results), dumps(manifest), (RUN_RESULTS, MANIFEST))


def test_generated_documents_do_replay() -> None:
    """The almost-valid strategy is not so broken that nothing replays: the happy path is explored."""
    outcomes: list[str] = []

    @settings(max_examples=60, deadline=None, database=None)
    @given(document=corrupted(well_typed_run_results))
    def collect(document: dict[str, Any]) -> None:
        outcomes.append(check_bytes(dumps(document), None, (RUN_RESULTS,)))

    collect()
    assert "replayed" in outcomes and "artifact error" in outcomes


# --------------------------------------------------------------------------- #
# 3. Mutations of the real artifacts
# --------------------------------------------------------------------------- #


@HEAVY
@given(changes=mutations(RUN_RESULTS))
def test_mutated_run_results(changes: list[Mutation]) -> None:
    document = apply_all(_fixture_document(RUN_RESULTS), changes)
    check_bytes(dumps(document), _fixture_bytes(MANIFEST), (RUN_RESULTS,))


@settings(HEAVY, max_examples=120 * SCALE)
@given(changes=mutations(MANIFEST))
def test_mutated_manifest(changes: list[Mutation]) -> None:
    document = apply_all(_fixture_document(MANIFEST), changes)
    check_bytes(_fixture_bytes(RUN_RESULTS), dumps(document), (MANIFEST,))


def test_mutations_leave_the_fixture_alone() -> None:
    before = json.dumps(_fixture_document(RUN_RESULTS))
    apply_all(
        _fixture_document(RUN_RESULTS),
        [
            Mutation("delete", ("results", 0, "timing", 0, "started_at")),
            Mutation("replace", ("metadata", "generated_at"), "Z"),
            Mutation("shuffle", ("results",), 3),
            Mutation("duplicate", ("results", 1)),
        ],
    )
    assert json.dumps(_fixture_document(RUN_RESULTS)) == before


def _set_every_timestamp(value: str) -> Callable[[Any], Any]:
    def change(document: Any) -> Any:
        _, _, times = _paths(RUN_RESULTS)
        return apply_all(document, [Mutation("replace", p, value) for p in times])

    return change


@pytest.mark.parametrize(
    "value",
    [*WEIRD_TIMESTAMPS],
)
def test_every_timestamp_set_to(value: str) -> None:
    document = _set_every_timestamp(value)(_fixture_document(RUN_RESULTS))
    with target_dir(dumps(document), _fixture_bytes(MANIFEST)) as target:
        outcome = check_contract(target)
    expected = "artifact error" if value in ("", "Z") or value.startswith("9999") else "replayed"
    assert outcome == expected


@pytest.mark.parametrize("field", ["started_at", "completed_at", "name"])
def test_a_timing_field_missing(field: str) -> None:
    document = apply_all(
        _fixture_document(RUN_RESULTS), [Mutation("delete", ("results", 3, "timing", 1, field))]
    )
    with target_dir(dumps(document), _fixture_bytes(MANIFEST)) as target:
        assert check_contract(target) == "artifact error"


def test_results_without_any_timing_replay() -> None:
    document = _fixture_document(RUN_RESULTS)
    changes = [Mutation("replace", ("results", i, "timing"), []) for i in range(len(document["results"]))]
    with target_dir(dumps(apply_all(document, changes)), _fixture_bytes(MANIFEST)) as target:
        assert check_contract(target) == "replayed"


@pytest.mark.parametrize("compress", [RUN_RESULTS, MANIFEST, "both"])
def test_gzipped_artifacts_replay(compress: str) -> None:
    with target_dir(None) as target:
        for name in (RUN_RESULTS, MANIFEST):
            if compress in (name, "both"):
                (target / f"{name}.gz").write_bytes(gzip.compress(_fixture_bytes(name)))
            else:
                (target / name).write_bytes(_fixture_bytes(name))
        artifacts = load_artifacts(target)
        assert artifacts.manifest is not None
        check_replay(artifacts, PlanOptions())


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\x1f\x8b",
        gzip.compress(b""),
        gzip.compress(b"[]"),
        gzip.compress(_fixture_bytes(RUN_RESULTS))[:500],
    ],
    ids=["empty", "magic-only", "empty-stream", "array", "truncated"],
)
def test_corrupt_gzipped_run_results(content: bytes) -> None:
    with target_dir(None) as target:
        (target / f"{RUN_RESULTS}.gz").write_bytes(content)
        with pytest.raises(ArtifactError) as caught:
            load_artifacts(target)
        assert str(caught.value).startswith(f"{target / RUN_RESULTS}.gz: ")
        check_cli_failure(run_cli(target), target / f"{RUN_RESULTS}.gz")


def test_duplicated_result_is_an_artifact_error() -> None:
    document = apply_all(_fixture_document(RUN_RESULTS), [Mutation("duplicate", ("results", 5))])
    with target_dir(dumps(document), _fixture_bytes(MANIFEST)) as target:
        assert check_contract(target) == "artifact error"


# --------------------------------------------------------------------------- #
# 4. Deep nesting
# --------------------------------------------------------------------------- #

DEEP = 100_000


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"[" * DEEP + b"]" * DEEP, id="lists"),
        pytest.param(b'{"a":' * DEEP + b"1" + b"}" * DEEP, id="objects"),
        pytest.param(b'{"a": ' + b"[" * DEEP + b"]" * DEEP + b"}", id="lists-in-object"),
        pytest.param(b'{"metadata": ' + b"[" * DEEP, id="unclosed"),
        pytest.param(
            dumps(
                apply_all(
                    _fixture_document(RUN_RESULTS),
                    [Mutation("replace", ("results", 0, "timing"), DeepNesting(DEEP))],
                )
            ),
            id="in-real-results",
        ),
        pytest.param(
            dumps(
                apply_all(
                    _fixture_document(RUN_RESULTS), [Mutation("replace", ("args", "vars"), DeepNesting(DEEP))]
                )
            ),
            id="in-args-vars",
        ),
    ],
)
@pytest.mark.parametrize("file", [RUN_RESULTS, MANIFEST])
def test_deeply_nested_json_is_an_artifact_error(content: bytes, file: str) -> None:
    run_results = content if file == RUN_RESULTS else _fixture_bytes(RUN_RESULTS)
    manifest = content if file == MANIFEST else _fixture_bytes(MANIFEST)
    with target_dir(run_results, manifest) as target, pytest.raises(ArtifactError) as caught:
        load_artifacts(target)
    assert str(caught.value).startswith(f"{target / file}: ")


def _nested_vars(depth: int) -> bytes:
    return (
        b'{"metadata": {"dbt_schema_version": "' + RUN_RESULTS_SCHEMA.encode() + b'", '
        b'"generated_at": "2024-01-01T00:00:00Z"}, "args": {"vars": {"a": '
        + b"[" * depth
        + b"]" * depth
        + b'}}, "results": [{"unique_id": "model.p.a", "status": "success"}]}'
    )


@pytest.mark.parametrize("depth", [10, 100, 500])
def test_moderately_nested_values_replay(depth: int) -> None:
    with target_dir(_nested_vars(depth)) as target:
        assert check_contract(target) == "replayed"


# --------------------------------------------------------------------------- #
# 5. Through the CLI
# --------------------------------------------------------------------------- #


def run_cli(target: Path) -> Result:
    """Replay ``target`` to a file, as a user would; nothing is sent over the network."""
    return CliRunner().invoke(
        main,
        [str(target), "--output", str(target / "trace.jsonl"), "--quiet"],
        env={"TRACEPARENT": None, "TRACESTATE": None, "OTEL_RESOURCE_ATTRIBUTES": None},
    )


def check_cli_failure(result: Result, path: Path) -> None:
    assert result.exit_code == 1, (result.exit_code, result.stderr, result.exception)
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stderr.startswith(f"dbt-otel-replay: error: {path}: "), result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.endswith("\n"), result.stderr


CORRUPT_RUN_RESULTS: dict[str, bytes] = {
    "empty": b"",
    "whitespace": b" \n\t ",
    "truncated": _fixture_bytes(RUN_RESULTS)[:1000],
    "not-utf8": b'{"a": "\xff\xfe"}',
    "utf16": '{"metadata": {}}'.encode("utf-16"),
    "array": b"[]",
    "string": b'"run_results"',
    "deep": b'{"a":' * DEEP + b"1" + b"}" * DEEP,
    "no-metadata": b'{"results": []}',
    "wrong-kind": json.dumps({"metadata": {"dbt_schema_version": MANIFEST_SCHEMA}}).encode(),
    "no-results": json.dumps(
        {"metadata": {"dbt_schema_version": RUN_RESULTS_SCHEMA, "generated_at": "2024-01-01T00:00:00Z"}}
    ).encode(),
    "empty-results": json.dumps(
        {
            "metadata": {"dbt_schema_version": RUN_RESULTS_SCHEMA, "generated_at": "2024-01-01T00:00:00Z"},
            "results": [],
        }
    ).encode(),
    "bad-timestamp": dumps(_set_every_timestamp("Z")(_fixture_document(RUN_RESULTS))),
    "duplicate": dumps(apply_all(_fixture_document(RUN_RESULTS), [Mutation("duplicate", ("results", 0))])),
    "lfs-pointer": b"version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 1\n",
}


@pytest.mark.parametrize("content", CORRUPT_RUN_RESULTS.values(), ids=CORRUPT_RUN_RESULTS.keys())
def test_cli_corrupt_run_results(content: bytes) -> None:
    with target_dir(content, _fixture_bytes(MANIFEST)) as target:
        check_cli_failure(run_cli(target), target / RUN_RESULTS)


@pytest.mark.parametrize(
    "content",
    [b"", b"{", b"[1]", _fixture_bytes(MANIFEST)[:5000], b'{"metadata": {"dbt_schema_version": 1}}'],
    ids=["empty", "brace", "array", "truncated", "schema-not-a-string"],
)
def test_cli_corrupt_manifest(content: bytes) -> None:
    with target_dir(_fixture_bytes(RUN_RESULTS), content) as target:
        check_cli_failure(run_cli(target), target / MANIFEST)


def test_cli_missing_run_results() -> None:
    with target_dir(None) as target:
        check_cli_failure(run_cli(target), target / RUN_RESULTS)


@settings(HEAVY, max_examples=50 * SCALE)
@given(changes=mutations(RUN_RESULTS))
def test_cli_mutated_run_results(changes: list[Mutation]) -> None:
    document = apply_all(_fixture_document(RUN_RESULTS), changes)
    with target_dir(dumps(document), _fixture_bytes(MANIFEST)) as target:
        result = run_cli(target)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        assert "Traceback" not in result.stdout + result.stderr
        if result.exit_code == 0:
            event("replayed")
            assert (target / "trace.jsonl").exists()
            return
        event("artifact error")
        assert result.exit_code == 1
        assert result.stderr.startswith(f"dbt-otel-replay: error: {target / RUN_RESULTS}: ")
        assert result.stderr.count("\n") == 1, "an error is one line"


# --------------------------------------------------------------------------- #
# Regressions: inputs that crashed the pydantic-based reader; fine since msgspec.
# --------------------------------------------------------------------------- #


def _replay_changed(changes: list[Mutation], *, manifest: bool = True) -> str:
    document = apply_all(_fixture_document(RUN_RESULTS), changes)
    with target_dir(dumps(document), _fixture_bytes(MANIFEST) if manifest else None) as target:
        return check_contract(target)


@pytest.mark.parametrize(
    "content",
    [
        b'{"metadata": ' + b"1" * 5000 + b"}",
        dumps(_fixture_document(RUN_RESULTS)).replace(b'"failures": 0', b'"failures": ' + b"1" * 5000),
    ],
    ids=["top-level", "failures"],
)
def test_integer_literal_longer_than_4300_digits(content: bytes) -> None:
    with target_dir(content, _fixture_bytes(MANIFEST)) as target:
        assert check_contract(target) == "artifact error"


@pytest.mark.parametrize("value", ["inf", "-Infinity", "1e400", "nan", "1e3", " 7 "])
def test_failures_as_an_odd_numeric_string(value: str) -> None:
    assert _replay_changed([Mutation("replace", ("results", 0, "failures"), value)]) == "replayed"


@pytest.mark.parametrize(
    ("path", "manifest"),
    [
        (("results", 0, "unique_id"), True),
        (("results", 0, "unique_id"), False),
        (("results", 0, "thread_id"), True),
        (("results", 0, "message"), True),
        (("metadata", "invocation_id"), True),
    ],
    ids=["unique_id", "unique_id-no-manifest", "thread_id", "message", "invocation_id"],
)
def test_lone_surrogate_in_a_string(path: JsonPath, manifest: bool) -> None:
    _replay_changed([Mutation("replace", path, "\ud800")], manifest=manifest)


@pytest.mark.parametrize("elapsed", [math.inf, math.nan], ids=["inf", "nan"])
def test_non_finite_elapsed_time_without_invocation_started_at(elapsed: float) -> None:
    _replay_changed(
        [
            Mutation("delete", ("metadata", "invocation_started_at")),
            Mutation("replace", ("elapsed_time",), elapsed),
        ]
    )


def test_cli_error_naming_a_manifest_key_with_a_newline_is_one_line() -> None:
    manifest = apply_all(
        _fixture_document(MANIFEST), [Mutation("replace", ("nodes",), {"model.p.a\nmodel.p.b": {"name": 1}})]
    )
    with target_dir(_fixture_bytes(RUN_RESULTS), dumps(manifest)) as target:
        check_cli_failure(run_cli(target), target / MANIFEST)


# --------------------------------------------------------------------------- #
# Crashes this file found in the msgspec-based reader, fixed: kept as regressions.
# --------------------------------------------------------------------------- #


def test_nesting_at_the_recursion_limit_is_success_or_artifact_error() -> None:
    # Decoding and re-encoding (args.vars, batch windows) share the interpreter's recursion
    # limit; whether a given depth fits depends on the caller's stack, so try every depth near it.
    with target_dir(None) as target:
        for depth in range(700, 1100):
            (target / RUN_RESULTS).write_bytes(_nested_vars(depth))
            check_contract(target)


def test_schema_version_number_longer_than_4300_digits() -> None:
    schema = f"https://schemas.getdbt.com/dbt/run-results/v{'9' * 5000}.json"
    _replay_changed([Mutation("replace", ("metadata", "dbt_schema_version"), schema)])


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("results", 0, "failures"), 2**63),
        (("results", 0, "failures"), "1e20"),
        (("results", 0, "failures"), 1e300),
        (("results", 1, "adapter_response", "rows_affected"), -(2**63) - 1),
        (("results", 1, "adapter_response", "bytes_processed"), 2**63),
    ],
    ids=["failures-int", "failures-string", "failures-float", "rows_affected", "bytes_processed"],
)
def test_integer_attribute_beyond_int64(path: JsonPath, value: object) -> None:
    _replay_changed([Mutation("replace", path, value)])


@pytest.mark.parametrize(
    "value",
    ["1969-12-31T23:59:59Z", "1970-01-01T00:00:00+05:30", "2600-01-01T00:00:00Z", "9999-12-31T23:59:59Z"],
)
def test_timestamps_outside_the_otlp_range(value: str) -> None:
    timing = ("results", 0, "timing", 0)
    _replay_changed(
        [
            Mutation("replace", (*timing, "started_at"), value),
            Mutation("replace", (*timing, "completed_at"), value),
        ]
    )


@pytest.mark.parametrize("elapsed", [1e300, 1e12, -1e12], ids=["1e300", "1e12", "negative"])
def test_elapsed_time_out_of_range_without_invocation_started_at(elapsed: float) -> None:
    _replay_changed(
        [
            Mutation("delete", ("metadata", "invocation_started_at")),
            Mutation("replace", ("elapsed_time",), elapsed),
        ]
    )


@pytest.mark.parametrize(
    "changes",
    [
        [
            Mutation("replace", ("results", 0, "unique_id"), "model.p.a\nmodel.p.b"),
            Mutation("replace", ("results", 1, "unique_id"), "model.p.a\nmodel.p.b"),
        ],
        [
            Mutation("replace", ("results", 0, "timing", 0, "name"), "compile\nagain"),
            Mutation("replace", ("results", 0, "timing", 0, "started_at"), "2100-01-01T00:00:00Z"),
        ],
    ],
    ids=["duplicate-unique-id", "timing-name"],
)
def test_cli_error_is_one_line(changes: list[Mutation]) -> None:
    document = apply_all(_fixture_document(RUN_RESULTS), changes)
    with target_dir(dumps(document), _fixture_bytes(MANIFEST)) as target:
        check_cli_failure(run_cli(target), target / RUN_RESULTS)


@pytest.mark.parametrize(
    "tail",
    [b'"elapsed_time": NaN', b'"x": "\\ud800"', b'"x": [1,]'],
    ids=["nan", "lone-surrogate", "trailing-comma"],
)
def test_type_error_before_malformed_json_names_the_real_problem(tail: bytes) -> None:
    raw = (
        b'{"metadata": {"dbt_schema_version": "'
        + RUN_RESULTS_SCHEMA.encode()
        + b'", "generated_at": "bad"}, '
        b'"results": [], ' + tail + b"}"
    )
    with target_dir(raw) as target, pytest.raises(ArtifactError) as caught:
        load_artifacts(target)
    assert "not a dbt run-results artifact" not in caught.value.problem, caught.value.problem


@pytest.mark.parametrize(
    "changes",
    [
        [
            Mutation(
                "replace",
                ("results", 0, "timing"),
                [
                    {"name": n, "started_at": "2024-01-01T00:00:00Z", "completed_at": "2024-01-01T00:00:01Z"}
                    for n in ("x", "x", "x#1")
                ],
            )
        ],
        [
            Mutation("replace", ("results", 0, "unique_id"), "a\x1fb"),
            Mutation("replace", ("results", 0, "timing", 0, "name"), "c"),
            Mutation("replace", ("results", 1, "unique_id"), "a"),
            Mutation("replace", ("results", 1, "timing", 0, "name"), "b\x1fc"),
        ],
    ],
    ids=["phase-names", "unit-separator"],
)
def test_span_ids_are_unique(changes: list[Mutation]) -> None:
    _replay_changed(changes)
