#!/usr/bin/env bash
# Install everything into .venv at the locked versions (requirements/), start the local
# PostgreSQL the end-to-end tests need, then run the linters, the type checker and the whole
# test suite. CI runs exactly this.
# Extra arguments go to pytest (e.g. `bash scripts/test.sh -k contract`).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if [[ ! -x .venv/bin/python ]]; then
  "$PYTHON" -m venv .venv
fi
# (this machine's pip prints a warning per package for an unused local index; keep the rest)
pip_into() {
  local venv="$1"
  shift
  "$venv/bin/python" -m pip install --quiet "$@" 2> >(grep -v '^WARNING: Location' >&2)
}
# Every version, pip's included, comes from the lock: a clone installs the same ones today and in
# six months. `bash scripts/lock.sh` refreshes requirements/ from scratch.
pip_into .venv -c requirements/constraints.txt pip
pip_into .venv -c requirements/constraints.txt -e '.[dev]'

bash scripts/start-postgres.sh

# Debian's packages some tests use, which skip without them: headless Chromium for the HTML report,
# and the linter of the GitHub Action's shell scripts (Debian's shellcheck).
missing=()
[[ -x /usr/bin/chromium ]] || missing+=(chromium)
command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck)
if [[ ${#missing[@]} -gt 0 && "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
  echo "== installing Debian's ${missing[*]} for the tests" >&2
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The Airflow recipe is parsed and run (dag.test) with a real Airflow, in a venv of its own
# (Airflow's pins clash with dbt's), locked too: Airflow's own constraint files are not reachable
# from here, so requirements/airflow-constraints.txt (made by scripts/lock.sh) stands in for them.
[[ -x .venv-airflow/bin/python ]] || "$PYTHON" -m venv .venv-airflow
pip_into .venv-airflow -c requirements/airflow-constraints.txt pip
pip_into .venv-airflow -c requirements/airflow-constraints.txt apache-airflow
export AIRFLOW_PYTHON="$PWD/.venv-airflow/bin/python"

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/python -m pytest "$@"

# The release as it would be published: the sdist, and the wheel built from it, pass `twine check`;
# the wheel, installed from the lock into a clean venv, replays the fixture run.
if [[ $# -eq 0 ]]; then
  echo "== sdist and wheel: build, twine check, install in a clean venv, replay the fixture" >&2
  dist="$(mktemp -d)"
  .venv/bin/python -m build --outdir "$dist" . >"$dist/build.log" 2>&1 || { cat "$dist/build.log" >&2; exit 1; }
  .venv/bin/twine check --strict "$dist"/*.tar.gz "$dist"/*.whl
  "$PYTHON" -m venv "$dist/venv"
  pip_into "$dist/venv" -c requirements/constraints.txt pip
  pip_into "$dist/venv" -c requirements/constraints.txt "$dist"/*.whl
  (cd "$dist" && venv/bin/dbt-otel-replay "$OLDPWD/fixtures/artifacts/build" --output trace.json \
    --traceparent-to traceparent --markdown summary.md --quiet)
  grep -q '"resourceSpans"' "$dist/trace.json"
  grep -q '^### dbt-otel-replay: dbt build' "$dist/summary.md"
  rm -rf "$dist"
fi

# The package supports Python 3.10, whose datetime.fromisoformat rejects dbt's 'Z' timestamps.
# Where this machine has a 3.10 (system or pyenv), run the tests that need neither dbt nor rotel
# (the in-process OTLP receiver is enough) under it too, with every runtime dependency at the
# lower bound pyproject.toml declares (requirements/lowest.txt), so that those bounds are tested
# (gRPC's C core words its errors otherwise at grpcio 1.49, and a stop behaved otherwise there);
# everything else is locked in requirements/lowest-py310.txt.
PYTHON310="$(bash scripts/find-python310.sh)"
if [[ -n "$PYTHON310" && $# -eq 0 ]]; then
  echo "== Python 3.10 ($PYTHON310), lowest dependencies: artifacts, dbt's log, planning, encoding, export, CLI, ledger, TLS, signals, every documented error" >&2
  [[ -x .venv310/bin/python ]] || "$PYTHON310" -m venv .venv310
  pip_into .venv310 -c requirements/lowest-py310.txt pip
  pip_into .venv310 -c requirements/lowest.txt -c requirements/lowest-py310.txt -e . pytest hypothesis pyyaml
  .venv310/bin/python -m pytest -p no:cacheprovider \
    tests/test_timestamps.py tests/test_artifacts.py tests/test_plan.py tests/test_contract.py \
    tests/test_quirks.py tests/test_propagation.py tests/test_config.py tests/test_encode.py tests/test_cli.py \
    tests/test_export.py tests/test_secrets.py tests/test_escapes.py tests/test_outputs.py \
    tests/test_dbtlog.py tests/test_sqlsummary.py tests/test_inside.py tests/test_ledger.py \
    tests/test_misconfig.py tests/test_tls.py tests/test_signals.py tests/test_troubleshooting.py
elif [[ $# -eq 0 ]]; then
  echo "== no Python 3.10 on this machine: the 3.10 run is skipped" >&2
fi
