//! Arbitrary bytes as a `$filter` of the Dataverse Web API
//! (`joblog-server`'s `odata::filter`): parsing never panics and refuses
//! anything over its bounds; whatever parses evaluates on any job without
//! panicking; the plan onto the engine's indexed filter never drops a job
//! the predicate keeps, and an exact plan keeps exactly those jobs (so an
//! answer served from the indexes alone, `$count` included, is exactly the
//! predicate's).
#![no_main]

use joblog::domain::Regarding;
use joblog::{Job, OperationType, Status, Timestamp};
use joblog_server::odata::eval::{admits, matches, plan};
use joblog_server::odata::filter::{parse, MAX_FILTER_BYTES};
use libfuzzer_sys::fuzz_target;

/// A few jobs that differ in every column a filter can name, with times on
/// and off whole seconds.
fn jobs() -> Vec<Job> {
    let t = |s: &str| Timestamp::parse(s).unwrap();
    let mut out = Vec::new();
    for (i, status) in Status::all().enumerate() {
        let created = t("2026-01-01T00:00:00Z").plus_micros(i as i64 * 700_000);
        let mut j = Job::new(["Import", "export it's", "", "Ünïcode"][i % 4], OperationType((i as u32 % 3) * 5 + 1), ["alice", "bob"][i % 2], "root", created);
        j.status = status;
        if status.is_completed() {
            j.startedon = Some(created);
            j.completedon = Some(created.plus_micros(1_500_000));
        }
        if i % 3 == 0 {
            j.workflow = Some(format!("wf{i}"));
            j.regarding = Some(Regarding::parse(&format!("contact:{i}")).unwrap());
        }
        if i % 2 == 1 {
            j.errorcode = Some(-(i as i32));
            j.message = Some("Time out".into());
        }
        j.retrycount = i as u32;
        out.push(j);
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match parse(text) {
        Ok(expr) => {
            assert!(text.len() <= MAX_FILTER_BYTES);
            let (filter, exact) = plan(Some(&expr));
            for job in jobs() {
                let kept = matches(&expr, &job);
                if kept {
                    assert!(admits(&filter, &job), "the plan dropped a job the predicate keeps: {text:?}");
                }
                if exact {
                    assert_eq!(kept, admits(&filter, &job), "an exact plan differs from the predicate: {text:?}");
                }
            }
        }
        Err(e) => assert!(e.to_string().starts_with("$filter: ")),
    }
});
