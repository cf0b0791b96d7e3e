//! The target-state cache against a real Cyrus 3.6.1 master and replica.
//!
//! Engine level (the library, with an observer on the replica session that
//! records every command): a warm cache replaces `GET MAILBOXES` on the
//! replica; a replica changed behind the cache's back — by another sync, by
//! an IMAP change, by losing the mailbox — refuses the stale `SINCE_*`, the
//! entry is dropped, and the mailbox ends equal field by field. Process
//! level: `cyrsync sync` refreshes the channel's cache file, rebuilds a
//! corrupt one and recreates a deleted one, and leaves it to the cyrus user.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod support;

use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cyrsync::cache::TargetCache;
use cyrsync::engine::{CacheUse, Engine, EngineOptions, SyncStats};
use cyrsync::proto::session::SessionObserver;
use cyrsync::proto::stream::Traffic;
use support::compare::assert_same_user;
use support::csync::Csync;
use support::imap::Imap;
use support::lmtp::{Lmtp, message};
use support::pair::{CyrusPair, REPL_PASSWORD, REPL_USER};

/// Every command sent on a session, by kind (`GET MAILBOXES`, `APPLY MAILBOX`).
#[derive(Debug, Default)]
struct Recorder(Mutex<Vec<String>>);

impl Recorder {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl SessionObserver for Recorder {
    fn sent(&self, what: &str, _line: &str) {
        self.0.lock().unwrap().push(what.to_string());
    }
    fn answered(
        &self,
        _what: &str,
        _outcome: &str,
        _elapsed: Duration,
        _traffic: Traffic,
        _waiting: Option<&cyrsync::proto::session::InFlight>,
    ) {
    }
}

/// Runs `f` on a thread with room for the engine's deep futures (debug
/// builds), re-raising its panic.
fn big_stack(f: impl FnOnce() + Send) {
    std::thread::scope(|s| {
        let t = std::thread::Builder::new()
            .stack_size(64 << 20)
            .spawn_scoped(s, f)
            .unwrap();
        if let Err(p) = t.join() {
            std::panic::resume_unwind(p);
        }
    });
}

struct Harness {
    rt: tokio::runtime::Runtime,
    engine: Engine,
    replica: Arc<Recorder>,
}

impl Harness {
    /// An engine for the default channel that believes `cache`.
    fn new(pair: &CyrusPair, cache: Arc<TargetCache>) -> Harness {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let ch = cyrsync::oneshot::channel(&pair.master.imapd_conf(), None).unwrap();
        let (s, mut t) = rt.block_on(cyrsync::oneshot::open(&ch)).unwrap();
        let replica = Arc::new(Recorder::default());
        t.set_observer(replica.clone());
        let mut engine = Engine::new(
            s,
            t,
            EngineOptions {
                batch_size: ch.batch_size as usize,
                ..EngineOptions::default()
            },
        );
        engine.set_cache(cache, CacheUse::Read);
        Harness {
            rt,
            engine,
            replica,
        }
    }

    /// A mailbox action, as rolling replication runs it; returns the
    /// commands it sent to the replica.
    fn mailboxes(&mut self, names: &[&str]) -> Vec<String> {
        self.replica.take();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        self.rt
            .block_on(self.engine.sync_mailboxes(&names))
            .unwrap_or_else(|e| panic!("sync {names:?}: {e}"));
        self.replica.take()
    }

    fn user(&mut self, user: &str) -> Vec<String> {
        self.replica.take();
        self.rt
            .block_on(self.engine.sync_user(user))
            .unwrap_or_else(|e| panic!("sync user {user}: {e}"));
        self.replica.take()
    }

    fn stats(&self) -> SyncStats {
        self.engine.stats().clone()
    }
}

fn lookups(sent: &[String]) -> Vec<&String> {
    sent.iter()
        .filter(|c| c.starts_with("GET MAILBOXES") || c.starts_with("GET UNIQUEIDS"))
        .collect()
}

/// sync_client, run after us, finds nothing to change.
fn sync_client_agrees(pair: &CyrusPair, user: &str) {
    let out = pair.sync_client(&["-v", "-u", user]);
    let said = String::from_utf8_lossy(&out.stdout);
    for line in said.lines() {
        assert!(
            !(line.starts_with("MAILBOX ") || line.starts_with("SEEN ") || line.starts_with("SUB")),
            "sync_client still had work after cyrsync: {said}"
        );
    }
}

#[test]
fn warm_cache_skips_the_replica_and_stale_entries_are_repaired() {
    let pair = CyrusPair::start();
    let mut admin = Imap::login(pair.master.imap_port, "cyrus", "cyruspw");
    admin.ok("CREATE user.alice");
    admin.ok("CREATE user.alice.Sub");
    // LMTP delivers to alice+Sub only with the `p` right.
    admin.ok("SETACL user.alice.Sub anyone p");
    let mut lmtp = Lmtp::connect(pair.master.lmtp_port);
    for n in 0..3 {
        lmtp.deliver("alice", &message(n, "cached"));
    }
    lmtp.deliver("alice+Sub", &message(3, "to the folder"));
    let cache = Arc::new(
        TargetCache::open(&pair.dir.join("engine-test.cache"), "test replica")
            .unwrap()
            .0,
    );
    big_stack(|| {
        let mut h = Harness::new(&pair, cache.clone());

        // A user sync reads the replica and fills the cache.
        let sent = h.user("alice");
        assert!(sent.iter().any(|c| c == "GET USER"), "{sent:?}");
        assert_same_user(&pair, "alice");
        assert_eq!(cache.len(), 2, "user.alice and user.alice.Sub");

        // Warm: a delivery goes out without asking the replica anything.
        lmtp.deliver("alice", &message(4, "warm"));
        let sent = h.mailboxes(&["user.alice"]);
        assert!(lookups(&sent).is_empty(), "replica asked: {sent:?}");
        assert!(sent.iter().any(|c| c == "APPLY MAILBOX"), "{sent:?}");
        assert_eq!(h.stats().cache_hits, 1);
        assert_same_user(&pair, "alice");

        // Nothing changed: nothing at all goes to the replica — the cached
        // header (from GET FULLMAILBOX) equals GET MAILBOXES field by field.
        let sent = h.mailboxes(&["user.alice", "user.alice.Sub"]);
        assert!(sent.is_empty(), "{sent:?}");
        assert_eq!(h.stats().cache_hits, 3);

        // A flag change: one APPLY MAILBOX, still no lookup.
        let mut alice = Imap::login(pair.master.imap_port, "alice", "alicepw");
        alice.ok("SELECT INBOX");
        alice.ok("STORE 1 +FLAGS (\\Flagged)");
        let sent = h.mailboxes(&["user.alice"]);
        assert!(lookups(&sent).is_empty(), "replica asked: {sent:?}");
        assert_same_user(&pair, "alice");
        assert_eq!(h.stats().cache_invalidations, 0);

        // Behind the cache's back (1): another sync moves the replica on.
        lmtp.deliver("alice", &message(5, "synced by sync_client"));
        pair.sync_client(&["-u", "alice"]);
        alice.ok("STORE 2 +FLAGS (\\Answered)");
        let before = h.stats();
        let sent = h.mailboxes(&["user.alice"]);
        let after = h.stats();
        // The stale SINCE_MODSEQ is refused (IMAP_SYNC_CHANGED), the entry
        // dropped, the replica read, and the APPLY sent again.
        assert!(!lookups(&sent).is_empty(), "{sent:?}");
        assert!(
            sent.iter().filter(|c| *c == "APPLY MAILBOX").count() >= 2,
            "{sent:?}"
        );
        assert!(after.cache_invalidations > before.cache_invalidations);
        assert_same_user(&pair, "alice");
        // The entry is good again: the next change is a hit.
        alice.ok("STORE 3 +FLAGS (\\Seen)");
        let sent = h.mailboxes(&["user.alice"]);
        assert!(lookups(&sent).is_empty(), "replica asked: {sent:?}");
        assert_same_user(&pair, "alice");

        // Behind the cache's back (2): an IMAP change on the replica, then a
        // change on the master. The replica's newer flag is copied back.
        let mut on_replica = Imap::login(pair.replica.imap_port, "alice", "alicepw");
        on_replica.ok("SELECT INBOX.Sub");
        on_replica.ok("STORE 1 +FLAGS ($OnReplica)");
        drop(on_replica);
        lmtp.deliver("alice+Sub", &message(6, "after the replica's change"));
        let before = h.stats();
        let sent = h.mailboxes(&["user.alice.Sub"]);
        assert!(
            h.stats().cache_invalidations > before.cache_invalidations,
            "{sent:?}"
        );
        assert_same_user(&pair, "alice");
        let mut on_master = Imap::login(pair.master.imap_port, "alice", "alicepw");
        on_master.ok("SELECT INBOX.Sub");
        let reply = on_master.ok("FETCH 1 FLAGS");
        let text = String::from_utf8_lossy(&reply.untagged.concat()).into_owned();
        assert!(text.contains("$OnReplica"), "{text}");

        // Behind the cache's back (3): the replica lost the folder (another
        // sync deleted it there). The cached state is refused and the
        // mailbox is created again from a fresh read.
        let mut r = Csync::connect(pair.replica.csync_port, REPL_USER, REPL_PASSWORD);
        let gone = r.run("APPLY UNMAILBOX user.alice.Sub");
        assert!(gone.status.starts_with("OK"), "{}", gone.status);
        drop(r);
        lmtp.deliver("alice+Sub", &message(7, "while the replica lost it"));
        let before = h.stats();
        let sent = h.mailboxes(&["user.alice.Sub"]);
        assert!(
            h.stats().cache_invalidations > before.cache_invalidations,
            "{sent:?}"
        );
        assert_same_user(&pair, "alice");

        // Finally: a second run changes nothing, nor does sync_client.
        let sent = h.mailboxes(&["user.alice", "user.alice.Sub"]);
        assert!(sent.is_empty(), "{sent:?}");
        sync_client_agrees(&pair, "alice");
        eprintln!("engine cache counters: {:?}", h.stats());
        h.rt.block_on(h.engine.close());
    });
}

/// The channel's cache file as `cyrsync sync` uses it.
fn cache_file(pair: &CyrusPair) -> std::path::PathBuf {
    pair.master.config_dir().join("sync").join("cyrsync.cache")
}

fn cyrsync_sync(pair: &CyrusPair, args: &[&str]) -> (String, String) {
    let out = std::process::Command::new(support::daemon::bin())
        .arg("-C")
        .arg(pair.master.imapd_conf())
        .arg("sync")
        .args(args)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "{stdout}{stderr}");
    (stdout, stderr)
}

/// The default channel's replica as the cache file names it.
fn replica_name(pair: &CyrusPair) -> String {
    let ch = cyrsync::oneshot::channel(&pair.master.imapd_conf(), None).unwrap();
    ch.replica.as_ref().unwrap().endpoint.to_string()
}

/// How many mailboxes the file caches (opened as the daemon would).
fn cached_entries(pair: &CyrusPair) -> u64 {
    let (cache, warnings) = TargetCache::open(&cache_file(pair), &replica_name(pair)).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    cache.len()
}

#[test]
fn oneshot_refreshes_the_cache_and_rebuilds_a_corrupt_or_deleted_file() {
    let pair = CyrusPair::start();
    let mut admin = Imap::login(pair.master.imap_port, "cyrus", "cyruspw");
    admin.ok("CREATE user.bob");
    admin.ok("CREATE user.bob.Archive");
    let mut lmtp = Lmtp::connect(pair.master.lmtp_port);
    lmtp.deliver("bob", &message(0, "one"));
    let path = cache_file(&pair);
    let cyrus_uid = std::fs::metadata(path.parent().unwrap()).unwrap().uid();

    // First run: the file is created, for the cyrus user, and filled.
    cyrsync_sync(&pair, &["-u", "bob"]);
    assert_same_user(&pair, "bob");
    assert_eq!(std::fs::metadata(&path).unwrap().uid(), cyrus_uid);
    assert_eq!(cached_entries(&pair), 2);

    // Garbage bytes: moved aside with a warning, rebuilt, replication fine.
    let garbage: Vec<u8> = (0..300_000u32).map(|i| (i * 7919 % 251) as u8).collect();
    std::fs::write(&path, &garbage).unwrap();
    lmtp.deliver("bob", &message(1, "two"));
    let (_, stderr) = cyrsync_sync(&pair, &["-u", "bob"]);
    assert!(stderr.contains("rebuilt"), "{stderr}");
    let aside = path.with_file_name("cyrsync.cache.corrupt");
    assert_eq!(std::fs::read(&aside).unwrap(), garbage);
    assert_eq!(std::fs::metadata(&path).unwrap().uid(), cyrus_uid);
    assert_same_user(&pair, "bob");
    assert_eq!(cached_entries(&pair), 2);

    // Deleted: recreated.
    std::fs::remove_file(&path).unwrap();
    lmtp.deliver("bob", &message(2, "three"));
    let (_, stderr) = cyrsync_sync(&pair, &["-m", "user.bob"]);
    assert!(
        !stderr.contains("without the target-state cache"),
        "{stderr}"
    );
    assert_same_user(&pair, "bob");
    assert_eq!(cached_entries(&pair), 1, "the mailbox synced with -m");
    cyrsync_sync(&pair, &["-u", "bob"]);
    assert_eq!(cached_entries(&pair), 2);

    // Held by another process: that run goes without the cache, once warned.
    let held = TargetCache::open(&path, &replica_name(&pair)).unwrap();
    lmtp.deliver("bob", &message(3, "four"));
    let (_, stderr) = cyrsync_sync(&pair, &["-u", "bob"]);
    assert_eq!(
        stderr.matches("without the target-state cache").count(),
        1,
        "{stderr}"
    );
    drop(held);
    assert_same_user(&pair, "bob");
    sync_client_agrees(&pair, "bob");
}
