//! `cyrsync tui` in a real terminal (tmux), attached to a daemon replicating
//! on a real Cyrus 3.6.1 pair: the queue and batch progress show up on the
//! captured screen, `p` pauses and resumes (the daemon's status confirms),
//! and `q` leaves the terminal as it was.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::daemon::{Daemon, bin, converge, status_json};
use support::imap::Imap;
use support::lmtp::Lmtp;
use support::pair::CyrusPair;

/// A tmux session running one shell command, on a tmux server of its own
/// (`-L`): tests run in parallel and one test's teardown must not take
/// another's terminal with it. Killed on drop.
struct Tmux {
    name: String,
}

impl Tmux {
    fn start(command: &str, width: u16, height: u16) -> Tmux {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let name = format!("cyrsync-tui-{}-{n}", std::process::id());
        let status = Command::new("tmux")
            .args(["-L", &name, "new-session", "-d", "-s", &name])
            .args(["-x", &width.to_string(), "-y", &height.to_string()])
            .arg(command)
            .status()
            .unwrap_or_else(|e| panic!("tmux is needed for this test (apt-get install tmux): {e}"));
        assert!(status.success(), "tmux new-session failed");
        Tmux { name }
    }

    fn keys(&self, keys: &[&str]) {
        for k in keys {
            let st = Command::new("tmux")
                .args(["-L", &self.name, "send-keys", "-t", &self.name, k])
                .status()
                .unwrap();
            assert!(st.success());
            std::thread::sleep(Duration::from_millis(150));
        }
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.name, "capture-pane", "-p", "-t", &self.name])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the screen satisfies `want`; panics with the screen.
    fn wait_for(&self, what: &str, limit: Duration, want: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let s = self.screen();
            if want(&s) {
                return s;
            }
            if start.elapsed() > limit {
                panic!("screen never showed {what} within {limit:?}:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn pane_pid(&self) -> u32 {
        let out = Command::new("tmux")
            .args([
                "-L",
                &self.name,
                "list-panes",
                "-t",
                &self.name,
                "-F",
                "#{pane_pid}",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.name, "kill-server"])
            .status();
    }
}

fn default_channel(snapshot: &serde_json::Value) -> serde_json::Value {
    snapshot["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "")
        .cloned()
        .unwrap()
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split(' ').collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// The pid of the `cyrsync tui` process under the pane's shell.
fn tui_pid(shell: u32) -> Option<u32> {
    let out = Command::new("pgrep")
        .args(["-P", &shell.to_string(), "cyrsync"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

#[test]
fn tui_shows_queue_and_progress_pauses_resumes_and_quits_cleanly() {
    let pair = CyrusPair::start();
    let mut daemon = Daemon::start(&pair, &["-n", ""]);
    let mut admin = Imap::login(pair.master.imap_port, "cyrus", "cyruspw");
    admin.ok("CREATE user.perf");

    let conf = pair.master.imapd_conf();
    let command = format!(
        "stty sane; echo BEFORE-TUI; NO_COLOR=1 {} -C {} tui; echo TUI-EXIT=$?; stty -a | tr ' ' '\\n' | grep -x -- '-\\?icanon'; sleep 600",
        bin().display(),
        conf.display()
    );
    let tmux = Tmux::start(&command, 100, 30);
    tmux.wait_for("the live dashboard", Duration::from_secs(15), |s| {
        s.contains("● live") && s.contains("CHANNEL")
    });

    // Pause with p, confirm with y: the daemon says paused.
    tmux.keys(&["p"]);
    tmux.wait_for("the pause question", Duration::from_secs(5), |s| {
        s.contains("Pause channel")
    });
    tmux.keys(&["y"]);
    tmux.wait_for("the paused state", Duration::from_secs(5), |s| {
        s.lines()
            .any(|l| l.contains("127.0.0.1") && l.contains("paused"))
    });
    let c = default_channel(&status_json(&pair));
    assert_eq!(c["state"], "Paused", "{c}");

    // Mail queues up while paused, and the screen counts it.
    let n = 400;
    let mut lmtp = Lmtp::connect(pair.master.lmtp_port);
    let body = format!("Subject: tui\r\n\r\n{}\r\n", "x".repeat(20_000));
    for _ in 0..n {
        lmtp.deliver("perf", &body);
    }
    // The daemon measures its queue once a second: wait for the next look.
    let counted = Instant::now();
    let c = loop {
        let c = default_channel(&status_json(&pair));
        if c["waiting"].as_u64().unwrap() >= n || counted.elapsed() > Duration::from_secs(5) {
            break c;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let waiting = c["waiting"].as_u64().unwrap();
    assert!(waiting >= n, "queue {waiting} < {n}: {c}");
    tmux.wait_for(
        "the queue of waiting entries",
        Duration::from_secs(5),
        |s| {
            s.lines().any(|l| {
                l.contains("paused")
                    && l.split_whitespace()
                        .any(|w| w.parse::<u64>().is_ok_and(|q| q >= n))
            })
        },
    );

    // Resume: the worker's batch progress (messages k/N) appears while the
    // backlog drains, then the queue is empty again.
    tmux.keys(&["p"]);
    tmux.wait_for("the resume question", Duration::from_secs(5), |s| {
        s.contains("Resume channel")
    });
    tmux.keys(&["y"]);
    // The panel title reads "0/4 workers busy" even when idle, so wait for a
    // worker row that names the user's mailbox.
    let busy = tmux.wait_for("a busy worker", Duration::from_secs(30), |s| {
        s.lines().any(|l| l.contains("user.perf"))
    });
    assert!(
        !busy.contains(" 0/4 workers busy"),
        "worker row shown while no worker is busy:\n{busy}"
    );
    converge(&pair, &["-u", "perf"], Duration::from_secs(60));
    // The replica agrees once APPLY MAILBOX is answered; the run ends a few
    // milliseconds later, after its RESTART.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let c = loop {
        let c = default_channel(&status_json(&pair));
        if c["state"] == "Idle" || std::time::Instant::now() > deadline {
            break c;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(c["state"], "Idle", "{c}");
    assert!(c["counters"]["messages"].as_u64().unwrap() >= n, "{c}");
    tmux.wait_for("an idle, empty queue", Duration::from_secs(10), |s| {
        s.contains("idle") && s.contains("all 4 workers idle")
    });

    // Idle CPU of the TUI, for the record (see the issue note).
    if let Some(pid) = tui_pid(tmux.pane_pid()) {
        let before = cpu_ticks(pid);
        std::thread::sleep(Duration::from_secs(10));
        eprintln!(
            "idle tui CPU: {} clock ticks in 10 s",
            cpu_ticks(pid) - before
        );
    }

    // The daemon restarts: the TUI says so, then attaches again by itself.
    drop(daemon);
    tmux.wait_for("the no-daemon screen", Duration::from_secs(10), |s| {
        s.contains("No cyrsync daemon answers")
    });
    daemon = Daemon::start(&pair, &["-n", ""]);
    tmux.wait_for("the dashboard again", Duration::from_secs(15), |s| {
        s.contains("● live") && s.contains("CHANNEL")
    });
    assert!(daemon.0.try_wait().unwrap().is_none());

    // q leaves: exit 0, the shell's screen is back, canonical mode restored.
    tmux.keys(&["q"]);
    let after = tmux.wait_for("the shell after q", Duration::from_secs(10), |s| {
        s.contains("TUI-EXIT=")
    });
    assert!(after.contains("TUI-EXIT=0"), "{after}");
    assert!(
        after.contains("BEFORE-TUI"),
        "alternate screen not left:\n{after}"
    );
    assert!(
        after.lines().any(|l| l.trim() == "icanon"),
        "terminal left in raw mode:\n{after}"
    );
    assert!(
        !after.contains("CHANNEL"),
        "dashboard left on screen:\n{after}"
    );
}

#[test]
fn tui_says_clearly_when_no_daemon_runs() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("nothing-here");
    let command = format!(
        "{} tui --socket {}; echo TUI-EXIT=$?; sleep 600",
        bin().display(),
        socket.display()
    );
    let tmux = Tmux::start(&command, 80, 24);
    let s = tmux.wait_for("the no-daemon screen", Duration::from_secs(10), |s| {
        s.contains("No cyrsync daemon answers")
    });
    assert!(s.contains("service cyrsync start"), "{s}");
    assert!(s.contains(&socket.display().to_string()), "{s}");
    tmux.keys(&["q"]);
    tmux.wait_for("exit 0", Duration::from_secs(10), |s| {
        s.contains("TUI-EXIT=0")
    });
}

#[test]
fn standalone_tui_replicates_in_process_and_stops_with_q() {
    let pair = CyrusPair::start();
    let mut admin = Imap::login(pair.master.imap_port, "cyrus", "cyruspw");
    admin.ok("CREATE user.bob");
    let mut lmtp = Lmtp::connect(pair.master.lmtp_port);
    for n in 0..30 {
        lmtp.deliver("bob", &support::lmtp::message(n, "standalone"));
    }
    let command = format!(
        "{} -C {} tui --standalone -n ''; echo TUI-EXIT=$?; sleep 600",
        bin().display(),
        pair.master.imapd_conf().display()
    );
    let tmux = Tmux::start(&command, 100, 30);
    tmux.wait_for("the standalone dashboard", Duration::from_secs(15), |s| {
        s.contains("standalone") && s.contains("● live")
    });
    converge(&pair, &["-u", "bob"], Duration::from_secs(30));
    tmux.wait_for("the replicated messages", Duration::from_secs(10), |s| {
        s.contains("30 messages")
    });
    tmux.keys(&["q"]);
    tmux.wait_for("exit 0", Duration::from_secs(20), |s| {
        s.contains("TUI-EXIT=0")
    });
    // The in-process daemon is gone with it: the channel's lock is free, so
    // a daemon starts (a held lock makes it exit at once).
    let mut daemon = Daemon::start(&pair, &["-n", ""]);
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        daemon.0.try_wait().unwrap().is_none(),
        "{}",
        std::fs::read_to_string(pair.dir.join("cyrsync.log")).unwrap_or_default()
    );
}
