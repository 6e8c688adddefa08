#!/usr/bin/env bash
# Make a local PostgreSQL 15 available for the dbt fixtures (idempotent).
#
# - As root: starts Debian's existing cluster 15/main if it is down
#   (initdb refuses to run as root, so we reuse the packaged cluster),
#   waits for it, then creates role + database `dbt_replay` if absent.
# - Not root: succeeds if the server is already reachable, fails otherwise.
#
# Env: DBT_PG_HOST (default 127.0.0.1), DBT_PG_PORT (default 5432),
#      PG_WAIT_SECONDS (default 30).
# All progress goes to stderr.
set -euo pipefail

HOST="${DBT_PG_HOST:-127.0.0.1}"
PORT="${DBT_PG_PORT:-5432}"
WAIT="${PG_WAIT_SECONDS:-30}"
PG_VERSION=15
PG_CLUSTER=main
ROLE=dbt_replay
DB=dbt_replay

log() { printf '[start-postgres] %s\n' "$*" >&2; }

# Debian puts pg_isready etc. in /usr/bin (wrappers) and /usr/lib/postgresql/15/bin.
PATH="$PATH:/usr/lib/postgresql/${PG_VERSION}/bin"

is_ready() { pg_isready -q -h "$HOST" -p "$PORT" >/dev/null 2>&1; }

wait_ready() {
  local i
  for ((i = 0; i < WAIT * 2; i++)); do
    if is_ready; then return 0; fi
    sleep 0.5
  done
  return 1
}

if [[ "$(id -u)" -ne 0 ]]; then
  if is_ready; then
    log "not root; PostgreSQL already reachable at $HOST:$PORT"
    exit 0
  fi
  log "not root and PostgreSQL is not reachable at $HOST:$PORT; start it as root or set DBT_PG_HOST/DBT_PG_PORT"
  exit 1
fi

as_postgres() {
  if command -v runuser >/dev/null 2>&1; then
    runuser -u postgres -- "$@"
  else
    su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
  fi
}

CLUSTER_PORT="$PORT"
local_cluster=0
if command -v pg_lsclusters >/dev/null 2>&1; then
  # Columns: Ver Cluster Port Status Owner Data-dir Log-file
  read -r status cport < <(pg_lsclusters -h 2>/dev/null \
    | awk -v v="$PG_VERSION" -v c="$PG_CLUSTER" '$1==v && $2==c {print $4, $3}') || true
  status="${status:-}"
  if [[ -n "$status" ]]; then
    local_cluster=1
    CLUSTER_PORT="${cport:-$PORT}"
  fi
fi

if [[ "$local_cluster" -eq 0 ]]; then
  if is_ready; then
    log "no local cluster $PG_VERSION/$PG_CLUSTER, but a server is reachable at $HOST:$PORT; using it as is"
    exit 0
  fi
  log "no local cluster $PG_VERSION/$PG_CLUSTER and nothing listening at $HOST:$PORT"
  exit 1
fi

if [[ "$status" == down* ]]; then
  if is_ready; then
    log "cluster $PG_VERSION/$PG_CLUSTER is down but another server answers at $HOST:$PORT; using it as is"
    exit 0
  fi
  log "starting cluster $PG_VERSION/$PG_CLUSTER (port $CLUSTER_PORT)"
  pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" "$PG_CLUSTER" start >&2
else
  log "cluster $PG_VERSION/$PG_CLUSTER is $status (port $CLUSTER_PORT)"
fi

log "waiting up to ${WAIT}s for $HOST:$PORT"
if ! wait_ready; then
  log "PostgreSQL did not become ready at $HOST:$PORT within ${WAIT}s"
  exit 1
fi
log "PostgreSQL is ready"

# Role and database. psql connects over the local socket as the postgres superuser
# (peer auth), on the cluster's own port.
psql_admin() { as_postgres psql -X -q -v ON_ERROR_STOP=1 -p "$CLUSTER_PORT" -d postgres "$@"; }

if [[ "$(psql_admin -tAc "select 1 from pg_roles where rolname = '${ROLE}'")" != "1" ]]; then
  log "creating role $ROLE"
  psql_admin -c "create role ${ROLE} with login password '${ROLE}'" >&2
else
  log "role $ROLE exists"
fi

if [[ "$(psql_admin -tAc "select 1 from pg_database where datname = '${DB}'")" != "1" ]]; then
  log "creating database $DB"
  psql_admin -c "create database ${DB} owner ${ROLE}" >&2
else
  log "database $DB exists"
fi

log "done: postgresql://${ROLE}@${HOST}:${PORT}/${DB}"
