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
//! And here: `prefetch`, the processor's hint to fetch a cache line;
//! `push_populated` and `filled`, a large vector's pages made present in
//! one call ahead of its writes (a large hash table's on 2 MiB pages, if
//! asked); and `short_slice`, the scheduler asked to run a thread that
//! mostly waits as soon as it wakes.

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
/// With `huge`, a large one asks for 2 MiB pages first ([`huge_pages`]):
/// a hash table is read at random, so with 4 KiB pages nearly every
/// lookup of a large one misses the processor's address cache, and each
/// miss walks the page tables (two of them in a virtual machine). Such
/// pages may cost more to make: the kernel may first gather 2 MiB of free
/// memory, and in a virtual machine that gave its free memory back to its
/// host, each is slower to fill than 4 KiB ones (docs/benchmarks.md,
/// "The id table made once"). Rows and lists, written and read in order,
/// keep 4 KiB pages (`alloc.rs`).
pub(crate) fn filled<T: Clone>(n: usize, value: T, huge: bool) -> Vec<T> {
    let mut v = Vec::with_capacity(n);
    if n * std::mem::size_of::<T>() >= POPULATE_LARGE {
        if huge {
            huge_pages(&mut v);
        }
        populate(&mut v, usize::MAX);
    }
    v.resize(n, value);
    v
}

/// Asks for 2 MiB pages for the whole 2 MiB stretches of `v`'s spare
/// capacity (transparent huge pages, where the system allows them on
/// request), over the small pages `alloc.rs` asks for its blocks of
/// `LARGE` bytes or more. A smaller block comes from the allocator `alloc`
/// wraps (all of them, in a program without it), which may keep the
/// advice with the memory once the table is freed: it changes only the
/// size of pages. A hint: refused, the pages stay 4 KiB.
fn huge_pages<T>(v: &mut Vec<T>) {
    const HUGE: usize = 2 << 20;
    let spare = v.spare_capacity_mut();
    let start = spare.as_ptr() as usize;
    let end = start + std::mem::size_of_val(spare);
    let (from, to) = (start.next_multiple_of(HUGE), end / HUGE * HUGE);
    if to > from {
        // SAFETY: `from..to` lies inside `v`'s spare capacity, memory `v`
        // owns and holds nothing in yet; the advice changes only the size
        // of the pages behind it, never what it reads, and its failure
        // changes nothing.
        unsafe { libc::madvise(from as *mut libc::c_void, to - from, libc::MADV_HUGEPAGE) };
    }
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

/// Asks the scheduler for the shortest time slice ([`SLICE_NS`]) for the
/// calling thread, its policy and priority unchanged. Linux (6.12 and
/// later) lets a thread of the normal policy that wakes with a shorter
/// slice than the running one take the core at once, instead of waiting
/// for the running thread's slice to end. For a thread that mostly waits
/// and runs a few microseconds when it wakes (the log's sync thread, woken
/// twice inside each sync): measured in docs/benchmarks.md. No privilege
/// is needed; older kernels ignore the slice. A hint: refused, nothing
/// changes, and the answer says whether it was taken.
pub(crate) fn short_slice() -> bool {
    const SCHED_OTHER: u32 = 0;
    const SCHED_BATCH: u32 = 3;
    const SCHED_FLAG_RESET_ON_FORK: u64 = 1;
    let Some(mut attr) = sched_attr() else { return false };
    if !matches!(attr.policy, SCHED_OTHER | SCHED_BATCH) {
        return false;
    }
    attr.flags &= SCHED_FLAG_RESET_ON_FORK;
    attr.runtime = SLICE_NS;
    // SAFETY: `attr` is a valid `struct sched_attr` of `attr.size` bytes
    // that the kernel only reads; it sets the calling thread's policy,
    // nice and reset-on-fork flag to what they were and its slice to
    // `SLICE_NS`.
    let set = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
    set == 0
}

/// The slice [`short_slice`] asks for: the least the kernel grants.
const SLICE_NS: u64 = 100_000;

/// `struct sched_attr` of `sched_setattr(2)`, its first version.
#[repr(C)]
#[derive(Default, Debug)]
struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    /// For the normal policies, the slice in nanoseconds (0: the default);
    /// the kernel keeps it within 0.1 to 100 ms.
    runtime: u64,
    deadline: u64,
    period: u64,
    util_min: u32,
    util_max: u32,
}

/// The calling thread's scheduling attributes.
fn sched_attr() -> Option<SchedAttr> {
    let size = std::mem::size_of::<SchedAttr>() as u32;
    let mut attr = SchedAttr::default();
    // SAFETY: `attr` is a valid, writable `struct sched_attr` of `size`
    // bytes, which the kernel fills for the calling thread (pid 0) and
    // writes nothing beyond.
    let got = unsafe { libc::syscall(libc::SYS_sched_getattr, 0, &mut attr as *mut SchedAttr, size, 0) };
    attr.size = size;
    (got == 0).then_some(attr)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The slice is taken, on a thread of its own, and nothing else of the
    /// thread's scheduling changes (its nice value raised first, so that a
    /// call that reset it would show). Skipped where the scheduler's
    /// attributes cannot be read or the test runs under another policy.
    #[test]
    fn a_short_slice_changes_the_slice_only() {
        std::thread::spawn(|| {
            let Some(before) = sched_attr() else { return eprintln!("skipped: sched_getattr is refused here") };
            if !matches!(before.policy, 0 | 3) {
                return eprintln!("skipped: the test runs under scheduling policy {}", before.policy);
            }
            // SAFETY: test only; raising one's own nice value needs no
            // privilege (at 19 already, it stays: a reset to 0 still shows).
            unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, (before.nice + 1).min(19)) };
            let before = sched_attr().expect("sched_getattr");
            assert!(short_slice());
            let after = sched_attr().expect("sched_getattr");
            assert_eq!((after.policy, after.nice, after.priority), (before.policy, before.nice, before.priority));
            // Kernels before 6.12 neither keep nor report a slice.
            assert!(after.runtime == SLICE_NS || before.runtime == 0, "{before:?} {after:?}");
        })
        .join()
        .unwrap();
    }
}
