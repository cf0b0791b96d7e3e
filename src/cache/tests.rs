#![allow(clippy::unwrap_used)]

use super::*;
use crate::dlist::KvList;

fn mailbox(uniqueid: &str, name: &str, modseq: u64) -> MailboxState {
    let annotation = KvList::new()
        .with("ENTRY", "/comment")
        .with("USERID", "alice")
        .with("MODSEQ", Value::num(0))
        .with(
            "VALUE",
            Value::bytes(b"two\r\nlines \"quoted\" \xc3\xa9".to_vec()),
        );
    let kv = KvList::new()
        .with("UNIQUEID", uniqueid)
        .with("MBOXNAME", name)
        .with("SYNC_CRC", Value::num(871169389))
        .with("SYNC_CRC_ANNOT", Value::num(3487200798))
        .with("LAST_UID", Value::num(4))
        .with("HIGHESTMODSEQ", Value::num(modseq))
        .with("UIDVALIDITY", Value::num(1796323652))
        .with("PARTITION", "default")
        .with("ACL", "alice\tlrswipkxtecdan\tbob\tlrs\t")
        .with("OPTIONS", "P")
        .with("ANNOTATIONS", Value::list([Value::KvList(annotation)]));
    MailboxState::from_kvlist(kv).unwrap()
}

fn with_records(m: &MailboxState) -> MailboxState {
    let mut kv = m.kvlist().clone();
    kv.push(
        "RECORD",
        Value::list([Value::kvlist(KvList::new().with("UID", Value::num(1)))]),
    );
    MailboxState::from_kvlist(kv).unwrap()
}

fn open(dir: &Path) -> (TargetCache, Vec<String>) {
    TargetCache::open(&dir.join("cyrsync.cache"), "127.0.0.1:2005").unwrap()
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn a_stored_state_comes_back_field_for_field_without_records() {
    let dir = tempfile::tempdir().unwrap();
    let (cache, warnings) = open(dir.path());
    assert!(warnings.is_empty(), "{warnings:?}");
    assert!(cache.is_empty());
    let m = mailbox("u1", "user.alice.caf\u{e9} \"x\"", 14);
    cache.store(&[&with_records(&m)]);
    let got = cache.lookup_names(&names(&["user.alice.caf\u{e9} \"x\"", "user.alice"]));
    let first = got[0].as_ref().unwrap();
    assert!(first.agrees_with(&m));
    assert_eq!(first.kvlist(), &m.header(), "no RECORD, same order");
    assert!(got[1].is_none());
    assert_eq!(cache.lookup_uniqueid("u1").unwrap().name(), m.name());
    assert_eq!(cache.len(), 1);
}

#[test]
fn a_rename_moves_the_name_and_a_reused_name_evicts_the_old_mailbox() {
    let dir = tempfile::tempdir().unwrap();
    let (cache, _) = open(dir.path());
    cache.store(&[&mailbox("u1", "user.a.Old", 5)]);
    cache.store(&[&mailbox("u1", "user.a.New", 6)]);
    let got = cache.lookup_names(&names(&["user.a.Old", "user.a.New"]));
    assert!(got[0].is_none());
    assert_eq!(got[1].as_ref().unwrap().highestmodseq(), 6);
    // Another mailbox now holds that name on the replica.
    cache.store(&[&mailbox("u2", "user.a.New", 1)]);
    assert!(cache.lookup_uniqueid("u1").is_none());
    assert_eq!(cache.len(), 1);
    let got = cache.lookup_names(&names(&["user.a.New"]));
    assert_eq!(got[0].as_ref().unwrap().uniqueid(), "u2");
}

#[test]
fn forgetting_by_uniqueid_and_by_name_counts_entries() {
    let dir = tempfile::tempdir().unwrap();
    let (cache, _) = open(dir.path());
    let a = mailbox("u1", "user.a", 1);
    let b = mailbox("u2", "user.a.B", 1);
    let c = mailbox("u3", "user.a.C", 1);
    cache.store(&[&a, &b, &c]);
    assert_eq!(cache.forget(&["u1"], &["user.a.B", "user.a.nosuch"]), 2);
    assert_eq!(cache.forget(&["u1"], &[]), 0);
    let got = cache.lookup_names(&names(&["user.a", "user.a.B", "user.a.C"]));
    assert!(got[0].is_none() && got[1].is_none() && got[2].is_some());
}

#[test]
fn forgetting_a_users_namespace_keeps_what_the_replica_still_has() {
    let dir = tempfile::tempdir().unwrap();
    let (cache, _) = open(dir.path());
    let states = [
        mailbox("u1", "user.al", 1),
        mailbox("u2", "user.al.Sent", 1),
        mailbox("u3", "user.al.Gone", 1),
        mailbox("u4", "DELETED.user.al.X.6B11", 1),
        mailbox("u5", "user.alice", 1),
        mailbox("u6", "user.al2.Sent", 1),
    ];
    cache.store(&states.iter().collect::<Vec<_>>());
    let keep: BTreeSet<&str> = ["u2"].into_iter().collect();
    let gone = cache.forget_names_under(
        "user.al",
        &["user.al.".to_string(), "DELETED.user.al.".to_string()],
        &keep,
    );
    assert_eq!(gone, 3);
    let left: Vec<bool> = cache
        .lookup_names(&names(&[
            "user.al",
            "user.al.Sent",
            "user.al.Gone",
            "DELETED.user.al.X.6B11",
            "user.alice",
            "user.al2.Sent",
        ]))
        .iter()
        .map(Option::is_some)
        .collect();
    assert_eq!(left, [false, true, false, false, true, true]);
}

#[test]
fn a_new_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let (cache, _) = open(dir.path());
    let mode = std::fs::metadata(cache.path())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn entries_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (cache, _) = open(dir.path());
        cache.store(&[&mailbox("u1", "user.a", 3)]);
        // Dropped: flushed.
    }
    let (cache, warnings) = open(dir.path());
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(cache.len(), 1);
}

#[test]
fn many_writes_stay_bounded_and_readable() {
    let dir = tempfile::tempdir().unwrap();
    let (cache, _) = open(dir.path());
    for i in 0..1000u32 {
        cache.store(&[&mailbox("u1", "user.a", u64::from(i) + 1)]);
    }
    let got = cache.lookup_names(&names(&["user.a"]));
    assert_eq!(got[0].as_ref().unwrap().highestmodseq(), 1000);
    let size = std::fs::metadata(cache.path()).unwrap().len();
    assert!(size < 8 << 20, "cache file grew to {size} bytes");
}

#[test]
fn a_garbage_file_is_moved_aside_and_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cyrsync.cache");
    let garbage: Vec<u8> = (0..100_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&path, &garbage).unwrap();
    let (cache, warnings) = TargetCache::open(&path, "r:1").unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("rebuilt"), "{warnings:?}");
    assert_eq!(
        std::fs::read(dir.path().join("cyrsync.cache.corrupt")).unwrap(),
        garbage
    );
    cache.store(&[&mailbox("u1", "user.a", 3)]);
    assert_eq!(cache.len(), 1);
}

#[test]
fn short_and_empty_files_do_not_stop_the_cache() {
    for content in [&b""[..], b"x", b"redb\x1a\x0a\xa9\x0d\x0a"] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cyrsync.cache");
        std::fs::write(&path, content).unwrap();
        let (cache, _) = TargetCache::open(&path, "r:1").unwrap();
        cache.store(&[&mailbox("u1", "user.a", 3)]);
        assert_eq!(cache.len(), 1, "{content:?}");
    }
}

#[test]
fn a_truncated_database_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cyrsync.cache");
    {
        let (cache, _) = TargetCache::open(&path, "r:1").unwrap();
        for i in 0..200 {
            cache.store(&[&mailbox(&format!("u{i}"), &format!("user.a.{i}"), 3)]);
        }
    }
    let len = std::fs::metadata(&path).unwrap().len();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..(len / 3) as usize]).unwrap();
    let (cache, warnings) = TargetCache::open(&path, "r:1").unwrap();
    assert!(
        warnings.is_empty() || warnings[0].contains("rebuilt"),
        "{warnings:?}"
    );
    // Whatever survived must still decode; new writes work.
    let _ = cache.lookup_names(&names(&["user.a.1"]));
    cache.store(&[&mailbox("v", "user.b", 1)]);
    assert!(cache.lookup_names(&names(&["user.b"]))[0].is_some());
}

#[test]
fn a_cache_for_another_replica_is_emptied() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cyrsync.cache");
    {
        let (cache, _) = TargetCache::open(&path, "old:2005").unwrap();
        cache.store(&[&mailbox("u1", "user.a", 3)]);
    }
    let (cache, warnings) = TargetCache::open(&path, "new:2005").unwrap();
    assert!(cache.is_empty());
    assert!(warnings[0].contains("old:2005"), "{warnings:?}");
}

#[test]
fn another_format_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cyrsync.cache");
    {
        let db = Database::create(&path).unwrap();
        let tx = db.begin_write().unwrap();
        tx.open_table(META)
            .unwrap()
            .insert("format", "something else 9")
            .unwrap();
        tx.commit().unwrap();
    }
    let (cache, warnings) = TargetCache::open(&path, "r:1").unwrap();
    assert!(cache.is_empty());
    assert!(warnings[0].contains("something else 9"), "{warnings:?}");
}

#[test]
fn a_held_cache_is_busy_not_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cyrsync.cache");
    let (first, _) = TargetCache::open(&path, "r:1").unwrap();
    first.store(&[&mailbox("u1", "user.a", 3)]);
    match TargetCache::open(&path, "r:1") {
        Err(CacheError::Busy { .. }) => {}
        other => panic!("{other:?}"),
    }
    assert!(!dir.path().join("cyrsync.cache.corrupt").exists());
    drop(first);
    let (again, _) = TargetCache::open(&path, "r:1").unwrap();
    assert_eq!(again.len(), 1);
}

#[test]
fn a_missing_directory_means_no_cache_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no/such/dir/cyrsync.cache");
    match TargetCache::open(&path, "r:1") {
        Err(CacheError::Access { .. }) => {}
        other => panic!("{other:?}"),
    }
}
