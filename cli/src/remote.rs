//! The command line as a client of the native API (docs/http.md, "The
//! native API"): while `joblog run` holds the data directory, a command is
//! carried out by the service as an HTTP request on its Unix socket
//! (`DATA/joblog.sock`, or `--socket`), and the JSON answer is rendered
//! here, exactly as the command prints it when it opens the store itself
//! (docs/cli.md). The service knows who is calling from the socket
//! (`SO_PEERCRED`), never from what the request says alone.
//!
//! [`call_for`] maps each command to its request; a command without one is
//! still forwarded as its arguments (`server::forward_on`).

// Wired to the socket by the transport (in progress); until then unused.
#![allow(dead_code)]

use serde_json::Value;

use super::args::Command;
use super::Failure;

/// One request of the native API.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// `GET`, `POST`, `PUT` or `DELETE`.
    pub method: &'static str,
    /// The path and query, percent-encoded (`/api/v1/jobs?state=ready`).
    pub path: String,
    /// The JSON body, if any.
    pub body: Option<Value>,
}

/// The request that carries out `cmd`, or `None` for a command the native
/// API does not serve (yet): see the module's comment.
pub fn call_for(cmd: &Command) -> Result<Option<Call>, Failure> {
    #[allow(clippy::match_single_binding)]
    Ok(match cmd {
        _ => None,
    })
}
