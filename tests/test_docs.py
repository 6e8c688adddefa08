"""The docs say what the code does: generated tables are current, and they match what is emitted."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from dbt_otel_replay import attributes as attr
from dbt_otel_replay.artifacts import load_artifacts
from dbt_otel_replay.plan import PlanOptions, plan_trace
from dbt_otel_replay.replay import ReplayOptions, prepare
from dbt_otel_replay.spans import SpanRole
from tests.support.logs import with_a_failing_hook

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "fixtures" / "artifacts"
LOG_FIXTURES = REPO / "fixtures" / "logs"
CONTRACT = REPO / "docs" / "trace-contract.md"
_ROW = re.compile(r"^\| ([a-z, ]+) \| `([^`]+)` \|", re.MULTILINE)


def test_generated_doc_blocks_are_current() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen_docs.py"), "--check"], capture_output=True, text=True
    )
    assert done.returncode == 0, f"{done.stderr.strip()}: run python scripts/gen_docs.py"


def documented() -> set[tuple[str, str]]:
    """(span kind, key) for every row of the attribute table in docs/trace-contract.md."""
    table = CONTRACT.read_text().split("## Attributes", 1)[1].split("\n## ", 1)[0]
    return {(kind.strip(), key) for kinds, key in _ROW.findall(table) for kind in kinds.split(",")}


def _every_field(run_results: Path) -> None:
    """Give a fixture run the fields a plain dbt build leaves empty: vars, a target and the other
    arguments, DBT_ENV_CUSTOM_ENV_ variables, a microbatch model, a warehouse's query and job ids and
    costs, a node's owner and group, so that every documented attribute has a source."""
    document: dict[str, Any] = json.loads(run_results.read_text())
    document["args"].update(
        {
            "vars": {"day": "2024-05-01"},
            "target": "prod",
            "select": ["tag:nightly"],
            "exclude": ["tag:slow"],
            "selector": "nightly",
            "full_refresh": True,
            "threads": 4,
            "state": "prod-artifacts",
            "defer": True,
        }
    )
    document["metadata"]["env"] = {"JOB_ID": "4711"}
    first = document["results"][0]
    first["batch_results"] = {"successful": [["2024-01-01", "2024-01-02"]], "failed": [["a", "b"]]}
    first["adapter_response"].update(
        {"query_id": "q1", "job_id": "j1", "bytes_processed": 10, "bytes_billed": 20, "slot_ms": 30}
    )
    run_results.write_text(json.dumps(document))
    manifest_path = run_results.with_name("manifest.json")
    manifest: dict[str, Any] = json.loads(manifest_path.read_text())
    for node in [n for n in manifest["nodes"].values() if n.get("resource_type") == "model"][:1]:
        node.update({"meta": {"owner": "data-platform"}, "group": "finance"})
    manifest_path.write_text(json.dumps(manifest))


def emitted(tmp_path: Path) -> set[tuple[str, str]]:
    """(span kind, key) of every attribute the planner emits on the fixture runs, SQL included."""
    keys: set[tuple[str, str]] = set()
    for run_results in sorted(FIXTURES.rglob("run_results.json")):
        target = tmp_path / run_results.parent.relative_to(FIXTURES)
        shutil.copytree(run_results.parent, target)
        _every_field(target / "run_results.json")
        plan = plan_trace(load_artifacts(target, include_sql=True), PlanOptions(include_sql=True))
        for span in plan.spans:
            keys |= {(span.role.value, _templated(key)) for key in span.attributes}
            keys |= {("event", key) for event in span.events for key in event.attributes}
            keys |= {("link", key) for link in span.links for key in link.attributes}
        assert plan.spans[0].role is SpanRole.INVOCATION
        # what the invocation says when --phases, --select or --min-duration dropped spans
        shaped = plan_trace(load_artifacts(target), PlanOptions(phases="none", min_duration=0.1))
        keys |= {("invocation", _templated(key)) for key in shaped.invocation.attributes}
    # the spans dbt's log adds inside the nodes: every scenario of fixtures/logs, SQL included, one
    # whose log also has what a PostgreSQL run never writes (a query id, an early connection), and
    # one whose project hook failed
    targets = [
        *sorted(LOG_FIXTURES.glob("*/target")),
        _warehouse_lines(tmp_path / "warehouse"),
        with_a_failing_hook(LOG_FIXTURES / "dbt-1.8-text", tmp_path / "failing-hook"),
    ]
    for target in targets:
        options = ReplayOptions(dry_run=True, plan=PlanOptions(include_sql=True))
        plan = prepare(target, options).plan
        for span in plan.spans:
            keys |= {(span.role.value, _templated(key)) for key in span.attributes}
    return keys


def _templated(key: str) -> str:
    """A key as the table names it: ``dbt.env.JOB_ID`` is one of ``dbt.env.<name>``."""
    return attr.ENV_PREFIX + "<name>" if key.startswith(attr.ENV_PREFIX) else key


def _warehouse_lines(directory: Path) -> Path:
    """dbt-1.11-text with two lines other adapters write: a Snowflake query id after a statement's
    status, and a connection opened before a node's first statement (as for a Python model)."""
    shutil.copytree(LOG_FIXTURES / "dbt-1.11-text", directory)
    log = directory / "logs" / "dbt.log"
    lines = log.read_text().split("\n")
    build = max(i for i, line in enumerate(lines) if line.startswith("=" * 30))  # the last invocation
    first = next(
        i for i in range(build, len(lines)) if "[Thread-2 (]: On model.replay_logs.parallel_a: " in lines[i]
    )
    opened = (
        lines[first - 1][:19] + " [debug] [Thread-2 (]: Opening a new connection, currently in state init"
    )
    status = next(i for i in range(first, len(lines)) if "[Thread-2 (]: SQL status: " in lines[i])
    query_id = lines[status][:19] + " [debug] [Thread-2 (]: Snowflake adapter: Snowflake query id: 01b2-test"
    lines[status + 1 : status + 1] = [query_id]
    lines[first:first] = [opened]
    log.write_text("\n".join(lines))
    return directory / "target"


def test_the_attribute_table_lists_exactly_what_the_planner_emits(tmp_path: Path) -> None:
    table = documented()
    spans = {row for row in table if row[0] != "resource"}
    assert spans == emitted(tmp_path)
    # the resource: service.name, and what cicontext reads from the CI (tests/test_cicontext.py)
    assert {key for kind, key in table if kind == "resource"} == {"service.name", *attr.CI_RESOURCE_KEYS}


README_LIMIT_BYTES = 12 * 1024
_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_the_readme_stays_short() -> None:
    assert len((REPO / "README.md").read_bytes()) <= README_LIMIT_BYTES, "move reference material to docs/"


def test_relative_links_in_the_docs_lead_to_files() -> None:
    pages = [REPO / "README.md", REPO / "CONTRIBUTING.md", *sorted((REPO / "docs").glob("*.md"))]
    broken = [
        f"{page.relative_to(REPO)}: {target}"
        for page in pages
        for target in _LINK.findall(page.read_text())
        if "://" not in target and not (page.parent / target).exists()
    ]
    assert not broken
    assert len(pages) > 5
