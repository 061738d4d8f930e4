//! The command line as a client of the native API (docs/http.md, "The
//! native API"): while `joblog run` holds the data directory, a command is
//! carried out by the service as an HTTP request on its Unix socket
//! (`DATA/joblog.sock`, or `--socket`), and the JSON answer is rendered
//! here, exactly as the command prints it when it opens the store itself
//! (docs/cli.md). The service knows who is calling from the socket
//! (`SO_PEERCRED`), never from what the request says alone.
//!
//! [`call_for`] maps each command to its request; a command without one is
//! still forwarded as its arguments (`server::forward_on`).

// Wired to the socket by the transport (in progress); until then unused.
#![allow(dead_code)]

use serde::Serialize;
use serde_json::Value;

use super::args::{Command, ConfigCmd, RoleCmd, TokenCmd, UnitCmd, UserCmd, WorkflowCmd};
use super::exec::{config_value, map_args, parse_token_id, role_args, token_args, user_args};
use super::Failure;
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

/// The request that carries out `cmd`, or `None` for a command the native
/// API does not serve (yet): see the module's comment. What the arguments
/// alone show to be wrong is refused here, before anything is sent.
pub fn call_for(cmd: &Command) -> Result<Option<Call>, Failure> {
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
        _ => return Ok(None),
    }))
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
    fn job_commands_are_not_yet_requests() {
        assert_eq!(call(&["list"]), None);
        assert_eq!(call(&["stats"]), None);
    }

    #[test]
    fn encoding_keeps_unreserved_bytes_only() {
        assert_eq!(encode("aZ09-._~"), "aZ09-._~");
        assert_eq!(encode("a b/é%"), "a%20b%2F%C3%A9%25");
    }
}
