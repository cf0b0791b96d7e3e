//! `cyrsync run` against a real Cyrus 3.6.1 master and replica: rolling
//! replication on two channels (csync and IMAP), crash and restart in the
//! middle of a backlog, a replica outage, the shutdown file and the
//! one-consumer rule.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use cyrsync::status::client::ControlCommand;
use support::compare::assert_same_user;
use support::csync::Csync;
use support::daemon::{
    Daemon, bin, control, converge, cyrsync, eventually, status_json, try_status_json, verify,
};
use support::imap::Imap;
use support::lmtp::{Lmtp, message};
use support::pair::{CyrusPair, Instance, REPL_PASSWORD, REPL_USER};

fn log_lines(pair: &CyrusPair, channel: Option<&str>) -> usize {
    let log = pair.master.sync_log(channel);
    let run = log.with_file_name("log-run");
    [log, run]
        .iter()
        .map(|p| {
            std::fs::read_to_string(p)
                .map(|s| s.lines().count())
                .unwrap_or(0)
        })
        .sum()
}

#[test]
fn rolling_two_channels_converge() {
    let pair = CyrusPair::start();
    let mut daemon = Daemon::start(&pair, &[]);
    // Both channels of the test pair write the same replica. Cyrus 3.6.1
    // races when two sessions create a user's subscription database at the
    // same moment (the replica then lists its version key `VER` as a
    // subscription), which real channels — each with its own replica —
    // never meet. So chan2 waits until the default channel has created the
    // users, and catches up from its queue once resumed.
    control(
        &pair,
        ControlCommand::Pause {
            channel: "chan2".into(),
        },
    );
    let mut admin = Imap::login(pair.master.imap_port, "cyrus", "cyruspw");
    admin.ok("CREATE user.alice");
    admin.ok("CREATE user.bob");
    let mut lmtp = Lmtp::connect(pair.master.lmtp_port);
    for n in 0..20 {
        lmtp.deliver(
            if n % 2 == 0 { "alice" } else { "bob" },
            &message(n, "rolling"),
        );
    }
    let mut alice = Imap::login(pair.master.imap_port, "alice", "alicepw");
    alice.ok("CREATE INBOX.Work");
    alice.ok("SELECT INBOX");
    alice.ok("STORE 1:3 +FLAGS (\\Flagged)");
    alice.ok("COPY 1:2 INBOX.Work");
    alice.ok("SUBSCRIBE INBOX.Work");
    for user in ["alice", "bob"] {
        converge(&pair, &["-u", user], Duration::from_secs(30));
    }
    assert!(
        log_lines(&pair, Some("chan2")) > 0,
        "the paused channel kept no queue"
    );
    control(
        &pair,
        ControlCommand::Resume {
            channel: "chan2".into(),
        },
    );
    for user in ["alice", "bob"] {
        converge(&pair, &["-n", "chan2", "-u", user], Duration::from_secs(30));
    }
    // Now both channels at once.
    for n in 20..30 {
        lmtp.deliver(
            if n % 2 == 0 { "alice" } else { "bob" },
            &message(n, "both channels"),
        );
    }
    alice.ok("STORE 4:6 +FLAGS (\\Seen)");
    alice.ok("UNSUBSCRIBE INBOX.Work");
    for user in ["alice", "bob"] {
        converge(&pair, &["-u", user], Duration::from_secs(30));
        converge(&pair, &["-n", "chan2", "-u", user], Duration::from_secs(30));
    }
    assert!(daemon.0.try_wait().unwrap().is_none(), "daemon exited");
    // The log was consumed on both channels.
    let start = Instant::now();
    while (log_lines(&pair, None) > 0 || log_lines(&pair, Some("chan2")) > 0)
        && start.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(log_lines(&pair, None), 0);
    assert_eq!(log_lines(&pair, Some("chan2")), 0);

    // Idle CPU, for the record (printed, not asserted: see BENCHMARKS.md).
    let ticks = |pid: u32| -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split(' ').collect();
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    };
    let before = ticks(daemon.0.id());
    std::thread::sleep(Duration::from_secs(10));
    let used = ticks(daemon.0.id()) - before;
    eprintln!(
        "idle daemon CPU: {used} clock ticks in 10 s (two channels, shutdown files configured)"
    );

    // A second consumer on the same channel is refused.
    let out = cyrsync(&pair, &["run", "-n", ""]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already replicating"), "{err}");

    // The shutdown file stops the daemon within 2 s.
    let sd = pair.master.config_dir().join("sync");
    std::fs::write(sd.join("shutdown"), "").unwrap();
    std::fs::create_dir_all(sd.join("chan2")).unwrap();
    std::fs::write(sd.join("chan2/shutdown"), "").unwrap();
    let status = daemon.wait_exit(Duration::from_secs(3));
    assert!(
        status.is_some_and(|s| s.success()),
        "daemon still running: {status:?}"
    );
}

#[test]
fn crash_in_backlog_then_restart_loses_nothing() {
    let pair = CyrusPair::start();
    let mut admin = Imap::login(pair.master.imap_port, "cyrus", "cyruspw");
    admin.ok("CREATE user.perf");
    let mut lmtp = Lmtp::connect(pair.master.lmtp_port);
    let n = 5000;
    for i in 0..n {
        lmtp.deliver("perf", &message(i, "backlog"));
    }
    assert!(
        log_lines(&pair, None) >= n,
        "each delivery logs at least one line"
    );
    let mut daemon = Daemon::start(&pair, &["-n", ""]);
    // Let it get into the backlog, then kill -9.
    let start = Instant::now();
    loop {
        let run = pair.master.sync_log(None).with_file_name("log-run");
        if run.exists() || start.elapsed() > Duration::from_secs(10) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(300));
    daemon.0.kill().unwrap();
    daemon.0.wait().unwrap();
    // More mail while it is down.
    for i in n..n + 50 {
        lmtp.deliver("perf", &message(i, "while down"));
    }
    let _daemon = Daemon::start(&pair, &["-n", ""]);
    converge(&pair, &["-u", "perf"], Duration::from_secs(120));
}

/// The default channel's queue (entries waiting) and lag (seconds).
fn queue_and_lag(snapshot: &serde_json::Value) -> (u64, f64) {
    let c = snapshot["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "")
        .unwrap();
    let q = &c["queue"];
    let waiting = q["log_lines"].as_u64().unwrap() + q["run_entries"].as_u64().unwrap();
    (waiting, c["lag_seconds"].as_f64().unwrap_or(0.0))
}

#[test]
fn replica_outage_backs_off_and_converges() {
    let pair = CyrusPair::start_with(&["sync_reconnect_maxwait: 2"]);
    let mut admin = Imap::login(pair.master.imap_port, "cyrus", "cyruspw");
    admin.ok("CREATE user.alice");
    let _daemon = Daemon::start(&pair, &["-n", ""]);
    let mut lmtp = Lmtp::connect(pair.master.lmtp_port);
    lmtp.deliver("alice", &message(0, "before"));
    converge(&pair, &["-u", "alice"], Duration::from_secs(20));

    pair.stop_replica();
    let n = 29u64;
    for i in 1..=n {
        lmtp.deliver("alice", &message(i as usize, "during the outage"));
    }
    // The queue holds at least N entries and the lag grows while the
    // replica is away.
    std::thread::sleep(Duration::from_secs(2));
    let first = status_json(&pair);
    std::thread::sleep(Duration::from_secs(2));
    let second = status_json(&pair);
    let (q1, lag1) = queue_and_lag(&first);
    let (q2, lag2) = queue_and_lag(&second);
    assert!(q1 >= n && q2 >= n, "queue {q1}/{q2} < {n}: {second}");
    assert!(
        lag2 > lag1 && lag1 >= 1.0,
        "lag did not grow: {lag1} → {lag2}: {second}"
    );
    let out = cyrsync(&pair, &["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "status must fail while a channel is in error: {text}"
    );
    assert!(text.contains("backoff"), "{text}");
    assert!(text.contains("hint:"), "{text}");

    pair.start_replica();
    converge(&pair, &["-u", "alice"], Duration::from_secs(30));
    // Both return to zero.
    let start = Instant::now();
    loop {
        let (q, lag) = queue_and_lag(&status_json(&pair));
        if q == 0 && lag == 0.0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "queue {q}, lag {lag} after recovery"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The master's Cyrus restarted under a running daemon (an upgrade, a
/// reboot of the service): the sessions to the master's sync_server die,
/// and what is delivered afterwards still reaches the replica.
#[test]
fn master_restart_under_the_daemon() {
    let pair = CyrusPair::start_with(&["sync_reconnect_maxwait: 2"]);
    let mut admin = Imap::login(pair.master.imap_port, "cyrus", "cyruspw");
    admin.ok("CREATE user.alice");
    drop(admin);
    let mut daemon = Daemon::start(&pair, &["-n", ""]);
    let mut lmtp = Lmtp::connect(pair.master.lmtp_port);
    lmtp.deliver("alice", &message(0, "before"));
    converge(&pair, &["-u", "alice"], Duration::from_secs(20));
    drop(lmtp);

    pair.restart_master();
    let mut lmtp = Lmtp::connect(pair.master.lmtp_port);
    for i in 1..=5 {
        lmtp.deliver("alice", &message(i, "after the restart"));
    }
    let mut alice = Imap::login(pair.master.imap_port, "alice", "alicepw");
    alice.ok("SELECT INBOX");
    alice.ok("STORE 1:2 +FLAGS (\\Seen)");
    // A new folder changes mailboxes.db: the master must be asked, over a
    // session that died with the restart.
    alice.ok("CREATE INBOX.after");
    alice.append("INBOX.after", "()", &message(9, "in the new folder"));
    converge(&pair, &["-u", "alice"], Duration::from_secs(30));
    assert!(daemon.0.try_wait().unwrap().is_none(), "daemon exited");
    // The run that converged removes its log-run a moment later.
    let start = Instant::now();
    while log_lines(&pair, None) > 0 && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(log_lines(&pair, None), 0, "log not consumed");
    let status = status_json(&pair);
    let sessions = status["channels"][0]["sessions"].as_array().unwrap();
    let reconnects: u64 = sessions
        .iter()
        .filter(|s| s["side"] == "master")
        .map(|s| s["reconnects"].as_u64().unwrap())
        .sum();
    assert!(
        reconnects >= 1,
        "the dead master session was not replaced: {sessions:?}"
    );
}

/// A TCP proxy to the replica that can freeze the connections it already
/// carries (they stay open but nothing passes), as a hung replica would.
struct StallingProxy {
    port: u16,
    generation: std::sync::Arc<std::sync::atomic::AtomicU64>,
    frozen_below: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl StallingProxy {
    fn start(target: u16) -> StallingProxy {
        use std::io::{Read, Write};
        use std::net::{TcpListener, TcpStream};
        use std::sync::Arc;
        use std::sync::atomic::{AtomicU64, Ordering};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let generation = Arc::new(AtomicU64::new(0));
        let frozen_below = Arc::new(AtomicU64::new(0));
        let (g, f) = (generation.clone(), frozen_below.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                let id = g.fetch_add(1, Ordering::SeqCst) + 1;
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let f = f.clone();
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16384];
                        loop {
                            let n = match from.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            // Frozen: hold the bytes forever, keep the socket open.
                            while id <= f.load(Ordering::SeqCst) {
                                std::thread::sleep(Duration::from_millis(50));
                            }
                            if to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        StallingProxy {
            port,
            generation,
            frozen_below,
        }
    }

    /// Freezes every connection opened so far.
    fn freeze_current(&self) {
        use std::sync::atomic::Ordering;
        self.frozen_below
            .store(self.generation.load(Ordering::SeqCst), Ordering::SeqCst);
    }
}

#[test]
fn hung_replica_is_cut_at_sync_timeout_and_work_retried() {
    let pair = CyrusPair::start();
    let proxy = StallingProxy::start(pair.replica.csync_port);
    // The default channel goes through the proxy, with the smallest timeout.
    let conf = std::fs::read_to_string(pair.master.imapd_conf()).unwrap();
    let conf: String = conf
        .lines()
        .map(|l| {
            if l.starts_with("sync_port:") {
                format!("sync_port: {}\nsync_timeout: 3s\n", proxy.port)
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    let proxied = pair.dir.join("master/imapd-proxied.conf");
    std::fs::write(&proxied, conf).unwrap();
    let log = pair.dir.join("cyrsync.log");
    let mut daemon = Command::new(bin())
        .arg("-C")
        .arg(&proxied)
        .args(["run", "-n", ""])
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut admin = Imap::login(pair.master.imap_port, "cyrus", "cyruspw");
    admin.ok("CREATE user.alice");
    let mut lmtp = Lmtp::connect(pair.master.lmtp_port);
    lmtp.deliver("alice", &message(0, "through the proxy"));
    converge(&pair, &["-u", "alice"], Duration::from_secs(20));

    proxy.freeze_current();
    for i in 1..5 {
        lmtp.deliver("alice", &message(i, "while the replica hangs"));
    }
    converge(&pair, &["-u", "alice"], Duration::from_secs(30));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("within sync_timeout"), "{text}");
    let _ = daemon.kill();
    let _ = daemon.wait();
}

/// How often the sync_servers of `inst` received a command starting with
/// `command`, from its telemetry files (`<configdirectory>/log/<authname>/`,
/// the stream as the server read it, decompressed).
fn received(inst: &Instance, command: &str) -> usize {
    let dir = inst.config_dir().join("log").join(REPL_USER);
    std::fs::read_dir(&dir)
        .map(|d| {
            d.flatten()
                .map(|e| {
                    let text =
                        String::from_utf8_lossy(&std::fs::read(e.path()).unwrap_or_default())
                            .into_owned();
                    text.lines()
                        .filter(|l| {
                            // `<time<COMMAND …` for what the client sent.
                            l.strip_prefix('<')
                                .and_then(|r| r.split_once('<'))
                                .is_some_and(|(_, c)| c.starts_with(command))
                        })
                        .count()
                })
                .sum()
        })
        .unwrap_or(0)
}

fn counters(pair: &CyrusPair) -> serde_json::Value {
    let s = status_json(pair);
    s["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "")
        .unwrap()["counters"]
        .clone()
}

fn wait_log_consumed(pair: &CyrusPair) {
    let start = Instant::now();
    while log_lines(pair, None) > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "log not consumed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The run that consumed it may still be finishing.
    std::thread::sleep(Duration::from_millis(500));
}

fn stop_default_channel(pair: &CyrusPair, daemon: &mut Daemon) {
    let shutdown = pair.master.config_dir().join("sync").join("shutdown");
    std::fs::write(&shutdown, "").unwrap();
    let status = daemon.wait_exit(Duration::from_secs(5));
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    std::fs::remove_file(&shutdown).unwrap();
}

#[test]
fn rolling_with_the_target_state_cache() {
    let pair = CyrusPair::start();
    // Both sync_servers record what they receive (Cyrus telemetry).
    let telemetry = pair.replica.config_dir().join("log").join(REPL_USER);
    for inst in [&pair.replica, &pair.master] {
        let dir = inst.config_dir().join("log").join(REPL_USER);
        std::fs::create_dir_all(&dir).unwrap();
        let owner = std::fs::metadata(inst.config_dir()).unwrap();
        use std::os::unix::fs::MetadataExt;
        std::os::unix::fs::chown(&dir, Some(owner.uid()), Some(owner.gid())).unwrap();
    }
    let cache = pair.master.config_dir().join("sync").join("cyrsync.cache");
    let mut admin = Imap::login(pair.master.imap_port, "cyrus", "cyruspw");
    admin.ok("CREATE user.alice");
    admin.ok("CREATE user.alice.Work");
    admin.ok("SETACL user.alice.Work anyone p");
    admin.ok("CREATE user.bob");
    let mut daemon = Daemon::start(&pair, &["-n", ""]);
    let mut lmtp = Lmtp::connect(pair.master.lmtp_port);
    for n in 0..6 {
        lmtp.deliver(["alice", "alice+Work", "bob"][n % 3], &message(n, "cold"));
    }
    for user in ["alice", "bob"] {
        converge(&pair, &["-n", "", "-u", user], Duration::from_secs(30));
    }
    wait_log_consumed(&pair);
    assert!(cache.exists(), "no cache file at {}", cache.display());

    // Warm: deliveries and flag changes to known mailboxes go out without
    // one GET MAILBOXES to the replica, nor to the master, whose entries
    // come from its files while mailboxes.db and annotations.db stand still.
    let lookups = received(&pair.replica, "GET MAILBOXES");
    let master_lookups = received(&pair.master, "GET MAILBOXES");
    assert!(master_lookups > 0, "no telemetry from the master");
    let listed_locally = counters(&pair)["listed_locally"].as_u64().unwrap();
    assert!(lookups > 0, "no telemetry in {}", telemetry.display());
    let applies = received(&pair.replica, "APPLY MAILBOX");
    let hits = counters(&pair)["cache_hits"].as_u64().unwrap();
    let mut alice = Imap::login(pair.master.imap_port, "alice", "alicepw");
    alice.ok("SELECT INBOX");
    for n in 0..10 {
        lmtp.deliver(
            if n % 2 == 0 { "alice" } else { "alice+Work" },
            &message(10 + n, "warm"),
        );
        alice.ok(&format!("STORE {} +FLAGS (\\Flagged)", n % 3 + 1));
        std::thread::sleep(Duration::from_millis(150));
    }
    converge(&pair, &["-n", "", "-u", "alice"], Duration::from_secs(30));
    wait_log_consumed(&pair);
    assert_eq!(
        received(&pair.replica, "GET MAILBOXES"),
        lookups,
        "the replica was asked although every mailbox was cached"
    );
    assert_eq!(
        received(&pair.master, "GET MAILBOXES"),
        master_lookups,
        "the master was asked although its files could answer"
    );
    assert!(
        counters(&pair)["listed_locally"].as_u64().unwrap() >= listed_locally + 2,
        "{}",
        counters(&pair)
    );
    let c = counters(&pair);
    let new_hits = c["cache_hits"].as_u64().unwrap() - hits;
    let new_applies = received(&pair.replica, "APPLY MAILBOX") - applies;
    eprintln!("warm phase: {new_hits} cache hits, {new_applies} APPLY MAILBOX; counters {c}");
    // Runs coalesce the changes: at least one action per mailbox, each a hit.
    assert!(new_hits >= 2 && new_applies >= 2, "{c}");
    assert_same_user(&pair, "alice");

    // A one-shot sync while the daemon runs goes without the cache and moves
    // the replica behind the daemon's back; the daemon's next change to
    // that mailbox meets a stale SINCE_*, and still converges.
    lmtp.deliver("alice", &message(30, "one-shot"));
    let out = cyrsync(&pair, &["sync", "-u", "alice"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("without the target-state cache"), "{err}");
    alice.ok("STORE 4 +FLAGS (\\Answered)");
    converge(&pair, &["-n", "", "-u", "alice"], Duration::from_secs(30));
    wait_log_consumed(&pair);
    assert_same_user(&pair, "alice");

    // The replica loses a folder behind the cache's back and the master does
    // not change it: rolling replication cannot know; the administrator's
    // full resync reads the replica and repairs it.
    let mut r = Csync::connect(pair.replica.csync_port, REPL_USER, REPL_PASSWORD);
    assert!(
        r.run("APPLY UNMAILBOX user.alice.Work")
            .status
            .starts_with("OK")
    );
    drop(r);
    control(
        &pair,
        ControlCommand::ResyncUser {
            channel: String::new(),
            user: "alice".into(),
        },
    );
    converge(&pair, &["-n", "", "-u", "alice"], Duration::from_secs(30));
    wait_log_consumed(&pair);
    assert_same_user(&pair, "alice");

    // Garbage in the cache file while stopped: moved aside, rebuilt.
    stop_default_channel(&pair, &mut daemon);
    std::fs::write(&cache, vec![0x5a; 64 << 10]).unwrap();
    let mut daemon = Daemon::start(&pair, &["-n", ""]);
    lmtp.deliver("bob", &message(40, "after the garbage"));
    alice.ok("STORE 5 +FLAGS (\\Seen)");
    for user in ["alice", "bob"] {
        converge(&pair, &["-n", "", "-u", user], Duration::from_secs(30));
    }
    wait_log_consumed(&pair);
    let log = std::fs::read_to_string(pair.dir.join("cyrsync.log")).unwrap();
    assert!(log.contains("rebuilt"), "{log}");
    assert!(cache.with_file_name("cyrsync.cache.corrupt").exists());

    // Deleted while stopped: recreated.
    stop_default_channel(&pair, &mut daemon);
    std::fs::remove_file(&cache).unwrap();
    let _daemon = Daemon::start(&pair, &["-n", ""]);
    lmtp.deliver("alice+Work", &message(50, "after the delete"));
    converge(&pair, &["-n", "", "-u", "alice"], Duration::from_secs(30));
    wait_log_consumed(&pair);
    assert!(cache.exists());
    for user in ["alice", "bob"] {
        assert_same_user(&pair, user);
        let out = pair.sync_client(&["-v", "-u", user]);
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            !said.lines().any(|l| l.starts_with("MAILBOX ")),
            "sync_client still had work: {said}"
        );
    }
}

/// A Cyrus writer creates `log` and then writes its line under a lock; a
/// run that comes in between finds an empty log and must not wait for a
/// creation that will not come (the watcher reports creations only).
#[test]
fn a_line_written_into_an_empty_log_goes_out_without_the_fallback_poll() {
    let pair = CyrusPair::start();
    // Without a shutdown file the fallback poll is 10 s.
    let conf = pair.master.imapd_conf();
    let text = std::fs::read_to_string(&conf).unwrap();
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("sync_shutdown_file:"))
        .collect();
    std::fs::write(&conf, kept.join("\n") + "\n").unwrap();
    let mut admin = Imap::login(pair.master.imap_port, "cyrus", "cyruspw");
    admin.ok("CREATE user.alice");
    let _daemon = Daemon::start(&pair, &["-n", ""]);
    let mut lmtp = Lmtp::connect(pair.master.lmtp_port);
    lmtp.deliver("alice", &message(1, "first"));
    converge(&pair, &["-n", "", "-u", "alice"], Duration::from_secs(30));
    wait_log_consumed(&pair);

    // The writer's O_CREAT, as Cyrus's user.
    let log = pair.master.sync_log(None);
    std::fs::write(&log, "").unwrap();
    let owner = std::fs::metadata(log.parent().unwrap()).unwrap();
    {
        use std::os::unix::fs::MetadataExt;
        std::os::unix::fs::chown(&log, Some(owner.uid()), Some(owner.gid())).unwrap();
    }
    // The daemon looks at it, finds it empty, and leaves it to the writer.
    std::thread::sleep(Duration::from_millis(500));
    assert!(log.exists(), "the empty log was taken");
    // lmtpd appends to the existing log: no creation to be told of.
    let sent = Instant::now();
    lmtp.deliver("alice", &message(2, "into the empty log"));
    converge(&pair, &["-n", "", "-u", "alice"], Duration::from_secs(5));
    eprintln!("replicated {:?} after the delivery", sent.elapsed());
}

/// A user the replica cannot take (here: a partition the master has and
/// the replica lacks, a common slip when adding a disk; the replica's
/// sync_server dies on it) must not stall the others, even on the same
/// worker: the user is held back, its changes wait in `log-held`, status
/// says so, and once the replica is fixed a "sync now" brings it over.
#[test]
fn a_user_the_replica_cannot_take_is_held_back_and_the_others_go_on() {
    // A short sync_timeout: a session that hangs instead of breaking is
    // cut and retried within the test's limits.
    let pair = CyrusPair::start_with(&["cyrsync_workers: 1", "sync_timeout: 10"]);
    let add_partition = |inst: &Instance| {
        let dir = inst.dir.join("spool-other");
        std::fs::create_dir_all(&dir).unwrap();
        let cyrus = nix::unistd::User::from_name("cyrus").unwrap().unwrap();
        std::os::unix::fs::chown(&dir, Some(cyrus.uid.as_raw()), Some(cyrus.gid.as_raw())).unwrap();
        inst.set_option("partition-other", &dir.display().to_string());
    };
    add_partition(&pair.master);
    pair.restart_master();
    let mut admin = Imap::login(pair.master.imap_port, "cyrus", "cyruspw");
    admin.ok("CREATE user.alice");
    admin.ok("CREATE user.carol other");
    let mut daemon = Daemon::start(&pair, &["-n", ""]);
    let mut lmtp = Lmtp::connect(pair.master.lmtp_port);
    for n in 0..3 {
        lmtp.deliver("carol", &message(n, "held"));
        lmtp.deliver("alice", &message(n, "goes on"));
    }
    converge(&pair, &["-u", "alice"], Duration::from_secs(30));
    let held = eventually("carol held back", Duration::from_secs(30), || {
        let status = try_status_json(&pair)?;
        let held = status["channels"][0]["held"].clone();
        match held.as_array() {
            Some(h) if !h.is_empty() => Ok(held),
            _ => Err(status.to_string()),
        }
    });
    assert_eq!(held[0]["user"], "carol", "{held}");
    let held_log = pair.master.sync_log(None).with_file_name("log-held");
    let kept = std::fs::read_to_string(&held_log).unwrap_or_default();
    assert!(kept.contains("carol"), "log-held: {kept:?}");
    let out = cyrsync(&pair, &["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "status must fail: {text}");
    assert!(text.contains("held back: carol"), "{text}");

    // Holds live in memory and log-held on disk: a crash and a restart put
    // carol's entries back in the log, she is tried (and held) again.
    daemon.0.kill().unwrap();
    daemon.0.wait().unwrap();
    let _daemon = Daemon::start(&pair, &["-n", ""]);
    eventually(
        "carol tried again after the restart",
        Duration::from_secs(30),
        || {
            let status = try_status_json(&pair)?;
            let held = &status["channels"][0]["held"];
            (held[0]["user"] == "carol" && held[0]["failures"] == 1)
                .then_some(())
                .ok_or_else(|| status.to_string())
        },
    );
    let kept = std::fs::read_to_string(&held_log).unwrap_or_default();
    assert!(
        kept.contains("carol"),
        "log-held after the restart: {kept:?}"
    );

    // Alice's next delivery does not wait for carol (before holds, the run
    // stuck on carol's action never ended).
    lmtp.deliver("alice", &message(9, "later"));
    converge(&pair, &["-u", "alice"], Duration::from_secs(10));
    assert!(
        !verify(&pair, &["-u", "carol"]).0,
        "carol replicated without her partition"
    );
    // The one-shot sync goes past her too, and names her.
    let out = cyrsync(&pair, &["sync", "-A"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "sync -A must fail: {said}");
    assert!(said.contains("carol"), "{said}");
    assert!(verify(&pair, &["-u", "alice"]).0);

    // The administrator adds the partition on the replica and restarts its
    // Cyrus (sync_server processes serve many connections and keep the
    // configuration they started with), then asks for a run: carol comes
    // over, nothing of hers lost.
    add_partition(&pair.replica);
    pair.stop_replica();
    pair.start_replica();
    lmtp.deliver("carol", &message(10, "after the fix"));
    control(
        &pair,
        ControlCommand::SyncNow {
            channel: String::new(),
        },
    );
    converge(&pair, &["-u", "carol"], Duration::from_secs(60));
    converge(&pair, &["-u", "alice"], Duration::from_secs(10));
    eventually(
        "no user held, log-held gone",
        Duration::from_secs(10),
        || {
            let status = try_status_json(&pair)?;
            let none = status["channels"][0]["held"]
                .as_array()
                .is_some_and(|h| h.is_empty());
            (none && !held_log.exists())
                .then_some(())
                .ok_or_else(|| status.to_string())
        },
    );
}

/// Cyrus's own rolling client left running after a migration would eat
/// the same log: cyrsync refuses that channel and names it, while a
/// sync_client on another channel is no obstacle.
#[test]
fn a_running_sync_client_on_the_channel_is_refused() {
    let pair = CyrusPair::start();
    let sync_client = |channel: Option<&str>| {
        let mut c = Command::new(support::pair::cyrus_bin("sync_client"));
        c.arg("-C").arg(pair.master.imapd_conf()).arg("-R");
        if let Some(ch) = channel {
            c.args(["-n", ch]);
        }
        c.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut rival = sync_client(None);
    let out = cyrsync(&pair, &["run", "-n", ""]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(&format!("sync_client (pid {}", rival.id())) && err.contains("cyrus.conf"),
        "{err}"
    );
    let out = cyrsync(&pair, &["check", "-n", "", "--json"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "check must fail: {said}");
    assert!(said.contains("\"sync_client_running\""), "{said}");
    rival.kill().unwrap();
    rival.wait().unwrap();

    let mut other = sync_client(Some("chan2"));
    let _daemon = Daemon::start(&pair, &["-n", ""]);
    let mut admin = Imap::login(pair.master.imap_port, "cyrus", "cyruspw");
    admin.ok("CREATE user.alice");
    Lmtp::connect(pair.master.lmtp_port).deliver("alice", &message(1, "beside chan2"));
    converge(&pair, &["-u", "alice"], Duration::from_secs(20));
    other.kill().unwrap();
    other.wait().unwrap();
}
