//! Request bodies on the peer port: each must arrive whole within the body
//! timeout of its head, and all the bodies being read or handled at once
//! share one budget of bytes.
//!
//! Every peer route buffers its body whole (none streams), so without a
//! bound a member could make a validator hold one body of up to the
//! routes' 4 MiB limit on every connection the port allows, and keep it by
//! sending all but its last byte: 256 connections, 1 GiB, for as long as it
//! liked (`tests/benches/flood.rs` measured 862 MiB with 200). Now a body
//! first takes its announced length from the budget (waiting for it at most
//! until the deadline, then 503), is read against the same deadline (then
//! 408), and gives its bytes back once its answer is ready; a body larger
//! than the budget or than [`MAX_BODY`] is refused (413) without being kept
//! (read and dropped, so that its sender reads the answer). Each refusal
//! closes the connection and is counted
//! (`pqvault_request_bodies_refused_total{port,reason}`). When the budget
//! comes back whole after a quarter of it or more was in use, the heap's
//! free pages go back to the system, as after a connection flood.

use crate::listener::Pool;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, Limited};
use std::sync::Arc;
use std::time::Duration;

/// The largest body any peer route takes (the peer router's own limit).
pub const MAX_BODY: usize = 4 << 20;

/// Why a body was refused, as the metric's `reason` label names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Announced larger than [`MAX_BODY`] or than the whole budget.
    TooLarge,
    /// The budget stayed taken by other bodies until the deadline.
    Budget,
    /// The body did not arrive whole before the deadline.
    Timeout,
    /// The client broke off or sent more than it announced.
    Broken,
}

impl Refused {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Refused::TooLarge => "too_large",
            Refused::Budget => "budget",
            Refused::Timeout => "timeout",
            Refused::Broken => "broken",
        }
    }

    fn status(self) -> StatusCode {
        match self {
            Refused::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Refused::Budget => StatusCode::SERVICE_UNAVAILABLE,
            Refused::Timeout => StatusCode::REQUEST_TIMEOUT,
            Refused::Broken => StatusCode::BAD_REQUEST,
        }
    }

    fn message(self) -> &'static str {
        match self {
            Refused::TooLarge => "request body larger than this port takes",
            Refused::Budget => "too many request bodies in flight here; try again",
            Refused::Timeout => "request body not sent within the body timeout",
            Refused::Broken => "request body broken off or longer than announced",
        }
    }
}

/// One port's body timeout and budget.
pub struct Bodies {
    /// The budget, one unit per byte; a quarter of it out at once is a
    /// flood, trimmed after (`crate::listener::Slot`).
    bytes: Arc<Pool>,
    timeout: Duration,
    refused: Box<dyn Fn(Refused) + Send + Sync>,
}

impl Bodies {
    /// `budget` bytes of bodies at once (at most `u32::MAX`), each whole
    /// within `timeout` of its head; each refusal is reported to `refused`.
    pub fn new(
        budget: usize,
        timeout: Duration,
        refused: impl Fn(Refused) + Send + Sync + 'static,
    ) -> Arc<Self> {
        let budget = budget.min(u32::MAX as usize);
        Arc::new(Bodies {
            bytes: Pool::new(budget, budget / 4),
            timeout,
            refused: Box::new(refused),
        })
    }

    /// Bytes of the budget in use now.
    pub fn in_use(&self) -> usize {
        self.bytes.in_use()
    }

    fn refuse(&self, why: Refused) -> Response {
        (self.refused)(why);
        let mut r = (why.status(), format!("{}\n", why.message())).into_response();
        // The body was not read, or not all of it: the connection cannot
        // carry another request.
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        r
    }
}

/// The length a request announces for its body: its `Content-Length`, the
/// most any body may be for a chunked one, none without either.
fn announced(req: &Request) -> Result<usize, Refused> {
    let h = req.headers();
    if h.contains_key(header::TRANSFER_ENCODING) {
        return Ok(MAX_BODY);
    }
    match h.get(header::CONTENT_LENGTH) {
        None => Ok(0),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
            .ok_or(Refused::Broken),
    }
}

/// Bodies a refused request may still send, read and dropped so that the
/// client, done writing, reads the refusal: closing on unread bytes resets
/// the connection, and the client may lose the answer to the reset.
const DRAIN: usize = 2 * MAX_BODY;

/// How long a body refused for want of budget is drained.
const LINGER: Duration = Duration::from_secs(1);

/// Reads and drops `body`, frame by frame (holding none), if it announced
/// at most [`DRAIN`] bytes, until it ends or `until`.
async fn linger(body: Body, announced: usize, until: tokio::time::Instant) {
    if announced > DRAIN {
        return;
    }
    let mut body = Limited::new(body, DRAIN);
    let drain = async { while let Some(Ok(_)) = body.frame().await {} };
    let _ = tokio::time::timeout_at(until, drain).await;
}

/// Middleware: reads the request's body within the port's deadline and
/// budget, then hands the request on with the body in memory.
pub async fn bounded(State(bodies): State<Arc<Bodies>>, req: Request, next: Next) -> Response {
    let want = match announced(&req) {
        Ok(0) => return next.run(req).await,
        Ok(n) => n,
        Err(why) => return bodies.refuse(why),
    };
    let deadline = tokio::time::Instant::now() + bodies.timeout;
    if want > MAX_BODY || want > bodies.bytes.cap() {
        linger(req.into_body(), want, deadline).await;
        return bodies.refuse(Refused::TooLarge);
    }
    // `want` fits in u32: the budget does.
    let take = bodies.bytes.units().acquire_many_owned(want as u32);
    let permit = match tokio::time::timeout_at(deadline, take).await {
        Ok(Ok(p)) => p,
        _ => {
            let until = tokio::time::Instant::now() + LINGER;
            linger(req.into_body(), want, until).await;
            return bodies.refuse(Refused::Budget);
        }
    };
    let share = bodies.bytes.hold(permit);
    let (parts, body) = req.into_parts();
    let bytes = match tokio::time::timeout_at(deadline, Limited::new(body, want).collect()).await {
        Ok(Ok(c)) => c.to_bytes(),
        Ok(Err(_)) => return bodies.refuse(Refused::Broken),
        Err(_) => return bodies.refuse(Refused::Timeout),
    };
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    drop(share);
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::post;
    use axum::Router;
    use std::sync::Mutex;
    use tower::ServiceExt;

    fn app(bodies: Arc<Bodies>) -> Router {
        Router::new()
            .route(
                "/",
                post(|b: axum::body::Bytes| async move { b.len().to_string() }),
            )
            // A handler that takes its time, holding its body's bytes.
            .route(
                "/slow",
                post(|_: axum::body::Bytes| async {
                    tokio::time::sleep(Duration::from_millis(800)).await;
                }),
            )
            .layer(axum::middleware::from_fn_with_state(bodies, bounded))
    }

    fn counted() -> (Arc<Mutex<Vec<Refused>>>, impl Fn(Refused) + Send + Sync) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        (seen, move |r| s.lock().unwrap().push(r))
    }

    /// Frames sent on the channel.
    type Feed = tokio::sync::mpsc::Sender<Result<axum::body::Bytes, std::io::Error>>;

    /// A body fed frame by frame from a channel of one frame: a send
    /// completes only once the body before it was read.
    fn fed() -> (Feed, Body) {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|frame| (frame, rx))
        });
        (tx, Body::from_stream(stream))
    }

    fn request(len: usize, body: Body) -> Request {
        Request::post("/")
            .header(header::CONTENT_LENGTH, len)
            .body(body)
            .unwrap()
    }

    #[tokio::test]
    async fn a_whole_body_within_the_budget_is_handed_on() {
        let (seen, f) = counted();
        let bodies = Bodies::new(1000, Duration::from_secs(1), f);
        let r = app(bodies.clone())
            .oneshot(request(600, Body::from(vec![1u8; 600])))
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let got = r.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&got[..], b"600");
        assert_eq!(bodies.in_use(), 0, "the body's bytes came back");
        assert!(seen.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn bodies_past_the_limit_or_the_budget_are_refused_at_once() {
        let (seen, f) = counted();
        let bodies = Bodies::new(1000, Duration::from_secs(60), f);
        for len in [1001, MAX_BODY + 1] {
            let r = app(bodies.clone())
                .oneshot(request(len, Body::empty()))
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
            assert_eq!(r.headers()[header::CONNECTION], "close");
        }
        assert_eq!(
            *seen.lock().unwrap(),
            [Refused::TooLarge, Refused::TooLarge]
        );
    }

    #[tokio::test]
    async fn a_body_past_the_limit_is_drained_so_its_sender_reads_the_refusal() {
        let (seen, f) = counted();
        let bodies = Bodies::new(1000, Duration::from_secs(5), f);
        let (tx, body) = fed();
        let r = tokio::spawn(app(bodies.clone()).oneshot(request(1500, body)));
        // A channel of one frame: the third send completes only if the
        // refused body is being read.
        for _ in 0..3 {
            let send = tx.send(Ok(axum::body::Bytes::from(vec![0u8; 500])));
            tokio::time::timeout(Duration::from_secs(2), send)
                .await
                .expect("the refused body is read")
                .unwrap();
        }
        drop(tx);
        let r = r.await.unwrap().unwrap();
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(bodies.in_use(), 0, "a refused body takes no budget");
        assert_eq!(*seen.lock().unwrap(), [Refused::TooLarge]);
    }

    #[tokio::test]
    async fn a_slow_body_is_cut_off_and_gives_its_bytes_to_the_one_waiting() {
        let (seen, f) = counted();
        let bodies = Bodies::new(1000, Duration::from_millis(400), f);
        // 800 bytes announced, 10 sent, then nothing: holds 800 of 1000.
        let (tx, body) = fed();
        let slow = tokio::spawn(app(bodies.clone()).oneshot(request(800, body)));
        tx.send(Ok(axum::body::Bytes::from(vec![0u8; 10])))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(bodies.in_use(), 800);
        // 300 more do not fit: they wait until the slow body is cut off.
        let t0 = std::time::Instant::now();
        let r = app(bodies.clone())
            .oneshot(request(300, Body::from(vec![0u8; 300])))
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert!(
            t0.elapsed() >= Duration::from_millis(250),
            "it did not wait"
        );
        let r = slow.await.unwrap().unwrap();
        assert_eq!(r.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(r.headers()[header::CONNECTION], "close");
        assert_eq!(bodies.in_use(), 0, "the slow body's share came back");
        assert_eq!(*seen.lock().unwrap(), [Refused::Timeout]);
        drop(tx);
    }

    #[tokio::test]
    async fn a_body_that_finds_the_budget_held_past_its_deadline_is_refused() {
        let (seen, f) = counted();
        let bodies = Bodies::new(1000, Duration::from_millis(300), f);
        // Handled for 800 ms, holding 800 bytes all the while.
        let held = tokio::spawn(
            app(bodies.clone()).oneshot(
                Request::post("/slow")
                    .header(header::CONTENT_LENGTH, 800)
                    .body(Body::from(vec![0u8; 800]))
                    .unwrap(),
            ),
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        let r = app(bodies.clone())
            .oneshot(request(300, Body::from(vec![0u8; 300])))
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(held.await.unwrap().unwrap().status(), StatusCode::OK);
        assert_eq!(bodies.in_use(), 0);
        assert_eq!(*seen.lock().unwrap(), [Refused::Budget]);
    }
}
