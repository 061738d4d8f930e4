//! joblog-logbench: the event log's throughput next to this machine's limits,
//! measured in one run. See `docs/benchmarks.md` for the method.
//!
//! ```text
//! cargo run --release -p joblog-bench --bin joblog-logbench -- [--quick] [--json]
//! ```

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use joblog::log::{Batch, Log, LogConfig, Sync};
use joblog_bench::probe;
use serde::Serialize;

const EVENT_BYTES: usize = 100;

#[derive(Parser, Debug)]
#[command(version, about = "Measure the joblog event log against this machine's limits")]
struct Args {
    /// Directory to work in (a temporary directory is made inside it).
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Events for the Sync::Never append scenarios.
    #[arg(long, default_value_t = 5_000_000)]
    events: u64,
    /// Size of the log for the read and recovery scenarios, in MiB.
    #[arg(long, default_value_t = 4096)]
    log_mib: u64,
    /// Seconds for each Sync::EveryBatch scenario.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Small sizes, for a smoke run (CI).
    #[arg(long)]
    quick: bool,
    /// Print one JSON document instead of a table.
    #[arg(long)]
    json: bool,
    /// Internal: write a log of this many MiB into --dir, print "ready", keep writing.
    #[arg(long, hide = true)]
    child_write_mib: Option<u64>,
}

#[derive(Serialize)]
struct Row {
    scenario: String,
    value: f64,
    unit: &'static str,
    limit_name: &'static str,
    limit: f64,
    fraction_of_limit: f64,
}

#[derive(Serialize, Default)]
struct Report {
    machine: Machine,
    rows: Vec<Row>,
}

#[derive(Serialize, Default)]
struct Machine {
    cpus: usize,
    write_bandwidth_bytes_per_s: f64,
    fsync_latency_p50_us: f64,
    fsync_latency_p99_us: f64,
    memory_read_bytes_per_s: f64,
    crc32_bytes_per_s: f64,
    crc32_124b_frames_bytes_per_s: f64,
    /// `None` when the page cache could not be dropped.
    cold_read_bytes_per_s: Option<f64>,
}

fn event(i: u64) -> [u8; EVENT_BYTES] {
    let mut e = [b'e'; EVENT_BYTES];
    e[..8].copy_from_slice(&i.to_le_bytes());
    e
}

fn main() {
    let mut args = Args::parse();
    if let Some(mib) = args.child_write_mib {
        child_write(&args.dir, mib);
        return;
    }
    if args.quick {
        args.events = args.events.min(200_000);
        args.log_mib = args.log_mib.min(256);
        args.seconds = args.seconds.min(0.5);
    }
    let work = tempfile::tempdir_in(&args.dir).expect("make a work directory");
    let frame = (EVENT_BYTES + joblog::log::FRAME_HEADER_LEN) as f64;
    let mut report = Report::default();
    let say = |s: &str| {
        if !args.json {
            eprintln!("… {s}");
        }
    };

    say("probing the machine");
    let m = &mut report.machine;
    m.cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let probe_bytes: usize = if args.quick { 64 << 20 } else { 1 << 30 };
    m.write_bandwidth_bytes_per_s = probe::write_bandwidth(work.path(), probe_bytes as u64).expect("write probe");
    let _ = Command::new("sync").status(); // no writeback left to disturb what follows
    let (p50, p99) = probe::fsync_latency(work.path(), if args.quick { 50 } else { 300 }).expect("fsync probe");
    m.fsync_latency_p50_us = p50.as_secs_f64() * 1e6;
    m.fsync_latency_p99_us = p99.as_secs_f64() * 1e6;
    m.memory_read_bytes_per_s = probe::memory_read_bandwidth(probe_bytes);
    m.crc32_bytes_per_s = probe::crc32_rate(probe_bytes.min(256 << 20));
    m.crc32_124b_frames_bytes_per_s = probe::crc32_rate_per_frame(probe_bytes.min(256 << 20), frame as usize);
    let fsync_s = p50.as_secs_f64();
    let crc_frames = m.crc32_124b_frames_bytes_per_s;
    let crc_bulk = m.crc32_bytes_per_s;

    // Sync::Never: the median of three runs, each on a fresh log.
    say("Sync::Never, single-event appends, pipelined (3 runs)");
    let rate = median3(|run| never_single(&work.path().join(format!("never-single-{run}")), args.events));
    // Sustained, appends without sync are bounded by the disk's write
    // bandwidth (the page cache must be written back) and by one core's CRC.
    let never_limit = report.machine.write_bandwidth_bytes_per_s.min(crc_frames) / frame;
    let never_limit_name = "min(disk write, CRC32) / 124 B";
    report.rows.push(row("append Never, 1 thread, 1 event/append", rate, "events/s", never_limit_name, never_limit));
    say("Sync::Never, batches of 1000 events (3 runs)");
    let rate = median3(|run| never_batched(&work.path().join(format!("never-batch-{run}")), args.events));
    report.rows.push(row(
        "append Never, 1 thread, 1000 events/append",
        rate,
        "events/s",
        never_limit_name,
        never_limit,
    ));

    for threads in [1usize, 8, 64] {
        say(&format!("Sync::EveryBatch, {threads} appenders"));
        let dir = work.path().join(format!("durable-{threads}"));
        let log = Log::open(&dir, LogConfig::default()).unwrap();
        let until = Instant::now() + Duration::from_secs_f64(args.seconds);
        let start = Instant::now();
        std::thread::scope(|s| {
            for t in 0..threads {
                let log = &log;
                s.spawn(move || {
                    let mut i = t as u64;
                    while Instant::now() < until {
                        log.append(&event(i)).unwrap();
                        i += threads as u64;
                    }
                });
            }
        });
        let secs = start.elapsed().as_secs_f64();
        let st = log.stats();
        drop(log);
        let rate = st.frames as f64 / secs;
        let group = st.frames as f64 / st.syncs.max(1) as f64;
        report.rows.push(row(
            &format!("append EveryBatch, {threads} threads (mean group {group:.1})"),
            rate,
            "events/s",
            "mean group / fsync p50",
            group / fsync_s,
        ));
    }

    // A big log, written by a child that is killed with SIGKILL mid-append.
    say(&format!("writing a {} MiB log in a child process, then kill -9", args.log_mib));
    let dir = work.path().join("big");
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--dir", dir.to_str().unwrap(), "--child-write-mib", &args.log_mib.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready", "the writer child failed");
    child.kill().unwrap();
    child.wait().unwrap();

    say("recovery after the kill (cached)");
    let start = Instant::now();
    let log = Log::open(&dir, LogConfig::default()).unwrap();
    let open_s = start.elapsed().as_secs_f64();
    let bytes: u64 = log.segments().iter().map(|s| s.published_bytes).sum();
    report.rows.push(row(
        "recover after kill -9 (cached), verify all",
        bytes as f64 / open_s,
        "bytes/s",
        "CRC32 bulk",
        crc_bulk,
    ));
    report.rows.push(row(
        "recover after kill -9 (cached), seconds",
        open_s,
        "s",
        "CRC32 bulk time",
        bytes as f64 / crc_bulk,
    ));

    say("sequential read and verify (cached)");
    let start = Instant::now();
    let (mut n, mut sum) = (0u64, 0u64);
    for r in log.iter_from(1) {
        let r = r.unwrap();
        n += 1;
        sum = sum.wrapping_add(r.payload()[0] as u64);
    }
    let secs = start.elapsed().as_secs_f64();
    let name = format!("read+verify {n} events, iterator (cached)");
    report.rows.push(row(&name, bytes as f64 / secs, "bytes/s", "CRC32 of 124 B frames", crc_frames));
    let start = Instant::now();
    log.scan_from(1, |r| {
        sum = sum.wrapping_add(r.payload[0] as u64);
        Ok::<_, joblog::log::LogError>(std::ops::ControlFlow::Continue(()))
    })
    .unwrap();
    let secs = start.elapsed().as_secs_f64();
    std::hint::black_box(sum);
    let name = format!("read+verify {n} events, scan (cached)");
    report.rows.push(row(&name, bytes as f64 / secs, "bytes/s", "CRC32 of 124 B frames", crc_frames));
    drop(log);

    // Last, as it empties the page cache.
    report.machine.cold_read_bytes_per_s =
        probe::cold_read_bandwidth(work.path(), probe_bytes as u64).expect("read probe");
    if let Some(disk) = report.machine.cold_read_bytes_per_s.filter(|_| probe::drop_page_cache()) {
        say("recovery after the kill (cold cache)");
        let start = Instant::now();
        let log = Log::open(&dir, LogConfig::default()).unwrap();
        let secs = start.elapsed().as_secs_f64();
        drop(log);
        report.rows.push(row(
            "recover (cold cache), verify all",
            bytes as f64 / secs,
            "bytes/s",
            "disk read (probe)",
            disk,
        ));
    }

    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).unwrap());
    } else {
        print_table(&report);
    }
}

/// The median of three runs of `f` (given the run's number).
fn median3(mut f: impl FnMut(usize) -> f64) -> f64 {
    let mut v: Vec<f64> = (0..3).map(&mut f).collect();
    v.sort_by(f64::total_cmp);
    v[1]
}

/// One thread keeping up to 4096 single-event appends in flight.
fn never_single(dir: &Path, events: u64) -> f64 {
    let log = Log::open(dir, LogConfig { sync: Sync::Never, ..LogConfig::default() }).unwrap();
    let start = Instant::now();
    let mut inflight = VecDeque::new();
    for i in 0..events {
        inflight.push_back(log.submit(Batch::from_payloads([&event(i)[..]])).unwrap());
        if inflight.len() >= 4096 {
            inflight.pop_front().unwrap().wait().unwrap();
        }
    }
    for p in inflight {
        p.wait().unwrap();
    }
    events as f64 / start.elapsed().as_secs_f64()
}

/// One thread appending batches of 1000 events.
fn never_batched(dir: &Path, events: u64) -> f64 {
    let log = Log::open(dir, LogConfig { sync: Sync::Never, ..LogConfig::default() }).unwrap();
    let start = Instant::now();
    let mut batch = Batch::new();
    for i in 0..events {
        batch.push(&event(i));
        if batch.len() == 1000 {
            log.append_batch(std::mem::take(&mut batch)).unwrap();
        }
    }
    if !batch.is_empty() {
        log.append_batch(batch).unwrap();
    }
    events as f64 / start.elapsed().as_secs_f64()
}

fn row(scenario: &str, value: f64, unit: &'static str, limit_name: &'static str, limit: f64) -> Row {
    Row { scenario: scenario.to_string(), value, unit, limit_name, limit, fraction_of_limit: value / limit }
}

fn child_write(dir: &Path, mib: u64) {
    let log = Log::open(dir, LogConfig { sync: Sync::Never, ..LogConfig::default() }).unwrap();
    let target = mib << 20;
    let mut i = 0u64;
    let mut announced = false;
    loop {
        let mut batch = Batch::new();
        for _ in 0..1000 {
            batch.push(&event(i));
            i += 1;
        }
        log.append_batch(batch).unwrap();
        if !announced && log.segments().iter().map(|s| s.published_bytes).sum::<u64>() >= target {
            println!("ready");
            announced = true;
        }
    }
}

fn human(v: f64, unit: &str) -> String {
    match unit {
        "bytes/s" => format!("{:.2} GB/s", v / 1e9),
        "events/s" if v < 1e5 => format!("{:.1} k/s", v / 1e3),
        "events/s" => format!("{:.2} M/s", v / 1e6),
        "s" => format!("{v:.3} s"),
        _ => format!("{v:.3} {unit}"),
    }
}

fn print_table(r: &Report) {
    let m = &r.machine;
    println!("machine: {} cpus", m.cpus);
    println!("  sequential write + fsync   {:>10.2} GB/s", m.write_bandwidth_bytes_per_s / 1e9);
    println!("  fsync 4 KiB p50 / p99      {:>10.0} / {:.0} µs", m.fsync_latency_p50_us, m.fsync_latency_p99_us);
    println!("  memory read, one core      {:>10.2} GB/s", m.memory_read_bytes_per_s / 1e9);
    println!("  CRC32 bulk, one core       {:>10.2} GB/s", m.crc32_bytes_per_s / 1e9);
    println!("  CRC32 per 124 B frame      {:>10.2} GB/s", m.crc32_124b_frames_bytes_per_s / 1e9);
    match m.cold_read_bytes_per_s {
        Some(r) => println!("  sequential read, cold      {:>10.2} GB/s", r / 1e9),
        None => println!("  sequential read, cold      (cannot drop the page cache: not measured)"),
    }
    println!();
    println!("{:<58} {:>12} {:>12} {:>9}  limit", "scenario", "measured", "limit", "fraction");
    for row in &r.rows {
        println!(
            "{:<58} {:>12} {:>12} {:>8.0}%  {}",
            row.scenario,
            human(row.value, row.unit),
            human(row.limit, row.unit),
            row.fraction_of_limit * 100.0,
            row.limit_name
        );
    }
}
