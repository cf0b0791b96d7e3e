//! The target-state cache (DESIGN.md §2 "or cached target state"): what each
//! replica mailbox looked like after cyrsync last wrote or read it, so that
//! rolling replication can skip `GET MAILBOXES`/`GET UNIQUEIDS` on the
//! replica — the role of `sync_cache_db` in Cyrus's `sync_client`, in a file
//! of our own (never Cyrus's).
//!
//! One embedded database per channel (redb, a single file at
//! `cyrsync_cache_path`) holds, per mailbox, the `MAILBOX` kvlist without
//! `RECORD` keyed by uniqueid, plus an index from name to uniqueid. The
//! engine decides when an entry may be believed; this module only keeps the
//! file sound:
//!
//! - A missing file is created; a file that cannot be read as a cache (garbage,
//!   another format, a database that fails to open) is renamed aside to
//!   `<file>.corrupt` and rebuilt, with a warning. Never fatal.
//! - A file held by another process (redb takes an exclusive lock: a one-shot
//!   `cyrsync sync` while the daemon runs) or not accessible means running
//!   without a cache, with one warning.
//! - A file written for another replica (the channel's `sync_host`/`sync_port`
//!   changed) is emptied: its entries describe a different server.
//! - Writes are committed without `fsync` and made durable by [`flush`]
//!   (after each log run, every few hundred writes, and on drop). Losing the
//!   last writes in a crash only costs misses or refused `SINCE_*` checks:
//!   every entry is a state the replica really had, and the engine never
//!   lets a cached state drive an unguarded write.
//! - Any database error later on turns the cache off for the rest of the
//!   process (one warning); replication goes on, reading the replica.
//!
//! [`flush`]: TargetCache::flush

use std::collections::BTreeSet;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use redb::{
    Database, DatabaseError, Durability, ReadableTable, ReadableTableMetadata, StorageError,
    TableDefinition, WriteTransaction,
};

use crate::config::ChannelConfig;
use crate::dlist::{Limits, LiteralStyle, Value, encode_value, parse_value};
use crate::model::MailboxState;

/// uniqueid → the mailbox's `MAILBOX` kvlist without `RECORD`, as DList text.
const MAILBOXES: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("mailboxes");
/// Internal mailbox name → uniqueid.
const NAMES: TableDefinition<'_, &str, &str> = TableDefinition::new("names");
/// `format` and `replica`.
const META: TableDefinition<'_, &str, &str> = TableDefinition::new("meta");

/// Written into every cache file; another value means another layout.
const FORMAT: &str = "cyrsync target-state cache 1";

/// redb's page cache: the file is small (a few hundred bytes per mailbox)
/// and the daemon's memory must stay flat, so a modest bound.
const PAGE_CACHE_BYTES: usize = 1 << 20;

/// Writes between two durable commits, besides the explicit flushes.
const FLUSH_EVERY: u32 = 512;

/// Why a cache file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// Another process holds the database (redb's exclusive file lock).
    #[error("{}: in use by another process (a running `cyrsync run`?)", path.display())]
    Busy {
        /// The cache file.
        path: PathBuf,
    },
    /// The file or its directory cannot be read or written.
    #[error("{}: {source}", path.display())]
    Access {
        /// The cache file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The file is not a usable cache (garbage, another format, damaged).
    #[error("{}: not a usable cache: {detail}", path.display())]
    Damaged {
        /// The cache file.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
}

/// A channel's target-state cache, shared by the workers of that channel.
///
/// Every operation goes through one long-lived write transaction, so reads
/// see the writes not yet committed; [`flush`](TargetCache::flush) commits
/// it durably. A commit per mailbox would cost an `fsync` each, and redb's
/// non-durable commits keep their pages until the next durable one (the
/// file grew by ~75 KB per write in a test).
#[derive(Debug)]
pub struct TargetCache {
    db: Database,
    path: PathBuf,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Turned off after a database error.
    disabled: bool,
    /// The open transaction, begun on first use after a commit.
    tx: Option<WriteTransaction>,
    /// Writes in `tx`.
    pending: u32,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("disabled", &self.disabled)
            .field("open", &self.tx.is_some())
            .field("pending", &self.pending)
            .finish()
    }
}

/// The outcome of opening a channel's cache: the cache, if usable, and what
/// the administrator should be told.
#[derive(Debug, Default)]
pub struct Opened {
    /// The cache; `None` means replicating without one.
    pub cache: Option<Arc<TargetCache>>,
    /// Warnings (file rebuilt, emptied, or not usable).
    pub warnings: Vec<String>,
}

/// A failed write transaction.
type Failure = String;

impl TargetCache {
    /// Opens the cache of `ch` at `cyrsync_cache_path`, rebuilding a damaged
    /// file; never fails — a cache that cannot be used is reported in
    /// [`Opened::warnings`] and replication runs without it.
    pub fn open_channel(ch: &ChannelConfig) -> Opened {
        let replica = ch
            .replica
            .as_ref()
            .map(|p| p.endpoint.to_string())
            .unwrap_or_default();
        match TargetCache::open(&ch.cache_path, &replica) {
            Ok((cache, warnings)) => Opened {
                cache: Some(Arc::new(cache)),
                warnings,
            },
            Err(e) => Opened {
                cache: None,
                warnings: vec![format!("replicating without the target-state cache: {e}")],
            },
        }
    }

    /// Opens (creating if needed) the cache at `path` for the replica named
    /// `replica` (`host:port`). A damaged file is moved to `<path>.corrupt`
    /// and rebuilt; a file for another replica is emptied. Returns the
    /// cache and warnings for the administrator.
    pub fn open(path: &Path, replica: &str) -> Result<(TargetCache, Vec<String>), CacheError> {
        let mut warnings = Vec::new();
        match Self::try_open(path, replica, &mut warnings) {
            Err(CacheError::Damaged { detail, .. }) => {
                let aside = aside_path(path);
                std::fs::rename(path, &aside).map_err(|source| CacheError::Access {
                    path: path.to_path_buf(),
                    source,
                })?;
                warnings.push(format!(
                    "target-state cache {} was unreadable ({detail}); moved to {} and rebuilt",
                    path.display(),
                    aside.display()
                ));
                let cache = Self::try_open(path, replica, &mut warnings)?;
                Ok((cache, warnings))
            }
            other => other.map(|c| (c, warnings)),
        }
    }

    fn try_open(
        path: &Path,
        replica: &str,
        warnings: &mut Vec<String>,
    ) -> Result<TargetCache, CacheError> {
        let existed = path.exists();
        let damaged = |detail: String| CacheError::Damaged {
            path: path.to_path_buf(),
            detail,
        };
        if !existed {
            // Mailbox names, ACLs and private annotations: readable by the
            // cyrus user only, as Cyrus's own files (redb fills the empty file).
            use std::os::unix::fs::OpenOptionsExt;
            let created = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path);
            match created {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(source) => {
                    return Err(CacheError::Access {
                        path: path.to_path_buf(),
                        source,
                    });
                }
            }
        }
        // redb checks what it reads, but a file of garbage must never take
        // the daemon down: a panic while opening counts as damage.
        let opened = catch_unwind(AssertUnwindSafe(|| {
            Database::builder()
                .set_cache_size(PAGE_CACHE_BYTES)
                .create(path)
        }))
        .map_err(|_| damaged("the database library panicked while opening it".into()))?;
        let db = opened.map_err(|e| open_error(path, e))?;
        if !existed {
            give_to_directory_owner(path);
        }
        let cache = TargetCache {
            db,
            path: path.to_path_buf(),
            state: Mutex::new(State::default()),
        };
        cache.check_meta(replica, warnings).map_err(damaged)?;
        Ok(cache)
    }

    /// Creates the tables, checks the format and the replica the entries
    /// describe; a durable commit.
    fn check_meta(&self, replica: &str, warnings: &mut Vec<String>) -> Result<(), Failure> {
        let mut tx = self.db.begin_write().map_err(|e| e.to_string())?;
        tx.set_durability(Durability::Immediate);
        tx.set_quick_repair(true);
        {
            let mut meta = tx.open_table(META).map_err(|e| e.to_string())?;
            let format = meta
                .get("format")
                .map_err(|e| e.to_string())?
                .map(|v| v.value().to_string());
            let was = meta
                .get("replica")
                .map_err(|e| e.to_string())?
                .map(|v| v.value().to_string());
            let mut mailboxes = tx.open_table(MAILBOXES).map_err(|e| e.to_string())?;
            let mut names = tx.open_table(NAMES).map_err(|e| e.to_string())?;
            match format.as_deref() {
                None if mailboxes.len().map_err(|e| e.to_string())? > 0 => {
                    return Err("entries without a format marker".into());
                }
                Some(f) if f != FORMAT => return Err(format!("format {f:?}, expected {FORMAT:?}")),
                _ => {}
            }
            if let Some(was) = was.filter(|w| w != replica) {
                let n = mailboxes.len().map_err(|e| e.to_string())?;
                mailboxes.retain(|_, _| false).map_err(|e| e.to_string())?;
                names.retain(|_, _| false).map_err(|e| e.to_string())?;
                warnings.push(format!(
                    "target-state cache {}: written for replica {was}, now {replica}; {n} entries dropped",
                    self.path.display()
                ));
            }
            meta.insert("format", FORMAT).map_err(|e| e.to_string())?;
            meta.insert("replica", replica).map_err(|e| e.to_string())?;
        }
        tx.commit().map_err(|e| e.to_string())
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on the tables of the open transaction (begun if needed).
    /// `writes` counts towards the next durable commit. `None` when the
    /// cache is off or fails (then it is turned off, with one warning).
    fn with_tables<T>(
        &self,
        what: &str,
        writes: bool,
        f: impl FnOnce(&mut MailboxTable<'_>, &mut NameTable<'_>) -> Result<T, Failure>,
    ) -> Option<T> {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if st.disabled {
            return None;
        }
        match Self::run(&self.db, &mut st, writes, f) {
            Ok(v) => Some(v),
            Err(e) => {
                st.disabled = true;
                // Dropping the transaction aborts what it held.
                st.tx = None;
                tracing::warn!(
                    "target-state cache {}: {what} failed ({e}); going on without the cache",
                    self.path.display()
                );
                None
            }
        }
    }

    fn run<T>(
        db: &Database,
        st: &mut State,
        writes: bool,
        f: impl FnOnce(&mut MailboxTable<'_>, &mut NameTable<'_>) -> Result<T, Failure>,
    ) -> Result<T, Failure> {
        let tx = match st.tx.take() {
            Some(tx) => tx,
            None => {
                let mut tx = db.begin_write().map_err(|e| e.to_string())?;
                tx.set_durability(Durability::Immediate);
                tx.set_quick_repair(true);
                tx
            }
        };
        let out = {
            let mut mailboxes = tx.open_table(MAILBOXES).map_err(|e| e.to_string())?;
            let mut names = tx.open_table(NAMES).map_err(|e| e.to_string())?;
            f(&mut mailboxes, &mut names)?
        };
        if writes {
            st.pending += 1;
        }
        if st.pending >= FLUSH_EVERY {
            tx.commit().map_err(|e| e.to_string())?;
            st.pending = 0;
        } else {
            st.tx = Some(tx);
        }
        Ok(out)
    }

    /// The cached state of each mailbox in `names` (same order); `None` when
    /// not cached, undecodable, or the cache is off.
    pub fn lookup_names(&self, names: &[String]) -> Vec<Option<MailboxState>> {
        let read = |mailboxes: &mut MailboxTable<'_>, by_name: &mut NameTable<'_>| {
            let mut out = Vec::with_capacity(names.len());
            for name in names {
                let Some(uid) = by_name.get(name.as_str()).map_err(|e| e.to_string())? else {
                    out.push(None);
                    continue;
                };
                let uid = uid.value().to_string();
                let state = mailboxes
                    .get(uid.as_str())
                    .map_err(|e| e.to_string())?
                    .and_then(|v| decode(v.value()))
                    // The index and the entry must tell the same story.
                    .filter(|s| s.uniqueid() == uid && s.name() == name);
                out.push(state);
            }
            Ok(out)
        };
        self.with_tables("reading", false, read)
            .unwrap_or_else(|| names.iter().map(|_| None).collect())
    }

    /// The cached state of the mailbox with `uniqueid`.
    pub fn lookup_uniqueid(&self, uniqueid: &str) -> Option<MailboxState> {
        self.with_tables("reading", false, |mailboxes, _| {
            Ok(mailboxes
                .get(uniqueid)
                .map_err(|e| e.to_string())?
                .and_then(|v| decode(v.value())))
        })
        .flatten()
    }

    /// Records that the replica's mailboxes now have these states (`RECORD`
    /// is left out). An entry under the same name with another uniqueid is
    /// dropped: a replica has one mailbox per name.
    pub fn store(&self, states: &[&MailboxState]) {
        if states.is_empty() {
            return;
        }
        self.with_tables("writing", true, |mailboxes, names| {
            for s in states {
                let Some(bytes) = encode(s) else { continue };
                let uid = s.uniqueid();
                let other = names
                    .get(s.name())
                    .map_err(|e| e.to_string())?
                    .map(|v| v.value().to_string())
                    .filter(|o| o != uid);
                if let Some(other) = other {
                    mailboxes
                        .remove(other.as_str())
                        .map_err(|e| e.to_string())?;
                }
                let previous = mailboxes
                    .insert(uid, bytes.as_slice())
                    .map_err(|e| e.to_string())?
                    .and_then(|v| decode(v.value()));
                if let Some(p) = previous.filter(|p| p.name() != s.name()) {
                    remove_name_if(names, p.name(), uid)?;
                }
                names.insert(s.name(), uid).map_err(|e| e.to_string())?;
            }
            Ok(())
        });
    }

    /// Drops the entries of these uniqueids and of whatever is cached under
    /// these names; returns how many entries went.
    pub fn forget(&self, uniqueids: &[&str], names: &[&str]) -> u64 {
        if uniqueids.is_empty() && names.is_empty() {
            return 0;
        }
        self.with_tables("dropping entries", true, |mailboxes, by_name| {
            let mut gone = 0;
            let mut uids: BTreeSet<String> = uniqueids.iter().map(|u| u.to_string()).collect();
            for n in names {
                if let Some(u) = by_name.remove(*n).map_err(|e| e.to_string())? {
                    uids.insert(u.value().to_string());
                }
            }
            for u in &uids {
                let removed = mailboxes
                    .remove(u.as_str())
                    .map_err(|e| e.to_string())?
                    .map(|v| decode(v.value()));
                if let Some(state) = removed {
                    gone += 1;
                    if let Some(s) = state {
                        remove_name_if(by_name, s.name(), u)?;
                    }
                }
            }
            Ok(gone)
        })
        .unwrap_or(0)
    }

    /// Drops the entries whose name is `exact` or starts with one of
    /// `prefixes`, unless their uniqueid is in `keep`; returns how many went.
    /// After a fresh read of a whole user, this removes what the replica no
    /// longer has.
    pub fn forget_names_under(
        &self,
        exact: &str,
        prefixes: &[String],
        keep: &BTreeSet<&str>,
    ) -> u64 {
        self.with_tables("dropping entries", true, |mailboxes, by_name| {
            let mut doomed: Vec<(String, String)> = Vec::new();
            if let Some(u) = by_name.get(exact).map_err(|e| e.to_string())? {
                doomed.push((exact.to_string(), u.value().to_string()));
            }
            for p in prefixes {
                for item in by_name.range(p.as_str()..).map_err(|e| e.to_string())? {
                    let (k, v) = item.map_err(|e| e.to_string())?;
                    if !k.value().starts_with(p.as_str()) {
                        break;
                    }
                    doomed.push((k.value().to_string(), v.value().to_string()));
                }
            }
            let mut gone = 0;
            for (name, uid) in doomed {
                if keep.contains(uid.as_str()) {
                    continue;
                }
                by_name.remove(name.as_str()).map_err(|e| e.to_string())?;
                if mailboxes
                    .remove(uid.as_str())
                    .map_err(|e| e.to_string())?
                    .is_some()
                {
                    gone += 1;
                }
            }
            Ok(gone)
        })
        .unwrap_or(0)
    }

    /// Number of cached mailboxes.
    pub fn len(&self) -> u64 {
        self.with_tables("counting", false, |m, _| m.len().map_err(|e| e.to_string()))
            .unwrap_or(0)
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Commits the writes so far durably (one `fsync`ed commit). Blocks for
    /// that long: async callers use `spawn_blocking`.
    pub fn flush(&self) {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if st.pending == 0 {
            return;
        }
        st.pending = 0;
        if let Some(tx) = st.tx.take()
            && let Err(e) = tx.commit()
        {
            st.disabled = true;
            tracing::warn!(
                "target-state cache {}: committing failed ({e}); going on without the cache",
                self.path.display()
            );
        }
    }
}

impl Drop for TargetCache {
    fn drop(&mut self) {
        self.flush();
    }
}

type MailboxTable<'t> = redb::Table<'t, &'static str, &'static [u8]>;
type NameTable<'t> = redb::Table<'t, &'static str, &'static str>;

fn remove_name_if(names: &mut NameTable<'_>, name: &str, uid: &str) -> Result<(), Failure> {
    let points_here = names
        .get(name)
        .map_err(|e| e.to_string())?
        .is_some_and(|v| v.value() == uid);
    if points_here {
        names.remove(name).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn encode(state: &MailboxState) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    encode_value(
        &Value::KvList(state.header()),
        LiteralStyle::NonSync,
        &mut out,
    )
    .ok()?;
    Some(out)
}

fn decode(bytes: &[u8]) -> Option<MailboxState> {
    match parse_value(bytes, &Limits::default()).ok()? {
        Value::KvList(kv) => MailboxState::from_kvlist(kv).ok(),
        _ => None,
    }
}

/// Where a damaged file is moved (a previous one there is replaced, so that
/// damage never fills the disk).
fn aside_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".corrupt");
    path.with_file_name(name)
}

fn open_error(path: &Path, e: DatabaseError) -> CacheError {
    let path = path.to_path_buf();
    match e {
        DatabaseError::DatabaseAlreadyOpen => CacheError::Busy { path },
        DatabaseError::Storage(StorageError::Io(source))
            if matches!(
                source.kind(),
                std::io::ErrorKind::PermissionDenied
                    | std::io::ErrorKind::NotFound
                    | std::io::ErrorKind::ReadOnlyFilesystem
                    | std::io::ErrorKind::StorageFull
                    | std::io::ErrorKind::IsADirectory
            ) =>
        {
            CacheError::Access { path, source }
        }
        other => CacheError::Damaged {
            path,
            detail: other.to_string(),
        },
    }
}

/// A cache created by root (a one-shot `cyrsync sync`, which does not drop
/// privileges) goes to the owner of its directory — the cyrus user for the
/// default path in the sync log directory — so that the daemon, which runs
/// as that user, can open it later.
fn give_to_directory_owner(path: &Path) {
    use std::os::unix::fs::MetadataExt;
    if !rustix::process::geteuid().is_root() {
        return;
    }
    let Some(dir) = path.parent() else { return };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    if let Ok(meta) = std::fs::metadata(dir)
        && let Err(e) = std::os::unix::fs::chown(path, Some(meta.uid()), Some(meta.gid()))
    {
        tracing::warn!(
            "cannot give {} to its directory's owner: {e}",
            path.display()
        );
    }
}

#[cfg(test)]
mod tests;
