//! `ringdb`: the command-line tool of the ringdb store.
//!
//! Subcommands:
//! - `get`, `put`, `delete`, `scan`, `stats`, `checkpoint` ([`store`]): a
//!   store directory through the library's API, keys and values as escaped
//!   text or hex.
//! - `dump` ([`dump`]): one table, WAL segment or manifest in readable form.
//! - `bench` ([`bench`]): db_bench-style write and read benchmarks and the
//!   raw disk limit (`pwrite` + `fdatasync`), printed as aligned lines, a
//!   summary table, JSON or CSV.
//! - `crash-writer` ([`crash`], hidden): the child process of the SIGKILL
//!   crash test; writes forever and reports every acknowledged write.
//!
//! Everything runs in one multi-threaded tokio runtime with a worker per CPU,
//! built here; ringdb itself runs its WAL and I/O on threads it owns. A
//! tracing subscriber writes the library's warnings (an io_uring fallback, a
//! slow sync) to stderr; `RUST_LOG` sets the filter (default `warn`).

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
#![cfg_attr(
    test,
    allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

mod bench;
mod check;
mod crash;
mod dump;
mod progress;
mod report;
mod rng;
mod store;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Errors of a command: ringdb's, the OS's, a bad argument.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

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
    /// Print the value of a key.
    Get(store::GetArgs),
    /// Put a key (durable when the command returns).
    Put(store::PutArgs),
    /// Delete a key (durable when the command returns).
    Delete(store::DeleteArgs),
    /// Print the entries of a key range or prefix.
    Scan(store::ScanArgs),
    /// Print a store's levels, tables, sizes, amplification and cache
    /// figures.
    Stats(store::StatsArgs),
    /// Write a consistent copy of a store into an absent or empty
    /// directory, where it opens as a store of its own.
    Checkpoint(store::CheckpointArgs),
    /// Print one table, WAL segment or manifest in readable form.
    Dump(dump::DumpArgs),
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

/// Sends the library's tracing events to stderr, filtered by `RUST_LOG`
/// (default: warnings and errors).
fn install_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    install_tracing();
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
            Command::Get(args) => store::get(args).await,
            Command::Put(args) => store::put(args).await,
            Command::Delete(args) => store::delete(args).await,
            Command::Scan(args) => store::scan(args).await,
            Command::Stats(args) => store::stats(args).await,
            Command::Checkpoint(args) => store::checkpoint(args).await,
            Command::Dump(args) => dump::run(args).await,
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
