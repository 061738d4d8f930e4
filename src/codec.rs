//! The one place that turns values into bytes and back. Everything stored as
//! a log payload goes through here, so the encoding can change in one place;
//! every segment header records `CODEC_VERSION`.
//!
//! bincode is pinned to 2.0.1 (3.0.0 is a deliberately broken release), used
//! through its serde support with a fixed configuration: little-endian,
//! variable-length integers, and a decode limit so that a corrupt length can
//! never make us allocate without bound.

// A decoder of bytes from disk or a socket: those never panic the process
// nor lose bits in a cast (Cargo.toml, `[lints]`).
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_truncation)]

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Version of the payload encoding, recorded in every segment header.
pub(crate) const CODEC_VERSION: u16 = 1;

/// The most bytes one decoded value may claim (matches the log's largest
/// payload).
pub(crate) const MAX_DECODE_BYTES: usize = 16 << 20;

/// Why a value could not be encoded, or bytes could not be decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// A value that cannot be encoded (over the size limit): a caller's bug.
    #[error("cannot encode: {0}")]
    Encode(String),
    /// Bytes that do not decode as the value asked for: where they came from
    /// a store, the store is damaged (the engine says so as its
    /// `Error::Corrupt`, naming the place).
    #[error("cannot decode: {0}")]
    Decode(String),
    /// The value decoded but bytes are left after it: damaged too.
    #[error("{0} bytes left over after the decoded value")]
    TrailingBytes(usize),
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_little_endian().with_variable_int_encoding().with_limit::<MAX_DECODE_BYTES>()
}

/// Encodes `value`.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    bincode::serde::encode_to_vec(value, config()).map_err(|e| CodecError::Encode(e.to_string()))
}

/// Appends the encoding of `value` to `out` (no buffer of its own: a
/// batch of events encodes into one).
pub fn encode_append<T: Serialize>(value: &T, out: &mut Vec<u8>) -> Result<usize, CodecError> {
    bincode::serde::encode_into_std_write(value, out, config()).map_err(|e| CodecError::Encode(e.to_string()))
}

/// Decodes a value that must use every byte of `bytes`.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (value, used) =
        bincode::serde::decode_from_slice(bytes, config()).map_err(|e| CodecError::Decode(e.to_string()))?;
    if used != bytes.len() {
        return Err(CodecError::TrailingBytes(bytes.len() - used));
    }
    Ok(value)
}

/// Decodes a value at the start of `bytes` and returns it with the number
/// of bytes it used (the rest is for the caller: a versioned payload reads
/// its version first).
pub(crate) fn decode_prefix<T: DeserializeOwned>(bytes: &[u8]) -> Result<(T, usize), CodecError> {
    bincode::serde::decode_from_slice(bytes, config()).map_err(|e| CodecError::Decode(e.to_string()))
}

/// The most bytes a value written with [`encode_to`] or read with
/// [`decode_large`] may take (snapshots: 10 million jobs fit with room to spare).
pub(crate) const MAX_STREAM_BYTES: usize = 1 << 40;

fn stream_config() -> impl bincode::config::Config {
    bincode::config::standard().with_little_endian().with_variable_int_encoding().with_limit::<MAX_STREAM_BYTES>()
}

/// Encodes `value` into a writer (for values too big to build in memory twice).
pub(crate) fn encode_to<T: Serialize, W: std::io::Write>(value: &T, w: &mut W) -> Result<usize, CodecError> {
    bincode::serde::encode_into_std_write(value, w, stream_config()).map_err(|e| CodecError::Encode(e.to_string()))
}

/// Decodes a large value (a snapshot) that must use every byte of
/// `bytes`. Every length in the input is checked against a limit of four
/// times the input's size (in-memory sizes run larger than encoded ones)
/// before anything is allocated from it: a corrupt length fails instead of
/// asking for gigabytes.
pub(crate) fn decode_large<'a, T: serde::Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, CodecError> {
    let (value, used) = decode_prefix_large(bytes)?;
    if used != bytes.len() {
        return Err(CodecError::TrailingBytes(bytes.len() - used));
    }
    Ok(value)
}

/// [`decode_large`] of a value at the start of `bytes`, with the number of
/// bytes it used (the rest is the caller's).
pub(crate) fn decode_prefix_large<'a, T: serde::Deserialize<'a>>(bytes: &'a [u8]) -> Result<(T, usize), CodecError> {
    macro_rules! with_limit {
        ($($limit:expr),*) => {{
            let want = bytes.len().saturating_mul(4);
            $(
                if want <= $limit {
                    let config = bincode::config::standard()
                        .with_little_endian()
                        .with_variable_int_encoding()
                        .with_limit::<{ $limit }>();
                    bincode::serde::borrow_decode_from_slice(bytes, config)
                } else
            )*
            {
                return Err(CodecError::Decode(format!("{} bytes is more than a value may hold", bytes.len())));
            }
        }};
    }
    with_limit!(1 << 16, 1 << 20, 1 << 24, 1 << 28, 1 << 32, 1 << 36, MAX_STREAM_BYTES)
        .map_err(|e| CodecError::Decode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Sample {
        id: u64,
        name: String,
        tags: Vec<u8>,
    }

    #[test]
    fn round_trips_and_refuses_trailing_bytes() {
        let v = Sample { id: 7, name: "job".into(), tags: vec![1, 2] };
        let mut bytes = encode(&v).unwrap();
        assert_eq!(decode::<Sample>(&bytes).unwrap(), v);
        bytes.push(0);
        assert!(matches!(decode::<Sample>(&bytes), Err(CodecError::TrailingBytes(1))));
    }

    #[test]
    fn huge_lengths_are_refused_not_allocated() {
        // A Vec claiming u64::MAX elements.
        let bytes = [0x01, 0x03, b'j', b'o', b'b', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        assert!(matches!(decode::<Sample>(&bytes), Err(CodecError::Decode(_))));
    }
}
