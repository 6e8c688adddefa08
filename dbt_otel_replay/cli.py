"""The ``dbt-otel-replay`` command: options in, one library call, output out.

Three commands, each taking only its own options (shared groups are defined once):
``replay TARGET_DIR`` (the default: ``dbt-otel-replay TARGET_DIR`` runs it),
``backfill DIR…`` and ``resend FILE``. Results go to stdout (the --dry-run tree,
``--output -``, ``--traceparent-to -``, ``--format json``, a backfill's run lines); the
summary, progress, warnings and errors go to stderr, each error as one line
``dbt-otel-replay: error: ...``. Exit codes: 0 delivered, 1 bad input, 2 usage, 3 export
failed, 128 + N stopped by signal N while sending. docs/cli.md is generated from the help
texts below (scripts/gen_cli_docs.py).

Text from artifacts and collectors reaches a person's terminal only through
:func:`~.terminal.escape` (in the views, and here for warnings, errors and log
lines); JSON documents are written with ``ensure_ascii=True``, so they stay exact
and still carry no raw control or bidi character.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

import click

from . import __version__
from .backfill import BackfillOptions, RunReport, backfill, honour_exporter
from .errors import EXIT_INTERNAL_ERROR, EXIT_OK, ExportError, ReplayError
from .export.config import ExportConfig, Exporter, Protocol, parse_header, resolve_export_config
from .export.file import STDOUT
from .plan import DEFAULT_SQL_MAX_CHARS, Nesting, Plan, PlanOptions, TraceContext
from .progress import Progress
from .propagation import context_from_environment, parse_traceparent, read_carrier
from .replay import ReplayOptions, ReplayResult, replay, resend, resource_attributes
from .shape import Selector, SelectorError
from .stopping import StopRequest, stop_on_signals
from .terminal import escape
from .views import (
    Outcome,
    backfill_summary,
    check_trace_url,
    render_backfill_totals,
    render_resend_line,
    render_run_line,
    render_summary,
    render_tree,
    render_waterfall,
    summary_document,
    trace_url,
    write_html,
    write_markdown,
)

PROG = "dbt-otel-replay"
DEFAULT_COMMAND = "replay"
WATERFALL_WIDTH = 120
DEBUG_VARIABLE = "DBT_OTEL_REPLAY_DEBUG"
"""Set (to anything) to see an internal error's Python traceback instead of its one line."""
"""The waterfall's width when stdout is not a terminal."""
CONTEXT_SETTINGS: dict[str, Any] = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
EXIT_CODES = (
    "Exit codes: 0 delivered, 1 bad input, 2 usage, 3 export failed, "
    "130/143 stopped by SIGINT/SIGTERM (what was unsent is saved)."
)
GROUP_HELP = """Replay finished dbt runs (run_results.json + manifest.json) as OpenTelemetry traces.

\b
  dbt-otel-replay TARGET_DIR [OPTIONS]         one run (the default command, `replay`)
  dbt-otel-replay backfill [DIR]... [--recursive ROOT] [OPTIONS]
  dbt-otel-replay resend FILE [OPTIONS]

A TARGET_DIR named like a command needs the command's name or a path:

\b
  dbt-otel-replay replay backfill              replays the directory ./backfill
  dbt-otel-replay ./backfill                   the same

Run `COMMAND --help` for a command's options.
"""
REPLAY_HELP = """Replay the dbt run in TARGET_DIR as one OpenTelemetry trace.

TARGET_DIR is the directory dbt wrote its artifacts to (target/), or a run_results.json path;
they may be gzip-compressed (run_results.json.gz, manifest.json.gz).

One span per executed node, with the exact times dbt recorded, nested under its first parent
(other parents become links), compile and execute as child spans; exported over OTLP, then the
run's context is written for the next pipeline stage.

This is the default command: the command name may be left out, unless TARGET_DIR is named like
a command.

\b
  dbt-otel-replay target/                      the same as `replay target/`
  dbt-otel-replay replay backfill              replays the directory ./backfill
"""
BACKFILL_HELP = """Replay many archived dbt runs, oldest first, each as its own trace.

Finds the run in each DIR (a target directory or a run_results.json) and every run below each
--recursive ROOT, orders them by when they started, and replays one at a time while the next
is read, so memory stays bounded by the largest run. A run that cannot be read is reported and
skipped; a collector that stops accepting ends the backfill, to be resumed later (with --ledger,
from where it stopped). Each run is its own trace: no upstream context is joined and no
traceparent file is written into the archive.
"""
RESEND_HELP = """Re-send FILE, a spill file: the spans a collector did not accept, as OTLP/JSON lines.

What is accepted is removed from FILE, which is deleted once empty. Span ids are deterministic,
so spans a collector already has add no duplicates in content.
"""

_Callback = Callable[..., Any]
_Decorator = Callable[[_Callback], _Callback]


# --------------------------------------------------------------------------- #
# Errors, conflicts and the default command: expressed once for every command
# --------------------------------------------------------------------------- #


class OneLineUsageError(click.UsageError):
    """A usage error printed like every other error: one line, ``dbt-otel-replay: error: ...``."""

    def show(self, file: IO[Any] | None = None) -> None:
        """Print the one line on stderr (never click's usage block)."""
        _error_line(self.format_message())


_SENDING_OPTIONS = ("endpoint", "traces_endpoint", "protocol", "headers", "timeout")
_CONFLICTS: tuple[tuple[tuple[str, ...], tuple[str, ...], str], ...] = (
    (("traceparent",), ("traceparent_from",), "join one upstream context"),
    (("dry_run",), ("output",), "a dry run writes nothing"),
    (("dbt_log",), ("no_dbt_log",), "read dbt's log from one place, or not at all"),
    (_SENDING_OPTIONS, ("output", "dry_run"), "only for sending; --output and --dry-run send nothing"),
)
"""Options that contradict each other, with why; checked among the options a command has."""


class _Command(click.Command):
    """A subcommand: refuses conflicting options, reports library errors in one line, exits with its code."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Parse, then refuse the combinations in ``_CONFLICTS``."""
        rest = super().parse_args(ctx, args)
        if not ctx.resilient_parsing:
            flags = {p.name: max(p.opts, key=len) for p in self.params if p.name and p.expose_value}
            for left, right, reason in _CONFLICTS:
                given = [
                    [flags[n] for n in names if n in flags and _given(ctx.params[n])]
                    for names in (left, right)
                ]
                if given[0] and given[1]:
                    raise OneLineUsageError(
                        f"{', '.join(given[0])} cannot be combined with {', '.join(given[1])}: {reason}", ctx
                    )
        return rest

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; its return value is the exit code, a library error is one line and its code."""
        try:
            code = super().invoke(ctx)
        except ReplayError as exc:
            _error_line(str(exc))
            code = exc.exit_code
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as exc:  # a bug: still one line, unless asked for the traceback
            if os.environ.get(DEBUG_VARIABLE):
                raise
            _error_line(
                f"internal error: {type(exc).__name__}: {exc} (a bug in {PROG} {__version__}: please "
                f"report it with the command you ran; {DEBUG_VARIABLE}=1 shows the traceback)"
            )
            code = EXIT_INTERNAL_ERROR
        ctx.exit(code)


def _given(value: object) -> bool:
    """Whether an option was used: flags and multiple options have falsy values when not."""
    return value is not None and value is not False and value != ()


class DefaultGroup(click.Group):
    """A group that runs its default command when the first argument names no command.

    ``dbt-otel-replay TARGET_DIR`` replayed before there were subcommands, and still does.
    """

    def __init__(self, *args: Any, default_command: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.default_command = default_command

    def list_commands(self, ctx: click.Context) -> list[str]:
        """The commands in the order they were defined: the default first."""
        return list(self.commands)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Put the default command in front unless the first argument is a command or --help/--version."""
        if not args and not ctx.resilient_parsing:
            raise OneLineUsageError(f"give a TARGET_DIR, or a command: see '{ctx.command_path} --help'", ctx)
        own = {opt for param in self.get_params(ctx) for opt in (*param.opts, *param.secondary_opts)}
        if args and args[0] not in self.commands and args[0] not in own:
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; click's own usage errors become one line too, naming the help to read."""
        try:
            return super().invoke(ctx)
        except OneLineUsageError:
            raise
        except click.UsageError as exc:
            where = exc.ctx or ctx
            message = exc.format_message().rstrip(".")
            raise OneLineUsageError(f"{message} (see '{where.command_path} --help')", where) from None


def _error_line(message: str) -> None:
    """One line whatever the message holds (a log line is one error), and nothing that drives the terminal."""
    click.echo(f"{PROG}: error: {escape(message)}", err=True)


# --------------------------------------------------------------------------- #
# Options: each defined once, shared by the commands that take it
# --------------------------------------------------------------------------- #


def _grouped(name: str, build: Callable[..., object], *options: _Decorator) -> _Decorator:
    """Options that reach the command as one argument, ``name = build(**their values)``.

    Keeps each command's signature to what it is about rather than one parameter per flag.
    """
    fields = list(inspect.signature(build).parameters)

    def decorate(command: _Callback) -> _Callback:
        @functools.wraps(command)
        def collect(**values: Any) -> Any:
            values[name] = build(**{field: values.pop(field) for field in fields})
            return command(**values)

        decorated: _Callback = collect
        for option in reversed(options):
            decorated = option(decorated)
        return decorated

    return decorate


@dataclass(frozen=True)
class Sending:
    """--endpoint, --traces-endpoint, --protocol, --header and --timeout: where and how spans are sent."""

    endpoint: str | None
    traces_endpoint: str | None
    protocol: str | None
    headers: tuple[str, ...]
    timeout: float | None

    def config(self) -> ExportConfig:
        """These options, else the OTEL_* variables, else the defaults.

        Raises:
            ConfigError: If a value cannot be used.
        """
        return resolve_export_config(
            endpoint=self.endpoint,
            traces_endpoint=self.traces_endpoint,
            protocol=self.protocol,
            headers=[parse_header(h) for h in self.headers],
            timeout=self.timeout,
        )


@dataclass(frozen=True)
class Content:
    """--service-name, --include-sql, --nesting, --phases, --select, --dbt-log, ...: what a trace holds."""

    service_name: str | None
    include_sql: bool
    sql_max_chars: int
    nesting: str
    phases: str
    select: Selector | None
    min_duration: float | None
    dbt_log: Path | None
    no_dbt_log: bool
    no_dbt_env: bool

    def options(
        self, sending: Sending, *, output: Path | None, dry_run: bool, spill: Path | None
    ) -> ReplayOptions:
        """The replay options common to one run and a backfill (which only sends when not writing).

        Raises:
            ConfigError: If an export setting or OTEL_RESOURCE_ATTRIBUTES cannot be used.
        """
        nesting: Nesting = "critical" if self.nesting == "critical" else "first-parent"
        if self.nesting == "flat":
            nesting = "flat"
        plan = PlanOptions(
            include_sql=self.include_sql,
            sql_max_chars=self.sql_max_chars,
            nesting=nesting,
            phases="none" if self.phases == "none" else "all",
            select=self.select,
            min_duration=self.min_duration,
            dbt_env=not self.no_dbt_env,
        )
        return ReplayOptions(
            export=None if output or dry_run else sending.config(),
            plan=plan,
            output=output,
            dry_run=dry_run,
            resource=resource_attributes(self.service_name),
            spill=spill,
            dbt_log=self.dbt_log,
            read_dbt_log=not self.no_dbt_log,
        )


@dataclass(frozen=True)
class Propagation:
    """--traceparent, --traceparent-from and --traceparent-to: the trace context in and out."""

    traceparent: str | None
    traceparent_from: Path | None
    traceparent_to: Path | None

    def upstream(self) -> TraceContext | None:
        """The context to join: the flag, else the carrier file, else TRACEPARENT/TRACESTATE.

        Raises:
            ContextError: If it is malformed.
        """
        if self.traceparent:
            return parse_traceparent(self.traceparent, source="--traceparent")
        if self.traceparent_from:
            return read_carrier(self.traceparent_from)
        return context_from_environment(os.environ)


_sending = _grouped(
    "sending",
    Sending,
    click.option(
        "--endpoint",
        metavar="URL",
        help="The collector's base URL, exactly as OTEL_EXPORTER_OTLP_ENDPOINT: for HTTP, /v1/traces "
        "is appended to its path (https://host/otlp sends to https://host/otlp/v1/traces). "
        "[env: OTEL_EXPORTER_OTLP_ENDPOINT; default: http://localhost:4318 for HTTP, "
        "http://localhost:4317 for gRPC]",
    ),
    click.option(
        "--traces-endpoint",
        metavar="URL",
        help="The full traces URL, used as is, exactly as OTEL_EXPORTER_OTLP_TRACES_ENDPOINT; wins "
        "over --endpoint. [env: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT]",
    ),
    click.option(
        "--protocol",
        type=click.Choice([p.value for p in Protocol]),
        help="OTLP transport. [env: OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, OTEL_EXPORTER_OTLP_PROTOCOL; "
        "default: http/protobuf]",
    ),
    click.option(
        "--header",
        "headers",
        multiple=True,
        metavar="KEY=VALUE",
        help="Extra OTLP header (gRPC metadata), e.g. an API key; repeatable; never logged. "
        "[env: OTEL_EXPORTER_OTLP_TRACES_HEADERS, OTEL_EXPORTER_OTLP_HEADERS]",
    ),
    click.option(
        "--timeout",
        type=click.FloatRange(min=0, min_open=True),
        metavar="SECONDS",
        help="Deadline per export request, retries included. "
        "[env: OTEL_EXPORTER_OTLP_TRACES_TIMEOUT, OTEL_EXPORTER_OTLP_TIMEOUT in ms; default: 10]",
    ),
)


def _selector(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> Selector | None:
    """--select's terms as one :class:`~.shape.Selector`; bad syntax is a one-line usage error."""
    try:
        return Selector.parse(value)
    except SelectorError as exc:
        raise OneLineUsageError(f"--select: {exc}", ctx) from None


_content = _grouped(
    "content",
    Content,
    click.option(
        "--service-name",
        metavar="NAME",
        help="Resource service.name. [env: OTEL_SERVICE_NAME, service.name in OTEL_RESOURCE_ATTRIBUTES; "
        "default: dbt]",
    ),
    click.option(
        "--include-sql",
        is_flag=True,
        help="Also export compiled SQL (db.query.text) and args.vars; off because they can hold secrets.",
    ),
    click.option(
        "--sql-max-chars",
        type=click.IntRange(min=1),
        metavar="N",
        default=DEFAULT_SQL_MAX_CHARS,
        show_default=True,
        help="With --include-sql, cut each node's and each statement's SQL after this many characters.",
    ),
    click.option(
        "--nesting",
        type=click.Choice(["first-parent", "critical", "flat"]),
        default="first-parent",
        show_default=True,
        help="Nest each node under its first executed parent, or under the parent that finished last "
        "before it started (the one that held it back); the other parents are span links. Or flat: every "
        "node under the invocation span, all of its parents as links.",
    ),
    click.option(
        "--phases",
        type=click.Choice(["all", "none"]),
        default="all",
        show_default=True,
        help="none: leave out each node's compile and execute spans (what ran in them moves to the node).",
    ),
    click.option(
        "--select",
        metavar="METHOD:VALUE[,VALUE...]",
        multiple=True,
        callback=_selector,
        help="Keep only the nodes matching any --select: resource_type:model,seed,... or "
        "status:error,fail,...; repeatable. The rest of the tree re-attaches to the nearest kept node.",
    ),
    click.option(
        "--min-duration",
        type=click.FloatRange(min=0),
        metavar="SECONDS",
        help="Keep only the nodes that took at least this long.",
    ),
    click.option(
        "--dbt-log",
        type=click.Path(path_type=Path),
        metavar="PATH",
        help="dbt's log file, or a logs directory, to read each statement, microbatch batch and "
        "connection from. [default: logs/dbt.log beside the target directory, when there is one]",
    ),
    click.option(
        "--no-dbt-log",
        is_flag=True,
        help="Do not read dbt's log: node and phase spans only.",
    ),
    click.option(
        "--no-dbt-env",
        is_flag=True,
        help="Leave out dbt.env.<name>: the DBT_ENV_CUSTOM_ENV_* variables dbt recorded in metadata.env "
        "(exported by default; they are meant to be shared, but are no place for secrets).",
    ),
)

_propagation = _grouped(
    "propagation",
    Propagation,
    click.option(
        "--traceparent",
        metavar="VALUE",
        help="Join this upstream W3C trace context. [env: TRACEPARENT, TRACESTATE]",
    ),
    click.option(
        "--traceparent-from",
        type=click.Path(path_type=Path, exists=True, dir_okay=False),
        metavar="FILE",
        help="Join the upstream context in this carrier file (TRACEPARENT=... lines).",
    ),
    click.option(
        "--traceparent-to",
        type=click.Path(path_type=Path, dir_okay=False, allow_dash=True),
        metavar="PATH",
        help="Write the run's context here for the next stage ('-' for stdout). "
        "[default: TARGET_DIR/traceparent]",
    ),
)

_output = click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False, allow_dash=True),
    metavar="FILE",
    help="Write the spans as OTLP/JSON lines to this file ('-' for stdout) instead of sending them.",
)

TRACE_URL_VARIABLE = "DBT_OTEL_REPLAY_TRACE_URL"
"""The --trace-url template, set once for every step of a CI job."""
STEP_SUMMARY_VARIABLE = "GITHUB_STEP_SUMMARY"
"""The file GitHub Actions shows as the job's summary page: a replay appends its Markdown summary."""


def _trace_url(where: str, *placeholders: str) -> _Decorator:
    """--trace-url, refusing a template with other placeholders than the command fills in (exit 2)."""

    def check(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
        if value is not None and not ctx.resilient_parsing:
            source = ctx.get_parameter_source("trace_url_template")
            given = TRACE_URL_VARIABLE if source is click.core.ParameterSource.ENVIRONMENT else "--trace-url"
            try:
                check_trace_url(value, placeholders)
            except ValueError as exc:
                raise OneLineUsageError(f"{given}: {exc}", ctx) from None
        return value

    return click.option(
        "--trace-url",
        "trace_url_template",
        metavar="TEMPLATE",
        envvar=TRACE_URL_VARIABLE,
        callback=check,
        help=f"Link to the trace {where}, e.g. https://grafana.example/explore?traceId={{trace_id}}; "
        f"placeholders: {', '.join('{' + p + '}' for p in placeholders)}. [env: {TRACE_URL_VARIABLE}]",
    )


_quiet = click.option(
    "-q", "--quiet", is_flag=True, help="No summary and no progress; warnings and errors only."
)


def _dry_run(what: str) -> _Decorator:
    """--dry-run, saying what each command prints instead of sending."""
    return click.option("--dry-run", is_flag=True, help=f"{what}; send and write nothing.")


def _spill(default: str) -> _Decorator:
    """--spill, with each command's own default (a backfill has none: its ledger resumes instead)."""
    return click.option(
        "--spill",
        type=click.Path(path_type=Path, dir_okay=False),
        metavar="FILE",
        help=f"Where to append spans the collector did not accept, as OTLP/JSON. [default: {default}]",
    )


def _format(what: str) -> _Decorator:
    """--format, saying what each command's text and JSON forms are."""
    return click.option(
        "--format",
        "output_format",
        type=click.Choice(["text", "json"]),
        default="text",
        show_default=True,
        help=what,
    )


def _moved(flag: str, metavar: str | None, new_form: str) -> _Decorator:
    """A hidden option of the default command that says where a removed form went (exit 2)."""

    def refuse(ctx: click.Context, param: click.Parameter, value: object) -> None:
        if value and not ctx.resilient_parsing:
            raise OneLineUsageError(f"{flag} moved: use `{PROG} {new_form}`", ctx)

    return click.option(
        flag,
        metavar=metavar,
        is_flag=metavar is None,
        hidden=True,
        expose_value=False,
        is_eager=True,
        callback=refuse,
    )


def _one_target(ctx: click.Context, param: click.Parameter, value: tuple[Path, ...]) -> Path | None:
    """TARGET_DIR takes one directory; several were a backfill, which is now its own command."""
    if len(value) > 1 and not ctx.resilient_parsing:
        raise OneLineUsageError(f"several TARGET_DIRs: use `{PROG} backfill DIR…`", ctx)
    return value[0] if value else None


# --------------------------------------------------------------------------- #
# The commands
# --------------------------------------------------------------------------- #


@click.group(
    PROG,
    cls=DefaultGroup,
    default_command=DEFAULT_COMMAND,
    context_settings=CONTEXT_SETTINGS,
    subcommand_metavar="[COMMAND] ARGS...",
    help=GROUP_HELP,
    epilog=EXIT_CODES,
)
@click.version_option(__version__, "--version", prog_name=PROG)
def main() -> None:
    """Send the library's log records to stderr before any command runs."""
    _configure_logging()


@main.command(
    DEFAULT_COMMAND,
    cls=_Command,
    help=REPLAY_HELP,
    short_help="Replay one dbt run as a trace (the default command).",
    epilog=EXIT_CODES,
)
@click.argument(
    "target",
    metavar="TARGET_DIR",
    nargs=-1,
    required=True,
    type=click.Path(path_type=Path),
    callback=_one_target,
)
@click.option(
    "--manifest",
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="FILE",
    help="manifest.json to use instead of TARGET_DIR/manifest.json.",
)
@_sending
@_output
@_dry_run("Print the span tree to stdout")
@_spill("TARGET_DIR/otel-replay-unsent.json, else a user cache or temporary directory")
@_propagation
@_content
@_format("The summary as text on stderr, or as one versioned JSON document on stdout.")
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
    help="Also draw the run on stdout as lanes per thread, coloured on a terminal. "
    "Implied by --dry-run, except with --format json.",
)
@click.option(
    "--markdown",
    "markdown_path",
    type=click.Path(path_type=Path, dir_okay=False, allow_dash=True),
    metavar="FILE",
    help="Also write a Markdown job summary ('-' for stdout): status, duration, the trace's link, "
    f"critical path, failures, slowest nodes. Appended to ${STEP_SUMMARY_VARIABLE} whenever it is set.",
)
@_trace_url("in the summary, --format json and --markdown", "trace_id", "span_id")
@_quiet
@_moved("--resend", "FILE", "resend FILE")
@_moved("--recursive", "ROOT", "backfill --recursive ROOT")
@_moved("--ledger", "FILE", "backfill DIR… --ledger FILE")
@_moved("--force", None, "backfill DIR… --force")
def replay_command(
    target: Path,
    manifest: Path | None,
    sending: Sending,
    output: Path | None,
    dry_run: bool,
    spill: Path | None,
    propagation: Propagation,
    content: Content,
    output_format: str,
    html_path: Path | None,
    waterfall: bool,
    markdown_path: Path | None,
    trace_url_template: str | None,
    quiet: bool,
) -> int:
    """One run: its options in, :func:`~.replay.replay`, the views out; returns the exit code."""
    json_format = output_format == "json"
    common = content.options(sending, output=output, dry_run=dry_run, spill=spill)
    options = replace(
        common,
        plan=replace(common.plan, upstream=propagation.upstream()),
        manifest=manifest,
        traceparent_to=propagation.traceparent_to,
        extra_outputs=tuple(p for p in (html_path, markdown_path) if p is not None),
    )
    if json_format and options.export is not None and options.export.exporter is Exporter.CONSOLE:
        raise OneLineUsageError(
            "--format json cannot share standard output with OTEL_TRACES_EXPORTER=console, which writes "
            "the trace there: use --output FILE, or unset the variable"
        )
    with _stoppable(sends=output is None and not dry_run) as stop:
        result = replay(target, options, stop=stop)
    plan = result.plan
    url = None
    if trace_url_template is not None:
        url = trace_url(trace_url_template, trace_id=plan.trace_id, span_id=plan.invocation.span_id)
    _report(result, dry_run=dry_run, quiet=quiet, json_format=json_format, url=url)
    if html_path is not None:
        write_html(result.plan, html_path)
    _write_markdown(result, url, markdown_path)
    if waterfall or (dry_run and not json_format):
        _draw_waterfall(result.plan)
    if result.failure is not None:
        raise result.failure
    return EXIT_OK


@main.command(
    "backfill",
    cls=_Command,
    help=BACKFILL_HELP,
    short_help="Replay many archived runs, oldest first, each as its own trace.",
    epilog="Exit codes: 0 every run delivered (or already delivered), 1 a run was skipped as unreadable, "
    "2 usage, 3 the collector stopped accepting (3 wins over 1), 130/143 stopped by SIGINT/SIGTERM "
    "(the run being sent is saved like a failed one, later runs are not attempted).",
)
@click.argument("dirs", metavar="[DIR]...", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--recursive",
    "roots",
    multiple=True,
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    metavar="ROOT",
    help="Also every run_results.json(.gz) below ROOT, with its manifest beside it; repeatable.",
)
@click.option(
    "--ledger",
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="FILE",
    help="A SQLite file of the runs a collector accepted; those are not sent again.",
)
@click.option("--force", is_flag=True, help="Send the runs the ledger lists as delivered again.")
@_sending
@_output
@_dry_run("List the runs that would be sent on stdout")
@_spill("none: a run not delivered stays out of the ledger and the next backfill sends it again")
@_content
@_format("One line per run on stdout and the totals on stderr, or one versioned JSON summary on stdout.")
@_trace_url("in each run of --format json", "trace_id", "span_id")
@_quiet
def backfill_command(
    dirs: tuple[Path, ...],
    roots: tuple[Path, ...],
    ledger: Path | None,
    force: bool,
    sending: Sending,
    output: Path | None,
    dry_run: bool,
    spill: Path | None,
    content: Content,
    output_format: str,
    trace_url_template: str | None,
    quiet: bool,
) -> int:
    """Many runs: :func:`~.backfill.backfill`, a line per run as it ends; returns the exit code."""
    if not dirs and not roots:
        raise OneLineUsageError("give a DIR or --recursive ROOT")
    options = honour_exporter(
        BackfillOptions(
            replay=content.options(sending, output=output, dry_run=dry_run, spill=spill),
            ledger=ledger,
            force=force,
        )
    )
    json_format = output_format == "json"
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

    try:
        with _stoppable(sends=output is None and not dry_run) as stop:
            report = backfill(dirs, roots, options, on_run, on_start, stop=stop)
    finally:
        for bar in bars:
            bar.close()
    if json_format:
        link = None if trace_url_template is None else functools.partial(trace_url, trace_url_template)
        click.echo(json.dumps(backfill_summary(report, link), indent=2, ensure_ascii=True))
    elif not quiet:
        click.echo(render_backfill_totals(report), nl=False, err=True)
    return report.exit_code


@main.command(
    "resend",
    cls=_Command,
    help=RESEND_HELP,
    short_help="Re-send a spill file of spans a collector did not accept.",
    epilog="Exit codes: 0 every span delivered (FILE deleted), 1 FILE missing or not OTLP/JSON, "
    "2 usage, 3 export failed (what was not accepted stays in FILE), 130/143 stopped by "
    "SIGINT/SIGTERM (likewise).",
)
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@_sending
@_quiet
def resend_command(file: Path, sending: Sending, quiet: bool) -> int:
    """A spill file: :func:`~.replay.resend`, one line saying what was accepted; returns the exit code."""
    with _stoppable(sends=True) as stop:
        resent = resend(file, sending.config(), stop=stop)
    if not quiet:
        click.echo(render_resend_line(resent), err=True)
    if resent.failure is not None:
        raise resent.failure
    return EXIT_OK


@contextmanager
def _stoppable(*, sends: bool) -> Iterator[StopRequest | None]:
    """While sending, SIGTERM and SIGINT stop in good order (see :mod:`.stopping`); else they keep theirs.

    Writing a file or a dry run sends nothing that a signal could lose: the file is written
    whole or not at all.
    """
    if not sends:
        yield None
        return
    with stop_on_signals(PROG) as stop:
        yield stop


# --------------------------------------------------------------------------- #
# Where each view goes
# --------------------------------------------------------------------------- #


def _write_markdown(result: ReplayResult, url: str | None, path: Path | None) -> None:
    """The Markdown summary to --markdown FILE (replaced), and appended to $GITHUB_STEP_SUMMARY when set.

    The job summary is a courtesy: when it cannot be appended, a warning says so and the
    replay's exit code stays what the replay made it.
    """
    if path is not None:
        write_markdown(result.plan, path, result.destination, url, append=False)
    step_summary = os.environ.get(STEP_SUMMARY_VARIABLE)
    if not step_summary or (path is not None and path != STDOUT and _same_file(path, Path(step_summary))):
        return
    try:
        write_markdown(result.plan, Path(step_summary), result.destination, url, append=True)
    except ExportError as exc:
        click.echo(f"{PROG}: warning: ${STEP_SUMMARY_VARIABLE}: {escape(str(exc))}", err=True)


def _same_file(left: Path, right: Path) -> bool:
    try:
        return left.samefile(right)
    except OSError:
        return False


def _report(result: ReplayResult, *, dry_run: bool, quiet: bool, json_format: bool, url: str | None) -> None:
    """Warnings on stderr; the JSON document or the tree on stdout; the summary on stderr."""
    for warning in result.warnings:
        click.echo(f"{PROG}: warning: {escape(warning)}", err=True)
    if json_format:
        document = summary_document(result.plan, result.destination, result.warnings, url)
        click.echo(json.dumps(document, indent=2, ensure_ascii=True))
        return
    if dry_run:
        click.echo(render_tree(result.plan), nl=False)
    if quiet:
        return
    where = result.traceparent_path
    outcome = Outcome(
        result.destination, None if where is None else ("stdout" if where == STDOUT else str(where)), url
    )
    click.echo(render_summary(result.plan, outcome), nl=False, err=True)


def _draw_waterfall(plan: Plan) -> None:
    """On stdout: as wide as the terminal and coloured (unless NO_COLOR), else fixed width and plain."""
    terminal = sys.stdout.isatty()
    width = shutil.get_terminal_size().columns if terminal else WATERFALL_WIDTH
    color = terminal and not os.environ.get("NO_COLOR")
    click.echo(render_waterfall(plan, width=max(width, 60), color=color), nl=False)


def _configure_logging() -> None:
    """The library's log records go to stderr, formatted like the CLI's own warnings."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LowercaseLevelFormatter(f"{PROG}: %(levelname)s: %(message)s"))
    package_logger = logging.getLogger("dbt_otel_replay")
    package_logger.handlers[:] = [handler]
    package_logger.setLevel(logging.WARNING)
    package_logger.propagate = False


class _LowercaseLevelFormatter(logging.Formatter):
    """Formats ``warning:`` like the CLI's own messages rather than ``WARNING:``, the message escaped.

    Library log lines quote collectors (response bodies, gRPC details), so the
    message is escaped like every other outside text; the record itself is left
    as it is for any other handler.
    """

    def format(self, record: logging.LogRecord) -> str:
        """Format a copy of the record: level in lower case, message on one escaped line."""
        shown = logging.makeLogRecord(record.__dict__)
        shown.levelname = record.levelname.lower()
        shown.msg, shown.args = escape(record.getMessage()), None
        return super().format(shown)
