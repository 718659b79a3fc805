//! Opening a store: recovering the manifest, replaying the WAL, flushing
//! what it held, and sweeping what a crash left behind.
//!
//! Ownership: runs once, inside `Db::open`, before any task of the store
//! starts; it is the only code that removes or moves files at open.
//!
//! The sequence (every step may be cut by a crash; the next open redoes it):
//! 1. Read `CURRENT` and replay its manifest. No `CURRENT`: a new store if
//!    the directory holds no WAL segment and no table, else corruption
//!    naming `CURRENT`.
//! 2. Check that every table the recovered version names exists (else
//!    corruption naming the manifest and the table).
//! 3. Replay the WAL segments the manifest does not cover into a memtable.
//! 4. Raise the next file number above every table and manifest in the
//!    directory (and in `lost/`), so no file this open or the store creates
//!    ever meets a leftover of an earlier, interrupted life: creating a
//!    file never fails with "File exists".
//! 5. Write the recovered memtable to a level-0 table (as RocksDB does by
//!    default), so the store never depends on a WAL segment of an earlier
//!    life: the size of the store and the time to reopen it do not grow
//!    with the number of restarts. If the table write finds no space, the
//!    store starts with the replayed memtable instead and keeps the
//!    segments (a store must open and serve reads on a full disk).
//! 6. Start a new manifest (a snapshot edit: the recovered version plus
//!    that table, log number = the new WAL segment) and point `CURRENT` at
//!    it. Until `CURRENT` names it, the old state stands.
//! 7. Sweep: remove the WAL segments the new manifest covers, a half-made
//!    `CURRENT.dbtmp`, manifests `CURRENT` does not name, and unreferenced
//!    tables that are provably garbage; move those that are not into
//!    `lost/` (as RocksDB's repair does). Which tables are garbage is
//!    decided before step 5, from the state recovered in steps 1 to 3.
//!
//! When a table is garbage. A table no version references is removed only
//! when every entry it holds is also held by the recovered store: all its
//! seqnos lie below the next seqno the recovery reached. Seqnos up to the
//! manifest's last seqno are in the recovered version's tables (every
//! flush covering them is in the manifest, since flushes commit in seqno
//! order and a damaged manifest can only lose a suffix; a compaction's
//! inputs stay live until its edit commits, and were checked to exist);
//! seqnos above it were just replayed from the WAL. That covers the output
//! of a flush or compaction that did not commit, and the input of a
//! compaction that did. A table that cannot be opened is a torn, unsynced
//! output (a committed table is complete and synced before its edit) and is
//! removed too, unless the manifest lost a torn last edit, which might have
//! committed it: then it goes to `lost/`.
//!
//! A table holding a seqno the recovery never reached is committed data the
//! manifest lost (for instance a flush whose edit was cut from the manifest
//! after its WAL segments were removed): open fails with
//! `Error::Corruption` naming the manifest and the table, before it changes
//! anything. The manifest `CURRENT` named is removed once the new one is in
//! place, or kept in `lost/` if a torn last edit was dropped from it.
//!
//! WAL rules (`docs/format.md`, "Recovery across segments"):
//! - Segments are replayed in number order; seqnos must continue without a
//!   gap from one record to the next, across segments too. A gap is
//!   reported against the missing segment when segment numbers skip.
//! - A valid record naming another segment is corruption (files swapped or
//!   copied), never the end of the log.
//! - After a clean close (the manifest's last edit says so) the WAL must
//!   hold every seqno up to the close and have no damage at all.
//! - Otherwise, damage is a torn tail only if it has a torn write's shape:
//!   no valid record of the segment follows it, or the byte before the next
//!   valid record still holds the prefill's zeros. A flipped bit followed by
//!   valid records is corruption. A segment that ends in a torn tail is
//!   accepted only if it is the last segment holding records, or if the
//!   next segment with records begins exactly at the seqno after its last
//!   good record (a torn tail dropped by an earlier recovery).
//!
//! Invariants:
//! - Nothing is removed before the new manifest is durable and named by
//!   `CURRENT`, and nothing the recovered state might need is ever removed.
//! - A new file's name never exists already (step 4).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use crate::batch::decode_payload;
use crate::error::{Error, Result};
use crate::filename::{
    self, FileKind, LOST_DIR, manifest_number, manifest_path, table_number, table_path, wal_number, wal_path,
};
use crate::io::{Fs, OpenMode};
use crate::key::SeqNo;
use crate::limits::MAX_LOST_NAME_ATTEMPTS;
use crate::manifest::{TableMeta, VersionEdit, read_current, read_manifest_edits};
use crate::memtable::Memtable;
use crate::sst::{ReadStats, Table, TableOptions};
use crate::version::{ReplayedManifest, VersionSet};
use crate::wal::reader::{SegmentEnd, looks_torn, next_valid_record, scan_segment};

/// A recovered store, ready to run.
pub(crate) struct Opened {
    /// The version set, with its new manifest named by `CURRENT`.
    pub versions: VersionSet,
    /// The seqno the next write gets.
    pub next_seqno: SeqNo,
    /// The WAL segment the store writes to first (not created yet).
    pub segment_number: u64,
    /// Batches replayed from the WAL.
    pub records: u64,
    /// What the WAL replay recovered, if it could not be written to a table
    /// for lack of space (else empty): the store starts with it, and the
    /// replayed segments stay.
    pub memtable: Memtable,
}

/// What replaying the WAL found.
#[derive(Debug)]
pub(crate) struct Recovered {
    /// The seqno the next write gets.
    pub next_seqno: SeqNo,
    /// Highest segment number present (0 if none).
    pub max_segment: u64,
    /// Batches replayed.
    pub records: u64,
    /// Segments that held replayed records.
    pub replayed_segments: Vec<PathBuf>,
}

/// What the manifest said about the log it covers.
#[derive(Debug, Clone)]
pub(crate) struct LogBounds {
    /// WAL segments below this hold only flushed data.
    pub log_number: u64,
    /// The seqno the oldest replayed record must start at.
    pub first_seqno: SeqNo,
    /// Set after a clean close: the log holds every seqno up to it and no
    /// damage.
    pub closed_at_seqno: Option<SeqNo>,
    /// The manifest and offset of a torn last edit recovery dropped: named
    /// when the log does not start where the manifest says.
    pub torn_manifest: Option<(PathBuf, u64)>,
}

/// The manifest `CURRENT` named, as recovery found it.
struct LiveManifest {
    number: u64,
    /// Offset of a torn last edit that was dropped.
    torn_tail: Option<u64>,
}

/// Recovers the store in `dir` (steps 1 to 7 of the module doc).
pub(crate) async fn recover(
    fs: &Arc<dyn Fs>,
    manifest_fs: &Arc<dyn Fs>,
    dir: &Path,
    table_options: &TableOptions,
) -> Result<Opened> {
    let (mut replayed, live) = recover_manifest(fs, dir).await?;
    if let Some(live) = &live {
        check_tables_exist(fs, dir, &replayed, live.number).await?;
    }
    let memtable = Memtable::new();
    let bounds = LogBounds {
        log_number: replayed.log_number,
        first_seqno: replayed.last_seqno + 1,
        closed_at_seqno: replayed.closed_at_seqno,
        torn_manifest: live
            .as_ref()
            .and_then(|m| m.torn_tail.map(|offset| (manifest_path(dir, m.number), offset))),
    };
    let recovered = replay_wal(fs, dir, &bounds, &memtable).await?;
    let orphans = classify_orphans(fs, dir, &replayed, live.as_ref(), recovered.next_seqno).await?;
    let segment_number = recovered.max_segment + 1;
    replayed.next_file_number = replayed
        .next_file_number
        .max(highest_file_number(fs, dir).await? + 1);
    let mut memtable = memtable;
    if !memtable.is_empty() {
        sync_files(fs, &recovered.replayed_segments).await?;
        match flush_replayed(fs, dir, &mut replayed, &memtable, table_options).await {
            Ok(()) => {
                memtable = Memtable::new();
                replayed.last_seqno = replayed.last_seqno.max(recovered.next_seqno - 1);
                replayed.log_number = segment_number;
            }
            // NOTE: a store must open and serve reads on a full disk: it
            // starts with the replayed memtable, as if it had not flushed.
            Err(error @ Error::NoSpace { .. }) => {
                tracing::warn!(%error, "no space to flush the replayed WAL at open; its segments stay");
            }
            Err(error) => return Err(error),
        }
    } else {
        replayed.log_number = segment_number;
    }
    // NOTE: the version set writes the manifest from the background thread
    // from now on, through the filesystem that serves that thread.
    let versions = VersionSet::create(Arc::clone(manifest_fs), dir.to_path_buf(), replayed).await?;
    sweep(fs, dir, &versions, live.as_ref(), &orphans).await?;
    Ok(Opened {
        versions,
        next_seqno: recovered.next_seqno,
        segment_number,
        records: recovered.records,
        memtable,
    })
}

/// Step 5: writes `memtable` to a new level-0 table and adds it to
/// `replayed`. A table write that finds no space is `Error::NoSpace`, and
/// changes nothing.
async fn flush_replayed(
    fs: &Arc<dyn Fs>,
    dir: &Path,
    replayed: &mut ReplayedManifest,
    memtable: &Memtable,
    table_options: &TableOptions,
) -> Result<()> {
    let number = replayed.next_file_number;
    let entries = crate::db::flush::shadowed_versions_dropped(memtable.iter(), &[]);
    let contents = (entries, memtable.range_tombstones());
    let properties = crate::db::flush::write_table(fs, dir, number, contents, table_options)
        .await
        .map_err(Error::table_write_stopped)?;
    replayed.next_file_number += 1;
    let edit = VersionEdit {
        added: vec![(0, Arc::new(TableMeta::from_properties(number, &properties)))],
        ..VersionEdit::default()
    };
    replayed.version = replayed
        .version
        .apply(&edit)
        .map_err(|reason| Error::corruption(table_path(dir, number), 0, reason))?;
    Ok(())
}

/// Reads `CURRENT` and its manifest; a directory with neither is a new store.
async fn recover_manifest(fs: &Arc<dyn Fs>, dir: &Path) -> Result<(ReplayedManifest, Option<LiveManifest>)> {
    if let Some(number) = read_current(fs, dir).await? {
        let read = read_manifest_edits(fs, dir, number).await?;
        let replayed = ReplayedManifest::replay(&read.edits, &manifest_path(dir, number))?;
        let live = LiveManifest {
            number,
            torn_tail: read.torn_tail,
        };
        return Ok((replayed, Some(live)));
    }
    let names = list(fs, dir).await?;
    if let Some(name) = names
        .iter()
        .find(|n| matches!(filename::parse(n), Some(FileKind::Wal(_) | FileKind::Table(_))))
    {
        return Err(Error::corruption(
            FileKind::Current.path(dir),
            0,
            format!("CURRENT is missing, but the directory holds a store's files ({name})"),
        ));
    }
    // NOTE: with no CURRENT, no WAL and no table, nothing was ever
    // acknowledged; a manifest left by a crash while the store was being
    // created is removed.
    for name in names.iter().filter(|n| {
        matches!(
            filename::parse(n),
            Some(FileKind::Manifest(_) | FileKind::CurrentTemp)
        )
    }) {
        let path = dir.join(name);
        fs.remove_file(&path)
            .await
            .map_err(|e| Error::io("remove stray manifest", &path, e))?;
    }
    let replayed = ReplayedManifest {
        log_number: 1,
        next_file_number: 1,
        ..ReplayedManifest::default()
    };
    Ok((replayed, None))
}

/// Makes what was read from `paths` durable. After a kill (not a power
/// loss) the replayed segments may hold records still in the page cache
/// only; the table written from them must not outlive them.
async fn sync_files(fs: &Arc<dyn Fs>, paths: &[PathBuf]) -> Result<()> {
    for path in paths {
        let file = fs
            .open(path, OpenMode::ReadWrite)
            .await
            .map_err(|e| Error::io("open wal segment", path, e))?;
        file.sync_data()
            .await
            .map_err(|e| Error::io("sync wal segment", path, e))?;
    }
    Ok(())
}

async fn list(fs: &Arc<dyn Fs>, dir: &Path) -> Result<Vec<String>> {
    fs.list_dir(dir)
        .await
        .map_err(|e| Error::io("list directory", dir, e))
}

/// Every table the recovered version names must exist: a missing one means
/// the manifest lost edits (or the table was removed by hand), and opening
/// would fail reads later, or worse, sweep what the lost edits referenced.
async fn check_tables_exist(
    fs: &Arc<dyn Fs>,
    dir: &Path,
    replayed: &ReplayedManifest,
    manifest: u64,
) -> Result<()> {
    let present: HashSet<u64> = list(fs, dir)
        .await?
        .iter()
        .filter_map(|n| table_number(n))
        .collect();
    match replayed.version.tables().find(|t| !present.contains(&t.number)) {
        Some(table) => Err(Error::corruption(
            manifest_path(dir, manifest),
            0,
            format!(
                "the manifest names table {}, which is missing",
                table_path(dir, table.number).display()
            ),
        )),
        None => Ok(()),
    }
}

/// The highest table or manifest number of any file in `dir` or in its
/// `lost/` folder (0 if none).
async fn highest_file_number(fs: &Arc<dyn Fs>, dir: &Path) -> Result<u64> {
    let mut names = list(fs, dir).await?;
    let lost = dir.join(LOST_DIR);
    if names.iter().any(|n| n == LOST_DIR) {
        names.extend(
            list(fs, &lost)
                .await?
                .into_iter()
                .map(|n| filename::lost_original(&n).to_owned()),
        );
    }
    Ok(names
        .iter()
        .filter_map(|n| table_number(n).or_else(|| manifest_number(n)))
        .max()
        .unwrap_or(0))
}

/// Reads a whole file through the I/O layer, in bounded reads.
async fn read_whole(fs: &Arc<dyn Fs>, path: &Path) -> Result<Bytes> {
    let file = fs
        .open(path, OpenMode::Read)
        .await
        .map_err(|e| Error::io("open wal segment", path, e))?;
    let len = file
        .size_bytes()
        .await
        .map_err(|e| Error::io("stat wal segment", path, e))?;
    let data = crate::io::read_prefix(file.as_ref(), len)
        .await
        .map_err(|e| Error::io("read wal segment", path, e))?;
    Ok(Bytes::from(data))
}

/// Damage at the end of a segment, not yet known to be a harmless torn tail.
struct PendingDamage {
    path: PathBuf,
    offset: u64,
    reason: String,
}

impl PendingDamage {
    fn into_error(self) -> Error {
        Error::corruption(self.path, self.offset, self.reason)
    }
}

/// The error for a segment whose first record does not continue the log.
fn seqno_gap(
    dir: &Path,
    bounds: &LogBounds,
    previous: Option<u64>,
    (number, offset): (u64, u64),
    found: SeqNo,
    expected: SeqNo,
) -> Error {
    if let (None, Some((manifest, torn_at))) = (previous, &bounds.torn_manifest) {
        return Error::corruption(
            manifest,
            *torn_at,
            format!(
                "the manifest's last edit is torn, and the WAL starts at seqno {found} where {expected} \
                 was expected: the torn edit had committed a flush"
            ),
        );
    }
    let first_possible = previous.map_or(bounds.log_number, |p| p + 1);
    if first_possible < number {
        // NOTE: the numbers skip, and the log does not continue: the records
        // that are missing were in the segment that is missing.
        return Error::corruption(
            wal_path(dir, first_possible),
            0,
            format!(
                "WAL segment is missing: seqnos from {expected} are absent and {} starts at seqno {found}",
                wal_path(dir, number).display()
            ),
        );
    }
    Error::corruption(
        wal_path(dir, number),
        offset,
        format!("seqno {found} where {expected} was expected"),
    )
}

/// Replays every WAL segment in `dir` from `bounds.log_number` on into
/// `memtable`.
#[expect(
    clippy::too_many_lines,
    reason = "one pass over the segments that applies the WAL rules of the module doc in their order"
)]
pub(crate) async fn replay_wal(
    fs: &Arc<dyn Fs>,
    dir: &Path,
    bounds: &LogBounds,
    memtable: &Memtable,
) -> Result<Recovered> {
    let mut segments: Vec<u64> = list(fs, dir)
        .await?
        .iter()
        .filter_map(|n| wal_number(n))
        .collect();
    segments.sort_unstable();
    let max_segment = segments
        .last()
        .copied()
        .unwrap_or(0)
        .max(bounds.log_number.saturating_sub(1));
    segments.retain(|&n| n >= bounds.log_number);

    let mut recovered = Recovered {
        next_seqno: 1,
        max_segment,
        records: 0,
        replayed_segments: Vec::new(),
    };
    // NOTE: the log's first seqno is known (1 for a new store), never inferred
    // from the first record found: damage to the oldest records must not
    // pass for a log that starts later.
    let mut expected: SeqNo = bounds.first_seqno;
    let mut pending_damage: Option<PendingDamage> = None;
    let mut previous: Option<u64> = None;
    let mut last_path: Option<(PathBuf, u64)> = None;
    for number in segments {
        let path = wal_path(dir, number);
        let data = read_whole(fs, &path).await?;
        let scan = scan_segment(&data, number);
        if let Some(first) = scan.records.first() {
            if first.first_seqno != expected {
                return Err(pending_damage.map_or_else(
                    || {
                        seqno_gap(
                            dir,
                            bounds,
                            previous,
                            (number, first.offset),
                            first.first_seqno,
                            expected,
                        )
                    },
                    PendingDamage::into_error,
                ));
            }
            // The log went on after any earlier damage: it was a dropped torn tail.
            pending_damage = None;
        }
        let mut end_offset = 0;
        for record in &scan.records {
            let entries = decode_payload(&record.payload).map_err(|reason| {
                Error::corruption(&path, record.offset, format!("bad batch payload: {reason}"))
            })?;
            for (seqno, entry) in (record.first_seqno..).zip(entries) {
                memtable.insert(entry.key, seqno, entry.kind, entry.value);
                expected = seqno + 1;
            }
            recovered.records += 1;
            end_offset =
                record.offset + (crate::wal::format::HEADER_SIZE_BYTES + record.payload.len()) as u64;
        }
        match scan.end {
            SegmentEnd::Clean => {}
            SegmentEnd::Foreign { offset, segment } => {
                return Err(Error::corruption(
                    &path,
                    offset,
                    format!(
                        "a valid record of WAL segment {segment} in segment {number}: the files were swapped or copied"
                    ),
                ));
            }
            SegmentEnd::Damaged { offset, reason } => {
                if bounds.closed_at_seqno.is_some() {
                    return Err(Error::corruption(
                        &path,
                        offset,
                        format!("{reason} (the store was closed cleanly, so this is no torn tail)"),
                    ));
                }
                if let Some(next) = next_valid_record(&data, number, offset)
                    && !looks_torn(&data, offset, next)
                {
                    return Err(Error::corruption(
                        &path,
                        offset,
                        format!("{reason}, followed by a valid record at offset {next}: not a torn tail"),
                    ));
                }
                if pending_damage.is_none() || !scan.records.is_empty() {
                    pending_damage = Some(PendingDamage {
                        path: path.clone(),
                        offset,
                        reason,
                    });
                }
            }
        }
        if !scan.records.is_empty() {
            recovered.replayed_segments.push(path.clone());
            last_path = Some((path, end_offset));
        }
        previous = Some(number);
    }
    if let Some(closed_at) = bounds.closed_at_seqno
        && expected <= closed_at
    {
        let (path, offset) = last_path.unwrap_or_else(|| (wal_path(dir, bounds.log_number), 0));
        return Err(Error::corruption(
            path,
            offset,
            format!(
                "the store was closed cleanly at seqno {closed_at}, but the WAL ends at seqno {}",
                expected - 1
            ),
        ));
    }
    if let Some(damage) = pending_damage {
        tracing::warn!(
            path = %damage.path.display(),
            offset = damage.offset,
            reason = %damage.reason,
            "dropping the torn tail of the newest WAL segment"
        );
    }
    recovered.next_seqno = expected;
    Ok(recovered)
}

/// Unreferenced tables, sorted by what the sweep does with them.
#[derive(Debug, Default)]
struct Orphans {
    /// Provably garbage: removed.
    remove: Vec<u64>,
    /// Unreadable while the manifest lost a torn edit: moved to `lost/`.
    keep_aside: Vec<u64>,
}

/// Sorts the tables no recovered version references (the rule in the
/// module doc); fails if one holds data the recovery did not reach.
async fn classify_orphans(
    fs: &Arc<dyn Fs>,
    dir: &Path,
    replayed: &ReplayedManifest,
    live: Option<&LiveManifest>,
    next_seqno: SeqNo,
) -> Result<Orphans> {
    let referenced: HashSet<u64> = replayed.version.tables().map(|t| t.number).collect();
    let torn_tail = live.and_then(|m| m.torn_tail);
    let mut orphans = Orphans::default();
    for number in list(fs, dir).await?.iter().filter_map(|n| table_number(n)) {
        if referenced.contains(&number) {
            continue;
        }
        let path = table_path(dir, number);
        let file = fs
            .open(&path, OpenMode::Read)
            .await
            .map_err(|e| Error::io("open unreferenced table", &path, e))?;
        let size = file
            .size_bytes()
            .await
            .map_err(|e| Error::io("stat unreferenced table", &path, e))?;
        let largest_seqno =
            match Table::open(file, path.clone(), number, size, None, Arc::new(ReadStats::new())).await {
                Ok(table) => table.properties().largest_seqno,
                Err(Error::Corruption { .. }) if torn_tail.is_none() => {
                    orphans.remove.push(number);
                    continue;
                }
                Err(Error::Corruption { .. }) => {
                    orphans.keep_aside.push(number);
                    continue;
                }
                Err(error) => return Err(error),
            };
        if largest_seqno < next_seqno {
            orphans.remove.push(number);
            continue;
        }
        let manifest = live.map_or_else(|| FileKind::Current.path(dir), |m| manifest_path(dir, m.number));
        return Err(Error::corruption(
            manifest,
            torn_tail.unwrap_or(0),
            format!(
                "{} holds seqno {largest_seqno}, but the manifest and the WAL end at seqno {}: \
                 the manifest lost the edit that committed it{}",
                path.display(),
                next_seqno - 1,
                if torn_tail.is_some() {
                    " (its last edit is torn)"
                } else {
                    ""
                }
            ),
        ));
    }
    Ok(orphans)
}

/// Moves `name` from `dir` into `dir/lost/`, under a name not taken yet.
async fn move_to_lost(fs: &Arc<dyn Fs>, dir: &Path, name: &str) -> Result<PathBuf> {
    let lost = dir.join(LOST_DIR);
    fs.create_dir_all(&lost)
        .await
        .map_err(|e| Error::io("create lost folder", &lost, e))?;
    let taken: HashSet<String> = list(fs, &lost).await?.into_iter().collect();
    let target = (0..MAX_LOST_NAME_ATTEMPTS)
        .map(|attempt| filename::lost_name(name, attempt))
        .find(|candidate| !taken.contains(candidate))
        .ok_or_else(|| Error::corruption(&lost, 0, format!("no free name for {name} in the lost folder")))?;
    let (from, to) = (dir.join(name), lost.join(target));
    fs.rename(&from, &to)
        .await
        .map_err(|e| Error::io("move to the lost folder", &from, e))?;
    fs.sync_dir(&lost)
        .await
        .map_err(|e| Error::io("sync directory", &lost, e))?;
    tracing::warn!(
        from = %from.display(),
        to = %to.display(),
        "kept a file the recovered manifest does not reference: it may hold committed data"
    );
    Ok(to)
}

/// Step 7 of the module doc. Runs after the new manifest is durable and
/// named by `CURRENT`.
async fn sweep(
    fs: &Arc<dyn Fs>,
    dir: &Path,
    versions: &VersionSet,
    live: Option<&LiveManifest>,
    orphans: &Orphans,
) -> Result<()> {
    let mut doomed: Vec<PathBuf> = orphans.remove.iter().map(|&n| table_path(dir, n)).collect();
    for &number in &orphans.keep_aside {
        move_to_lost(fs, dir, &FileKind::Table(number).name()).await?;
    }
    for name in list(fs, dir).await? {
        match filename::parse(&name) {
            Some(FileKind::Wal(number)) if number < versions.log_number => doomed.push(dir.join(&name)),
            Some(FileKind::Manifest(number)) if number != versions.manifest_number() => {
                if live.is_some_and(|m| m.number == number && m.torn_tail.is_some()) {
                    move_to_lost(fs, dir, &name).await?;
                } else {
                    doomed.push(dir.join(&name));
                }
            }
            Some(FileKind::CurrentTemp) => doomed.push(dir.join(&name)),
            _ => {}
        }
    }
    for path in &doomed {
        fs.remove_file(path)
            .await
            .map_err(|e| Error::io("remove obsolete file", path, e))?;
    }
    if !doomed.is_empty() {
        fs.sync_dir(dir)
            .await
            .map_err(|e| Error::io("sync directory", dir, e))?;
    }
    Ok(())
}
