"""The planned spans: what the planner makes and the encoders and views read; plain immutable records.

Apart from :mod:`.plan` so the planners of what a run's artifacts say (:mod:`.plan`) and of
what dbt's log adds inside a node (:mod:`.inside`) share them without importing each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum, IntEnum

import msgspec

from .statuses import StatusCode
from .timestamps import NANOS_PER_SECOND

AttributeValue = str | bool | int | float | tuple[str, ...]
Attributes = Mapping[str, AttributeValue]

HOOK_PREFIX = "operation."
"""unique_id prefix of on-run-start/on-run-end hooks, which run outside the DAG."""
SQL_TRUNCATION_MARK = "\n-- [truncated by dbt-otel-replay]"
"""What ends exported SQL that was cut at --sql-max-chars."""


class SpanRole(Enum):
    """What a planned span stands for."""

    INVOCATION = "invocation"
    NODE = "node"
    PHASE = "phase"
    STATEMENT = "statement"
    """A SQL statement dbt's log recorded (see :mod:`.inside`)."""
    BATCH = "batch"
    """A microbatch model's batch, from dbt's log."""
    CONNECTION = "connection"
    """Opening a warehouse connection before a statement, from dbt's log."""
    HOOK = "hook"
    """A project hook dbt < 1.9 ran without recording it in run_results.json, from dbt's log."""


class SpanKind(IntEnum):
    """OTLP's ``Span.SpanKind`` values the replay uses."""

    INTERNAL = 1
    """A node, a phase dbt spent compiling, a batch: work inside the run."""
    SERVER = 2
    """The invocation: a CI/CD pipeline run (OpenTelemetry's ``span.cicd.pipeline.run.server``)."""
    CLIENT = 3
    """A call to the warehouse: a statement, or opening a connection."""


class PlannedEvent(msgspec.Struct, frozen=True, gc=False):
    """A point in time on a span, such as a dbt warning."""

    name: str
    time_unix_nano: int
    attributes: Attributes = msgspec.field(default_factory=dict)


class PlannedLink(msgspec.Struct, frozen=True, gc=False):
    """A link from a node span to the span of one of its other executed parents."""

    trace_id: str
    span_id: str
    attributes: Attributes = msgspec.field(default_factory=dict)


class PlannedSpan(msgspec.Struct, frozen=True, gc=False):
    """One span of the replayed trace, ready for encoding (a plain immutable record, cheap to make)."""

    role: SpanRole
    span_id: str
    parent_span_id: str | None
    name: str
    start_time_unix_nano: int
    end_time_unix_nano: int
    attributes: Attributes
    events: tuple[PlannedEvent, ...] = ()
    links: tuple[PlannedLink, ...] = ()
    status: StatusCode = StatusCode.UNSET
    status_message: str = ""
    kind: SpanKind = SpanKind.INTERNAL

    @property
    def duration_seconds(self) -> float:
        """The span's length in seconds."""
        return (self.end_time_unix_nano - self.start_time_unix_nano) / NANOS_PER_SECOND
