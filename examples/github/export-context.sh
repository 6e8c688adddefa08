#!/usr/bin/env bash
# Hand the dbt run's trace context to the rest of a GitHub Actions job.
#
# Usage: export-context.sh CARRIER_FILE
#
# CARRIER_FILE is the traceparent file dbt-otel-replay wrote (TARGET_DIR/traceparent):
# TRACEPARENT=... and, only when the upstream context had one, TRACESTATE=... lines.
# Appends to the files GitHub Actions gives each step:
#   "$GITHUB_ENV"     TRACEPARENT=... [TRACESTATE=...]  -> environment of every later step of the job
#   "$GITHUB_OUTPUT"  traceparent=... [tracestate=...]  -> the step's (and the action's) outputs
# Nothing is written for TRACESTATE when the carrier has none. Exits 1, with a ::error::
# annotation and nothing appended, when the carrier is missing or holds no valid TRACEPARENT.
set -euo pipefail

fail() {
    echo "::error title=dbt-otel-replay::$*" >&2
    exit 1
}

[[ $# -eq 1 ]] || fail "usage: export-context.sh CARRIER_FILE"
carrier=$1
[[ -f $carrier ]] || fail "$carrier: no traceparent file (did dbt-otel-replay run?)"
[[ -n ${GITHUB_ENV:-} ]] || fail "GITHUB_ENV is not set (run this inside a GitHub Actions step)"
[[ -n ${GITHUB_OUTPUT:-} ]] || fail "GITHUB_OUTPUT is not set (run this inside a GitHub Actions step)"

traceparent=""
tracestate=""
while IFS= read -r line || [[ -n $line ]]; do
    line=${line#$'\xef\xbb\xbf'} # a byte order mark (Windows editors)
    line=${line%$'\r'}
    line=${line#export }
    key=${line%%=*}
    [[ $line == *=* ]] || continue
    value=${line#*=}
    # Lenient like --traceparent-from: strip one pair of surrounding quotes.
    if [[ ${#value} -ge 2 && ${value:0:1} == "${value: -1}" && ${value:0:1} == [\"\'] ]]; then
        value=${value:1:${#value}-2}
    fi
    case $key in
    TRACEPARENT) traceparent=$value ;;
    TRACESTATE) tracestate=$value ;;
    esac
done <"$carrier"

[[ -n $traceparent ]] || fail "$carrier: no TRACEPARENT=... line"
[[ $traceparent =~ ^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$ ]] ||
    fail "$carrier: TRACEPARENT '$traceparent' is not a W3C traceparent"

# Append the lines in one open with >> (never a replacement: a symlink, a device or a FIFO
# stays what it is, and a symlink's target is what grows), starting on a fresh line if an
# earlier step left the file without a final newline. Only a regular file is read back for
# that: a FIFO's or a device's last byte is not there to read. A FIFO waits for its reader.
append() {
    local file=$1 unterminated=false
    shift
    if [[ -f $file && -s $file && -n $(tail -c 1 "$file") ]]; then
        unterminated=true
    fi
    {
        if $unterminated; then printf '\n'; fi
        printf '%s\n' "$@"
    } >>"$file"
}

env_lines=("TRACEPARENT=$traceparent")
output_lines=("traceparent=$traceparent")
if [[ -n $tracestate ]]; then
    env_lines+=("TRACESTATE=$tracestate")
    output_lines+=("tracestate=$tracestate")
fi
append "$GITHUB_ENV" "${env_lines[@]}"
append "$GITHUB_OUTPUT" "${output_lines[@]}"
echo "later steps join trace ${traceparent:3:32} (TRACEPARENT=$traceparent)"
