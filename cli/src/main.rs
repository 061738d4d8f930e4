//! The `joblog` command line; see `docs/cli.md` and `joblog --help`.

fn main() -> std::process::ExitCode {
    joblog_cli::main()
}
