//! A misbehaving validator, for tests only.
//!
//! With the `byzantine` cargo feature, which only the test crate's
//! dev-dependency turns on (never a release build), environment variables
//! make this validator lie the way a compromised member would, so every
//! attack of docs/threat-model.md is a multi-process test:
//!
//! * `PQVAULT_BYZANTINE_CLAIM_IDENTITY=FILE.pub`: answer `GET /v1/identity`
//!   with another member's public identity (impersonation).
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

/// Whether this build can misbehave at all (logged at start).
pub const ENABLED: bool = cfg!(feature = "byzantine");
