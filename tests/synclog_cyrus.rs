//! The sync log written by a REAL Cyrus 3.6.1 master parses, entry for entry,
//! and our encoder reproduces Cyrus's lines byte for byte; Cyrus's own
//! `cyr_synclog` writing concurrently with our reader loses nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod support;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cyrsync::synclog::{Batch, LogEntry, Namespace, Reader, parse_line};
use support::imap::Imap;
use support::lmtp::{Lmtp, message};
use support::pair::{CyrusPair, cyrus_bin};

fn s(x: &str) -> String {
    x.to_owned()
}

/// Parses every line of `text`, asserting each is an entry that re-encodes to
/// exactly the bytes Cyrus wrote.
fn parse_all(text: &[u8]) -> Vec<LogEntry> {
    assert!(text.ends_with(b"\n"), "log does not end in a line feed");
    text.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|line| {
            let entry = parse_line(line)
                .unwrap_or_else(|e| panic!("{:?}: {e}", String::from_utf8_lossy(line)))
                .expect("no blank lines");
            assert_eq!(
                entry.encode().unwrap().as_bytes(),
                [line, b"\n"].concat(),
                "re-encoding differs from Cyrus's line"
            );
            entry
        })
        .collect()
}

#[test]
fn real_master_log_parses_entry_for_entry() {
    let pair = CyrusPair::start();
    let mut admin = Imap::login(pair.master.imap_port, "cyrus", "cyruspw");
    admin.ok("CREATE user.alice");
    admin.ok("CREATE user.bob");
    admin.ok("SETACL user.alice bob lrs");
    let mut alice = Imap::login(pair.master.imap_port, "alice", "alicepw");
    alice.ok("CREATE \"INBOX.My Folder\"");
    alice.ok("CREATE \"INBOX.(paren) x\"");
    // "été" in modified UTF-7, as clients send 8-bit names.
    alice.ok("CREATE \"INBOX.&AOk-t&AOk-\"");
    alice.ok("SUBSCRIBE \"INBOX.My Folder\"");
    alice.ok("UNSUBSCRIBE \"INBOX.My Folder\"");
    let mut lmtp = Lmtp::connect(pair.master.lmtp_port);
    lmtp.deliver("alice", &message(1, "synclog"));
    drop(lmtp);
    alice.ok("SELECT INBOX");
    alice.ok("STORE 1 +FLAGS (\\Flagged)");
    alice.ok("COPY 1 \"INBOX.My Folder\"");
    alice.ok("SETMETADATA INBOX (/private/comment \"hello\")");
    alice.ok("RENAME \"INBOX.My Folder\" \"INBOX.Renamed Folder\"");
    alice.ok("DELETE \"INBOX.(paren) x\"");
    alice.ok("LOGOUT");
    admin.ok("SETQUOTA user.alice (STORAGE 100000)");
    let mut bob = Imap::login(pair.master.imap_port, "bob", "bobpw");
    bob.ok("SELECT user.alice");
    bob.ok("STORE 1 +FLAGS (\\Seen)");
    bob.ok("LOGOUT");
    // Admins need the x right to delete a user (Cyrus ACL rules).
    admin.ok("SETACL user.bob cyrus x");
    admin.ok("DELETE user.bob");

    for channel in [None, Some("chan2")] {
        let log = pair.master.sync_log(channel);
        let raw = std::fs::read(&log).unwrap();
        eprintln!("---- {}\n{}", log.display(), String::from_utf8_lossy(&raw));
        let entries = parse_all(&raw);

        let must = [
            LogEntry::Mailbox {
                mboxname: s("user.alice.My Folder"),
            },
            LogEntry::Mailbox {
                mboxname: s("user.alice.(paren) x"),
            },
            LogEntry::Mailbox {
                mboxname: s("user.alice.&AOk-t&AOk-"),
            },
            LogEntry::Sub {
                userid: s("alice"),
                mboxname: s("user.alice.My Folder"),
            },
            LogEntry::Append {
                mboxname: s("user.alice"),
            },
            LogEntry::Rename {
                from: s("user.alice.My Folder"),
                to: s("user.alice.Renamed Folder"),
            },
            // COPY logs both mailboxes on one line.
            LogEntry::DoubleMailbox {
                first: s("user.alice"),
                second: s("user.alice.My Folder"),
            },
            LogEntry::Quota {
                root: s("user.alice"),
            },
            LogEntry::Unuser { userid: s("bob") },
        ];
        for want in &must {
            assert!(
                entries.contains(want),
                "{want} missing from {}",
                log.display()
            );
        }
        assert!(
            entries
                .iter()
                .any(|e| matches!(e, LogEntry::Seen { userid, .. } if userid == "bob")),
            "no SEEN for bob"
        );
        assert!(
            entries.iter().any(
                |e| matches!(e, LogEntry::Rename { from, to } if from == "user.alice.(paren) x" && to.starts_with("DELETED.user.alice.(paren) x."))
            ),
            "no delayed-delete RENAME"
        );

        // The reader hand-off on the real file gives the same entries.
        let reader = Reader::new(&log);
        let mut run = reader.begin().unwrap().expect("log present");
        assert_eq!(run.read_all().unwrap(), entries);
        assert_eq!(run.progress().malformed, 0);
        run.finish().unwrap();

        // Everything belongs to alice or bob.
        let batch = Batch::from_entries(&Namespace::default(), &entries);
        let users: Vec<Option<String>> = batch
            .by_user(&Namespace::default())
            .into_iter()
            .map(|g| g.userid)
            .collect();
        assert!(
            users
                .iter()
                .all(|u| matches!(u.as_deref(), Some("alice" | "bob"))),
            "{users:?}"
        );
        assert_eq!(batch.unuser, vec![s("bob")]);
    }

    // Cyrus keeps writing to a fresh `log` after our rename.
    let mut admin = Imap::login(pair.master.imap_port, "cyrus", "cyruspw");
    admin.ok("CREATE user.alice.After");
    let raw = std::fs::read(pair.master.sync_log(None)).unwrap();
    assert!(parse_all(&raw).contains(&LogEntry::Mailbox {
        mboxname: s("user.alice.After")
    }));
}

/// Names only `cyr_synclog` can put in the log (IMAP refuses `"`, `\`, `{`).
const ODD_NAMES: &[&str] = &[
    "user.carol.say \"hi\"",
    "user.carol.back\\slash",
    "user.carol.{braces}",
    "user.carol.tab\there",
    "user.carol.été 日本",
    "",
];

#[test]
fn cyr_synclog_writes_concurrently_with_our_reader() {
    let pair = CyrusPair::start();
    let conf = pair.master.imapd_conf();
    let tool = cyrus_bin("cyr_synclog");
    let reader = Reader::new(pair.master.sync_log(None));

    // Odd names first, one process each, checked exactly.
    for name in ODD_NAMES.iter().filter(|n| !n.is_empty()) {
        let st = Command::new(&tool)
            .arg("-C")
            .arg(&conf)
            .args(["-m", name])
            .status()
            .unwrap();
        assert!(st.success(), "cyr_synclog -m {name:?}");
    }
    // An empty ANNOTATION name (the server annotation) through a raw line.
    let st = Command::new(&tool)
        .arg("-C")
        .arg(&conf)
        .arg("ANNOTATION \"\"")
        .status()
        .unwrap();
    assert!(st.success());
    let mut run = reader.begin().unwrap().expect("cyr_synclog wrote a log");
    let got = run.read_all().unwrap();
    run.finish().unwrap();
    let mut want: Vec<LogEntry> = ODD_NAMES
        .iter()
        .filter(|n| !n.is_empty())
        .map(|n| LogEntry::Mailbox { mboxname: s(n) })
        .collect();
    want.push(LogEntry::Annotation { mboxname: s("") });
    assert_eq!(got, want);

    // Then WRITERS shell loops of cyr_synclog race our hand-offs.
    const WRITERS: usize = 3;
    const PER_WRITER: usize = 60;
    let script = format!(
        "i=0; while [ $i -lt {PER_WRITER} ]; do \
           {tool} -C {conf} -s \"w$W\" \"user.w$W.n $i\" || exit 1; i=$((i+1)); done",
        tool = tool.display(),
        conf = conf.display(),
    );
    let start = Instant::now();
    let mut children: Vec<_> = (0..WRITERS)
        .map(|w| {
            Command::new("sh")
                .args(["-c", &script])
                .env("W", w.to_string())
                .stdin(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut next: HashMap<String, usize> = HashMap::new();
    let mut runs = 0;
    loop {
        let finished = children.iter_mut().all(|c| c.try_wait().unwrap().is_some());
        match reader.begin().unwrap() {
            Some(mut run) => {
                runs += 1;
                for e in run.read_all().unwrap() {
                    let LogEntry::Seen { userid, mboxname } = e else {
                        panic!("unexpected {e}");
                    };
                    let i: usize = mboxname.rsplit(' ').next().unwrap().parse().unwrap();
                    assert_eq!(mboxname, format!("user.{userid}.n {i}"));
                    let expected = next.entry(userid.clone()).or_default();
                    assert_eq!(i, *expected, "{userid}: lost or duplicated");
                    *expected += 1;
                }
                assert_eq!(run.progress().malformed, 0);
                run.finish().unwrap();
            }
            None if finished => break,
            None => std::thread::sleep(Duration::from_millis(5)),
        }
        assert!(start.elapsed() < Duration::from_secs(120), "stuck");
    }
    for mut c in children {
        assert!(c.wait().unwrap().success(), "a cyr_synclog loop failed");
    }
    eprintln!(
        "{} cyr_synclog lines in {runs} hand-offs, {:.1} s",
        WRITERS * PER_WRITER,
        start.elapsed().as_secs_f64()
    );
    assert_eq!(next.len(), WRITERS);
    assert!(next.values().all(|&n| n == PER_WRITER), "{next:?}");
    assert!(runs > 1);
}
