"""Golden digests of everything the tool produces for every real run, to prove a refactor changed nothing.

For each fixture run and each pair in ../shared/corpus, under two option sets, it
hashes the OTLP protobuf requests, the OTLP/JSON lines of --output, the OTLP/JSON
requests of http/json, and (default options) every view: the --dry-run tree, the
summary, the JSON summary, the waterfall (plain and coloured) and the HTML report.

    python -m tests.support.golden --write          # record the current code's digests
    python -m tests.support.golden --rev 639ab2d    # print another commit's digests (git worktree)

tests/test_golden.py recomputes them and compares with tests/golden/digests.json. The
few imports that moved during the restructuring are looked up under both names, so
the script also runs against commits before it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "fixtures" / "artifacts"
CORPUS = REPO.parent / "shared" / "corpus"
DIGESTS = REPO / "tests" / "golden" / "digests.json"
UPSTREAM = ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7")
RESOURCE = {"service.name": "dbt", "deployment.environment.name": "ci"}


def runs() -> dict[str, Path]:
    """Every real run: fixture runs and corpus pairs, by a stable name."""
    found = {
        f"fixture/{p.parent.relative_to(FIXTURES)}": p.parent for p in FIXTURES.rglob("run_results.json")
    }
    if CORPUS.is_dir():
        for pair in CORPUS.iterdir():
            if (pair / "run_results.json").exists():
                found[f"corpus/{pair.name}"] = pair
    return dict(sorted(found.items()))


def _first(*candidates: tuple[str, str]) -> Any:
    """The first importable ``module:attribute`` of several (old and new homes of one function)."""
    import importlib

    for module, name in candidates:
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
    raise ImportError(f"none of {candidates}")


def _digest(chunks: Iterable[bytes | str]) -> str:
    hasher = hashlib.sha256()
    for chunk in chunks:
        data = chunk.encode() if isinstance(chunk, str) else chunk
        hasher.update(len(data).to_bytes(8, "little"))
        hasher.update(data)
    return hasher.hexdigest()


def compute(names: Iterable[str] | None = None) -> dict[str, dict[str, str]]:
    """The digests of every run (or of the named ones), with the code importable as ``dbt_otel_replay``."""
    from dbt_otel_replay.artifacts import load_artifacts
    from dbt_otel_replay.plan import PlanOptions, TraceContext, plan_trace

    iter_requests = _first(
        ("dbt_otel_replay.export.protobuf", "iter_requests"),
        ("dbt_otel_replay.export.encode", "iter_requests"),
    )
    iter_json_requests = _first(
        ("dbt_otel_replay.export.otlp_json", "iter_json_requests"),
        ("dbt_otel_replay.export.encode_json", "iter_json_requests"),
    )
    iter_lines = _first(
        ("dbt_otel_replay.export.otlp_json", "iter_otlp_json_lines"),
        ("dbt_otel_replay.export.encode_json", "iter_otlp_json_lines"),
    )
    views = _views()
    options = {
        "default": PlanOptions(),
        "sql-critical-upstream": PlanOptions(
            upstream=TraceContext(UPSTREAM[0], UPSTREAM[1], tracestate=UPSTREAM[2]),
            include_sql=True,
            sql_max_chars=100,
            nesting="critical",
        ),
    }
    selected = runs()
    if names is not None:
        selected = {name: selected[name] for name in names}
    out: dict[str, dict[str, str]] = {}
    for name, directory in selected.items():
        for label, option in options.items():
            artifacts = load_artifacts(directory, include_sql=option.include_sql)
            plan = plan_trace(artifacts, option)
            prefix = str(directory)
            warnings = [w.replace(prefix, "DIR") for w in (*artifacts.warnings, *plan.warnings)]
            entry = {
                "protobuf": _digest(
                    r.payload + r.spans.to_bytes(4, "little") for r in iter_requests(plan, RESOURCE)
                ),
                "json_lines": _digest(iter_lines(plan, RESOURCE)),
                "json_requests": _digest(
                    r.payload + r.spans.to_bytes(4, "little") for r in iter_json_requests(plan, RESOURCE)
                ),
                "warnings": _digest(warnings),
            }
            if label == "default":
                entry.update({view: _digest([render(plan)]) for view, render in views.items()})
            out[f"{name} [{label}]"] = entry
    return out


def _views() -> dict[str, Callable[[Any], str]]:
    """Each view as a function of a plan, whichever module it lives in."""
    try:
        from dbt_otel_replay import views  # the views package (after the restructuring)

        return {
            "tree": views.render_tree,
            "summary": lambda plan: views.render_summary(plan, views.Outcome("sent somewhere", "tp")),
            "summary_json": lambda plan: json.dumps(
                views.summary_document(plan, "sent somewhere", ["a warning"]), indent=2
            ),
            "waterfall": lambda plan: views.render_waterfall(plan, width=120, color=False),
            "waterfall_color": lambda plan: views.render_waterfall(plan, width=100, color=True),
            "html": views.render_html,
        }
    except ImportError:
        from dbt_otel_replay.analysis import analyse
        from dbt_otel_replay.report import render_html
        from dbt_otel_replay.summary import Outcome, render_summary, render_tree, summary_document
        from dbt_otel_replay.waterfall import render_waterfall

        return {
            "tree": render_tree,
            "summary": lambda plan: render_summary(plan, Outcome("sent somewhere", "tp")),
            "summary_json": lambda plan: json.dumps(
                summary_document(plan, "sent somewhere", ["a warning"]), indent=2
            ),
            "waterfall": lambda plan: render_waterfall(plan, analyse(plan), width=120, color=False),
            "waterfall_color": lambda plan: render_waterfall(plan, analyse(plan), width=100, color=True),
            "html": lambda plan: render_html(plan, analyse(plan)),
        }


def at_revision(rev: str) -> dict[str, dict[str, str]]:
    """The digests another commit's code gives, computed in a subprocess from a temporary worktree."""
    with tempfile.TemporaryDirectory() as scratch:
        tree = Path(scratch) / "tree"
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree), rev],
            check=True,
            capture_output=True,
        )
        try:
            env = {**os.environ, "PYTHONPATH": str(tree)}  # its dbt_otel_replay before the installed one
            done = subprocess.run(
                [sys.executable, __file__, "--json"],
                env=env,
                cwd=tree,
                check=True,
                capture_output=True,
                text=True,
            )
            result: dict[str, dict[str, str]] = json.loads(done.stdout)
            return result
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"write {DIGESTS.relative_to(REPO)}")
    parser.add_argument("--rev", help="compute with another commit's code (from a git worktree)")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.json:  # at_revision's subprocess
        json.dump(compute(), sys.stdout)
        return
    digests = at_revision(args.rev) if args.rev else compute()
    text = json.dumps(digests, indent=1, sort_keys=True) + "\n"
    if args.write:
        DIGESTS.write_text(text)
        print(f"{len(digests)} entries written to {DIGESTS}", file=sys.stderr)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
