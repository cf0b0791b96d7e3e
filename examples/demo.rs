//! `scripts/demo.sh` runs this: a local Cyrus master and replica, `cyrsync check`
//! on the master's imapd.conf, mail delivered and replicated, both sides compared.
//!
//! The replication step still uses Cyrus's own `sync_client`: cyrsync's engine is
//! not built yet. The demo will switch to `cyrsync run` when it is.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::process::Command;

use support::csync::Csync;
use support::imap::Imap;
use support::lmtp::{Lmtp, message};
use support::pair::{CyrusPair, REPL_PASSWORD, REPL_USER};

fn main() {
    println!("==> starting a Cyrus master and replica on loopback");
    let pair = CyrusPair::start();
    println!(
        "    master: imap 127.0.0.1:{} csync :{}   replica: imap :{} csync :{}   in {}",
        pair.master.imap_port,
        pair.master.csync_port,
        pair.replica.imap_port,
        pair.replica.csync_port,
        pair.dir.display()
    );

    println!(
        "\n==> cyrsync check --config-only -C {}",
        pair.master.imapd_conf().display()
    );
    let cyrsync = std::env::current_exe()
        .unwrap()
        .parent()
        .and_then(|examples| examples.parent())
        .unwrap()
        .join("cyrsync");
    let status = Command::new(&cyrsync)
        .args(["check", "--config-only", "-C"])
        .arg(pair.master.imapd_conf())
        .status()
        .expect("run cyrsync");
    println!("    (exit status {})", status.code().unwrap_or(-1));

    println!("\n==> creating user.alice and delivering 20 messages over LMTP");
    let mut admin = Imap::login(pair.master.imap_port, "cyrus", "cyruspw");
    admin.ok("CREATE user.alice");
    let mut lmtp = Lmtp::connect(pair.master.lmtp_port);
    for n in 0..20 {
        lmtp.deliver("alice", &message(n, "demo"));
    }
    drop(lmtp);
    let log = std::fs::read_to_string(pair.master.sync_log(None)).unwrap_or_default();
    println!(
        "    the master's sync log now holds {} lines, e.g.:",
        log.lines().count()
    );
    for line in log.lines().take(3) {
        println!("      {line}");
    }

    println!(
        "\n==> replicating with Cyrus's sync_client -u alice (cyrsync's engine is not built yet)"
    );
    pair.sync_client(&["-u", "alice"]);

    println!("\n==> comparing GET FULLMAILBOX user.alice on both sides");
    let mut master = Csync::connect(pair.master.csync_port, REPL_USER, REPL_PASSWORD);
    let mut replica = Csync::connect(pair.replica.csync_port, REPL_USER, REPL_PASSWORD);
    let m = master.run("GET FULLMAILBOX user.alice");
    let r = replica.run("GET FULLMAILBOX user.alice");
    let same = m.items == r.items && !m.items.is_empty();
    println!(
        "    master {} bytes, replica {} bytes: {}",
        m.items.iter().map(Vec::len).sum::<usize>(),
        r.items.iter().map(Vec::len).sum::<usize>(),
        if same { "identical" } else { "DIFFERENT" }
    );
    println!("\n==> stopping the pair");
    drop(pair);
    std::process::exit(if same && status.success() { 0 } else { 1 });
}
