//! The engine against a real Cyrus 3.6.1 master and replica: every scenario is
//! replicated with `cyrsync sync`, then master and replica are compared field
//! by field (raw `GET USER` and `GET FULLMAILBOX` answers, byte for byte),
//! `cyrsync verify` must agree, a second run must send no APPLY, and Cyrus's
//! own `sync_client` must find nothing left to do.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod support;

use assert_cmd::Command;
use support::compare::{assert_same_user, names};
use support::csync::Csync;
use support::daemon::{Daemon, converge};
use support::imap::{Imap, quote};
use support::lmtp::{Lmtp, message};
use support::pair::{CyrusPair, REPL_PASSWORD, REPL_USER};
use support::sieve::Sieve;

fn cyrsync(pair: &CyrusPair, args: &[&str]) -> std::process::Output {
    Command::cargo_bin("cyrsync")
        .unwrap()
        .arg("-C")
        .arg(pair.master.imapd_conf())
        .args(args)
        .output()
        .unwrap()
}

/// Runs `cyrsync sync` and returns its summary; panics on failure.
fn sync(pair: &CyrusPair, args: &[&str]) -> String {
    let mut full = vec!["sync"];
    full.extend_from_slice(args);
    let out = cyrsync(pair, &full);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "cyrsync {full:?} failed\nstdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Runs `cyrsync sync args` as the only child of a fresh copy of this test
/// binary (the [`rss_probe`] test), which reports the child's peak resident
/// set (`getrusage(RUSAGE_CHILDREN)`, KiB); returns the summary and that
/// peak. Panics when the sync fails.
fn sync_measured(pair: &CyrusPair, args: &[&str]) -> (String, u64) {
    let mut full = vec![
        "-C".to_string(),
        pair.master.imapd_conf().display().to_string(),
        "sync".to_string(),
    ];
    full.extend(args.iter().map(|a| a.to_string()));
    let report = pair.dir.join("rss-probe.json");
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "rss_probe", "--nocapture", "--test-threads", "1"])
        .env("CYRSYNC_RSS_PROBE", serde_json::to_string(&full).unwrap())
        .env("CYRSYNC_RSS_PROBE_REPORT", &report)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "probe failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let stdout = r["stdout"].as_str().unwrap().to_string();
    assert!(
        r["success"].as_bool().unwrap(),
        "cyrsync sync {args:?} failed\nstdout: {stdout}\nstderr: {}",
        r["stderr"]
    );
    (stdout, r["max_rss_kib"].as_u64().unwrap())
}

/// Not a test of its own: when [`sync_measured`] runs this binary again
/// with `CYRSYNC_RSS_PROBE`, runs that cyrsync command as this process's
/// only child and writes its outcome and peak RSS. Otherwise does nothing.
#[test]
fn rss_probe() {
    let Ok(args) = std::env::var("CYRSYNC_RSS_PROBE") else {
        return;
    };
    let args: Vec<String> = serde_json::from_str(&args).unwrap();
    let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("cyrsync"))
        .args(&args)
        .output()
        .unwrap();
    let usage =
        nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN).unwrap();
    let report = serde_json::json!({
        "success": out.status.success(),
        "stdout": String::from_utf8_lossy(&out.stdout),
        "stderr": String::from_utf8_lossy(&out.stderr),
        // KiB on Linux and FreeBSD.
        "max_rss_kib": usage.max_rss(),
    });
    std::fs::write(
        std::env::var("CYRSYNC_RSS_PROBE_REPORT").unwrap(),
        report.to_string(),
    )
    .unwrap();
}

fn applies(summary: &str) -> u64 {
    let idx = summary
        .find(" APPLY command")
        .expect("summary has APPLY count");
    summary[..idx].rsplit(' ').next().unwrap().parse().unwrap()
}

fn counter(summary: &str, what: &str) -> u64 {
    let idx = summary
        .find(what)
        .unwrap_or_else(|| panic!("{what} in {summary}"));
    summary[..idx]
        .trim_end()
        .rsplit(' ')
        .next()
        .unwrap()
        .trim_start_matches('(')
        .parse()
        .unwrap()
}

/// Mailboxes read from the master's index files, those left to
/// `GET FULLMAILBOX`, and bodies read from its spool, from a sync summary.
fn local_counts(summary: &str) -> (u64, u64, u64) {
    let Some(line) = summary
        .lines()
        .find(|l| l.contains("read from the master's index files"))
    else {
        return (0, 0, 0);
    };
    let numbers: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    (numbers[0], numbers[1], numbers[2])
}

/// Master and replica agree on everything of `user`, byte for byte; our
/// verify agrees; a second sync sends nothing; sync_client finds nothing.
fn assert_replicated(pair: &CyrusPair, user: &str) {
    assert_same_user(pair, user);
    let out = cyrsync(pair, &["verify", "-u", user]);
    assert!(
        out.status.success(),
        "verify -u {user}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let again = sync(pair, &["-u", user]);
    assert_eq!(
        applies(&again),
        0,
        "second sync of {user} still applied: {again}"
    );
    let out = pair.sync_client(&["-v", "-u", user]);
    let said = String::from_utf8_lossy(&out.stdout);
    for line in said.lines() {
        assert!(
            !(line.starts_with("MAILBOX ") || line.starts_with("SEEN ") || line.starts_with("SUB")),
            "sync_client still had work after cyrsync: {said}"
        );
    }
}

/// One change made on the master: (alice's session, the admin's, LMTP).
type Step = Box<dyn Fn(&mut Imap, &mut Imap, &mut Lmtp)>;

#[test]
fn user_lifecycle_every_object_kind() {
    let pair = CyrusPair::start();
    let mut admin = Imap::login(pair.master.imap_port, "cyrus", "cyruspw");
    admin.ok("CREATE user.alice");
    admin.ok("CREATE user.alice.Projects");
    admin.ok("SETACL user.alice.Projects anyone p");
    admin.ok("CREATE user.bob");
    let mut lmtp = Lmtp::connect(pair.master.lmtp_port);
    for n in 0..5 {
        lmtp.deliver("alice", &message(n, "lifecycle"));
    }
    lmtp.deliver("alice+Projects", &message(50, "to a folder"));

    // Initial user.
    let first = sync(&pair, &["-u", "alice"]);
    assert!(counter(&first, "message(s) uploaded") >= 6, "{first}");
    assert_replicated(&pair, "alice");

    let (mut local_reads, mut fallbacks, mut local_bodies) = local_counts(&first);
    let mut alice = Imap::login(pair.master.imap_port, "alice", "alicepw");
    let steps: Vec<(&str, Step)> = vec![
        (
            "LMTP append",
            Box::new(|_, _, l| l.deliver("alice", &message(7, "later"))),
        ),
        (
            "IMAP APPEND with flags",
            Box::new(|a, _, _| a.append("INBOX", "(\\Flagged $Label1)", &message(8, "appended"))),
        ),
        (
            "flag changes",
            Box::new(|a, _, _| {
                a.ok("SELECT INBOX");
                a.ok("STORE 1:2 +FLAGS (\\Answered $Work)");
                a.ok("STORE 3 -FLAGS (\\Seen)");
            }),
        ),
        (
            "owner \\Seen",
            Box::new(|a, _, _| {
                a.ok("SELECT INBOX");
                a.ok("STORE 4 +FLAGS (\\Seen)");
            }),
        ),
        (
            "expunge",
            Box::new(|a, _, _| {
                a.ok("SELECT INBOX");
                a.ok("STORE 2 +FLAGS (\\Deleted)");
                a.ok("EXPUNGE");
            }),
        ),
        (
            "create",
            Box::new(|a, _, _| {
                a.ok("CREATE INBOX.Work");
            }),
        ),
        (
            "rename",
            Box::new(|a, _, _| {
                a.ok("RENAME INBOX.Work INBOX.Archive");
            }),
        ),
        (
            "delete",
            Box::new(|a, _, _| {
                a.ok("CREATE INBOX.Trash2");
                a.ok("DELETE INBOX.Trash2");
            }),
        ),
        (
            "subscribe",
            Box::new(|a, _, _| {
                a.ok("SUBSCRIBE INBOX.Projects");
                a.ok("SUBSCRIBE INBOX");
            }),
        ),
        (
            "unsubscribe",
            Box::new(|a, _, _| {
                a.ok("UNSUBSCRIBE INBOX");
            }),
        ),
        (
            "quota",
            Box::new(|_, adm, _| {
                adm.ok("SETQUOTA user.alice (STORAGE 100000 MESSAGE 5000)");
            }),
        ),
        (
            "ACL",
            Box::new(|a, _, _| {
                a.ok("SETACL INBOX.Projects bob lr");
                a.ok("SETACL INBOX bob lrs");
            }),
        ),
        (
            "mailbox metadata",
            Box::new(|a, _, _| {
                a.ok("SETMETADATA INBOX (/private/comment {5+}\r\nhello)");
                a.ok("SETMETADATA INBOX.Projects (/shared/comment \"team\")");
            }),
        ),
        (
            "per-message annotation",
            Box::new(|a, _, _| {
                a.ok("SELECT INBOX");
                a.ok("STORE 1 ANNOTATION (/comment (value.priv \"first\"))");
            }),
        ),
        (
            "copy to a second mailbox",
            Box::new(|a, _, _| {
                a.ok("SELECT INBOX");
                a.ok("COPY 1:3 INBOX.Projects");
            }),
        ),
        // The script goes up through timsieved in the loop below; it
        // replicates as the #sieve mailbox (SIEVE-MAILBOX).
        ("sieve upload and activate", Box::new(|_, _, _| {})),
    ];
    for (what, step) in &steps {
        step(&mut alice, &mut admin, &mut lmtp);
        if *what == "sieve upload and activate" {
            let mut sieve = Sieve::login(pair.master.sieve_port, "alice", "alicepw");
            sieve.put(
                "vacation",
                "require [\"fileinto\"];\nif header :contains \"subject\" \"work\" { fileinto \"INBOX.Projects\"; }\n",
            );
            sieve.activate("vacation");
        }
        let summary = sync(&pair, &["-u", "alice"]);
        assert!(applies(&summary) > 0, "{what}: nothing applied: {summary}");
        let (local, fallback, bodies) = local_counts(&summary);
        local_reads += local;
        fallbacks += fallback;
        local_bodies += bodies;
        if *what == "sieve upload and activate" {
            assert!(
                counter(&summary, "message(s) uploaded") >= 1,
                "{what}: the script was not sent: {summary}"
            );
            // The replica's timsieved serves it, active.
            let mut on_replica = Sieve::login(pair.replica.sieve_port, "alice", "alicepw");
            let scripts = on_replica.list();
            assert!(
                scripts.iter().any(|l| l == "\"vacation\" ACTIVE"),
                "{scripts:?}"
            );
        }
        if *what == "copy to a second mailbox" {
            assert!(
                counter(&summary, "found on the replica") >= 3,
                "{what}: {summary}"
            );
            assert_eq!(
                counter(&summary, "message(s) uploaded"),
                0,
                "{what}: {summary}"
            );
        }
        assert_replicated(&pair, "alice");
    }

    // The master is on this host: changed mailboxes were read from their
    // index files, and the annotated ones (annotations.db) over the protocol.
    assert!(local_reads > 0, "no mailbox read from the index files");
    assert!(
        fallbacks > 0,
        "annotated mailboxes were not left to GET FULLMAILBOX"
    );
    assert!(local_bodies > 0, "no message body was read from the spool");

    // Non-owner \Seen: bob reads alice's INBOX.
    let mut bob = Imap::login(pair.master.imap_port, "bob", "bobpw");
    bob.ok("SELECT user.alice");
    bob.ok("STORE 1:2 +FLAGS (\\Seen)");
    drop(bob);
    // Cyrus logs `SEEN bob <uniqueid>` and `MAILBOX user.alice` (the
    // owner's mailbox changes too): both users are synced, as the log says.
    let summary = sync(&pair, &["-u", "bob", "-u", "alice"]);
    assert!(applies(&summary) >= 2, "{summary}");
    assert_replicated(&pair, "bob");
    assert_replicated(&pair, "alice");

    // User delete.
    admin.ok("SETACL user.alice cyrus x");
    admin.ok("DELETE user.alice");
    sync(&pair, &["-u", "alice"]);
    assert_replicated(&pair, "alice");
}

#[test]
fn odd_mailbox_names() {
    let pair = CyrusPair::start();
    let mut admin = Imap::login(pair.master.imap_port, "cyrus", "cyruspw");
    admin.ok("CREATE user.bob");
    let mut carol = Imap::login(pair.master.imap_port, "bob", "bobpw");
    let mut created = Vec::new();
    for name in [
        "INBOX.with space",
        "INBOX.quote\"d",
        "INBOX.back\\slash",
        "INBOX.caf&AOk-",
        "INBOX.(paren)",
        "INBOX.brace{1}",
        "INBOX.tab\there",
        "INBOX.percent%sign",
        "INBOX.&ZeVnLIqe-",
        "INBOX.apostrophe's",
        "INBOX.at@sign, comma; semi",
        "INBOX.with space.and child",
        // Raw 8-bit (UTF-8) on the wire; Cyrus 3.6 stores names in modified
        // UTF-7, which the `&…-` forms above exercise.
        "INBOX.raw caf\u{e9} \u{65e5}\u{672c}",
    ] {
        // Cyrus refuses some characters in names (`"` among them); those
        // are skipped, the rest must replicate.
        if carol.run(&format!("CREATE {}", quote(name))).ok() {
            carol.append(name, "()", &message(1, name));
            created.push(name);
        }
    }
    eprintln!("mailbox names Cyrus accepted: {created:?}");
    assert!(created.contains(&"INBOX.with space"), "{created:?}");
    assert!(created.contains(&"INBOX.caf&AOk-"), "{created:?}");
    // Cyrus 3.6 refuses `"` and raw 8-bit in names: the apostrophe is the
    // quote it takes, modified UTF-7 the 8-bit characters.
    assert!(created.contains(&"INBOX.apostrophe's"), "{created:?}");
    assert!(created.contains(&"INBOX.&ZeVnLIqe-"), "{created:?}");
    assert!(created.len() >= 6, "{created:?}");
    sync(&pair, &["-u", "bob"]);
    assert_replicated(&pair, "bob");
    carol.ok(&format!(
        "RENAME {} {}",
        quote("INBOX.with space"),
        quote("INBOX.still with space")
    ));
    sync(&pair, &["-m", "user.bob.still with space"]);
    sync(&pair, &["-u", "bob"]);
    assert_replicated(&pair, "bob");
}

#[test]
fn all_users_and_mailbox_mode() {
    let pair = CyrusPair::start();
    let mut admin = Imap::login(pair.master.imap_port, "cyrus", "cyruspw");
    let mut lmtp = Lmtp::connect(pair.master.lmtp_port);
    for u in ["alice", "bob", "perf"] {
        admin.ok(&format!("CREATE user.{u}"));
        for n in 0..3 {
            lmtp.deliver(u, &message(n, u));
        }
    }
    let summary = sync(&pair, &["-A"]);
    assert_eq!(counter(&summary, "message(s) uploaded"), 9, "{summary}");
    for u in ["alice", "bob", "perf"] {
        assert_replicated(&pair, u);
    }
    // -m one mailbox.
    lmtp.deliver("bob", &message(9, "one more"));
    let summary = sync(&pair, &["-m", "user.bob"]);
    assert_eq!(counter(&summary, "message(s) uploaded"), 1, "{summary}");
    assert_replicated(&pair, "bob");
}

/// `APPLY RESERVE` is skipped only where it can find nothing: bodies the
/// replica holds in another mailbox of the set, or received earlier in the
/// same session, are found by it and not sent again.
#[test]
fn reserve_finds_what_the_replica_holds_and_is_skipped_only_where_nothing_is() {
    let pair = CyrusPair::start();
    let mut admin = Imap::login(pair.master.imap_port, "cyrus", "cyruspw");
    let mut lmtp = Lmtp::connect(pair.master.lmtp_port);
    // A new user whose messages are in two folders: the replica has no
    // mailbox of bob's, yet the second folder's bodies arrived in this
    // session with the first, and RESERVE finds them.
    admin.ok("CREATE user.bob");
    for n in 0..3 {
        lmtp.deliver("bob", &message(n, "bob"));
    }
    let mut bob = Imap::login(pair.master.imap_port, "bob", "bobpw");
    bob.ok("CREATE INBOX.Copy");
    bob.ok("SELECT INBOX");
    bob.ok("COPY 1:3 INBOX.Copy");
    let summary = sync(&pair, &["-u", "bob"]);
    assert_eq!(counter(&summary, "message(s) uploaded"), 3, "{summary}");
    assert_eq!(counter(&summary, "found on the replica"), 3, "{summary}");
    assert_replicated(&pair, "bob");

    // A later session: the messages are in bob's INBOX on the replica, and
    // a new folder holding copies of them is filled from there.
    bob.ok("CREATE INBOX.Later");
    bob.ok("SELECT INBOX");
    bob.ok("COPY 1:3 INBOX.Later");
    lmtp.deliver("bob", &message(7, "new"));
    let summary = sync(&pair, &["-u", "bob"]);
    assert_eq!(counter(&summary, "message(s) uploaded"), 1, "{summary}");
    assert_eq!(counter(&summary, "found on the replica"), 3, "{summary}");
    assert_replicated(&pair, "bob");
}

/// Peak RSS allowed for seeding the 10 000-message mailbox (debug build).
/// Measured 57–60 MiB, mostly the mailbox's records (one copy, ~1 KiB
/// each in a debug build) and the binary itself; holding the 80 MB of
/// bodies instead of streaming them would add at least that much.
const SEED_RSS_MAX_KIB: u64 = 96 << 10;

/// Peak RSS a 20 MiB message may add over the same sync with nothing to
/// send. Measured under 1 MiB; buffering the body would add 20 MiB.
const BIG_MESSAGE_RSS_MAX_KIB: u64 = 8 << 10;

#[test]
fn large_mailbox_in_batches_and_a_large_message() {
    let pair = CyrusPair::start_with(&["sync_batchsize: 1000"]);
    let mut admin = Imap::login(pair.master.imap_port, "cyrus", "cyruspw");
    admin.ok("CREATE user.perf");
    let mut lmtp = Lmtp::connect(pair.master.lmtp_port);
    let n = std::env::var("CYRSYNC_LARGE_MAILBOX")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000usize);
    // About 8 KiB each, 80 MB in all: enough that keeping the bodies in
    // memory instead of streaming them shows in the peak RSS.
    let padding: String = (0..110)
        .map(|l| format!("padding line {l:03} of a bulk message, so that it weighs 8 KiB.....\n"))
        .collect();
    for i in 0..n {
        lmtp.deliver("perf", &format!("{}{padding}", message(i, "bulk")));
    }
    let (summary, seed_rss) = sync_measured(&pair, &["-u", "perf"]);
    eprintln!(
        "peak RSS of `cyrsync sync -u perf` seeding {n} messages ({} bytes): {seed_rss} KiB",
        counter(&summary, "bytes)")
    );
    assert_eq!(
        counter(&summary, "message(s) uploaded"),
        n as u64,
        "{summary}"
    );
    // 1000 per APPLY MAILBOX: at least n/1000 of them.
    assert!(applies(&summary) >= (n / 1000) as u64, "{summary}");
    assert!(
        seed_rss < SEED_RSS_MAX_KIB,
        "seeding {n} messages took {seed_rss} KiB (bound {SEED_RSS_MAX_KIB} KiB)"
    );
    assert_replicated(&pair, "perf");

    // A 20 MB message, streamed: in a folder of its own, so that the
    // measure is the message's, against the same sync with nothing to send.
    let mut big =
        String::from("From: a@example.org\r\nTo: perf@example.org\r\nSubject: big\r\n\r\n");
    let line = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_=+!\r\n";
    while big.len() < 20 << 20 {
        big.push_str(line);
    }
    let mut perf = Imap::login(pair.master.imap_port, "perf", "perfpw");
    perf.ok("CREATE INBOX.Big");
    sync(&pair, &["-u", "perf"]);
    let (_, idle_rss) = sync_measured(&pair, &["-u", "perf"]);
    perf.append("INBOX.Big", "()", &big);
    let (summary, big_rss) = sync_measured(&pair, &["-u", "perf"]);
    eprintln!(
        "peak RSS of `cyrsync sync -u perf` sending a {} MiB message: {big_rss} KiB ({idle_rss} KiB with nothing to send)",
        big.len() >> 20
    );
    assert!(counter(&summary, "message(s) uploaded") == 1, "{summary}");
    assert!(
        big_rss < idle_rss + BIG_MESSAGE_RSS_MAX_KIB,
        "a {} MiB message took {big_rss} KiB, {idle_rss} KiB without it",
        big.len() >> 20
    );
    assert_replicated(&pair, "perf");

    // Another one into the 10 000-message INBOX (an update with SINCE_*).
    perf.append(
        "INBOX",
        "()",
        &big.replacen("Subject: big", "Subject: big 2", 1),
    );
    let (summary, rss) = sync_measured(&pair, &["-u", "perf"]);
    eprintln!("peak RSS of the same into the {n}-message INBOX: {rss} KiB");
    assert!(counter(&summary, "message(s) uploaded") == 1, "{summary}");
    assert!(rss < SEED_RSS_MAX_KIB, "{rss} KiB");
    assert_replicated(&pair, "perf");
}

#[test]
fn replica_changed_behind_our_back() {
    let pair = CyrusPair::start();
    let mut admin = Imap::login(pair.master.imap_port, "cyrus", "cyruspw");
    admin.ok("CREATE user.alice");
    let mut lmtp = Lmtp::connect(pair.master.lmtp_port);
    for n in 0..4 {
        lmtp.deliver("alice", &message(n, "split"));
    }
    sync(&pair, &["-u", "alice"]);
    assert_replicated(&pair, "alice");

    // Someone flags a message directly on the replica; later the master
    // changes too. The replica's modseq is now ahead: Cyrus answers
    // IMAP_SYNC_CHECKSUM, and the newer replica change must not be lost.
    let mut on_replica = Imap::login(pair.replica.imap_port, "alice", "alicepw");
    on_replica.ok("SELECT INBOX");
    on_replica.ok("STORE 1 +FLAGS (\\Flagged)");
    on_replica.ok("STORE 1 +FLAGS ($Replica)");
    drop(on_replica);
    let mut alice = Imap::login(pair.master.imap_port, "alice", "alicepw");
    alice.ok("SELECT INBOX");
    alice.ok("STORE 3 +FLAGS (\\Answered)");
    let summary = sync(&pair, &["-u", "alice"]);
    assert!(summary.contains("CRC mismatch"), "{summary}");
    assert!(summary.contains("copied back"), "{summary}");
    assert_replicated(&pair, "alice");
    // The replica's change is now on the master.
    let reply = alice.ok("FETCH 1 FLAGS");
    let text = String::from_utf8_lossy(&reply.untagged.concat()).into_owned();
    assert!(
        text.contains("\\Flagged") && text.contains("$Replica"),
        "{text}"
    );

    // A message expunged only on the replica: cyrsync does not expunge on
    // the master on the replica's word; it refuses with an explanation
    // naming the message and the fix, and the run exits non-zero.
    let mut on_replica = Imap::login(pair.replica.imap_port, "alice", "alicepw");
    on_replica.ok("SELECT INBOX");
    on_replica.ok("STORE 2 +FLAGS (\\Deleted)");
    on_replica.ok("EXPUNGE");
    drop(on_replica);
    lmtp.deliver("alice", &message(10, "after the expunge"));
    let out = cyrsync(&pair, &["sync", "-u", "alice"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("FAILED alice") && text.contains("UID 2"),
        "{text}"
    );
    assert!(
        text.contains("change these messages on the master"),
        "{text}"
    );
    // Following the advice repairs it: the master deletes the message too.
    alice.ok("STORE 2 +FLAGS (\\Deleted)");
    alice.ok("EXPUNGE");
    sync(&pair, &["-u", "alice"]);
    assert_replicated(&pair, "alice");
}

/// Cyrus 3's own namespace defaults (`altnamespace` and `unixhierarchysep`
/// on, as an imapd.conf that does not set them gets) with
/// `virtdomains: userid`: users in several domains, one localpart in two of
/// them, a `.` inside a userid and inside a folder name, folders with
/// spaces; first one-shot, then rolling.
#[test]
fn virtual_domains_under_cyrus_3_namespace_defaults() {
    let pair = CyrusPair::start();
    for inst in [&pair.master, &pair.replica] {
        inst.set_option("virtdomains", "userid");
        inst.set_option("altnamespace", "yes");
        inst.set_option("unixhierarchysep", "yes");
    }
    pair.restart();
    let users = [
        "alice",
        "alice@example.com",
        "first.last@example.com",
        "bob@example.org",
    ];
    // A global administrator names a user's folder `user/local/folder@domain`.
    let ext = |u: &str, folder: &str| {
        let (local, domain) = match u.split_once('@') {
            Some((l, d)) => (l, format!("@{d}")),
            None => (u, String::new()),
        };
        let folder = if folder.is_empty() {
            String::new()
        } else {
            format!("/{folder}")
        };
        quote(&format!("user/{local}{folder}{domain}"))
    };
    let mut admin = Imap::login(pair.master.imap_port, "cyrus", "cyruspw");
    let mut lmtp = Lmtp::connect(pair.master.lmtp_port);
    for (i, u) in users.iter().enumerate() {
        admin.ok(&format!("CREATE {}", ext(u, "")));
        admin.ok(&format!("CREATE {}", ext(u, "Sent Items")));
        admin.ok(&format!("SETQUOTA {} (STORAGE {})", ext(u, ""), 1000 + i));
        // An administrator holds only `lca` on users' mailboxes.
        for f in ["", "Sent Items"] {
            admin.ok(&format!("SETACL {} cyrus lrswipkxtecdn", ext(u, f)));
        }
        for n in 0..3 {
            lmtp.deliver(u, &message(n, u));
        }
        let sent = ext(u, "Sent Items");
        admin.append(&sent[1..sent.len() - 1], "(\\Seen)", &message(9, u));
    }
    let mut master = Csync::connect(pair.master.csync_port, REPL_USER, REPL_PASSWORD);
    let listed = master.run("GET USER first.last@example.com");
    assert!(
        names(&listed.items)
            .iter()
            .any(|n| n == "example.com!user.first^last.Sent Items"),
        "internal names: {:?}",
        names(&listed.items)
    );
    for u in users {
        sync(&pair, &["-u", u]);
        assert_replicated(&pair, u);
    }
    let _daemon = Daemon::start(&pair, &["-n", ""]);
    for (i, u) in users.iter().enumerate() {
        lmtp.deliver(u, &message(10 + i, "rolling"));
        admin.ok(&format!("SELECT {}", ext(u, "")));
        admin.ok("STORE 1 +FLAGS (\\Flagged)");
        admin.ok(&format!(
            "RENAME {} {}",
            ext(u, "Sent Items"),
            ext(u, "Sent.2026")
        ));
    }
    for u in users {
        converge(&pair, &["-u", u], std::time::Duration::from_secs(30));
    }
    drop(_daemon);
    for u in users {
        assert_replicated(&pair, u);
    }
}

/// Master and replica agree on the mailboxes `names` field for field
/// (`GET FULLMAILBOX`, every record).
fn assert_same_mailboxes(pair: &CyrusPair, names: &[&str]) {
    let mut m = Csync::connect(pair.master.csync_port, REPL_USER, REPL_PASSWORD);
    let mut r = Csync::connect(pair.replica.csync_port, REPL_USER, REPL_PASSWORD);
    for name in names {
        let mf = m.run(&format!("GET FULLMAILBOX {}", quote(name)));
        let rf = r.run(&format!("GET FULLMAILBOX {}", quote(name)));
        assert!(mf.status.starts_with("OK"), "{name}: {}", mf.status);
        assert!(!mf.items.is_empty(), "{name} is not on the master");
        assert_eq!(
            support::compare::without_expunged_modseq(&mf.items),
            support::compare::without_expunged_modseq(&rf.items),
            "GET FULLMAILBOX {name} differs"
        );
    }
}

/// Shared (non-user) mailboxes, which no USER line covers: created, filled,
/// renamed and deleted (Cyrus 3.6.1's imapd dies on a SETMETADATA of a
/// shared mailbox here, so annotations are left to the user scenarios) on the master, one-shot with `-m` and
/// rolling from the log.
#[test]
fn shared_mailboxes() {
    let pair = CyrusPair::start();
    let mut admin = Imap::login(pair.master.imap_port, "cyrus", "cyruspw");
    for m in [
        "shared",
        "shared.lists",
        "shared.lists.cyrus devel",
        "shared.old",
    ] {
        admin.ok(&format!("CREATE {}", quote(m)));
        admin.ok(&format!("SETACL {} cyrus lrswipkxtecdan", quote(m)));
        admin.ok(&format!("SETACL {} anyone lrsp", quote(m)));
    }
    for n in 0..3 {
        admin.append("shared.lists", "(\\Seen)", &message(n, "shared"));
        admin.append("shared.lists.cyrus devel", "()", &message(n, "devel"));
    }
    admin.append("shared.old", "()", &message(5, "old"));
    let all = [
        "shared",
        "shared.lists",
        "shared.lists.cyrus devel",
        "shared.old",
    ];
    let mut args = vec![];
    for m in all {
        args.extend(["-m", m]);
    }
    sync(&pair, &args);
    assert_same_mailboxes(&pair, &all);
    let out = cyrsync(&pair, &[&["verify"][..], &args].concat());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(applies(&sync(&pair, &args)), 0, "a second sync applied");

    let _daemon = Daemon::start(&pair, &["-n", ""]);
    admin.append("shared.lists", "()", &message(7, "rolling"));
    admin.ok("SELECT shared.lists");
    admin.ok("STORE 1 +FLAGS (\\Deleted)");
    admin.ok("EXPUNGE");
    admin.ok("STORE 2 +FLAGS (\\Flagged)");
    admin.ok("RENAME \"shared.lists.cyrus devel\" \"shared.lists.cyrus-devel\"");
    admin.ok("CREATE shared.news");
    admin.ok("SETACL shared.news cyrus lrswipkxtecdan");
    admin.append("shared.news", "()", &message(8, "news"));
    admin.ok("DELETE shared.old");
    let now = [
        "shared",
        "shared.lists",
        "shared.lists.cyrus-devel",
        "shared.news",
    ];
    let mut args = vec![];
    for m in now {
        args.extend(["-m", m]);
    }
    let start = std::time::Instant::now();
    loop {
        let (ok, text) = support::daemon::verify(&pair, &args);
        if ok {
            break;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "no convergence: {text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_same_mailboxes(&pair, &now);
    // sync_client -m takes the mailboxes as arguments.
    let out = pair.sync_client(&[&["-v", "-m"][..], &now].concat());
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        !said.lines().any(|l| l.starts_with("MAILBOX ")),
        "sync_client still had work after cyrsync: {said}"
    );
    let mut r = Csync::connect(pair.replica.csync_port, REPL_USER, REPL_PASSWORD);
    for gone in ["shared.old", "shared.lists.cyrus devel"] {
        let got = r.run(&format!("GET MAILBOXES ({})", quote(gone)));
        assert!(got.items.is_empty(), "{gone} still on the replica: {got:?}");
    }
}

/// `conversations: yes` (JMAP sites): records carry thread ids, mailboxes
/// a conversation modseq; threads replicated one-shot and rolling.
#[test]
fn conversations_on() {
    let pair = CyrusPair::start();
    for inst in [&pair.master, &pair.replica] {
        inst.set_option("conversations", "yes");
        inst.set_option("conversations_db", "twoskip");
    }
    pair.restart();
    let mut admin = Imap::login(pair.master.imap_port, "cyrus", "cyruspw");
    admin.ok("CREATE user.alice");
    admin.ok("CREATE user.alice.Sent");
    let mut lmtp = Lmtp::connect(pair.master.lmtp_port);
    let threaded = |n: usize, parent: Option<usize>| {
        let refs = parent
            .map(|p| {
                format!(
                    "In-Reply-To: <thread-{p}@example.org>\nReferences: <thread-{p}@example.org>\n"
                )
            })
            .unwrap_or_default();
        format!(
            "From: sender@example.org\nTo: alice@example.org\nSubject: {}topic {}\n\
             Message-ID: <thread-{n}@example.org>\n{refs}Date: Thu, 03 Dec 2026 12:00:00 +0000\n\n\
             Body {n}.\n",
            if parent.is_some() { "Re: " } else { "" },
            parent.unwrap_or(n)
        )
    };
    lmtp.deliver("alice", &threaded(1, None));
    lmtp.deliver("alice", &threaded(2, Some(1)));
    lmtp.deliver("alice", &threaded(3, None));
    let mut alice = Imap::login(pair.master.imap_port, "alice", "alicepw");
    alice.append("INBOX.Sent", "(\\Seen)", &threaded(4, Some(1)));
    let mut master = Csync::connect(pair.master.csync_port, REPL_USER, REPL_PASSWORD);
    let full = master.run("GET FULLMAILBOX user.alice");
    let text = String::from_utf8_lossy(&full.items.concat()).into_owned();
    assert!(
        text.contains("XCONVMODSEQ") && text.contains("thrid"),
        "conversations are not on: {text}"
    );
    sync(&pair, &["-u", "alice"]);
    assert_replicated(&pair, "alice");

    let _daemon = Daemon::start(&pair, &["-n", ""]);
    lmtp.deliver("alice", &threaded(5, Some(3)));
    alice.ok("SELECT INBOX");
    alice.ok("STORE 1 +FLAGS (\\Flagged)");
    alice.ok("STORE 2 +FLAGS (\\Deleted)");
    alice.ok("EXPUNGE");
    converge(&pair, &["-u", "alice"], std::time::Duration::from_secs(30));
    drop(_daemon);
    assert_replicated(&pair, "alice");
}

/// An administrator renames a user (`allowusermoves`): the old user goes
/// from the replica, the new one arrives with every folder, message, flag
/// and subscription; rolling, then checked as always.
#[test]
fn user_rename_rolling() {
    let pair = CyrusPair::start();
    for inst in [&pair.master, &pair.replica] {
        inst.set_option("allowusermoves", "yes");
    }
    pair.restart();
    let mut admin = Imap::login(pair.master.imap_port, "cyrus", "cyruspw");
    admin.ok("CREATE user.alice");
    admin.ok("CREATE user.alice.Projects");
    admin.ok("SETQUOTA user.alice (STORAGE 5000)");
    let mut lmtp = Lmtp::connect(pair.master.lmtp_port);
    for n in 0..4 {
        lmtp.deliver("alice", &message(n, "before the rename"));
    }
    let mut alice = Imap::login(pair.master.imap_port, "alice", "alicepw");
    alice.append("INBOX.Projects", "(\\Flagged)", &message(7, "project"));
    alice.ok("SUBSCRIBE INBOX.Projects");
    alice.ok("SELECT INBOX");
    alice.ok("STORE 2 +FLAGS (\\Seen)");
    drop(alice);
    sync(&pair, &["-u", "alice"]);
    assert_replicated(&pair, "alice");

    let _daemon = Daemon::start(&pair, &["-n", ""]);
    admin.ok("RENAME user.alice user.alicia");
    lmtp.deliver("alicia", &message(20, "after the rename"));
    converge(&pair, &["-u", "alicia"], std::time::Duration::from_secs(30));
    let mut r = Csync::connect(pair.replica.csync_port, REPL_USER, REPL_PASSWORD);
    let start = std::time::Instant::now();
    loop {
        let old = r.run("GET USER alice");
        if names(&old.items).is_empty() {
            break;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "alice still on the replica: {:?}",
            names(&old.items)
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    drop(_daemon);
    assert_replicated(&pair, "alicia");
}

/// `RESTART` goes to the replica only when something was staged there: a
/// sync that only changed flags sends none, one that uploaded a body does
/// (read from the protocol trace, `-vvv`).
#[test]
fn restart_only_after_staging() {
    let pair = CyrusPair::start();
    let mut admin = Imap::login(pair.master.imap_port, "cyrus", "cyruspw");
    admin.ok("CREATE user.alice");
    let mut lmtp = Lmtp::connect(pair.master.lmtp_port);
    lmtp.deliver("alice", &message(1, "staged"));
    let restarts = |pair: &CyrusPair| {
        let out = cyrsync(pair, &["-vvv", "sync", "-u", "alice"]);
        assert!(out.status.success());
        let trace = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(trace.contains("C: "), "no protocol trace: {trace}");
        trace
            .lines()
            .filter(|l| l.contains("C: ") && l.contains("RESTART"))
            .count()
    };
    assert_eq!(restarts(&pair), 1, "a body was uploaded: one RESTART");
    let mut alice = Imap::login(pair.master.imap_port, "alice", "alicepw");
    alice.ok("SELECT INBOX");
    alice.ok("STORE 1 +FLAGS (\\Flagged)");
    assert_eq!(restarts(&pair), 0, "only a flag changed: nothing staged");
    lmtp.deliver("alice", &message(2, "staged again"));
    assert_eq!(restarts(&pair), 1, "a new body: one RESTART");
    assert_replicated(&pair, "alice");
}
