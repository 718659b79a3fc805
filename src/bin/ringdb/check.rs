//! `ringdb check DIR`: verifies every checksum of a closed store (the
//! tables its manifest references, the manifest, `CURRENT` and the WAL)
//! without opening anything for writing, prints each damaged file and
//! offset, and fails (exit status 1) if it found damage.

use std::error::Error as StdError;
use std::path::PathBuf;

/// Arguments of `ringdb check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The store's directory.
    dir: PathBuf,
}

/// Runs the check and prints its report; an error if anything is damaged.
pub async fn run(args: CheckArgs) -> Result<(), Box<dyn StdError + Send + Sync>> {
    let report = ringdb::check(&args.dir).await?;
    if let Some(manifest) = &report.manifest {
        println!("manifest: {}", manifest.display());
    }
    println!(
        "checked {} tables ({} data blocks) and {} WAL segments ({} records)",
        report.tables, report.data_blocks, report.wal_segments, report.wal_records
    );
    for note in &report.notes {
        println!("note: {note}");
    }
    for damage in &report.damage {
        println!("damaged: {damage}");
    }
    if report.is_clean() {
        println!("ok: no damage found");
        Ok(())
    } else {
        Err(format!("{} damaged places in {}", report.damage.len(), args.dir.display()).into())
    }
}
