#!/usr/bin/env bash
# Builds every fuzz target and runs each for SECONDS (default 10), seeded
# with the checked-in vectors (seeds.sh). Used by CI. Any crash (a panic
# or an abort), out-of-memory or timeout the fuzzer reports fails it: the
# fuzzer's own exit status decides, never a filtered log. Built without a
# sanitizer (`-s none`): the parsers are safe Rust, AddressSanitizer would
# not see into the C code cargo-fuzz does not instrument, and it cost CI
# two of its five build minutes (docs/decisions.md D54). `run.sh`, the
# campaign, keeps AddressSanitizer.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-10}"
export RUSTC_BOOTSTRAP=1   # sanitizer flags on the stable toolchain
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked --version 0.13.2
fi
cargo fuzz build -O -s none
corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
bash seeds.sh "$corpus"
# Targets run side by side, one per core (FUZZ_JOBS, default nproc): each
# still gets a core for its full SECONDS, and CI's wall time halves on 2.
jobs="${FUZZ_JOBS:-$(nproc)}"
run_one() {
    local t="$1" log="$corpus/$1.log"
    if cargo fuzz run -O -s none "$t" "$corpus/$t" -- -max_total_time="$seconds" -rss_limit_mb=2048 >"$log" 2>&1; then
        touch "$corpus/$t.ok"
    fi
}
targets=$(bash targets.sh)
for t in $targets; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do
        wait -n || true
    done
    echo "fuzz $t for ${seconds}s"
    run_one "$t" &
done
wait
failed=""
for t in $targets; do
    log="$corpus/$t.log"
    if [ -e "$corpus/$t.ok" ]; then
        echo "$t: $(grep -E '^(Done|INFO: seed corpus)' "$log" | tr '\n' ' ')"
    else
        tail -n 60 "$log"
        echo "FAILED: fuzz target $t (the input is in fuzz/artifacts/$t/)"
        failed="$failed $t"
    fi
done
if [ -n "$failed" ]; then
    echo "fuzz smoke failed:$failed"
    exit 1
fi
