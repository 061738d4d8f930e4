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
//! Each connection is served on its own thread (at most
//! [`MAX_CONNECTIONS`] at once), with time limits, a bounded request
//! ([`protocol`]) and a panic caught into an error reply: no request can
//! stop the server or hold up other clients. The caller's OS identity
//! comes from the socket (`SO_PEERCRED`): the directory's owner and root
//! act as the request's user; anybody else acts only as the joblog user
//! their OS user is mapped to, and is refused when unmapped.

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clap::{CommandFactory, Parser};
use joblog::domain::Privilege;
use joblog::engine::Engine;
use joblog::service::{Registry, RunUntil, Service, ServiceConfig};
use serde_json::{json, Value};

use super::args::{Cli, Command, Global, RunArgs};
use super::output::pretty;
use super::protocol::{self, decode_request, encode_request, LineLimit, Request, MAX_REQUEST_BYTES};
use super::{exec, Ctx, Failure, Output};

pub const SOCKET: &str = "joblog.sock";
/// Connections served at once; more are answered "busy".
pub const MAX_CONNECTIONS: usize = 16;
/// How long a client may take to send its request line.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one read or write of a connection may wait.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// How long connections still open when the service stops get to finish
/// before they are cut.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
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

fn denied(message: String) -> Failure {
    Failure { code: 5, message, stdout: String::new() }
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
    let legacy = std::sync::Arc::new(Legacy::new(engine.clone()));
    let local = joblog_server::Local {
        listeners,
        line_protocol: Some({
            let legacy = std::sync::Arc::clone(&legacy);
            std::sync::Arc::new(move |conn| legacy.serve(conn))
        }),
    };
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
    legacy.cut();
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

/// The command line's line protocol of before the native API: the
/// commands `remote` does not carry yet are forwarded as their arguments.
/// Each connection is handed over by the HTTP server on a thread of its
/// own; at most [`MAX_CONNECTIONS`] at once; those still open when the
/// service stops are cut.
struct Legacy {
    engine: Engine,
    active: AtomicUsize,
    open: Mutex<HashMap<u64, UnixStream>>,
    next: AtomicUsize,
}

impl Legacy {
    fn new(engine: Engine) -> Self {
        Legacy { engine, active: AtomicUsize::new(0), open: Mutex::new(HashMap::new()), next: AtomicUsize::new(0) }
    }

    fn serve(&self, mut conn: UnixStream) {
        let _ = conn.set_read_timeout(Some(REQUEST_TIMEOUT));
        let _ = conn.set_write_timeout(Some(IO_TIMEOUT));
        if self.active.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            self.active.fetch_sub(1, Ordering::SeqCst);
            let _ = reply(&mut conn, &busy());
            return;
        }
        let id = self.next.fetch_add(1, Ordering::SeqCst) as u64;
        if let Ok(second) = conn.try_clone() {
            self.open.lock().unwrap_or_else(|e| e.into_inner()).insert(id, second);
        }
        let answer = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handle(&self.engine, &conn)))
            .unwrap_or_else(|_| {
                json!({"code": 1, "stdout": "", "stderr": "internal error: the command failed unexpectedly (a bug; see the service's stderr); nothing else was affected"})
            });
        let _ = reply(&mut &conn, &answer);
        self.open.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
        self.active.fetch_sub(1, Ordering::SeqCst);
    }

    /// Gives the connections still open [`SHUTDOWN_GRACE`], then cuts them.
    fn cut(&self) {
        let until = Instant::now() + SHUTDOWN_GRACE;
        while self.active.load(Ordering::SeqCst) > 0 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        for conn in self.open.lock().unwrap_or_else(|e| e.into_inner()).values() {
            let _ = conn.shutdown(std::net::Shutdown::Both);
        }
    }
}

fn busy() -> Value {
    json!({"code": 1, "stdout": "", "stderr": format!("the service is busy ({MAX_CONNECTIONS} commands at once); try again")})
}

fn reply(conn: &mut impl Write, answer: &Value) -> std::io::Result<()> {
    writeln!(conn, "{answer}")?;
    conn.flush()
}

fn failure_value(f: Failure) -> Value {
    json!({"code": f.code, "stdout": f.stdout, "stderr": f.message})
}

/// One connection: who is calling, what they ask, the answer.
fn handle(engine: &Engine, conn: &UnixStream) -> Value {
    let peer = match nix::sys::socket::getsockopt(conn, nix::sys::socket::sockopt::PeerCredentials) {
        Ok(c) => c.uid(),
        Err(e) => return failure_value(denied(format!("cannot tell who is calling ({e}); refused"))),
    };
    // An OS user nobody mapped is refused before anything is read: it
    // cannot hold one of the [`MAX_CONNECTIONS`] slots at all.
    if let Err(f) = check_peer(engine, peer) {
        return failure_value(f);
    }
    // The whole request line within REQUEST_TIMEOUT, however slowly it
    // trickles in (a per-read timeout alone lets a client send a byte every
    // few seconds and keep its slot for ever).
    let mut reader = BufReader::new(Deadline { conn, until: Some(Instant::now() + REQUEST_TIMEOUT) });
    let mut line = Vec::new();
    match reader.by_ref().take(MAX_REQUEST_BYTES as u64 + 1).read_until(b'\n', &mut line) {
        Ok(_) if line.len() > MAX_REQUEST_BYTES => {
            return failure_value(Failure::usage(protocol::RequestError::TooLong { len: line.len() }.to_string()))
        }
        Ok(_) => {}
        Err(e) => return failure_value(Failure::usage(format!("bad request: {e}"))),
    }
    let req = match decode_request(&line) {
        Ok(r) => r,
        Err(e) => return failure_value(Failure::usage(e.to_string())),
    };
    reader.get_mut().until = None;
    let _ = conn.set_read_timeout(Some(IO_TIMEOUT));
    match answer(engine, peer, &req, &mut reader) {
        Ok((out, notes)) => json!({"code": 0, "stdout": out, "stderr": notes}),
        Err(f) => failure_value(f),
    }
}

/// Reads a connection; while `until` is set, no read waits past it.
struct Deadline<'a> {
    conn: &'a UnixStream,
    until: Option<Instant>,
}

impl Read for Deadline<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let late = || {
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("the request line did not arrive within {} s", REQUEST_TIMEOUT.as_secs()),
            )
        };
        let Some(until) = self.until else { return (&*self.conn).read(buf) };
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(late());
        }
        self.conn.set_read_timeout(Some(left))?;
        // A read that times out says EAGAIN (WouldBlock) on Linux.
        (&*self.conn).read(buf).map_err(|e| match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => late(),
            _ => e,
        })
    }
}

/// Refuses a caller who is neither the owner, root, nor a mapped OS user.
fn check_peer(engine: &Engine, peer: u32) -> Result<(), Failure> {
    joblog_server::auth::local_peer_allowed(engine, peer).map_err(|e| denied(e.to_string()))
}

/// The joblog user a caller with OS user id `peer` acts as.
fn acting_user(engine: &Engine, peer: u32, req: &Request) -> Result<String, Failure> {
    joblog_server::auth::local_user(engine, peer, req.user.as_deref(), req.user_explicit)
        .map_err(|e| denied(e.to_string()))
}

/// Runs a forwarded command: its stdout and the notes for the client's
/// stderr, or its failure.
fn answer(engine: &Engine, peer: u32, req: &Request, upload: &mut impl Read) -> Result<(String, String), Failure> {
    let user = acting_user(engine, peer, req)?;
    let cli = Cli::try_parse_from(&req.argv).map_err(|e| Failure::usage(e.to_string()))?;
    if cli.global.now.is_some() {
        return Err(Failure::usage(
            "--now cannot be used while `joblog run` serves this directory (the service runs on its own clock)",
        ));
    }
    if matches!(cli.command, Command::Run(_) | Command::Demo(_)) {
        return Err(fail("the service already runs on this directory".into()));
    }
    let ctx = Ctx { engine, user, json: cli.global.json || req.json, interactive: false, notes: Default::default() };
    let out = match (&cli.command, req.upload) {
        (Command::Import { file }, Some(len)) => {
            // Only who may import gets to stream a file at all.
            engine.session(&ctx.user)?.require_organization(Privilege::Create)?;
            let spool = tempfile::Builder::new()
                .prefix("joblog-import-")
                .permissions(fs::Permissions::from_mode(0o700))
                .tempdir()
                .map_err(|e| fail(e.to_string()))?;
            let name = file.file_name().map_or_else(|| "import".into(), |n| n.to_os_string());
            let local = spool.path().join(name);
            receive(upload, len, &local, file)?;
            let shown = |s: String| s.replace(&local.display().to_string(), &file.display().to_string());
            exec::execute(&ctx, &Command::Import { file: local.clone() }).map(shown).map_err(|f| Failure {
                code: f.code,
                message: shown(f.message),
                stdout: shown(f.stdout),
            })
        }
        (Command::Import { .. }, None) => Err(Failure::usage(
            "import through the service needs the file's content from the client (this client is too old)",
        )),
        (_, Some(_)) => Err(Failure::usage("only import sends a file")),
        (command, None) => exec::execute(&ctx, command),
    };
    // What the command said on the side (the next page's cursor) goes back
    // to the client's stderr, not the service's.
    out.map(|o| (o, ctx.notes.take().join("\n")))
}

/// Copies the `len` bytes of an uploaded file into `to` (0600), a chunk at
/// a time, refusing a line longer than the limit.
fn receive(from: &mut impl Read, len: u64, to: &Path, shown: &Path) -> Result<(), Failure> {
    let err = |e: std::io::Error| fail(format!("receiving {}: {e}; nothing was imported", shown.display()));
    let mut out = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(to).map_err(err)?;
    let mut limit = LineLimit::default();
    let mut buf = vec![0u8; 64 * 1024];
    let mut left = len;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = from.read(&mut buf[..want]).map_err(err)?;
        if n == 0 {
            return Err(fail(format!(
                "{}: the client sent {} of {len} bytes; nothing was imported",
                shown.display(),
                len - left
            )));
        }
        limit
            .feed(&buf[..n])
            .map_err(|line| Failure::usage(protocol::line_too_long(&shown.display().to_string(), line)))?;
        out.write_all(&buf[..n]).map_err(err)?;
        left -= n as u64;
    }
    Ok(())
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

/// This command's arguments, each of which must be UTF-8 to be forwarded,
/// but for `--data` and `--socket` and their values: the service has its
/// own (so a data directory's name need not be UTF-8).
fn args() -> Result<Vec<String>, Failure> {
    let mut skip_next = false;
    std::env::args_os()
        .filter(|a| {
            if std::mem::take(&mut skip_next) {
                return false;
            }
            let b = a.as_encoded_bytes();
            if b == b"--data" || b == b"--socket" {
                skip_next = true;
                return false;
            }
            !(b.starts_with(b"--data=") || b.starts_with(b"--socket="))
        })
        .map(|a| {
            a.into_string().map_err(|a| {
                Failure::usage(format!(
                    "the argument {} is not valid UTF-8; while `joblog run` serves this directory, arguments other than --data and --socket must be UTF-8",
                    a.to_string_lossy()
                ))
            })
        })
        .collect()
}

/// Whether `--as` or `JOBLOG_USER` named the acting user of this command.
pub fn user_explicit_here() -> bool {
    args().is_ok_and(|argv| user_explicit(&argv))
}

/// Whether `--as` or `JOBLOG_USER` named the acting user.
fn user_explicit(argv: &[String]) -> bool {
    Cli::command()
        .try_get_matches_from(argv)
        .ok()
        .and_then(|m| m.value_source("user"))
        .is_some_and(|s| s != clap::parser::ValueSource::DefaultValue)
}

/// Sends this command on `conn` and returns the service's answer.
pub fn forward_on(mut conn: UnixStream, g: &Global, path: &Path) -> Output {
    let lost = |e: std::io::Error| fail(format!("the service on {} stopped answering: {e}", path.display()));
    let argv = args()?;
    let cli = Cli::try_parse_from(&argv).map_err(|e| Failure::usage(e.to_string()))?;
    let mut file = None;
    if let Command::Import { file: name } = &cli.command {
        // The client reads the file: relative to its own directory, with
        // its own permissions.
        let f = fs::File::open(name).map_err(|e| fail(format!("cannot read {}: {e}", name.display())))?;
        let len = f.metadata().map_err(|e| fail(format!("cannot read {}: {e}", name.display())))?.len();
        file = Some((f, len, name.clone()));
    }
    let req = Request {
        user_explicit: user_explicit(&argv),
        argv,
        user: Some(g.user.clone()),
        json: g.json,
        upload: file.as_ref().map(|(_, len, _)| *len),
    };
    let _ = conn.set_write_timeout(Some(IO_TIMEOUT));
    let sent = conn.write_all(&encode_request(&req)).and_then(|()| match &mut file {
        Some((f, len, name)) => {
            let copied = std::io::copy(&mut f.take(*len), &mut conn)?;
            if copied < *len {
                return Err(std::io::Error::other(format!("{} shrank while it was being sent", name.display())));
            }
            Ok(())
        }
        None => Ok(()),
    });
    // The service may have refused before reading everything: its answer
    // says why, so read it even when sending failed.
    let mut line = String::new();
    let read = BufReader::new(&conn).read_line(&mut line);
    let resp: Value = match (serde_json::from_str(&line), sent, read) {
        (Ok(v), _, _) => v,
        (Err(_), Err(e), _) | (Err(_), Ok(()), Err(e)) => return Err(lost(e)),
        (Err(e), Ok(()), Ok(_)) => return Err(lost(std::io::Error::other(e))),
    };
    let code = resp["code"].as_u64().and_then(|c| u8::try_from(c).ok()).unwrap_or(1);
    let stdout = resp["stdout"].as_str().unwrap_or_default().to_string();
    if code == 0 {
        if let Some(notes) = resp["stderr"].as_str().filter(|n| !n.is_empty()) {
            say!("{notes}");
        }
        Ok(stdout)
    } else {
        Err(Failure { code, message: resp["stderr"].as_str().unwrap_or("failed").to_string(), stdout })
    }
}
