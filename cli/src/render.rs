//! Text from the native API's JSON: what each command prints without
//! `--json`, the same whether the command opened the store itself or the
//! service carried it out (`remote`). With `--json` the JSON is printed as
//! it is (docs/cli.md).
//!
//! Each function takes the JSON the server crate's compute function
//! returned (`joblog_server::native::admin`) and nothing else: the text
//! holds no fact the JSON does not.

use serde_json::Value;

use super::args::{Command, ConfigCmd, RoleCmd, TokenCmd, UnitCmd, UserCmd, WorkflowCmd};
use super::output::table;

/// The text `cmd` prints for its answer `v`, for each command the native
/// API serves (`remote::call_for`); `None` for the others.
pub fn text(cmd: &Command, v: &Value) -> Option<String> {
    Some(match cmd {
        Command::User(UserCmd::Add { .. }) => user_added(v),
        Command::User(UserCmd::Map { .. }) => user_mapped(v),
        Command::User(UserCmd::Deactivate { .. }) => user_deactivated(v),
        Command::User(UserCmd::Reactivate { .. }) => user_reactivated(v),
        Command::User(UserCmd::List) => users(v),
        Command::Role(RoleCmd::Add { .. }) => role_added(v),
        Command::BusinessUnit(UnitCmd::Add { .. }) => business_unit_added(v),
        Command::Workflow(WorkflowCmd::Add { .. }) => workflow_added(v),
        Command::Workflow(WorkflowCmd::SetOwner { .. }) => workflow_owner_set(v),
        Command::Workflow(WorkflowCmd::List) => workflows(v),
        Command::Token(TokenCmd::Create { .. }) => token_created(v),
        Command::Token(TokenCmd::List) => tokens(v),
        Command::Token(TokenCmd::Revoke { .. }) => token_revoked(v),
        Command::Config(ConfigCmd::Show { until }) => config(v, until.as_deref()),
        Command::Config(ConfigCmd::Set { .. } | ConfigCmd::Unset { .. }) => config_set(v),
        _ => return None,
    })
}

/// A string field as it is; any other value as JSON (`null` for none).
fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A string field, or `""` when null.
fn or_empty(v: &Value) -> String {
    if v.is_null() {
        String::new()
    } else {
        s(v)
    }
}

/// The items of an array (none for anything else).
fn items(v: &Value) -> &[Value] {
    v.as_array().map_or(&[], Vec::as_slice)
}

/// A list of strings joined with `, `.
fn joined(v: &Value) -> String {
    items(v).iter().map(s).collect::<Vec<_>>().join(", ")
}

/// `user add`.
pub fn user_added(v: &Value) -> String {
    format!("user {} added to {} as {}", s(&v["name"]), s(&v["business_unit"]), joined(&v["roles"]))
}

/// `user map`.
pub fn user_mapped(v: &Value) -> String {
    let name = s(&v["name"]);
    match v["os_uid"].as_u64() {
        Some(u) => format!("OS user {u} now acts as {name} (and only as {name}) through the service"),
        None => format!("{name} is no longer mapped to an OS user"),
    }
}

/// `user deactivate`.
pub fn user_deactivated(v: &Value) -> String {
    format!("user {} deactivated", s(&v["name"]))
}

/// `user reactivate`.
pub fn user_reactivated(v: &Value) -> String {
    format!("user {} reactivated", s(&v["name"]))
}

/// `user list`.
pub fn users(v: &Value) -> String {
    let rows: Vec<Vec<String>> = items(v)
        .iter()
        .map(|u| {
            vec![
                s(&u["name"]),
                s(&u["business_unit"]),
                joined(&u["roles"]),
                if u["active"].as_bool() == Some(true) { "yes" } else { "no" }.into(),
            ]
        })
        .collect();
    table(&["User", "Business Unit", "Roles", "Active"], &rows)
}

/// `role add`.
pub fn role_added(v: &Value) -> String {
    format!("role {} added", s(&v["role"]))
}

/// `business-unit add`.
pub fn business_unit_added(v: &Value) -> String {
    format!("business unit {} added under {}", s(&v["business_unit"]), s(&v["parent"]))
}

/// `workflow add`.
pub fn workflow_added(v: &Value) -> String {
    format!("workflow {} added, owned by {}", s(&v["id"]), s(&v["owner"]))
}

/// `workflow set-owner`.
pub fn workflow_owner_set(v: &Value) -> String {
    format!("workflow {} is now owned by {}", s(&v["id"]), s(&v["owner"]))
}

/// `workflow list`.
pub fn workflows(v: &Value) -> String {
    let rows: Vec<Vec<String>> = items(v).iter().map(|w| vec![s(&w["id"]), s(&w["name"]), s(&w["owner"])]).collect();
    table(&["Workflow", "Name", "Owner"], &rows)
}

/// `token create`: the token alone on the last line, for `| tail -n 1`.
pub fn token_created(v: &Value) -> String {
    let expires = if v["expires"].is_null() { "never".to_string() } else { s(&v["expires"]) };
    format!(
        "token {} for {}, expires {expires}; shown once (joblog keeps only its hash):\n{}",
        s(&v["id"]),
        s(&v["user"]),
        s(&v["token"])
    )
}

/// `token list`.
pub fn tokens(v: &Value) -> String {
    let rows: Vec<Vec<String>> = items(v)
        .iter()
        .map(|t| {
            vec![
                s(&t["id"]),
                s(&t["user"]),
                or_empty(&t["name"]),
                s(&t["created"]),
                if t["expires"].is_null() { "never".to_string() } else { s(&t["expires"]) },
                s(&t["status"]),
            ]
        })
        .collect();
    table(&["Id", "User", "Name", "Created", "Expires", "Status"], &rows)
}

/// `token revoke`.
pub fn token_revoked(v: &Value) -> String {
    format!("token {} revoked", s(&v["id"]))
}

/// A number, or `none`.
fn number_or_none(v: &Value) -> String {
    v.as_u64().map_or("none".to_string(), |n| n.to_string())
}

/// The policy's keys (`config show --json`, `policy_json`) as a table:
/// each key with its value in force, marked when the store sets it.
pub fn policy_table(v: &Value) -> String {
    let rows: Vec<Vec<String>> = items(v)
        .iter()
        .map(|k| {
            vec![
                s(&k["key"]),
                number_or_none(&k["value"]),
                if k["set"].as_bool() == Some(true) { "set" } else { "default" }.to_string(),
                number_or_none(&k["default"]),
                format!("{}..={} {}", s(&k["min"]), s(&k["max"]), s(&k["unit"])),
            ]
        })
        .collect();
    table(&["Key", "In force", "From", "Default", "Range"], &rows)
}

/// `config show [--until T]`: `until` as the command was given it.
pub fn config(v: &Value, until: Option<&str>) -> String {
    let header = until.map(|t| format!("as of {t} (replayed from the log):\n")).unwrap_or_default();
    header + &policy_table(v)
}

/// `config set` and `config unset`.
pub fn config_set(v: &Value) -> String {
    let key = s(&v["key"]);
    let shown = number_or_none(&v["value"]);
    match (v["changed"].as_bool() == Some(true), v["set"].as_bool() == Some(true)) {
        (false, _) => format!("{key} is already {shown}: nothing changed"),
        (true, true) => {
            // The key's unit and default: the fixed table of keys.
            let (unit, default) = joblog::domain::policy_key(&key)
                .map(|k| (k.unit, k.default.map_or("none".into(), |d| d.to_string())))
                .unwrap_or(("", "none".into()));
            format!("{key} set to {shown} {unit} (default {default})")
        }
        (true, false) => format!("{key} back to its default: {shown}"),
    }
}
