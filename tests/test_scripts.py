"""The project's own shell scripts (CI, tests, lock, fixtures) pass shellcheck."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = sorted([*REPO.glob("scripts/*.sh"), REPO / ".ci" / "run", *REPO.glob("fixtures/*.sh")])


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(REPO)))
def test_script_passes_shellcheck(script: Path) -> None:
    done = subprocess.run(
        ["shellcheck", "-x", "--shell=bash", str(script)], capture_output=True, text=True, cwd=REPO
    )
    assert done.returncode == 0, done.stdout


def test_every_script_is_found() -> None:
    assert {p.name for p in SCRIPTS} >= {"test.sh", "lock.sh", "start-postgres.sh", "run"}
