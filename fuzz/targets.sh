#!/usr/bin/env bash
# The fuzz targets, one per line of output (the [[bin]]s of fuzz/Cargo.toml).
grep -A1 '^\[\[bin\]\]' "$(dirname "$0")/Cargo.toml" | sed -n 's/^name = "\(.*\)"$/\1/p'
