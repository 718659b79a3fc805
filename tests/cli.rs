//! The `ringdb` command, run as users run it: the built binary on a store
//! directory, its stdout, stderr and exit status asserted.
//!
//! Scenarios: a store made and changed by `put`/`delete` reads back through
//! `get` and every form of `scan`; `stats` and `dump` describe what the
//! store holds; `checkpoint` copies a store (tables and WAL) into a
//! directory that the command then reads as a store, and refuses a target
//! that holds files or lies inside the store; a missing directory, a directory without a store, a store
//! another handle holds, and a store whose table or manifest is damaged
//! each give a non-zero exit and a message naming the problem, never a
//! panic.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ringdb::{Db, IoBackend, Options};

/// Runs `ringdb ARGS` and returns its output.
fn ringdb(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ringdb"))
        .args(args)
        .env("RINGDB_IO", "threads")
        .output()
        .expect("run the ringdb binary")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs `ringdb ARGS`, asserts it succeeded, returns its stdout.
fn ok(args: &[&str]) -> String {
    let output = ringdb(args);
    assert!(
        output.status.success(),
        "ringdb {args:?} failed: {}{}",
        stdout(&output),
        stderr(&output)
    );
    stdout(&output)
}

/// Runs `ringdb ARGS`, asserts it failed cleanly (exit 1, no panic) and
/// returns its stderr.
fn fails(args: &[&str]) -> String {
    let output = ringdb(args);
    let err = stderr(&output);
    assert_eq!(
        output.status.code(),
        Some(1),
        "ringdb {args:?}: {}{err}",
        stdout(&output)
    );
    assert!(!err.contains("panicked"), "ringdb {args:?} panicked: {err}");
    let last = err.lines().last().unwrap_or_default();
    assert!(last.starts_with("ringdb: "), "the error closes stderr: {err}");
    err
}

fn files_with(dir: &Path, pred: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| pred(p.file_name().unwrap().to_str().unwrap()))
        .collect();
    files.sort();
    files
}

fn options() -> Options {
    Options::default()
        .io_backend(IoBackend::Threads)
        .wal_segment_size_bytes(64 * 1024)
}

#[test]
fn put_get_delete_and_scan_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let d = dir.to_str().unwrap();
    ok(&["put", "--create", d, "user:1", "alice"]);
    ok(&["put", d, "user:2", "b\\x00b"]);
    ok(&["put", d, "user:3", "carol"]);
    ok(&["put", "--hex", d, "6f746865723a31", "ff"]); // "other:1"
    assert_eq!(ok(&["get", d, "user:1"]), "alice\n");
    assert_eq!(ok(&["get", d, "user:2"]), "b\\x00b\n");
    assert_eq!(ok(&["get", "--hex", d, "757365723a32"]), "620062\n");
    assert_eq!(ok(&["get", d, "other:1"]), "\\xff\n");

    assert_eq!(
        ok(&["scan", d]),
        "other:1 => \\xff\nuser:1 => alice\nuser:2 => b\\x00b\nuser:3 => carol\n"
    );
    assert_eq!(
        ok(&["scan", d, "--prefix", "user:", "--keys-only"]),
        "user:1\nuser:2\nuser:3\n"
    );
    assert_eq!(
        ok(&["scan", d, "user:1", "user:3", "--keys-only"]),
        "user:1\nuser:2\n"
    );
    assert_eq!(
        ok(&["scan", d, "--reverse", "--limit", "2", "--keys-only"]),
        "user:3\nuser:2\n"
    );
    assert_eq!(
        ok(&["scan", d, "--hex", "--limit", "1"]),
        "6f746865723a31 => ff\n"
    );

    ok(&["delete", d, "user:2"]);
    let err = fails(&["get", d, "user:2"]);
    assert!(err.contains("not found"), "{err}");
    assert_eq!(
        ok(&["scan", d, "--prefix", "user:", "--keys-only"]),
        "user:1\nuser:3\n"
    );

    // The command flushes before it closes, so runs do not pile up WAL
    // segments.
    assert!(files_with(&dir, |n| n.ends_with(".wal")).len() <= 1);

    // The library sees what the command wrote.
    futures::executor::block_on(async {
        let db = Db::open(&dir, options()).await.unwrap();
        assert_eq!(db.get(b"user:3").await.unwrap().as_deref(), Some(&b"carol"[..]));
        assert_eq!(db.get(b"user:2").await.unwrap(), None);
        db.close().await.unwrap();
    });
}

#[test]
fn stats_reports_levels_sizes_and_amplification() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    futures::executor::block_on(async {
        let db = Db::open(&dir, options()).await.unwrap();
        for i in 0..100u32 {
            db.put(format!("key{i:04}"), [7u8; 50]).await.unwrap();
        }
        db.close().await.unwrap();
    });
    let d = dir.to_str().unwrap();
    let json: serde_json::Value = serde_json::from_str(&ok(&["stats", d, "--json"])).unwrap();
    assert_eq!(json["live_keys"], 100);
    assert_eq!(json["live_bytes"], 100 * (7 + 50));
    let levels = json["stats"]["level_tables"].as_array().unwrap();
    let tables: u64 = levels.iter().map(|n| n.as_u64().unwrap()).sum();
    assert!(tables >= 1, "{json}");
    let amp = json["space_amplification"].as_f64().unwrap();
    assert!(amp >= 1.0, "tables hold every live byte at least once: {json}");
    assert_eq!(json["stats"]["io_backend"], "threads");

    let human = ok(&["stats", d]);
    assert!(human.contains("live keys        100 "), "{human}");
    assert!(human.contains("space amp"), "{human}");
    assert!(human.contains("L0 "), "{human}");
}

#[test]
fn dump_shows_tables_wal_segments_and_manifests() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    futures::executor::block_on(async {
        let db = Db::open(&dir, options()).await.unwrap();
        db.put(b"a", b"1").await.unwrap();
        db.delete(b"b").await.unwrap();
        db.delete_range("x".."z").await.unwrap();
        db.flush().await.unwrap();
        // Left in the WAL: the store stays open while its segment is dumped.
        let mut batch = ringdb::WriteBatch::new();
        batch.put(b"c", b"3").put(b"d\xff", b"4");
        db.write(batch).await.unwrap();

        let table = files_with(&dir, |n| n.ends_with(".sst")).pop().unwrap();
        let out = ok(&["dump", table.to_str().unwrap()]);
        assert!(out.contains("  entries: 2\n"), "{out}");
        assert!(out.contains("  deletions: 1\n"), "{out}");
        assert!(out.contains("  a @1 => 1\n"), "{out}");
        assert!(out.contains("  b @2 DEL\n"), "{out}");
        assert!(out.contains("  range_tombstones: 1\n"), "{out}");
        assert!(
            out.ends_with("range tombstones:\n  [x .. z) @3 DEL RANGE\n"),
            "{out}"
        );
        let props = ok(&["dump", "--properties-only", table.to_str().unwrap()]);
        assert!(!props.contains("entries:\n"), "{props}");

        // The batch is in one of the live segments (a flush may have
        // started the next one); the others hold no record.
        let segments = files_with(&dir, |n| n.ends_with(".wal"));
        let dumps: Vec<String> = segments
            .iter()
            .map(|s| ok(&["dump", s.to_str().unwrap()]))
            .collect();
        let (wal, out) = segments
            .iter()
            .zip(dumps)
            .find(|(_, out)| !out.contains(": 0 records\n"))
            .expect("a segment holds the batch");
        assert!(out.contains(": 1 records\n"), "{out}");
        assert!(out.contains("record at 0: 2 entries"), "{out}");
        assert!(out.contains("  c @4 => 3\n  d\\xff @5 => 4\n"), "{out}");
        assert!(out.ends_with("end: clean\n"), "{out}");
        let hex = ok(&["dump", "--hex", wal.to_str().unwrap()]);
        assert!(hex.contains("  64ff @5 => 34\n"), "{hex}");

        let manifest = files_with(&dir, |n| n.starts_with("MANIFEST-")).pop().unwrap();
        let out = ok(&["dump", manifest.to_str().unwrap()]);
        assert!(out.contains("edit 0:\n"), "{out}");
        let table_name = table
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .trim_end_matches(".sst");
        assert!(out.contains(&format!("table {table_name}:")), "{out}");
        assert!(out.contains(", range tombstones\n"), "{out}");
        db.close().await.unwrap();
    });
    let err = fails(&["dump", dir.join("LOCK").to_str().unwrap()]);
    assert!(err.contains("not a store file"), "{err}");
    let err = fails(&["dump", dir.join("000999.sst").to_str().unwrap()]);
    assert!(err.contains("no such file"), "{err}");
}

#[test]
fn a_checkpoint_opens_as_a_store_with_every_write() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    futures::executor::block_on(async {
        let db = Db::open(&dir, options()).await.unwrap();
        // In tables: 100 keys, flushed.
        for i in 0..100u32 {
            db.put(format!("table:{i:03}"), format!("t{i}")).await.unwrap();
        }
        db.flush().await.unwrap();
        // In the WAL only (until the command's open flushes what it
        // replays): writes after the flush, one delete of a flushed key
        // among them.
        for i in 0..20u32 {
            db.put(format!("wal:{i:03}"), format!("w{i}")).await.unwrap();
        }
        db.delete(b"table:050").await.unwrap();
        db.close().await.unwrap();
    });
    let d = dir.to_str().unwrap();
    let backup = tmp.path().join("backup");
    let b = backup.to_str().unwrap();
    let out = ok(&["checkpoint", d, b]);
    assert!(out.starts_with(&format!("checkpoint {b}: ")), "{out}");
    assert!(!files_with(&backup, |n| n.ends_with(".sst")).is_empty());
    assert!(backup.join("CURRENT").is_file());

    assert_eq!(ok(&["get", b, "table:007"]), "t7\n");
    assert_eq!(ok(&["get", b, "wal:019"]), "w19\n");
    let err = fails(&["get", b, "table:050"]);
    assert!(err.contains("not found"), "{err}");
    let tables = ok(&["scan", b, "--prefix", "table:", "--keys-only"]);
    assert_eq!(tables.lines().count(), 99, "{tables}");
    assert_eq!(
        ok(&["scan", b, "wal:", "wal:003"]),
        "wal:000 => w0\nwal:001 => w1\nwal:002 => w2\n"
    );
    // The checkpoint is a store of its own: a write to it leaves the
    // source alone.
    ok(&["put", b, "wal:000", "changed"]);
    assert_eq!(ok(&["get", b, "wal:000"]), "changed\n");
    assert_eq!(ok(&["get", d, "wal:000"]), "w0\n");
}

#[test]
fn a_checkpoint_target_that_holds_files_or_lies_in_the_store_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let d = dir.to_str().unwrap();
    ok(&["put", "--create", d, "k", "v"]);

    let full = tmp.path().join("full");
    std::fs::create_dir(&full).unwrap();
    std::fs::write(full.join("notes.txt"), b"keep me").unwrap();
    let err = fails(&["checkpoint", d, full.to_str().unwrap()]);
    assert!(err.contains("not empty"), "{err}");
    assert_eq!(std::fs::read(full.join("notes.txt")).unwrap(), b"keep me");
    assert_eq!(std::fs::read_dir(&full).unwrap().count(), 1);

    let file = full.join("notes.txt");
    let err = fails(&["checkpoint", d, file.to_str().unwrap()]);
    assert!(err.contains("not a directory"), "{err}");

    let inside = dir.join("backup");
    let err = fails(&["checkpoint", d, inside.to_str().unwrap()]);
    assert!(err.contains("inside the store"), "{err}");
    assert!(!inside.exists());

    let missing = tmp.path().join("nothing-here");
    let err = fails(&[
        "checkpoint",
        missing.to_str().unwrap(),
        tmp.path().join("b1").to_str().unwrap(),
    ]);
    assert!(err.contains("no such directory"), "{err}");

    // An empty directory is a valid target.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    ok(&["checkpoint", d, empty.to_str().unwrap()]);
    assert_eq!(ok(&["get", empty.to_str().unwrap(), "k"]), "v\n");
}

#[test]
fn missing_and_empty_directories_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nothing-here");
    let m = missing.to_str().unwrap();
    for args in [
        &["get", m, "k"][..],
        &["put", m, "k", "v"],
        &["delete", m, "k"],
        &["scan", m],
        &["stats", m],
    ] {
        let err = fails(args);
        assert!(err.contains("no such directory"), "{args:?}: {err}");
    }
    assert!(!missing.exists(), "no command but put --create makes a store");
    let empty = tmp.path().to_str().unwrap();
    let err = fails(&["scan", empty]);
    assert!(err.contains("holds no ringdb store"), "{err}");
}

#[test]
fn a_store_held_by_another_handle_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    futures::executor::block_on(async {
        let db = Db::open(&dir, options()).await.unwrap();
        db.put(b"k", b"v").await.unwrap();
        let err = fails(&["get", dir.to_str().unwrap(), "k"]);
        assert!(err.contains("another process"), "{err}");
        let target = tmp.path().join("backup");
        let err = fails(&["checkpoint", dir.to_str().unwrap(), target.to_str().unwrap()]);
        assert!(err.contains("another process"), "{err}");
        db.close().await.unwrap();
    });
    assert_eq!(ok(&["get", dir.to_str().unwrap(), "k"]), "v\n");
}

#[test]
fn damaged_tables_and_manifests_give_corruption_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    futures::executor::block_on(async {
        let db = Db::open(&dir, options()).await.unwrap();
        for i in 0..50u32 {
            db.put(format!("key{i:04}"), [1u8; 40]).await.unwrap();
        }
        db.flush().await.unwrap();
        db.close().await.unwrap();
    });
    let d = dir.to_str().unwrap();
    let table = files_with(&dir, |n| n.ends_with(".sst")).pop().unwrap();
    let mut bytes = std::fs::read(&table).unwrap();
    // Inside the first data block: its checksum no longer holds.
    bytes[20] ^= 0xff;
    std::fs::write(&table, &bytes).unwrap();

    let err = fails(&["scan", d]);
    assert!(err.contains("corruption in"), "{err}");
    assert!(
        err.contains(table.file_name().unwrap().to_str().unwrap()),
        "{err}"
    );
    let err = fails(&["dump", table.to_str().unwrap()]);
    assert!(err.contains("corruption in") && err.contains("offset"), "{err}");

    // A manifest cut short of its first edit: the store cannot be opened.
    let manifest = files_with(&dir, |n| n.starts_with("MANIFEST-")).pop().unwrap();
    let bytes = std::fs::read(&manifest).unwrap();
    std::fs::write(&manifest, &bytes[..bytes.len() / 2]).unwrap();
    let backup = tmp.path().join("backup");
    let b = backup.to_str().unwrap();
    for args in [&["get", d, "key0001"][..], &["stats", d], &["checkpoint", d, b]] {
        let err = fails(args);
        assert!(
            err.contains("corruption in") || err.contains("manifest"),
            "{args:?}: {err}"
        );
    }
    let err = fails(&["dump", manifest.to_str().unwrap()]);
    assert!(err.contains("manifest"), "{err}");
}

#[test]
fn bad_arguments_are_refused_before_the_store_is_touched() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().unwrap();
    let err = fails(&["get", "--hex", d, "abc"]);
    assert!(err.contains("odd number"), "{err}");
    let err = fails(&["get", d, "bad\\q"]);
    assert!(err.contains("unknown escape"), "{err}");
}
