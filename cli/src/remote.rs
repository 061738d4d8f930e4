//! The command line as a client of the native API (docs/http.md, "The
//! native API"): while `joblog run` holds the data directory, a command is
//! carried out by the service as an HTTP request on its Unix socket
//! (`DATA/joblog.sock`, or `--socket`), and the JSON answer is rendered
//! here, exactly as the command prints it when it opens the store itself
//! (docs/cli.md). The service knows who is calling from the socket
//! (`SO_PEERCRED`), never from what the request says alone: the request
//! only names the user the directory's owner acts as (`--as`).
//!
//! [`call_for`] maps each command to its request ([`run`]: `list`, a page
//! at a time, and `import`, the file streamed, have their own).

use std::os::unix::net::UnixStream;

use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde::Serialize;
use serde_json::{json, Value};

use joblog_server::native::store;

use super::args::{
    ActArgs, BulkDeleteCmd, Command, ConfigCmd, Filters, Global, ListArgs, RoleCmd, TokenCmd, UnitCmd, UserCmd,
    WorkflowCmd,
};
use super::exec::{config_value, map_args, parse_token_id, role_args, token_args, user_args};
use super::output::pretty;
use super::{exec, render, Failure, Output};
use joblog_server::native::admin;

/// One request of the native API.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// `GET`, `POST`, `PUT` or `DELETE`.
    pub method: &'static str,
    /// The path and query, percent-encoded (`/api/v1/jobs?state=ready`).
    pub path: String,
    /// The JSON body, if any.
    pub body: Option<Value>,
}

impl Call {
    fn new(method: &'static str, path: String) -> Self {
        Call { method, path, body: None }
    }

    fn with(method: &'static str, path: String, body: &impl Serialize) -> Result<Self, Failure> {
        let body = serde_json::to_value(body).map_err(|e| Failure {
            code: 1,
            message: format!("the request's body: {e}"),
            stdout: String::new(),
        })?;
        Ok(Call { method, path, body: Some(body) })
    }
}

/// `s` as one path segment or query value: every byte but the unreserved
/// ones (RFC 3986: letters, digits, `-._~`) percent-encoded, so a name
/// holding `/`, `?`, `#`, `%`, spaces or anything else stays one segment.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A POST of `body`.
fn post(path: String, body: Value) -> Call {
    Call { method: "POST", path, body: Some(body) }
}

/// A query string (`?a=b&c=d`, or empty) of the given pairs.
fn query(pairs: &[(&str, String)]) -> String {
    let q = form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
    if q.is_empty() {
        q
    } else {
        format!("?{q}")
    }
}

/// The command line's filters as the native API's query parameters
/// (checked here first, as when the command opens the store itself).
fn filter_pairs(f: &Filters) -> Result<Vec<(&'static str, String)>, Failure> {
    exec::filter(f)?;
    let all = [
        ("type", &f.operationtype),
        ("state", &f.state),
        ("status", &f.status),
        ("workflow", &f.workflow),
        ("regarding", &f.regarding),
        ("owner", &f.owner),
        ("created_before", &f.created_before),
        ("created_after", &f.created_after),
        ("completed_before", &f.completed_before),
    ];
    Ok(all.into_iter().filter_map(|(k, v)| v.clone().map(|v| (k, v))).collect())
}

/// The request that carries out `cmd`, or `None` for a command the native
/// API does not serve (yet): see the module's comment. (`list` is served
/// by [`list`], a page at a time.)
pub fn call_for(cmd: &Command) -> Result<Option<Call>, Failure> {
    let job = |id: &str| -> Result<String, Failure> { Ok(format!("/api/v1/jobs/{}", exec::parse_id(id)?)) };
    let users = "/api/v1/users";
    Ok(Some(match cmd {
        Command::User(UserCmd::Add { name, roles, business_unit, os_user }) => {
            Call::with("POST", users.into(), &user_args(name, roles, business_unit, os_user)?)?
        }
        Command::User(UserCmd::Map { name, os_user, none }) => {
            Call::with("PUT", format!("{users}/{}/os-user", encode(name)), &map_args(os_user, *none)?)?
        }
        Command::User(UserCmd::Deactivate { name }) => {
            Call::new("POST", format!("{users}/{}/deactivate", encode(name)))
        }
        Command::User(UserCmd::Reactivate { name }) => {
            Call::new("POST", format!("{users}/{}/reactivate", encode(name)))
        }
        Command::User(UserCmd::List) => Call::new("GET", users.into()),
        Command::Role(RoleCmd::Add { name, privileges }) => {
            Call::with("POST", "/api/v1/roles".into(), &role_args(name, privileges)?)?
        }
        Command::BusinessUnit(UnitCmd::Add { name, parent }) => Call::with(
            "POST",
            "/api/v1/business-units".into(),
            &admin::AddBusinessUnit { name: name.clone(), parent: parent.clone() },
        )?,
        Command::Workflow(WorkflowCmd::Add { id, name, owner }) => Call::with(
            "POST",
            "/api/v1/workflows".into(),
            &admin::AddWorkflow { id: id.clone(), name: name.clone(), owner: owner.clone() },
        )?,
        Command::Workflow(WorkflowCmd::SetOwner { id, owner }) => Call::with(
            "PUT",
            format!("/api/v1/workflows/{}/owner", encode(id)),
            &admin::SetOwner { owner: owner.clone() },
        )?,
        Command::Workflow(WorkflowCmd::List) => Call::new("GET", "/api/v1/workflows".into()),
        Command::Token(TokenCmd::Create { owner, name, expires_in }) => {
            Call::with("POST", "/api/v1/tokens".into(), &token_args(owner, name, *expires_in))?
        }
        Command::Token(TokenCmd::List) => Call::new("GET", "/api/v1/tokens".into()),
        Command::Token(TokenCmd::Revoke { id }) => {
            Call::new("DELETE", format!("/api/v1/tokens/{}", parse_token_id(id)?))
        }
        Command::Config(ConfigCmd::Show { until: None }) => Call::new("GET", "/api/v1/config".into()),
        Command::Config(ConfigCmd::Show { until: Some(t) }) => {
            Call::new("GET", format!("/api/v1/config?until={}", encode(t)))
        }
        Command::Config(ConfigCmd::Set { key, value }) => Call::with(
            "PUT",
            format!("/api/v1/config/{}", encode(key)),
            &admin::SetConfig { value: config_value(key, value)? },
        )?,
        Command::Config(ConfigCmd::Unset { key }) => Call::new("DELETE", format!("/api/v1/config/{}", encode(key))),
        Command::Show { id, history: false } => Call::new("GET", job(id)?),
        Command::Show { id, history: true } => Call::new("GET", format!("{}/history", job(id)?)),
        Command::Submit(a) => post(
            "/api/v1/jobs".into(),
            json!({
                "name": a.name, "type": a.operationtype, "workflow": a.workflow, "regarding": a.regarding,
                "owner": a.owner, "postponeuntil": a.postpone_until, "dependencytoken": a.dependency_token,
                "command": a.command, "timeout_secs": a.timeout, "external_handler": a.external_handler,
            }),
        ),
        Command::Cancel(a) => act(a, "cancel", None)?,
        Command::Pause(a) => act(a, "pause", None)?,
        Command::Resume(a) => act(a, "resume", None)?,
        Command::Postpone { act: a, until } => act(a, "postpone", Some(until))?,
        Command::Resubmit { id, owner } => post(format!("{}/resubmit", job(id)?), json!({"owner": owner})),
        Command::Reassign { workflow, from, to } => {
            post(format!("/api/v1/workflows/{}/reassign", encode(workflow)), json!({"from": from, "to": to}))
        }
        Command::Delete { ids } => {
            let ids: Vec<String> = exec::delete_ids(ids)?.iter().map(uuid::Uuid::to_string).collect();
            post("/api/v1/jobs/delete".into(), json!({"ids": ids}))
        }
        Command::Stats => Call::new("GET", "/api/v1/stats".into()),
        Command::Replay { until, filters, limit } => {
            let mut q = filter_pairs(filters)?;
            if let Some(t) = until {
                joblog::domain::Timestamp::parse(t).map_err(Failure::from)?;
                q.push(("until", t.clone()));
            }
            q.push(("limit", limit.unwrap_or(exec::DEFAULT_LIMIT).to_string()));
            Call::new("GET", format!("/api/v1/replay{}", query(&q)))
        }
        Command::Verify => post("/api/v1/verify".into(), json!({})),
        Command::Compact => post("/api/v1/compact".into(), json!({})),
        Command::BulkDelete(BulkDeleteCmd::Now { criteria, limit }) => post(
            "/api/v1/bulk-deletions/now".into(),
            json!(store::DeleteNow { criteria: exec::criteria(criteria), limit: *limit }),
        ),
        Command::BulkDelete(BulkDeleteCmd::Create { name, criteria, start, recurrence }) => post(
            "/api/v1/bulk-deletions".into(),
            json!(store::NewBulkDeletion {
                name: name.clone(),
                criteria: exec::criteria(criteria),
                start: start.clone(),
                recurrence: recurrence.clone(),
            }),
        ),
        Command::BulkDelete(BulkDeleteCmd::List) => Call::new("GET", "/api/v1/bulk-deletions".into()),
        _ => return Ok(None),
    }))
}

/// An action on one job, or on every job matching the filters (one
/// atomic batch, as the command line does it on its own).
fn act(a: &ActArgs, action: &str, until: Option<&str>) -> Result<Call, Failure> {
    match exec::act_target(a)? {
        exec::Target::One(id) => Ok(post(format!("/api/v1/jobs/{id}/{action}"), json!({"until": until}))),
        exec::Target::Matching(_) => {
            let filter: serde_json::Map<String, Value> =
                filter_pairs(&a.filters)?.into_iter().map(|(k, v)| (k.to_string(), Value::String(v))).collect();
            Ok(post(
                "/api/v1/jobs/act".into(),
                json!({"action": action, "until": until, "dry_run": a.dry_run, "filter": filter}),
            ))
        }
    }
}

/// The largest page one request asks for (the native API's most).
const PAGE: usize = joblog_server::native::MAX_LIMIT;

/// Carries out `cmd` through the service on `conn`, the
/// socket at `path`.
pub fn run(conn: UnixStream, path: &std::path::Path, g: &Global, cmd: &Command) -> Output {
    if g.now.is_some() {
        return Err(Failure::usage(
            "--now cannot be used while `joblog run` serves this directory (the service runs on its own clock)",
        ));
    }
    let explicit = super::server::user_explicit_here();
    let client = Client { conn: Some(conn), path: path.to_path_buf(), g, explicit };
    match cmd {
        Command::List(a) => return list(client, g.json, a),
        Command::Import { file } => {
            let v = client.import(file, g.json)?;
            return render::output(cmd, v, g.json);
        }
        _ => {}
    }
    let call = call_for(cmd)?.ok_or_else(|| Failure::usage("this command is not served by the native API"))?;
    client.send_one(&call).and_then(|v| render::output(cmd, v, g.json))
}

/// `list` through the service: as many pages as `--limit` asks for, each
/// at most [`PAGE`] jobs, following the API's cursor.
fn list(mut client: Client<'_>, json_out: bool, a: &ListArgs) -> Output {
    let mut pairs = filter_pairs(&a.filters)?;
    if a.count {
        pairs.push(("limit", "1".into()));
        pairs.push(("count", "true".into()));
        let v = client.send(&Call::new("GET", format!("/api/v1/jobs{}", query(&pairs))))?;
        let n = v["count"].as_u64().unwrap_or_default();
        return Ok(if json_out { pretty(&json!({"count": n})) } else { format!("{n}") });
    }
    let mut want = a.limit.unwrap_or(exec::DEFAULT_LIMIT);
    let mut cursor = a.after.clone();
    if let Some(c) = &cursor {
        c.parse::<joblog::Cursor>().map_err(|_| Failure::usage(format!("not a cursor: {c:?}")))?;
    }
    let mut jobs = Vec::new();
    loop {
        let mut q = pairs.clone();
        q.push(("limit", want.min(PAGE).to_string()));
        if let Some(c) = &cursor {
            q.push(("cursor", c.clone()));
        }
        let v = client.send(&Call::new("GET", format!("/api/v1/jobs{}", query(&q))))?;
        let page = v["jobs"].as_array().cloned().unwrap_or_default();
        want = want.saturating_sub(page.len());
        jobs.extend(page);
        cursor = v["next"].as_str().map(str::to_string);
        if want == 0 || cursor.is_none() {
            break;
        }
    }
    let (out, note) = render::list(&jobs, cursor.as_deref(), json_out);
    if let Some(note) = note {
        say!("{note}");
    }
    Ok(out)
}

/// The service's socket: the connection the command found it answering
/// on, then a new one for each further request (a long `list`'s pages).
struct Client<'a> {
    conn: Option<UnixStream>,
    path: std::path::PathBuf,
    g: &'a Global,
    explicit: bool,
}

impl Client<'_> {
    fn send_one(mut self, call: &Call) -> Result<Value, Failure> {
        self.send(call)
    }

    /// Sends `call` and returns the JSON answer, or the failure it says.
    fn send(&mut self, call: &Call) -> Result<Value, Failure> {
        let json = call.body.as_ref().map(|b| serde_json::to_vec(b).unwrap_or_default());
        let body = match json {
            Some(bytes) => Full::new(Bytes::from(bytes)).map_err(|never| match never {}).boxed(),
            None => Full::new(Bytes::new()).map_err(|never| match never {}).boxed(),
        };
        self.exchange(call, body, call.body.is_some()).map_err(|v| failure(&v))
    }

    /// One request with `body`: the JSON answer, or the error answer's
    /// JSON (one made here when the service could not be reached).
    fn exchange(&mut self, call: &Call, body: BoxBody<Bytes, std::io::Error>, json: bool) -> Result<Value, Value> {
        let lost = |e: String| json!({"error": {"code": "", "message": format!("the service on {} stopped answering: {e}", self.path.display())}});
        let conn = match self.conn.take() {
            Some(c) => c,
            None => super::server::connect(&self.path).map_err(|e| lost(e.to_string()))?,
        };
        let mut req = hyper::Request::builder()
            .method(call.method)
            .uri(&call.path)
            .header(hyper::header::HOST, "joblog")
            .header(joblog_server::auth::USER_HEADER, &self.g.user)
            .header(joblog_server::auth::USER_EXPLICIT_HEADER, if self.explicit { "true" } else { "false" });
        if json {
            req = req.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let req = req.body(body).map_err(|e| lost(e.to_string()))?;
        let (status, bytes) = exchange(conn, req).map_err(&lost)?;
        let v: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).map_err(|e| lost(format!("an answer that is not JSON ({e})")))?
        };
        if status.is_success() {
            Ok(v)
        } else {
            Err(v)
        }
    }

    /// `import FILE` through the service: the client reads the file
    /// (relative to its own directory, with its own permissions) and
    /// streams it as the body of `POST /api/v1/jobs/import`.
    fn import(mut self, file: &std::path::Path, json_out: bool) -> Result<Value, Failure> {
        let unreadable = |e: std::io::Error| Failure {
            code: 1,
            message: format!("cannot read {}: {e}", file.display()),
            stdout: String::new(),
        };
        let f = std::fs::File::open(file).map_err(unreadable)?;
        let len = f.metadata().map_err(unreadable)?.len();
        let shown = file.display().to_string();
        let call = Call::new("POST", format!("/api/v1/jobs/import{}", query(&[("name", shown)])));
        self.exchange(&call, FileBody { file: f, left: len }.boxed(), false).map_err(|v| {
            let mut f = failure(&v);
            if let Some(errors) = v["error"]["details"]["errors"].as_array() {
                let errors: Vec<String> = errors.iter().filter_map(Value::as_str).map(str::to_string).collect();
                f.stdout = if json_out {
                    pretty(&joblog_server::import::bad_lines_json(&errors))
                } else {
                    errors.join("\n") + "\n"
                };
            }
            f
        })
    }
}

/// A file sent as a request body, a chunk at a time (never whole in
/// memory: an import takes up to 4 GiB).
struct FileBody {
    file: std::fs::File,
    left: u64,
}

impl hyper::body::Body for FileBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, std::io::Error>>> {
        use std::io::Read;
        if self.left == 0 {
            return std::task::Poll::Ready(None);
        }
        // A local file: a read of a chunk does not wait on anybody.
        let want = usize::try_from(self.left.min(256 * 1024)).unwrap_or(256 * 1024);
        let mut buf = vec![0u8; want];
        let n = match self.file.read(&mut buf) {
            Ok(0) => {
                return std::task::Poll::Ready(Some(Err(std::io::Error::other(
                    "the file shrank while it was being sent",
                ))))
            }
            Ok(n) => n,
            Err(e) => return std::task::Poll::Ready(Some(Err(e))),
        };
        buf.truncate(n);
        self.left -= n as u64;
        std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(Bytes::from(buf)))))
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.left)
    }
}

/// The failure an error answer says (docs/http.md, "Errors"), with the
/// command line's exit code for its kind (docs/cli.md, "Exit codes").
fn failure(v: &Value) -> Failure {
    use joblog_server::error::code;
    let e = &v["error"];
    let exit = match e["code"].as_str().unwrap_or_default() {
        c if c == code::REFUSED => 4,
        c if c == code::DENIED || c == code::UNAUTHENTICATED => 5,
        c if c == code::NOT_FOUND => 3,
        c if c == code::BAD_REQUEST || c == code::PRECONDITION || c == code::TOO_LARGE || c == code::METHOD => 2,
        _ => 1,
    };
    let message = e["message"].as_str().unwrap_or("the service failed without saying why").to_string();
    let message = if message.contains("(corrupt)") && !message.contains(super::DAMAGED_HINT) {
        format!("{message}; {}", super::DAMAGED_HINT)
    } else {
        message
    };
    Failure { code: exit, message, stdout: String::new() }
}

/// One HTTP/1.1 exchange on `conn`: the answer's status and body.
fn exchange(
    conn: UnixStream,
    req: hyper::Request<BoxBody<Bytes, std::io::Error>>,
) -> Result<(hyper::StatusCode, Bytes), String> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_io().build().map_err(|e| e.to_string())?;
    rt.block_on(async move {
        conn.set_nonblocking(true).map_err(|e| e.to_string())?;
        let conn = tokio::net::UnixStream::from_std(conn).map_err(|e| e.to_string())?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(conn))
            .await
            .map_err(|e| e.to_string())?;
        let driver = tokio::spawn(connection);
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status();
        let body = resp.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
        driver.abort();
        Ok((status, body))
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use serde_json::json;

    use super::*;
    use crate::args::Cli;

    fn call(argv: &[&str]) -> Option<Call> {
        let cli = Cli::try_parse_from(std::iter::once("joblog").chain(argv.iter().copied())).unwrap();
        call_for(&cli.command).unwrap()
    }

    fn check(argv: &[&str], method: &str, path: &str, body: Option<Value>) {
        let c = call(argv).unwrap_or_else(|| panic!("{argv:?}: no request"));
        assert_eq!((c.method, c.path.as_str(), c.body), (method, path, body), "{argv:?}");
    }

    #[test]
    fn each_administration_command_is_its_route() {
        check(
            &["user", "add", "alice", "--role", "a", "--role", "b", "--business-unit", "sales", "--os-user", "1234"],
            "POST",
            "/api/v1/users",
            Some(json!({"name": "alice", "business_unit": "sales", "roles": ["a", "b"], "os_uid": 1234})),
        );
        check(
            &["user", "add", "bob"],
            "POST",
            "/api/v1/users",
            Some(json!({"name": "bob", "business_unit": "root", "roles": []})),
        );
        check(
            &["user", "map", "a/b c", "--os-user", "7"],
            "PUT",
            "/api/v1/users/a%2Fb%20c/os-user",
            Some(json!({"os_uid": 7})),
        );
        check(&["user", "map", "alice", "--none"], "PUT", "/api/v1/users/alice/os-user", Some(json!({"os_uid": null})));
        check(&["user", "deactivate", "x?y#z"], "POST", "/api/v1/users/x%3Fy%23z/deactivate", None);
        check(&["user", "reactivate", ".."], "POST", "/api/v1/users/../reactivate", None);
        check(&["user", "list"], "GET", "/api/v1/users", None);
        check(
            &["role", "add", "auditor", "--privilege", "read:organization", "--privilege", "write:user"],
            "POST",
            "/api/v1/roles",
            Some(json!({"name": "auditor", "privileges": [
                {"privilege": "read", "depth": "organization"}, {"privilege": "write", "depth": "user"}]})),
        );
        check(
            &["business-unit", "add", "sales"],
            "POST",
            "/api/v1/business-units",
            Some(json!({"name": "sales", "parent": "root"})),
        );
        check(&["workflow", "add", "w"], "POST", "/api/v1/workflows", Some(json!({"id": "w"})));
        check(
            &["workflow", "add", "w", "--name", "W", "--owner", "bob"],
            "POST",
            "/api/v1/workflows",
            Some(json!({"id": "w", "name": "W", "owner": "bob"})),
        );
        check(
            &["workflow", "set-owner", "w%1", "bob"],
            "PUT",
            "/api/v1/workflows/w%251/owner",
            Some(json!({"owner": "bob"})),
        );
        check(&["workflow", "list"], "GET", "/api/v1/workflows", None);
        check(
            &["token", "create", "alice", "--name", "ci", "--expires-in", "30"],
            "POST",
            "/api/v1/tokens",
            Some(json!({"user": "alice", "name": "ci", "expires_in_days": 30})),
        );
        check(&["token", "create", "alice"], "POST", "/api/v1/tokens", Some(json!({"user": "alice"})));
        check(&["token", "list"], "GET", "/api/v1/tokens", None);
        let id = "0194a000-0000-7000-8000-000000000001";
        check(&["token", "revoke", id], "DELETE", &format!("/api/v1/tokens/{id}"), None);
        check(&["config", "show"], "GET", "/api/v1/config", None);
        check(
            &["config", "show", "--until", "2026-01-31T00:00:00+01:00"],
            "GET",
            "/api/v1/config?until=2026-01-31T00%3A00%3A00%2B01%3A00",
            None,
        );
        check(
            &["config", "set", "backoff.threshold", "5"],
            "PUT",
            "/api/v1/config/backoff.threshold",
            Some(json!({"value": 5})),
        );
        check(&["config", "unset", "backoff.threshold"], "DELETE", "/api/v1/config/backoff.threshold", None);
    }

    #[test]
    fn what_the_arguments_show_wrong_is_refused_before_any_request() {
        for argv in [
            &["role", "add", "r", "--privilege", "read"][..],
            &["token", "revoke", "not-an-id"],
            &["config", "set", "backoff.threshold", "five"],
            &["config", "set", "no.such.key", "5"],
        ] {
            let cli = Cli::try_parse_from(std::iter::once("joblog").chain(argv.iter().copied())).unwrap();
            let e = call_for(&cli.command).expect_err(&format!("{argv:?}"));
            assert_eq!(e.code, 2, "{argv:?}: {}", e.message);
        }
    }

    #[test]
    fn job_and_store_commands_are_their_routes() {
        let id = "0194a000-0000-7000-8000-000000000001";
        check(&["show", id], "GET", &format!("/api/v1/jobs/{id}"), None);
        check(&["show", id, "--history"], "GET", &format!("/api/v1/jobs/{id}/history"), None);
        check(&["cancel", id], "POST", &format!("/api/v1/jobs/{id}/cancel"), Some(json!({"until": null})));
        check(
            &["pause", "--all-matching", "--state", "locked", "--dry-run"],
            "POST",
            "/api/v1/jobs/act",
            Some(json!({"action": "pause", "until": null, "dry_run": true, "filter": {"state": "locked"}})),
        );
        check(&["stats"], "GET", "/api/v1/stats", None);
        check(&["replay", "--status", "failed"], "GET", "/api/v1/replay?status=failed&limit=100", None);
        check(&["bulk-delete", "list"], "GET", "/api/v1/bulk-deletions", None);
        check(
            &["reassign", "--workflow", "w/1", "--from", "a", "--to", "b"],
            "POST",
            "/api/v1/workflows/w%2F1/reassign",
            Some(json!({"from": "a", "to": "b"})),
        );
        assert_eq!(call(&["list"]), None, "list is paged by `list`, not one request");
    }

    #[test]
    fn encoding_keeps_unreserved_bytes_only() {
        assert_eq!(encode("aZ09-._~"), "aZ09-._~");
        assert_eq!(encode("a b/é%"), "a%20b%2F%C3%A9%25");
    }
}
