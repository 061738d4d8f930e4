//! Memory maps of segment files, and preallocation of their space (part
//! of `sys`, the only module of joblog that contains `unsafe`).
//!
//! A [`SegmentMap`] is shared by the writer and every reader of a segment. It
//! keeps a *published* watermark: bytes below it are complete, checksummed
//! frames that are never written again, and only they can be read. Bytes at
//! or above it can only be written, and only through the one [`MapWriter`]
//! that exists for a writable segment. That split is what makes handing out
//! `&[u8]` into a map that is still growing sound.
//!
//! Every map is read-only: the writer writes the file (`pwrite`), and the
//! map shows those bytes (a shared map of a file and the file's writes go
//! through the same page cache). A sync of bytes written so costs less than
//! one of bytes written through a map: no page of the map is writable, so
//! writing a page back never has to write-protect it in this process (and
//! interrupt the other cores to flush their TLBs), nor does the next write
//! fault on it (docs/benchmarks.md, "Frames written, not copied into the
//! map").
//!
//! The remaining hazard of every memory map is another process changing or
//! truncating the file underneath; the log's lock file (see `log::dir`) keeps
//! other joblog processes out, and `docs/format.md` tells users not to edit
//! segment files of an open store.

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use memmap2::{MmapOptions, MmapRaw};

/// A scan of a whole map under way ([`SegmentMap::read_through`]); reads
/// are random again once the last one is dropped.
pub(crate) struct ReadThrough<M: std::ops::Deref<Target = SegmentMap>>(M);

impl<M: std::ops::Deref<Target = SegmentMap>> Drop for ReadThrough<M> {
    fn drop(&mut self) {
        let mut scans = self.0.scans.lock();
        *scans -= 1;
        if *scans == 0 {
            let _ = self.0.raw.advise(memmap2::Advice::Random);
        }
    }
}

/// A mapped segment file, readable below its published watermark.
pub(crate) struct SegmentMap {
    raw: MmapRaw,
    len: usize,
    published: AtomicUsize,
    /// Bytes of the file allocated on disk (for a writable map, grown by
    /// its writer; the whole map for a read-only one).
    allocated: AtomicUsize,
    /// Scans of the whole map under way ([`SegmentMap::read_through`]);
    /// the advice changes under this lock.
    scans: parking_lot::Mutex<usize>,
}

impl SegmentMap {
    /// Maps `len` bytes of `file` read-only; everything is published.
    pub(crate) fn read_only(file: &File, len: usize) -> io::Result<Self> {
        assert!(len > 0, "cannot map an empty file");
        let raw = MmapOptions::new().len(len).map_raw_read_only(file)?;
        Ok(Self {
            raw,
            len,
            published: AtomicUsize::new(len),
            allocated: AtomicUsize::new(len),
            scans: Default::default(),
        })
    }

    /// Maps `len` bytes of `file`, to be written through the returned
    /// writer (`file` is open for writing). The file may be shorter than
    /// `len` (it grows in steps, see [`MapWriter::reserve`]): the address
    /// space is taken once, so the map never moves and readers' slices stay
    /// valid, but only the part the file covers is ever touched. Bytes below
    /// `published` are readable at once; the returned writer is the only
    /// way to write the rest.
    pub(crate) fn writable(file: File, len: usize, published: usize) -> io::Result<(Arc<Self>, MapWriter)> {
        let file_len = usize::try_from(file.metadata()?.len()).unwrap_or(usize::MAX);
        assert!(len > 0 && published <= len && published <= file_len);
        let raw = MmapOptions::new().len(len).map_raw_read_only(&file)?;
        let allocated = file_len.min(len);
        let map = Arc::new(Self {
            raw,
            len,
            published: AtomicUsize::new(published),
            allocated: AtomicUsize::new(allocated),
            scans: Default::default(),
        });
        Ok((Arc::clone(&map), MapWriter { map, file: Arc::new(file), allocated }))
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Tells the kernel that reads will be random: a page missing from
    /// the page cache is read alone, not with the pages around it (the
    /// kernel's read-around is the device's readahead, megabytes on some
    /// disks, for each miss). Whole-map scans ask for their pages first
    /// ([`SegmentMap::prefetch`]). A hint: refused, nothing changes.
    pub(crate) fn expect_random(&self) {
        let scans = self.scans.lock();
        if *scans == 0 {
            let _ = self.raw.advise(memmap2::Advice::Random);
        }
    }

    /// Asks the kernel to read the whole map into the page cache now, in
    /// the background (before a scan of all of it). A hint, as above.
    pub(crate) fn prefetch(&self) {
        let _ = self.raw.advise(memmap2::Advice::WillNeed);
    }

    /// For a scan of the whole of a map read at random otherwise: the
    /// kernel's usual read-around and mapping of the pages around each
    /// fault (without them a cold scan faults page by page, three times
    /// slower) and a [`SegmentMap::prefetch`], until the guard is dropped.
    pub(crate) fn read_through(&self) -> ReadThrough<&Self> {
        self.begin_scan();
        ReadThrough(self)
    }

    /// [`SegmentMap::read_through`] with a guard that holds the map.
    pub(crate) fn read_through_shared(self: &Arc<Self>) -> ReadThrough<Arc<Self>> {
        self.begin_scan();
        ReadThrough(Arc::clone(self))
    }

    fn begin_scan(&self) {
        let mut scans = self.scans.lock();
        if *scans == 0 {
            let _ = self.raw.advise(memmap2::Advice::Normal);
        }
        *scans += 1;
        drop(scans);
        self.prefetch();
    }

    /// Drops this process's page-table entries for the whole map: its
    /// pages stay in the kernel's page cache, where dropping the page cache
    /// (which skips mapped pages) or memory pressure may evict them, and
    /// the next read faults each one back in.
    pub(crate) fn release_pages(&self) -> io::Result<()> {
        // SAFETY: memmap2 has this unchecked because on a private mapping
        // MADV_DONTNEED discards the process's changes. Both constructors
        // here make read-only shared mappings of a file
        // (`map_raw_read_only`), where it acts as a partial munmap: each
        // page-table entry is removed, and the next access maps the same
        // page of the file again, from the page cache or the disk, with the
        // same bytes (the writer writes the file, never the map, and only
        // above the published watermark). No slice handed out sees anything
        // else.
        unsafe { self.raw.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) }
    }

    /// Bytes of the file allocated on disk.
    pub(crate) fn allocated(&self) -> usize {
        self.allocated.load(Ordering::Relaxed)
    }

    /// The published watermark: every byte below it may be read.
    pub(crate) fn published(&self) -> usize {
        self.published.load(Ordering::Acquire)
    }

    /// The published bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        let end = self.published();
        // SAFETY: the map is `self.len` bytes long and `end <= self.len`
        // (checked in `publish` and the constructors). Bytes below the
        // published watermark are never written again by this process: the
        // only writer (`MapWriter`) refuses offsets below it, and the
        // watermark only grows. The mapping lives as long as `self`, which
        // the returned slice borrows.
        unsafe { std::slice::from_raw_parts(self.raw.as_ptr(), end) }
    }
}

/// The one handle that writes the file of a writable [`SegmentMap`].
pub(crate) struct MapWriter {
    map: Arc<SegmentMap>,
    /// The mapped file, grown through [`MapWriter::reserve`]; shared with
    /// whoever syncs it ([`MapWriter::file`]).
    file: Arc<File>,
    /// Bytes of the file that are allocated on disk (fallocate): writes
    /// stay below this, so a full disk is met when space is reserved, never
    /// half-way through a batch.
    allocated: usize,
}

/// The first allocation step of a segment of `segment_len` bytes: 1/64 of
/// it, rounded up to a page, between 4 KiB and 1 MiB. A fresh store so
/// takes about 1 MiB, however large its segments may grow.
pub(crate) fn first_step(segment_len: usize) -> usize {
    (segment_len / 64).next_multiple_of(PAGE).clamp(PAGE, 1 << 20).min(segment_len)
}

/// The page size joblog assumes (and rounds file steps to).
pub(crate) const PAGE: usize = 4096;

impl MapWriter {
    /// Writes `data` to the file at `offset`, which must lie at or above
    /// the published watermark (no reader holds a slice over it:
    /// `SegmentMap::bytes` stops there) and inside the allocated part of
    /// the file. Until it is synced, a crash may keep any part of it.
    pub(crate) fn write(&mut self, offset: usize, data: &[u8]) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        let end = offset.checked_add(data.len()).expect("write range overflows");
        assert!(end <= self.allocated, "write past the allocated part of the file (reserve first)");
        assert!(offset >= self.map.published(), "write below the published watermark");
        self.file.write_all_at(data, offset as u64)
    }

    /// Writes zeros over `from..to` (at or above the published watermark,
    /// inside the allocated part of the file), so that their pages are
    /// dirty and the next sync writes them to disk. The caller zeroes only
    /// bytes no frame holds yet (past the frames written): there the file
    /// reads as zeros already, preallocated and never written, or zeroed by
    /// recovery. A page at a time, so that the page cache holds them as
    /// single pages, as it holds the frames written over them (run e met
    /// 1.1 ms syncs when zeros written in one large `write` were then
    /// written over through a map: whole large folios written back; over
    /// `pwrite` that was not measured).
    pub(crate) fn zero(&mut self, from: usize, to: usize) -> io::Result<()> {
        static ZEROS: [u8; PAGE] = [0; PAGE];
        let mut at = from;
        while at < to {
            let n = (PAGE - at % PAGE).min(to - at);
            self.write(at, &ZEROS[..n])?;
            at += n;
        }
        Ok(())
    }

    /// The file, for syncs ([`File::sync_data`]) by any thread while the
    /// writer goes on writing past the frames a sync covers (its durable
    /// mark stops at those frames, and recovery trusts nothing past it).
    pub(crate) fn file(&self) -> Arc<File> {
        Arc::clone(&self.file)
    }

    /// Makes every byte below `upto` readable. The watermark never moves back.
    pub(crate) fn publish(&mut self, upto: usize) {
        assert!(upto <= self.map.len, "publish past the end of the map");
        assert!(upto >= self.map.published(), "the published watermark never moves back");
        self.map.published.store(upto, Ordering::Release);
    }

    /// Makes sure the file is allocated on disk up to `end` at least, growing
    /// it by steps (doubling, from [`first_step`], up to the map's length):
    /// fallocate, then fsync so the new size is durable before any byte is
    /// written there. A full disk is an error here (ENOSPC), not half-way
    /// through a batch; nothing changes when it fails, and a later call
    /// tries again.
    pub(crate) fn reserve(&mut self, end: usize) -> Result<(), ReserveError> {
        if end <= self.allocated {
            return Ok(());
        }
        if end > self.map.len {
            let e = io::Error::new(io::ErrorKind::InvalidInput, "reservation past the end of the segment");
            return Err(ReserveError::Refused(e));
        }
        let target =
            (self.allocated * 2).max(end.next_multiple_of(PAGE)).max(first_step(self.map.len)).min(self.map.len);
        preallocate(&self.file, self.allocated as u64, target as u64).map_err(ReserveError::Refused)?;
        // This fsync also reports a failed write-back of frames written
        // before (once: the syncs would not see it again).
        self.file.sync_all().map_err(ReserveError::Sync)?;
        self.allocated = target;
        self.map.allocated.store(target, Ordering::Relaxed);
        Ok(())
    }
}

/// Why [`MapWriter::reserve`] failed.
#[derive(Debug)]
pub(crate) enum ReserveError {
    /// The space was refused (a full disk): nothing changed.
    Refused(io::Error),
    /// The fsync after it failed: what reached the disk, frames written
    /// before included, is unknown.
    Sync(io::Error),
}

/// Reserves real disk space for bytes `from..len` of `file` (fallocate), so
/// that a full disk is met here, before a batch is written, and never
/// half-way through it. Filesystems without fallocate get zeros written
/// there (only there: bytes below `from` hold data).
pub(crate) fn preallocate(file: &File, from: u64, len: u64) -> io::Result<()> {
    if len <= from {
        return Ok(());
    }
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let too_large = || io::Error::new(io::ErrorKind::InvalidInput, "segment size too large");
        let from_off = libc::off_t::try_from(from).map_err(|_| too_large())?;
        let len_off = libc::off_t::try_from(len - from).map_err(|_| too_large())?;
        // SAFETY: `fallocate` reads no memory of ours; the descriptor is
        // valid for as long as `file` is borrowed.
        let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, from_off, len_off) };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EOPNOTSUPP) {
            return Err(err);
        }
    }
    write_zeros(file, from, len)
}

fn write_zeros(file: &File, from: u64, len: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let chunk = vec![0u8; 1 << 20];
    let mut at = from;
    while at < len {
        let n = (len - at).min(chunk.len() as u64) as usize;
        file.write_all_at(&chunk[..n], at)?;
        at += n as u64;
    }
    Ok(())
}
