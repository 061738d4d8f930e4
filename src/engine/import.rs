//! Bringing history in: `import` (job rows kept as they are) and `load`
//! (job events with their own times and actors), each one atomic batch
//! checked as if it happened live. Reading files in other formats is the
//! command line's (`cli/src/import.rs`).

use super::write::{Encoded, Pending};
use super::Session;
use crate::domain::{transition_by, DomainError, Envelope, Event, Job, Privilege, Timestamp, EVENT_VERSION};
use crate::error::Error;
use crate::projection::{Projection, PREFETCH_AHEAD};

impl Session {
    /// Historical jobs, in any state and any past times, kept as they are
    /// (ids included), in one atomic batch. Needs Create at Organization depth.
    /// A bulk batch, as [`Session::load`]'s.
    pub fn import(&self, jobs: Vec<Job>) -> Result<usize, Error> {
        self.engine.commit_bulk(self.actor(), |state, now| {
            state.directory().check(&self.user, Privilege::Create, None)?;
            let mut seen = std::collections::HashSet::new();
            let dir = state.directory();
            for j in &jobs {
                j.validate()?;
                self.check_command(state, &j.data)?;
                // Owners and business units come from the directory, like a
                // live job's.
                dir.user(&j.owner)?;
                if !dir.has_business_unit(&j.owningbusinessunit) {
                    return Err(
                        DomainError::NotFound { kind: "business unit", name: j.owningbusinessunit.clone() }.into()
                    );
                }
                if j.modifiedon > now {
                    return Err(DomainError::Invalid {
                        what: "job",
                        reason: format!("{} is modified in the future", j.id),
                    }
                    .into());
                }
                if state.status_of(j.id)?.is_some() || !seen.insert(j.id) {
                    return Err(DomainError::AlreadyExists { kind: "job", name: j.id.to_string() }.into());
                }
            }
            let n = jobs.len();
            Ok((jobs.into_iter().map(|j| Event::JobCreated(Box::new(j))).collect(), n))
        })
    }

    /// Loads job events recorded elsewhere (a history being brought across,
    /// a benchmark's workload) as one atomic batch: job creations and
    /// transitions with their own times and actors. Each is checked as if it
    /// happened live: times never go backwards, a job is created once, and
    /// every transition starts from the job's status at that point and is
    /// one the state machine allows. Needs Create at Organization depth.
    /// Returns how many events were appended.
    ///
    /// A bulk batch: one at least a quarter the size of the jobs held in
    /// memory leaves the indices to be built once, by the next read (or
    /// live write) rather than kept up at each event, and the loads that
    /// follow it without a read in between keep them so
    /// (ARCHITECTURE.md, "A data directory"). Loading a long history in
    /// batches of thousands of events, with no reads between them, is
    /// the fast way; the first read after it pays for the indices.
    pub fn load(&self, events: Vec<Envelope>) -> Result<usize, Error> {
        self.engine.commit_envelopes_bulk(|state, now| {
            // Checked on this core while another encodes them (a large load).
            let (encoded, ()) = Encoded::alongside(&events, || self.check_load(state, now, &events))?;
            let n = events.len();
            Ok((events, encoded, n))
        })
    }

    /// Checks loaded events as `load` says, against `state` at `now`.
    fn check_load(&self, state: &Projection, now: Timestamp, events: &[Envelope]) -> Result<(), Error> {
        state.directory().check(&self.user, Privilege::Create, None)?;
        if let Some(future) = events.iter().find(|e| e.at > now) {
            return Err(DomainError::Invalid {
                what: "event",
                reason: format!("stamped {}, after now ({now})", future.at),
            }
            .into());
        }
        if let Some(old) = events.iter().find(|e| e.version != EVENT_VERSION) {
            return Err(DomainError::Invalid {
                what: "event",
                reason: format!(
                    "schema version {}: this build writes only version {EVENT_VERSION} (older versions are read, never written)",
                    old.version
                ),
            }
            .into());
        }
        let mut newest = state.last_at();
        let mut pending = Pending::new(state);
        for (k, env) in events.iter().enumerate() {
            if let Some(ahead) = events.get(k + PREFETCH_AHEAD) {
                state.prefetch(ahead);
            }
            if newest.is_some_and(|n| env.at < n) {
                return Err(Error::TimeWentBackwards {
                    at: env.at.to_rfc3339(),
                    newest: newest.expect("checked").to_rfc3339(),
                });
            }
            newest = Some(env.at);
            match &env.event {
                Event::JobCreated(job) => {
                    job.validate()?;
                    self.check_command(state, &job.data)?;
                    if pending.get(job.id)?.is_some() {
                        return Err(DomainError::AlreadyExists { kind: "job", name: job.id.to_string() }.into());
                    }
                    pending.created(job);
                }
                Event::Transition(t) => {
                    let before = pending.get(t.job)?.ok_or_else(|| DomainError::job_not_found(t.job))?;
                    let (current, op) = (before.status, before.operationtype);
                    if current != t.from {
                        return Err(DomainError::Refused {
                            job: t.job,
                            action: t.action,
                            current,
                            needs: t.from.to_string(),
                        }
                        .into());
                    }
                    let to = transition_by(&env.actor, t.job, op, current, t.action)?;
                    if to != t.to {
                        return Err(DomainError::Invalid {
                            what: "event",
                            reason: format!("{} of job {} leads to {to}, not {}", t.action.name(), t.job, t.to),
                        }
                        .into());
                    }
                    pending.moved(t)?;
                }
                other => {
                    return Err(
                        DomainError::Invalid { what: "event", reason: format!("not a job event: {other:?}") }.into()
                    )
                }
            }
        }
        Ok(())
    }
}
