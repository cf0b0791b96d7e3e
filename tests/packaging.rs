//! The packaging stays in step with the code: the man page documents every key of
//! the catalogue (with its default and scope), every subcommand and option of the
//! command line and every rc.conf variable of the rc.d script; the shipped
//! imapd.conf snippets pass our own check and real Cyrus's `cyr_info conf-lint`,
//! and `cyrsync snippet NAME` prints the very bytes of `snippets/NAME.conf`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command as Process;

use assert_cmd::Command;
use clap::CommandFactory;
use cyrsync::cli::Cli;
use cyrsync::config::ImapdConf;
use cyrsync::config::keys::{self, KEYS, Owner, Scope};
use cyrsync::snippet::Snippet;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap()
}

fn man() -> String {
    read("man/cyrsync.8")
}

/// The lines of the `.It` entry whose head is exactly `head` (e.g. `.It Cm sync_log`,
/// with or without a trailing `Pq …`), up to the next `.It` or `.El`. Panics unless
/// exactly one entry has that head.
fn entry<'m>(man: &'m str, head: &str) -> (&'m str, Vec<&'m str>) {
    let lines: Vec<&str> = man.lines().collect();
    let starts: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| **l == head || l.strip_prefix(head).is_some_and(|r| r.starts_with(" Pq ")))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        starts.len(),
        1,
        "man page: expected one `{head}` entry, found {}",
        starts.len()
    );
    let start = starts[0];
    let body = lines[start + 1..]
        .iter()
        .take_while(|l| !l.starts_with(".It") && !l.starts_with(".El"))
        .copied()
        .collect();
    (lines[start], body)
}

#[test]
fn man_page_documents_every_key_with_default_and_scope() {
    let man = man();
    for k in KEYS {
        let (head, body) = entry(&man, &format!(".It Cm {}", k.name));
        let default = format!("Default: {}", k.default);
        assert!(
            body.contains(&default.as_str()),
            "man page: {} must say `{default}` on a line of its own",
            k.name
        );
        let per_channel = head.ends_with(" Pq per channel");
        assert_eq!(
            per_channel,
            k.scope == Scope::Channel,
            "man page: {} is {:?} in keys.rs; mark it `Pq per channel` exactly when it takes a channel prefix",
            k.name,
            k.scope
        );
        if k.owner == Owner::Cyrus && k.scope == Scope::Channel && !k.cyrus_reads_prefixed {
            assert!(
                body.contains(&"Cyrus's sync_client reads only the unprefixed key."),
                "man page: {} must say that sync_client reads only the unprefixed key",
                k.name
            );
        }
    }
}

#[test]
fn man_page_sections_follow_the_key_owners() {
    // Cyrus's keys, the reported ones and cyrsync's own each have their list.
    let man = man();
    for (section, owner) in [
        (".Ss Cyrus keys that cyrsync honours", Owner::Cyrus),
        (
            ".Ss Cyrus keys that cyrsync reports but leaves to Cyrus",
            Owner::CyrusReported,
        ),
        (".Ss cyrsync keys", Owner::Cyrsync),
    ] {
        let start = man
            .find(section)
            .unwrap_or_else(|| panic!("man page lacks `{section}`"));
        let list = &man[start..];
        let list = &list[..list.find("\n.El\n").unwrap()];
        let listed: Vec<&str> = list
            .lines()
            .filter_map(|l| l.strip_prefix(".It Cm "))
            .map(|l| l.split(' ').next().unwrap())
            .collect();
        let expected: Vec<&str> = KEYS
            .iter()
            .filter(|k| k.owner == owner)
            .map(|k| k.name)
            .collect();
        assert_eq!(listed, expected, "{section}: keys in keys.rs order");
    }
}

#[test]
fn man_page_documents_every_subcommand_and_option() {
    let man = man();
    let synopsis = &man[man.find(".Sh SYNOPSIS").unwrap()..man.find(".Sh DESCRIPTION").unwrap()];
    let cli = Cli::command();
    // The designed command line (DESIGN.md §4) is documented even before every
    // command is built; the built ones come from clap and cannot be forgotten.
    let mut commands: Vec<String> = ["run", "sync", "status", "tui", "check", "verify", "snippet"]
        .iter()
        .map(ToString::to_string)
        .collect();
    for sub in cli.get_subcommands() {
        if !commands.iter().any(|c| c == sub.get_name()) {
            commands.push(sub.get_name().to_string());
        }
    }
    for name in &commands {
        assert!(
            synopsis.lines().any(|l| l == format!(".Cm {name}")),
            "man page SYNOPSIS lacks `.Cm {name}`"
        );
        let head = format!(".It Cm {name}");
        assert!(
            man.lines()
                .any(|l| l == head || l.starts_with(&format!("{head} "))),
            "man page Commands list lacks `{head}`"
        );
    }
    let mut args: Vec<&clap::Arg> = cli.get_arguments().collect();
    for sub in cli.get_subcommands() {
        args.extend(sub.get_arguments());
    }
    for arg in args {
        if let Some(long) = arg.get_long() {
            assert!(
                man.contains(&format!("Fl -{long}")),
                "man page lacks `Fl -{long}`"
            );
        }
        if let Some(short) = arg.get_short() {
            assert!(
                man.contains(&format!("Fl {short}")),
                "man page lacks `Fl {short}`"
            );
        }
    }
    for s in Snippet::ALL {
        let value = s.file_name().trim_end_matches(".conf");
        assert!(
            man.lines().any(|l| l == format!(".It Cm {value}")),
            "man page does not describe `cyrsync snippet {value}`"
        );
    }
}

#[test]
fn man_page_documents_every_rc_conf_variable() {
    let man = man();
    let rc = read("rc.d/cyrsync.in");
    let vars: Vec<&str> = rc
        .lines()
        .filter_map(|l| l.strip_prefix(": \"${"))
        .map(|l| l.split([':', '=']).next().unwrap())
        .collect();
    assert!(
        vars.contains(&"cyrsync_enable") && vars.contains(&"cyrsync_config"),
        "{vars:?}"
    );
    for v in vars {
        assert!(
            man.lines().any(|l| l == format!(".It Va {v}")),
            "man page lacks the rc.conf variable `.It Va {v}`"
        );
        assert!(
            rc.contains(&format!("# {v} (")),
            "rc.d/cyrsync.in header lacks `# {v} (`"
        );
    }
}

#[test]
fn snippet_command_prints_the_files_byte_for_byte() {
    let files: Vec<String> = std::fs::read_dir(repo("snippets"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(files.len(), Snippet::ALL.len(), "snippets/ holds {files:?}");
    for s in Snippet::ALL {
        let name = s.file_name().trim_end_matches(".conf");
        let out = Command::cargo_bin("cyrsync")
            .unwrap()
            .args(["snippet", name])
            .output()
            .unwrap();
        assert!(out.status.success(), "cyrsync snippet {name}: {out:?}");
        assert_eq!(
            out.stdout,
            std::fs::read(repo("snippets").join(s.file_name())).unwrap(),
            "cyrsync snippet {name} differs from snippets/{}",
            s.file_name()
        );
    }
    Command::cargo_bin("cyrsync")
        .unwrap()
        .args(["snippet", "nosuch"])
        .assert()
        .code(2);
}

/// Copies a snippet out of the tree with mode 0640, as an administrator would
/// install a file holding a password.
fn installed_copy(dir: &Path, s: Snippet) -> PathBuf {
    let path = dir.join(s.file_name());
    std::fs::write(&path, s.text()).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    path
}

#[test]
fn master_side_snippets_pass_our_check_without_warnings() {
    let dir = tempfile::tempdir().unwrap();
    for s in [Snippet::Master, Snippet::Channels, Snippet::Tls] {
        let path = installed_copy(dir.path(), s);
        let out = Command::cargo_bin("cyrsync")
            .unwrap()
            .arg("-C")
            .arg(&path)
            .args(["check", "--config-only"])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}: {stdout}{}",
            s.file_name(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("\nno warnings\n"),
            "{}: {stdout}",
            s.file_name()
        );
        assert!(
            stdout.contains("replicated by `cyrsync run`"),
            "{}: {stdout}",
            s.file_name()
        );
    }
    // channels.conf replicates both of its channels.
    let path = installed_copy(dir.path(), Snippet::Channels);
    let out = Command::cargo_bin("cyrsync")
        .unwrap()
        .arg("-C")
        .arg(&path)
        .args(["check", "--config-only"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.matches("(replicated by `cyrsync run`)").count(),
        2,
        "{stdout}"
    );
}

#[test]
fn replica_snippet_parses_and_names_no_replica_of_its_own() {
    // The replica's imapd.conf has no sync_host: cyrsync has nothing to run there
    // and says so with EX_CONFIG, while the file itself parses.
    let dir = tempfile::tempdir().unwrap();
    let path = installed_copy(dir.path(), Snippet::Replica);
    ImapdConf::load(&path).unwrap();
    Command::cargo_bin("cyrsync")
        .unwrap()
        .arg("-C")
        .arg(&path)
        .args(["check", "--config-only"])
        .assert()
        .code(78)
        .stderr(predicates::str::contains("no channel has a replica"));
}

/// True for keys cyr_info may call unknown: cyrsync's own, with or without a
/// channel prefix.
fn is_cyrsync_key(key: &str) -> bool {
    keys::lookup(key).is_some_and(|k| k.owner == Owner::Cyrsync)
        || keys::split_channel_prefix(key).is_some_and(|(_, k)| k.owner == Owner::Cyrsync)
}

#[test]
fn real_cyrus_accepts_every_snippet() {
    let cyr_info = support::pair::cyrus_bin("cyr_info");
    let dir = tempfile::tempdir().unwrap();
    // cyr_info reads cyrus.conf for service names; an empty SERVICES will do.
    let cyrus_conf = dir.path().join("cyrus.conf");
    std::fs::write(&cyrus_conf, "SERVICES {\n}\n").unwrap();
    for s in Snippet::ALL {
        let path = installed_copy(dir.path(), s);
        let out = Process::new(&cyr_info)
            .arg("-C")
            .arg(&path)
            .arg("-M")
            .arg(&cyrus_conf)
            .arg("conf-lint")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "cyr_info conf-lint rejects {}: {}{stdout}",
            s.file_name(),
            String::from_utf8_lossy(&out.stderr)
        );
        for line in stdout.lines() {
            let key = line.split(':').next().unwrap();
            assert!(
                is_cyrsync_key(key),
                "{}: Cyrus does not know `{line}`",
                s.file_name()
            );
        }
    }
    // The check can fail: a Cyrus key misspelt is reported.
    let bad = dir.path().join("bad.conf");
    std::fs::write(&bad, "configdirectory: /var/imap\nsync_hots: r.example\n").unwrap();
    let out = Process::new(&cyr_info)
        .arg("-C")
        .arg(&bad)
        .arg("-M")
        .arg(&cyrus_conf)
        .arg("conf-lint")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("sync_hots"),
        "{out:?}"
    );
}

#[test]
fn port_copies_are_the_sources() {
    for (source, copy) in [
        ("rc.d/cyrsync.in", "port/mail/cyrsync/files/cyrsync.in"),
        ("pkg-descr", "port/mail/cyrsync/pkg-descr"),
    ] {
        assert_eq!(
            read(source),
            read(copy),
            "{copy} differs from {source}: cp {source} {copy}"
        );
    }
}

#[test]
fn pkg_descr_fits_80_columns() {
    for (i, line) in read("pkg-descr").lines().enumerate() {
        assert!(
            line.chars().count() <= 80,
            "pkg-descr:{}: {} columns",
            i + 1,
            line.chars().count()
        );
        assert!(
            !line.starts_with("WWW:"),
            "WWW belongs in the port Makefile"
        );
    }
}

/// A stand-in for FreeBSD's /etc/rc.subr, enough to run one command of the rc.d
/// script the way `run_rc_command` does: `${cmd}_precmd`, then `${cmd}_cmd`.
const RC_SUBR_STUB: &str = r#"
load_rc_config() { :; }
warn() { echo "$name: WARNING: $*" >&2; }
run_rc_command() {
	eval "_pre=\$${1}_precmd _cmd=\$${1}_cmd"
	if [ -n "$_pre" ]; then $_pre || return 1; fi
	$_cmd
}
"#;

/// Runs `rc.d/cyrsync.in COMMAND` with the stub rc.subr, %%PREFIX%% pointing at a
/// tree whose bin/cyrsync is the binary under test, as the current user.
fn run_rc_script(dir: &Path, command: &str, config: &Path) -> std::process::Output {
    let prefix = dir.join("prefix");
    std::fs::create_dir_all(prefix.join("bin")).unwrap();
    let bin = prefix.join("bin/cyrsync");
    if !bin.exists() {
        std::os::unix::fs::symlink(assert_cmd::cargo::cargo_bin("cyrsync"), &bin).unwrap();
    }
    let stub = dir.join("rc.subr");
    std::fs::write(&stub, RC_SUBR_STUB).unwrap();
    let script = read("rc.d/cyrsync.in")
        .replace("%%PREFIX%%", prefix.to_str().unwrap())
        .replace("%%CYRUS_USER%%", "cyrus")
        .replace(". /etc/rc.subr", &format!(". {}", stub.display()));
    let path = dir.join("cyrsync");
    std::fs::write(&path, script).unwrap();
    let me = String::from_utf8(Process::new("id").arg("-un").output().unwrap().stdout).unwrap();
    Process::new("sh")
        .arg(&path)
        .arg(command)
        .env("cyrsync_config", config)
        .env("cyrsync_user", me.trim())
        .output()
        .unwrap()
}

#[test]
fn rc_script_configtest_passes_a_good_config_and_refuses_a_broken_one() {
    let dir = tempfile::tempdir().unwrap();
    let good = installed_copy(dir.path(), Snippet::Master);
    let out = run_rc_script(dir.path(), "configtest", &good);
    assert!(out.status.success(), "{out:?}");
    assert!(
        out.stdout.is_empty() && out.stderr.is_empty(),
        "silent when fine: {out:?}"
    );

    let bad = dir.path().join("bad.conf");
    std::fs::write(
        &bad,
        format!(
            "{}sync_log: Yes\n",
            Snippet::Master.text().replace("sync_log: 1\n", "")
        ),
    )
    .unwrap();
    let out = run_rc_script(dir.path(), "configtest", &bad);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        stderr.contains("invalid value 'Yes' for 'sync_log'"),
        "{stderr}"
    );
    assert!(
        stderr.contains("configuration check failed (exit 78)"),
        "{stderr}"
    );

    // reload checks first too: with a broken config it never reaches the signal.
    let out = run_rc_script(dir.path(), "reload", &bad);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("configuration check failed"),
        "{stderr}"
    );
    assert!(!stderr.contains("not running"), "{stderr}");
}
