//! Hot paths of the event log, so that regressions show up. Whole-system
//! figures next to the machine's limits come from `joblog-logbench` (bench/).

// `criterion_group!` makes an undocumented public function; a bench is no API.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use joblog::log::format::{encode_frame_header, read_frame, scan, FrameRead, SegmentHeader, SeqRule, HEADER_LEN};
use joblog::log::{Batch, Log, LogConfig, Sync};

const EVENT: [u8; 100] = [b'e'; 100];

fn frames(c: &mut Criterion) {
    let mut g = c.benchmark_group("frame");
    g.throughput(Throughput::Elements(1));
    g.bench_function("encode_header_100B", |b| b.iter(|| encode_frame_header(std::hint::black_box(42), 0, &EVENT)));
    let mut seg = SegmentHeader::new(1).encode().to_vec();
    seg.extend_from_slice(&encode_frame_header(1, 0, &EVENT));
    seg.extend_from_slice(&EVENT);
    g.bench_function("read_verify_100B", |b| {
        b.iter(|| match read_frame(std::hint::black_box(&seg), HEADER_LEN) {
            FrameRead::Frame(f) => f.seq,
            _ => unreachable!(),
        })
    });
    g.finish();

    // Scanning a 1 MiB segment of 100-byte events, as recovery does.
    let mut seg = SegmentHeader::new(1).encode().to_vec();
    let mut n = 0u64;
    while seg.len() < (1 << 20) {
        n += 1;
        seg.extend_from_slice(&encode_frame_header(n, 0, &EVENT));
        seg.extend_from_slice(&EVENT);
    }
    let mut g = c.benchmark_group("segment");
    g.throughput(Throughput::Bytes(seg.len() as u64));
    g.bench_function("scan_1MiB", |b| b.iter(|| scan(&seg, seg.len(), 1, SeqRule::Contiguous).frames));
    g.finish();
}

fn append(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig { sync: Sync::Never, ..LogConfig::default() }).unwrap();
    let mut g = c.benchmark_group("append_never");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("batch_of_1000_100B", |b| {
        b.iter_batched(
            || Batch::from_payloads(std::iter::repeat_n(&EVENT[..], 1000)),
            |batch| log.append_batch(batch).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.throughput(Throughput::Elements(1));
    let mut inflight = std::collections::VecDeque::new();
    g.bench_function("single_100B_pipelined", |b| {
        b.iter(|| {
            inflight.push_back(log.submit(Batch::from_payloads([&EVENT[..]])).unwrap());
            if inflight.len() >= 1024 {
                inflight.pop_front().unwrap().wait().unwrap();
            }
        })
    });
    g.finish();
}

fn read(c: &mut Criterion) {
    // A 64 MiB log of 100-byte events, read and verified end to end.
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig { sync: Sync::Never, ..LogConfig::default() }).unwrap();
    let mut batch = Batch::new();
    for _ in 0..(64 << 20) / 124 {
        batch.push(&EVENT);
        if batch.len() == 1000 {
            log.append_batch(std::mem::take(&mut batch)).unwrap();
        }
    }
    let bytes: u64 = log.segments().iter().map(|s| s.published_bytes).sum();
    let mut g = c.benchmark_group("read");
    g.throughput(Throughput::Bytes(bytes));
    g.sample_size(10);
    g.bench_function("iter_verify_64MiB", |b| {
        b.iter(|| log.iter_from(1).map(|r| r.unwrap().payload().len()).sum::<usize>())
    });
    g.bench_function("scan_verify_64MiB", |b| {
        b.iter(|| {
            let mut n = 0usize;
            log.scan_from(1, |r| {
                n += r.payload.len();
                Ok::<_, joblog::log::LogError>(std::ops::ControlFlow::Continue(()))
            })
            .unwrap();
            n
        })
    });
    g.finish();
}

criterion_group!(benches, frames, append, read);
criterion_main!(benches);
