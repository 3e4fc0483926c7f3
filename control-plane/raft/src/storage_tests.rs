//! Storage tests: durability across reopen, and refusing corrupt or truncated data dirs.

use std::path::Path;

use raft::Storage as _;
use raft::prelude::{Entry, HardState};

use crate::envelope::Members;
use crate::storage::{OpenError, SledStorage};

/// Opens the store, waiting while a store dropped just before still holds
/// sled's file lock (its flusher thread lets go asynchronously).
fn open(dir: &Path, id: u64) -> Result<SledStorage, OpenError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match SledStorage::open(dir, id) {
            Err(e)
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

fn members() -> Members {
    (1..=3).map(|id| (id, format!("m{id}:1"))).collect()
}

fn entry(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        data: format!("payload-{index}").into_bytes().into(),
        ..Default::default()
    }
}

/// A store with a bootstrap snapshot at 1 and entries 2..=n, committed to n.
fn populated(dir: &Path, n: u64) {
    populated_to(dir, n, n);
}

fn populated_to(dir: &Path, n: u64, commit: u64) {
    let mut s = open(dir, 1).unwrap();
    s.bootstrap(members(), b"empty".to_vec()).unwrap();
    let ents: Vec<Entry> = (2..=n).map(|i| entry(i, 2)).collect();
    s.append(&ents).unwrap();
    s.set_hard_state(HardState {
        term: 2,
        vote: 1,
        commit,
        ..Default::default()
    })
    .unwrap();
    s.persist().unwrap();
}

#[test]
fn reopen_keeps_log_hard_state_and_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    populated(dir.path(), 50);
    let s = open(dir.path(), 1).unwrap();
    assert!(s.is_initialized());
    assert_eq!(s.first_index().unwrap(), 2);
    assert_eq!(s.last_index().unwrap(), 50);
    assert_eq!(s.term(1).unwrap(), 1);
    assert_eq!(s.term(50).unwrap(), 2);
    assert_eq!(s.hard_state().commit, 50);
    assert_eq!(s.hard_state().vote, 1);
    assert_eq!(s.conf_state().voters, vec![1, 2, 3]);
    assert_eq!(s.members(), &members());
    let ents = s
        .entries(10, 13, None, raft::GetEntriesContext::empty(false))
        .unwrap();
    assert_eq!(ents, vec![entry(10, 2), entry(11, 2), entry(12, 2)]);
}

#[test]
fn append_replaces_conflicting_suffix_and_compaction_keeps_margin() {
    let dir = tempfile::tempdir().unwrap();
    populated_to(dir.path(), 20, 14);
    let mut s = open(dir.path(), 1).unwrap();
    // Entries past the commit index may be replaced by a new leader's.
    s.append(&[entry(15, 3), entry(16, 3)]).unwrap();
    s.persist().unwrap();
    assert_eq!(s.last_index().unwrap(), 16);
    assert_eq!(s.term(15).unwrap(), 3);
    let cs = s.conf_state().clone();
    s.compact(16, cs, b"state".to_vec(), 4).unwrap();
    s.persist().unwrap();
    drop(s);
    let s = open(dir.path(), 1).unwrap();
    assert_eq!(s.snapshot_index(), 16);
    assert_eq!(s.first_index().unwrap(), 13);
    assert_eq!(s.term(12).unwrap(), 2, "term of the truncated entry kept");
    assert!(
        s.entries(5, 10, None, raft::GetEntriesContext::empty(false))
            .is_err()
    );
}

#[test]
fn wrong_member_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    populated(dir.path(), 5);
    let err = open(dir.path(), 2).err().unwrap();
    assert!(
        matches!(
            err,
            OpenError::WrongMember {
                found: 1,
                expected: 2,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn missing_store_in_initialised_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    populated(dir.path(), 5);
    std::fs::remove_dir_all(dir.path().join("raft.sled")).unwrap();
    let err = open(dir.path(), 1).err().unwrap();
    assert!(matches!(err, OpenError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("refusing to start"), "{err}");
}

fn sled_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.join("raft.sled")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn garbage_in_store_files_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    populated(dir.path(), 200);
    for f in sled_files(dir.path()) {
        let len = std::fs::metadata(&f).unwrap().len() as usize;
        std::fs::write(&f, vec![0xA5u8; len.max(64)]).unwrap();
    }
    let err = open(dir.path(), 1).err();
    assert!(err.is_some(), "corrupt store opened");
}

#[test]
fn truncated_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    populated(dir.path(), 200);
    let db = dir.path().join("raft.sled").join("db");
    let len = std::fs::metadata(&db).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
    f.set_len(len / 2).unwrap();
    drop(f);
    let err = open(dir.path(), 1).err().unwrap();
    assert!(matches!(err, OpenError::Corrupt { .. }), "{err}");
}

#[test]
fn garbled_watermark_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    populated(dir.path(), 5);
    std::fs::write(dir.path().join("COMMITTED"), b"xx").unwrap();
    let err = open(dir.path(), 1).err().unwrap();
    assert!(matches!(err, OpenError::Corrupt { .. }), "{err}");
}

#[test]
fn corrupt_snapshot_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    populated(dir.path(), 5);
    let snap = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("snapshot-"))
        .unwrap();
    let mut bytes = std::fs::read(&snap).unwrap();
    bytes[6] ^= 0x40;
    std::fs::write(&snap, bytes).unwrap();
    let err = open(dir.path(), 1).err().unwrap();
    assert!(err.to_string().contains("checksum"), "{err}");
}

#[test]
fn reopen_in_the_middle_of_lazy_compaction() {
    let dir = tempfile::tempdir().unwrap();
    populated(dir.path(), 2000);
    let mut s = open(dir.path(), 1).unwrap();
    let cs = s.conf_state().clone();
    s.compact(1990, cs, b"state".to_vec(), 0).unwrap();
    // One synced batch deletes only a slice of the compacted entries.
    s.persist().unwrap();
    drop(s);
    let mut s = open(dir.path(), 1).unwrap();
    assert_eq!(s.first_index().unwrap(), 1991);
    assert_eq!(s.last_index().unwrap(), 2000);
    assert_eq!(s.term(1990).unwrap(), 2);
    for _ in 0..10 {
        s.persist().unwrap();
        s.set_commit(2000).unwrap();
    }
    drop(s);
    let s = open(dir.path(), 1).unwrap();
    assert_eq!(s.first_index().unwrap(), 1991);
    let ents = s
        .entries(1991, 2001, None, raft::GetEntriesContext::empty(false))
        .unwrap();
    assert_eq!(ents.len(), 10);
}
