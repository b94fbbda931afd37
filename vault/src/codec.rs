//! The binary codec shared by every pqvault file format.
//!
//! Every format starts with a 4-byte magic and a big-endian `u16` format
//! version, followed by fixed-size fields and length-prefixed byte strings.
//! The [`Reader`] treats its input as untrusted: every read is bounds-checked
//! and failures name the field that was being read, so an operator sees
//! "truncated while reading hqc ciphertext" rather than a panic.

use thiserror::Error;

/// Why a byte string could not be decoded.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum FormatError {
    /// The first four bytes are not the magic of the expected file kind.
    #[error("not a {expected}: file starts with {found:?}, expected magic {magic:?}")]
    BadMagic {
        /// Human name of the expected kind.
        expected: &'static str,
        /// The magic that kind carries.
        magic: String,
        /// What the input carried (escaped).
        found: String,
    },
    /// The format version is not one this build understands.
    #[error("unsupported {kind} format version {found} (this build reads version {supported})")]
    UnsupportedVersion {
        /// Human name of the kind.
        kind: &'static str,
        /// Version found in the input.
        found: u16,
        /// Version this build reads.
        supported: u16,
    },
    /// The input ended before a field was complete.
    #[error("truncated: input ended while reading {field}")]
    Truncated {
        /// The field being read.
        field: &'static str,
    },
    /// Bytes remain after the last field.
    #[error("{count} unexpected trailing bytes after the last field")]
    TrailingBytes {
        /// Number of extra bytes.
        count: usize,
    },
    /// A length prefix exceeds the limit for its field.
    #[error("{field} is {len} bytes, over the limit of {max}")]
    TooLong {
        /// The field.
        field: &'static str,
        /// Declared length.
        len: usize,
        /// Maximum allowed.
        max: usize,
    },
    /// A list holds more items than allowed (a count, not a length in
    /// bytes).
    #[error("{field} has {count} {items}, over the limit of {max}")]
    TooMany {
        /// The list.
        field: &'static str,
        /// What it counts (plural noun, e.g. `layers`).
        items: &'static str,
        /// Declared count.
        count: usize,
        /// Maximum allowed.
        max: usize,
    },
    /// A field decoded but holds a value that is not allowed.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

impl FormatError {
    /// Shorthand for [`FormatError::Invalid`].
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        FormatError::Invalid {
            field,
            reason: reason.into(),
        }
    }
}

/// The 4-byte magic and human name of one file kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    /// Magic bytes at offset 0.
    pub magic: [u8; 4],
    /// Human-readable name used in errors.
    pub name: &'static str,
    /// The format version this build writes and reads.
    pub version: u16,
}

/// Appends fields to a byte vector in the canonical encoding.
#[derive(Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// Starts a file of `kind`: magic then version.
    pub fn new(kind: Kind) -> Self {
        let mut w = Writer { buf: Vec::new() };
        w.bytes(&kind.magic);
        w.u16(kind.version);
        w
    }

    /// Starts an empty buffer (for sub-structures and hash transcripts).
    pub fn raw() -> Self {
        Writer::default()
    }

    /// Appends one byte.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }

    /// Appends a big-endian u16.
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Appends a big-endian u32.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Appends a big-endian u64.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Appends bytes with no length prefix (fixed-size fields).
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(v);
        self
    }

    /// Appends a u32 length prefix then the bytes.
    ///
    /// Callers bound their fields far below 4 GiB; a longer slice would be a
    /// programming error, so the length saturates rather than wrapping and
    /// the reader's limit then rejects it.
    pub fn var_bytes(&mut self, v: &[u8]) -> &mut Self {
        self.u32(u32::try_from(v.len()).unwrap_or(u32::MAX));
        self.bytes(v)
    }

    /// Current length.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// True when nothing was written.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The bytes written so far.
    pub fn as_slice(&self) -> &[u8] {
        &self.buf
    }

    /// Finishes and returns the encoding.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads fields from untrusted bytes, never panicking. Cloning gives a
/// second cursor at the same position (for looking ahead).
#[derive(Clone)]
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Reads over `data` without a file header.
    pub fn raw(data: &'a [u8]) -> Self {
        Reader { data, pos: 0 }
    }

    /// Checks the magic and version of `kind` and positions after them.
    pub fn open(data: &'a [u8], kind: Kind) -> Result<Self, FormatError> {
        Self::open_any(data, &[kind]).map(|(r, _)| r)
    }

    /// Like [`Reader::open`] for a format that has several readable
    /// versions under one magic (`kinds`, oldest first): returns the
    /// reader and the version found.
    pub fn open_any(data: &'a [u8], kinds: &[Kind]) -> Result<(Self, u16), FormatError> {
        let newest = kinds
            .last()
            .copied()
            .ok_or_else(|| FormatError::invalid("format version", "no readable version given"))?;
        let mut r = Reader::raw(data);
        let magic = r.take(4, "magic").map_err(|_| FormatError::BadMagic {
            expected: newest.name,
            magic: escape(&newest.magic),
            found: escape(&data[..data.len().min(4)]),
        })?;
        if magic != newest.magic {
            return Err(FormatError::BadMagic {
                expected: newest.name,
                magic: escape(&newest.magic),
                found: escape(magic),
            });
        }
        let version = r.u16("format version")?;
        if !kinds.iter().any(|k| k.version == version) {
            return Err(FormatError::UnsupportedVersion {
                kind: newest.name,
                found: version,
                supported: newest.version,
            });
        }
        Ok((r, version))
    }

    /// Takes the next `n` bytes.
    pub fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], FormatError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.data.len())
            .ok_or(FormatError::Truncated { field })?;
        let out = &self.data[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    /// Takes a fixed-size array.
    pub fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], FormatError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }

    /// Reads one byte.
    pub fn u8(&mut self, field: &'static str) -> Result<u8, FormatError> {
        Ok(self.take(1, field)?[0])
    }

    /// Reads a big-endian u16.
    pub fn u16(&mut self, field: &'static str) -> Result<u16, FormatError> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }

    /// Reads a big-endian u32.
    pub fn u32(&mut self, field: &'static str) -> Result<u32, FormatError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    /// Reads a big-endian u64.
    pub fn u64(&mut self, field: &'static str) -> Result<u64, FormatError> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }

    /// Reads a u32-length-prefixed byte string of at most `max` bytes.
    pub fn var_bytes(&mut self, field: &'static str, max: usize) -> Result<&'a [u8], FormatError> {
        let len = self.u32(field)? as usize;
        if len > max {
            return Err(FormatError::TooLong { field, len, max });
        }
        self.take(len, field)
    }

    /// Bytes consumed so far (used to sign or authenticate a prefix).
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The input consumed so far.
    pub fn consumed(&self) -> &'a [u8] {
        &self.data[..self.pos]
    }

    /// Succeeds only if every byte was consumed.
    pub fn finish(self) -> Result<(), FormatError> {
        match self.data.len() - self.pos {
            0 => Ok(()),
            count => Err(FormatError::TrailingBytes { count }),
        }
    }
}

/// Escapes bytes for an error message (ASCII kept, the rest as `\xNN`).
fn escape(bytes: &[u8]) -> String {
    bytes
        .iter()
        .flat_map(|b| b.escape_ascii())
        .map(char::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: Kind = Kind {
        magic: *b"TEST",
        name: "test file",
        version: 3,
    };

    #[test]
    fn round_trip() {
        let mut w = Writer::new(K);
        w.u8(7).u16(513).u32(70000).u64(1 << 40).var_bytes(b"hello");
        let bytes = w.finish();
        let mut r = Reader::open(&bytes, K).unwrap();
        assert_eq!(r.u8("a").unwrap(), 7);
        assert_eq!(r.u16("b").unwrap(), 513);
        assert_eq!(r.u32("c").unwrap(), 70000);
        assert_eq!(r.u64("d").unwrap(), 1 << 40);
        assert_eq!(r.var_bytes("e", 5).unwrap(), b"hello");
        r.finish().unwrap();
    }

    #[test]
    fn errors_name_the_problem() {
        assert!(matches!(
            Reader::open(b"NOPE\x00\x03", K),
            Err(FormatError::BadMagic { .. })
        ));
        assert!(matches!(
            Reader::open(b"TE", K),
            Err(FormatError::BadMagic { .. })
        ));
        assert_eq!(
            Reader::open(b"TEST\x00\x04", K).err(),
            Some(FormatError::UnsupportedVersion {
                kind: "test file",
                found: 4,
                supported: 3
            })
        );
        let mut r = Reader::open(b"TEST\x00\x03\x00\x00\x00\x09abc", K).unwrap();
        assert_eq!(
            r.var_bytes("payload", 100).err(),
            Some(FormatError::Truncated { field: "payload" })
        );
        let mut r = Reader::open(b"TEST\x00\x03\x00\x00\x01\x00", K).unwrap();
        assert!(matches!(
            r.var_bytes("payload", 10),
            Err(FormatError::TooLong { len: 256, .. })
        ));
        let r = Reader::open(b"TEST\x00\x03x", K).unwrap();
        assert_eq!(r.finish(), Err(FormatError::TrailingBytes { count: 1 }));
    }

    #[test]
    fn huge_take_does_not_overflow() {
        let mut r = Reader::raw(b"abc");
        r.take(1, "x").unwrap();
        assert!(r.take(usize::MAX, "y").is_err());
    }
}
