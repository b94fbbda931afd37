#!/usr/bin/env bash
# Builds every fuzz target and runs each for SECONDS (default 10), seeded
# with the checked-in test vectors. Used by CI; any crash fails it.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-10}"
export RUSTC_BOOTSTRAP=1   # sanitizer flags on the stable toolchain
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked --version 0.13.2
fi
cargo fuzz build -O
corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
v=../vault/tests/vectors
targets="sealed_shard manifest epoch_certificate share_and_identity artifact_manifest safetensors_header peer_messages"
for t in $targets; do mkdir -p "$corpus/$t"; done
for s in v1 v1-suite2; do
    for f in "$v"/$s/vault/*.shard; do cp "$f" "$corpus/sealed_shard/$s-$(basename "$f")"; done
    cp "$v"/$s/vault/manifest.pqvm "$corpus/manifest/$s-manifest.pqvm"
    cp "$v"/$s/share-2.pqvu "$corpus/share_and_identity/$s-share-2.pqvu"
    for f in "$v"/$s/keys/*; do cp "$f" "$corpus/share_and_identity/$s-$(basename "$f")"; done
done
python3 -c 'import sys; sys.stdout.buffer.write(bytes.fromhex(open(sys.argv[1]).read().strip()))' \
    ../validator/tests/vectors/pqvr-v2-plan.hex > "$corpus/peer_messages/pqvr-v2-plan"
cp "$v"/artifact-v1/snn-int8/artifact.pqv* "$corpus/artifact_manifest/"
cp "$v"/artifact-v1/snn-int4/payload.safetensors "$corpus/safetensors_header/"
failed=""
for t in $targets; do
    echo "fuzz $t for ${seconds}s"
    log="$corpus/$t.log"
    # The fuzzer's own exit status decides; its log is only filtered for
    # the summary (a crash prints the whole tail of the log).
    if cargo fuzz run -O "$t" "$corpus/$t" -- -max_total_time="$seconds" -rss_limit_mb=2048 >"$log" 2>&1; then
        grep -E '^(Done|INFO: seed corpus)' "$log" || true
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
