//! The `joblog` command line (`../shared/cli.md` is its contract).
//!
//! * `args`    — the grammar (clap derive).
//! * `exec`    — each command against an open engine.
//! * `output`  — the Job JSON, tables and timelines.
//! * `import`  — JSON lines and CSV exports of historical jobs.
//! * `server`  — `joblog run` serving the other commands on a Unix socket.
//! * `demo`    — the README's main job.

pub mod args;
mod demo;
mod exec;
mod import;
mod output;
pub mod protocol;
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

/// The contract's exit codes for the engine's errors.
impl From<joblog::Error> for Failure {
    fn from(e: joblog::Error) -> Self {
        use joblog::Error as E;
        let code = match &e {
            E::Domain(DomainError::Refused { .. } | DomainError::PlatformGenerated { .. }) => 4,
            E::Domain(DomainError::Denied { .. }) | E::Log(LogError::NotOwned { .. }) => 5,
            E::Domain(DomainError::NotFound { .. }) | E::JobNotFound(_) => 3,
            E::Domain(_) | E::TimeWentBackwards { .. } => 2,
            _ => 1,
        };
        Self { code, message: e.to_string(), stdout: String::new() }
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
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let interactive = std::io::stdout().is_terminal() && !cli.global.json;
    let (out, code, err) = match run(&cli, interactive) {
        Ok(out) => (out, 0, None),
        Err(f) => (f.stdout, f.code, Some(f.message)),
    };
    if !out.is_empty() {
        print!("{out}");
        if !out.ends_with('\n') {
            println!();
        }
    }
    if let Some(message) = err {
        eprintln!("joblog: {}", message.lines().next().unwrap_or("failed"));
    }
    ExitCode::from(code)
}

/// Runs one command line: opens the data directory (or, when `joblog run`
/// holds it, hands the command to that process), runs the command, closes.
pub fn run(cli: &Cli, interactive: bool) -> Output {
    let g = &cli.global;
    match &cli.command {
        Command::Demo(args) => return demo::run(args, g, interactive),
        Command::Run(args) => return server::run_service(args, g),
        _ => {}
    }
    let writes =
        !matches!(
            cli.command,
            Command::List(_) | Command::Show { .. } | Command::Replay { .. } | Command::Verify | Command::Stats
        ) && !matches!(&cli.command, Command::User(args::UserCmd::List) | Command::Workflow(args::WorkflowCmd::List))
            && !matches!(&cli.command, Command::BulkDelete(args::BulkDeleteCmd::List));
    // A service named with --socket (or JOBLOG_SOCKET) that answers does
    // the command; how OS users other than the directory's owner reach it.
    let explicit = g.socket.as_deref().map(|p| (p, server::connect(p)));
    if let Some((path, Ok(conn))) = explicit {
        return server::forward_on(conn, g, path);
    }
    // (A directory we may not look into is not "missing": opening says why.)
    if !writes && matches!(g.data.join("segments").try_exists(), Ok(false)) {
        return Err(Failure::not_found(format!(
            "no joblog data at {} (nothing has been written there yet)",
            g.data.display()
        )));
    }
    let engine = match open(g) {
        Ok(engine) => engine,
        Err(joblog::Error::Log(LogError::Locked { holder, .. })) => {
            return server::forward(g, &holder);
        }
        Err(e @ joblog::Error::Log(LogError::NotOwned { .. })) if g.socket.is_some() => {
            let mut f = Failure::from(e);
            f.message = format!("{} (and no service answers on {})", f.message, server::socket_path(g).display());
            return Err(f);
        }
        Err(e) if matches!(cli.command, Command::Verify) => return exec::verify_unopenable(g, e),
        Err(e) => return Err(e.into()),
    };
    let ctx = Ctx { engine: &engine, user: g.user.clone(), json: g.json, interactive };
    let out = exec::execute(&ctx, &cli.command);
    close(engine)?;
    out
}

/// Opens the engine on the command's clock: `--now`, or the system's.
pub fn open(g: &args::Global) -> Result<Engine, joblog::Error> {
    let clock: Arc<dyn Clock> = match &g.now {
        Some(t) => Arc::new(ManualClock::new(Timestamp::parse(t)?)),
        None => Arc::new(SystemClock),
    };
    Engine::open(&g.data, Config::default(), clock)
}

/// Closes the engine; writes a checkpoint only when many events came since
/// the last one (a command that changed one job need not rewrite them all).
pub fn close(engine: Engine) -> Result<(), Failure> {
    const CHECKPOINT_AFTER: u64 = 200_000;
    let behind = engine.state().last_seq() - engine.open_report().checkpoint_seq.unwrap_or(0);
    if behind >= CHECKPOINT_AFTER {
        engine.close()?;
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
