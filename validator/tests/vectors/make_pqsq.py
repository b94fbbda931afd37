#!/usr/bin/env python3
"""Lays out the PQSQ successor request and PQSA answer vectors from
docs/formats.md, not from the code under test. Run from this directory:
python3 make_pqsq.py
  pqsq-v1-request.hex  vault 0x22*16, from epoch 7, proposal 0x33*32,
                       manifest the 14 bytes "not a manifest" (a request
                       does not parse its manifest), requester
                       TEST-ONLY-validator-1.pub, signature 0x44*64 and
                       0x55*3309 (a layout vector: it does not verify)
  pqsa-v1-asked.hex    vault 0x22*16, from epoch 7, that request once,
                       then signed = 1 with that request again and the
                       4-byte certificate "cert"
"""
import struct

def var(b):
    return struct.pack(">I", len(b)) + b

ident = open("../../../vault/tests/vectors/v1/keys/TEST-ONLY-validator-1.pub", "rb").read()
request = (b"PQSQ" + struct.pack(">H", 1) + b"\x22" * 16 + struct.pack(">Q", 7)
           + b"\x33" * 32 + var(b"not a manifest") + var(ident)
           + b"\x44" * 64 + b"\x55" * 3309)
open("pqsq-v1-request.hex", "w").write(request.hex() + "\n")
asked = (b"PQSA" + struct.pack(">H", 1) + b"\x22" * 16 + struct.pack(">Q", 7)
         + bytes([1]) + var(request) + bytes([1]) + var(request) + var(b"cert"))
open("pqsa-v1-asked.hex", "w").write(asked.hex() + "\n")
