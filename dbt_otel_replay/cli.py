"""The ``dbt-otel-replay`` command: options in, one library call, output out.

Results go to stdout (the --dry-run tree, ``--output -``, ``--traceparent-to -``);
the summary, warnings and errors go to stderr, each error as one line. Exit
codes: 0 delivered, 1 bad input, 2 usage, 3 export failed.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
from dataclasses import replace
from pathlib import Path
from typing import NoReturn

import click

from . import __version__
from ._files import write_text_atomically
from .analysis import analyse
from .backfill import BackfillOptions, RunReport, backfill
from .errors import EXIT_OK, ExportError, ReplayError
from .export.config import Protocol, parse_header, resolve_export_config
from .export.file import STDOUT
from .plan import DEFAULT_SQL_MAX_CHARS, Nesting, PlanOptions, TraceContext
from .progress import Progress
from .propagation import context_from_environment, parse_traceparent, read_carrier
from .replay import ReplayOptions, ReplayResult, ResendResult, replay, resource_attributes
from .replay import resend as resend_spill
from .report import render_html
from .summary import (
    Outcome,
    backfill_summary,
    render_backfill_totals,
    render_run_line,
    render_summary,
    render_tree,
    summary_document,
)
from .waterfall import render_waterfall

PROG = "dbt-otel-replay"
WATERFALL_WIDTH = 120
"""The waterfall's width when stdout is not a terminal."""
_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.command(
    context_settings=_CONTEXT, epilog="Exit codes: 0 delivered, 1 bad input, 2 usage, 3 export failed."
)
@click.argument("targets", metavar="[TARGET_DIR]...", type=click.Path(path_type=Path), nargs=-1)
@click.option(
    "--manifest",
    type=click.Path(path_type=Path, dir_okay=False),
    help="manifest.json to use instead of TARGET_DIR/manifest.json.",
)
@click.option(
    "--endpoint",
    metavar="URL",
    help="OTLP endpoint. [env: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_EXPORTER_OTLP_ENDPOINT; "
    "default: http://localhost:4318 for HTTP, http://localhost:4317 for gRPC]",
)
@click.option(
    "--protocol",
    type=click.Choice([p.value for p in Protocol]),
    help="OTLP transport. [env: OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, OTEL_EXPORTER_OTLP_PROTOCOL; "
    "default: http/protobuf]",
)
@click.option(
    "--header",
    "headers",
    multiple=True,
    metavar="KEY=VALUE",
    help="Extra OTLP header, e.g. an API key; repeatable. [env: OTEL_EXPORTER_OTLP_HEADERS]",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Deadline per export request, retries included. "
    "[env: OTEL_EXPORTER_OTLP_TIMEOUT in ms; default: 10]",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False, allow_dash=True),
    help="Write the trace as OTLP/JSON lines to this file ('-' for stdout) instead of sending it.",
)
@click.option("--dry-run", is_flag=True, help="Print the span tree to stdout; send and write nothing.")
@click.option(
    "--service-name", metavar="NAME", help="Resource service.name. [env: OTEL_SERVICE_NAME; default: dbt]"
)
@click.option(
    "--traceparent",
    metavar="VALUE",
    help="Join this upstream W3C trace context. [env: TRACEPARENT, TRACESTATE]",
)
@click.option(
    "--traceparent-from",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    metavar="FILE",
    help="Join the upstream context in this carrier file (TRACEPARENT=... lines).",
)
@click.option(
    "--traceparent-to",
    type=click.Path(path_type=Path, dir_okay=False, allow_dash=True),
    metavar="PATH",
    help="Write the run's context here for the next stage ('-' for stdout). "
    "[default: TARGET_DIR/traceparent]",
)
@click.option(
    "--include-sql",
    is_flag=True,
    help="Also export compiled SQL (db.query.text) and args.vars; off because they can hold secrets.",
)
@click.option(
    "--sql-max-chars",
    type=click.IntRange(min=1),
    default=DEFAULT_SQL_MAX_CHARS,
    show_default=True,
    help="With --include-sql, cut each node's SQL after this many characters.",
)
@click.option(
    "--spill",
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="FILE",
    help="Where to append spans the collector did not accept, as OTLP/JSON. "
    "[default: TARGET_DIR/otel-replay-unsent.json]",
)
@click.option(
    "--resend",
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="FILE",
    help="Instead of replaying TARGET_DIR, re-send a spill file; what is accepted is removed from it.",
)
@click.option(
    "--recursive",
    "roots",
    multiple=True,
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    metavar="ROOT",
    help="Backfill every run_results.json(.gz) below ROOT (with its manifest beside it); repeatable.",
)
@click.option(
    "--ledger",
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="FILE",
    help="Backfill: a SQLite file of the runs a collector accepted; those are not sent again.",
)
@click.option("--force", is_flag=True, help="Backfill: send runs the ledger lists as delivered again.")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="The summary as text on stderr, or as one versioned JSON document on stdout "
    "(a backfill: one line per run, or one JSON summary, on stdout).",
)
@click.option(
    "--html",
    "html_path",
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="FILE",
    help="Also write a self-contained HTML report: Gantt by thread, critical path, slowest nodes, failures.",
)
@click.option(
    "--waterfall",
    is_flag=True,
    help="Also draw the run on stdout as lanes per thread (always with --dry-run); coloured on a terminal.",
)
@click.option(
    "--nesting",
    type=click.Choice(["first-parent", "critical"]),
    default="first-parent",
    show_default=True,
    help="Nest each node under its first executed parent, or under the parent that finished last "
    "before it started (the one that held it back). The other parents are span links either way.",
)
@click.option("-q", "--quiet", is_flag=True, help="No summary; only warnings and errors on stderr.")
@click.version_option(__version__, "--version", prog_name=PROG)
@click.pass_context
def main(
    ctx: click.Context,
    targets: tuple[Path, ...],
    manifest: Path | None,
    endpoint: str | None,
    protocol: str | None,
    headers: tuple[str, ...],
    timeout: float | None,
    output: Path | None,
    dry_run: bool,
    service_name: str | None,
    traceparent: str | None,
    traceparent_from: Path | None,
    traceparent_to: Path | None,
    include_sql: bool,
    sql_max_chars: int,
    spill: Path | None,
    resend: Path | None,
    roots: tuple[Path, ...],
    ledger: Path | None,
    force: bool,
    output_format: str,
    html_path: Path | None,
    waterfall: bool,
    nesting: str,
    quiet: bool,
) -> None:
    """Replay the dbt run in TARGET_DIR (run_results.json + manifest.json) as one OpenTelemetry trace.

    One span per executed node, with the exact times dbt recorded, nested under its
    first parent (other parents become links), compile and execute as child spans;
    exported over OTLP, then the run's context is written for the next pipeline stage.

    With several TARGET_DIRs or --recursive, backfill: every run, oldest first, each as
    its own trace.
    """
    _configure_logging()
    sending = {"--endpoint": endpoint, "--protocol": protocol, "--header": headers, "--timeout": timeout}
    _check_exclusive(dry_run, output, traceparent, traceparent_from, [k for k, v in sending.items() if v])
    if bool(targets or roots) == (resend is not None):
        raise click.UsageError("give a TARGET_DIR to replay, or --resend FILE (not both)")
    backfilling = len(targets) > 1 or bool(roots)
    _check_backfill_flags(
        backfilling,
        {
            "--traceparent": traceparent,
            "--traceparent-from": traceparent_from,
            "--traceparent-to": traceparent_to,
            "--manifest": manifest,
        },
        {"--ledger": ledger, "--force": force},
    )
    _check_backfill_flags(backfilling, {"--html": html_path, "--waterfall": waterfall}, {})
    if resend is not None and (output or dry_run):
        raise click.UsageError("--resend sends; it cannot be combined with --output or --dry-run")
    try:
        export = None
        if not (output or dry_run):
            export = resolve_export_config(
                endpoint=endpoint,
                protocol=protocol,
                headers=[parse_header(h) for h in headers],
                timeout=timeout,
            )
        if resend is not None:
            resent = resend_spill(resend, export)
            _report_resend(resent, quiet=quiet)
            failure = resent.failure
        else:
            common = ReplayOptions(
                export=export,
                plan=PlanOptions(
                    include_sql=include_sql, sql_max_chars=sql_max_chars, nesting=_nesting(nesting)
                ),
                output=output,
                dry_run=dry_run,
                resource=resource_attributes(service_name),
                spill=spill,
            )
            if backfilling:
                code = _run_backfill(
                    targets,
                    roots,
                    BackfillOptions(replay=common, ledger=ledger, force=force),
                    json_format=output_format == "json",
                    quiet=quiet,
                )
                ctx.exit(code)
            options = replace(
                common,
                plan=replace(common.plan, upstream=_upstream(traceparent, traceparent_from)),
                manifest=manifest,
                traceparent_to=traceparent_to,
            )
            result = replay(targets[0], options)
            json_format = output_format == "json"
            _report(result, dry_run=dry_run, quiet=quiet, json_format=json_format)
            _views(result, html_path, waterfall=waterfall or (dry_run and not json_format))
            failure = result.failure
    except ReplayError as exc:
        _fail(ctx, exc)
    if failure is not None:
        _fail(ctx, failure)
    ctx.exit(EXIT_OK)


def _check_exclusive(
    dry_run: bool,
    output: Path | None,
    traceparent: str | None,
    traceparent_from: Path | None,
    sending_flags: list[str],
) -> None:
    if traceparent and traceparent_from:
        raise click.UsageError("--traceparent and --traceparent-from cannot be combined")
    if dry_run and output:
        raise click.UsageError("--dry-run and --output cannot be combined")
    if (output or dry_run) and sending_flags:
        raise click.UsageError(
            f"{', '.join(sending_flags)}: only for sending; --output and --dry-run send nothing"
        )


def _check_backfill_flags(
    backfilling: bool, single_run_only: dict[str, object], backfill_only: dict[str, object]
) -> None:
    if backfilling:
        given = [name for name, value in single_run_only.items() if value]
        if given:
            raise click.UsageError(
                f"{', '.join(given)}: for one run; in a backfill each run is its own trace"
            )
    else:
        given = [name for name, value in backfill_only.items() if value]
        if given:
            raise click.UsageError(
                f"{', '.join(given)}: only for a backfill (several TARGET_DIRs or --recursive)"
            )


def _run_backfill(
    targets: tuple[Path, ...],
    roots: tuple[Path, ...],
    options: BackfillOptions,
    *,
    json_format: bool,
    quiet: bool,
) -> int:
    lines_to = sys.stderr if options.replay.output == STDOUT else sys.stdout
    bars: list[Progress] = []  # drawn only on a terminal, once the number of runs is known

    def on_start(total: int) -> None:
        if sys.stderr.isatty() and not quiet:
            bars.append(Progress(total, sys.stderr))

    def on_run(run: RunReport) -> None:
        if not json_format:
            for bar in bars:
                bar.clear()
            click.echo(render_run_line(run), file=lines_to)
        for bar in bars:
            bar.advance(run.spans)

    report = backfill(targets, roots, options, on_run, on_start)
    for bar in bars:
        bar.close()
    if json_format:
        click.echo(json.dumps(backfill_summary(report), indent=2))
    elif not quiet:
        click.echo(render_backfill_totals(report), nl=False, err=True)
    return report.exit_code


def _upstream(traceparent: str | None, traceparent_from: Path | None) -> TraceContext | None:
    if traceparent:
        return parse_traceparent(traceparent, source="--traceparent")
    if traceparent_from:
        return read_carrier(traceparent_from)
    return context_from_environment(os.environ)


def _views(result: ReplayResult, html_path: Path | None, *, waterfall: bool) -> None:
    """Write the HTML report and draw the waterfall, when asked for."""
    if html_path is None and not waterfall:
        return
    analysis = analyse(result.plan)
    if html_path is not None:
        try:
            write_text_atomically(html_path, render_html(result.plan, analysis))
        except OSError as exc:
            raise ExportError(f"{html_path}: cannot write the report: {exc.strerror or exc}") from None
    if waterfall:
        terminal = sys.stdout.isatty()
        width = shutil.get_terminal_size().columns if terminal else WATERFALL_WIDTH
        color = terminal and not os.environ.get("NO_COLOR")
        click.echo(render_waterfall(result.plan, analysis, width=max(width, 60), color=color), nl=False)


def _nesting(value: str) -> Nesting:
    return "critical" if value == "critical" else "first-parent"


def _report(result: ReplayResult, *, dry_run: bool, quiet: bool, json_format: bool) -> None:
    for warning in result.warnings:
        click.echo(f"{PROG}: warning: {warning}", err=True)
    if json_format:
        document = summary_document(result.plan, result.destination, result.warnings)
        click.echo(json.dumps(document, indent=2))
        return
    if dry_run:
        click.echo(render_tree(result.plan), nl=False)
    if quiet:
        return
    where = result.traceparent_path
    outcome = Outcome(
        result.destination, None if where is None else ("stdout" if where == STDOUT else str(where))
    )
    click.echo(render_summary(result.plan, outcome), nl=False, err=True)


def _report_resend(resent: ResendResult, *, quiet: bool) -> None:
    if quiet:
        return
    delivery = resent.delivery
    line = f"resent {delivery.accepted} of {delivery.total} spans from {resent.path} to {delivery.endpoint}"
    click.echo(line + ("; file removed" if delivery.complete else ""), err=True)


def _fail(ctx: click.Context, error: ReplayError) -> NoReturn:
    one_line = str(error).replace("\r", "\\r").replace("\n", "\\n")
    click.echo(f"{PROG}: error: {one_line}", err=True)
    ctx.exit(error.exit_code)


def _configure_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LowercaseLevelFormatter(f"{PROG}: %(levelname)s: %(message)s"))
    package_logger = logging.getLogger("dbt_otel_replay")
    package_logger.handlers[:] = [handler]
    package_logger.setLevel(logging.WARNING)
    package_logger.propagate = False


class _LowercaseLevelFormatter(logging.Formatter):
    """Formats ``warning:`` like the CLI's own messages rather than ``WARNING:``."""

    def format(self, record: logging.LogRecord) -> str:
        record.levelname = record.levelname.lower()
        return super().format(record)
