//! Artifact routes.
//!
//! Peer API (mutual TLS, merged into [`crate::api::router`]). Peers get
//! verified data only, but not only complete artifacts: a manifest is held
//! only once it verified, and a chunk is served only once its hash matched
//! the signed manifest, so a partial download can feed other peers.
//!
//! * `GET /v1/artifacts`: the manifest digests held, complete or in
//!   progress, with name, version and completeness as hints (JSON).
//! * `GET /v1/artifacts/{digest}/manifest`: the signed manifest.
//! * `GET /v1/artifacts/{digest}/held`: which chunks are verified here (a
//!   `PQAB` bitmap, docs/artifact-carriage.md).
//! * `GET /v1/artifacts/{digest}/chunks/{i}`: chunk `i`, streamed from disk,
//!   if verified here (else 404).
//! * `POST /v1/artifacts/hint`: "I admitted a new artifact": runs an
//!   anti-entropy round now (the body is ignored; everything is still
//!   pulled and verified).
//!
//! Application API (plain HTTP on `[listen] app`, default 127.0.0.1:9465);
//! it serves only complete artifacts, whose whole payload passed
//! `check_payload` (golden run included):
//!
//! * `GET /v1/artifacts/{name}/latest` and `GET /v1/artifacts/{name}/{version}`:
//!   the payload, streamed from disk, with `Range: bytes=a-b` (one range;
//!   206 or 416), `ETag` = the manifest's payload digest (D47), `X-Pqvault-Manifest-Digest`.
//! * `GET /v1/artifacts/{name}/latest/manifest` (or `/{version}/manifest`):
//!   the signed manifest, for the application to verify itself.
//! * `POST /v1/artifacts`: push a signed manifest (verified before anything
//!   is stored); answers the chunks still missing.
//! * `PUT /v1/artifacts/{digest}/chunks/{i}`: push chunk `i`; verified as it
//!   arrives. The last one triggers the full payload check. A chunk already
//!   verified, or being received by another transfer (anti-entropy shares
//!   one transfer per artifact with pushes), is answered `"verified": true`
//!   or `"in_flight": true` and its body dropped; the pusher then waits
//!   (re-posting the manifest) until the artifact is complete.
//! * `POST /v1/artifacts/{name}/{version}/abandon`: abandon a partial
//!   artifact; the body is a statement signed by the artifact's own
//!   publisher (`vault artifact abandon`), else it is refused.
//!
//! Push needs no authentication: an artifact is accepted only if its
//! publisher's signature verifies and the trust policy delegates the name to
//! that publisher, so a local caller can add nothing the policy does not
//! already allow. The port should still be bound to localhost.

use super::{Admitted, Artifacts, ChunkOutcome, Refusal};
use crate::state::State;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, State as AxState};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use std::sync::Arc;

/// Header carrying the signed manifest's digest (hex).
pub const MANIFEST_DIGEST_HEADER: &str = "x-pqvault-manifest-digest";
/// Header carrying the artifact version.
pub const VERSION_HEADER: &str = "x-pqvault-artifact-version";
/// Header naming the verification failure reason of a refusal.
pub const REFUSAL_HEADER: &str = "x-pqvault-refusal";
/// Read size when streaming from disk (one `preadv2(RWF_NOWAIT)` each,
/// or a blocking-pool hop if the bytes are not cached). Larger
/// reads (256 KiB) saved little CPU and cost the busiest validator 8 MiB
/// more RSS in `tests/benches/artifacts.rs`, serving 24 chunk streams.
const STREAM_BUF: usize = 64 << 10;

/// One entry of `GET /v1/artifacts` (name and version are hints: a peer
/// verifies the manifest itself).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Held {
    /// Manifest digest (hex).
    pub digest: String,
    /// Model name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Every chunk and the whole payload verified (peer lists only; the
    /// application's list holds complete artifacts alone).
    #[serde(default = "yes")]
    pub complete: bool,
}

fn yes() -> bool {
    true
}

/// `GET /v1/artifacts` response.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, Default)]
pub struct HeldList {
    /// Artifacts held.
    pub artifacts: Vec<Held>,
}

/// Peer routes, merged into the peer API router.
pub fn peer_routes() -> Router<Arc<State>> {
    Router::new()
        .route("/v1/artifacts", get(peer_list))
        .route("/v1/artifacts/hint", post(peer_hint))
        .route("/v1/artifacts/{digest}/manifest", get(peer_manifest))
        .route("/v1/artifacts/{digest}/held", get(peer_held))
        .route("/v1/artifacts/{digest}/chunks/{index}", get(peer_chunk))
}

/// The local application router (plain HTTP).
pub fn app_router(state: Arc<State>) -> Router {
    Router::new()
        .route("/v1/artifacts", post(push_manifest).get(list))
        .route(
            "/v1/artifacts/{name}/chunks/{index}",
            put(push_chunk).layer(DefaultBodyLimit::disable()),
        )
        .route("/v1/artifacts/{name}/{version}", get(app_payload))
        .route("/v1/artifacts/{name}/{version}/manifest", get(app_manifest))
        .route("/v1/artifacts/{name}/{version}/abandon", post(abandon))
        .layer(DefaultBodyLimit::max(store_limit()))
        .with_state(state)
}

fn store_limit() -> usize {
    super::store::MAX_MANIFEST_BYTES as usize
}

fn text(code: u16, msg: impl Into<String>) -> Response {
    let code = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (code, format!("{}\n", msg.into())).into_response()
}

fn refusal(r: Refusal) -> Response {
    let mut resp = text(r.status, r.to_string());
    if let Some(reason) = r.reason {
        resp.headers_mut()
            .insert(REFUSAL_HEADER, HeaderValue::from_static(reason));
    }
    resp
}

fn disabled() -> Response {
    text(404, "artifact carriage is not enabled on this validator")
}

fn parse_digest(s: &str) -> Option<[u8; 32]> {
    hex::decode(s).ok()?.try_into().ok()
}

fn held(o: &super::store::Object) -> Held {
    Held {
        digest: hex::encode(o.meta.digest),
        name: o.meta.name.clone(),
        version: o.meta.version.to_string(),
        complete: o.complete,
    }
}

/// The application's list: complete artifacts only.
async fn list(AxState(state): AxState<Arc<State>>) -> Response {
    let Some(art) = state.artifacts.as_ref() else {
        return disabled();
    };
    let now = super::now_unix();
    let artifacts = art
        .lock()
        .complete()
        .filter(|o| !o.expired(now))
        .map(held)
        .collect();
    Json(HeldList { artifacts }).into_response()
}

/// The peers' list: every admitted (verified) manifest, complete or not.
async fn peer_list(AxState(state): AxState<Arc<State>>) -> Response {
    let Some(art) = state.artifacts.as_ref() else {
        return disabled();
    };
    let now = super::now_unix();
    let artifacts = art
        .lock()
        .objects()
        .filter(|o| !o.expired(now))
        .map(held)
        .collect();
    state.count("artifacts", 200);
    Json(HeldList { artifacts }).into_response()
}

async fn peer_hint(AxState(state): AxState<Arc<State>>) -> Response {
    let Some(art) = state.artifacts.as_ref() else {
        return disabled();
    };
    art.wake.notify_one();
    state.count("artifact_hint", 204);
    StatusCode::NO_CONTENT.into_response()
}

async fn peer_held(AxState(state): AxState<Arc<State>>, Path(digest): Path<String>) -> Response {
    let Some(art) = state.artifacts.as_ref() else {
        return disabled();
    };
    let Some(d) = parse_digest(&digest) else {
        state.count("artifact_held", 400);
        return text(400, "digest must be 64 hex digits");
    };
    let bits = art.lock().get(&d).map(|o| o.bitmap());
    match bits {
        Some(b) => {
            state.count("artifact_held", 200);
            ([(header::CONTENT_TYPE, "application/octet-stream")], b).into_response()
        }
        None => {
            state.count("artifact_held", 404);
            text(404, "no artifact with that digest here")
        }
    }
}

fn manifest_response(path: &std::path::Path, digest: &[u8; 32]) -> Response {
    match vault::fsio::read_limited(path, super::store::MAX_MANIFEST_BYTES) {
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, "application/octet-stream".to_string()),
                (
                    header::HeaderName::from_static(MANIFEST_DIGEST_HEADER),
                    hex::encode(digest),
                ),
            ],
            bytes,
        )
            .into_response(),
        Err(e) => text(500, e.to_string()),
    }
}

async fn peer_manifest(
    AxState(state): AxState<Arc<State>>,
    Path(digest): Path<String>,
) -> Response {
    let Some(art) = state.artifacts.as_ref() else {
        return disabled();
    };
    let Some(d) = parse_digest(&digest) else {
        state.count("artifact_manifest", 400);
        return text(400, "digest must be 64 hex digits");
    };
    let now = super::now_unix();
    let found = art
        .lock()
        .get(&d)
        .map(|o| (o.manifest_path(), o.expired(now).then(|| o.meta.clone())));
    match found {
        Some((_, Some(meta))) => {
            art.count_expired("peer");
            state.count("artifact_manifest", 410);
            refusal(expired(&meta))
        }
        Some((p, None)) => {
            state.count("artifact_manifest", 200);
            manifest_response(&p, &d)
        }
        None => {
            state.count("artifact_manifest", 404);
            text(404, "no artifact with that digest here")
        }
    }
}

async fn peer_chunk(
    AxState(state): AxState<Arc<State>>,
    Path((digest, index)): Path<(String, usize)>,
) -> Response {
    let Some(art) = state.artifacts.as_ref() else {
        return disabled();
    };
    let Some(d) = parse_digest(&digest) else {
        state.count("artifact_chunk", 400);
        return text(400, "digest must be 64 hex digits");
    };
    // Any chunk whose hash matched the signed manifest is verified data,
    // whether or not the rest of the artifact has arrived.
    let now = super::now_unix();
    let gone = art
        .lock()
        .get(&d)
        .filter(|o| o.expired(now))
        .map(|o| o.meta.clone());
    if let Some(meta) = gone {
        art.count_expired("peer");
        state.count("artifact_chunk", 410);
        return refusal(expired(&meta));
    }
    let found = art.lock().get(&d).map(|o| {
        (
            o.payload_path(),
            o.meta.chunk_range(index),
            o.meta.chunks.len(),
            o.is_verified(index),
        )
    });
    match found {
        None => {
            state.count("artifact_chunk", 404);
            text(404, "no artifact with that digest here")
        }
        Some((_, Some(_), _, false)) => {
            state.count("artifact_chunk", 404);
            text(404, format!("chunk {index} is not verified here yet"))
        }
        Some((_, None, count, _)) => {
            state.count("artifact_chunk", 400);
            text(400, format!("chunk {index} out of range ({count} chunks)"))
        }
        Some((path, Some((off, len)), _, true)) => match stream_file(&path, off, len).await {
            Ok(body) => {
                state.count("artifact_chunk", 200);
                (
                    [
                        (header::CONTENT_TYPE, "application/octet-stream".to_string()),
                        (header::CONTENT_LENGTH, len.to_string()),
                    ],
                    body,
                )
                    .into_response()
            }
            Err(e) => text(500, format!("cannot read chunk {index}: {e}")),
        },
    }
}

/// A body streaming `len` bytes of `path` from `offset`: positioned reads
/// of [`STREAM_BUF`] bytes, from the page cache on the runtime worker when
/// it holds them, else on the blocking pool, each buffer handed to the
/// body as it is (no further copy), one read ahead of the socket at most.
async fn stream_file(path: &std::path::Path, offset: u64, len: u64) -> std::io::Result<Body> {
    let path = path.to_path_buf();
    let f = tokio::task::spawn_blocking(move || std::fs::File::open(path))
        .await
        .map_err(std::io::Error::other)??;
    let f = Arc::new(f);
    let stream = futures_util::stream::unfold((f, offset, len), |(f, at, left)| async move {
        if left == 0 {
            return None;
        }
        let n = STREAM_BUF.min(usize::try_from(left).unwrap_or(STREAM_BUF));
        // Allocated here, on a runtime worker, not on a blocking-pool
        // thread: fewer malloc arenas keep freed buffers.
        let mut buf = vec![0u8; n];
        // From the page cache at once if it holds the bytes (nearly
        // always: chunks are served moments after they were written);
        // the rest, if any, on the blocking pool.
        let mut got = 0;
        while got < n {
            match super::nowait::read_cached(&f, &mut buf[got..], at + got as u64) {
                Some(k) if k > 0 => got += k,
                _ => break,
            }
        }
        let file = f.clone();
        let read = if got == n {
            Ok(buf)
        } else {
            tokio::task::spawn_blocking(move || {
                use std::os::unix::fs::FileExt;
                while got < n {
                    match file.read_at(&mut buf[got..], at + got as u64) {
                        Ok(0) => break,
                        Ok(k) => got += k,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                }
                buf.truncate(got);
                Ok(buf)
            })
            .await
            .map_err(std::io::Error::other)
            .and_then(|r| r)
        };
        match read {
            Ok(buf) if buf.is_empty() => Some((
                Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "payload file shorter than its manifest",
                )),
                (f, at, 0),
            )),
            Ok(buf) => {
                let k = buf.len() as u64;
                Some((Ok(Bytes::from(buf)), (f, at + k, left - k)))
            }
            Err(e) => Some((Err(e), (f, at, 0))),
        }
    });
    Ok(Body::from_stream(stream))
}

/// What a `Range` header asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeSpec {
    /// Everything (no header, or a form we ignore such as several ranges).
    Full,
    /// Bytes `a..=b`.
    Part(u64, u64),
    /// Unsatisfiable or malformed: 416.
    Unsatisfiable,
}

/// Parses a single `bytes=` range against a payload of `len` bytes.
pub fn parse_range(h: Option<&str>, len: u64) -> RangeSpec {
    match parse_range_inner(h, len) {
        Ok(Some((a, b))) => RangeSpec::Part(a, b),
        Ok(None) => RangeSpec::Full,
        Err(()) => RangeSpec::Unsatisfiable,
    }
}

fn parse_range_inner(h: Option<&str>, len: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = h.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None); // several ranges: ignored (RFC 9110 allows it)
    }
    let (a, b) = spec.split_once('-').ok_or(())?;
    let (a, b) = (a.trim(), b.trim());
    let range = if a.is_empty() {
        // Suffix: the last n bytes.
        let n: u64 = b.parse().map_err(|_| ())?;
        if n == 0 || len == 0 {
            return Err(());
        }
        (len.saturating_sub(n), len - 1)
    } else {
        let start: u64 = a.parse().map_err(|_| ())?;
        let end = if b.is_empty() {
            len.checked_sub(1).ok_or(())?
        } else {
            b.parse::<u64>().map_err(|_| ())?.min(len.saturating_sub(1))
        };
        if start >= len || end < start {
            return Err(());
        }
        (start, end)
    };
    Ok(Some(range))
}

/// Which stored object the application asks for; a refusal if there is
/// none, or if its signed manifest has expired by now (checked at every
/// request: an artifact admitted before its expiry is never served after).
fn resolve(art: &Artifacts, name: &str, version: &str) -> Result<super::store::Object, Refusal> {
    let store = art.lock();
    let o = if version == "latest" {
        store.newest(name)
    } else {
        store.find(name, version)
    }
    .ok_or_else(|| Refusal {
        status: 404,
        reason: None,
        message: format!("no verified artifact {name} {version} here"),
    })?;
    if o.expired(super::now_unix()) {
        art.count_expired("app");
        return Err(expired(&o.meta));
    }
    Ok(o.clone())
}

/// 410 Gone for an artifact whose signed manifest has expired.
fn expired(m: &super::store::Meta) -> Refusal {
    Refusal {
        status: 410,
        reason: Some("expired"),
        message: format!(
            "{} {} expired at {} (Unix seconds): it is no longer served",
            m.name,
            m.version,
            m.expires_unix.unwrap_or(0)
        ),
    }
}

async fn app_payload(
    AxState(state): AxState<Arc<State>>,
    Path((name, version)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let Some(art) = state.artifacts.as_ref() else {
        return disabled();
    };
    let o = match resolve(art, &name, &version) {
        Ok(o) => o,
        Err(r) => return refusal(r),
    };
    let len = o.meta.payload_len;
    let range = headers
        .get(header::RANGE)
        .map(|v| v.to_str().unwrap_or("invalid"));
    let etag = format!("\"{}\"", hex::encode(o.meta.payload_digest));
    let common = [
        (header::CONTENT_TYPE, "application/octet-stream".to_string()),
        (header::ETAG, etag),
        (header::ACCEPT_RANGES, "bytes".to_string()),
        (
            header::HeaderName::from_static(MANIFEST_DIGEST_HEADER),
            hex::encode(o.meta.digest),
        ),
        (
            header::HeaderName::from_static(VERSION_HEADER),
            o.meta.version.to_string(),
        ),
    ];
    let (status, start, end) = match parse_range(range, len) {
        RangeSpec::Full => (StatusCode::OK, 0, len),
        RangeSpec::Part(a, b) => (StatusCode::PARTIAL_CONTENT, a, b + 1),
        RangeSpec::Unsatisfiable => {
            return (
                StatusCode::RANGE_NOT_SATISFIABLE,
                common,
                [(header::CONTENT_RANGE, format!("bytes */{len}"))],
                "range not satisfiable\n",
            )
                .into_response()
        }
    };
    let body = match stream_file(&o.payload_path(), start, end - start).await {
        Ok(b) => b,
        Err(e) => return text(500, format!("cannot read payload: {e}")),
    };
    let mut resp = (status, common, body).into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&(end - start).to_string()) {
        h.insert(header::CONTENT_LENGTH, v);
    }
    if status == StatusCode::PARTIAL_CONTENT {
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{len}", end - 1)) {
            h.insert(header::CONTENT_RANGE, v);
        }
    }
    resp
}

async fn app_manifest(
    AxState(state): AxState<Arc<State>>,
    Path((name, version)): Path<(String, String)>,
) -> Response {
    let Some(art) = state.artifacts.as_ref() else {
        return disabled();
    };
    match resolve(art, &name, &version) {
        Ok(o) => manifest_response(&o.manifest_path(), &o.meta.digest),
        Err(r) => refusal(r),
    }
}

async fn push_manifest(AxState(state): AxState<Arc<State>>, body: Bytes) -> Response {
    let Some(art) = state.artifacts.clone() else {
        return disabled();
    };
    let result = tokio::task::spawn_blocking(move || art.admit(&body, None)).await;
    match result {
        Ok(Ok(a)) => {
            if !a.complete {
                tokio::spawn(super::sync::hint_peers(state.clone()));
            }
            let code = if a.complete {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            (code, Json::<Admitted>(a)).into_response()
        }
        Ok(Err(r)) => {
            tracing::warn!("artifact push refused: {r}");
            refusal(r)
        }
        Err(e) => text(500, e.to_string()),
    }
}

async fn push_chunk(
    AxState(state): AxState<Arc<State>>,
    Path((digest, index)): Path<(String, usize)>,
    body: Body,
) -> Response {
    let Some(art) = state.artifacts.clone() else {
        return disabled();
    };
    let Some(d) = parse_digest(&digest) else {
        return text(400, "digest must be 64 hex digits");
    };
    let mut body = body;
    let outcome = art.receive_chunk(d, index, &mut body, false).await;
    // A chunk already verified here, or being received right now by
    // another transfer (the anti-entropy download, or another push), is
    // done as far as this pusher is concerned: its body is read and
    // dropped (so the pusher sees this answer, not a reset connection),
    // and the answer says whether the whole artifact is complete yet.
    let already = matches!(outcome, Ok(ChunkOutcome::AlreadyHad));
    let (verified, in_flight) = match outcome {
        Ok(_) => (true, false),
        Err(r) if r.status == 409 && r.reason.is_none() => (false, true),
        Err(r) => {
            tracing::warn!(chunk = index, "artifact chunk push refused: {r}");
            return refusal(r);
        }
    };
    if already || in_flight {
        let limit = art
            .lock()
            .get(&d)
            .map_or(0, |o| o.meta.chunk_size)
            .saturating_add(1);
        drain(&mut body, limit).await;
    }
    let complete = art.lock().get(&d).is_some_and(|o| o.complete);
    Json(serde_json::json!({
        "index": index,
        "verified": verified,
        "in_flight": in_flight,
        "complete": complete,
    }))
    .into_response()
}

/// Reads and drops at most `limit` bytes of `body` (30 s at most).
async fn drain(body: &mut Body, limit: u64) {
    use http_body_util::BodyExt;
    let read = async {
        let mut n = 0u64;
        while let Some(Ok(frame)) = body.frame().await {
            if let Some(data) = frame.data_ref() {
                n += data.len() as u64;
                if n > limit {
                    break;
                }
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(30), read).await;
}

/// `POST /v1/artifacts/{name}/{version}/abandon`: the body is an abandon
/// statement signed by the artifact's publisher (`vault artifact abandon`).
async fn abandon(
    AxState(state): AxState<Arc<State>>,
    Path((name, version)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let Some(art) = state.artifacts.clone() else {
        return disabled();
    };
    let result =
        tokio::task::spawn_blocking(move || art.abandon_signed(&name, &version, &body)).await;
    match result {
        Ok(Ok(digests)) => Json(serde_json::json!({
            "abandoned": digests.iter().map(hex::encode).collect::<Vec<_>>(),
        }))
        .into_response(),
        Ok(Err(r)) => {
            tracing::warn!("artifact abandon refused: {r}");
            refusal(r)
        }
        Err(e) => text(500, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::{parse_range, RangeSpec::*};

    #[test]
    fn ranges() {
        assert_eq!(parse_range(None, 10), Full);
        assert_eq!(parse_range(Some("bytes=0-3"), 10), Part(0, 3));
        assert_eq!(parse_range(Some("bytes=5-"), 10), Part(5, 9));
        assert_eq!(parse_range(Some("bytes=-4"), 10), Part(6, 9));
        assert_eq!(parse_range(Some("bytes=-40"), 10), Part(0, 9));
        assert_eq!(parse_range(Some("bytes=8-100"), 10), Part(8, 9));
        assert_eq!(parse_range(Some("bytes=0-1,4-5"), 10), Full);
        assert_eq!(parse_range(Some("items=0-1"), 10), Full);
        assert_eq!(parse_range(Some("bytes=10-"), 10), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=5-4"), 10), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=-0"), 10), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=x-4"), 10), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=0-0"), 0), Unsatisfiable);
    }
}
