//! `cyrsync check` against a real Cyrus 3.6.1 pair: a healthy pair passes on
//! both channels (csync and IMAP); a wrong password, an account that is not an
//! admin of the master or of the replica, a replica nobody listens for, a
//! replica whose certificate the configured CA did not sign, a sync log
//! directory cyrus cannot write and a leftover `sync_client` in cyrus.conf are
//! each named with their cause and a hint. `--json` carries the same verdicts.
//! Passwords never appear in the output.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use support::pair::{CyrusPair, REPL_PASSWORD};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn check(conf: &Path, args: &[&str]) -> Run {
    let out = assert_cmd::Command::cargo_bin("cyrsync")
        .unwrap()
        .arg("-C")
        .arg(conf)
        .arg("check")
        .args(args)
        .env("NO_COLOR", "1")
        .timeout(Duration::from_secs(120))
        .output()
        .unwrap();
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    for secret in [REPL_PASSWORD, "alicepw", "not-the-password"] {
        assert!(
            !run.stdout.contains(secret) && !run.stderr.contains(secret),
            "a password ({secret}) appears in the output:\n{}{}",
            run.stdout,
            run.stderr
        );
    }
    run
}

fn json(conf: &Path, args: &[&str]) -> (i32, Json) {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let run = check(conf, &all);
    let parsed: Json = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("--json is not JSON ({e}):\n{}", run.stdout));
    assert_eq!(parsed["format"], 1);
    assert_eq!(
        parsed["ok"].as_bool().unwrap(),
        run.code == 0,
        "exit status and verdict disagree: {}",
        run.stdout
    );
    (run.code, parsed)
}

fn channel<'j>(report: &'j Json, name: &str) -> &'j Json {
    report["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["channel"] == name)
        .unwrap_or_else(|| panic!("no channel {name:?} in {report}"))
}

fn peer<'j>(report: &'j Json, name: &str, role: &str) -> &'j Json {
    channel(report, name)["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["role"] == role)
        .unwrap_or_else(|| panic!("no {role} in channel {name:?}: {report}"))
}

fn step<'j>(peer: &'j Json, check: &str) -> &'j Json {
    peer["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["check"] == check)
        .unwrap_or_else(|| panic!("no step {check} in {peer}"))
}

fn local<'j>(report: &'j Json, name: &str, check: &str) -> &'j Json {
    channel(report, name)["local"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["check"] == check)
        .unwrap_or_else(|| panic!("no local step {check} in channel {name:?}: {report}"))
}

/// The text block of one failed step: the `[FAIL]` line and its
/// cause and hint lines.
fn failure_block<'t>(text: &'t str, label: &str) -> Vec<&'t str> {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.contains("[FAIL]") && l.contains(label))
        .unwrap_or_else(|| panic!("no [FAIL] {label} in:\n{text}"));
    let mut block = vec![lines[start]];
    block.extend(
        lines[start + 1..]
            .iter()
            .take_while(|l| l.starts_with("          "))
            .copied(),
    );
    block
}

#[test]
fn a_healthy_pair_passes_on_both_channels() {
    let pair = CyrusPair::start();
    let conf = pair.master.imapd_conf();
    let run = check(&conf, &[]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(!run.stdout.contains("[FAIL]"), "{}", run.stdout);
    assert!(
        run.stdout.contains("channel \"\" (default)"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("channel chan2"), "{}", run.stdout);
    assert!(
        run.stdout.contains("2 channel(s) checked: all usable"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("at most 15s"), "{}", run.stdout);

    let (code, report) = json(&conf, &[]);
    assert_eq!(code, 0);
    assert_eq!(report["network"], true);
    for (name, transport) in [("", "csync"), ("chan2", "imap")] {
        let c = channel(&report, name);
        assert_eq!(c["checked"], true);
        assert_eq!(c["ok"], true, "{c}");
        let replica = peer(&report, name, "replica");
        assert_eq!(replica["transport"], transport, "{replica}");
        assert_eq!(replica["mechanism"], "SCRAM-SHA-256");
        assert_eq!(replica["authenticated"], true);
        assert_eq!(replica["admin"], true);
        assert_eq!(replica["tls"], Json::Null);
        assert!(
            replica["server"]
                .as_str()
                .unwrap()
                .starts_with("replica.test"),
            "{replica}"
        );
        let master = peer(&report, name, "master");
        assert_eq!(master["ok"], true, "{master}");
        assert_eq!(master["admin"], true);
        assert_eq!(local(&report, name, "sync_log")["status"], "ok");
        assert_eq!(local(&report, name, "cyrus_conf")["status"], "ok");
    }

    // -n limits the check to one channel.
    let (code, report) = json(&conf, &["-n", "chan2"]);
    assert_eq!(code, 0);
    assert_eq!(report["channels"].as_array().unwrap().len(), 1);
}

#[test]
fn a_wrong_password_is_named_with_its_fix() {
    let pair = CyrusPair::start();
    let dir = tempfile::tempdir().unwrap();
    let conf = pair.master_conf_variant(
        dir.path(),
        &[
            ("sync_password", "not-the-password"),
            ("chan2_sync_password", "not-the-password"),
            // The master keeps the right one, so only the replicas fail.
            ("cyrsync_source_password", REPL_PASSWORD),
        ],
        &[],
    );
    let run = check(&conf, &[]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    let block = failure_block(&run.stdout, "login").join("\n");
    assert!(block.contains("authentication failure"), "{block}");
    assert!(block.contains("cause: wrong_password"), "{block}");
    assert!(block.contains("hint:"), "{block}");
    assert!(block.contains("sync_password"), "{block}");
    assert!(
        block.contains("saslpasswd2 -u replica.test repl"),
        "{block}"
    );
    assert!(run.stdout.contains("2 channel(s) checked: 2 NOT usable"));

    let (code, report) = json(&conf, &[]);
    assert_eq!(code, 1);
    for name in ["", "chan2"] {
        let replica = peer(&report, name, "replica");
        let login = step(replica, "login");
        assert_eq!(login["status"], "fail", "{login}");
        assert_eq!(login["cause"], "wrong_password", "{login}");
        assert_eq!(replica["authenticated"], false);
        assert_eq!(step(replica, "admin")["status"], "skip");
        assert_eq!(peer(&report, name, "master")["ok"], true);
        assert_eq!(channel(&report, name)["ok"], false);
    }
    // chan2's hint names chan2's key.
    let hint = step(peer(&report, "chan2", "replica"), "login")["hint"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(hint.contains("chan2_sync_password"), "{hint}");
}

#[test]
fn an_account_that_is_not_an_admin_is_named_on_either_side() {
    let pair = CyrusPair::start();
    // Not an admin of the replicas (alice is an ordinary user there).
    let dir = tempfile::tempdir().unwrap();
    let conf = pair.master_conf_variant(
        dir.path(),
        &[
            ("sync_authname", "alice"),
            ("sync_password", "alicepw"),
            ("chan2_sync_authname", "alice"),
            ("chan2_sync_password", "alicepw"),
            ("cyrsync_source_authname", "repl"),
            ("cyrsync_source_password", REPL_PASSWORD),
        ],
        &[],
    );
    let run = check(&conf, &[]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    let block = failure_block(&run.stdout, "admin").join("\n");
    assert!(block.contains("cause: not_admin"), "{block}");
    assert!(
        block.contains("add alice to `admins:` in the replica's imapd.conf"),
        "{block}"
    );
    let (_, report) = json(&conf, &[]);
    // sync_server refuses with NO Permission denied, imapd with BAD
    // Unrecognized command (cyrus-test-pair.md §8).
    for (name, answer) in [
        ("", "NO Permission denied"),
        ("chan2", "BAD Unrecognized command"),
    ] {
        let replica = peer(&report, name, "replica");
        assert_eq!(replica["authenticated"], true, "{replica}");
        assert_eq!(replica["admin"], false, "{replica}");
        let admin = step(replica, "admin");
        assert_eq!(admin["cause"], "not_admin", "{admin}");
        assert!(
            admin["detail"].as_str().unwrap().contains(answer),
            "{admin}"
        );
        assert_eq!(peer(&report, name, "master")["admin"], true);
    }

    // Not an admin of the master.
    let dir = tempfile::tempdir().unwrap();
    let conf = pair.master_conf_variant(
        dir.path(),
        &[
            ("cyrsync_source_authname", "alice"),
            ("cyrsync_source_password", "alicepw"),
        ],
        &[],
    );
    let run = check(&conf, &["-n", ""]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    let block = failure_block(&run.stdout, "admin").join("\n");
    assert!(
        block.contains("add alice to `admins:` in the master's imapd.conf"),
        "{block}"
    );
    let (_, report) = json(&conf, &["-n", ""]);
    assert_eq!(
        step(peer(&report, "", "master"), "admin")["cause"],
        "not_admin"
    );
    assert_eq!(peer(&report, "", "replica")["ok"], true);
}

#[test]
fn a_replica_nobody_listens_for_is_refused_quickly() {
    let pair = CyrusPair::start();
    let nobody = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let conf = pair.master_conf_variant(dir.path(), &[("sync_port", &nobody.to_string())], &[]);
    let started = Instant::now();
    let run = check(&conf, &["-n", ""]);
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(run.code, 1, "{}", run.stdout);
    let block = failure_block(&run.stdout, "connect").join("\n");
    assert!(block.contains(&format!("127.0.0.1:{nobody}")), "{block}");
    assert!(block.contains("cause: refused"), "{block}");
    assert!(block.contains("is Cyrus running on the replica"), "{block}");
    assert!(block.contains("sync_port"), "{block}");
    let (_, report) = json(&conf, &["-n", ""]);
    let replica = peer(&report, "", "replica");
    assert_eq!(step(replica, "connect")["cause"], "refused");
    assert_eq!(step(replica, "login")["status"], "skip");
    assert_eq!(replica["address"], format!("127.0.0.1:{nobody}"));

    // A port that accepts and never speaks: cut at sync_timeout (here 3s,
    // below the check's own cap).
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let conf = pair.master_conf_variant(
        dir.path(),
        &[("sync_port", &port.to_string()), ("sync_timeout", "3s")],
        &[],
    );
    let started = Instant::now();
    let (code, report) = json(&conf, &["-n", ""]);
    assert!(started.elapsed() < Duration::from_secs(10));
    drop(silent);
    assert_eq!(code, 1);
    let replica = peer(&report, "", "replica");
    assert_eq!(step(replica, "connect")["status"], "ok");
    let greeting = step(replica, "greeting");
    assert_eq!(greeting["cause"], "timeout", "{greeting}");
    assert!(
        greeting["hint"]
            .as_str()
            .unwrap()
            .contains("accepted the connection but did not answer within 3s"),
        "{greeting}"
    );
}

#[test]
fn tls_verified_refused_with_the_wrong_ca_and_fixed_by_the_printed_pin() {
    let pair = CyrusPair::start_tls();
    let tls = pair.tls.clone().unwrap();
    let conf = pair.master.imapd_conf();

    // Verified against the CA of tls_client_ca_file, on both transports.
    let (code, report) = json(&conf, &[]);
    assert_eq!(code, 0, "{report}");
    for name in ["", "chan2"] {
        let t = &peer(&report, name, "replica")["tls"];
        assert_eq!(t["verification"], "verified", "{t}");
        assert_eq!(t["certificate"]["sha256"], tls.fingerprint.as_str());
        assert!(
            t["certificate"]["subject"]
                .as_str()
                .unwrap()
                .contains("CN=replica.test")
        );
        let prefix = if name.is_empty() { "" } else { "chan2_" };
        assert_eq!(
            t["pin_line"],
            format!("{prefix}cyrsync_tls_fingerprint: {}", tls.fingerprint)
        );
    }

    // The wrong CA: refused, the key named, the pin line printed.
    let dir = tempfile::tempdir().unwrap();
    let other = tls.other_ca_file.display().to_string();
    let wrong = pair.master_conf_variant(dir.path(), &[("tls_client_ca_file", &other)], &[]);
    let run = check(&wrong, &[]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    let block = failure_block(&run.stdout, "TLS").join("\n");
    assert!(block.contains("cause: certificate_untrusted"), "{block}");
    assert!(
        block.contains("not signed by a CA in tls_client_ca_file"),
        "{block}"
    );
    assert!(block.contains("put the CA certificate"), "{block}");
    let pin = format!("cyrsync_tls_fingerprint: {}", tls.fingerprint);
    assert!(block.contains(&pin), "{block}");
    let (_, report) = json(&wrong, &[]);
    for name in ["", "chan2"] {
        let replica = peer(&report, name, "replica");
        assert_eq!(step(replica, "tls")["cause"], "certificate_untrusted");
        assert_eq!(replica["tls"]["verification"], "refused");
        assert_eq!(replica["authenticated"], false);
    }

    // Pasting the printed lines (one per channel) makes it pass, pinned.
    let lines: Vec<String> = run
        .stdout
        .lines()
        .map(str::trim)
        .filter(|l| l.contains("cyrsync_tls_fingerprint: "))
        .map(str::to_string)
        .collect();
    assert!(lines.len() >= 2, "{lines:?}");
    let mut set: Vec<(String, String)> = Vec::new();
    for l in &lines {
        let (k, v) = l.split_once(": ").unwrap();
        if !set.iter().any(|(sk, _)| sk == k) {
            set.push((k.to_string(), v.to_string()));
        }
    }
    let set_ref: Vec<(&str, &str)> = set.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let dir2 = tempfile::tempdir().unwrap();
    let mut with_pin = set_ref.clone();
    with_pin.push(("tls_client_ca_file", &other));
    let pinned = pair.master_conf_variant(dir2.path(), &with_pin, &[]);
    let (code, report) = json(&pinned, &[]);
    assert_eq!(code, 0, "{report}");
    for name in ["", "chan2"] {
        assert_eq!(
            peer(&report, name, "replica")["tls"]["verification"],
            "pinned"
        );
    }

    // Verification off: usable, with a warning.
    let dir3 = tempfile::tempdir().unwrap();
    let off = pair.master_conf_variant(
        dir3.path(),
        &[
            ("cyrsync_tls_verify", "0"),
            ("chan2_cyrsync_tls_verify", "0"),
        ],
        &[],
    );
    let run = check(&off, &[]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(run.stdout.contains("[WARN] TLS"), "{}", run.stdout);
    assert!(
        run.stdout.contains("certificate NOT verified"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("usable, with"), "{}", run.stdout);
}

#[test]
fn this_host_a_sync_log_cyrus_cannot_write_and_a_leftover_sync_client() {
    let pair = CyrusPair::start();
    // A configdirectory whose sync/ belongs to root, mode 0755.
    let confdir = tempfile::tempdir().unwrap();
    std::fs::create_dir(confdir.path().join("sync")).unwrap();
    std::fs::set_permissions(
        confdir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let conf = pair.master_conf_variant(
        dir.path(),
        &[("configdirectory", &confdir.path().display().to_string())],
        &[],
    );
    // Cyrus's own rolling client, still in cyrus.conf for the default channel.
    std::fs::write(
        dir.path().join("cyrus.conf"),
        "START {\n  recover cmd=\"ctl_cyrusdb -r\"\n}\nDAEMON {\n  syncclient cmd=\"/usr/lib/cyrus/bin/sync_client -r\"\n}\n",
    )
    .unwrap();
    let run = check(&conf, &[]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    let block = failure_block(&run.stdout, "sync log").join("\n");
    assert!(
        block.contains("cyrus cannot create or rename files"),
        "{block}"
    );
    assert!(block.contains("root:root 0755"), "{block}");
    assert!(block.contains("cause: log_dir_not_writable"), "{block}");
    assert!(block.contains("chown cyrus"), "{block}");
    assert!(run.stdout.contains("[WARN] cyrus.conf"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("syncclient cmd=\"/usr/lib/cyrus/bin/sync_client -r\"")
    );
    let (_, report) = json(&conf, &[]);
    let w = local(&report, "", "cyrus_conf");
    assert_eq!(w["status"], "warn", "{w}");
    assert_eq!(w["cause"], "sync_client_configured");
    // The entry has no -n: it consumes the default channel, not chan2.
    assert_eq!(local(&report, "chan2", "cyrus_conf")["status"], "ok");
    assert_eq!(
        local(&report, "", "sync_log")["cause"],
        "log_dir_not_writable"
    );

    // With the pair's own configdirectory, the warning alone leaves the
    // channel usable (exit 0); --cyrus-conf names the file.
    let elsewhere = tempfile::tempdir().unwrap();
    let cyrus_conf = elsewhere.path().join("cyrus.conf");
    std::fs::write(
        &cyrus_conf,
        "DAEMON {\n  sync2 cmd=\"sync_client -C /etc/imapd.conf -R -n chan2\"\n}\n",
    )
    .unwrap();
    let c = cyrus_conf.display().to_string();
    let (code, report) = json(&pair.master.imapd_conf(), &["--cyrus-conf", &c]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(local(&report, "chan2", "cyrus_conf")["status"], "warn");
    assert_eq!(local(&report, "", "cyrus_conf")["status"], "ok");
}

#[test]
fn configuration_errors_keep_exit_78_also_with_json() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("imapd.conf");
    std::fs::write(&conf, "configdirectory: /var/imap\nsync_log: Yes\n").unwrap();
    let run = check(&conf, &["--json"]);
    assert_eq!(run.code, 78, "{}{}", run.stdout, run.stderr);
    let parsed: Json = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(parsed["ok"], false);
    assert!(
        parsed["config_error"]
            .as_str()
            .unwrap()
            .contains("sync_log"),
        "{parsed}"
    );
    assert!(run.stderr.contains("configuration error"), "{}", run.stderr);
}
