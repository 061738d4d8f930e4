//! The `joblog` command line; see `docs/cli.md` and `joblog --help`.

/// mimalloc, not glibc's allocator: opening a store and folding its log
/// make and free millions of small allocations, which glibc's allocator
/// slows down on as the heap grows (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: joblog::LargeBlocks<mimalloc::MiMalloc> = joblog::LargeBlocks(mimalloc::MiMalloc);

fn main() -> std::process::ExitCode {
    joblog_cli::main()
}
