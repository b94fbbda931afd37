//! pqvault validator daemon (sidecar). The daemon is built by the
//! validator-mesh work; until then this binary only reports that.

fn main() -> anyhow::Result<()> {
    anyhow::bail!("the validator daemon is not implemented yet; see the open validator-mesh issue")
}
