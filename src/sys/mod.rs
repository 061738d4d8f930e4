//! The only module of joblog that contains `unsafe`; each block has a
//! `// SAFETY:` comment.
//!
//! * `alloc`   — a global allocator for binaries: large blocks mapped
//!   alone and grown with `mremap` instead of copied.
//! * `map`     — memory maps of segment files and their preallocation.
//! * `process` — what command runs need of the OS that `std` does not
//!   offer safely: the parent-death signal set in a child before `exec`,
//!   and process file descriptors (`pidfd`) that name one process for
//!   good, so that a signal never reaches a process that reused a pid.
//!
//! And here: `prefetch`, the processor's hint to fetch a cache line, and
//! `push_populated` and `filled`, a large vector's pages made present in
//! one call ahead of its writes.

#![allow(unsafe_code)] // the one place it is allowed (Cargo.toml, `[lints]`)

pub(crate) mod alloc;
pub(crate) mod map;
pub(crate) mod process;

/// Pushes `value` onto `v`; when that starts a new stretch of
/// [`POPULATE_BYTES`] in a vector of [`POPULATE_LARGE`] bytes or more, the
/// pages of the stretch are made present first, in one call: a vector filled one element at a time
/// otherwise takes a page fault every 4 KiB, which in a virtual machine
/// costs several times the zeroing of the page. The stretch is small
/// enough to stay in the cache until it is written. A hint: refused,
/// nothing changes.
#[inline]
pub(crate) fn push_populated<T>(v: &mut Vec<T>, value: T) {
    let size = std::mem::size_of::<T>();
    if size > 0 && (v.len() * size) % POPULATE_BYTES < size {
        // Grown first, if it must be: a full vector has no stretch ahead.
        v.reserve(1);
        if v.capacity() * size >= POPULATE_LARGE {
            populate_ahead(v);
        }
    }
    v.push(value);
}

/// Bytes a vector's pages are made present at once ([`push_populated`]).
const POPULATE_BYTES: usize = 256 << 10;
/// Vectors below this many bytes of capacity are left to page faults.
const POPULATE_LARGE: usize = 8 << 20;

/// `n` copies of `value`, the vector's pages made present in one call
/// first when it is large (see [`push_populated`]): a hash table's slots.
pub(crate) fn filled<T: Clone>(n: usize, value: T) -> Vec<T> {
    let mut v = Vec::with_capacity(n);
    if n * std::mem::size_of::<T>() >= POPULATE_LARGE {
        populate(&mut v, usize::MAX);
    }
    v.resize(n, value);
    v
}

#[cold]
fn populate_ahead<T>(v: &mut Vec<T>) {
    populate(v, POPULATE_BYTES);
}

/// Makes present the pages of up to `bytes` of `v`'s spare capacity.
fn populate<T>(v: &mut Vec<T>, bytes: usize) {
    const PAGE: usize = 4096;
    let spare = v.spare_capacity_mut();
    let start = spare.as_ptr() as usize;
    let end = start + std::mem::size_of_val(spare).min(bytes);
    let (from, to) = (start.next_multiple_of(PAGE), end / PAGE * PAGE);
    if to > from {
        // SAFETY: `from..to` lies inside `v`'s spare capacity, memory `v`
        // owns and holds nothing in yet; making its pages present writes
        // nothing the program can see (they read as zeros, or as they
        // were), and its failure changes nothing.
        unsafe { libc::madvise(from as *mut libc::c_void, to - from, libc::MADV_POPULATE_WRITE) };
    }
}

/// Asks the processor to bring the cache line of `p` closer, without
/// waiting for it: a hint, never a read of `*p` in the program's sense.
#[inline]
pub(crate) fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads nothing the program can observe and cannot
    // fault, whatever the address; SSE is part of every x86-64 target.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}
