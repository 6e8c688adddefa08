"""Backfill: replay many archived dbt runs, oldest first, each as its own trace.

Runs are found in the directories given and below ``--recursive`` roots
(run_results.json or run_results.json.gz, with the manifest beside it), ordered
by when they started, and replayed one at a time while the next one is read in
the background, so memory stays bounded by the largest run, not the number of
runs. A ledger remembers what a collector accepted; a bad run is reported and
skipped; a collector that stops accepting ends the backfill, to be resumed later.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from contextlib import ExitStack, closing
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import TextIO

from ._files import refuse_inputs
from .artifacts import GZIP_SUFFIX, MANIFEST_FILENAME, RUN_RESULTS_FILENAME, read_run_header
from .errors import EXIT_BAD_INPUT, EXIT_EXPORT_FAILED, EXIT_OK, ArtifactError, ExportError
from .export.config import Exporter, resolve_export_config
from .export.deliver import Delivery, deliver
from .export.file import STDOUT, open_trace
from .export.otlp_json import iter_otlp_json_lines
from .export.requests import EncodedRequest, Encoding
from .export.transport import open_transport
from .ledger import Claim, Ledger
from .replay import Prepared, ReplayOptions, prepare, save_unsent, spillable
from .spans import AttributeValue
from .stopping import StopRequest, in_background

logger = logging.getLogger(__name__)


class RunOutcome(str, Enum):
    """What happened to one run."""

    DELIVERED = "delivered"
    WRITTEN = "written"
    PLANNED = "planned"
    ALREADY_DELIVERED = "already delivered"
    CLAIMED_ELSEWHERE = "claimed elsewhere"
    SKIPPED = "skipped"
    FAILED = "failed"
    STOPPED = "stopped"
    NOT_ATTEMPTED = "not attempted"


@dataclass(frozen=True)
class Run:
    """An archived run, identified before it is read in full.

    ``identity`` is the ledger's key (:func:`~.artifacts.run_identity`): the invocation id, when
    the run was written and a digest of the file, since several runs can share an invocation id.
    """

    run_results: Path
    started_at: int
    invocation_id: str | None
    identity: str


@dataclass(frozen=True)
class RunReport:
    """One run's line in the backfill's report."""

    run_results: Path
    outcome: RunOutcome
    trace_id: str | None = None
    span_id: str | None = None
    """The root (invocation) span's id, with the trace id."""
    command: str | None = None
    nodes: int = 0
    spans: int = 0
    message: str = ""


@dataclass(frozen=True)
class BackfillOptions:
    """Backfill settings on top of the per-run replay options.

    Attributes:
        replay: Content and destination, as for one run (its upstream context,
            traceparent and manifest settings are not used: each run is its own trace).
        ledger: The SQLite ledger of delivered runs, or None for none.
        force: Re-send runs the ledger says were delivered.
    """

    replay: ReplayOptions = field(default_factory=ReplayOptions)
    ledger: Path | None = None
    force: bool = False


@dataclass
class BackfillReport:
    """Every run's outcome, in the order the runs happened."""

    runs: list[RunReport] = field(default_factory=list)
    stopped_by: StopRequest | None = None

    def count(self, outcome: RunOutcome) -> int:
        """How many runs ended with this outcome."""
        return sum(1 for r in self.runs if r.outcome is outcome)

    @property
    def spans(self) -> int:
        """Spans delivered or written in all."""
        return sum(r.spans for r in self.runs if r.outcome in (RunOutcome.DELIVERED, RunOutcome.WRITTEN))

    @property
    def exit_code(self) -> int:
        """128 + N when signal N stopped it, else 3 when an export failed, else 1 when a run was skipped."""
        if self.stopped_by is not None:
            return self.stopped_by.exit_code
        if self.count(RunOutcome.FAILED):
            return EXIT_EXPORT_FAILED
        if self.count(RunOutcome.SKIPPED):
            return EXIT_BAD_INPUT
        return EXIT_OK


def find_runs(targets: Sequence[Path], roots: Sequence[Path]) -> Iterator[Path]:
    """Every run_results.json (or .json.gz) in the targets and below the roots, each once.

    Args:
        targets: Target directories (or run_results files) given one by one.
        roots: Directories to search recursively.

    Yields:
        Paths of run_results files.
    """
    seen: set[Path] = set()
    candidates = [t if t.is_file() else t / RUN_RESULTS_FILENAME for t in targets]
    for root in roots:
        candidates.extend(sorted(root.rglob(RUN_RESULTS_FILENAME)))
        candidates.extend(sorted(root.rglob(RUN_RESULTS_FILENAME + GZIP_SUFFIX)))
    for path in candidates:
        if not path.exists() and path.with_name(path.name + GZIP_SUFFIX).exists():
            path = path.with_name(path.name + GZIP_SUFFIX)
        plain = path.with_name(RUN_RESULTS_FILENAME)
        if path.name.endswith(GZIP_SUFFIX) and plain.exists():
            continue  # the uncompressed copy beside it wins
        if path.resolve() not in seen:
            seen.add(path.resolve())
            yield path


def order_runs(paths: Sequence[Path]) -> tuple[list[Run], list[RunReport]]:
    """Identify runs from their metadata alone and put them in the order they happened.

    Args:
        paths: run_results files.

    Returns:
        The runs, oldest first, and a report for each file that could not be read.
    """
    runs: list[Run] = []
    bad: list[RunReport] = []
    for path in paths:
        try:
            read = read_run_header(path)
        except ArtifactError as exc:
            bad.append(RunReport(path, RunOutcome.SKIPPED, message=exc.problem))
            continue
        metadata = read.header.metadata
        started: int | None = metadata.invocation_started_at
        if started is None:
            started = metadata.generated_at - round((read.header.elapsed_time or 0.0) * 1e9)
        runs.append(Run(path, started, metadata.invocation_id, read.identity))
    runs.sort(key=lambda run: (run.started_at, str(run.run_results)))
    return runs, bad


def backfill(
    targets: Sequence[Path],
    roots: Sequence[Path],
    options: BackfillOptions,
    on_run: Callable[[RunReport], None] | None = None,
    on_start: Callable[[int], None] | None = None,
    *,
    stop: StopRequest | None = None,
) -> BackfillReport:
    """Replay every run found, oldest first, each as its own trace.

    Args:
        targets: Target directories given one by one.
        roots: Directories searched recursively (``--recursive``).
        options: What to send where, the ledger and --force.
        on_run: Called with each run's report as soon as it is known (progress, output).
        on_start: Called once with the number of runs found, before the first is reported.
        stop: Set by a signal: the run being sent is stopped and its unsent spans saved like a
            failed run's (it stays out of the ledger), later runs are not attempted, and the
            report's exit code is 128 + the signal's number.

    Returns:
        Every run's outcome.

    Raises:
        ConfigError: If the ledger or the OTLP settings cannot be used, or --output or --spill
            names one of the runs' artifacts (before anything is written or sent).
    """
    report = BackfillReport()
    options = honour_exporter(options)

    def note(run_report: RunReport) -> None:
        report.runs.append(run_report)
        if on_run is not None:
            on_run(run_report)

    runs, unreadable = order_runs(list(find_runs(targets, roots)))
    for output in (options.replay.output, options.replay.spill):
        refuse_inputs(
            output, _artifacts([run.run_results for run in runs] + [r.run_results for r in unreadable])
        )
    if on_start is not None:
        on_start(len(runs) + len(unreadable))
    for bad in unreadable:
        note(bad)
    ledger = Ledger(options.ledger) if options.ledger is not None and _sends(options) else None
    try:
        pending = []
        for run in runs:
            if (
                ledger is not None
                and not options.force
                and ledger.delivered(run.identity, run.invocation_id, run.run_results)
            ):
                note(RunReport(run.run_results, RunOutcome.ALREADY_DELIVERED))
            else:
                pending.append(run)
        if not _replay_all(pending, options, ledger, note, stop) and stop is not None and stop.is_set():
            report.stopped_by = stop
    finally:
        if ledger is not None:
            ledger.close()
    return report


def _artifacts(run_results: Iterable[Path]) -> Iterator[Path]:
    """Every file a backfill may read: each run_results file and the manifests beside it."""
    for path in run_results:
        yield path
        yield path.with_name(MANIFEST_FILENAME)
        yield path.with_name(MANIFEST_FILENAME + GZIP_SUFFIX)


def honour_exporter(options: BackfillOptions) -> BackfillOptions:
    """The options as OTEL_SDK_DISABLED and OTEL_TRACES_EXPORTER leave them (see ``Exporter``).

    ``none``: every run is planned and listed, nothing is sent (a dry run, said once on stderr);
    ``console``: every run is written as OTLP/JSON to standard output (as ``--output -``).
    """
    export = options.replay.export
    if export is None or export.exporter is Exporter.OTLP:
        return options
    if export.exporter is Exporter.NONE:
        logger.warning("not sent: the exporter is off (OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none)")
        return replace(options, replay=replace(options.replay, export=None, dry_run=True))
    return replace(options, replay=replace(options.replay, export=None, output=STDOUT))


def _sends(options: BackfillOptions) -> bool:
    return options.replay.output is None and not options.replay.dry_run


def _replay_all(
    runs: Sequence[Run],
    options: BackfillOptions,
    ledger: Ledger | None,
    note: Callable[[RunReport], None],
    stop: StopRequest | None = None,
) -> bool:
    """Replay the runs in order; False when the backfill ended early (collector refusing, or stopped)."""
    sends = _sends(options)  # else the plan is written as OTLP/JSON: no requests to encode
    config = options.replay.export or (resolve_export_config() if sends else None)
    run_options = replace(options.replay, manifest=None, plan=replace(options.replay.plan, upstream=None))
    output = options.replay.output
    with ExitStack() as stack:
        # the trace file is opened once for every run: a FIFO's reader sees one stream, a regular
        # file is replaced whole when the backfill ends, a device or a symlink's target is written into
        sink = (
            stack.enter_context(open_trace(output))
            if output is not None and not options.replay.dry_run
            else None
        )
        # one connection for every run; a reader thread to read the next run while one is sent
        transport = stack.enter_context(closing(open_transport(config))) if config and sends else None
        # each run read ahead is encoded in the encoding its transport sends
        encoding = transport.encoding if transport is not None else None

        def read(run: Run) -> Future[Prepared]:
            # a daemon thread: a run read ahead never holds up the exit of a stopped backfill
            return in_background(
                _prepare, run.run_results, run_options, encoding, name="dbt-otel-replay-read"
            )

        upcoming: Future[Prepared] | None = read(runs[0]) if runs else None
        for index, run in enumerate(runs):
            assert upcoming is not None
            if stop is not None and stop.is_set():
                _not_attempted(runs[index:], f"stopped by {stop.name}", note)
                return False
            current = upcoming
            # read and encode the next run while this one is being sent
            upcoming = read(runs[index + 1]) if index + 1 < len(runs) else None
            try:
                prepared = current.result()
            except ArtifactError as exc:
                # the line already names run_results.json: name the file only when it is the manifest
                problem = exc.problem if exc.path == run.run_results else str(exc)
                note(RunReport(run.run_results, RunOutcome.SKIPPED, message=problem))
                continue
            base = RunReport(
                run.run_results,
                RunOutcome.PLANNED,
                trace_id=prepared.plan.trace_id,
                span_id=prepared.plan.invocation.span_id,
                command=prepared.plan.invocation.name,
                nodes=len(prepared.plan.nodes),
                spans=prepared.span_count,
                message="; ".join(prepared.warnings),
            )
            if options.replay.dry_run:
                note(base)
            elif output is not None:
                assert sink is not None
                _write(prepared, run_options.resource, output, sink)
                note(replace(base, outcome=RunOutcome.WRITTEN))
            else:
                assert config is not None and transport is not None
                if ledger is not None:
                    claim = ledger.claim(run.identity, force=options.force)
                    if claim is not Claim.CLAIMED:
                        outcome = (
                            RunOutcome.ALREADY_DELIVERED
                            if claim is Claim.DELIVERED
                            else RunOutcome.CLAIMED_ELSEWHERE
                        )
                        note(replace(base, outcome=outcome, spans=0))
                        continue
                try:
                    delivery = deliver(prepared.requests, config, transport=transport, stop=stop)
                except BaseException:
                    if ledger is not None:
                        ledger.release(run.identity)
                    raise
                if ledger is not None:
                    if delivery.complete:  # recorded, and the claim ended, in one transaction
                        ledger.record(
                            run.identity,
                            run.invocation_id,
                            prepared.plan.trace_id,
                            run.run_results,
                            delivery.accepted,
                            delivery.endpoint,
                        )
                    else:  # for the next backfill to send
                        ledger.release(run.identity)
                if delivery.complete:
                    note(replace(base, outcome=RunOutcome.DELIVERED))
                    continue
                if delivery.stopped and stop is not None:
                    reason = stop.stopped_after(delivery.accepted, delivery.total)
                    outcome, why_not = RunOutcome.STOPPED, f"stopped by {stop.name}"
                else:
                    reason, outcome, why_not = None, RunOutcome.FAILED, "the collector stopped accepting"
                unsent = spillable(prepared.plan, run_options.resource, delivery.unsent)
                message = _spill(delivery, options, reason, unsent)
                note(replace(base, outcome=outcome, spans=delivery.accepted, message=message))
                _not_attempted(runs[index + 1 :], why_not, note)
                return False
    return True


def _prepare(run_results: Path, options: ReplayOptions, encoding: Encoding | None) -> Prepared:
    return prepare(run_results, options, encoding=encoding)


def _not_attempted(runs: Sequence[Run], why: str, note: Callable[[RunReport], None]) -> None:
    for later in runs:
        note(RunReport(later.run_results, RunOutcome.NOT_ATTEMPTED, message=why))


def _write(prepared: Prepared, resource: Mapping[str, AttributeValue], output: Path, sink: TextIO) -> None:
    try:
        sink.writelines(iter_otlp_json_lines(prepared.plan, resource))
        sink.flush()  # each run as soon as it is written, for a reader of stdout or a FIFO
    except OSError as exc:
        raise ExportError(f"{output}: cannot write the trace: {exc.strerror or exc}") from None


def _spill(
    delivery: Delivery, options: BackfillOptions, reason: str | None, unsent: Sequence[EncodedRequest]
) -> str:
    if options.replay.spill is not None:
        return save_unsent(delivery, options.replay.spill, reason, unsent)
    reason = reason or (delivery.problems[0] if delivery.problems else "not accepted")
    return f"{reason}; not in the ledger, so the next backfill sends this run again"
