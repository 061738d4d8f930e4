//! `joblog run`'s operator log: the library's `tracing` events (one per job
//! start and end, back-off hold and release, deletion and compaction,
//! service start, recovery and stop) written to stderr, one line each:
//! human-readable, or JSON lines with `--log-format json`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use super::args::LogFormat;
use super::Failure;

/// Installs the subscriber for this process. The level comes from
/// `--log-level`, else `RUST_LOG`, else `info`; either is a level (error,
/// warn, info, debug, trace, off) or `tracing-subscriber`'s directives
/// (`joblog::service=debug`).
pub fn install(format: LogFormat, level: Option<&str>) -> Result<(), Failure> {
    let filter = match level {
        Some(l) => filter(l).map_err(|e| Failure::usage(format!("--log-level {l:?}: {e}")))?,
        None => match std::env::var("RUST_LOG") {
            Ok(l) if !l.trim().is_empty() => filter(&l).map_err(|e| Failure::usage(format!("RUST_LOG {l:?}: {e}")))?,
            _ => EnvFilter::new("info"),
        },
    };
    // A log line that cannot be written (stderr closed, its reader gone)
    // is dropped: the service goes on, and nothing panics on the write.
    let builder =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).log_internal_errors(false);
    let installed = match format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).try_init(),
        LogFormat::Human => builder.with_ansi(std::io::stderr().is_terminal()).try_init(),
    };
    // Already installed (a second call in one process): keep the first.
    let _ = installed;
    Ok(())
}

const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// A filter from a level or directives. A bare word that is not a level
/// (a typo such as `warning`) is refused rather than read as a target
/// name, which would silently log nothing.
fn filter(spec: &str) -> Result<EnvFilter, String> {
    let wrong = || format!("give {}, or directives such as joblog::service=debug", LEVELS.join(", "));
    if spec.trim().is_empty() {
        return Err(wrong());
    }
    for d in spec.split(',').map(str::trim) {
        let bare = !d.contains('=') && !d.contains("::") && !d.contains('[');
        if d.is_empty() || (bare && !LEVELS.iter().any(|l| l.eq_ignore_ascii_case(d))) {
            return Err(format!("{d:?} is not a level: {}", wrong()));
        }
    }
    EnvFilter::try_new(spec).map_err(|e| format!("{e}; {}", wrong()))
}
