//! Shared pieces of joblog's tools: probes of the machine's limits, so every
//! benchmark can report its figures as a fraction of what the hardware can do.

pub mod probe;
pub mod workload;
