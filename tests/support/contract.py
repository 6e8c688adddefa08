"""An independent checker of the trace contract (README, "Trace contract").

It reads the artifacts with the json module and the standard library only and
compares what a receiver got (protobuf spans, or OTLP/JSON lines) with what the
contract says, span by span. It shares no code with dbt_otel_replay on purpose:
a bug in the planner cannot hide itself here.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

FAILED = {"error", "fail", "runtime error"}
# Where a manifest keeps what a result can name (unit tests, run-operation macros, no-op exposures ...).
SECTIONS = ("nodes", "unit_tests", "macros", "exposures", "saved_queries", "semantic_models", "sources")
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
# What people type for each args.which that is not typed as written (dbt-core's cli/types.py Command;
# source-freshness from the argparse CLI before 1.5).
COMMANDS = {
    "generate": "docs generate",
    "serve": "docs serve",
    "freshness": "source freshness",
    "source-freshness": "source freshness",
}
INTERNAL, SERVER, CLIENT = 1, 2, 3


@dataclass
class SpanRecord:
    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    start: int
    end: int
    attributes: dict[str, Any]
    links: list[tuple[str, str]] = field(default_factory=list)
    status_code: int = 0
    status_message: str = ""
    events: list[tuple[str, int, dict[str, Any]]] = field(default_factory=list)
    resource: dict[str, Any] = field(default_factory=dict)
    kind: int = 0


def _any(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_any(v) for v in value.array_value.values]
    return getattr(value, kind) if kind else None


def from_proto(span: Span, resource: dict[str, Any] | None = None) -> SpanRecord:
    return SpanRecord(
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent_span_id=span.parent_span_id.hex(),
        name=span.name,
        start=span.start_time_unix_nano,
        end=span.end_time_unix_nano,
        attributes={kv.key: _any(kv.value) for kv in span.attributes},
        links=[(link.trace_id.hex(), link.span_id.hex()) for link in span.links],
        status_code=span.status.code,
        status_message=span.status.message,
        events=[
            (e.name, e.time_unix_nano, {kv.key: _any(kv.value) for kv in e.attributes}) for e in span.events
        ],
        resource=resource or {},
        kind=span.kind,
    )


def _json_value(value: dict[str, Any]) -> Any:
    ((kind, inner),) = value.items()
    if kind == "arrayValue":
        return [_json_value(v) for v in inner.get("values", [])]
    if kind == "intValue":
        return int(inner)
    return inner


def _json_attributes(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {kv["key"]: _json_value(kv["value"]) for kv in items}


def from_otlp_json_lines(text: str) -> list[SpanRecord]:
    records = []
    for line in text.splitlines():
        for resource_spans in json.loads(line)["resourceSpans"]:
            resource = _json_attributes(resource_spans["resource"].get("attributes", []))
            for scope_spans in resource_spans["scopeSpans"]:
                for span in scope_spans["spans"]:
                    records.append(
                        SpanRecord(
                            trace_id=span["traceId"],
                            span_id=span["spanId"],
                            parent_span_id=span.get("parentSpanId", ""),
                            name=span["name"],
                            start=int(span["startTimeUnixNano"]),
                            end=int(span["endTimeUnixNano"]),
                            attributes=_json_attributes(span.get("attributes", [])),
                            links=[(link["traceId"], link["spanId"]) for link in span.get("links", [])],
                            status_code=span.get("status", {}).get("code", 0),
                            status_message=span.get("status", {}).get("message", ""),
                            events=[
                                (e["name"], int(e["timeUnixNano"]), _json_attributes(e.get("attributes", [])))
                                for e in span.get("events", [])
                            ],
                            resource=resource,
                            kind=span.get("kind", 0),
                        )
                    )
    return records


def nanos(text: str) -> int:
    """Exact nanoseconds of a dbt timestamp, computed independently of the package."""
    text = text.replace("Z", "+00:00")
    if "." in text:  # Python 3.10's fromisoformat takes exactly 3 or 6 fractional digits
        head, rest = text.split(".", 1)
        digits = re.match(r"\d*", rest).group()  # type: ignore[union-attr]
        text = f"{head}.{digits[:6].ljust(6, '0')}{rest[len(digits) :]}"
    moment = dt.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return ((moment - EPOCH) // dt.timedelta(microseconds=1)) * 1000


def load_pair(target: Path) -> tuple[dict[str, Any], dict[str, Any] | None]:
    run_results = json.loads((target / "run_results.json").read_text())
    manifest_path = target / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else None
    return run_results, manifest


def copy_pair(source: Path, destination: Path) -> Path:
    """Copy just a run's artifacts (not a traceparent or spill file a replay left beside them)."""
    destination.mkdir(parents=True, exist_ok=True)
    for name in ("run_results.json", "manifest.json"):
        if (source / name).exists():
            shutil.copy(source / name, destination / name)
    return destination


def _manifest_node(manifest: dict[str, Any] | None, unique_id: str) -> dict[str, Any] | None:
    if manifest is None:
        return None
    for section in SECTIONS:
        found = (manifest.get(section) or {}).get(unique_id)
        if found is not None:
            return found
    return None


def _ancestors(manifest: dict[str, Any] | None, unique_id: str) -> set[str]:
    seen: set[str] = set()
    stack = [unique_id]
    while stack:
        node = _manifest_node(manifest, stack.pop())
        for parent in (node or {}).get("depends_on", {}).get("nodes", []) or []:
            if parent not in seen:
                seen.add(parent)
                stack.append(parent)
    return seen


def _skip_moment(
    unique_id: str, results: list[dict[str, Any]], manifest: dict[str, Any] | None, invocation_end: int
) -> int:
    """The end of a failed ancestor, else of the run's first failure, else of the invocation."""
    failure_ends = {
        r["unique_id"]: max(nanos(t["completed_at"]) for t in r["timing"])
        for r in results
        if r["status"] in FAILED and r.get("timing")
    }
    upstream = [end for uid, end in failure_ends.items() if uid in _ancestors(manifest, unique_id)]
    if upstream:
        return min(upstream)
    return min(failure_ends.values(), default=invocation_end)


def check_contract(
    run_results: dict[str, Any],
    manifest: dict[str, Any] | None,
    spans: list[SpanRecord],
    *,
    upstream: tuple[str, str] | None = None,
) -> dict[str, SpanRecord]:
    """Assert rules 1-6 of the trace contract; return the node spans by unique id."""
    metadata = run_results["metadata"]
    results = run_results["results"]
    invocation_hex = (metadata.get("invocation_id") or "").replace("-", "")
    expected_trace = upstream[0] if upstream else invocation_hex

    # Rule 1: one trace.
    assert {s.trace_id for s in spans} == {expected_trace}
    # Rule 6 (part): every span id is unique.
    ids = Counter(s.span_id for s in spans)
    assert max(ids.values()) == 1, f"duplicate span ids: {[i for i, n in ids.items() if n > 1]}"
    by_id = {s.span_id: s for s in spans}

    # Rule 2: the invocation span.
    expected_root_parent = upstream[1] if upstream else ""
    roots = [s for s in spans if s.parent_span_id == expected_root_parent]
    assert len(roots) == 1, f"expected one invocation span, got {[r.name for r in roots]}"
    root = roots[0]
    which = (run_results.get("args") or {}).get("which") or "run"
    assert root.name == f"dbt {COMMANDS.get(which, which)}"
    assert root.kind == SERVER  # a CI/CD pipeline run
    assert root.end == nanos(metadata["generated_at"])
    if metadata.get("invocation_started_at"):
        assert root.start == nanos(metadata["invocation_started_at"])
    else:
        assert root.start == root.end - round(run_results["elapsed_time"] * 1e9)
    failed = [r for r in results if r["status"] in FAILED]
    assert (root.status_code == 2) == bool(failed)
    if failed:  # the counts, then the first three failing nodes, then how many more
        counts = Counter(r["status"] for r in failed)
        named = ", ".join(r["unique_id"] for r in failed[:3])
        more = f" and {len(failed) - 3} more" if len(failed) > 3 else ""
        expected = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) + f": {named}{more}"
        assert root.status_message == expected
        assert root.attributes["error.type"] == failed[0]["status"]
    else:
        assert "error.type" not in root.attributes

    # Rule 3: one node span per result.
    node_spans = [s for s in spans if "dbt.node.unique_id" in s.attributes]
    by_uid = {s.attributes["dbt.node.unique_id"]: s for s in node_spans}
    assert len(node_spans) == len(results) == len(by_uid)
    executed = {r["unique_id"] for r in results}
    children: dict[str, list[SpanRecord]] = {}
    for s in spans:
        children.setdefault(s.parent_span_id, []).append(s)
    for result in results:
        span = by_uid[result["unique_id"]]
        assert span.attributes["dbt.status"] == result["status"]
        timing = result.get("timing") or []
        if timing:
            assert span.start == min(nanos(t["started_at"]) for t in timing)
            assert span.end == max(nanos(t["completed_at"]) for t in timing)
        else:
            assert span.start == span.end, f"{result['unique_id']}: invented a duration"
            assert span.start == _skip_moment(result["unique_id"], results, manifest, root.end)
        assert span.kind == INTERNAL
        if result["status"] in FAILED:
            assert span.status_code == 2
            assert span.status_message == (result.get("message") or result["status"])
            assert span.attributes["error.type"], result["unique_id"]
        else:
            assert span.status_code == 0
            assert "error.type" not in span.attributes
        if result["status"] == "warn":
            assert [e[0] for e in span.events] == ["dbt.warn"]

        # Rule 4: nesting under the first executed parent; the others as links.
        node = _manifest_node(manifest, result["unique_id"])
        parents: list[str] = []
        for parent in (node or {}).get("depends_on", {}).get("nodes", []) or []:
            if parent in executed and parent not in parents and parent != result["unique_id"]:
                parents.append(parent)
        if parents:
            assert span.parent_span_id == by_uid[parents[0]].span_id, result["unique_id"]
            assert span.links == [(expected_trace, by_uid[p].span_id) for p in parents[1:]]
        else:
            assert span.parent_span_id == root.span_id, result["unique_id"]
            assert span.links == []

        # Rule 5: one child span per timing entry.
        phases = [s for s in children.get(span.span_id, []) if "dbt.phase" in s.attributes]
        assert sorted((p.attributes["dbt.phase"], p.start, p.end) for p in phases) == sorted(
            (t["name"], nanos(t["started_at"]), nanos(t["completed_at"])) for t in timing
        )
        assert all("dbt.node.unique_id" not in p.attributes for p in phases)
        # execute is a call to the warehouse (CLIENT), with its node's db.* attributes; compile is not
        for phase in phases:
            database = {
                k: v for k, v in span.attributes.items() if k.startswith("db.") and k != "db.query.text"
            }
            if phase.attributes["dbt.phase"] == "execute":
                assert phase.kind == CLIENT
                assert {k: v for k, v in phase.attributes.items() if k != "dbt.phase"} == database
            else:
                assert phase.kind == INTERNAL and set(phase.attributes) == {"dbt.phase"}

    # Nothing else: invocation + nodes + phases.
    phase_total = sum(len(r.get("timing") or []) for r in results)
    assert len(spans) == 1 + len(results) + phase_total
    assert all(s.parent_span_id in by_id or s is root for s in spans)
    # Secrets stay home by default.
    assert not any("db.query.text" in s.attributes or "dbt.vars" in s.attributes for s in spans)
    return by_uid
