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
        Some(l) => EnvFilter::try_new(l).map_err(|e| Failure::usage(format!("--log-level {l:?}: {e}")))?,
        None => match std::env::var("RUST_LOG") {
            Ok(l) if !l.trim().is_empty() => {
                EnvFilter::try_new(&l).map_err(|e| Failure::usage(format!("RUST_LOG {l:?}: {e}")))?
            }
            _ => EnvFilter::new("info"),
        },
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).try_init(),
        LogFormat::Human => builder.with_ansi(std::io::stderr().is_terminal()).try_init(),
    };
    // Already installed (a second call in one process): keep the first.
    let _ = installed;
    Ok(())
}
