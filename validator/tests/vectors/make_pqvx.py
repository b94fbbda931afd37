#!/usr/bin/env python3
"""Lays out the PQVX re-share message vectors from docs/formats.md, not from
the code under test. Run from this directory: python3 make_pqvx.py
  pqvx-v1-plan.hex      plan: round 0x11*16, vault 0x22*16, epoch 7, t_new 3,
                        dealers [1, 2, 5], recipients 0x31*32 .. 0x35*32
  pqvx-v1-subshare.hex  sub-share: round 0x11*16, from 2, sealed = b"PQVS-not-a-real-shard"
  pqvx-v1-signed-subshare.hex  the same, signed (type 3): Ed25519 0x44*64,
                        ML-DSA-65 0x45*3309 (filler, not a valid signature)
  pqvx-v1-view.hex      view (type 5): round 0x11*16, two recipients: 1 with
                        values [0x61*32, 0x62*32] (signature 0x48*64 / 0x49*3309),
                        2 with [0x63*32, 0x64*32] (signature 0x49*64 / 0x4a*3309)
  pqvx-v1-reveal.hex    reveal (type 4): round 0x11*16, index 4, sub-shares
                        from 1 (0x51*32, signature 0x46*64 / 0x47*3309) and
                        from 5 (0x55*32, signature 0x47*64 / 0x48*3309)
  pqvx-v1-statements.txt  the four signed statements of the plan above (new
                        epoch 8), one "domain<TAB>hex" line each:
                        sub-share from 2 to index 4, value b"PQVS-not-a-real-shard";
                        check values of index 1: [0x61*32, 0x62*32];
                        receipt by index 4 of dealer 2's sub-share, sealed hash 0x71*32;
                        entry of index 4: recipient 0x34*32, blob hash 0x72*32,
                        share commitment 0x73*32
"""
import struct

head = lambda t: b"PQVX" + struct.pack(">H", 1) + bytes([t]) + b"\x11" * 16
var = lambda b: struct.pack(">I", len(b)) + b
plan = (head(1) + b"\x22" * 16 + struct.pack(">Q", 7) + bytes([3]) + var(bytes([1, 2, 5]))
        + bytes([5]) + b"".join(bytes([0x31 + i]) * 32 for i in range(5)))
sub = head(2) + bytes([2]) + var(b"PQVS-not-a-real-shard")
sig = lambda b: bytes([b]) * 64 + bytes([b + 1]) * 3309
signed = head(3) + bytes([2]) + var(b"PQVS-not-a-real-shard") + sig(0x44)
reveal = (head(4) + bytes([4, 2]) + bytes([1]) + var(b"\x51" * 32) + sig(0x46)
          + bytes([5]) + var(b"\x55" * 32) + sig(0x47))
view = (head(5) + bytes([2])
        + bytes([1, 2]) + var(b"\x61" * 32) + var(b"\x62" * 32) + sig(0x48)
        + bytes([2, 2]) + var(b"\x63" * 32) + var(b"\x64" * 32) + sig(0x49))
open("pqvx-v1-view.hex", "w").write(view.hex() + "\n")
open("pqvx-v1-signed-subshare.hex", "w").write(signed.hex() + "\n")
open("pqvx-v1-reveal.hex", "w").write(reveal.hex() + "\n")
open("pqvx-v1-plan.hex", "w").write(plan.hex() + "\n")
open("pqvx-v1-subshare.hex", "w").write(sub.hex() + "\n")

# The signed statements (docs/formats.md, "Receipts" and the PQVX section):
# each starts round:[16] vault_id:[16] epoch+1:u64.
st_head = b"\x11" * 16 + b"\x22" * 16 + struct.pack(">Q", 8)
statements = [
    ("pqvault/v1 subshare", st_head + bytes([3, 5, 2, 4]) + var(b"PQVS-not-a-real-shard")),
    ("pqvault/v1 check-values", st_head + bytes([1, 2]) + var(b"\x61" * 32) + var(b"\x62" * 32)),
    ("pqvault/v1 subshare-receipt", st_head + bytes([2, 4]) + b"\x71" * 32),
    ("pqvault/v1 reshare-entry", st_head + bytes([4]) + b"\x34" * 32 + b"\x72" * 32 + b"\x73" * 32),
]
open("pqvx-v1-statements.txt", "w").write("".join(f"{d}\t{b.hex()}\n" for d, b in statements))
