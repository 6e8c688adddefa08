#!/usr/bin/env bash
# Install everything into .venv, start the local PostgreSQL the end-to-end tests need,
# then run the linters, the type checker and the whole test suite. CI runs exactly this.
# Extra arguments go to pytest (e.g. `bash scripts/test.sh -k contract`).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if [[ ! -x .venv/bin/python ]]; then
  "$PYTHON" -m venv .venv
fi
# (this machine's pip prints a warning per package for an unused local index; keep the rest)
quiet_pip() { .venv/bin/python -m pip install --quiet "$@" 2> >(grep -v '^WARNING: Location' >&2); }
quiet_pip --upgrade pip
quiet_pip -e '.[dev]'

bash scripts/start-postgres.sh

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
