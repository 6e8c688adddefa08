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

# The HTML report is checked in headless Chromium (Debian's package); its tests skip without it.
if [[ ! -x /usr/bin/chromium && "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
  echo "== installing Debian's chromium for the HTML report tests" >&2
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

# The Airflow recipe is parsed and run (dag.test) with a real Airflow, in a venv of its own
# (Airflow's pins clash with dbt's). Pinned: its constraint files are not reachable from here.
if [[ ! -x .venv-airflow/bin/airflow ]]; then
  "$PYTHON" -m venv .venv-airflow
  .venv-airflow/bin/python -m pip install --quiet "apache-airflow==2.10.5" 2> >(grep -v '^WARNING: Location' >&2)
fi
export AIRFLOW_PYTHON="$PWD/.venv-airflow/bin/python"

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/python -m pytest "$@"

# The package supports Python 3.10, whose datetime.fromisoformat rejects dbt's 'Z' timestamps.
# Where this machine has a 3.10 (system or pyenv), run the tests that need neither dbt nor a
# collector under it too.
find_python310() {
  if python3.10 -c '' 2>/dev/null; then command -v python3.10; return; fi
  if command -v pyenv >/dev/null 2>&1; then
    local version
    version="$(pyenv versions --bare 2>/dev/null | grep -E '^3\.10(\.|$)' | tail -n 1)"
    if [[ -n "$version" ]]; then echo "$(pyenv root)/versions/$version/bin/python3.10"; fi
  fi
}
PYTHON310="$(find_python310 || true)"
if [[ -n "$PYTHON310" && $# -eq 0 ]]; then
  echo "== Python 3.10 ($PYTHON310): artifact reading, planning, encoding and the CLI" >&2
  [[ -x .venv310/bin/python ]] || "$PYTHON310" -m venv .venv310
  .venv310/bin/python -m pip install --quiet -e . pytest hypothesis pyyaml \
    2> >(grep -v '^WARNING: Location' >&2)
  .venv310/bin/python -m pytest -p no:cacheprovider \
    tests/test_timestamps.py tests/test_artifacts.py tests/test_plan.py tests/test_contract.py \
    tests/test_quirks.py tests/test_propagation.py tests/test_config.py tests/test_encode.py tests/test_cli.py
elif [[ $# -eq 0 ]]; then
  echo "== no Python 3.10 on this machine: the 3.10 run is skipped" >&2
fi
