#!/usr/bin/env bash
# The replay step of the dbt-otel-replay GitHub Action (action.yml); also usable on its own.
#
# Replays the dbt run in $INPUT_TARGET, then hands its trace context to later steps with
# export-context.sh, also when the export failed (exit 3: the carrier is written all the same).
# Exits with dbt-otel-replay's exit code.
#
# Environment (all optional):
#   INPUT_TARGET        dbt's target directory (or a run_results.json path); default: target
#   INPUT_ENDPOINT      --endpoint: the collector's base URL (else OTEL_EXPORTER_OTLP_* decide)
#   INPUT_TRACES_ENDPOINT  --traces-endpoint: the full traces URL, used as is
#   INPUT_PROTOCOL      --protocol: grpc, http/protobuf or http/json
#   INPUT_HEADERS       KEY=VALUE headers, one per line (values may then hold commas) or
#                       comma-separated on one line; each becomes --header
#   INPUT_SERVICE_NAME  --service-name
#   INPUT_ARGS          further options, split on whitespace (e.g. --timeout 30 --include-sql)
#   DBT_OTEL_REPLAY     the command to run; default: dbt-otel-replay
# The upstream context, if any, comes from TRACEPARENT / TRACESTATE in the environment.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
target=${INPUT_TARGET:-target}
if [[ -d $target ]]; then
    carrier=$target/traceparent
else
    carrier=$(dirname "$target")/traceparent
fi

# The command named: a target directory called like a command (e.g. backfill) is still replayed.
args=(replay "$target" --traceparent-to "$carrier")
[[ -z ${INPUT_ENDPOINT:-} ]] || args+=(--endpoint "$INPUT_ENDPOINT")
[[ -z ${INPUT_TRACES_ENDPOINT:-} ]] || args+=(--traces-endpoint "$INPUT_TRACES_ENDPOINT")
[[ -z ${INPUT_PROTOCOL:-} ]] || args+=(--protocol "$INPUT_PROTOCOL")
[[ -z ${INPUT_SERVICE_NAME:-} ]] || args+=(--service-name "$INPUT_SERVICE_NAME")
headers=${INPUT_HEADERS:-}
headers=${headers//$'\r'/}
if [[ $headers != *$'\n'* ]]; then
    headers=${headers//,/$'\n'} # one line: comma-separated (as in OTEL_EXPORTER_OTLP_HEADERS)
fi
while IFS= read -r header; do
    header=${header#"${header%%[![:space:]]*}"} # trim leading blanks
    header=${header%"${header##*[![:space:]]}"} # trim trailing blanks
    [[ -n $header ]] || continue
    if [[ ${GITHUB_ACTIONS:-} == true && $header == *=?* ]]; then
        echo "::add-mask::${header#*=}" # never show a header value (API key) in the log
    fi
    args+=(--header "$header")
done <<<"$headers"
if [[ -n ${INPUT_ARGS:-} ]]; then
    read -r -a extra <<<"$INPUT_ARGS"
    args+=("${extra[@]}")
fi

# A carrier left by an earlier run in a reused workspace must not be handed on. Only a regular
# file is removed: never a device, a FIFO or a symlink someone put there.
if [[ -f $carrier && ! -L $carrier ]]; then rm -f -- "$carrier"; fi
status=0
"${DBT_OTEL_REPLAY:-dbt-otel-replay}" "${args[@]}" || status=$?
if [[ -f $carrier ]]; then
    bash "$here/export-context.sh" "$carrier" || status=$((status ? status : 1))
else
    echo "::warning title=dbt-otel-replay::no trace context to hand on (exit $status, see above)" >&2
fi
exit "$status"
