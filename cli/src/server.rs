//! `joblog run`: the service, and the Unix socket through which every other
//! `joblog` command on the same data directory is carried out by it while
//! it holds the directory (`docs/cli.md`, "One data directory, many commands").
//!
//! The service listens on `DATA/joblog.sock` (mode 0600, in the 0700 data
//! directory: the owner's) and, with `--socket PATH` (env
//! `JOBLOG_SOCKET`), also on PATH (mode 0666, for OS users mapped with
//! `joblog user map`). Each is bound inside a fresh 0700 directory next to
//! its final name, given its mode there, then renamed into place: nobody
//! can connect before it is ready. A
//! path longer than `sun_path` allows is reached through
//! `/proc/self/fd/N/NAME`, N being its directory opened.
//!
//! The sockets are served by the HTTP server (`joblog_server::serve`): the
//! native API, each connection its own task with the server's limits, the
//! caller's OS identity from the socket (`SO_PEERCRED`): the directory's
//! owner and root act as the user a request names; anybody else acts only
//! as the joblog user their OS user is mapped to, and an OS user nobody
//! mapped is refused before anything is read (docs/http.md, "On the
//! service's Unix socket").

use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::CommandFactory;
use joblog::domain::Privilege;
use joblog::service::{Registry, RunUntil, Service, ServiceConfig};
use serde_json::json;

use super::args::{Cli, Global, RunArgs};
use super::output::pretty;
use super::{Failure, Output};

pub const SOCKET: &str = "joblog.sock";
/// Bytes a path may have to be bound or connected directly (`sun_path`
/// holds 108 with its final zero).
const SUN_PATH_MAX: usize = 100;

/// Where the service listens: `--socket`, else inside the data directory.
pub fn socket_path(g: &Global) -> PathBuf {
    g.socket.clone().unwrap_or_else(|| g.data.join(SOCKET))
}

fn fail(message: String) -> Failure {
    Failure { code: 1, message, stdout: String::new() }
}

/// `path` as a short name the socket calls accept: itself, or through its
/// directory opened (kept open in the returned file while it is used).
fn short_name(path: &Path) -> std::io::Result<(PathBuf, Option<fs::File>)> {
    if path.as_os_str().len() < SUN_PATH_MAX {
        return Ok((path.to_path_buf(), None));
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or_else(|| std::io::Error::other("a socket path needs a file name"))?;
    if name.len() >= SUN_PATH_MAX - 24 {
        return Err(std::io::Error::other("the socket's file name is too long"));
    }
    let dir = fs::File::open(parent)?;
    Ok((PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd())).join(name), Some(dir)))
}

/// Connects to the socket at `path`, however long.
pub fn connect(path: &Path) -> std::io::Result<UnixStream> {
    let (short, _dir) = short_name(path)?;
    UnixStream::connect(short)
}

/// A socket bound by this process: removed at the end if still ours.
struct Bound {
    path: PathBuf,
    ino: u64,
}

impl Drop for Bound {
    fn drop(&mut self) {
        if fs::symlink_metadata(&self.path).is_ok_and(|m| m.ino() == self.ino) {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Binds the service's socket at `path` with `mode`, with no moment when
/// anybody could connect before it has its mode (see the module's doc).
fn bind(path: &Path, mode: u32) -> Result<(UnixListener, Bound), Failure> {
    let err = |e: std::io::Error| fail(format!("cannot listen on {}: {e}", path.display()));
    if let Ok(m) = fs::symlink_metadata(path) {
        if !m.file_type().is_socket() {
            return Err(fail(format!("cannot listen on {}: it exists and is not a socket", path.display())));
        }
        if connect(path).is_ok() {
            return Err(fail(format!("cannot listen on {}: another service answers there", path.display())));
        }
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let private = tempfile::Builder::new()
        .prefix(".joblog-socket-")
        .permissions(fs::Permissions::from_mode(0o700))
        .tempdir_in(parent)
        .map_err(err)?;
    fs::set_permissions(private.path(), fs::Permissions::from_mode(0o700)).map_err(err)?;
    let inner = private.path().join("s");
    let listener = {
        let (short, _dir) = short_name(&inner).map_err(err)?;
        UnixListener::bind(short).map_err(err)?
    };
    fs::set_permissions(&inner, fs::Permissions::from_mode(mode)).map_err(err)?;
    let ino = fs::symlink_metadata(&inner).map_err(err)?.ino();
    fs::rename(&inner, path).map_err(err)?;
    drop(private);
    Ok((listener, Bound { path: path.to_path_buf(), ino }))
}

pub fn run_service(args: &RunArgs, g: &Global) -> Output {
    let until = match (&args.for_, args.once, args.until_idle) {
        (Some(d), _, _) => RunUntil::For(super::parse_duration(d)?),
        (None, true, _) => RunUntil::Once,
        (None, false, true) => RunUntil::Idle,
        (None, false, false) => RunUntil::Stopped,
    };
    // HTTP (docs/http.md): the address bound and the certificate read
    // first, so that a port in use or a bad key stops the start before the
    // store is opened (or created) or any job runs.
    let bound = match &args.http {
        None => None,
        Some(addr) => {
            let config = joblog_server::HttpConfig {
                addr: addr.clone(),
                tls: args
                    .tls_cert
                    .clone()
                    .zip(args.tls_key.clone())
                    .map(|(cert, key)| joblog_server::TlsFiles { cert, key }),
                limits: joblog_server::Limits::default(),
            };
            Some(joblog_server::bind(config).map_err(|e| Failure {
                code: 1,
                message: format!("joblog: {e}"),
                stdout: String::new(),
            })?)
        }
    };
    // Another command's short hold, or a service stopping, is waited for;
    // a service that answers is not.
    let engine = match super::busy_wait(g, || super::open(g))? {
        super::Opened::Here(e) => *e,
        super::Opened::Service(_) => {
            return Err(Failure {
                code: 1,
                message: format!("a service already runs on {}; one service per directory", g.data.display()),
                stdout: String::new(),
            })
        }
        super::Opened::Busy(f) => return Err(f),
    };
    // Starting the service runs every user's jobs: an administrative write.
    engine.session(&g.user)?.require_organization(Privilege::Write)?;
    // The service takes the store's policy (`joblog config`) when it starts
    // and again whenever it changes, over these defaults (a key unset while
    // it runs goes back to its default): a key the store sets wins over
    // `--command-timeout`, the service's own default (docs/operations.md).
    let config = ServiceConfig {
        workers: args.workers.max(1),
        command_timeout: args.command_timeout.map(Duration::from_secs),
        ..ServiceConfig::default()
    };
    let service = Service::new(&engine, config, Registry::new());
    let service_running = std::sync::Arc::new(AtomicBool::new(false));
    // The owner's socket in the data directory, always; with --socket, also
    // the one other OS users reach. Both served by the HTTP server (the
    // native API, the caller known from the socket), on its runtime.
    let mut sockets = vec![bind(&g.data.join(SOCKET), 0o600)?];
    if let Some(p) = &g.socket {
        sockets.push(bind(p, 0o666)?);
    }
    let mut listeners = Vec::new();
    let mut names = Vec::new();
    for (listener, bound) in sockets {
        listeners.push(listener);
        names.push(bound);
    }
    let local = joblog_server::Local { listeners };
    let server = joblog_server::serve(engine.clone(), std::sync::Arc::clone(&service_running), bound, local)
        .map_err(|e| Failure { code: 1, message: format!("joblog: {e}"), stdout: String::new() })?;
    if let Some(addr) = server.local_addr() {
        let scheme = if args.tls_cert.is_some() { "https" } else { "http" };
        say!("joblog: serving {scheme}://{addr} (dashboard, /api/v1/, /api/data/v9.2/, /metrics, /healthz)");
    }
    let stopping = AtomicBool::new(false);
    let summary = std::thread::scope(|s| {
        s.spawn(|| watch_signals(&service, &stopping));
        service_running.store(true, Ordering::Release);
        let summary = service.run(until);
        service_running.store(false, Ordering::Release);
        stopping.store(true, Ordering::SeqCst);
        summary
    });
    // Requests in flight get the grace, then are cut; the sockets' names
    // go with `names`.
    server.stop();
    drop(names);
    let summary = summary?;
    // The last handle of the engine closes its log (and reports the final
    // sync): the service's goes first.
    drop(service);
    // What the service did is durable: a checkpoint that fails at close
    // is a warning, not a failed run.
    if let Err(e) = engine.close() {
        say!("joblog: warning: no checkpoint was written at close (the next open replays the log): {e}");
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
fn watch_signals(service: &Service, stopping: &AtomicBool) {
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

/// An OS user by name or number.
pub fn os_uid(name: &str) -> Result<u32, Failure> {
    if let Ok(uid) = name.parse::<u32>() {
        return Ok(uid);
    }
    match nix::unistd::User::from_name(name) {
        Ok(Some(u)) => Ok(u.uid.as_raw()),
        Ok(None) => Err(Failure::usage(format!("no OS user named {name:?} (give a name or a uid)"))),
        Err(e) => Err(fail(format!("cannot look up OS user {name:?}: {e}"))),
    }
}

/// Whether `--as` or `JOBLOG_USER` named the acting user of this command
/// (rather than the default): a mapped OS user who names somebody else is
/// refused by the service.
pub fn user_explicit_here() -> bool {
    Cli::command()
        .try_get_matches_from(std::env::args_os())
        .ok()
        .and_then(|m| m.value_source("user"))
        .is_some_and(|s| s != clap::parser::ValueSource::DefaultValue)
}
