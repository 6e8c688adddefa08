"""docs/cli.md is what scripts/gen_cli_docs.py makes of the commands' --help, at any terminal width."""

from __future__ import annotations

import difflib
import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "cli.md"
STALE = "docs/cli.md is out of date: run python scripts/gen_cli_docs.py"


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_cli_docs", REPO / "scripts" / "gen_cli_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_docs_cli_md_is_up_to_date() -> None:
    expected = generator().render()
    actual = DOC.read_text(encoding="utf-8")
    if actual != expected:
        diff = difflib.unified_diff(
            actual.splitlines(), expected.splitlines(), "docs/cli.md", "generated", lineterm="", n=1
        )
        pytest.fail(STALE + "\n" + "\n".join(list(diff)[:60]), pytrace=False)


def test_the_help_is_rendered_at_a_fixed_width(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "50")
    narrow = generator().render()
    monkeypatch.setenv("COLUMNS", "200")
    assert generator().render() == narrow


def test_every_option_and_removed_form_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    for command in ("replay", "backfill", "resend"):
        assert f"## `dbt-otel-replay {command}`" in text
    for message in ("several TARGET_DIRs: use", "--recursive moved: use", "--resend moved: use"):
        assert f"dbt-otel-replay: error: {message}" in text
    assert "Implied by --dry-run, except with --format json." in text


def test_check_mode_reports_a_stale_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = generator()
    stale = tmp_path / "cli.md"
    stale.write_text("# old\n", encoding="utf-8")
    monkeypatch.setattr(module, "DOC", stale)
    monkeypatch.setattr("sys.argv", ["gen_cli_docs.py", "--check"])
    assert module.main() == 1
    monkeypatch.setattr("sys.argv", ["gen_cli_docs.py"])
    assert module.main() == 0 and stale.read_text(encoding="utf-8") == module.render()
    monkeypatch.setattr("sys.argv", ["gen_cli_docs.py", "--check"])
    assert module.main() == 0
