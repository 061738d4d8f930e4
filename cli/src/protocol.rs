//! The wire format between a `joblog` command and the `joblog run` that
//! serves its data directory (README, "Who can act as whom").
//!
//! A client sends one line of JSON, at most [`MAX_REQUEST_BYTES`]:
//! `{"argv": [...], "user": "...", "user_explicit": bool, "json": bool,
//! "upload": N}`; with `upload`, exactly N bytes follow the line: the file
//! that `import FILE` names, read by the client (relative to the client's
//! working directory, with the client's permissions) and streamed; no line
//! of it may exceed [`MAX_LINE_BYTES`]. The service answers one line:
//! `{"code", "stdout", "stderr"}`.
//!
//! The fuzz target `fuzz/fuzz_targets/request.rs` drives these functions.

// A decoder of bytes from disk or a socket: those never panic the process
// nor lose bits in a cast (Cargo.toml, `[lints]`).
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_truncation)]

use serde::{Deserialize, Serialize};

/// The longest request line (the command's arguments; an imported file's
/// content is streamed after it, not inside it).
pub const MAX_REQUEST_BYTES: usize = 256 * 1024;
/// The most arguments a request may carry.
pub const MAX_ARGS: usize = 1024;
/// The longest line of a file imported through the service (and by a
/// command on its own): a job's JSON with a 100,000-character message,
/// escaped, fits many times over.
pub const MAX_LINE_BYTES: usize = 4 << 20;
/// The largest file `import` streams to the service.
pub const MAX_UPLOAD_BYTES: u64 = 4 << 30;

/// One forwarded command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub argv: Vec<String>,
    /// The joblog user the client acts as (`--as`, `JOBLOG_USER`, else
    /// `admin`). A request without one is refused.
    #[serde(default)]
    pub user: Option<String>,
    /// Whether `--as` or `JOBLOG_USER` named `user` (rather than the
    /// default): a mapped OS user who names someone else is refused.
    #[serde(default)]
    pub user_explicit: bool,
    #[serde(default)]
    pub json: bool,
    /// Bytes of a file that follow the request line.
    #[serde(default)]
    pub upload: Option<u64>,
}

/// Why a request line was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    TooLong { len: usize },
    Malformed(String),
    TooManyArgs { count: usize },
    UploadTooLarge { len: u64 },
}

impl std::fmt::Display for RequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooLong { len } => {
                write!(f, "bad request: {len} bytes or more; a request line holds at most {MAX_REQUEST_BYTES}")
            }
            Self::Malformed(e) => write!(f, "bad request: {e}"),
            Self::TooManyArgs { count } => write!(f, "bad request: {count} arguments; at most {MAX_ARGS}"),
            Self::UploadTooLarge { len } => {
                write!(
                    f,
                    "bad request: a file of {len} bytes; import through the service takes at most {MAX_UPLOAD_BYTES}"
                )
            }
        }
    }
}

impl std::error::Error for RequestError {}

/// Decodes one request line (with or without its final newline).
pub fn decode_request(line: &[u8]) -> Result<Request, RequestError> {
    if line.len() > MAX_REQUEST_BYTES {
        return Err(RequestError::TooLong { len: line.len() });
    }
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let req: Request = serde_json::from_slice(line).map_err(|e| RequestError::Malformed(e.to_string()))?;
    if req.argv.len() > MAX_ARGS {
        return Err(RequestError::TooManyArgs { count: req.argv.len() });
    }
    if let Some(len) = req.upload.filter(|&n| n > MAX_UPLOAD_BYTES) {
        return Err(RequestError::UploadTooLarge { len });
    }
    Ok(req)
}

/// Encodes a request as its line (newline included).
// An encoder, not a decoder: a `Request` (strings, numbers, booleans) always
// serialises, so a failure here would be a bug.
#[allow(clippy::expect_used)]
pub fn encode_request(req: &Request) -> Vec<u8> {
    let mut line = serde_json::to_vec(req).expect("a request always encodes");
    line.push(b'\n');
    line
}

/// Follows the lines of a file read in chunks and refuses one longer than
/// its maximum ([`MAX_LINE_BYTES`] by default), without holding more than
/// the chunk in hand.
#[derive(Debug, Clone)]
pub struct LineLimit {
    max: usize,
    line: usize,
    current: usize,
}

impl Default for LineLimit {
    fn default() -> Self {
        Self::new(MAX_LINE_BYTES)
    }
}

impl LineLimit {
    /// Lines of at most `max` bytes (newline not counted).
    pub fn new(max: usize) -> Self {
        Self { max, line: 0, current: 0 }
    }

    /// Takes the next chunk; on a line too long, its number (from 1).
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), usize> {
        let mut rest = chunk;
        while let Some(i) = rest.iter().position(|&b| b == b'\n') {
            if self.current + i > self.max {
                return Err(self.line + 1);
            }
            self.line += 1;
            self.current = 0;
            rest = &rest[i + 1..];
        }
        self.current += rest.len();
        if self.current > self.max {
            return Err(self.line + 1);
        }
        Ok(())
    }
}

/// The message for a line too long.
pub fn line_too_long(what: &str, line: usize) -> String {
    format!("{what}: line {line} is longer than {MAX_LINE_BYTES} bytes; nothing was imported")
}
