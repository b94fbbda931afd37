//! Writes the deterministic test networks (TEST DATA ONLY) to disk, ready
//! for `vault artifact pack`:
//!
//! ```sh
//! cargo run -p vault --example artifact_testnet -- OUT [--large BYTES]
//! vault artifact pack --tensors OUT/snn-int8/model.safetensors \
//!     --meta OUT/snn-int8/meta.toml --out OUT/snn-int8/artifact
//! ```
//!
//! Writes `OUT/snn-int8/` and `OUT/snn-int4/` (the 64-32-10 network) and,
//! with `--large`, `OUT/snn-large/` (an int8 payload of about BYTES bytes).

use std::path::Path;
use vault::artifact::testnet::{self, Net};

fn write(dir: &Path, net: &Net) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("model.safetensors"), &net.safetensors)?;
    std::fs::write(dir.join("meta.toml"), &net.meta_toml)?;
    println!("{} ({} bytes)", dir.display(), net.safetensors.len());
    Ok(())
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(out) = args.first() else {
        eprintln!("usage: artifact_testnet OUT [--large BYTES]");
        std::process::exit(2);
    };
    let out = Path::new(out);
    write(&out.join("snn-int8"), &testnet::small(8))?;
    write(&out.join("snn-int4"), &testnet::small(4))?;
    if let Some(pos) = args.iter().position(|a| a == "--large") {
        let bytes: u64 = args
            .get(pos + 1)
            .and_then(|b| b.parse().ok())
            .unwrap_or(64 << 20);
        write(&out.join("snn-large"), &testnet::large(bytes))?;
    }
    Ok(())
}
