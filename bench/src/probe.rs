//! Small probes of this machine's limits, measured in the same run as the
//! benchmarks they put in perspective.

use std::fs::{File, OpenOptions};
use std::hint::black_box;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// Sequential write bandwidth to `dir`, bytes per second: `bytes` written in
/// 1 MiB chunks, then fsync, timed together.
pub fn write_bandwidth(dir: &Path, bytes: u64) -> std::io::Result<f64> {
    let path = dir.join("probe-write.bin");
    let start = Instant::now();
    write_synced(&path, bytes, 0x5a)?;
    let secs = start.elapsed().as_secs_f64();
    std::fs::remove_file(&path)?;
    Ok(bytes as f64 / secs)
}

/// Writes `bytes` of `fill` to a new file at `path` in 1 MiB chunks, then
/// syncs it.
fn write_synced(path: &Path, bytes: u64, fill: u8) -> std::io::Result<()> {
    let chunk = vec![fill; 1 << 20];
    let mut f = File::create(path)?;
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        f.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    f.sync_all()
}

/// How fast this machine gives a file's space back, bytes per second: a
/// file of `bytes` written and synced, then timed from its unlink until
/// the directory is synced. (With online discard, an unlink waits for the
/// device to trim the file's blocks.)
pub fn unlink_rate(dir: &Path, bytes: u64) -> std::io::Result<f64> {
    let path = dir.join("probe-unlink.bin");
    write_synced(&path, bytes, 0x3c)?;
    let start = Instant::now();
    std::fs::remove_file(&path)?;
    File::open(dir)?.sync_all()?;
    Ok(bytes as f64 / start.elapsed().as_secs_f64())
}

/// Latency of one durable 4 KiB overwrite (pwrite + fdatasync), the floor
/// under every durable append: returns (median, p99) over `rounds`.
pub fn fsync_latency(dir: &Path, rounds: usize) -> std::io::Result<(Duration, Duration)> {
    let path = dir.join("probe-fsync.bin");
    let f = OpenOptions::new().create(true).truncate(true).read(true).write(true).open(&path)?;
    let block = vec![0xa5u8; 4096];
    f.write_all_at(&block, 0)?;
    f.sync_all()?;
    let mut times = Vec::with_capacity(rounds);
    for i in 0..rounds {
        let start = Instant::now();
        f.write_all_at(&block[..8 + i % 8], 0)?;
        f.sync_data()?;
        times.push(start.elapsed());
    }
    std::fs::remove_file(&path)?;
    times.sort();
    Ok((times[rounds / 2], times[(rounds * 99 / 100).min(rounds - 1)]))
}

/// Memory the process has never touched, first written, bytes per second:
/// a fresh anonymous map from the kernel (not the allocator, which may
/// hand back memory it already had) written one byte a page, so that each
/// page costs its fault and the kernel's zeroing (on a virtual machine,
/// perhaps the host's too). What building anything new in memory costs at
/// least, an open's tables included. The best of three maps.
pub fn first_touch_rate(bytes: usize) -> std::io::Result<f64> {
    let mut best = f64::MAX;
    for _ in 0..3 {
        let mut fresh = memmap2::MmapMut::map_anon(bytes)?;
        let start = Instant::now();
        for at in (0..bytes).step_by(4096) {
            fresh[at] = 1;
        }
        best = best.min(start.elapsed().as_secs_f64());
        black_box(&fresh);
    }
    Ok(bytes as f64 / best)
}

/// One core's memory read bandwidth, bytes per second: summing a buffer far
/// larger than the caches.
pub fn memory_read_bandwidth(bytes: usize) -> f64 {
    let words: Vec<u64> = (0..bytes / 8).map(|i| i as u64).collect();
    let mut best = f64::MAX;
    for _ in 0..3 {
        let start = Instant::now();
        let sum = words.chunks(8).fold(0u64, |acc, c| acc.wrapping_add(c.iter().fold(0, |a, &w| a ^ w)));
        black_box(sum);
        best = best.min(start.elapsed().as_secs_f64());
    }
    bytes as f64 / best
}

/// One core's CRC32 rate (crc32fast, the checksum the log uses), bytes per
/// second, over a cached buffer of `bytes`.
pub fn crc32_rate(bytes: usize) -> f64 {
    let buf: Vec<u8> = (0..bytes).map(|i| (i * 131) as u8).collect();
    let mut best = f64::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        black_box(crc32fast::hash(black_box(&buf)));
        best = best.min(start.elapsed().as_secs_f64());
    }
    bytes as f64 / best
}

/// The CRC32 rate over frames of `frame_bytes` each, as the log checks them
/// (one checksum per frame): the real limit of reading many small records.
pub fn crc32_rate_per_frame(total: usize, frame_bytes: usize) -> f64 {
    let buf: Vec<u8> = (0..total).map(|i| (i * 131) as u8).collect();
    let mut best = f64::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        let mut acc = 0u32;
        // A hasher made once and cloned per frame, as the log does.
        let template = crc32fast::Hasher::new();
        for c in buf.chunks(frame_bytes) {
            let mut h = template.clone();
            h.update(black_box(c));
            acc ^= h.finalize();
        }
        black_box(acc);
        best = best.min(start.elapsed().as_secs_f64());
    }
    total as f64 / best
}

/// Sequential read bandwidth from the disk, bytes per second: a file of
/// `bytes` written and synced, the page cache dropped, then read back in
/// 1 MiB chunks. `None` when the page cache cannot be dropped (needs root).
pub fn cold_read_bandwidth(dir: &Path, bytes: u64) -> std::io::Result<Option<f64>> {
    use std::io::Read;
    let path = dir.join("probe-read.bin");
    let chunk = vec![0x3cu8; 1 << 20];
    {
        let mut f = File::create(&path)?;
        for _ in 0..bytes.div_ceil(chunk.len() as u64) {
            f.write_all(&chunk)?;
        }
        f.sync_all()?;
    }
    if !drop_page_cache() {
        std::fs::remove_file(&path)?;
        return Ok(None);
    }
    let mut f = File::open(&path)?;
    let mut buf = vec![0u8; 1 << 20];
    let start = Instant::now();
    let mut total = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    let secs = start.elapsed().as_secs_f64();
    std::fs::remove_file(&path)?;
    Ok(Some(total as f64 / secs))
}

/// Reads every file under `dir` (the page cache holds them again after a
/// cold measurement dropped it).
pub fn read_files(dir: &Path) {
    use std::io::Read;
    let mut buf = vec![0u8; 1 << 20];
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            read_files(&path);
        } else if let Ok(mut f) = File::open(&path) {
            while matches!(f.read(&mut buf), Ok(n) if n > 0) {}
        }
    }
}

/// Whether [`drop_page_cache`] may work here (root only), asked without
/// dropping anything.
pub fn can_drop_page_cache() -> bool {
    std::fs::OpenOptions::new().write(true).open("/proc/sys/vm/drop_caches").is_ok()
}

/// Drops the kernel's page cache (root only); false when it cannot.
pub fn drop_page_cache() -> bool {
    let _ = std::process::Command::new("sync").status();
    std::fs::write("/proc/sys/vm/drop_caches", "3\n").is_ok()
}

// The two measures the command line shares (`joblog::measure`).
pub use joblog::measure::{dir_allocated_bytes, dir_bytes, rss_anon_bytes};
