//! The limits on every input, in one place (`docs/limits.md` lists them
//! with their reasons). Every write path of the engine (create, import,
//! load, bulk-delete jobs, users, roles, business units, workflows) checks
//! its strings here, so the command line, the service's socket and an
//! embedding program are held to the same limits.
//!
//! Two kinds of strings:
//! * **identifiers** (user, business unit, role, workflow id, owner,
//!   dependency token, regarding table and id): non-empty, at most
//!   `MAX_IDENTIFIER_CHARS`, no control character at all;
//! * **text** (job and workflow names, recurrence): a length limit and no
//!   control character; **free text** (messages, a command) keeps control
//!   characters (a command's stderr is what it is) and has only a length
//!   limit: every human-readable output escapes them (`cli/src/output.rs`).

use super::DomainError;

/// Users, business units, roles, workflow ids, owners, dependency tokens.
pub(crate) const MAX_IDENTIFIER_CHARS: usize = 128;
/// A System Job Name (the platform's limit) and a workflow's name.
pub(crate) const MAX_NAME_CHARS: usize = 256;
/// `regardingobjectid`: the table name (an identifier) and the row's id.
pub(crate) const MAX_REGARDING_ID_CHARS: usize = 256;
/// `message` and `friendlymessage` (the platform's limit).
pub const MAX_MESSAGE_CHARS: usize = 100_000;
/// A recurrence rule (`FREQ=DAILY;INTERVAL=30`).
pub(crate) const MAX_RECURRENCE_CHARS: usize = 256;
/// A job's `data` (opaque input; a command job's command is in it, so this
/// bounds a command too).
pub(crate) const MAX_DATA_BYTES: usize = 1 << 20;
/// Jobs in one `import`: a file is checked whole before anything is written.
pub const MAX_IMPORT_JOBS: usize = 5_000_000;
/// Jobs one deletion by id names (`Session::delete_jobs`): more is
/// refused whole, not cut.
pub const MAX_DELETE_IDS: usize = 1_000;
/// Roles one user holds.
pub(crate) const MAX_ROLES_PER_USER: usize = 64;
/// The one `errorcode` a job cannot hold: the projection keeps it to mean
/// "no error code" (so an import of it is refused, and a handler's code
/// of this value is recorded as `i32::MIN + 1`).
pub(crate) const RESERVED_ERRORCODE: i32 = i32::MIN;
/// Worker threads of one service (`joblog run --workers`).
pub const MAX_WORKERS: usize = 256;
/// The longest timeout of a command job, in seconds (30 days): a job's own
/// (`submit --timeout`), the service's default (`run --command-timeout`)
/// and the store's default (`command.timeout_secs`).
pub const MAX_COMMAND_TIMEOUT_SECS: u64 = 30 * 24 * 3600;

/// A command timeout written as seconds: ASCII digits only (no sign, no
/// space, no unit), from 1 to [`MAX_COMMAND_TIMEOUT_SECS`].
pub fn parse_command_timeout(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok().filter(|n| (1..=MAX_COMMAND_TIMEOUT_SECS).contains(n))
}

/// Whether `c` must never reach a terminal raw: C0 controls (ESC, CR, BEL,
/// newline, tab...), DEL, C1 controls, and the Unicode bidirectional
/// overrides and isolates that reorder what a terminal shows.
pub fn is_unsafe_char(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Refuses `value` for `field` when it is longer than `max` characters.
pub(crate) fn check_len(field: &'static str, value: &str, max: usize) -> Result<(), DomainError> {
    // Bytes bound characters from above: most values never need counting.
    if value.len() > max {
        let chars = value.chars().count();
        if chars > max {
            return Err(DomainError::TooLong { field, max, len: chars, unit: "characters" });
        }
    }
    Ok(())
}

/// A single-line text: at most `max` characters, no control character.
pub(crate) fn check_text(field: &'static str, value: &str, max: usize) -> Result<(), DomainError> {
    check_len(field, value, max)?;
    if is_printable_ascii(value) {
        return Ok(());
    }
    if let Some((at, c)) = value.chars().enumerate().find(|(_, c)| is_unsafe_char(*c)) {
        return Err(DomainError::ControlCharacter { field, at, code: c as u32 });
    }
    Ok(())
}

/// Whether every byte of `value` is printable ASCII (space to `~`): such a
/// text holds no control, bidirectional or invisible character, so the
/// character-by-character checks below can be skipped (most values).
fn is_printable_ascii(value: &str) -> bool {
    value.bytes().all(|b| (0x20..0x7f).contains(&b))
}

/// Whether `c` shows nothing at all (zero-width spaces and joiners, marks
/// that only steer direction, the soft hyphen, the byte-order mark): an
/// identifier holding one could pass for another (`admin` and `admin\u{200b}`).
pub(crate) fn is_invisible_char(c: char) -> bool {
    matches!(c, '\u{ad}' | '\u{61c}' | '\u{180e}' | '\u{200b}'..='\u{200f}' | '\u{2060}'..='\u{2064}' | '\u{feff}')
}

/// An identifier: non-empty, at most [`MAX_IDENTIFIER_CHARS`], no control
/// character, no invisible character, no white space at either end (so no
/// identifier can pass for another in a listing).
pub(crate) fn check_identifier(field: &'static str, value: &str) -> Result<(), DomainError> {
    if value.is_empty() {
        return Err(DomainError::Invalid { what: field, reason: "it is empty".into() });
    }
    check_text(field, value, MAX_IDENTIFIER_CHARS)?;
    if value.trim() != value {
        return Err(DomainError::Invalid { what: field, reason: "it begins or ends with white space".into() });
    }
    if is_printable_ascii(value) {
        return Ok(());
    }
    if let Some((at, c)) = value.chars().enumerate().find(|(_, c)| is_invisible_char(*c)) {
        return Err(DomainError::Invalid {
            what: field,
            reason: format!("it holds an invisible character (U+{:04X}) at {at}", c as u32),
        });
    }
    Ok(())
}

/// A message from a handler (a command's stderr, an error's text): kept
/// whole up to [`MAX_MESSAGE_CHARS`], cut there with `…` beyond (a run's
/// outcome is never refused for its message).
pub(crate) fn clamp_message(message: String) -> String {
    if check_len("message", &message, MAX_MESSAGE_CHARS).is_ok() {
        return message;
    }
    let mut cut: String = message.chars().take(MAX_MESSAGE_CHARS - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_control_characters() {
        assert!(check_identifier("user", "alice").is_ok());
        assert!(matches!(
            check_identifier("user", &"a".repeat(129)),
            Err(DomainError::TooLong { field: "user", max: 128, len: 129, .. })
        ));
        // 128 characters of four bytes each are fine.
        assert!(check_identifier("user", &"😀".repeat(128)).is_ok());
        assert!(matches!(
            check_identifier("user", "a\u{1b}[2J"),
            Err(DomainError::ControlCharacter { field: "user", at: 1, code: 0x1b })
        ));
        for bad in [" admin", "admin ", " ", "ad\u{200b}min", "admin\u{feff}", "\u{200e}admin"] {
            assert!(matches!(check_identifier("user", bad), Err(DomainError::Invalid { what: "user", .. })), "{bad:?}");
        }
        assert!(check_identifier("user", "ad min").is_ok(), "inner spaces are fine");
        for c in ['\r', '\n', '\u{7}', '\u{7f}', '\u{9b}', '\u{202e}'] {
            assert!(check_text("name", &format!("x{c}"), 10).is_err(), "{c:?}");
        }
        assert!(matches!(check_identifier("role", ""), Err(DomainError::Invalid { what: "role", .. })));
        assert!(check_len("message", "a\nb\u{1b}", 4).is_ok());
        assert!(check_len("message", "abcd", 3).is_err());
        let long = clamp_message("é".repeat(MAX_MESSAGE_CHARS + 5));
        assert_eq!(long.chars().count(), MAX_MESSAGE_CHARS);
        assert!(check_len("message", &long, MAX_MESSAGE_CHARS).is_ok());
    }
}
