//! Real filesystems, not only the simulated one. Each test mounts what it
//! needs (as root: a small tmpfs, or an ext4 image on a loop device) and
//! skips cleanly, printing `skipped: <reason>`, where the machine does not
//! allow it (not root, no loop devices, no mkfs.ext4, a sandbox that
//! refuses mount).
//!
//! - tmpfs: many CI systems mount their temp directory that way, and
//!   kernels before 6.6 have no `O_DIRECT` there: a store opens, writes
//!   durably and reopens, falling back (with a logged warning) to
//!   `O_DSYNC` writes where `O_DIRECT` is refused.
//! - A full disk (32 MiB ext4 image, mostly taken by a filler file): writes
//!   fail with an error that names the lack of space, acknowledged data
//!   survives an unmount, a remount and a reopen, and once the filler is
//!   removed the store works again after reopening.

use std::path::{Path, PathBuf};
use std::process::Command;

use ringdb::{Db, Error, IoBackend, Options};

/// A filesystem this test mounted; unmounted (lazily) when dropped.
struct Mount {
    point: PathBuf,
    image: Option<PathBuf>,
    _tmp: tempfile::TempDir,
}

impl Mount {
    /// Unmounts, retrying for a while: a closed store's I/O threads may
    /// take a moment to close their descriptors.
    fn unmount(&self) -> Result<(), String> {
        let mut last = Ok(());
        for _ in 0..50 {
            last = run("umount", &[self.point.to_str().unwrap()]);
            if last.is_ok() {
                return last;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let held: Vec<String> = std::fs::read_dir("/proc/self/fd")
            .into_iter()
            .flatten()
            .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
            .filter(|target| target.starts_with(&self.point))
            .map(|target| target.display().to_string())
            .collect();
        last.map_err(|e| format!("{e}; this process still holds {held:?}"))
    }

    fn remount(&self) -> Result<(), String> {
        self.unmount()?;
        let image = self.image.as_ref().ok_or("not an image")?;
        run(
            "mount",
            &[
                "-o",
                "loop",
                image.to_str().unwrap(),
                self.point.to_str().unwrap(),
            ],
        )
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = run("umount", &["-l", self.point.to_str().unwrap()]);
    }
}

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn mount_tmpfs(size: &str) -> Result<Mount, String> {
    if !is_root() {
        return Err("not root: cannot mount a tmpfs".to_owned());
    }
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let point = tmp.path().join("mnt");
    std::fs::create_dir(&point).map_err(|e| e.to_string())?;
    run(
        "mount",
        &[
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size}"),
            "tmpfs",
            point.to_str().unwrap(),
        ],
    )?;
    Ok(Mount {
        point,
        image: None,
        _tmp: tmp,
    })
}

fn mount_ext4_image(size_mib: u64) -> Result<Mount, String> {
    if !is_root() {
        return Err("not root: cannot mount a loop device".to_owned());
    }
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let image = tmp.path().join("disk.img");
    let point = tmp.path().join("mnt");
    std::fs::create_dir(&point).map_err(|e| e.to_string())?;
    let file = std::fs::File::create(&image).map_err(|e| e.to_string())?;
    file.set_len(size_mib << 20).map_err(|e| e.to_string())?;
    drop(file);
    run("mkfs.ext4", &["-q", "-F", image.to_str().unwrap()])?;
    run(
        "mount",
        &["-o", "loop", image.to_str().unwrap(), point.to_str().unwrap()],
    )?;
    Ok(Mount {
        point,
        image: Some(image),
        _tmp: tmp,
    })
}

fn value(i: usize) -> Vec<u8> {
    format!("{i:08}-{}", "v".repeat(4000)).into_bytes()
}

/// True if `error` says the disk is full: ENOSPC, directly or as the
/// cause of a poisoned store.
fn says_no_space(error: &Error) -> bool {
    let shown = format!("{error} {error:?}");
    shown.contains("No space left") || shown.contains("os error 28") || shown.contains("StorageFull")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_on_a_small_tmpfs_writes_durably_and_reopens() {
    tmpfs_round_trip(Some(4 << 20)).await;
}

/// The same with the default options (64 MiB WAL segments, zero-filled).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_on_a_small_tmpfs_with_default_options() {
    tmpfs_round_trip(None).await;
}

async fn tmpfs_round_trip(segment_size_bytes: Option<u64>) {
    let mount = match mount_tmpfs("64m") {
        Ok(mount) => mount,
        Err(reason) => {
            println!("skipped: {reason}");
            return;
        }
    };
    let dir = mount.point.join("db");
    for backend in [IoBackend::Auto, IoBackend::Threads] {
        let mut options = Options::default().io_backend(backend);
        if let Some(size) = segment_size_bytes {
            options = options.wal_segment_size_bytes(size);
        }
        let db = Db::open(&dir, options.clone()).await.unwrap();
        for i in 0..200 {
            db.put(format!("{backend:?}-{i:04}"), value(i)).await.unwrap();
        }
        let stats = db.stats();
        // NOTE: where the kernel refuses O_DIRECT on tmpfs (before 6.6),
        // the WAL logs a warning and writes through O_DSYNC instead.
        println!(
            "tmpfs, {backend:?} ({}): {} WAL writes, {} through O_DIRECT",
            stats.io_backend, stats.wal_writes, stats.wal_direct_writes
        );
        db.close().await.unwrap();
        drop(db);
        let db = Db::open(&dir, options).await.unwrap();
        for i in 0..200 {
            let got = db.get(format!("{backend:?}-{i:04}")).await.unwrap();
            assert_eq!(got.as_deref(), Some(&value(i)[..]), "{backend:?} key {i}");
        }
        db.close().await.unwrap();
    }
    mount.unmount().unwrap();
}

/// Mounts a 32 MiB ext4 image with all but about 12 MiB taken by a filler
/// file (enough to open a store with its default segment size), so writes
/// soon run into the full disk.
fn nearly_full_ext4() -> Result<(Mount, PathBuf), String> {
    let mount = mount_ext4_image(32)?;
    let filler = mount.point.join("filler");
    let free = free_bytes(&mount.point);
    std::fs::write(&filler, vec![0xAB; free.saturating_sub(12 << 20) as usize]).map_err(|e| e.to_string())?;
    Ok((mount, filler))
}

/// Reads back the `acked` writes of [`fill`].
async fn assert_acked(db: &Db, acked: usize, context: &str) {
    for i in 0..acked {
        let got = db.get(format!("key{i:06}")).await.unwrap();
        assert_eq!(
            got.as_deref(),
            Some(&value(i)[..]),
            "{context}: acked key {i} lost"
        );
    }
}

/// Where the machine allows it: an ext4 image filled to the brim. Writes
/// fail with a clear error; the store reopens on the full disk and serves
/// every acknowledged write; once space is freed it reopens and takes
/// writes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_ext4_disk_fails_writes_clearly_and_keeps_acked_data() {
    let (mount, filler) = match nearly_full_ext4() {
        Ok(mounted) => mounted,
        Err(reason) => {
            println!("skipped: {reason}");
            return;
        }
    };
    let dir = mount.point.join("db");
    let acked = fill(&dir).await;
    assert!(acked > 0, "nothing was acknowledged before the disk filled");
    println!("full ext4: {acked} writes of 4 KiB acknowledged before ENOSPC");
    let db = Db::open(&dir, Options::default())
        .await
        .unwrap_or_else(|e| panic!("a store on a full disk does not open: {e}"));
    assert_acked(&db, acked, "reopened on the full disk").await;
    let _ = db.close().await;
    drop(db);
    std::fs::remove_file(&filler).unwrap();
    let db = Db::open(&dir, Options::default()).await.unwrap();
    assert_acked(&db, acked, "reopened after freeing space").await;
    for i in 0..50 {
        db.put(format!("after{i}"), value(i)).await.unwrap();
    }
    db.close().await.unwrap();
}

/// As above, with an unmount and a remount between the failure and the
/// reopen: only what reached the disk survives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_ext4_disk_keeps_acked_data_across_a_remount() {
    let (mount, filler) = match nearly_full_ext4() {
        Ok(mounted) => mounted,
        Err(reason) => {
            println!("skipped: {reason}");
            return;
        }
    };
    let dir = mount.point.join("db");
    let acked = fill(&dir).await;
    mount.remount().unwrap();
    std::fs::remove_file(&filler).unwrap();
    let db = Db::open(&dir, Options::default()).await.unwrap();
    assert_acked(&db, acked, "after a remount").await;
    db.put(b"after", b"x").await.unwrap();
    db.close().await.unwrap();
    drop(db);
    mount.unmount().unwrap();
}

/// Writes 4 KiB values until a write fails; asserts the failure says the
/// disk is full. Returns how many writes were acknowledged (all before
/// the first failure).
async fn fill(dir: &Path) -> usize {
    let db = Db::open(dir, Options::default()).await.unwrap();
    let mut acked = 0;
    let mut failure = None;
    for i in 0..10_000 {
        match db.put(format!("key{i:06}"), value(i)).await {
            Ok(()) => acked += 1,
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let failure = failure.expect("12 MiB of free space never ran out");
    assert!(
        says_no_space(&failure),
        "the error does not say the disk is full: {failure:?}"
    );
    // Later writes keep failing with a clear error (no silent success).
    let later = db.put(b"later", b"x").await;
    if let Err(e) = &later {
        println!("full ext4: a later write fails with: {e}");
    }
    let _ = db.close().await;
    drop(db);
    acked
}

fn free_bytes(path: &Path) -> u64 {
    let c_path = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: c_path is a valid NUL-terminated string and stat a valid
    // out-pointer for the call.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) };
    assert_eq!(rc, 0, "statvfs {}", path.display());
    stat.f_bavail as u64 * stat.f_frsize as u64
}
