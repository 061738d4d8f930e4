//! Each command against an open engine. Every change goes through a
//! `Session` of the acting user, so the engine checks every privilege; a
//! refused command changes nothing.

use joblog::domain::{DomainError, OperationType, Regarding, State, StatusReason, Timestamp};
use joblog::engine::{LostRange, NewJob, Reads, SalvageOptions, Session, UserAction};
use joblog::projection::query::{Cursor, Filter};
use joblog::service::command_data_with_timeout;
use serde_json::{json, Value};
use uuid::Uuid;

use super::args::{
    ActArgs, BulkDeleteCmd, Command, ConfigCmd, CriteriaArgs, Filters, ListArgs, RoleCmd, SubmitArgs, TokenCmd,
    UnitCmd, UserCmd, WorkflowCmd,
};
use super::output::{history_json, job_detail, job_json, pretty};
use joblog_server::native::store;

use super::{Ctx, Failure, Output};
use joblog_server::native::admin;

/// Jobs a `list` prints when `--limit` is not given.
pub const DEFAULT_LIMIT: usize = 100;

pub fn execute(ctx: &Ctx<'_>, cmd: &Command) -> Output {
    // The acting user must exist and be active: otherwise permission
    // denied (exit 5, docs/cli.md "Exit codes"), not a usage error.
    let session = ctx.engine.session(&ctx.user).map_err(|e| user_failure(e, &ctx.user))?;
    let s = &session;
    match cmd {
        Command::User(c) => user(ctx, s, cmd, c),
        Command::Role(RoleCmd::Add { name, privileges }) => {
            super::render::output(cmd, admin::add_role(s, &role_args(name, privileges)?)?, ctx.json)
        }
        Command::BusinessUnit(UnitCmd::Add { name, parent }) => {
            let a = admin::AddBusinessUnit { name: name.clone(), parent: parent.clone() };
            super::render::output(cmd, admin::add_business_unit(s, &a)?, ctx.json)
        }
        Command::Workflow(c) => workflow(ctx, s, cmd, c),
        Command::Submit(a) => {
            let job = s.create(submit_spec(a)?)?;
            job_out(ctx, &job)
        }
        Command::Import { file } => {
            let bar = super::progress(ctx.interactive, 0, "importing");
            let shown = file.display().to_string();
            let n = joblog_server::import::import_file(ctx.engine, s, file, &shown, &mut |written, total| {
                bar.set_length(total);
                bar.set_position(written);
            });
            bar.finish_and_clear();
            let n = n.map_err(|e| import_failure(e, ctx.json))?;
            super::render::output(cmd, joblog_server::import::imported_json(n), ctx.json)
        }
        Command::List(_) | Command::Show { .. } => reads(s, cmd, ctx.json, &|note| ctx.note(note)),
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
            let until = opt_time(until)?;
            let filter = filter(filters)?;
            let bar = super::spinner(ctx.interactive, "replaying the log");
            let v = store::replay(ctx.engine, s, until, &filter, limit.unwrap_or(DEFAULT_LIMIT))?;
            bar.finish_and_clear();
            super::render::output(cmd, v, ctx.json)
        }
        Command::Verify => {
            let bar = super::progress(ctx.interactive, ctx.engine.state().job_count() as u64, "verifying");
            let v = store::verify(ctx.engine, s, &mut |n| bar.set_position(n))?;
            bar.finish_and_clear();
            super::render::output(cmd, v, ctx.json)
        }
        Command::Stats => super::render::output(cmd, store::stats(ctx.engine, s)?, ctx.json),
        Command::Resubmit { id, owner } => {
            let old = parse_id(id)?;
            let job = s.resubmit(old, owner.as_deref())?;
            let mut v = job_json(&job);
            v["resubmission_of"] = json!(old.to_string());
            super::render::output(&Command::Resubmit { id: id.clone(), owner: owner.clone() }, v, ctx.json)
        }
        Command::Delete { ids } => delete(ctx, s, cmd, ids),
        Command::Config(c) => config(ctx, s, cmd, c),
        Command::Token(c) => token(ctx, s, cmd, c),
        Command::Compact => {
            let bar = super::spinner(ctx.interactive, "compacting");
            let v = store::compact(ctx.engine, s)?;
            bar.finish_and_clear();
            super::render::output(cmd, v, ctx.json)
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
        Command::Submit(a) => Ok(submit_spec(a)?.validate()?),
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

/// The job `joblog submit` asks for, from its arguments alone.
fn submit_spec(a: &SubmitArgs) -> Result<NewJob, Failure> {
    let mut spec = NewJob::new(&a.name, OperationType::parse(&a.operationtype)?);
    spec.workflow = a.workflow.clone();
    spec.regarding = a.regarding.as_deref().map(Regarding::parse).transpose()?;
    spec.owner = a.owner.clone();
    spec.postponeuntil = a.postpone_until.as_deref().map(Timestamp::parse).transpose()?;
    spec.dependency_token = a.dependency_token.clone();
    if let Some(c) = &a.command {
        spec.data = command_data_with_timeout(c, a.timeout);
    }
    Ok(spec)
}

/// An import that wrote nothing (or stopped part way), as the command
/// line reports it: a bad-lines refusal lists every bad line on stdout.
pub fn import_failure(e: joblog_server::import::ImportError, json: bool) -> Failure {
    use joblog_server::import::{bad_lines_json, ImportError as E};
    let message = e.to_string();
    match e {
        E::Unreadable { .. } => Failure { code: 1, message, stdout: String::new() },
        E::LineTooLong { .. } | E::TooMany { .. } => Failure::usage(message),
        E::BadLines { errors, .. } => Failure {
            code: 2,
            message,
            stdout: if json { pretty(&bad_lines_json(&errors)) } else { errors.join("\n") + "\n" },
        },
        E::Write { source, written, total } => {
            let mut f = Failure::from(source);
            if written > 0 {
                f.message = format!("{} (the first {written} of {total} jobs were written)", f.message);
            }
            f
        }
    }
}

/// Prints `v` as JSON, or `text`.
fn done(ctx: &Ctx<'_>, v: Value, text: String) -> Output {
    Ok(if ctx.json { pretty(&v) } else { text })
}

fn job_out(ctx: &Ctx<'_>, job: &joblog::domain::Job) -> Output {
    Ok(job_text(job, None, ctx.json))
}

fn job_text(job: &joblog::domain::Job, history: Option<&[joblog::engine::HistoryEntry]>, json: bool) -> String {
    let mut v = job_json(job);
    if let Some(h) = history {
        v["history"] = history_json(h);
    }
    if json {
        pretty(&v)
    } else {
        job_detail(&v)
    }
}

pub fn parse_id(id: &str) -> Result<Uuid, Failure> {
    id.parse().map_err(|_| Failure::usage(format!("not a job id: {id:?}")))
}

/// The ids of `joblog delete`, each a job id, at most `MAX_DELETE_IDS`.
pub fn delete_ids(ids: &[String]) -> Result<Vec<Uuid>, Failure> {
    let max = joblog::domain::MAX_DELETE_IDS;
    if ids.len() > max {
        return Err(Failure::usage(format!("{} ids: one deletion takes at most {max}", ids.len())));
    }
    ids.iter().map(|id| parse_id(id)).collect()
}

/// `joblog delete ID…`: the jobs deleted, all or none.
fn delete(ctx: &Ctx<'_>, s: &Session, cmd: &Command, ids: &[String]) -> Output {
    let deleted = s.delete_jobs(&delete_ids(ids)?)?;
    super::render::output(cmd, joblog_server::json::deleted_json(&deleted), ctx.json)
}

pub(crate) fn parse_token_id(id: &str) -> Result<Uuid, Failure> {
    id.parse().map_err(|_| Failure::usage(format!("not a token id: {id:?} (`joblog token list` shows them)")))
}

/// `token create|list|revoke` (docs/cli.md, "Tokens"). The secret is
/// printed by `create` only, and is nowhere in the store.
fn token(ctx: &Ctx<'_>, s: &Session, cmd: &Command, c: &TokenCmd) -> Output {
    let v = match c {
        TokenCmd::Create { owner, name, expires_in } => admin::create_token(s, &token_args(owner, name, *expires_in))?,
        TokenCmd::List => admin::list_tokens(ctx.engine, s)?,
        TokenCmd::Revoke { id } => admin::revoke_token(s, parse_token_id(id)?)?,
    };
    super::render::output(cmd, v, ctx.json)
}

/// `token create`'s request.
pub(crate) fn token_args(owner: &str, name: &Option<String>, expires_in: Option<u32>) -> admin::CreateToken {
    admin::CreateToken { user: owner.to_string(), name: name.clone(), expires_in_days: expires_in }
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

fn user(ctx: &Ctx<'_>, s: &Session, cmd: &Command, c: &UserCmd) -> Output {
    let e = ctx.engine;
    let v = match c {
        UserCmd::Add { name, roles, business_unit, os_user } => {
            admin::add_user(e, s, &user_args(name, roles, business_unit, os_user)?)?
        }
        UserCmd::Map { name, os_user, none } => admin::map_user(e, s, name, &map_args(os_user, *none)?)?,
        UserCmd::Deactivate { name } => admin::deactivate_user(e, s, name)?,
        UserCmd::Reactivate { name } => admin::reactivate_user(e, s, name)?,
        UserCmd::List => admin::list_users(e)?,
    };
    super::render::output(cmd, v, ctx.json)
}

/// `user add`'s request: the OS user's name resolved here, to its uid.
pub(crate) fn user_args(
    name: &str,
    roles: &[String],
    business_unit: &str,
    os_user: &Option<String>,
) -> Result<admin::AddUser, Failure> {
    Ok(admin::AddUser {
        name: name.to_string(),
        business_unit: business_unit.to_string(),
        roles: roles.to_vec(),
        os_uid: os_user.as_deref().map(super::server::os_uid).transpose()?,
    })
}

/// `user map`'s request: a uid, or none with `--none`.
pub(crate) fn map_args(os_user: &Option<String>, none: bool) -> Result<admin::MapUser, Failure> {
    let uid = if none { None } else { os_user.as_deref().map(super::server::os_uid).transpose()? };
    Ok(admin::MapUser { os_uid: Some(uid) })
}

/// `role add`'s request: each `--privilege PRIV:DEPTH` split.
pub(crate) fn role_args(name: &str, privileges: &[String]) -> Result<admin::AddRole, Failure> {
    let privileges = privileges
        .iter()
        .map(|p| {
            let (privilege, depth) = p
                .split_once(':')
                .ok_or_else(|| Failure::usage(format!("--privilege {p:?}: use PRIV:DEPTH, e.g. read:organization")))?;
            Ok(admin::PrivilegeAt { privilege: privilege.to_string(), depth: depth.to_string() })
        })
        .collect::<Result<_, Failure>>()?;
    Ok(admin::AddRole { name: name.to_string(), privileges })
}

fn workflow(ctx: &Ctx<'_>, s: &Session, cmd: &Command, c: &WorkflowCmd) -> Output {
    let v = match c {
        WorkflowCmd::Add { id, name, owner } => {
            let a = admin::AddWorkflow { id: id.clone(), name: name.clone(), owner: owner.clone() };
            admin::add_workflow(s, &a)?
        }
        WorkflowCmd::SetOwner { id, owner } => {
            admin::set_workflow_owner(s, id, &admin::SetOwner { owner: owner.clone() })?
        }
        WorkflowCmd::List => admin::list_workflows(ctx.engine)?,
    };
    super::render::output(cmd, v, ctx.json)
}

/// Why the acting user may not act: one who does not exist or is
/// deactivated is permission denied (exit 5, docs/cli.md "Exit codes"),
/// not a usage error.
pub fn user_failure(e: joblog::Error, user: &str) -> Failure {
    match e {
        joblog::Error::Domain(DomainError::NotFound { .. }) => {
            Failure { code: 5, message: format!("no user named {user:?} (give --as USER)"), stdout: String::new() }
        }
        joblog::Error::Domain(e @ DomainError::UserDeactivated { .. }) => {
            Failure { code: 5, message: e.to_string(), stdout: String::new() }
        }
        e => Failure::from(e),
    }
}

/// `list` and `show`, by a session of the engine or by a reader of a store
/// opened for those reads alone (`joblog::engine::Views`); `note`: a line
/// for the caller's stderr.
pub fn reads(s: &impl Reads, cmd: &Command, json: bool, note: &dyn Fn(String)) -> Output {
    match cmd {
        Command::List(a) => list(s, a, json, note),
        Command::Show { id, history } => {
            let job = s.get(parse_id(id)?)?;
            let h = if *history { Some(s.history(job.id)?) } else { None };
            Ok(job_text(&job, h.as_deref(), json))
        }
        _ => Err(Failure::usage("only list and show are answered here")),
    }
}

fn list(s: &impl Reads, a: &ListArgs, json: bool, note: &dyn Fn(String)) -> Output {
    let f = filter(&a.filters)?;
    if a.count {
        let n = s.count(&f)?;
        return Ok(if json { pretty(&json!({"count": n})) } else { format!("{n}") });
    }
    let after: Option<Cursor> = a
        .after
        .as_deref()
        .map(|c| c.parse().map_err(|_| Failure::usage(format!("not a cursor: {c:?}"))))
        .transpose()?;
    let (jobs, next) = s.list(&f, after.as_ref(), a.limit.unwrap_or(DEFAULT_LIMIT))?;
    let jobs: Vec<Value> = jobs.iter().map(job_json).collect();
    let (out, cursor) = super::render::list(&jobs, next.map(|c| c.to_string()).as_deref(), json);
    if let Some(cursor) = cursor {
        note(cursor);
    }
    Ok(out)
}

/// What an action names: one job, or every job matching a filter.
pub enum Target {
    One(Uuid),
    Matching(Filter),
}

pub fn act_target(a: &ActArgs) -> Result<Target, Failure> {
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
        Target::One(id) => job_out(ctx, &s.act(id, action)?),
        Target::Matching(f) => {
            let o = if a.dry_run { s.preview_on_matching(action, &f)? } else { s.act_on_matching(action, &f)? };
            bulk_out(ctx, &o, action, a.dry_run)
        }
    }
}

/// The action's name in the native API's paths (`/api/v1/jobs/{id}/cancel`).
pub fn action_name(action: UserAction) -> &'static str {
    match action {
        UserAction::Cancel => "cancel",
        UserAction::Pause => "pause",
        UserAction::Resume => "resume",
        UserAction::Postpone(_) => "postpone",
    }
}

/// A bulk action's summary (`render::bulk`).
fn bulk_out(ctx: &Ctx<'_>, o: &joblog::engine::BulkOutcome, action: UserAction, dry_run: bool) -> Output {
    let v = joblog_server::json::bulk_json(o, dry_run);
    Ok(if ctx.json { pretty(&v) } else { super::render::bulk(&v, action_name(action)) })
}

/// The number `config set KEY VALUE` gives, checked as far as the
/// arguments alone allow (the engine checks it again against the policy).
pub(crate) fn config_value(key: &str, value: &str) -> Result<u64, Failure> {
    let k = joblog::domain::policy_key(key)?;
    value.trim().parse().map_err(|_| {
        Failure::usage(format!(
            "{key} = {value:?}: give a whole number from {} to {} ({}); `joblog config unset {key}` returns it to its default",
            k.min, k.max, k.unit
        ))
    })
}

/// `joblog config …`: the service's policy for this store.
fn config(ctx: &Ctx<'_>, s: &Session, cmd: &Command, c: &ConfigCmd) -> Output {
    let v = match c {
        ConfigCmd::Show { until } => admin::show_config(ctx.engine, &admin::ShowConfig { until: until.clone() })?,
        ConfigCmd::Set { key, value } => admin::set_config(ctx.engine, s, key, Some(config_value(key, value)?))?,
        ConfigCmd::Unset { key } => admin::set_config(ctx.engine, s, key, None)?,
    };
    super::render::output(cmd, v, ctx.json)
}

/// The command line's criteria as the native API takes them.
pub fn criteria(c: &CriteriaArgs) -> store::Criteria {
    store::Criteria { types: c.types.clone(), statuses: c.reasons.clone(), older_than_days: c.older_than }
}

/// `bulk-delete now|create|list`: computed by `store`, printed by `render`.
fn bulk_delete(ctx: &Ctx<'_>, s: &Session, c: &BulkDeleteCmd) -> Output {
    let v = match c {
        BulkDeleteCmd::Now { criteria: args, limit } => {
            let bar = super::spinner(ctx.interactive, "deleting and compacting");
            let v = store::delete_now(s, &store::DeleteNow { criteria: criteria(args), limit: *limit });
            bar.finish_and_clear();
            v?
        }
        BulkDeleteCmd::Create { name, criteria: args, start, recurrence } => store::create_bulk_deletion(
            s,
            &store::NewBulkDeletion {
                name: name.clone(),
                criteria: criteria(args),
                start: start.clone(),
                recurrence: recurrence.clone(),
            },
        )?,
        BulkDeleteCmd::List => store::bulk_deletions(s)?,
    };
    super::render::output(&Command::BulkDelete(c.clone()), v, ctx.json)
}

/// When the store does not even open, verify says why and checks its
/// files one by one, read-only.
pub fn verify_unopenable(g: &super::args::Global, e: joblog::Error) -> Output {
    super::render::verify(&store::verify_json(&joblog::engine::verify_unopenable(&g.data, &e)), g.json)
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
