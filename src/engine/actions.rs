//! What a user asks of jobs: creating them (`NewJob`), the four actions
//! (`UserAction`: `act`, and `act_on_matching` / `preview_on_matching` over
//! a filter, with their `BulkOutcome`), and `resubmit`. Reads are in
//! `reads.rs`; administration in `admin.rs`.

use uuid::Uuid;

use super::{visibility, Session};
use crate::domain::{
    transition, Action, DomainError, Event, Job, OperationType, Privilege, Regarding, Timestamp, Transition,
};
use crate::error::Error;
use crate::projection::query::{Cursor, Filter};
use crate::projection::Projection;

/// A job to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    /// The System Job Name (at most `MAX_NAME_CHARS` characters, one line).
    pub name: String,
    /// The System Job Type.
    pub operationtype: OperationType,
    /// The workflow definition that starts it; its owner owns the job
    /// unless `owner` says otherwise.
    pub workflow: Option<String>,
    /// The row the job is about (`contact:42`).
    pub regarding: Option<Regarding>,
    /// The user the job runs as (the session's user when `None` and no
    /// workflow says otherwise); creating it needs Create at a depth that
    /// covers that user.
    pub owner: Option<String>,
    /// Run only after this time.
    pub postponeuntil: Option<Timestamp>,
    /// Jobs that share a token run one at a time, oldest first.
    pub dependency_token: Option<String>,
    /// Links the jobs caused by one request.
    pub correlation_id: Option<Uuid>,
    /// How many workflow calls led to this job (1 for a job nobody else
    /// started); the loop guard cancels a job deeper than its limit.
    pub depth: u32,
    /// The job's input, opaque to the engine (at most 1 MiB); the conventions
    /// joblog reads are in `src/domain/jobdata.rs`.
    pub data: Vec<u8>,
}

impl NewJob {
    /// A job named `name` of type `operationtype`, depth 1, everything else
    /// unset.
    pub fn new(name: &str, operationtype: OperationType) -> Self {
        Self {
            name: name.to_string(),
            operationtype,
            workflow: None,
            regarding: None,
            owner: None,
            postponeuntil: None,
            dependency_token: None,
            correlation_id: None,
            depth: 1,
            data: Vec::new(),
        }
    }

    /// Checks the spec's own columns against their limits
    /// (`docs/limits.md`), as creating the job will, without a store: what
    /// a caller can refuse before it opens (or creates) one. Creating
    /// checks more (the owner, the workflow, the privilege, the time).
    pub fn validate(&self) -> Result<(), DomainError> {
        let owner = self.owner.clone().unwrap_or_else(|| "admin".into());
        self.clone().into_job(&owner, "root", Timestamp::from_micros(0)).validate()
    }

    /// The job this spec makes, owned by `owner` of `unit`, created `now`
    /// (not yet checked).
    fn into_job(self, owner: &str, unit: &str, now: Timestamp) -> Job {
        let mut job = Job::new(&self.name, self.operationtype, owner, unit, now);
        job.workflow = self.workflow;
        job.regarding = self.regarding;
        job.postponeuntil = self.postponeuntil;
        job.dependencytoken = self.dependency_token;
        job.correlationid = self.correlation_id;
        job.depth = self.depth;
        job.data = self.data;
        job
    }
}

/// The four things a user may ask of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserAction {
    /// Cancel: a job not started is Canceled; a running one Canceling.
    Cancel,
    /// Pause a running job (Pausing until its run stops).
    Pause,
    /// Make a Suspended job Ready now.
    Resume,
    /// Do not run the job before this time.
    Postpone(Timestamp),
}

impl UserAction {
    fn action(self) -> Action {
        match self {
            UserAction::Cancel => Action::Cancel,
            UserAction::Pause => Action::Pause,
            UserAction::Resume => Action::Resume,
            UserAction::Postpone(_) => Action::Postpone,
        }
    }
}

/// What an action on every matching job did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BulkOutcome {
    /// How many jobs matched the filter (and the user can see).
    pub matched: usize,
    /// The jobs changed (or, in a preview, that would be).
    pub changed: Vec<Uuid>,
    /// Jobs left as they were, with why: [`DomainError::Denied`] (not the
    /// user's to change), [`DomainError::Refused`] (the status does not
    /// allow it), [`DomainError::PlatformGenerated`], [`DomainError::Invalid`]
    /// (e.g. a postpone time not after now), …
    pub refused: Vec<(Uuid, DomainError)>,
    /// How many were refused for each kind of reason ("already
    /// completed", …): the summary of `refused`.
    pub refused_by: std::collections::BTreeMap<&'static str, usize>,
}

/// The kind of reason a bulk action left a job alone, for its summary.
fn refusal_kind(e: &DomainError) -> &'static str {
    match e {
        DomainError::Refused { current, .. } if current.is_completed() => "already completed",
        DomainError::Refused { .. } => "not in a status that allows it",
        DomainError::PlatformGenerated { .. } => "generated by the platform",
        DomainError::Denied { .. } => "not the user's to change",
        DomainError::Invalid { .. } => "invalid for the job",
        DomainError::NotFound { .. } => "not found or not visible",
        _ => "other",
    }
}

impl Session {
    /// Creates one job.
    pub fn create(&self, spec: NewJob) -> Result<Job, Error> {
        Ok(self.create_many(vec![spec])?.remove(0))
    }

    /// Creates jobs in one atomic batch: all of them, or none if any is refused.
    pub fn create_many(&self, specs: Vec<NewJob>) -> Result<Vec<Job>, Error> {
        self.engine.commit(self.actor(), |state, now| {
            let jobs = specs.into_iter().map(|s| self.new_job(state, s, now)).collect::<Result<Vec<_>, _>>()?;
            let events = jobs.iter().map(|j| Event::JobCreated(Box::new(j.clone()))).collect();
            Ok((events, jobs))
        })
    }

    fn new_job(&self, state: &Projection, spec: NewJob, now: Timestamp) -> Result<Job, Error> {
        let dir = state.directory();
        let workflow = match &spec.workflow {
            Some(w) => {
                Some(state.workflow(w).ok_or_else(|| DomainError::NotFound { kind: "workflow", name: w.clone() })?)
            }
            None => None,
        };
        let owner = spec.owner.as_deref().or(workflow.map(|w| w.owner.as_str())).unwrap_or(&self.user);
        let unit = dir.user(owner)?.business_unit.clone();
        dir.check(&self.user, Privilege::Create, Some((owner, &unit)))?;
        self.check_command(state, &spec.data)?;
        if let Some(t) = spec.postponeuntil {
            if t <= now {
                return Err(DomainError::Invalid {
                    what: "postpone time",
                    reason: format!("{t} is not after now ({now})"),
                }
                .into());
            }
        }
        let owner = owner.to_string();
        let job = spec.into_job(&owner, &unit, now);
        job.validate()?;
        Ok(job)
    }

    /// Cancel, Pause, Resume or Postpone one job; returns it afterwards.
    pub fn act(&self, id: Uuid, action: UserAction) -> Result<Job, Error> {
        self.act_if(id, action, |_| true)
    }

    /// [`Session::act`] on a condition: `unchanged` is given the job's
    /// `modifiedon` under the write lock, in the same write as the change
    /// (an HTTP `If-Match` on the row's tag); when it says no, nothing is
    /// written and the answer is [`DomainError::Changed`]. The condition is
    /// asked only of a job this user may write (one they may not change is
    /// [`DomainError::Denied`], as without it, so a tag is never told to
    /// them), and before the state machine (a job changed since is
    /// `Changed` even when the action would now be refused).
    pub fn act_if(&self, id: Uuid, action: UserAction, unchanged: impl Fn(Timestamp) -> bool) -> Result<Job, Error> {
        self.engine.commit_then(
            self.actor(),
            super::write::Batching::Live,
            |state, now| {
                let t = self.user_transition(state, id, action, now, &unchanged)?;
                Ok((vec![Event::Transition(t)], ()))
            },
            |state, log, ()| super::reads::get_in(state, log, &self.user, id),
        )
    }

    /// Submits a Failed or Canceled job again (like Sidekiq's and Oban's
    /// "retry"): a new Ready job with the old one's definition (name, type,
    /// workflow, regarding, dependency token, depth, data), owned by
    /// `owner` or else by this user, linked by `correlationid` (the old
    /// job's, or its id when it had none). Both histories say so: the new
    /// job's creation carries "resubmission of OLD", and the old job gets a
    /// `JobResubmitted` line. Needs Write on the old job (its history gains a line), Create for the new
    /// owner, and RunCommand when the job runs a command. A job that is not
    /// Completed, or that succeeded, is refused
    /// ([`DomainError::NotResubmittable`]); so is a Bulk Delete job (create
    /// one with [`Session::create_bulk_delete`]). One atomic batch.
    pub fn resubmit(&self, id: Uuid, owner: Option<&str>) -> Result<Job, Error> {
        let old = self.get(id)?;
        let reason = old.status.reason();
        let why = if !old.status.is_completed() {
            Some(format!("it is {}, not Completed: cancel it first, or wait for it to end", old.status))
        } else if reason == crate::domain::StatusReason::Succeeded {
            Some("it succeeded; submit a new job to run it again".to_string())
        } else if old.operationtype == OperationType::BULK_DELETE {
            Some("it is a Bulk Delete job; create one with `joblog bulk-delete create`".to_string())
        } else {
            None
        };
        if let Some(why) = why {
            return Err(DomainError::NotResubmittable { job: id, why }.into());
        }
        let new = self.engine.commit(self.actor(), |state, now| {
            // Checked again under the write lock: the job may have been
            // deleted since.
            if state.status_of(id)?.is_none() {
                return Err(Error::from(DomainError::job_not_found(id)));
            }
            // A line in the old job's history: Write on it, as any action.
            state.directory().check(&self.user, Privilege::Write, Some((&old.owner, &old.owningbusinessunit)))?;
            // Once: a second resubmission (a slip, a script run twice)
            // would run the job twice.
            for (_, env) in state.history(id, &self.engine.inner.log)? {
                if let Event::JobResubmitted { new, .. } = env.event {
                    let why = format!("it was already resubmitted as {new}; resubmit that one if it failed too");
                    return Err(DomainError::NotResubmittable { job: id, why }.into());
                }
            }
            // Owner and workflow as `submit` decides them: a workflow that
            // no longer exists is refused, a workflow's run is its owner's.
            let mut spec = NewJob::new(&old.name, old.operationtype);
            spec.workflow = old.workflow.clone();
            spec.regarding = old.regarding.clone();
            spec.owner = owner.map(str::to_string);
            spec.dependency_token = old.dependencytoken.clone();
            spec.correlation_id = Some(old.correlationid.unwrap_or(old.id));
            spec.depth = old.depth;
            spec.data = old.data.clone();
            let mut job = self.new_job(state, spec, now)?;
            job.message = Some(format!("resubmission of {id}"));
            job.validate()?;
            let events = vec![Event::JobCreated(Box::new(job.clone())), Event::JobResubmitted { job: id, new: job.id }];
            Ok((events, job))
        })?;
        Ok(new)
    }

    /// The same action on every job matching `filter` that the user can
    /// see; the ones it may not write, or whose status refuses the action,
    /// are reported and left alone. One atomic batch.
    pub fn act_on_matching(&self, action: UserAction, filter: &Filter) -> Result<BulkOutcome, Error> {
        self.engine.commit(self.actor(), |state, now| self.plan_on_matching(state, action, filter, now))
    }

    /// The same action on one page of the jobs matching `filter` that the
    /// user can see: at most `limit`, below `after` (newest `createdon`
    /// first), so that a long bulk operation goes a page at a time, each
    /// page one atomic batch, and can stop between pages. `note` becomes
    /// each changed job's history message (which operation did it). Returns
    /// the page's outcome and where the next page starts (`None`: done).
    pub fn act_on_page(
        &self,
        action: UserAction,
        filter: &Filter,
        after: Option<&Cursor>,
        limit: usize,
        note: Option<&str>,
    ) -> Result<(BulkOutcome, Option<Cursor>), Error> {
        self.engine.commit(self.actor(), |state, now| {
            let page = state.query(filter, &visibility(state, &self.user), after, limit.max(1))?;
            let (mut events, out) = self.plan_on_ids(state, action, page.ids, now)?;
            if let Some(note) = note {
                for e in &mut events {
                    if let Event::Transition(t) = e {
                        t.message = Some(note.to_string());
                    }
                }
            }
            Ok((events, (out, page.next)))
        })
    }

    /// The same action on each of `ids` (a selection of rows): the ones the
    /// user may not write, cannot see, or whose status refuses the action,
    /// are reported and left alone. One atomic batch.
    pub fn act_on_ids(&self, action: UserAction, ids: &[Uuid]) -> Result<BulkOutcome, Error> {
        self.engine.commit(self.actor(), |state, now| self.plan_on_ids(state, action, ids.iter().copied(), now))
    }

    /// What [`Session::act_on_ids`] would do now, without doing it.
    pub fn preview_on_ids(&self, action: UserAction, ids: &[Uuid]) -> Result<BulkOutcome, Error> {
        let state = self.engine.state();
        Ok(self.plan_on_ids(&state, action, ids.iter().copied(), self.engine.now())?.1)
    }

    /// What [`Session::act_on_matching`] would do now, without doing it:
    /// nothing is written (a dry run).
    pub fn preview_on_matching(&self, action: UserAction, filter: &Filter) -> Result<BulkOutcome, Error> {
        let state = self.engine.state();
        Ok(self.plan_on_matching(&state, action, filter, self.engine.now())?.1)
    }

    fn plan_on_matching(
        &self,
        state: &Projection,
        action: UserAction,
        filter: &Filter,
        now: Timestamp,
    ) -> Result<(Vec<Event>, BulkOutcome), Error> {
        let vis = visibility(state, &self.user);
        let mut ids = Vec::new();
        for page in state.pages(filter, &vis, 1024) {
            ids.extend(page?);
        }
        self.plan_on_ids(state, action, ids, now)
    }

    fn plan_on_ids(
        &self,
        state: &Projection,
        action: UserAction,
        ids: impl IntoIterator<Item = Uuid>,
        now: Timestamp,
    ) -> Result<(Vec<Event>, BulkOutcome), Error> {
        let mut out = BulkOutcome::default();
        let mut events = Vec::new();
        for id in ids {
            out.matched += 1;
            match self.user_transition(state, id, action, now, &|_| true) {
                Ok(t) => {
                    events.push(Event::Transition(t));
                    out.changed.push(id);
                }
                Err(Error::Domain(e)) => {
                    *out.refused_by.entry(refusal_kind(&e)).or_default() += 1;
                    out.refused.push((id, e));
                }
                Err(e) => return Err(e),
            }
        }
        Ok((events, out))
    }

    fn user_transition(
        &self,
        state: &Projection,
        id: Uuid,
        action: UserAction,
        now: Timestamp,
        unchanged: &dyn Fn(Timestamp) -> bool,
    ) -> Result<Transition, Error> {
        let target = state.write_target(id)?.ok_or_else(|| DomainError::job_not_found(id))?;
        state.directory().check(&self.user, Privilege::Write, Some((&target.owner, &target.owningbusinessunit)))?;
        // A condition is checked before the change itself, as HTTP checks
        // a precondition before the method (a stale tag is 412, not 400).
        check_unchanged(state, id, unchanged)?;
        let (from, postponeuntil, retrycount) = (target.status, target.postponeuntil, target.retrycount);
        let to = transition(id, target.operationtype, from, action.action())?;
        let postponeuntil = match action {
            UserAction::Postpone(t) if t <= now => {
                return Err(DomainError::Invalid {
                    what: "postpone time",
                    reason: format!("{t} is not after now ({now})"),
                }
                .into());
            }
            UserAction::Postpone(t) => Some(t),
            UserAction::Resume => None,
            UserAction::Cancel | UserAction::Pause => postponeuntil,
        };
        Ok(Transition {
            job: id,
            action: action.action(),
            from,
            to,
            postponeuntil,
            retrycount,
            errorcode: None,
            message: None,
        })
    }

    /// Creating a job whose data carries a shell command needs
    /// RunCommand (Organization depth): the command runs as the OS user
    /// who owns the data directory, whoever owns the job.
    pub(super) fn check_command(&self, state: &Projection, data: &[u8]) -> Result<(), Error> {
        if crate::domain::runs_command(data) {
            state.directory().check(&self.user, Privilege::RunCommand, None)?;
        }
        Ok(())
    }
}

/// A conditional change's check ([`Session::act_if`],
/// [`Session::delete_job_if`]): [`DomainError::Changed`] when `unchanged`
/// refuses the job's current `modifiedon`.
pub(super) fn check_unchanged(
    state: &Projection,
    id: Uuid,
    unchanged: &dyn Fn(Timestamp) -> bool,
) -> Result<(), Error> {
    let modifiedon = state.modifiedon(id)?.ok_or_else(|| DomainError::job_not_found(id))?;
    if unchanged(modifiedon) {
        Ok(())
    } else {
        Err(DomainError::Changed { job: id, modifiedon }.into())
    }
}
