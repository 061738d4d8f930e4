//! joblog's benchmark harnesses' shared parts: probes of the machine's
//! limits (`probe`), so every figure can be reported as a fraction of what
//! the hardware can do, the benchmark workload (`workload`), its rows as SQL
//! tables (`rows`), the SQL contenders (`sqlite`, and `postgres` when a
//! server is reachable) and the speed-up chart (`chart`); the loading of a
//! joblog store (`load`) and the views every harness times, in each of the
//! ways they are asked (`views`). The command line (`cli/`) never depends
//! on this crate.

pub mod chart;
pub mod load;
pub mod postgres;
pub mod probe;
pub mod rows;
pub mod sqlite;
pub mod views;
pub mod workload;

/// Every harness allocates through mimalloc, as the command line does: the
/// workload's generator and the engine both make and free millions of small
/// strings, where glibc's allocator slows as the heap grows.
#[global_allocator]
static ALLOCATOR: joblog::LargeBlocks<mimalloc::MiMalloc> = joblog::LargeBlocks(mimalloc::MiMalloc);
