//! Measures the command line's `stats` and the benchmark harnesses
//! report: the bytes a directory's files hold (their lengths, or the blocks
//! they take), and this process's
//! anonymous resident memory. None is part of the engine; they live here
//! so that the command line and the harnesses share one copy without
//! depending on each other (ARCHITECTURE.md, "Direction of dependencies").

use std::path::Path;

/// Bytes of every file under `dir` (file lengths, recursively, as `du
/// --apparent-size` counts them); an entry that cannot be read counts 0.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// std::fs::write(dir.path().join("a"), b"abc").unwrap();
/// assert_eq!(joblog::measure::dir_bytes(dir.path()), 3);
/// ```
pub fn dir_bytes(dir: &Path) -> u64 {
    dir_sum(dir, &|m| m.len())
}

/// Bytes the files under `dir` take on the disk (blocks allocated,
/// recursively, as `du` counts them, not their lengths: a preallocated
/// tail counts); an entry that cannot be read counts 0.
pub fn dir_allocated_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    dir_sum(dir, &|m| m.blocks() * 512)
}

/// `size` of every file under `dir`, recursively, summed.
fn dir_sum(dir: &Path, size: &dyn Fn(&std::fs::Metadata) -> u64) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_sum(&e.path(), size),
            Ok(m) => size(&m),
            Err(_) => 0,
        })
        .sum()
}

/// Anonymous resident memory of this process in bytes (`RssAnon` in
/// `/proc/self/status`: not the file-backed maps of the log, which the OS
/// may evict); 0 when it cannot be read.
pub fn rss_anon_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}
