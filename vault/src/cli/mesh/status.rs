//! `vault mesh status`: the operator's client on the validators' peer
//! port. Mutual TLS 1.3 with the X25519MLKEM768 exchange only (like the
//! validators), presenting an operator-role certificate from the mesh CA
//! (`vault mesh-ca issue --role operator`); the validators answer such a
//! connection on `GET /v1/status` and nothing else.

use super::client::{get, Conn};
use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::net::SocketAddr;

/// Largest status document read.
const MAX_STATUS: u64 = 1 << 20;

/// Arguments of `vault mesh status`.
#[derive(clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    conn: Conn,
    /// One JSON array of the validators' status documents (an `error`
    /// object for one that did not answer).
    #[arg(long)]
    json: bool,
}

/// Runs `vault mesh status`.
pub fn run(a: StatusArgs) -> Result<()> {
    let (config, targets) = a.conn.resolve()?;
    let answers: Vec<(String, SocketAddr, Result<Value>)> = targets
        .into_iter()
        .map(|(id, addr)| {
            let r = get(&config, &id, addr, "/v1/status", MAX_STATUS).and_then(|b| {
                serde_json::from_slice(&b).with_context(|| format!("{id}: status is not JSON"))
            });
            (id, addr, r)
        })
        .collect();
    if a.json {
        let docs: Vec<Value> = answers
            .iter()
            .map(|(id, addr, r)| match r {
                Ok(v) => v.clone(),
                Err(e) => serde_json::json!({
                    "id": id, "addr": addr.to_string(), "error": format!("{e:#}")
                }),
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&docs)?);
    } else {
        print_text(&answers);
    }
    if answers.iter().all(|(_, _, r)| r.is_err()) {
        bail!("no validator answered");
    }
    Ok(())
}

fn print_text(answers: &[(String, SocketAddr, Result<Value>)]) {
    println!(
        "{:<13} {:<21} {:<8} {:<16} {:<8} {:>10}  vaults (epoch, t-of-n, pending heal)",
        "validator", "peer address", "role", "kx group", "pending", "members"
    );
    for (id, addr, r) in answers {
        let v = match r {
            Ok(v) => v,
            Err(e) => {
                println!("{id:<13} {:<21} unreachable: {e:#}", addr.to_string());
                continue;
            }
        };
        let members = v["members"].as_array().cloned().unwrap_or_default();
        let alive = members.iter().filter(|m| m["state"] == "alive").count();
        let vaults: Vec<String> = v["vaults"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|x| {
                format!(
                    "{}: epoch {}, {}-of-{}, {}",
                    x["vault"].as_str().unwrap_or("?"),
                    x["epoch"],
                    x["threshold"],
                    x["shares"],
                    x["heal_pending"]
                )
            })
            .collect();
        let pending = v["pending_transitions"].as_array().map_or(0, Vec::len);
        println!(
            "{:<13} {:<21} {:<8} {:<16} {:<8} {:>10}  {}",
            v["id"].as_str().unwrap_or(id),
            addr.to_string(),
            v["role"].as_str().unwrap_or("?"),
            v["kx_group"].as_str().unwrap_or("?"),
            pending,
            format!("{alive}/{} alive", members.len()),
            if vaults.is_empty() {
                "-".to_string()
            } else {
                vaults.join("; ")
            }
        );
        if let Some(d) = v["role_detail"].as_str() {
            println!("{:<13} stale: {d}", "");
        }
    }
    // Health scores as the first validator that answered sees its members.
    if let Some((id, _, Ok(v))) = answers.iter().find(|(_, _, r)| r.is_ok()) {
        let members = v["members"].as_array().cloned().unwrap_or_default();
        let view: Vec<String> = members
            .iter()
            .map(|m| {
                format!(
                    "{} {} {}",
                    m["id"].as_str().unwrap_or("?"),
                    m["state"].as_str().unwrap_or("?"),
                    m["health"]
                        .as_f64()
                        .map_or("-".to_string(), |h| format!("{h:.2}"))
                )
            })
            .collect();
        println!(
            "members as {id} sees them (state, health score): {}",
            view.join(", ")
        );
        let removed: Vec<&str> = v["removed"]
            .as_array()
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if !removed.is_empty() {
            println!(
                "removed by the operator (version {}): {}",
                v["membership_version"],
                removed.join(", ")
            );
        }
    }
}
