//! Administration in the native API (docs/http.md, "Administration"):
//! users, roles, business units, workflow definitions, bearer tokens and
//! the store's policy.
//!
//! Each command is computed once, here: a synchronous function on an
//! engine and the acting user's session that returns exactly the JSON
//! `joblog --json …` prints (docs/cli.md). The command line calls these
//! functions on the store it opened and renders their JSON as text; the
//! routes below call them for a caller over HTTP. Every privilege is the
//! engine's check, through the session; a refused call changes nothing.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use joblog::domain::{Depth, DomainError, Privilege, Role, Timestamp, WorkflowDefinition};
use joblog::{Engine, Error, Session};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use super::{path_error, Body};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::{blocking, AppState};

/// The administration routes (merged into `native::routes`).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/users", get(get_users).post(post_user))
        .route("/api/v1/users/{name}/os-user", put(put_os_user))
        .route("/api/v1/users/{name}/{change}", post(post_user_change))
        .route("/api/v1/roles", get(get_roles).post(post_role))
        .route("/api/v1/business-units", get(get_business_units).post(post_business_unit))
        .route("/api/v1/workflows", get(get_workflows).post(post_workflow))
        .route("/api/v1/workflows/{id}/owner", put(put_workflow_owner))
        .route("/api/v1/tokens", get(get_tokens).post(post_token))
        .route("/api/v1/tokens/{id}", axum::routing::delete(delete_token))
        .route("/api/v1/config", get(get_config))
        .route("/api/v1/config/{key}", put(put_config).delete(delete_config))
}

// ---------------------------------------------------------------- users

/// A user as `user list --json` shows each one.
fn user_json(engine: &Engine, name: &str) -> Result<Value, Error> {
    let state = engine.state();
    let u = state.directory().user(name)?;
    Ok(json!({"name": u.name, "business_unit": u.business_unit, "roles": u.roles, "active": u.active,
        "os_uid": state.directory().os_uid_of(name)}))
}

/// `user list`: every user, active or not, by name, with business unit,
/// roles and mapped OS user id.
pub fn list_users(engine: &Engine) -> Result<Value, Error> {
    let state = engine.state();
    let dir = state.directory();
    Ok(Value::Array(
        dir.users()
            .map(|u| {
                json!({"name": u.name, "business_unit": u.business_unit, "roles": u.roles, "active": u.active,
                    "os_uid": dir.os_uid_of(&u.name)})
            })
            .collect(),
    ))
}

fn root() -> String {
    "root".to_string()
}

/// What `POST /api/v1/users` takes (`user add`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddUser {
    pub name: String,
    /// Default `root`.
    #[serde(default = "root")]
    pub business_unit: String,
    /// Default (empty): `basic-user`.
    #[serde(default)]
    pub roles: Vec<String>,
    /// The OS user id that acts as this user through the service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_uid: Option<u32>,
}

/// `user add`: the new user (as in `user list`).
pub fn add_user(engine: &Engine, session: &Session, a: &AddUser) -> Result<Value, Error> {
    let roles: Vec<&str> =
        if a.roles.is_empty() { vec!["basic-user"] } else { a.roles.iter().map(String::as_str).collect() };
    match a.os_uid {
        Some(uid) => session.add_user_mapped(&a.name, &a.business_unit, &roles, uid)?,
        None => session.add_user(&a.name, &a.business_unit, &roles)?,
    }
    user_json(engine, &a.name)
}

/// Deserializes a field that must be present, `null` included (`Some(None)`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// What `PUT /api/v1/users/{name}/os-user` takes (`user map`): a uid, or
/// `null` to remove the mapping; the field must be given.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MapUser {
    #[serde(default, deserialize_with = "present")]
    pub os_uid: Option<Option<u32>>,
}

/// `user map`: the user afterwards.
pub fn map_user(engine: &Engine, session: &Session, name: &str, m: &MapUser) -> Result<Value, Error> {
    let Some(uid) = m.os_uid else {
        return Err(DomainError::Invalid {
            what: "os_uid",
            reason: "missing: give an OS user id, or null to remove the mapping".into(),
        }
        .into());
    };
    session.map_os_user(name, uid)?;
    user_json(engine, name)
}

/// `user deactivate`: the user afterwards.
pub fn deactivate_user(engine: &Engine, session: &Session, name: &str) -> Result<Value, Error> {
    session.deactivate_user(name)?;
    user_json(engine, name)
}

/// `user reactivate`: the user afterwards.
pub fn reactivate_user(engine: &Engine, session: &Session, name: &str) -> Result<Value, Error> {
    session.reactivate_user(name)?;
    user_json(engine, name)
}

// ---------------------------------------------------------------- roles, business units

/// One privilege of a role at its depth.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivilegeAt {
    /// `read`, `write`, `create`, `delete`, `assign`, … (any case).
    pub privilege: String,
    /// `user`, `business-unit`, `parent-child`, `organization`.
    pub depth: String,
}

/// What `POST /api/v1/roles` takes (`role add`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddRole {
    pub name: String,
    pub privileges: Vec<PrivilegeAt>,
}

fn privileges_json(privileges: &[(Privilege, Depth)]) -> Vec<Value> {
    privileges.iter().map(|(p, d)| json!({"privilege": format!("{p:?}"), "depth": format!("{d:?}")})).collect()
}

/// `role add`: the role and its privileges.
pub fn add_role(session: &Session, a: &AddRole) -> Result<Value, Error> {
    let mut role = Vec::new();
    for p in &a.privileges {
        role.push((Privilege::parse(&p.privilege)?, Depth::parse(&p.depth)?));
    }
    session.add_role(Role::new(&a.name, role.clone()))?;
    Ok(json!({"role": a.name, "privileges": privileges_json(&role)}))
}

/// Every role with its privileges, by name (no command prints it).
pub fn list_roles(engine: &Engine) -> Result<Value, Error> {
    let state = engine.state();
    let roles = state.directory().roles().map(|r| {
        let privileges: Vec<(Privilege, Depth)> = r.privileges.iter().map(|(p, d)| (*p, *d)).collect();
        json!({"role": r.name, "privileges": privileges_json(&privileges)})
    });
    Ok(Value::Array(roles.collect()))
}

/// What `POST /api/v1/business-units` takes (`business-unit add`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddBusinessUnit {
    pub name: String,
    /// Default `root`.
    #[serde(default = "root")]
    pub parent: String,
}

/// `business-unit add`: the unit and its parent.
pub fn add_business_unit(session: &Session, a: &AddBusinessUnit) -> Result<Value, Error> {
    session.add_business_unit(&a.name, &a.parent)?;
    Ok(json!({"business_unit": a.name, "parent": a.parent}))
}

/// Every business unit with its parent (null for the root), by name.
pub fn list_business_units(engine: &Engine) -> Result<Value, Error> {
    let state = engine.state();
    let units =
        state.directory().business_units().map(|(name, parent)| json!({"business_unit": name, "parent": parent}));
    Ok(Value::Array(units.collect()))
}

// ---------------------------------------------------------------- workflows

fn workflow_json(w: &WorkflowDefinition) -> Value {
    json!({"id": w.id, "name": w.name, "owner": w.owner, "active": w.active})
}

/// `workflow list`: every definition, by id.
pub fn list_workflows(engine: &Engine) -> Result<Value, Error> {
    Ok(Value::Array(engine.state().workflows().values().map(workflow_json).collect()))
}

/// What `POST /api/v1/workflows` takes (`workflow add`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddWorkflow {
    pub id: String,
    /// Default: the id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Default: the acting user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// `workflow add`: the new definition; one that exists is refused.
pub fn add_workflow(session: &Session, a: &AddWorkflow) -> Result<Value, Error> {
    let w = WorkflowDefinition {
        id: a.id.clone(),
        name: a.name.clone().unwrap_or_else(|| a.id.clone()),
        owner: a.owner.clone().unwrap_or_else(|| session.user().to_string()),
        active: true,
    };
    session.add_workflow(w.clone())?;
    Ok(workflow_json(&w))
}

/// What `PUT /api/v1/workflows/{id}/owner` takes (`workflow set-owner`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetOwner {
    pub owner: String,
}

/// `workflow set-owner`: the definition afterwards.
pub fn set_workflow_owner(session: &Session, id: &str, s: &SetOwner) -> Result<Value, Error> {
    Ok(workflow_json(&session.set_workflow_owner(id, &s.owner)?))
}

// ---------------------------------------------------------------- tokens

/// What `POST /api/v1/tokens` takes (`token create`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// The joblog user the token acts as.
    pub user: String,
    /// A label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// 1 to 3650 days; default 90.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_days: Option<u32>,
}

fn time(t: Option<Timestamp>) -> Option<String> {
    t.map(Timestamp::to_rfc3339)
}

/// `token create`: the new token, its secret included (the only time it
/// is shown: the store keeps its hash).
pub fn create_token(session: &Session, c: &CreateToken) -> Result<Value, Error> {
    let t = session.create_token(&c.user, c.name.as_deref(), c.expires_in_days)?;
    Ok(json!({"token": t.token, "id": t.id.to_string(), "user": t.user, "expires": time(t.expires)}))
}

/// `token list`: the tokens the acting user may see (every one for an
/// administrator), each with whether it would authenticate now and if not
/// the first reason. Never a secret.
pub fn list_tokens(engine: &Engine, session: &Session) -> Result<Value, Error> {
    let now = engine.now();
    let tokens = session.tokens()?;
    // `Engine::authenticate` tells a caller none of the reasons.
    let inactive: std::collections::BTreeSet<String> =
        engine.state().directory().users().filter(|u| !u.active).map(|u| u.name.clone()).collect();
    let status = |t: &joblog::TokenInfo| {
        if t.revoked {
            "revoked"
        } else if t.expires.is_some_and(|e| e <= now) {
            "expired"
        } else if inactive.contains(&t.user) {
            "user deactivated"
        } else {
            "live"
        }
    };
    Ok(Value::Array(
        tokens
            .iter()
            .map(|t| {
                json!({"id": t.id.to_string(), "user": t.user, "name": t.name, "created": t.created.to_rfc3339(),
                    "expires": time(t.expires), "revoked": t.revoked, "status": status(t)})
            })
            .collect(),
    ))
}

/// `token revoke`: it stops authenticating at once.
pub fn revoke_token(session: &Session, id: Uuid) -> Result<Value, Error> {
    session.revoke_token(id)?;
    Ok(json!({"id": id.to_string(), "revoked": true}))
}

// ---------------------------------------------------------------- config

/// Every policy key of `policy`: the value in force, whether the store
/// sets it, its default, range, unit and help (`config show --json`).
pub fn policy_json(policy: &joblog::domain::StorePolicy) -> Value {
    Value::Array(
        joblog::domain::config::KEYS
            .iter()
            .map(|k| {
                json!({"key": k.name, "value": policy.value(k.name), "set": policy.get_set(k.name).is_some(),
                    "default": k.default, "min": k.min, "max": k.max, "unit": k.unit, "help": k.help})
            })
            .collect(),
    )
}

/// The query of `GET /api/v1/config` (`config show`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShowConfig {
    /// The policy in force at this time (RFC 3339), rebuilt from the log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}

/// `config show [--until T]`: every key (see [`policy_json`]).
pub fn show_config(engine: &Engine, c: &ShowConfig) -> Result<Value, Error> {
    Ok(match c.until.as_deref().map(Timestamp::parse).transpose()? {
        Some(t) => policy_json(engine.replay_until(t)?.policy()),
        None => policy_json(engine.state().policy()),
    })
}

/// What `PUT /api/v1/config/{key}` takes (`config set`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetConfig {
    pub value: u64,
}

/// `config set KEY VALUE` (`Some`) or `config unset KEY` (`None`): the key,
/// its value in force afterwards, and whether anything changed.
pub fn set_config(engine: &Engine, session: &Session, key: &str, value: Option<u64>) -> Result<Value, Error> {
    let changed = session.set_policy(key, value)?;
    let now = engine.state().policy().value(key);
    Ok(json!({"key": key, "value": now, "set": value.is_some(), "changed": changed}))
}

// ---------------------------------------------------------------- routes

fn created(v: Value) -> Response {
    (StatusCode::CREATED, Json(v)).into_response()
}

async fn get_users(State(s): State<AppState>, _caller: Caller) -> Result<Json<Value>, ApiError> {
    blocking(move || Ok(Json(list_users(&s.engine)?))).await
}

async fn post_user(State(s): State<AppState>, caller: Caller, Body(a): Body<AddUser>) -> Result<Response, ApiError> {
    blocking(move || Ok(created(add_user(&s.engine, &caller.session, &a)?))).await
}

async fn put_os_user(
    State(s): State<AppState>,
    caller: Caller,
    name: Result<Path<String>, PathRejection>,
    Body(m): Body<MapUser>,
) -> Result<Json<Value>, ApiError> {
    let Path(name) = name.map_err(path_error)?;
    blocking(move || Ok(Json(map_user(&s.engine, &caller.session, &name, &m)?))).await
}

/// `POST /api/v1/users/{name}/deactivate` and `/reactivate`.
async fn post_user_change(
    State(s): State<AppState>,
    caller: Caller,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path((name, change)) = path.map_err(path_error)?;
    let f = match change.as_str() {
        "deactivate" => deactivate_user,
        "reactivate" => reactivate_user,
        other => {
            return Err(ApiError::not_found(format!(
                "no user action {other:?}: the actions are deactivate and reactivate"
            )))
        }
    };
    blocking(move || Ok(Json(f(&s.engine, &caller.session, &name)?))).await
}

async fn get_roles(State(s): State<AppState>, _caller: Caller) -> Result<Json<Value>, ApiError> {
    blocking(move || Ok(Json(list_roles(&s.engine)?))).await
}

async fn post_role(caller: Caller, Body(a): Body<AddRole>) -> Result<Response, ApiError> {
    blocking(move || Ok(created(add_role(&caller.session, &a)?))).await
}

async fn get_business_units(State(s): State<AppState>, _caller: Caller) -> Result<Json<Value>, ApiError> {
    blocking(move || Ok(Json(list_business_units(&s.engine)?))).await
}

async fn post_business_unit(caller: Caller, Body(a): Body<AddBusinessUnit>) -> Result<Response, ApiError> {
    blocking(move || Ok(created(add_business_unit(&caller.session, &a)?))).await
}

async fn get_workflows(State(s): State<AppState>, _caller: Caller) -> Result<Json<Value>, ApiError> {
    blocking(move || Ok(Json(list_workflows(&s.engine)?))).await
}

async fn post_workflow(caller: Caller, Body(a): Body<AddWorkflow>) -> Result<Response, ApiError> {
    blocking(move || Ok(created(add_workflow(&caller.session, &a)?))).await
}

async fn put_workflow_owner(
    caller: Caller,
    id: Result<Path<String>, PathRejection>,
    Body(o): Body<SetOwner>,
) -> Result<Json<Value>, ApiError> {
    let Path(id) = id.map_err(path_error)?;
    blocking(move || Ok(Json(set_workflow_owner(&caller.session, &id, &o)?))).await
}

async fn get_tokens(State(s): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    blocking(move || Ok(Json(list_tokens(&s.engine, &caller.session)?))).await
}

async fn post_token(caller: Caller, Body(c): Body<CreateToken>) -> Result<Response, ApiError> {
    blocking(move || Ok(created(create_token(&caller.session, &c)?))).await
}

async fn delete_token(caller: Caller, id: Result<Path<String>, PathRejection>) -> Result<Json<Value>, ApiError> {
    let Path(id) = id.map_err(path_error)?;
    let id = Uuid::parse_str(&id)
        .map_err(|_| ApiError::bad_request(format!("{id:?} is not a token id (a UUID, from GET /api/v1/tokens)")))?;
    blocking(move || Ok(Json(revoke_token(&caller.session, id)?))).await
}

async fn get_config(
    State(s): State<AppState>,
    _caller: Caller,
    query: Result<Query<ShowConfig>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(c) = query.map_err(|e| ApiError::bad_request(format!("query: {}", e.body_text())))?;
    blocking(move || Ok(Json(show_config(&s.engine, &c)?))).await
}

async fn put_config(
    State(s): State<AppState>,
    caller: Caller,
    key: Result<Path<String>, PathRejection>,
    Body(c): Body<SetConfig>,
) -> Result<Json<Value>, ApiError> {
    let Path(key) = key.map_err(path_error)?;
    blocking(move || Ok(Json(set_config(&s.engine, &caller.session, &key, Some(c.value))?))).await
}

async fn delete_config(
    State(s): State<AppState>,
    caller: Caller,
    key: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path(key) = key.map_err(path_error)?;
    blocking(move || Ok(Json(set_config(&s.engine, &caller.session, &key, None)?))).await
}
