"""Read and validate dbt's run_results.json and manifest.json: the only file reader.

The models below describe just the fields the replay uses and ignore every
other key, so artifacts from any dbt version that grows its schemas in place
still load. Nothing here imports dbt. Loading either returns typed objects or
raises :class:`~dbt_otel_replay.errors.ArtifactError` with the file's path and
the problem in one sentence.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from .errors import ArtifactError
from .timestamps import parse_timestamp

RUN_RESULTS_FILENAME = "run_results.json"
MANIFEST_FILENAME = "manifest.json"
NEWEST_KNOWN_RUN_RESULTS_VERSION = 6
NEWEST_KNOWN_MANIFEST_VERSION = 12

_SCHEMA_VERSION = re.compile(r"/dbt/([a-z-]+)/v(\d+)\.json")
_GIT_LFS_POINTER = b"version https://git-lfs"
_PEEK_BYTES = 4096


def _timestamp(value: object) -> int:
    if isinstance(value, str):
        return parse_timestamp(value)
    raise ValueError(f"expected an ISO 8601 timestamp string, got {value!r}")


def _loose_int(value: object) -> object:
    """Accept the integer counts some hand-edited artifacts store as strings or floats."""
    if isinstance(value, str):
        try:
            return int(float(value))
        except ValueError:
            return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _string_list(value: object) -> object:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return value


def _json_text(value: object) -> object:
    """Keep an open-ended value (such as ``args.vars``) as canonical JSON text."""
    if value is None or value == {} or isinstance(value, str):
        return value or None
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


Nanos = Annotated[int, BeforeValidator(_timestamp)]
"""A timestamp, held as integer nanoseconds since the Unix epoch."""
LooseInt = Annotated[int | None, BeforeValidator(_loose_int)]
StringList = Annotated[list[str], BeforeValidator(_string_list)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class TimingEntry(_Model):
    """One phase of a node's execution (``compile`` or ``execute``) as dbt timed it."""

    name: str
    started_at: Nanos
    completed_at: Nanos


class AdapterResponse(_Model):
    """The warehouse's answer to a node's last statement; every field is optional."""

    code: str | None = None
    rows_affected: LooseInt = None
    query_id: str | None = None
    job_id: str | None = None
    bytes_processed: LooseInt = None


def _windows(value: object) -> object:
    """Batch windows as [start, end] pairs of text, whatever types the artifact used."""
    if not isinstance(value, list):
        return []
    return [[str(part) for part in window] for window in value if isinstance(window, (list, tuple))]


Windows = Annotated[list[list[str]], BeforeValidator(_windows)]


class BatchResults(_Model):
    """The data windows a microbatch model processed (data time, not wall-clock time)."""

    successful: Windows = Field(default_factory=list)
    failed: Windows = Field(default_factory=list)


class NodeResult(_Model):
    """One entry of run_results.json ``results``: a node dbt ran, tested or skipped."""

    unique_id: str
    status: str
    timing: list[TimingEntry] = Field(default_factory=list)
    thread_id: str | None = None
    execution_time: float | None = None
    message: str | None = None
    failures: LooseInt = None
    adapter_response: AdapterResponse = Field(default_factory=AdapterResponse)
    compiled_code: str | None = Field(
        default=None, validation_alias=AliasChoices("compiled_code", "compiled_sql")
    )
    relation_name: str | None = None
    batch_results: BatchResults | None = None

    @property
    def started_at(self) -> int | None:
        """The earliest start of any phase, or None for a result without timing."""
        return min((t.started_at for t in self.timing), default=None)

    @property
    def completed_at(self) -> int | None:
        """The latest end of any phase, or None for a result without timing."""
        return max((t.completed_at for t in self.timing), default=None)


class RunArgs(_Model):
    """The few invocation arguments the replay reads (never ``vars``: they can hold secrets)."""

    which: str | None = None
    target: str | None = None
    vars_json: Annotated[str | None, BeforeValidator(_json_text)] = Field(
        default=None, validation_alias=AliasChoices("vars")
    )


class RunResultsMetadata(_Model):
    """run_results.json ``metadata``."""

    dbt_schema_version: str
    dbt_version: str | None = None
    generated_at: Nanos
    invocation_id: str | None = None
    invocation_started_at: Nanos | None = None


class RunResults(_Model):
    """A whole run_results.json."""

    metadata: RunResultsMetadata
    results: list[NodeResult]
    elapsed_time: float | None = None
    args: RunArgs = Field(default_factory=RunArgs)

    @property
    def command(self) -> str:
        """The dbt sub-command that produced the run (``build``, ``run``, ...)."""
        return self.args.which or "run"


class DependsOn(_Model):
    """A manifest node's upstream nodes, in the order dbt recorded them."""

    nodes: StringList = Field(default_factory=list)


class NodeConfig(_Model):
    """The part of a node's config the replay reports."""

    materialized: str | None = None


class ManifestNode(_Model):
    """A manifest entry (model, seed, snapshot, test, unit test, macro, exposure, ...).

    Every field is optional, so an odd entry in a section the replay only looks
    things up in cannot make the whole manifest unreadable.
    """

    resource_type: str | None = None
    name: str | None = None
    package_name: str | None = None
    original_file_path: str | None = None
    tags: StringList = Field(default_factory=list)
    config: NodeConfig = Field(default_factory=NodeConfig)
    depends_on: DependsOn = Field(default_factory=DependsOn)
    database: str | None = None
    schema_name: str | None = Field(default=None, validation_alias=AliasChoices("schema"))
    alias: str | None = None
    relation_name: str | None = None


class ManifestMetadata(_Model):
    """manifest.json ``metadata``."""

    dbt_schema_version: str
    dbt_version: str | None = None
    invocation_id: str | None = None
    project_name: str | None = None
    adapter_type: str | None = None


class Manifest(_Model):
    """The parts of manifest.json the replay uses: the graph and the node descriptions.

    Besides ``nodes``, results can name unit tests (dbt test/build), macros
    (dbt run-operation), exposures, saved queries and semantic models (no-op results).
    """

    metadata: ManifestMetadata
    nodes: dict[str, ManifestNode] = Field(default_factory=dict)
    unit_tests: dict[str, ManifestNode] = Field(default_factory=dict)
    macros: dict[str, ManifestNode] = Field(default_factory=dict)
    exposures: dict[str, ManifestNode] = Field(default_factory=dict)
    saved_queries: dict[str, ManifestNode] = Field(default_factory=dict)
    semantic_models: dict[str, ManifestNode] = Field(default_factory=dict)
    sources: dict[str, ManifestNode] = Field(default_factory=dict)

    @property
    def sections(self) -> tuple[dict[str, ManifestNode], ...]:
        """Every section a result's unique_id can live in, nodes first."""
        return (
            self.nodes,
            self.unit_tests,
            self.macros,
            self.exposures,
            self.saved_queries,
            self.semantic_models,
            self.sources,
        )

    def node(self, unique_id: str) -> ManifestNode | None:
        """Look a result's node up wherever the manifest keeps it.

        Args:
            unique_id: The node's unique id, as in run_results.json.

        Returns:
            The node, or None when the manifest does not describe it.
        """
        for section in self.sections:
            found = section.get(unique_id)
            if found is not None:
                return found
        return None


@dataclass(frozen=True)
class Artifacts:
    """The validated artifacts of one dbt invocation, with what was odd about them."""

    run_results: RunResults
    run_results_path: Path
    manifest: Manifest | None
    manifest_path: Path | None
    warnings: tuple[str, ...] = ()


def load_artifacts(target_dir: Path, manifest_path: Path | None = None) -> Artifacts:
    """Read a dbt target directory's run_results.json and its manifest.json.

    Args:
        target_dir: The directory dbt wrote its artifacts to (usually ``target/``).
            A path to a run_results.json file is accepted too.
        manifest_path: The manifest to use instead of the one beside run_results.json.

    Returns:
        The validated artifacts. A missing default manifest is not an error: the
        run still replays, flat, and a warning says so.

    Raises:
        ArtifactError: If run_results.json (or an explicitly named manifest) is
            missing, unreadable, not JSON, or not the dbt artifact it should be.
    """
    run_results_path = target_dir if target_dir.is_file() else target_dir / RUN_RESULTS_FILENAME
    warnings: list[str] = []
    run_results = load_run_results(run_results_path, warnings)
    explicit = manifest_path is not None
    manifest_path = manifest_path or run_results_path.with_name(MANIFEST_FILENAME)
    manifest: Manifest | None = None
    if explicit or manifest_path.exists():
        manifest = load_manifest(manifest_path, warnings)
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
    )


def load_run_results(path: Path, warnings: list[str] | None = None) -> RunResults:
    """Read and validate one run_results.json.

    Args:
        path: The file.
        warnings: A list that receives non-fatal remarks (a newer schema version).

    Returns:
        The validated run results.

    Raises:
        ArtifactError: If the file is missing, corrupt, or not a run_results artifact.
    """
    document = _read_json(path)
    _check_kind(path, document, "run-results", NEWEST_KNOWN_RUN_RESULTS_VERSION, warnings)
    run_results = _validate(RunResults, path, document)
    _check_results(path, run_results)
    return run_results


def load_manifest(path: Path, warnings: list[str] | None = None) -> Manifest:
    """Read and validate one manifest.json.

    Args:
        path: The file.
        warnings: A list that receives non-fatal remarks (a newer schema version).

    Returns:
        The validated manifest.

    Raises:
        ArtifactError: If the file is missing, corrupt, or not a manifest artifact.
    """
    document = _read_json(path)
    _check_kind(path, document, "manifest", NEWEST_KNOWN_MANIFEST_VERSION, warnings)
    return _validate(Manifest, path, document)


def _read_json(path: Path) -> dict[str, Any]:
    _check_looks_like_json(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ArtifactError(path, f"cannot be read: {exc.strerror or exc}") from None
    if not raw.strip():
        raise ArtifactError(path, "is empty")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ArtifactError(path, "is not JSON text (not UTF-8)") from None
    try:
        document = json.loads(text)
    except RecursionError:
        raise ArtifactError(path, "is not a dbt artifact (JSON nested too deeply)") from None
    except json.JSONDecodeError as exc:
        truncated = exc.pos >= len(text.rstrip())
        hint = "it ends early: was dbt interrupted while writing it?" if truncated else exc.msg
        raise ArtifactError(
            path, f"is not valid JSON at line {exc.lineno}, column {exc.colno} ({hint})"
        ) from None
    if not isinstance(document, dict):
        raise ArtifactError(
            path, f"is JSON but not a dbt artifact (top level is a {type(document).__name__})"
        )
    return document


def _check_looks_like_json(path: Path) -> None:
    """Refuse a file that cannot be a JSON object before reading it whole (it may be huge)."""
    try:
        with path.open("rb") as handle:
            head = handle.read(_PEEK_BYTES)
    except FileNotFoundError:
        raise ArtifactError(path, "not found (is this the target/ directory of a dbt run?)") from None
    except IsADirectoryError:
        raise ArtifactError(path, "is a directory, not a dbt artifact") from None
    except OSError as exc:
        raise ArtifactError(path, f"cannot be read: {exc.strerror or exc}") from None
    if head.startswith(_GIT_LFS_POINTER):
        raise ArtifactError(path, "is a Git LFS pointer, not the artifact; run `git lfs pull` first")
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text and not text.startswith(b"{"):
        raise ArtifactError(path, "is not a dbt artifact (a JSON object must start with '{')")


def _check_kind(
    path: Path, document: dict[str, Any], kind: str, newest: int, warnings: list[str] | None
) -> None:
    metadata = document.get("metadata")
    schema = metadata.get("dbt_schema_version") if isinstance(metadata, dict) else None
    match = _SCHEMA_VERSION.search(schema) if isinstance(schema, str) else None
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


_M = TypeVar("_M", bound=BaseModel)


def _validate(model: type[_M], path: Path, document: dict[str, Any]) -> _M:
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        raise ArtifactError(path, _describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False)
    first = errors[0]
    where = _location(first["loc"])
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return f"{where}: {first['msg']}{more}"


def _location(loc: Sequence[int | str]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "document"


def _check_results(path: Path, run_results: RunResults) -> None:
    if not run_results.results:
        raise ArtifactError(path, "has no results: the dbt command selected no nodes")
    seen: set[str] = set()
    for index, result in enumerate(run_results.results):
        if result.unique_id in seen:
            raise ArtifactError(path, f"results[{index}]: {result.unique_id} appears twice")
        seen.add(result.unique_id)
        for phase in result.timing:
            if phase.completed_at < phase.started_at:
                raise ArtifactError(
                    path,
                    f"results[{index}] ({result.unique_id}): {phase.name} timing ends before it starts",
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
