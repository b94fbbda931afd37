#!/usr/bin/env python3
"""Pins the official HQC-192 (HQC-3) v5 known-answer vectors in the repo.

Reads the official `hqc-3.rsp` (100 vectors) and writes
  kat-first-5.rsp   the first five vectors, verbatim;
  kat-100.digests   for all 100: count, seed, then SHA-256 of pk, sk and ct,
                    and ss itself (a line each).
Run: python3 digest.py PATH/TO/hqc-3.rsp
Nothing here depends on pqvault's code: the test (vault/tests/hqc_kat.rs)
compares what the code computes against these files.
"""
import hashlib
import sys

src = open(sys.argv[1]).read()
print("sha256(hqc-3.rsp) =", hashlib.sha256(src.encode()).hexdigest())
vectors, cur = [], None
for line in src.splitlines():
    line = line.strip()
    if line.startswith("count = "):
        cur = {"count": int(line[8:])}
        vectors.append(cur)
    elif cur is not None and " = " in line:
        k, v = line.split(" = ", 1)
        cur[k] = v
assert len(vectors) == 100, len(vectors)
first5 = src[: src.index("count = 5")]
open("kat-first-5.rsp", "w").write(first5.rstrip() + "\n")
with open("kat-100.digests", "w") as out:
    out.write("# count seed sha256(pk) sha256(sk) sha256(ct) ss\n")
    for v in vectors:
        h = lambda k: hashlib.sha256(bytes.fromhex(v[k])).hexdigest()
        out.write(f"{v['count']} {v['seed'].lower()} {h('pk')} {h('sk')} {h('ct')} {v['ss'].lower()}\n")
