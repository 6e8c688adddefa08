"""The library's one entry point: read a run's artifacts, plan its trace, deliver it, hand the context on.

:func:`replay` wires the pipeline together (artifacts → dag → plan → export and
propagation) and is what the command line calls; it is equally usable from an
Airflow task or any Python program.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import unquote

from . import cicontext
from ._files import locked, refuse_inputs, remove_output
from .artifacts import Artifacts, load_artifacts
from .dbtlog import InvocationLog, find_log_files, read_invocation
from .errors import ArtifactError, ConfigError, ExportError, StoppedError
from .export.config import ExportConfig, Exporter, resolve_export_config
from .export.convert import convert
from .export.deliver import Delivery, deliver
from .export.encoders import ENCODERS
from .export.file import STDOUT, append_otlp_json, read_spill, write_lines
from .export.otlp_json import iter_json_requests, iter_otlp_json_lines
from .export.requests import EncodedRequest, Encoding
from .export.transport import encoding_for
from .inside import node_times
from .plan import Plan, PlanOptions, plan_trace
from .propagation import CARRIER_FILENAME, write_carrier
from .spans import AttributeValue
from .stopping import StopRequest

DEFAULT_SERVICE_NAME = "dbt"
SERVICE_NAME_KEY = "service.name"
SPILL_FILENAME = "otel-replay-unsent.json"
"""The spill file's name in the target directory (and in the fallback directories)."""
FALLBACK_DIRNAME = "dbt-otel-replay"
"""The spill file's directory in the user's cache directory when TARGET_DIR cannot take it."""

logger = logging.getLogger(__name__)


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
        spill: Where spans the collector did not accept are appended as OTLP/JSON (by default
            TARGET_DIR/otel-replay-unsent.json, or when that cannot be written, the same name in
            the user's cache directory, else in a private directory of the temporary directory:
            see :func:`spill_places`; a path given here is the only one tried).
        extra_outputs: Files the caller writes after the replay (the CLI's --html report),
            refused up front like the others when they name an input artifact.
        dbt_log: dbt's log file, or a logs directory, to read the statements from instead of
            TARGET_DIR/../logs/dbt.log (and its rotated siblings).
        read_dbt_log: Read dbt's log at all (--no-dbt-log: only the artifacts).
        ci_environ: The environment to detect the CI/CD job in (:mod:`.cicontext`); None reads
            ``os.environ``, ``{}`` adds no CI context. Only :func:`replay` adds it, to a run that
            ended within the last day (:func:`.cicontext.applies`); a backfill never does.
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
    dbt_log: Path | None = None
    read_dbt_log: bool = True
    ci_environ: Mapping[str, str] | None = None


@dataclass(frozen=True)
class ReplayResult:
    """What a replay did.

    Attributes:
        plan: The planned trace.
        warnings: Non-fatal remarks about the artifacts, for the user.
        destination: Where the spans went, in words.
        delivery: The collector's acceptance, when sent over OTLP.
        traceparent_path: Where the carrier file was written, if it was.
        spill_path: Where the spans not delivered were saved, if any were (a fallback when the
            default place could not be written; None when they could not be saved anywhere).
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
        removed: Whether the file was deleted (every span delivered, and a regular file: a
            device node or a FIFO is never deleted).
        warnings: Remarks about the file, such as a last line cut short that was skipped.
    """

    path: Path
    delivery: Delivery
    failure: ExportError | None = None
    removed: bool = False
    warnings: tuple[str, ...] = ()


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
    log_warnings: list[str] = []
    log = read_log(artifacts, options, log_warnings) if options.read_dbt_log else None
    plan = plan_trace(artifacts, options.plan, log)
    requests = [] if encoding is None or options.dry_run else list(ENCODERS[encoding](plan, options.resource))
    return Prepared(
        plan,
        artifacts.warnings + tuple(log_warnings) + plan.warnings,
        requests,
        artifacts.run_results_path,
        artifacts.manifest_path,
    )


def read_log(artifacts: Artifacts, options: ReplayOptions, warnings: list[str]) -> InvocationLog | None:
    """What dbt's log says of the run's invocation, or None (with a warning) when it cannot say.

    The log is found beside the target directory (``logs/dbt.log``, as dbt writes it by default)
    unless ``options.dbt_log`` names it; no log there is no warning (many archives keep none),
    but a log without this invocation, or whose times cannot be aligned with run_results.json,
    is. Only the invocation's own lines are used.

    Args:
        artifacts: The run's artifacts.
        options: ``dbt_log``, and the SQL choices.
        warnings: Receives the log's problems, one line each.

    Returns:
        The invocation's statements, batches and connections.

    Raises:
        ArtifactError: If a log named with ``--dbt-log`` is missing or cannot be read.
    """
    files = find_log_files(artifacts.run_results_path.parent, options.dbt_log)
    if not files:
        if options.dbt_log is not None:
            raise ArtifactError(
                options.dbt_log, "not found (--dbt-log names dbt's log file or logs directory)"
            )
        return None
    results = artifacts.run_results.results
    times = node_times((r.unique_id, r.started_at, r.completed_at) for r in results)
    return read_invocation(
        files,
        artifacts.run_results.metadata.invocation_id or "",
        times,
        warnings,
        keep_sql=options.plan.include_sql,
        max_sql_chars=options.plan.sql_max_chars + 1,  # one more: the planner marks what it cuts
    )


def replay(target: Path, options: ReplayOptions, *, stop: StopRequest | None = None) -> ReplayResult:
    """Replay one dbt invocation's artifacts as an OpenTelemetry trace.

    Args:
        target: The dbt target directory (or its run_results.json).
        options: Destination, content and propagation choices.
        stop: Set by a signal (see :mod:`.stopping`): nothing more is sent, what is unsent is
            saved like any undelivered span, the carrier file is still written, and ``failure``
            is a :class:`~.errors.StoppedError`.

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
    options = _with_ci_context(options, prepared.plan)  # this job's CI/CD context: one run, never a backfill
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
        elif (config := options.export or resolve_export_config()).exporter is Exporter.NONE:
            destination = (
                "not sent: the exporter is off (OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none)"
            )
        elif config.exporter is Exporter.CONSOLE:  # OTEL_TRACES_EXPORTER=console: as --output -
            write_lines(iter_otlp_json_lines(plan, options.resource), STDOUT)
            destination = "written as OTLP/JSON to standard output (OTEL_TRACES_EXPORTER=console)"
        else:
            encode = ENCODERS[encoding_for(config.protocol)]  # in the encoding its transport sends
            delivery = deliver(encode(plan, options.resource), config, stop=stop)  # encoded while sent
            destination = _describe(delivery, config)
            if not delivery.complete:
                # an explicit --spill is the only place tried: whoever named a file must learn it failed
                places = (spill_to,) if options.spill is not None else spill_places(spill_to)
                unsent = spillable(plan, options.resource, delivery.unsent)
                if delivery.stopped and stop is not None:
                    reason = stop.stopped_after(delivery.accepted, delivery.total)
                    message, spill = _save(delivery, places, reason, unsent)
                    failure = StoppedError(
                        message, signum=stop.signum, sent=delivery.accepted, total=delivery.total
                    )
                else:
                    message, spill = _save(delivery, places, None, unsent)
                    failure = ExportError(message, sent=delivery.accepted, total=delivery.total)
    except ExportError as exc:
        failure, destination = exc, f"NOT written: {exc}"
    _hand_on(plan, carrier, destination, failure)
    return ReplayResult(plan, warnings, destination, delivery, carrier, spill, failure, inputs)


def resend(
    path: Path, config: ExportConfig | None = None, *, stop: StopRequest | None = None
) -> ResendResult:
    """Re-send a spill file; keep in it only what is still not accepted (delete it when empty).

    Span ids are deterministic, so re-sending spans a collector already has adds
    no duplicates in content. The file's lock is held from the read to the rewrite or
    deletion, so a replay spilling into it meanwhile waits, then appends to what is left
    (nothing appended is deleted unsent). A last line cut short by a write that failed part
    way is skipped with a warning, and the rest is sent.

    Args:
        path: A spill file (or any OTLP/JSON lines file, such as --output wrote).
        config: Where to send; by default resolved from the OTEL_* variables.
        stop: Set by a signal: nothing more is sent, the file keeps what was not accepted,
            and ``failure`` is a :class:`~.errors.StoppedError`.

    Returns:
        What was delivered.

    Raises:
        ArtifactError: If the file is missing or not OTLP/JSON.
    """
    with locked(path):  # from the read to the rewrite: a spill appended meanwhile would be deleted unsent
        content = read_spill(path)  # all of it first: a bad line is reported before anything is sent
        warnings = () if content.skipped is None else (content.skipped,)
        for warning in warnings:
            logger.warning("%s", warning)
        config = config or resolve_export_config()
        if config.exporter is not Exporter.OTLP:
            raise ConfigError(
                f"{path}: not re-sent: the exporter is off (OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER="
                f"{config.exporter.value}); the file is kept"
            )
        encoding = encoding_for(config.protocol)
        lines: dict[int, str] = {}  # each request sent, by identity: its line, to be kept as it was

        def converted() -> Iterator[EncodedRequest]:  # converted while sent
            for request, line in zip(content.requests, content.lines, strict=True):
                sent = convert(request, encoding)
                lines[id(sent)] = line
                yield sent

        delivery = deliver(converted(), config, stop=stop)
        if delivery.complete:
            removed = remove_output(path)  # a regular file only: never a device, a FIFO or the link to it
            return ResendResult(path, delivery, removed=removed, warnings=warnings)
        try:
            write_lines((lines[id(request)] for request in delivery.unsent), path)
        except ExportError as exc:
            return ResendResult(path, delivery, exc, warnings=warnings)
    kept = sum(r.spans for r in delivery.unsent)
    if delivery.stopped and stop is not None:
        failure: ExportError = StoppedError(
            f"{stop.stopped_after(delivery.accepted, delivery.total)}; {kept} spans stay in {path}",
            signum=stop.signum,
            sent=delivery.accepted,
            total=delivery.total,
        )
    else:
        failure = ExportError(
            f"{delivery.problems[0]}; {kept} spans stay in {path}",
            sent=delivery.accepted,
            total=delivery.total,
        )
    return ResendResult(path, delivery, failure, warnings=warnings)


def _describe(delivery: Delivery, config: ExportConfig) -> str:
    requests = f"{delivery.requests} request{'s' if delivery.requests != 1 else ''}"
    if delivery.complete:
        return f"sent to {delivery.endpoint} ({config.protocol.value}) in {requests}"
    return f"NOT all delivered to {delivery.endpoint}: {delivery.accepted} of {delivery.total} spans accepted"


def save_unsent(
    delivery: Delivery,
    spill: Path,
    reason: str | None = None,
    unsent: Sequence[EncodedRequest] | None = None,
) -> str:
    """Append what the collector did not accept to a spill file, and say so in one sentence.

    Args:
        delivery: A delivery that was not complete.
        spill: The spill file (appended to, so it can collect several runs); the only place
            tried, since the user named it.
        reason: Why they were not delivered; by default the collector's first problem.
        unsent: The undelivered spans as they are to be written (see :func:`spillable`); by
            default ``delivery.unsent``.

    Returns:
        The reason, then where the spans went (or that they could not be saved).
    """
    return _save(delivery, (spill,), reason, unsent)[0]


def spillable(
    plan: Plan, resource: Mapping[str, AttributeValue], unsent: Sequence[EncodedRequest]
) -> list[EncodedRequest]:
    """The requests not delivered, in OTLP/JSON for the spill file.

    Those encoded from ``plan`` are encoded again from it, straight into OTLP/JSON, which is
    some twenty times faster than converting their protobuf: a stop signal leaves seconds,
    not minutes, to save a large run. Any other request is converted as it is written.

    Args:
        plan: The plan the requests were encoded from.
        resource: Its resource attributes.
        unsent: ``Delivery.unsent``.

    Returns:
        Requests holding exactly the same spans.
    """
    spill: list[EncodedRequest] = []
    for request in unsent:
        if request.encoding is not Encoding.JSON and request.first_span is not None:
            end = request.first_span + request.spans
            spill.extend(iter_json_requests(plan, resource, start=request.first_span, stop=end))
        else:
            spill.append(request)
    return spill


def spill_places(default: Path) -> tuple[Path, ...]:
    """Where the spill file goes, in the order tried, when the user named none.

    TARGET_DIR can be read-only (an archive, a container's mounted volume) or full; spans
    that could be saved elsewhere must not be lost for it. So after the default come the
    user's cache directory ($XDG_CACHE_HOME/dbt-otel-replay, else ~/.cache/dbt-otel-replay),
    then a directory of this user's own in the temporary directory ($TMPDIR, else /tmp ...:
    :func:`tempfile.gettempdir`); the error line names the one used. Fallback directories are
    made for this user alone (mode 0700), and refused when they are a symlink, someone else's,
    or writable by everyone. Worked out only when the default failed (``gettempdir`` probes).

    Args:
        default: TARGET_DIR/otel-replay-unsent.json.

    Returns:
        The spill files to try, the default first.
    """
    places = [default]
    cache = os.environ.get("XDG_CACHE_HOME", "")
    if os.path.isabs(cache):  # the XDG spec: a relative value is ignored
        places.append(Path(cache) / FALLBACK_DIRNAME / SPILL_FILENAME)
    else:
        with suppress(RuntimeError, KeyError):  # no home directory to be found
            places.append(Path.home() / ".cache" / FALLBACK_DIRNAME / SPILL_FILENAME)
    temporary = Path(tempfile.gettempdir()) / f"{FALLBACK_DIRNAME}-{os.geteuid()}"
    places.append(temporary / SPILL_FILENAME)
    return tuple(places)


def _save(
    delivery: Delivery,
    places: Sequence[Path],
    reason: str | None = None,
    requests: Sequence[EncodedRequest] | None = None,
) -> tuple[str, Path | None]:
    """Append the unsent requests to the first place that takes them; say where, or that they are LOST.

    A failed append leaves a file as it was, so trying the next place never duplicates spans.
    """
    unsent = sum(r.spans for r in delivery.unsent)
    reason = reason or (delivery.problems[0] if delivery.problems else "not accepted")
    refused: list[str] = []
    for index, place in enumerate(places):
        try:
            if index:  # a fallback: in a directory of this user's own
                _private_directory(place.parent)
            append_otlp_json(delivery.unsent if requests is None else requests, place)
        except OSError as exc:
            refused.append(f"{place}: {exc.strerror or exc}")
            continue
        saved = (
            f"{reason}; {unsent} spans saved to {place}: re-send them with `dbt-otel-replay resend {place}`"
        )
        return (f"{saved} (cannot write {'; nor '.join(refused)})" if refused else saved), place
    return f"{reason}; and {unsent} spans are LOST: cannot write {'; nor '.join(refused)}", None


def _private_directory(directory: Path) -> None:
    """Make (or check) a fallback spill directory of this user's own.

    The temporary directory is shared by every user: another could have made the directory,
    or a symlink by its name, to read the spans or have them appended to a file of their choosing.

    Raises:
        OSError: If it cannot be made, or is a symlink, someone else's, or writable by everyone.
    """
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = os.lstat(directory)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & stat.S_IWOTH:
        raise OSError(errno.EPERM, "not a directory of this user's alone", str(directory))


def _with_ci_context(options: ReplayOptions, plan: Plan) -> ReplayOptions:
    """The options with the CI/CD job's resource attributes added, when the run can be the job's.

    Explicit resource attributes (OTEL_RESOURCE_ATTRIBUTES) win; a run that ended more than a day
    ago, or after now, is an archived run, never stamped with today's job.
    """
    context = cicontext.detect(os.environ if options.ci_environ is None else options.ci_environ)
    if context is None or not cicontext.applies(plan.invocation.end_time_unix_nano, time.time_ns()):
        return options
    return replace(options, resource=cicontext.merge(options.resource, context))


def _carrier_path(target_dir: Path, explicit: Path | None) -> Path:
    return explicit if explicit is not None else target_dir / CARRIER_FILENAME


def _hand_on(plan: Plan, carrier: Path, destination: str, failure: ExportError | None) -> None:
    """Write the carrier file; if it cannot be written, the error still says what became of the spans.

    The error replaces the export's outcome as the one line a caller prints, so a delivery
    failure (with where the spans were saved, or that they are LOST) must travel in it.
    """
    try:  # a file, or "-" for stdout, a device, a FIFO or a symlink (see _files.open_output)
        write_carrier(carrier, plan.context)
    except OSError as exc:
        problem = f"{carrier}: cannot write the traceparent file: {exc.strerror or exc}"
        if failure is None:
            raise ExportError(f"{problem}; the trace was {destination}") from None
        raise ExportError(f"{problem}; and {failure}", sent=failure.sent, total=failure.total) from None


def resource_attributes(
    service_name: str | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, AttributeValue]:
    """The resource of the replayed trace.

    ``service.name`` comes from the argument, else OTEL_SERVICE_NAME, else
    ``service.name`` in OTEL_RESOURCE_ATTRIBUTES, else ``dbt``; every other
    attribute in OTEL_RESOURCE_ATTRIBUTES (``key=value`` pairs, comma-separated,
    percent-encoded) is kept. A malformed OTEL_RESOURCE_ATTRIBUTES is discarded whole, with a
    warning, as the Resource SDK specification says: "In case of any error, e.g. failure during
    the decoding process, the entire environment variable value SHOULD be discarded and an error
    SHOULD be reported" (it is no reason to lose the run's trace, nor to fail a dry run).

    Args:
        service_name: --service-name.
        environ: The environment; defaults to ``os.environ``.

    Returns:
        The attributes, service.name first.
    """
    env = os.environ if environ is None else environ
    attributes: dict[str, AttributeValue] = {}
    for item in env.get("OTEL_RESOURCE_ATTRIBUTES", "").split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            shown = _text(item.strip())[:40] + ("..." if len(item.strip()) > 40 else "")
            logger.warning(
                "OTEL_RESOURCE_ATTRIBUTES: %r is not key=value, so the whole variable is ignored "
                "(write comma-separated key=value pairs, percent-encoding commas and '=' in values)",
                shown,
            )
            attributes = {}
            break
        attributes[_text(unquote(key.strip()))] = _text(unquote(value.strip()))
    name = _text(service_name or env.get("OTEL_SERVICE_NAME", "").strip())
    name = name or str(attributes.get(SERVICE_NAME_KEY) or DEFAULT_SERVICE_NAME)
    attributes.pop(SERVICE_NAME_KEY, None)
    return {SERVICE_NAME_KEY: name, **attributes}


def _text(value: str) -> str:
    """Text as OTLP can carry it: bytes that were not UTF-8 (PEP 383 surrogates) become U+FFFD."""
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
