//! joblog over HTTP (docs/http.md): the native API (`/api/v1/`), the
//! Dataverse-compatible Web API (`/api/data/v9.2/`), the dashboard (`/`),
//! `/metrics` and `/healthz`, served by `joblog run --http ADDR`.
//!
//! The library is synchronous; this crate owns the async runtime. Every
//! call into the engine runs on tokio's blocking pool ([`blocking`]), so a
//! request waiting for a sync never holds a thread that serves other
//! connections. Each connection is its own task with a time limit on its
//! request head and on each request; bodies are bounded; requests beyond
//! [`Limits::max_in_flight`] at once are answered 429 with `Retry-After`.

pub mod auth;
mod dashboard;
pub mod dataverse;
pub mod error;
pub mod events;
pub mod import;
pub mod json;
pub mod native;
pub mod odata;
pub mod ops;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use joblog::Engine;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use error::ApiError;

/// The bounds every connection and request lives within (docs/http.md,
/// "Limits").
#[derive(Debug, Clone)]
pub struct Limits {
    /// The largest request body, in bytes.
    pub max_body: usize,
    /// Requests served at once (event streams not counted); more get 429.
    pub max_in_flight: usize,
    /// Event streams open at once; more get 429.
    pub max_streams: usize,
    /// How long a client may take to send a request's head (also how long
    /// an idle kept-alive connection stays open).
    pub head_timeout: Duration,
    /// How long a request may take, body and answer included (event
    /// streams excepted).
    pub request_timeout: Duration,
    /// How long open connections get to finish when the server stops.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body: 1 << 20,
            max_in_flight: 256,
            max_streams: 256,
            head_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(2),
        }
    }
}

/// Where to listen and how.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// `HOST:PORT` (port 0: any free port; [`Server::local_addr`] tells which).
    pub addr: String,
    /// PEM certificate chain and private key: HTTPS instead of HTTP.
    pub tls: Option<TlsFiles>,
    /// The bounds of connections and requests.
    pub limits: Limits,
}

/// A certificate chain and its key, PEM files.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The certificate chain.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// `addr` is not `HOST:PORT`, or could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The certificate or key could not be read or used.
    #[error("TLS: {0}")]
    Tls(String),
    /// The async runtime could not start.
    #[error("cannot start the HTTP runtime: {0}")]
    Runtime(std::io::Error),
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The open store.
    pub engine: Engine,
    /// Set while the service runs jobs (`/healthz`).
    pub service_running: Arc<AtomicBool>,
    /// The bounds in force.
    pub limits: Arc<Limits>,
    /// When the server started.
    pub started: Instant,
    /// Signed-in dashboard sessions.
    pub sessions: Arc<auth::Sessions>,
    /// Bulk operations of the native API.
    pub operations: Arc<native::Operations>,
    /// What the event follower counts.
    pub metrics: Arc<ops::Metrics>,
    /// The log's next sequence number, as the event follower last saw it.
    pub log_head: Arc<watch::Sender<u64>>,
    /// Event streams open now.
    pub streams: Arc<AtomicUsize>,
    /// Whether the server speaks TLS: the absolute links the APIs give
    /// say https, the dashboard's session cookie is `Secure`.
    pub tls: bool,
    in_flight: Arc<AtomicUsize>,
    per_user: Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>,
}

impl AppState {
    /// The state of a server over `engine`.
    pub fn new(engine: Engine, service_running: Arc<AtomicBool>, limits: Limits) -> Self {
        let head = engine.next_seq();
        AppState {
            engine,
            service_running,
            limits: Arc::new(limits),
            started: Instant::now(),
            sessions: Arc::default(),
            operations: Arc::default(),
            metrics: Arc::default(),
            log_head: Arc::new(watch::channel(head).0),
            streams: Arc::default(),
            tls: false,
            in_flight: Arc::default(),
            per_user: Arc::default(),
        }
    }
}

/// Runs `f` (a call into the synchronous engine) on the blocking pool.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            error::code::INTERNAL,
            format!("the request's work ended abnormally: {e}"),
        )),
    }
}

/// A running HTTP server; [`Server::stop`] ends it.
pub struct Server {
    local_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// The TCP address it listens on, if it listens on one.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// Stops accepting, gives open connections the shutdown grace, then
    /// cuts what is left and returns.
    pub fn stop(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// Every route of the HTTP face.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(ops::metrics))
        .route("/api/v1/events", get(events::stream))
        .merge(native::routes())
        .merge(dashboard::routes())
        .merge(dataverse::routes())
        .method_not_allowed_fallback(|| async { ApiError::method() })
        .fallback(|| async { ApiError::not_found("no such resource") })
        .layer(axum::middleware::from_fn_with_state(state.clone(), admit))
        .layer(axum::extract::DefaultBodyLimit::max(state.limits.max_body))
        .with_state(state)
}

/// `GET /healthz`: 200 while the store is open and the service runs.
async fn healthz(State(s): State<AppState>) -> Response {
    if s.service_running.load(Ordering::Acquire) {
        (axum::http::StatusCode::OK, "ok\n").into_response()
    } else {
        (axum::http::StatusCode::SERVICE_UNAVAILABLE, "the service is not running\n").into_response()
    }
}

/// Admission: at most `max_in_flight` requests at once, and, once half of
/// them are taken, at most a quarter for any one user (so that no user,
/// however slow their requests, can take every slot from the others); 429
/// beyond. Each
/// request is bounded by `request_timeout`, except `GET /api/v1/events`,
/// whose streams have their own bounds (`max_streams`, a quarter per user).
async fn admit(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let stream = req.method() == axum::http::Method::GET && req.uri().path() == "/api/v1/events";
    // Who is calling, checked once here: `auth::Caller` takes it from the
    // request instead of asking the engine again.
    let mut req = req;
    let local = req.extensions().get::<auth::PeerUid>().copied();
    let user = match (local, auth::credential(req.headers(), &s.sessions)) {
        // The Unix socket: the kernel says who; one who may not act at all
        // is refused here, before anything else.
        (Some(auth::PeerUid(uid)), _) => match auth::admit_local(&s, uid, req.headers()).await {
            Ok(a) => {
                let user = a.user.clone();
                req.extensions_mut().insert(a);
                user
            }
            Err(e) => return e.into_response(),
        },
        (None, None) => String::new(),
        (None, Some(token)) => match auth::authenticate(&s, token.clone()).await {
            Ok((user, session)) => {
                req.extensions_mut().insert(auth::Admitted {
                    credential: auth::Credential::Token(token),
                    user: user.clone(),
                    session,
                });
                user
            }
            Err(_) => String::new(),
        },
    };
    // A user's share is enforced once half the slots are taken: a single
    // user's burst may use what nobody else needs, and nobody can hold
    // more than half when others come.
    let (kind, share, busy) = if stream {
        ("stream", (s.limits.max_streams / 4).max(1), s.streams.load(Ordering::Acquire) >= s.limits.max_streams / 2)
    } else {
        (
            "request",
            (s.limits.max_in_flight / 4).max(1),
            s.in_flight.load(Ordering::Acquire) >= s.limits.max_in_flight / 2,
        )
    };
    let Some(share) = Share::take(&s.per_user, format!("{kind}:{user}"), share, busy) else {
        return ApiError::too_many(if stream { 5 } else { 1 }).into_response();
    };
    if stream {
        // A stream outlives this call: its handler keeps the slot for as
        // long as the stream lasts.
        req.extensions_mut().insert(HeldShare(Arc::new(share)));
        return next.run(req).await;
    }
    let n = s.in_flight.fetch_add(1, Ordering::AcqRel);
    let _guard = Decrement(Arc::clone(&s.in_flight));
    if n >= s.limits.max_in_flight {
        return ApiError::too_many(1).into_response();
    }
    // A command of the local command line (a verification, a compaction)
    // takes as long as its work: its caller is an OS user of this machine,
    // waiting for it; its slot still counts.
    if local.is_some() {
        return next.run(req).await;
    }
    match tokio::time::timeout(s.limits.request_timeout, next.run(req)).await {
        Ok(r) => r,
        Err(_) => ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            error::code::UNAVAILABLE,
            format!("the request took over {} s", s.limits.request_timeout.as_secs()),
        )
        .into_response(),
    }
}

/// A stream's slot among its user's share, for its handler to keep.
#[derive(Clone)]
pub(crate) struct HeldShare(#[allow(dead_code)] Arc<Share>);

/// One user's slot among their share, given back when dropped.
struct Share {
    map: Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>,
    key: String,
}

impl Share {
    fn take(
        map: &Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>>,
        key: String,
        limit: usize,
        enforce: bool,
    ) -> Option<Share> {
        let mut m = map.lock().unwrap_or_else(|e| e.into_inner());
        let n = m.entry(key.clone()).or_default();
        if enforce && *n >= limit {
            return None;
        }
        *n += 1;
        Some(Share { map: Arc::clone(map), key })
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.key);
            }
        }
    }
}

pub(crate) struct Decrement(pub(crate) Arc<AtomicUsize>);

impl Drop for Decrement {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An address bound (and a certificate read) but not yet served: bind
/// first, before opening the store or running anything, so that a port in
/// use or a bad certificate stops a start with nothing done.
pub struct Bound {
    listener: std::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: Limits,
}

/// Reads the certificate and key (if any) and binds `config.addr`.
pub fn bind(config: HttpConfig) -> Result<Bound, ServerError> {
    let tls = config.tls.as_ref().map(tls::acceptor).transpose()?;
    let bind_err = |source| ServerError::Bind { addr: config.addr.clone(), source };
    let listener = std::net::TcpListener::bind(&config.addr).map_err(bind_err)?;
    listener.set_nonblocking(true).map_err(bind_err)?;
    Ok(Bound { listener, tls, limits: config.limits })
}

impl Bound {
    /// The address bound.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves `engine` on this address only (no Unix socket): [`serve`].
    pub fn serve(self, engine: Engine, service_running: Arc<AtomicBool>) -> Result<Server, ServerError> {
        serve(engine, service_running, Some(self), Local::default())
    }
}

/// The Unix sockets through which the command line reaches the service
/// (docs/cli.md, "One data directory, many commands"): bound, with their
/// modes, by the command line; served here, the caller known from the
/// socket ([`auth::PeerUid`]).
#[derive(Default)]
pub struct Local {
    /// The sockets.
    pub listeners: Vec<std::os::unix::net::UnixListener>,
}

/// Serves `engine` on `tcp` (if any) and on the Unix sockets of `local`,
/// on a runtime of its own threads, until [`Server::stop`].
/// `service_running` is what `/healthz` reports.
pub fn serve(
    engine: Engine,
    service_running: Arc<AtomicBool>,
    tcp: Option<Bound>,
    local: Local,
) -> Result<Server, ServerError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("joblog-http")
        .enable_all()
        .build()
        .map_err(ServerError::Runtime)?;
    let (limits, tls) = match &tcp {
        Some(b) => (b.limits.clone(), b.tls.clone()),
        None => (Limits::default(), None),
    };
    let local_addr = tcp.as_ref().map(|b| b.listener.local_addr()).transpose().map_err(ServerError::Runtime)?;
    let (tcp, unix) = {
        let _enter = runtime.enter();
        let tcp = tcp.map(|b| TcpListener::from_std(b.listener)).transpose().map_err(ServerError::Runtime)?;
        let unix = local
            .listeners
            .into_iter()
            .map(|l| {
                l.set_nonblocking(true)?;
                tokio::net::UnixListener::from_std(l)
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(ServerError::Runtime)?;
        (tcp, unix)
    };
    let mut state = AppState::new(engine, service_running, limits);
    state.tls = tls.is_some();
    let limits = Arc::clone(&state.limits);
    let operations = Arc::clone(&state.operations);
    runtime.spawn(events::follow(state.clone()));
    let engine = state.engine.clone();
    let app = router(state);
    let (stop, stopped) = watch::channel(false);
    let thread = std::thread::Builder::new()
        .name("joblog-http".into())
        .spawn(move || {
            runtime.block_on(async {
                let mut loops = Vec::new();
                if let Some(tcp) = tcp {
                    let accept = accept_tcp(tcp, tls);
                    loops.push(tokio::spawn(serve_loop(accept, app.clone(), Arc::clone(&limits), stopped.clone())));
                }
                for l in unix {
                    let accept = accept_unix(l, engine.clone());
                    loops.push(tokio::spawn(serve_loop(accept, app.clone(), Arc::clone(&limits), stopped.clone())));
                }
                for l in loops {
                    let _ = l.await;
                }
            });
            // Bulk operations stop after the page in hand (each page is
            // one batch), so that the engine's handles they hold are let go.
            operations.stop_all();
            let deadline = Instant::now() + limits.shutdown_grace;
            while operations.running() > 0 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            // Connections still open after the grace are cut here.
            runtime.shutdown_timeout(Duration::from_millis(100));
        })
        .map_err(ServerError::Runtime)?;
    Ok(Server { local_addr, stop, thread: Some(thread) })
}

/// [`bind`] then [`Bound::serve`].
pub fn start(engine: Engine, service_running: Arc<AtomicBool>, config: HttpConfig) -> Result<Server, ServerError> {
    bind(config)?.serve(engine, service_running)
}

/// A connection ready for HTTP: its stream, and who is at the other end
/// when the kernel says so (a Unix socket).
enum Accepted {
    Tcp(tokio::net::TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>),
    Unix(tokio::net::UnixStream, u32),
}

type AcceptFn =
    Box<dyn FnMut() -> std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<Connecting>> + Send>> + Send>;
/// An accepted connection still to be made ready (its TLS handshake, its
/// first byte read): `None` when it turned out to be nothing to serve.
type Connecting = std::pin::Pin<Box<dyn std::future::Future<Output = Option<Accepted>> + Send>>;

fn accept_tcp(listener: TcpListener, tls: Option<tokio_rustls::TlsAcceptor>) -> AcceptFn {
    let listener = Arc::new(listener);
    Box::new(move || {
        let listener = Arc::clone(&listener);
        let tls = tls.clone();
        Box::pin(async move {
            let (tcp, _peer) = listener.accept().await?;
            let _ = tcp.set_nodelay(true);
            let ready: Connecting = match tls {
                None => Box::pin(async move { Some(Accepted::Tcp(tcp)) }),
                Some(acceptor) => {
                    Box::pin(async move { acceptor.accept(tcp).await.ok().map(|s| Accepted::Tls(Box::new(s))) })
                }
            };
            Ok(ready)
        })
    })
}

fn accept_unix(listener: tokio::net::UnixListener, engine: Engine) -> AcceptFn {
    let listener = Arc::new(listener);
    Box::new(move || {
        let listener = Arc::clone(&listener);
        let engine = engine.clone();
        Box::pin(async move {
            let (mut stream, _) = listener.accept().await?;
            let ready: Connecting = Box::pin(async move {
                // Who is calling, from the kernel; unknown: not served.
                let uid = stream.peer_cred().ok()?.uid();
                // An OS user nobody mapped is answered at once, before
                // anything is read: it cannot hold a connection at all.
                if let Err(refusal) = auth::local_peer_allowed(&engine, uid) {
                    refuse_at_once(&mut stream, &refusal.to_string()).await;
                    return None;
                }
                Some(Accepted::Unix(stream, uid))
            });
            Ok(ready)
        })
    })
}

/// Answers 403 with `message` (the platform's error body) without
/// reading the request, and closes.
async fn refuse_at_once(stream: &mut tokio::net::UnixStream, message: &str) {
    use tokio::io::AsyncWriteExt;
    let body = serde_json::json!({"error": {"code": error::code::DENIED, "message": message}}).to_string();
    let answer = format!(
        "HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(answer.as_bytes())).await;
    let _ = stream.shutdown().await;
}

/// Accepts connections until `stopped`, each served as its own task,
/// with a time limit on each request head; then gives those still open
/// the shutdown grace.
async fn serve_loop(mut accept: AcceptFn, app: Router, limits: Arc<Limits>, mut stopped: watch::Receiver<bool>) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let connecting = tokio::select! {
            r = accept() => match r {
                Ok(c) => c,
                // Out of descriptors and the like: wait a moment, go on.
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopped.changed() => break,
        };
        let app = app.clone();
        let limits = Arc::clone(&limits);
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            // A TLS handshake or a first byte that never comes does not
            // hold a task for ever.
            let Ok(Some(conn)) = tokio::time::timeout(limits.head_timeout, connecting).await else {
                return;
            };
            let peer = match &conn {
                Accepted::Unix(_, uid) => Some(auth::PeerUid(*uid)),
                _ => None,
            };
            let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let mut req = req.map(axum::body::Body::new);
                // Set by the server, whatever the request says.
                req.extensions_mut().remove::<auth::PeerUid>();
                if let Some(p) = peer {
                    req.extensions_mut().insert(p);
                }
                tower::ServiceExt::oneshot(app.clone(), req)
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(TokioTimer::new()).header_read_timeout(limits.head_timeout);
            match conn {
                Accepted::Tcp(s) => {
                    let _ = watcher.watch(builder.serve_connection(TokioIo::new(s), service)).await;
                }
                Accepted::Tls(s) => {
                    let _ = watcher.watch(builder.serve_connection(TokioIo::new(s), service)).await;
                }
                Accepted::Unix(s, _) => {
                    let _ = watcher.watch(builder.serve_connection(TokioIo::new(s), service)).await;
                }
            }
        });
    }
    drop(accept);
    let _ = tokio::time::timeout(limits.shutdown_grace, graceful.shutdown()).await;
}

mod tls {
    use std::sync::Arc;

    use super::{ServerError, TlsFiles};

    /// A TLS acceptor from PEM files, with the ring provider.
    pub fn acceptor(files: &TlsFiles) -> Result<tokio_rustls::TlsAcceptor, ServerError> {
        let read = |p: &std::path::Path| {
            std::fs::read(p).map_err(|e| ServerError::Tls(format!("cannot read {}: {e}", p.display())))
        };
        let cert_pem = read(&files.cert)?;
        let key_pem = read(&files.key)?;
        let certs = rustls_pemfile::certs(&mut cert_pem.as_slice())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ServerError::Tls(format!("{}: {e}", files.cert.display())))?;
        if certs.is_empty() {
            return Err(ServerError::Tls(format!("{} holds no PEM certificate", files.cert.display())));
        }
        let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
            .map_err(|e| ServerError::Tls(format!("{}: {e}", files.key.display())))?
            .ok_or_else(|| ServerError::Tls(format!("{} holds no PEM private key", files.key.display())))?;
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ServerError::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| ServerError::Tls(format!("the certificate and key do not make a TLS identity: {e}")))?;
        Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    }
}
