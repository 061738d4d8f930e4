//! Large blocks straight from the OS, grown in place of the copy (part of
//! `sys`, the only module of joblog that contains `unsafe`).
//!
//! A store's state keeps a few very large arrays (one row per job, one
//! entry per event, their indices) that grow by doubling as jobs come in.
//! An allocator that grows a block by allocating a new one and copying
//! (mimalloc does, for every size) writes the whole array again at each
//! doubling, into pages the kernel must first zero: on this project's
//! machine that was a fifth of a full replay's time
//! (docs/benchmarks.md). [`LargeBlocks`] gives every block of
//! [`LARGE`] bytes or more its own anonymous mapping and grows it with
//! `mremap`, which moves the pages instead of their bytes; smaller blocks
//! go to the allocator it wraps. A binary chooses it
//! (`#[global_allocator]`); the library never does. A large block freed
//! goes back to the system at once, so a large temporary buffer made
//! again and again pays for its fresh pages each time.

use std::alloc::{GlobalAlloc, Layout};
use std::ptr;

/// Blocks of this many bytes or more are mapped on their own.
pub const LARGE: usize = 32 << 20;

/// A global allocator: blocks of [`LARGE`] bytes or more mapped alone and
/// grown with `mremap`, the rest from `A`.
#[derive(Debug, Default)]
pub struct LargeBlocks<A>(pub A);

/// Whether a block of layout `l` is mapped on its own: large, and aligned
/// no more than a page (a mapping's start is page-aligned).
fn mapped(l: Layout) -> bool {
    l.size() >= LARGE && l.align() <= 4096
}

/// A new zeroed mapping of `size` bytes, null if the OS refuses it.
fn map(size: usize) -> *mut u8 {
    // SAFETY: an anonymous private mapping with no address hint creates
    // new memory and touches none that exists.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return ptr::null_mut();
    }
    // Small pages, whatever the system's default for huge ones: zeroing
    // 2 MiB pages for a replay's rows took a fifth of its applying thread
    // here, 4 KiB ones a twentieth (docs/benchmarks.md, run ae). A hint:
    // its failure changes nothing.
    // SAFETY: `p..p + size` is the mapping just made, owned by no one else;
    // the advice changes how its pages are backed, never their contents.
    unsafe { libc::madvise(p, size, libc::MADV_NOHUGEPAGE) };
    p.cast()
}

// SAFETY: every block handed out is either `A`'s (for layouts `mapped`
// refuses) or a mapping of at least its size, aligned to a page, which is
// at least its alignment; each block goes back the way it came, since the
// layout of a block's deallocation or reallocation is the one it was
// allocated (or last reallocated) with, and `mapped` decides on it alone.
unsafe impl<A: GlobalAlloc> GlobalAlloc for LargeBlocks<A> {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if mapped(l) {
            map(l.size())
        } else {
            // SAFETY: the caller's guarantees on `l`, passed on.
            unsafe { self.0.alloc(l) }
        }
    }

    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        if mapped(l) {
            // A new anonymous mapping reads as zeros.
            map(l.size())
        } else {
            // SAFETY: the caller's guarantees on `l`, passed on.
            unsafe { self.0.alloc_zeroed(l) }
        }
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        if mapped(l) {
            // SAFETY: `p` is a mapping of `l.size()` bytes this allocator
            // made (the caller's guarantee, and `mapped(l)`), no longer used.
            unsafe { libc::munmap(p.cast(), l.size()) };
        } else {
            // SAFETY: `p` came from `A` with layout `l`.
            unsafe { self.0.dealloc(p, l) }
        }
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `new_size`, rounded up to `l`'s
        // alignment, does not overflow `isize`.
        let new = unsafe { Layout::from_size_align_unchecked(new_size, l.align()) };
        match (mapped(l), mapped(new)) {
            (true, true) => {
                // SAFETY: `p` is a whole mapping of `l.size()` bytes this
                // allocator made; the kernel moves or extends it, keeping
                // its bytes, and on failure leaves it as it was.
                let q = unsafe { libc::mremap(p.cast(), l.size(), new_size, libc::MREMAP_MAYMOVE) };
                if q == libc::MAP_FAILED {
                    ptr::null_mut()
                } else {
                    q.cast()
                }
            }
            // SAFETY: `p` came from `A` with layout `l`, and so will the
            // new block.
            (false, false) => unsafe { self.0.realloc(p, l, new_size) },
            _ => {
                // From one side to the other: a new block, the bytes
                // copied, the old block freed (left as it was on failure).
                // SAFETY: `new` is a valid layout (above).
                let q = unsafe { self.alloc(new) };
                if !q.is_null() {
                    // SAFETY: both blocks hold at least the bytes copied,
                    // and they are distinct allocations.
                    unsafe {
                        ptr::copy_nonoverlapping(p, q, l.size().min(new_size));
                        self.dealloc(p, l);
                    }
                }
                q
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::alloc::System;

    /// The allocator underneath, counting the bytes it holds.
    struct Counting(std::sync::atomic::AtomicUsize);

    // SAFETY: every call is passed on to `System`, as it came.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, l: Layout) -> *mut u8 {
            self.0.fetch_add(l.size(), std::sync::atomic::Ordering::Relaxed);
            // SAFETY: the caller's guarantees, passed on.
            unsafe { System.alloc(l) }
        }
        unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
            self.0.fetch_sub(l.size(), std::sync::atomic::Ordering::Relaxed);
            // SAFETY: the caller's guarantees, passed on.
            unsafe { System.dealloc(p, l) }
        }
    }

    /// Blocks on both sides of [`LARGE`], grown and shrunk across it,
    /// keep their bytes.
    #[test]
    fn blocks_keep_their_bytes_across_the_threshold() {
        let a = LargeBlocks(Counting(Default::default()));
        let held = || a.0 .0.load(std::sync::atomic::Ordering::Relaxed);
        // SAFETY (both): `p` holds at least `n` bytes, allocated below.
        let fill = |p: *mut u8, n: usize| (0..n).for_each(|i| unsafe { p.add(i).write(i as u8) });
        let check = |p: *const u8, n: usize| (0..n).all(|i| unsafe { p.add(i).read() } == i as u8);
        let small = Layout::from_size_align(4096, 8).unwrap();
        let zeroed = Layout::from_size_align(LARGE, 16).unwrap();
        // Small to large (copied), large to larger (`mremap`), large to
        // small (copied), small to small (`A`'s), small to large.
        let sizes = [LARGE + 12345, 3 * LARGE, 100, LARGE - 1, 2 * LARGE];
        // SAFETY: every block is used within its size and freed once,
        // with the layout it was last given.
        unsafe {
            let z = a.alloc_zeroed(zeroed);
            assert!((0..LARGE).step_by(4093).all(|i| z.add(i).read() == 0));
            a.dealloc(z, zeroed);

            let mut p = a.alloc(small);
            fill(p, small.size());
            let mut l = small;
            for n in sizes {
                let kept = l.size().min(n);
                p = a.realloc(p, l, n);
                assert!(!p.is_null());
                // A large block is a mapping of its own, not the inner
                // allocator's.
                assert_eq!(held(), if n >= LARGE { 0 } else { n });
                assert!(n < LARGE || (p as usize).is_multiple_of(4096));
                assert!(check(p, kept), "{kept} bytes kept, grown or shrunk to {n}");
                fill(p, n);
                l = Layout::from_size_align(n, 8).unwrap();
            }
            a.dealloc(p, l);
            assert_eq!(held(), 0);

            // Aligned beyond a page: the inner allocator's, however large.
            let wide = Layout::from_size_align(LARGE, 1 << 13).unwrap();
            let q = a.alloc(wide);
            assert!(!q.is_null() && (q as usize).is_multiple_of(1 << 13));
            assert_eq!(held(), LARGE);
            a.dealloc(q, wide);
        }
    }
}
