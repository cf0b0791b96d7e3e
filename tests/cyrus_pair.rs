//! The test pair is real: mail delivered to the master over LMTP and replicated by
//! Cyrus's own `sync_client` arrives on the replica identical, field by field.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod support;

use support::csync::Csync;
use support::imap::Imap;
use support::lmtp::{Lmtp, message};
use support::pair::{CyrusPair, REPL_PASSWORD, REPL_USER};

#[test]
fn real_sync_client_replicates_lmtp_delivery() {
    let pair = CyrusPair::start();
    let mut admin = Imap::login(pair.master.imap_port, "cyrus", "cyruspw");
    admin.ok("CREATE user.alice");
    admin.ok("CREATE user.alice.Projects");
    // lmtpd delivers to alice+Projects only when anyone may post there.
    admin.ok("SETACL user.alice.Projects anyone p");
    let mut lmtp = Lmtp::connect(pair.master.lmtp_port);
    for n in 0..5 {
        lmtp.deliver("alice", &message(n, "pair test"));
    }
    lmtp.deliver("alice+Projects", &message(99, "to a folder"));
    drop(lmtp);

    pair.sync_client(&["-u", "alice"]);

    let mut master = Csync::connect(pair.master.csync_port, REPL_USER, REPL_PASSWORD);
    let mut replica = Csync::connect(pair.replica.csync_port, REPL_USER, REPL_PASSWORD);
    for mailbox in ["user.alice", "user.alice.Projects"] {
        let m = master.run(&format!("GET FULLMAILBOX {mailbox}"));
        let r = replica.run(&format!("GET FULLMAILBOX {mailbox}"));
        assert!(m.status.starts_with("OK"), "{}", m.status);
        assert!(r.status.starts_with("OK"), "{}", r.status);
        assert_eq!(m.items.len(), 1, "{m:?}");
        eprintln!("{}", String::from_utf8_lossy(&m.items[0]));
        assert_eq!(m.items, r.items, "{mailbox} differs");
    }
    let m = master.run("GET USER alice");
    assert_eq!(m.items.len(), 2, "{m:?}");
}
