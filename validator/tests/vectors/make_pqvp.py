#!/usr/bin/env python3
"""Lays out the PQVP proposal vectors from docs/formats.md, not from the
code under test, around the checked-in plan vectors (vault 0x22*16,
epoch 7). Run from this directory: python3 make_pqvp.py
  pqvp-v1-repair.hex   attempt 3, action 1, one plan: pqvr-v2-plan.hex
  pqvp-v1-reshare.hex  attempt 0, action 2: pqvx-v1-plan.hex
"""
import struct

var = lambda b: struct.pack(">I", len(b)) + b
plan = lambda f: bytes.fromhex(open(f).read().strip())
head = lambda attempt, action: (b"PQVP" + struct.pack(">H", 1) + b"\x22" * 16
                                + struct.pack(">Q", 7) + struct.pack(">I", attempt) + bytes([action]))
repair = head(3, 1) + bytes([1]) + var(plan("pqvr-v2-plan.hex"))
reshare = head(0, 2) + var(plan("pqvx-v1-plan.hex"))
open("pqvp-v1-repair.hex", "w").write(repair.hex() + "\n")
open("pqvp-v1-reshare.hex", "w").write(reshare.hex() + "\n")
