//! The failure model of `FaultFs`, seed by seed. Each test that samples seeds also checks that
//! every outcome it allows actually occurred, so a model that never loses anything fails.

use super::super::tests::scratch_dir;
use super::super::{create_dir_all_durable, write_atomic, FileSystem, OpenMode};
use super::*;
use crate::error::{IoContext, Result};
use std::collections::BTreeSet;
use std::io::ErrorKind;

const SEEDS: u64 = 1000;

fn fresh() -> (tempfile::TempDir, FaultFs) {
    let dir = scratch_dir();
    let fs = FaultFs::new(dir.path()).unwrap();
    (dir, fs)
}

/// A new, durable file (entry synced) holding `synced`, with `unsynced` appended after it.
fn file_with(fs: &FaultFs, name: &str, synced: &[u8], unsynced: &[&[u8]]) -> PathBuf {
    let path = fs.root().join(name);
    let file = fs.open(&path, OpenMode::CreateNew).unwrap();
    fs.sync_dir(fs.root()).unwrap();
    file.write_all_at(synced, 0).unwrap();
    file.sync_data().unwrap();
    let mut at = synced.len() as u64;
    for piece in unsynced {
        file.write_all_at(piece, at).unwrap();
        at += piece.len() as u64;
    }
    path
}

fn outcome_name(outcome: Option<&FileOutcome>) -> &'static str {
    match outcome {
        None => "untouched",
        Some(FileOutcome::Dropped) => "dropped",
        Some(FileOutcome::KeptAll) => "kept all",
        Some(FileOutcome::KeptPrefix { .. }) => "prefix",
        Some(FileOutcome::Torn { .. }) => "torn",
    }
}

#[test]
fn given_synced_bytes_and_unsynced_appends_when_power_is_lost_should_keep_synced_bytes_and_a_prefix_of_the_rest() {
    let synced: Vec<u8> = (0..200u32).map(|i| i as u8).collect();
    let appends: [&[u8]; 3] = [&[0xA1; 50], &[0xB2; 70], &[0xC3; 30]];
    let everything: Vec<u8> = synced.iter().copied().chain(appends.iter().flat_map(|a| a.iter().copied())).collect();
    let mut seen = BTreeSet::new();
    for seed in 0..SEEDS {
        let (_dir, fs) = fresh();
        let path = file_with(&fs, "seg.log", &synced, &appends);
        let report = fs.simulate_power_loss(seed).unwrap();
        let after = std::fs::read(&path).unwrap();
        assert!(after.len() >= synced.len() && after.len() <= everything.len(), "{report}: {} bytes", after.len());
        assert_eq!(&after[..synced.len()], &synced[..], "synced bytes changed; {report}");
        let outcome = report.outcome_of(&path);
        seen.insert(outcome_name(outcome));
        // Outside a torn range every byte is the one written at that offset: a prefix, in order.
        let torn = match outcome {
            Some(FileOutcome::Torn { torn, .. }) => torn.clone(),
            _ => 0..0,
        };
        assert!(torn.is_empty() || torn.start >= synced.len() as u64, "a torn range reached synced bytes; {report}");
        for (offset, (&got, &want)) in after.iter().zip(&everything).enumerate() {
            assert!(torn.contains(&(offset as u64)) || got == want, "byte {offset} is {got:#x}, written {want:#x}; {report}");
        }
    }
    assert_eq!(seen, BTreeSet::from(["dropped", "kept all", "prefix", "torn"]), "every outcome of the model occurs");
}

#[test]
fn given_only_synced_writes_when_power_is_lost_should_change_nothing_for_any_seed() {
    for seed in 0..SEEDS {
        let (_dir, fs) = fresh();
        let path = file_with(&fs, "seg.log", b"all of it synced", &[]);
        let report = fs.simulate_power_loss(seed).unwrap();
        assert_eq!(report, PowerLossReport { seed, ..Default::default() });
        assert_eq!(std::fs::read(&path).unwrap(), b"all of it synced");
    }
}

#[test]
fn given_unsynced_overwrite_and_truncation_when_power_is_lost_should_restore_old_bytes_or_keep_new_ones() {
    let mut seen = BTreeSet::new();
    for seed in 0..SEEDS {
        let (_dir, fs) = fresh();
        let path = file_with(&fs, "f", b"0123456789abcdefghij", &[]);
        let file = fs.open(&path, OpenMode::Existing).unwrap();
        file.write_all_at(b"XY", 12).unwrap();
        file.set_len(16).unwrap();
        let report = fs.simulate_power_loss(seed).unwrap();
        let after = std::fs::read(&path).unwrap();
        let outcome = report.outcome_of(&path).cloned();
        assert_eq!(&after[..12], b"0123456789ab", "bytes below the lowest change never change; {report}");
        match outcome {
            Some(FileOutcome::Dropped) => assert_eq!(after, b"0123456789abcdefghij", "{report}"),
            Some(FileOutcome::KeptAll) => assert_eq!(after, b"0123456789abXYef", "{report}"),
            // Partly written: the new bytes up to the cut, then the durable ones.
            Some(FileOutcome::KeptPrefix { kept }) => {
                let want: Vec<u8> = b"0123456789abXYef"[..12 + kept as usize]
                    .iter()
                    .chain(&b"0123456789abcdefghij"[12 + kept as usize..])
                    .copied()
                    .collect();
                assert_eq!(after, want, "{report}");
            }
            Some(FileOutcome::Torn { torn, .. }) => assert!(torn.start >= 12 && torn.end <= 16, "{report}"),
            None => panic!("an unsynced change must be reported: {report}"),
        }
        seen.insert((outcome_name(report.outcome_of(&path)), after.len()));
    }
    assert!(seen.contains(&("dropped", 20)) && seen.contains(&("kept all", 16)), "truncation kept and undone both occur: {seen:?}");
}

#[test]
fn given_new_file_without_dir_sync_when_power_is_lost_may_vanish_but_never_with_dir_sync() {
    let mut vanished = 0;
    for seed in 0..SEEDS {
        for sync_dir in [false, true] {
            let (_dir, fs) = fresh();
            let path = fs.root().join("new.log");
            let file = fs.open(&path, OpenMode::CreateNew).unwrap();
            file.write_all_at(b"synced data", 0).unwrap();
            file.sync_all().unwrap();
            if sync_dir {
                fs.sync_dir(fs.root()).unwrap();
            }
            let report = fs.simulate_power_loss(seed).unwrap();
            match std::fs::read(&path) {
                Ok(bytes) => assert_eq!(bytes, b"synced data", "{report}"),
                Err(e) if e.kind() == ErrorKind::NotFound && !sync_dir => vanished += 1,
                Err(e) => panic!("sync_dir = {sync_dir}: {e}; {report}"),
            }
        }
    }
    assert!(vanished > SEEDS / 4 && vanished < SEEDS * 3 / 4, "without sync_dir the file vanished {vanished} times of {SEEDS}");
}

#[test]
fn given_rename_without_dir_sync_when_power_is_lost_may_revert_but_never_with_dir_sync() {
    let mut reverted = 0;
    for seed in 0..SEEDS {
        for sync_dir in [false, true] {
            let (_dir, fs) = fresh();
            let target = file_with(&fs, "catalog", b"old", &[]);
            let tmp = file_with(&fs, "catalog.tmp", b"new", &[]);
            fs.rename(&tmp, &target).unwrap();
            if sync_dir {
                fs.sync_dir(fs.root()).unwrap();
            }
            let report = fs.simulate_power_loss(seed).unwrap();
            let content = std::fs::read(&target).unwrap();
            if content == b"old" && !sync_dir {
                reverted += 1;
                assert_eq!(std::fs::read(&tmp).unwrap(), b"new", "the renamed file is back under its old name; {report}");
            } else {
                assert_eq!(content, b"new", "sync_dir = {sync_dir}; {report}");
                assert!(!tmp.exists(), "{report}");
            }
        }
    }
    assert!(reverted > SEEDS / 4 && reverted < SEEDS * 3 / 4, "reverted {reverted} times of {SEEDS}");
}

#[test]
fn given_removed_file_or_directory_without_dir_sync_when_power_is_lost_may_come_back_but_never_with_dir_sync() {
    let mut came_back = 0;
    for seed in 0..SEEDS {
        for sync_dir in [false, true] {
            let (_dir, fs) = fresh();
            let segment = file_with(&fs, "00000.log", b"retained?", &[b" unsynced"]);
            let table = fs.root().join("tables").join("9");
            create_dir_all_durable(&fs, &table).unwrap();
            let kept = file_with(&fs, "tables/9/00000.log", b"table data", &[]);
            fs.sync_dir(&table).unwrap();
            fs.remove_file(&segment).unwrap();
            fs.remove_dir_all(&fs.root().join("tables")).unwrap();
            if sync_dir {
                fs.sync_dir(fs.root()).unwrap();
            }
            let report = fs.simulate_power_loss(seed).unwrap();
            let trash = fs.root().join(TRASH_NAME);
            assert!(!trash.exists() || trash.read_dir().unwrap().next().is_none(), "the trash is emptied");
            match std::fs::read(&segment) {
                Ok(bytes) => {
                    assert!(!sync_dir, "{report}");
                    assert!(bytes.starts_with(b"retained?"), "it comes back with its synced content; {report}");
                    came_back += 1;
                }
                Err(e) => assert_eq!(e.kind(), ErrorKind::NotFound),
            }
            match std::fs::read(&kept) {
                Ok(bytes) => assert!(!sync_dir && bytes == b"table data", "sync_dir = {sync_dir}; {report}"),
                Err(e) => assert_eq!(e.kind(), ErrorKind::NotFound),
            }
        }
    }
    assert!(came_back > SEEDS / 4, "came back {came_back} times of {SEEDS}");
}

#[test]
fn given_directories_created_without_syncing_parents_when_power_is_lost_may_vanish_unless_created_durably() {
    let mut vanished = 0;
    for seed in 0..SEEDS {
        for durable in [false, true] {
            let (_dir, fs) = fresh();
            let bucket = fs.root().join("tables").join("3").join("0");
            if durable {
                create_dir_all_durable(&fs, &bucket).unwrap();
            } else {
                fs.create_dir_all(&bucket).unwrap();
            }
            let segment = bucket.join("00000.log");
            let file = fs.open(&segment, OpenMode::CreateNew).unwrap();
            fs.sync_dir(&bucket).unwrap();
            file.write_all_at(b"acked", 0).unwrap();
            file.sync_data().unwrap();
            let report = fs.simulate_power_loss(seed).unwrap();
            if durable {
                assert_eq!(std::fs::read(&segment).unwrap(), b"acked", "{report}");
            } else if !segment.exists() {
                vanished += 1;
            }
        }
    }
    assert!(vanished > 0, "a segment in a directory whose entry was never synced can vanish");
}

/// Replaces `path` (durable old content) with new content through `replace`, crashing after
/// every possible number of operations and losing power with many seeds; returns the first
/// state that is neither the old nor the new content, or old content after `replace` said Ok.
fn atomic_replace_violation(replace: impl Fn(&dyn FileSystem, &Path, &[u8]) -> Result<()>) -> Option<String> {
    let (old, new) = (b"old catalog, longer than the new one".as_slice(), b"new catalog".as_slice());
    for crash_after in 0..100 {
        let mut acknowledged_once = false;
        for seed in 0..40 {
            let dir = scratch_dir();
            let path = dir.path().join("catalog");
            // Written before the FaultFs exists: durable whatever `replace` does.
            std::fs::write(&path, old).unwrap();
            let fs = FaultFs::new(dir.path()).unwrap();
            fs.crash_after(crash_after);
            let acknowledged = replace(&fs, &path, new).is_ok();
            acknowledged_once |= acknowledged;
            let report = fs.simulate_power_loss(seed).unwrap();
            let after = std::fs::read(&path).unwrap_or_default();
            if after != old && after != new {
                return Some(format!("crash after {crash_after} ops: {:?}; {report}", String::from_utf8_lossy(&after)));
            }
            if acknowledged && after != new {
                return Some(format!("acknowledged, then {:?} after a power loss; {report}", String::from_utf8_lossy(&after)));
            }
        }
        // Every crash point is covered once the whole replacement runs before the crash.
        if acknowledged_once {
            return None;
        }
    }
    panic!("the replacement never completed within 100 operations");
}

#[test]
fn given_write_atomic_when_power_is_lost_at_every_crash_point_should_leave_old_or_new_content_never_a_mix() {
    assert_eq!(atomic_replace_violation(|fs, path, bytes| write_atomic(fs, path, bytes)), None);
}

/// The checker above must catch a `write_atomic` missing either fsync; checked by hand too by
/// deleting each call from `write_atomic` itself (both make the test above fail).
#[test]
fn given_atomic_write_missing_an_fsync_when_checked_should_be_caught() {
    let without_file_sync = |fs: &dyn FileSystem, path: &Path, bytes: &[u8]| -> Result<()> {
        let tmp = path.with_extension("tmp");
        fs.open(&tmp, OpenMode::CreateOrTruncate).at("tmp")?.write_all_at(bytes, 0).at("tmp")?;
        fs.rename(&tmp, path).at("rename")?;
        fs.sync_dir(path.parent().unwrap()).at("dir")
    };
    let without_dir_sync = |fs: &dyn FileSystem, path: &Path, bytes: &[u8]| -> Result<()> {
        let tmp = path.with_extension("tmp");
        let file = fs.open(&tmp, OpenMode::CreateOrTruncate).at("tmp")?;
        file.write_all_at(bytes, 0).at("tmp")?;
        file.sync_all().at("tmp")?;
        fs.rename(&tmp, path).at("rename")
    };
    let torn = atomic_replace_violation(without_file_sync).expect("a missing file fsync is caught");
    assert!(torn.contains("crash after") || torn.contains("acknowledged"), "{torn}");
    let reverted = atomic_replace_violation(without_dir_sync).expect("a missing directory fsync is caught");
    assert!(reverted.contains("acknowledged"), "{reverted}");
}

#[test]
fn given_write_atomic_when_counted_should_take_five_mutating_ops_one_file_sync_and_one_dir_sync() {
    let (_dir, fs) = fresh();
    write_atomic(&fs, &fs.root().join("f"), b"x").unwrap();
    assert_eq!((fs.mutating_ops(), fs.file_syncs(), fs.dir_syncs()), (5, 1, 1), "create, write, sync_all, rename, sync_dir");
}

#[test]
fn given_crash_point_when_reached_should_fail_every_mutation_keep_reads_and_refuse_old_handles_after_reset() {
    let (_dir, fs) = fresh();
    let path = fs.root().join("seg.log");
    let file = fs.open(&path, OpenMode::CreateNew).unwrap();
    fs.crash_after(2);
    file.write_all_at(b"one", 0).unwrap();
    file.write_all_at(b"two", 3).unwrap();
    let dead = file.write_all_at(b"three", 6).unwrap_err();
    assert_eq!((dead.kind(), dead.to_string()), (ErrorKind::Other, SIMULATED_POWER_LOSS.to_string()));
    assert!(fs.is_dead());
    assert!(file.sync_data().is_err() && file.set_len(0).is_err());
    assert!(fs.rename(&path, &fs.root().join("x")).is_err() && fs.remove_file(&path).is_err());
    assert!(fs.open(&fs.root().join("other"), OpenMode::CreateNew).is_err() && fs.create_dir_all(&fs.root().join("d")).is_err());
    assert!(!fs.root().join("other").exists() && !fs.root().join("d").exists(), "nothing reaches the disk");
    assert_eq!(fs.read(&path).unwrap(), b"onetwo", "readers keep reading what was written");
    assert_eq!(&file.map_bytes(0, 6).unwrap()[..], b"onetwo");
    assert_eq!(fs.mutating_ops(), 3, "two admitted after crash_after, plus the create before it");

    fs.simulate_power_loss(7).unwrap();
    fs.reset();
    assert!(!fs.is_dead() && fs.mutating_ops() == 0);
    assert!(file.len().is_err(), "a handle from before the power loss is refused");
    let reopened = fs.open(&fs.root().join("new"), OpenMode::CreateNew).unwrap();
    reopened.write_all_at(b"next life", 0).unwrap();
}

#[test]
fn given_process_crash_without_power_loss_when_reset_should_keep_unsynced_data() {
    let (_dir, fs) = fresh();
    let path = fs.root().join("seg.log");
    fs.open(&path, OpenMode::CreateNew).unwrap().write_all_at(b"page cache", 0).unwrap();
    fs.crash_now();
    fs.reset();
    assert_eq!(fs.read(&path).unwrap(), b"page cache");
    let report = fs.simulate_power_loss(1).unwrap();
    assert!(!report.undone.is_empty() || !report.files.is_empty(), "the unsynced create and write are still at risk: {report}");
}

#[test]
fn given_injected_sync_failures_when_syncing_should_fail_with_eio_only_where_asked_and_leave_data_unsynced() {
    let (_dir, fs) = fresh();
    let a = fs.open(&fs.root().join("a.log"), OpenMode::CreateNew).unwrap();
    let b = fs.open(&fs.root().join("b.log"), OpenMode::CreateNew).unwrap();
    fs.sync_dir(fs.root()).unwrap();
    fs.fail_next_syncs_matching(2, |p| p.ends_with("b.log"));
    a.write_all_at(b"aaaa", 0).unwrap();
    b.write_all_at(b"bbbb", 0).unwrap();
    a.sync_data().unwrap();
    assert_eq!(b.sync_data().unwrap_err().raw_os_error(), Some(libc::EIO));
    assert_eq!(b.sync_all().unwrap_err().raw_os_error(), Some(libc::EIO));
    let report = fs.simulate_power_loss(0).unwrap();
    assert!(report.outcome_of(&fs.root().join("a.log")).is_none(), "a was synced: {report}");
    assert!(report.outcome_of(&fs.root().join("b.log")).is_some(), "b's failed syncs made nothing durable: {report}");

    fs.reset();
    let c = fs.open(&fs.root().join("c.log"), OpenMode::CreateNew).unwrap();
    fs.fail_next_syncs(1);
    assert_eq!(c.sync_data().unwrap_err().raw_os_error(), Some(libc::EIO));
    c.sync_all().unwrap();
    assert_eq!(fs.file_syncs(), 2, "failed syncs count too");
}

#[test]
fn given_injected_enospc_when_writing_should_fail_and_write_nothing() {
    let (_dir, fs) = fresh();
    let file = fs.open(&fs.root().join("f"), OpenMode::CreateNew).unwrap();
    fs.fail_next_writes(1);
    let err = file.write_all_at(b"lost", 0).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC));
    assert_eq!(file.len().unwrap(), 0);
    file.write_all_at(b"fits", 0).unwrap();
    assert_eq!(fs.read(&fs.root().join("f")).unwrap(), b"fits");
    fs.fail_next_writes_matching(1, |p| p.ends_with("g"));
    file.write_all_at(b"!", 4).unwrap();
}

#[test]
fn given_the_same_seed_and_operations_when_power_is_lost_twice_should_give_the_same_disk() {
    let run = |seed| {
        let (_dir, fs) = fresh();
        let mut contents = Vec::new();
        for i in 0..8 {
            let path = file_with(&fs, &format!("f{i}"), &[i as u8; 16], &[&[0xEE; 64]]);
            contents.push(path);
        }
        fs.rename(&contents[0], &fs.root().join("renamed")).unwrap();
        let report = fs.simulate_power_loss(seed).unwrap();
        let mut disk: Vec<(String, Vec<u8>)> = fs
            .list_dir(fs.root())
            .unwrap()
            .into_iter()
            .map(|n| (n.to_string_lossy().into_owned(), std::fs::read(fs.root().join(&n)).unwrap()))
            .collect();
        disk.sort();
        let report = report.to_string().replace(&fs.root().display().to_string(), "<root>");
        (report, disk)
    };
    for seed in [1, 42, u64::MAX] {
        assert_eq!(run(seed), run(seed));
    }
    assert_ne!(run(1).1, run(2).1, "different seeds lose different things");
}

#[test]
fn given_writers_on_many_threads_when_crashing_mid_run_should_keep_every_acknowledged_byte() {
    const THREADS: usize = 4;
    const APPENDS: usize = 300;
    for seed in 0..20u64 {
        let (_dir, fs) = fresh();
        let paths: Vec<PathBuf> = (0..THREADS).map(|t| file_with(&fs, &format!("bucket-{t}.log"), &[], &[])).collect();
        fs.crash_after(200 + seed * 97);
        let acknowledged: Vec<u64> = std::thread::scope(|s| {
            let handles: Vec<_> = paths
                .iter()
                .enumerate()
                .map(|(t, path)| {
                    let fs = &fs;
                    s.spawn(move || {
                        let file = fs.open(path, OpenMode::Existing).unwrap();
                        let mut acked = 0u64;
                        for i in 0..APPENDS as u64 {
                            let batch = [t as u8 * 16 + (i % 16) as u8; 10];
                            if file.write_all_at(&batch, i * 10).is_err() || (i % 3 == 2 && file.sync_data().is_err()) {
                                break;
                            }
                            if i % 3 == 2 {
                                acked = (i + 1) * 10;
                            }
                        }
                        acked
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let report = fs.simulate_power_loss(seed).unwrap();
        for (t, path) in paths.iter().enumerate() {
            let after = std::fs::read(path).unwrap();
            assert!(after.len() as u64 >= acknowledged[t], "thread {t}: {} < {} acked; {report}", after.len(), acknowledged[t]);
            for (i, chunk) in after[..acknowledged[t] as usize].chunks(10).enumerate() {
                assert!(chunk.iter().all(|&b| b == t as u8 * 16 + (i % 16) as u8), "thread {t} batch {i}; {report}");
            }
        }
    }
}

#[test]
fn given_paths_the_model_cannot_hold_when_used_should_be_refused() {
    let (dir, fs) = fresh();
    let outside = scratch_dir();
    assert_eq!(fs.open(&outside.path().join("f"), OpenMode::CreateNew).unwrap_err().kind(), ErrorKind::InvalidInput);
    assert_eq!(fs.exists(&dir.path().join("a").join("..").join("b")).unwrap_err().kind(), ErrorKind::InvalidInput);
    assert_eq!(fs.read(&dir.path().join(TRASH_NAME).join("1")).unwrap_err().kind(), ErrorKind::InvalidInput);
    fs.create_dir_all(&dir.path().join("d")).unwrap();
    let file = file_with(&fs, "f", b"x", &[]);
    assert_eq!(fs.rename(&file, &dir.path().join("d").join("f")).unwrap_err().kind(), ErrorKind::Unsupported);
    assert_eq!(fs.remove_file(&dir.path().join("d")).unwrap_err().raw_os_error(), Some(libc::EISDIR));
    assert_eq!(fs.remove_dir_all(&file).unwrap_err().raw_os_error(), Some(libc::ENOTDIR));
    assert_eq!(fs.list_dir(fs.root()).unwrap().len(), 2, "the trash is hidden");
}
