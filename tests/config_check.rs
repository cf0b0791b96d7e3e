//! `cyrsync check --config-only` on fixture files: every invalid fixture gives its
//! `file:line` error and exit status 78; valid ones resolve as administrators expect.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use std::path::PathBuf;

use assert_cmd::Command;
use cyrsync::config::{ChannelName, ImapdConf, MasterReader, Settings};
use predicates::prelude::*;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/config")
        .join(name)
}

fn resolve(name: &str) -> Settings {
    Settings::resolve(&ImapdConf::load(&fixture(name)).unwrap(), &[]).unwrap()
}

fn check(name: &str) -> assert_cmd::assert::Assert {
    Command::cargo_bin("cyrsync")
        .unwrap()
        .args(["check", "--config-only", "-C"])
        .arg(fixture(name))
        .assert()
}

#[test]
fn invalid_fixtures_name_file_line_and_fix_and_exit_78() {
    // (fixture, line, words the message must contain)
    let cases: &[(&str, Option<usize>, &str)] = &[
        ("empty-value.conf", Some(3), "empty value for 'sync_host'"),
        ("duplicate.conf", Some(4), "specified twice (first at"),
        ("bad-key.conf", Some(3), "invalid option name"),
        ("space-before-colon.conf", Some(2), "invalid option name"),
        (
            "bad-switch.conf",
            Some(3),
            "invalid value 'Yes' for 'sync_log'",
        ),
        ("bad-duration.conf", Some(4), "'1.5m' for 'sync_timeout'"),
        ("bad-integer.conf", Some(4), "'8k' for 'sync_batchsize'"),
        ("bad-port.conf", Some(4), "nosuchservice-cyrsync"),
        ("bad-host-option.conf", Some(3), "unknown option '/ssl'"),
        (
            "missing-include.conf",
            Some(2),
            "cannot read configuration file",
        ),
        ("bad-directive.conf", Some(2), "invalid directive '@exec'"),
        (
            "no-configdirectory.conf",
            None,
            "'configdirectory' is not set",
        ),
        ("no-replica.conf", None, "no channel has a replica"),
        (
            "bad-enum.conf",
            Some(4),
            "'fast' for 'cyrsync_master_reader'",
        ),
        ("workers-range.conf", Some(4), "from 1 to 64"),
        ("bad-fingerprint.conf", Some(4), "SHA-256 fingerprint"),
    ];
    for (name, line, words) in cases {
        let path = fixture(&format!("invalid/{name}"));
        let mut expected = String::from(*words);
        if let Some(line) = line {
            expected = format!("{}:{line}: ", path.display());
        }
        let out = Command::cargo_bin("cyrsync")
            .unwrap()
            .args(["check", "--config-only", "-C"])
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{name}: {stderr}");
        assert!(
            stderr.contains(&expected),
            "{name}: missing {expected:?} in {stderr}"
        );
        assert!(
            stderr.contains(words),
            "{name}: missing {words:?} in {stderr}"
        );
        assert!(stderr.contains("fix: "), "{name}: no fix in {stderr}");
    }
}

#[test]
fn admin_master_config_resolves_to_one_channel() {
    let s = resolve("valid/master-admin.conf");
    assert!(s.sync_log, "`sync_log: true` is on");
    assert_eq!(s.log_channels, vec![ChannelName::DEFAULT]);
    let run = s.channels_to_run(&[]).unwrap();
    assert_eq!(run.len(), 1);
    let c = run[0];
    assert_eq!(c.log_path(), PathBuf::from("/var/imap/sync/log"));
    let replica = c.replica.as_ref().unwrap();
    assert_eq!(replica.endpoint.to_string(), "replica.server.jp");
    assert!(replica.try_imap, "sync_try_imap defaults to on");
    assert_eq!(replica.credentials.authname.as_deref(), Some("cyrus"));
    assert_eq!(
        replica.credentials.password.as_ref().unwrap().expose(),
        "s3cret"
    );
    // The source defaults to the master's loopback with the same credentials.
    assert_eq!(c.source.endpoint.to_string(), "127.0.0.1");
    assert_eq!(c.source.credentials, replica.credentials);
    assert_eq!(c.batch_size, 8192);
    assert_eq!(c.repeat_interval.as_secs(), 1);
    assert_eq!(c.timeout.as_secs(), 1800);
    assert_eq!(c.reconnect_maxwait.unwrap().as_secs(), 1200);
    assert_eq!(c.workers, 4);
    assert_eq!(c.master_reader, MasterReader::Auto);
    assert!(c.tls.verify && c.compress && !c.allow_plaintext);
    assert_eq!(s.control_socket, PathBuf::from("/var/imap/socket/cyrsync"));
}

#[test]
fn two_channels_resolve_prefix_over_global_over_default() {
    let s = resolve("valid/two-channels.conf");
    let default = s.channel(&ChannelName::DEFAULT).unwrap();
    let chan2 = s.channel(&ChannelName::new("chan2")).unwrap();
    let squatter = s.channel(&ChannelName::new("squatter")).unwrap();

    assert_eq!(
        default.replica.as_ref().unwrap().endpoint.to_string(),
        "replica-a.example:2005"
    );
    assert!(!default.replica.as_ref().unwrap().try_imap);
    assert_eq!(
        default.batch_size, 1024,
        "0x400 is read as C's strtol reads it"
    );
    assert_eq!(default.timeout.as_secs(), 600);

    let r2 = chan2.replica.as_ref().unwrap();
    assert_eq!(r2.endpoint.to_string(), "[::1]:22143");
    assert!(r2.try_imap);
    assert_eq!(r2.credentials.authname.as_deref(), Some("repl2"));
    assert_eq!(chan2.repeat_interval.as_secs(), 0);
    assert_eq!(chan2.workers, 8);
    assert_eq!(chan2.timeout.as_secs(), 600, "global sync_timeout applies");
    assert_eq!(
        chan2.log_path(),
        PathBuf::from("/var/lib/cyrus/sync/chan2/log")
    );
    assert_eq!(
        chan2.log_run_path(),
        PathBuf::from("/var/lib/cyrus/sync/chan2/log-run")
    );
    assert_eq!(chan2.source.endpoint.to_string(), "127.0.0.1:2005");

    // squatter inherits sync_host but has none of its own: run leaves it alone.
    assert!(squatter.replica.is_some() && !squatter.replica_is_own);
    let run: Vec<_> = s
        .channels_to_run(&[])
        .unwrap()
        .iter()
        .map(|c| c.name.clone())
        .collect();
    assert_eq!(run, vec![ChannelName::DEFAULT, ChannelName::new("chan2")]);
    // Named explicitly, it is replicated to the global sync_host.
    assert_eq!(
        s.channels_to_run(&[ChannelName::new("squatter")])
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn trailing_comment_is_kept_in_the_value_and_warned_about() {
    let s = resolve("valid/trailing-comment.conf");
    let c = s.channel(&ChannelName::DEFAULT).unwrap();
    let authname = c.replica.as_ref().unwrap().credentials.authname.as_deref();
    assert_eq!(authname, Some("cyrus # Cyrus IMAPd admin account"));
    let w = s
        .warnings
        .iter()
        .find(|w| w.message.contains("sync_authname"))
        .expect("a warning about the comment");
    assert_eq!(w.location.as_ref().unwrap().line, 4);
    check("valid/trailing-comment.conf")
        .success()
        .stdout(predicate::str::contains(
            "trailing-comment.conf:4: the value of sync_authname",
        ))
        .stdout(predicate::str::contains(
            "move the comment to a line of its own",
        ));
}

#[test]
fn channel_switch_yes_and_other_traps_are_warned_about() {
    let s = resolve("valid/channel-switch-yes.conf");
    let chan2 = s.channel(&ChannelName::new("chan2")).unwrap();
    assert!(
        chan2.replica.as_ref().unwrap().try_imap,
        "cyrsync reads yes as on"
    );
    let all: Vec<String> = s.warnings.iter().map(ToString::to_string).collect();
    let has = |needle: &str| all.iter().any(|w| w.contains(needle));
    assert!(
        has("reads 'chan2_sync_try_imap: yes' as a number and takes it as off"),
        "{all:#?}"
    );
    assert!(has("does not list \"\" but sync_host is set"), "{all:#?}");
    assert!(has("ignores 'chan2_sync_timeout'"), "{all:#?}");
    assert!(has("did you mean cyrsync_workers?"), "{all:#?}");
}

#[test]
fn passwords_are_masked_and_world_readable_password_files_warned() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("imapd.conf");
    std::fs::copy(fixture("valid/master-admin.conf"), &path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = Command::cargo_bin("cyrsync")
        .unwrap()
        .args(["check", "--config-only", "-C"])
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(!stdout.contains("s3cret"), "password leaked:\n{stdout}");
    assert!(stdout.contains("******** (set)"), "{stdout}");
    assert!(
        stdout.contains("readable by every user (mode 0644)"),
        "{stdout}"
    );

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    Command::cargo_bin("cyrsync")
        .unwrap()
        .args(["check", "--config-only", "-C"])
        .arg(&path)
        .assert()
        .success()
        .stdout(predicate::str::contains("readable by every user").not());
}

#[test]
fn check_shows_origin_of_each_value() {
    check("valid/two-channels.conf")
        .success()
        .stdout(predicate::str::contains(
            "channel chan2 (replicated by `cyrsync run`)",
        ))
        .stdout(predicate::str::contains(
            "two-channels.conf:13 (chan2_sync_host)",
        ))
        .stdout(predicate::str::contains(
            "channel squatter (not replicated by `cyrsync run`)",
        ))
        .stdout(predicate::str::contains("configuration OK"));
}

#[test]
fn missing_config_file_is_a_config_error() {
    Command::cargo_bin("cyrsync")
        .unwrap()
        .args(["check", "--config-only", "-C", "/nonexistent/imapd.conf"])
        .assert()
        .code(78)
        .stderr(predicate::str::contains(
            "cannot read configuration file /nonexistent/imapd.conf",
        ));
}

#[test]
fn unknown_channel_on_command_line_is_refused() {
    Command::cargo_bin("cyrsync")
        .unwrap()
        .args(["check", "--config-only", "-n", "nochan", "-C"])
        .arg(fixture("valid/channel-switch-yes.conf"))
        .assert()
        .success();
    // With no sync_host anywhere for it, a named channel is an error.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("imapd.conf");
    std::fs::write(
        &path,
        "configdirectory: /x\nsync_log: 1\nsync_log_channels: a\na_sync_host: h\n",
    )
    .unwrap();
    Command::cargo_bin("cyrsync")
        .unwrap()
        .args(["check", "--config-only", "-n", "b", "-C"])
        .arg(&path)
        .assert()
        .code(78)
        .stderr(predicate::str::contains("channel 'b' has no replica"));
}
