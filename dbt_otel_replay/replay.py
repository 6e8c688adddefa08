"""The library's one entry point: read a run's artifacts, plan its trace, deliver it, hand the context on.

:func:`replay` wires the pipeline together (artifacts → dag → plan → export and
propagation) and is what the command line calls; it is equally usable from an
Airflow task or any Python program.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

from .artifacts import load_artifacts
from .errors import ConfigError, ExportError
from .export.config import ExportConfig, resolve_export_config
from .export.encode import encode_requests
from .export.file import STDOUT, write_otlp_json
from .export.otlp import Delivery, deliver
from .plan import AttributeValue, Plan, PlanOptions, plan_trace
from .propagation import CARRIER_FILENAME, format_carrier, write_carrier

DEFAULT_SERVICE_NAME = "dbt"
SERVICE_NAME_KEY = "service.name"


@dataclass(frozen=True)
class ReplayOptions:
    """Everything :func:`replay` needs besides the target directory.

    Attributes:
        plan: What the trace contains and which upstream context it joins.
        export: Where to send it over OTLP (ignored with ``output`` or ``dry_run``).
        output: Write OTLP/JSON lines here instead of sending (``Path("-")`` for stdout).
        dry_run: Plan only: send nothing, write nothing.
        manifest: A manifest.json to use instead of the one beside run_results.json.
        traceparent_to: Where to write the carrier file (default TARGET_DIR/traceparent;
            ``Path("-")`` for stdout).
        resource: Resource attributes (see :func:`resource_attributes`).
    """

    export: ExportConfig | None = None
    plan: PlanOptions = field(default_factory=PlanOptions)
    output: Path | None = None
    dry_run: bool = False
    manifest: Path | None = None
    traceparent_to: Path | None = None
    resource: Mapping[str, AttributeValue] = field(
        default_factory=lambda: {SERVICE_NAME_KEY: DEFAULT_SERVICE_NAME}
    )


@dataclass(frozen=True)
class ReplayResult:
    """What a replay did.

    Attributes:
        plan: The planned trace.
        warnings: Non-fatal remarks about the artifacts, for the user.
        destination: Where the spans went, in words.
        delivery: The collector's acceptance, when sent over OTLP.
        traceparent_path: Where the carrier file was written, if it was.
        failure: Why delivery failed; the trace context was still handed on, since a
            later re-send of the same artifacts produces the same span ids.
    """

    plan: Plan
    warnings: tuple[str, ...]
    destination: str
    delivery: Delivery | None = None
    traceparent_path: Path | None = None
    failure: ExportError | None = None


def replay(target: Path, options: ReplayOptions) -> ReplayResult:
    """Replay one dbt invocation's artifacts as an OpenTelemetry trace.

    Args:
        target: The dbt target directory (or its run_results.json).
        options: Destination, content and propagation choices.

    Returns:
        The plan and what happened to it. Export failures are reported in
        ``failure`` rather than raised, so the caller can still summarise the run.

    Raises:
        ArtifactError: If the artifacts cannot be read (nothing is sent).
        ConfigError: If the OTLP configuration is unusable.
    """
    artifacts = load_artifacts(target, options.manifest)
    plan = plan_trace(artifacts, options.plan)
    warnings = artifacts.warnings + plan.warnings
    if options.dry_run:
        return ReplayResult(plan, warnings, destination="dry run: nothing sent")
    requests = encode_requests(plan, options.resource)
    delivery: Delivery | None = None
    failure: ExportError | None = None
    try:
        if options.output is not None:
            write_otlp_json(requests, options.output)
            where = "standard output" if options.output == STDOUT else str(options.output)
            destination = f"written as OTLP/JSON to {where}"
        else:
            config = options.export or resolve_export_config()
            delivery = deliver(requests, config)
            destination = (
                f"sent to {delivery.endpoint} ({config.protocol.value}) in "
                f"{delivery.requests} request{'s' if delivery.requests != 1 else ''}"
            )
    except ExportError as exc:
        failure = exc
        destination = f"NOT delivered: {exc.sent} of {exc.total} spans accepted"
    carrier = _carrier_path(artifacts.run_results_path.parent, options.traceparent_to)
    _hand_on(plan, carrier)
    return ReplayResult(plan, warnings, destination, delivery, carrier, failure)


def _carrier_path(target_dir: Path, explicit: Path | None) -> Path:
    return explicit if explicit is not None else target_dir / CARRIER_FILENAME


def _hand_on(plan: Plan, carrier: Path) -> None:
    if carrier == STDOUT:
        print(format_carrier(plan.context), end="", flush=True)
        return
    try:
        write_carrier(carrier, plan.context)
    except OSError as exc:
        raise ExportError(f"{carrier}: cannot write the traceparent file: {exc.strerror or exc}") from None


def resource_attributes(
    service_name: str | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, AttributeValue]:
    """The resource of the replayed trace.

    ``service.name`` comes from the argument, else OTEL_SERVICE_NAME, else
    ``service.name`` in OTEL_RESOURCE_ATTRIBUTES, else ``dbt``; every other
    attribute in OTEL_RESOURCE_ATTRIBUTES (``key=value`` pairs, comma-separated,
    percent-encoded) is kept.

    Args:
        service_name: --service-name.
        environ: The environment; defaults to ``os.environ``.

    Returns:
        The attributes, service.name first.

    Raises:
        ConfigError: If OTEL_RESOURCE_ATTRIBUTES has an item that is not key=value.
    """
    env = os.environ if environ is None else environ
    attributes: dict[str, AttributeValue] = {}
    for item in env.get("OTEL_RESOURCE_ATTRIBUTES", "").split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"OTEL_RESOURCE_ATTRIBUTES: {item.strip()!r} is not key=value")
        attributes[unquote(key.strip())] = unquote(value.strip())
    name = service_name or env.get("OTEL_SERVICE_NAME", "").strip()
    name = name or str(attributes.get(SERVICE_NAME_KEY) or DEFAULT_SERVICE_NAME)
    attributes.pop(SERVICE_NAME_KEY, None)
    return {SERVICE_NAME_KEY: name, **attributes}
