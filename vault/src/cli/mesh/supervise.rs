//! Running a local mesh's validators as child processes: finding the
//! binary, starting them with pid files, stopping them (SIGTERM, then
//! SIGKILL), and Ctrl-C.
//!
//! A demo's children die with it: the [`Supervisor`] kills the group when
//! dropped, SIGINT and SIGTERM only raise a flag the demo checks
//! ([`interrupted`]) so it unwinds through that drop, and each child asks
//! the kernel for SIGKILL if its parent dies anyway (`PR_SET_PDEATHSIG`,
//! e.g. after a SIGKILL of the demo); they share one process group. `vault
//! mesh up` and `vault demo --keep` start detached children instead, each
//! in its own session like any daemon, which `vault mesh down` stops
//! through the pid files.

use super::layout::Node;
use anyhow::{anyhow, bail, Context, Result};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Environment variable naming the validator binary.
pub const VALIDATOR_ENV: &str = "PQVAULT_VALIDATOR";

/// The `validator` binary: `flag`, else `$PQVAULT_VALIDATOR`, else the one
/// next to this `vault` executable (where cargo builds both).
pub fn validator_binary(flag: Option<&Path>) -> Result<PathBuf> {
    let (path, from) = match (flag, std::env::var_os(VALIDATOR_ENV)) {
        (Some(p), _) => (p.to_path_buf(), "--validator-bin"),
        (None, Some(p)) => (PathBuf::from(p), VALIDATOR_ENV),
        (None, None) => {
            let exe = std::env::current_exe().context("cannot locate the vault executable")?;
            let dir = exe
                .parent()
                .ok_or_else(|| anyhow!("{} has no directory", exe.display()))?;
            (dir.join("validator"), "the vault executable's directory")
        }
    };
    if !path.is_file() {
        bail!(
            "no validator binary at {} (from {from}): build it with `cargo build --bins` \
             (the same profile as vault), or give --validator-bin PATH or {VALIDATOR_ENV}",
            path.display()
        );
    }
    Ok(path)
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Makes SIGINT and SIGTERM set the [`interrupted`] flag instead of
/// ending the process, so the caller stops its children first.
pub fn catch_interrupts() -> Result<()> {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: installs a handler that only stores to an atomic; the
        // sigaction struct is zero-initialised, then filled.
        let rc = unsafe {
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = on_signal as *const () as libc::sighandler_t;
            libc::sigemptyset(&mut act.sa_mask);
            libc::sigaction(sig, &act, std::ptr::null_mut())
        };
        if rc != 0 {
            bail!(
                "cannot install a signal handler: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    Ok(())
}

/// True once SIGINT or SIGTERM arrived (after [`catch_interrupts`]).
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Fails with "interrupted" once a signal arrived: call between steps.
pub fn check_interrupt() -> Result<()> {
    if interrupted() {
        bail!("interrupted: stopping every validator");
    }
    Ok(())
}

/// Sleeps `d` in small steps, failing early on an interrupt.
pub fn sleep(d: Duration) -> Result<()> {
    let end = Instant::now() + d;
    loop {
        check_interrupt()?;
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        std::thread::sleep(left.min(Duration::from_millis(25)));
    }
}

/// Whether children outlive this process.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Lifetime {
    /// Killed with this process (the demo): SIGKILL on drop and on the
    /// parent's death.
    Attached,
    /// Left running (`vault mesh up`, `vault demo --keep`): stopped by
    /// `vault mesh down`.
    Detached,
}

/// The running validators of one local mesh.
pub struct Supervisor {
    binary: PathBuf,
    lifetime: Lifetime,
    /// Process group of every attached child (the first child's pid);
    /// detached children each lead their own session.
    pgid: Option<i32>,
    children: Vec<(String, Child, PathBuf)>,
}

impl Supervisor {
    /// A supervisor starting `binary`.
    pub fn new(binary: PathBuf, lifetime: Lifetime) -> Self {
        Supervisor {
            binary,
            lifetime,
            pgid: None,
            children: Vec::new(),
        }
    }

    /// Starts `node`'s validator: stderr to its log, pid to its pid file.
    pub fn start(&mut self, node: &Node) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(node.log())
            .with_context(|| format!("cannot open {}", node.log().display()))?;
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--config")
            .arg(node.config())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        if self.lifetime == Lifetime::Detached {
            // SAFETY: runs in the forked child before exec and calls only
            // setsid, which is async-signal-safe.
            unsafe {
                cmd.pre_exec(|| {
                    // Its own session, as a daemon: no terminal's hangup
                    // reaches it, and once we exit its group is not an
                    // orphaned group shared with the others, which the
                    // kernel would SIGHUP and SIGCONT as soon as one member
                    // exits while another is stopped.
                    if libc::setsid() < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        } else {
            // One group for the mesh, away from the terminal's: a Ctrl-C
            // reaches only us, and we stop the children in order.
            cmd.process_group(self.pgid.unwrap_or(0));
        }
        if self.lifetime == Lifetime::Attached {
            let parent = std::process::id() as libc::pid_t;
            // SAFETY: runs in the forked child before exec and calls only
            // async-signal-safe functions (prctl, getppid, _exit).
            unsafe {
                cmd.pre_exec(move || {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    // The parent died before prctl took effect.
                    if libc::getppid() != parent {
                        libc::_exit(1);
                    }
                    Ok(())
                });
            }
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", self.binary.display()))?;
        let pid = child.id();
        if self.lifetime == Lifetime::Attached {
            self.pgid.get_or_insert(pid as i32);
        }
        vault::fsio::write_atomic(
            &node.pid_file(),
            format!("{pid}\n").as_bytes(),
            vault::fsio::Mode::Public,
            true,
        )?;
        self.children
            .push((node.id.clone(), child, node.pid_file()));
        Ok(())
    }

    /// The first child that exited on its own: (id, status).
    pub fn exited(&mut self) -> Option<(String, std::process::ExitStatus)> {
        self.children
            .iter_mut()
            .find_map(|(id, c, _)| c.try_wait().ok().flatten().map(|s| (id.clone(), s)))
    }

    /// SIGKILLs `id`'s validator and reaps it; removes its pid file.
    pub fn kill9(&mut self, id: &str) -> Result<()> {
        let at = self
            .children
            .iter()
            .position(|(i, _, _)| i == id)
            .ok_or_else(|| anyhow!("{id} is not running"))?;
        let (_, mut child, pid_file) = self.children.remove(at);
        child.kill().with_context(|| format!("cannot kill {id}"))?;
        let _ = child.wait();
        let _ = std::fs::remove_file(pid_file);
        Ok(())
    }

    /// Stops every child: SIGTERM, then SIGKILL to the group after
    /// `grace`; reaps them and removes their pid files.
    pub fn stop_all(&mut self, grace: Duration) {
        for (_, c, _) in &self.children {
            signal(c.id() as i32, libc::SIGTERM);
        }
        let end = Instant::now() + grace;
        while Instant::now() < end
            && self
                .children
                .iter_mut()
                .any(|(_, c, _)| matches!(c.try_wait(), Ok(None)))
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill_group();
        for (_, mut c, pid_file) in self.children.drain(..) {
            let _ = c.kill();
            let _ = c.wait();
            let _ = std::fs::remove_file(pid_file);
        }
    }

    /// Leaves every child running (detached mode): forgets them.
    pub fn release(&mut self) {
        self.children.clear();
        self.pgid = None;
    }

    fn kill_group(&self) {
        if let Some(g) = self.pgid {
            signal(-g, libc::SIGKILL);
        }
    }
}

impl Drop for Supervisor {
    /// Kills whatever is still running: an error or Ctrl-C leaves no
    /// validator behind.
    fn drop(&mut self) {
        if !self.children.is_empty() {
            self.kill_group();
            for (_, mut c, pid_file) in self.children.drain(..) {
                let _ = c.kill();
                let _ = c.wait();
                let _ = std::fs::remove_file(pid_file);
            }
        }
    }
}

/// Sends `sig` to `pid` (a negative pid: a process group).
fn signal(pid: i32, sig: libc::c_int) -> bool {
    // SAFETY: kill(2) with plain integers.
    unsafe { libc::kill(pid, sig) == 0 }
}

/// Whether process `pid` runs the validator of config `config` (so a pid
/// file left behind never names another program that reused the pid).
fn runs_config(pid: i32, config: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let want = config.as_os_str().as_encoded_bytes();
    cmdline.split(|&b| b == 0).any(|arg| arg == want)
}

/// The validators of the mesh in `dir` that are running, from their pid
/// files: (id, pid, pid file).
pub fn running(dir: &Path) -> Result<Vec<(String, i32, PathBuf)>> {
    let mut out = Vec::new();
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
    for e in entries {
        let node_dir = e?.path();
        let pid_file = node_dir.join("validator.pid");
        let Ok(text) = std::fs::read_to_string(&pid_file) else {
            continue;
        };
        let id = node_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match text.trim().parse::<i32>() {
            Ok(pid) if pid > 0 && runs_config(pid, &node_dir.join("validator.toml")) => {
                out.push((id, pid, pid_file));
            }
            // Stale: the process is gone (or is another program now).
            _ => {
                let _ = std::fs::remove_file(&pid_file);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// How [`down`] stopped one validator.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Stopped {
    /// It exited after SIGTERM, within the grace time.
    Terminated,
    /// Still running after the grace time: SIGKILLed.
    Killed,
}

/// Stops every validator of the mesh in `dir`: SIGTERM, SIGKILL after
/// `grace`. Idempotent: nothing running is not an error. Returns the ids
/// stopped and how.
pub fn down(dir: &Path, grace: Duration) -> Result<Vec<(String, Stopped)>> {
    let dir = dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", dir.display()))?;
    let procs = running(&dir)?;
    for (_, pid, _) in &procs {
        signal(*pid, libc::SIGTERM);
    }
    let alive = |pid: i32| Path::new(&format!("/proc/{pid}")).exists() && !is_zombie(pid);
    let end = Instant::now() + grace;
    while Instant::now() < end && procs.iter().any(|(_, p, _)| alive(*p)) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut out = Vec::new();
    for (id, pid, pid_file) in procs {
        let how = if alive(pid) {
            signal(pid, libc::SIGKILL);
            Stopped::Killed
        } else {
            Stopped::Terminated
        };
        let _ = std::fs::remove_file(pid_file);
        out.push((id, how));
    }
    Ok(out)
}

/// A zombie (exited, not yet reaped by its parent) counts as stopped.
fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next().map(|st| st == "Z"))
        })
        .unwrap_or(false)
}
