//! Every port has a connection cap and a header/idle timeout: slow or idle
//! clients are closed, connections past the cap are closed on accept and
//! counted, and the port serves again once they are gone.

use pqvault_tests::{http_get, sample, Mesh};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// True if the server closes `s` within `within` (EOF or a reset).
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 512];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // a response (e.g. 408) before the close
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return false,
            Err(_) => return true,
        }
    }
}

/// Opens `n` connections to `addr` that send half a request and stop.
fn half_requests(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|_| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
            s
        })
        .collect()
}

#[test]
fn slow_and_surplus_connections_are_closed_on_every_port() {
    let mut mesh = Mesh::new(2, 2);
    // A header timeout well above the time to close a surplus connection,
    // so the two cannot be mistaken for each other on a loaded machine.
    mesh.set_listen_limits(8, 3000);
    mesh.start_all();
    let ops = mesh.nodes[0].ops;
    let peer = mesh.nodes[0].peer;

    // Ops port: eight half-sent requests fill it; a ninth is closed at once.
    let mut slow = half_requests(ops, 8);
    std::thread::sleep(Duration::from_millis(100));
    let mut extra = TcpStream::connect(ops).unwrap();
    assert!(
        closed_within(&mut extra, Duration::from_millis(1500)),
        "a connection past the cap was kept"
    );
    // The half-sent ones are closed after the header timeout.
    let t0 = Instant::now();
    for s in &mut slow {
        assert!(
            closed_within(s, Duration::from_secs(5)),
            "a slow client was kept"
        );
    }
    assert!(
        t0.elapsed() >= Duration::from_millis(300),
        "closed before the timeout"
    );
    // Then the port serves again, and counted the refusal.
    let (code, metrics) = http_get(ops, "/metrics").expect("ops serves again");
    assert_eq!(code, 200);
    assert!(
        sample(
            &metrics,
            "pqvault_connections_refused_total",
            "port=\"ops\""
        )
        .unwrap_or(0.0)
            >= 1.0
    );

    // A kept-alive connection that goes idle is closed after the timeout.
    let mut idle = TcpStream::connect(ops).unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 64];
    assert!(idle.read(&mut first).unwrap() > 0, "no response");
    assert!(
        closed_within(&mut idle, Duration::from_secs(5)),
        "an idle connection was kept"
    );

    // Peer port: raw TCP that never starts TLS holds a slot only until the
    // handshake timeout; past the cap, connections are closed at once.
    let _held: Vec<_> = (0..8).map(|_| TcpStream::connect(peer).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(100));
    let mut extra = TcpStream::connect(peer).unwrap();
    assert!(closed_within(&mut extra, Duration::from_millis(1500)));
    let metrics = mesh.metrics(0);
    assert!(
        sample(
            &metrics,
            "pqvault_connections_refused_total",
            "port=\"peer\""
        )
        .unwrap_or(0.0)
            >= 1.0
    );
}
