//! Writes a log of job events, closes it, reopens it and replays it: the
//! smallest tour of joblog's storage. `cargo run --release --example log_demo [DIR]`

use joblog::codec;
use joblog::log::{Batch, Log, LogConfig};

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Transition {
    job: u64,
    state: String,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).map(std::path::PathBuf::from).unwrap_or_else(|| "joblog-data/segments".into());
    let log = Log::open(&dir, LogConfig::default())?;
    println!("opened {} (recovery: {:?})", dir.display(), log.recovery());
    let start = log.next_seq();
    for job in 0..1000u64 {
        // Each job's three transitions go in as one atomic batch.
        let mut batch = Batch::new();
        for state in ["Ready", "Locked", "Completed"] {
            batch.push(&codec::encode(&Transition { job, state: state.into() })?);
        }
        log.append_batch(batch)?;
    }
    log.close()?;

    let log = Log::open(&dir, LogConfig::default())?;
    let mut completed = 0;
    let mut events = 0;
    for record in log.iter_from(start) {
        let t: Transition = codec::decode(record?.payload())?;
        events += 1;
        completed += usize::from(t.state == "Completed");
    }
    let report = log.verify()?;
    println!(
        "replayed {events} events from sequence {start}: {completed} jobs completed; verify: {} segments, {} frames, ok = {}",
        report.segments,
        report.frames,
        report.ok()
    );
    Ok(())
}
