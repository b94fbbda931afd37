#!/usr/bin/env python3
"""Lays out the PQVC proof chain vector from docs/formats.md (not from the
code under test): the operator-signed genesis as anchor, then one step, the
epoch-2 manifest and its certificate. Run from this directory:
    python3 make_pqvc.py   # writes epoch-2/proof.pqvc (refuses to overwrite)
"""
import os
import struct


def var(b):
    return struct.pack(">I", len(b)) + b


anchor = open("vault/manifest.pqvm", "rb").read()
m2 = open("epoch-2/manifest.pqvm", "rb").read()
c2 = open("epoch-2/step-2.pqve", "rb").read()
out = b"PQVC" + struct.pack(">H", 1) + var(anchor) + struct.pack(">H", 1) + var(m2) + var(c2)
path = "epoch-2/proof.pqvc"
assert not os.path.exists(path), "never regenerate a vector"
open(path, "wb").write(out)
