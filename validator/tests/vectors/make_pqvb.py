#!/usr/bin/env python3
"""Lays out the PQVB abort vector from docs/formats.md, not from the code
under test. Run from this directory: python3 make_pqvb.py
  pqvb-v1-abort.hex  vault 0x22*16, epoch 7, attempt 3, proposal digest
                     0x33*32, rounds 0x11*16 and 0x44*16
"""
import struct

abort = (b"PQVB" + struct.pack(">H", 1) + b"\x22" * 16 + struct.pack(">Q", 7)
         + struct.pack(">I", 3) + b"\x33" * 32 + bytes([2]) + b"\x11" * 16 + b"\x44" * 16)
open("pqvb-v1-abort.hex", "w").write(abort.hex() + "\n")
