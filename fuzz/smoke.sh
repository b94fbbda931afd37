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
cp "$v"/v1/vault/*.shard "$corpus/sealed_shard/"
cp "$v"/v1/vault/manifest.pqvm "$corpus/manifest/"
cp "$v"/v1/share-2.pqvu "$v"/v1/keys/*.pub "$corpus/share_and_identity/"
cp "$v"/artifact-v1/snn-int8/artifact.pqv* "$corpus/artifact_manifest/"
cp "$v"/artifact-v1/snn-int4/payload.safetensors "$corpus/safetensors_header/"
for t in $targets; do
    echo "fuzz $t for ${seconds}s"
    cargo fuzz run -O "$t" "$corpus/$t" -- -max_total_time="$seconds" -rss_limit_mb=2048 2>&1 |
        grep -E '^(Done|INFO: seed corpus)|ERROR|SUMMARY|panicked' || true
    # cargo fuzz exits non-zero on a crash: pipefail carries it here.
done
