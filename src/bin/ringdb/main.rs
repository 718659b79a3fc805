//! `ringdb`: the command-line tool of the ringdb store.
//!
//! Subcommands:
//! - `bench` ([`bench`]): db_bench-style write and read benchmarks and the
//!   raw disk limit (`pwrite` + `fdatasync`), printed as aligned lines or
//!   JSON.
//! - `crash-writer` ([`crash`], hidden): the child process of the SIGKILL
//!   crash test; writes forever and reports every acknowledged write.
//!
//! Everything runs in one multi-threaded tokio runtime with a worker per CPU,
//! built here; ringdb itself runs its WAL and I/O on threads it owns.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

mod bench;
mod check;
mod crash;
mod report;
mod rng;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// ringdb: an embedded LSM-tree key-value store whose disk I/O goes through
/// io_uring.
#[derive(Debug, Parser)]
#[command(name = "ringdb", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run db_bench-style write and read benchmarks (and the raw disk's sync
    /// limit).
    Bench(bench::BenchArgs),
    /// Verify every checksum of a closed store; exit non-zero on damage.
    Check(check::CheckArgs),
    /// Crash-test child: write with many tasks until killed, reporting each
    /// acknowledged write on stdout.
    #[command(hide = true)]
    CrashWriter(crash::CrashWriterArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("ringdb: cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Bench(args) => bench::run(args).await,
            Command::Check(args) => check::run(args).await,
            Command::CrashWriter(args) => crash::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ringdb: {e}");
            ExitCode::FAILURE
        }
    }
}
