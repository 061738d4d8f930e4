//! The `joblog` command line (`docs/cli.md` is its contract; verify,
//! salvage, full disks and the clock: `docs/operations.md`). Its own crate,
//! `joblog-cli`, on the library's public API: it never depends on the
//! benchmark harnesses (`bench/`) nor links a database client
//! (ARCHITECTURE.md, "Direction of dependencies"). `main.rs` is the
//! `joblog` binary; the fuzz targets call `protocol` and `import`.
//!
//! * `args`     — the grammar (clap derive).
//! * `exec`     — each command against an open engine.
//! * `output`   — the Job JSON, tables and timelines.
//! * `server`   — `joblog run`: the service, its sockets served by the HTTP server.
//! * `remote`   — each command as a request of the native API, for the service.
//! * `render`   — the text each command prints, from the native API's JSON.
//! * `oplog`    — `joblog run`'s operator log.
//! * `demo`     — the README's main job.

/// Writes a line to stderr, ignoring a failed write: a closed stderr (its
/// reader gone) never makes a command panic.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

pub mod args;
mod demo;
mod exec;
pub use joblog_server::import;
mod oplog;
pub mod output;
mod remote;
mod render;
mod server;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use joblog::domain::{Clock, DomainError, ManualClock, SystemClock, Timestamp};
use joblog::engine::{Config, Engine};
use joblog::log::LogError;

pub use args::{Cli, Command};

/// A failed command: its exit code and the one line for stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: u8,
    pub message: String,
    /// A report printed on stdout all the same (verify's problems, an
    /// import's bad lines).
    pub stdout: String,
}

impl Failure {
    pub fn usage(message: impl Into<String>) -> Self {
        Self { code: 2, message: message.into(), stdout: String::new() }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self { code: 3, message: message.into(), stdout: String::new() }
    }
}

/// What every message about a damaged store ends with.
pub const DAMAGED_HINT: &str =
    "run `joblog verify` to list every problem, and `joblog salvage --to NEWDIR` to copy what is intact into a new store";

/// The exit codes of `docs/cli.md` for the engine's errors.
impl From<joblog::Error> for Failure {
    fn from(e: joblog::Error) -> Self {
        use joblog::Error as E;
        let code = match &e {
            E::Domain(
                DomainError::Refused { .. }
                | DomainError::PlatformGenerated { .. }
                | DomainError::NotResubmittable { .. }
                | DomainError::NotDue { .. }
                | DomainError::NotDeletable { .. },
            ) => 4,
            E::Domain(DomainError::Denied { .. } | DomainError::Unauthenticated)
            | E::Log(LogError::NotOwned { .. }) => 5,
            E::Domain(DomainError::NotFound { .. }) => 3,
            E::Domain(_)
            | E::TimeWentBackwards { .. }
            | E::ClockAhead { .. }
            | E::NotANewStore { .. }
            | E::SalvageTarget { .. } => 2,
            // A service already running is a busy store, not a usage error.
            _ => 1,
        };
        let damaged = e.is_corruption();
        let mut message = e.to_string();
        if damaged {
            message = format!("{message}; {DAMAGED_HINT}");
        }
        match &e {
            E::ClockAhead { .. } => {
                message.push_str(" (create a simulation with `--simulation` on a new data directory)");
            }
            E::TimeWentBackwards { newest, .. } if Timestamp::parse(newest).is_ok_and(|n| n > SystemClock.now()) => {
                message.push_str(
                    "; the store's newest event is stamped after the system clock: copy it with `joblog salvage --to NEWDIR --clamp-future` and use NEWDIR instead",
                );
            }
            _ => {}
        }
        Self { code, message, stdout: String::new() }
    }
}

impl From<LogError> for Failure {
    fn from(e: LogError) -> Self {
        joblog::Error::from(e).into()
    }
}

impl From<DomainError> for Failure {
    fn from(e: DomainError) -> Self {
        joblog::Error::from(e).into()
    }
}

/// What a command prints on success.
pub type Output = Result<String, Failure>;

/// How a command runs: the acting user, the output format, whether a
/// terminal is watching (progress bars).
pub struct Ctx<'e> {
    pub engine: &'e Engine,
    pub user: String,
    pub json: bool,
    pub interactive: bool,
    /// Lines for stderr that are not failures (the next page's cursor of
    /// `list --json`): printed by the command itself, or carried back to
    /// the client when the service ran it.
    pub notes: std::cell::RefCell<Vec<String>>,
}

impl Ctx<'_> {
    /// A line for the caller's stderr.
    pub fn note(&self, line: String) {
        self.notes.borrow_mut().push(line);
    }
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap echoes what it could not parse: escaped like every output
            // (plain text, without clap's colours).
            let text = output::terminal_safe(&e.render().to_string(), false);
            if e.use_stderr() {
                let _ = std::io::Write::write_all(&mut std::io::stderr(), text.as_bytes());
                return ExitCode::from(2);
            }
            write_out(&text);
            return ExitCode::from(0);
        }
    };
    let interactive = std::io::stdout().is_terminal() && !cli.global.json;
    let (out, code, err) = match run(&cli, interactive) {
        Ok(out) => (out, 0, None),
        Err(f) => (f.stdout, f.code, Some(f.message)),
    };
    // Nothing stored reaches the terminal raw (escape injection): the
    // tables escape their cells, and this is the net under every output.
    let out = output::terminal_safe(&out, cli.global.json);
    if !out.is_empty() {
        write_out(&out);
        if !out.ends_with('\n') {
            write_out("\n");
        }
    }
    if let Some(message) = err {
        // One line, escaped, and not a novel: an echoed 70,000-character
        // value is cut (the refusal names its length anyway).
        let line = output::escape(message.lines().next().unwrap_or("failed"));
        let line = if line.chars().count() > 2000 { line.chars().take(1999).collect::<String>() + "…" } else { line };
        say!("joblog: {line}");
    }
    ExitCode::from(code)
}

/// Runs one command line: opens the data directory (or, when `joblog run`
/// holds it, hands the command to that process), runs the command, closes.
pub fn run(cli: &Cli, interactive: bool) -> Output {
    let g = &cli.global;
    match &cli.command {
        Command::Demo(args) => return demo::run(args, g, interactive),
        Command::Run(args) => {
            check_now(g)?;
            oplog::install(args.log_format, args.log_level.as_deref())?;
            return server::run_service(args, g);
        }
        Command::Salvage { to, clamp_future } => {
            oplog::install(args::LogFormat::Human, Some("warn"))?;
            return exec::salvage(g, to, *clamp_future);
        }
        _ => {}
    }
    // The library's warnings (a replay that cannot bound its memory, a
    // compaction that failed) reach stderr; its info lines are the
    // service's operator log, not a command's.
    oplog::install(args::LogFormat::Human, Some("warn"))?;
    // Refused before anything is opened (or created).
    exec::check_before_open(&cli.command)?;
    let writes = writes(&cli.command);
    // A service named with --socket (or JOBLOG_SOCKET) that answers does
    // the command; how OS users other than the directory's owner reach it.
    let explicit = g.socket.as_deref().map(|p| (p, server::connect(p)));
    if let Some((path, Ok(conn))) = explicit {
        return through_service(conn, path, g, &cli.command);
    }
    // (A directory we may not look into is not "missing": opening says why.)
    if !writes && matches!(g.data.join("segments").try_exists(), Ok(false)) {
        return Err(Failure::not_found(format!(
            "no joblog data at {} (nothing has been written there yet)",
            g.data.display()
        )));
    }
    if writes {
        check_now(g)?;
    }
    if let Some(out) = through_views(g, &cli.command) {
        return out;
    }
    // A command that only reads opens the store read-only: it never
    // writes a byte, so it works on a full disk.
    let opened = busy_wait(g, || if writes { open(g) } else { open_read_only(g) });
    let engine = match opened {
        Ok(Opened::Here(engine)) => *engine,
        Ok(Opened::Service(conn)) => return through_service(conn, &g.data.join(server::SOCKET), g, &cli.command),
        Ok(Opened::Busy(f)) => return Err(f),
        Err(e @ joblog::Error::Log(LogError::NotOwned { .. })) => {
            let mut f = Failure::from(e);
            if g.socket.is_some() {
                f.message = format!("{} (and no service answers on {})", f.message, server::socket_path(g).display());
            }
            return Err(f);
        }
        Err(e) if matches!(cli.command, Command::Verify) => return exec::verify_unopenable(g, e),
        Err(e @ joblog::Error::Corrupt { .. }) => {
            // A missing or damaged manifest shows up as some other
            // inconsistency when opening: name the cause.
            return Err(match joblog::engine::manifest_problem(&g.data.join("segments")) {
                Some(p) => Failure { code: 1, message: format!("{p}; {DAMAGED_HINT}"), stdout: String::new() },
                None => e.into(),
            });
        }
        Err(e) => return Err(e.into()),
    };
    let ctx = Ctx { engine: &engine, user: g.user.clone(), json: g.json, interactive, notes: Default::default() };
    let out = exec::execute(&ctx, &cli.command);
    for line in ctx.notes.take() {
        say!("{line}");
    }
    close(engine)?;
    out
}

/// `list` and `show` answered from the store's newest checkpoint mapped
/// (`joblog::engine::Views`: the hot rows are not decoded; the events
/// after it folded in); `None`: open the engine, which also says why a store
/// cannot be opened, waits for a busy one, finds its service, refuses a
/// bad `--now`; and answers when a run read here does not check (the
/// image of the hot rows is a cache: the engine reads the checkpoint
/// itself; `joblog verify` reports the damage).
fn through_views(g: &args::Global, cmd: &Command) -> Option<Output> {
    if !matches!(cmd, Command::List(_) | Command::Show { .. }) || clock(g).is_err() {
        return None;
    }
    let views = joblog::engine::Views::open(&g.data, config(g)).ok()??;
    let reader = match views.reader(&g.user) {
        Ok(reader) => reader,
        Err(e) => return Some(Err(exec::user_failure(e, &g.user))),
    };
    let notes = std::cell::RefCell::new(Vec::new());
    let out = exec::reads(&reader, cmd, g.json, &|note| notes.borrow_mut().push(note));
    drop(reader);
    match out {
        // Neither a refusal nor a usage error: damage or an I/O error.
        Err(f) if f.code == 1 => None,
        out => {
            for note in notes.take() {
                say!("{note}");
            }
            // The process ends once the answer is printed: its maps and
            // files (a hundred or more at 10M jobs, each unmapped and
            // closed one by one when dropped) go with it, the shared lock
            // too.
            std::mem::forget(views);
            Some(out)
        }
    }
}

/// Has the service holding the directory carry out `cmd`, through the
/// native API on its socket (`remote`).
fn through_service(
    conn: std::os::unix::net::UnixStream,
    path: &std::path::Path,
    g: &args::Global,
    cmd: &Command,
) -> Output {
    remote::run(conn, path, g, cmd)
}

/// Whether a command may write (and so opens the store for writing).
pub fn writes(command: &Command) -> bool {
    !matches!(
        command,
        Command::List(_)
            | Command::Show { .. }
            | Command::Replay { .. }
            | Command::Verify
            | Command::Stats
            | Command::Config(args::ConfigCmd::Show { .. })
            | Command::Salvage { .. }
            | Command::User(args::UserCmd::List)
            | Command::Token(args::TokenCmd::List)
            | Command::Workflow(args::WorkflowCmd::List)
            | Command::BulkDelete(args::BulkDeleteCmd::List)
    ) && !dry_run(command)
}

/// A bulk action's `--dry-run` only reads.
fn dry_run(command: &Command) -> bool {
    match command {
        Command::Cancel(a) | Command::Pause(a) | Command::Resume(a) | Command::Postpone { act: a, .. } => a.dry_run,
        _ => false,
    }
}

/// Writes to stdout, ignoring a failed write: `joblog list | head -1` ends
/// quietly with the command's own exit code when its reader goes away.
fn write_out(text: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// How long a command waits for a data directory that another process
/// holds while no service answers on its socket: another command's short
/// hold, a service starting or stopping (`docs/operations.md`, "When the
/// directory is busy").
pub const BUSY_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// What a busy wait found: the store, opened here; the service holding
/// it, answering; or, after [`BUSY_WAIT`], a holder that never answered.
pub enum Opened {
    Here(Box<Engine>),
    Service(std::os::unix::net::UnixStream),
    Busy(Failure),
}

/// Opens the store with `open`; while another process holds it, hands the
/// command to the service when one answers, else retries for up to
/// [`BUSY_WAIT`] before saying who holds it.
pub fn busy_wait(
    g: &args::Global,
    mut open: impl FnMut() -> Result<Engine, joblog::Error>,
) -> Result<Opened, joblog::Error> {
    let deadline = std::time::Instant::now() + BUSY_WAIT;
    let mut pause = std::time::Duration::from_millis(5);
    loop {
        let holder = match open() {
            Ok(engine) => return Ok(Opened::Here(Box::new(engine))),
            Err(joblog::Error::Log(LogError::Locked { holder, .. })) => holder,
            Err(e) => return Err(e),
        };
        let path = g.data.join(server::SOCKET);
        match server::connect(&path) {
            Ok(conn) => return Ok(Opened::Service(conn)),
            Err(e) if std::time::Instant::now() >= deadline => {
                return Ok(Opened::Busy(Failure {
                    code: 1,
                    message: format!(
                        "{} is held by another process ({holder}) that does not answer on {} ({e}); waited {} s",
                        g.data.display(),
                        path.display(),
                        BUSY_WAIT.as_secs()
                    ),
                    stdout: String::new(),
                }))
            }
            Err(_) => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_millis(200));
            }
        }
    }
}

/// Refuses, before anything is opened or created, a `--now` further ahead
/// of the system clock than a live store accepts (the engine checks every
/// write again; this only keeps a refused command from creating a store).
fn check_now(g: &args::Global) -> Result<(), Failure> {
    let Some(t) = &g.now else { return Ok(()) };
    let at = Timestamp::parse(t)?;
    let fresh = g.data.join("segments").symlink_metadata().is_err();
    let simulation = g.data.join(joblog::engine::SIMULATION_MARKER).exists() || (g.simulation && fresh);
    if !simulation {
        joblog::engine::check_clock_skew(at)?;
    }
    Ok(())
}

fn clock(g: &args::Global) -> Result<Arc<dyn Clock>, joblog::Error> {
    Ok(match &g.now {
        Some(t) => Arc::new(ManualClock::new(Timestamp::parse(t)?)),
        None => Arc::new(SystemClock),
    })
}

/// The engine's configuration: the defaults, with `--sync` (for testing).
fn config(g: &args::Global) -> Config {
    let mut config = Config::default();
    config.log.sync = g.sync;
    config
}

/// Opens the engine on the command's clock: `--now`, or the system's.
pub fn open(g: &args::Global) -> Result<Engine, joblog::Error> {
    let engine = if g.simulation {
        Engine::open_simulation(&g.data, config(g), clock(g)?)?
    } else {
        Engine::open(&g.data, config(g), clock(g)?)?
    };
    report_torn_tail(&engine);
    Ok(engine)
}

/// Opens the engine read-only (see [`Engine::open_read_only`]).
pub fn open_read_only(g: &args::Global) -> Result<Engine, joblog::Error> {
    let engine = Engine::open_read_only(&g.data, config(g), clock(g)?)?;
    report_torn_tail(&engine);
    Ok(engine)
}

/// Says on stderr what opening did with a torn tail of the active segment,
/// and a checkpoint that proves events are missing from the log's end.
fn report_torn_tail(engine: &Engine) {
    for note in &engine.open_report().checkpoints_skipped {
        if joblog::projection::Projection::is_ahead_of_the_log(note) {
            say!(
                "joblog: warning: {note}; run `joblog verify`, and `joblog salvage --to NEWDIR` to copy what is intact"
            );
        }
    }
    let r = engine.recovery();
    // (Set exactly when torn bytes were found.)
    let Some(offset) = r.torn_offset else { return };
    let active = r.active_segment.and_then(|first| engine.segments().into_iter().find(|s| s.first_seq == first));
    let file = active.map_or(String::from("the active segment"), |s| s.path.display().to_string());
    let mut why = r.torn_reason.as_deref().map(|w| format!(" ({w})")).unwrap_or_default();
    if let Some(saved) = &r.torn_saved_to {
        why.push_str(&format!("; the bytes are kept in {}", saved.display()));
    }
    if engine.is_read_only() {
        say!(
            "joblog: found {} torn bytes at offset {offset} of {file}{why}: an unfinished write, left in place by this read-only command (the next write cuts it)",
            r.torn_bytes_dropped
        );
    } else {
        say!("joblog: cut {} torn bytes at offset {offset} of {file}{why}", r.torn_bytes_dropped);
    }
}

/// Closes the engine; writes a checkpoint only when many events came since
/// the last one (a command that changed one job need not rewrite them all).
/// The command's writes are durable already: a checkpoint (a cache) or a
/// final sync that fails here is a warning on stderr, never a failure of
/// the command.
pub fn close(engine: Engine) -> Result<(), Failure> {
    const CHECKPOINT_AFTER: u64 = 200_000;
    if let Some(why) = engine.checkpoint_failure() {
        say!("joblog: warning: a checkpoint could not be written (the next open replays the log): {why}");
    }
    let behind = engine.state().last_seq() - engine.open_report().checkpoint_seq.unwrap_or(0);
    if behind >= CHECKPOINT_AFTER && !engine.is_read_only() {
        if let Err(e) = engine.close() {
            say!("joblog: warning: done, but no checkpoint was written at close (the next open replays the log): {e}");
        }
    }
    Ok(())
}

/// A progress bar on a terminal; hidden otherwise.
pub fn progress(ctx_interactive: bool, len: u64, what: &str) -> indicatif::ProgressBar {
    if !ctx_interactive {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} ({eta})")
            .expect("template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

/// A spinner on a terminal for work of unknown length; hidden otherwise.
pub fn spinner(interactive: bool, what: &str) -> indicatif::ProgressBar {
    if !interactive {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_message(what.to_string());
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

/// `30s`, `10m`, `2h`, `1d` or plain seconds.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, Failure> {
    let (num, unit) = s.trim().split_at(s.trim().find(|c: char| !c.is_ascii_digit()).unwrap_or(s.trim().len()));
    let n: u64 = num.parse().map_err(|_| Failure::usage(format!("not a duration: {s:?} (use 30s, 10m, 2h)")))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(Failure::usage(format!("not a duration: {s:?} (use 30s, 10m, 2h)"))),
    };
    Ok(std::time::Duration::from_secs(secs))
}
