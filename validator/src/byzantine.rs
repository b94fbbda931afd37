//! A misbehaving validator, for tests only.
//!
//! With the `byzantine` cargo feature, which only the test crate's
//! dev-dependency turns on (never a release build), environment variables
//! make this validator lie the way a compromised member would, so every
//! attack of docs/threat-model.md is a multi-process test:
//!
//! * `PQVAULT_BYZANTINE_CLAIM_IDENTITY=FILE.pub`: answer `GET /v1/identity`
//!   with another member's public identity (impersonation).
//! * `PQVAULT_BYZANTINE_CLOCK_OFFSET_MS=N`: run with a wall clock `N` ms
//!   ahead (negative: behind), as reported in `GET /v1/hello` and used to
//!   measure peers' clocks (a skewed machine).
//! * `PQVAULT_BYZANTINE_BAD_DEAL=1`: deal a re-share from our share plus a
//!   constant (a bad dealer: without a check, no t shares of the next
//!   epoch recover the secret).
//! * `PQVAULT_BYZANTINE_BAD_SUBSHARE_TO=K`: in every re-share we deal,
//!   send the recipient of new index `K` a wrong point (signed, as a
//!   dealer must sign what it sends): a dealer picking on one recipient,
//!   which looks like that recipient lying until the dispute is settled.
//! * `PQVAULT_BYZANTINE_LIE_AND_HIDE=1`: publish wrong dealing-check
//!   values in every re-share we receive, and refuse every request to
//!   reveal our sub-shares (a recipient that lies and hides).
//! * `PQVAULT_BYZANTINE_SPLIT_SIGNERS=1`: when leading, send every other
//!   signer a second copy of the successor (its creation time one second
//!   later, signed by us), so no copy reaches a quorum (a leader splitting
//!   the signers, D38). `=late`: send the second copy half a second after
//!   the first, once the first has an honest signature (D49).
//! * `PQVAULT_BYZANTINE_BAD_CHECK_ONCE=1`: publish wrong dealing-check
//!   values in the first re-share we receive, then behave (a recipient
//!   that lies once).
//! * `PQVAULT_BYZANTINE_DROP_TRANSITION_ONCE=1`: fail the first certified
//!   proposal we are sent (`POST /v1/transition`) as if we had crashed
//!   there, then behave (an attempt that fails after certification).
//! * `PQVAULT_BYZANTINE_LYING_RECOVERY=1`: answer an operator's recovery
//!   request with a wrong share (a holder lying to the operator).
//! * `PQVAULT_BYZANTINE_SILENT_HELPER=1`: accept every certified repair we
//!   are named a helper of, then send no piece (a helper that withholds:
//!   the round cannot complete).
//! * `PQVAULT_BYZANTINE_SILENT_DEALER_TO=K`: in every re-share we deal,
//!   send the recipient of new index `K` nothing (a dealer withholding
//!   from one recipient, which at most f recipients then name).
//! * `PQVAULT_BYZANTINE_SILENT_DEALER=1`: take part in every certified
//!   re-share as a dealer and send no sub-share (a dealer that withholds).
//! * `PQVAULT_BYZANTINE_SILENT_RECIPIENT=1`: take part in every certified
//!   re-share as a recipient, accept every sub-share, and never make our
//!   new share (a recipient that withholds: the attempt cannot complete).
//! * `PQVAULT_BYZANTINE_BLAME_DEALER=1`: take part in every certified
//!   re-share as a recipient, accept (and acknowledge) every sub-share,
//!   never make our new share, and report the first dealer's sub-share as
//!   missing (a recipient that withholds behind a false accusation).
//!   `=noreceipt`: the same, acknowledging no sub-share with a receipt, so
//!   the accusation cannot be disproved.
//! * `PQVAULT_BYZANTINE_SHUN=ID`: behave towards everyone but member `ID`,
//!   which gets an incomplete re-share status (no new share, no check
//!   values) and no signature on a successor it asks for (a recipient
//!   that withholds from the leader alone).
//! * `PQVAULT_BYZANTINE_WITHHOLD_VOTES=1`: refuse every proposal vote (a
//!   holder that withholds, or whose view never agrees), still signing
//!   and committing as an honest holder would.
//! * `PQVAULT_BYZANTINE_CLAIM_DEAD=ID`: claim member `ID` has been dead for
//!   the operator's policy time: vote for its removal, ask the others to,
//!   and send every member a certified removal of our own votes whatever
//!   its count (a liar trying to remove an honest member).
//!
//! * `PQVAULT_BYZANTINE_ABUSE_SUBSHARES=1`: in every re-share we deal,
//!   also send one recipient its sub-share as another dealer's, unsigned,
//!   another recipient's sub-share, and ours again after it was taken
//!   (impersonation, an unsigned point, the wrong recipient, a replay),
//!   logging each answer.
//!
//! Without the feature every function here is a constant "behave".

/// The public identity bytes to claim instead of our own, if told to lie.
pub fn claimed_identity() -> Option<Vec<u8>> {
    #[cfg(feature = "byzantine")]
    {
        let path = std::env::var_os("PQVAULT_BYZANTINE_CLAIM_IDENTITY")?;
        std::fs::read(path).ok()
    }
    #[cfg(not(feature = "byzantine"))]
    None
}

/// Our wall clock in Unix milliseconds, as reported to peers and used to
/// measure theirs (shifted by `PQVAULT_BYZANTINE_CLOCK_OFFSET_MS` in a test
/// build told to).
pub fn clock_now_ms() -> u64 {
    let now = crate::state::unix_ms();
    #[cfg(feature = "byzantine")]
    if let Some(off) = std::env::var("PQVAULT_BYZANTINE_CLOCK_OFFSET_MS")
        .ok()
        .and_then(|v| v.parse::<i64>().ok())
    {
        return now.saturating_add_signed(off);
    }
    now
}

/// Changes the share we are about to deal, if told to deal badly.
pub fn corrupt_deal(value: &mut [u8]) {
    #[cfg(feature = "byzantine")]
    if std::env::var_os("PQVAULT_BYZANTINE_BAD_DEAL").is_some() {
        flip(value);
        tracing::warn!("byzantine test build: dealing a wrong share");
    }
    #[cfg(not(feature = "byzantine"))]
    let _ = value;
}

/// Changes the sub-share we are about to deal to new index `k`, if told
/// to pick on that recipient.
pub fn corrupt_subshare(k: u8, value: &mut [u8]) {
    #[cfg(feature = "byzantine")]
    if std::env::var("PQVAULT_BYZANTINE_BAD_SUBSHARE_TO").is_ok_and(|v| v == k.to_string()) {
        flip(value);
        tracing::warn!(
            recipient = k,
            "byzantine test build: dealing a wrong sub-share"
        );
    }
    #[cfg(not(feature = "byzantine"))]
    let _ = (k, value);
}

/// Changes the share we are about to send an operator, if told to lie.
pub fn corrupt_recovery(value: &mut [u8]) {
    #[cfg(feature = "byzantine")]
    if std::env::var_os("PQVAULT_BYZANTINE_LYING_RECOVERY").is_some() {
        flip(value);
        tracing::warn!("byzantine test build: answering a recovery request with a wrong share");
    }
    #[cfg(not(feature = "byzantine"))]
    let _ = value;
}

/// Changes the dealing-check values we are about to publish, the first
/// time only, if told to.
pub fn corrupt_check_once(values: &mut [Vec<u8>]) {
    #[cfg(feature = "byzantine")]
    if std::env::var_os("PQVAULT_BYZANTINE_BAD_CHECK_ONCE").is_some() {
        static DONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        if !DONE.swap(true, std::sync::atomic::Ordering::SeqCst) {
            if let Some(v) = values.first_mut() {
                flip(v);
            }
            tracing::warn!("byzantine test build: publishing wrong check values");
        }
    }
    #[cfg(not(feature = "byzantine"))]
    let _ = values;
}

/// Changes the dealing-check values we are about to publish, every time,
/// if told to lie and hide.
pub fn corrupt_check_always(values: &mut [Vec<u8>]) {
    #[cfg(feature = "byzantine")]
    if hide_reveal() {
        if let Some(v) = values.first_mut() {
            flip(v);
        }
        tracing::warn!("byzantine test build: publishing wrong check values");
    }
    #[cfg(not(feature = "byzantine"))]
    let _ = values;
}

/// Whether to refuse to reveal our sub-shares, if told to lie and hide.
pub fn hide_reveal() -> bool {
    #[cfg(feature = "byzantine")]
    if std::env::var_os("PQVAULT_BYZANTINE_LIE_AND_HIDE").is_some() {
        return true;
    }
    false
}

/// A second copy of the successor manifest `m2` to split the signers
/// with, if told to.
pub fn split_copy(m2: &[u8], key: &vault::identity::SecretIdentity) -> Option<Vec<u8>> {
    #[cfg(feature = "byzantine")]
    if std::env::var_os("PQVAULT_BYZANTINE_SPLIT_SIGNERS").is_some() {
        let mut body = vault::manifest::Manifest::decode(m2).ok()?.body().clone();
        body.created_unix += 1;
        tracing::warn!("byzantine test build: splitting the signers between two copies");
        return vault::manifest::Manifest::sign(&body, key.public(), key.signing_key()).ok();
    }
    #[cfg(not(feature = "byzantine"))]
    let _ = (m2, key);
    None
}

/// How long to hold back the second copy when splitting the signers
/// (`PQVAULT_BYZANTINE_SPLIT_SIGNERS=late`).
pub fn split_late() -> Option<std::time::Duration> {
    #[cfg(feature = "byzantine")]
    if std::env::var("PQVAULT_BYZANTINE_SPLIT_SIGNERS").is_ok_and(|v| v == "late") {
        return Some(std::time::Duration::from_millis(500));
    }
    None
}

/// Whether to fail this certified proposal: the first one only, if told to.
pub fn drop_transition_once() -> bool {
    #[cfg(feature = "byzantine")]
    if std::env::var_os("PQVAULT_BYZANTINE_DROP_TRANSITION_ONCE").is_some() {
        static DONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        if !DONE.swap(true, std::sync::atomic::Ordering::SeqCst) {
            tracing::warn!("byzantine test build: failing a certified proposal");
            return true;
        }
    }
    false
}

/// Whether to send no piece as a helper, if told to.
pub fn silent_helper() -> bool {
    #[cfg(feature = "byzantine")]
    if std::env::var_os("PQVAULT_BYZANTINE_SILENT_HELPER").is_some() {
        tracing::warn!("byzantine test build: helping silently");
        return true;
    }
    false
}

/// Whether to send new index `k` no sub-share, if told to pick on it.
pub fn silent_to(k: u8) -> bool {
    #[cfg(feature = "byzantine")]
    if std::env::var("PQVAULT_BYZANTINE_SILENT_DEALER_TO").is_ok_and(|v| v == k.to_string()) {
        tracing::warn!(
            recipient = k,
            "byzantine test build: dealing nothing to one recipient"
        );
        return true;
    }
    #[cfg(not(feature = "byzantine"))]
    let _ = k;
    false
}

/// Whether to send no sub-share as a dealer, if told to.
pub fn silent_dealer() -> bool {
    #[cfg(feature = "byzantine")]
    if std::env::var_os("PQVAULT_BYZANTINE_SILENT_DEALER").is_some() {
        tracing::warn!("byzantine test build: dealing silently");
        return true;
    }
    false
}

/// Whether to accept our sub-shares and never make our new share, if told
/// to.
pub fn silent_recipient() -> bool {
    #[cfg(feature = "byzantine")]
    if std::env::var_os("PQVAULT_BYZANTINE_SILENT_RECIPIENT").is_some() {
        tracing::warn!("byzantine test build: receiving silently");
        return true;
    }
    false
}

/// The dealer to accuse of withholding in a re-share with `dealers`, if
/// told to blame one.
pub fn blamed_dealer(dealers: &[u8]) -> Option<u8> {
    #[cfg(feature = "byzantine")]
    if std::env::var_os("PQVAULT_BYZANTINE_BLAME_DEALER").is_some() {
        tracing::warn!("byzantine test build: blaming a dealer");
        return dealers.first().copied();
    }
    #[cfg(not(feature = "byzantine"))]
    let _ = dealers;
    None
}

/// Whether to answer sub-shares without a receipt, if told to.
pub fn withhold_receipts() -> bool {
    #[cfg(feature = "byzantine")]
    if std::env::var("PQVAULT_BYZANTINE_BLAME_DEALER").is_ok_and(|v| v == "noreceipt") {
        return true;
    }
    false
}

/// Whether to withhold our re-share status and successor signatures from
/// member `caller`, if told to shun it.
pub fn shuns(caller: &str) -> bool {
    #[cfg(feature = "byzantine")]
    if std::env::var_os("PQVAULT_BYZANTINE_SHUN").is_some_and(|id| id == caller) {
        tracing::warn!(%caller, "byzantine test build: shunning");
        return true;
    }
    #[cfg(not(feature = "byzantine"))]
    let _ = caller;
    false
}

/// Whether to refuse every proposal vote, if told to.
pub fn withhold_votes() -> bool {
    #[cfg(feature = "byzantine")]
    if std::env::var_os("PQVAULT_BYZANTINE_WITHHOLD_VOTES").is_some() {
        return true;
    }
    false
}

/// Whether to claim member `id` dead for the policy time, if told to.
pub fn claims_dead(id: &str) -> bool {
    #[cfg(feature = "byzantine")]
    if std::env::var("PQVAULT_BYZANTINE_CLAIM_DEAD").is_ok_and(|v| v == id) {
        return true;
    }
    #[cfg(not(feature = "byzantine"))]
    let _ = id;
    false
}

/// Whether to send abusive sub-shares beside our honest dealing, if told
/// to.
pub fn abuse_subshares() -> bool {
    #[cfg(feature = "byzantine")]
    if std::env::var_os("PQVAULT_BYZANTINE_ABUSE_SUBSHARES").is_some() {
        return true;
    }
    false
}

/// The one lie every corrupting knob tells: its first byte changed.
#[cfg(feature = "byzantine")]
fn flip(value: &mut [u8]) {
    if let Some(b) = value.first_mut() {
        *b ^= 0x5a;
    }
}

/// Whether this build can misbehave at all (logged at start).
pub const ENABLED: bool = cfg!(feature = "byzantine");
