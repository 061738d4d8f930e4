//! The Dataverse-compatible Web API (`/api/data/v9.2/`, docs/http.md,
//! "Dataverse Web API") end to end: a real server on 127.0.0.1:0 over a
//! temporary store, spoken to over HTTP; answers checked against the
//! engine's own (or against the predicate computed here on every job).
//! The last test drives it with a third-party Dataverse client, the npm
//! package `dynamics-web-api` (server/tests/clients/), when `node` is there.

use std::collections::HashSet;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use joblog::domain::{Depth, ManualClock, Privilege, Regarding, Role};
use joblog::engine::{Config, ServiceStep};
use joblog::{Engine, Filter, Job, NewJob, OperationType, Status, Timestamp};
use joblog_server::{HttpConfig, Limits, Server, TlsFiles};
use serde_json::Value;
use uuid::Uuid;

struct World {
    _dir: tempfile::TempDir,
    engine: Engine,
    server: Option<Server>,
    base: String,
    admin: String,
    alice: String,
    bob: String,
    auditor: String,
}

impl Drop for World {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            s.stop();
        }
    }
}

const JOBS: usize = 130;

/// A store with users alice and bob (basic users: their own jobs), an
/// auditor (Read everywhere, no Write) and the administrator; `JOBS` jobs
/// owned by the three, created two by two in the same second (ties in
/// `createdon`), some of them run to Succeeded or Failed.
fn world() -> World {
    world_with(|_| None)
}

/// [`world`], served over TLS when `tls` makes certificate files in the
/// store's temporary directory.
fn world_with(tls: impl FnOnce(&std::path::Path) -> Option<TlsFiles>) -> World {
    let dir = tempfile::tempdir().unwrap();
    let t0 = Timestamp::parse("2026-01-01T00:00:00Z").unwrap();
    let clock = Arc::new(ManualClock::new(t0));
    let engine = Engine::open(dir.path(), Config::default(), clock.clone()).unwrap();
    let admin = engine.session("admin").unwrap();
    admin.add_user("alice", "root", &["basic-user"]).unwrap();
    admin.add_user("bob", "root", &["basic-user"]).unwrap();
    admin.add_role(Role::new("auditor", [(Privilege::Read, Depth::Organization)])).unwrap();
    admin.add_user("auditor", "root", &["auditor"]).unwrap();
    let worker = engine.worker("w");
    for i in 0..JOBS {
        clock.set(t0.plus_micros((i as i64 / 2) * 1_000_000 + (i as i64 % 2) * 250_000));
        let owner = ["alice", "bob", "admin"][(i / 6) % 3];
        let kind = if i % 4 == 0 { OperationType::SYSTEM_EVENT } else { OperationType::WORKFLOW };
        let mut spec = NewJob::new(&format!("{} job {i:03}", ["Import", "export", "Sync"][i % 3]), kind);
        spec.owner = Some(owner.into());
        if i % 5 == 0 {
            spec.regarding = Some(Regarding::parse(&format!("contact:{}", i % 7)).unwrap());
        }
        let job = admin.create(spec).unwrap();
        match i % 6 {
            1 => {
                worker.step(job.id, ServiceStep::Lock).unwrap();
                worker.step(job.id, ServiceStep::Succeed).unwrap();
            }
            2 => {
                worker.step(job.id, ServiceStep::Lock).unwrap();
                worker.step(job.id, ServiceStep::Fail { code: 42, message: format!("it's broken {i}") }).unwrap();
            }
            3 => {
                worker.step(job.id, ServiceStep::Lock).unwrap();
            }
            _ => {}
        }
    }
    clock.set(t0.plus_micros(3_600_000_000));
    let token = |u: &str| admin.create_token(u, None, None).unwrap().token;
    let (ta, tal, tb, tau) = (token("admin"), token("alice"), token("bob"), token("auditor"));
    let server = joblog_server::start(
        engine.clone(),
        Arc::new(AtomicBool::new(true)),
        HttpConfig { addr: "127.0.0.1:0".into(), tls: tls(dir.path()), limits: Limits::default() },
    )
    .unwrap();
    let base = format!("http://{}/api/data/v9.2/", server.local_addr().unwrap());
    World { _dir: dir, engine, server: Some(server), base, admin: ta, alice: tal, bob: tb, auditor: tau }
}

/// An answer: status, headers, body (JSON, or Null when there is none).
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn error_code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_else(|| panic!("no error body: {}", self.body))
    }

    fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or_else(|| panic!("no error body: {}", self.body))
    }
}

fn call(method: &str, url: &str, token: Option<&str>, headers: &[(&str, &str)], body: Option<&str>) -> Answer {
    let agent = ureq::AgentBuilder::new().timeout(std::time::Duration::from_secs(60)).build();
    let mut req = agent.request(method, url);
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let res = match body {
        Some(b) if headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type")) => req.send_string(b),
        Some(b) => req.set("Content-Type", "application/json").send_string(b),
        None => req.call(),
    };
    let res = match res {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    let status = res.status();
    let headers =
        res.headers_names().into_iter().map(|n| (n.clone(), res.header(&n).unwrap_or("").to_string())).collect();
    let text = res.into_string().unwrap();
    let body = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
    Answer { status, headers, body }
}

/// A PATCH over a plain socket: the server may answer (413) and close
/// before the whole body is sent, which an HTTP client reports as a broken
/// pipe; here the rest of the body is given up and the answer read.
fn raw_patch(w: &World, url: &str, token: &str, body: &[u8]) -> (u16, String) {
    use std::io::{Read, Write};
    let addr = w.server.as_ref().unwrap().local_addr().unwrap();
    let path = url.split_once(&addr.to_string()).unwrap().1;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let head = format!(
        "PATCH {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    let _ = s.write_all(body);
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, text)
}

fn get(w: &World, path: &str, token: &str) -> Answer {
    call("GET", &format!("{}{path}", w.base), Some(token), &[], None)
}

/// Every job, as the administrator sees them (newest first).
fn all_jobs(w: &World) -> Vec<Job> {
    w.engine.session("admin").unwrap().list(&Filter::default(), None, usize::MAX).unwrap().0
}

/// Follows `@odata.nextLink` from `first` to the end: the ids in order,
/// and how many pages.
fn follow(w: &World, first: &str, token: &str, page: usize) -> (Vec<String>, usize) {
    let prefer = format!("odata.maxpagesize={page}");
    let mut url = format!("{}{first}", w.base);
    let mut ids = Vec::new();
    let mut pages = 0;
    loop {
        let a = call("GET", &url, Some(token), &[("Prefer", &prefer)], None);
        assert_eq!(a.status, 200, "{url}: {}", a.body);
        assert_eq!(a.header("Preference-Applied"), Some(prefer.as_str()));
        assert_eq!(a.header("OData-Version"), Some("4.0"));
        let rows = a.body["value"].as_array().unwrap();
        assert!(rows.len() <= page);
        ids.extend(rows.iter().map(|r| r["asyncoperationid"].as_str().unwrap().to_string()));
        pages += 1;
        match a.body["@odata.nextLink"].as_str() {
            Some(next) => {
                assert!(next.starts_with(&w.base), "an absolute link: {next}");
                assert!(next.contains("$skiptoken="), "{next}");
                url = next.to_string();
            }
            None => return (ids, pages),
        }
        assert!(pages < 1000);
    }
}

fn enc(s: &str) -> String {
    s.replace('%', "%25").replace(' ', "%20").replace('\'', "%27").replace('+', "%2B").replace('&', "%26")
}

#[test]
fn paging_walks_every_row_once_in_the_engines_order() {
    let w = world();
    let expected: Vec<String> = all_jobs(&w).iter().map(|j| j.id.to_string()).collect();
    assert_eq!(expected.len(), JOBS);
    let (ids, pages) = follow(&w, "asyncoperations", &w.admin, 25);
    assert_eq!(ids, expected, "no duplicate, no gap, newest first");
    assert_eq!(pages, JOBS.div_ceil(25));
    // The page's shape, as the platform sends it.
    let a = call(
        "GET",
        &format!("{}asyncoperations?$select=name,statecode", w.base),
        Some(&w.admin),
        &[("Prefer", "odata.maxpagesize=2")],
        None,
    );
    assert_eq!(a.body["@odata.context"], format!("{}$metadata#asyncoperations(name,statecode)", w.base));
    let row = &a.body["value"][0];
    let keys: HashSet<&str> = row.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, HashSet::from(["@odata.etag", "asyncoperationid", "name", "statecode"]));
    assert!(row["@odata.etag"].as_str().unwrap().starts_with("W/\""));
    // Every column, dates in whole seconds with a Z.
    let a = get(&w, "asyncoperations?$top=1", &w.admin);
    let row = &a.body["value"][0];
    for c in [
        "_ownerid_value",
        "_regardingobjectid_value",
        "_workflowactivationid_value",
        "createdon",
        "operationtype",
        "statuscode",
    ] {
        assert!(row.get(c).is_some(), "{c} in {row}");
    }
    assert!(row["createdon"].as_str().unwrap().ends_with(":00Z") || row["createdon"].as_str().unwrap().ends_with('Z'));
    assert_eq!(a.body["value"].as_array().unwrap().len(), 1);
    assert!(a.body.get("@odata.nextLink").is_none(), "$top caps the whole answer");
    // $top across pages: 30 rows in pages of 8.
    let (ids, pages) = follow(&w, "asyncoperations?$top=30", &w.admin, 8);
    assert_eq!(ids, expected[..30]);
    assert_eq!(pages, 4);
}

/// Each filter, evaluated here on every job, against the server's answer
/// (all pages) and its `@odata.count`.
#[test]
fn filters_answer_exactly_the_predicate() {
    let w = world();
    let jobs = all_jobs(&w);
    let t = |s: &str| Timestamp::parse(s).unwrap().micros();
    type Predicate = Box<dyn Fn(&Job) -> bool>;
    let cases: Vec<(&str, Predicate)> = vec![
        ("statecode eq 3", Box::new(|j| j.status.is_completed())),
        ("statecode eq 3 and statuscode eq 31", Box::new(|j| j.status == Status::FAILED)),
        (
            "statuscode eq 30 or statuscode eq 31",
            Box::new(|j| j.status == Status::SUCCEEDED || j.status == Status::FAILED),
        ),
        ("not (statecode eq 0)", Box::new(|j| j.status.statecode() != 0)),
        (
            "operationtype eq 1 and _ownerid_value eq 'alice'",
            Box::new(|j| j.operationtype.0 == 1 && j.owner == "alice"),
        ),
        (
            "ownerid eq 'bob' and contains(name,'EXPORT')",
            Box::new(|j| j.owner == "bob" && j.name.to_lowercase().contains("export")),
        ),
        (
            "startswith(name,'sync') and statecode ne 2",
            Box::new(|j| j.name.starts_with("Sync") && j.status.statecode() != 2),
        ),
        (
            "_regardingobjectid_value eq 'contact:3'",
            Box::new(|j| j.regarding.as_ref().is_some_and(|r| r.to_string() == "contact:3")),
        ),
        (
            "regardingobjectid ne null and operationtype eq 10",
            Box::new(|j| j.regarding.is_some() && j.operationtype.0 == 10),
        ),
        ("completedon eq null", Box::new(|j| j.completedon.is_none())),
        (
            "createdon ge 2026-01-01T00:00:10Z and createdon lt 2026-01-01T00:00:20Z",
            Box::new(move |j| {
                j.createdon.micros() >= t("2026-01-01T00:00:10Z") && j.createdon.micros() < t("2026-01-01T00:00:20Z")
            }),
        ),
        ("createdon gt 2026-01-01T00:01:00Z", Box::new(move |j| j.createdon.micros() >= t("2026-01-01T00:01:01Z"))),
        ("createdon le 2026-01-01T00:00:03Z", Box::new(move |j| j.createdon.micros() < t("2026-01-01T00:00:04Z"))),
        (
            "createdon eq 2026-01-01T00:00:05Z",
            Box::new(move |j| j.createdon.micros() / 1_000_000 == t("2026-01-01T00:00:05Z") / 1_000_000),
        ),
        ("errorcode eq 42 and contains(message,'IT''S')", Box::new(|j| j.errorcode == Some(42))),
        ("retrycount gt 0 or depth ge 2", Box::new(|j| j.retrycount > 0 || j.depth >= 2)),
        (
            "(statecode eq 1 or statecode eq 2) and not startswith(name,'Import')",
            Box::new(|j| matches!(j.status.statecode(), 1 | 2) && !j.name.starts_with("Import")),
        ),
    ];
    for (filter, pred) in cases {
        let expected: Vec<String> = jobs.iter().filter(|j| pred(j)).map(|j| j.id.to_string()).collect();
        let (ids, _) = follow(&w, &format!("asyncoperations?$filter={}", enc(filter)), &w.admin, 7);
        assert_eq!(ids, expected, "{filter}");
        let a = get(&w, &format!("asyncoperations?$count=true&$top=1&$filter={}", enc(filter)), &w.admin);
        assert_eq!(a.body["@odata.count"], expected.len(), "{filter}");
    }
    // One id: read directly, the rest of the predicate still checked.
    let one = &jobs[17];
    for (f, n) in [
        (format!("asyncoperationid eq {}", one.id), 1),
        (format!("asyncoperationid eq {} and statecode eq {}", one.id, one.status.statecode()), 1),
        (format!("statecode ne {} and asyncoperationid eq {}", one.status.statecode(), one.id), 0),
        (format!("asyncoperationid eq {}", Uuid::now_v7()), 0),
    ] {
        let a = get(&w, &format!("asyncoperations?$count=true&$filter={}", enc(&f)), &w.admin);
        assert_eq!(a.body["value"].as_array().unwrap().len(), n, "{f}");
        assert_eq!(a.body["@odata.count"], n, "{f}");
        assert!(a.body.get("@odata.nextLink").is_none());
    }
    let bobs = jobs.iter().find(|j| j.owner == "bob").unwrap();
    let a = get(&w, &format!("asyncoperations?$filter=asyncoperationid%20eq%20{}", bobs.id), &w.alice);
    assert_eq!(a.body["value"].as_array().unwrap().len(), 0, "not alice's to read");
    let a = get(&w, &format!("asyncoperations/$count?$filter=asyncoperationid%20eq%20{}", one.id), &w.admin);
    assert_eq!(a.body, Value::from(1));
    // `asyncoperations/$count`: the number alone.
    let a = get(&w, "asyncoperations/$count?$filter=statecode%20eq%203%20and%20contains(name,'x')", &w.admin);
    assert_eq!(a.status, 200);
    let want = jobs.iter().filter(|j| j.status.is_completed() && j.name.contains('x')).count();
    assert_eq!(a.body, Value::from(want));
    // The count of an indexed filter is the engine's own.
    let admin = w.engine.session("admin").unwrap();
    let f = Filter { state: Some(joblog::domain::State::Completed), ..Filter::default() };
    let a = get(&w, "asyncoperations?$count=true&$filter=statecode%20eq%203", &w.admin);
    assert_eq!(a.body["@odata.count"], admin.count(&f).unwrap());
}

#[test]
fn orderings_page_without_repeats_or_gaps() {
    let w = world();
    let jobs = all_jobs(&w);
    let mut by_name = jobs.clone();
    by_name.sort_by_key(|j| (j.name.to_lowercase(), j.id));
    let (ids, _) = follow(&w, "asyncoperations?$orderby=name", &w.admin, 9);
    assert_eq!(ids, by_name.iter().map(|j| j.id.to_string()).collect::<Vec<_>>());
    let mut by_created = jobs.clone();
    by_created.sort_by_key(|j| (j.createdon, j.id));
    let (ids, _) = follow(&w, "asyncoperations?$orderby=createdon%20asc&$filter=statecode%20ne%202", &w.admin, 11);
    let want: Vec<String> = by_created.iter().filter(|j| j.status.statecode() != 2).map(|j| j.id.to_string()).collect();
    assert_eq!(ids, want);
    // completedon desc: nulls last, ties by id.
    let mut by_completed = jobs.clone();
    by_completed.sort_by(|a, b| b.completedon.cmp(&a.completedon).then(a.id.cmp(&b.id)));
    let (ids, _) = follow(&w, "asyncoperations?$orderby=completedon%20desc", &w.admin, 13);
    assert_eq!(ids, by_completed.iter().map(|j| j.id.to_string()).collect::<Vec<_>>());
}

#[test]
fn rows_show_only_what_the_caller_may_read() {
    let w = world();
    let jobs = all_jobs(&w);
    let alices: Vec<String> = jobs.iter().filter(|j| j.owner == "alice").map(|j| j.id.to_string()).collect();
    let (ids, _) = follow(&w, "asyncoperations", &w.alice, 10);
    assert_eq!(ids, alices);
    let a = get(&w, "asyncoperations?$count=true&$filter=ownerid%20eq%20'bob'", &w.alice);
    assert_eq!(a.body["@odata.count"], 0);
    assert_eq!(a.body["value"].as_array().unwrap().len(), 0);
    let bobs = jobs.iter().find(|j| j.owner == "bob").unwrap();
    let a = get(&w, &format!("asyncoperations({})", bobs.id), &w.alice);
    assert_eq!((a.status, a.error_code()), (404, "0x80040217"));
    let a = get(&w, &format!("asyncoperations({})?$select=name", bobs.id), &w.bob);
    assert_eq!(a.status, 200);
    assert_eq!(a.body["name"], bobs.name.as_str());
    assert_eq!(a.body["@odata.context"], format!("{}$metadata#asyncoperations(name)/$entity", w.base));
    assert_eq!(a.header("ETag"), a.body["@odata.etag"].as_str());
    let a = get(&w, &format!("asyncoperations({})", Uuid::now_v7()), &w.admin);
    assert_eq!(a.status, 404);
    // Labels when asked, as the platform's formatted values.
    let a = call(
        "GET",
        &format!("{}asyncoperations({})?$select=statecode,statuscode,operationtype,ownerid", w.base, bobs.id),
        Some(&w.bob),
        &[("Prefer", "odata.include-annotations=\"*\"")],
        None,
    );
    assert_eq!(a.body["statecode@OData.Community.Display.V1.FormattedValue"], bobs.status.state().name());
    assert_eq!(a.body["statuscode@OData.Community.Display.V1.FormattedValue"], bobs.status.reason().name());
    assert_eq!(a.body["operationtype@OData.Community.Display.V1.FormattedValue"], bobs.operationtype.display_name());
    assert_eq!(a.body["_ownerid_value@OData.Community.Display.V1.FormattedValue"], "bob");
    assert_eq!(a.header("Preference-Applied"), Some("odata.include-annotations=\"*\""));
    // A token from another user's query is refused: it belongs to its query.
    let first =
        call("GET", &format!("{}asyncoperations", w.base), Some(&w.admin), &[("Prefer", "odata.maxpagesize=5")], None);
    let next = first.body["@odata.nextLink"].as_str().unwrap();
    let a = call("GET", next, Some(&w.alice), &[], None);
    assert_eq!(a.status, 400);
    assert!(a.message().contains("$skiptoken"), "{}", a.message());
    let a = call("GET", &format!("{}&$filter=statecode%20eq%201", next), Some(&w.admin), &[], None);
    assert_eq!(a.status, 400, "a token with another filter");
}

#[test]
fn refusals_are_400s_that_name_the_part() {
    let w = world();
    let cases = [
        ("$filter=endswith(name,'x')", "function 'endswith' at position 1"),
        ("$filter=statecode%20eq%201%20and%20year(createdon)%20eq%202026", "function 'year'"),
        ("$filter=statecode%20has%201", "operator 'has'"),
        ("$filter=nosuch%20eq%201", "column 'nosuch'"),
        ("$filter=ownerid/fullname%20eq%20'x'", "ownerid/"),
        ("$filter=statecode%20eq%20'x'", "cannot be compared"),
        ("$select=name,nosuch", "column 'nosuch'"),
        ("$orderby=statecode", "column 'statecode'"),
        ("$skip=10", "$skip"),
        ("$apply=groupby((name))", "$apply"),
        ("$top=x", "$top"),
        ("$skiptoken=garbage", "$skiptoken"),
        ("$count=maybe", "$count"),
    ];
    for (q, part) in cases {
        let a = get(&w, &format!("asyncoperations?{q}"), &w.admin);
        assert_eq!(a.status, 400, "{q}: {}", a.body);
        assert_eq!(a.error_code(), "0x80040203", "{q}");
        assert!(a.message().contains(part), "{q}: {}", a.message());
        assert_eq!(a.header("OData-Version"), Some("4.0"));
    }
    // Hostile filters: deep, long, wide, binary; each a quick 400.
    let deep = format!("{}statecode%20eq%201{}", "(".repeat(5000), ")".repeat(5000));
    let long = format!("name%20eq%20'{}'", "x".repeat(9000));
    let wide = vec!["statecode%20eq%201"; 400].join("%20or%20");
    for f in [deep, long, wide, "%00%ff%fe".into(), "'''".into(), "((((".into(), "not".into()] {
        let started = std::time::Instant::now();
        let a = get(&w, &format!("asyncoperations?$filter={f}"), &w.admin);
        assert_eq!(a.status, 400, "{}", &f[..f.len().min(40)]);
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }
    // No token, a wrong one.
    let a = call("GET", &format!("{}asyncoperations", w.base), None, &[], None);
    assert_eq!((a.status, a.error_code()), (401, "0x80072560"));
    let a = call("GET", &format!("{}asyncoperations", w.base), Some("jl_nope"), &[], None);
    assert_eq!(a.status, 401);
    let a = get(&w, "accounts", &w.admin);
    assert_eq!(a.status, 404);
    let a = call("PUT", &format!("{}asyncoperations", w.base), Some(&w.admin), &[], Some("{}"));
    assert_eq!((a.status, a.error_code()), (405, "0x80060888"));
}

fn job_where(w: &World, pred: impl Fn(&Job) -> bool) -> Job {
    all_jobs(w).into_iter().find(|j| pred(j)).expect("a seeded job")
}

#[test]
fn patch_acts_through_the_state_machine_and_refusals_change_nothing() {
    let w = world();
    let url = |j: &Job| format!("{}asyncoperations({})", w.base, j.id);
    let seq = || w.engine.next_seq();
    // Alice cancels her Ready job: 204, OData-EntityId, now Canceled.
    let ready = job_where(&w, |j| j.owner == "alice" && j.status == Status::READY);
    let a = call("PATCH", &url(&ready), Some(&w.alice), &[], Some(r#"{"statecode":3,"statuscode":32}"#));
    assert_eq!(a.status, 204, "{}", a.body);
    assert_eq!(a.header("OData-EntityId"), Some(url(&ready).as_str()));
    assert_eq!(w.engine.session("admin").unwrap().get(ready.id).unwrap().status, Status::CANCELED);
    // Pause a Locked job, with the row back.
    let locked = job_where(&w, |j| j.owner == "alice" && j.status == Status::IN_PROGRESS);
    let a = call(
        "PATCH",
        &url(&locked),
        Some(&w.alice),
        &[("Prefer", "return=representation")],
        Some(r#"{"statecode":1}"#),
    );
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        (a.body["statecode"].as_u64(), a.body["statuscode"].as_u64()),
        (Some(2), Some(21)),
        "Pausing while it runs"
    );
    // Refusals: each a 4xx with the platform's body, nothing written.
    let done = job_where(&w, |j| j.owner == "alice" && j.status == Status::SUCCEEDED);
    let bobs = job_where(&w, |j| j.owner == "bob" && j.status == Status::READY);
    let admins = job_where(&w, |j| j.owner == "admin" && j.status == Status::READY);
    let other = job_where(&w, |j| j.owner == "alice" && j.status == Status::READY);
    // (url, token, headers, body, status, code)
    type Case<'a> = (String, &'a str, Vec<(&'a str, &'a str)>, &'a str, u16, &'a str);
    let cases: Vec<Case> = vec![
        (url(&done), &w.alice, vec![], r#"{"statecode":3,"statuscode":32}"#, 400, "0x80040265"),
        (url(&other), &w.alice, vec![], r#"{"statecode":1}"#, 400, "0x80040265"),
        (url(&other), &w.alice, vec![], r#"{"name":"renamed"}"#, 400, "0x80040203"),
        (url(&other), &w.alice, vec![], r#"{"statecode":3,"statuscode":30}"#, 400, "0x80040203"),
        (url(&other), &w.alice, vec![], "not json", 400, "0x80040203"),
        (url(&other), &w.alice, vec![("If-Match", "W/\"1\"")], r#"{"statecode":3,"statuscode":32}"#, 412, "0x80060882"),
        (url(&other), &w.alice, vec![("If-None-Match", "*")], r#"{"statecode":3,"statuscode":32}"#, 412, "0x80060882"),
        (url(&bobs), &w.alice, vec![], r#"{"statecode":3,"statuscode":32}"#, 404, "0x80040217"),
        (url(&admins), &w.auditor, vec![], r#"{"statecode":3,"statuscode":32}"#, 403, "0x80040220"),
    ];
    for (u, token, headers, body, status, code) in cases {
        let before = seq();
        let a = call("PATCH", &u, Some(token), &headers, Some(body));
        assert_eq!((a.status, a.error_code()), (status, code), "{body} {headers:?}: {}", a.body);
        assert_eq!(seq(), before, "nothing written for {body}");
    }
    // A body that is not JSON by its type: refused, nothing written.
    let before = seq();
    let a = call(
        "PATCH",
        &url(&other),
        Some(&w.alice),
        &[("Content-Type", "application/x-www-form-urlencoded")],
        Some("statecode=3"),
    );
    assert_eq!((a.status, a.error_code()), (400, "0x80040203"), "{}", a.body);
    assert_eq!(seq(), before);
    // If-Match with the current tag, and `*`, go through.
    let tag =
        get(&w, &format!("asyncoperations({})", other.id), &w.alice).body["@odata.etag"].as_str().unwrap().to_string();
    let a = call(
        "PATCH",
        &url(&other),
        Some(&w.alice),
        &[("If-Match", &tag)],
        Some(r#"{"postponeuntil":"2027-01-01T00:00:00Z"}"#),
    );
    assert_eq!(a.status, 204, "{}", a.body);
    let now = w.engine.session("admin").unwrap().get(other.id).unwrap();
    assert_eq!(now.postponeuntil, Some(Timestamp::parse("2027-01-01T00:00:00Z").unwrap()));
    let a = call("PATCH", &url(&other), Some(&w.alice), &[("If-Match", "*")], Some(r#"{"statecode":0}"#));
    assert_eq!(a.status, 204, "Resume from Suspended: {}", a.body);
    // A body over the limit: 413.
    let big = format!("{{\"statecode\":0,\"pad\":\"{}\"}}", "x".repeat(2 << 20));
    let before = seq();
    let (status, body) = raw_patch(&w, &url(&other), &w.alice, big.as_bytes());
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("0x8004e102"), "{body}");
    assert_eq!(seq(), before);
}

#[test]
fn delete_refuses_what_it_cannot_delete() {
    let w = world();
    let ready = job_where(&w, |j| j.status == Status::READY);
    let before = w.engine.next_seq();
    let a = call("DELETE", &format!("{}asyncoperations({})", w.base, ready.id), Some(&w.admin), &[], None);
    assert_eq!((a.status, a.error_code()), (400, "0x80040265"));
    assert!(a.message().contains("Completed"), "{}", a.message());
    let mine = job_where(&w, |j| j.owner == "alice" && j.status.is_completed());
    let a = call("DELETE", &format!("{}asyncoperations({})", w.base, mine.id), Some(&w.alice), &[], None);
    assert_eq!(a.status, 403, "deleting needs Delete on the job: {}", a.body);
    assert_eq!(w.engine.next_seq(), before);
}

#[test]
fn delete_deletes_one_completed_job_and_refusals_change_nothing() {
    let w = world();
    let url = |id: &dyn std::fmt::Display| format!("{}asyncoperations({id})", w.base);
    let count = || get(&w, "asyncoperations/$count", &w.admin).body.clone();
    let total = count();
    assert_eq!(total, Value::from(JOBS as u64), "{total}");
    let bobs = job_where(&w, |j| j.owner == "bob" && j.status == Status::SUCCEEDED);
    let seq = || w.engine.next_seq();
    let before = seq();
    // Alice (basic user) cannot read Bob's job: 404, as if it did not exist.
    let a = call("DELETE", &url(&bobs.id), Some(&w.alice), &[], None);
    assert_eq!((a.status, a.error_code()), (404, "0x80040217"), "{}", a.body);
    // The auditor reads it but may not delete: 403.
    let a = call("DELETE", &url(&bobs.id), Some(&w.auditor), &[], None);
    assert_eq!((a.status, a.error_code()), (403, "0x80040220"), "{}", a.body);
    // A stale If-Match: 412.
    let a = call("DELETE", &url(&bobs.id), Some(&w.admin), &[("If-Match", "W/\"1\"")], None);
    assert_eq!(a.status, 412, "{}", a.body);
    // An id that does not exist: 404; one that is not an id: 400.
    let a = call("DELETE", &url(&Uuid::from_u128(7)), Some(&w.admin), &[], None);
    assert_eq!((a.status, a.error_code()), (404, "0x80040217"), "{}", a.body);
    let a = call("DELETE", &url(&"not-a-guid"), Some(&w.admin), &[], None);
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(seq(), before, "no refusal wrote anything");
    assert_eq!(count(), total);

    // The administrator deletes it: 204, then it is gone everywhere.
    let tag =
        get(&w, &format!("asyncoperations({})", bobs.id), &w.admin).body["@odata.etag"].as_str().unwrap().to_string();
    let a = call("DELETE", &url(&bobs.id), Some(&w.admin), &[("If-Match", &tag)], None);
    assert_eq!(a.status, 204, "{}", a.body);
    let a = get(&w, &format!("asyncoperations({})", bobs.id), &w.admin);
    assert_eq!((a.status, a.error_code()), (404, "0x80040217"), "{}", a.body);
    assert_eq!(count(), Value::from(JOBS as u64 - 1));
    let a = get(&w, &format!("asyncoperations?$filter=asyncoperationid%20eq%20{}", bobs.id), &w.admin);
    assert_eq!(a.body["value"].as_array().unwrap().len(), 0, "{}", a.body);
    // Deleted again: 404, nothing written.
    let before = seq();
    let a = call("DELETE", &url(&bobs.id), Some(&w.admin), &[], None);
    assert_eq!((a.status, a.error_code()), (404, "0x80040217"), "{}", a.body);
    assert_eq!(seq(), before);
    // A Ready job is refused, and stays Ready.
    let ready = job_where(&w, |j| j.status == Status::READY);
    let a = call("DELETE", &url(&ready.id), Some(&w.admin), &[], None);
    assert_eq!((a.status, a.error_code()), (400, "0x80040265"), "{}", a.body);
    assert_eq!(w.engine.session("admin").unwrap().get(ready.id).unwrap().status, Status::READY);
    assert_eq!(seq(), before);
}

#[test]
fn bulk_delete_creates_a_bulk_delete_job_and_lists_it() {
    let w = world();
    let body = r#"{
        "QuerySet": [{
            "EntityName": "asyncoperation",
            "ColumnSet": {"AllColumns": true},
            "Criteria": {"FilterOperator": "And", "Conditions": [
                {"AttributeName": "operationtype", "Operator": "In", "Values": [{"Value": "10", "Type": "System.Int32"}, {"Value": "1", "Type": "System.Int32"}]},
                {"AttributeName": "statuscode", "Operator": "Equal", "Values": [{"Value": "30", "Type": "System.Int32"}]},
                {"AttributeName": "completedon", "Operator": "OlderThanXDays", "Values": [{"Value": "7", "Type": "System.Int32"}]}
            ]}
        }],
        "JobName": "Weekly cleanup",
        "SendEmailNotification": false,
        "ToRecipients": [],
        "CCRecipients": [],
        "RecurrencePattern": "FREQ=WEEKLY;INTERVAL=1",
        "StartDateTime": "2026-02-01T00:00:00Z"
    }"#;
    let a = call("POST", &format!("{}BulkDelete", w.base), Some(&w.admin), &[], Some(body));
    assert_eq!(a.status, 200, "{}", a.body);
    let id: Uuid = a.body["JobId"].as_str().unwrap().parse().unwrap();
    let job = w.engine.session("admin").unwrap().get(id).unwrap();
    assert_eq!((job.operationtype, job.name.as_str()), (OperationType::BULK_DELETE, "Weekly cleanup"));
    assert_eq!(job.recurrencepattern.as_deref(), Some("FREQ=WEEKLY;INTERVAL=1"));
    let a = get(&w, "bulkdeleteoperations", &w.admin);
    let rows = a.body["value"].as_array().unwrap();
    let row = rows.iter().find(|r| r["bulkdeleteoperationid"] == id.to_string()).unwrap();
    assert_eq!(row["name"], "Weekly cleanup");
    assert_eq!(row["isrecurring"], true);
    assert_eq!(row["successcount"], 0);
    assert_eq!(row["nextrun"], "2026-02-01T00:00:00Z");
    assert_eq!(row["_asyncoperationid_value"], id.to_string());
    let a = get(&w, &format!("bulkdeleteoperations({id})?$select=name,statecode"), &w.admin);
    assert_eq!((a.status, a.body["name"].as_str()), (200, Some("Weekly cleanup")));
    assert!(a.body.get("successcount").is_none());
    // What the criteria cannot say, and who may not: refused, nothing written.
    let before = w.engine.next_seq();
    let absolute = body.replace(
        r#""Operator": "OlderThanXDays", "Values": [{"Value": "7", "Type": "System.Int32"}]"#,
        r#""Operator": "OnOrBefore", "Values": [{"Value": "2026-01-01T00:00:00Z", "Type": "System.DateTime"}]"#,
    );
    let a = call("POST", &format!("{}BulkDelete", w.base), Some(&w.admin), &[], Some(&absolute));
    assert_eq!(a.status, 400);
    assert!(a.message().contains("completedon OnOrBefore"), "{}", a.message());
    let a = call("POST", &format!("{}BulkDelete", w.base), Some(&w.alice), &[], Some(body));
    assert_eq!(a.status, 403, "{}", a.body);
    assert_eq!(w.engine.next_seq(), before);
}

#[test]
fn metadata_clients_read_first() {
    let w = world();
    let a = get(&w, "EntityDefinitions?$filter=LogicalName%20eq%20'asyncoperation'&$select=LogicalName,EntitySetName,PrimaryIdAttribute,PrimaryNameAttribute", &w.alice);
    assert_eq!(a.status, 200, "{}", a.body);
    let d = &a.body["value"][0];
    assert_eq!(d["EntitySetName"], "asyncoperations");
    assert_eq!(d["PrimaryIdAttribute"], "asyncoperationid");
    assert_eq!(d["PrimaryNameAttribute"], "name");
    let a = get(&w, "EntityDefinitions(LogicalName='asyncoperation')?$expand=Attributes", &w.alice);
    let attrs = a.body["Attributes"].as_array().unwrap();
    let state = attrs.iter().find(|x| x["LogicalName"] == "statecode").unwrap();
    let labels: Vec<&str> = state["OptionSet"]["Options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["Label"]["UserLocalizedLabel"]["Label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["Ready", "Suspended", "Locked", "Completed"]);
    assert_eq!(a.body["Keys"], serde_json::json!([]));
    let a = get(&w, "EntityDefinitions(LogicalName='asyncoperation')/Attributes(LogicalName='statuscode')/Microsoft.Dynamics.CRM.StatusAttributeMetadata?$expand=OptionSet", &w.alice);
    let opts = a.body["OptionSet"]["Options"].as_array().unwrap();
    assert_eq!(opts.len(), 10);
    assert_eq!(opts[9]["Value"], 32);
    assert_eq!(opts[9]["State"], 3);
    let a = get(&w, "EntityDefinitions?$filter=LogicalName%20eq%20'bulkdeleteoperation'", &w.alice);
    assert_eq!(a.body["value"][0]["EntitySetName"], "bulkdeleteoperations");
    let a = get(&w, "EntityDefinitions(LogicalName='account')", &w.alice);
    assert_eq!(a.status, 404);
}

/// The npm package `dynamics-web-api`, unchanged, against this server:
/// retrieveMultiple with filter, select, count and paging; retrieve;
/// update (Cancel); deleteRecord; the BulkDelete action. Skipped with a notice when
/// `node` or the package is missing outside CI; in CI (`CI` set) their
/// absence is a failure (`.ci/run` installs them).
#[test]
fn a_third_party_dataverse_client_works_unchanged() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients");
    let have_node = std::process::Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    let have_pkg = dir.join("node_modules/dynamics-web-api").exists();
    if !(have_node && have_pkg) {
        assert!(std::env::var_os("CI").is_none(), "CI must have node and `npm ci` in server/tests/clients");
        eprintln!("skipped: node or server/tests/clients/node_modules missing (run `npm ci` there)");
        return;
    }
    let w = world();
    let jobs = all_jobs(&w);
    let target = jobs.iter().find(|j| j.owner == "alice" && j.status == Status::READY).unwrap();
    let completed = jobs.iter().filter(|j| j.status.is_completed() && j.operationtype.0 == 10).count();
    let out = std::process::Command::new("node")
        .arg(dir.join("dynamics-web-api.mjs"))
        .env("JOBLOG_URL", format!("http://{}/", w.server.as_ref().unwrap().local_addr().unwrap()))
        .env("JOBLOG_TOKEN", &w.admin)
        .env("JOBLOG_TARGET", target.id.to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    eprintln!("dynamics-web-api said: {report}");
    assert_eq!(report["all"], JOBS, "every row once across pages: {report}");
    assert_eq!(report["distinct"], JOBS);
    assert_eq!(report["count"], completed);
    assert_eq!(report["filtered"], completed);
    assert_eq!(report["count_all"], JOBS);
    assert_eq!(report["count_filtered"], completed);
    assert_eq!(report["retrieved"], target.name.as_str());
    assert_eq!(report["after_cancel"], 32);
    assert_eq!((report["deleted"].as_bool(), report["after_delete"].as_u64()), (Some(true), Some(404)), "{report}");
    assert!(w.engine.session("admin").unwrap().get(target.id).is_err(), "deleted by deleteRecord");
    let bulk: Uuid = report["bulk_job"].as_str().unwrap().parse().unwrap();
    assert_eq!(w.engine.session("admin").unwrap().get(bulk).unwrap().operationtype, OperationType::BULK_DELETE);
}

/// Over HTTPS the links say `https`: a client follows them as given.
/// (`openssl` makes the certificate and `curl` speaks TLS, as in
/// cli/tests/http.rs.)
#[test]
fn links_say_https_over_tls() {
    // `openssl version` (it has no `--version`), `curl --version`.
    let have =
        |tool: &str, arg: &str| std::process::Command::new(tool).arg(arg).output().is_ok_and(|o| o.status.success());
    if !(have("openssl", "version") && have("curl", "--version")) {
        assert!(std::env::var_os("CI").is_none(), "CI must have openssl and curl");
        eprintln!("skipped: openssl or curl missing");
        return;
    }
    let w = world_with(|dir| {
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        let ok = std::process::Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
            .args(["-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(ok.success(), "openssl could not make a test certificate");
        Some(TlsFiles { cert, key })
    });
    let cert = w._dir.path().join("cert.pem");
    let https = w.base.replacen("http://", "https://", 1);
    let curl = |url: &str| -> Value {
        let out = std::process::Command::new("curl")
            .args(["-sS", "--cacert"])
            .arg(&cert)
            .args(["-H", &format!("Authorization: Bearer {}", w.admin), "-H", "Prefer: odata.maxpagesize=50", url])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let first = curl(&format!("{https}asyncoperations?$select=name"));
    let next = first["@odata.nextLink"].as_str().unwrap();
    assert!(next.starts_with(&format!("{https}asyncoperations?$select=name&$skiptoken=")), "{next}");
    assert!(first["@odata.context"].as_str().unwrap().starts_with(&https));
    let second = curl(next);
    assert_eq!(second["value"].as_array().unwrap().len(), 50);
    assert_ne!(second["value"][0], first["value"][0]);
}
