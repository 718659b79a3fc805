//! Versions: immutable snapshots of which tables make up the tree.
//!
//! Ownership: `VersionSet` sits behind an async mutex in the store; the task
//! holding it (flush or compaction) is the only one that writes the
//! manifest. Readers hold an `Arc<Version>` for as long as they read.
//!
//! Invariants:
//! - Level 0 is ordered newest first (largest seqno first); tables in it may
//!   overlap.
//! - Levels 1 and below are ordered by smallest key and do not overlap.
//! - A table number appears at most once in a version.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};
use crate::io::Fs;
use crate::key::SeqNo;
use crate::limits::MAX_MANIFEST_SIZE_BYTES;
use crate::manifest::{ManifestWriter, NUM_LEVELS, TableMeta, VersionEdit};

/// The tables of the tree at one moment.
#[derive(Debug, Clone, Default)]
pub struct Version {
    /// Tables per level; see the module invariants for their order.
    pub levels: [Vec<Arc<TableMeta>>; NUM_LEVELS],
}

impl Version {
    /// The version after `edit`, or a corruption reason if the edit does not
    /// fit (deletes an absent table, adds a present one).
    pub fn apply(&self, edit: &VersionEdit) -> std::result::Result<Version, String> {
        let mut next = self.clone();
        for (level, number) in &edit.deleted {
            let tables = next.levels.get_mut(*level).ok_or("level out of range")?;
            let before = tables.len();
            tables.retain(|t| t.number != *number);
            if tables.len() == before {
                return Err(format!("edit deletes table {number}, absent from level {level}"));
            }
        }
        for (level, table) in &edit.added {
            if next.levels.iter().flatten().any(|t| t.number == table.number) {
                return Err(format!("edit adds table {} twice", table.number));
            }
            next.levels
                .get_mut(*level)
                .ok_or("level out of range")?
                .push(Arc::clone(table));
        }
        if let Some(l0) = next.levels.first_mut() {
            l0.sort_by(|a, b| {
                b.largest_seqno
                    .cmp(&a.largest_seqno)
                    .then(b.number.cmp(&a.number))
            });
        }
        for tables in next.levels.iter_mut().skip(1) {
            tables.sort_by(|a, b| a.smallest.cmp(&b.smallest));
        }
        Ok(next)
    }

    /// Every table, all levels.
    pub fn tables(&self) -> impl Iterator<Item = &Arc<TableMeta>> {
        self.levels.iter().flatten()
    }

    /// Number of tables in `level`.
    pub fn level_len(&self, level: usize) -> usize {
        self.levels.get(level).map_or(0, Vec::len)
    }

    /// Bytes of the tables in `level`.
    pub fn level_size_bytes(&self, level: usize) -> u64 {
        self.levels
            .get(level)
            .map_or(0, |tables| tables.iter().map(|t| t.size_bytes).sum())
    }
}

/// The current version plus the manifest and numbering state.
#[derive(Debug)]
pub struct VersionSet {
    dir: PathBuf,
    fs: Arc<dyn Fs>,
    current: Arc<Version>,
    manifest: ManifestWriter,
    /// WAL segments below this are flushed.
    pub log_number: u64,
    /// Next table/manifest number; shared so a compaction job can take
    /// numbers without holding the version set.
    next_file_number: Arc<AtomicU64>,
    /// Highest seqno held by tables.
    pub last_seqno: SeqNo,
}

/// What a manifest replay found.
#[derive(Debug, Default)]
pub struct ReplayedManifest {
    /// The version all edits lead to.
    pub version: Version,
    /// WAL segments below this are flushed.
    pub log_number: u64,
    /// Next unused table/manifest number.
    pub next_file_number: u64,
    /// Highest seqno held by tables.
    pub last_seqno: SeqNo,
    /// Set when the last edit records a clean close: the WAL then holds
    /// every seqno up to this one and has no torn tail.
    pub closed_at_seqno: Option<SeqNo>,
}

impl ReplayedManifest {
    /// Applies manifest edits in order; `path` names the manifest in errors.
    pub fn replay(edits: &[VersionEdit], path: &Path) -> Result<Self> {
        let mut state = ReplayedManifest {
            log_number: 1,
            next_file_number: 1,
            ..Default::default()
        };
        for (index, edit) in edits.iter().enumerate() {
            state.version = state
                .version
                .apply(edit)
                .map_err(|reason| Error::corruption(path, 0, format!("edit {index}: {reason}")))?;
            state.log_number = edit.log_number.unwrap_or(state.log_number).max(state.log_number);
            state.next_file_number = edit
                .next_file_number
                .unwrap_or(state.next_file_number)
                .max(state.next_file_number);
            state.last_seqno = edit.last_seqno.unwrap_or(state.last_seqno).max(state.last_seqno);
            // NOTE: only the last edit counts: a close is the last thing a
            // store writes to its manifest.
            state.closed_at_seqno = edit.closed_at_seqno;
        }
        if let Some(table) = state
            .version
            .tables()
            .find(|t| t.number >= state.next_file_number)
        {
            return Err(Error::corruption(
                path,
                0,
                format!("table {} is not below the next file number", table.number),
            ));
        }
        Ok(state)
    }

    /// One edit that recreates this state (the first edit of a new manifest).
    fn snapshot(&self) -> VersionEdit {
        VersionEdit {
            log_number: Some(self.log_number),
            next_file_number: Some(self.next_file_number),
            last_seqno: Some(self.last_seqno),
            added: self
                .version
                .levels
                .iter()
                .enumerate()
                .flat_map(|(level, tables)| tables.iter().map(move |t| (level, Arc::clone(t))))
                .collect(),
            deleted: Vec::new(),
            // NOTE: a new manifest starts a running store; the close marker
            // of the one it replaces describes a log the open just replayed.
            closed_at_seqno: None,
        }
    }
}

impl VersionSet {
    /// Starts a new manifest holding `replayed` and points `CURRENT` at it.
    pub async fn create(fs: Arc<dyn Fs>, dir: PathBuf, mut replayed: ReplayedManifest) -> Result<Self> {
        let number = replayed.next_file_number;
        replayed.next_file_number += 1;
        let manifest = ManifestWriter::create(&fs, &dir, number, &replayed.snapshot()).await?;
        Ok(VersionSet {
            dir,
            fs,
            current: Arc::new(replayed.version),
            manifest,
            log_number: replayed.log_number,
            next_file_number: Arc::new(AtomicU64::new(replayed.next_file_number)),
            last_seqno: replayed.last_seqno,
        })
    }

    /// The current version.
    pub fn current(&self) -> Arc<Version> {
        Arc::clone(&self.current)
    }

    /// The live manifest's number.
    pub fn manifest_number(&self) -> u64 {
        self.manifest.number()
    }

    /// Reserves a number for a new table.
    pub fn new_file_number(&mut self) -> u64 {
        self.next_file_number.fetch_add(1, Ordering::AcqRel)
    }

    /// The shared counter of table numbers.
    pub fn file_numbers(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.next_file_number)
    }

    /// Makes `edit` durable in the manifest, then installs the version it
    /// leads to. On error nothing is installed and the caller must poison
    /// the store: a failed manifest sync is never retried.
    pub async fn log_and_apply(&mut self, mut edit: VersionEdit) -> Result<Arc<Version>> {
        // NOTE: the edit was built by this store (a flush or a compaction),
        // not read from disk: one that does not apply is a bug.
        let next = self.current.apply(&edit).map_err(|reason| {
            debug_assert!(false, "own edit does not apply: {reason}");
            Error::Internal {
                what: format!("bad edit: {reason}"),
            }
        })?;
        // NOTE: a table number reserved after this edit must stay above it.
        edit.next_file_number = Some(self.next_file_number.load(Ordering::Acquire));
        if self.manifest.size_bytes() > MAX_MANIFEST_SIZE_BYTES {
            let replayed = ReplayedManifest {
                version: next.clone(),
                log_number: edit.log_number.unwrap_or(self.log_number).max(self.log_number),
                next_file_number: self.next_file_number.load(Ordering::Acquire),
                last_seqno: edit.last_seqno.unwrap_or(self.last_seqno).max(self.last_seqno),
                closed_at_seqno: None,
            };
            let old = self.manifest.number();
            let number = self.new_file_number();
            let mut snapshot = replayed.snapshot();
            snapshot.closed_at_seqno = edit.closed_at_seqno;
            snapshot.next_file_number = Some(self.next_file_number.load(Ordering::Acquire));
            self.manifest = ManifestWriter::create(&self.fs, &self.dir, number, &snapshot).await?;
            let old_path = crate::filename::manifest_path(&self.dir, old);
            if let Err(error) = self.fs.remove_file(&old_path).await {
                tracing::warn!(%error, path = %old_path.display(), "could not remove an old manifest");
            }
        } else {
            self.manifest.append(&edit).await?;
        }
        if let Some(log_number) = edit.log_number {
            self.log_number = self.log_number.max(log_number);
        }
        if let Some(last_seqno) = edit.last_seqno {
            self.last_seqno = self.last_seqno.max(last_seqno);
        }
        self.current = Arc::new(next);
        Ok(Arc::clone(&self.current))
    }

    /// Records a clean close: the WAL holds every seqno up to `seqno` and
    /// was synced and closed without error. The last edit a store writes.
    pub async fn mark_clean_close(&mut self, seqno: SeqNo) -> Result<()> {
        let edit = VersionEdit {
            closed_at_seqno: Some(seqno),
            ..VersionEdit::default()
        };
        self.log_and_apply(edit).await.map(drop)
    }
}
