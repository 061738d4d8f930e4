//! `joblog run`: the service, and the Unix socket through which every other
//! `joblog` command on the same data directory is carried out by it while
//! it holds the directory (`cli.md`, "One data directory, many commands").
//!
//! The socket is `DATA/joblog.sock`, mode 0600 (the directory's owner
//! only). A client sends one JSON line: `{"argv": [...], "user": "...",
//! "json": bool}` (the acting user and format as the client resolved them
//! from its flags and environment); the service parses the arguments with
//! the same grammar, runs the command with the same code against its
//! engine, and answers one JSON line `{"code", "stdout", "stderr"}`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::Parser;
use joblog::engine::Engine;
use joblog::service::{Registry, RunUntil, Service, ServiceConfig};
use serde_json::{json, Value};

use super::args::{Cli, Command, Global, RunArgs};
use super::output::pretty;
use super::{exec, Ctx, Failure, Output};

pub const SOCKET: &str = "joblog.sock";

fn socket_path(g: &Global) -> PathBuf {
    g.data.join(SOCKET)
}

pub fn run_service(args: &RunArgs, g: &Global) -> Output {
    let until = match (&args.for_, args.once, args.until_idle) {
        (Some(d), _, _) => RunUntil::For(super::parse_duration(d)?),
        (None, true, _) => RunUntil::Once,
        (None, false, true) => RunUntil::Idle,
        (None, false, false) => RunUntil::Stopped,
    };
    let engine = match super::open(g) {
        Ok(e) => e,
        Err(joblog::Error::Log(joblog::log::LogError::Locked { holder, .. })) => {
            return Err(Failure {
                code: 1,
                message: format!(
                    "{} is already open in another process ({holder}); one service per directory",
                    g.data.display()
                ),
                stdout: String::new(),
            })
        }
        Err(e) => return Err(e.into()),
    };
    let config = ServiceConfig { workers: args.workers.max(1), ..ServiceConfig::default() };
    let service = Service::new(&engine, config, Registry::new());
    let path = socket_path(g);
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).map_err(|e| Failure {
        code: 1,
        message: format!("cannot listen on {}: {e}", path.display()),
        stdout: String::new(),
    })?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(|e| Failure {
        code: 1,
        message: format!("{}: {e}", path.display()),
        stdout: String::new(),
    })?;
    let stopping = AtomicBool::new(false);
    let summary = std::thread::scope(|s| {
        s.spawn(|| serve(&listener, &engine, &stopping));
        s.spawn(|| watch_signals(&service, &stopping));
        let summary = service.run(until);
        stopping.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = UnixStream::connect(&path);
        summary
    });
    let _ = std::fs::remove_file(&path);
    let summary = summary?;
    // What the service did is durable: a checkpoint that fails at close
    // is a warning, not a failed run.
    if let Err(e) = engine.close() {
        eprintln!("joblog: warning: no checkpoint was written at close (the next open replays the log): {e}");
    }
    let v = json!({
        "ran": summary.ran,
        "succeeded": summary.succeeded,
        "failed": summary.failed,
        "waiting": summary.waiting,
        "canceled": summary.canceled,
        "recovered": summary.recovered,
        "deferred": summary.deferred,
        "loop_stopped": summary.loop_stopped,
        "returned": summary.returned,
    });
    Ok(if g.json {
        pretty(&v)
    } else {
        format!(
            "ran {} jobs: {} succeeded, {} failed, {} waiting, {} canceled ({} returned from a stopped service)",
            summary.ran, summary.succeeded, summary.failed, summary.waiting, summary.canceled, summary.recovered
        )
    })
}

/// SIGINT and SIGTERM ask the service to stop gracefully: running
/// handlers reach a checkpoint, their jobs are recorded, the log closes
/// cleanly. (kill -9 loses nothing acknowledged either; the next start
/// returns the jobs it held.)
fn watch_signals(service: &Service<'_>, stopping: &AtomicBool) {
    let signalled = std::sync::Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(sig, std::sync::Arc::clone(&signalled));
    }
    while !stopping.load(Ordering::SeqCst) {
        if signalled.load(Ordering::SeqCst) {
            service.stop();
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Answers forwarded commands until `stopping`.
fn serve(listener: &UnixListener, engine: &Engine, stopping: &AtomicBool) {
    for conn in listener.incoming() {
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(mut conn) = conn else { continue };
        let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
        let mut line = String::new();
        if BufReader::new(&conn).read_line(&mut line).is_err() {
            continue;
        }
        let answer = match serde_json::from_str::<Value>(&line) {
            Ok(req) => answer(engine, &req),
            Err(e) => json!({"code": 2, "stdout": "", "stderr": format!("bad request: {e}")}),
        };
        let _ = writeln!(conn, "{answer}");
    }
}

fn answer(engine: &Engine, req: &Value) -> Value {
    let argv: Vec<String> = req["argv"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect())
        .unwrap_or_default();
    let result = match Cli::try_parse_from(&argv) {
        Err(e) => Err(Failure::usage(e.to_string())),
        Ok(cli) if cli.global.now.is_some() => Err(Failure::usage(
            "--now cannot be used while `joblog run` serves this directory (the service runs on its own clock)",
        )),
        Ok(cli) if matches!(cli.command, Command::Run(_) | Command::Demo(_)) => Err(Failure {
            code: 1,
            message: "the service already runs on this directory".into(),
            stdout: String::new(),
        }),
        Ok(cli) => {
            let ctx = Ctx {
                engine,
                user: req["user"].as_str().unwrap_or("admin").to_string(),
                json: req["json"].as_bool().unwrap_or(false),
                interactive: false,
            };
            exec::execute(&ctx, &cli.command)
        }
    };
    match result {
        Ok(out) => json!({"code": 0, "stdout": out, "stderr": ""}),
        Err(f) => json!({"code": f.code, "stdout": f.stdout, "stderr": f.message}),
    }
}

/// Hands this command to the `joblog run` that holds the directory.
pub fn forward(g: &Global, holder: &str) -> Output {
    let path = socket_path(g);
    let held = || Failure {
        code: 1,
        message: format!(
            "{} is held by another process ({holder}) that does not answer on {}",
            g.data.display(),
            path.display()
        ),
        stdout: String::new(),
    };
    let argv = forwarded_argv(std::env::args_os())?;
    let mut conn = UnixStream::connect(&path).map_err(|_| held())?;
    let req = json!({"argv": argv, "user": g.user, "json": g.json});
    writeln!(conn, "{req}").map_err(|_| held())?;
    let mut line = String::new();
    BufReader::new(&conn).read_line(&mut line).map_err(|_| held())?;
    let resp: Value = serde_json::from_str(&line).map_err(|_| held())?;
    let code = resp["code"].as_u64().unwrap_or(1) as u8;
    let stdout = resp["stdout"].as_str().unwrap_or_default().to_string();
    if code == 0 {
        Ok(stdout)
    } else {
        Err(Failure { code, message: resp["stderr"].as_str().unwrap_or("failed").to_string(), stdout })
    }
}

/// The arguments to send to the service, as text (the request is JSON).
/// `--data` may name a directory that is not UTF-8: the service ignores it
/// (it serves its own directory), so its value goes as lossy text; any other
/// argument that is not UTF-8 (a file to import) is refused with a clear
/// error rather than sent altered.
fn forwarded_argv(args: impl Iterator<Item = std::ffi::OsString>) -> Result<Vec<String>, Failure> {
    let mut out: Vec<String> = Vec::new();
    for arg in args {
        let is_data_value = out.last().is_some_and(|prev| prev == "--data");
        match arg.into_string() {
            Ok(a) => out.push(a),
            Err(raw) if is_data_value || raw.as_encoded_bytes().starts_with(b"--data=") => {
                out.push(raw.to_string_lossy().into_owned());
            }
            Err(raw) => {
                return Err(Failure::usage(format!(
                    "the argument {} is not valid UTF-8; while `joblog run` serves this directory, arguments other than --data must be UTF-8",
                    raw.to_string_lossy()
                )))
            }
        }
    }
    Ok(out)
}
