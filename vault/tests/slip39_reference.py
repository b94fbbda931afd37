"""Drives the SLIP-39 reference implementation (PyPI `shamir-mnemonic`, the
version pinned in .ci/install-tools) for vault/tests/slip39_interop.rs.

  slip39_reference.py version
      prints the installed shamir-mnemonic version
  slip39_reference.py split GT T-of-N[,T-of-N...] EXTENDABLE(0|1) PASSPHRASE_FILE
      reads the secret (hex) on stdin; prints the mnemonics, one per line,
      each prefixed with its group number (from 1) and a tab
  slip39_reference.py combine PASSPHRASE_FILE
      reads mnemonics on stdin, one per line; prints the secret in hex

PASSPHRASE_FILE may be "" for no passphrase. Errors exit non-zero with the
reference's message on stderr.
"""

import sys
from importlib.metadata import version

import shamir_mnemonic


def passphrase(path):
    if not path:
        return b""
    with open(path, "rb") as f:
        return f.read().rstrip(b"\n")


def main(argv):
    cmd = argv[1]
    if cmd == "version":
        print(version("shamir-mnemonic"))
    elif cmd == "split":
        group_threshold = int(argv[2])
        groups = [tuple(int(x) for x in g.split("-of-")) for g in argv[3].split(",")]
        extendable = argv[4] == "1"
        secret = bytes.fromhex(sys.stdin.read().strip())
        mnemonics = shamir_mnemonic.generate_mnemonics(
            group_threshold,
            groups,
            secret,
            passphrase(argv[5]),
            extendable=extendable,
        )
        for g, group in enumerate(mnemonics):
            for m in group:
                print(f"{g + 1}\t{m}")
    elif cmd == "combine":
        mnemonics = [l.strip() for l in sys.stdin if l.strip()]
        print(shamir_mnemonic.combine_mnemonics(mnemonics, passphrase(argv[2])).hex())
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main(sys.argv)
