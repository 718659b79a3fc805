//! What every `ringdb bench` workload uses: the value pool and the
//! directories a workload runs in.

use std::fs;
use std::path::{Path, PathBuf};

use crate::rng::SplitMix64;

/// Random bytes that values are sliced from, on top of one value's size.
const VALUE_POOL_BYTES: usize = 1024 * 1024;

/// Cheap pseudo-random values: one random buffer made up front, of which
/// each value is a slice at a different offset.
#[derive(Debug)]
pub struct ValuePool {
    data: Vec<u8>,
    value_size: usize,
}

impl ValuePool {
    /// Values of `value_size` bytes drawn from generator `seed`.
    pub fn new(value_size: usize, seed: u64) -> Self {
        let mut data = vec![0u8; value_size + VALUE_POOL_BYTES];
        SplitMix64::new(seed).fill(&mut data);
        ValuePool { data, value_size }
    }

    /// The value of operation `i`.
    #[allow(
        clippy::indexing_slicing,
        reason = "offset + value_size <= data.len() by construction"
    )]
    pub fn value(&self, i: u64) -> &[u8] {
        // NOTE: a stride coprime to the pool size walks every offset before
        // repeating, so neighbouring values differ and do not compress away.
        const STRIDE: u64 = 7919;
        let offset = (i.wrapping_mul(STRIDE) % VALUE_POOL_BYTES as u64) as usize;
        &self.data[offset..offset + self.value_size]
    }
}

/// The bytes of every file under `dir`: the store's size on disk, including
/// preallocated space (ringdb's WAL window, fjall's journal).
pub fn store_size_bytes(dir: &Path) -> std::io::Result<u64> {
    let mut total = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let metadata = entry.metadata()?;
        total += if metadata.is_dir() {
            store_size_bytes(&entry.path())?
        } else {
            metadata.len()
        };
    }
    Ok(total)
}

/// Empties (or creates) `root/name` and returns its path.
pub fn fresh_subdir(root: &Path, name: &str) -> std::io::Result<PathBuf> {
    let dir = root.join(name);
    // NOTE: like db_bench without --use_existing_db, a workload starts from an
    // empty store: whatever an earlier run left in its subdirectory goes.
    match fs::remove_dir_all(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    fs::create_dir_all(&dir)?;
    Ok(dir)
}
