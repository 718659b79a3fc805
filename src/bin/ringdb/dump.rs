//! `ringdb dump FILE`: one table, WAL segment or manifest in readable form,
//! read through the library's decoders (`ringdb::inspect`), as RocksDB's
//! `sst_dump` and `ldb dump_wal` / `manifest_dump` show theirs.
//!
//! The file's kind comes from its name (`NNNNNN.sst`, `NNNNNN.wal`,
//! `MANIFEST-NNNNNN`). Nothing is written, so a file of a store that is open
//! elsewhere can be dumped.
//!
//! Invariants:
//! - A damaged file ends the dump with an error naming file and offset; a
//!   WAL segment's damaged tail is printed (it is what recovery would see)
//!   and then reported as an error too.

use std::io::Write as _;
use std::path::PathBuf;

use clap::Args;
use ringdb::inspect::{self, Entry, FileKind};

use crate::BoxError;
use crate::store::to_hex;

/// `ringdb dump`.
#[derive(Debug, Args)]
pub struct DumpArgs {
    /// A table (`NNNNNN.sst`), WAL segment (`NNNNNN.wal`) or manifest
    /// (`MANIFEST-NNNNNN`) of a store.
    file: PathBuf,
    /// Print at most this many entries of a table.
    #[arg(long, default_value_t = u64::MAX)]
    limit: u64,
    /// Print a table's properties only.
    #[arg(long)]
    properties_only: bool,
    /// Print keys and values as hex instead of escaped text.
    #[arg(long)]
    hex: bool,
}

/// Runs `ringdb dump`.
#[expect(
    clippy::too_many_lines,
    reason = "one match over the kinds of file, each printed in place"
)]
pub async fn run(args: DumpArgs) -> Result<(), BoxError> {
    let path = &args.file;
    if !path.is_file() {
        return Err(format!("{}: no such file", path.display()).into());
    }
    let kind = FileKind::of(path).ok_or_else(|| {
        format!(
            "{}: not a store file (NNNNNN.sst, NNNNNN.wal or MANIFEST-NNNNNN)",
            path.display()
        )
    })?;
    let show = |bytes: &[u8]| {
        if args.hex {
            to_hex(bytes)
        } else {
            inspect::escape(bytes)
        }
    };
    let entry_line = |entry: &Entry| match entry.kind {
        "delete" => format!("{} @{} DEL", show(&entry.key), entry.seqno),
        "put" => format!("{} @{} => {}", show(&entry.key), entry.seqno, show(&entry.value)),
        "delete-range" => format!(
            "[{} .. {}) @{} DEL RANGE",
            show(&entry.key),
            show(&entry.value),
            entry.seqno
        ),
        kind => format!(
            "{} @{} {kind} => {}",
            show(&entry.key),
            entry.seqno,
            show(&entry.value)
        ),
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match kind {
        FileKind::Table(number) => {
            let limit = if args.properties_only {
                0
            } else {
                usize::try_from(args.limit).unwrap_or(usize::MAX)
            };
            let table = inspect::dump_table(path, limit).await?;
            writeln!(out, "table {number:06} ({})", path.display())?;
            for (name, value) in &table.properties {
                writeln!(out, "  {name}: {value}")?;
            }
            if !args.properties_only {
                writeln!(out, "entries:")?;
                for entry in &table.entries {
                    writeln!(out, "  {}", entry_line(entry))?;
                }
                if table.truncated {
                    writeln!(out, "  ... (more past --limit {})", args.limit)?;
                }
                if !table.range_tombstones.is_empty() {
                    writeln!(out, "range tombstones:")?;
                    for tombstone in &table.range_tombstones {
                        writeln!(out, "  {}", entry_line(tombstone))?;
                    }
                }
            }
        }
        FileKind::WalSegment(number) => {
            let wal = inspect::dump_wal(path).await?;
            writeln!(
                out,
                "wal segment {number:06} ({}): {} records",
                path.display(),
                wal.records.len()
            )?;
            for record in &wal.records {
                writeln!(
                    out,
                    "record at {}: {} entries, {} payload bytes",
                    record.offset,
                    record.entries.len(),
                    record.payload_size_bytes
                )?;
                for entry in &record.entries {
                    writeln!(out, "  {}", entry_line(entry))?;
                }
            }
            if let Some((offset, reason)) = wal.damage {
                writeln!(out, "damaged at {offset}: {reason}")?;
                out.flush()?;
                return Err(format!(
                    "{}: damaged at offset {offset}: {reason} (recovery drops this only as the torn tail of the newest segment)",
                    path.display()
                )
                .into());
            }
            writeln!(out, "end: clean")?;
        }
        FileKind::Manifest(number) => {
            let edits = inspect::dump_manifest(path).await?;
            writeln!(
                out,
                "manifest {number:06} ({}): {} edits",
                path.display(),
                edits.len()
            )?;
            for edit in &edits {
                writeln!(out, "edit {}:", edit.index)?;
                for line in &edit.lines {
                    writeln!(out, "  {line}")?;
                }
            }
        }
    }
    out.flush()?;
    Ok(())
}
