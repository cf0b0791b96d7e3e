//! One-shot commands over one channel: `cyrsync sync` (like `sync_client
//! -u/-m/-A`) and `cyrsync verify` (read-only comparison).

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::Path;
use std::process::Command as Process;
use std::time::Instant;

use crate::cache::TargetCache;
use crate::config::{ChannelConfig, ChannelName, ConfigError, ImapdConf, Settings};
use crate::dlist::{Command, Value};
use crate::engine::{CacheUse, Engine, EngineError, EngineOptions, SyncStats};
use crate::model::{MailboxState, UserState, diff_kvlists, mailboxes_from_responses};
use crate::proto::ProtoError;
use crate::proto::session::{ConnectOptions, Session};

/// Errors of a one-shot command before any work starts.
#[derive(Debug, thiserror::Error)]
pub enum OneShotError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The channel has no replica.
    #[error("channel {0} has no sync_host: nothing to replicate to")]
    NoReplica(ChannelName),
    /// A session could not be opened.
    #[error(transparent)]
    Proto(#[from] ProtoError),
    /// The master's mailbox list could not be read for `-A`.
    #[error("cannot list the master's users for -A: {0}")]
    ListUsers(String),
}

/// What to work on (`-A` is expanded into users with [`list_users`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// These users.
    Users(Vec<String>),
    /// These mailboxes.
    Mailboxes(Vec<String>),
}

impl Selection {
    /// How many items.
    pub fn len(&self) -> usize {
        match self {
            Selection::Users(v) | Selection::Mailboxes(v) => v.len(),
        }
    }

    /// True when there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Resolves the channel to use.
pub fn channel(config: &Path, name: Option<&str>) -> Result<ChannelConfig, OneShotError> {
    let conf = ImapdConf::load(config)?;
    let name = ChannelName::new(name.unwrap_or(""));
    let settings = Settings::resolve(&conf, std::slice::from_ref(&name))?;
    let ch = settings
        .channels
        .into_iter()
        .map(|c| c.config)
        .find(|c| c.name == name)
        .ok_or_else(|| OneShotError::NoReplica(name.clone()))?;
    if ch.replica.is_none() {
        return Err(OneShotError::NoReplica(name));
    }
    Ok(ch)
}

/// Opens the source and target sessions of a channel.
pub async fn open(ch: &ChannelConfig) -> Result<(Session, Session), OneShotError> {
    let target =
        ConnectOptions::replica(ch).ok_or_else(|| OneShotError::NoReplica(ch.name.clone()))?;
    let mut source = ConnectOptions::source(ch);
    // The master lists sieve scripts as the #sieve mailbox only when asked.
    source.enable_sieve_mailbox = true;
    let s = Session::connect(&source).await?;
    let t = Session::connect(&target).await?;
    Ok((s, t))
}

/// The userids owning a mailbox on the master, read with Cyrus's own
/// `ctl_mboxlist -d` (the protocol has no command listing users).
pub fn list_users(config: &Path) -> Result<Vec<String>, OneShotError> {
    let bin = cyrus_tool("ctl_mboxlist").ok_or_else(|| {
        OneShotError::ListUsers(
            "ctl_mboxlist not found; set CYRUS_BIN_DIR to Cyrus's bin directory".into(),
        )
    })?;
    let out = Process::new(&bin)
        .arg("-C")
        .arg(config)
        .arg("-d")
        .output()
        .map_err(|e| OneShotError::ListUsers(format!("{}: {e}", bin.display())))?;
    if !out.status.success() {
        return Err(OneShotError::ListUsers(format!(
            "{} -d failed: {}",
            bin.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let mut users = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = mailbox_of_dump_line(line) else {
            continue;
        };
        if let Some(user) = userid_of_inbox(&name)
            && !users.contains(&user)
        {
            users.push(user);
        }
    }
    Ok(users)
}

/// The mailbox name of one `ctl_mboxlist -d` line: Cyrus 3.6 prints a JSON
/// object per line (`"user.alice": {…},`), older versions `name<TAB>…`.
pub fn mailbox_of_dump_line(line: &str) -> Option<String> {
    let Some(rest) = line.strip_prefix('"') else {
        let name = line.split('\t').next()?;
        return (!name.is_empty() && !name.starts_with(['{', '}'])).then(|| name.to_string());
    };
    let mut out = String::new();
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(out),
            '\\' => match chars.next()? {
                'u' => {
                    let hex: String = chars.by_ref().take(4).collect();
                    out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                }
                'n' => out.push('\n'),
                't' => out.push('\t'),
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    None
}

/// `user.alice` → `alice`; `example.com!user.alice` → `alice@example.com`;
/// anything else (sub-folders, shared, `DELETED.`) → `None`.
pub fn userid_of_inbox(name: &str) -> Option<String> {
    let (domain, local) = match name.split_once('!') {
        Some((d, l)) => (Some(d), l),
        None => (None, name),
    };
    let user = local.strip_prefix("user.")?;
    if user.is_empty() || user.contains('.') {
        return None;
    }
    let user = user.replace('^', ".");
    Some(match domain {
        Some(d) => format!("{user}@{d}"),
        None => user,
    })
}

fn cyrus_tool(name: &str) -> Option<std::path::PathBuf> {
    let mut dirs: Vec<std::path::PathBuf> = Vec::new();
    if let Some(d) = std::env::var_os("CYRUS_BIN_DIR") {
        dirs.push(d.into());
    }
    for d in [
        "/usr/local/cyrus/bin",
        "/usr/lib/cyrus/bin",
        "/usr/libexec/cyrus-imapd",
        "/usr/lib/cyrus-imapd",
    ] {
        dirs.push(d.into());
    }
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

/// The outcome of `cyrsync sync`.
#[derive(Debug, Default)]
pub struct SyncReport {
    /// What was done.
    pub stats: SyncStats,
    /// Items that failed, with why.
    pub failures: Vec<(String, String)>,
    /// Items done.
    pub done: usize,
}

/// Runs `cyrsync sync`: each user or mailbox in turn; a failing one is
/// reported and the rest go on (sessions are reopened when broken).
///
/// The replica is always read (a manual run is how an administrator repairs
/// a replica); the channel's target-state cache is refreshed with what was
/// read and written, unless the daemon holds it.
pub async fn sync(
    ch: &ChannelConfig,
    items: Selection,
    progress: &mut dyn FnMut(&str),
) -> Result<SyncReport, OneShotError> {
    let (s, t) = open(ch).await?;
    let options = EngineOptions {
        batch_size: ch.batch_size as usize,
        ..EngineOptions::default()
    };
    let opened = TargetCache::open_channel(ch);
    for w in &opened.warnings {
        tracing::warn!("{w}");
    }
    let cache = opened.cache;
    let new_engine = |s, t| {
        let mut e = new_engine(s, t, &options, ch);
        if let Some(c) = &cache {
            e.set_cache(c.clone(), CacheUse::Refresh);
        }
        e
    };
    let mut engine = Some(new_engine(s, t));
    let mut report = SyncReport::default();
    let (kind, list) = match items {
        Selection::Users(u) => ("user", u),
        Selection::Mailboxes(m) => ("mailbox", m),
    };
    let total = list.len();
    for (i, item) in list.iter().enumerate() {
        progress(&format!("[{}/{total}] {kind} {item}", i + 1));
        let eng = match engine.as_mut() {
            Some(e) => e,
            None => {
                let (s, t) = open(ch).await?;
                engine.insert(new_engine(s, t))
            }
        };
        let result: Result<(), EngineError> = match kind {
            "user" => eng.sync_user(item).await,
            _ => eng.sync_mailboxes(std::slice::from_ref(item)).await,
        };
        match result {
            Ok(()) => report.done += 1,
            Err(e) => {
                let broken = e.breaks_sessions();
                report.failures.push((item.clone(), e.to_string()));
                if broken && let Some(e) = engine.take() {
                    accumulate(&mut report.stats, e.stats());
                }
            }
        }
    }
    if let Some(mut e) = engine {
        let _ = e.restart().await;
        accumulate(&mut report.stats, e.stats());
        e.close().await;
    }
    if let Some(c) = cache {
        let _ = tokio::task::spawn_blocking(move || c.flush()).await;
    }
    Ok(report)
}

fn accumulate(into: &mut SyncStats, from: &SyncStats) {
    into.mailboxes_checked += from.mailboxes_checked;
    into.mailboxes_updated += from.mailboxes_updated;
    into.mailboxes_created += from.mailboxes_created;
    into.renames += from.renames;
    into.deletes += from.deletes;
    into.messages_uploaded += from.messages_uploaded;
    into.bytes_uploaded += from.bytes_uploaded;
    into.messages_reserved += from.messages_reserved;
    into.applies += from.applies;
    into.crc_mismatches += from.crc_mismatches;
    into.copied_back += from.copied_back;
    into.full_reads.extend(from.full_reads.iter().cloned());
    into.local_reads += from.local_reads;
    into.local_fallbacks += from.local_fallbacks;
    into.listed_locally += from.listed_locally;
    into.local_bodies += from.local_bodies;
    into.cache_hits += from.cache_hits;
    into.cache_misses += from.cache_misses;
    into.cache_invalidations += from.cache_invalidations;
}

/// Human summary of a sync run.
pub fn render_sync(report: &SyncReport, elapsed: std::time::Duration) -> String {
    let s = &report.stats;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "synced {} item(s) in {:.2}s: {} mailbox(es) checked, {} updated ({} created, {} renamed, {} deleted), {} message(s) uploaded ({} bytes), {} found on the replica, {} APPLY command(s)",
        report.done,
        elapsed.as_secs_f64(),
        s.mailboxes_checked,
        s.mailboxes_updated,
        s.mailboxes_created,
        s.renames,
        s.deletes,
        s.messages_uploaded,
        s.bytes_uploaded,
        s.messages_reserved,
        s.applies
    );
    if s.crc_mismatches > 0 {
        let _ = writeln!(
            out,
            "{} CRC mismatch(es) met and repaired",
            s.crc_mismatches
        );
    }
    if s.copied_back > 0 {
        let _ = writeln!(
            out,
            "{} record(s) changed on the replica more recently were copied back to the master",
            s.copied_back
        );
    }
    if !s.full_reads.is_empty() {
        let slowest = s
            .full_reads
            .iter()
            .max_by_key(|(_, d)| *d)
            .map(|(n, d)| format!("{n} ({:.3}s)", d.as_secs_f64()))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{} full mailbox read(s) on the master; longest: {slowest}",
            s.full_reads.len()
        );
    }
    if s.local_reads + s.local_fallbacks > 0 {
        let _ = writeln!(
            out,
            "{} mailbox(es) read from the master's index files, {} left to GET FULLMAILBOX; {} message(s) read from its spool",
            s.local_reads, s.local_fallbacks, s.local_bodies
        );
    }
    if s.cache_hits + s.cache_misses + s.cache_invalidations > 0 {
        let _ = writeln!(
            out,
            "target-state cache: {} hit(s), {} miss(es), {} invalidated",
            s.cache_hits, s.cache_misses, s.cache_invalidations
        );
    }
    for (item, why) in &report.failures {
        let _ = writeln!(out, "FAILED {item}: {why}");
    }
    out
}

/// One difference found by `verify`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// The user or mailbox it concerns.
    pub scope: String,
    /// What differs.
    pub what: String,
}

/// Compares master and replica for the given users or mailboxes; writes
/// nothing to either side.
pub async fn verify(ch: &ChannelConfig, items: Selection) -> Result<Vec<Difference>, OneShotError> {
    let (mut s, mut t) = open(ch).await?;
    let mut diffs = Vec::new();
    match items {
        Selection::Users(users) => {
            for u in &users {
                verify_user(&mut s, &mut t, u, &mut diffs).await?;
            }
        }
        Selection::Mailboxes(names) => {
            let names: Vec<Value> = names.iter().map(|n| Value::atom(n.as_str())).collect();
            let cmd = || Command::get("MAILBOXES", Value::list(names.clone()));
            let m = mailboxes_from_responses(&s.command(cmd()).await?).unwrap_or_default();
            let r = mailboxes_from_responses(&t.command(cmd()).await?).unwrap_or_default();
            compare_mailboxes(&mut s, &mut t, &m, &r, &mut diffs).await?;
        }
    }
    s.close().await;
    t.close().await;
    Ok(diffs)
}

async fn verify_user(
    s: &mut Session,
    t: &mut Session,
    userid: &str,
    diffs: &mut Vec<Difference>,
) -> Result<(), OneShotError> {
    let get = || Command::get("USER", Value::atom(userid));
    let m = UserState::from_responses(&s.command(get()).await?).unwrap_or_default();
    let r = UserState::from_responses(&t.command(get()).await?).unwrap_or_default();
    let scope = format!("user {userid}");
    if !m.exists() && !r.exists() {
        diffs.push(Difference {
            scope,
            what: "no such user on either side".into(),
        });
        return Ok(());
    }
    compare_mailboxes(s, t, &m.mailboxes, &r.mailboxes, diffs).await?;
    let quotas_equal = m.quotas.len() == r.quotas.len()
        && m.quotas.iter().all(|(root, kv)| {
            r.quotas
                .iter()
                .any(|(rr, rkv)| rr == root && crate::model::quota_limits_equal(kv, rkv))
        });
    if !quotas_equal {
        diffs.push(Difference {
            scope: scope.clone(),
            what: format!("quota: master {:?}, replica {:?}", m.quotas, r.quotas),
        });
    }
    let (mut ms, mut rs) = (m.subscriptions.clone(), r.subscriptions.clone());
    ms.sort();
    rs.sort();
    if ms != rs {
        diffs.push(Difference {
            scope: scope.clone(),
            what: format!("subscriptions: master {ms:?}, replica {rs:?}"),
        });
    }
    for (uid, kv) in &m.seen {
        let theirs = r.seen.iter().find(|(u, _)| u == uid).map(|(_, k)| k);
        if theirs != Some(kv) {
            diffs.push(Difference {
                scope: scope.clone(),
                what: format!("seen state on {uid} differs"),
            });
        }
    }
    Ok(())
}

async fn compare_mailboxes(
    s: &mut Session,
    t: &mut Session,
    master: &[MailboxState],
    replica: &[MailboxState],
    diffs: &mut Vec<Difference>,
) -> Result<(), OneShotError> {
    for m in master {
        let scope = format!("mailbox {}", m.name());
        let Some(r) = replica.iter().find(|r| r.uniqueid() == m.uniqueid()) else {
            diffs.push(Difference {
                scope,
                what: "missing on the replica".into(),
            });
            continue;
        };
        if m.agrees_with(r) {
            continue;
        }
        for d in m.differences(r) {
            diffs.push(Difference {
                scope: scope.clone(),
                what: format!(
                    "{}: master {}, replica {}",
                    d.key,
                    d.master.as_deref().unwrap_or("(absent)"),
                    d.replica.as_deref().unwrap_or("(absent)")
                ),
            });
        }
        // Per-record detail.
        let full = |name: &str| Command::get("FULLMAILBOX", Value::atom(name));
        let mf = mailboxes_from_responses(&s.command(full(m.name())).await?).unwrap_or_default();
        let rf = mailboxes_from_responses(&t.command(full(r.name())).await?).unwrap_or_default();
        let (Some(mf), Some(rf)) = (mf.first(), rf.first()) else {
            continue;
        };
        let mr = mf.records().unwrap_or_default();
        let rr = rf.records().unwrap_or_default();
        for rec in &mr {
            match rr.iter().find(|x| x.uid == rec.uid) {
                None => diffs.push(Difference {
                    scope: scope.clone(),
                    what: format!("UID {} missing on the replica", rec.uid),
                }),
                // Both expunged: Cyrus freezes such a record on the replica.
                Some(x) if x.expunged && rec.expunged => {}
                Some(x) if x.value() != rec.value() => {
                    let detail = match (rec.value().as_kvlist(), x.value().as_kvlist()) {
                        (Some(a), Some(b)) => diff_kvlists(a, b)
                            .into_iter()
                            .map(|d| d.key)
                            .collect::<Vec<_>>()
                            .join(", "),
                        _ => "record".into(),
                    };
                    diffs.push(Difference {
                        scope: scope.clone(),
                        what: format!("UID {} differs in {detail}", rec.uid),
                    });
                }
                Some(_) => {}
            }
        }
        for x in &rr {
            if !mr.iter().any(|r| r.uid == x.uid) {
                diffs.push(Difference {
                    scope: scope.clone(),
                    what: format!("UID {} exists only on the replica", x.uid),
                });
            }
        }
    }
    for r in replica {
        if !master.iter().any(|m| m.uniqueid() == r.uniqueid()) {
            diffs.push(Difference {
                scope: format!("mailbox {}", r.name()),
                what: "exists only on the replica".into(),
            });
        }
    }
    Ok(())
}

/// Renders `verify` results as text or JSON.
pub fn render_verify(diffs: &[Difference], json: bool, checked: usize) -> String {
    if json {
        let items: Vec<String> = diffs
            .iter()
            .map(|d| {
                format!(
                    "{{\"scope\":{},\"difference\":{}}}",
                    json_string(&d.scope),
                    json_string(&d.what)
                )
            })
            .collect();
        return format!(
            "{{\"checked\":{checked},\"equal\":{},\"differences\":[{}]}}\n",
            diffs.is_empty(),
            items.join(",")
        );
    }
    if diffs.is_empty() {
        return format!("master and replica agree ({checked} item(s) compared)\n");
    }
    let mut out = String::new();
    for d in diffs {
        let _ = writeln!(out, "{}: {}", d.scope, d.what);
    }
    let _ = writeln!(out, "{} difference(s) in {checked} item(s)", diffs.len());
    out
}

/// A JSON string literal.
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Whether to draw progress in place (a terminal) or print lines.
pub fn progress_printer() -> impl FnMut(&str) {
    let tty = std::io::stderr().is_terminal();
    let started = Instant::now();
    move |line: &str| {
        if tty {
            eprint!("\r\x1b[K{line} ({:.1}s)", started.elapsed().as_secs_f64());
        } else {
            eprintln!("{line}");
        }
    }
}

/// An engine reading the master's index files where it can.
fn new_engine(
    s: crate::proto::session::Session,
    t: crate::proto::session::Session,
    options: &EngineOptions,
    ch: &ChannelConfig,
) -> Engine {
    let mut engine = Engine::new(s, t, options.clone());
    if let Some(reader) = crate::source::local::LocalReader::for_channel(ch) {
        engine.set_local_reader(reader);
    }
    engine
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbox_names_to_userids() {
        assert_eq!(userid_of_inbox("user.alice").as_deref(), Some("alice"));
        assert_eq!(userid_of_inbox("user.a^b").as_deref(), Some("a.b"));
        assert_eq!(
            userid_of_inbox("example.com!user.bob").as_deref(),
            Some("bob@example.com")
        );
        assert_eq!(userid_of_inbox("user.alice.Sent"), None);
        assert_eq!(userid_of_inbox("shared.x"), None);
        assert_eq!(userid_of_inbox("DELETED.user.alice.6B11"), None);
    }

    #[test]
    fn dump_lines_of_both_formats() {
        assert_eq!(
            mailbox_of_dump_line(r#""user.alice": {"name": "user.alice"},"#).as_deref(),
            Some("user.alice")
        );
        assert_eq!(
            mailbox_of_dump_line(r#""user.bob.quote\"d \u00e9": {}"#).as_deref(),
            Some("user.bob.quote\"d é")
        );
        assert_eq!(mailbox_of_dump_line("{"), None);
        assert_eq!(
            mailbox_of_dump_line("user.alice\tdefault\talice lrs").as_deref(),
            Some("user.alice")
        );
    }

    #[test]
    fn json_escaping() {
        assert_eq!(json_string("a\"b\\c\n\u{1}é"), "\"a\\\"b\\\\c\\n\\u0001é\"");
    }
}
