//! `ringdb get | put | delete | scan | stats | checkpoint`: a store
//! directory from the command line, through the library's public API (as
//! `ldb` is RocksDB's).
//!
//! Keys and values are read and printed as escaped text (printable ASCII as
//! it is, `\\` and `\xNN` for the rest; `ringdb::inspect::escape`), or as
//! hex with `--hex`. Every command but `put --create` refuses a directory
//! that holds no store, so that a mistyped path never creates one.
//!
//! Invariants:
//! - Every command closes the store before it returns, also after an error,
//!   so its writes are synced and its `LOCK` released; one that succeeded
//!   flushes the memtable first, so WAL segments do not pile up.
//! - A missing, locked or damaged store is an `Err` with the directory or
//!   file named; nothing here panics on what the disk holds.

use std::io::Write as _;
use std::ops::Bound;
use std::path::{Path, PathBuf};

use clap::Args;
use futures::TryStreamExt as _;
use ringdb::inspect::{escape, unescape};
use ringdb::{Db, Options};

use crate::BoxError;
use crate::bench::IoArg;

/// WAL segment size of the stores the command opens: opening preallocates
/// (zero-fills) a new segment, and a get should not write the library's
/// default 64 MiB to do it.
const CLI_WAL_SEGMENT_SIZE_BYTES: u64 = 1024 * 1024;

/// How keys and values are written on the command line and printed.
#[derive(Debug, Clone, Copy, Args)]
pub struct Encoding {
    /// Keys and values (given and printed) are hex instead of escaped text.
    #[arg(long)]
    hex: bool,
}

impl Encoding {
    fn parse(self, text: &str) -> Result<Vec<u8>, BoxError> {
        if self.hex {
            from_hex(text)
        } else {
            Ok(unescape(text)?)
        }
    }

    fn show(self, bytes: &[u8]) -> String {
        if self.hex { to_hex(bytes) } else { escape(bytes) }
    }
}

/// The store directory and how to open it.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// The store's directory.
    dir: PathBuf,
    /// I/O backend.
    #[arg(long, value_enum, default_value = "auto")]
    io: IoArg,
}

/// `ringdb get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The key.
    key: String,
    #[command(flatten)]
    encoding: Encoding,
}

/// `ringdb put`.
#[derive(Debug, Args)]
pub struct PutArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The key.
    key: String,
    /// The value.
    value: String,
    #[command(flatten)]
    encoding: Encoding,
    /// Create the store if the directory holds none.
    #[arg(long)]
    create: bool,
}

/// `ringdb delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The key.
    key: String,
    #[command(flatten)]
    encoding: Encoding,
}

/// `ringdb scan`.
#[derive(Debug, Args)]
pub struct ScanArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// First key (inclusive). Default: the first key of the store.
    start: Option<String>,
    /// Key to stop before (exclusive). Default: past the last key.
    end: Option<String>,
    /// Only keys that start with this prefix (instead of START and END).
    #[arg(long, conflicts_with_all = ["start", "end"])]
    prefix: Option<String>,
    /// Descending key order.
    #[arg(long)]
    reverse: bool,
    /// Print at most this many entries.
    #[arg(long)]
    limit: Option<u64>,
    /// Print keys only.
    #[arg(long)]
    keys_only: bool,
    #[command(flatten)]
    encoding: Encoding,
}

/// `ringdb stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Print one JSON object instead of lines.
    #[arg(long)]
    json: bool,
}

/// `ringdb checkpoint`.
#[derive(Debug, Args)]
pub struct CheckpointArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Directory to write the checkpoint into: absent or empty, outside the
    /// store's directory.
    #[arg(value_name = "DST")]
    target: PathBuf,
}

/// Opens the store in `args.dir`, refusing a directory without one unless
/// `create`.
async fn open(args: &StoreArgs, create: bool) -> Result<Db, BoxError> {
    let dir = &args.dir;
    if !create {
        if !dir.is_dir() {
            return Err(format!(
                "{}: no such directory (put --create makes a store)",
                dir.display()
            )
            .into());
        }
        if !dir.join("CURRENT").is_file() {
            return Err(format!("{}: holds no ringdb store (no CURRENT file)", dir.display()).into());
        }
    }
    let options = Options::default()
        .io_backend(args.io.into())
        .create_if_missing(create)
        .wal_segment_size_bytes(CLI_WAL_SEGMENT_SIZE_BYTES);
    Db::open(dir, options)
        .await
        .map_err(|e| format!("open {}: {e}", dir.display()).into())
}

/// Runs `body` on the store, then closes it whatever `body` returned.
async fn with_store<T>(
    args: &StoreArgs,
    create: bool,
    body: impl AsyncFnOnce(&Db) -> Result<T, BoxError>,
) -> Result<T, BoxError> {
    let db = open(args, create).await?;
    let mut result = body(&db).await;
    // NOTE: every open starts a new WAL segment and a segment goes only
    // once the memtables it covers are flushed, so a command that left the
    // memtable full would leave one more segment behind each time it runs.
    if result.is_ok()
        && db.stats().memtable_size_bytes > 0
        && let Err(e) = db.flush().await
    {
        result = Err(format!("flush {}: {e}", args.dir.display()).into());
    }
    let closed = db.close().await;
    let value = result?;
    closed.map_err(|e| format!("close {}: {e}", args.dir.display()))?;
    Ok(value)
}

/// `ringdb get`: prints the value, or fails with "not found".
pub async fn get(args: GetArgs) -> Result<(), BoxError> {
    let key = args.encoding.parse(&args.key)?;
    let value = with_store(&args.store, false, async |db| Ok(db.get(&key).await?)).await?;
    match value {
        Some(value) => {
            println!("{}", args.encoding.show(&value));
            Ok(())
        }
        None => Err(format!("{}: not found", args.key).into()),
    }
}

/// `ringdb put`: a durable put.
pub async fn put(args: PutArgs) -> Result<(), BoxError> {
    let key = args.encoding.parse(&args.key)?;
    let value = args.encoding.parse(&args.value)?;
    with_store(&args.store, args.create, async |db| {
        Ok(db.put(&key, &value).await?)
    })
    .await
}

/// `ringdb delete`: a durable delete (of a key that may not exist).
pub async fn delete(args: DeleteArgs) -> Result<(), BoxError> {
    let key = args.encoding.parse(&args.key)?;
    with_store(&args.store, false, async |db| Ok(db.delete(&key).await?)).await
}

/// `ringdb scan`: one line per entry, `key => value` (or the key alone).
pub async fn scan(args: ScanArgs) -> Result<(), BoxError> {
    let encoding = args.encoding;
    let bound = |text: &Option<String>, included: bool| -> Result<Bound<Vec<u8>>, BoxError> {
        Ok(match text {
            None => Bound::Unbounded,
            Some(text) if included => Bound::Included(encoding.parse(text)?),
            Some(text) => Bound::Excluded(encoding.parse(text)?),
        })
    };
    let range = (bound(&args.start, true)?, bound(&args.end, false)?);
    let prefix = args.prefix.as_deref().map(|p| encoding.parse(p)).transpose()?;
    let limit = args.limit.unwrap_or(u64::MAX);
    with_store(&args.store, false, async |db| {
        let scan = match &prefix {
            Some(prefix) => db.scan_prefix(prefix),
            None => db.scan(range),
        };
        let mut scan = if args.reverse { scan.rev() } else { scan };
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        let mut printed = 0u64;
        while printed < limit {
            let Some((key, value)) = scan.try_next().await? else {
                break;
            };
            if args.keys_only {
                writeln!(out, "{}", encoding.show(&key))?;
            } else {
                writeln!(out, "{} => {}", encoding.show(&key), encoding.show(&value))?;
            }
            printed += 1;
        }
        out.flush()?;
        Ok(())
    })
    .await
}

/// `ringdb checkpoint`: a consistent copy of the store in `target` that
/// opens as a store of its own (`Db::checkpoint`), then one line naming
/// what it holds.
pub async fn checkpoint(args: CheckpointArgs) -> Result<(), BoxError> {
    let target = &args.target;
    refuse_checkpoint_target(&args.store.dir, target)?;
    with_store(&args.store, false, async |db| {
        db.checkpoint(target).await.map_err(|e| {
            format!(
                "checkpoint into {}: {e} (a partial checkpoint has no CURRENT file; remove it)",
                target.display()
            )
            .into()
        })
    })
    .await?;
    let files = std::fs::read_dir(target)
        .map_err(|e| format!("{}: {e}", target.display()))?
        .count();
    println!(
        "checkpoint {}: {files} files, {} bytes",
        target.display(),
        dir_size_bytes(target)?
    );
    Ok(())
}

/// Refuses a checkpoint target that is not a directory, holds files, or lies
/// inside the store (whose directory the library treats as flat).
fn refuse_checkpoint_target(store: &Path, target: &Path) -> Result<(), BoxError> {
    if target.exists() {
        if !target.is_dir() {
            return Err(format!("{}: not a directory", target.display()).into());
        }
        if std::fs::read_dir(target)
            .map_err(|e| format!("{}: {e}", target.display()))?
            .next()
            .is_some()
        {
            return Err(format!(
                "{}: not empty (a checkpoint goes into an absent or empty directory)",
                target.display()
            )
            .into());
        }
    }
    // NOTE: the target may not exist yet; its nearest existing ancestor
    // (the current directory for a relative name) says where it will be.
    let existing = target
        .ancestors()
        .map(|a| {
            if a.as_os_str().is_empty() {
                Path::new(".")
            } else {
                a
            }
        })
        .find(|a| a.exists());
    let (Ok(store), Some(existing)) = (store.canonicalize(), existing) else {
        return Ok(());
    };
    let existing = existing
        .canonicalize()
        .map_err(|e| format!("{}: {e}", existing.display()))?;
    if existing.starts_with(&store) {
        return Err(format!(
            "{}: inside the store's directory {}",
            target.display(),
            store.display()
        )
        .into());
    }
    Ok(())
}

/// What `ringdb stats` prints: the library's counters and what a scan of the
/// store adds.
#[derive(Debug, serde::Serialize)]
struct StoreStats {
    dir: String,
    /// Bytes of every file in the directory (WAL segments are preallocated,
    /// so they count at their full size).
    size_on_disk_bytes: u64,
    /// Bytes of the tables of every level.
    table_bytes: u64,
    /// Live keys and the bytes of their keys and values.
    live_keys: u64,
    live_bytes: u64,
    /// `table_bytes / live_bytes`: what old versions, tombstones, index and
    /// filters cost. `None` for an empty store.
    space_amplification: Option<f64>,
    /// `ringdb::Stats` after the scan: cache figures count this process's
    /// reads (the scan's), write figures this process's writes.
    stats: ringdb::Stats,
}

/// `ringdb stats`: the tree's shape, sizes, amplification and cache figures.
pub async fn stats(args: StatsArgs) -> Result<(), BoxError> {
    let dir = args.store.dir.clone();
    let report = with_store(&args.store, false, async |db| {
        // NOTE: the memtable replayed from the WAL is flushed first, so that
        // every live entry is in a table and space amplification compares
        // like with like.
        db.flush().await?;
        let (live_keys, live_bytes) = db
            .scan::<&[u8], _>(..)
            .try_fold((0u64, 0u64), |(keys, bytes), (k, v)| async move {
                Ok((keys + 1, bytes + (k.len() + v.len()) as u64))
            })
            .await?;
        let stats = db.stats();
        let table_bytes = stats.level_size_bytes.iter().sum::<u64>();
        Ok(StoreStats {
            dir: dir.display().to_string(),
            size_on_disk_bytes: dir_size_bytes(&dir)?,
            table_bytes,
            live_keys,
            live_bytes,
            space_amplification: (live_bytes > 0).then(|| table_bytes as f64 / live_bytes as f64),
            stats,
        })
    })
    .await?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", human_stats(&report));
    }
    Ok(())
}

fn human_stats(r: &StoreStats) -> String {
    use std::fmt::Write as _;
    let s = &r.stats;
    let mut out = String::new();
    let _ = writeln!(out, "store            {}", r.dir);
    let _ = writeln!(
        out,
        "size on disk     {} bytes (WAL segments preallocated)",
        r.size_on_disk_bytes
    );
    let _ = writeln!(out, "tables           {} bytes", r.table_bytes);
    let _ = writeln!(
        out,
        "live keys        {} ({} bytes of keys and values)",
        r.live_keys, r.live_bytes
    );
    match r.space_amplification {
        Some(amp) => writeln!(out, "space amp        {amp:.2} (table bytes per live byte)"),
        None => writeln!(out, "space amp        - (empty store)"),
    }
    .ok();
    let _ = writeln!(
        out,
        "write amp        {:.2} (this process's flushes)",
        s.write_amplification
    );
    let _ = writeln!(out, "level  tables  size_bytes");
    for (level, (tables, size)) in s.level_tables.iter().zip(&s.level_size_bytes).enumerate() {
        let _ = writeln!(out, "L{level:<5} {tables:>6}  {size:>10}");
    }
    let _ = writeln!(out, "memtable         {} bytes", s.memtable_size_bytes);
    let _ = writeln!(out, "visible seqno    {}", s.visible_seqno);
    let _ = writeln!(
        out,
        "block cache      {} hits, {} misses, {} block reads, {} bloom negatives (this command's scan)",
        s.block_cache_hits, s.block_cache_misses, s.block_reads, s.bloom_negatives
    );
    let _ = writeln!(out, "io backend       {}", s.io_backend);
    out
}

/// Bytes of the regular files in `dir` (not recursive: a store is flat).
fn dir_size_bytes(dir: &Path) -> Result<u64, BoxError> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let metadata = entry?.metadata()?;
        if metadata.is_file() {
            total += metadata.len();
        }
    }
    Ok(total)
}

/// `bytes` as lowercase hex.
pub fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The bytes a hex text stands for.
pub fn from_hex(text: &str) -> Result<Vec<u8>, BoxError> {
    let text = text.strip_prefix("0x").unwrap_or(text);
    if !text.len().is_multiple_of(2) {
        return Err(format!("hex {text:?} has an odd number of digits").into());
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or_else(|| format!("bad hex {text:?}").into())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        let bytes = [0u8, 1, 0xab, 0xff];
        assert_eq!(to_hex(&bytes), "0001abff");
        assert_eq!(from_hex("0001abff").unwrap(), bytes);
        assert_eq!(from_hex("0x0a").unwrap(), [10]);
        assert!(from_hex("abc").is_err());
        assert!(from_hex("zz").is_err());
    }
}
