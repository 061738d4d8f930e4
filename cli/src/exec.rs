//! Each command against an open engine. Every change goes through a
//! `Session` of the acting user, so the engine checks every privilege; a
//! refused command changes nothing.

use joblog::domain::{
    DeletionCriteria, Depth, DomainError, OperationType, Privilege, Regarding, Role, State, StatusReason, Timestamp,
    WorkflowDefinition,
};
use joblog::engine::{LostRange, NewBulkDelete, NewJob, SalvageOptions, Session, StoreReport, UserAction};
use joblog::projection::query::{Cursor, Filter};
use joblog::service::command_data_with_timeout;
use serde_json::{json, Value};
use uuid::Uuid;

use super::args::{
    ActArgs, BulkDeleteCmd, Command, ConfigCmd, CriteriaArgs, Filters, ListArgs, RoleCmd, TokenCmd, UnitCmd, UserCmd,
    WorkflowCmd,
};
use super::output::{history_json, job_detail, job_json, jobs_table, pretty, table};
use super::{Ctx, Failure, Output};

/// Jobs a `list` prints when `--limit` is not given.
const DEFAULT_LIMIT: usize = 100;

pub fn execute(ctx: &Ctx<'_>, cmd: &Command) -> Output {
    // The acting user must exist and be active: otherwise permission
    // denied (exit 5, docs/cli.md "Exit codes"), not a usage error.
    let session = ctx.engine.session(&ctx.user).map_err(|e| match e {
        joblog::Error::Domain(DomainError::NotFound { .. }) => Failure {
            code: 5,
            message: format!("no user named {:?} (give --as USER)", ctx.user),
            stdout: String::new(),
        },
        joblog::Error::Domain(e @ DomainError::UserDeactivated { .. }) => {
            Failure { code: 5, message: e.to_string(), stdout: String::new() }
        }
        e => Failure::from(e),
    })?;
    let s = &session;
    match cmd {
        Command::User(c) => user(ctx, s, c),
        Command::Role(RoleCmd::Add { name, privileges }) => {
            let mut role = Vec::new();
            for p in privileges {
                let (privilege, depth) = p.split_once(':').ok_or_else(|| {
                    Failure::usage(format!("--privilege {p:?}: use PRIV:DEPTH, e.g. read:organization"))
                })?;
                role.push((Privilege::parse(privilege)?, Depth::parse(depth)?));
            }
            s.add_role(Role::new(name, role.clone()))?;
            let privileges: Vec<Value> =
                role.iter().map(|(p, d)| json!({"privilege": format!("{p:?}"), "depth": format!("{d:?}")})).collect();
            done(ctx, json!({"role": name, "privileges": privileges}), format!("role {name} added"))
        }
        Command::BusinessUnit(UnitCmd::Add { name, parent }) => {
            s.add_business_unit(name, parent)?;
            done(
                ctx,
                json!({"business_unit": name, "parent": parent}),
                format!("business unit {name} added under {parent}"),
            )
        }
        Command::Workflow(c) => workflow(ctx, s, c),
        Command::Submit(a) => {
            let mut spec = NewJob::new(&a.name, OperationType::parse(&a.operationtype)?);
            spec.workflow = a.workflow.clone();
            spec.regarding = a.regarding.as_deref().map(Regarding::parse).transpose()?;
            spec.owner = a.owner.clone();
            spec.postponeuntil = a.postpone_until.as_deref().map(Timestamp::parse).transpose()?;
            spec.dependency_token = a.dependency_token.clone();
            if let Some(c) = &a.command {
                spec.data = command_data_with_timeout(c, a.timeout);
            }
            let job = s.create(spec)?;
            job_out(ctx, &job, None)
        }
        Command::Import { file } => super::import::import(ctx, s, file),
        Command::List(a) => list(ctx, s, a),
        Command::Show { id, history } => {
            let job = s.get(parse_id(id)?)?;
            let h = if *history { Some(s.history(job.id)?) } else { None };
            job_out(ctx, &job, h.as_deref())
        }
        Command::Cancel(a) => act(ctx, s, a, UserAction::Cancel),
        Command::Pause(a) => act(ctx, s, a, UserAction::Pause),
        Command::Resume(a) => act(ctx, s, a, UserAction::Resume),
        Command::Postpone { act: a, until } => act(ctx, s, a, UserAction::Postpone(Timestamp::parse(until)?)),
        Command::Reassign { workflow, from, to } => {
            let moved = s.reassign(workflow, from, to)?;
            let ids: Vec<String> = moved.iter().map(Uuid::to_string).collect();
            let text = format!("{} waiting runs of {workflow} moved from {from} to {to}", moved.len());
            done(ctx, json!({"workflow": workflow, "from": from, "to": to, "moved": moved.len(), "jobs": ids}), text)
        }
        Command::BulkDelete(c) => bulk_delete(ctx, s, c),
        Command::Replay { until, filters, limit } => {
            let at = until.as_deref().map(Timestamp::parse).transpose()?.unwrap_or_else(|| ctx.engine.now());
            let bar = super::spinner(ctx.interactive, "replaying the log");
            let past = ctx.engine.replay_until(at)?;
            bar.finish_and_clear();
            let filter = filter(filters)?;
            let (jobs, _) = past.query_jobs(&filter, &s.visibility(), None, limit.unwrap_or(DEFAULT_LIMIT))?;
            let mut header = format!(
                "as of {} (replayed from the log): {} jobs\n",
                at.to_rfc3339(),
                past.count(&filter, &s.visibility())
            );
            let set: Vec<String> = past.policy().set_keys().iter().map(|(k, v)| format!("{k}={v}")).collect();
            if !set.is_empty() {
                header.push_str(&format!("policy then: {} (other keys at their defaults)\n", set.join(", ")));
            }
            jobs_out(ctx, &jobs, &header)
        }
        Command::Verify => {
            s.require_organization(Privilege::Read)?;
            verify(ctx)
        }
        Command::Stats => stats(ctx, s),
        Command::Resubmit { id, owner } => {
            let old = parse_id(id)?;
            let job = s.resubmit(old, owner.as_deref())?;
            if ctx.json {
                let mut v = job_json(&job);
                v["resubmission_of"] = json!(old.to_string());
                return Ok(pretty(&v));
            }
            Ok(format!("resubmitted {old} as {}\n{}", job.id, job_detail(&job, None)))
        }
        Command::Delete { ids } => delete(ctx, s, ids),
        Command::Config(c) => config(ctx, s, c),
        Command::Token(c) => token(ctx, s, c),
        Command::Compact => {
            let before = ctx.engine.disk_bytes();
            let bar = super::spinner(ctx.interactive, "compacting");
            let c = s.compact()?;
            bar.finish_and_clear();
            let after = ctx.engine.disk_bytes();
            let v = json!({
                "segments_rewritten": c.segments.len(),
                "frames_dropped": c.frames_dropped,
                "bytes_written": c.bytes_written,
                "bytes_before": before,
                "bytes_after": after,
            });
            let text = format!(
                "{} segments rewritten, {} events dropped, {} → {} bytes",
                c.segments.len(),
                c.frames_dropped,
                before,
                after
            );
            done(ctx, v, text)
        }
        Command::Run(_) | Command::Demo(_) | Command::Salvage { .. } => {
            Err(Failure::usage("this command runs on its own, not through another"))
        }
    }
}

/// A job without a command needs someone to run it: `joblog run` runs
/// command jobs only (and Bulk Delete jobs, made by `bulk-delete create`),
/// so one without --command is refused unless --external-handler says a
/// program embedding joblog registers a handler for it. (The library
/// accepts such jobs: its embedder registers handlers.)
/// Refuses, before anything is opened (or created), what the arguments
/// alone show to be wrong: a refused command never leaves a store behind.
pub fn check_before_open(command: &Command) -> Result<(), Failure> {
    match command {
        Command::Submit(a) if a.command.is_none() && !a.external_handler => Err(Failure::usage(
            "nothing would run this job: `joblog run` runs command jobs only; give --command, or --external-handler when a program embedding joblog registers a handler for it",
        )),
        Command::Cancel(a) | Command::Pause(a) | Command::Resume(a) => act_target(a).map(drop),
        Command::Postpone { act: a, until } => {
            Timestamp::parse(until)?;
            act_target(a).map(drop)
        }
        Command::Config(ConfigCmd::Set { key, value }) => config_value(key, value).map(drop),
        Command::Config(ConfigCmd::Unset { key }) => Ok(joblog::domain::policy_key(key).map(drop)?),
        Command::Resubmit { id, .. } => parse_id(id).map(drop),
        Command::Delete { ids } => delete_ids(ids).map(drop),
        Command::Token(TokenCmd::Revoke { id }) => parse_token_id(id).map(drop),
        _ => Ok(()),
    }
}

/// Prints `v` as JSON, or `text`.
fn done(ctx: &Ctx<'_>, v: Value, text: String) -> Output {
    Ok(if ctx.json { pretty(&v) } else { text })
}

fn job_out(ctx: &Ctx<'_>, job: &joblog::domain::Job, history: Option<&[joblog::engine::HistoryEntry]>) -> Output {
    if ctx.json {
        let mut v = job_json(job);
        if let Some(h) = history {
            v["history"] = history_json(h);
        }
        Ok(pretty(&v))
    } else {
        Ok(job_detail(job, history))
    }
}

fn jobs_out(ctx: &Ctx<'_>, jobs: &[joblog::domain::Job], header: &str) -> Output {
    if ctx.json {
        Ok(pretty(&Value::Array(jobs.iter().map(job_json).collect())))
    } else {
        Ok(format!("{header}{}", jobs_table(jobs)))
    }
}

fn parse_id(id: &str) -> Result<Uuid, Failure> {
    id.parse().map_err(|_| Failure::usage(format!("not a job id: {id:?}")))
}

/// The ids of `joblog delete`, each a job id, at most `MAX_DELETE_IDS`.
fn delete_ids(ids: &[String]) -> Result<Vec<Uuid>, Failure> {
    let max = joblog::domain::MAX_DELETE_IDS;
    if ids.len() > max {
        return Err(Failure::usage(format!("{} ids: one deletion takes at most {max}", ids.len())));
    }
    ids.iter().map(|id| parse_id(id)).collect()
}

/// `joblog delete ID…`: the jobs deleted, all or none.
fn delete(ctx: &Ctx<'_>, s: &Session, ids: &[String]) -> Output {
    let deleted = s.delete_jobs(&delete_ids(ids)?)?;
    let ids: Vec<String> = deleted.iter().map(Uuid::to_string).collect();
    let text = format!("deleted {} job{}: {}", ids.len(), if ids.len() == 1 { "" } else { "s" }, ids.join(" "));
    done(ctx, json!({"deleted": ids}), text)
}

fn parse_token_id(id: &str) -> Result<Uuid, Failure> {
    id.parse().map_err(|_| Failure::usage(format!("not a token id: {id:?} (`joblog token list` shows them)")))
}

/// `token create|list|revoke` (docs/cli.md, "Tokens"). The secret is
/// printed by `create` only, and is nowhere in the store.
fn token(ctx: &Ctx<'_>, s: &Session, c: &TokenCmd) -> Output {
    let time = |t: Option<Timestamp>| t.map(Timestamp::to_rfc3339);
    match c {
        TokenCmd::Create { owner, name, expires_in } => {
            let t = s.create_token(owner, name.as_deref(), *expires_in)?;
            let expires = time(t.expires);
            let v = json!({"token": t.token, "id": t.id.to_string(), "user": t.user, "expires": expires});
            // The token alone on the last line, for `| tail -n 1`.
            let text = format!(
                "token {} for {}, expires {}; shown once (joblog keeps only its hash):\n{}",
                t.id,
                t.user,
                expires.as_deref().unwrap_or("never"),
                t.token
            );
            done(ctx, v, text)
        }
        TokenCmd::List => {
            let now = ctx.engine.now();
            let tokens = s.tokens()?;
            // Whether each would authenticate now, and if not the first
            // reason (`Engine::authenticate` tells a caller none of them).
            let inactive: std::collections::BTreeSet<String> =
                ctx.engine.state().directory().users().filter(|u| !u.active).map(|u| u.name.clone()).collect();
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
            let v: Vec<Value> = tokens
                .iter()
                .map(|t| {
                    json!({"id": t.id.to_string(), "user": t.user, "name": t.name, "created": t.created.to_rfc3339(),
                        "expires": time(t.expires), "revoked": t.revoked, "status": status(t)})
                })
                .collect();
            let rows: Vec<Vec<String>> = tokens
                .iter()
                .map(|t| {
                    vec![
                        t.id.to_string(),
                        t.user.clone(),
                        t.name.clone().unwrap_or_default(),
                        t.created.to_rfc3339(),
                        time(t.expires).unwrap_or_else(|| "never".into()),
                        status(t).into(),
                    ]
                })
                .collect();
            done(ctx, Value::Array(v), table(&["Id", "User", "Name", "Created", "Expires", "Status"], &rows))
        }
        TokenCmd::Revoke { id } => {
            let id = parse_token_id(id)?;
            s.revoke_token(id)?;
            done(ctx, json!({"id": id.to_string(), "revoked": true}), format!("token {id} revoked"))
        }
    }
}

fn opt_time(t: &Option<String>) -> Result<Option<Timestamp>, Failure> {
    Ok(t.as_deref().map(Timestamp::parse).transpose()?)
}

/// The filter flags given, as written on the command line.
fn given_filters(f: &Filters) -> Vec<&'static str> {
    [
        ("--type", f.operationtype.is_some()),
        ("--state", f.state.is_some()),
        ("--status", f.status.is_some()),
        ("--workflow", f.workflow.is_some()),
        ("--regarding", f.regarding.is_some()),
        ("--owner", f.owner.is_some()),
        ("--created-before", f.created_before.is_some()),
        ("--created-after", f.created_after.is_some()),
        ("--completed-before", f.completed_before.is_some()),
    ]
    .into_iter()
    .filter_map(|(flag, given)| given.then_some(flag))
    .collect()
}

/// The engine's filter for the command line's filters; filters that no
/// job can match together are refused (a usage error naming both).
pub fn filter(f: &Filters) -> Result<Filter, Failure> {
    let filter = filter_unchecked(f)?;
    if let (Some(state), Some(reason)) = (filter.state, filter.status_reason) {
        let of = joblog::domain::Status::of_reason(reason).state();
        if of != state {
            return Err(Failure::usage(format!(
                "--state {} and --status {} cannot both match: {} is a Status Reason of {}, not of {}",
                state.name(),
                reason.name(),
                reason.name(),
                of.name(),
                state.name()
            )));
        }
    }
    if let (Some(before), Some(after)) = (filter.created_before, filter.created_after) {
        if before <= after {
            return Err(Failure::usage(format!(
                "--created-before {before} and --created-after {after} cannot both match: no time is after {after} and before {before}"
            )));
        }
    }
    if let (Some(state), Some(_)) = (filter.state, filter.completed_before) {
        if state != State::Completed {
            return Err(Failure::usage(format!(
                "--state {} and --completed-before cannot both match: only Completed jobs have a completedon",
                state.name()
            )));
        }
    }
    if let (Some(reason), Some(_)) = (filter.status_reason, filter.completed_before) {
        if joblog::domain::Status::of_reason(reason).state() != State::Completed {
            return Err(Failure::usage(format!(
                "--status {} and --completed-before cannot both match: only Completed jobs have a completedon",
                reason.name()
            )));
        }
    }
    Ok(filter)
}

fn filter_unchecked(f: &Filters) -> Result<Filter, Failure> {
    Ok(Filter {
        operationtype: f.operationtype.as_deref().map(OperationType::parse).transpose()?,
        state: f.state.as_deref().map(State::parse).transpose()?,
        status_reason: f.status.as_deref().map(StatusReason::parse).transpose()?,
        workflow: f.workflow.clone(),
        regarding: f.regarding.as_deref().map(Regarding::parse).transpose()?,
        owner: f.owner.clone(),
        created_before: opt_time(&f.created_before)?,
        created_after: opt_time(&f.created_after)?,
        completed_before: opt_time(&f.completed_before)?,
    })
}

fn user(ctx: &Ctx<'_>, s: &Session, c: &UserCmd) -> Output {
    let user_json = |name: &str| -> Result<Value, Failure> {
        let state = ctx.engine.state();
        let u = state.directory().user(name)?;
        Ok(json!({"name": u.name, "business_unit": u.business_unit, "roles": u.roles, "active": u.active,
            "os_uid": state.directory().os_uid_of(name)}))
    };
    match c {
        UserCmd::Add { name, roles, business_unit, os_user } => {
            let roles: Vec<&str> =
                if roles.is_empty() { vec!["basic-user"] } else { roles.iter().map(String::as_str).collect() };
            match os_user {
                Some(o) => s.add_user_mapped(name, business_unit, &roles, super::server::os_uid(o)?)?,
                None => s.add_user(name, business_unit, &roles)?,
            }
            done(ctx, user_json(name)?, format!("user {name} added to {business_unit} as {}", roles.join(", ")))
        }
        UserCmd::Map { name, os_user, none } => {
            let uid = if *none { None } else { os_user.as_deref().map(super::server::os_uid).transpose()? };
            s.map_os_user(name, uid)?;
            let text = match uid {
                Some(u) => format!("OS user {u} now acts as {name} (and only as {name}) through the service"),
                None => format!("{name} is no longer mapped to an OS user"),
            };
            done(ctx, user_json(name)?, text)
        }
        UserCmd::Deactivate { name } => {
            s.deactivate_user(name)?;
            done(ctx, user_json(name)?, format!("user {name} deactivated"))
        }
        UserCmd::Reactivate { name } => {
            s.reactivate_user(name)?;
            done(ctx, user_json(name)?, format!("user {name} reactivated"))
        }
        UserCmd::List => {
            let state = ctx.engine.state();
            let users: Vec<_> = state.directory().users().collect();
            let v: Vec<Value> = users
                .iter()
                .map(|u| {
                    json!({"name": u.name, "business_unit": u.business_unit, "roles": u.roles, "active": u.active,
                        "os_uid": state.directory().os_uid_of(&u.name)})
                })
                .collect();
            let rows: Vec<Vec<String>> = users
                .iter()
                .map(|u| {
                    vec![
                        u.name.clone(),
                        u.business_unit.clone(),
                        u.roles.join(", "),
                        if u.active { "yes" } else { "no" }.into(),
                    ]
                })
                .collect();
            done(ctx, Value::Array(v), table(&["User", "Business Unit", "Roles", "Active"], &rows))
        }
    }
}

fn workflow(ctx: &Ctx<'_>, s: &Session, c: &WorkflowCmd) -> Output {
    let wf_json = |w: &WorkflowDefinition| json!({"id": w.id, "name": w.name, "owner": w.owner, "active": w.active});
    match c {
        WorkflowCmd::Add { id, name, owner } => {
            if ctx.engine.state().workflow(id).is_some() {
                return Err(DomainError::AlreadyExists { kind: "workflow", name: id.clone() }.into());
            }
            let w = WorkflowDefinition {
                id: id.clone(),
                name: name.clone().unwrap_or_else(|| id.clone()),
                owner: owner.clone().unwrap_or_else(|| ctx.user.clone()),
                active: true,
            };
            s.save_workflow(w.clone())?;
            done(ctx, wf_json(&w), format!("workflow {id} added, owned by {}", w.owner))
        }
        WorkflowCmd::SetOwner { id, owner: user } => {
            let mut w = ctx
                .engine
                .state()
                .workflow(id)
                .cloned()
                .ok_or_else(|| DomainError::NotFound { kind: "workflow", name: id.clone() })?;
            w.owner = user.clone();
            s.save_workflow(w.clone())?;
            done(ctx, wf_json(&w), format!("workflow {id} is now owned by {user}"))
        }
        WorkflowCmd::List => {
            let state = ctx.engine.state();
            let all: Vec<&WorkflowDefinition> = state.workflows().values().collect();
            let rows: Vec<Vec<String>> =
                all.iter().map(|w| vec![w.id.clone(), w.name.clone(), w.owner.clone()]).collect();
            done(
                ctx,
                Value::Array(all.iter().map(|w| wf_json(w)).collect()),
                table(&["Workflow", "Name", "Owner"], &rows),
            )
        }
    }
}

fn list(ctx: &Ctx<'_>, s: &Session, a: &ListArgs) -> Output {
    let f = filter(&a.filters)?;
    if a.count {
        let n = s.count(&f);
        return done(ctx, json!({"count": n}), format!("{n}"));
    }
    let after: Option<Cursor> = a
        .after
        .as_deref()
        .map(|c| c.parse().map_err(|_| Failure::usage(format!("not a cursor: {c:?}"))))
        .transpose()?;
    let (jobs, next) = s.list(&f, after.as_ref(), a.limit.unwrap_or(DEFAULT_LIMIT))?;
    let mut out = jobs_out(ctx, &jobs, "")?;
    if let Some(next) = next {
        if ctx.json {
            ctx.note(format!("next page: --after {next}"));
        } else {
            out.push_str(&format!("… more: joblog list --after {next}\n"));
        }
    }
    Ok(out)
}

/// What an action names: one job, or every job matching a filter.
enum Target {
    One(Uuid),
    Matching(Filter),
}

fn act_target(a: &ActArgs) -> Result<Target, Failure> {
    let given = given_filters(&a.filters);
    match (&a.id, a.all_matching) {
        (Some(_), false) if !given.is_empty() => Err(Failure::usage(format!(
            "{} would be ignored with a single job id: give the id alone, or the filters and --all-matching",
            given.join(", ")
        ))),
        (Some(id), false) => Ok(Target::One(parse_id(id)?)),
        (None, true) if given.is_empty() && !a.everything => Err(Failure::usage(
            "--all-matching with no filter would act on every job you may see: give at least one filter (--type, --state, --status, --workflow, --regarding, --owner, --created-before, --created-after, --completed-before), or --everything to mean it; --dry-run shows what would change",
        )),
        (None, true) if a.everything && !given.is_empty() => Err(Failure::usage(format!(
            "--everything means no filter, but {} given: drop one or the other",
            given.join(", ")
        ))),
        (None, true) => Ok(Target::Matching(filter(&a.filters)?)),
        (Some(_), true) => Err(Failure::usage("give a job id or --all-matching with filters, not both")),
        (None, false) => Err(Failure::usage("give a job id, or filters and --all-matching")),
    }
}

fn act(ctx: &Ctx<'_>, s: &Session, a: &ActArgs, action: UserAction) -> Output {
    match act_target(a)? {
        Target::One(id) => job_out(ctx, &s.act(id, action)?, None),
        Target::Matching(f) => {
            let o = if a.dry_run { s.preview_on_matching(action, &f) } else { s.act_on_matching(action, &f)? };
            bulk_out(ctx, &o, action, a.dry_run)
        }
    }
}

/// A bulk action's summary: how many changed (or would), how many were
/// refused and why, by kind; each refusal only in JSON.
fn bulk_out(ctx: &Ctx<'_>, o: &joblog::engine::BulkOutcome, action: UserAction, dry_run: bool) -> Output {
    let verb = match action {
        UserAction::Cancel => "canceled",
        UserAction::Pause => "paused",
        UserAction::Resume => "resumed",
        UserAction::Postpone(_) => "postponed",
    };
    let by: Vec<String> = o.refused_by.iter().map(|(k, n)| format!("{k} {n}")).collect();
    let refused = if o.refused.is_empty() {
        "refused 0".to_string()
    } else {
        format!("refused {} ({})", o.refused.len(), by.join(", "))
    };
    let mut text = if dry_run {
        format!("dry run, nothing changed: {} matched; would be {verb}: {}, {refused}", o.matched, o.changed.len())
    } else {
        format!("{} matched: {verb} {}, {refused}", o.matched, o.changed.len())
    };
    if dry_run {
        // Which ones would change (a dry run is for reading); a long list
        // is cut here, and whole in --json.
        const SHOWN: usize = 50;
        for id in o.changed.iter().take(SHOWN) {
            text.push_str(&format!("\n  {id}"));
        }
        if o.changed.len() > SHOWN {
            text.push_str(&format!("\n  … and {} more (all of them with --json)", o.changed.len() - SHOWN));
        }
    }
    let v = json!({
        "matched": o.matched,
        "changed": o.changed.len(),
        "dry_run": dry_run,
        "would_change": if dry_run { json!(o.changed.iter().map(Uuid::to_string).collect::<Vec<_>>()) } else { Value::Null },
        "refused_by": o.refused_by,
        "refused": o.refused.iter().map(|(id, why)| json!({"id": id.to_string(), "reason": why.to_string()})).collect::<Vec<_>>(),
    });
    done(ctx, v, text)
}

/// The number `config set KEY VALUE` gives, checked as far as the
/// arguments alone allow (the engine checks it again against the policy).
fn config_value(key: &str, value: &str) -> Result<u64, Failure> {
    let k = joblog::domain::policy_key(key)?;
    value.trim().parse().map_err(|_| {
        Failure::usage(format!(
            "{key} = {value:?}: give a whole number from {} to {} ({}); `joblog config unset {key}` returns it to its default",
            k.min, k.max, k.unit
        ))
    })
}

/// `joblog config …`: the service's policy for this store.
fn config(ctx: &Ctx<'_>, s: &Session, c: &ConfigCmd) -> Output {
    let (key, value) = match c {
        ConfigCmd::Show { until } => {
            let past =
                until.as_deref().map(Timestamp::parse).transpose()?.map(|t| ctx.engine.replay_until(t)).transpose()?;
            let policy = match &past {
                Some(p) => p.policy().clone(),
                None => ctx.engine.state().policy().clone(),
            };
            return policy_out(ctx, &policy, until.as_deref());
        }
        ConfigCmd::Set { key, value } => (key, Some(config_value(key, value)?)),
        ConfigCmd::Unset { key } => (key, None),
    };
    let changed = s.set_policy(key, value)?;
    let k = joblog::domain::policy_key(key)?;
    let now = ctx.engine.state().policy().value(key);
    let shown = now.map_or("none".to_string(), |v| v.to_string());
    let text = match (changed, value) {
        (false, _) => format!("{key} is already {shown}: nothing changed"),
        (true, Some(_)) => {
            format!("{key} set to {shown} {} (default {})", k.unit, k.default.map_or("none".into(), |d| d.to_string()))
        }
        (true, None) => format!("{key} back to its default: {shown}"),
    };
    done(ctx, json!({"key": key, "value": now, "set": value.is_some(), "changed": changed}), text)
}

/// The policy in force, every key (text: a table; JSON: one object per key).
fn policy_out(ctx: &Ctx<'_>, policy: &joblog::domain::StorePolicy, until: Option<&str>) -> Output {
    use joblog::domain::config::KEYS;
    let v: Vec<Value> = KEYS
        .iter()
        .map(|k| {
            json!({"key": k.name, "value": policy.value(k.name), "set": policy.get_set(k.name).is_some(),
                "default": k.default, "min": k.min, "max": k.max, "unit": k.unit, "help": k.help})
        })
        .collect();
    if ctx.json {
        return Ok(pretty(&Value::Array(v)));
    }
    let header = until.map(|t| format!("as of {t} (replayed from the log):\n")).unwrap_or_default();
    Ok(header + &policy_table(policy))
}

/// Every key with its value in force, marked when the store sets it.
fn policy_table(policy: &joblog::domain::StorePolicy) -> String {
    let rows: Vec<Vec<String>> = joblog::domain::config::KEYS
        .iter()
        .map(|k| {
            let shown = |v: Option<u64>| v.map_or("none".to_string(), |v| v.to_string());
            vec![
                k.name.to_string(),
                shown(policy.value(k.name)),
                if policy.get_set(k.name).is_some() { "set" } else { "default" }.to_string(),
                shown(k.default),
                format!("{}..={} {}", k.min, k.max, k.unit),
            ]
        })
        .collect();
    table(&["Key", "In force", "From", "Default", "Range"], &rows)
}

fn criteria(c: &CriteriaArgs) -> Result<DeletionCriteria, Failure> {
    let types = c.types.iter().map(|t| OperationType::parse(t)).collect::<Result<Vec<_>, _>>()?;
    let reasons = if c.reasons.is_empty() {
        vec![StatusReason::Succeeded, StatusReason::Failed, StatusReason::Canceled]
    } else {
        c.reasons.iter().map(|r| StatusReason::parse(r)).collect::<Result<Vec<_>, _>>()?
    };
    Ok(DeletionCriteria { types, reasons, older_than_days: c.older_than })
}

fn bulk_delete(ctx: &Ctx<'_>, s: &Session, c: &BulkDeleteCmd) -> Output {
    match c {
        BulkDeleteCmd::Now { criteria: args, limit } => {
            let c = criteria(args)?;
            // `docs/cli.md`'s order: the privilege first (5), then the
            // Workflow criterion (2).
            ctx.engine.state().directory().check(&ctx.user, Privilege::Delete, None)?;
            if !c.types.contains(&OperationType::WORKFLOW) {
                return Err(Failure::usage(
                    "the Immediately option needs System Job Type Workflow among the criteria (--type workflow)",
                ));
            }
            let bar = super::spinner(ctx.interactive, "deleting and compacting");
            let r = s.delete_now(&c, *limit)?;
            bar.finish_and_clear();
            // The deletion is durable: what failed after it (compaction on a
            // full disk) is said on stderr, and the command succeeds.
            for w in &r.warnings {
                say!("joblog: warning: {w}");
            }
            let v = json!({
                "warnings": r.warnings,
                "deleted": r.deleted,
                "remaining_matching": r.remaining_matching,
                "bytes_before": r.bytes_before,
                "bytes_after": r.bytes_after,
                "seconds": r.seconds,
                "seconds_until_gone_from_views": r.seconds_logical,
                "bytes_rewritten": r.compaction.bytes_written,
            });
            let mut text = format!(
                "deleted {} jobs ({} more match) in {:.3} s; log files {} → {} bytes",
                r.deleted, r.remaining_matching, r.seconds, r.bytes_before, r.bytes_after
            );
            // Also in the report itself, so that a client of a running
            // service (whose stderr it does not see) is told.
            for w in &r.warnings {
                text.push_str(&format!("\nwarning: {w}"));
            }
            done(ctx, v, text)
        }
        BulkDeleteCmd::Create { name, criteria: args, start, recurrence } => {
            let spec = NewBulkDelete {
                name: name.clone(),
                criteria: criteria(args)?,
                start: opt_time(start)?,
                recurrence: recurrence.clone(),
            };
            let job = s.create_bulk_delete(&spec)?;
            job_out(ctx, &job, None)
        }
        BulkDeleteCmd::List => {
            let records = s.bulk_delete_jobs()?;
            let v: Vec<Value> = records
                .iter()
                .map(|r| {
                    let mut v = job_json(&r.job);
                    v["successcount"] = json!(r.successcount);
                    v["failurecount"] = json!(r.failurecount);
                    v["criteria"] = r.criteria.as_ref().map_or(Value::Null, |c| {
                        json!({
                            "types": c.types.iter().map(|t| t.0).collect::<Vec<_>>(),
                            "statuses": c.reasons.iter().map(|r| r.name()).collect::<Vec<_>>(),
                            "older_than_days": c.older_than_days,
                        })
                    });
                    v
                })
                .collect();
            let rows: Vec<Vec<String>> = records
                .iter()
                .map(|r| {
                    vec![
                        r.job.name.clone(),
                        r.job.status.to_string(),
                        r.job.recurrencepattern.clone().unwrap_or_default(),
                        r.job.postponeuntil.map(|t| t.to_rfc3339()).unwrap_or_default(),
                        r.successcount.to_string(),
                        r.failurecount.to_string(),
                    ]
                })
                .collect();
            done(
                ctx,
                Value::Array(v),
                table(&["Name", "Status", "Recurrence", "Next Run", "Success Count", "Failure Count"], &rows),
            )
        }
    }
}

/// Every checksum, the manifest against the segments, and the projection
/// against a fresh replay, job by job: the library checks, this prints.
fn verify(ctx: &Ctx<'_>) -> Output {
    let bar = super::progress(ctx.interactive, ctx.engine.state().job_count() as u64, "verifying");
    let report = ctx.engine.verify_with(&mut |n| bar.set_position(n));
    bar.finish_and_clear();
    verify_out(ctx.json, &report)
}

/// The report on stdout (always, in JSON too), and exit 1 when it found
/// anything.
fn verify_out(json: bool, report: &StoreReport) -> Output {
    let problems = &report.problems;
    let (segments, events) = (report.segments, report.events);
    let ok = problems.is_empty();
    let v = json!({"segments": segments, "events": events, "ok": ok, "problems": problems});
    let text = if ok {
        format!("ok: {segments} segments, {events} events, every checksum and the projection match")
    } else {
        format!("{} problems:\n  {}", problems.len(), problems.join("\n  "))
    };
    let out = if json { pretty(&v) } else { text };
    if ok {
        Ok(out)
    } else {
        // The report still goes to stdout; the exit code says it failed.
        Err(Failure {
            code: 1,
            message: format!(
                "verify found {} problems, the first: {}; `joblog salvage --to NEWDIR` copies what is intact into a new store",
                problems.len(),
                problems[0]
            ),
            stdout: out,
        })
    }
}

/// When the store does not even open, verify says why and checks its
/// files one by one, read-only.
pub fn verify_unopenable(g: &super::args::Global, e: joblog::Error) -> Output {
    verify_out(g.json, &joblog::engine::verify_unopenable(&g.data, &e))
}

/// `joblog salvage --to NEWDIR`: the library copies, this prints.
pub fn salvage(g: &super::args::Global, to: &std::path::Path, clamp_future: bool) -> Output {
    if !g.data.join("segments").exists() {
        return Err(Failure::not_found(format!("no joblog data at {}", g.data.display())));
    }
    let options = SalvageOptions {
        clamp_future_to: clamp_future.then(|| joblog::domain::Clock::now(&joblog::domain::SystemClock)),
    };
    let r = joblog::engine::salvage(&g.data, to, &options).map_err(|e| match e {
        joblog::Error::Log(joblog::log::LogError::Locked { holder, .. }) => Failure {
            code: 1,
            message: format!(
                "{} is held by {holder}; stop it (a salvage reads the files of a store nobody writes)",
                g.data.display()
            ),
            stdout: String::new(),
        },
        e => Failure::from(e),
    })?;
    let range = |l: &LostRange| match (l.first_seq, l.last_seq) {
        (Some(a), Some(b)) if a == b => format!("event {a}"),
        (Some(a), Some(b)) => format!("events {a}..={b}"),
        (Some(a), None) => format!("events from {a} on"),
        _ => "events unknown".into(),
    };
    if g.json {
        let v = json!({
            "to": to.display().to_string(),
            "events_read": r.events_read,
            "events_written": r.events_written,
            "jobs": r.jobs,
            "lost": r.lost.iter().map(|l| json!({
                "file": l.file.display().to_string(), "offset": l.offset, "bytes": l.bytes,
                "first_seq": l.first_seq, "last_seq": l.last_seq, "what": l.what,
            })).collect::<Vec<_>>(),
            "dropped": r.dropped.iter().map(|(seq, why)| json!({"seq": seq, "reason": why})).collect::<Vec<_>>(),
            "restamped": r.restamped.iter().map(|(seq, at)| json!({"seq": seq, "at": at.to_rfc3339()})).collect::<Vec<_>>(),
            "problems": r.problems,
        });
        return Ok(pretty(&v));
    }
    let mut out = format!(
        "salvaged {} of {} intact events into {}: {} jobs; the original store is unchanged\n",
        r.events_written,
        r.events_read,
        to.display(),
        r.jobs
    );
    if r.lost.is_empty() {
        out.push_str("lost: nothing unreadable found\n");
    } else {
        out.push_str("lost:\n");
        for l in &r.lost {
            let bytes = l.bytes.map(|b| format!(" ({b} bytes)")).unwrap_or_default();
            out.push_str(&format!("  {} at offset {}{bytes}: {}: {}\n", l.file.display(), l.offset, range(l), l.what));
        }
    }
    if !r.dropped.is_empty() {
        out.push_str("left out (intact, but their job's creation or an earlier step was lost):\n");
        for (seq, why) in &r.dropped {
            out.push_str(&format!("  event {seq}: {why}\n"));
        }
    }
    if !r.restamped.is_empty() {
        out.push_str(&format!("re-stamped at now (they were in the future): {} events\n", r.restamped.len()));
        for (seq, at) in &r.restamped {
            out.push_str(&format!("  event {seq}: was {}\n", at.to_rfc3339()));
        }
    }
    for p in &r.problems {
        out.push_str(&format!("damage: {p}\n"));
    }
    Ok(out)
}

fn stats(ctx: &Ctx<'_>, s: &Session) -> Output {
    let vis = s.visibility();
    let state = ctx.engine.state();
    let mut by_status = Vec::new();
    for status in joblog::domain::Status::all() {
        let f = Filter { state: Some(status.state()), status_reason: Some(status.reason()), ..Filter::default() };
        by_status.push((status, state.count(&f, &vis)));
    }
    let mut by_type = Vec::new();
    for t in OperationType::named() {
        let n = state.count(&Filter { operationtype: Some(t), ..Filter::default() }, &vis);
        if n > 0 {
            by_type.push((t, n));
        }
    }
    let segments = ctx.engine.segments();
    let garbage: usize = state.garbage().values().map(Vec::len).sum();
    let heap = state.heap_bytes();
    let stored = state.job_count();
    // The jobs this user may see (the same visibility as `list`); the
    // store's total only for those who see every job.
    let jobs = state.count(&Filter::default(), &vis);
    let policy = state.policy().clone();
    let last_seq = state.last_seq();
    drop(state);
    let in_force = joblog::service::ServiceConfig::default().with_store_policy(&policy);
    // Whole workflows are held, across owners: shown to those who may read
    // every job (it would name others' workflows to anyone else).
    let org_wide = matches!(vis, joblog::projection::query::Visibility::All);
    let backoff = if org_wide { joblog::service::backoff_report(ctx.engine, &in_force.backoff) } else { Vec::new() };
    let disk = joblog::measure::dir_bytes(ctx.engine.dir());
    let rss = joblog::measure::rss_anon_bytes();
    let v = json!({
        "jobs": jobs,
        "by_status": by_status.iter().map(|(s, n)| json!({"state": s.state().name(), "status": s.reason().name(), "statecode": s.statecode(), "statuscode": s.statuscode(), "count": n})).collect::<Vec<_>>(),
        "by_type": by_type.iter().map(|(t, n)| json!({"operationtype": t.0, "operationtype_name": t.display_name(), "count": n})).collect::<Vec<_>>(),
        "segments": segments.len(),
        "last_seq": last_seq,
        "log_bytes": ctx.engine.data_bytes(),
        "disk_bytes": disk,
        "garbage_events": garbage,
        "projection_heap_bytes": heap,
        "resident_bytes": rss,
        "policy": joblog::domain::config::KEYS.iter().map(|k| json!({"key": k.name, "value": policy.value(k.name), "set": policy.get_set(k.name).is_some()})).collect::<Vec<_>>(),
        "backoff": if !org_wide { Value::Null } else { json!(backoff.iter().map(|b| json!({"workflow": b.workflow, "consecutive_failures": b.consecutive_failures, "held_until": b.held_until.map(|t| t.to_rfc3339())})).collect::<Vec<_>>()) },
    });
    if ctx.json {
        return Ok(pretty(&v));
    }
    let mut out = format!("{jobs} jobs\n\n");
    let rows: Vec<Vec<String>> = by_status
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(s, n)| vec![s.state().name().into(), s.reason().name().into(), n.to_string()])
        .collect();
    out.push_str(&table(&["State", "Status Reason", "Jobs"], &rows));
    out.push('\n');
    let rows: Vec<Vec<String>> = by_type.iter().map(|(t, n)| vec![t.display_name(), n.to_string()]).collect();
    out.push_str(&table(&["System Job Type", "Jobs"], &rows));
    out.push_str(&format!(
        "\nlog: {} segments, last event #{last_seq}, {} bytes of events, {} bytes on disk; {garbage} events of deleted jobs awaiting compaction\nmemory: projection {} bytes ({} per job), resident {} bytes\n",
        segments.len(),
        ctx.engine.data_bytes(),
        disk,
        heap,
        heap.checked_div(stored).unwrap_or(0),
        rss
    ));
    if !org_wide {
        out.push_str("back-off: shown to users who may read every job\n");
    } else if backoff.is_empty() {
        out.push_str("back-off (the whole organisation's workflows): no workflow is failing\n");
    } else {
        let rows: Vec<Vec<String>> = backoff
            .iter()
            .map(|b| {
                vec![
                    b.workflow.clone(),
                    b.consecutive_failures.to_string(),
                    b.held_until.map(|t| t.to_rfc3339()).unwrap_or_else(|| "—".into()),
                ]
            })
            .collect();
        out.push_str(&format!(
            "back-off (the whole organisation's workflows):\n{}",
            table(&["Workflow", "Failures in a row", "Held until"], &rows)
        ));
    }
    out.push_str(&format!("\npolicy in force (`joblog config set KEY VALUE` changes it):\n{}", policy_table(&policy)));
    Ok(out)
}
