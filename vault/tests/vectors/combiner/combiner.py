#!/usr/bin/env python3
"""The pqvault hybrid-KEM combiner (docs/combiner.md), written from the docs
with Python's standard library only, to produce the combiner vectors that
vault/src/kem/hybrid.rs (`combiner_vectors`) checks. Run: python3 combiner.py
"""
import hashlib
import hmac


def combine(name, suite_id, ss_x, ss_m, ss_h, ct_x, ct_m, ct_h, recipient):
    label = b"pqvault/v1 hybrid-kem " + name
    transcript = hashlib.sha256(
        label + suite_id.to_bytes(2, "big") + ct_x + ct_m + ct_h + recipient
    ).digest()
    prk = hmac.new(transcript, label + ss_m + ss_h + ss_x, hashlib.sha256).digest()
    # HKDF-Expand to 32 bytes is one HMAC block: T(1) = HMAC(prk, info || 0x01).
    return hmac.new(prk, b"pqvault/v1 aead-key\x01", hashlib.sha256).hexdigest()


ct_x, ct_m, ct_h = b"\x11" * 32, b"\x22" * 1088, b"\x33" * 8978
recipient = b"\x44" * 32
print("suite 2 (x25519-mlkem768-hqc192v5):",
      combine(b"x25519-mlkem768-hqc192v5", 2, b"\x55" * 32, b"\x66" * 32, b"\x77" * 32,
              ct_x, ct_m, ct_h, recipient))
print("suite 1 (x25519-mlkem768-hqc192r4):",
      combine(b"x25519-mlkem768-hqc192r4", 1, b"\x55" * 32, b"\x66" * 32, b"\x77" * 64,
              ct_x, ct_m, ct_h, recipient))
