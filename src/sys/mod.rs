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

#![allow(unsafe_code)] // the one place it is allowed (Cargo.toml, `[lints]`)

pub(crate) mod alloc;
pub(crate) mod map;
pub(crate) mod process;

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
