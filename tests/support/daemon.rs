//! Runs the `cyrsync` binary against a [`CyrusPair`]: the rolling daemon,
//! `verify` until convergence, `status --json`, and control commands.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cyrsync::status::client::{Client, ControlCommand};

use super::pair::CyrusPair;

pub fn bin() -> std::path::PathBuf {
    assert_cmd::cargo::cargo_bin("cyrsync")
}

pub struct Daemon(pub Child);

impl Daemon {
    pub fn start(pair: &CyrusPair, args: &[&str]) -> Daemon {
        let child = Command::new(bin())
            .arg("-C")
            .arg(pair.master.imapd_conf())
            .arg("run")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(pair.dir.join("cyrsync.log"))
                    .unwrap(),
            ))
            .spawn()
            .unwrap();
        Daemon(child)
    }

    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(st) = self.0.try_wait().unwrap() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Asks `check` every 200 ms until it answers `Ok`; after `limit`, panics
/// with `what` and its last `Err`.
pub fn eventually<T>(
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> T {
    let start = Instant::now();
    loop {
        match check() {
            Ok(t) => return t,
            Err(e) if start.elapsed() > limit => panic!("{what} within {limit:?}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// Runs `cyrsync -C <master's imapd.conf> args…` to its end.
pub fn cyrsync(pair: &CyrusPair, args: &[&str]) -> std::process::Output {
    Command::new(bin())
        .arg("-C")
        .arg(pair.master.imapd_conf())
        .args(args)
        .output()
        .unwrap()
}

pub fn verify(pair: &CyrusPair, args: &[&str]) -> (bool, String) {
    let out = cyrsync(pair, &[&["verify"][..], args].concat());
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Waits until `verify` reports equality (the daemon converged).
pub fn converge(pair: &CyrusPair, args: &[&str], limit: Duration) {
    let start = Instant::now();
    loop {
        let (ok, text) = verify(pair, args);
        if ok {
            return;
        }
        if start.elapsed() > limit {
            let log = std::fs::read_to_string(pair.dir.join("cyrsync.log")).unwrap_or_default();
            let tail: String = log.lines().rev().take(30).collect::<Vec<_>>().join("\n");
            panic!(
                "no convergence for {args:?} within {limit:?}:\n{text}\ncyrsync log (newest first):\n{tail}"
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub fn status_json(pair: &CyrusPair) -> serde_json::Value {
    try_status_json(pair).unwrap_or_else(|e| panic!("{e}"))
}

/// `status --json`, or why there is none (a daemon still starting has not
/// bound its control socket yet).
pub fn try_status_json(pair: &CyrusPair) -> Result<serde_json::Value, String> {
    let out = cyrsync(pair, &["status", "--json"]);
    serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "status --json: {e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// The daemon's control socket for this pair (the default path).
pub fn control_socket(pair: &CyrusPair) -> std::path::PathBuf {
    pair.master.config_dir().join("socket").join("cyrsync")
}

/// Sends `cmd` to the daemon on the pair's control socket.
pub fn control(pair: &CyrusPair, cmd: ControlCommand) {
    let socket = control_socket(pair);
    let start = Instant::now();
    // The daemon may still be binding its socket.
    let mut client = loop {
        match Client::connect(&socket, Some(Duration::from_secs(10))) {
            Ok(c) => break c,
            Err(e) if start.elapsed() > Duration::from_secs(10) => panic!("{e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    client
        .command(&cmd)
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
}
