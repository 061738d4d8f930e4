//! A parsed `$filter` evaluated on a job, and planned onto the engine's
//! indexed [`Filter`]: the top-level `and`-conditions that map exactly onto
//! it narrow the rows the engine walks; the whole predicate is still
//! evaluated on every row, so the answer is always exactly the predicate
//! (docs/http.md, "How a query runs").

use std::cmp::Ordering;

use joblog::domain::{Regarding, State, StatusReason};
use joblog::{Filter, Job, OperationType, Timestamp};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::filter::{CmpOp, Expr, Literal};
use super::{value, Column, Kind, SortCol, Val};

const SECOND: i64 = 1_000_000;

/// A date-time as it compares: cut to the whole second it is shown with.
fn whole_second(t: Timestamp) -> i64 {
    t.micros().div_euclid(SECOND) * SECOND
}

/// Whether `job` satisfies `e`.
pub fn matches(e: &Expr, job: &Job) -> bool {
    match e {
        Expr::And(a, b) => matches(a, job) && matches(b, job),
        Expr::Or(a, b) => matches(a, job) || matches(b, job),
        Expr::Not(a) => !matches(a, job),
        Expr::Cmp { col, op, lit } => compare(*col, value(job, *col), *op, lit),
        Expr::Contains(col, text) => text_of(*col, job).is_some_and(|(v, ci)| {
            if ci {
                v.to_lowercase().contains(&text.to_lowercase())
            } else {
                v.contains(text.as_str())
            }
        }),
        Expr::StartsWith(col, text) => text_of(*col, job).is_some_and(|(v, ci)| {
            if ci {
                v.to_lowercase().starts_with(&text.to_lowercase())
            } else {
                v.starts_with(text.as_str())
            }
        }),
    }
}

/// A text column's value, and whether it compares ignoring case.
fn text_of(col: Column, job: &Job) -> Option<(String, bool)> {
    match value(job, col) {
        Val::Text(s) => Some((s, col.kind() == Kind::Text)),
        _ => None,
    }
}

/// OData's comparison with nulls: `null eq null` holds, `x ne null` holds
/// for any value, and an ordering with a null never holds.
fn compare(col: Column, v: Val, op: CmpOp, lit: &Literal) -> bool {
    let ord = match (&v, lit) {
        (Val::Null, Literal::Null) => return op == CmpOp::Eq,
        (_, Literal::Null) => return op == CmpOp::Ne,
        (Val::Null, _) => return op == CmpOp::Ne,
        (Val::Int(a), Literal::Int(b)) => a.cmp(b),
        (Val::Text(a), Literal::Text(b)) => {
            if col.kind() == Kind::Text {
                a.to_lowercase().cmp(&b.to_lowercase())
            } else {
                a.as_str().cmp(b.as_str())
            }
        }
        (Val::Guid(a), Literal::Guid(b)) => a.cmp(b),
        (Val::Time(a), Literal::Time(b)) => whole_second(*a).cmp(&b.micros()),
        // The parser checked the types; a mismatch here matches nothing.
        _ => return false,
    };
    match op {
        CmpOp::Eq => ord == Ordering::Equal,
        CmpOp::Ne => ord != Ordering::Equal,
        CmpOp::Gt => ord == Ordering::Greater,
        CmpOp::Ge => ord != Ordering::Less,
        CmpOp::Lt => ord == Ordering::Less,
        CmpOp::Le => ord != Ordering::Greater,
    }
}

/// The engine's filter for `e`'s top-level `and`-conditions that map onto
/// an index, and whether they are all of `e` (then the engine's rows are
/// exactly the answer and its count is the answer's count).
pub fn plan(e: Option<&Expr>) -> (Filter, bool) {
    let mut f = Filter::default();
    let Some(e) = e else { return (f, true) };
    let mut conjuncts = Vec::new();
    flatten_and(e, &mut conjuncts);
    let mut exact = true;
    for c in conjuncts {
        exact &= plan_one(c, &mut f);
    }
    (f, exact)
}

/// The id a top-level `asyncoperationid eq GUID` condition names: such a
/// query is at most that one row, read directly instead of walked to.
pub fn single_id(e: Option<&Expr>) -> Option<uuid::Uuid> {
    let mut conjuncts = Vec::new();
    flatten_and(e?, &mut conjuncts);
    conjuncts.into_iter().find_map(|c| match c {
        Expr::Cmp { col: Column::Id, op: CmpOp::Eq, lit: Literal::Guid(g) } => Some(*g),
        _ => None,
    })
}

fn flatten_and<'a>(e: &'a Expr, out: &mut Vec<&'a Expr>) {
    if let Expr::And(a, b) = e {
        flatten_and(a, out);
        flatten_and(b, out);
    } else {
        out.push(e);
    }
}

/// Puts one condition into `f` when it maps exactly; false when it does not
/// (it is then only evaluated on each row).
fn plan_one(e: &Expr, f: &mut Filter) -> bool {
    let Expr::Cmp { col, op, lit } = e else { return false };
    match (col, op, lit) {
        (Column::OperationType, CmpOp::Eq, Literal::Int(n)) => match u32::try_from(*n) {
            Ok(n) => set_once(&mut f.operationtype, OperationType(n)),
            Err(_) => false,
        },
        (Column::StateCode, CmpOp::Eq, Literal::Int(n)) => {
            match State::all().into_iter().find(|s| i64::from(*s as u32) == *n) {
                Some(s) => set_once(&mut f.state, s),
                None => false,
            }
        }
        (Column::StatusCode, CmpOp::Eq, Literal::Int(n)) => match StatusReason::parse(&n.to_string()) {
            Ok(r) => set_once(&mut f.status_reason, r),
            Err(_) => false,
        },
        (Column::Owner, CmpOp::Eq, Literal::Text(s)) => set_once(&mut f.owner, s.clone()),
        (Column::Workflow, CmpOp::Eq, Literal::Text(s)) => set_once(&mut f.workflow, s.clone()),
        (Column::Regarding, CmpOp::Eq, Literal::Text(s)) => match Regarding::parse(s) {
            // Only when it prints back the same: the column compares text.
            Ok(r) if r.to_string() == *s => set_once(&mut f.regarding, r),
            _ => false,
        },
        (Column::CreatedOn, _, Literal::Time(t)) if t.micros() % SECOND == 0 => {
            let t = t.micros();
            // The column compares at the whole second: `gt T` is "at T + 1 s
            // or later", `le T` is "before T + 1 s".
            let (after, before) = match op {
                CmpOp::Gt => (Some(t + SECOND - 1), None),
                CmpOp::Ge => (Some(t - 1), None),
                CmpOp::Lt => (None, Some(t)),
                CmpOp::Le => (None, Some(t + SECOND)),
                _ => return false,
            };
            if let Some(a) = after {
                let a = Timestamp::from_micros(a);
                f.created_after = Some(f.created_after.map_or(a, |x| x.max(a)));
            }
            if let Some(b) = before {
                let b = Timestamp::from_micros(b);
                f.created_before = Some(f.created_before.map_or(b, |x| x.min(b)));
            }
            true
        }
        (Column::CompletedOn, CmpOp::Lt | CmpOp::Le, Literal::Time(t)) if t.micros() % SECOND == 0 => {
            let b = Timestamp::from_micros(if *op == CmpOp::Lt { t.micros() } else { t.micros() + SECOND });
            f.completed_before = Some(f.completed_before.map_or(b, |x| x.min(b)));
            true
        }
        _ => false,
    }
}

/// Sets an equality once; a second, different one stays a row condition.
fn set_once<T: PartialEq>(slot: &mut Option<T>, v: T) -> bool {
    match slot {
        None => {
            *slot = Some(v);
            true
        }
        Some(x) => *x == v,
    }
}

/// Whether the engine's `f` lets `job` through: the rules of
/// `src/projection/query.rs` (`Plan::matches`) restated on a whole job,
/// visibility aside. The fuzz target (`fuzz/fuzz_targets/odata_filter.rs`)
/// checks with it that a plan never drops a row the predicate keeps, and
/// that an exact plan keeps exactly those rows.
pub fn admits(f: &Filter, job: &Job) -> bool {
    f.operationtype.is_none_or(|t| job.operationtype == t)
        && f.state.is_none_or(|s| job.status.state() == s)
        && f.status_reason.is_none_or(|r| job.status.reason() == r)
        && f.workflow.as_ref().is_none_or(|w| job.workflow.as_ref() == Some(w))
        && f.regarding.as_ref().is_none_or(|r| job.regarding.as_ref() == Some(r))
        && f.owner.as_ref().is_none_or(|o| job.owner == *o)
        && f.created_after.is_none_or(|t| job.createdon > t)
        && f.created_before.is_none_or(|t| job.createdon < t)
        && f.completed_before.is_none_or(|t| job.completedon.is_some_and(|c| c < t))
}

/// One part of a sort key. Nulls sort first ascending, last descending.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SortVal {
    /// No value.
    Null,
    /// A time in microseconds.
    Int(i64),
    /// A name, lowercased (names sort ignoring case).
    Text(String),
}

/// `job`'s key for `$orderby` `spec`.
pub fn sort_key(job: &Job, spec: &[(SortCol, bool)]) -> Vec<SortVal> {
    spec.iter()
        .map(|(c, _)| match c {
            SortCol::CreatedOn => SortVal::Int(job.createdon.micros()),
            SortCol::CompletedOn => job.completedon.map_or(SortVal::Null, |t| SortVal::Int(t.micros())),
            SortCol::Name => SortVal::Text(job.name.to_lowercase()),
        })
        .collect()
}

/// Compares two (key, id) pairs in `spec`'s order; ids break ties
/// (ascending), so the order is total and paging never repeats or skips.
pub fn sort_cmp(spec: &[(SortCol, bool)], a: (&[SortVal], Uuid), b: (&[SortVal], Uuid)) -> Ordering {
    for (i, (_, desc)) in spec.iter().enumerate() {
        let o = a.0.get(i).cmp(&b.0.get(i));
        let o = if *desc { o.reverse() } else { o };
        if o != Ordering::Equal {
            return o;
        }
    }
    a.1.cmp(&b.1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::odata::filter::parse;
    use joblog::Status;

    fn job() -> Job {
        let t = Timestamp::parse("2026-01-31T12:00:00.250Z").unwrap();
        let mut j = Job::new("Nightly Import", OperationType::WORKFLOW, "alice", "root", t);
        j.workflow = Some("wf1".into());
        j
    }

    fn m(s: &str) -> bool {
        matches(&parse(s).unwrap(), &job())
    }

    #[test]
    fn evaluates() {
        assert!(m("statecode eq 0 and statuscode eq 0"));
        assert!(m("contains(name,'night') and startswith(name,'NIGHTLY')"));
        assert!(!m("contains(_ownerid_value,'ALI')"), "names compare exactly");
        assert!(m("_ownerid_value eq 'alice' and ownerid ne 'bob'"));
        assert!(m("completedon eq null and not (completedon ne null)"));
        assert!(!m("completedon lt 2030-01-01T00:00:00Z"), "an ordering with null never holds");
        assert!(m("createdon eq 2026-01-31T12:00:00Z"), "date-times compare at the whole second");
        assert!(m("createdon le 2026-01-31T12:00:00Z and createdon gt 2026-01-31T11:59:59Z"));
        assert!(!m("createdon gt 2026-01-31T12:00:00Z"));
        assert!(m("errorcode eq null or errorcode eq 5"));
        assert!(m("name gt 'a' and name lt 'O'"));
    }

    #[test]
    fn plans_what_maps_exactly() {
        let (f, exact) = plan(Some(&parse("statecode eq 3 and operationtype eq 10 and ownerid eq 'al'").unwrap()));
        assert!(exact);
        assert_eq!(f.state, Some(State::Completed));
        assert_eq!(f.operationtype, Some(OperationType::WORKFLOW));
        assert_eq!(f.owner.as_deref(), Some("al"));
        let (f, exact) = plan(Some(&parse("statecode eq 3 or statecode eq 2").unwrap()));
        assert!(!exact);
        assert_eq!(f, Filter::default());
        let (f, exact) = plan(Some(&parse("statuscode eq 30 and contains(name,'x')").unwrap()));
        assert!(!exact);
        assert_eq!(f.status_reason, Some(Status::SUCCEEDED.reason()));
        let (f, exact) =
            plan(Some(&parse("createdon gt 2026-01-01T00:00:00Z and createdon le 2026-02-01T00:00:00Z").unwrap()));
        assert!(exact);
        assert_eq!(f.created_after.unwrap().micros() % SECOND, SECOND - 1);
        assert!(f.created_before.is_some());
    }

    /// Jobs that differ in every column a filter names, times on and off
    /// whole seconds.
    fn jobs() -> Vec<Job> {
        let t0 = Timestamp::parse("2026-01-01T00:00:00Z").unwrap();
        Status::all()
            .enumerate()
            .map(|(i, status)| {
                let created = t0.plus_micros(i as i64 * 700_000);
                let mut j = Job::new(
                    ["Import", "export", "Sync", "x"][i % 4],
                    OperationType((i as u32 % 3) * 9 + 1),
                    ["alice", "bob"][i % 2],
                    "root",
                    created,
                );
                j.status = status;
                if status.is_completed() {
                    j.completedon = Some(created.plus_micros(1_500_000));
                }
                if i % 3 == 0 {
                    j.workflow = Some("wf".into());
                    j.regarding = Some(Regarding::parse("contact:1").unwrap());
                }
                j
            })
            .collect()
    }

    /// Random filters made of the grammar's pieces (a seeded xorshift, so a
    /// failure repeats): whatever parses, the plan never drops a job the
    /// predicate keeps, and an exact plan keeps exactly those jobs. The
    /// fuzz target `odata_filter` checks the same from raw bytes.
    #[test]
    fn plans_agree_with_the_predicate_on_random_filters() {
        const WORDS: &[&str] = &[
            "statecode eq 3",
            "statecode eq 1",
            "statecode ne 0",
            "statuscode eq 30",
            "statuscode eq 31",
            "statuscode eq 12",
            "operationtype eq 1",
            "operationtype eq 10",
            "operationtype eq 19",
            "_ownerid_value eq 'alice'",
            "ownerid eq 'bob'",
            "workflowactivationid eq 'wf'",
            "_regardingobjectid_value eq 'contact:1'",
            "regardingobjectid eq null",
            "createdon gt 2026-01-01T00:00:01Z",
            "createdon ge 2026-01-01T00:00:02Z",
            "createdon lt 2026-01-01T00:00:03Z",
            "createdon le 2026-01-01T00:00:04Z",
            "createdon eq 2026-01-01T00:00:02Z",
            "createdon gt 2026-01-01T00:00:01.5Z",
            "completedon lt 2026-01-01T00:00:08Z",
            "completedon le 2026-01-01T00:00:07Z",
            "completedon eq null",
            "contains(name,'port')",
            "startswith(name,'s')",
            "name gt 'f'",
            "and",
            "and",
            "or",
            "not",
            "(",
            ")",
            "eq",
            "3",
        ];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let jobs = jobs();
        let mut parsed = 0;
        let mut exact_plans = 0;
        for _ in 0..20_000 {
            let n = 1 + next() % 9;
            let text: Vec<&str> = (0..n).map(|_| WORDS[(next() % WORDS.len() as u64) as usize]).collect();
            let text = text.join(" ");
            let Ok(e) = parse(&text) else { continue };
            parsed += 1;
            let (f, exact) = plan(Some(&e));
            exact_plans += usize::from(exact && f != Filter::default());
            for j in &jobs {
                let kept = matches(&e, j);
                assert!(!kept || admits(&f, j), "the plan drops a kept job: {text}");
                if exact {
                    assert_eq!(kept, admits(&f, j), "an exact plan differs: {text}");
                }
            }
        }
        assert!(parsed > 1_500 && exact_plans > 200, "{parsed} parsed, {exact_plans} exact");
    }
}
