//! ringdb side by side with RocksDB, fjall and the raw disk, in one process
//! on one directory, alternating engines round by round.
//!
//! Workloads (keys: 16-byte zero-padded decimals, values: 100 bytes derived
//! from the key; the same bytes for every engine):
//! - `durable put` at 1, 4, 16, 64, 256 and 1,024 writers (tokio tasks for
//!   ringdb, OS threads for the others): random keys, each put acknowledged
//!   only once durable, for `--put-secs` per writer count.
//! - `fillseq` / `fillrandom`: `--num` buffered puts from one writer, in key
//!   order / in a fixed random permutation of the keys, then one sync, all
//!   timed.
//! - `readrandom`: `--reads` gets of random keys the fill wrote, on the
//!   reopened fillrandom store (flushed, so every key is in a table), with a
//!   block cache smaller than the data (`--small-cache`) and with one that
//!   holds it (`--big-cache`), at 1 and 16 readers.
//! - `readseq`: one scan of the whole store; `seekrandom`: `--reads / 10`
//!   seeks to random keys, each reading 10 more entries (big cache).
//!
//! Each round runs every engine through every workload, the engines in an
//! order rotated by one per round, so slow drift of the machine (other
//! load, the disk's state) spreads over all of them. Figures are medians
//! over the rounds. The program prints a markdown table with every figure
//! and ringdb's ratio to each peer, and writes SVG plots into `--out`.

mod engines;
mod plot;
mod workloads;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use engines::Kind;
use workloads::{Cell, Settings};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Command-line options.
#[derive(Debug, Parser)]
#[command(name = "ringdb-peers")]
struct Args {
    /// Directory for every engine's stores (each in its own subdirectory,
    /// removed after each round).
    #[arg(long)]
    dir: PathBuf,
    /// Where the SVG plots go. Default: --dir.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Engines, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = default_engines())]
    engines: Vec<String>,
    /// Rounds (each runs every engine through every workload).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Writer counts of the durable puts.
    #[arg(long, value_delimiter = ',', default_value = "1,4,16,64,256,1024")]
    writers: Vec<usize>,
    /// Seconds of durable puts per writer count, engine and round.
    #[arg(long, default_value_t = 2.0)]
    put_secs: f64,
    /// Keys the fills write (and the reads draw from).
    #[arg(long, default_value_t = 500_000)]
    num: u64,
    /// Gets per readrandom run.
    #[arg(long, default_value_t = 200_000)]
    reads: u64,
    /// Block cache smaller than the data. Default: an eighth of the data.
    #[arg(long)]
    small_cache: Option<u64>,
    /// Block cache that holds the data. Default: twice the data.
    #[arg(long)]
    big_cache: Option<u64>,
}

fn default_engines() -> Vec<String> {
    let mut engines = vec!["ringdb".to_string()];
    if cfg!(feature = "rocksdb") {
        engines.push("rocksdb".to_string());
    }
    engines.push("fjall".to_string());
    engines.push("raw".to_string());
    engines
}

/// Bytes of keys and values a fill writes.
fn data_bytes(num: u64) -> u64 {
    num * (workloads::KEY_SIZE_BYTES + workloads::VALUE_SIZE_BYTES) as u64
}

fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    let kinds: Vec<Kind> = args
        .engines
        .iter()
        .map(|e| Kind::parse(e))
        .collect::<Result<_, _>>()?;
    let data = data_bytes(args.num);
    let settings = Settings {
        num: args.num,
        reads: args.reads,
        put_duration: Duration::from_secs_f64(args.put_secs),
        writers: args.writers.clone(),
        small_cache_bytes: args.small_cache.unwrap_or(data / 8),
        big_cache_bytes: args.big_cache.unwrap_or(data * 2),
    };
    std::fs::create_dir_all(&args.dir)?;
    let out = args.out.clone().unwrap_or_else(|| args.dir.clone());
    std::fs::create_dir_all(&out)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    eprintln!(
        "peers: engines {:?}, {} rounds, writers {:?} x {} s, num {}, reads {}, caches {} / {} MiB, dir {}",
        args.engines,
        args.rounds,
        settings.writers,
        args.put_secs,
        settings.num,
        settings.reads,
        settings.small_cache_bytes >> 20,
        settings.big_cache_bytes >> 20,
        args.dir.display()
    );
    let mut cells: Vec<Cell> = Vec::new();
    for round in 0..args.rounds {
        for i in 0..kinds.len() {
            let kind = kinds[(i + round) % kinds.len()];
            let dir = args.dir.join(format!("{}-round{round}", kind.name()));
            let _ = std::fs::remove_dir_all(&dir);
            eprintln!("round {round}: {}", kind.name());
            let mut got = workloads::run_engine(&runtime, kind, &dir, &settings)?;
            for cell in &got {
                eprintln!("  {}", cell.describe());
            }
            cells.append(&mut got);
            std::fs::remove_dir_all(&dir)?;
        }
    }
    let medians = workloads::medians(&cells);
    print!("{}", markdown_table(&kinds, &medians));
    plot::write_all(&out, &kinds, &medians)?;
    eprintln!("plots written to {}", out.display());
    Ok(())
}

/// One row per workload and parameter: every engine's median throughput,
/// p50 and p99, then ringdb's throughput over each peer's.
fn markdown_table(kinds: &[Kind], medians: &BTreeMap<(String, usize, &'static str), Cell>) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let peers: Vec<Kind> = kinds.iter().copied().filter(|k| *k != Kind::Ringdb).collect();
    let _ = write!(out, "| workload | n |");
    for kind in kinds {
        let _ = write!(out, " {} ops/s | {} p50 / p99 µs |", kind.name(), kind.name());
    }
    for peer in &peers {
        let _ = write!(out, " ringdb / {} |", peer.name());
    }
    out.push('\n');
    out.push_str("|---|---:|");
    for _ in kinds {
        out.push_str("---:|---:|");
    }
    for _ in &peers {
        out.push_str("---:|");
    }
    out.push('\n');
    let mut rows: Vec<(String, usize)> = medians.keys().map(|(w, n, _)| (w.clone(), *n)).collect();
    rows.sort_by_key(|(w, n)| (workloads::workload_order(w), *n));
    rows.dedup();
    for (workload, n) in rows {
        let _ = write!(out, "| {workload} | {n} |");
        let get = |kind: Kind| medians.get(&(workload.clone(), n, kind.name()));
        for &kind in kinds {
            match get(kind) {
                Some(c) => {
                    let _ = write!(out, " {:.0} | {:.1} / {:.1} |", c.ops_per_sec, c.p50_us, c.p99_us);
                }
                None => out.push_str(" - | - |"),
            }
        }
        for &peer in &peers {
            match (get(Kind::Ringdb), get(peer)) {
                (Some(r), Some(p)) if p.ops_per_sec > 0.0 => {
                    let _ = write!(out, " {:.2}x |", r.ops_per_sec / p.ops_per_sec);
                }
                _ => out.push_str(" - |"),
            }
        }
        out.push('\n');
    }
    out
}
