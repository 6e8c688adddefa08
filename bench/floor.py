"""Case (a), the floor: the least work that turns dbt artifacts into OTLP export requests.

Decodes only the fields the trace needs with msgspec (typed structs, every other key skipped by the
decoder), builds ``ExportTraceServiceRequest`` protobufs directly with opentelemetry-proto messages
(one invocation span, one span per result, one per timing entry, with the attributes, links, events
and deterministic span ids of dbt-otel-replay's trace contract), cuts them into requests of at most
4 MiB and 8,192 spans (each span serialized once, the request framed around the serialized spans)
and writes them, serialized, to a file (each prefixed by its length as 8
big-endian bytes). No validation, no warnings, no summary, no network.

Usage::

    python -m bench.floor TARGET_DIR OUT_FILE

Prints one JSON line to stdout: ``{"spans": N, "requests": N, "bytes": N}``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import msgspec
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

MAX_REQUEST_BYTES = 4 * 1024 * 1024 - 1024
MAX_SPANS = 8192
FAILED = frozenset({"error", "fail", "runtime error"})
WARNED = frozenset({"warn", "partial success"})
RELATION_TYPES = frozenset({"model", "seed", "snapshot"})
TASK_RESULTS = {
    "success": "success", "pass": "success", "warn": "success", "no-op": "success", "reused": "success",
    "error": "failure", "fail": "failure", "partial success": "failure", "runtime error": "error",
    "skipped": "skip",
}  # fmt: skip
TASK_TYPES = {"model": "build", "seed": "build", "snapshot": "build", "test": "test", "unit_test": "test"}
DB_SYSTEM_NAMES = {"postgres": "postgresql", "redshift": "aws.redshift", "bigquery": "gcp.bigquery"}
UNIX_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
ONE_MICROSECOND = dt.timedelta(microseconds=1)
FLAGS = 0x01 | 0x100
LENGTH_BYTES = 8


# --------------------------------------------------------------------------- #
# Only the fields the trace needs
# --------------------------------------------------------------------------- #


class Timing(msgspec.Struct):
    name: str
    started_at: dt.datetime | None = None
    completed_at: dt.datetime | None = None


class AdapterResponse(msgspec.Struct):
    code: str | None = None
    rows_affected: int | None = None
    query_id: str | None = None
    job_id: str | None = None
    bytes_processed: int | None = None


class Result(msgspec.Struct):
    unique_id: str
    status: str
    timing: list[Timing] = []
    thread_id: str | None = None
    execution_time: float | None = None
    message: str | None = None
    failures: int | None = None
    adapter_response: AdapterResponse | None = None
    relation_name: str | None = None


class RunMetadata(msgspec.Struct):
    invocation_id: str
    generated_at: dt.datetime
    dbt_version: str | None = None
    invocation_started_at: dt.datetime | None = None


class Args(msgspec.Struct):
    which: str = "run"
    target: str | None = None


class RunResults(msgspec.Struct):
    metadata: RunMetadata
    results: list[Result]
    elapsed_time: float | None = None
    args: Args = msgspec.field(default_factory=Args)


class Config(msgspec.Struct):
    materialized: str | None = None


class DependsOn(msgspec.Struct):
    nodes: list[str] = []


class Node(msgspec.Struct):
    resource_type: str
    name: str
    package_name: str | None = None
    original_file_path: str | None = None
    tags: list[str] = []
    config: Config = msgspec.field(default_factory=Config)
    depends_on: DependsOn = msgspec.field(default_factory=DependsOn)
    database: str | None = None
    schema: str | None = None
    alias: str | None = None
    relation_name: str | None = None


class ManifestMetadata(msgspec.Struct):
    project_name: str | None = None
    adapter_type: str | None = None


class Manifest(msgspec.Struct):
    metadata: ManifestMetadata
    nodes: dict[str, Node] = {}


# --------------------------------------------------------------------------- #
# Spans
# --------------------------------------------------------------------------- #


def nanos(moment: dt.datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return ((moment - UNIX_EPOCH) // ONE_MICROSECOND) * 1000


def value(item: str | bool | int | float | list[str]) -> AnyValue:
    if isinstance(item, bool):
        return AnyValue(bool_value=item)
    if isinstance(item, int):
        return AnyValue(int_value=item)
    if isinstance(item, float):
        return AnyValue(double_value=item)
    if isinstance(item, list):
        return AnyValue(array_value=ArrayValue(values=[AnyValue(string_value=v) for v in item]))
    return AnyValue(string_value=item)


def attributes(pairs: dict[str, str | bool | int | float | list[str] | None]) -> list[KeyValue]:
    return [KeyValue(key=k, value=value(v)) for k, v in pairs.items() if v is not None and v != []]


class Ids:
    """Deterministic span ids, derived as dbt-otel-replay derives them."""

    def __init__(self, trace_id: str) -> None:
        self.trace_id = trace_id

    def derive(self, *parts: str) -> bytes:
        key = json.dumps([self.trace_id, self.trace_id, *parts], ensure_ascii=False)
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()
        return digest[:8] if any(digest[:8]) else digest[8:16]


def spans(run: RunResults, manifest: Manifest) -> Iterator[Span]:
    """The invocation span, then each result's span followed by its phase spans."""
    trace_id_hex = run.metadata.invocation_id.replace("-", "")
    trace_id = bytes.fromhex(trace_id_hex)
    ids = Ids(trace_id_hex)
    nodes = manifest.nodes
    adapter = manifest.metadata.adapter_type
    system = DB_SYSTEM_NAMES.get(adapter or "", adapter)
    end = nanos(run.metadata.generated_at)
    started = run.metadata.invocation_started_at
    start = nanos(started) if started else end - round((run.elapsed_time or 0) * 1e9)
    failed = [r for r in run.results if r.status in FAILED]
    failed_counts: dict[str, int] = {}
    for r in failed:
        failed_counts[r.status] = failed_counts.get(r.status, 0) + 1
    failed_message = ", ".join(f"{count} {status}" for status, count in sorted(failed_counts.items()))
    invocation_id = ids.derive("invocation")
    yield Span(
        trace_id=trace_id, span_id=invocation_id, flags=FLAGS, name=f"dbt {run.args.which}",
        kind=Span.SpanKind.SPAN_KIND_INTERNAL, start_time_unix_nano=start, end_time_unix_nano=end,
        attributes=attributes({
            "dbt.invocation_id": run.metadata.invocation_id, "dbt.version": run.metadata.dbt_version,
            "dbt.command": run.args.which, "dbt.project_name": manifest.metadata.project_name,
            "dbt.target": run.args.target, "dbt.adapter": adapter, "db.system.name": system,
            "dbt.elapsed_time": run.elapsed_time, "dbt.result_count": len(run.results),
            "cicd.pipeline.name": manifest.metadata.project_name or f"dbt {run.args.which}",
            "cicd.pipeline.run.id": run.metadata.invocation_id,
            "cicd.pipeline.result": "failure" if failed else "success",
        }),
        status=Status(code=Status.STATUS_CODE_ERROR, message=failed_message) if failed else None,
    )  # fmt: skip

    executed = {r.unique_id for r in run.results}
    span_ids = {uid: ids.derive("node", uid) for uid in executed}
    failure_ends = {
        r.unique_id: nanos(r.timing[-1].completed_at)
        for r in failed
        if r.timing and r.timing[-1].completed_at is not None
    }
    first_failure = min(failure_ends.values(), default=end)
    failed_above: dict[str, int | None] = {}

    def earliest_failed_ancestor(uid: str) -> int | None:
        """The earliest end among the failed ancestors of ``uid`` (memoised walk up the DAG)."""
        stack = [uid]
        while stack:
            current = stack[-1]
            node = nodes.get(current)
            parents = node.depends_on.nodes if node else []
            pending = [p for p in parents if p not in failed_above]
            if pending:
                stack.extend(pending)
                continue
            stack.pop()
            best: int | None = None
            for parent in parents:
                for candidate in (failure_ends.get(parent), failed_above[parent]):
                    if candidate is not None and (best is None or candidate < best):
                        best = candidate
            failed_above[current] = best
        return failed_above[uid]

    for result in run.results:
        node = nodes.get(result.unique_id)
        parents: list[str] = []
        if node:
            for parent in node.depends_on.nodes:
                if parent in executed and parent != result.unique_id and parent not in parents:
                    parents.append(parent)
        timed = [t for t in result.timing if t.started_at and t.completed_at]
        if timed:
            node_start = min(nanos(t.started_at) for t in timed)  # type: ignore[arg-type]
            node_end = max(nanos(t.completed_at) for t in timed)  # type: ignore[arg-type]
        else:
            ancestor = earliest_failed_ancestor(result.unique_id)
            node_start = node_end = ancestor if ancestor is not None else first_failure
        response = result.adapter_response or AdapterResponse()
        is_failed = result.status in FAILED
        rows = None if response.rows_affected == -1 else response.rows_affected
        pairs: dict[str, str | bool | int | float | list[str] | None] = {
            "dbt.node.unique_id": result.unique_id, "dbt.status": result.status,
            "dbt.thread_id": result.thread_id, "thread.name": result.thread_id,
            "dbt.execution_time": result.execution_time, "dbt.failures": result.failures,
            "dbt.message": None if is_failed else result.message,
            "dbt.adapter_response.rows_affected": rows,
            "dbt.adapter_response.query_id": response.query_id,
            "dbt.adapter_response.job_id": response.job_id,
            "dbt.adapter_response.bytes_processed": response.bytes_processed,
            "dbt.adapter_response.code": response.code,
            "cicd.pipeline.task.name": result.unique_id, "cicd.pipeline.task.run.id": result.unique_id,
            "cicd.pipeline.task.run.result": TASK_RESULTS.get(result.status),
        }  # fmt: skip
        if node:
            relation = node.resource_type in RELATION_TYPES and node.config.materialized != "ephemeral"
            namespace = ".".join(p for p in (node.database, node.schema) if p) or None
            pairs.update({
                "dbt.node.resource_type": node.resource_type, "dbt.node.name": node.name,
                "dbt.node.package_name": node.package_name,
                "dbt.node.materialized": node.config.materialized,
                "dbt.node.original_file_path": node.original_file_path,
                "code.file.path": node.original_file_path, "dbt.node.tags": node.tags,
                "dbt.node.relation_name": node.relation_name or result.relation_name,
                "db.system.name": system, "db.namespace": namespace if relation else None,
                "db.collection.name": (node.alias or node.name) if relation else None,
                "cicd.pipeline.task.type": TASK_TYPES.get(node.resource_type),
            })  # fmt: skip
        else:
            pairs["dbt.node.relation_name"] = result.relation_name
        node_id = span_ids[result.unique_id]
        events = []
        if result.status in WARNED:
            events.append(
                Span.Event(
                    time_unix_nano=node_end, name=f"dbt.{result.status.replace(' ', '_')}",
                    attributes=attributes({"dbt.message": result.message, "dbt.failures": result.failures}),
                )
            )  # fmt: skip
        yield Span(
            trace_id=trace_id, span_id=node_id,
            parent_span_id=span_ids[parents[0]] if parents else invocation_id, flags=FLAGS,
            name=result.unique_id, kind=Span.SpanKind.SPAN_KIND_INTERNAL,
            start_time_unix_nano=node_start, end_time_unix_nano=node_end, attributes=attributes(pairs),
            events=events,
            links=[
                Span.Link(
                    trace_id=trace_id, span_id=span_ids[p], flags=FLAGS,
                    attributes=[KeyValue(key="dbt.node.unique_id", value=AnyValue(string_value=p))],
                )
                for p in parents[1:]
            ],
            status=Status(code=Status.STATUS_CODE_ERROR, message=result.message or result.status)
            if is_failed
            else None,
        )  # fmt: skip
        for timing in timed:
            yield Span(
                trace_id=trace_id, span_id=ids.derive("phase", result.unique_id, timing.name),
                parent_span_id=node_id, flags=FLAGS, name=timing.name, kind=Span.SpanKind.SPAN_KIND_INTERNAL,
                start_time_unix_nano=nanos(timing.started_at),  # type: ignore[arg-type]
                end_time_unix_nano=nanos(timing.completed_at),  # type: ignore[arg-type]
                attributes=[KeyValue(key="dbt.phase", value=AnyValue(string_value=timing.name))],
            )  # fmt: skip


def _varint(number: int) -> bytes:
    out = bytearray()
    while number > 0x7F:
        out.append((number & 0x7F) | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field: tag, length, payload."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def requests(run: RunResults, manifest: Manifest) -> Iterator[tuple[bytes, int]]:
    """Serialized requests of at most 4 MiB and 8,192 spans, with their span counts.

    Each span is serialized once; requests are framed around the serialized spans by hand
    (``ExportTraceServiceRequest.resource_spans[0].scope_spans[0].spans``), which is what
    protobuf itself would write for the same message.
    """
    resource = _field(1, Resource(attributes=[
        KeyValue(key="service.name", value=AnyValue(string_value="dbt"))
    ]).SerializeToString())  # fmt: skip
    scope = _field(1, InstrumentationScope(name="dbt-otel-replay-floor", version="0").SerializeToString())
    budget = MAX_REQUEST_BYTES - len(resource) - len(scope)

    def frame(chunk: list[bytes]) -> bytes:
        scope_spans = _field(2, scope + b"".join(chunk))
        return _field(1, resource + scope_spans)

    chunk: list[bytes] = []
    size = 0
    for span in spans(run, manifest):
        encoded = _field(2, span.SerializeToString())
        if chunk and (size + len(encoded) > budget or len(chunk) >= MAX_SPANS):
            yield frame(chunk), len(chunk)
            chunk, size = [], 0
        chunk.append(encoded)
        size += len(encoded)
    if chunk:
        yield frame(chunk), len(chunk)


def read_requests(path: Path) -> Iterator[ExportTraceServiceRequest]:
    """Read back the requests a run of this script wrote (for verification)."""
    data = path.read_bytes()
    offset = 0
    while offset < len(data):
        length = int.from_bytes(data[offset : offset + LENGTH_BYTES], "big")
        offset += LENGTH_BYTES
        yield ExportTraceServiceRequest.FromString(data[offset : offset + length])
        offset += length


def main(argv: list[str]) -> int:
    """``python -m bench.floor TARGET_DIR OUT_FILE``."""
    target, out = Path(argv[0]), Path(argv[1])
    run = msgspec.json.decode((target / "run_results.json").read_bytes(), type=RunResults)
    manifest = msgspec.json.decode((target / "manifest.json").read_bytes(), type=Manifest)
    count = written = total = 0
    with out.open("wb") as handle:
        for payload, spans_in_request in requests(run, manifest):
            handle.write(len(payload).to_bytes(LENGTH_BYTES, "big"))
            handle.write(payload)
            count += spans_in_request
            written += 1
            total += len(payload)
    print(json.dumps({"spans": count, "requests": written, "bytes": total}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
