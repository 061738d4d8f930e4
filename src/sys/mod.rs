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
