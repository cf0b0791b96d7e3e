//! Field-by-field comparison of master and replica: raw `GET USER` and
//! `GET FULLMAILBOX` answers, read with plain csync sessions independent of
//! the code under test.

use cyrsync::dlist::{Limits, parse_value};

use super::csync::Csync;
use super::imap::quote;
use super::pair::{CyrusPair, REPL_PASSWORD, REPL_USER};

/// Names of the mailboxes in raw `* MAILBOX %(…)` items.
pub fn names(items: &[Vec<u8>]) -> Vec<String> {
    items
        .iter()
        .filter(|i| i.starts_with(b"* MAILBOX "))
        .map(|i| {
            let raw = &i[b"* MAILBOX ".len()..];
            let raw = raw.strip_suffix(b"\r\n").unwrap_or(raw);
            let v = parse_value(raw, &Limits::default()).unwrap();
            v.get("MBOXNAME")
                .and_then(|n| n.as_str())
                .unwrap()
                .to_string()
        })
        .collect()
}

/// Each server keeps its own quota MODSEQ counter; Cyrus replicates only the
/// limits, so the counter is left out of the comparison.
pub fn without_quota_modseq(items: &[Vec<u8>]) -> String {
    items
        .iter()
        .map(|i| {
            let s = String::from_utf8_lossy(i).into_owned();
            match (s.starts_with("* QUOTA "), s.rfind(" MODSEQ ")) {
                (true, Some(at)) => format!("{})", &s[..at]),
                _ => s,
            }
        })
        .collect()
}

/// A record expunged on both sides is frozen on the replica: Cyrus ignores
/// every other field of it (sync_support.c, "if they're both EXPUNGED then
/// ignore everything else"), so its MODSEQ and LAST_UPDATED may differ
/// forever without any effect. Everything else is compared byte for byte.
pub fn without_expunged_modseq(items: &[Vec<u8>]) -> String {
    items
        .iter()
        .map(|i| {
            let s = String::from_utf8_lossy(i).into_owned();
            s.split("%(UID ")
                .enumerate()
                .map(|(n, part)| {
                    if n == 0 || !part.contains("\\Expunged") {
                        return if n == 0 {
                            part.to_string()
                        } else {
                            format!("%(UID {part}")
                        };
                    }
                    let uid = part.split(' ').next().unwrap_or("");
                    let rest = part.split_once(" FLAGS ").map(|(_, r)| r).unwrap_or(part);
                    format!("%(UID {uid} (expunged) FLAGS {rest}")
                })
                .collect::<String>()
        })
        .collect()
}

/// Master and replica agree on everything of `user`, byte for byte: the
/// `GET USER` answers (quota MODSEQ aside) and each mailbox's
/// `GET FULLMAILBOX` (sync CRCs, modseqs, every record).
pub fn assert_same_user(pair: &CyrusPair, user: &str) {
    let mut m = Csync::connect(pair.master.csync_port, REPL_USER, REPL_PASSWORD);
    let mut r = Csync::connect(pair.replica.csync_port, REPL_USER, REPL_PASSWORD);
    // sync_client enables SIEVE-MAILBOX; so do we.
    for c in [&mut m, &mut r] {
        c.run("APPLY CAPABILITIES (SIEVE-MAILBOX)");
    }
    let mu = m.run(&format!("GET USER {user}"));
    let ru = r.run(&format!("GET USER {user}"));
    assert_eq!(
        without_quota_modseq(&mu.items),
        without_quota_modseq(&ru.items),
        "GET USER {user} differs"
    );
    for name in names(&mu.items) {
        let q = quote(&name);
        let mf = m.run(&format!("GET FULLMAILBOX {q}"));
        let rf = r.run(&format!("GET FULLMAILBOX {q}"));
        assert!(mf.status.starts_with("OK"), "{name}: {}", mf.status);
        assert_eq!(
            without_expunged_modseq(&mf.items),
            without_expunged_modseq(&rf.items),
            "GET FULLMAILBOX {name} differs"
        );
    }
}
