//! Strict parser (and a small writer) for safetensors headers.
//!
//! A safetensors file is `u64 little-endian header length N` ‖ `N bytes of
//! JSON` ‖ `tensor data`. The JSON maps tensor names to `{dtype, shape,
//! data_offsets}` (offsets relative to the start of the data section) plus
//! an optional `__metadata__` map of strings. Headers come from untrusted
//! payloads, so this module parses them itself rather than through the
//! `safetensors` crate (whose header cap is 100 MB and which keeps the last
//! of two duplicate keys; see docs/decisions.md): the header is at most
//! [`MAX_HEADER_LEN`] bytes, duplicate keys and unknown fields are refused,
//! every tensor's byte range must equal `product(shape) * dtype size`, and
//! the ranges must tile the data section exactly (sorted, contiguous, no
//! gap, no overlap, ending at the end of the file).

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::collections::BTreeSet;
use std::fmt;
use std::io::Read;
use thiserror::Error;

/// Largest JSON header accepted.
pub const MAX_HEADER_LEN: u64 = 1 << 20;
/// Most tensors in one file.
pub const MAX_TENSORS: usize = 4096;
/// Most dimensions of one tensor.
pub const MAX_DIMS: usize = 8;
/// Longest tensor name, in bytes.
pub const MAX_TENSOR_NAME: usize = 256;

/// Why a safetensors header is refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SafetensorsError {
    /// The file is shorter than its 8-byte length prefix or declared header.
    #[error("safetensors file truncated: {0}")]
    Truncated(String),
    /// The header length is over the limit.
    #[error("safetensors header is {len} bytes, over the limit of {max}")]
    HeaderTooLong {
        /// Declared length.
        len: u64,
        /// Limit.
        max: u64,
    },
    /// The JSON is malformed or has the wrong shape.
    #[error("safetensors header is not valid: {0}")]
    Json(String),
    /// One tensor's entry is wrong.
    #[error("safetensors tensor {tensor:?}: {field}: {reason}")]
    Tensor {
        /// Tensor name.
        tensor: String,
        /// Field at fault (`dtype`, `shape`, `data_offsets`, `name`).
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The tensors do not tile the data section.
    #[error("safetensors data layout: {0}")]
    Layout(String),
    /// Reading failed.
    #[error("cannot read safetensors data: {0}")]
    Io(String),
}

/// Element types this parser knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dtype {
    /// Boolean (1 byte).
    Bool,
    /// Unsigned 8-bit.
    U8,
    /// Signed 8-bit.
    I8,
    /// Signed 16-bit.
    I16,
    /// Unsigned 16-bit.
    U16,
    /// IEEE half.
    F16,
    /// bfloat16.
    Bf16,
    /// Signed 32-bit.
    I32,
    /// Unsigned 32-bit.
    U32,
    /// IEEE single.
    F32,
    /// Signed 64-bit.
    I64,
    /// Unsigned 64-bit.
    U64,
    /// IEEE double.
    F64,
}

impl Dtype {
    const ALL: [(Dtype, &'static str, u64); 13] = [
        (Dtype::Bool, "BOOL", 1),
        (Dtype::U8, "U8", 1),
        (Dtype::I8, "I8", 1),
        (Dtype::I16, "I16", 2),
        (Dtype::U16, "U16", 2),
        (Dtype::F16, "F16", 2),
        (Dtype::Bf16, "BF16", 2),
        (Dtype::I32, "I32", 4),
        (Dtype::U32, "U32", 4),
        (Dtype::F32, "F32", 4),
        (Dtype::I64, "I64", 8),
        (Dtype::U64, "U64", 8),
        (Dtype::F64, "F64", 8),
    ];

    /// Parses the safetensors spelling (`"I8"`, `"F32"`, ...).
    pub fn parse(s: &str) -> Option<Dtype> {
        Self::ALL.iter().find(|e| e.1 == s).map(|e| e.0)
    }

    /// The safetensors spelling.
    pub fn as_str(self) -> &'static str {
        Self::ALL.iter().find(|e| e.0 == self).map_or("?", |e| e.1)
    }

    /// Bytes per element.
    pub fn size(self) -> u64 {
        Self::ALL.iter().find(|e| e.0 == self).map_or(1, |e| e.2)
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One tensor's header entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// Tensor name.
    pub name: String,
    /// Element type.
    pub dtype: Dtype,
    /// Dimensions.
    pub shape: Vec<u64>,
    /// Start of the tensor's bytes, relative to the data section.
    pub begin: u64,
    /// End (exclusive), relative to the data section.
    pub end: u64,
}

impl TensorInfo {
    /// Length in bytes.
    pub fn len(&self) -> u64 {
        self.end - self.begin
    }

    /// True for a zero-element tensor.
    pub fn is_empty(&self) -> bool {
        self.begin == self.end
    }
}

/// A checked safetensors header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Length of the JSON header (without the 8-byte prefix).
    pub header_len: u64,
    /// Tensors sorted by offset.
    pub tensors: Vec<TensorInfo>,
}

impl Header {
    /// Offset of the data section from the start of the file.
    pub fn data_start(&self) -> u64 {
        8 + self.header_len
    }

    /// The tensor called `name`.
    pub fn get(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTensor {
    dtype: String,
    shape: Vec<u64>,
    data_offsets: [u64; 2],
}

enum Entry {
    Metadata,
    Tensor(String, RawTensor),
}

struct Entries(Vec<Entry>);

/// Metadata map whose values must be strings and whose keys must be unique.
struct StringMap;

impl<'de> Deserialize<'de> for StringMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StringMap;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of strings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<StringMap, A::Error> {
                let mut keys = BTreeSet::new();
                while let Some((k, _v)) = m.next_entry::<String, String>()? {
                    if !keys.insert(k.clone()) {
                        return Err(de::Error::custom(format!(
                            "duplicate __metadata__ key {k:?}"
                        )));
                    }
                }
                Ok(StringMap)
            }
        }
        d.deserialize_map(V)
    }
}

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Entries;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object of tensors")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Entries, A::Error> {
                let mut out = Vec::new();
                let mut seen = BTreeSet::new();
                while let Some(key) = m.next_key::<String>()? {
                    if !seen.insert(key.clone()) {
                        return Err(de::Error::custom(format!("duplicate key {key:?}")));
                    }
                    if out.len() > MAX_TENSORS {
                        return Err(de::Error::custom(format!(
                            "more than {MAX_TENSORS} tensors"
                        )));
                    }
                    if key == "__metadata__" {
                        m.next_value::<StringMap>()?;
                        out.push(Entry::Metadata);
                    } else {
                        let t = m
                            .next_value::<RawTensor>()
                            .map_err(|e| de::Error::custom(format!("tensor {key:?}: {e}")))?;
                        out.push(Entry::Tensor(key, t));
                    }
                }
                Ok(Entries(out))
            }
        }
        d.deserialize_map(V)
    }
}

fn tensor_err(name: &str, field: &'static str, reason: impl Into<String>) -> SafetensorsError {
    SafetensorsError::Tensor {
        tensor: name.to_string(),
        field,
        reason: reason.into(),
    }
}

/// Reads and checks the 8-byte length prefix of a file of `file_len` bytes.
pub fn header_len(prefix: [u8; 8], file_len: u64) -> Result<u64, SafetensorsError> {
    let len = u64::from_le_bytes(prefix);
    if len > MAX_HEADER_LEN {
        return Err(SafetensorsError::HeaderTooLong {
            len,
            max: MAX_HEADER_LEN,
        });
    }
    if len < 2 {
        return Err(SafetensorsError::Json(format!(
            "header length {len} is too short for a JSON object"
        )));
    }
    if 8 + len > file_len {
        return Err(SafetensorsError::Truncated(format!(
            "header of {len} bytes declared but the file is {file_len} bytes"
        )));
    }
    Ok(len)
}

/// Parses the JSON header `json` of a file of `file_len` bytes and checks
/// every entry and the data layout.
pub fn parse_header(json: &[u8], file_len: u64) -> Result<Header, SafetensorsError> {
    let header_len = json.len() as u64;
    if header_len > MAX_HEADER_LEN {
        return Err(SafetensorsError::HeaderTooLong {
            len: header_len,
            max: MAX_HEADER_LEN,
        });
    }
    let text = std::str::from_utf8(json)
        .map_err(|_| SafetensorsError::Json("header is not UTF-8".into()))?;
    // The format pads the header with trailing spaces to 8-byte alignment.
    let entries: Entries = serde_json::from_str(text.trim_end_matches(' '))
        .map_err(|e| SafetensorsError::Json(e.to_string()))?;
    let data_len = file_len
        .checked_sub(8 + header_len)
        .ok_or_else(|| SafetensorsError::Truncated("file shorter than its header".into()))?;
    let mut tensors = Vec::new();
    for e in entries.0 {
        let Entry::Tensor(name, raw) = e else {
            continue;
        };
        if name.is_empty() || name.len() > MAX_TENSOR_NAME || name.chars().any(char::is_control) {
            return Err(tensor_err(
                &name,
                "name",
                format!("must be 1..={MAX_TENSOR_NAME} bytes without control characters"),
            ));
        }
        let dtype = Dtype::parse(&raw.dtype)
            .ok_or_else(|| tensor_err(&name, "dtype", format!("unknown dtype {:?}", raw.dtype)))?;
        if raw.shape.len() > MAX_DIMS {
            return Err(tensor_err(
                &name,
                "shape",
                format!("{} dimensions, at most {MAX_DIMS} allowed", raw.shape.len()),
            ));
        }
        let size = raw
            .shape
            .iter()
            .try_fold(dtype.size(), |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| tensor_err(&name, "shape", "byte size overflows"))?;
        let [begin, end] = raw.data_offsets;
        if begin > end {
            return Err(tensor_err(
                &name,
                "data_offsets",
                format!("begin {begin} is after end {end}"),
            ));
        }
        if end - begin != size {
            return Err(tensor_err(
                &name,
                "data_offsets",
                format!(
                    "range holds {} bytes but {} {:?} needs {size}",
                    end - begin,
                    dtype,
                    raw.shape
                ),
            ));
        }
        if end > data_len {
            return Err(tensor_err(
                &name,
                "data_offsets",
                format!("end {end} is past the data section ({data_len} bytes)"),
            ));
        }
        tensors.push(TensorInfo {
            name,
            dtype,
            shape: raw.shape,
            begin,
            end,
        });
    }
    tensors.sort_by_key(|t| (t.begin, t.end));
    let mut pos = 0u64;
    for t in &tensors {
        if t.begin != pos {
            return Err(SafetensorsError::Layout(format!(
                "tensor {:?} starts at {} but the previous data ends at {pos} ({})",
                t.name,
                t.begin,
                if t.begin < pos { "overlap" } else { "gap" }
            )));
        }
        pos = t.end;
    }
    if pos != data_len {
        return Err(SafetensorsError::Layout(format!(
            "tensors cover {pos} bytes of a {data_len}-byte data section"
        )));
    }
    Ok(Header {
        header_len,
        tensors,
    })
}

/// Reads the header from the start of `r`, a file of `file_len` bytes.
/// Leaves `r` positioned at the start of the data section.
pub fn read_header<R: Read>(r: &mut R, file_len: u64) -> Result<Header, SafetensorsError> {
    let mut prefix = [0u8; 8];
    r.read_exact(&mut prefix)
        .map_err(|e| SafetensorsError::Truncated(format!("length prefix: {e}")))?;
    let len = header_len(prefix, file_len)?;
    let mut json = vec![0u8; len as usize];
    r.read_exact(&mut json)
        .map_err(|e| SafetensorsError::Truncated(format!("header: {e}")))?;
    parse_header(&json, file_len)
}

/// Parses a whole in-memory safetensors file's header.
pub fn parse_file(bytes: &[u8]) -> Result<Header, SafetensorsError> {
    read_header(&mut &bytes[..], bytes.len() as u64)
}

/// One tensor to write with [`write()`].
pub struct TensorData<'a> {
    /// Name.
    pub name: &'a str,
    /// Element type.
    pub dtype: Dtype,
    /// Dimensions.
    pub shape: Vec<u64>,
    /// Raw little-endian bytes.
    pub data: &'a [u8],
}

/// Writes a safetensors file: tensors in the order given, header padded with
/// spaces to a multiple of 8 bytes, keys in the same order.
pub fn write(tensors: &[TensorData<'_>]) -> Vec<u8> {
    let mut map = serde_json::Map::new();
    let mut pos = 0u64;
    for t in tensors {
        let end = pos + t.data.len() as u64;
        map.insert(
            t.name.to_string(),
            serde_json::json!({
                "dtype": t.dtype.as_str(),
                "shape": t.shape,
                "data_offsets": [pos, end],
            }),
        );
        pos = end;
    }
    let mut json = serde_json::Value::Object(map).to_string().into_bytes();
    while !json.len().is_multiple_of(8) {
        json.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + json.len() + pos as usize);
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&json);
    for t in tensors {
        out.extend_from_slice(t.data);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(json: &str, data: usize) -> Vec<u8> {
        let mut v = (json.len() as u64).to_le_bytes().to_vec();
        v.extend_from_slice(json.as_bytes());
        v.extend(std::iter::repeat_n(0u8, data));
        v
    }

    #[test]
    fn round_trip() {
        let a = [1u8, 2, 3, 4, 5, 6];
        let b = [0u8; 8];
        let bytes = write(&[
            TensorData {
                name: "a",
                dtype: Dtype::I8,
                shape: vec![2, 3],
                data: &a,
            },
            TensorData {
                name: "b",
                dtype: Dtype::F32,
                shape: vec![2],
                data: &b,
            },
        ]);
        let h = parse_file(&bytes).unwrap();
        assert_eq!(h.header_len % 8, 0);
        assert_eq!(h.tensors.len(), 2);
        let a_info = h.get("a").unwrap();
        assert_eq!((a_info.begin, a_info.end, a_info.dtype), (0, 6, Dtype::I8));
        let start = (h.data_start() + h.get("b").unwrap().begin) as usize;
        assert_eq!(&bytes[start..start + 8], &b);
    }

    #[test]
    fn refusals_name_the_problem() {
        let cases: &[(&str, usize, &str)] = &[
            (
                r#"{"a":{"dtype":"I8","shape":[4],"data_offsets":[0,4]}}"#,
                3,
                "past the data",
            ),
            (
                r#"{"a":{"dtype":"I8","shape":[4],"data_offsets":[0,3]}}"#,
                3,
                "needs 4",
            ),
            (
                r#"{"a":{"dtype":"X9","shape":[4],"data_offsets":[0,4]}}"#,
                4,
                "unknown dtype",
            ),
            (
                r#"{"a":{"dtype":"I8","shape":[2],"data_offsets":[0,2]},"a":{"dtype":"I8","shape":[2],"data_offsets":[2,4]}}"#,
                4,
                "duplicate key",
            ),
            (
                r#"{"a":{"dtype":"I8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"I8","shape":[2],"data_offsets":[1,3]}}"#,
                3,
                "overlap",
            ),
            (
                r#"{"a":{"dtype":"I8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"I8","shape":[2],"data_offsets":[3,5]}}"#,
                5,
                "gap",
            ),
            (
                r#"{"a":{"dtype":"I8","shape":[2],"data_offsets":[0,2]}}"#,
                3,
                "cover 2 bytes",
            ),
            (
                r#"{"a":{"dtype":"I8","shape":[2],"data_offsets":[0,2],"x":1}}"#,
                2,
                "unknown field",
            ),
            (
                r#"{"a":{"dtype":"I8","shape":[4294967296,4294967296],"data_offsets":[0,2]}}"#,
                2,
                "overflows",
            ),
            (
                r#"{"a":{"dtype":"I8","shape":[2],"data_offsets":[2,0]}}"#,
                2,
                "after end",
            ),
            (
                r#"{"__metadata__":{"k":"v","k":"w"}}"#,
                0,
                "duplicate __metadata__",
            ),
            (r#"[1,2]"#, 0, "JSON object"),
        ];
        for (json, data, want) in cases {
            let err = parse_file(&file(json, *data)).unwrap_err().to_string();
            assert!(err.contains(want), "{json}: {err}");
        }
        let mut huge = (MAX_HEADER_LEN + 1).to_le_bytes().to_vec();
        huge.extend_from_slice(b"{}");
        assert!(matches!(
            parse_file(&huge),
            Err(SafetensorsError::HeaderTooLong { .. })
        ));
        let mut short = 100u64.to_le_bytes().to_vec();
        short.extend_from_slice(b"{}");
        assert!(matches!(
            parse_file(&short),
            Err(SafetensorsError::Truncated(_))
        ));
        assert!(parse_file(&file(r#"{"__metadata__":{"k":"v"}}"#, 0)).is_ok());
    }
}
