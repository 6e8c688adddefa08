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

from ._files import refuse_inputs, remove_output
from .artifacts import load_artifacts
from .errors import ConfigError, ExportError
from .export.config import ExportConfig, resolve_export_config
from .export.convert import convert
from .export.deliver import Delivery, deliver
from .export.encoders import ENCODERS
from .export.file import STDOUT, append_otlp_json, read_otlp_json, write_lines, write_otlp_json
from .export.otlp_json import iter_otlp_json_lines
from .export.requests import EncodedRequest, Encoding
from .export.transport import encoding_for
from .plan import AttributeValue, Plan, PlanOptions, plan_trace
from .propagation import CARRIER_FILENAME, write_carrier

DEFAULT_SERVICE_NAME = "dbt"
SERVICE_NAME_KEY = "service.name"
SPILL_FILENAME = "otel-replay-unsent.json"
"""The spill file's name in the target directory."""


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
        spill: Where spans the collector did not accept are appended as OTLP/JSON
            (default TARGET_DIR/otel-replay-unsent.json).
        extra_outputs: Files the caller writes after the replay (the CLI's --html report),
            refused up front like the others when they name an input artifact.
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
    spill: Path | None = None
    extra_outputs: tuple[Path | None, ...] = ()


@dataclass(frozen=True)
class ReplayResult:
    """What a replay did.

    Attributes:
        plan: The planned trace.
        warnings: Non-fatal remarks about the artifacts, for the user.
        destination: Where the spans went, in words.
        delivery: The collector's acceptance, when sent over OTLP.
        traceparent_path: Where the carrier file was written, if it was.
        spill_path: Where the spans not delivered were saved, if any were.
        failure: Why delivery failed; the trace context was still handed on, since the
            spilled spans, re-sent later, keep their ids.
        inputs: The artifacts read (run_results.json, and the manifest when one was used),
            for :func:`~.views.write_html`'s check that it overwrites none of them.
    """

    plan: Plan
    warnings: tuple[str, ...]
    destination: str
    delivery: Delivery | None = None
    traceparent_path: Path | None = None
    spill_path: Path | None = None
    failure: ExportError | None = None
    inputs: tuple[Path, ...] = ()


@dataclass(frozen=True)
class ResendResult:
    """What re-sending a spill file did.

    Attributes:
        path: The spill file.
        delivery: What the collector accepted.
        failure: Why some spans are still not delivered (they stay in the file).
    """

    path: Path
    delivery: Delivery
    failure: ExportError | None = None


@dataclass(frozen=True)
class Prepared:
    """A run read, planned and (unless a dry run) encoded: ready to send or write."""

    plan: Plan
    warnings: tuple[str, ...]
    requests: list[EncodedRequest]
    run_results_path: Path
    manifest_path: Path | None = None

    @property
    def span_count(self) -> int:
        """How many spans the trace has."""
        return len(self.plan.spans)

    @property
    def inputs(self) -> tuple[Path, ...]:
        """The artifacts read: run_results.json, and the manifest when one was used."""
        return tuple(path for path in (self.run_results_path, self.manifest_path) if path is not None)


def prepare(target: Path, options: ReplayOptions, *, encoding: Encoding | None = None) -> Prepared:
    """Read a run's artifacts, plan its trace and (when asked, and not a dry run) encode it.

    Args:
        target: The dbt target directory (or its run_results.json).
        options: Content choices (what to include, the upstream context, the resource).
        encoding: Encode the requests now, in this encoding (a backfill reads ahead, for its
            transport); None leaves ``requests`` empty.

    Returns:
        The plan and its OTLP requests, in ``encoding``.

    Raises:
        ArtifactError: If the artifacts cannot be read.
    """
    artifacts = load_artifacts(target, options.manifest, include_sql=options.plan.include_sql)
    plan = plan_trace(artifacts, options.plan)
    requests = [] if encoding is None or options.dry_run else list(ENCODERS[encoding](plan, options.resource))
    return Prepared(
        plan,
        artifacts.warnings + plan.warnings,
        requests,
        artifacts.run_results_path,
        artifacts.manifest_path,
    )


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
        ConfigError: If the OTLP configuration is unusable, or an output path (--output, --spill,
            --traceparent-to, ``extra_outputs``) names an input artifact (nothing is written or
            sent, not even in a dry run, which previews the real one).
    """
    prepared = prepare(target, options)
    plan, warnings, inputs = prepared.plan, prepared.warnings, prepared.inputs
    target_dir = prepared.run_results_path.parent
    carrier = _carrier_path(target_dir, options.traceparent_to)
    spill_to = options.spill or target_dir / SPILL_FILENAME
    for output in (options.output, spill_to, carrier, *options.extra_outputs):
        refuse_inputs(output, inputs)
    if options.dry_run:
        return ReplayResult(plan, warnings, destination="dry run: nothing sent", inputs=inputs)
    delivery: Delivery | None = None
    failure: ExportError | None = None
    spill: Path | None = None
    try:
        if options.output is not None:
            write_lines(iter_otlp_json_lines(plan, options.resource), options.output)
            where = "standard output" if options.output == STDOUT else str(options.output)
            destination = f"written as OTLP/JSON to {where}"
        else:
            config = options.export or resolve_export_config()
            encode = ENCODERS[encoding_for(config.protocol)]  # in the encoding its transport sends
            delivery = deliver(encode(plan, options.resource), config)  # encoded while sent
            destination = _describe(delivery, config)
            if not delivery.complete:
                spill = spill_to
                failure = _spill(delivery, spill)
    except ExportError as exc:
        failure, destination = exc, f"NOT written: {exc}"
    _hand_on(plan, carrier)
    return ReplayResult(plan, warnings, destination, delivery, carrier, spill, failure, inputs)


def resend(path: Path, config: ExportConfig | None = None) -> ResendResult:
    """Re-send a spill file; keep in it only what is still not accepted (delete it when empty).

    Span ids are deterministic, so re-sending spans a collector already has adds
    no duplicates in content.

    Args:
        path: A spill file (or any OTLP/JSON lines file, such as --output wrote).
        config: Where to send; by default resolved from the OTEL_* variables.

    Returns:
        What was delivered.

    Raises:
        ArtifactError: If the file is missing or not OTLP/JSON.
    """
    requests = read_otlp_json(path)  # all of it first: a bad line is reported before anything is sent
    config = config or resolve_export_config()
    encoding = encoding_for(config.protocol)
    delivery = deliver((convert(r, encoding) for r in requests), config)  # each converted while one is sent
    if delivery.complete:
        remove_output(path)  # a regular file only: never a device, a FIFO or the link to the file
        return ResendResult(path, delivery)
    try:
        write_otlp_json(delivery.unsent, path)
    except ExportError as exc:
        return ResendResult(path, delivery, exc)
    kept = sum(r.spans for r in delivery.unsent)
    return ResendResult(
        path,
        delivery,
        ExportError(
            f"{delivery.problems[0]}; {kept} spans stay in {path}",
            sent=delivery.accepted,
            total=delivery.total,
        ),
    )


def _describe(delivery: Delivery, config: ExportConfig) -> str:
    requests = f"{delivery.requests} request{'s' if delivery.requests != 1 else ''}"
    if delivery.complete:
        return f"sent to {delivery.endpoint} ({config.protocol.value}) in {requests}"
    return f"NOT all delivered to {delivery.endpoint}: {delivery.accepted} of {delivery.total} spans accepted"


def _spill(delivery: Delivery, spill: Path) -> ExportError:
    return ExportError(save_unsent(delivery, spill), sent=delivery.accepted, total=delivery.total)


def save_unsent(delivery: Delivery, spill: Path) -> str:
    """Append what the collector did not accept to a spill file, and say so in one sentence.

    Args:
        delivery: A delivery that was not complete.
        spill: The spill file (appended to, so it can collect several runs).

    Returns:
        The collector's problem, then where the spans went (or that they could not be saved).
    """
    unsent = sum(r.spans for r in delivery.unsent)
    reason = delivery.problems[0] if delivery.problems else "not accepted"
    try:
        append_otlp_json(delivery.unsent, spill)
    except OSError as exc:
        return f"{reason}; and {unsent} spans are LOST: cannot write {spill}: {exc.strerror or exc}"
    return f"{reason}; {unsent} spans saved to {spill}: re-send them with `dbt-otel-replay resend {spill}`"


def _carrier_path(target_dir: Path, explicit: Path | None) -> Path:
    return explicit if explicit is not None else target_dir / CARRIER_FILENAME


def _hand_on(plan: Plan, carrier: Path) -> None:
    try:  # a file, or "-" for stdout, a device, a FIFO or a symlink (see _files.open_output)
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
        attributes[_text(unquote(key.strip()))] = _text(unquote(value.strip()))
    name = _text(service_name or env.get("OTEL_SERVICE_NAME", "").strip())
    name = name or str(attributes.get(SERVICE_NAME_KEY) or DEFAULT_SERVICE_NAME)
    attributes.pop(SERVICE_NAME_KEY, None)
    return {SERVICE_NAME_KEY: name, **attributes}


def _text(value: str) -> str:
    """Text as OTLP can carry it: bytes that were not UTF-8 (PEP 383 surrogates) become U+FFFD."""
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
