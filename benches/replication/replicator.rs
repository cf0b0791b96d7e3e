//! The two rolling replicators under comparison, started the same way on the
//! same imapd.conf: Cyrus's own `sync_client -R` and `cyrsync run`.

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::measure::{TICKS_PER_SECOND, cpu_ticks, peak_rss};
use crate::support::pair::{CyrusPair, cyrus_bin};

/// Which replicator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Cyrus's `sync_client -R` (rolling, in the foreground).
    SyncClient,
    /// `cyrsync run`.
    Cyrsync,
}

impl Kind {
    /// Both, in the order each workload runs them.
    pub const BOTH: [Kind; 2] = [Kind::SyncClient, Kind::Cyrsync];

    /// The name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Kind::SyncClient => "sync_client",
            Kind::Cyrsync => "cyrsync",
        }
    }

    /// A short tag for user names (`w2sc`, `w2cy`).
    pub fn tag(self) -> &'static str {
        match self {
            Kind::SyncClient => "sc",
            Kind::Cyrsync => "cy",
        }
    }
}

/// A running replicator.
pub struct Replicator {
    /// Which one.
    pub kind: Kind,
    child: Child,
    shutdown_file: PathBuf,
    cpu_start: u64,
}

impl Replicator {
    /// Starts `kind` on the pair's master configuration, as root (both drop
    /// to the cyrus user themselves), logging to a file in the pair's
    /// directory.
    pub fn start(kind: Kind, pair: &CyrusPair) -> Replicator {
        let shutdown_file = pair.master.config_dir().join("sync/shutdown");
        let _ = fs::remove_file(&shutdown_file);
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(pair.dir.join(format!("{}.log", kind.name())))
            .expect("replicator log");
        let mut cmd = match kind {
            Kind::SyncClient => {
                let mut c = Command::new(cyrus_bin("sync_client"));
                c.arg("-C").arg(pair.master.imapd_conf()).arg("-R");
                c
            }
            Kind::Cyrsync => {
                let mut c = Command::new(env!("CARGO_BIN_EXE_cyrsync"));
                c.arg("-C").arg(pair.master.imapd_conf()).arg("run");
                c
            }
        };
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", kind.name()));
        let pid = child.id() as i32;
        Replicator {
            kind,
            child,
            shutdown_file,
            cpu_start: cpu_ticks(pid).unwrap_or(0),
        }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// CPU seconds used since it started (or since the last
    /// [`reset_cpu`](Self::reset_cpu)).
    pub fn cpu_seconds(&self) -> f64 {
        let now = cpu_ticks(self.pid()).unwrap_or(self.cpu_start);
        now.saturating_sub(self.cpu_start) as f64 / TICKS_PER_SECOND
    }

    /// Starts counting CPU from now (after a warm-up that is not measured).
    pub fn reset_cpu(&mut self) {
        self.cpu_start = cpu_ticks(self.pid()).unwrap_or(0);
    }

    /// Peak resident set size so far, in bytes.
    pub fn peak_rss(&self) -> u64 {
        peak_rss(self.pid()).unwrap_or(0)
    }

    /// Panics if it died (a replicator that exits is a failed run).
    pub fn assert_running(&mut self, pair: &CyrusPair) {
        if let Some(status) = self.child.try_wait().expect("try_wait") {
            self.fail(pair, &format!("exited with {status}"));
        }
    }

    /// Panics with `what` and the end of the replicator's log.
    pub fn fail(&self, pair: &CyrusPair, what: &str) -> ! {
        let log = fs::read_to_string(pair.dir.join(format!("{}.log", self.kind.name())))
            .unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        panic!(
            "{} {what}; its log ends:\n{}",
            self.kind.name(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }

    /// Stops it with the channel's shutdown file (both honour
    /// `sync_shutdown_file`), SIGTERM after 10 s.
    pub fn stop(mut self) {
        fs::write(&self.shutdown_file, "").expect("write shutdown file");
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if self.child.try_wait().ok().flatten().is_some() {
                let _ = fs::remove_file(&self.shutdown_file);
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Some(pid) = rustix::process::Pid::from_raw(self.pid()) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let _ = self.child.wait();
        let _ = fs::remove_file(&self.shutdown_file);
    }
}

impl Drop for Replicator {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
