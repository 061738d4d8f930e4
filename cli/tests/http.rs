//! `joblog run --http` end to end with the real binary: it serves while
//! the service runs, over TLS when given a certificate, refuses a port in
//! use or a bad key before touching the store, and stops with the service
//! (docs/http.md, "Serving"). The APIs themselves are tested in server/tests.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

mod support;

use serde_json::Value;
use support::Store;

/// Starts `joblog run --http 127.0.0.1:0 EXTRA…` and returns it with the
/// URL it printed. (A failing test leaves it to end by itself: `--for`.)
#[allow(clippy::zombie_processes)]
fn serve(s: &Store, extra: &[&str]) -> (Child, String) {
    let mut child = s
        .command(&["run", "--for", "120s", "--http", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(err.read_line(&mut line).unwrap() > 0, "joblog run ended before serving");
        if let Some(rest) = line.trim().strip_prefix("joblog: serving ") {
            let url = rest.split_whitespace().next().unwrap().to_string();
            // Keep draining stderr so the service never blocks on it.
            std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
            return (child, url);
        }
    }
}

fn curl(args: &[&str]) -> (i32, String) {
    let out = Command::new("curl").args(["-s", "-m", "10", "-w", "\n%{http_code}"]).args(args).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "000"));
    (code.parse().unwrap_or(0), body.to_string())
}

fn stop(child: Child) {
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let out = support::exits_within(child, Duration::from_secs(20), "joblog run after SIGTERM");
    assert!(out.status.success(), "joblog run did not stop cleanly");
}

fn token(s: &Store, user: &str) -> String {
    let out = s.command(&["token", "create", user, "--json"]).output().unwrap();
    assert!(out.status.success(), "token create: {}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["token"].as_str().unwrap().to_string()
}

#[test]
fn serves_while_the_service_runs_and_stops_with_it() {
    let s = Store::new();
    let t = token(&s, "admin");
    let (child, url) = serve(&s, &[]);
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let (code, body) = curl(&[&format!("{url}/healthz")]);
    assert_eq!((code, body.trim()), (200, "ok"));
    let (code, _) = curl(&[&format!("{url}/api/v1/jobs")]);
    assert_eq!(code, 401);
    let auth = format!("Authorization: Bearer {t}");
    let (code, body) = curl(&["-H", &auth, &format!("{url}/api/v1/jobs?count=true")]);
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!(v["count"].is_u64(), "{v}");
    // A token created while the service holds the directory works at once.
    let t2 = token(&s, "admin");
    let (code, _) = curl(&["-H", &format!("Authorization: Bearer {t2}"), &format!("{url}/api/v1/me")]);
    assert_eq!(code, 200);
    stop(child);
    let (code, _) = curl(&[&format!("{url}/healthz")]);
    assert_eq!(code, 0, "nothing listens after the service stopped");
}

fn self_signed(dir: &Path) -> (String, String) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let ok = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .args(["-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(ok.success(), "openssl could not make a test certificate");
    (cert.to_str().unwrap().to_string(), key.to_str().unwrap().to_string())
}

#[test]
fn serves_https_with_a_certificate_and_key() {
    let s = Store::new();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path());
    let (child, url) = serve(&s, &["--tls-cert", &cert, "--tls-key", &key]);
    assert!(url.starts_with("https://"), "{url}");
    let (code, body) = curl(&["--cacert", &cert, &format!("{url}/healthz")]);
    assert_eq!((code, body.trim()), (200, "ok"));
    // Plain HTTP to the TLS port gets no answer.
    let (code, _) = curl(&[&format!("{}/healthz", url.replacen("https", "http", 1))]);
    assert_ne!(code, 200);
    stop(child);
}

#[test]
fn a_port_in_use_or_a_bad_certificate_stops_the_start_before_the_store_is_touched() {
    let s = Store::new();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let (cert, _) = self_signed(dir.path());
    let g = garbage.to_str().unwrap();
    for args in [
        vec!["run", "--once", "--http", &addr],
        vec!["run", "--once", "--http", "nowhere"],
        vec!["run", "--once", "--http", "127.0.0.1:0", "--tls-cert", g, "--tls-key", g],
        // The certificate as its own key.
        vec!["run", "--once", "--http", "127.0.0.1:0", "--tls-cert", &cert, "--tls-key", &cert],
    ] {
        let out = s.command(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "one clear line: {err}");
        assert!(!s.data().exists(), "{args:?} created the store");
    }
    // --tls-cert without --tls-key (or --http) is a usage error.
    let out = s.command(&["run", "--once", "--http", "127.0.0.1:0", "--tls-cert", &cert]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}
