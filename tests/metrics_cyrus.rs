//! `cyrsync run`'s Prometheus endpoint, syslog output and log file rotation
//! against a real Cyrus 3.6.1 master and replica: the metrics agree with
//! `cyrsync status --json`, follow a replica outage (queue and lag up, then
//! back to zero), syslog receives mail-facility lines from `cyrsync[pid]`,
//! and SIGHUP after a rename writes to a new file at the configured path.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::daemon::status_json;
use support::imap::Imap;
use support::lmtp::{Lmtp, message};
use support::pair::{CyrusPair, REPL_PASSWORD, free_port};

fn bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("cyrsync")
}

/// A directory the `cyrus` user can reach (and, with `writable`, write).
fn cyrus_dir(writable: bool) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("cyrsync-metrics-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    if writable {
        let cyrus = nix::unistd::User::from_name("cyrus").unwrap().unwrap();
        std::os::unix::fs::chown(dir.path(), Some(cyrus.uid.as_raw()), None).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    dir
}

struct Daemon(Child);

impl Daemon {
    fn start(pair: &CyrusPair) -> Daemon {
        let child = Command::new(bin())
            .arg("-C")
            .arg(pair.master.imapd_conf())
            .arg("run")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(pair.dir.join("cyrsync.log")).unwrap())
            .spawn()
            .unwrap();
        Daemon(child)
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }

    fn alive(&mut self) -> bool {
        self.0.try_wait().unwrap().is_none()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn daemon_log(pair: &CyrusPair) -> String {
    std::fs::read_to_string(pair.dir.join("cyrsync.log")).unwrap_or_default()
}

/// One HTTP request; the raw answer.
fn http(port: u16, request: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

fn scrape(port: u16) -> String {
    let answer = http(port, "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(head.contains("Content-Type: text/plain; version=0.0.4"));
    body.to_string()
}

/// The value of the sample `name{labels}` (labels exactly as rendered).
fn metric(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn need(body: &str, series: &str) -> f64 {
    metric(body, series).unwrap_or_else(|| panic!("no {series} in\n{body}"))
}

fn converge(pair: &CyrusPair, user: &str, limit: Duration) {
    let start = Instant::now();
    loop {
        let out = Command::new(bin())
            .arg("-C")
            .arg(pair.master.imapd_conf())
            .args(["verify", "-u", user])
            .output()
            .unwrap();
        if out.status.success() {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "no convergence for {user}: {}\ncyrsync log:\n{}",
            String::from_utf8_lossy(&out.stdout),
            daemon_log(pair)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until `f` holds on a fresh scrape.
fn wait_metrics(port: u16, limit: Duration, what: &str, f: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        let body = scrape(port);
        if f(&body) {
            return body;
        }
        assert!(start.elapsed() < limit, "{what} within {limit:?}:\n{body}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Every datagram received so far.
fn drain(socket: &UnixDatagram, into: &mut Vec<String>) {
    let mut buf = vec![0u8; 8192];
    while let Ok(n) = socket.recv(&mut buf) {
        into.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
}

/// Counters that must read the same in the snapshot and the exposition.
const COUNTERS: [(&str, &str); 6] = [
    ("actions", "cyrsync_actions_total"),
    ("mailboxes", "cyrsync_mailboxes_total"),
    ("messages", "cyrsync_messages_total"),
    ("bytes", "cyrsync_upload_bytes_total"),
    ("applies", "cyrsync_applies_total"),
    ("errors", "cyrsync_errors_total"),
];

#[test]
fn metrics_and_syslog_follow_replication_and_an_outage() {
    let sock_dir = cyrus_dir(false);
    let sock_path = sock_dir.path().join("log");
    let syslog = UnixDatagram::bind(&sock_path).unwrap();
    std::fs::set_permissions(&sock_path, std::fs::Permissions::from_mode(0o666)).unwrap();
    syslog.set_nonblocking(true).unwrap();
    let port = free_port();
    let pair = CyrusPair::start_with(&[
        "sync_reconnect_maxwait: 2",
        &format!("cyrsync_metrics_listen: 127.0.0.1:{port}"),
        "cyrsync_syslog: yes",
        &format!("cyrsync_syslog_socket: {}", sock_path.display()),
    ]);
    let mut daemon = Daemon::start(&pair);
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            daemon.alive() && start.elapsed() < Duration::from_secs(10),
            "no metrics endpoint on {port}:\n{}",
            daemon_log(&pair)
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Other paths and methods.
    assert!(http(port, "GET / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
    assert!(http(port, "DELETE /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));
    assert!(http(port, "\u{1}\u{2}garbage\r\n\r\n").starts_with("HTTP/1.1 400"));

    let mut admin = Imap::login(pair.master.imap_port, "cyrus", "cyruspw");
    admin.ok("CREATE user.alice");
    let mut lmtp = Lmtp::connect(pair.master.lmtp_port);
    for n in 0..5 {
        lmtp.deliver("alice", &message(n, "metrics"));
    }
    converge(&pair, "alice", Duration::from_secs(30));
    let idle = |b: &str| {
        ["", "chan2"].iter().all(|c| {
            metric(b, &format!("cyrsync_queue_entries{{channel=\"{c}\"}}")) == Some(0.0)
                && metric(
                    b,
                    &format!("cyrsync_channel_state{{channel=\"{c}\",state=\"idle\"}}"),
                ) == Some(1.0)
        })
    };
    wait_metrics(port, Duration::from_secs(20), "both channels idle", idle);

    // Settled: the snapshot and the exposition must say the same. Taken
    // between two equal snapshots, so that nothing moved meanwhile.
    let (snap, body) = loop {
        let a = status_json(&pair);
        let body = scrape(port);
        let b = status_json(&pair);
        if a["channels"] == b["channels"] {
            break (b, body);
        }
    };
    assert_eq!(need(&body, "cyrsync_up"), 1.0);
    assert_eq!(
        need(
            &body,
            &format!(
                "cyrsync_build_info{{version=\"{}\"}}",
                env!("CARGO_PKG_VERSION")
            )
        ),
        1.0
    );
    assert_eq!(
        need(&body, "cyrsync_start_time_seconds"),
        snap["started_at_unix"].as_f64().unwrap()
    );
    let channels = snap["channels"].as_array().unwrap();
    assert_eq!(channels.len(), 2);
    for c in channels {
        let name = c["name"].as_str().unwrap();
        let l = format!("{{channel=\"{name}\"}}");
        for (field, metric_name) in COUNTERS {
            assert_eq!(
                need(&body, &format!("{metric_name}{l}")),
                c["counters"][field].as_f64().unwrap(),
                "{metric_name}{l}"
            );
        }
        assert_eq!(
            need(&body, &format!("cyrsync_queue_entries{l}")),
            c["waiting"].as_f64().unwrap()
        );
        assert_eq!(
            need(&body, &format!("cyrsync_queue_log_bytes{l}")),
            c["queue"]["log_bytes"].as_f64().unwrap()
        );
        assert_eq!(
            need(&body, &format!("cyrsync_workers{l}")),
            c["workers"].as_array().unwrap().len() as f64
        );
        assert!(need(&body, &format!("cyrsync_last_success_timestamp_seconds{l}")) > 0.0);
        assert_eq!(
            need(
                &body,
                &format!("cyrsync_sessions_connected{{channel=\"{name}\",side=\"replica\"}}")
            ),
            c["sessions"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|s| s["side"] == "replica" && s["connected"] == true)
                .count() as f64
        );
    }

    // Both channels feed the same replica: whichever comes second finds the
    // messages there already.
    let uploaded = need(&body, "cyrsync_messages_total{channel=\"\"}")
        + need(&body, "cyrsync_messages_total{channel=\"chan2\"}");
    assert!(uploaded >= 5.0, "{body}");

    // Syslog: mail facility, info severity, the daemon's own pid.
    let mut lines = Vec::new();
    drain(&syslog, &mut lines);
    let tag = format!("cyrsync[{}]: ", daemon.pid());
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("<22>{tag}")) && l.contains("replicating")),
        "no <22>{tag}… line in {lines:#?}"
    );

    // Replica outage: the queue holds the new entries and the lag grows.
    pair.stop_replica();
    let n = 12.0;
    for i in 0..n as usize {
        lmtp.deliver("alice", &message(100 + i, "during the outage"));
    }
    let q = "cyrsync_queue_entries{channel=\"\"}";
    let lag = "cyrsync_lag_seconds{channel=\"\"}";
    let body = wait_metrics(
        port,
        Duration::from_secs(20),
        "queue ≥ N and lag ≥ 2 s",
        |b| metric(b, q).unwrap_or(0.0) >= n && metric(b, lag).unwrap_or(0.0) >= 2.0,
    );
    let lag1 = need(&body, lag);
    std::thread::sleep(Duration::from_secs(2));
    let body = scrape(port);
    assert!(need(&body, q) >= n, "{body}");
    assert!(need(&body, lag) > lag1, "lag did not grow: {body}");
    assert!(need(&body, "cyrsync_errors_total{channel=\"\"}") > 0.0);
    let snap = status_json(&pair);
    let status_q = snap["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "")
        .unwrap()["waiting"]
        .as_f64()
        .unwrap();
    assert!(status_q >= n, "status says {status_q}");
    drain(&syslog, &mut lines);
    assert!(
        lines.iter().any(|l| l.starts_with(&format!("<19>{tag}"))),
        "no error (<19>) line during the outage in {lines:#?}"
    );

    pair.start_replica();
    converge(&pair, "alice", Duration::from_secs(40));
    let body = wait_metrics(port, Duration::from_secs(20), "queue back to 0", |b| {
        metric(b, q) == Some(0.0) && metric(b, lag) == Some(0.0)
    });
    let after = need(&body, "cyrsync_messages_total{channel=\"\"}")
        + need(&body, "cyrsync_messages_total{channel=\"chan2\"}");
    assert!(after >= uploaded + n, "{body}");
    assert!(daemon.alive());

    // No secret reached syslog.
    drain(&syslog, &mut lines);
    assert!(lines.iter().all(|l| !l.contains(REPL_PASSWORD)));
    assert!(lines.iter().all(|l| !l.contains("cyruspw")));
}

fn wait_for_text(path: &Path, needle: &str, limit: Duration) -> String {
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(
            start.elapsed() < limit,
            "{} lacks {needle:?} after {limit:?}:\n{text}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn sighup_reopens_a_renamed_log_file() {
    let log_dir = cyrus_dir(true);
    let log = log_dir.path().join("cyrsync.log");
    let port = free_port();
    let pair = CyrusPair::start_with(&[
        &format!("cyrsync_log_file: {}", log.display()),
        &format!("cyrsync_metrics_listen: 127.0.0.1:{port}"),
    ]);
    let mut daemon = Daemon::start(&pair);
    let started = "replicating 2 channel(s)";
    wait_for_text(&log, started, Duration::from_secs(10));
    wait_for_text(&log, "metrics on http://", Duration::from_secs(10));
    let first_start = need(&scrape(port), "cyrsync_start_time_seconds");

    // What newsyslog does: rename, then SIGHUP.
    let rotated = log_dir.path().join("cyrsync.log.0");
    std::fs::rename(&log, &rotated).unwrap();
    let st = Command::new("kill")
        .args(["-HUP", &daemon.pid().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    // The reloaded daemon announces itself in the new file.
    let fresh = wait_for_text(&log, started, Duration::from_secs(20));
    assert!(daemon.alive(), "{fresh}");

    // Replication goes on, and its lines go to the new file only.
    let mut admin = Imap::login(pair.master.imap_port, "cyrus", "cyruspw");
    admin.ok("CREATE user.bob");
    Lmtp::connect(pair.master.lmtp_port).deliver("bob", &message(1, "after rotation"));
    converge(&pair, "bob", Duration::from_secs(30));
    // The endpoint is bound again after the reload, with fresh counters.
    let body = scrape(port);
    assert!(need(&body, "cyrsync_start_time_seconds") >= first_start);
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert_eq!(old.matches(started).count(), 1, "old file:\n{old}");
    let fresh = std::fs::read_to_string(&log).unwrap();
    assert_eq!(fresh.matches(started).count(), 1, "new file:\n{fresh}");
    // A reload without a rename keeps writing to the same file.
    let st = Command::new("kill")
        .args(["-HUP", &daemon.pid().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let start = Instant::now();
    while std::fs::read_to_string(&log)
        .unwrap()
        .matches(started)
        .count()
        < 2
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no second reload"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(daemon.alive());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.contains("still writing to the previous file"),
        "{text}"
    );
}
