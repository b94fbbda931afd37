//! File I/O with the guarantees pqvault promises: atomic writes (temp file,
//! fsync, rename or link, directory fsync), secret files created 0600 from
//! the first byte, no silent overwrites, and bounded reads of untrusted files.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// A file-system operation failed; names the path and the operation.
#[derive(Debug, Error)]
pub enum FsError {
    /// An I/O error.
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// Path involved.
        path: PathBuf,
        /// Cause.
        source: io::Error,
    },
    /// The target exists and overwriting was not requested.
    #[error("{} already exists; refusing to overwrite it", .0.display())]
    Exists(PathBuf),
    /// The file is larger than the caller accepts.
    #[error("{} is {size} bytes, larger than the {max}-byte limit for this kind of file", path.display())]
    TooLarge {
        /// Path.
        path: PathBuf,
        /// Actual size.
        size: u64,
        /// Limit.
        max: u64,
    },
}

/// Who may read a file being written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// 0600: secret keys, unsealed shares, recovered secrets.
    Secret,
    /// 0644: public identities, manifests, sealed shards.
    Public,
}

impl Mode {
    fn bits(self) -> u32 {
        match self {
            Mode::Secret => 0o600,
            Mode::Public => 0o644,
        }
    }
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> FsError + 'a {
    move |source| FsError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `bytes` to `path` atomically: readers see the old file or the
/// whole new one, never a torn write. With `overwrite = false` an existing
/// file is never replaced, even by a concurrent writer.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: Mode, overwrite: bool) -> Result<(), FsError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut suffix = [0u8; 8];
    aws_lc_rs::rand::fill(&mut suffix).map_err(|_| FsError::Io {
        op: "generate a temp name for",
        path: path.to_path_buf(),
        source: io::Error::other("rng failure"),
    })?;
    let tmp = dir.join(format!(".{name}.tmp-{}", hex::encode(suffix)));

    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode.bits())
            .open(&tmp)
            .map_err(io_err("create", &tmp))?;
        f.write_all(bytes).map_err(io_err("write", &tmp))?;
        f.sync_all().map_err(io_err("fsync", &tmp))?;
        drop(f);
        if overwrite {
            fs::rename(&tmp, path).map_err(io_err("rename into place", path))?;
        } else {
            // link(2) fails if the target exists: no check-then-write race.
            match fs::hard_link(&tmp, path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    return Err(FsError::Exists(path.to_path_buf()))
                }
                Err(e) => return Err(io_err("link into place", path)(e)),
            }
            fs::remove_file(&tmp).map_err(io_err("remove", &tmp))?;
        }
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err("fsync directory", &dir))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Reads a whole file, refusing anything over `max` bytes.
pub fn read_limited(path: &Path, max: u64) -> Result<Vec<u8>, FsError> {
    let f = File::open(path).map_err(io_err("open", path))?;
    let size = f.metadata().map_err(io_err("stat", path))?.len();
    if size > max {
        return Err(FsError::TooLarge {
            path: path.to_path_buf(),
            size,
            max,
        });
    }
    let mut buf = Vec::with_capacity(size as usize);
    f.take(max + 1)
        .read_to_end(&mut buf)
        .map_err(io_err("read", path))?;
    if buf.len() as u64 > max {
        return Err(FsError::TooLarge {
            path: path.to_path_buf(),
            size: buf.len() as u64,
            max,
        });
    }
    Ok(buf)
}

/// Creates a directory (and parents) with mode 0700.
pub fn create_private_dir(path: &Path) -> Result<(), FsError> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(io_err("create directory", path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn atomic_write_modes_and_no_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.key");
        write_atomic(&p, b"one", Mode::Secret, false).unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(matches!(
            write_atomic(&p, b"two", Mode::Secret, false),
            Err(FsError::Exists(_))
        ));
        assert_eq!(fs::read(&p).unwrap(), b"one");
        write_atomic(&p, b"two", Mode::Secret, true).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        // No temp files left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        let q = dir.path().join("m");
        write_atomic(&q, b"x", Mode::Public, false).unwrap();
        assert_eq!(
            fs::metadata(&q).unwrap().permissions().mode() & 0o777,
            0o644
        );
    }

    #[test]
    fn bounded_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        fs::write(&p, [0u8; 100]).unwrap();
        assert_eq!(read_limited(&p, 100).unwrap().len(), 100);
        assert!(matches!(
            read_limited(&p, 99),
            Err(FsError::TooLarge { .. })
        ));
        assert!(matches!(
            read_limited(&dir.path().join("nope"), 9),
            Err(FsError::Io { .. })
        ));
    }
}
