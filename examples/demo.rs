//! `scripts/demo.sh` runs this: a local Cyrus master and replica, `cyrsync check`
//! on the master's imapd.conf, then `cyrsync run` replicating a stream of mail
//! on two channels (csync and IMAP), with `cyrsync status` while it works and
//! `cyrsync verify` at the end. With `--tui` (`scripts/demo.sh --tui`), the
//! dashboard runs in this terminal while mail keeps arriving; press `q` to
//! leave it and see the verification.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::imap::Imap;
use support::lmtp::{Lmtp, message};
use support::pair::CyrusPair;

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
    let conf = pair.master.imapd_conf();
    let cyrsync = std::env::current_exe()
        .unwrap()
        .parent()
        .and_then(|examples| examples.parent())
        .unwrap()
        .join("cyrsync");
    let run = |args: &[&str]| {
        println!("\n==> cyrsync -C {} {}", conf.display(), args.join(" "));
        let status = Command::new(&cyrsync)
            .arg("-C")
            .arg(&conf)
            .args(args)
            .status()
            .expect("run cyrsync");
        println!("    (exit status {})", status.code().unwrap_or(-1));
        status.success()
    };

    run(&["check", "--config-only"]);

    println!("\n==> cyrsync run (rolling replication, both channels) in the background");
    let log = std::fs::File::create(pair.dir.join("cyrsync.log")).unwrap();
    let mut daemon = Command::new(&cyrsync)
        .arg("-C")
        .arg(&conf)
        .arg("run")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start cyrsync run");

    println!("\n==> users alice and bob; a stream of 200 messages over LMTP, flags, a folder");
    let mut admin = Imap::login(pair.master.imap_port, "cyrus", "cyruspw");
    admin.ok("CREATE user.alice");
    admin.ok("CREATE user.bob");
    let mut lmtp = Lmtp::connect(pair.master.lmtp_port);
    let started = Instant::now();
    for n in 0..200 {
        lmtp.deliver(
            if n % 3 == 0 { "bob" } else { "alice" },
            &message(n, "demo"),
        );
        if n % 50 == 49 {
            let waiting = std::fs::read_to_string(pair.master.sync_log(None))
                .map(|s| s.lines().count())
                .unwrap_or(0);
            println!(
                "    {:>3} delivered after {:.1}s; {waiting} line(s) waiting in the default channel's log",
                n + 1,
                started.elapsed().as_secs_f64()
            );
        }
    }
    let mut alice = Imap::login(pair.master.imap_port, "alice", "alicepw");
    alice.ok("CREATE INBOX.Projects");
    alice.ok("SELECT INBOX");
    alice.ok("STORE 1:10 +FLAGS (\\Flagged)");
    alice.ok("COPY 1:5 INBOX.Projects");

    // What the daemon says while it works (exit 1 would mean a channel error).
    run(&["status"]);

    if std::env::args().any(|a| a == "--tui") {
        println!("\n==> cyrsync tui (mail keeps arriving for alice and bob; q to leave)");
        std::thread::sleep(Duration::from_secs(2));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let port = pair.master.lmtp_port;
        let stream = std::thread::spawn(move || {
            let mut lmtp = Lmtp::connect(port);
            let mut n = 1000;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                // Bursts now and then, so that the queue and batches show.
                let burst = if n % 20 == 0 { 150 } else { 3 };
                for _ in 0..burst {
                    lmtp.deliver(if n % 3 == 0 { "bob" } else { "alice" }, &message(n, "tui"));
                    n += 1;
                }
                std::thread::sleep(Duration::from_millis(700));
            }
        });
        let _ = Command::new(&cyrsync)
            .arg("-C")
            .arg(&conf)
            .arg("tui")
            .status();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = stream.join();
    }

    let deadline = Instant::now() + Duration::from_secs(60);
    let converged = loop {
        let ok = ["alice", "bob"].iter().all(|u| {
            Command::new(&cyrsync)
                .arg("-C")
                .arg(&conf)
                .args(["verify", "-u", u])
                .stdout(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
        });
        if ok || Instant::now() > deadline {
            break ok;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    println!(
        "\n==> replica converged: {converged} ({:.1}s after the first delivery)",
        started.elapsed().as_secs_f64()
    );
    run(&["status"]);
    run(&["verify", "-u", "alice", "-u", "bob"]);
    run(&["verify", "-n", "chan2", "-u", "alice", "-u", "bob"]);

    let _ = daemon.kill();
    let _ = daemon.wait();
    let log = std::fs::read_to_string(pair.dir.join("cyrsync.log")).unwrap_or_default();
    println!("\n==> the last lines cyrsync logged:");
    for line in log
        .lines()
        .rev()
        .take(5)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
    {
        println!("    {line}");
    }
    if !converged {
        std::process::exit(1);
    }
}
