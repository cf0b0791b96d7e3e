//! The part of `cyrsync check` that looks at this host: can `cyrsync_user`
//! take over the channel's sync log, and is Cyrus's own `sync_client` still
//! configured to consume it.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Group, Uid, User};

use super::{Status, Step};
use crate::config::{ChannelConfig, ChannelName, ImapdConf};

/// A `sync_client` that Cyrus's master starts, found in cyrus.conf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncClientEntry {
    /// 1-based line in cyrus.conf.
    pub line: usize,
    /// The entry's name (`syncclient`).
    pub name: String,
    /// `START`, `SERVICES`, `EVENTS` or `DAEMON`.
    pub section: String,
    /// The `cmd=` value.
    pub cmd: String,
    /// The channel of `-n`, else the default channel.
    pub channel: ChannelName,
    /// `-r` or `-R`: rolling replication, the mode cyrsync replaces.
    pub rolling: bool,
    /// The imapd.conf of `-C`, when given.
    pub config: Option<PathBuf>,
}

/// What cyrus.conf says about `sync_client`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CyrusConf {
    /// The file does not exist.
    Missing,
    /// The file exists but cannot be read.
    Unreadable(String),
    /// The entries that run `sync_client`.
    Read(Vec<SyncClientEntry>),
}

/// Reads `path` and lists its `sync_client` entries.
pub fn find_sync_clients(path: &Path) -> CyrusConf {
    match std::fs::read_to_string(path) {
        Ok(text) => CyrusConf::Read(parse_cyrus_conf(&text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => CyrusConf::Missing,
        Err(e) => CyrusConf::Unreadable(e.to_string()),
    }
}

/// The entries of a cyrus.conf whose `cmd=` runs `sync_client`. A simple
/// reading: one entry per line, `#` comments, `NAME {` opens a section.
pub fn parse_cyrus_conf(text: &str) -> Vec<SyncClientEntry> {
    let mut section = String::new();
    let mut found = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_suffix('{') {
            section = name.trim().to_ascii_uppercase();
            continue;
        }
        if line == "}" {
            section.clear();
            continue;
        }
        let Some(cmd) = cmd_value(line) else {
            continue;
        };
        let words: Vec<&str> = cmd.split_whitespace().collect();
        let Some(at) = words
            .iter()
            .position(|w| w.rsplit('/').next() == Some("sync_client"))
        else {
            continue;
        };
        let (rolling, channel, config) = sync_client_options(&words[at + 1..]);
        found.push(SyncClientEntry {
            line: i + 1,
            name: line.split_whitespace().next().unwrap_or("").to_string(),
            section: section.clone(),
            cmd,
            channel,
            rolling,
            config,
        });
    }
    found
}

fn cmd_value(line: &str) -> Option<String> {
    let at = line.find("cmd=")?;
    let rest = &line[at + 4..];
    if let Some(quoted) = rest.strip_prefix('"') {
        Some(quoted.split('"').next().unwrap_or("").to_string())
    } else {
        Some(rest.split_whitespace().next().unwrap_or("").to_string())
    }
}

/// sync_client 3.6's options (getopt `C:vlLS:F:f:w:t:d:n:rRumsozOA1p:`).
pub(crate) fn sync_client_options(args: &[&str]) -> (bool, ChannelName, Option<PathBuf>) {
    const WITH_VALUE: &str = "CSFfwtdnp";
    let mut rolling = false;
    let mut channel = ChannelName::DEFAULT;
    let mut config = None;
    let mut i = 0;
    while i < args.len() {
        let Some(flags) = args[i].strip_prefix('-').filter(|f| !f.is_empty()) else {
            break;
        };
        for (k, c) in flags.char_indices() {
            if WITH_VALUE.contains(c) {
                let value = if k + 1 < flags.len() {
                    flags[k + 1..].to_string()
                } else {
                    i += 1;
                    args.get(i).map(|s| s.to_string()).unwrap_or_default()
                };
                match c {
                    'n' => channel = ChannelName::new(&value),
                    'C' => config = Some(PathBuf::from(value)),
                    _ => {}
                }
                break;
            }
            if c == 'r' || c == 'R' {
                rolling = true;
            }
        }
        i += 1;
    }
    (rolling, channel, config)
}

/// Whether Cyrus's own rolling `sync_client` runs on this channel now
/// (`cyrsync run` refuses the channel while it does).
pub fn sync_client_process_step(channel: &ChannelConfig) -> Step {
    let check = "sync_client_process";
    let running = super::rival::running_sync_clients(&channel.imapd_conf, &channel.name);
    match running.first() {
        None => Step::new(
            check,
            Status::Ok,
            "no rolling sync_client runs on this channel".to_string(),
        ),
        Some(r) => fail(
            check,
            format!(
                "Cyrus's sync_client (pid {}: `{}`) replicates this channel from the same sync log",
                r.pid, r.command
            ),
            "sync_client_running",
            "remove its entry from cyrus.conf (usually `syncclient` in START), stop it, then start cyrsync; cyrsync run refuses the channel meanwhile",
        ),
    }
}

/// The cyrus.conf step of one channel.
pub fn sync_client_step(
    channel: &ChannelConfig,
    path: &Path,
    given: bool,
    found: &CyrusConf,
) -> Step {
    let check = "cyrus_conf";
    let entries = match found {
        CyrusConf::Missing if !given => {
            return Step::new(
                check,
                Status::Info,
                format!(
                    "no cyrus.conf beside imapd.conf ({}); not checked for a leftover sync_client (name it with --cyrus-conf)",
                    path.display()
                ),
            );
        }
        CyrusConf::Missing => {
            return warn(
                check,
                format!("{} does not exist", path.display()),
                "sync_client_unknown",
                "give the cyrus.conf Cyrus's master reads (master -M), usually /usr/local/etc/cyrus.conf or /etc/cyrus.conf",
            );
        }
        CyrusConf::Unreadable(e) => {
            return warn(
                check,
                format!("cannot read {}: {e}", path.display()),
                "sync_client_unknown",
                "run cyrsync check as root, or as a user that may read cyrus.conf",
            );
        }
        CyrusConf::Read(entries) => entries,
    };
    let ours: Vec<&SyncClientEntry> = entries
        .iter()
        .filter(|e| e.rolling && e.channel == channel.name)
        .collect();
    if ours.is_empty() {
        return Step::new(
            check,
            Status::Ok,
            format!(
                "no rolling sync_client for this channel in {}",
                path.display()
            ),
        );
    }
    let mut detail = String::from(
        "Cyrus's own rolling replication is still configured for this channel (a heuristic reading of cyrus.conf):",
    );
    for e in &ours {
        detail.push_str(&format!(
            "\n{}:{}: {}{} cmd=\"{}\"",
            path.display(),
            e.line,
            if e.section.is_empty() {
                String::new()
            } else {
                format!("{} ", e.section)
            },
            e.name,
            e.cmd
        ));
        if let Some(c) = &e.config
            && !same_file(c, &channel.imapd_conf)
        {
            detail.push_str(&format!(" (it reads {}, not this imapd.conf)", c.display()));
        }
    }
    warn(
        check,
        detail,
        "sync_client_configured",
        format!(
            "remove that entry from cyrus.conf and restart Cyrus, so that sync_client and cyrsync do not both consume {}; entries it had not replicated stay in the log and cyrsync replays them",
            channel.log_path().display()
        ),
    )
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

fn warn(check: &'static str, detail: String, cause: &str, hint: impl Into<String>) -> Step {
    Step {
        check,
        status: Status::Warn,
        detail,
        cause: Some(cause.to_string()),
        hint: Some(hint.into()),
    }
}

fn fail(check: &'static str, detail: String, cause: &str, hint: impl Into<String>) -> Step {
    Step {
        check,
        status: Status::Fail,
        detail,
        cause: Some(cause.to_string()),
        hint: Some(hint.into()),
    }
}

/// The account a permission check is made for.
struct Account {
    name: String,
    uid: Uid,
    groups: Vec<Gid>,
}

impl Account {
    fn lookup(name: &str) -> Option<Account> {
        let user = User::from_name(name).ok()??;
        let groups = std::ffi::CString::new(name)
            .ok()
            .and_then(|c| nix::unistd::getgrouplist(&c, user.gid).ok())
            .unwrap_or_else(|| vec![user.gid]);
        Some(Account {
            name: name.to_string(),
            uid: user.uid,
            groups,
        })
    }

    /// Whether the mode bits grant all of `want` (4 read, 2 write, 1 search).
    fn may(&self, meta: &std::fs::Metadata, want: u32) -> bool {
        if self.uid.is_root() {
            return true;
        }
        let mode = meta.permissions().mode();
        let bits = if meta.uid() == self.uid.as_raw() {
            mode >> 6
        } else if self.groups.iter().any(|g| g.as_raw() == meta.gid()) {
            mode >> 3
        } else {
            mode
        };
        bits & want == want
    }
}

/// `owner:group 0750`.
fn ownership(meta: &std::fs::Metadata) -> String {
    let user = User::from_uid(Uid::from_raw(meta.uid()))
        .ok()
        .flatten()
        .map_or_else(|| meta.uid().to_string(), |u| u.name);
    let group = Group::from_gid(Gid::from_raw(meta.gid()))
        .ok()
        .flatten()
        .map_or_else(|| meta.gid().to_string(), |g| g.name);
    format!("{user}:{group} {:04o}", meta.permissions().mode() & 0o7777)
}

/// Can `user` (`cyrsync_user`) take over the channel's sync log: search the
/// directories above it, create and rename `log`/`log-run` in it, read and
/// write the files there. Judged from owner, group and mode bits only (no
/// ACLs, no read-only mounts); nothing is renamed or created.
pub fn sync_log_dir(channel: &ChannelConfig, user: &str) -> Step {
    let check = "sync_log";
    let dir = &channel.log_dir;
    let Some(account) = Account::lookup(user) else {
        return fail(
            check,
            format!("the user {user} (cyrsync_user) does not exist on this host"),
            "no_such_user",
            "set cyrsync_user to the user Cyrus runs as (usually cyrus)",
        );
    };
    let who = &account.name;
    // Every existing directory above must be searchable.
    let mut existing = dir.as_path();
    while !existing.exists() {
        match existing.parent() {
            Some(p) => existing = p,
            None => break,
        }
    }
    for ancestor in existing.ancestors().collect::<Vec<_>>().into_iter().rev() {
        let Ok(meta) = std::fs::metadata(ancestor) else {
            continue;
        };
        if meta.is_dir() && !account.may(&meta, 1) {
            return fail(
                check,
                format!(
                    "{who} cannot enter {} ({})",
                    ancestor.display(),
                    ownership(&meta)
                ),
                "log_dir_not_accessible",
                format!(
                    "let {who} search it: chmod o+x {} (or make it group {who}'s)",
                    ancestor.display()
                ),
            );
        }
    }
    if existing != dir.as_path() {
        let Ok(meta) = std::fs::metadata(existing) else {
            return fail(
                check,
                format!("{} does not exist", dir.display()),
                "log_dir_missing",
                "check configdirectory",
            );
        };
        if !account.may(&meta, 3) {
            return fail(
                check,
                format!(
                    "{} does not exist yet, and {who} cannot create it in {} ({})",
                    dir.display(),
                    existing.display(),
                    ownership(&meta)
                ),
                "log_dir_not_writable",
                format!(
                    "chown {who} {} (Cyrus's configdirectory belongs to the user Cyrus runs as)",
                    existing.display()
                ),
            );
        }
        return Step::new(
            check,
            Status::Ok,
            format!(
                "{} does not exist yet: Cyrus creates it at the first change, cyrsync when it starts; {who} may create it in {} ({})",
                dir.display(),
                existing.display(),
                ownership(&meta)
            ),
        );
    }
    let Ok(meta) = std::fs::metadata(dir) else {
        return fail(
            check,
            format!("cannot read {}", dir.display()),
            "log_dir_not_accessible",
            "run cyrsync check as root",
        );
    };
    if !meta.is_dir() {
        return fail(
            check,
            format!("{} is not a directory", dir.display()),
            "log_dir_missing",
            "it must be the directory Cyrus writes the channel's log in",
        );
    }
    if !account.may(&meta, 3) {
        return fail(
            check,
            format!(
                "{who} cannot create or rename files in {} ({})",
                dir.display(),
                ownership(&meta)
            ),
            "log_dir_not_writable",
            format!(
                "chown {who} {} (Cyrus creates it as the user it runs as, mode 0700), or set cyrsync_user to that user",
                dir.display()
            ),
        );
    }
    let mut detail = format!(
        "{} ({}): {who} may create, rename and remove log and log-run there",
        dir.display(),
        ownership(&meta)
    );
    let sticky = meta.permissions().mode() & 0o1000 != 0;
    for name in ["log", "log-run", "cyrsync.lock"] {
        let file = dir.join(name);
        let Ok(fm) = std::fs::symlink_metadata(&file) else {
            continue;
        };
        if !account.may(&fm, 6) {
            return fail(
                check,
                format!(
                    "{} ({}): {who} cannot read and write it",
                    file.display(),
                    ownership(&fm)
                ),
                "log_not_writable",
                format!(
                    "chown {who} {} (Cyrus writes it as the user it runs as, mode 0600)",
                    file.display()
                ),
            );
        }
        if sticky && fm.uid() != account.uid.as_raw() && meta.uid() != account.uid.as_raw() {
            return fail(
                check,
                format!(
                    "{} is sticky and {} belongs to someone else: {who} may not rename it",
                    dir.display(),
                    file.display()
                ),
                "log_not_writable",
                format!("chown {who} {}", file.display()),
            );
        }
        detail.push_str(&format!("\n{name}: {}", ownership(&fm)));
    }
    Step::new(check, Status::Ok, detail)
}

/// Owner and mode of the sasldb this host's imapd.conf names, for the hint
/// when the master says `generic failure`.
pub fn sasldb_facts(imapd_conf: &Path) -> Option<String> {
    let conf = ImapdConf::load(imapd_conf).ok()?;
    let path = conf
        .get("sasl_sasldb_path")
        .map(|e| PathBuf::from(&e.value))
        .unwrap_or_else(|| {
            PathBuf::from(if cfg!(target_os = "freebsd") {
                "/usr/local/etc/sasldb2.db"
            } else {
                "/etc/sasldb2"
            })
        });
    let Ok(meta) = std::fs::metadata(&path) else {
        return Some(format!("{} does not exist", path.display()));
    };
    let readable = Account::lookup("cyrus").map(|a| a.may(&meta, 4));
    Some(format!(
        "{} is {}{}",
        path.display(),
        ownership(&meta),
        match readable {
            Some(false) => ", which the cyrus user cannot read",
            Some(true) => ", readable by cyrus",
            None => "",
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_rolling_sync_clients_and_their_channels() {
        let conf = r#"
# syncclient cmd="sync_client -r"   (commented out)
START {
  recover cmd="ctl_cyrusdb -r"
  syncclient cmd="/usr/local/cyrus/bin/sync_client -r"
}
SERVICES {
  imap cmd="imapd" listen="imap" prefork=0
}
EVENTS {
  checkpoint cmd="ctl_cyrusdb -c" period=30
  nightly cmd="sync_client -A" at=0300
}
DAEMON {
  sync2 cmd="/usr/sbin/cyrus sync_client -C /etc/imapd.conf -v -R -n chan2"
  sync3 cmd="sync_client -rn dr"
}
"#;
        let found = parse_cyrus_conf(conf);
        let summary: Vec<(usize, &str, &str, bool, Option<&str>)> = found
            .iter()
            .map(|e| {
                (
                    e.line,
                    e.name.as_str(),
                    e.section.as_str(),
                    e.rolling,
                    e.channel.name(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (5, "syncclient", "START", true, None),
                (12, "nightly", "EVENTS", false, None),
                (15, "sync2", "DAEMON", true, Some("chan2")),
                (16, "sync3", "DAEMON", true, Some("dr")),
            ]
        );
        assert_eq!(found[2].config, Some(PathBuf::from("/etc/imapd.conf")));
    }

    #[test]
    fn mode_bits_decide() {
        let dir = tempfile::tempdir().unwrap();
        let meta = std::fs::metadata(dir.path()).unwrap();
        let me = Account {
            name: "me".into(),
            uid: Uid::from_raw(meta.uid()),
            groups: vec![Gid::from_raw(meta.gid())],
        };
        let stranger = Account {
            name: "other".into(),
            uid: Uid::from_raw(meta.uid().wrapping_add(12345).max(1)),
            groups: Vec::new(),
        };
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let meta = std::fs::metadata(dir.path()).unwrap();
        assert!(me.may(&meta, 3) || me.uid.is_root());
        assert!(!stranger.may(&meta, 1));
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
        let meta = std::fs::metadata(dir.path()).unwrap();
        assert!(stranger.may(&meta, 1) && !stranger.may(&meta, 3));
    }
}
