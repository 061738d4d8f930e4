//! The only module of joblog that contains `unsafe`: memory maps of segment
//! files, and preallocation of their space.
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

/// A mapped segment file, readable below its published watermark.
pub(crate) struct SegmentMap {
    raw: MmapRaw,
    len: usize,
    published: AtomicUsize,
}

impl SegmentMap {
    /// Maps `len` bytes of `file` read-only; everything is published.
    pub(crate) fn read_only(file: &File, len: usize) -> io::Result<Self> {
        assert!(len > 0, "cannot map an empty file");
        let raw = MmapOptions::new().len(len).map_raw_read_only(file)?;
        Ok(Self { raw, len, published: AtomicUsize::new(len) })
    }

    /// Maps `len` bytes of `file` for reading and writing. Bytes below
    /// `published` are readable at once; the returned writer is the only way
    /// to write the rest.
    pub(crate) fn writable(file: &File, len: usize, published: usize) -> io::Result<(Arc<Self>, MapWriter)> {
        assert!(len > 0 && published <= len);
        let raw = MmapOptions::new().len(len).map_raw(file)?;
        let map = Arc::new(Self { raw, len, published: AtomicUsize::new(published) });
        Ok((Arc::clone(&map), MapWriter { map }))
    }

    pub(crate) fn len(&self) -> usize {
        self.len
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

/// The one handle that writes into a writable [`SegmentMap`].
pub(crate) struct MapWriter {
    map: Arc<SegmentMap>,
}

impl MapWriter {
    /// Copies `data` to `offset`, which must lie at or above the published
    /// watermark and inside the map.
    pub(crate) fn write(&mut self, offset: usize, data: &[u8]) {
        let end = offset.checked_add(data.len()).expect("write range overflows");
        assert!(end <= self.map.len, "write past the end of the map");
        assert!(offset >= self.map.published(), "write below the published watermark");
        // SAFETY: the range [offset, end) is inside the mapping (checked
        // above) and above the published watermark, so no reader holds a
        // slice over it (`SegmentMap::bytes` stops at the watermark). This
        // `MapWriter` is the only one for the map and `write` takes `&mut
        // self`, so no two writes race. `data` is a separate allocation: it
        // cannot overlap a mapping we are writing.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), self.map.raw.as_mut_ptr().add(offset), data.len());
        }
    }

    /// Makes every byte below `upto` readable. The watermark never moves back.
    pub(crate) fn publish(&mut self, upto: usize) {
        assert!(upto <= self.map.len, "publish past the end of the map");
        assert!(upto >= self.map.published(), "the published watermark never moves back");
        self.map.published.store(upto, Ordering::Release);
    }

    /// Faults every page of the map in, writable, ahead of time
    /// (MADV_POPULATE_WRITE), so that appends later copy into memory instead
    /// of taking a page fault (and the kernel's zeroing) every 4 KiB. The
    /// contents do not change. Kernels without it (before 5.14) are told
    /// nothing and fault lazily.
    pub(crate) fn prefault(&self) {
        #[cfg(target_os = "linux")]
        let _ = self.map.raw.advise(memmap2::Advice::PopulateWrite);
    }

    /// Writes the given range of the map back to the file and waits for the
    /// device (msync with MS_SYNC).
    pub(crate) fn flush(&self, offset: usize, len: usize) -> io::Result<()> {
        if len == 0 {
            return Ok(());
        }
        self.map.raw.flush_range(offset, len)
    }
}

/// Reserves `len` bytes of real disk space for `file` (fallocate), so that
/// writing through a map later can never meet a full disk (which would be a
/// SIGBUS, not an error). Filesystems without fallocate get zeros written.
pub(crate) fn preallocate(file: &File, len: u64) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let len_off = libc::off_t::try_from(len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "segment size too large"))?;
        // SAFETY: `fallocate` reads no memory of ours; the descriptor is
        // valid for as long as `file` is borrowed.
        let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len_off) };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EOPNOTSUPP) {
            return Err(err);
        }
    }
    write_zeros(file, len)
}

fn write_zeros(file: &File, len: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let chunk = vec![0u8; 1 << 20];
    let mut at = 0u64;
    while at < len {
        let n = (len - at).min(chunk.len() as u64) as usize;
        file.write_all_at(&chunk[..n], at)?;
        at += n as u64;
    }
    Ok(())
}
