"""The trace contract, checked span by span on every real artifact pair we have.

One parametrized test, one case per folder of real artifacts: the fixture
project's runs (dbt build, run and test against PostgreSQL) and every pair in
the shared corpus of public dbt projects, read in place.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from dbt_otel_replay.cli import main
from tests.support.contract import check_contract, from_otlp_json_lines, load_pair

REPO = Path(__file__).resolve().parents[1]
FIXTURE_ROOT = REPO / "fixtures" / "artifacts"
FIXTURE_RUNS = sorted(p.parent for p in FIXTURE_ROOT.rglob("run_results.json"))
CORPUS = REPO.parent / "shared" / "corpus"
CORPUS_PAIRS = (
    sorted(p for p in CORPUS.iterdir() if (p / "run_results.json").exists()) if CORPUS.is_dir() else []
)


def _replay_to_file(target: Path, tmp_path: Path) -> str:
    out = tmp_path / "trace.jsonl"
    result = CliRunner().invoke(
        main, [str(target), "--output", str(out), "--traceparent-to", str(tmp_path / "tp")]
    )
    assert result.exit_code == 0, result.output
    return out.read_text()


@pytest.mark.parametrize("target", FIXTURE_RUNS, ids=lambda p: f"fixture-{p.relative_to(FIXTURE_ROOT)}")
def test_fixture_runs_follow_the_contract(target: Path, tmp_path: Path) -> None:
    run_results, manifest = load_pair(target)
    spans = from_otlp_json_lines(_replay_to_file(target, tmp_path))
    by_uid = check_contract(run_results, manifest, spans)
    assert len(by_uid) == len(run_results["results"])


@pytest.mark.skipif(not CORPUS_PAIRS, reason=f"the shared corpus is absent ({CORPUS})")
@pytest.mark.parametrize("target", CORPUS_PAIRS, ids=lambda p: p.name)
def test_corpus_pairs_follow_the_contract(target: Path, tmp_path: Path) -> None:
    run_results, manifest = load_pair(target)
    spans = from_otlp_json_lines(_replay_to_file(target, tmp_path))
    check_contract(run_results, manifest, spans)
