//! kill -9 with real processes (run as `harness = false`).
//!
//! The test binary re-runs itself as a child that appends from four threads
//! with `Sync::EveryBatch` (atomic batches of 1 to 4 events, small segments
//! so that it seals and rolls often) and prints every acknowledged batch.
//! The parent SIGKILLs it at a random moment, reopens the log and checks:
//! every acknowledged batch is there with the right bytes, sequence numbers
//! have no gap, every batch is whole (all or nothing), and `verify` passes.
//! Rounds share one directory, so later rounds recover what earlier kills
//! left behind.
//!
//! Every round kills only after the first acknowledgement (then at a random
//! moment), so each round has claims to check; the files recovery says it
//! removed are checked gone on disk, and nothing unlisted is left.
//!
//! `JOBLOG_KILL9_ROUNDS` (default 50) and `JOBLOG_KILL9_SEED` (default: from
//! the clock, printed) control a run; the seed decides the kill moments and
//! the children's batches.

mod support;

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use joblog::log::{Batch, Log, LogConfig};
use support::{assert_cleaned_up, run_and_kill_after_ack, seed_and_rounds, Rng};

const CHILD_ENV: &str = "JOBLOG_KILL9_CHILD";
const THREADS: u64 = 4;
const SEGMENT_BYTES: u64 = 64 << 10;

fn config() -> LogConfig {
    LogConfig { segment_size_bytes: SEGMENT_BYTES, ..LogConfig::default() }
}

/// The payload of event `i` of `n` in batch `batch` of `thread` in `round`.
fn payload(round: u64, thread: u64, batch: u64, i: u64, n: u64) -> Vec<u8> {
    let head = format!("r{round} t{thread} b{batch} {i}/{n} ");
    let fill = (round * 31 + thread * 7 + batch * 3 + i) % 200;
    let mut p = head.into_bytes();
    p.extend(std::iter::repeat_n(b'a' + (batch % 26) as u8, fill as usize));
    p
}

fn child(dir: &Path, round: u64, seed: u64) {
    // Every other round opens as the engine does, trusting the mark the
    // parent's clean close left (`log/closed.rs`) instead of scanning.
    let log =
        Log::open(dir, LogConfig { verify_on_open: round.is_multiple_of(2), ..config() }).expect("child opens the log");
    let out = std::sync::Mutex::new(std::io::stdout());
    std::thread::scope(|s| {
        for thread in 0..THREADS {
            let (log, out) = (&log, &out);
            s.spawn(move || {
                let mut rng = Rng::with_seed(seed ^ (round * 1000 + thread));
                for batch in 0.. {
                    let n = 1 + rng.u64(..4);
                    let payloads: Vec<Vec<u8>> = (0..n).map(|i| payload(round, thread, batch, i, n)).collect();
                    let seqs = log.append_batch(Batch::from_payloads(payloads.iter().map(Vec::as_slice))).unwrap().seqs;
                    let mut out = out.lock().unwrap();
                    writeln!(out, "ack {} {n} {thread} {batch}", seqs.start).unwrap();
                    out.flush().unwrap();
                }
            });
        }
    });
}

struct Ack {
    first_seq: u64,
    n: u64,
    round: u64,
    thread: u64,
    batch: u64,
}

/// Checks the log after a kill: everything from `from_seq` (where the
/// previous check ended, a batch boundary) record by record, the acks of
/// this round, and every checksum of the whole log. Returns the sequence
/// number after the last record and the torn bytes recovery dropped.
fn check(dir: &Path, from_seq: u64, acks: &[Ack]) -> (u64, u64) {
    // An open that trusts a mark of a clean close, where one is left (the
    // child may have died before its open consumed it), sees exactly what a
    // scan sees: a kill never leaves a mark that hides a record.
    let trusting = Log::open(dir, LogConfig { read_only: true, verify_on_open: false, ..config() })
        .unwrap_or_else(|e| panic!("read-only reopen after kill failed: {e}"));
    let trusted_end = trusting.next_seq();
    drop(trusting);
    let log = Log::open(dir, config()).unwrap_or_else(|e| panic!("reopen after kill failed: {e}"));
    assert_eq!(trusted_end, log.next_seq(), "an open trusting the mark ends elsewhere than a scan");
    let torn = log.recovery().torn_bytes_dropped;
    assert_cleaned_up(&log);
    let mut records: HashMap<u64, Vec<u8>> = HashMap::new();
    let mut open_batch: Option<(String, u64, u64)> = None; // (batch id, next i, n)
    let mut end = from_seq;
    for (expected_seq, r) in (from_seq..).zip(log.iter_from(from_seq)) {
        let r = r.unwrap_or_else(|e| panic!("reading after kill failed: {e}"));
        assert_eq!(r.seq(), expected_seq, "gap in sequence numbers");
        let text = String::from_utf8_lossy(r.payload()).into_owned();
        let mut parts = text.split(' ');
        let id = format!("{} {} {}", parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
        let (i, n) = parts.next().unwrap().split_once('/').unwrap();
        let (i, n): (u64, u64) = (i.parse().unwrap(), n.parse().unwrap());
        match open_batch.take() {
            Some((open_id, want_i, want_n)) => {
                assert_eq!(
                    (open_id.as_str(), want_i, want_n),
                    (id.as_str(), i, n),
                    "batch interleaved or torn at seq {}",
                    r.seq()
                );
            }
            None => assert_eq!(i, 0, "batch starts in its middle at seq {}", r.seq()),
        }
        if i + 1 < n {
            open_batch = Some((id, i + 1, n));
        }
        records.insert(r.seq(), r.payload().to_vec());
        end = r.seq() + 1;
    }
    assert!(open_batch.is_none(), "the log ends inside an atomic batch");
    for a in acks {
        for i in 0..a.n {
            let got = records.get(&(a.first_seq + i));
            let want = payload(a.round, a.thread, a.batch, i, a.n);
            assert_eq!(got, Some(&want), "acknowledged event {} (round {}) lost or wrong", a.first_seq + i, a.round);
        }
    }
    let report = log.verify().unwrap();
    assert!(report.ok(), "verify after kill: {:?}", report.problems);
    (end, torn)
}

fn main() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        let round = std::env::var("JOBLOG_KILL9_ROUND").unwrap().parse().unwrap();
        let seed = std::env::var("JOBLOG_KILL9_CHILD_SEED").unwrap().parse().unwrap();
        child(Path::new(&dir), round, seed);
        return;
    }
    let (seed, rounds) = seed_and_rounds("kill9", "JOBLOG_KILL9_SEED", "JOBLOG_KILL9_ROUNDS", 50);
    let mut rng = Rng::with_seed(seed);
    let dir = tempfile::tempdir().unwrap();
    let (mut acked_batches, mut torn_rounds, mut end) = (0, 0, 1);
    let started = Instant::now();
    for round in 0..rounds {
        // Kill points from the first instant (during open and recovery) to
        // well into steady appending.
        let env = [
            (CHILD_ENV, dir.path().display().to_string()),
            ("JOBLOG_KILL9_ROUND", round.to_string()),
            ("JOBLOG_KILL9_CHILD_SEED", seed.to_string()),
        ];
        let lines = run_and_kill_after_ack(&env, "ack ", Duration::from_micros(rng.u64(..120_000)));
        let mut acks = Vec::new();
        for line in lines {
            let f: Vec<&str> = line.split(' ').collect();
            if f.len() == 5 && f[0] == "ack" {
                let num = |i: usize| f[i].parse::<u64>().unwrap();
                acks.push(Ack { first_seq: num(1), n: num(2), round, thread: num(3), batch: num(4) });
            }
        }
        assert!(!acks.is_empty(), "round {round}: no acknowledgement to check");
        let (new_end, torn) = check(dir.path(), end, &acks);
        assert!(new_end >= end, "the log lost records that an earlier round saw");
        end = new_end;
        acked_batches += acks.len();
        torn_rounds += u64::from(torn > 0);
    }
    println!(
        "kill9: {rounds} kills, {} acknowledged batches all present, {} events, {torn_rounds} rounds recovered a torn tail, {:.1}s",
        acked_batches,
        end - 1,
        started.elapsed().as_secs_f64()
    );
    println!("1 passed, 0 failed");
}
