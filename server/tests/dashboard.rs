//! The dashboard over plain HTTP, without a browser (so it runs on every
//! machine; `browser.rs` drives the same pages in Chromium): signing in and
//! its cookie, the CSRF and origin checks of every form, escaping of what
//! the store holds, the read-only user's pages, and bad input answered
//! with a page that says what is wrong and changes nothing.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use joblog::domain::{Depth, OperationType, Privilege, Role, SystemClock};
use joblog::{Config, Engine, NewJob, Status};
use joblog_server::{HttpConfig, Limits, Server};
use uuid::Uuid;

struct Setup {
    _dir: tempfile::TempDir,
    engine: Engine,
    server: Server,
    admin: String,
    reader: String,
    /// A Ready job named with markup.
    job: Uuid,
}

impl Setup {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.server.local_addr().unwrap())
    }

    fn origin(&self) -> String {
        format!("http://{}", self.server.local_addr().unwrap())
    }

    fn status(&self, id: Uuid) -> Status {
        self.engine.session("admin").unwrap().get(id).unwrap().status
    }
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path().join("data"), Config::default(), Arc::new(SystemClock)).unwrap();
    let admin = engine.session("admin").unwrap();
    admin.add_role(Role::new("reader", [(Privilege::Read, Depth::Organization)])).unwrap();
    admin.add_user("rita", "root", &["reader"]).unwrap();
    let job = admin.create(NewJob::new("<b>bold</b> & <script>x()</script>", OperationType::WORKFLOW)).unwrap().id;
    for i in 0..3 {
        admin.create(NewJob::new(&format!("plain job {i}"), OperationType::WORKFLOW)).unwrap();
    }
    let admin_token = admin.create_token("admin", None, None).unwrap().token;
    let reader = admin.create_token("rita", None, None).unwrap().token;
    let server = joblog_server::start(
        engine.clone(),
        Arc::new(AtomicBool::new(true)),
        HttpConfig { addr: "127.0.0.1:0".into(), tls: None, limits: Limits::default() },
    )
    .unwrap();
    Setup { _dir: dir, engine, server, admin: admin_token, reader, job }
}

/// An answer: status, headers we look at, body.
struct Answer {
    status: u16,
    location: Option<String>,
    set_cookie: Option<String>,
    body: String,
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new().redirects(0).timeout(Duration::from_secs(30)).build()
}

fn answer(r: Result<ureq::Response, ureq::Error>) -> Answer {
    let resp = match r {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("request failed: {e}"),
    };
    Answer {
        status: resp.status(),
        location: resp.header("location").map(str::to_string),
        set_cookie: resp.header("set-cookie").map(str::to_string),
        body: resp.into_string().unwrap(),
    }
}

fn get(url: &str, cookie: Option<&str>) -> Answer {
    let mut req = agent().get(url);
    if let Some(c) = cookie {
        req = req.set("Cookie", c);
    }
    answer(req.call())
}

fn post(url: &str, cookie: Option<&str>, origin: Option<&str>, form: &[(&str, &str)]) -> Answer {
    let mut req = agent().post(url);
    if let Some(c) = cookie {
        req = req.set("Cookie", c);
    }
    if let Some(o) = origin {
        req = req.set("Origin", o);
    }
    answer(req.send_form(form))
}

/// Signs in with `token`: the cookie to send back (`name=value`).
fn sign_in(s: &Setup, token: &str) -> String {
    let a = post(&s.url("/signin"), None, Some(&s.origin()), &[("token", token), ("next", "/jobs")]);
    assert_eq!(a.status, 303, "{}", a.body);
    assert_eq!(a.location.as_deref(), Some("/jobs"));
    let c = a.set_cookie.expect("a session cookie");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(c.contains(attr), "the cookie {c:?} lacks {attr}");
    }
    assert!(!c.contains("Secure"), "no Secure over plain HTTP: {c}");
    c.split(';').next().unwrap().to_string()
}

/// The CSRF token a page's forms carry.
fn csrf(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a form with a CSRF token") + 19;
    page[at..].split('"').next().unwrap().to_string()
}

#[test]
fn signing_in_and_out() {
    let s = setup();
    // Not signed in: to the sign-in page, then back.
    let a = get(&s.url("/jobs?type=10"), None);
    assert_eq!(a.status, 303);
    assert_eq!(a.location.as_deref(), Some("/signin?next=%2Fjobs%3Ftype%3D10"));
    // A wrong token: the form again, 401, no cookie.
    let a = post(&s.url("/signin"), None, Some(&s.origin()), &[("token", "jl_nope")]);
    assert_eq!(a.status, 401);
    assert!(a.set_cookie.is_none());
    assert!(a.body.contains("does not sign in"));
    // A sign-in posted from another site's page is refused.
    let a = post(&s.url("/signin"), None, Some("http://elsewhere.example"), &[("token", &s.admin)]);
    assert_eq!(a.status, 403);
    assert!(a.set_cookie.is_none());
    // The return path stays on this site.
    for next in ["//elsewhere.example/x", "https://elsewhere.example/", "/\\elsewhere"] {
        let a = post(&s.url("/signin"), None, Some(&s.origin()), &[("token", &s.admin), ("next", next)]);
        assert_eq!(a.location.as_deref(), Some("/jobs"), "next={next}");
    }
    let cookie = sign_in(&s, &s.admin);
    let page = get(&s.url("/jobs"), Some(&cookie));
    assert_eq!(page.status, 200);
    assert!(page.body.contains("plain job 2"));
    // Signing out needs the form's token too, then ends the session.
    let a = post(&s.url("/signout"), Some(&cookie), Some(&s.origin()), &[("csrf", "wrong")]);
    assert_eq!(a.status, 403);
    assert_eq!(get(&s.url("/jobs"), Some(&cookie)).status, 200);
    let a = post(&s.url("/signout"), Some(&cookie), Some(&s.origin()), &[("csrf", &csrf(&page.body))]);
    assert_eq!(a.status, 303);
    assert_eq!(get(&s.url("/jobs"), Some(&cookie)).status, 303);
}

#[test]
fn a_revoked_token_ends_its_browser_session() {
    let s = setup();
    let admin = s.engine.session("admin").unwrap();
    let t = admin.create_token("rita", None, None).unwrap();
    let cookie = sign_in(&s, &t.token);
    assert_eq!(get(&s.url("/jobs"), Some(&cookie)).status, 200);
    admin.revoke_token(t.id).unwrap();
    assert_eq!(get(&s.url("/jobs"), Some(&cookie)).status, 303);
}

#[test]
fn forms_need_the_session_token_and_the_sites_origin() {
    let s = setup();
    let cookie = sign_in(&s, &s.admin);
    let token = csrf(&get(&s.url(&format!("/jobs/{}", s.job)), Some(&cookie)).body);
    let act = s.url(&format!("/jobs/{}/act", s.job));
    // From another site, with the right token even: refused.
    let a = post(&act, Some(&cookie), Some("http://elsewhere.example"), &[("csrf", &token), ("action", "cancel")]);
    assert_eq!(a.status, 403);
    // Without the token, or with another: refused.
    let a = post(&act, Some(&cookie), Some(&s.origin()), &[("action", "cancel")]);
    assert_eq!(a.status, 403);
    let a = post(&act, Some(&cookie), Some(&s.origin()), &[("csrf", "0123"), ("action", "cancel")]);
    assert_eq!(a.status, 403);
    assert_eq!(s.status(s.job), Status::READY, "a refused form changed the job");
    // The bulk forms too.
    let all = [("csrf", "0123"), ("action", "cancel"), ("scope", "all")];
    assert_eq!(post(&s.url("/jobs/act"), Some(&cookie), Some(&s.origin()), &all).status, 403);
    assert_eq!(s.engine.session("admin").unwrap().count(&joblog::Filter::default()).unwrap(), 4);
    // With both: done, and back to the job's page.
    let a = post(&act, Some(&cookie), Some(&s.origin()), &[("csrf", &token), ("action", "cancel")]);
    assert_eq!(a.status, 303);
    assert_eq!(a.location, Some(format!("/jobs/{}", s.job)));
    assert_eq!(s.status(s.job), Status::CANCELED);
    // The state machine's refusal is said, and changes nothing.
    let a = post(&act, Some(&cookie), Some(&s.origin()), &[("csrf", &token), ("action", "resume")]);
    assert_eq!(a.status, 400);
    assert!(a.body.contains("class=\"error\""), "{}", a.body);
    assert_eq!(s.status(s.job), Status::CANCELED);
}

#[test]
fn what_the_store_holds_is_escaped() {
    let s = setup();
    let cookie = sign_in(&s, &s.admin);
    for path in ["/jobs".to_string(), format!("/jobs/{}", s.job), "/jobs?q=%3Cscript%3E".to_string()] {
        let page = get(&s.url(&path), Some(&cookie));
        assert_eq!(page.status, 200, "{path}");
        assert!(page.body.contains("&lt;b&gt;bold&lt;/b&gt; &amp; &lt;script&gt;x()&lt;/script&gt;"), "{path}");
        assert!(!page.body.contains("<script>x()"), "{path}: a job's name became markup");
    }
    // A filter value comes back escaped in the form, too.
    let page = get(&s.url("/jobs?owner=%22%3E%3Cimg%20src%3Dx%3E"), Some(&cookie));
    assert!(page.body.contains("value=\"&quot;&gt;&lt;img src=x&gt;\""), "{}", page.body);
    assert!(!page.body.contains("<img src=x>"));
}

#[test]
fn a_read_only_user_gets_no_action() {
    let s = setup();
    let cookie = sign_in(&s, &s.reader);
    let grid = get(&s.url("/jobs"), Some(&cookie));
    assert_eq!(grid.status, 200);
    assert!(grid.body.contains("plain job 1"));
    assert!(!grid.body.contains("name=\"action\""), "the grid offers actions to a user without Write");
    assert!(!grid.body.contains("name=\"id\""));
    let job = get(&s.url(&format!("/jobs/{}", s.job)), Some(&cookie));
    assert_eq!(job.status, 200);
    assert!(!job.body.contains("/act\""), "a job's page offers actions to a user without Write");
    let bulk = get(&s.url("/bulk-delete"), Some(&cookie));
    assert!(!bulk.body.contains("id=\"wizard\""));
    // Posting anyway: the engine refuses, nothing changes.
    let token = csrf(&grid.body);
    let a = post(
        &s.url(&format!("/jobs/{}/act", s.job)),
        Some(&cookie),
        Some(&s.origin()),
        &[("csrf", &token), ("action", "cancel")],
    );
    assert_eq!(a.status, 403);
    assert_eq!(s.status(s.job), Status::READY);
}

#[test]
fn bad_input_is_a_page_that_says_what() {
    let s = setup();
    let cookie = sign_in(&s, &s.admin);
    for (path, status, says) in [
        ("/jobs?type=nope", 400, "System Job Type"),
        ("/jobs?created_from=2026-13-01", 400, "created from"),
        ("/jobs?after=zzz", 400, "cursor"),
        ("/jobs?state=ready&reason=failed", 400, "belongs to State Completed"),
        ("/jobs/not-an-id", 404, "is not a job id"),
        ("/jobs/01a2375e-d357-7372-8b6a-000000000000", 404, "no job"),
    ] {
        let a = get(&s.url(path), Some(&cookie));
        assert_eq!(a.status, status, "{path}");
        assert!(a.body.contains(says), "{path}: {}", a.body);
        assert!(a.body.starts_with("<!DOCTYPE html>"), "{path}: an HTML page");
    }
    // A bulk action without a selection, or a postpone without a time.
    let token = csrf(&get(&s.url("/jobs"), Some(&cookie)).body);
    let a =
        post(&s.url("/jobs/act/preview"), Some(&cookie), Some(&s.origin()), &[("csrf", &token), ("action", "cancel")]);
    assert_eq!(a.status, 400);
    assert!(a.body.contains("no row selected"));
    let id = s.job.to_string();
    let a = post(
        &s.url("/jobs/act/preview"),
        Some(&cookie),
        Some(&s.origin()),
        &[("csrf", &token), ("action", "postpone"), ("id", &id)],
    );
    assert_eq!(a.status, 400);
    assert!(a.body.contains("Postpone needs a time"));
    // The wizard's criteria are checked before anything is counted.
    let a = post(
        &s.url("/bulk-delete/review"),
        Some(&cookie),
        Some(&s.origin()),
        &[("csrf", &token), ("type", "10"), ("older_than_days", "30")],
    );
    assert_eq!(a.status, 400);
    assert!(a.body.contains("Status Reason"));
    assert_eq!(s.status(s.job), Status::READY);
}

#[test]
fn the_confirmation_counts_before_anything_changes() {
    let s = setup();
    let cookie = sign_in(&s, &s.admin);
    let token = csrf(&get(&s.url("/jobs"), Some(&cookie)).body);
    let form = [("csrf", token.as_str()), ("action", "cancel"), ("scope", "all"), ("q", ""), ("type", "10")];
    let a = post(&s.url("/jobs/act/preview"), Some(&cookie), Some(&s.origin()), &form);
    assert_eq!(a.status, 200);
    assert!(a.body.contains("<b id=\"will-change\">4</b>"), "{}", a.body);
    assert_eq!(s.status(s.job), Status::READY, "the preview changed a job");
    // "All matching" runs as a tracked bulk operation: its page, which
    // reloads itself until the operation ends.
    let a = post(&s.url("/jobs/act"), Some(&cookie), Some(&s.origin()), &form);
    assert_eq!(a.status, 303, "{}", a.body);
    let op = a.location.expect("the operation's page");
    assert!(op.starts_with("/operations/"), "{op}");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let page = loop {
        let page = get(&s.url(&op), Some(&cookie));
        assert_eq!(page.status, 200, "{}", page.body);
        if page.body.contains("<b id=\"op-status\">succeeded</b>") {
            break page;
        }
        assert!(page.body.contains("<b id=\"op-status\">running</b>"), "{}", page.body);
        assert!(std::time::Instant::now() < deadline, "the operation did not end: {}", page.body);
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(page.body.contains("<b id=\"changed\">4</b>"), "{}", page.body);
    assert_eq!(s.status(s.job), Status::CANCELED);
    // Its history names the operation.
    let id = op.trim_start_matches("/operations/");
    let history = s.engine.session("admin").unwrap().history(s.job).unwrap();
    assert!(history.iter().any(|h| h.message.as_deref().is_some_and(|m| m.contains(id))), "{history:?}");
    // Somebody else's operation is not there for a user who does not read
    // every job; an unknown one is not there for anyone.
    let admin = s.engine.session("admin").unwrap();
    admin.add_user("bea", "root", &["basic-user"]).unwrap();
    let bea = sign_in(&s, &admin.create_token("bea", None, None).unwrap().token);
    assert_eq!(get(&s.url(&op), Some(&bea)).status, 404);
    assert_eq!(get(&s.url(&op), Some(&sign_in(&s, &s.reader))).status, 200, "one who reads every job sees it");
    assert_eq!(get(&s.url(&format!("/operations/{}", Uuid::nil())), Some(&cookie)).status, 404);
}

#[test]
fn a_completed_job_is_deleted_from_its_page_after_a_confirmation() {
    let s = setup();
    let admin = s.engine.session("admin").unwrap();
    let done = admin.create(NewJob::new("to delete", OperationType::WORKFLOW)).unwrap().id;
    admin.act(done, joblog::UserAction::Cancel).unwrap();
    let cookie = sign_in(&s, &s.admin);
    // A job not Completed offers no Delete; a Completed one does.
    let ready_page = get(&s.url(&format!("/jobs/{}", s.job)), Some(&cookie));
    assert!(!ready_page.body.contains("id=\"act-delete\""), "Delete offered on a Ready job");
    let page = get(&s.url(&format!("/jobs/{done}")), Some(&cookie));
    assert!(page.body.contains("id=\"act-delete\""), "no Delete on a Completed job");
    // The button leads to a confirmation, which changes nothing.
    let confirm = get(&s.url(&format!("/jobs/{done}/delete")), Some(&cookie));
    assert_eq!(confirm.status, 200);
    assert!(confirm.body.contains("cannot be undone") && confirm.body.contains("to delete"), "{}", confirm.body);
    assert_eq!(s.status(done), Status::CANCELED);
    let token = csrf(&confirm.body);
    let url = s.url(&format!("/jobs/{done}/delete"));
    // Without the session's token, or from another site: refused, unchanged.
    assert_eq!(post(&url, Some(&cookie), Some(&s.origin()), &[("csrf", "x"), ("confirm", "yes")]).status, 403);
    assert_eq!(
        post(&url, Some(&cookie), Some("http://evil.example"), &[("csrf", &token), ("confirm", "yes")]).status,
        403
    );
    // Without the confirmation: back to it.
    let a = post(&url, Some(&cookie), Some(&s.origin()), &[("csrf", &token)]);
    assert_eq!((a.status, a.location.as_deref()), (303, Some(format!("/jobs/{done}/delete").as_str())));
    assert_eq!(s.status(done), Status::CANCELED);
    // Confirmed: deleted, and back to the grid, which no longer lists it.
    let a = post(&url, Some(&cookie), Some(&s.origin()), &[("csrf", &token), ("confirm", "yes")]);
    assert_eq!((a.status, a.location.as_deref()), (303, Some("/jobs")), "{}", a.body);
    assert!(admin.get(done).is_err());
    assert!(!get(&s.url("/jobs"), Some(&cookie)).body.contains("to delete"));
    assert_eq!(get(&s.url(&format!("/jobs/{done}")), Some(&cookie)).status, 404);
    // A Ready job's confirmation says why it cannot be deleted, and offers no Delete.
    let page = get(&s.url(&format!("/jobs/{}/delete", s.job)), Some(&cookie));
    assert!(page.body.contains("Only a Completed job") && !page.body.contains("id=\"confirm-delete\""));
    // A Ready job posted anyway: refused, unchanged.
    let a = post(
        &s.url(&format!("/jobs/{}/delete", s.job)),
        Some(&cookie),
        Some(&s.origin()),
        &[("csrf", &token), ("confirm", "yes")],
    );
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(s.status(s.job), Status::READY);
}

#[test]
fn a_user_without_delete_gets_no_delete_button_and_a_post_is_refused() {
    let s = setup();
    let admin = s.engine.session("admin").unwrap();
    let done = admin.create(NewJob::new("kept", OperationType::WORKFLOW)).unwrap().id;
    admin.act(done, joblog::UserAction::Cancel).unwrap();
    let cookie = sign_in(&s, &s.reader);
    let page = get(&s.url(&format!("/jobs/{done}")), Some(&cookie));
    assert_eq!(page.status, 200);
    assert!(!page.body.contains("id=\"act-delete\""), "Delete offered to a user without Delete");
    let token = csrf(&get(&s.url("/jobs"), Some(&cookie)).body);
    let a = post(
        &s.url(&format!("/jobs/{done}/delete")),
        Some(&cookie),
        Some(&s.origin()),
        &[("csrf", &token), ("confirm", "yes")],
    );
    assert_eq!(a.status, 403, "{}", a.body);
    assert_eq!(s.status(done), Status::CANCELED);
}
