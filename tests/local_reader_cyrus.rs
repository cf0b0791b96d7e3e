//! The local reader against its oracle: for every mailbox of a real Cyrus
//! 3.6.1 master, the state it builds from `cyrus.index` (plus the
//! `GET MAILBOXES` entry) equals `GET FULLMAILBOX` field for field — also
//! while deliveries and flag storms hit the same mailboxes; and where it
//! cannot vouch for the result (annotations outside the index, a change
//! between the two reads, a damaged file) it says so instead of answering.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod support;

use std::time::{Duration, Instant};

use cyrsync::dlist::{FileLiteral, Limits, parse_value};
use cyrsync::model::MailboxState;
use cyrsync::proto::session::MemoryBodies;
use cyrsync::source::local::{LocalError, LocalReader, Since};
use support::csync::Csync;
use support::imap::Imap;
use support::lmtp::{Lmtp, message};
use support::pair::{CyrusPair, REPL_PASSWORD, REPL_USER};

fn states(items: &[Vec<u8>]) -> Vec<MailboxState> {
    items
        .iter()
        .filter_map(|i| i.strip_prefix(b"* MAILBOX "))
        .map(|raw| {
            let raw = raw.strip_suffix(b"\r\n").unwrap_or(raw);
            let v = parse_value(raw, &Limits::default()).unwrap();
            MailboxState::from_kvlist(v.as_kvlist().unwrap().clone()).unwrap()
        })
        .collect()
}

/// `GET MAILBOXES` and `GET FULLMAILBOX` of `name` on the master.
fn protocol(master: &mut Csync, name: &str) -> (MailboxState, MailboxState) {
    let q = support::imap::quote(name);
    let listed = master.run(&format!("GET MAILBOXES ({q})"));
    assert!(listed.status.starts_with("OK"), "{}", listed.status);
    let full = master.run(&format!("GET FULLMAILBOX {q}"));
    assert!(full.status.starts_with("OK"), "{}", full.status);
    (
        states(&listed.items).pop().expect("listed"),
        states(&full.items).pop().expect("full"),
    )
}

fn all_mailboxes(master: &mut Csync, user: &str) -> Vec<String> {
    let r = master.run(&format!("GET USER {user}"));
    states(&r.items)
        .into_iter()
        .map(|m| m.name().to_string())
        .collect()
}

/// Compares the two sources for `name`; returns the local error, if any.
/// The records changed since a point half-way through the mailbox's
/// history must be exactly those of `GET FULLMAILBOX` above it.
fn oracle(reader: &mut LocalReader, master: &mut Csync, name: &str) -> Result<(), LocalError> {
    let (listed, full) = protocol(master, name);
    let local = reader.full_mailbox(&listed)?;
    assert_eq!(
        local.kvlist(),
        full.kvlist(),
        "local reader and GET FULLMAILBOX differ for {name}"
    );
    let since = Since {
        modseq: full.highestmodseq() / 2,
        last_uid: full.last_uid() / 2,
    };
    let changed = reader.changed_since(&listed, since)?;
    let want: Vec<_> = full
        .records()
        .unwrap()
        .into_iter()
        .filter(|r| r.modseq > since.modseq || u64::from(r.uid) > since.last_uid)
        .collect();
    assert_eq!(
        changed.records().unwrap(),
        want,
        "records changed since {since:?} differ for {name}"
    );
    assert_eq!(changed.header(), full.header(), "{name}");
    Ok(())
}

#[test]
fn local_records_equal_get_fullmailbox_field_for_field() {
    let pair = CyrusPair::start();
    let conf = pair.master.imapd_conf();
    let mut reader = LocalReader::new(&conf).expect("Cyrus's mbpath (cyrus-imapd package)");
    let mut admin = Imap::login(pair.master.imap_port, "cyrus", "cyruspw");
    admin.ok("CREATE user.alice");
    admin.ok("CREATE user.bob");
    let mut lmtp = Lmtp::connect(pair.master.lmtp_port);
    for n in 0..40 {
        lmtp.deliver(
            if n % 4 == 0 { "bob" } else { "alice" },
            &message(n, "oracle"),
        );
    }
    let mut alice = Imap::login(pair.master.imap_port, "alice", "alicepw");
    alice.ok("CREATE INBOX.Projects");
    alice.ok("CREATE \"INBOX.My Folder\"");
    alice.ok("SELECT INBOX");
    alice.ok("STORE 1:5 +FLAGS (\\Flagged $Label1)");
    alice.ok("STORE 3:8 +FLAGS (\\Answered Junk \\Draft)");
    alice.ok("STORE 2 -FLAGS ($Label1)");
    alice.ok("STORE 9:10 +FLAGS (\\Deleted)");
    alice.ok("EXPUNGE");
    alice.ok("COPY 1:4 INBOX.Projects");
    alice.ok("COPY 5 \"INBOX.My Folder\"");
    alice.append(
        "INBOX.Projects",
        "(\\Seen $Important)",
        &message(99, "appended"),
    );

    let mut master = Csync::connect(pair.master.csync_port, REPL_USER, REPL_PASSWORD);
    // imapd.conf names the partition and leaves mailbox_legacy_dirs off:
    // the first mailbox is placed before any mbpath run.
    let (listed, _) = protocol(&mut master, "user.alice");
    let first = reader
        .location(listed.uniqueid(), listed.partition())
        .expect("location derived from imapd.conf");
    assert!(
        first.derived && first.meta.join("cyrus.header").is_file(),
        "{first:?}"
    );
    let mut compared = 0;
    for user in ["alice", "bob"] {
        for name in all_mailboxes(&mut master, user) {
            oracle(&mut reader, &mut master, &name)
                .unwrap_or_else(|e| panic!("{name}: local reader refused: {e}"));
            compared += 1;
        }
    }
    assert!(compared >= 4, "only {compared} mailboxes compared");

    // mbpath has shown that the partition stores mailboxes by uniqueid: a
    // new mailbox's files are derived without running it, and read right.
    admin.ok("CREATE user.alice.Fresh");
    admin.ok("SETACL user.alice.Fresh anyone p");
    lmtp.deliver("alice+Fresh", &message(200, "fresh"));
    let (listed, _) = protocol(&mut master, "user.alice.Fresh");
    let derived = reader
        .location(listed.uniqueid(), listed.partition())
        .expect("derived location");
    assert!(derived.derived, "{derived:?}");
    oracle(&mut reader, &mut master, "user.alice.Fresh").unwrap();

    // A mailbox stored under its name (mailbox_legacy_dirs, as mailboxes
    // made before Cyrus 3.6 are): the derived guess is wrong, mbpath is
    // asked, and the read is right; the mailbox is not guessed again.
    pair.set_master_option("mailbox_legacy_dirs", "yes");
    pair.restart_master();
    let mut lmtp = Lmtp::connect(pair.master.lmtp_port);
    let mut master = Csync::connect(pair.master.csync_port, REPL_USER, REPL_PASSWORD);
    let mut admin = Imap::login(pair.master.imap_port, "cyrus", "cyruspw");
    admin.ok("CREATE user.dave");
    lmtp.deliver("dave", &message(201, "legacy"));
    let (listed, _) = protocol(&mut master, "user.dave");
    let guess = reader
        .location(listed.uniqueid(), listed.partition())
        .expect("derived location");
    assert!(guess.derived && !guess.meta.exists(), "{guess:?}");
    oracle(&mut reader, &mut master, "user.dave").unwrap();
    let told = reader
        .location(listed.uniqueid(), listed.partition())
        .expect("mbpath's location");
    assert!(!told.derived && told.meta.exists(), "{told:?}");

    // Bodies from the spool: each is the message its GUID names, byte for
    // byte what GET FETCH sends.
    let (listed, _) = protocol(&mut master, "user.alice");
    let full = reader.full_mailbox(&listed).unwrap();
    let mut checked = 0;
    for r in full
        .records()
        .unwrap()
        .iter()
        .filter(|r| !r.expunged)
        .take(5)
    {
        let literal = FileLiteral {
            partition: full.partition().to_string(),
            guid: r.guid.clone(),
            size: r.size,
        };
        let mut local = MemoryBodies::default();
        assert!(
            reader
                .copy_body(full.uniqueid(), r.uid, &literal, &mut local)
                .unwrap(),
            "UID {}",
            r.uid
        );
        let fetched = master.run(&format!(
            "GET FETCH %(MBOXNAME user.alice PARTITION {} UNIQUEID {} GUID {} UID {})",
            full.partition(),
            full.uniqueid(),
            r.guid,
            r.uid
        ));
        assert!(fetched.status.starts_with("OK"), "{}", fetched.status);
        let item = &fetched.items[0];
        let body_start = item.windows(2).position(|w| w == b"\r\n").unwrap() + 2;
        let body = &item[body_start..body_start + r.size as usize];
        assert_eq!(local.bodies[0].1, body, "UID {}", r.uid);
        checked += 1;
    }
    assert_eq!(checked, 5);

    // Under load: deliveries and a flag storm on the same mailbox while the
    // reader reads. Every answer is either equal to the oracle or refused
    // (a change between the two reads); never a different state.
    let port = pair.master.lmtp_port;
    let imap_port = pair.master.imap_port;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s1 = stop.clone();
    let delivering = std::thread::spawn(move || {
        let mut lmtp = Lmtp::connect(port);
        let mut n = 1000;
        while !s1.load(std::sync::atomic::Ordering::Relaxed) {
            lmtp.deliver("alice", &message(n, "storm"));
            n += 1;
        }
    });
    let s2 = stop.clone();
    let storming = std::thread::spawn(move || {
        let mut a = Imap::login(imap_port, "alice", "alicepw");
        a.ok("SELECT INBOX");
        let mut i = 0u32;
        while !s2.load(std::sync::atomic::Ordering::Relaxed) {
            let op = if i.is_multiple_of(2) { "+" } else { "-" };
            a.ok(&format!("STORE 1:* {op}FLAGS (\\Seen Storm)"));
            i += 1;
        }
    });
    let (mut equal, mut refused) = (0, 0);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(8) {
        // The oracle reads FULLMAILBOX after MAILBOXES; a change between
        // them is not a fault of the reader: compare only when the protocol
        // itself was steady. HIGHESTMODSEQ alone does not show it: an
        // owner's SELECT moves RECENTUID and RECENTTIME without a modseq.
        let (listed, full) = protocol(&mut master, "user.alice");
        if listed.header() != full.header() {
            continue;
        }
        match reader.full_mailbox(&listed) {
            Ok(local) => {
                if local.highestmodseq() == full.highestmodseq() {
                    assert_eq!(local.kvlist(), full.kvlist(), "differs under load");
                }
                equal += 1;
            }
            Err(LocalError::Mismatch { .. }) => refused += 1,
            Err(e) => panic!("under load: {e}"),
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    delivering.join().unwrap();
    storming.join().unwrap();
    eprintln!("under load: {equal} local reads equal to the oracle, {refused} refused as stale");
    assert!(equal > 0, "no local read succeeded under load");
}

/// Cyrus 3's defaults, `unixhierarchysep: yes` and `altnamespace: yes`,
/// give mailboxes external names unlike their internal ones (`user/alice`,
/// a `.` inside a name stored as `^`, 8-bit names in modified UTF-7): the
/// reader finds the files by uniqueid and reads them all the same.
#[test]
fn local_reader_is_indifferent_to_the_namespace() {
    let pair = CyrusPair::start();
    pair.set_master_option("unixhierarchysep", "yes");
    pair.set_master_option("altnamespace", "yes");
    pair.restart_master();
    let conf = pair.master.imapd_conf();
    let mut reader = LocalReader::new(&conf).expect("Cyrus's mbpath (cyrus-imapd package)");
    let mut admin = Imap::login(pair.master.imap_port, "cyrus", "cyruspw");
    admin.ok("CREATE user/carol");
    admin.ok("CREATE user/carol/v1.2");
    admin.ok("CREATE \"user/carol/Entw&APw-rfe\"");
    for m in ["user/carol/v1.2", "user/carol/Entw&APw-rfe"] {
        admin.ok(&format!("SETACL \"{m}\" anyone p"));
    }
    let mut lmtp = Lmtp::connect(pair.master.lmtp_port);
    for n in 0..6 {
        lmtp.deliver("carol", &message(n, "namespace"));
        lmtp.deliver("carol+v1.2", &message(n + 10, "namespace"));
    }
    let mut master = Csync::connect(pair.master.csync_port, REPL_USER, REPL_PASSWORD);
    let names = all_mailboxes(&mut master, "carol");
    assert!(
        names.iter().any(|n| n == "user.carol.v1^2"),
        "internal names: {names:?}"
    );
    for name in &names {
        oracle(&mut reader, &mut master, name)
            .unwrap_or_else(|e| panic!("{name}: local reader refused: {e}"));
    }
    assert_eq!(names.len(), 3, "{names:?}");
}

#[test]
fn local_reader_stands_aside_when_it_cannot_vouch() {
    let pair = CyrusPair::start();
    let conf = pair.master.imapd_conf();
    let mut reader = LocalReader::new(&conf).expect("Cyrus's mbpath");
    let mut admin = Imap::login(pair.master.imap_port, "cyrus", "cyruspw");
    admin.ok("CREATE user.alice");
    admin.ok("CREATE user.alice.Notes");
    let mut lmtp = Lmtp::connect(pair.master.lmtp_port);
    for n in 0..3 {
        lmtp.deliver("alice", &message(n, "aside"));
    }
    let mut master = Csync::connect(pair.master.csync_port, REPL_USER, REPL_PASSWORD);

    // A per-message annotation lives in annotations.db: the protocol must answer.
    let mut alice = Imap::login(pair.master.imap_port, "alice", "alicepw");
    alice.ok("SELECT INBOX");
    alice.ok("STORE 1 ANNOTATION (/comment (value.priv \"first\"))");
    match oracle(&mut reader, &mut master, "user.alice") {
        Err(LocalError::Annotations { .. }) => {}
        other => panic!("annotated mailbox: {other:?}"),
    }

    // A stale GET MAILBOXES entry (the mailbox changed since): refused.
    let (listed, _) = protocol(&mut master, "user.alice.Notes");
    alice.append("INBOX.Notes", "()", &message(10, "late"));
    match reader.full_mailbox(&listed) {
        Err(LocalError::Mismatch { .. }) => {}
        other => panic!("stale entry: {other:?}"),
    }
    oracle(&mut reader, &mut master, "user.alice.Notes").unwrap();

    // A spool file that is not the message its GUID names (same size,
    // one byte changed), or has another size: not used.
    let (listed, _) = protocol(&mut master, "user.alice.Notes");
    let full = reader.full_mailbox(&listed).unwrap();
    let r = full.records().unwrap()[0].clone();
    let out = std::process::Command::new(support::pair::cyrus_bin("mbpath"))
        .arg("-C")
        .arg(&conf)
        .args(["-j", "user.alice.Notes"])
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let data = std::path::Path::new(json["data"].as_str().unwrap()).join(format!("{}.", r.uid));
    let original = std::fs::read(&data).unwrap();
    let literal = FileLiteral {
        partition: full.partition().to_string(),
        guid: r.guid.clone(),
        size: r.size,
    };
    let mut sink = MemoryBodies::default();
    assert!(
        reader
            .copy_body(full.uniqueid(), r.uid, &literal, &mut sink)
            .unwrap()
    );
    let mut changed = original.clone();
    let mid = changed.len() / 2;
    changed[mid] ^= 0x20;
    std::fs::write(&data, &changed).unwrap();
    let same_size = reader.copy_body(
        full.uniqueid(),
        r.uid,
        &literal,
        &mut MemoryBodies::default(),
    );
    std::fs::write(&data, [original.as_slice(), b"x"].concat()).unwrap();
    let longer = reader.copy_body(
        full.uniqueid(),
        r.uid,
        &literal,
        &mut MemoryBodies::default(),
    );
    std::fs::remove_file(&data).unwrap();
    let gone = reader.copy_body(
        full.uniqueid(),
        r.uid,
        &literal,
        &mut MemoryBodies::default(),
    );
    std::fs::write(&data, &original).unwrap();
    assert!(!same_size.unwrap(), "a changed body passed the GUID check");
    assert!(!longer.unwrap(), "a body of another size was used");
    assert!(!gone.unwrap(), "a missing file was used");

    // A damaged index: refused by its CRCs, never sent.
    let (listed, _) = protocol(&mut master, "user.alice.Notes");
    let out = std::process::Command::new(support::pair::cyrus_bin("mbpath"))
        .arg("-C")
        .arg(&conf)
        .args(["-j", "user.alice.Notes"])
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let index = std::path::Path::new(json["meta"].as_str().unwrap()).join("cyrus.index");
    let mut bytes = std::fs::read(&index).unwrap();
    let original = bytes.clone();
    let last = bytes.len() - 20;
    bytes[last] ^= 0xff;
    std::fs::write(&index, &bytes).unwrap();
    let damaged = reader.full_mailbox(&listed);
    std::fs::write(&index, &original).unwrap();
    match damaged {
        Err(LocalError::Index { .. }) => {}
        other => panic!("damaged index: {other:?}"),
    }
}

/// `GET MAILBOXES` of `names` on the master, in the order asked.
fn listed(master: &mut Csync, names: &[String]) -> Vec<MailboxState> {
    let q: Vec<String> = names.iter().map(|n| support::imap::quote(n)).collect();
    let r = master.run(&format!("GET MAILBOXES ({})", q.join(" ")));
    assert!(r.status.starts_with("OK"), "{}", r.status);
    let mut got = states(&r.items);
    got.sort_by_key(|m| names.iter().position(|n| n == m.name()));
    got
}

#[test]
fn entries_rebuilt_from_files_equal_get_mailboxes_until_the_databases_change() {
    let pair = CyrusPair::start();
    let mut reader =
        LocalReader::new(&pair.master.imapd_conf()).expect("Cyrus's mbpath (cyrus-imapd package)");
    let mut admin = Imap::login(pair.master.imap_port, "cyrus", "cyruspw");
    admin.ok("CREATE user.bob");
    admin.ok("CREATE user.bob.Sent");
    admin.ok("CREATE \"user.bob.with space\"");
    admin.ok("SETQUOTA user.bob (STORAGE 100000)");
    let names: Vec<String> = ["user.bob", "user.bob.Sent", "user.bob.with space"]
        .map(String::from)
        .to_vec();
    let mut master = Csync::connect(pair.master.csync_port, REPL_USER, REPL_PASSWORD);

    // Nothing from the protocol yet: nothing to rebuild.
    assert!(
        matches!(reader.list(&names), Err(LocalError::Unlisted { .. })),
        "listed without a protocol entry"
    );
    let stamp = reader.db_stamp().expect("twoskip databases");
    let first = listed(&mut master, &names);
    assert_eq!(first.len(), 3);
    reader.remember(stamp, &first);
    assert_eq!(reader.list(&names).unwrap(), first);

    // Every kind of message change moves the index fields, never the
    // databases: the rebuilt entries follow, field for field.
    let mut lmtp = Lmtp::connect(pair.master.lmtp_port);
    let mut owner = Imap::login(pair.master.imap_port, "bob", "bobpw");
    type Change = Box<dyn Fn(&mut Imap, &mut Lmtp)>;
    let changes: Vec<(&str, Change)> = vec![
        (
            "delivery",
            Box::new(|_, l| l.deliver("bob", &message(1, "one"))),
        ),
        (
            "delivery to a folder",
            Box::new(|_, l| l.deliver("bob+Sent", &message(2, "two"))),
        ),
        (
            "owner's SELECT (RECENTUID, RECENTTIME)",
            Box::new(|o, _| {
                o.ok("SELECT INBOX");
            }),
        ),
        (
            "flags",
            Box::new(|o, _| {
                o.ok("STORE 1 +FLAGS (\\Flagged $Label1 \\Seen)");
            }),
        ),
        (
            "append with flags",
            Box::new(|o, _| o.append("INBOX.with space", "(\\Answered)", &message(3, "three"))),
        ),
        (
            "expunge",
            Box::new(|o, _| {
                o.ok("STORE 1 +FLAGS (\\Deleted)");
                o.ok("EXPUNGE");
            }),
        ),
    ];
    for (what, change) in &changes {
        change(&mut owner, &mut lmtp);
        let want = listed(&mut master, &names);
        let got = reader
            .list(&names)
            .unwrap_or_else(|e| panic!("after {what}: {e}"));
        for (g, w) in got.iter().zip(&want) {
            assert!(
                g == w,
                "after {what}, {} differs: {:?}",
                w.name(),
                g.differences(w)
            );
        }
        assert_eq!(reader.db_stamp(), Some(stamp), "{what} wrote a database");
    }
    assert!(
        first[0].highestmodseq() < listed(&mut master, &names)[0].highestmodseq(),
        "the changes did not reach the index"
    );

    // Mailbox-level changes write a database: the entries are not
    // rebuilt until the protocol is asked again.
    let mailbox_changes = [
        "SETACL \"user.bob.with space\" anyone lrs",
        "SETMETADATA user.bob.Sent (/shared/comment \"sent mail\")",
        "CREATE user.bob.New",
        "RENAME user.bob.New user.bob.Newer",
        // An administrator needs x to delete a user's folder.
        "SETACL user.bob.Newer cyrus lrswipkxtecda",
        "DELETE user.bob.Newer",
    ];
    for command in mailbox_changes {
        let stamp = reader.db_stamp().unwrap();
        let entries = listed(&mut master, &names);
        reader.remember(stamp, &entries);
        assert_eq!(reader.list(&names).unwrap(), entries);
        admin.ok(command);
        assert_ne!(
            reader.db_stamp(),
            Some(stamp),
            "{command} left both databases alone"
        );
        assert!(
            matches!(reader.list(&names), Err(LocalError::Unlisted { .. })),
            "rebuilt after {command}"
        );
    }

    // A rename the stamps did not see (the entry stamped after it) still
    // shows in cyrus.header, which names the mailbox.
    let before = listed(&mut master, &names);
    admin.ok("RENAME \"user.bob.with space\" user.bob.Renamed");
    let stamp = reader.db_stamp().unwrap();
    reader.remember(stamp, &before);
    assert!(
        matches!(
            reader.list(&names),
            Err(LocalError::Unlisted {
                why: "MBOXNAME",
                ..
            })
        ),
        "a renamed mailbox rebuilt under its old name"
    );
}

/// Cyrus shows POP3_NEW_UIDL ("P") in OPTIONS for a mailbox without
/// messages whatever its stored options (`mailbox_buf_to_index_header`):
/// with the option turned off, the letter comes back with the last expunge.
#[test]
fn rebuilt_options_follow_cyrus_when_the_last_message_goes() {
    let pair = CyrusPair::start();
    let mut reader =
        LocalReader::new(&pair.master.imapd_conf()).expect("Cyrus's mbpath (cyrus-imapd package)");
    let mut admin = Imap::login(pair.master.imap_port, "cyrus", "cyruspw");
    admin.ok("CREATE user.bob");
    let names = vec!["user.bob".to_string()];
    let mut master = Csync::connect(pair.master.csync_port, REPL_USER, REPL_PASSWORD);
    let mut lmtp = Lmtp::connect(pair.master.lmtp_port);
    let mut bob = Imap::login(pair.master.imap_port, "bob", "bobpw");
    let mut seen = Vec::new();
    for step in ["one message", "pop3newuidl off", "emptied"] {
        match step {
            "one message" => lmtp.deliver("bob", &message(1, "one")),
            "pop3newuidl off" => {
                admin.ok(
                    "SETMETADATA user.bob (/shared/vendor/cmu/cyrus-imapd/pop3newuidl \"false\")",
                );
            }
            _ => {
                bob.ok("SELECT INBOX");
                bob.ok("STORE 1 +FLAGS (\\Deleted)");
                bob.ok("EXPUNGE");
            }
        }
        if step != "emptied" {
            // A mailbox-level change: the entry comes from the protocol.
            let stamp = reader.db_stamp().expect("twoskip databases");
            reader.remember(stamp, &listed(&mut master, &names));
        }
        let want = listed(&mut master, &names);
        let got = reader
            .list(&names)
            .unwrap_or_else(|e| panic!("{step}: {e}"));
        assert!(got == want, "{step}: {:?}", got[0].differences(&want[0]));
        let options = want[0].kvlist().get("OPTIONS").unwrap().clone();
        seen.push(options.as_str().unwrap().to_string());
    }
    assert_eq!(seen, ["P", "", "P"], "OPTIONS as Cyrus showed them");
}
