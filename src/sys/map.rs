//! Memory maps of segment files, and preallocation of their space (part
//! of `sys`, the only module of joblog that contains `unsafe`).
//!
//! A [`SegmentMap`] is shared by the writer and every reader of a segment. It
//! keeps a *published* watermark: bytes below it are complete, checksummed
//! frames that are never written again, and only they can be read. Bytes at
//! or above it can only be written, and only through the one [`MapWriter`]
//! that exists for a writable map. That split is what makes handing out
//! `&[u8]` into a map that is still growing sound.
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

    /// Maps `len` bytes of `file` for reading and writing. The file may be
    /// shorter than `len` (it grows in steps, see [`MapWriter::reserve`]):
    /// the address space is taken once, so the map never moves and readers'
    /// slices stay valid, but only the part the file covers is ever
    /// touched. Bytes below `published` are readable at once; the returned
    /// writer is the only way to write the rest.
    pub(crate) fn writable(file: File, len: usize, published: usize) -> io::Result<(Arc<Self>, MapWriter)> {
        let file_len = usize::try_from(file.metadata()?.len()).unwrap_or(usize::MAX);
        assert!(len > 0 && published <= len && published <= file_len);
        let raw = MmapOptions::new().len(len).map_raw(&file)?;
        let allocated = file_len.min(len);
        let map = Arc::new(Self {
            raw,
            len,
            published: AtomicUsize::new(published),
            allocated: AtomicUsize::new(allocated),
            scans: Default::default(),
        });
        Ok((Arc::clone(&map), MapWriter { map, file, allocated }))
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
        // here make shared mappings of a file (`map_raw`,
        // `map_raw_read_only`), where it acts as a partial munmap: each
        // page-table entry is removed, a dirty one's dirty bit carried to
        // the page in the page cache (so nothing written is lost), and the
        // next access maps the same page of the file again, from the page
        // cache or the disk, with the same bytes. A write of the writer
        // thread during the call lands before the entry goes, or faults the
        // page back in. No slice handed out sees anything else.
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

    /// Writes the given range of the map back to the file and waits for the
    /// device (msync with MS_SYNC). Any thread may, while the writer places
    /// frames past the frames it covers (the range may reach bytes being
    /// written: a sync's durable mark stops at the frames it covers, and
    /// recovery trusts nothing past that).
    pub(crate) fn flush(&self, offset: usize, len: usize) -> io::Result<()> {
        if len == 0 {
            return Ok(());
        }
        self.raw.flush_range(offset, len)
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

/// The one handle that writes into a writable [`SegmentMap`].
pub(crate) struct MapWriter {
    map: Arc<SegmentMap>,
    /// The mapped file, grown through [`MapWriter::reserve`].
    file: File,
    /// Bytes of the file that are allocated on disk (fallocate): writes
    /// stay below this, so they never meet a full disk through the map.
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
    /// Copies `data` to `offset`, which must lie at or above the published
    /// watermark and inside the map.
    pub(crate) fn write(&mut self, offset: usize, data: &[u8]) {
        let end = offset.checked_add(data.len()).expect("write range overflows");
        assert!(end <= self.allocated, "write past the allocated part of the file (reserve first)");
        assert!(offset >= self.map.published(), "write below the published watermark");
        // SAFETY: the range [offset, end) is inside the mapping and inside
        // the part of the file that is allocated (`allocated <= map.len`,
        // checked above; the file is never shortened while mapped, see the
        // module comment, so no page of it faults), and above the published watermark, so no reader holds a
        // slice over it (`SegmentMap::bytes` stops at the watermark). This
        // `MapWriter` is the only one for the map and `write` takes `&mut
        // self`, so no two writes race. `data` is a separate allocation: it
        // cannot overlap a mapping we are writing.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), self.map.raw.as_mut_ptr().add(offset), data.len());
        }
    }

    /// Writes zeros over `from..to` (at or above the published watermark,
    /// inside the allocated part of the file), so that their pages are
    /// dirty and the next flush over them writes them to disk. The caller
    /// zeroes only bytes no frame holds yet (past the frames written):
    /// there the file reads as zeros already, preallocated and never
    /// written, or zeroed by recovery.
    pub(crate) fn zero(&mut self, from: usize, to: usize) {
        static ZEROS: [u8; PAGE] = [0; PAGE];
        for at in (from..to).step_by(PAGE) {
            self.write(at, &ZEROS[..PAGE.min(to - at)]);
        }
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
    /// written there. A full disk is an error here (ENOSPC), never a SIGBUS
    /// later; nothing changes when it fails, and a later call tries again.
    pub(crate) fn reserve(&mut self, end: usize) -> io::Result<()> {
        if end <= self.allocated {
            return Ok(());
        }
        if end > self.map.len {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "reservation past the end of the segment"));
        }
        let target =
            (self.allocated * 2).max(end.next_multiple_of(PAGE)).max(first_step(self.map.len)).min(self.map.len);
        preallocate(&self.file, self.allocated as u64, target as u64)?;
        self.file.sync_all()?;
        self.allocated = target;
        self.map.allocated.store(target, Ordering::Relaxed);
        Ok(())
    }

    /// Faults every page of the map in, writable, ahead of time
    /// (MADV_POPULATE_WRITE), so that appends later copy into memory instead
    /// of taking a page fault (and the kernel's zeroing) every 4 KiB. The
    /// contents do not change. Kernels without it (before 5.14) are told
    /// nothing and fault lazily.
    pub(crate) fn prefault(&self) {
        // Only the allocated part: the rest of the map lies past the end of
        // the file.
        #[cfg(target_os = "linux")]
        let _ = self.map.raw.advise_range(memmap2::Advice::PopulateWrite, 0, self.allocated);
    }

    /// Writes the given range of the map back to the file and waits for the
    /// device (msync with MS_SYNC).
    pub(crate) fn flush(&self, offset: usize, len: usize) -> io::Result<()> {
        self.map.flush(offset, len)
    }
}

/// Reserves real disk space for bytes `from..len` of `file` (fallocate), so
/// that writing through a map later can never meet a full disk (which would
/// be a SIGBUS, not an error). Filesystems without fallocate get zeros
/// written there (only there: bytes below `from` hold data).
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
