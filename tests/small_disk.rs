//! A store with default options on a filesystem smaller than one WAL
//! segment: preallocation is an optimisation, so running out of space for
//! zeros must neither poison the store nor fail a write that fits.
//!
//! Scenario: a 24 MiB tmpfs (mounted by the test; skipped with a message
//! where it cannot mount, e.g. without root), 64 MiB default segments;
//! 8 MiB of durable writes succeed, survive a reopen, and when the disk
//! fills up writes fail with an error while acknowledged data stays.

use std::path::{Path, PathBuf};
use std::process::Command;

use ringdb::{Db, IoBackend, Options};

/// A tmpfs mounted for the test's life.
struct Mount {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Mount {
    fn tmpfs(size_mib: u64) -> Option<Mount> {
        let dir = tempfile::tempdir().ok()?;
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mib}m"), "tmpfs"])
            .arg(dir.path())
            .status()
            .ok()?;
        status.success().then(|| Mount {
            path: dir.path().to_path_buf(),
            _dir: dir,
        })
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

async fn fill(db: &Db, from: usize, count: usize) -> Result<usize, ringdb::Error> {
    let value = vec![b'v'; 4000];
    for i in from..from + count {
        db.put(format!("key{i:06}"), &value).await?;
    }
    Ok(from + count)
}

fn open(path: &Path, backend: IoBackend) -> Db {
    let options = Options::default().io_backend(backend);
    futures::executor::block_on(Db::open(path.join("db"), options)).unwrap()
}

#[test]
fn default_options_work_on_a_disk_smaller_than_a_segment() {
    for backend in [IoBackend::Uring, IoBackend::Threads] {
        let Some(mount) = Mount::tmpfs(24) else {
            eprintln!("skipped: cannot mount a tmpfs here (needs root)");
            return;
        };
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let db = runtime
            .block_on(async { Db::open(mount.path.join("db"), Options::default().io_backend(backend)).await })
            .unwrap();
        // 2,000 puts of 4 KB: 8 MiB of WAL, past the first prefill window.
        let written = runtime
            .block_on(fill(&db, 0, 2000))
            .expect("writes that fit succeed");
        runtime.block_on(db.close()).unwrap();
        drop(db);
        let db = open(&mount.path, backend);
        runtime.block_on(async {
            for i in (0..written).step_by(97) {
                let key = format!("key{i:06}");
                assert!(db.get(&key).await.unwrap().is_some(), "{backend:?}: {key} lost");
            }
        });
        // Leave a file to remove later, to make room on a full disk.
        std::fs::write(mount.path.join("filler"), vec![0u8; 4 << 20]).unwrap();
        // Fill the disk: some write fails with an error, none hangs, and
        // everything acknowledged before it reads back after a reopen.
        let mut acknowledged = written;
        let failure = runtime.block_on(async {
            loop {
                match fill(&db, acknowledged, 100).await {
                    Ok(next) => acknowledged = next,
                    Err(error) => return error,
                }
                if acknowledged > 20_000 {
                    panic!("{backend:?}: a 24 MiB disk took 80 MB of writes");
                }
            }
        });
        eprintln!("{backend:?}: disk full after {acknowledged}+ puts: {failure}");
        let _ = runtime.block_on(db.close());
        drop(db);
        // Make room, then reopen: the acknowledged prefix is there.
        std::fs::remove_file(mount.path.join("filler")).unwrap();
        let db = open(&mount.path, backend);
        runtime.block_on(async {
            for i in (0..acknowledged).step_by(89) {
                let key = format!("key{i:06}");
                assert!(
                    db.get(&key).await.unwrap().is_some(),
                    "{backend:?}: {key} lost after disk full"
                );
            }
            let _ = db.close().await;
        });
    }
}
