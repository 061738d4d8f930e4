//! Conventions for what a job's `data` holds, when joblog itself reads it.
//! Data that follows none of them is the job's own, opaque to joblog.
//!
//! * **A shell command**: data starting with the line [`COMMAND_PREFIX`]
//!   (`joblog:command`), then the command's text, run by the service's
//!   command handler (`service/command.rs`). Creating such a job needs
//!   RunCommand at Organization depth ([`runs_command`]): the command runs
//!   as the OS user who owns the data directory.
//! * **A command's timeout**: the command's first line may be exactly
//!   `# joblog:timeout=SECS` (SECS from 1 to
//!   [`limits::MAX_COMMAND_TIMEOUT_SECS`](super::limits::MAX_COMMAND_TIMEOUT_SECS),
//!   no sign, no leading zero; [`command_timeout_of`]). It is a shell
//!   comment, so such data meant the same command before timeouts existed.
//!   Any other form is not a timeout, only part of the command.
//! * **Bulk deletion criteria**: a Bulk Delete job's data is the line
//!   [`BULK_DELETE_PREFIX`] (`joblog:bulk-delete`), then its
//!   [`DeletionCriteria`] as `src/codec.rs` encodes them
//!   ([`bulk_delete_data`], [`bulk_delete_criteria`]).

// A decoder of bytes from disk or a socket: those never panic the process
// nor lose bits in a cast (Cargo.toml, `[lints]`).
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_truncation)]

use std::time::Duration;

use super::{limits, DeletionCriteria, Job};
use crate::codec;

/// Job data that starts with this line holds a shell command to run.
pub(crate) const COMMAND_PREFIX: &[u8] = b"joblog:command\n";

/// Whether job data carries a shell command (creating such a job needs
/// [`Privilege::RunCommand`](super::Privilege::RunCommand)).
pub(crate) fn runs_command(data: &[u8]) -> bool {
    data.starts_with(COMMAND_PREFIX)
}

/// The first line of a command that carries a timeout, before its seconds.
const TIMEOUT_LINE: &str = "# joblog:timeout=";

/// The command a job carries in its data, if any (with its timeout line,
/// a shell comment, if it has one).
pub fn command_of(job: &Job) -> Option<&str> {
    job.data.strip_prefix(COMMAND_PREFIX).and_then(|c| std::str::from_utf8(c).ok())
}

/// The timeout a command job carries in its data, if any.
pub(crate) fn command_timeout_of(job: &Job) -> Option<Duration> {
    timeout_in(&job.data)
}

/// The timeout in command job data, if any.
fn timeout_in(data: &[u8]) -> Option<Duration> {
    let command = std::str::from_utf8(data.strip_prefix(COMMAND_PREFIX)?).ok()?;
    let (first, _) = command.split_once('\n')?;
    let text = first.strip_prefix(TIMEOUT_LINE)?;
    let secs = limits::parse_command_timeout(text)?;
    // Only the form `command_data_with_timeout` writes (no leading zero).
    (secs.to_string() == text).then(|| Duration::from_secs(secs))
}

/// Job data that carries `command`.
pub fn command_data(command: &str) -> Vec<u8> {
    [COMMAND_PREFIX, command.as_bytes()].concat()
}

/// Job data that carries `command`, to be ended after `timeout_secs`
/// seconds (1 to [`limits::MAX_COMMAND_TIMEOUT_SECS`]; `None`: the
/// default, the store's `command.timeout_secs`, else the service's).
pub fn command_data_with_timeout(command: &str, timeout_secs: Option<u64>) -> Vec<u8> {
    match timeout_secs {
        Some(s) => [COMMAND_PREFIX, format!("{TIMEOUT_LINE}{s}\n").as_bytes(), command.as_bytes()].concat(),
        None => command_data(command),
    }
}

/// Job data of a Bulk Delete job: this line, then its criteria (codec).
pub(crate) const BULK_DELETE_PREFIX: &[u8] = b"joblog:bulk-delete\n";

/// The criteria a Bulk Delete job carries in its data.
pub(crate) fn bulk_delete_criteria(job: &Job) -> Option<DeletionCriteria> {
    let body = job.data.strip_prefix(BULK_DELETE_PREFIX)?;
    codec::decode(body).ok()
}

/// Job data that carries `criteria`.
// An encoder, not a decoder: criteria (numbers and enums) always encode, so
// a failure here would be a bug.
#[allow(clippy::expect_used)]
pub(crate) fn bulk_delete_data(criteria: &DeletionCriteria) -> Vec<u8> {
    let mut data = BULK_DELETE_PREFIX.to_vec();
    data.extend(codec::encode(criteria).expect("criteria encode"));
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_of_command_data_is_a_command_for_the_privilege_check() {
        for data in [
            command_data("echo hi"),
            command_data_with_timeout("echo hi", Some(30)),
            command_data_with_timeout("echo hi", None),
            command_data_with_timeout("", Some(1)),
        ] {
            assert!(runs_command(&data), "{data:?}");
        }
    }

    #[test]
    fn only_data_after_the_whole_prefix_line_is_a_command() {
        assert!(runs_command(b"joblog:command\nid") && !runs_command(b"joblog:command") && !runs_command(b""));
    }

    #[test]
    fn a_timeout_line_is_read_only_in_its_exact_form() {
        assert_eq!(timeout_in(&command_data_with_timeout("x", Some(30))), Some(Duration::from_secs(30)));
        assert_eq!(timeout_in(&command_data("x")), None);
        assert_eq!(timeout_in(&command_data("# joblog:timeout=30")), None, "no newline: no command after");
        assert_eq!(timeout_in(&command_data("# joblog:timeout=0\nx")), None);
        assert_eq!(timeout_in(&command_data("# joblog:timeout=-1\nx")), None);
        assert_eq!(timeout_in(&command_data("# joblog:timeout=+5\nx")), None);
        assert_eq!(timeout_in(&command_data("# joblog:timeout=05\nx")), None);
        assert_eq!(timeout_in(&command_data("# joblog:timeout=2592001\nx")), None);
        assert_eq!(timeout_in(&command_data(" # joblog:timeout=5\nx")), None);
        assert_eq!(timeout_in(b"# joblog:timeout=5\nx"), None, "not command data");
        // The old meaning stays: the whole text is the command (the line
        // is a shell comment).
        let data = command_data_with_timeout("echo hi", Some(5));
        assert_eq!(data.strip_prefix(COMMAND_PREFIX), Some(&b"# joblog:timeout=5\necho hi"[..]));
    }
}
