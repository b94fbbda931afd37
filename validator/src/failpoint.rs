//! Test-only fault injection at every persistence step.
//!
//! [`crash_point!`] marks a step of a multi-step write (epoch commit, vote,
//! artifact admission). With the `failpoints` cargo feature, which only the
//! workspace's test crate turns on (a dev-dependency, so release builds of
//! the validator never have it), a point configured with the `return` action
//! ends the process at once, as a SIGKILL would: no destructor runs and
//! nothing else reaches the disk. Without the feature the macro expands to
//! nothing.
//!
//! Configure with the `FAILPOINTS` environment variable of the `fail`
//! crate, e.g. `FAILPOINTS=store.commit.manifest-written=return`, or in a
//! test with `fail::cfg(name, "return")`. [`ALL`] lists every point, for
//! the tests that walk them.

/// Every crash point, in the order a write passes them.
pub const ALL: &[&str] = &[
    STORE_COMMIT_DIR,
    STORE_COMMIT_SHARD,
    STORE_COMMIT_PROOF,
    STORE_COMMIT_MANIFEST,
    STORE_COMMIT_CURRENT,
    STORE_COMMIT_DONE,
    STORE_VOTE_BEFORE,
    STORE_VOTE_WRITTEN,
    ARTIFACT_ADMIT_STAGED,
    ARTIFACT_ADMIT_MOVED,
    ARTIFACT_COMPLETE_SYNCED,
    ARTIFACT_COMPLETE_MARKED,
];

/// The crash points whose names start with `prefix` (`"store."`,
/// `"artifact."`), in [`ALL`]'s order: what one walk covers.
pub fn points(prefix: &str) -> Vec<&'static str> {
    ALL.iter()
        .copied()
        .filter(|p| p.starts_with(prefix))
        .collect()
}

/// Epoch commit: the new epoch's directory exists, nothing in it yet.
pub const STORE_COMMIT_DIR: &str = "store.commit.dir-created";
/// Epoch commit: the sealed shard is written.
pub const STORE_COMMIT_SHARD: &str = "store.commit.shard-written";
/// Epoch commit: the anchor and the certified steps are written.
pub const STORE_COMMIT_PROOF: &str = "store.commit.proof-written";
/// Epoch commit: the manifest is written; `CURRENT` still names the old epoch.
pub const STORE_COMMIT_MANIFEST: &str = "store.commit.manifest-written";
/// Epoch commit: `CURRENT` names the new epoch; the old one is still on disk.
pub const STORE_COMMIT_CURRENT: &str = "store.commit.current-switched";
/// Epoch commit: the old epoch is removed.
pub const STORE_COMMIT_DONE: &str = "store.commit.done";
/// Vote: about to record it.
pub const STORE_VOTE_BEFORE: &str = "store.vote.before-write";
/// Vote: recorded, not yet answered.
pub const STORE_VOTE_WRITTEN: &str = "store.vote.written";
/// Artifact admission: manifest and preallocated payload staged.
pub const ARTIFACT_ADMIT_STAGED: &str = "artifact.admit.staged";
/// Artifact admission: the object directory is moved into place.
pub const ARTIFACT_ADMIT_MOVED: &str = "artifact.admit.moved";
/// Artifact completion: payload fsynced, not yet marked complete.
pub const ARTIFACT_COMPLETE_SYNCED: &str = "artifact.complete.synced";
/// Artifact completion: marked complete (servable).
pub const ARTIFACT_COMPLETE_MARKED: &str = "artifact.complete.marked";

/// The probe loop, once per round: a test arms it with `panic` to check
/// that a panicking background task stops the validator (not a crash
/// point: not in [`ALL`]).
pub const PROBE_ROUND: &str = "daemon.probe-round";

/// A leader's transition, once the successor's signatures are gathered and
/// before any commit: the holders' votes are spent on a copy whose
/// certificate only the leader held (a leader lost mid-signature). Not a
/// store step: not in [`ALL`].
pub const HEAL_SIGNATURES_GATHERED: &str = "heal.signatures-gathered";

/// Ends the process as a SIGKILL would (called at a configured point).
#[cfg(feature = "failpoints")]
pub fn die(name: &str) -> ! {
    eprintln!("failpoint {name}: exiting here as if killed");
    std::process::exit(137)
}

/// Marks a crash point (see the module docs).
#[macro_export]
macro_rules! crash_point {
    ($name:expr) => {
        #[cfg(feature = "failpoints")]
        fail::fail_point!($name, |_| $crate::failpoint::die($name));
    };
}

/// Test side of a crash walk: re-runs this test binary as the victim, only
/// the test `child_test` (which reads `PQVAULT_CRASH_DIR` and arms
/// `PQVAULT_CRASH_AT`), and returns how it ended.
#[cfg(all(test, feature = "failpoints"))]
pub(crate) fn run_crash_child(
    child_test: &str,
    dir: &std::path::Path,
    point: &str,
) -> std::process::ExitStatus {
    std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", child_test, "--test-threads=1"])
        .env("PQVAULT_CRASH_DIR", dir)
        .env("PQVAULT_CRASH_AT", point)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run the crash child")
}
