#!/usr/bin/env bash
# Fills DIR/<target>/ with the seed corpus of every fuzz target, from files
# checked in to the repository (test vectors of both KEM suites with an
# epoch-2 certificate and proof chain, the recovery request and answer, the
# membership removals (PQVN versions 1 and 2), the certified removal, the
# PQVS v2 shard and PQVY key ring, the initial key files and a genesis
# shard sealed to one, the PQVR, PQVX and PQVP vectors, the
# artifact vectors, manifest formats 1 and 2). Used by smoke.sh and run.sh.
set -euo pipefail
cd "$(dirname "$0")"
out="$1"
v=../vault/tests/vectors
for t in $(bash targets.sh); do mkdir -p "$out/$t"; done
for s in v1 v1-suite2; do
    for f in "$v"/$s/vault/*.shard; do cp "$f" "$out/sealed_shard/$s-$(basename "$f")"; done
    cp "$v"/$s/vault/manifest.pqvm "$out/manifest/$s-manifest.pqvm"
    cp "$v"/$s/share-2.pqvu "$out/share_and_identity/$s-share-2.pqvu"
    for f in "$v"/$s/keys/*; do cp "$f" "$out/share_and_identity/$s-$(basename "$f")"; done
done
cp "$v"/v1-suite2/epoch-2/step-2.pqve "$out/epoch_certificate/"
cp "$v"/initial-key-v1/TEST-ONLY-validator-1.ipub "$v"/initial-key-v1/TEST-ONLY-validator-1.ikey "$out/share_and_identity/"
cp "$v"/initial-key-v1/shard-001-TEST-ONLY-validator-1.shard "$out/sealed_shard/initial-key-v1-shard-001"
cp "$v"/recovery-v1/request.pqvg "$v"/recovery-v1/answer.pqvh "$out/recovery_request/"
cp "$v"/v1/membership-2.pqvn "$v"/removal-v1/membership-3.pqvn "$out/membership_removal/"
cp "$v"/removal-v1/removal-validator-3.pqvz "$out/certified_removal/"
cp "$v"/v1-suite2/epoch-2/proof.pqvc "$out/peer_messages/"
cp "$v"/v1-suite2/epoch-2/manifest.pqvm "$out/manifest/v1-suite2-epoch-2.pqvm"
for h in pqvs-v2-shard pqvy-v1-ring; do
    python3 -c 'import sys; sys.stdout.buffer.write(bytes.fromhex(open(sys.argv[1]).read().strip()))' \
        ../validator/tests/vectors/$h.hex > "$out/sealed_shard/$h"
done
for h in pqvr-v2-plan pqvx-v1-plan pqvx-v1-subshare pqvp-v1-repair pqvp-v1-reshare pqsq-v1-request pqsa-v1-asked; do
    python3 -c 'import sys; sys.stdout.buffer.write(bytes.fromhex(open(sys.argv[1]).read().strip()))' \
        ../validator/tests/vectors/$h.hex > "$out/peer_messages/$h"
done
cp "$v"/artifact-v1/snn-int8/artifact.pqv* "$out/artifact_manifest/"
for f in artifact.pqva artifact.pqvd; do
    cp "$v"/artifact-v2/snn-int8/$f "$out/artifact_manifest/v2-$f"
done
cp "$v"/artifact-v1/snn-int4/payload.safetensors "$out/safetensors_header/"
# Every mnemonic of the official SLIP-39 vectors, one file each.
python3 - "$v"/slip39/vectors.json "$out/slip39_mnemonic" <<'PY'
import json, sys
for i, (_, mnemonics, _, _) in enumerate(json.load(open(sys.argv[1]))):
    for j, m in enumerate(mnemonics):
        open(f"{sys.argv[2]}/vector-{i + 1}-{j + 1}.txt", "w").write(m)
PY
