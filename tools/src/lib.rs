//! joblog's tools: the `joblog` command line (`cli`), and what the
//! benchmarks share: probes of the machine's limits (`probe`), so every
//! figure can be reported as a fraction of what the hardware can do, and
//! the benchmark workload (`workload`).

pub mod chart;
pub mod cli;
pub mod probe;
pub mod workload;
