//! The System Jobs views the harnesses time, one definition for every way
//! of asking: a joblog [`Filter`] (in process), the native API's query
//! string (`GET /api/v1/jobs`, docs/http.md), the command line's flags
//! (`joblog list`, docs/cli.md) and SQL over the benchmark's tables
//! ([`SqlPage`]). A [`Page`] is one 50-row page of a view: a key drawn at
//! random (which workflow, which row) and where the page starts.

use fastrand::Rng;
use joblog::domain::{OperationType, Regarding, StatusReason, Timestamp, MICROS_PER_DAY};
use joblog::projection::query::{Cursor, Filter};
use uuid::Uuid;

use crate::rows::SqlPage;
use crate::workload;

/// A view of the System Jobs screen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    /// System Jobs, no filter.
    All,
    /// System Jobs filtered on System Job Type Workflow and Status Reason Failed.
    WorkflowFailed,
    /// Process Session: one workflow's jobs.
    ProcessSession,
    /// Background Processes: one row's jobs.
    BackgroundProcesses,
}

impl View {
    /// Every view, in the order reports list them.
    pub const ALL: [View; 4] = [View::All, View::WorkflowFailed, View::ProcessSession, View::BackgroundProcesses];

    /// The view's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            View::All => "System Jobs (all)",
            View::WorkflowFailed => "System Jobs (Workflow, Failed)",
            View::ProcessSession => "Process Session (one workflow)",
            View::BackgroundProcesses => "Background Processes (one row)",
        }
    }

    /// Whether a page deep into the view means something: a row has a few
    /// dozen jobs at most (the workload's 500,000 rows), so its first page
    /// is all there is.
    pub fn has_deep_pages(self) -> bool {
        self != View::BackgroundProcesses
    }

    /// One page of this view: a random key, starting at `before` (a time
    /// in microseconds, `None`: the first page).
    pub fn page(self, rng: &mut Rng, before: Option<i64>) -> Page {
        let key = match self {
            View::All | View::WorkflowFailed => None,
            View::ProcessSession => Some(workload::workflow(rng.u64(..workload::WORKFLOWS))),
            View::BackgroundProcesses => Some(format!("contact:{}", rng.u64(..workload::REGARDING_ROWS))),
        };
        Page { view: self, key, before }
    }

    /// `n` pages of this view: each a random key and, when `deep`, a
    /// random point of the workload's 120 days that end at `end` to start
    /// from (for a view with deep pages; the first page otherwise).
    pub fn samples(self, rng: &mut Rng, n: usize, end: Timestamp, deep: bool) -> Vec<Page> {
        let span = workload::DAYS * MICROS_PER_DAY;
        (0..n)
            .map(|_| {
                // Drawn for every view, so each view's keys are the same
                // whether or not it pages deep.
                let b = end.micros() - rng.u64(..span as u64) as i64;
                self.page(rng, (deep && self.has_deep_pages()).then_some(b))
            })
            .collect()
    }
}

/// One 50-row page of a view.
#[derive(Clone, Debug)]
pub struct Page {
    /// Which view.
    pub view: View,
    /// The workflow (Process Session) or `table:id` row (Background
    /// Processes) the page is about.
    pub key: Option<String>,
    /// Where the page starts: jobs created before this time (microseconds);
    /// `None` is the first page.
    pub before: Option<i64>,
}

impl Page {
    /// The view's filter, without the page's start (that is [`Page::cursor`]).
    pub fn filter(&self) -> Filter {
        let key = self.key.clone();
        match self.view {
            View::All => Filter::default(),
            View::WorkflowFailed => Filter {
                operationtype: Some(OperationType::WORKFLOW),
                status_reason: Some(StatusReason::Failed),
                ..Filter::default()
            },
            View::ProcessSession => Filter { workflow: key, ..Filter::default() },
            View::BackgroundProcesses => Filter {
                regarding: key.as_deref().map(|r| Regarding::parse(r).expect("the workload's rows parse")),
                ..Filter::default()
            },
        }
    }

    /// The view's filter with the page's start as `created_before` (the
    /// form `joblog-bench` times).
    pub fn filter_before(&self) -> Filter {
        Filter { created_before: self.before.map(Timestamp::from_micros), ..self.filter() }
    }

    /// The page's start as a paging cursor: the position a client reaches
    /// by following `next` down to that time (the greatest id, so every
    /// job created before it and none after comes next).
    pub fn cursor(&self) -> Option<Cursor> {
        self.before.map(|b| Cursor { createdon: Timestamp::from_micros(b), id: Uuid::max() })
    }

    /// The native API's query string (`GET /api/v1/jobs?…`) for this page,
    /// 50 rows.
    pub fn query(&self) -> String {
        let mut q = match self.view {
            View::All => String::new(),
            View::WorkflowFailed => "type=workflow&status=failed&".into(),
            View::ProcessSession => format!("workflow={}&", encode(self.key.as_deref().unwrap_or_default())),
            View::BackgroundProcesses => format!("regarding={}&", encode(self.key.as_deref().unwrap_or_default())),
        };
        q.push_str("limit=50");
        if let Some(c) = self.cursor() {
            q.push_str(&format!("&cursor={c}"));
        }
        q
    }

    /// The command line's arguments after `list` for this page, 50 rows.
    pub fn cli_args(&self) -> Vec<String> {
        let mut a: Vec<String> = match self.view {
            View::All => vec![],
            View::WorkflowFailed => vec!["--type".into(), "workflow".into(), "--status".into(), "failed".into()],
            View::ProcessSession => vec!["--workflow".into(), self.key.clone().unwrap_or_default()],
            View::BackgroundProcesses => vec!["--regarding".into(), self.key.clone().unwrap_or_default()],
        };
        a.extend(["--limit".into(), "50".into()]);
        if let Some(c) = self.cursor() {
            a.extend(["--after".into(), c.to_string()]);
        }
        a
    }

    /// The same page in SQL over the benchmark's tables: `?1` the key,
    /// `?2` the start (`createdon < ?2`; the greatest value for a first page).
    pub fn sql(&self) -> SqlPage {
        let sql = match self.view {
            View::All => "SELECT id, name, operationtype, statecode, statuscode, owner, regarding, workflow, createdon, completedon, message FROM jobs WHERE createdon < ?2 ORDER BY createdon DESC LIMIT 50",
            View::WorkflowFailed => "SELECT id, name, operationtype, statecode, statuscode, owner, regarding, workflow, createdon, completedon, message FROM jobs WHERE operationtype = 10 AND statecode = 3 AND statuscode = 31 AND createdon < ?2 ORDER BY createdon DESC LIMIT 50",
            View::ProcessSession => "SELECT id, name, operationtype, statecode, statuscode, owner, regarding, workflow, createdon, completedon, message FROM jobs WHERE workflow = ?1 AND createdon < ?2 ORDER BY createdon DESC LIMIT 50",
            View::BackgroundProcesses => "SELECT id, name, operationtype, statecode, statuscode, owner, regarding, workflow, createdon, completedon, message FROM jobs WHERE regarding = ?1 AND createdon < ?2 ORDER BY createdon DESC LIMIT 50",
        };
        SqlPage { sql, key: self.key.clone(), before: self.before.unwrap_or(i64::MAX) }
    }
}

/// Percent-encodes a query value (the workload's keys are ASCII; `:` and
/// anything else outside the unreserved set are encoded).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The `p`-th percentile of `v` in microseconds (nearest rank; 0 when empty).
pub fn percentile_us(v: &[std::time::Duration], p: usize) -> f64 {
    let mut v = v.to_vec();
    v.sort();
    v.get((v.len() * p / 100).min(v.len().saturating_sub(1))).map_or(0.0, |d| d.as_secs_f64() * 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every way of asking names the same view, key and start.
    #[test]
    fn one_page_four_ways() {
        let end = Timestamp::parse("2026-11-01T00:00:00Z").unwrap();
        let mut rng = Rng::with_seed(1);
        for view in View::ALL {
            for page in view.samples(&mut rng, 3, end, true) {
                let sql = page.sql();
                assert!(sql.sql.ends_with("createdon < ?2 ORDER BY createdon DESC LIMIT 50"));
                assert_eq!(sql.key, page.key);
                assert_eq!(page.before.is_some(), view.has_deep_pages());
                let q = page.query();
                let args = page.cli_args().join(" ");
                if let Some(c) = page.cursor() {
                    assert!(q.contains(&format!("cursor={c}")) && args.contains(&format!("--after {c}")));
                    assert_eq!(c.to_string().parse::<Cursor>().unwrap(), c);
                }
                if let Some(k) = &page.key {
                    assert!(args.contains(k.as_str()) && q.contains(&encode(k)));
                }
                assert_eq!(page.filter_before().created_before.map(Timestamp::micros), page.before);
            }
        }
        assert_eq!(encode("contact:12"), "contact%3A12");
    }
}
