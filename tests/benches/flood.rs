//! Memory under a slow-client flood, printed (not asserted): RSS of one
//! validator before, during and after 3,000 connections that each send
//! half a request and stop, on its ops port and then its peer port, at the
//! shipped `[listen]` defaults (256 connections per port, 10 s to send
//! headers). Past the cap connections are closed on accept; the rest are
//! closed at the header timeout, and memory must return near idle.
//!
//! Run: `cargo build --workspace --release && cargo bench -p pqvault-tests --bench flood`
//! (`--profile dev` for the debug build the tests use).

use pqvault_tests::Mesh;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

const FLOOD: usize = 3_000;

/// Opens `n` connections that send half a request; those the validator
/// closes at once (past its cap) simply end.
fn flood(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    (0..n)
        .filter_map(|_| {
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").ok()?;
            Some(s)
        })
        .collect()
}

fn main() {
    let mut mesh = Mesh::new(2, 2);
    mesh.start_all();
    std::thread::sleep(Duration::from_secs(2));
    let rss = |mesh: &Mesh| mesh.rss_kib(0).unwrap_or(0);
    let peer_addr: SocketAddr = mesh.member(0).addr.parse().expect("peer address");
    for (port, addr) in [("ops", mesh.nodes[0].ops), ("peer", peer_addr)] {
        let idle = rss(&mesh);
        let t0 = Instant::now();
        let conns = flood(addr, FLOOD);
        let opened = t0.elapsed();
        let mut peak = rss(&mesh);
        // Hold them past the header timeout; sample the peak meanwhile.
        while t0.elapsed() < Duration::from_secs(12) {
            peak = peak.max(rss(&mesh));
            std::thread::sleep(Duration::from_millis(100));
        }
        drop(conns);
        std::thread::sleep(Duration::from_secs(3));
        let after = rss(&mesh);
        println!(
            "{port} port, {FLOOD} half-sent requests (opened in {:.1} s): RSS idle {idle} KiB, peak {peak} KiB, 3 s after they are gone {after} KiB",
            opened.as_secs_f64()
        );
    }
}
