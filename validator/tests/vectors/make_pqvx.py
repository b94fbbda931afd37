#!/usr/bin/env python3
"""Lays out the PQVX re-share message vectors from docs/formats.md, not from
the code under test. Run from this directory: python3 make_pqvx.py
  pqvx-v1-plan.hex      plan: round 0x11*16, vault 0x22*16, epoch 7, t_new 3,
                        dealers [1, 2, 5], recipients 0x31*32 .. 0x35*32
  pqvx-v1-subshare.hex  sub-share: round 0x11*16, from 2, sealed = b"PQVS-not-a-real-shard"
"""
import struct

head = lambda t: b"PQVX" + struct.pack(">H", 1) + bytes([t]) + b"\x11" * 16
var = lambda b: struct.pack(">I", len(b)) + b
plan = (head(1) + b"\x22" * 16 + struct.pack(">Q", 7) + bytes([3]) + var(bytes([1, 2, 5]))
        + bytes([5]) + b"".join(bytes([0x31 + i]) * 32 for i in range(5)))
sub = head(2) + bytes([2]) + var(b"PQVS-not-a-real-shard")
open("pqvx-v1-plan.hex", "w").write(plan.hex() + "\n")
open("pqvx-v1-subshare.hex", "w").write(sub.hex() + "\n")
