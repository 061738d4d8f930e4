//! Power cuts, not just kill -9 (run as `harness = false`).
//!
//! kill -9 leaves the page cache intact: a log that never synced would pass
//! every kill campaign. This harness really loses what was not made durable.
//! It makes an ext4 image on a loop device (`truncate`, `mkfs.ext4 -q`,
//! `mount -o loop`), keeps two stores inside it, and for each cut runs one
//! of two children against them:
//!
//! * **binary**: the real `joblog run` serving, while a driver thread of the
//!   parent issues client `joblog` commands through it (submits,
//!   cancel/pause/resume/postpone, imports, `bulk-delete now`, `compact`);
//!   a command counts as acknowledged once it exited 0;
//! * **bare log**: this test binary re-executed as a child that appends
//!   atomic batches with `joblog::log::Log` (`Sync::EveryBatch`, 64 KiB
//!   segments so that it rolls often) from two threads, compacts away the
//!   batches it marked for dropping, and prints `ack ...` on a pipe only
//!   after `append_batch` returned.
//!
//! Either way an acknowledgement is a claim only if the parent saw it
//! before it began the cut: a success that arrives later may come from a
//! sync that straddled the cut, which ext4's shutdown can let return 0
//! with its data lost (see [`bare_claims`]); a real power cut leaves no
//! process to report it.
//!
//! At a random moment (or when the child announces that it reached a crash
//! point armed with `JOBLOG_CRASHPOINT=roll|manifest|install|checkpoint`,
//! see `src/crashpoint.rs`) the parent cuts the power:
//! `ioctl(mountpoint, EXT4_IOC_SHUTDOWN, EXT4_GOING_FLAGS_NOLOGFLUSH)`: the
//! file system stops at once and nothing unsynced reaches the disk. Then it
//! SIGKILLs the child, unmounts, remounts (the journal replays as after a
//! reboot), reopens and checks: every acknowledged event is present and
//! whole; nothing was invented (every job and record found is one the
//! harness sent, byte for byte); atomic batches are whole; what a check saw
//! stays; a compaction cut short is all or nothing; opening from the
//! checkpoint equals a full replay (the store copied without `snapshots/`);
//! `joblog verify` passes; no temporary or unlisted file is left.
//!
//! **Hard guard**: [`guard`] refuses to cut anything but an ext4 mounted from
//! `/dev/loopN` (device major 7); the machine's own root is ext4 too.
//!
//! **Negative control**: the same harness with `Sync::Never` (bare log) and
//! `joblog run --sync never` must detect loss; the test fails if it does not,
//! so the harness can never silently stop working.
//!
//! Skipped, saying so on stderr (`SKIPPED: ...`), where the loop device,
//! `mount` or the ioctl are unavailable (not root, a container).
//! `JOBLOG_POWERCUT_CUTS` (default 30), `JOBLOG_POWERCUT_CONTROL_CUTS`
//! (default 10: the joblog side misses loss in about 1 cut of 6, so 5
//! of its cuts make a false alarm unlikely, ~1e-4) and `JOBLOG_POWERCUT_SEED` (default: the clock, printed)
//! control a run; the seed decides every choice of the harness and of its
//! children (what to write, when and where to cut). `JOBLOG_BIN` overrides
//! where the `joblog` binary is (default: next to this test's directory,
//! `target/release/joblog`; `cargo test --workspace` builds it).

mod support;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use joblog::domain::{Action, OperationType, SystemClock, Timestamp, MICROS_PER_DAY};
use joblog::engine::{Config, Engine};
use joblog::log::{Batch, Log, LogConfig, Position, Sync};
use joblog::projection::query::{Filter, Visibility};
use support::{seed_and_rounds, Rng};
use uuid::Uuid;

const CHILD_ENV: &str = "JOBLOG_POWERCUT_CHILD";
const SEGMENT_BYTES: u64 = 64 << 10;
const IMAGE_BYTES: u64 = 768 << 20;
/// `EXT4_IOC_SHUTDOWN` = `_IOR('X', 125, __u32)`.
const EXT4_IOC_SHUTDOWN: u64 = 0x8004_587D;
/// `EXT4_GOING_FLAGS_NOLOGFLUSH`: stop now, flush neither data nor journal.
const EXT4_GOING_FLAGS_NOLOGFLUSH: u32 = 2;
const LOOP_MAJOR: u64 = 7;

// ---------------------------------------------------------------------------
// The guard and the cut
// ---------------------------------------------------------------------------

fn major(dev: u64) -> u64 {
    ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff)
}

/// Refuses (with the reason) unless `mnt` is the mount point of an ext4
/// file system whose source is `/dev/loopN` and whose device's major number
/// is 7 (a loop device), per `/proc/self/mountinfo` and `stat`. Returns the
/// device number the cut must find on the file it opens.
fn guard(mnt: &Path) -> Result<u64, String> {
    let mnt = mnt.canonicalize().map_err(|e| format!("{}: {e}", mnt.display()))?;
    let want = mnt.to_str().ok_or("mount point is not UTF-8")?;
    if want.contains([' ', '\t', '\n', '\\']) {
        return Err(format!("{want}: refusing a mount point that mountinfo would escape"));
    }
    let info = fs::read_to_string("/proc/self/mountinfo").map_err(|e| format!("mountinfo: {e}"))?;
    // The last entry for that point is the one in force (mounts stack).
    let line = info
        .lines()
        .rfind(|l| l.split(' ').nth(4) == Some(want))
        .ok_or_else(|| format!("{want} is not a mount point"))?;
    let f: Vec<&str> = line.split(' ').collect();
    let dash = f.iter().position(|x| *x == "-").ok_or("mountinfo line without separator")?;
    let (majmin, fstype, source) = (f[2], f.get(dash + 1).copied(), f.get(dash + 2).copied());
    if fstype != Some("ext4") {
        return Err(format!("{want} is {fstype:?}, not ext4"));
    }
    let source = source.unwrap_or_default();
    let n = source.strip_prefix("/dev/loop").unwrap_or_default();
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{want} is mounted from {source:?}, not /dev/loopN"));
    }
    if majmin.split(':').next() != Some("7") {
        return Err(format!("{want}: device {majmin} is not a loop device (major 7)"));
    }
    let dev = fs::metadata(&mnt).map_err(|e| e.to_string())?.dev();
    let rdev = fs::metadata(source).map_err(|e| format!("{source}: {e}"))?.rdev();
    if major(dev) != LOOP_MAJOR || dev != rdev {
        return Err(format!("{want}: st_dev {dev:#x} is not {source} ({rdev:#x}), major 7"));
    }
    Ok(dev)
}

/// Cuts the power of the file system mounted at `mnt`: everything not yet
/// synced is lost. Guarded: aborts the harness unless [`guard`] accepts.
fn cut_power(mnt: &Path) -> Result<(), String> {
    let dev = guard(mnt).unwrap_or_else(|e| panic!("REFUSING to cut power: {e}"));
    let dir = fs::File::open(mnt).map_err(|e| format!("{}: {e}", mnt.display()))?;
    let opened = dir.metadata().map_err(|e| e.to_string())?.dev();
    assert_eq!(opened, dev, "REFUSING to cut power: {} changed under the guard", mnt.display());
    let flags: u32 = EXT4_GOING_FLAGS_NOLOGFLUSH;
    use std::os::fd::AsRawFd;
    // SAFETY: `dir` is an open descriptor for the guarded mount point, and
    // EXT4_IOC_SHUTDOWN reads one u32 through the pointer, which points to
    // `flags`, alive for the call. (The one `unsafe` outside src/sys/:
    // test-only, the harness's reason to exist; std offers no ioctl. Allowed
    // here alone against the crate's `unsafe_code = "deny"`, Cargo.toml.)
    #[allow(unsafe_code)]
    let rc = unsafe { libc::ioctl(dir.as_raw_fd(), EXT4_IOC_SHUTDOWN as _, &flags as *const u32) };
    if rc != 0 {
        return Err(format!("EXT4_IOC_SHUTDOWN: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// The guard's own test: it refuses `/`, a tmpfs and things that are not
/// mount points. Runs first, every time, root or not.
fn guard_refuses_everything_else() {
    for p in ["/", "/proc", "/dev/shm", "/tmp", "/nonexistent"] {
        if let Ok(dev) = guard(Path::new(p)) {
            panic!("the guard accepted {p} (dev {dev:#x})");
        }
    }
    println!("powercut: the guard refuses /, /proc, /dev/shm, /tmp and a missing path");
}

// ---------------------------------------------------------------------------
// The loop device
// ---------------------------------------------------------------------------

struct LoopDisk {
    _tmp: tempfile::TempDir,
    img: PathBuf,
    mnt: PathBuf,
    mounted: bool,
}

fn sh(cmd: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(cmd).args(args).stdin(Stdio::null()).output().map_err(|e| format!("{cmd}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{cmd} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

impl LoopDisk {
    /// An ext4 image mounted through a loop device, or why not (the caller
    /// skips, saying so). Also proves that a cut loses an unsynced write and
    /// keeps a synced one, so a kernel that ignores the ioctl is caught.
    fn create() -> Result<Self, String> {
        let uid = fs::metadata("/proc/self").map_err(|e| e.to_string())?.uid();
        if uid != 0 {
            return Err(format!("not root (uid {uid}): loop devices and mount need root"));
        }
        if !Path::new("/dev/loop-control").exists() {
            return Err("no /dev/loop-control: loop devices unavailable".into());
        }
        let tmp = tempfile::Builder::new().prefix("joblog-pc").tempdir_in("/tmp").map_err(|e| e.to_string())?;
        let img = tmp.path().join("disk.img");
        let mnt = tmp.path().join("mnt");
        fs::create_dir(&mnt).map_err(|e| e.to_string())?;
        fs::File::create(&img).and_then(|f| f.set_len(IMAGE_BYTES)).map_err(|e| format!("truncate: {e}"))?;
        sh("mkfs.ext4", &["-q", "-F", img.to_str().unwrap()])?;
        let mut disk = Self { _tmp: tmp, img, mnt, mounted: false };
        disk.mount()?;
        guard(&disk.mnt).map_err(|e| format!("the loop mount does not pass the guard: {e}"))?;
        // Probe: a synced file survives a cut, an unsynced one does not.
        let (kept, lost) = (disk.mnt.join("probe-synced"), disk.mnt.join("probe-unsynced"));
        fs::File::create(&kept).and_then(|mut f| f.write_all(b"kept").and_then(|()| f.sync_all())).unwrap();
        fs::File::open(&disk.mnt).and_then(|d| d.sync_all()).unwrap();
        fs::write(&lost, b"lost").unwrap();
        cut_power(&disk.mnt).map_err(|e| format!("the shutdown ioctl is unavailable: {e}"))?;
        disk.remount()?;
        if fs::read(&kept).ok().as_deref() != Some(b"kept") {
            return Err("a synced file did not survive a cut: this kernel's shutdown ioctl is unusable".into());
        }
        if lost.exists() {
            return Err("an unsynced file survived a cut: the ioctl did not cut the power".into());
        }
        fs::remove_file(&kept).unwrap();
        Ok(disk)
    }

    fn mount(&mut self) -> Result<(), String> {
        sh("mount", &["-o", "loop", self.img.to_str().unwrap(), self.mnt.to_str().unwrap()])
            .map_err(|e| format!("mount -o loop: {e}"))?;
        self.mounted = true;
        Ok(())
    }

    /// Unmounts (the file system is shut down: nothing more reaches the
    /// disk) and mounts again: the journal replays as after a reboot.
    fn remount(&mut self) -> Result<(), String> {
        let mnt = self.mnt.to_str().unwrap().to_string();
        let mut tries = 0;
        while let Err(e) = sh("umount", &[&mnt]) {
            tries += 1;
            if tries > 100 {
                return Err(format!("cannot unmount after a cut: {e}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.mounted = false;
        self.mount()
    }
}

impl Drop for LoopDisk {
    fn drop(&mut self) {
        if self.mounted {
            let mnt = self.mnt.to_str().unwrap();
            if sh("umount", &[mnt]).is_err() {
                let _ = sh("umount", &["-l", mnt]);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Counts and violations
// ---------------------------------------------------------------------------

#[derive(Default, Debug)]
struct Counts {
    cuts: u64,
    bare_cuts: u64,
    binary_cuts: u64,
    crashpoint_cuts: BTreeMap<&'static str, u64>,
    acked_events_checked: u64,
    acked_jobs_checked: u64,
    acked_actions_checked: u64,
    seen_records_rechecked: u64,
    torn_tails_cut: u64,
    /// Bare log: records acknowledged after the cut began (no claim), and
    /// how many of them were missing after it.
    late_acks: u64,
    late_acks_lost: u64,
    compactions_complete: u64,
    compactions_absent: u64,
    checkpoint_comparisons: u64,
    rounds_without_checkpoint: u64,
    /// Reopens that found cold segments (a freeze had been installed).
    reopens_with_cold_segments: u64,
    deleted_jobs_checked: u64,
    verify_runs: u64,
    /// At the end: distinct acknowledged jobs and actions of the binary.
    distinct_acked_jobs: u64,
    distinct_acked_actions: u64,
    distinct_deleted_jobs: u64,
}

/// What one cut broke (empty: every promise held).
type Violations = Vec<String>;

// ---------------------------------------------------------------------------
// Child (b): the bare log
// ---------------------------------------------------------------------------

/// Small segments roll often. The negative control (`Sync::Never`) takes
/// 4 MiB ones and compacts rarely: sealing syncs in every mode, so a control
/// that rolled every millisecond would leave almost nothing unsynced.
fn log_config(sync: Sync) -> LogConfig {
    let segment_size_bytes = if sync == Sync::Never { 4 << 20 } else { SEGMENT_BYTES };
    LogConfig { segment_size_bytes, sync, ..LogConfig::default() }
}

/// Payload `i` of `n` of batch `batch` of `thread` in `round`; `drop` marks
/// a batch the child will compact away. The parent recomputes every payload
/// it finds from its header: anything else was invented or garbled.
fn payload(round: u64, thread: u64, batch: u64, i: u64, n: u64, drop: bool) -> Vec<u8> {
    let head = format!("r{round} t{thread} b{batch} {i}/{n} {} ", if drop { 'd' } else { 'k' });
    let fill = (round * 31 + thread * 7 + batch * 3 + i) % 300;
    let mut p = head.into_bytes();
    p.extend(std::iter::repeat_n(b'a' + ((batch + i) % 26) as u8, fill as usize));
    p
}

/// Parses a payload's header: (round, thread, batch, i, n, drop).
fn parse_payload(p: &[u8]) -> Option<(u64, u64, u64, u64, u64, bool)> {
    let text = std::str::from_utf8(p).ok()?;
    let mut f = text.split(' ');
    let num = |s: Option<&str>, c: char| s?.strip_prefix(c)?.parse::<u64>().ok();
    let (round, thread, batch) = (num(f.next(), 'r')?, num(f.next(), 't')?, num(f.next(), 'b')?);
    let (i, n) = f.next()?.split_once('/')?;
    let drop = match f.next()? {
        "d" => true,
        "k" => false,
        _ => return None,
    };
    Some((round, thread, batch, i.parse().ok()?, n.parse().ok()?, drop))
}

fn bare_child(dir: &Path, seed: u64, round: u64, sync: Sync) {
    let log = match Log::open(dir, log_config(sync)) {
        Ok(log) => log,
        Err(e) => {
            eprintln!("child: open failed: {e}");
            std::process::exit(3);
        }
    };
    let out = Mutex::new(std::io::stdout());
    let say = |line: String| {
        let mut o = out.lock().unwrap();
        writeln!(o, "{line}").unwrap();
        o.flush().unwrap();
    };
    say("opened".to_string());
    std::thread::scope(|s| {
        for thread in 0..2u64 {
            let (log, say) = (&log, &say);
            s.spawn(move || {
                let mut rng = Rng::with_seed(seed ^ (round << 8) ^ thread);
                // Thread 0 also drops: positions of its acknowledged
                // "drop" batches, compacted every few batches.
                let mut to_drop: Vec<(u64, Position)> = Vec::new();
                for batch in 0.. {
                    let n = 1 + rng.u64(..4);
                    let drop = thread == 0 && rng.u64(..3) == 0;
                    let payloads: Vec<Vec<u8>> = (0..n).map(|i| payload(round, thread, batch, i, n, drop)).collect();
                    let done = log.append_batch(Batch::from_payloads(payloads.iter().map(Vec::as_slice)));
                    let Ok(done) = done else { return };
                    say(format!("ack {} {n} {thread} {batch} {}", done.seqs.start, u8::from(drop)));
                    if drop {
                        let mut pos = done.first;
                        for (k, p) in payloads.iter().enumerate() {
                            to_drop.push((done.seqs.start + k as u64, pos));
                            pos = pos.after(p.len());
                        }
                    }
                    let every = if sync == Sync::Never { 4096 } else { 24 };
                    if thread == 0 && batch % every == every - 1 && !to_drop.is_empty() {
                        let mut plan: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
                        for (_, p) in &to_drop {
                            plan.entry(p.segment).or_default().push(p.offset);
                        }
                        let seqs: Vec<String> = to_drop.iter().map(|(s, _)| s.to_string()).collect();
                        say(format!("cbegin {}", seqs.join(",")));
                        let Ok(rewrite) = log.rewrite(&plan) else { return };
                        if log.install(rewrite).is_err() {
                            return;
                        }
                        say("cend".to_string());
                        to_drop.clear();
                    }
                }
            });
        }
    });
}

/// What the bare-log child's stdout lines claim (see [`bare_claims`]).
#[derive(Default, Debug, PartialEq)]
struct BareClaims {
    /// Acknowledged records, by sequence number: they must be there.
    acked: BTreeMap<u64, Vec<u8>>,
    /// Sequence numbers of compactions that finished (`cend`) before the
    /// cut: gone for good.
    dropped: Vec<u64>,
    /// Plans of compactions begun (`cbegin`) but not known finished before
    /// the cut: each must be found all or nothing.
    in_flight: Vec<Vec<u64>>,
    /// Records acknowledged after the cut began: no claim.
    late: BTreeMap<u64, Vec<u8>>,
}

/// Reads the child's lines; `before_cut` of them were read by the parent
/// before it began the cut. Only those are claims, with or without a sync:
/// a success that comes after the cut began proves nothing, since its
/// sync may have straddled the cut. On ext4 a sync (there, msync(MS_SYNC)) that is under
/// way when `EXT4_IOC_SHUTDOWN` lands can return 0 while its data, written
/// into preallocated (unwritten) extents, is lost: the extent conversion at
/// I/O completion fails on the shut-down journal and nothing reports it.
/// (Seen on this harness's kernel: a probe syncing 4 KiB records into a
/// fallocated, mapped file lost the last acknowledged record in 5 cuts of
/// 40, every time from a sync begun before the shutdown ioctl and
/// returned after it.) A real power cut leaves no process to print such a
/// success. A line read before the cut was printed after `append_batch`
/// (or `install`) returned, so before the cut began: its sync was done.
/// A `cbegin` counts wherever it is: it only says what may vanish.
fn bare_claims(lines: &[String], before_cut: usize, round: u64) -> BareClaims {
    let mut c = BareClaims::default();
    // Plans begun; a `cend` read before the cut finishes the last one.
    for (k, line) in lines.iter().enumerate() {
        let timely = k < before_cut;
        let f: Vec<&str> = line.split(' ').collect();
        if f[0] == "ack" && f.len() == 6 {
            let num = |i: usize| f[i].parse::<u64>().unwrap();
            let (first, n, thread, batch, drop) = (num(1), num(2), num(3), num(4), num(5) == 1);
            let into = if timely { &mut c.acked } else { &mut c.late };
            for i in 0..n {
                into.insert(first + i, payload(round, thread, batch, i, n, drop));
            }
        } else if f[0] == "cbegin" {
            c.in_flight.push(f[1].split(',').map(|s| s.parse().unwrap()).collect());
        } else if f[0] == "cend" && timely {
            let done = c.in_flight.pop().expect("cend without cbegin");
            for s in &done {
                c.acked.remove(s);
            }
            c.dropped.extend(done);
        }
    }
    c
}

/// [`bare_claims`]' own test: an acknowledgement or a compaction's end read
/// after the cut began is no claim. Runs first, every time.
fn late_lines_are_no_claims() {
    let lines: Vec<String> = ["opened", "ack 1 2 0 0 1", "ack 3 1 1 0 0", "cbegin 1,2", "cend", "ack 4 1 1 1 0"]
        .into_iter()
        .chain(["cbegin 4", "ack 5 3 0 2 0", "cend", "ack 8 1 1 2 0"])
        .map(String::from)
        .collect();
    let c = bare_claims(&lines, 6, 7);
    let p = |t, b, i, n, d| payload(7, t, b, i, n, d);
    assert_eq!(c.acked, BTreeMap::from([(3, p(1, 0, 0, 1, false)), (4, p(1, 1, 0, 1, false))]));
    assert_eq!(c.dropped, vec![1, 2]);
    assert_eq!(c.in_flight, vec![vec![4]]);
    assert_eq!(c.late.keys().copied().collect::<Vec<_>>(), vec![5, 6, 7, 8]);
    println!("powercut: acknowledgements read after the cut began are no claims");
}

/// What the parent knows of the bare log across cuts.
#[derive(Default)]
struct BareModel {
    /// Records that must be there, byte for byte: acknowledged, or seen by
    /// an earlier check (read after a remount, so on disk).
    expected: BTreeMap<u64, Vec<u8>>,
    /// Sequence numbers a finished compaction dropped: gone for good.
    dropped: BTreeSet<u64>,
}

#[allow(clippy::too_many_arguments)]
fn run_bare_cut(
    disk: &mut LoopDisk,
    model: &mut BareModel,
    rng: &mut Rng,
    seed: u64,
    round: u64,
    sync: Sync,
    point: Option<String>,
    counts: &mut Counts,
) -> Violations {
    let dir = disk.mnt.join("bare");
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.env(CHILD_ENV, &dir)
        .env("JOBLOG_POWERCUT_ROUND", round.to_string())
        .env("JOBLOG_POWERCUT_CHILD_SEED", seed.to_string())
        .env("JOBLOG_POWERCUT_SYNC", if sync == Sync::Never { "never" } else { "every-batch" })
        .env_remove(CRASHPOINT_ENV)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(p) = &point {
        cmd.env(CRASHPOINT_ENV, p);
    }
    let mut child = cmd.spawn().unwrap();
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let stdout = child.stdout.take().unwrap();
    let reader = {
        let lines = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                lines.lock().unwrap().push(line);
            }
        })
    };
    let announced = watch_stderr(child.stderr.take().unwrap(), "child");
    let mut v = Violations::new();
    let cut_wait = match &point {
        Some(p) => wait_for_point(&announced, p, &mut v),
        None => {
            if sync == Sync::Never {
                // The control cuts right after an acknowledgement: what a
                // sync would have saved is then surely in flight.
                wait_for_acks(&lines, 20 + rng.u64(..2000) as usize, Duration::from_secs(20));
            } else {
                // One cut in eight from the start (during open and
                // recovery); the others once the child has opened the log,
                // which takes longer as the log grows.
                if rng.u64(..8) != 0 {
                    let t = Instant::now();
                    while !lines.lock().unwrap().iter().any(|l| l == "opened") && t.elapsed() < Duration::from_secs(60)
                    {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
                std::thread::sleep(Duration::from_micros(rng.u64(..900_000)));
            }
            true
        }
    };
    let _ = cut_wait;
    let before_cut = lines.lock().unwrap().len();
    cut_power(&disk.mnt).unwrap_or_else(|e| panic!("cut failed: {e}"));
    kill(&mut child);
    reader.join().unwrap();
    let lines = std::mem::take(&mut *lines.lock().unwrap());
    disk.remount().unwrap_or_else(|e| panic!("{e}"));

    // The child's claims: only the lines read before the cut began.
    let claims = bare_claims(&lines, before_cut, round);
    let mut acked = claims.acked;
    for s in claims.dropped {
        model.dropped.insert(s);
        model.expected.remove(&s);
        acked.remove(&s);
    }
    let in_flight = claims.in_flight;
    // Reopen and read everything.
    let log = match Log::open(&dir, log_config(Sync::EveryBatch)) {
        Ok(log) => log,
        Err(e) => {
            v.push(format!("bare log: reopen after the cut failed: {e}"));
            return v;
        }
    };
    counts.torn_tails_cut += u64::from(log.recovery().torn_bytes_dropped > 0);
    let mut found: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut open_batch: Option<(u64, u64, u64, u64, u64)> = None; // round thread batch next_i n
    for r in log.iter_from(1) {
        let r = match r {
            Ok(r) => r,
            Err(e) => {
                v.push(format!("bare log: reading after the cut failed: {e}"));
                break;
            }
        };
        let p = r.payload().to_vec();
        let Some((pr, pt, pb, i, n, drop)) = parse_payload(&p) else {
            v.push(format!("bare log: seq {} holds a record the harness never wrote", r.seq()));
            continue;
        };
        if p != payload(pr, pt, pb, i, n, drop) {
            v.push(format!("bare log: seq {} is garbled", r.seq()));
        }
        if model.dropped.contains(&r.seq()) {
            v.push(format!("bare log: seq {} came back after its compaction finished", r.seq()));
        }
        match open_batch.take() {
            Some(b) if (b.0, b.1, b.2, b.3, b.4) == (pr, pt, pb, i, n) => {}
            Some(b) => v.push(format!("bare log: batch r{} t{} b{} torn before seq {}", b.0, b.1, b.2, r.seq())),
            None if i != 0 && !drop => v.push(format!("bare log: seq {} starts a batch in its middle", r.seq())),
            None => {}
        }
        if i + 1 < n {
            open_batch = Some((pr, pt, pb, i + 1, n));
        }
        found.insert(r.seq(), p);
    }
    if let Some(b) = open_batch {
        v.push(format!("bare log: ends inside batch r{} t{} b{}", b.0, b.1, b.2));
    }
    // A compaction cut short: all of its frames or none.
    for plan in in_flight {
        let present = plan.iter().filter(|s| found.contains_key(s)).count();
        if present == 0 {
            counts.compactions_complete += 1;
            for s in plan {
                model.dropped.insert(s);
                model.expected.remove(&s);
                acked.remove(&s);
            }
        } else if present == plan.len() {
            counts.compactions_absent += 1;
        } else {
            v.push(format!("bare log: a compaction cut short kept {present} of its {} frames", plan.len()));
        }
    }
    for (seq, want) in &acked {
        counts.acked_events_checked += 1;
        if found.get(seq) != Some(want) {
            v.push(format!("bare log: acknowledged event {seq} (round {round}) lost or wrong after the cut"));
        }
    }
    // Acknowledgements that came after the cut began: no claim (see
    // `bare_claims`), only counted, with how many of them were lost.
    for (seq, want) in &claims.late {
        counts.late_acks += 1;
        if found.get(seq) != Some(want) && !model.dropped.contains(seq) {
            counts.late_acks_lost += 1;
            println!("powercut: cut {round}: event {seq}, acknowledged after the cut began, is missing (no claim)");
        }
    }
    for (seq, want) in &model.expected {
        if acked.contains_key(seq) {
            continue;
        }
        counts.seen_records_rechecked += 1;
        if found.get(seq) != Some(want) {
            v.push(format!("bare log: event {seq}, on disk at an earlier check, lost or changed"));
        }
    }
    match log.verify() {
        Ok(r) if r.ok() => {}
        Ok(r) => v.push(format!("bare log: verify after the cut: {:?}", r.problems)),
        Err(e) => v.push(format!("bare log: verify failed: {e}")),
    }
    v.extend(leftovers(&dir, &log.segments().iter().map(|s| s.path.clone()).collect::<Vec<_>>()));
    drop(log);
    model.expected = found;
    v
}

/// Files in a log directory that should not be there after opening:
/// temporary files, segment files the log does not list.
fn leftovers(dir: &Path, listed: &[PathBuf]) -> Violations {
    support::leftover_files(dir, listed)
        .into_iter()
        .map(|p| {
            if p.to_string_lossy().ends_with(".tmp") {
                format!("{}: a temporary file left after opening", p.display())
            } else {
                format!("{}: a segment file the log does not list", p.display())
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Child (a): the real `joblog` binary
// ---------------------------------------------------------------------------

/// Where the `joblog` binary is: `JOBLOG_BIN`, or `joblog` in the directory
/// above this test binary's (`target/release/deps/..`). Missing: the test
/// fails, saying how to build it.
fn joblog_bin() -> PathBuf {
    let path = match std::env::var_os("JOBLOG_BIN") {
        Some(p) => PathBuf::from(p),
        None => {
            let exe = std::env::current_exe().unwrap();
            exe.parent().and_then(Path::parent).expect("target/PROFILE/deps/this-test").join("joblog")
        }
    };
    if !path.is_file() {
        panic!(
            "the joblog binary is missing at {}: build it first with `cargo build --release -p joblog-cli --bin \
             joblog` (`cargo test --workspace` builds it), or set JOBLOG_BIN",
            path.display()
        );
    }
    let (bin, me) = (fs::metadata(&path).unwrap(), fs::metadata(std::env::current_exe().unwrap()).unwrap());
    if bin.modified().unwrap() < me.modified().unwrap() {
        eprintln!(
            "powercut: WARNING: {} is older than this test binary; rebuild it if the library changed",
            path.display()
        );
    }
    path
}

/// `joblog`'s crash-point variable (`src/crashpoint.rs`, `ENV`).
const CRASHPOINT_ENV: &str = "JOBLOG_CRASHPOINT";

/// Forwards a child's stderr to ours and reports crash-point announcements.
fn watch_stderr(stderr: std::process::ChildStderr, who: &'static str) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.strip_prefix("joblog-crashpoint: ") {
                let _ = tx.send(rest.split(' ').next().unwrap_or_default().to_string());
            } else {
                eprintln!("powercut {who}: {line}");
            }
        }
    });
    rx
}

/// Waits until the child announces the armed crash point; a point never
/// reached is a violation (a hook went missing).
fn wait_for_point(rx: &mpsc::Receiver<String>, point: &str, v: &mut Violations) -> bool {
    let name = point.split(':').next().unwrap();
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(got) if got == name => {
            std::thread::sleep(Duration::from_millis(2));
            true
        }
        Ok(got) => {
            v.push(format!("crash point {got} announced, {name} armed"));
            false
        }
        Err(_) => {
            v.push(format!("crash point {point} never reached within 60 s"));
            false
        }
    }
}

fn wait_for_acks(lines: &Mutex<Vec<String>>, n: usize, within: Duration) {
    let start = Instant::now();
    while lines.lock().unwrap().iter().filter(|l| l.starts_with("ack")).count() < n && start.elapsed() < within {
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// What the parent knows of the binary's store across cuts.
#[derive(Default)]
struct BinaryModel {
    /// Names of every job the harness asked to submit (acknowledged or not).
    names_sent: HashSet<String>,
    /// Ids of every job in an import the harness sent.
    imports_sent: HashSet<Uuid>,
    /// Acknowledged submits: id → name.
    submitted: BTreeMap<Uuid, String>,
    /// Acknowledged user actions: (job, action).
    actions: Vec<(Uuid, Action)>,
    /// Acknowledged imports: id → (old: deletable, completedon).
    imported: BTreeMap<Uuid, (bool, Timestamp)>,
    /// Old imported jobs an acknowledged `bulk-delete now` took.
    must_be_gone: BTreeSet<Uuid>,
    bulk_deletes_sent: u64,
    imports_files: u64,
}

enum Op {
    Submit,
    Act(Action),
    Import,
    BulkDelete,
    Compact,
}

/// One client command of the driver; `Ok(stdout)` when it exited 0.
fn client(bin: &Path, data: &Path, args: &[String]) -> Result<String, String> {
    let out = Command::new(bin)
        .arg("--data")
        .arg(data)
        .arg("--json")
        .args(args)
        .env_remove("JOBLOG_USER")
        .env_remove(CRASHPOINT_ENV)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// The driver: client commands through the serving `joblog run` until
/// `stop`; records each acknowledgement in `model` only after the command
/// returned success. Returns whether a command that compacts (bulk-delete
/// now, compact) was in flight when it stopped.
#[allow(clippy::too_many_arguments)]
fn drive(
    bin: &Path,
    data: &Path,
    work: &Path,
    model: &Mutex<BinaryModel>,
    rng: &mut Rng,
    round: u64,
    point: Option<&str>,
    stop: &AtomicBool,
    acks: &Mutex<u64>,
    cut: &AtomicBool,
) -> bool {
    // A success seen after the cut began is no claim, with or without a
    // sync: the service's sync may have straddled the cut (`bare_claims`).
    let late = || cut.load(Ordering::SeqCst);
    let now = Timestamp::from_micros(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as i64,
    );
    let mut k = 0u64;
    while !stop.load(Ordering::SeqCst) {
        k += 1;
        // Crash points at compaction, install and checkpoint need deletions:
        // import then delete, over and over.
        let op = match (point.map(|p| p.split(':').next().unwrap()), rng.u64(..20)) {
            (Some("install" | "checkpoint" | "manifest"), r) => match k % 3 {
                1 => Op::Import,
                2 => Op::BulkDelete,
                _ if r < 10 => Op::Submit,
                _ => Op::Compact,
            },
            (_, 0..=7) => Op::Submit,
            (_, 8..=11) => {
                Op::Act([Action::Cancel, Action::Postpone, Action::Pause, Action::Resume][rng.u64(..4) as usize])
            }
            (_, 12..=15) => Op::Import,
            (_, 16..=18) => Op::BulkDelete,
            _ => Op::Compact,
        };
        let compacts = matches!(op, Op::BulkDelete | Op::Compact);
        let result = match op {
            Op::Submit => {
                let name = format!("pc-r{round}-{k}");
                model.lock().unwrap().names_sent.insert(name.clone());
                let mut args = vec!["submit".to_string(), "--name".into(), name.clone()];
                match rng.u64(..3) {
                    0 => args.extend(["--command".into(), "true".into()]),
                    1 => args.extend([
                        "--postpone-until".into(),
                        "2099-01-01T00:00:00Z".into(),
                        "--external-handler".into(),
                    ]),
                    _ => args.push("--external-handler".into()),
                }
                client(bin, data, &args).map(|out| {
                    let v: serde_json::Value = serde_json::from_str(&out).expect("submit prints a job");
                    let id: Uuid = v["asyncoperationid"].as_str().unwrap().parse().unwrap();
                    if !late() {
                        model.lock().unwrap().submitted.insert(id, name);
                    }
                })
            }
            Op::Act(action) => {
                let target = {
                    let m = model.lock().unwrap();
                    let ids: Vec<Uuid> = m.submitted.keys().copied().collect();
                    (!ids.is_empty()).then(|| ids[rng.u64(..ids.len() as u64) as usize])
                };
                let Some(id) = target else { continue };
                let verb = match action {
                    Action::Cancel => "cancel",
                    Action::Postpone => "postpone",
                    Action::Pause => "pause",
                    _ => "resume",
                };
                let mut args = vec![verb.to_string(), id.to_string()];
                if action == Action::Postpone {
                    args.extend(["--until".into(), "2098-01-01T00:00:00Z".into()]);
                }
                client(bin, data, &args).map(|_| {
                    if !late() {
                        model.lock().unwrap().actions.push((id, action));
                    }
                })
            }
            Op::Import => {
                let mut lines = String::new();
                let mut jobs = Vec::new();
                // Rounds that cut at a crash point import in bulk: their
                // checkpoints then freeze Completed jobs (`Config::cold_after`,
                // 4096) into cold segments, and a cut lands in a freeze.
                let n = if point.is_some() { 1500 } else { 6 };
                for i in 0..n {
                    let id = Uuid::from_u64_pair(rng.u64(..), rng.u64(..));
                    let old = i % 2 == 0;
                    let done =
                        Timestamp::from_micros(now.micros() - if old { 400 } else { 1 } * MICROS_PER_DAY - i as i64);
                    let created = Timestamp::from_micros(done.micros() - MICROS_PER_DAY);
                    lines.push_str(
                        &serde_json::json!({
                            "asyncoperationid": id.to_string(), "name": format!("pc-imp-r{round}-{k}-{i}"),
                            "operationtype": 10, "statecode": 3, "statuscode": 30,
                            "createdon": created.to_string(), "completedon": done.to_string(),
                        })
                        .to_string(),
                    );
                    lines.push('\n');
                    jobs.push((id, old, done));
                }
                let file = work.join(format!("import-r{round}-{k}.jsonl"));
                fs::write(&file, lines).unwrap();
                {
                    let mut m = model.lock().unwrap();
                    m.imports_sent.extend(jobs.iter().map(|j| j.0));
                    m.imports_files += 1;
                }
                let r = client(bin, data, &["import".into(), file.display().to_string()]);
                let _ = fs::remove_file(&file);
                r.map(|_| {
                    if !late() {
                        model.lock().unwrap().imported.extend(jobs.iter().map(|&(id, old, d)| (id, (old, d))));
                    }
                })
            }
            Op::BulkDelete => {
                // Every old import acknowledged before this command starts
                // must be gone once it is acknowledged.
                let before: Vec<Uuid> = {
                    let mut m = model.lock().unwrap();
                    m.bulk_deletes_sent += 1;
                    m.imported.iter().filter(|(_, (old, _))| *old).map(|(id, _)| *id).collect()
                };
                let args = ["bulk-delete", "now", "--type", "workflow", "--status", "succeeded", "--older-than", "30"];
                client(bin, data, &args.map(String::from)).map(|_| {
                    if !late() {
                        model.lock().unwrap().must_be_gone.extend(before);
                    }
                })
            }
            Op::Compact => client(bin, data, &["compact".to_string()]).map(|_| ()),
        };
        match result {
            Ok(()) => *acks.lock().unwrap() += 1,
            Err(_) if stop.load(Ordering::SeqCst) => return compacts,
            Err(e) => {
                // Refused (e.g. pause of a job not running): changes nothing.
                if std::env::var_os("JOBLOG_POWERCUT_DEBUG").is_some() {
                    eprintln!("powercut driver: {}", e.trim());
                }
            }
        }
    }
    false
}

#[allow(clippy::too_many_arguments)]
fn run_binary_cut(
    disk: &mut LoopDisk,
    bin: &Path,
    model: &Arc<Mutex<BinaryModel>>,
    rng: &mut Rng,
    round: u64,
    sync: Sync,
    point: Option<String>,
    counts: &mut Counts,
) -> Violations {
    let data = disk.mnt.join("store");
    let work = disk._tmp.path().join("work");
    fs::create_dir_all(&work).unwrap();
    let mut v = Violations::new();
    let mut server = Command::new(bin);
    server
        .arg("--data")
        .arg(&data)
        .args(["--sync", if sync == Sync::Never { "never" } else { "every-batch" }, "run", "--workers", "1"])
        .env_remove("JOBLOG_USER")
        .env_remove(CRASHPOINT_ENV)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(p) = &point {
        server.env(CRASHPOINT_ENV, p);
    }
    // A socket file a cut left behind is not a listening service.
    let socket = data.join("joblog.sock");
    let _ = fs::remove_file(&socket);
    let mut server = server.spawn().unwrap();
    let announced = watch_stderr(server.stderr.take().unwrap(), "joblog run");
    let started = Instant::now();
    while !socket.exists() && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(5));
    }
    if !socket.exists() {
        v.push("joblog run did not listen within 30 s".into());
    }
    let stop = Arc::new(AtomicBool::new(false));
    let cut = Arc::new(AtomicBool::new(false));
    let acks = Arc::new(Mutex::new(0u64));
    let driver = {
        let (bin, data, model, stop, acks, cut) = (
            bin.to_path_buf(),
            data.clone(),
            Arc::clone(model),
            Arc::clone(&stop),
            Arc::clone(&acks),
            Arc::clone(&cut),
        );
        let mut rng = Rng::with_seed(rng.u64(..));
        let point = point.clone();
        std::thread::spawn(move || {
            drive(&bin, &data, &work, &model, &mut rng, round, point.as_deref(), &stop, &acks, &cut)
        })
    };
    match &point {
        Some(p) => {
            wait_for_point(&announced, p, &mut v);
        }
        None => {
            if sync == Sync::Never {
                // The control cuts right after an acknowledgement (see the
                // bare log's).
                let need = 5 + rng.u64(..10);
                let t = Instant::now();
                while *acks.lock().unwrap() < need && t.elapsed() < Duration::from_secs(30) {
                    std::thread::sleep(Duration::from_micros(200));
                }
            } else {
                std::thread::sleep(Duration::from_micros(rng.u64(..1_500_000)));
            }
        }
    }
    // Successes seen after this do not count (see `bare_claims`). With a
    // sync the driver keeps going through the cut (`stop` is set after it);
    // without one it stops first.
    cut.store(true, Ordering::SeqCst);
    if sync == Sync::Never {
        stop.store(true, Ordering::SeqCst);
    }
    cut_power(&disk.mnt).unwrap_or_else(|e| panic!("cut failed: {e}"));
    stop.store(true, Ordering::SeqCst);
    kill(&mut server);
    let compaction_in_flight = driver.join().unwrap()
        || matches!(point.as_deref().map(|p| p.split(':').next().unwrap()), Some("install" | "checkpoint"));
    if sync == Sync::Never {
        println!("powercut control: cut {round} (joblog --sync never): {} commands acknowledged", acks.lock().unwrap());
    }
    disk.remount().unwrap_or_else(|e| panic!("{e}"));
    v.extend(check_binary(bin, &data, &model.lock().unwrap(), compaction_in_flight, counts));
    v
}

/// Every job in the store, by id.
fn all_jobs(_engine: &Engine, state: &joblog::engine::StateGuard<'_>) -> Result<Vec<joblog::domain::Job>, String> {
    let (mut jobs, _) =
        state.query_jobs(&Filter::default(), &Visibility::All, None, usize::MAX).map_err(|e| e.to_string())?;
    jobs.sort_by_key(|j| j.id);
    Ok(jobs)
}

fn check_binary(
    bin: &Path,
    data: &Path,
    m: &BinaryModel,
    compaction_in_flight: bool,
    counts: &mut Counts,
) -> Violations {
    let mut v = Violations::new();
    if !data.join("segments").exists() {
        // Cut before the first command created the store: nothing acknowledged.
        if !m.submitted.is_empty() || !m.imported.is_empty() {
            v.push("the store is gone after the cut".into());
        }
        return v;
    }
    let engine = match Engine::open(data, Config::default(), Arc::new(SystemClock)) {
        Ok(e) => e,
        Err(e) => {
            v.push(format!("joblog store: reopen after the cut failed: {e}"));
            return v;
        }
    };
    counts.torn_tails_cut += u64::from(engine.recovery().torn_bytes_dropped > 0);
    counts.reopens_with_cold_segments += u64::from(engine.recovery().cold_segments > 0);
    let from_checkpoint = engine.open_report().checkpoint_seq.is_some();
    let admin = engine.session("admin").unwrap();
    for (id, name) in &m.submitted {
        counts.acked_jobs_checked += 1;
        match admin.get(*id) {
            Ok(j) if &j.name == name => {}
            Ok(j) => v.push(format!("job {id}: name {:?}, submitted as {name:?}", j.name)),
            Err(e) => v.push(format!("acknowledged submit {id} ({name}) lost after the cut: {e}")),
        }
    }
    for (id, action) in &m.actions {
        counts.acked_actions_checked += 1;
        match admin.history(*id) {
            Ok(h) if h.iter().any(|e| e.action == Some(*action)) => {}
            Ok(_) => v.push(format!("acknowledged {action:?} of job {id} lost after the cut")),
            Err(e) => v.push(format!("job {id} of an acknowledged {action:?} lost: {e}")),
        }
    }
    let state = engine.state();
    let deletions = state.deletions().to_vec();
    for (id, (old, done)) in &m.imported {
        counts.acked_jobs_checked += 1;
        let present = state.status_of(*id).unwrap().is_some();
        if m.must_be_gone.contains(id) {
            counts.deleted_jobs_checked += 1;
            if present {
                v.push(format!("imported job {id}: an acknowledged bulk-delete took it, yet it is back"));
            }
        }
        if !present {
            // Gone only if a deletion in the log took it: it matches the
            // criteria and sorts at or before the deletion's last job.
            let taken = *old
                && deletions
                    .iter()
                    .any(|d| d.deletion.through.is_some_and(|t| (*done, *id) <= t) && *done < d.deletion.cutoff);
            if !taken {
                v.push(format!("acknowledged import {id} lost after the cut (no deletion took it)"));
            }
        }
    }
    if deletions.len() as u64 > m.bulk_deletes_sent {
        v.push(format!("{} deletions in the log, {} sent", deletions.len(), m.bulk_deletes_sent));
    }
    let jobs = match all_jobs(&engine, &state) {
        Ok(j) => j,
        Err(e) => {
            v.push(format!("listing after the cut failed: {e}"));
            return v;
        }
    };
    for j in &jobs {
        // The service's own recurring Bulk Delete job is the only job the
        // harness did not send.
        let service_own = j.operationtype == OperationType::BULK_DELETE && j.name == "Delete completed system jobs";
        if !m.names_sent.contains(&j.name) && !m.imports_sent.contains(&j.id) && !service_own {
            v.push(format!("job {} ({:?}) was never sent by the harness", j.id, j.name));
        }
    }
    if compaction_in_flight {
        if state.garbage().is_empty() {
            counts.compactions_complete += 1;
        } else {
            counts.compactions_absent += 1;
        }
    }
    drop(state);
    v.extend(leftovers(&data.join("segments"), &engine.segments().iter().map(|s| s.path.clone()).collect::<Vec<_>>()));
    if let Ok(rd) = fs::read_dir(data.join("snapshots")) {
        for e in rd {
            let p = e.unwrap().path();
            if p.to_string_lossy().ends_with(".tmp") {
                v.push(format!("{}: a temporary checkpoint left after opening", p.display()));
            }
        }
    }
    // Opening from the checkpoint equals a full replay: the store copied
    // without snapshots/.
    if from_checkpoint {
        let copy = tempfile::tempdir().unwrap();
        let ok = Command::new("cp").arg("-a").arg(data).arg(copy.path()).status().is_ok_and(|s| s.success());
        assert!(ok, "cp -a of the store failed");
        let copied = copy.path().join(data.file_name().unwrap());
        fs::remove_dir_all(copied.join("snapshots")).unwrap();
        let _ = fs::remove_file(copied.join("joblog.sock"));
        match Engine::open(&copied, Config::default(), Arc::new(SystemClock)) {
            Ok(replayed) => {
                counts.checkpoint_comparisons += 1;
                let (a, b) = (all_jobs(&engine, &engine.state()), all_jobs(&replayed, &replayed.state()));
                if a != b {
                    v.push("opening from the checkpoint differs from a full replay (jobs)".into());
                }
                if engine.state().deletions() != replayed.state().deletions() {
                    v.push("opening from the checkpoint differs from a full replay (deletions)".into());
                }
                if engine.state().garbage() != replayed.state().garbage() {
                    v.push("opening from the checkpoint differs from a full replay (garbage)".into());
                }
            }
            Err(e) => v.push(format!("a full replay (no checkpoint) fails: {e}")),
        }
    } else {
        counts.rounds_without_checkpoint += 1;
    }
    drop(admin);
    drop(engine);
    // And the binary's own verdict.
    let out = Command::new(bin).arg("--data").arg(data).args(["verify", "--json"]).output().unwrap();
    counts.verify_runs += 1;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || !text.contains("\"ok\": true") {
        v.push(format!(
            "joblog verify after the cut: exit {:?}: {text} {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    v
}

// ---------------------------------------------------------------------------
// The campaign
// ---------------------------------------------------------------------------

/// Runs `cuts` cuts alternating the two children; a third of them at a
/// crash point. Returns every violation (with the cut it happened at).
fn campaign(
    disk: &mut LoopDisk,
    bin: &Path,
    seed: u64,
    cuts: u64,
    sync: Sync,
    counts: &mut Counts,
) -> (Violations, u64, u64) {
    let mut rng = Rng::with_seed(seed);
    let mut bare = BareModel::default();
    let binary = Arc::new(Mutex::new(BinaryModel::default()));
    let mut all = Violations::new();
    let (mut bare_lossy, mut binary_lossy) = (0, 0);
    for cut in 0..cuts {
        let is_bare = cut % 2 == 0;
        let point = (sync != Sync::Never && rng.u64(..3) == 0).then(|| {
            let points: &[&str] =
                if is_bare { &["roll", "manifest", "install"] } else { &["install", "checkpoint", "manifest"] };
            let p = points[rng.u64(..points.len() as u64) as usize];
            let nth = 1 + rng.u64(..3);
            format!("{p}:{nth}")
        });
        if let Some(p) = &point {
            *counts
                .crashpoint_cuts
                .entry(match p.split(':').next().unwrap() {
                    "roll" => "roll",
                    "manifest" => "manifest",
                    "install" => "install",
                    _ => "checkpoint",
                })
                .or_default() += 1;
        }
        let v = if is_bare {
            counts.bare_cuts += 1;
            run_bare_cut(disk, &mut bare, &mut rng, seed, cut, sync, point.clone(), counts)
        } else {
            counts.binary_cuts += 1;
            run_binary_cut(disk, bin, &binary, &mut rng, cut, sync, point.clone(), counts)
        };
        counts.cuts += 1;
        if !v.is_empty() {
            if is_bare {
                bare_lossy += 1;
            } else {
                binary_lossy += 1;
            }
            if sync == Sync::Never {
                println!(
                    "powercut control: cut {cut} ({}) detected: {}",
                    if is_bare { "bare log" } else { "joblog" },
                    v[0]
                );
                // The store may be unusable now; later cuts start afresh.
                let _ = fs::remove_dir_all(disk.mnt.join(if is_bare { "bare" } else { "store" }));
                if is_bare {
                    bare = BareModel::default();
                } else {
                    *binary.lock().unwrap() = BinaryModel::default();
                }
            }
        }
        all.extend(v.into_iter().map(|m| format!("cut {cut} (point {point:?}): {m}")));
        if (cut + 1) % 50 == 0 {
            println!("powercut: {} cuts so far, {} violations", cut + 1, all.len());
        }
        if sync != Sync::Never && !all.is_empty() {
            break;
        }
    }
    let m = binary.lock().unwrap();
    counts.distinct_acked_jobs = (m.submitted.len() + m.imported.len()) as u64;
    counts.distinct_acked_actions = m.actions.len() as u64;
    counts.distinct_deleted_jobs = m.must_be_gone.len() as u64;
    drop(m);
    (all, bare_lossy, binary_lossy)
}

fn main() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        let var = |k: &str| std::env::var(k).unwrap();
        let sync = if var("JOBLOG_POWERCUT_SYNC") == "never" { Sync::Never } else { Sync::EveryBatch };
        bare_child(
            Path::new(&dir),
            var("JOBLOG_POWERCUT_CHILD_SEED").parse().unwrap(),
            var("JOBLOG_POWERCUT_ROUND").parse().unwrap(),
            sync,
        );
        return;
    }
    guard_refuses_everything_else();
    late_lines_are_no_claims();
    let (seed, cuts) = seed_and_rounds("powercut", "JOBLOG_POWERCUT_SEED", "JOBLOG_POWERCUT_CUTS", 30);
    let control_cuts: u64 =
        std::env::var("JOBLOG_POWERCUT_CONTROL_CUTS").ok().and_then(|v| v.parse().ok()).unwrap_or(10).max(2);
    let bin = joblog_bin();
    let mut disk = match LoopDisk::create() {
        Ok(d) => d,
        Err(why) => {
            eprintln!("SKIPPED: powercut: {why}; no power cut was tested here");
            println!("powercut: SKIPPED ({why})");
            println!("0 passed, 0 failed, 1 skipped");
            return;
        }
    };
    println!("powercut: ext4 on {} at {}", disk.img.display(), disk.mnt.display());
    let started = Instant::now();

    let mut counts = Counts::default();
    let (violations, _, _) = campaign(&mut disk, &bin, seed, cuts, Sync::EveryBatch, &mut counts);
    if !violations.is_empty() {
        panic!(
            "powercut: {} violation(s) with Sync::EveryBatch (JOBLOG_POWERCUT_SEED={seed} repeats the run):\n{}",
            violations.len(),
            violations.join("\n")
        );
    }
    println!(
        "powercut: {} cuts ({} bare log, {} joblog binary; at crash points: {:?}); bare log: {} acknowledged events \
         checked after their cut, {} rechecks of records seen at earlier cuts, {} acknowledged after the cut began (no \
         claim; {} of them missing); joblog: {} acknowledged jobs and {} \
         actions ({} and {} checks over all cuts), {} jobs an acknowledged deletion took ({} checks gone); {} torn \
         tails cut, compactions cut short: {} complete / {} absent, {} checkpoint-vs-replay comparisons ({} reopens \
         had no checkpoint), {} reopens found cold segments, {} joblog verify runs, {:.1}s",
        counts.cuts,
        counts.bare_cuts,
        counts.binary_cuts,
        counts.crashpoint_cuts,
        counts.acked_events_checked,
        counts.seen_records_rechecked,
        counts.late_acks,
        counts.late_acks_lost,
        counts.distinct_acked_jobs,
        counts.distinct_acked_actions,
        counts.acked_jobs_checked,
        counts.acked_actions_checked,
        counts.distinct_deleted_jobs,
        counts.deleted_jobs_checked,
        counts.torn_tails_cut,
        counts.compactions_complete,
        counts.compactions_absent,
        counts.checkpoint_comparisons,
        counts.rounds_without_checkpoint,
        counts.reopens_with_cold_segments,
        counts.verify_runs,
        started.elapsed().as_secs_f64()
    );

    // Negative control: fresh stores, no sync. Loss must be seen, by both.
    let _ = fs::remove_dir_all(disk.mnt.join("bare"));
    let _ = fs::remove_dir_all(disk.mnt.join("store"));
    let mut control = Counts::default();
    let (_, bare_lossy, binary_lossy) =
        campaign(&mut disk, &bin, seed ^ 0xC0_47_20_1E, control_cuts, Sync::Never, &mut control);
    println!(
        "powercut control (Sync::Never / --sync never): loss detected in {bare_lossy} of {} bare-log cuts and \
         {binary_lossy} of {} joblog cuts",
        control.bare_cuts, control.binary_cuts
    );
    assert!(
        bare_lossy > 0 && binary_lossy > 0,
        "the negative control did not detect loss without sync (bare log: {bare_lossy}, joblog: {binary_lossy}): \
         the harness does not cut the power any more (JOBLOG_POWERCUT_SEED={seed})"
    );
    println!("1 passed, 0 failed");
}
