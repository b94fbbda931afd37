//! File reads that run on the async runtime's own thread when they cannot
//! block, and report so otherwise.
//!
//! A chunk being served was almost always written or read moments ago, so
//! its bytes are in the page cache. Sending each 64 KiB read to the
//! blocking pool costs two thread wakeups and context switches, which a
//! profile of the bench (`tests/benches/artifacts.rs`) showed as the
//! largest CPU cost of the six validators serving one re-fetch.
//! `preadv2` with `RWF_NOWAIT` (Linux) copies at once when no I/O wait is
//! needed and fails with `EAGAIN` otherwise; the caller then falls back to
//! the blocking pool. Elsewhere, or on a kernel or filesystem without the
//! flag, every call answers "would block" and nothing changes. (Buffered
//! writes with the flag fail with `EOPNOTSUPP` on ext4 with Linux 6.18,
//! so chunk writes stay on the blocking pool.)

use std::fs::File;

/// Reads into `buf` at `offset` if that needs no I/O wait: `Some(n)` bytes
/// read (possibly fewer than asked, 0 at the end of the file), `None` if
/// the read would block (the bytes are not cached) or cannot be tried.
pub fn read_cached(file: &File, buf: &mut [u8], offset: u64) -> Option<usize> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let offset = libc::off_t::try_from(offset).ok()?;
        let iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: `iov` describes `buf`, valid and writable for its length
        // for the duration of the call; the descriptor is owned by `file`.
        let n = unsafe { libc::preadv2(file.as_raw_fd(), &iov, 1, offset, libc::RWF_NOWAIT) };
        // Negative: EAGAIN (not cached), EOPNOTSUPP/EINVAL (no support),
        // EINTR, or a real error, which the blocking path reports.
        usize::try_from(n).ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (file, buf, offset);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_cached_read_reads_what_a_plain_one_reads() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let mut f = File::create(&p).unwrap();
        f.write_all(&[7u8; 10_000]).unwrap();
        let f = File::open(&p).unwrap();
        // Just written: cached (where the flag is supported).
        let mut buf = vec![0u8; 4096];
        if let Some(n) = read_cached(&f, &mut buf, 8192) {
            assert_eq!(n, 10_000 - 8192);
            assert!(buf[..n].iter().all(|&b| b == 7));
        }
        assert!(
            matches!(read_cached(&f, &mut buf, 10_000), Some(0) | None),
            "the end of the file"
        );
    }
}
