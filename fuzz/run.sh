#!/usr/bin/env bash
# A fuzzing campaign: every target (or the ones named) for SECONDS each,
# one after another, on a corpus that grows under fuzz/corpus/<target>
# (seeded from the checked-in vectors; not committed). Prints, per target,
# executions in total and per second, coverage (edges) and features at the
# end, and whether it found anything (then the input is in
# fuzz/artifacts/<target>/: make it a regression test). Exits non-zero if
# any target found something.
#
#   bash fuzz/run.sh 3600                         # one hour per target
#   bash fuzz/run.sh 600 sealed_shard manifest    # ten minutes, two targets
#   JOBS=2 bash fuzz/run.sh 600                   # two targets at a time
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:?usage: run.sh SECONDS [TARGET...]}"
shift
targets="${*:-$(bash targets.sh)}"
export RUSTC_BOOTSTRAP=1
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked --version 0.13.2
fi
cargo fuzz build -O
seeds=$(mktemp -d)
trap 'rm -rf "$seeds"' EXIT
bash seeds.sh "$seeds"
mkdir -p logs
jobs="${JOBS:-1}"
one() {
    local t="$1"
    mkdir -p "corpus/$t"
    cp -n "$seeds/$t"/* "corpus/$t/" 2>/dev/null || true
    if cargo fuzz run -O "$t" "corpus/$t" -- -max_total_time="$seconds" \
        -rss_limit_mb=2048 -print_final_stats=1 >"logs/$t.log" 2>&1; then
        echo clean >"logs/$t.result"
    else
        echo "FOUND (see fuzz/logs/$t.log)" >"logs/$t.result"
    fi
}
running=0
for t in $targets; do
    one "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        wait -n
        running=$((running - 1))
    fi
done
wait
printf '%-26s %12s %10s %8s %9s  %s\n' target executions exec/s edges features result
status=0
for t in $targets; do
    log="logs/$t.log"
    result=$(cat "logs/$t.result")
    [ "$result" = clean ] || status=1
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    printf '%-26s %12s %10s %8s %9s  %s\n' "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "$result"
done
exit $status
