//! joblog-httpbench: joblog's HTTP face (`joblog-server`, docs/http.md) on
//! the benchmark workload, next to the same work in process, through the
//! command line and against SQLite, in one run. See `docs/benchmarks.md`,
//! "HTTP".
//!
//! ```text
//! cargo build --release -p joblog-cli    # the command line it times
//! cargo run --release -p joblog-bench --bin joblog-httpbench -- [--jobs N | --quick] [--dir DIR] [--keep] [--json FILE]
//! ```
//!
//! Four parts: a 50-row list page of each view (first page and a page deep
//! into the view) in process, over HTTP with a keep-alive client, through
//! the `joblog` command line as a whole process, and in SQLite; the
//! Dataverse face's first page when the server has it; a mix of concurrent
//! clients listing and acting (over HTTP, in process, in SQLite); the
//! event stream's delay from a commit to the client.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use clap::Parser;
use fastrand::Rng;
use joblog::domain::{OperationType, Timestamp};
use joblog::engine::{Config, Engine, NewJob, Session, UserAction};
use joblog_bench::rows::Contender;
use joblog_bench::sqlite::Sqlite;
use joblog_bench::views::{percentile_us, Page, View};
use joblog_bench::workload::Workload;
use joblog_bench::{load, probe};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

#[derive(Parser, Debug)]
#[command(
    version,
    about = "joblog's HTTP API next to the same work in process, through the command line and in SQLite"
)]
struct Args {
    /// Jobs in the workload.
    #[arg(long, default_value_t = 10_000_000)]
    jobs: u64,
    /// 100,000 jobs and fewer rounds: a smoke run.
    #[arg(long)]
    quick: bool,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Where the stores go (a temporary directory inside it, or with
    /// --keep the directory `joblog-httpbench-JOBS-SEED`).
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Keep the stores, and reuse the ones an earlier --keep run of the
    /// same --jobs and --seed built (building 10 million jobs takes
    /// minutes). The acting part adds jobs to both kept stores.
    #[arg(long)]
    keep: bool,
    /// List pages timed per view and position, each way.
    #[arg(long, default_value_t = 1000)]
    samples: usize,
    /// Whole-process runs of `joblog list` per view and position (each
    /// opens the store from its checkpoint).
    #[arg(long, default_value_t = 5)]
    cli_rounds: usize,
    /// Concurrent clients in the mixed part.
    #[arg(long, default_value_t = 100)]
    clients: usize,
    /// Seconds each way of the mixed part runs.
    #[arg(long, default_value_t = 10.0)]
    secs: f64,
    /// Transitions timed from commit to the event stream's client.
    #[arg(long, default_value_t = 200)]
    event_rounds: usize,
    /// Loads of each dashboard page timed in Chromium (0: none).
    #[arg(long, default_value_t = 20)]
    dashboard_rounds: usize,
    /// The script that drives Chromium (Playwright for Python and
    /// /usr/bin/chromium, as the dashboard's browser test).
    #[arg(long, default_value = "bench/scripts/dashboard-timing.py")]
    dashboard_script: PathBuf,
    /// The `joblog` binary to time (default: the one next to this binary;
    /// `cargo build --release -p joblog-cli`).
    #[arg(long)]
    joblog: Option<PathBuf>,
    /// Time the joblog data directory DIR that an earlier --keep run of
    /// the same --jobs and --seed built (its `joblog` directory), without
    /// SQLite: no store is built and the SQLite parts are left out (for a
    /// run while that SQLite load is still going, paused).
    #[arg(long, value_name = "DIR")]
    joblog_only: Option<PathBuf>,
    /// Also save the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// A latency series in brief.
#[derive(Serialize, Clone, Copy)]
struct Stat {
    samples: usize,
    p50_us: f64,
    p99_us: f64,
}

impl Stat {
    fn of(v: &[Duration]) -> Option<Stat> {
        (!v.is_empty()).then(|| Stat { samples: v.len(), p50_us: percentile_us(v, 50), p99_us: percentile_us(v, 99) })
    }
}

/// One list page, each way it was asked.
#[derive(Serialize)]
struct PageRow {
    view: String,
    page: String,
    in_process: Option<Stat>,
    http: Option<Stat>,
    command_line: Option<Stat>,
    sqlite: Option<Stat>,
    /// HTTP p50 / SQLite p50.
    http_vs_sqlite: Option<f64>,
    /// In process p50 / SQLite p50.
    in_process_vs_sqlite: Option<f64>,
    /// Command line p50 / SQLite p50.
    command_line_vs_sqlite: Option<f64>,
}

/// One kind of request of the concurrent mix, one way.
#[derive(Serialize)]
struct MixRow {
    way: String,
    kind: String,
    requests: usize,
    per_second: f64,
    p50_us: f64,
    p99_us: f64,
    errors: u64,
    /// Requests per second / SQLite's for the same kind.
    vs_sqlite: Option<f64>,
}

/// A dashboard page loaded in Chromium: the browser's own navigation
/// timing (bench/scripts/dashboard-timing.py).
#[derive(Serialize, serde::Deserialize)]
struct DashboardPage {
    view: String,
    path: String,
    rounds: usize,
    rows: usize,
    /// Request start to the page's last byte.
    response_ms: Millis,
    /// Navigation start to DOMContentLoaded (the grid on screen).
    dom_ms: Millis,
    /// Navigation start to the load event.
    load_ms: Millis,
}

#[derive(Serialize, serde::Deserialize)]
struct Millis {
    p50: f64,
    p99: f64,
}

#[derive(Serialize)]
struct Delay {
    rounds: usize,
    /// From the write's return (committed, synced) to the event at the client.
    commit_to_client: Stat,
    /// From the write's call to the event at the client.
    request_to_client: Stat,
    /// The server's follower's polling interval.
    poll_ms: f64,
}

#[derive(Serialize)]
struct Machine {
    cores: usize,
    fsync_p50_us: f64,
    fsync_p99_us: f64,
}

#[derive(Serialize)]
struct Report {
    command: String,
    jobs: u64,
    events: u64,
    seed: u64,
    machine: Machine,
    pages: Vec<PageRow>,
    clients: usize,
    mix_secs: f64,
    mix: Vec<MixRow>,
    events_delay: Option<Delay>,
    dashboard: Vec<DashboardPage>,
    notes: Vec<String>,
}

/// The stores of one run: a joblog data directory and a SQLite database
/// of the same workload.
struct Stores {
    /// The temporary directory that holds them, without --keep.
    _temp: Option<tempfile::TempDir>,
    joblog: PathBuf,
    /// None with --joblog-only.
    sqlite: Option<Sqlite>,
    /// None with --joblog-only: read off the store when it opens.
    events: Option<u64>,
}

/// What a kept directory records once both stores are complete.
#[derive(Serialize, serde::Deserialize, PartialEq)]
struct Built {
    jobs: u64,
    seed: u64,
    events: u64,
}

const BUILT: &str = "BUILT.json";

fn main() {
    let mut args = Args::parse();
    if args.quick {
        args.jobs = 100_000;
        args.samples = args.samples.min(200);
        args.cli_rounds = args.cli_rounds.min(3);
        args.secs = args.secs.min(3.0);
        args.event_rounds = args.event_rounds.min(50);
    }
    let command: Vec<String> = std::env::args().collect();
    let say = |s: &str| eprintln!("… {s}");
    let end = Timestamp::parse("2026-11-01T00:00:00Z").unwrap();
    let mut notes = Vec::new();

    // ---- the machine, probed first (nothing else of this run going)
    std::fs::create_dir_all(&args.dir).expect("the --dir directory");
    let (fsync_p50, fsync_p99) = probe::fsync_latency(&args.dir, 200).expect("fsync probe");
    let machine = Machine {
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        fsync_p50_us: fsync_p50.as_secs_f64() * 1e6,
        fsync_p99_us: fsync_p99.as_secs_f64() * 1e6,
    };

    let stores = stores(&args, end, &say);

    // The same pages for every way: first pages and pages deep into each view.
    let mut rng = Rng::with_seed(args.seed ^ 0x5eed);
    let sets: Vec<(View, &str, Vec<Page>)> = View::ALL
        .iter()
        .flat_map(|&v| {
            let first = (v, "first", v.samples(&mut rng, args.samples, end, false));
            let deep = v.has_deep_pages().then(|| (v, "deep", v.samples(&mut rng, args.samples, end, true)));
            std::iter::once(first).chain(deep)
        })
        .collect();

    // ---- the command line, as a whole process, on the closed store
    let cli_times = command_line_pages(&args, &stores.joblog, &sets, &say, &mut notes);

    // ---- the store opened; the server in process, with a token
    say("opening the joblog store");
    let clock = load::clock(end);
    clock.set(load::loaded_at(end));
    let engine = Engine::open(&stores.joblog, Config::default(), clock.clone()).expect("open the joblog store");
    // With --joblog-only: the log's length as it opens, before this run writes.
    let events = stores.events.unwrap_or_else(|| engine.next_seq());
    let admin = engine.session("admin").unwrap();
    let token = admin.create_token("admin", Some("httpbench"), None).expect("a token for admin");
    let server = joblog_server::start(
        engine.clone(),
        Arc::new(AtomicBool::new(true)),
        joblog_server::HttpConfig { addr: "127.0.0.1:0".into(), tls: None, limits: joblog_server::Limits::default() },
    )
    .expect("start the HTTP server");
    let http = Http {
        base: format!("http://{}", server.local_addr().expect("the server listens on TCP")),
        auth: format!("Bearer {}", token.token),
    };

    // ---- list pages: in process, HTTP, SQLite
    let mut pages = Vec::new();
    let mut sqlite = stores.sqlite;
    if sqlite.is_none() {
        notes.push("SQLite not run (--joblog-only): its columns are empty".into());
    }
    for (i, (view, position, set)) in sets.iter().enumerate() {
        say(&format!("pages: {}, {position} page", view.name()));
        let (in_process, next_in_process) = in_process_pages(&admin, set);
        let (over_http, next_http) = http_pages(&http, set);
        let sql = sqlite_pages(sqlite.as_mut(), set);
        pages.push(page_row(view.name(), position, &in_process, &over_http, cli_times.get(i), &sql));
        if !next_http.is_empty() {
            pages.push(page_row(
                view.name(),
                "after a deep page (its `next`)",
                &next_in_process,
                &next_http,
                None,
                &[],
            ));
        }
    }
    dataverse_pages(&http, &sets, sqlite.as_mut(), &mut pages, &mut notes);

    // ---- the dashboard's grid, first page of each view, in Chromium
    say("dashboard pages in Chromium");
    let dashboard = dashboard_pages(&args, &http, &token.token, &sets, &mut notes);

    // ---- concurrent clients listing and acting
    let mut mix = Vec::new();
    for way in [Way::Http, Way::InProcess, Way::Sqlite] {
        let db = sqlite.as_ref();
        if way == Way::Sqlite && db.is_none() {
            continue;
        }
        say(&format!("{} clients for {} s: {}", args.clients, args.secs, way.name()));
        mix.extend(concurrent(way, &args, &http, &engine, db, end));
    }
    for kind in ["list", "create", "cancel", "all"] {
        let sql = mix.iter().find(|r| r.way == Way::Sqlite.name() && r.kind == kind).map(|r| r.per_second);
        for r in mix.iter_mut().filter(|r| r.kind == kind && r.way != Way::Sqlite.name()) {
            r.vs_sqlite = sql.filter(|&s| s > 0.0).map(|s| r.per_second / s);
        }
    }

    // ---- the event stream's delay
    say(&format!("event stream: {} rounds", args.event_rounds));
    let events_delay = match event_delay(&http, &admin, args.event_rounds, args.seed) {
        Ok(d) => Some(d),
        Err(e) => {
            notes.push(format!("event stream not measured: {e}"));
            None
        }
    };

    // ---- done: the token goes, the store closes
    server.stop();
    if let Err(e) = admin.revoke_token(token.id) {
        notes.push(format!("could not revoke the run's token: {e}"));
    }
    drop(admin);
    engine.close().expect("close the joblog store");

    let report = Report {
        command: command.join(" "),
        jobs: args.jobs,
        events,
        seed: args.seed,
        machine,
        pages,
        clients: args.clients,
        mix_secs: args.secs,
        mix,
        events_delay,
        dashboard,
        notes,
    };
    print_report(&report);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report).unwrap()).expect("write the JSON report");
    }
}

/// Builds both stores, or with --keep reuses the ones an earlier run built.
fn stores(args: &Args, end: Timestamp, say: &dyn Fn(&str)) -> Stores {
    let (temp, base) = if args.keep {
        (None, args.dir.join(format!("joblog-httpbench-{}-{}", args.jobs, args.seed)))
    } else {
        let t = tempfile::tempdir_in(&args.dir).expect("a work directory in --dir");
        let p = t.path().to_path_buf();
        (Some(t), p)
    };
    if let Some(dir) = &args.joblog_only {
        say(&format!("timing the joblog store in {} alone (--joblog-only)", dir.display()));
        return Stores { _temp: temp, joblog: dir.clone(), sqlite: None, events: None };
    }
    let (jdir, sdir) = (base.join("joblog"), base.join("sqlite"));
    let built_path = base.join(BUILT);
    let built: Option<Built> = std::fs::read(&built_path).ok().and_then(|b| serde_json::from_slice(&b).ok());
    if let Some(b) = built.filter(|b| b.jobs == args.jobs && b.seed == args.seed) {
        say(&format!("reusing the stores in {} ({} events)", base.display(), b.events));
        return Stores { _temp: temp, joblog: jdir, sqlite: Some(Sqlite::open(&sdir)), events: Some(b.events) };
    }
    if args.keep && base.exists() {
        // An unfinished build of ours (no BUILT.json): start again.
        std::fs::remove_dir_all(&base).expect("remove an unfinished build");
    }
    std::fs::create_dir_all(&base).expect("the stores' directory");
    say(&format!("joblog: loading {} jobs into {} (10 million take minutes)", args.jobs, jdir.display()));
    let clock = load::clock(end);
    let config = Config { checkpoint_every_events: 0, ..Config::default() };
    let engine = Engine::open(&jdir, config, clock.clone()).expect("create the joblog store");
    let admin = engine.session("admin").unwrap();
    load::define_workflows(&admin, &clock, end).expect("the workflow definitions");
    let t = Instant::now();
    let events = load::load(&admin, Workload::new(args.jobs, args.seed, end), |_| {}).expect("load");
    drop(admin);
    // Closing writes the checkpoint every later open starts from.
    engine.close().expect("close the joblog store");
    say(&format!("joblog: {events} events in {:.1} s; SQLite: loading the same", t.elapsed().as_secs_f64()));
    let mut sqlite = Sqlite::open(&sdir);
    sqlite.load(Workload::new(args.jobs, args.seed, end));
    let b = Built { jobs: args.jobs, seed: args.seed, events };
    std::fs::write(&built_path, serde_json::to_vec(&b).unwrap()).expect("write BUILT.json");
    Stores { _temp: temp, joblog: jdir, sqlite: Some(sqlite), events: Some(events) }
}

/// `joblog list … --limit 50 --json` as a whole process on the closed
/// store, `--cli-rounds` pages of each set; empty when there is no
/// binary or it fails (said in `notes`).
fn command_line_pages(
    args: &Args,
    data: &Path,
    sets: &[(View, &str, Vec<Page>)],
    say: &dyn Fn(&str),
    notes: &mut Vec<String>,
) -> Vec<Vec<Duration>> {
    let bin = args.joblog.clone().unwrap_or_else(|| {
        let exe = std::env::current_exe().expect("this binary's path");
        exe.with_file_name("joblog")
    });
    if !bin.exists() {
        notes.push(format!(
            "command line not timed: no {} (cargo build --release -p joblog-cli, or --joblog PATH)",
            bin.display()
        ));
        return vec![];
    }
    let mut out = Vec::new();
    for (view, position, set) in sets {
        say(&format!("command line: {}, {position} page, {} runs", view.name(), args.cli_rounds));
        let mut times = Vec::new();
        for page in set.iter().take(args.cli_rounds) {
            let t = Instant::now();
            let run = std::process::Command::new(&bin)
                .args(["--data".as_ref(), data.as_os_str()])
                .args(["--as", "admin", "--json", "list"])
                .args(page.cli_args())
                .env_remove("JOBLOG_SOCKET")
                .output();
            let elapsed = t.elapsed();
            match run {
                Ok(o) if o.status.success() && o.stdout.first() == Some(&b'[') => times.push(elapsed),
                Ok(o) => {
                    notes.push(format!(
                        "command line not timed: {} exited {} ({})",
                        bin.display(),
                        o.status,
                        String::from_utf8_lossy(&o.stderr).trim()
                    ));
                    return vec![];
                }
                Err(e) => {
                    notes.push(format!("command line not timed: cannot run {}: {e}", bin.display()));
                    return vec![];
                }
            }
        }
        out.push(times);
    }
    out
}

/// Times `Session::list` on each page; for a deep page also the page after
/// it, from the `next` cursor it returned.
fn in_process_pages(admin: &Session, set: &[Page]) -> (Vec<Duration>, Vec<Duration>) {
    let (mut times, mut next_times) = (Vec::new(), Vec::new());
    for page in set {
        let t = Instant::now();
        let (jobs, next) = admin.list(&page.filter(), page.cursor().as_ref(), 50).expect("a page");
        times.push(t.elapsed());
        std::hint::black_box(jobs);
        if let (Some(next), true) = (next, page.before.is_some()) {
            let t = Instant::now();
            std::hint::black_box(admin.list(&page.filter(), Some(&next), 50).expect("the next page"));
            next_times.push(t.elapsed());
        }
    }
    (times, next_times)
}

/// The server's address and the credentials every request carries.
struct Http {
    base: String,
    auth: String,
}

impl Http {
    /// A client with its own kept-alive connection.
    fn agent(&self) -> ureq::Agent {
        ureq::AgentBuilder::new().timeout(Duration::from_secs(120)).max_idle_connections_per_host(1).build()
    }

    fn get(&self, agent: &ureq::Agent, path_and_query: &str) -> Result<Value, String> {
        answer(agent.get(&format!("{}{path_and_query}", self.base)).set("Authorization", &self.auth).call())
    }

    /// A POST with a JSON body, or none.
    fn post(&self, agent: &ureq::Agent, path: &str, body: Option<Value>) -> Result<Value, String> {
        let req = agent.post(&format!("{}{path}", self.base)).set("Authorization", &self.auth);
        answer(match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        })
    }
}

/// The answer's JSON, or what went wrong (status and body).
fn answer(r: Result<ureq::Response, ureq::Error>) -> Result<Value, String> {
    match r {
        Ok(resp) => resp.into_json().map_err(|e| format!("the answer is not JSON: {e}")),
        Err(ureq::Error::Status(code, resp)) => Err(format!("HTTP {code}: {}", resp.into_string().unwrap_or_default())),
        Err(e) => Err(e.to_string()),
    }
}

/// Times `GET /api/v1/jobs?…` on each page over one kept-alive connection
/// (the answer read and parsed, as a client does); for a deep page also
/// the page after it, from the answer's `next`.
fn http_pages(http: &Http, set: &[Page]) -> (Vec<Duration>, Vec<Duration>) {
    let agent = http.agent();
    let (mut times, mut next_times) = (Vec::new(), Vec::new());
    for page in set {
        let t = Instant::now();
        let v = http.get(&agent, &format!("/api/v1/jobs?{}", page.query())).expect("a page over HTTP");
        times.push(t.elapsed());
        if let (Some(next), true) = (v["next"].as_str(), page.before.is_some()) {
            let mut after = page.clone();
            after.before = None;
            let q = format!("/api/v1/jobs?{}&cursor={next}", after.query());
            let t = Instant::now();
            std::hint::black_box(http.get(&agent, &q).expect("the next page over HTTP"));
            next_times.push(t.elapsed());
        }
    }
    (times, next_times)
}

fn page_row(
    view: &str,
    page: &str,
    in_process: &[Duration],
    http: &[Duration],
    cli: Option<&Vec<Duration>>,
    sql: &[Duration],
) -> PageRow {
    let (i, h, c, s) = (Stat::of(in_process), Stat::of(http), cli.and_then(|c| Stat::of(c)), Stat::of(sql));
    let vs = |a: Option<Stat>| a.zip(s).filter(|(_, s)| s.p50_us > 0.0).map(|(a, s)| a.p50_us / s.p50_us);
    PageRow {
        view: view.into(),
        page: page.into(),
        in_process: i,
        http: h,
        command_line: c,
        sqlite: s,
        http_vs_sqlite: vs(h),
        in_process_vs_sqlite: vs(i),
        command_line_vs_sqlite: vs(c),
    }
}

/// The Dataverse face's first page (`$top=50`), unfiltered and with
/// `$filter=operationtype eq 10 and statuscode eq 31`, next to SQLite's
/// same first pages; skipped with a note when the server does not serve it.
fn dataverse_pages(
    http: &Http,
    sets: &[(View, &str, Vec<Page>)],
    mut sqlite: Option<&mut Sqlite>,
    rows: &mut Vec<PageRow>,
    notes: &mut Vec<String>,
) {
    let agent = http.agent();
    let base = "/api/data/v9.2/asyncoperations?$top=50";
    if let Err(e) = http.get(&agent, base) {
        notes.push(format!("Dataverse face not timed: GET {base}: {e}"));
        return;
    }
    let filtered = format!("{base}&$filter={}", "operationtype%20eq%2010%20and%20statuscode%20eq%2031");
    for (view, path) in [(View::All, base.to_string()), (View::WorkflowFailed, filtered)] {
        let Some((_, _, set)) = sets.iter().find(|(v, p, _)| *v == view && *p == "first") else { continue };
        let mut times = Vec::new();
        for _ in set {
            let t = Instant::now();
            if let Err(e) = http.get(&agent, &path) {
                notes.push(format!("Dataverse face not timed: GET {path}: {e}"));
                return;
            }
            times.push(t.elapsed());
        }
        let sql = sqlite_pages(sqlite.as_deref_mut(), set);
        rows.push(page_row(&format!("{} (Dataverse face, $top=50)", view.name()), "first", &[], &times, None, &sql));
    }
}

/// The dashboard's grid for the first page of each view (the same keys
/// as the API's pages), loaded `--dashboard-rounds` times each in
/// Chromium by `--dashboard-script`; empty with a note when the browser
/// or the script cannot run.
fn dashboard_pages(
    args: &Args,
    http: &Http,
    token: &str,
    sets: &[(View, &str, Vec<Page>)],
    notes: &mut Vec<String>,
) -> Vec<DashboardPage> {
    if args.dashboard_rounds == 0 {
        return vec![];
    }
    let enc = |k: &Option<String>| joblog_bench::views::encode(k.as_deref().unwrap_or_default());
    let paths: Vec<(String, String)> = sets
        .iter()
        .filter(|(_, position, _)| *position == "first")
        .filter_map(|(view, _, set)| {
            let page = set.first()?;
            let path = match view {
                View::All => "/jobs".to_string(),
                View::WorkflowFailed => "/jobs?type=workflow&reason=failed".to_string(),
                View::ProcessSession => format!("/process-session/{}", enc(&page.key)),
                View::BackgroundProcesses => format!("/background-processes/{}", enc(&page.key)),
            };
            Some((view.name().to_string(), path))
        })
        .collect();
    let run = std::process::Command::new("python3")
        .arg(&args.dashboard_script)
        .args(["--base", &http.base, "--token", token, "--rounds", &args.dashboard_rounds.to_string()])
        .args(paths.iter().map(|(_, p)| p))
        .output();
    #[derive(serde::Deserialize)]
    struct Out {
        pages: Vec<DashboardPage>,
    }
    let out = match run {
        Ok(o) if o.status.success() => serde_json::from_slice::<Out>(&o.stdout).map_err(|e| e.to_string()),
        Ok(o) => Err(format!("exited {}: {}", o.status, String::from_utf8_lossy(&o.stderr).trim())),
        Err(e) => Err(e.to_string()),
    };
    match out {
        Ok(out) => out
            .pages
            .into_iter()
            .filter_map(|mut p| {
                p.view = paths.iter().find(|(_, path)| *path == p.path)?.0.clone();
                Some(p)
            })
            .collect(),
        Err(e) => {
            notes.push(format!("dashboard not timed: {} {e}", args.dashboard_script.display()));
            vec![]
        }
    }
}

/// SQLite's time for each page of `set` (none without SQLite).
fn sqlite_pages(sqlite: Option<&mut Sqlite>, set: &[Page]) -> Vec<Duration> {
    sqlite.map(|db| set.iter().map(|p| db.page(&p.sql())).collect()).unwrap_or_default()
}

/// The ways the concurrent mix runs.
#[derive(Clone, Copy, PartialEq)]
enum Way {
    Http,
    InProcess,
    Sqlite,
}

impl Way {
    fn name(self) -> &'static str {
        match self {
            Way::Http => "HTTP",
            Way::InProcess => "in process",
            Way::Sqlite => "SQLite",
        }
    }
}

/// What one client of the mix measured.
#[derive(Default)]
struct Tally {
    list: Vec<Duration>,
    create: Vec<Duration>,
    cancel: Vec<Duration>,
    errors: [u64; 3],
    first_error: Option<String>,
}

/// `--clients` threads for `--secs` seconds, each with its own
/// connection (HTTP: a kept-alive connection; in process: a session;
/// SQLite: a database connection): 80% list pages (a random view, key
/// and, half the time, a deep position), 20% acting, by turns creating a
/// job (a durable write) and canceling the Ready job it created last.
fn concurrent(
    way: Way,
    args: &Args,
    http: &Http,
    engine: &Engine,
    sqlite: Option<&Sqlite>,
    end: Timestamp,
) -> Vec<MixRow> {
    let stop = Instant::now() + Duration::from_secs_f64(args.secs);
    let started = Instant::now();
    // Made here: a SQLite connection may move to a thread, not be shared.
    let clients: Vec<Client> = (0..args.clients).map(|_| Client::new(way, http, engine, sqlite, end)).collect();
    let tallies: Vec<Tally> = std::thread::scope(|s| {
        let handles: Vec<_> = clients
            .into_iter()
            .enumerate()
            .map(|(c, mut client)| {
                let seed = args.seed ^ ((c as u64 + 1) << 20) ^ way as u64;
                s.spawn(move || {
                    let mut rng = Rng::with_seed(seed);
                    let mut tally = Tally::default();
                    let mut ready: Option<Uuid> = None;
                    let mut made = 0u64;
                    while Instant::now() < stop {
                        let (kind, r) = if rng.u32(..100) < 80 {
                            let view = View::ALL[rng.usize(..View::ALL.len())];
                            let deep = rng.bool();
                            let page = view.samples(&mut rng, 1, end, deep).remove(0);
                            (0, client.list(&page))
                        } else if let Some(id) = ready.take() {
                            (2, client.cancel(id))
                        } else {
                            made += 1;
                            let r = client.create(&format!("httpbench {c}-{made}"));
                            ready = r.as_ref().ok().map(|(_, id)| *id);
                            (1, r.map(|(d, _)| d))
                        };
                        match r {
                            Ok(d) => [&mut tally.list, &mut tally.create, &mut tally.cancel][kind].push(d),
                            Err(e) => {
                                tally.errors[kind] += 1;
                                tally.first_error.get_or_insert(e);
                            }
                        }
                    }
                    tally
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a client thread")).collect()
    });
    let secs = started.elapsed().as_secs_f64();
    let mut rows = Vec::new();
    let mut all = Vec::new();
    let mut all_errors = 0;
    for (k, kind) in ["list", "create", "cancel"].into_iter().enumerate() {
        let times: Vec<Duration> = tallies
            .iter()
            .flat_map(|t| match k {
                0 => &t.list,
                1 => &t.create,
                _ => &t.cancel,
            })
            .copied()
            .collect();
        let errors = tallies.iter().map(|t| t.errors[k]).sum();
        all_errors += errors;
        rows.push(mix_row(way, kind, &times, errors, secs));
        all.extend(times);
    }
    rows.push(mix_row(way, "all", &all, all_errors, secs));
    if let Some(e) = tallies.iter().find_map(|t| t.first_error.clone()) {
        eprintln!("{}: {all_errors} requests failed; the first: {e}", way.name());
    }
    rows
}

fn mix_row(way: Way, kind: &str, times: &[Duration], errors: u64, secs: f64) -> MixRow {
    MixRow {
        way: way.name().into(),
        kind: kind.into(),
        requests: times.len(),
        per_second: times.len() as f64 / secs,
        p50_us: percentile_us(times, 50),
        p99_us: percentile_us(times, 99),
        errors,
        vs_sqlite: None,
    }
}

/// One client of the mix, whichever way it goes.
enum Client<'a> {
    Http(&'a Http, ureq::Agent),
    InProcess(Session),
    Sqlite(joblog_bench::sqlite::Client, Timestamp),
}

impl<'a> Client<'a> {
    /// `sqlite` is there when `way` is SQLite.
    fn new(way: Way, http: &'a Http, engine: &Engine, sqlite: Option<&Sqlite>, end: Timestamp) -> Self {
        match way {
            Way::Http => Client::Http(http, http.agent()),
            Way::InProcess => Client::InProcess(engine.session("admin").expect("a session")),
            // New rows are the newest, as joblog's are (its clock reads
            // `loaded_at`), a microsecond apart.
            Way::Sqlite => {
                Client::Sqlite(sqlite.expect("SQLite's mix runs only with SQLite").client(), load::loaded_at(end))
            }
        }
    }

    fn list(&mut self, page: &Page) -> Result<Duration, String> {
        let t = Instant::now();
        match self {
            Client::Http(http, agent) => {
                http.get(agent, &format!("/api/v1/jobs?{}", page.query()))?;
            }
            Client::InProcess(s) => {
                std::hint::black_box(s.list(&page.filter(), page.cursor().as_ref(), 50).map_err(|e| e.to_string())?);
            }
            Client::Sqlite(db, _) => return Ok(db.page(&page.sql())),
        }
        Ok(t.elapsed())
    }

    fn create(&mut self, name: &str) -> Result<(Duration, Uuid), String> {
        let t = Instant::now();
        let id = match self {
            Client::Http(http, agent) => {
                let v = http.post(
                    agent,
                    "/api/v1/jobs",
                    Some(serde_json::json!({"name": name, "type": "bulk-email", "external_handler": true})),
                )?;
                v["asyncoperationid"]
                    .as_str()
                    .and_then(|s| Uuid::parse_str(s).ok())
                    .ok_or_else(|| format!("no asyncoperationid in {v}"))?
            }
            Client::InProcess(s) => {
                s.create(NewJob::new(name, OperationType::BULK_EMAIL)).map_err(|e| e.to_string())?.id
            }
            Client::Sqlite(db, now) => {
                let id = Uuid::now_v7();
                *now = now.plus_micros(1);
                return Ok((db.create(id, name, now.micros()), id));
            }
        };
        Ok((t.elapsed(), id))
    }

    fn cancel(&mut self, id: Uuid) -> Result<Duration, String> {
        let t = Instant::now();
        match self {
            Client::Http(http, agent) => {
                http.post(agent, &format!("/api/v1/jobs/{id}/cancel"), None)?;
            }
            Client::InProcess(s) => {
                s.act(id, UserAction::Cancel).map_err(|e| e.to_string())?;
            }
            Client::Sqlite(db, now) => {
                *now = now.plus_micros(1);
                return Ok(db.cancel(id, now.micros()));
            }
        }
        Ok(t.elapsed())
    }
}

/// The event stream's delay: a client follows `/api/v1/events`; each round
/// creates a job in process and cancels it, and times each until its
/// event reaches the client. A random pause before each write spreads the
/// writes over the server's polling interval.
fn event_delay(http: &Http, admin: &Session, rounds: usize, seed: u64) -> Result<Delay, String> {
    let (tx, rx) = mpsc::channel::<(String, String, Instant)>();
    // No overall time limit: the stream stays open for the whole part.
    let resp = ureq::AgentBuilder::new()
        .build()
        .get(&format!("{}/api/v1/events", http.base))
        .set("Authorization", &http.auth)
        .set("Accept", "text/event-stream")
        .call()
        .map_err(|e| format!("GET /api/v1/events: {e}"))?;
    // The stream starts at the log's next event once its head is answered.
    std::thread::spawn(move || {
        let mut kind = String::new();
        for line in std::io::BufReader::new(resp.into_reader()).lines() {
            let Ok(line) = line else { return };
            if let Some(k) = line.strip_prefix("event:") {
                kind = k.trim().to_string();
            } else if let Some(d) = line.strip_prefix("data:") {
                let at = Instant::now();
                let job =
                    serde_json::from_str::<Value>(d.trim()).ok().and_then(|v| v["job"].as_str().map(String::from));
                if tx.send((kind.clone(), job.unwrap_or_default(), at)).is_err() {
                    return;
                }
            }
        }
    });
    let wait = |job: Uuid, want: &str| -> Result<Instant, String> {
        let id = job.to_string();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok((k, j, at)) if k == want && j == id => return Ok(at),
                Ok(_) => continue,
                Err(_) => return Err(format!("no {want} event for job {id} within 5 s")),
            }
        }
    };
    let mut rng = Rng::with_seed(seed ^ 0xe7e7);
    let (mut commit, mut request) = (Vec::new(), Vec::new());
    for i in 0..rounds {
        std::thread::sleep(Duration::from_micros(rng.u64(..25_000)));
        let t0 = Instant::now();
        let job = admin
            .create(NewJob::new(&format!("event delay {i}"), OperationType::BULK_EMAIL))
            .map_err(|e| e.to_string())?;
        let t1 = Instant::now();
        let at = wait(job.id, "created")?;
        commit.push(at.saturating_duration_since(t1));
        request.push(at.saturating_duration_since(t0));
        std::thread::sleep(Duration::from_micros(rng.u64(..25_000)));
        let t0 = Instant::now();
        admin.act(job.id, UserAction::Cancel).map_err(|e| e.to_string())?;
        let t1 = Instant::now();
        let at = wait(job.id, "transition")?;
        commit.push(at.saturating_duration_since(t1));
        request.push(at.saturating_duration_since(t0));
    }
    Ok(Delay {
        rounds,
        commit_to_client: Stat::of(&commit).ok_or("no rounds")?,
        request_to_client: Stat::of(&request).ok_or("no rounds")?,
        poll_ms: joblog_server::events::POLL.as_secs_f64() * 1e3,
    })
}

/// The report as markdown tables, one per part.
fn print_report(r: &Report) {
    let us = |s: &Option<Stat>| s.map_or("—".into(), |s| format!("{} / {}", fmt_us(s.p50_us), fmt_us(s.p99_us)));
    let x = |v: Option<f64>| v.map_or("—".into(), |v| format!("{v:.2}"));
    println!("## joblog-httpbench: {} jobs, {} events (seed {})\n", r.jobs, r.events, r.seed);
    println!("`{}`\n", r.command);
    println!(
        "Machine: {} cores; fsync p50 {} (p99 {}), so 1 / fsync p50 = {:.0} durable writes/s\n",
        r.machine.cores,
        fmt_us(r.machine.fsync_p50_us),
        fmt_us(r.machine.fsync_p99_us),
        1e6 / r.machine.fsync_p50_us
    );
    println!("### A 50-row list page, p50 / p99 (command line: whole process, p50 / p99 of its few runs)\n");
    println!("| view | page | in process | HTTP | command line | SQLite | HTTP ÷ SQLite | in process ÷ SQLite | command line ÷ SQLite |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for p in &r.pages {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            p.view,
            p.page,
            us(&p.in_process),
            us(&p.http),
            us(&p.command_line),
            us(&p.sqlite),
            x(p.http_vs_sqlite),
            x(p.in_process_vs_sqlite),
            x(p.command_line_vs_sqlite)
        );
    }
    println!(
        "\n### {} concurrent clients for {:.0} s: 80% list pages, 20% acting (create, cancel)\n",
        r.clients, r.mix_secs
    );
    println!("| way | requests | done | per second | p50 | p99 | errors | per second ÷ SQLite's |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for m in &r.mix {
        println!(
            "| {} | {} | {} | {:.0} | {} | {} | {} | {} |",
            m.way,
            m.kind,
            m.requests,
            m.per_second,
            fmt_us(m.p50_us),
            fmt_us(m.p99_us),
            m.errors,
            x(m.vs_sqlite)
        );
    }
    let limit = 1e6 / r.machine.fsync_p50_us;
    for way in ["HTTP", "in process"] {
        let writes: f64 = r
            .mix
            .iter()
            .filter(|m| m.way == way && (m.kind == "create" || m.kind == "cancel"))
            .map(|m| m.per_second)
            .sum();
        println!("\n{way}: durable writes {writes:.0}/s = {:.2} × (1 / fsync p50)", writes / limit);
    }
    println!("\nSQLite runs WAL with synchronous = NORMAL: its commits are not synced one by one; joblog's are.\n");
    if let Some(d) = &r.events_delay {
        println!("### The event stream's delay ({} rounds, a create and a cancel each)\n", d.rounds);
        println!("| from | p50 | p99 | p50 ÷ the follower's poll ({:.0} ms) |", d.poll_ms);
        println!("|---|---:|---:|---:|");
        for (name, s) in [
            ("the write's return (committed) to the client", &d.commit_to_client),
            ("the write's call to the client", &d.request_to_client),
        ] {
            println!("| {name} | {} | {} | {:.2} |", fmt_us(s.p50_us), fmt_us(s.p99_us), s.p50_us / 1e3 / d.poll_ms);
        }
        println!();
    }
    if !r.dashboard.is_empty() {
        println!("### The dashboard's grid in Chromium, first page of each view (milliseconds, p50 / p99)\n");
        println!("| view | path | rows | response (request to last byte) | DOMContentLoaded | load |");
        println!("|---|---|---:|---:|---:|---:|");
        for d in &r.dashboard {
            let ms = |m: &Millis| format!("{:.1} / {:.1}", m.p50, m.p99);
            println!(
                "| {} | `{}` | {} | {} | {} | {} |",
                d.view,
                d.path,
                d.rows,
                ms(&d.response_ms),
                ms(&d.dom_ms),
                ms(&d.load_ms)
            );
        }
        println!();
    }
    for n in &r.notes {
        println!("Note: {n}");
    }
}

fn fmt_us(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.1} ms", v / 1e3)
    } else {
        format!("{v:.0} µs")
    }
}
