//! The benchmark workload, one definition for every contender: N system jobs
//! over 120 days; 80% Workflow, 10% System Event, 10% Bulk Email; 95%
//! Completed (of those 85% Succeeded, 10% Failed, 5% Canceled), the rest
//! split between Ready, Suspended/Waiting and Locked/In Progress; owners
//! among 1,000 users, regarding rows among 500,000, workflows among 2,000.
//! Deterministic from a seed.
//!
//! Each job's events follow the state machine: created; locked; for a third
//! of the finished ones a wait (wait, wake, lock again); then succeed, fail,
//! or cancel (canceling, then stopped). That is about four events per job.
//! Events come out in time order across jobs, as the log requires.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use fastrand::Rng;

use joblog::domain::{
    Action, Actor, Envelope, Event, Job, OperationType, Regarding, Status, Timestamp, Transition, EVENT_VERSION,
    MICROS_PER_DAY,
};
use uuid::Uuid;

pub const USERS: u64 = 1_000;
pub const REGARDING_ROWS: u64 = 500_000;
pub const WORKFLOWS: u64 = 2_000;
pub const DAYS: i64 = 120;

pub fn user(i: u64) -> String {
    format!("user-{i}")
}

pub fn workflow(i: u64) -> String {
    format!("wf-{i}")
}

/// Generates the workload's events in time order.
pub struct Workload {
    rng: Rng,
    jobs: u64,
    next_job: u64,
    start: i64,
    step_us: i64,
    /// Events made but not yet due, earliest first.
    pending: BinaryHeap<Reverse<Staged>>,
    counter: u64,
}

/// An event waiting for its turn, ordered by (time, order made).
struct Staged(i64, u64, Envelope);

impl PartialEq for Staged {
    fn eq(&self, other: &Self) -> bool {
        (self.0, self.1) == (other.0, other.1)
    }
}

impl Eq for Staged {}

impl PartialOrd for Staged {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Staged {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.0, self.1).cmp(&(other.0, other.1))
    }
}

impl Workload {
    /// `jobs` jobs created evenly over the 120 days that end at `end`.
    pub fn new(jobs: u64, seed: u64, end: Timestamp) -> Self {
        let span = DAYS * MICROS_PER_DAY;
        Self {
            rng: Rng::with_seed(seed),
            jobs,
            next_job: 0,
            start: end.micros() - span,
            step_us: (span / jobs.max(1) as i64).max(1),
            pending: BinaryHeap::new(),
            counter: 0,
        }
    }

    fn stage(&mut self, at: i64, actor: Actor, event: Event) {
        self.counter += 1;
        let env = Envelope { version: EVENT_VERSION, at: Timestamp::from_micros(at), actor, event };
        self.pending.push(Reverse(Staged(at, self.counter, env)));
    }

    /// Stages every event of job `i`.
    fn make_job(&mut self, i: u64) {
        let r = &mut self.rng;
        let created = self.start + i as i64 * self.step_us;
        let op = match r.u64(..10) {
            0 => OperationType::SYSTEM_EVENT,
            1 => OperationType::BULK_EMAIL,
            _ => OperationType::WORKFLOW,
        };
        let owner = user(r.u64(..USERS));
        let mut job = Job::new(&format!("job {i}"), op, &owner, "root", Timestamp::from_micros(created));
        job.id = Uuid::from_u64_pair(created as u64, r.u64(..));
        job.regarding = Some(Regarding { table: "contact".into(), id: r.u64(..REGARDING_ROWS).to_string() });
        if op == OperationType::WORKFLOW {
            job.workflow = Some(workflow(r.u64(..WORKFLOWS)));
        }
        // Final status: 95% completed (85/10/5), then Ready, Waiting, In Progress.
        let roll = r.u64(..1000);
        let fate = match roll {
            0..=807 => Status::SUCCEEDED,
            808..=902 => Status::FAILED,
            903..=949 => Status::CANCELED,
            950..=966 => Status::READY,
            967..=983 => Status::WAITING,
            _ => Status::IN_PROGRESS,
        };
        let waits = r.u64(..3) == 0;
        let worker = Actor::Worker("bench-host".into());
        let id = job.id;
        let mut status = Status::READY;
        let mut t = created;
        let mut events: Vec<(i64, Actor, Event)> =
            vec![(created, Actor::User(owner.clone()), Event::JobCreated(Box::new(job)))];
        let mut go =
            |at: &mut i64, status: &mut Status, action: Action, to: Status, postpone: Option<i64>, by: Actor| {
                *at += 1_000_000;
                let tr = Transition {
                    job: id,
                    action,
                    from: *status,
                    to,
                    postponeuntil: postpone.map(Timestamp::from_micros),
                    retrycount: 0,
                    errorcode: (to == Status::FAILED).then_some(-2147220970),
                    message: (to == Status::FAILED)
                        .then(|| "The plug-in failed: the remote service did not answer".to_string()),
                };
                *status = to;
                events.push((*at, by, Event::Transition(tr)));
            };
        if fate != Status::READY {
            go(&mut t, &mut status, Action::Lock, Status::IN_PROGRESS, None, worker.clone());
            if fate == Status::WAITING || (fate.is_completed() && waits) {
                let until = t + 60_000_000;
                go(&mut t, &mut status, Action::Wait, Status::WAITING, Some(until), worker.clone());
                if fate != Status::WAITING {
                    t = until - 1_000_000;
                    go(&mut t, &mut status, Action::Wake, Status::READY, None, worker.clone());
                    go(&mut t, &mut status, Action::Lock, Status::IN_PROGRESS, None, worker.clone());
                }
            }
            match fate {
                Status::SUCCEEDED => go(&mut t, &mut status, Action::Succeed, fate, None, worker.clone()),
                Status::FAILED => go(&mut t, &mut status, Action::Fail, fate, None, worker.clone()),
                Status::CANCELED => {
                    go(&mut t, &mut status, Action::Cancel, Status::CANCELING, None, Actor::User(owner.clone()));
                    go(&mut t, &mut status, Action::StopCanceling, fate, None, worker.clone());
                }
                _ => {}
            }
        }
        for (at, actor, event) in events {
            self.stage(at, actor, event);
        }
    }
}

impl Iterator for Workload {
    type Item = Envelope;

    fn next(&mut self) -> Option<Envelope> {
        loop {
            // Everything staged before the next job's creation can go out.
            let horizon =
                if self.next_job < self.jobs { self.start + self.next_job as i64 * self.step_us } else { i64::MAX };
            if self.pending.peek().is_some_and(|Reverse(s)| s.0 < horizon) {
                return self.pending.pop().map(|Reverse(s)| s.2);
            }
            if self.next_job >= self.jobs {
                return None;
            }
            let i = self.next_job;
            self.next_job += 1;
            self.make_job(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use joblog::domain::{ManualClock, State};
    use joblog::engine::{Config, Engine};
    use joblog::projection::query::Filter;
    use std::sync::Arc;

    fn end() -> Timestamp {
        Timestamp::parse("2026-11-01T00:00:00Z").unwrap()
    }

    #[test]
    fn the_same_seed_gives_the_same_events_in_time_order() {
        let a: Vec<Envelope> = Workload::new(3000, 7, end()).collect();
        let b: Vec<Envelope> = Workload::new(3000, 7, end()).collect();
        assert_eq!(a, b);
        assert!(a.windows(2).all(|w| w[0].at <= w[1].at), "events out of time order");
        let c: Vec<Envelope> = Workload::new(3000, 8, end()).collect();
        assert_ne!(a, c);
    }

    /// Every event is one the engine accepts (the state machine, time
    /// order), and the final mix is the one the workload promises.
    #[test]
    fn the_engine_accepts_the_workload_and_the_mix_is_right() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(end().plus_micros(MICROS_PER_DAY)));
        let engine = Engine::open(dir.path(), Config::default(), clock).unwrap();
        let admin = engine.session("admin").unwrap();
        let events: Vec<Envelope> = Workload::new(20_000, 1, end()).collect();
        let per_job = events.len() as f64 / 20_000.0;
        assert!((3.5..4.5).contains(&per_job), "{per_job} events per job");
        for chunk in events.chunks(10_000) {
            admin.load(chunk.to_vec()).unwrap();
        }
        let count = |f: Filter| admin.count(&f).unwrap() as f64 / 20_000.0;
        let completed = count(Filter { state: Some(State::Completed), ..Filter::default() });
        assert!((0.93..0.97).contains(&completed), "completed share {completed}");
        let workflows = count(Filter { operationtype: Some(OperationType::WORKFLOW), ..Filter::default() });
        assert!((0.77..0.83).contains(&workflows), "workflow share {workflows}");
    }
}
