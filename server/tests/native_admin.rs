//! The native API's administration (`/api/v1/users`, `roles`,
//! `business-units`, `workflows`, `tokens`, `config`) end to end: a real
//! server on a free port over a temporary store, spoken to over HTTP with
//! bearer tokens. For each route: what it answers, a caller without the
//! privilege (403, nothing changed), a bad body (400), what does not exist
//! (404).

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use joblog::domain::SystemClock;
use joblog::{Config, Engine};
use joblog_server::{HttpConfig, Limits, Server};
use serde_json::{json, Value};

struct Setup {
    _dir: tempfile::TempDir,
    engine: Engine,
    server: Server,
    admin: String,
    alice: String,
}

/// A store with admin and alice (reads, writes and creates her own jobs:
/// no administration), a token for each.
fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path().join("data"), Config::default(), Arc::new(SystemClock)).unwrap();
    let admin = engine.session("admin").unwrap();
    use joblog::domain::{Depth, Privilege, Role};
    let author = [(Privilege::Read, Depth::User), (Privilege::Write, Depth::User), (Privilege::Create, Depth::User)];
    admin.add_role(Role::new("author", author)).unwrap();
    admin.add_user("alice", "root", &["author"]).unwrap();
    let admin_token = admin.create_token("admin", Some("test"), None).unwrap().token;
    let alice_token = admin.create_token("alice", None, None).unwrap().token;
    let server = joblog_server::start(
        engine.clone(),
        Arc::new(AtomicBool::new(true)),
        HttpConfig { addr: "127.0.0.1:0".into(), tls: None, limits: Limits { max_body: 4096, ..Limits::default() } },
    )
    .unwrap();
    Setup { _dir: dir, engine, server, admin: admin_token, alice: alice_token }
}

enum Body<'a> {
    None,
    Json(Value),
    Raw(&'a str),
}

impl Setup {
    /// Status and JSON body of a request (errors included).
    fn call(&self, method: &str, path: &str, token: &str, body: Body<'_>) -> (u16, Value) {
        let url = format!("http://{}{path}", self.server.local_addr().unwrap());
        let req = ureq::request(method, &url)
            .timeout(Duration::from_secs(30))
            .set("Authorization", &format!("Bearer {token}"));
        let res = match body {
            Body::None => req.call(),
            Body::Json(b) => req.send_json(b),
            Body::Raw(s) => req.set("Content-Type", "application/json").send_string(s),
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

    fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.call("GET", path, token, Body::None)
    }

    /// What the administrator sees at `path` (200 required).
    fn seen(&self, path: &str) -> Value {
        let (status, v) = self.get(path, &self.admin);
        assert_eq!(status, 200, "{path}: {v}");
        v
    }

    /// Every event count: unchanged means nothing was written.
    fn seq(&self) -> u64 {
        self.engine.next_seq()
    }
}

/// `status` with the platform's error body.
#[track_caller]
fn refused(answer: (u16, Value), status: u16) {
    assert_eq!(answer.0, status, "{}", answer.1);
    assert!(answer.1["error"]["code"].as_str().is_some_and(|c| c.starts_with("0x")), "{}", answer.1);
}

fn user<'a>(users: &'a Value, name: &str) -> Option<&'a Value> {
    users.as_array().unwrap().iter().find(|u| u["name"] == name)
}

#[test]
fn users_are_added_mapped_deactivated_reactivated_and_listed() {
    let s = setup();
    let users = s.seen("/api/v1/users");
    assert_eq!(
        user(&users, "alice").unwrap(),
        &json!({"name": "alice", "business_unit": "root", "roles": ["author"], "active": true, "os_uid": null})
    );
    // Anyone signed in lists users, as `joblog user list` lets any user.
    assert_eq!(s.get("/api/v1/users", &s.alice), (200, users));

    let (status, v) = s.call("POST", "/api/v1/users", &s.admin, Body::Json(json!({"name": "bob", "os_uid": 4242})));
    assert_eq!(status, 201, "{v}");
    assert_eq!(
        v,
        json!({"name": "bob", "business_unit": "root", "roles": ["basic-user"], "active": true, "os_uid": 4242})
    );
    assert_eq!(user(&s.seen("/api/v1/users"), "bob"), Some(&v));

    // Without Write at Organization depth: 403, nothing written.
    let before = s.seq();
    refused(s.call("POST", "/api/v1/users", &s.alice, Body::Json(json!({"name": "carol"}))), 403);
    refused(s.call("PUT", "/api/v1/users/bob/os-user", &s.alice, Body::Json(json!({"os_uid": 1}))), 403);
    refused(s.call("POST", "/api/v1/users/bob/deactivate", &s.alice, Body::None), 403);
    refused(s.call("POST", "/api/v1/users/nobody/deactivate", &s.alice, Body::None), 403);
    assert_eq!(s.seq(), before);
    assert!(user(&s.seen("/api/v1/users"), "carol").is_none());

    // Bad bodies: 400, nothing written.
    for bad in [
        json!({"name": "carol", "bogus": 1}),
        json!({"name": 5}),
        json!({"roles": ["author"]}),
        json!({"name": ""}),
        json!({"name": " carol"}),
        json!({"name": "carol", "os_uid": -1}),
        json!({"name": "bob"}),
    ] {
        refused(s.call("POST", "/api/v1/users", &s.admin, Body::Json(bad.clone())), 400);
    }
    refused(s.call("POST", "/api/v1/users", &s.admin, Body::Raw("{not json")), 400);
    refused(s.call("PUT", "/api/v1/users/bob/os-user", &s.admin, Body::Json(json!({}))), 400);
    refused(s.call("PUT", "/api/v1/users/bob/os-user", &s.admin, Body::Json(json!({"os_uid": "7"}))), 400);
    refused(s.call("PUT", "/api/v1/users/bob/os-user", &s.admin, Body::Json(json!({"os_uid": 7, "x": 1}))), 400);
    // A role or business unit that does not exist.
    refused(s.call("POST", "/api/v1/users", &s.admin, Body::Json(json!({"name": "carol", "roles": ["nope"]}))), 404);
    refused(
        s.call("POST", "/api/v1/users", &s.admin, Body::Json(json!({"name": "carol", "business_unit": "nope"}))),
        404,
    );
    assert_eq!(s.seq(), before);

    // Mapping, and removing the mapping.
    let (status, v) = s.call("PUT", "/api/v1/users/bob/os-user", &s.admin, Body::Json(json!({"os_uid": 5000})));
    assert_eq!((status, &v["os_uid"]), (200, &json!(5000)), "{v}");
    let (status, v) = s.call("PUT", "/api/v1/users/bob/os-user", &s.admin, Body::Json(json!({"os_uid": null})));
    assert_eq!((status, &v["os_uid"]), (200, &Value::Null), "{v}");

    // Deactivation and reactivation, each once.
    let (status, v) = s.call("POST", "/api/v1/users/bob/deactivate", &s.admin, Body::None);
    assert_eq!((status, &v["active"]), (200, &json!(false)), "{v}");
    refused(s.call("POST", "/api/v1/users/bob/deactivate", &s.admin, Body::None), 400);
    let (status, v) = s.call("POST", "/api/v1/users/bob/reactivate", &s.admin, Body::None);
    assert_eq!((status, &v["active"]), (200, &json!(true)), "{v}");
    refused(s.call("POST", "/api/v1/users/bob/reactivate", &s.admin, Body::None), 400);
    // The last administrator stays.
    refused(s.call("POST", "/api/v1/users/admin/deactivate", &s.admin, Body::None), 400);

    // What does not exist: 404.
    let before = s.seq();
    refused(s.call("POST", "/api/v1/users/nobody/deactivate", &s.admin, Body::None), 404);
    refused(s.call("POST", "/api/v1/users/nobody/reactivate", &s.admin, Body::None), 404);
    refused(s.call("PUT", "/api/v1/users/nobody/os-user", &s.admin, Body::Json(json!({"os_uid": 9}))), 404);
    refused(s.call("POST", "/api/v1/users/bob/explode", &s.admin, Body::None), 404);
    assert_eq!(s.seq(), before);
}

#[test]
fn a_name_with_any_character_is_one_path_segment() {
    let s = setup();
    let name = "a/b c?d#e%f+g";
    let (status, v) = s.call("POST", "/api/v1/users", &s.admin, Body::Json(json!({"name": name})));
    assert_eq!(status, 201, "{v}");
    let path = "/api/v1/users/a%2Fb%20c%3Fd%23e%25f%2Bg/deactivate";
    let (status, v) = s.call("POST", path, &s.admin, Body::None);
    assert_eq!((status, &v["name"], &v["active"]), (200, &json!(name), &json!(false)), "{v}");

    let (status, v) = s.call("POST", "/api/v1/workflows", &s.admin, Body::Json(json!({"id": "w/1 é"})));
    assert_eq!(status, 201, "{v}");
    let (status, v) =
        s.call("PUT", "/api/v1/workflows/w%2F1%20%C3%A9/owner", &s.admin, Body::Json(json!({"owner": "alice"})));
    assert_eq!((status, &v["owner"]), (200, &json!("alice")), "{v}");
}

/// A request as written, on a connection of its own: no client library
/// between, to rewrite a path's dot segments.
fn raw(s: &Setup, method: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(s.server.local_addr().unwrap()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        c,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        s.admin
    )
    .unwrap();
    let mut answer = String::new();
    c.read_to_string(&mut answer).unwrap();
    answer
}

#[test]
fn dot_names_are_names_not_path_steps() {
    let s = setup();
    for name in [".", ".."] {
        let (status, v) = s.call("POST", "/api/v1/users", &s.admin, Body::Json(json!({"name": name})));
        assert_eq!(status, 201, "{v}");
        let answer = raw(&s, "POST", &format!("/api/v1/users/{name}/deactivate"));
        assert!(answer.starts_with("HTTP/1.1 200"), "{name}: {answer}");
        assert!(answer.contains(r#""active":false"#), "{name}: {answer}");
    }
}

#[test]
fn roles_and_business_units() {
    let s = setup();
    let body = json!({"name": "auditor", "privileges": [{"privilege": "read", "depth": "organization"},
        {"privilege": "write", "depth": "user"}]});
    let before = s.seq();
    refused(s.call("POST", "/api/v1/roles", &s.alice, Body::Json(body.clone())), 403);
    refused(s.call("POST", "/api/v1/business-units", &s.alice, Body::Json(json!({"name": "sales"}))), 403);
    for bad in [
        json!({"name": "r"}),
        json!({"name": "r", "privileges": ["read:organization"]}),
        json!({"name": "r", "privileges": [{"privilege": "fly", "depth": "user"}]}),
        json!({"name": "r", "privileges": [{"privilege": "read", "depth": "galaxy"}]}),
        json!({"name": "r", "privileges": [], "extra": true}),
        json!({"name": "", "privileges": []}),
    ] {
        refused(s.call("POST", "/api/v1/roles", &s.admin, Body::Json(bad)), 400);
    }
    refused(s.call("POST", "/api/v1/business-units", &s.admin, Body::Json(json!({"parent": "root"}))), 400);
    refused(
        s.call("POST", "/api/v1/business-units", &s.admin, Body::Json(json!({"name": "x", "parent": "nope"}))),
        404,
    );
    assert_eq!(s.seq(), before);

    let (status, v) = s.call("POST", "/api/v1/roles", &s.admin, Body::Json(body.clone()));
    assert_eq!(status, 201, "{v}");
    let auditor = json!({"role": "auditor", "privileges": [{"privilege": "Read", "depth": "Organization"},
        {"privilege": "Write", "depth": "User"}]});
    assert_eq!(v, auditor);
    assert!(s.seen("/api/v1/roles").as_array().unwrap().contains(&auditor));
    refused(s.call("POST", "/api/v1/roles", &s.admin, Body::Json(body)), 400);

    let (status, v) = s.call("POST", "/api/v1/business-units", &s.admin, Body::Json(json!({"name": "sales"})));
    assert_eq!((status, v), (201, json!({"business_unit": "sales", "parent": "root"})));
    let (status, v) =
        s.call("POST", "/api/v1/business-units", &s.admin, Body::Json(json!({"name": "east", "parent": "sales"})));
    assert_eq!((status, v), (201, json!({"business_unit": "east", "parent": "sales"})));
    let units = s.seen("/api/v1/business-units");
    assert!(units.as_array().unwrap().contains(&json!({"business_unit": "east", "parent": "sales"})), "{units}");
    assert!(units.as_array().unwrap().contains(&json!({"business_unit": "root", "parent": null})), "{units}");
}

#[test]
fn workflows_are_added_reowned_and_listed() {
    let s = setup();
    assert_eq!(s.seen("/api/v1/workflows"), json!([]));
    let before = s.seq();
    refused(s.call("POST", "/api/v1/workflows", &s.alice, Body::Json(json!({"id": "welcome"}))), 403);
    for bad in [json!({}), json!({"id": "w", "owner": 3}), json!({"id": "w", "colour": "red"}), json!({"id": ""})] {
        refused(s.call("POST", "/api/v1/workflows", &s.admin, Body::Json(bad)), 400);
    }
    refused(s.call("POST", "/api/v1/workflows", &s.admin, Body::Json(json!({"id": "w", "owner": "nobody"}))), 404);
    assert_eq!(s.seq(), before);

    // The owner defaults to the caller.
    let (status, v) = s.call("POST", "/api/v1/workflows", &s.admin, Body::Json(json!({"id": "welcome"})));
    assert_eq!((status, v), (201, json!({"id": "welcome", "name": "welcome", "owner": "admin", "active": true})));
    let (status, v) = s.call(
        "POST",
        "/api/v1/workflows",
        &s.admin,
        Body::Json(json!({"id": "sync", "name": "Invoice sync", "owner": "alice"})),
    );
    assert_eq!((status, &v["owner"]), (201, &json!("alice")), "{v}");
    refused(s.call("POST", "/api/v1/workflows", &s.admin, Body::Json(json!({"id": "welcome"}))), 400);
    // The privilege first: a caller without it learns nothing from the answer.
    refused(s.call("POST", "/api/v1/workflows", &s.alice, Body::Json(json!({"id": "welcome"}))), 403);

    let before = s.seq();
    refused(s.call("PUT", "/api/v1/workflows/welcome/owner", &s.alice, Body::Json(json!({"owner": "alice"}))), 403);
    refused(s.call("PUT", "/api/v1/workflows/welcome/owner", &s.admin, Body::Json(json!({}))), 400);
    refused(s.call("PUT", "/api/v1/workflows/welcome/owner", &s.admin, Body::Json(json!({"owner": "nobody"}))), 404);
    refused(s.call("PUT", "/api/v1/workflows/nope/owner", &s.admin, Body::Json(json!({"owner": "alice"}))), 404);
    assert_eq!(s.seq(), before);
    let (status, v) = s.call("PUT", "/api/v1/workflows/welcome/owner", &s.admin, Body::Json(json!({"owner": "alice"})));
    assert_eq!((status, &v["owner"]), (200, &json!("alice")), "{v}");
    let list = s.seen("/api/v1/workflows");
    assert_eq!(list.as_array().unwrap().iter().map(|w| w["id"].clone()).collect::<Vec<_>>(), ["sync", "welcome"]);
    assert!(list.as_array().unwrap().iter().all(|w| w["owner"] == "alice"), "{list}");
}

#[test]
fn tokens_are_created_listed_and_revoked() {
    let s = setup();
    // Alice makes one for herself: the secret is in this answer only, and works.
    let (status, made) = s.call("POST", "/api/v1/tokens", &s.alice, Body::Json(json!({"user": "alice", "name": "ci"})));
    assert_eq!(status, 201, "{made}");
    let secret = made["token"].as_str().unwrap().to_string();
    assert!(secret.starts_with("jl_"), "{made}");
    assert_eq!(s.get("/api/v1/me", &secret).1["user"], "alice");
    let id = made["id"].as_str().unwrap().to_string();

    // Her list holds her own tokens, never a secret; the administrator's every one.
    let (status, mine) = s.get("/api/v1/tokens", &s.alice);
    assert_eq!(status, 200, "{mine}");
    assert!(mine.as_array().unwrap().iter().all(|t| t["user"] == "alice"), "{mine}");
    assert!(mine.as_array().unwrap().iter().any(|t| t["id"] == id.as_str() && t["status"] == "live"), "{mine}");
    let all = s.seen("/api/v1/tokens");
    assert!(all.as_array().unwrap().iter().any(|t| t["user"] == "admin"), "{all}");
    for list in [&mine, &all] {
        assert!(!list.to_string().contains(&secret), "a secret in a list");
        assert!(list.as_array().unwrap().iter().all(|t| t.get("token").is_none()), "{list}");
    }

    // Not hers to make or revoke: 403, and another's token is, to her, not found.
    let before = s.seq();
    refused(s.call("POST", "/api/v1/tokens", &s.alice, Body::Json(json!({"user": "admin"}))), 403);
    let admin_token = all.as_array().unwrap().iter().find(|t| t["user"] == "admin").unwrap()["id"].clone();
    refused(s.call("DELETE", &format!("/api/v1/tokens/{}", admin_token.as_str().unwrap()), &s.alice, Body::None), 404);
    // Bad bodies and ids: 400; unknown: 404.
    for bad in [
        json!({}),
        json!({"user": "alice", "expires_in_days": 0}),
        json!({"user": "alice", "expires_in_days": 99999}),
        json!({"user": "alice", "expires_in_days": -1}),
        json!({"user": "alice", "name": ""}),
        json!({"user": "alice", "secret": "mine"}),
    ] {
        refused(s.call("POST", "/api/v1/tokens", &s.admin, Body::Json(bad)), 400);
    }
    refused(s.call("POST", "/api/v1/tokens", &s.admin, Body::Json(json!({"user": "nobody"}))), 404);
    refused(s.call("DELETE", "/api/v1/tokens/not-a-uuid", &s.admin, Body::None), 400);
    refused(s.call("DELETE", &format!("/api/v1/tokens/{}", uuid::Uuid::now_v7()), &s.admin, Body::None), 404);
    assert_eq!(s.seq(), before);
    assert_eq!(s.get("/api/v1/me", &secret).0, 200);

    // Revoked: it stops working at once; a second revocation is refused.
    let (status, v) = s.call("DELETE", &format!("/api/v1/tokens/{id}"), &s.alice, Body::None);
    assert_eq!((status, v), (200, json!({"id": id, "revoked": true})));
    assert_eq!(s.get("/api/v1/me", &secret).0, 401);
    refused(s.call("DELETE", &format!("/api/v1/tokens/{id}"), &s.admin, Body::None), 400);
    let (_, mine) = s.get("/api/v1/tokens", &s.alice);
    assert!(mine.as_array().unwrap().iter().any(|t| t["id"] == id.as_str() && t["status"] == "revoked"), "{mine}");
}

#[test]
fn config_is_shown_set_unset_and_shown_as_it_was() {
    let s = setup();
    let key = "backoff.threshold";
    let entry = |v: &Value| v.as_array().unwrap().iter().find(|k| k["key"] == key).unwrap().clone();
    let initial = s.seen("/api/v1/config");
    assert_eq!(entry(&initial)["set"], false);
    assert_eq!(s.get("/api/v1/config", &s.alice), (200, initial.clone()));
    let before_set = s.engine.now().to_rfc3339();

    let before = s.seq();
    refused(s.call("PUT", &format!("/api/v1/config/{key}"), &s.alice, Body::Json(json!({"value": 5}))), 403);
    refused(s.call("DELETE", &format!("/api/v1/config/{key}"), &s.alice, Body::None), 403);
    for bad in
        [json!({}), json!({"value": "5"}), json!({"value": -5}), json!({"value": 5, "x": 1}), json!({"value": 0})]
    {
        refused(s.call("PUT", &format!("/api/v1/config/{key}"), &s.admin, Body::Json(bad)), 400);
    }
    refused(s.call("PUT", "/api/v1/config/no.such.key", &s.admin, Body::Json(json!({"value": 5}))), 400);
    refused(s.call("DELETE", "/api/v1/config/no.such.key", &s.admin, Body::None), 400);
    refused(s.get("/api/v1/config?until=yesterday", &s.admin), 400);
    refused(s.get("/api/v1/config?bogus=1", &s.admin), 400);
    assert_eq!(s.seq(), before);
    assert_eq!(s.seen("/api/v1/config"), initial);

    let (status, v) = s.call("PUT", &format!("/api/v1/config/{key}"), &s.admin, Body::Json(json!({"value": 5})));
    assert_eq!((status, v), (200, json!({"key": key, "value": 5, "set": true, "changed": true})));
    let (status, v) = s.call("PUT", &format!("/api/v1/config/{key}"), &s.admin, Body::Json(json!({"value": 5})));
    assert_eq!((status, v), (200, json!({"key": key, "value": 5, "set": true, "changed": false})));
    assert_eq!(entry(&s.seen("/api/v1/config"))["value"], 5);
    // As it was before: replayed from the log (the `+` of an offset encoded).
    let until = before_set.replace('+', "%2B");
    assert_eq!(s.seen(&format!("/api/v1/config?until={until}")), initial);

    let (status, v) = s.call("DELETE", &format!("/api/v1/config/{key}"), &s.admin, Body::None);
    assert_eq!((status, &v["changed"], &v["set"]), (200, &json!(true), &json!(false)), "{v}");
    assert_eq!(s.seen("/api/v1/config"), initial);
}
