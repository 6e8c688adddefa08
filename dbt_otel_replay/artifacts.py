"""Read and validate dbt's run_results.json and manifest.json: the only file reader.

The types below describe just the fields the replay uses; msgspec decodes
those straight from the file's bytes and skips every other key without
building it, so artifacts from any dbt version (which grows its schemas in
place) load, and a 140 MB manifest takes a fraction of a second and little
more memory than its own size. Files may be gzip-compressed (``.json.gz``),
as archives usually are. Nothing here imports dbt. Loading returns typed
objects or raises :class:`~dbt_otel_replay.errors.ArtifactError` with the
file's path and the problem in one sentence.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import stat
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from ._files import file_kind
from .errors import ArtifactError
from .jsonfaults import diagnose, is_utf8, one_line
from .timestamps import parse_timestamp

RUN_RESULTS_FILENAME = "run_results.json"
MANIFEST_FILENAME = "manifest.json"
GZIP_SUFFIX = ".gz"
NEWEST_KNOWN_RUN_RESULTS_VERSION = 6
NEWEST_KNOWN_MANIFEST_VERSION = 12

_SCHEMA_VERSION = re.compile(r"/dbt/([a-z-]+)/v(\d{1,9})\.json")
_GIT_LFS_POINTER = b"version https://git-lfs"
_GZIP_MAGIC = b"\x1f\x8b"
_PEEK_BYTES = 4096
_MAX_UINT64 = 2**64 - 1
_INT64 = range(-(2**63), 2**63)


class Nanos(int):
    """A timestamp dbt wrote, as integer nanoseconds since the Unix epoch."""


class _Struct(msgspec.Struct, frozen=True, gc=False):
    """Base of the artifact types: unknown keys are ignored.

    ``gc=False``: they hold only strings, numbers and each other, never a cycle, so the garbage
    collector need not track (and repeatedly scan) the hundreds of thousands a large run makes.
    """


class TimingEntry(_Struct, frozen=True):
    """One phase of a node's execution (``compile`` or ``execute``) as dbt timed it."""

    name: str
    started_at: Nanos
    completed_at: Nanos


class AdapterResponse(_Struct, frozen=True):
    """The warehouse's answer to a node's last statement; every field is optional."""

    code: str | int | None = None
    rows_affected: int | float | str | None = None
    query_id: str | int | None = None
    job_id: str | int | None = None
    bytes_processed: int | float | str | None = None
    bytes_billed: int | float | str | None = None
    slot_ms: int | float | str | None = None


class BatchResults(_Struct, frozen=True):
    """The data windows a microbatch model processed (data time, not wall-clock time)."""

    successful: list[list[Any]] | None = None
    failed: list[list[Any]] | None = None

    @property
    def successful_windows(self) -> list[tuple[str, ...]]:
        """The successful windows as text pairs."""
        return _windows(self.successful)

    @property
    def failed_windows(self) -> list[tuple[str, ...]]:
        """The failed windows as text pairs."""
        return _windows(self.failed)


def _windows(value: list[list[Any]] | None) -> list[tuple[str, ...]]:
    return [tuple(str(part) for part in window) for window in value or ()]


class NodeResult(_Struct, frozen=True):
    """One entry of run_results.json ``results``: a node dbt ran, tested or skipped."""

    unique_id: str
    status: str
    timing: list[TimingEntry] = []
    thread_id: str | None = None
    execution_time: float | None = None
    message: str | None = None
    failures: int | float | str | None = None
    adapter_response: AdapterResponse | None = None
    relation_name: str | None = None
    batch_results: BatchResults | None = None

    @property
    def started_at(self) -> int | None:
        """The earliest start of any phase, or None for a result without timing."""
        timing = self.timing
        if len(timing) == 1:
            return timing[0].started_at
        return min([t.started_at for t in timing], default=None)

    @property
    def completed_at(self) -> int | None:
        """The latest end of any phase, or None for a result without timing."""
        timing = self.timing
        if len(timing) == 1:
            return timing[0].completed_at
        return max([t.completed_at for t in timing], default=None)

    @property
    def failure_count(self) -> int | None:
        """``failures`` as a number (hand-edited artifacts store it as a string)."""
        return loose_int(self.failures)

    @property
    def sql(self) -> str | None:
        """The compiled SQL; only read when SQL was asked for (see :func:`load_run_results`)."""
        return None


class NodeResultWithSql(NodeResult, frozen=True):
    """A result with its compiled SQL (``compiled_code``, or ``compiled_sql`` before dbt 1.3)."""

    compiled_code: str | None = None
    compiled_sql: str | None = None

    @property
    def sql(self) -> str | None:
        """The compiled SQL."""
        return self.compiled_code if self.compiled_code is not None else self.compiled_sql


class RunArgs(_Struct, frozen=True):
    """The invocation arguments the replay reads (``vars`` only when asked: it can hold secrets)."""

    which: str | None = None
    target: str | None = None
    select: Any = None
    exclude: Any = None
    selector: Any = None
    full_refresh: Any = None
    threads: Any = None
    state: Any = None
    defer: Any = None

    @property
    def vars_json(self) -> str | None:
        """``args.vars`` as canonical JSON, when it was read and is not empty."""
        return None


class RunArgsWithVars(RunArgs, frozen=True):
    """Invocation arguments including ``vars``."""

    vars: Any = None

    @property
    def vars_json(self) -> str | None:
        """``args.vars`` as canonical JSON, when it is not empty."""
        if self.vars in (None, {}, ""):
            return None
        if isinstance(self.vars, str):
            return self.vars
        try:
            return json.dumps(self.vars, sort_keys=True, separators=(",", ":"), default=str)
        except (RecursionError, ValueError):
            return None  # too deep to be anyone's vars


class RunResultsMetadata(_Struct, frozen=True):
    """run_results.json ``metadata``."""

    dbt_schema_version: str
    generated_at: Nanos
    dbt_version: str | None = None
    invocation_id: str | None = None
    invocation_started_at: Nanos | None = None
    env: Any = None
    """``DBT_ENV_CUSTOM_ENV_*`` variables, without the prefix (any shape: checked where it is used)."""


class RunResults(_Struct, frozen=True):
    """A whole run_results.json."""

    metadata: RunResultsMetadata
    results: list[NodeResult]
    elapsed_time: float | None = None
    args: RunArgs | None = None

    @property
    def command(self) -> str:
        """The dbt sub-command that produced the run (``build``, ``run``, ...)."""
        return (self.args.which if self.args else None) or "run"

    @property
    def arguments(self) -> RunArgs:
        """The invocation arguments (empty when the artifact has none)."""
        return self.args or RunArgs()


class RunResultsWithSql(RunResults, frozen=True):
    """run_results.json read with compiled SQL and ``args.vars``."""

    results: list[NodeResultWithSql]  # type: ignore[assignment]
    args: RunArgsWithVars | None = None


class DependsOn(_Struct, frozen=True):
    """A manifest node's upstream nodes, in the order dbt recorded them."""

    nodes: list[str] | None = None


class NodeConfig(_Struct, frozen=True):
    """The part of a node's config the replay reports."""

    materialized: str | None = None
    meta: Any = None
    contract: Any = None
    group: Any = None
    access: Any = None


class ManifestNode(_Struct, frozen=True):
    """A manifest entry (model, seed, snapshot, test, unit test, macro, exposure, ...).

    Every field is optional, so an odd entry in a section the replay only looks
    things up in cannot make the whole manifest unreadable.
    """

    resource_type: str | None = None
    name: str | None = None
    package_name: str | None = None
    original_file_path: str | None = None
    tags: list[str] | str | None = None
    config: NodeConfig | None = None
    depends_on: DependsOn | None = None
    database: str | None = None
    schema_name: str | None = msgspec.field(default=None, name="schema")
    alias: str | None = None
    relation_name: str | None = None
    meta: Any = None
    group: Any = None
    access: Any = None

    @property
    def parents(self) -> list[str]:
        """``depends_on.nodes``, in dbt's order."""
        return (self.depends_on.nodes or []) if self.depends_on else []

    @property
    def materialized(self) -> str | None:
        """``config.materialized``."""
        return self.config.materialized if self.config else None

    @property
    def owner(self) -> str | None:
        """``meta.owner``, else ``config.meta.owner`` (text only: a list or a mapping is not one owner)."""
        for meta in (self.meta, self.config.meta if self.config else None):
            owner = meta.get("owner") if isinstance(meta, dict) else None
            if isinstance(owner, str) and owner:
                return owner
        return None

    @property
    def group_name(self) -> str | None:
        """``group``, else ``config.group``."""
        return _first_text(self.group, self.config.group if self.config else None)

    @property
    def access_level(self) -> str | None:
        """``access``, else ``config.access`` (``private``, ``protected``, ``public``)."""
        return _first_text(self.access, self.config.access if self.config else None)

    @property
    def contract_enforced(self) -> bool | None:
        """``config.contract.enforced``, when dbt recorded it as a boolean."""
        contract = self.config.contract if self.config else None
        enforced = contract.get("enforced") if isinstance(contract, dict) else None
        return enforced if isinstance(enforced, bool) else None

    @property
    def tag_list(self) -> tuple[str, ...]:
        """``tags`` as a tuple (old manifests may hold a single string)."""
        if isinstance(self.tags, str):
            return (self.tags,)
        return tuple(self.tags or ())


def _first_text(*values: object) -> str | None:
    """The first value that is a non-empty string."""
    return next((v for v in values if isinstance(v, str) and v), None)


class ManifestMetadata(_Struct, frozen=True):
    """manifest.json ``metadata``."""

    dbt_schema_version: str
    dbt_version: str | None = None
    invocation_id: str | None = None
    project_name: str | None = None
    adapter_type: str | None = None


Section = dict[str, ManifestNode]


class Manifest(_Struct, frozen=True):
    """The parts of manifest.json the replay uses: the graph and the node descriptions.

    Besides ``nodes``, results can name unit tests (dbt test/build), macros
    (dbt run-operation), exposures, saved queries and semantic models (no-op results).
    """

    metadata: ManifestMetadata
    nodes: Section | None = None
    unit_tests: Section | None = None
    macros: Section | None = None
    exposures: Section | None = None
    saved_queries: Section | None = None
    semantic_models: Section | None = None
    sources: Section | None = None

    @property
    def sections(self) -> tuple[Section, ...]:
        """Every section a result's unique_id can live in, nodes first."""
        return tuple(
            section or {}
            for section in (
                self.nodes,
                self.unit_tests,
                self.macros,
                self.exposures,
                self.saved_queries,
                self.semantic_models,
                self.sources,
            )
        )

    def lookup(self) -> dict[str, ManifestNode]:
        """Every entry of every section by unique id (``nodes`` win over the others).

        Build it once per run and look results up in it.
        """
        combined: dict[str, ManifestNode] = {}
        for section in reversed(self.sections):
            combined.update(section)
        return combined


def loose_int(value: object) -> int | None:
    """A count as an int, whether the artifact wrote it as a number or a string.

    Args:
        value: The field's value.

    Returns:
        The integer, or None for a missing or non-numeric value, or one beyond 64 bits.
    """
    if isinstance(value, bool) or value is None:
        return None
    if not isinstance(value, int):
        try:
            number = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return None
        if not number.is_integer():
            return None
        value = int(number)
    return value if value in _INT64 else None


@dataclass(frozen=True)
class Artifacts:
    """The validated artifacts of one dbt invocation, with what was odd about them.

    ``identity`` tells this run apart from every other (see :func:`run_identity`).
    """

    run_results: RunResults
    run_results_path: Path
    manifest: Manifest | None
    manifest_path: Path | None
    warnings: tuple[str, ...] = ()
    identity: str = ""


RUN_DIGEST_HEX = 16
"""How many hex digits of SHA-256 over run_results.json's content a run's identity keeps (64 bits)."""


def run_identity(metadata: RunResultsMetadata, content: bytes) -> str:
    """``<invocation_id>@<generated_at, ns>#<digest of the content>``: one run, whatever else shares its id.

    dbt's invocation id alone does not tell runs apart: dbt Fusion writes all-zero ids, a process
    running dbt programmatically can repeat one, and archives hold edited copies. The ledger keys
    delivered runs by this, and span ids derive from it, so such runs never take each other's
    place or ids. The digest is over the decompressed bytes (a BOM left out): the same file, or its
    gzip-compressed copy, is the same run; a file edited or written out again is another.

    Args:
        metadata: Its metadata.
        content: run_results.json's bytes, decompressed.

    Returns:
        The identity.
    """
    digest = hashlib.sha256(content).hexdigest()[:RUN_DIGEST_HEX]
    return f"{metadata.invocation_id or ''}@{metadata.generated_at}#{digest}"


def load_artifacts(
    target_dir: Path, manifest_path: Path | None = None, *, include_sql: bool = False
) -> Artifacts:
    """Read a dbt target directory's run_results.json and its manifest.json.

    Args:
        target_dir: The directory dbt wrote its artifacts to (usually ``target/``).
            A path to a run_results.json (or run_results.json.gz) file is accepted too.
        manifest_path: The manifest to use instead of the one beside run_results.json.
        include_sql: Also read compiled SQL and ``args.vars`` (skipped otherwise).

    Returns:
        The validated artifacts. A missing default manifest is not an error: the
        run still replays, flat, and a warning says so.

    Raises:
        ArtifactError: If run_results.json (or an explicitly named manifest) is
            missing, unreadable, not JSON, or not the dbt artifact it should be.
    """
    # any existing non-directory is the file itself (a FIFO too: it is refused, not taken for a directory)
    is_file = target_dir.is_file() or (target_dir.exists() and not target_dir.is_dir())
    run_results_path = target_dir if is_file else _existing(target_dir / RUN_RESULTS_FILENAME)
    warnings: list[str] = []
    explicit = manifest_path is not None
    if manifest_path is None:
        manifest_path = _existing(run_results_path.parent / MANIFEST_FILENAME)
    _check_head(run_results_path)  # a missing or non-JSON run_results.json fails before the manifest is read
    manifest: Manifest | None = None
    if explicit or manifest_path.exists():
        # The manifest first: its bytes are the peak of memory, better not held beside the results.
        try:
            manifest = load_manifest(manifest_path, warnings)
        except ArtifactError:
            # dbt < 0.17 wrote a manifest this refuses too; the run_results.json is what to blame
            _refuse_old_run_results(run_results_path)
            raise
    content = _read(run_results_path)
    run_results = load_run_results(run_results_path, warnings, include_sql=include_sql, content=content)
    identity = run_identity(run_results.metadata, content)
    del content  # not held beside the plan
    if manifest is not None:
        _check_same_invocation(run_results, manifest, manifest_path, warnings)
    else:
        warnings.append(
            f"{manifest_path}: not found; every node is replayed directly under the invocation span"
        )
    return Artifacts(
        run_results=run_results,
        run_results_path=run_results_path,
        manifest=manifest,
        manifest_path=manifest_path if manifest is not None else None,
        warnings=tuple(warnings),
        identity=identity,
    )


def _existing(path: Path) -> Path:
    """The path, or its gzip-compressed twin when only that exists."""
    compressed = path.with_name(path.name + GZIP_SUFFIX)
    return compressed if not path.exists() and compressed.exists() else path


def load_run_results(
    path: Path, warnings: list[str] | None = None, *, include_sql: bool = False, content: bytes | None = None
) -> RunResults:
    """Read and validate one run_results.json (or .json.gz).

    Args:
        path: The file.
        warnings: A list that receives non-fatal remarks (a newer schema version).
        include_sql: Also read compiled SQL and ``args.vars``.
        content: Its bytes, decompressed, when already read.

    Returns:
        The validated run results.

    Raises:
        ArtifactError: If the file is missing, corrupt, or not a run_results artifact.
    """
    kind = RunResultsWithSql if include_sql else RunResults
    run_results = _decode(path, kind, "run-results", NEWEST_KNOWN_RUN_RESULTS_VERSION, warnings, content)
    _check_results(path, run_results)
    return run_results


class RunResultsHeader(_Struct, frozen=True):
    """Just the metadata of a run_results.json: enough to order and identify archived runs."""

    metadata: RunResultsMetadata
    elapsed_time: float | None = None


@dataclass(frozen=True)
class RunHeader:
    """An archived run as a backfill first sees it: when it ran, and which run it is."""

    header: RunResultsHeader
    identity: str


def read_run_header(path: Path) -> RunHeader:
    """Read only the metadata of one run_results.json (or .json.gz), skipping the results.

    Args:
        path: The file.

    Returns:
        Its metadata and elapsed time, and its identity (see :func:`run_identity`).

    Raises:
        ArtifactError: If the file is missing, corrupt, or not a run_results artifact.
    """
    content = _read(path)
    header = _decode(path, RunResultsHeader, "run-results", NEWEST_KNOWN_RUN_RESULTS_VERSION, None, content)
    return RunHeader(header, run_identity(header.metadata, content))


def load_manifest(path: Path, warnings: list[str] | None = None) -> Manifest:
    """Read and validate one manifest.json (or .json.gz).

    Args:
        path: The file.
        warnings: A list that receives non-fatal remarks (a newer schema version).

    Returns:
        The validated manifest.

    Raises:
        ArtifactError: If the file is missing, corrupt, or not a manifest artifact.
    """
    return _decode(path, Manifest, "manifest", NEWEST_KNOWN_MANIFEST_VERSION, warnings)


class _Header(_Struct, frozen=True):
    metadata: dict[str, Any] | None = None


OLD_RUN_RESULTS = "written by dbt < 0.17 (no metadata), not supported"
"""The problem of a run_results.json from before dbt 0.17, which wrote no ``metadata``."""


class _OldShape(_Struct, frozen=True):
    """Just whether the top-level keys are there: their values are kept as raw bytes, not decoded."""

    metadata: msgspec.Raw = msgspec.Raw()
    results: msgspec.Raw = msgspec.Raw()


def _absent(value: msgspec.Raw) -> bool:
    """Whether a key was missing or null (only a 4-byte value is copied to compare)."""
    return len(value) == 0 or (len(value) == 4 and bytes(value) == b"null")


def _is_old_run_results(path: Path, raw: bytes) -> bool:
    """Whether the bytes are a run_results.json of dbt < 0.17: ``results`` but no ``metadata``."""
    try:
        shape = _parse(path, raw, _OldShape)
    except (msgspec.ValidationError, ArtifactError):
        return False
    return not _absent(shape.results) and _absent(shape.metadata)


def _refuse_old_run_results(path: Path) -> None:
    """Raise the dbt < 0.17 error for this run_results.json if it is one; else do nothing.

    Called only when the manifest was refused, so a readable, current run_results.json
    costs nothing more; an unreadable one leaves the manifest's error to be reported.
    """
    try:
        raw = _read(path)
    except ArtifactError:
        return
    if _is_old_run_results(path, raw):
        raise ArtifactError(path, OLD_RUN_RESULTS) from None


_T = TypeVar("_T", bound=_Struct)


def _decode(
    path: Path,
    kind: type[_T],
    name: str,
    newest: int,
    warnings: list[str] | None,
    content: bytes | None = None,
) -> _T:
    raw = _read(path) if content is None else content
    try:
        document = _parse(path, raw, kind)
    except msgspec.ValidationError as exc:
        if not is_utf8(raw):  # msgspec checks only the strings it reads, and it stopped at a type
            raise ArtifactError(path, "is not JSON text (not UTF-8)") from None
        if name == "run-results" and _is_old_run_results(path, raw):
            raise ArtifactError(path, OLD_RUN_RESULTS) from None
        _check_kind(path, _schema_version(path, raw), name, newest, None)
        raise ArtifactError(path, _describe(exc)) from None
    _check_kind(path, document.metadata.dbt_schema_version, name, newest, warnings)  # type: ignore[attr-defined]
    return document


def _decode_hook(kind: type, value: Any) -> Any:
    if kind is Nanos and type(value) is str:
        nanos = parse_timestamp(value)
        if 0 <= nanos <= _MAX_UINT64:
            return Nanos(nanos)
        raise ValueError(f"{value!r} is outside the times OpenTelemetry can carry (1970 to 2554)")
    if kind is Nanos:
        raise ValueError(f"expected an ISO 8601 timestamp string, got {value!r}")
    raise NotImplementedError(kind)


def _read(path: Path) -> bytes:
    """The file's bytes (decompressed), after refusing what cannot be a JSON object."""
    _check_head(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if _is_gzip(path) else path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise ArtifactError(path, f"cannot be read: {getattr(exc, 'strerror', None) or exc}") from None
    return raw[3:] if raw.startswith(b"\xef\xbb\xbf") else raw


def _check_head(path: Path) -> None:
    """Refuse, from its first bytes, a file that cannot be a JSON object."""
    head = _peek(path)
    if head.startswith(_GIT_LFS_POINTER):
        raise ArtifactError(path, "is a Git LFS pointer, not the artifact; run `git lfs pull` first")
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not text:
        raise ArtifactError(path, "is empty")
    if not text.startswith(b"{"):
        raise ArtifactError(path, "is not a dbt artifact (a JSON object must start with '{')")


def _peek(path: Path) -> bytes:
    try:
        _check_regular(path)
        if _is_gzip(path):
            with gzip.open(path, "rb") as compressed:
                return compressed.read(_PEEK_BYTES)
        with path.open("rb") as handle:
            return handle.read(_PEEK_BYTES)
    except FileNotFoundError:
        raise ArtifactError(path, "not found (is this the target/ directory of a dbt run?)") from None
    except IsADirectoryError:
        raise ArtifactError(path, "is a directory, not a dbt artifact") from None
    except (OSError, EOFError, zlib.error) as exc:
        raise ArtifactError(path, f"cannot be read: {getattr(exc, 'strerror', None) or exc}") from None


def _check_regular(path: Path) -> None:
    """Refuse, from its metadata alone, what is not a regular file (a symlink to one is fine).

    Opening a FIFO for reading blocks until something writes to it, and a device can
    stream forever: neither is an artifact, so neither is opened.

    Raises:
        ArtifactError: For a directory, a FIFO, a device or a socket.
        OSError: When the path cannot be looked at (missing, no permission): the caller words it.
    """
    mode = os.stat(path).st_mode
    if stat.S_ISREG(mode):
        return
    if stat.S_ISDIR(mode):
        raise ArtifactError(path, "is a directory, not a dbt artifact")
    kind = file_kind(mode)
    raise ArtifactError(path, "is not a regular file" + (f" ({kind})" if kind.startswith("a ") else ""))


def _is_gzip(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(2) == _GZIP_MAGIC


def _parse(path: Path, raw: bytes, kind: type[_T]) -> _T:
    """Decode JSON into ``kind``; any failure but a type mismatch becomes an ArtifactError.

    Which exception msgspec raises for bad bytes, and its wording, change between its releases
    (0.18 raised UnicodeDecodeError for invalid UTF-8, 0.23 a DecodeError), so what is wrong is
    found by looking at the bytes again (:func:`~.jsonfaults.diagnose`), never by reading msgspec's message.

    Raises:
        msgspec.ValidationError: When the JSON is fine but does not fit ``kind``.
        ArtifactError: When it is not JSON at all.
    """
    try:
        return msgspec.json.decode(raw, type=kind, dec_hook=_decode_hook)
    except msgspec.ValidationError:
        raise
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ArtifactError(path, diagnose(exc, raw)) from None


def _schema_version(path: Path, raw: bytes) -> str | None:
    try:
        header = _parse(path, raw, _Header)
    except msgspec.ValidationError:
        return None
    version = (header.metadata or {}).get("dbt_schema_version")
    return version if isinstance(version, str) else None


def _check_kind(path: Path, schema: str | None, kind: str, newest: int, warnings: list[str] | None) -> None:
    match = _SCHEMA_VERSION.search(schema) if schema else None
    if match is None:
        raise ArtifactError(path, f"is not a dbt {kind} artifact (no metadata.dbt_schema_version)")
    found, version = match.group(1), int(match.group(2))
    if found != kind:
        raise ArtifactError(path, f"is a dbt {found} artifact, not {kind}")
    if version > newest and warnings is not None:
        warnings.append(
            f"{path}: {kind} schema v{version} is newer than v{newest}, the newest this "
            "version knows; replaying the fields it can read"
        )


_AT_PATH = re.compile(r"(?P<problem>.+) - at `\$(?P<path>[^`]*)`", re.DOTALL)
_MISSING_FIELD = re.compile(r"Object missing required field `(?P<field>[^`]+)`")


def _describe(exc: msgspec.ValidationError) -> str:
    """``results[1].timing[0].completed_at: required but missing``, from msgspec's message.

    msgspec's message (``... - at `$.results[1]...```) is the only place that says where the
    document does not fit, so it is read, leniently: should a release word it otherwise, its
    message is shown whole after ``document:`` rather than taken apart wrongly. The tests run
    with both the lowest and the locked msgspec.
    """
    problem, location = one_line(str(exc)), ""
    at = _AT_PATH.fullmatch(problem)
    if at:
        problem, location = at.group("problem"), at.group("path").removeprefix(".")
    missing = _MISSING_FIELD.fullmatch(problem)
    if missing:
        field = missing.group("field")
        location, problem = (f"{location}.{field}" if location else field), "required but missing"
    return f"{location or 'document'}: {problem}"


def _check_results(path: Path, run_results: RunResults) -> None:
    if not run_results.results:
        raise ArtifactError(path, "has no results: the dbt command selected no nodes")
    seen: set[str] = set()
    for index, result in enumerate(run_results.results):
        if result.unique_id in seen:
            raise ArtifactError(path, f"results[{index}]: {result.unique_id!r} appears twice")
        seen.add(result.unique_id)
        for phase in result.timing:
            if phase.completed_at < phase.started_at:
                raise ArtifactError(
                    path,
                    f"results[{index}] ({result.unique_id!r}): {phase.name!r} timing ends before it starts",
                )


def _check_same_invocation(
    run_results: RunResults, manifest: Manifest, manifest_path: Path, warnings: list[str]
) -> None:
    ours, theirs = run_results.metadata.invocation_id, manifest.metadata.invocation_id
    if ours and theirs and ours != theirs:
        warnings.append(
            f"{manifest_path}: written by another dbt invocation ({theirs}, not {ours}); "
            "using it for the graph only"
        )
