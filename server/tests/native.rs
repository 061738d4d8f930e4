//! The native API (`/api/v1/`) end to end: a real server on a free port
//! over a temporary store, spoken to over HTTP as any client would.

use std::io::{BufRead, BufReader, Write};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use joblog::domain::{OperationType, SystemClock};
use joblog::{Config, Engine, NewJob};
use joblog_server::{HttpConfig, Limits, Server};
use serde_json::{json, Value};

struct Setup {
    _dir: tempfile::TempDir,
    engine: Engine,
    server: Server,
    admin: String,
    alice: String,
    reader: String,
    alice_token_id: uuid::Uuid,
}

impl Setup {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.server.local_addr().unwrap())
    }
}

/// A store with admin, alice (reads, writes and creates her own jobs) and
/// rita (reads every job, writes none), jobs of admin and alice, and a
/// token for each.
fn setup() -> Setup {
    setup_with(Limits { max_body: 4096, ..Limits::default() })
}

fn setup_with(limits: Limits) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path().join("data"), Config::default(), Arc::new(SystemClock)).unwrap();
    let admin = engine.session("admin").unwrap();
    use joblog::domain::{Depth, Privilege, Role};
    let author = [(Privilege::Read, Depth::User), (Privilege::Write, Depth::User), (Privilege::Create, Depth::User)];
    admin.add_role(Role::new("author", author)).unwrap();
    admin.add_user("alice", "root", &["author"]).unwrap();
    admin.add_role(Role::new("reader", [(Privilege::Read, Depth::Organization)])).unwrap();
    admin.add_user("rita", "root", &["reader"]).unwrap();
    for i in 0..30 {
        admin.create(NewJob::new(&format!("admin job {i}"), OperationType::WORKFLOW)).unwrap();
    }
    let alice = engine.session("alice").unwrap();
    for i in 0..5 {
        alice.create(NewJob::new(&format!("alice job {i}"), OperationType::WORKFLOW)).unwrap();
    }
    let alice_token = admin.create_token("alice", None, None).unwrap();
    let alice_id = alice_token.id;
    let tokens = (
        admin.create_token("admin", Some("test"), None).unwrap().token,
        alice_token.token,
        admin.create_token("rita", None, None).unwrap().token,
    );
    let server = joblog_server::start(
        engine.clone(),
        Arc::new(AtomicBool::new(true)),
        HttpConfig { addr: "127.0.0.1:0".into(), tls: None, limits },
    )
    .unwrap();
    Setup { _dir: dir, engine, server, admin: tokens.0, alice: tokens.1, reader: tokens.2, alice_token_id: alice_id }
}

/// Status and JSON body of a request (errors included).
fn call(method: &str, url: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
    let mut req = ureq::request(method, url).timeout(Duration::from_secs(30));
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    let res = match body {
        Some(b) => req.send_json(b),
        None => req.call(),
    };
    let resp = match res {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    let status = resp.status();
    let text = resp.into_string().unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn error_code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or_else(|| panic!("not a platform error body: {v}"))
}

#[test]
fn no_token_or_a_bad_one_is_401_with_the_platform_body() {
    let s = setup();
    for token in [None, Some("jl_not-a-token"), Some("")] {
        let (status, body) = call("GET", &s.url("/api/v1/jobs"), token, None);
        assert_eq!(status, 401, "{token:?}: {body}");
        assert!(error_code(&body).starts_with("0x"));
    }
}

#[test]
fn listing_pages_without_skipping_or_repeating_and_counts() {
    let s = setup();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = cursor.as_ref().map_or(String::new(), |c| format!("&cursor={c}"));
        let (status, body) = call("GET", &s.url(&format!("/api/v1/jobs?limit=7&count=true{q}")), Some(&s.admin), None);
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["count"], 35);
        for j in body["jobs"].as_array().unwrap() {
            seen.push(j["asyncoperationid"].as_str().unwrap().to_string());
        }
        match body["next"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 35);
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 35, "a job was listed twice");
    // Alice sees her own five only.
    let (_, body) = call("GET", &s.url("/api/v1/jobs?count=true"), Some(&s.alice), None);
    assert_eq!(body["count"], 5);
    assert!(body["jobs"].as_array().unwrap().iter().all(|j| j["ownerid"] == "alice"));
}

#[test]
fn bad_parameters_are_400_naming_them() {
    let s = setup();
    for (q, names) in [
        ("state=sideways", "state"),
        ("limit=0", "limit"),
        ("limit=100000", "limit"),
        ("cursor=zzz", "cursor"),
        ("created_after=yesterday", "created_after"),
        ("colour=blue", "colour"),
    ] {
        let (status, body) = call("GET", &s.url(&format!("/api/v1/jobs?{q}")), Some(&s.admin), None);
        assert_eq!(status, 400, "{q}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().contains(names), "{q}: {body}");
    }
}

#[test]
fn actions_go_through_the_state_machine_and_a_refusal_changes_nothing() {
    let s = setup();
    let (_, list) = call("GET", &s.url("/api/v1/jobs?owner=alice&limit=1"), Some(&s.alice), None);
    let id = list["jobs"][0]["asyncoperationid"].as_str().unwrap().to_string();
    let next_seq = s.engine.next_seq();
    // Resume a Ready job: refused, nothing written.
    let (status, body) = call("POST", &s.url(&format!("/api/v1/jobs/{id}/resume")), Some(&s.alice), None);
    assert_eq!(status, 400, "{body}");
    assert_eq!(s.engine.next_seq(), next_seq);
    // The reader may read but not write: 403, nothing written.
    let (status, body) = call("POST", &s.url(&format!("/api/v1/jobs/{id}/cancel")), Some(&s.reader), None);
    assert_eq!(status, 403, "{body}");
    assert_eq!(s.engine.next_seq(), next_seq);
    // Cancel by its owner.
    let (status, body) = call("POST", &s.url(&format!("/api/v1/jobs/{id}/cancel")), Some(&s.alice), None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["statecode"], 3);
    assert_eq!(body["statuscode"], 32);
    let (status, body) = call("GET", &s.url(&format!("/api/v1/jobs/{id}/history")), Some(&s.alice), None);
    assert_eq!(status, 200);
    assert_eq!(body["history"].as_array().unwrap().last().unwrap()["action"], "cancel");
    // Someone else's job is not found for alice.
    let (_, admin_jobs) = call("GET", &s.url("/api/v1/jobs?owner=admin&limit=1"), Some(&s.admin), None);
    let other = admin_jobs["jobs"][0]["asyncoperationid"].as_str().unwrap();
    let (status, _) = call("GET", &s.url(&format!("/api/v1/jobs/{other}")), Some(&s.alice), None);
    assert_eq!(status, 404);
    // Postpone without a time, an unknown action, a bad id.
    let (status, _) = call("POST", &s.url(&format!("/api/v1/jobs/{other}/postpone")), Some(&s.admin), None);
    assert_eq!(status, 400);
    let (status, _) = call("POST", &s.url(&format!("/api/v1/jobs/{other}/explode")), Some(&s.admin), None);
    assert_eq!(status, 404);
    let (status, _) = call("GET", &s.url("/api/v1/jobs/not-a-uuid"), Some(&s.admin), None);
    assert_eq!(status, 400);
    assert_eq!(s.engine.next_seq(), next_seq + 1);
}

#[test]
fn a_body_over_the_limit_is_413_and_writes_nothing() {
    let s = setup();
    let next_seq = s.engine.next_seq();
    let big = "x".repeat(10_000);
    let (status, body) =
        call("POST", &s.url("/api/v1/jobs"), Some(&s.admin), Some(json!({"name": big, "type": "workflow"})));
    assert_eq!(status, 413, "{body}");
    assert_eq!(error_code(&body), "0x8004e102");
    assert_eq!(s.engine.next_seq(), next_seq);
}

#[test]
fn a_bulk_operation_counts_first_then_acts_page_by_page_and_is_recorded() {
    let s = setup();
    let filter = json!({"owner": "admin", "state": "ready"});
    let (status, body) = call(
        "POST",
        &s.url("/api/v1/operations"),
        Some(&s.admin),
        Some(json!({"action": "cancel", "filter": filter, "dry_run": true})),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["matched"], 30);
    assert_eq!(body["would_change"], 30);
    // No filter and no "everything": refused.
    let (status, _) = call("POST", &s.url("/api/v1/operations"), Some(&s.admin), Some(json!({"action": "cancel"})));
    assert_eq!(status, 400);
    let (status, op) =
        call("POST", &s.url("/api/v1/operations"), Some(&s.admin), Some(json!({"action": "cancel", "filter": filter})));
    assert_eq!(status, 202, "{op}");
    let id = op["id"].as_str().unwrap().to_string();
    let mut done = Value::Null;
    for _ in 0..500 {
        let (_, o) = call("GET", &s.url(&format!("/api/v1/operations/{id}")), Some(&s.admin), None);
        if o["status"] != "running" {
            done = o;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["changed"], 30);
    let (_, left) = call("GET", &s.url("/api/v1/jobs?owner=admin&state=ready&count=true"), Some(&s.admin), None);
    assert_eq!(left["count"], 0);
    // Each job's history names the operation.
    let (_, list) = call("GET", &s.url("/api/v1/jobs?owner=admin&limit=1"), Some(&s.admin), None);
    let job = list["jobs"][0]["asyncoperationid"].as_str().unwrap();
    let (_, h) = call("GET", &s.url(&format!("/api/v1/jobs/{job}/history")), Some(&s.admin), None);
    let last = h["history"].as_array().unwrap().last().unwrap().clone();
    assert!(last["message"].as_str().unwrap().contains(&id), "{last}");
    // Alice does not see the admin's operation; a reader of every job sees
    // it but may not stop it (Write at Organization depth, or its starter).
    let (status, _) = call("GET", &s.url(&format!("/api/v1/operations/{id}")), Some(&s.alice), None);
    assert_eq!(status, 404);
    let (status, _) = call("GET", &s.url(&format!("/api/v1/operations/{id}")), Some(&s.reader), None);
    assert_eq!(status, 200);
    let (status, body) = call("DELETE", &s.url(&format!("/api/v1/operations/{id}")), Some(&s.reader), None);
    assert_eq!(status, 403, "{body}");
    let (status, _) = call("DELETE", &s.url(&format!("/api/v1/operations/{id}")), Some(&s.admin), None);
    assert_eq!(status, 200);
}

/// Reads SSE events from a raw connection until `n` events arrived.
fn read_events(addr: std::net::SocketAddr, token: &str, last_id: Option<u64>, n: usize) -> Vec<(u64, String, Value)> {
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let last = last_id.map_or(String::new(), |l| format!("Last-Event-ID: {l}\r\n"));
    write!(
        conn,
        "GET /api/v1/events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\nAuthorization: Bearer {token}\r\n{last}\r\n"
    )
    .unwrap();
    let mut r = BufReader::new(conn);
    let mut out = Vec::new();
    let (mut id, mut kind) = (0, String::new());
    let mut line = String::new();
    while out.len() < n {
        line.clear();
        if r.read_line(&mut line).unwrap() == 0 {
            break;
        }
        let l = line.trim_end();
        if let Some(v) = l.strip_prefix("id: ").or_else(|| l.strip_prefix("id:")) {
            id = v.trim().parse().unwrap();
        } else if let Some(v) = l.strip_prefix("event: ").or_else(|| l.strip_prefix("event:")) {
            kind = v.trim().to_string();
        } else if let Some(v) = l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:")) {
            out.push((id, kind.clone(), serde_json::from_str(v.trim()).unwrap()));
        }
    }
    out
}

#[test]
fn the_event_stream_shows_transitions_live_resumes_after_last_event_id_and_hides_others_jobs() {
    let s = setup();
    let (_, list) = call("GET", &s.url("/api/v1/jobs?owner=alice&limit=2"), Some(&s.alice), None);
    let ids: Vec<String> =
        list["jobs"].as_array().unwrap().iter().map(|j| j["asyncoperationid"].as_str().unwrap().to_string()).collect();
    let (_, admin_list) = call("GET", &s.url("/api/v1/jobs?owner=admin&limit=1"), Some(&s.admin), None);
    let admin_job = admin_list["jobs"][0]["asyncoperationid"].as_str().unwrap().to_string();
    let addr = s.server.local_addr().unwrap();
    let alice = s.alice.clone();
    let reader = std::thread::spawn(move || read_events(addr, &alice, None, 2));
    std::thread::sleep(Duration::from_millis(300));
    // Admin's job first (alice must not see it), then alice's two.
    call("POST", &s.url(&format!("/api/v1/jobs/{admin_job}/cancel")), Some(&s.admin), None);
    call("POST", &s.url(&format!("/api/v1/jobs/{}/cancel", ids[0])), Some(&s.alice), None);
    // A refused pause (the job is Ready) makes no event.
    assert_eq!(call("POST", &s.url(&format!("/api/v1/jobs/{}/pause", ids[1])), Some(&s.alice), None).0, 400);
    call("POST", &s.url(&format!("/api/v1/jobs/{}/cancel", ids[1])), Some(&s.alice), None);
    let got = reader.join().unwrap();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].1, "transition");
    assert_eq!(got[0].2["job"], ids[0].as_str());
    assert_eq!(got[0].2["to"]["statuscode"], 32);
    assert_eq!(got[1].2["job"], ids[1].as_str());
    assert!(got.iter().all(|e| e.2["job"] != admin_job.as_str()));
    // Resuming after the first event gives the second again, from the log.
    let again = read_events(addr, &s.alice, Some(got[0].0), 1);
    assert_eq!(again[0].0, got[1].0);
    assert_eq!(again[0].2, got[1].2);
}

#[test]
fn metrics_and_healthz() {
    let s = setup();
    let resp = ureq::get(&s.url("/healthz")).call().unwrap();
    assert_eq!(resp.status(), 200);
    let (status, _) = call("GET", &s.url("/metrics"), Some(&s.alice), None);
    assert_eq!(status, 403, "metrics count every job: Organization-depth Read");
    let (status, body) = call("GET", &s.url("/metrics"), Some(&s.admin), None);
    assert_eq!(status, 200);
    let text = body.as_str().unwrap();
    assert!(text.contains("joblog_jobs{state=\"Ready\",status_reason=\"Waiting For Resources\"} 35"), "{text}");
    assert!(text.contains("# TYPE joblog_sync_seconds_total counter"));
    assert!(text.contains("joblog_service_running 1"));
}

#[test]
fn a_port_in_use_or_a_bad_address_is_an_error_before_serving() {
    let s = setup();
    let taken = s.server.local_addr().unwrap().to_string();
    for addr in [taken.as_str(), "not an address", "127.0.0.1:99999"] {
        let r = joblog_server::start(
            s.engine.clone(),
            Arc::new(AtomicBool::new(true)),
            HttpConfig { addr: addr.into(), tls: None, limits: Limits::default() },
        );
        assert!(r.is_err(), "{addr}");
    }
}

#[test]
fn an_idle_connection_does_not_hold_up_others() {
    let s = setup();
    // A client that connects and sends half a request head, then waits.
    let mut idle = std::net::TcpStream::connect(s.server.local_addr().unwrap()).unwrap();
    idle.write_all(b"GET /api/v1/jobs HTTP/1.1\r\nHost: x\r\n").unwrap();
    let started = std::time::Instant::now();
    let (status, _) = call("GET", &s.url("/api/v1/jobs?limit=1"), Some(&s.admin), None);
    assert_eq!(status, 200);
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// Opens an event stream and returns the connection once its head arrived.
fn open_stream(addr: std::net::SocketAddr, token: &str, extra: &str) -> (u16, BufReader<std::net::TcpStream>) {
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        conn,
        "GET /api/v1/events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\nAuthorization: Bearer {token}\r\n{extra}\r\n"
    )
    .unwrap();
    let mut r = BufReader::new(conn);
    let mut status = String::new();
    r.read_line(&mut status).unwrap();
    let code = status.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (code, r)
}

#[test]
fn a_closed_stream_gives_its_slot_back_at_once() {
    let s = setup_with(Limits { max_streams: 4, ..Limits::default() });
    let addr = s.server.local_addr().unwrap();
    // Alice may use what nobody else needs: two of the four; once half are
    // open, her share is a quarter (one), so no third.
    let (code, first) = open_stream(addr, &s.alice, "");
    assert_eq!(code, 200);
    let (code, _second) = open_stream(addr, &s.alice, "");
    assert_eq!(code, 200);
    let (code, _) = open_stream(addr, &s.alice, "");
    assert_eq!(code, 429, "a user's share of the streams, once half are open, is a quarter");
    drop(first);
    // Nothing is written meanwhile: the slot must come back anyway.
    let mut again = 0;
    for _ in 0..100 {
        again = open_stream(addr, &s.alice, "").0;
        if again == 200 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(again, 200, "the closed stream's slot never came back");
    // Others were never held up.
    assert_eq!(open_stream(addr, &s.admin, "").0, 200);
}

#[test]
fn one_users_slow_requests_do_not_take_every_slot() {
    let s = setup_with(Limits { max_in_flight: 8, ..Limits::default() });
    let addr = s.server.local_addr().unwrap();
    // Alice starts four requests whose bodies never come: half the slots
    // (beyond that, her share is a quarter: two).
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        write!(
            c,
            "POST /api/v1/jobs HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{",
            s.alice
        )
        .unwrap();
        held.push(c);
    }
    std::thread::sleep(Duration::from_millis(300));
    let (status, body) = call("GET", &s.url("/api/v1/me"), Some(&s.alice), None);
    assert_eq!(status, 429, "{body}");
    // Pretending to be someone else with a made-up token is no way around it:
    // it is refused before it holds anything.
    let (status, _) = call("GET", &s.url("/api/v1/me"), Some("jl_0000"), None);
    assert_eq!(status, 401);
    let (status, _) = call("GET", &s.url("/api/v1/me"), Some(&s.admin), None);
    assert_eq!(status, 200, "another user was held up");
    // An Accept header does not make a request a stream.
    let resp = ureq::get(&s.url("/api/v1/me"))
        .set("Authorization", &format!("Bearer {}", s.alice))
        .set("Accept", "text/event-stream")
        .call();
    assert!(matches!(resp, Err(ureq::Error::Status(429, _))), "{resp:?}");
}

#[test]
fn a_stream_ends_when_its_token_is_revoked() {
    let s = setup();
    let addr = s.server.local_addr().unwrap();
    let (code, mut stream) = open_stream(addr, &s.alice, "");
    assert_eq!(code, 200);
    std::thread::sleep(Duration::from_millis(200));
    s.engine.session("admin").unwrap().revoke_token(s.alice_token_id).unwrap();
    let (_, list) = call("GET", &s.url("/api/v1/jobs?owner=alice&limit=1"), Some(&s.admin), None);
    let id = list["jobs"][0]["asyncoperationid"].as_str().unwrap().to_string();
    assert_eq!(call("POST", &s.url(&format!("/api/v1/jobs/{id}/cancel")), Some(&s.admin), None).0, 200);
    let mut line = String::new();
    let mut rest = String::new();
    while stream.read_line(&mut line).unwrap_or(0) > 0 {
        rest.push_str(&line);
        line.clear();
    }
    assert!(!rest.contains(&id), "the revoked token's stream still sent the event: {rest}");
}

#[test]
fn hostile_details_get_the_platform_body() {
    let s = setup();
    // A sequence number past the last u64.
    let (code, _) = open_stream(s.server.local_addr().unwrap(), &s.admin, "Last-Event-ID: 18446744073709551615\r\n");
    assert_eq!(code, 400);
    for q in ["since=abc", "colour=blue"] {
        let (status, body) = call("GET", &s.url(&format!("/api/v1/events?{q}")), Some(&s.admin), None);
        assert_eq!(status, 400, "{q}");
        error_code(&body);
    }
    // A path that is not UTF-8.
    let (status, body) = call("GET", &s.url("/api/v1/jobs/%FF"), Some(&s.admin), None);
    assert_eq!(status, 400);
    error_code(&body);
    // The scheme's name in any case.
    let resp = ureq::get(&s.url("/api/v1/me")).set("Authorization", &format!("BEARER {}", s.admin)).call().unwrap();
    assert_eq!(resp.status(), 200);
    // A job's command time limit within its bounds; a job something will run.
    let next = s.engine.next_seq();
    for body in [
        json!({"name": "x", "type": "workflow", "command": "true", "timeout_secs": 0}),
        json!({"name": "x", "type": "workflow", "command": "true", "timeout_secs": u64::MAX}),
        json!({"name": "x", "type": "workflow"}),
        json!({"name": "x", "type": "workflow", "command": "true", "external_handler": true}),
    ] {
        let (status, answer) = call("POST", &s.url("/api/v1/jobs"), Some(&s.admin), Some(body.clone()));
        assert_eq!(status, 400, "{body}: {answer}");
    }
    assert_eq!(s.engine.next_seq(), next, "a refused creation wrote something");
    // An unknown action in a bulk body is a bad field (400), in a path no such resource (404).
    let (status, _) = call(
        "POST",
        &s.url("/api/v1/operations"),
        Some(&s.admin),
        Some(json!({"action": "explode", "everything": true, "dry_run": true})),
    );
    assert_eq!(status, 400);
    // The 403 of /metrics names the user's real depth.
    let (status, body) = call("GET", &s.url("/metrics"), Some(&s.alice), None);
    assert_eq!(status, 403);
    assert!(!body["error"]["message"].as_str().unwrap().contains("depth None"), "{body}");
}

/// Ids of `user`'s jobs, newest first.
fn jobs_of(s: &Setup, user: &str) -> Vec<uuid::Uuid> {
    let admin = s.engine.session("admin").unwrap();
    let (jobs, _) = admin.list(&joblog::Filter::default(), None, usize::MAX).unwrap();
    jobs.into_iter().filter(|j| j.owner == user).map(|j| j.id).collect()
}

#[test]
fn deleting_a_job_and_a_batch_all_or_nothing() {
    let s = setup();
    let admin = s.engine.session("admin").unwrap();
    let mine = jobs_of(&s, "admin");
    let done: Vec<uuid::Uuid> = mine[..4].to_vec();
    for id in &done {
        admin.act(*id, joblog::UserAction::Cancel).unwrap();
    }
    let ready = mine[10];
    let job = |id: &uuid::Uuid| s.url(&format!("/api/v1/jobs/{id}"));
    let count = || call("GET", &s.url("/api/v1/jobs?count=true&limit=1"), Some(&s.admin), None).1["count"].clone();
    assert_eq!(count(), 35);
    let seq = || s.engine.next_seq();
    let before = seq();

    // Refusals, each changing nothing.
    let (st, b) = call("DELETE", &job(&ready), Some(&s.admin), None);
    assert_eq!((st, error_code(&b)), (400, "0x80040265"), "not Completed: {b}");
    assert!(b["error"]["message"].as_str().unwrap().contains("Completed"), "{b}");
    let (st, b) = call("DELETE", &job(&done[0]), Some(&s.alice), None);
    assert_eq!((st, error_code(&b)), (404, "0x80040217"), "alice cannot read admin's job: {b}");
    let (st, b) = call("DELETE", &job(&done[0]), Some(&s.reader), None);
    assert_eq!((st, error_code(&b)), (403, "0x80040220"), "rita reads but may not delete: {b}");
    let (st, b) = call("DELETE", &job(&uuid::Uuid::from_u128(9)), Some(&s.admin), None);
    assert_eq!((st, error_code(&b)), (404, "0x80040217"), "{b}");
    let (st, b) = call("DELETE", &s.url("/api/v1/jobs/not-an-id"), Some(&s.admin), None);
    assert_eq!(st, 400, "{b}");
    let (st, b) = call("DELETE", &job(&done[0]), None, None);
    assert_eq!(st, 401, "{b}");
    let batch =
        |ids: Value, token: &str| call("POST", &s.url("/api/v1/jobs/delete"), Some(token), Some(json!({"ids": ids})));
    let (st, b) = batch(json!([done[1], ready]), &s.admin);
    assert_eq!((st, error_code(&b)), (400, "0x80040265"), "one job not Completed refuses the batch: {b}");
    assert!(b["error"]["message"].as_str().unwrap().contains(&ready.to_string()), "{b}");
    let (st, b) = batch(json!([done[1], uuid::Uuid::from_u128(9)]), &s.admin);
    assert_eq!((st, error_code(&b)), (404, "0x80040217"), "{b}");
    let (st, b) = batch(json!([done[1], "nope"]), &s.admin);
    assert_eq!(st, 400, "{b}");
    assert!(b["error"]["message"].as_str().unwrap().contains("nope"), "{b}");
    let (st, b) = batch(json!([]), &s.admin);
    assert_eq!(st, 400, "{b}");
    let (st, b) = call("POST", &s.url("/api/v1/jobs/delete"), Some(&s.admin), Some(json!({"ids": [done[1]], "x": 1})));
    assert_eq!(st, 400, "an unknown field: {b}");
    assert_eq!(seq(), before, "no refusal wrote anything");
    assert_eq!(count(), 35);
    for id in &done {
        assert_eq!(call("GET", &job(id), Some(&s.admin), None).0, 200);
    }
    assert_eq!(call("GET", &job(&ready), Some(&s.admin), None).1["statecode"], 0);

    // One job: 204, then 404 for it, and the count dropped.
    let (st, b) = call("DELETE", &job(&done[0]), Some(&s.admin), None);
    assert_eq!(st, 204, "{b}");
    assert_eq!(call("GET", &job(&done[0]), Some(&s.admin), None).0, 404);
    assert_eq!(count(), 34);
    let (st, b) = call("DELETE", &job(&done[0]), Some(&s.admin), None);
    assert_eq!((st, error_code(&b)), (404, "0x80040217"), "deleted again: {b}");
    // A batch with repeats: each job once.
    let (st, b) = batch(json!([done[1], done[2], done[1], done[3]]), &s.admin);
    assert_eq!(st, 200, "{b}");
    let want: Vec<String> = done[1..].iter().map(|i| i.to_string()).collect();
    assert_eq!(b["deleted"], json!(want));
    assert_eq!(count(), 31);
    for id in &done {
        assert_eq!(call("GET", &job(id), Some(&s.admin), None).0, 404);
    }
}

#[test]
fn a_batch_over_the_limit_is_400_and_writes_nothing() {
    let s = setup_with(Limits::default());
    let before = s.engine.next_seq();
    let ids: Vec<String> = (0..10_001u128).map(|i| uuid::Uuid::from_u128(i + 1).to_string()).collect();
    let (st, b) = call("POST", &s.url("/api/v1/jobs/delete"), Some(&s.admin), Some(json!({ "ids": ids })));
    assert_eq!((st, error_code(&b)), (400, "0x80040203"), "{b}");
    assert!(b["error"]["message"].as_str().unwrap().contains("1000"), "{b}");
    assert_eq!(s.engine.next_seq(), before);
}

#[test]
fn the_event_stream_and_metrics_tell_a_deletion_by_id() {
    let s = setup();
    let admin = s.engine.session("admin").unwrap();
    let id = jobs_of(&s, "admin")[0];
    admin.act(id, joblog::UserAction::Cancel).unwrap();
    let last = s.engine.next_seq() - 1;
    let (st, b) = call("DELETE", &s.url(&format!("/api/v1/jobs/{id}")), Some(&s.admin), None);
    assert_eq!(st, 204, "{b}");
    let events = read_events(s.server.local_addr().unwrap(), &s.admin, Some(last), 1);
    assert_eq!(events[0].1, "deleted", "{events:?}");
    assert_eq!((events[0].2["deleted"].clone(), events[0].2["ids"].clone()), (json!(1), json!([id])));
    // The follower counts the log's events as they come (not within the
    // request): wait until it has seen this one.
    let counted = || {
        let (_, m) = call("GET", &s.url("/metrics"), Some(&s.admin), None);
        m.as_str().unwrap().contains("joblog_jobs_deleted_total 1")
    };
    let mut tries = 0;
    while !counted() {
        tries += 1;
        assert!(tries < 1000, "the deletion is never counted in /metrics");
        std::thread::sleep(Duration::from_millis(20));
    }
}
