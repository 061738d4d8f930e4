//! The on-disk format keeps its promises (issue #12, section 7): a store
//! written by an older joblog opens and reads the same forever, and every
//! event kind keeps its exact bytes.
//!
//! * `tests/fixtures/store-v1/` is a small but rich store (a unit tree,
//!   roles, workflows, jobs of several types in every state, retries,
//!   postpones, pauses, cancels, an owner change, an Immediately deletion
//!   with its compaction, a deletion left uncompacted, a checkpoint, sealed
//!   segments and an active one) written by joblog at event version 2 and
//!   segment format 1. `store-v1.expected.json` is what that build read back.
//!   [`store_v1_opens_and_reads_the_same`] opens a copy with today's code.
//!   `tests/fixtures/store-v2/` is the same history written by segment
//!   format 2 (event version 2).
//! * `tests/fixtures/events/` holds the exact bytes of each event kind.
//!
//! Regenerating (only when a fixture is meant to change; never for an old
//! version, whose bytes are history):
//! `JOBLOG_REGENERATE=store-v1 cargo test --release --test format -- --ignored regenerate_store`
//! and `JOBLOG_REGENERATE=events cargo test --release --test format -- --ignored regenerate_events`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use joblog::domain::{
    Clock, DeletionCriteria, Depth, Job, ManualClock, OperationType, Privilege, Regarding, Role, Status, StatusReason,
    WorkflowDefinition,
};
use joblog::engine::{Config, Engine, NewBulkDelete, NewJob, Reads, ServiceStep, UserAction, Views};
use joblog::log::LogConfig;
use joblog::projection::query::Filter;
use serde_json::{json, Value};
use uuid::Uuid;

mod support;

use support::t;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The store fixture's segment size: small, so it has sealed segments.
const FIXTURE_SEGMENT_BYTES: u64 = 8 << 10;
/// After every event of the fixture: the clock the check opens it with.
const AFTER_FIXTURE: &str = "2026-03-01T00:00:00Z";

fn fixture_config() -> Config {
    Config {
        log: LogConfig { segment_size_bytes: FIXTURE_SEGMENT_BYTES, ..LogConfig::default() },
        checkpoint_every_events: 0,
        // Every checkpoint moves the Completed jobs into cold runs (the
        // fixtures since store-v6 hold some).
        cold_after: 1,
        ..Config::default()
    }
}

/// Copies a fixture as a store of this user would be: directories 0700,
/// files 0600 (a checkout has whatever the umask gave it).
fn copy_dir(from: &Path, to: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(to).unwrap();
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o700)).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
    }
}

fn opt<T: ToString>(v: &Option<T>) -> Value {
    v.as_ref().map_or(Value::Null, |x| Value::String(x.to_string()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn status(s: Status) -> Value {
    json!([s.statecode(), s.statuscode()])
}

/// Everything a store shows, spelled out column by column (not through
/// `Serialize`, so that the expected file does not move with the types).
fn describe(engine: &Engine) -> Value {
    let jobs = describe_jobs(&engine.session("admin").unwrap());
    let visible: Vec<Value> = {
        let state = engine.state();
        state.directory().users().filter(|u| u.active).map(|u| u.name.clone()).collect::<Vec<_>>()
    }
    .into_iter()
    .map(|u| {
        let n = engine.session(&u).unwrap().count(&Filter::default()).unwrap();
        json!([u, n])
    })
    .collect();
    describe_rest(engine, jobs, visible)
}

/// Every job `r` lists, with its history.
fn describe_jobs(r: &dyn Reads) -> Vec<Value> {
    let (jobs, next) = r.list(&Filter::default(), None, usize::MAX).unwrap();
    assert!(next.is_none());
    jobs.iter()
        .map(|j| {
            let history: Vec<Value> = r
                .history(j.id)
                .unwrap()
                .into_iter()
                .map(|h| {
                    json!({
                        "seq": h.seq,
                        "at": h.at.to_string(),
                        "actor": h.actor.to_string(),
                        "action": h.action.map(|a| a.name()),
                        "from": h.from.map(status),
                        "status": status(h.status),
                        "postponeuntil": opt(&h.postponeuntil),
                        "message": h.message,
                    })
                })
                .collect();
            json!({
                "id": j.id.to_string(),
                "name": j.name,
                "operationtype": j.operationtype.0,
                "status": status(j.status),
                "owner": j.owner,
                "owningbusinessunit": j.owningbusinessunit,
                "regarding": opt(&j.regarding),
                "workflow": j.workflow,
                "createdon": j.createdon.to_string(),
                "startedon": opt(&j.startedon),
                "completedon": opt(&j.completedon),
                "modifiedon": j.modifiedon.to_string(),
                "postponeuntil": opt(&j.postponeuntil),
                "retrycount": j.retrycount,
                "errorcode": j.errorcode,
                "message": j.message,
                "friendlymessage": j.friendlymessage,
                "depth": j.depth,
                "correlationid": opt(&j.correlationid),
                "dependencytoken": j.dependencytoken,
                "recurrencepattern": j.recurrencepattern,
                "recurrencestarttime": opt(&j.recurrencestarttime),
                "executiontimespan_ms": j.executiontimespan_ms,
                "data": hex(&j.data),
                "history": history,
            })
        })
        .collect()
}

fn describe_rest(engine: &Engine, jobs: Vec<Value>, visible: Vec<Value>) -> Value {
    let state = engine.state();
    let dir = state.directory();
    let users: Vec<Value> = dir
        .users()
        .map(|u| json!({"name": u.name, "business_unit": u.business_unit, "roles": u.roles, "active": u.active}))
        .collect();
    let units: Vec<Value> = dir.business_units().map(|(u, p)| json!([u, p])).collect();
    // Built-in roles are defined by the build (`Directory::fresh`), not by
    // the store: only their names are the store's.
    let built_in: Vec<String> = joblog::domain::Directory::fresh().roles().map(|r| r.name.clone()).collect();
    let roles: Vec<Value> = dir
        .roles()
        .map(|r| {
            if built_in.contains(&r.name) {
                return json!({"name": r.name, "built_in": true});
            }
            let privileges: Vec<Value> =
                r.privileges.iter().map(|(p, d)| json!([format!("{p:?}"), format!("{d:?}")])).collect();
            json!({"name": r.name, "privileges": privileges})
        })
        .collect();
    let workflows: Vec<Value> = state
        .workflows()
        .values()
        .map(|w| json!({"id": w.id, "name": w.name, "owner": w.owner, "active": w.active}))
        .collect();
    let deletions: Vec<Value> = state
        .deletions()
        .iter()
        .map(|d| {
            let c = &d.deletion.criteria;
            json!({
                "seq": d.seq,
                "at": d.at.to_string(),
                "actor": d.actor.to_string(),
                "types": c.types.iter().map(|t| t.0).collect::<Vec<_>>(),
                "reasons": c.reasons.iter().map(|r| *r as u32).collect::<Vec<_>>(),
                "older_than_days": c.older_than_days,
                "cutoff": d.deletion.cutoff.to_string(),
                "limit": d.deletion.limit,
                "through": d.deletion.through.map(|(at, id)| json!([at.to_string(), id.to_string()])),
                "deleted": d.deletion.deleted,
                "remaining": d.deletion.remaining,
                "definition": opt(&d.deletion.definition),
            })
        })
        .collect();
    let mut v = json!({
        "last_seq": state.last_seq(),
        "last_at": opt(&state.last_at()),
        "job_count": state.job_count(),
        "business_units": units,
        "roles": roles,
        "users": users,
        "workflows": workflows,
        "deletions": deletions,
        "visible_jobs_per_user": visible,
        "jobs": jobs,
    });
    // Since event version 4 (older fixtures set none, and do not list it).
    if state.policy().generation() > 0 {
        v["policy"] = json!({"set": state.policy().set_keys(), "generation": state.policy().generation()});
    }
    // Since event version 6 (older fixtures have none, and do not list them).
    if !state.deletions_by_id().is_empty() {
        let by_id: Vec<Value> = state
            .deletions_by_id()
            .iter()
            .map(|d| {
                json!({
                    "seq": d.seq,
                    "at": d.at.to_string(),
                    "actor": d.actor.to_string(),
                    "ids": d.ids.iter().map(Uuid::to_string).collect::<Vec<_>>(),
                })
            })
            .collect();
        v["deletions_by_id"] = Value::Array(by_id);
    }
    // Since event version 5 (older fixtures have none, and do not list them).
    if !state.tokens().is_empty() {
        let tokens: Vec<Value> = state
            .tokens()
            .iter()
            .map(|t| {
                json!({
                    "id": t.id.to_string(),
                    "user": t.user,
                    "name": t.name,
                    "hash": hex(&t.hash),
                    "created": t.created.to_string(),
                    "expires": opt(&t.expires),
                    "revoked": t.revoked,
                })
            })
            .collect();
        v["tokens"] = Value::Array(tokens);
    }
    v
}

/// The key of an expected reading that lists bearer tokens of the fixture
/// with the user each authenticates as (`null`: refused), at
/// [`AFTER_FIXTURE`]: a token printed by an older joblog keeps working.
const TOKEN_SECRETS: &str = "token_secrets";

/// The number of `store-vN`.
fn fixture_number(fixture: &str) -> u32 {
    fixture.strip_prefix("store-v").and_then(|n| n.parse().ok()).unwrap_or(0)
}

/// Opens a copy of `fixture` (checkpoint and tail, then a full replay with
/// the checkpoints removed) and checks both read exactly `expected`.
fn check_store_fixture(fixture: &str, expected: &str) {
    let mut want: Value = serde_json::from_str(&std::fs::read_to_string(fixtures().join(expected)).unwrap()).unwrap();
    let secrets = want.as_object_mut().unwrap().remove(TOKEN_SECRETS);
    // The newest checkpoint and its tail, the older checkpoint and a longer
    // tail, and a full replay with no checkpoint.
    for (older, full_replay) in [(false, false), (true, false), (false, true)] {
        let tmp = tempfile::tempdir().unwrap();
        copy_dir(&fixtures().join(fixture), tmp.path());
        if full_replay {
            std::fs::remove_dir_all(tmp.path().join("snapshots")).unwrap();
        }
        if older {
            let mut snaps: Vec<PathBuf> = std::fs::read_dir(tmp.path().join("snapshots"))
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("snapshot-"))
                .collect();
            snaps.sort();
            // From store-v8 on, a checkpoint that freezes jobs into cold
            // segments rewrites hot segments: no older checkpoint stays.
            if snaps.len() < 2 && fixture_number(fixture) >= 8 {
                continue;
            }
            assert!(snaps.len() >= 2, "{fixture} has two checkpoints");
            std::fs::remove_file(snaps.last().unwrap()).unwrap();
        }
        let clock = Arc::new(ManualClock::new(t(AFTER_FIXTURE)));
        let engine = Engine::open(tmp.path(), fixture_config(), clock)
            .unwrap_or_else(|e| panic!("{fixture} (older: {older}, full replay: {full_replay}) does not open: {e}"));
        let report = engine.open_report().clone();
        if full_replay {
            assert_eq!(report.checkpoint_seq, None);
        } else if report.checkpoint_seq.is_none() {
            // Skipping a checkpoint is allowed only when the snapshot format
            // changed on purpose (a new version in its header): never
            // because a checkpoint of this build's own version fails to load.
            let snap = std::fs::read_dir(fixtures().join(fixture).join("snapshots"))
                .unwrap()
                .map(|e| std::fs::read(e.unwrap().path()).unwrap())
                .next()
                .unwrap();
            let theirs = u16::from_le_bytes([snap[8], snap[9]]);
            assert_ne!(
                theirs,
                current_snapshot_version(),
                "{fixture}: a checkpoint of this build's own snapshot version was not used: {report:?}"
            );
            assert!(!report.checkpoints_skipped.is_empty(), "{report:?}");
        } else {
            assert!(report.events_replayed > 0, "the fixture has a tail after its checkpoint");
        }
        let got = describe(&engine);
        if got != want {
            let got_path = std::env::temp_dir().join(format!("{fixture}.got.json"));
            std::fs::write(&got_path, serde_json::to_string_pretty(&got).unwrap()).unwrap();
            panic!(
                "{fixture} (older checkpoint: {older}, full replay: {full_replay}) reads differently from {expected}; what it read is in {}",
                got_path.display()
            );
        }
        for pair in secrets.iter().flat_map(|s| s.as_array().unwrap()) {
            let (secret, user) = (pair[0].as_str().unwrap(), pair[1].as_str());
            let got = engine.authenticate(secret);
            assert_eq!(got.as_deref().ok(), user, "{fixture}: token of {:?}: {got:?}", pair[1]);
        }
        // And it keeps working: a write on top of the old store, read back.
        let admin = engine.session("admin").unwrap();
        let job = admin.create(NewJob::new("after the upgrade", OperationType::SYSTEM_EVENT)).unwrap();
        drop(admin);
        drop(engine);
        let clock = Arc::new(ManualClock::new(t(AFTER_FIXTURE).plus_micros(1_000_000)));
        let engine = Engine::open(tmp.path(), fixture_config(), clock).unwrap();
        assert_eq!(engine.session("admin").unwrap().get(job.id).unwrap().name, "after the upgrade");
    }
}

/// The snapshot format version this build writes (bytes 8..10 of a
/// checkpoint's header, `docs/format.md`).
fn current_snapshot_version() -> u16 {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(t(AFTER_FIXTURE)));
    let engine = Engine::open(dir.path(), Config::default(), clock).unwrap();
    engine.session("admin").unwrap().add_business_unit("x", "root").unwrap();
    let bytes = std::fs::read(engine.checkpoint().unwrap()).unwrap();
    u16::from_le_bytes([bytes[8], bytes[9]])
}

#[test]
fn store_v1_opens_and_reads_the_same() {
    check_store_fixture("store-v1", "store-v1.expected.json");
}

/// `store-v2`: the same history written by event version 2 and segment
/// format 2 (frames with durable marks, segments grown in steps).
#[test]
fn store_v2_opens_and_reads_the_same() {
    check_store_fixture("store-v2", "store-v2.expected.json");
}

/// `store-v3`: event version 4 (the store's policy, a resubmission) and
/// checkpoint format 4, segment format 2.
#[test]
fn store_v3_opens_and_reads_the_same() {
    check_store_fixture("store-v3", "store-v3.expected.json");
}

/// `store-v5`: event version 6 (chosen jobs deleted by id: a deletion
/// compacted away with its jobs' events, one left uncompacted in the tail)
/// and checkpoint format 6, segment format 2.
#[test]
fn store_v5_opens_and_reads_the_same() {
    check_store_fixture("store-v5", "store-v5.expected.json");
}

/// `store-v6`: checkpoint format 7 with cold runs (run format 1): its
/// checkpoints name the runs that hold its Completed jobs, one with rows
/// deleted since it was written; segment format 2.
#[test]
fn store_v6_opens_and_reads_the_same() {
    let runs = std::fs::read_dir(fixtures().join("store-v6").join("snapshots"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".run"))
        .count();
    assert!(runs > 0, "store-v6 holds cold runs");
    check_store_fixture("store-v6", "store-v6.expected.json");
}

/// `store-v7`: checkpoint format 8 (job rows and the event chain as
/// fixed records), cold runs of run format 2; segment format 2.
#[test]
fn store_v7_opens_and_reads_the_same() {
    check_store_fixture("store-v7", "store-v7.expected.json");
}

/// `store-v8`: manifest version 2, with cold segments (the events of the
/// Completed jobs a checkpoint froze, one file per System Job Type (the
/// first grouping; Status Reason too since) and
/// stretch of completion times) that the cold runs, one System Job Type
/// each, point into; checkpoint format 8, segment format 2.
#[test]
fn store_v8_opens_and_reads_the_same() {
    let segments = fixtures().join("store-v8").join("segments");
    let cold = std::fs::read_dir(&segments)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("cold-"))
        .count();
    assert!(cold > 0, "store-v8 holds cold segments");
    let manifest = std::fs::read(segments.join("MANIFEST")).unwrap();
    assert_eq!(u32::from_le_bytes(manifest[8..12].try_into().unwrap()), 2, "manifest version 2");
    check_store_fixture("store-v8", "store-v8.expected.json");
}

/// `store-v9`: checkpoint format 9 (a head part and a hot part, each with
/// its checksum) naming the image of its hot rows, a run of format 4 that
/// may hold open jobs. The image reads as the jobs it holds; the reads
/// alone (`Views`) answer from it, the fixture's tail after its checkpoint
/// folded in, and from a checkpoint that holds every event, and read what
/// the engine reads.
#[test]
fn store_v9_opens_and_reads_the_same() {
    check_store_fixture("store-v9", "store-v9.expected.json");
    let want: Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("store-v9.expected.json")).unwrap()).unwrap();
    let status_of: std::collections::HashMap<String, Value> = want["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| (j["id"].as_str().unwrap().into(), j["status"].clone()))
        .collect();
    let images: Vec<ColdRun> = std::fs::read_dir(fixtures().join("store-v9/snapshots"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "run"))
        .map(|p| ColdRun::open(&p).unwrap())
        .filter(ColdRun::holds_open)
        .collect();
    assert_eq!(images.len(), 1, "the checkpoint's image of its hot rows");
    let mut open = 0;
    for r in 0..images[0].len() {
        let row = images[0].row(r as u32).unwrap();
        open += usize::from(!row.status().is_completed());
        // (A job deleted in the tail is in the image, not in the reading.)
        if let Some(status) = status_of.get(&row.id.to_string()) {
            assert_eq!(*status, self::status(row.status()), "job {}", row.id);
        }
    }
    assert!(open > 0, "open jobs in the image");

    let reads_as_expected = |views: Views| {
        let admin = views.reader("admin").unwrap();
        assert_eq!(Value::Array(describe_jobs(&admin)), want["jobs"]);
        for pair in want["visible_jobs_per_user"].as_array().unwrap() {
            let user = pair[0].as_str().unwrap();
            let n = views.reader(user).unwrap().count(&Filter::default()).unwrap();
            assert_eq!(json!([user, n]), *pair);
        }
    };
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&fixtures().join("store-v9"), tmp.path());
    reads_as_expected(Views::open(tmp.path(), fixture_config()).unwrap().expect("the tail folded in"));
    let clock = Arc::new(ManualClock::new(t(AFTER_FIXTURE)));
    Engine::open(tmp.path(), fixture_config(), clock).unwrap().close().unwrap();
    reads_as_expected(Views::open(tmp.path(), fixture_config()).unwrap().expect("a checkpoint holding every event"));
}

/// `store-v10`: checkpoint format 10 (format 9's parts; the head part ends
/// with where the checkpoint's last event is in the log: here the last
/// frame of a sealed segment, the tail in the next one). It reads as the
/// engine reads, through the reads alone too (the fold starting from the
/// hint is `tests/views.rs`'s).
#[test]
fn store_v10_opens_and_reads_the_same() {
    check_store_fixture("store-v10", "store-v10.expected.json");
    let newest = std::fs::read_dir(fixtures().join("store-v10/snapshots"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("snapshot-"))
        .max()
        .unwrap();
    let bytes = std::fs::read(newest).unwrap();
    assert_eq!(u16::from_le_bytes([bytes[8], bytes[9]]), 10, "checkpoint format 10");
    let want: Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("store-v10.expected.json")).unwrap()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&fixtures().join("store-v10"), tmp.path());
    let views = Views::open(tmp.path(), fixture_config()).unwrap().expect("the tail folded in");
    assert_eq!(Value::Array(describe_jobs(&views.reader("admin").unwrap())), want["jobs"]);
}

/// `store-v4`: event version 5 (bearer tokens: made by an administrator
/// and by a user, expired, of a deactivated user, revoked) and checkpoint
/// format 5, segment format 2; its tokens still authenticate as they did.
#[test]
fn store_v4_opens_and_reads_the_same() {
    check_store_fixture("store-v4", "store-v4.expected.json");
}

/// The fixtures are history: their files must stay as they were written.
#[test]
fn store_fixtures_keep_their_segment_formats_with_sealed_and_active_segments() {
    check_store_files("store-v1", 1);
    check_store_files("store-v2", 2);
    check_store_files("store-v3", 2);
    check_store_files("store-v4", 2);
    check_store_files("store-v5", 2);
    check_store_files("store-v6", 2);
    check_store_files("store-v7", 2);
    check_store_files("store-v8", 2);
    check_store_files("store-v9", 2);
    check_store_files("store-v10", 2);
}

fn check_store_files(fixture: &str, format: u16) {
    let segs = fixtures().join(fixture).join("segments");
    let mut names: Vec<String> = std::fs::read_dir(&segs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".seg"))
        .collect();
    names.sort();
    assert!(names.len() >= 4, "sealed segments and an active one: {names:?}");
    assert!(names.iter().any(|n| n.contains("-g")), "a segment rewritten by compaction: {names:?}");
    for n in &names {
        let bytes = std::fs::read(segs.join(n)).unwrap();
        assert_eq!(&bytes[0..8], b"JOBLOGSG", "{n}");
        assert_eq!(u16::from_le_bytes([bytes[8], bytes[9]]), format, "{n}: segment format {format}");
        assert_eq!(u16::from_le_bytes([bytes[10], bytes[11]]), 1, "{n}: codec 1");
    }
    assert!(segs.join("MANIFEST").exists());
    assert!(std::fs::read_dir(fixtures().join(fixture).join("snapshots")).unwrap().count() >= 2);
}

/// Writes the store fixture with this build. Run only to create a NEW
/// fixture (e.g. `store-v2` once the format changes); `store-v1` was
/// written by event version 2 / segment format 1 and must not be rewritten.
#[test]
#[ignore = "regenerates a fixture; run only when asked (JOBLOG_REGENERATE=store-v1)"]
fn regenerate_store() {
    let Ok(name) = std::env::var("JOBLOG_REGENERATE") else {
        panic!("set JOBLOG_REGENERATE=<fixture name> to regenerate a store fixture");
    };
    if !name.starts_with("store-") {
        eprintln!("JOBLOG_REGENERATE={name}: not a store fixture, nothing done");
        return;
    }
    let out = fixtures().join(&name);
    if out.exists() {
        std::fs::remove_dir_all(&out).unwrap();
    }
    let secrets = build_store(&out);
    let clock = Arc::new(ManualClock::new(t(AFTER_FIXTURE)));
    let engine = Engine::open(&out, fixture_config(), clock).unwrap();
    let mut described = describe(&engine);
    described[TOKEN_SECRETS] = json!(secrets);
    drop(engine);
    let _ = std::fs::remove_file(out.join("segments/LOCK"));
    std::fs::write(
        fixtures().join(format!("{name}.expected.json")),
        serde_json::to_string_pretty(&described).unwrap() + "\n",
    )
    .unwrap();
    check_store_fixture(&name, &format!("{name}.expected.json"));
}

/// The store: every kind of event, every state, on a manual clock. Returns
/// the bearer tokens it made with the user each authenticates as at
/// [`AFTER_FIXTURE`] (`None`: revoked, expired, or its user deactivated).
fn build_store(out: &Path) -> Vec<(String, Option<String>)> {
    let clock = Arc::new(ManualClock::new(t("2026-01-01T00:00:00Z")));
    let e = Engine::open(out, fixture_config(), clock.clone()).unwrap();
    let tick = || clock.advance_secs(60);
    let admin = e.session("admin").unwrap();
    // root ─ sales ─ sales-east ─ sales-east-nyc
    //      └ ops
    for (unit, parent) in
        [("sales", "root"), ("sales-east", "sales"), ("sales-east-nyc", "sales-east"), ("ops", "root")]
    {
        admin.add_business_unit(unit, parent).unwrap();
        tick();
    }
    {
        use Depth::*;
        use Privilege::*;
        admin.add_role(Role::new("clerk", [(Create, User), (Read, User), (Write, User)])).unwrap();
        admin.add_role(Role::new("tree-lead", [(Create, User), (Read, ParentChild), (Write, BusinessUnit)])).unwrap();
        admin.add_role(Role::new("auditor", [(Read, Organization)])).unwrap();
    }
    tick();
    for (name, unit, roles) in [
        ("alice", "sales", &["clerk"][..]),
        ("bob", "sales-east", &["business-unit-manager", "clerk"][..]),
        ("carol", "sales-east-nyc", &["clerk"][..]),
        ("dan", "sales", &["tree-lead"][..]),
        ("erin", "ops", &["basic-user", "auditor"][..]),
        ("frank", "sales-east-nyc", &["clerk"][..]),
    ] {
        admin.add_user(name, unit, roles).unwrap();
        tick();
    }
    // Bearer tokens (event version 5): one an administrator made for a
    // user, one a user made for themself that expires before the fixture's
    // end, one of a user deactivated later, one revoked later (in the tail).
    let ci = admin.create_token("alice", Some("ci deploys"), Some(365)).unwrap();
    tick();
    let day = e.session("alice").unwrap().create_token("alice", None, Some(1)).unwrap();
    tick();
    let franks = admin.create_token("frank", Some("frank's laptop"), None).unwrap();
    tick();
    let revoked = admin.create_token("admin", Some("old admin token"), Some(3650)).unwrap();
    tick();
    for (id, name, owner) in [("wf-welcome", "Welcome", "alice"), ("wf-report", "Nightly report", "bob")] {
        admin
            .save_workflow(WorkflowDefinition { id: id.into(), name: name.into(), owner: owner.into(), active: true })
            .unwrap();
    }
    tick();
    e.install_default_bulk_delete().unwrap();
    tick();

    // Historical jobs, imported in every status (some old enough to delete).
    let old = t("2025-10-01T00:00:00Z");
    let mut imported = Vec::new();
    for (k, s) in Status::all().chain(Status::all()).enumerate() {
        let op = [OperationType::WORKFLOW, OperationType::BULK_EMAIL, OperationType(777)][k % 3];
        let owner = ["alice", "bob", "carol", "erin"][k % 4];
        let unit = ["sales", "sales-east", "sales-east-nyc", "ops"][k % 4];
        let created = old.plus_micros(k as i64 * 3_600_000_000);
        let mut j = Job::new(&format!("imported {k}"), op, owner, unit, created);
        j.id = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 + k as u128);
        j.status = s;
        if matches!(s.state(), joblog::domain::State::Locked | joblog::domain::State::Completed) {
            j.startedon = Some(created.plus_micros(1_000_000));
        }
        if s.is_completed() {
            j.completedon = Some(created.plus_micros(61_000_000));
            j.executiontimespan_ms = 60_000;
        }
        j.modifiedon = created.plus_micros(61_000_000);
        if s == Status::RETRYING || s == Status::WAITING {
            j.postponeuntil = Some(t("2026-06-01T00:00:00Z"));
            j.retrycount = 2;
        }
        if s == Status::FAILED {
            j.errorcode = Some(-2147220970);
            j.message = Some("imported failure".into());
            j.friendlymessage = Some("Something went wrong".into());
        }
        if op == OperationType::WORKFLOW {
            j.workflow = Some("wf-welcome".into());
        }
        j.regarding = (k % 2 == 0).then(|| Regarding { table: "contact".into(), id: k.to_string() });
        j.correlationid = Some(Uuid::from_u128(0xC0 + k as u128));
        j.depth = 1 + (k as u32 % 3);
        j.data = vec![k as u8, 0, 255];
        imported.push(j);
    }
    for chunk in imported.chunks(5) {
        admin.import(chunk.to_vec()).unwrap();
        tick();
    }
    // A chosen job deleted by id (event version 6): an imported Canceled
    // one (the other stays for the Bulk Delete run below), compacted away
    // later by the Immediately deletion's compaction.
    let canceled: Vec<&Job> = imported.iter().filter(|j| j.status == Status::CANCELED).collect();
    let chosen = canceled.iter().find(|j| j.operationtype == OperationType::BULK_EMAIL).unwrap_or(&canceled[0]).id;
    assert_eq!(admin.delete_jobs(&[chosen]).unwrap(), vec![chosen]);
    tick();

    // Live jobs, each driven along one path of the state machine.
    let fail =
        |n: usize| ServiceStep::Fail { code: -1000 - n as i32, message: format!("run {n} failed: {}", "x".repeat(40)) };
    for round in 0..6usize {
        let creators = ["alice", "bob", "carol", "dan", "frank", "admin"];
        for path in 0..16usize {
            let n = round * 16 + path;
            let creator = if n % 8 == 0 { "admin" } else { creators[n % creators.len()] };
            let who = e.session(creator).unwrap();
            let mut spec = NewJob::new(
                &format!("job {n} path {path}"),
                [OperationType::WORKFLOW, OperationType::BULK_EMAIL, OperationType::SYSTEM_EVENT, OperationType(5)]
                    [n % 4],
            );
            if n % 8 == 0 {
                spec.workflow = Some(["wf-welcome", "wf-report"][(n / 8) % 2].into());
            }
            if n % 3 == 0 {
                spec.regarding = Some(Regarding { table: "account".into(), id: format!("{}", n / 3) });
            }
            if n % 5 == 0 {
                spec.dependency_token = Some(format!("token-{}", n % 2));
            }
            if n % 7 == 0 {
                spec.correlation_id = Some(Uuid::from_u128(n as u128 + 1));
            }
            spec.data =
                // (A command needs RunCommand since event version 3: only
                // the administrator's jobs carry one.)
                if n % 4 == 2 && who.user() == "admin" {
                    format!("joblog:command\necho {n}").into_bytes()
                } else {
                    vec![n as u8; n % 9]
                };
            let job = who.create(spec).unwrap();
            let id = job.id;
            tick();
            let step = |s: ServiceStep| {
                e.worker(&format!("host-{}", n % 3)).step(id, s).unwrap();
                tick();
            };
            let act = |a: UserAction| {
                who.act(id, a).unwrap();
                tick();
            };
            let soon = || clock.now().plus_micros(30_000_000);
            match path {
                0 => {}                       // Ready
                1 => step(ServiceStep::Lock), // In Progress
                2 => {
                    step(ServiceStep::Lock);
                    step(ServiceStep::Succeed);
                }
                3 => {
                    step(ServiceStep::Lock);
                    step(fail(n));
                }
                4 => act(UserAction::Cancel),
                5 => {
                    step(ServiceStep::Lock);
                    act(UserAction::Pause); // Pausing
                }
                6 => {
                    step(ServiceStep::Lock);
                    act(UserAction::Cancel); // Canceling
                }
                7 => {
                    step(ServiceStep::Lock);
                    act(UserAction::Cancel);
                    step(ServiceStep::StopCanceling { message: Some("stopped".into()) });
                }
                8 => {
                    step(ServiceStep::Lock);
                    act(UserAction::Pause);
                    step(ServiceStep::StopPausing { message: Some("paused at a checkpoint".into()) });
                    act(UserAction::Resume);
                }
                9 => {
                    step(ServiceStep::Lock);
                    step(ServiceStep::Retry { until: soon(), message: "transient".into() });
                    step(ServiceStep::Wake);
                    step(ServiceStep::Lock);
                    step(ServiceStep::Retry { until: soon(), message: "transient again".into() });
                }
                10 => {
                    step(ServiceStep::Lock);
                    step(ServiceStep::Wait { until: soon(), message: Some("waiting for a timer".into()) });
                    step(ServiceStep::Wake);
                    step(ServiceStep::Lock);
                    step(ServiceStep::Succeed);
                }
                11 => {
                    step(ServiceStep::Lock);
                    step(ServiceStep::Suspend { message: "needs someone".into() });
                }
                12 => {
                    step(ServiceStep::Lock);
                    step(ServiceStep::ReturnToReady { message: "lease lost".into() });
                }
                13 => act(UserAction::Postpone(t("2026-05-01T00:00:00Z"))),
                14 => step(ServiceStep::Defer { until: t("2026-04-01T00:00:00Z"), message: "backing off".into() }),
                _ => step(ServiceStep::Stop { message: "loop guard".into() }),
            }
        }
        if round == 3 {
            // An administrator moves alice's waiting Welcome runs to bob.
            let moved = admin.reassign("wf-welcome", "alice", "bob").unwrap();
            assert!(!moved.is_empty(), "the reassignment moves something");
            tick();
            // An Immediately deletion: its compaction rewrites segments and
            // it writes a checkpoint.
            let criteria = DeletionCriteria {
                types: vec![OperationType::WORKFLOW, OperationType::BULK_EMAIL, OperationType(777)],
                reasons: vec![StatusReason::Succeeded, StatusReason::Failed],
                older_than_days: 30,
            };
            let report = admin.delete_now(&criteria, 3).unwrap();
            assert!(report.deleted == 3 && report.remaining_matching > 0, "{report:?}");
            tick();
        }
    }
    // A recurring Bulk Delete job, and one run of it (left uncompacted).
    let bulk = admin
        .create_bulk_delete(&NewBulkDelete {
            name: "Old canceled jobs".into(),
            criteria: DeletionCriteria {
                types: vec![OperationType(777), OperationType::WORKFLOW],
                reasons: vec![StatusReason::Canceled],
                older_than_days: 60,
            },
            start: None,
            recurrence: Some("FREQ=DAILY;INTERVAL=7".into()),
        })
        .unwrap();
    tick();
    let d = e.worker("host-0").bulk_delete(bulk.id, 10).unwrap();
    assert!(d.deleted > 0, "{d:?}");
    tick();
    admin
        .save_workflow(WorkflowDefinition {
            id: "wf-report".into(),
            name: "Nightly report".into(),
            owner: "dan".into(),
            active: false,
        })
        .unwrap();
    tick();
    admin.set_policy("backoff.threshold", Some(5)).unwrap();
    tick();
    // A Completed job the checkpoint moves into a cold run (since store-v6),
    // deleted in the tail.
    let completed = Filter { state: Some(joblog::domain::State::Completed), ..Filter::default() };
    let frozen = admin.list(&completed, None, 1).unwrap().0[0].id;
    e.checkpoint().unwrap();
    // The tail after the checkpoint.
    admin.set_policy("retry.max_retries", Some(7)).unwrap();
    tick();
    admin.set_policy("backoff.threshold", None).unwrap();
    tick();
    let gone = admin.create(NewJob::new("canceled, then resubmitted", OperationType::BULK_EMAIL)).unwrap();
    tick();
    admin.act(gone.id, joblog::engine::UserAction::Cancel).unwrap();
    tick();
    admin.resubmit(gone.id, None).unwrap();
    tick();
    admin.deactivate_user("frank").unwrap();
    tick();
    admin.revoke_token(revoked.id).unwrap();
    tick();
    let bob = e.session("bob").unwrap();
    let bobs = bob.create_token("bob", Some("bob's script"), Some(365)).unwrap();
    tick();
    for n in 0..6 {
        let job = bob.create(NewJob::new(&format!("tail {n}"), OperationType::BULK_EMAIL)).unwrap();
        tick();
        if n % 2 == 0 {
            e.worker("host-9").step(job.id, ServiceStep::Lock).unwrap();
            tick();
            e.worker("host-9").step(job.id, ServiceStep::Succeed).unwrap();
            tick();
        }
    }
    // A deletion by id in the tail, left uncompacted: the resubmitted job
    // and bob's first tail job (asked twice: deleted once).
    let (first_tail, _) = bob.list(&Filter::default(), None, usize::MAX).unwrap();
    let first_tail = first_tail.iter().find(|j| j.name == "tail 0").unwrap().id;
    assert_eq!(admin.delete_jobs(&[gone.id, first_tail, gone.id, frozen]).unwrap(), vec![gone.id, first_tail, frozen]);
    tick();
    // A checkpoint that keeps the cold row deleted (since store-v6), and a
    // tail after it.
    e.checkpoint().unwrap();
    admin.set_policy("retry.max_retries", Some(8)).unwrap();
    tick();
    let segments = e.segments();
    assert!(segments.len() >= 4, "sealed segments and an active one: {segments:?}");
    drop(bob);
    drop(admin);
    // Dropped, not closed: close would checkpoint the tail away.
    drop(e);
    [(ci, Some("alice")), (day, None), (franks, None), (revoked, None), (bobs, Some("bob"))]
        .into_iter()
        .map(|(t, user)| (t.token, user.map(str::to_string)))
        .collect()
}

// ---------------------------------------------------------------------------
// Event fixtures: tests/fixtures/events/v{N}/{name}.bin, the exact bytes of
// one envelope of schema version N each.

use joblog::domain::{Action, Actor, Deletion, Envelope, Event, EventDecodeError, Transition, User, EVENT_VERSION};
use joblog::Corruption;

/// Versions from this one on encode every event's body (what follows the
/// version) exactly as today's types do. Raise it to N + 1 when version
/// N + 1 changes a type (then versions up to N decode through `v{N}` types,
/// and their fixtures keep their old bytes).
const SAME_BODY_SINCE: u16 = 1;

/// Every event kind, every actor kind, every action, status, privilege and
/// depth, options empty and full: the values the fixtures hold, by name.
fn samples() -> Vec<(&'static str, Envelope)> {
    let at = t("2026-01-31T12:00:00.123456Z");
    let env = |actor: Actor, event: Event| Envelope { version: EVENT_VERSION, at, actor, event };
    let alice = || Actor::User("alice".into());
    let job_id = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0042);
    let mut minimal = Job::new("Send welcome email", OperationType::BULK_EMAIL, "alice", "sales", at);
    minimal.id = job_id;
    let mut full = Job::new("Nightly report", OperationType::WORKFLOW, "bob", "sales-east", t("2025-12-31T23:59:59Z"));
    full.id = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0043);
    full.status = Status::FAILED;
    full.regarding = Some(Regarding { table: "contact".into(), id: "42".into() });
    full.workflow = Some("wf-report".into());
    full.startedon = Some(t("2026-01-01T00:00:00Z"));
    full.completedon = Some(t("2026-01-01T00:01:00.5Z"));
    full.modifiedon = t("2026-01-01T00:01:00.5Z");
    full.postponeuntil = Some(t("2026-02-01T00:00:00Z"));
    full.retrycount = 3;
    full.errorcode = Some(-2147220970);
    full.message = Some("failed: é ✓".into());
    full.friendlymessage = Some("Something went wrong".into());
    full.depth = 4;
    full.correlationid = Some(Uuid::from_u128(7));
    full.dependencytoken = Some("token-1".into());
    full.recurrencepattern = Some("FREQ=DAILY;INTERVAL=1".into());
    full.recurrencestarttime = Some(t("2026-01-02T00:00:00Z"));
    full.executiontimespan_ms = 60_500;
    full.data = vec![0, 1, 2, 254, 255];
    let mut out = vec![
        ("job_created_minimal", env(alice(), Event::JobCreated(Box::new(minimal)))),
        ("job_created_full", env(Actor::System, Event::JobCreated(Box::new(full)))),
    ];
    // One transition per row of the state machine's table that leads to a
    // different place: every action, every status as `from` or `to`.
    let moves: [(&str, Action, Status, Status); 15] = [
        ("cancel_ready", Action::Cancel, Status::READY, Status::CANCELED),
        ("cancel_in_progress", Action::Cancel, Status::IN_PROGRESS, Status::CANCELING),
        ("pause", Action::Pause, Status::IN_PROGRESS, Status::PAUSING),
        ("resume_paused", Action::Resume, Status::PAUSED, Status::READY),
        ("postpone_ready", Action::Postpone, Status::READY, Status::WAITING),
        ("lock", Action::Lock, Status::READY, Status::IN_PROGRESS),
        ("succeed", Action::Succeed, Status::PAUSING, Status::SUCCEEDED),
        ("fail", Action::Fail, Status::CANCELING, Status::FAILED),
        ("wait", Action::Wait, Status::IN_PROGRESS, Status::WAITING),
        ("retry", Action::Retry, Status::IN_PROGRESS, Status::WAITING),
        ("stop_pausing", Action::StopPausing, Status::PAUSING, Status::WAITING),
        ("stop_canceling", Action::StopCanceling, Status::CANCELING, Status::CANCELED),
        ("return_to_ready", Action::ReturnToReady, Status::IN_PROGRESS, Status::READY),
        ("wake_retrying", Action::Wake, Status::RETRYING, Status::READY),
        ("wake_waiting", Action::Wake, Status::WAITING, Status::READY),
    ];
    for (k, (name, action, from, to)) in moves.into_iter().enumerate() {
        let worker = !action.is_user_action();
        out.push((
            Box::leak(format!("transition_{name}").into_boxed_str()),
            env(
                if worker { Actor::Worker(format!("host-{k}")) } else { alice() },
                Event::Transition(Transition {
                    job: job_id,
                    action,
                    from,
                    to,
                    postponeuntil: (to == Status::WAITING).then(|| t("2026-02-01T00:00:00Z")),
                    retrycount: u32::from(action == Action::Retry) * 70_000,
                    errorcode: (action == Action::Fail).then_some(i32::MIN),
                    message: (k % 2 == 0).then(|| format!("{name} message")),
                }),
            ),
        ));
    }
    let admin = || Actor::User("admin".into());
    out.extend([
        (
            "owner_changed",
            env(
                admin(),
                Event::OwnerChanged { job: job_id, owner: "bob".into(), owningbusinessunit: "sales-east".into() },
            ),
        ),
        (
            "business_unit_added",
            env(admin(), Event::BusinessUnitAdded { name: "sales-east".into(), parent: "sales".into() }),
        ),
        (
            "role_added",
            env(
                admin(),
                Event::RoleAdded(Role::new(
                    "every-privilege-every-depth",
                    // The eight privileges of versions 1 and 2, spelled out
                    // (not `Privilege::ALL`, which grows).
                    [
                        Privilege::Create,
                        Privilege::Read,
                        Privilege::Write,
                        Privilege::Delete,
                        Privilege::Append,
                        Privilege::AppendTo,
                        Privilege::Assign,
                        Privilege::Share,
                    ]
                    .into_iter()
                    .zip(
                        [Depth::None, Depth::User, Depth::BusinessUnit, Depth::ParentChild, Depth::Organization]
                            .into_iter()
                            .cycle(),
                    ),
                )),
            ),
        ),
        (
            "user_added",
            env(
                admin(),
                Event::UserAdded(User {
                    name: "carol".into(),
                    business_unit: "sales-east-nyc".into(),
                    roles: vec!["basic-user".into(), "clerk".into()],
                    active: true,
                }),
            ),
        ),
        ("user_deactivated", env(admin(), Event::UserDeactivated { name: "carol".into() })),
        ("user_reactivated", env(admin(), Event::UserReactivated { name: "carol".into() })),
        ("os_user_mapped", env(admin(), Event::OsUserMapped { name: "carol".into(), uid: Some(1001) })),
        ("os_user_unmapped", env(Actor::System, Event::OsUserMapped { name: "carol".into(), uid: None })),
        ("policy_set", env(admin(), Event::PolicySet { key: "backoff.threshold".into(), value: Some(5) })),
        ("policy_unset", env(admin(), Event::PolicySet { key: "command.timeout_secs".into(), value: None })),
        (
            "job_resubmitted",
            env(
                admin(),
                Event::JobResubmitted { job: job_id, new: Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_0042) },
            ),
        ),
        (
            "token_created",
            env(
                admin(),
                Event::TokenCreated {
                    id: Uuid::from_u128(0x0194_0000_0000_7000_8000_0000_0000_0005),
                    user: "carol".into(),
                    name: Some("ci deploys".into()),
                    hash: std::array::from_fn(|i| (i as u8).wrapping_mul(37).wrapping_add(255)),
                    expires: Some(t("2026-05-01T12:00:00Z")),
                },
            ),
        ),
        (
            "token_created_minimal",
            env(
                alice(),
                Event::TokenCreated {
                    id: Uuid::from_u128(6),
                    user: "alice".into(),
                    name: None,
                    hash: [0; 32],
                    expires: None,
                },
            ),
        ),
        (
            "token_revoked",
            env(admin(), Event::TokenRevoked { id: Uuid::from_u128(0x0194_0000_0000_7000_8000_0000_0000_0005) }),
        ),
        (
            "role_added_run_command",
            env(admin(), Event::RoleAdded(Role::new("runner", [(Privilege::RunCommand, Depth::Organization)]))),
        ),
        (
            "workflow_saved",
            env(
                admin(),
                Event::WorkflowSaved(WorkflowDefinition {
                    id: "wf-report".into(),
                    name: "Nightly report".into(),
                    owner: "bob".into(),
                    active: false,
                }),
            ),
        ),
        (
            "jobs_deleted",
            env(
                Actor::Worker("host-0".into()),
                Event::JobsDeleted(Box::new(Deletion {
                    criteria: DeletionCriteria {
                        types: vec![OperationType::WORKFLOW, OperationType(777)],
                        reasons: vec![StatusReason::Succeeded, StatusReason::Failed, StatusReason::Canceled],
                        older_than_days: 30,
                    },
                    cutoff: t("2026-01-01T12:00:00.123456Z"),
                    limit: 1_000_000,
                    through: Some((t("2025-12-01T00:00:00Z"), job_id)),
                    deleted: 1234,
                    remaining: 5,
                    definition: Some(Uuid::from_u128(13)),
                })),
            ),
        ),
        (
            "jobs_deleted_by_id",
            env(
                alice(),
                Event::JobsDeletedById {
                    ids: vec![job_id, Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0043)],
                },
            ),
        ),
        ("jobs_deleted_by_id_one", env(admin(), Event::JobsDeletedById { ids: vec![job_id] })),
        (
            "jobs_deleted_nothing",
            env(
                admin(),
                Event::JobsDeleted(Box::new(Deletion {
                    criteria: DeletionCriteria::platform_default(),
                    cutoff: t("2026-01-01T12:00:00Z"),
                    limit: 1,
                    through: None,
                    deleted: 0,
                    remaining: 0,
                    definition: None,
                })),
            ),
        ),
    ]);
    out
}

/// Samples whose values need a version newer than their variant's (a value
/// of a type that grew later, e.g. a role with a privilege added later).
const SAMPLE_SINCE: &[(&str, u16)] = &[("role_added_run_command", 3)];

/// The first version whose fixtures hold this sample.
fn first_version(name: &str, sample: &Envelope) -> u16 {
    let later = SAMPLE_SINCE.iter().find(|(n, _)| *n == name).map_or(0, |s| s.1);
    sample.event.since().max(later)
}

fn events_dir(version: u16) -> PathBuf {
    fixtures().join(format!("events/v{version}"))
}

/// The fixture versions on disk.
fn fixture_versions() -> Vec<u16> {
    let mut v: Vec<u16> = std::fs::read_dir(fixtures().join("events"))
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().to_str()?.strip_prefix('v')?.parse().ok())
        .collect();
    v.sort();
    v
}

/// (a) Every fixture of every version decodes to its value, forever.
#[test]
fn event_fixtures_decode_to_their_values() {
    let versions = fixture_versions();
    assert!(versions.contains(&1) && versions.contains(&2), "fixtures of versions 1 and 2: {versions:?}");
    assert!(
        versions.contains(&EVENT_VERSION),
        "no fixtures for EVENT_VERSION {EVENT_VERSION}: add them (JOBLOG_REGENERATE=events, see docs/format.md)"
    );
    let mut checked = 0;
    for version in versions {
        let dir = events_dir(version);
        let samples = samples();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_stem().unwrap().to_str().unwrap().to_string();
            let (_, want) = samples
                .iter()
                .find(|(n, _)| *n == name)
                .unwrap_or_else(|| panic!("{}: no sample named {name} in tests/format.rs", path.display()));
            let bytes = std::fs::read(&path).unwrap();
            let got = Envelope::decode(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(got.version, version, "{}", path.display());
            assert_eq!(Envelope { version: EVENT_VERSION, ..got }, *want, "{}", path.display());
            checked += 1;
        }
        // Every sample that exists in this version has its fixture.
        for (name, s) in &samples {
            if first_version(name, s) <= version {
                assert!(dir.join(format!("{name}.bin")).exists(), "v{version}/{name}.bin is missing");
            }
        }
    }
    assert!(checked >= 2 * 20, "{checked} fixtures");
}

/// (b) Today's encoder writes exactly the current version's fixture bytes,
/// and, for every version whose types are today's, the same body bytes.
#[test]
fn the_encoder_still_writes_the_fixture_bytes() {
    for version in fixture_versions().into_iter().filter(|&v| v >= SAME_BODY_SINCE) {
        for (name, sample) in samples() {
            if first_version(name, &sample) > version {
                continue;
            }
            let path = events_dir(version).join(format!("{name}.bin"));
            let fixture = std::fs::read(&path).unwrap();
            let today = sample.encode().unwrap();
            if version == EVENT_VERSION {
                assert_eq!(today, fixture, "{}: the encoding of {name} changed", path.display());
                // The same bytes as the plain serde encoding of the whole
                // envelope, which is how versions 1 and 2 were written.
                assert_eq!(joblog::codec::encode(&sample).unwrap(), fixture, "{}", path.display());
            }
            // Versions below 251 take one byte; the body follows.
            assert_eq!(today[1..], fixture[1..], "{}: the body encoding of {name} changed", path.display());
            assert_eq!(fixture[0] as u16, version);
        }
    }
}

/// A variant newer than the payload's version, a newer version, version 0,
/// trailing or missing bytes, and a State/Status pair that does not exist
/// are each refused with their own kind.
#[test]
fn bad_event_bytes_are_refused_by_kind() {
    let deleted = std::fs::read(events_dir(2).join("jobs_deleted.bin")).unwrap();
    let mut as_v1 = deleted.clone();
    as_v1[0] = 1;
    assert!(matches!(
        Envelope::decode(&as_v1),
        Err(EventDecodeError::NotInVersion { kind: "JobsDeleted", version: 1, since: 2 })
    ));
    let mut newer = deleted.clone();
    newer[0] = (EVENT_VERSION + 1) as u8;
    assert!(
        matches!(Envelope::decode(&newer), Err(EventDecodeError::Newer { version }) if version == EVENT_VERSION + 1)
    );
    let mut zero = deleted.clone();
    zero[0] = 0;
    assert!(matches!(Envelope::decode(&zero), Err(EventDecodeError::NoSuchVersion)));
    let mut trailing = deleted.clone();
    trailing.push(0);
    assert!(matches!(Envelope::decode(&trailing), Err(EventDecodeError::Malformed { version: 2, .. })));
    assert!(matches!(Envelope::decode(&deleted[..deleted.len() - 1]), Err(EventDecodeError::Malformed { .. })));
    assert!(matches!(Envelope::decode(&[]), Err(EventDecodeError::Malformed { .. })));
    // Ready (state 0) paired with Succeeded: in a transition, the `to`
    // status is its last two bytes before the options; find it by encoding.
    let (name, sample) = samples().into_iter().find(|(n, _)| *n == "transition_lock").unwrap();
    let good = sample.encode().unwrap();
    let Event::Transition(mut bad) = sample.event.clone() else { unreachable!() };
    bad.to = Status::SUCCEEDED; // state Completed (3), reason Succeeded (7th reason)
    let moved = Envelope { event: Event::Transition(bad), ..sample }.encode().unwrap();
    let diff: Vec<usize> = (0..good.len()).filter(|&i| good[i] != moved[i]).collect();
    assert_eq!(diff.len(), 2, "{name}: the state and the reason differ");
    let mut ready_succeeded = moved.clone();
    ready_succeeded[diff[0]] = 0; // State::Ready
    match Envelope::decode(&ready_succeeded) {
        Err(EventDecodeError::Malformed { reason, .. }) => assert!(reason.contains("not a valid"), "{reason}"),
        other => panic!("Ready/Succeeded decoded: {other:?}"),
    }
}

/// Writes `tests/fixtures/events/v{EVENT_VERSION}/`, or the files it lacks
/// (and `v1/` if absent:
/// version 1's types are today's minus `JobsDeleted`, see `git diff
/// 540d6f5 9c97153 -- src/domain`). Never overwrites an existing version:
/// old bytes are history.
#[test]
#[ignore = "regenerates the event fixtures; run only when asked (JOBLOG_REGENERATE=events)"]
fn regenerate_events() {
    if std::env::var("JOBLOG_REGENERATE").as_deref() != Ok("events") {
        panic!("set JOBLOG_REGENERATE=events to write the event fixtures of a new version");
    }
    for version in [1, EVENT_VERSION] {
        let dir = events_dir(version);
        if dir.exists() && version != EVENT_VERSION {
            eprintln!("{} exists: left as it is (old bytes are history)", dir.display());
            continue;
        }
        std::fs::create_dir_all(&dir).unwrap();
        for (name, sample) in samples() {
            // The current version gains the fixtures of new samples; a file
            // that exists is never rewritten.
            if first_version(name, &sample) > version || dir.join(format!("{name}.bin")).exists() {
                continue;
            }
            let mut bytes = sample.encode().unwrap();
            assert!(version < 251);
            bytes[0] = version as u8;
            std::fs::write(dir.join(format!("{name}.bin")), bytes).unwrap();
        }
    }
}

// ---------------------------------------------------------------------------
// Replay: a payload whose frame is whole but whose event cannot be read is
// corruption at a place, not a codec error.

fn reopen_err(dir: &Path) -> joblog::Error {
    let clock = Arc::new(ManualClock::new(t(AFTER_FIXTURE)));
    match Engine::open(dir, Config::default(), clock) {
        Ok(_) => panic!("a store with an unreadable event opened"),
        Err(e) => e,
    }
}

/// Appends raw payloads behind the engine's back (as a damaged or
/// miswritten log would hold them: through the log layer, as the engine
/// hands out no raw log) and returns their first position.
fn append_raw(dir: &Path, payloads: &[Vec<u8>]) -> joblog::log::Position {
    let clock = Arc::new(ManualClock::new(t("2026-01-31T12:00:00Z")));
    let engine = Engine::open(dir, Config::default(), clock).unwrap();
    let admin = engine.session("admin").unwrap();
    admin.add_user("alice", "root", &["basic-user"]).unwrap();
    drop(admin);
    // Dropped, not closed: the events stay in the log after the checkpoint.
    drop(engine);
    let log = joblog::log::Log::open(dir.join("segments"), joblog::log::LogConfig::default()).unwrap();
    let appended = log.append_batch(joblog::log::Batch::from_payloads(payloads.iter().map(|p| p.as_slice()))).unwrap();
    log.close().unwrap();
    let _ = std::fs::remove_dir_all(dir.join("snapshots"));
    appended.first
}

#[test]
fn an_undecodable_event_is_corruption_with_its_seq_file_and_offset() {
    for (what, payload) in [
        ("garbage", b"\x02not an event at all".to_vec()),
        ("a newer variant in an old version", {
            let mut b = std::fs::read(events_dir(2).join("jobs_deleted.bin")).unwrap();
            b[0] = 1;
            b
        }),
        ("a cut event", {
            let b = std::fs::read(events_dir(2).join("user_added.bin")).unwrap();
            b[..b.len() - 2].to_vec()
        }),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let pos = append_raw(dir.path(), &[payload]);
        match reopen_err(dir.path()) {
            e @ joblog::Error::Corrupt { .. } => {
                let msg = e.to_string();
                let joblog::Error::Corrupt { seq, file, offset, reason: Corruption::Event(reason) } = e else {
                    panic!("{what}: not an event's corruption: {msg}")
                };
                assert_eq!(seq, Some(2), "{what}");
                assert_eq!(offset, Some(pos.offset), "{what}");
                assert_eq!(file.unwrap().file_name().unwrap(), "00000000000000000001.seg", "{what}");
                assert!(!matches!(reason, EventDecodeError::Newer { .. }), "{what}: {reason}");
                assert!(msg.contains("event 2") && msg.contains(&format!("offset {}", pos.offset)), "{msg}");
            }
            other => panic!("{what}: {other:?}"),
        }
    }
}

#[test]
fn an_event_of_a_newer_schema_is_refused_as_newer_not_as_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = std::fs::read(events_dir(EVENT_VERSION).join("user_deactivated.bin")).unwrap();
    b[0] = (EVENT_VERSION + 1) as u8;
    append_raw(dir.path(), &[b]);
    assert!(matches!(reopen_err(dir.path()), joblog::Error::NewerVersion { what, .. } if what.contains("event 2")));
}

/// A status pair that does not exist (Ready/Succeeded) in a creation or a
/// transition, and a transition the state machine does not make, are refused
/// on replay.
#[test]
fn impossible_statuses_on_disk_are_refused() {
    let (_, lock) = samples().into_iter().find(|(n, _)| *n == "transition_lock").unwrap();
    let good = lock.encode().unwrap();
    let Event::Transition(mut bad) = lock.event.clone() else { unreachable!() };
    bad.to = Status::SUCCEEDED;
    let moved = Envelope { event: Event::Transition(bad), ..lock.clone() }.encode().unwrap();
    let diff: Vec<usize> = (0..good.len()).filter(|&i| good[i] != moved[i]).collect();
    let mut ready_succeeded = moved.clone();
    ready_succeeded[diff[0]] = 0;

    let created = |status: Status| {
        let mut j = Job::new("j", OperationType::BULK_EMAIL, "admin", "root", t("2026-01-31T12:00:00Z"));
        j.id = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0042);
        j.status = status;
        Envelope {
            version: EVENT_VERSION,
            at: t("2026-01-31T12:00:00Z"),
            actor: Actor::User("admin".into()),
            event: Event::JobCreated(Box::new(j)),
        }
        .encode()
        .unwrap()
    };
    // The job of the sample transition, Ready; then Ready/Succeeded.
    let dir = tempfile::tempdir().unwrap();
    append_raw(dir.path(), &[created(Status::READY), ready_succeeded]);
    match reopen_err(dir.path()) {
        joblog::Error::Corrupt {
            seq: Some(3),
            reason: Corruption::Event(EventDecodeError::Malformed { reason, .. }),
            ..
        } => {
            assert!(reason.contains("statecode 0 with statuscode 30"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    // A creation in Ready/Succeeded.
    let mut job = created(Status::SUCCEEDED);
    let ready = created(Status::IN_PROGRESS);
    let d: Vec<usize> = (0..job.len()).filter(|&i| job[i] != ready[i]).collect();
    job[d[0]] = 0;
    let dir = tempfile::tempdir().unwrap();
    append_raw(dir.path(), &[job]);
    assert!(matches!(
        reopen_err(dir.path()),
        joblog::Error::Corrupt { seq: Some(2), reason: Corruption::Event(_), .. }
    ));
    // Valid statuses, but a move the table does not make (Lock to Succeeded).
    let Event::Transition(mut skip) = lock.event.clone() else { unreachable!() };
    skip.to = Status::SUCCEEDED;
    let skip = Envelope { event: Event::Transition(skip), ..lock }.encode().unwrap();
    let dir = tempfile::tempdir().unwrap();
    append_raw(dir.path(), &[created(Status::READY), skip]);
    assert!(
        matches!(reopen_err(dir.path()), joblog::Error::Corrupt { seq: Some(3), reason: Corruption::Other(m), .. } if m.contains("does not lead to"))
    );
}

/// A store with one Canceled job and a checkpoint whose body `damage`
/// changes, its checksums recomputed over the change (so that only the
/// checkpoint's own checks can refuse it), opened again: the engine (its
/// directory kept with it) and the job.
fn open_with_damaged_checkpoint(damage: impl FnOnce(&mut [u8])) -> (tempfile::TempDir, Engine, Uuid) {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(t("2026-01-31T12:00:00Z")));
    let engine = Engine::open(dir.path(), Config::default(), clock.clone()).unwrap();
    let admin = engine.session("admin").unwrap();
    let job = admin.create(NewJob::new("canceled", OperationType::BULK_EMAIL)).unwrap();
    admin.act(job.id, UserAction::Cancel).unwrap();
    drop(admin);
    let path = engine.checkpoint().unwrap();
    drop(engine);
    // The rows and the chain are in the hot part (format 9: after the
    // head part and the 16-byte frame of the hot part's length and CRC).
    let mut bytes = std::fs::read(&path).unwrap();
    let frame = 40 + usize::try_from(u64::from_le_bytes(bytes[24..32].try_into().unwrap())).unwrap();
    damage(&mut bytes[frame + 16..]);
    let hot_crc = crc32fast::hash(&bytes[frame + 16..]);
    bytes[frame + 8..frame + 12].copy_from_slice(&hot_crc.to_le_bytes());
    let frame_crc = crc32fast::hash(&bytes[frame..frame + 12]);
    bytes[frame + 12..frame + 16].copy_from_slice(&frame_crc.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let engine = Engine::open(dir.path(), Config::default(), clock).unwrap();
    (dir, engine, job.id)
}

/// A checkpoint whose row pairs a State with a Status Reason of another
/// (Ready/Canceled) is refused (skipped, with the reason) and the state
/// comes from the log instead.
#[test]
fn a_checkpoint_with_an_impossible_status_is_refused() {
    let (_dir, engine, job) = open_with_damaged_checkpoint(|body| {
        // Since checkpoint format 8 a row is a fixed record ending in its
        // statecode, statuscode, `deleted` and a zero: Completed (3) /
        // Canceled (32), not deleted.
        let at: Vec<usize> = (0..body.len() - 3).filter(|&i| body[i..i + 4] == [3, 32, 0, 0]).collect();
        assert_eq!(at.len(), 1, "one row's status in the checkpoint: {at:?}");
        body[at[0]] = 0; // State::Ready
    });
    let report = engine.open_report();
    assert_eq!(report.checkpoint_seq, None, "{report:?}");
    assert!(
        report.checkpoints_skipped.iter().any(|s| s.contains("statecode 0 with statuscode 32 is not a valid")),
        "{report:?}"
    );
    assert_eq!(engine.session("admin").unwrap().get(job).unwrap().status, Status::CANCELED);
}

/// A checkpoint whose event chain loops (a job's creation entry naming
/// its later entry as the one before it) is refused when it is read, not
/// walked forever: the state comes from the log instead.
#[test]
fn a_checkpoint_whose_event_chain_loops_is_refused() {
    let (_dir, engine, job) = open_with_damaged_checkpoint(|body| {
        // The job's chain: entry 0 (segment 0, its offset, none before)
        // and entry 1 (segment 0, its offset, entry 0), 12 bytes each.
        let at: Vec<usize> = (4..body.len() - 20)
            .filter(|&i| {
                body[i - 4..i] == [0; 4]
                    && body[i + 4..i + 12] == [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]
                    && body[i + 16..i + 20] == [0; 4]
            })
            .collect();
        assert_eq!(at.len(), 1, "one chain of two entries in the checkpoint: {at:?}");
        body[at[0] + 4..at[0] + 8].copy_from_slice(&1u32.to_le_bytes());
    });
    let report = engine.open_report();
    assert_eq!(report.checkpoint_seq, None, "{report:?}");
    assert!(report.checkpoints_skipped.iter().any(|s| s.contains("event chains loop")), "{report:?}");
    let admin = engine.session("admin").unwrap();
    assert_eq!(admin.get(job).unwrap().status, Status::CANCELED);
    assert_eq!(admin.history(job).unwrap().len(), 2);
}

/// A deletion by id exists since event version 6: stamped as an older
/// version it is corruption (`NotInVersion`); a build of version 5 reads
/// version 6 as newer, as this build reads version 7.
#[test]
fn a_deletion_by_id_is_refused_in_an_older_version_and_read_as_newer_beyond_this_one() {
    let bytes = std::fs::read(events_dir(6).join("jobs_deleted_by_id.bin")).unwrap();
    assert_eq!(bytes[0], 6);
    let mut older = bytes.clone();
    older[0] = 5;
    assert!(
        matches!(
            Envelope::decode(&older),
            Err(EventDecodeError::NotInVersion { kind: "JobsDeletedById", version: 5, since: 6 })
        ),
        "{:?}",
        Envelope::decode(&older)
    );
    let mut newer = bytes;
    newer[0] = (EVENT_VERSION + 1) as u8;
    assert!(matches!(Envelope::decode(&newer), Err(EventDecodeError::Newer { .. })));
}

// Cold runs (docs/format.md, "Cold runs"): tests/fixtures/cold-v<N>.run
// was written by run format N from `cold_sample()`; each must open and read
// the same forever. Regenerating (only for a NEW version's fixture):
// `JOBLOG_REGENERATE=cold-v2 cargo test --release --test format -- --ignored regenerate_cold_run`.

use joblog::projection::cold::{self, ColdJob, ColdRow, ColdRun, Section};

/// Three Completed jobs: every column set somewhere, one without workflow
/// or regarding row, one whose message is set by an event.
fn cold_sample() -> Vec<ColdJob<'static>> {
    let row = |n: u128, createdon: i64, reason, operationtype| ColdRow {
        id: Uuid::from_u128(0x1000 + n),
        createdon,
        startedon: createdon + 10,
        completedon: createdon + 1_000_000 - n as i64,
        modifiedon: createdon + 1_000_001,
        postponeuntil: if n == 2 { createdon + 5 } else { i64::MIN },
        operationtype,
        reason,
        owner: 0,
        owningbusinessunit: 0,
        workflow: 0,
        regarding: 0,
        retrycount: n as u32,
        errorcode: if reason == StatusReason::Failed { -2147204346 } else { i32::MIN },
        executiontimespan_ms: 990 + n as u32,
        events_start: 0,
        events_len: 0,
        message_event: 0,
    };
    let pos = |segment, offset| joblog::log::Position { segment, offset };
    vec![
        ColdJob {
            row: row(3, 1_700_000_300_000_000, StatusReason::Canceled, 1),
            owner: "carol".into(),
            owningbusinessunit: "root".into(),
            workflow: None,
            regarding: None,
            events: vec![pos(1, 32), pos(1, 400)],
            message_event: None,
        },
        ColdJob {
            row: row(1, 1_700_000_100_000_000, StatusReason::Succeeded, 10),
            owner: "alice".into(),
            owningbusinessunit: "sales".into(),
            workflow: Some("wf-orders".into()),
            regarding: Some("account:42".into()),
            events: vec![pos(1, 100), pos(1, 200), pos(7, 64)],
            message_event: None,
        },
        ColdJob {
            row: row(2, 1_700_000_200_000_000, StatusReason::Failed, 10),
            owner: "alice".into(),
            owningbusinessunit: "sales".into(),
            workflow: Some("wf-orders".into()),
            regarding: Some("account:7".into()),
            events: vec![pos(1, 150), pos(7, 96), pos(7, 200), pos(7, 300)],
            message_event: Some(2),
        },
    ]
}

fn cold_segments() -> std::collections::BTreeMap<u64, u32> {
    [(1, 2), (7, 0)].into()
}

#[test]
#[ignore = "regenerates a fixture; run only when asked (JOBLOG_REGENERATE=cold-v2)"]
fn regenerate_cold_run() {
    let Ok(name) = std::env::var("JOBLOG_REGENERATE") else { panic!("set JOBLOG_REGENERATE=cold-v<N>") };
    if !name.starts_with("cold-") {
        eprintln!("JOBLOG_REGENERATE={name}: not a cold run fixture, nothing done");
        return;
    }
    cold::write_run(&fixtures().join(format!("{name}.run")), 5, cold_sample(), &cold_segments(), 0).unwrap();
}

#[test]
fn cold_runs_of_every_version_open_and_read_the_same() {
    for version in 1..=cold::VERSION {
        check_cold_fixture(version);
    }
}

fn check_cold_fixture(version: u16) {
    let path = fixtures().join(format!("cold-v{version}.run"));
    check_cold_run(&ColdRun::open(&path).unwrap(), version);
    // Today's writer, at this fixture's version, writes exactly its bytes.
    if cold::VERSION == version {
        let tmp = tempfile::tempdir().unwrap();
        let again = tmp.path().join(cold::file_name(5));
        cold::write_run(&again, 5, cold_sample(), &cold_segments(), 0).unwrap();
        assert_eq!(std::fs::read(again).unwrap(), std::fs::read(&path).unwrap());
    }
}

/// A compaction copies a run of any version into today's, keeping what it
/// answers (`cold::copy_run`): the copy of each fixture reads as today's.
#[test]
fn a_cold_run_of_every_version_copies_into_todays() {
    let tmp = tempfile::tempdir().unwrap();
    let live: joblog::log::Generations = cold_segments().into_iter().collect();
    for version in 1..=cold::VERSION {
        let run = ColdRun::open(&fixtures().join(format!("cold-v{version}.run"))).unwrap();
        let path = tmp.path().join(cold::file_name(u64::from(version)));
        assert_eq!(run.replaces(), None, "version {version}");
        // A deletion's copy, standing in for run 2.
        let stand_in = cold::StandIn { replaces: 2, pending: &|_| None };
        cold::copy_run(&path, 5, &run, &Default::default(), Some(stand_in), Ok, &live).unwrap();
        let copy = ColdRun::open(&path).unwrap();
        check_cold_run(&copy, cold::VERSION);
        assert_eq!(copy.replaces(), Some(2));
        assert!(copy.dropped().unwrap().is_empty(), "no row left out");
        assert_eq!(cold::header_of(&path), Some((5, Some(2))));
    }
}

fn check_cold_run(run: &ColdRun, version: u16) {
    assert_eq!((run.id(), run.len()), (5, 3));
    // Rows in createdon order: jobs 1, 2, 3.
    let rows: Vec<ColdRow> = (0..3).map(|i| run.row(i).unwrap()).collect();
    assert_eq!(rows.iter().map(|r| r.id.as_u128()).collect::<Vec<_>>(), [0x1001, 0x1002, 0x1003]);
    let sample = cold_sample();
    for (i, want) in [(0, &sample[1]), (1, &sample[2]), (2, &sample[0])] {
        let r = rows[i];
        let w = want.row;
        assert_eq!(run.find(w.id).unwrap(), Some(i as u32));
        assert_eq!(
            (r.createdon, r.startedon, r.completedon, r.modifiedon, r.postponeuntil),
            (w.createdon, w.startedon, w.completedon, w.modifiedon, w.postponeuntil)
        );
        assert_eq!(
            (r.operationtype, r.reason, r.retrycount, r.errorcode),
            (w.operationtype, w.reason, w.retrycount, w.errorcode)
        );
        assert_eq!(r.executiontimespan_ms, w.executiontimespan_ms);
        assert_eq!(run.name(r.owner).unwrap(), Some(&*want.owner));
        assert_eq!(run.name(r.owningbusinessunit).unwrap(), Some(&*want.owningbusinessunit));
        assert_eq!(run.name(r.workflow).unwrap(), want.workflow.as_deref());
        assert_eq!(run.name(r.regarding).unwrap(), want.regarding.as_deref());
        assert_eq!(run.events(&r).unwrap(), want.events);
        assert_eq!(r.message_event, want.message_event.unwrap_or(u32::MAX));
    }
    let set = |s, key| {
        let p = run.postings(s, key).unwrap();
        (0..p.len()).map(|i| p.get(i).unwrap()).collect::<Vec<u32>>()
    };
    assert_eq!(set(Section::ByType, 10), [0, 1]);
    assert_eq!(set(Section::ByOwner, u64::from(run.sym("alice").unwrap().unwrap())), [0, 1]);
    assert_eq!(set(Section::ByWorkflow, u64::from(run.sym("wf-orders").unwrap().unwrap())), [0, 1]);
    assert_eq!(set(Section::ByRegarding, u64::from(run.sym("account:7").unwrap().unwrap())), [1]);
    assert_eq!(set(Section::Completed, (31 << 32) | 10), [1]);
    assert_eq!(
        run.keys(Section::Completed).unwrap(),
        [((30 << 32) | 10, 1), ((31 << 32) | 10, 1), ((32 << 32) | 1, 1)]
    );
    // Format 2: by (Status Reason, type) and by Status Reason, createdon order.
    assert_eq!(run.has(Section::ByStatus), version >= 2);
    if version >= 2 {
        assert_eq!(set(Section::ByStatus, (31 << 32) | 10), [1]);
        assert_eq!(set(Section::ByStatus, (30 << 32) | u64::from(cold::ANY_TYPE)), [0]);
        assert_eq!(run.keys(Section::ByStatus).unwrap().len(), 6);
    }
    assert_eq!(run.segments().unwrap(), cold_segments());
    run.check_all().unwrap();
}
