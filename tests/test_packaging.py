"""The declared dependencies are what the code imports, and requirements/ holds real locks.

pyproject.toml once required pydantic (never imported) and the OpenTelemetry SDK (only the
examples use it) but not protobuf, grpcio or requests, which the package does import; and with
nothing locked, a fresh clone picked up a msgspec that broke its own tests. These tests keep the
runtime dependencies exactly what ``dbt_otel_replay`` imports, every lock file pinned, and the
lowest-versions run (requirements/lowest.txt) at exactly the lower bounds pyproject.toml declares.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import re
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

tomllib = pytest.importorskip("tomllib")  # Python 3.11+; the 3.10 run does not collect this file

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "dbt_otel_replay"
REQUIREMENTS = ROOT / "requirements"
LOCKS = ["constraints.txt", "airflow-constraints.txt", "lowest.txt", "lowest-py310.txt"]
PIN = re.compile(r"(?P<name>[a-z0-9]+(?:-[a-z0-9]+)*)==(?P<version>\S+)")


def project() -> dict[str, object]:
    with (ROOT / "pyproject.toml").open("rb") as handle:
        table: dict[str, object] = tomllib.load(handle)["project"]
    return table


def runtime_requirements() -> dict[NormalizedName, Requirement]:
    dependencies = project()["dependencies"]
    assert isinstance(dependencies, list)
    requirements = [Requirement(text) for text in dependencies]
    return {canonicalize_name(r.name): r for r in requirements}


def imported_modules() -> set[str]:
    """Every module the package imports by absolute name, at the top or inside a function."""
    modules: set[str] = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                modules.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module)
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute | ast.Name)
                and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id)
                in ("import_module", "__import__")
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                modules.add(node.args[0].value)
    return modules


def distributions_providing(module: str) -> set[NormalizedName]:
    """The installed distributions that hold ``module``'s files.

    A namespace package (``google``, ``opentelemetry``) is shared by several distributions, so
    the one is chosen whose files include the imported module itself.
    """
    top = module.partition(".")[0]
    candidates = _packages_distributions().get(top, [])
    assert candidates, f"{module} is imported but no installed distribution provides {top!r}"
    if len(set(candidates)) == 1:
        return {canonicalize_name(candidates[0])}
    stem = module.replace(".", "/")
    providing: set[NormalizedName] = set()
    for name in set(candidates):
        files = importlib.metadata.distribution(name).files
        assert files is not None, f"{name} lists no files: cannot tell whether it provides {module}"
        if any(str(f).startswith(f"{stem}/") or str(f).startswith(f"{stem}.") for f in files):
            providing.add(canonicalize_name(name))
    assert len(providing) == 1, f"{module}: provided by {sorted(providing)} of {sorted(candidates)}"
    return providing


@functools.cache
def _packages_distributions() -> dict[str, list[str]]:
    return dict(importlib.metadata.packages_distributions())


def third_party(module: str) -> bool:
    top = module.partition(".")[0]
    return top not in sys.stdlib_module_names and top != PACKAGE.name


def pins(name: str) -> dict[str, str]:
    """A lock file's pins, name to version; every line but comments must be ``name==version``."""
    found: dict[str, str] = {}
    for number, line in enumerate((REQUIREMENTS / name).read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        pin = PIN.fullmatch(line)
        assert pin, f"requirements/{name}:{number}: {line!r} is not a normalised name==version pin"
        assert pin["name"] not in found, f"requirements/{name}:{number}: {pin['name']} pinned twice"
        Version(pin["version"])  # a version pip can compare
        found[pin["name"]] = pin["version"]
    return found


def lower_bound(requirement: Requirement) -> Version:
    bounds = [Version(s.version) for s in requirement.specifier if s.operator == ">="]
    assert len(bounds) == 1, f"{requirement}: a runtime dependency needs one '>=' lower bound, tested"
    return bounds[0]


def test_runtime_dependencies_are_exactly_what_the_package_imports() -> None:
    imported = {m for m in imported_modules() if third_party(m)}
    needed: dict[NormalizedName, set[str]] = {}
    for module in sorted(imported):
        for distribution in distributions_providing(module):
            needed.setdefault(distribution, set()).add(module)
    declared = set(runtime_requirements())
    missing = {d: sorted(m) for d, m in needed.items() if d not in declared}
    assert not missing, f"imported but not in [project].dependencies: {missing}"
    assert declared <= set(needed), f"declared but never imported: {sorted(declared - set(needed))}"


def test_the_import_walk_sees_imports_inside_functions() -> None:
    """The exporters import grpc, requests and the protobuf modules lazily, in functions."""
    modules = imported_modules()
    assert {"click", "msgspec", "grpc", "requests"} <= modules
    assert any(m.startswith("google.rpc") for m in modules)
    assert any(m.startswith("opentelemetry.proto") for m in modules)


@pytest.mark.parametrize("name", LOCKS)
def test_lock_files_pin_every_line(name: str) -> None:
    locked = pins(name)
    assert locked, f"requirements/{name} pins nothing"
    assert "dbt-otel-replay" not in locked, "the package itself is installed from the work tree"
    if name != "lowest.txt":
        assert "pip" in locked, f"requirements/{name} must pin pip too"


def test_lowest_pins_exactly_the_runtime_dependencies_at_their_lower_bounds() -> None:
    expected = {name: lower_bound(r) for name, r in runtime_requirements().items()}
    lowest = {name: Version(version) for name, version in pins("lowest.txt").items()}
    assert lowest == expected, "run `bash scripts/lock.sh` after changing a lower bound"
    py310 = {name: Version(version) for name, version in pins("lowest-py310.txt").items()}
    assert {name: py310.get(name) for name in expected} == expected, "lowest-py310.txt is stale"


def test_the_lock_satisfies_pyproject() -> None:
    """Every requirement of the package and its extras is pinned, at a version it accepts."""
    locked = pins("constraints.txt")
    optional = project()["optional-dependencies"]
    assert isinstance(optional, dict)
    requirements = [
        *runtime_requirements().values(),
        *(Requirement(t) for group in optional.values() for t in group),
    ]
    for requirement in requirements:
        name = canonicalize_name(requirement.name)
        if name == "dbt-otel-replay":
            continue  # an extra naming another
        assert name in locked, f"{requirement} is not in requirements/constraints.txt: run scripts/lock.sh"
        assert requirement.specifier.contains(locked[name], prereleases=True), (
            f"requirements/constraints.txt pins {name}=={locked[name]}, outside {requirement}"
        )


HEAVY_MODULES = ("grpc", "requests", "google.protobuf", "opentelemetry")
"""Imported only to send or to convert: a replay written to a file must not pay for them."""


def test_a_replay_to_a_file_imports_no_transport_and_no_protobuf(tmp_path: Path) -> None:
    import subprocess

    args = [str(ROOT / "fixtures/artifacts/build"), "-q", "-o", str(tmp_path / "t.json")]
    args += ["--traceparent-to", str(tmp_path / "tp")]
    code = (
        "import sys; from dbt_otel_replay.cli import main\n"
        f"try: main({args!r})\n"
        "except SystemExit as end: assert end.code == 0, end.code\n"
        "print(sorted(m for m in sys.modules if m.startswith(HEAVY)))"
    )
    heavy = tuple(f"{name}{end}" for name in HEAVY_MODULES for end in (".", ""))
    done = subprocess.run(
        [sys.executable, "-c", f"HEAVY = {heavy!r}\n{code}"], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout
    assert (tmp_path / "t.json").stat().st_size > 0
