//! joblog's tools: the `joblog` command line (`cli`), and what the
//! benchmarks share: probes of the machine's limits (`probe`), so every
//! figure can be reported as a fraction of what the hardware can do, the
//! benchmark workload (`workload`), its rows as SQL tables (`rows`), and the
//! SQL contenders (`sqlite`, and `postgres` when a server is reachable).

pub mod chart;
pub mod cli;
pub mod postgres;
pub mod probe;
pub mod rows;
pub mod sqlite;
pub mod workload;
