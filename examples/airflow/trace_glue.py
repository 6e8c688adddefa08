"""Glue between Airflow tasks and dbt-otel-replay's trace context, with no Airflow import.

dbt_trace_dag.py uses these plain functions; they are tested without Airflow. They deliberately
do not import dbt_otel_replay: the scheduler parsing this DAG need not have it installed (the
BashOperator may run the CLI from another environment, e.g. pipx), so the carrier format
(README, "The traceparent file") is read here on its own.

A *carrier* here is a dict of environment variables, ``{"TRACEPARENT": "00-...-01"}`` plus
``"TRACESTATE"`` when there is one: what the traceparent file holds, what goes into a
BashOperator's ``env``, and what is passed between tasks through XCom (it is JSON).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

TRACEPARENT = "TRACEPARENT"
TRACESTATE = "TRACESTATE"
XCOM_KEY = "trace_context"

_TRACEPARENT_RE = re.compile(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")


class CarrierError(ValueError):
    """A carrier (file, XCom value) without a usable TRACEPARENT."""


class TaskInstance(Protocol):
    """The two methods of Airflow's TaskInstance (``ti``) the XCom helpers use."""

    def xcom_push(self, key: str, value: Any) -> None: ...

    def xcom_pull(self, task_ids: str, key: str) -> Any: ...


def parse_carrier(text: str, source: str = "carrier") -> dict[str, str]:
    """KEY=VALUE lines to a carrier; lenient like ``--traceparent-from``.

    Comments, blank lines, ``export`` prefixes, quotes, CRLF line ends and a byte order mark
    are accepted; other keys are ignored.

    Raises:
        CarrierError: If there is no valid TRACEPARENT.
    """
    values: dict[str, str] = {}
    for raw in text.removeprefix("\ufeff").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        key = key.strip().upper()
        if key in (TRACEPARENT, TRACESTATE):
            values[key] = value
    return validate_carrier(values, source)


def read_carrier(path: str | os.PathLike[str]) -> dict[str, str]:
    """Read the traceparent file dbt-otel-replay wrote (``TARGET_DIR/traceparent``).

    Raises:
        CarrierError: If the file is missing or holds no valid TRACEPARENT.
    """
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise CarrierError(f"{path}: cannot read the traceparent file: {exc.strerror or exc}") from None
    return parse_carrier(text, str(path))


def validate_carrier(carrier: Mapping[str, Any] | None, source: str = "carrier") -> dict[str, str]:
    """A clean carrier from a mapping (keys in any case; an empty TRACESTATE is dropped).

    Raises:
        CarrierError: If TRACEPARENT is missing or not a W3C traceparent.
    """
    if not isinstance(carrier, Mapping):
        raise CarrierError(f"{source}: expected a mapping with TRACEPARENT, got {type(carrier).__name__}")
    upper = {str(key).upper(): value for key, value in carrier.items()}
    traceparent = upper.get(TRACEPARENT)
    if not isinstance(traceparent, str) or not traceparent.strip():
        raise CarrierError(f"{source}: no TRACEPARENT")
    traceparent = traceparent.strip()
    if not _TRACEPARENT_RE.fullmatch(traceparent):
        raise CarrierError(f"{source}: {traceparent!r} is not a W3C traceparent")
    clean = {TRACEPARENT: traceparent}
    tracestate = upper.get(TRACESTATE)
    if isinstance(tracestate, str) and tracestate.strip():
        if "\n" in tracestate or "\r" in tracestate:
            raise CarrierError(f"{source}: TRACESTATE holds a line break")
        clean[TRACESTATE] = tracestate.strip()
    return clean


def format_carrier(carrier: Mapping[str, str]) -> str:
    """A carrier as traceparent-file text (plain KEY=VALUE lines)."""
    clean = validate_carrier(carrier)
    return "".join(f"{key}={value}\n" for key, value in clean.items())


def carrier_for(trace_id: int, span_id: int, *, sampled: bool = True, tracestate: str = "") -> dict[str, str]:
    """The carrier of a span context given as integers (as the OpenTelemetry API holds them)."""
    carrier = {TRACEPARENT: f"00-{trace_id:032x}-{span_id:016x}-{'01' if sampled else '00'}"}
    if tracestate:
        carrier[TRACESTATE] = tracestate
    return validate_carrier(carrier)


def bash_env(carrier: Mapping[str, str] | None, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """An ``env`` for a BashOperator (or subprocess) that joins the carrier's trace.

    ``base`` (e.g. ``os.environ``) is copied; TRACEPARENT/TRACESTATE are set from the carrier,
    and a TRACESTATE of ``base`` that the carrier does not have is removed, so a stale state
    never travels with a new parent. With no carrier, both are removed (a new trace starts).
    """
    env = dict(base or {})
    env.pop(TRACEPARENT, None)
    env.pop(TRACESTATE, None)
    if carrier:
        env.update(validate_carrier(carrier))
    return env


def xcom_env(task_id: str, key: str = XCOM_KEY) -> dict[str, str]:
    """Jinja-templated ``env`` entries: the carrier another task pushed to XCom.

    BashOperator renders ``env`` at run time, so this needs no code in the task. When the XCom
    is absent the values render empty, and dbt-otel-replay treats an empty TRACEPARENT as unset.
    """
    if not re.fullmatch(r"[A-Za-z0-9_.\-]+", task_id) or not re.fullmatch(r"[A-Za-z0-9_.\-]+", key):
        raise ValueError(f"unsafe task id or XCom key for a template: {task_id!r}, {key!r}")
    pull = f"(ti.xcom_pull(task_ids='{task_id}', key='{key}') or {{}})"
    return {name: f"{{{{ {pull}.get('{name}', '') }}}}" for name in (TRACEPARENT, TRACESTATE)}


def push_carrier(
    ti: TaskInstance, carrier: Mapping[str, str] | str | os.PathLike[str], key: str = XCOM_KEY
) -> dict[str, str]:
    """Push a carrier (or the carrier in a traceparent file) to XCom; returns what was pushed."""
    clean = (
        read_carrier(carrier)
        if isinstance(carrier, (str, os.PathLike))
        else validate_carrier(carrier, "XCom value")
    )
    ti.xcom_push(key=key, value=clean)
    return clean


def pull_carrier(ti: TaskInstance, task_id: str, key: str = XCOM_KEY) -> dict[str, str] | None:
    """The carrier ``task_id`` pushed, or None when it pushed none.

    Raises:
        CarrierError: If what it pushed is not a carrier.
    """
    value = ti.xcom_pull(task_ids=task_id, key=key)
    if value is None:
        return None
    return validate_carrier(value, f"XCom {task_id}/{key}")


def emit_span(
    name: str,
    parent: Mapping[str, str] | None = None,
    *,
    attributes: Mapping[str, str | int | float | bool] | None = None,
    work: Callable[[], object] | None = None,
    exporter: Any = None,
    service_name: str | None = None,
) -> dict[str, str]:
    """Run ``work`` inside a span named ``name``, a child of ``parent``; return the span's carrier.

    The span is exported before this returns: over OTLP as configured by the usual
    ``OTEL_EXPORTER_OTLP_*`` variables (``OTEL_EXPORTER_OTLP_PROTOCOL`` grpc or http/protobuf),
    or to ``exporter`` if given (tests pass an in-memory one). Needs ``opentelemetry-sdk`` and
    ``opentelemetry-exporter-otlp``, which dbt-otel-replay installs. An exception from ``work``
    marks the span as failed and propagates.
    """
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    context = None
    if parent:
        clean = validate_carrier(parent, "parent")
        context = TraceContextTextMapPropagator().extract({k.lower(): v for k, v in clean.items()})
    service = service_name or os.environ.get("OTEL_SERVICE_NAME") or "airflow"
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(exporter or _otlp_exporter()))
    try:
        tracer = provider.get_tracer("dbt-otel-replay.examples.airflow")
        with tracer.start_as_current_span(name, context=context, attributes=dict(attributes or {})) as span:
            if work is not None:
                work()
            span_context = span.get_span_context()
    finally:
        provider.shutdown()
    return carrier_for(
        span_context.trace_id,
        span_context.span_id,
        sampled=span_context.trace_flags.sampled,
        tracestate=span_context.trace_state.to_header(),
    )


def _otlp_exporter() -> Any:
    protocol = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or os.environ.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
    )
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        return GrpcExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

    return HttpExporter()
