//! The replication engine (DESIGN.md §1–2): bring a replica into agreement with
//! the master for a set of actions, reading the master through a source session
//! and writing the replica through a target session.
//!
//! Sync is state comparison, as in Cyrus's `sync_client.c`/`sync_support.c`:
//! `GET USER`/`GET MAILBOXES` on both sides first, and only mailboxes whose
//! state differs are read in full (`GET FULLMAILBOX`) and updated
//! (`APPLY RESERVE` → `GET FETCH` ⇢ `APPLY MESSAGE` → `APPLY MAILBOX`).
//! Replaying an action is always safe.
//!
//! In rolling replication the replica's side of a mailbox action may come
//! from the channel's target-state cache ([`crate::cache`]) instead of
//! `GET MAILBOXES`, as sync_client's `sync_cache_db`; see [`CacheUse`] and
//! [`Engine::sync_mailboxes`] for what a cached state may and may not drive.

pub mod spool;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cache::TargetCache;
use crate::dlist::{Command, FileLiteral, KvList, Response, Value};
use crate::model::{
    MailboxState, ModelError, Record, UserState, mailboxes_from_responses, quota_limits_equal,
};
use crate::proto::ProtoError;
use crate::proto::session::Session;
use crate::source::local::{LocalError, LocalReader, Since};
use spool::Spool;

/// Why an action could not be completed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A session failed (connection, timeout, or a `NO` from a server).
    #[error(transparent)]
    Proto(#[from] ProtoError),
    /// A server answer was not a well-formed Cyrus object.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// Newer changes were copied from the replica back to the master; the
    /// mailbox must be read again (internal to the engine).
    #[error("{mailbox}: {records} newer change(s) on the replica were copied back to the master")]
    CopiedBack {
        /// The mailbox.
        mailbox: String,
        /// How many records.
        records: usize,
    },
    /// The replica's state could not be reconciled without writing the master.
    #[error("{mailbox}: master and replica disagree in a way replication cannot repair: {detail}")]
    Diverged {
        /// The mailbox.
        mailbox: String,
        /// What differs.
        detail: String,
    },
}

impl EngineError {
    /// The Cyrus error name, if a server answered `NO` with one.
    pub fn cyrus_code(&self) -> Option<&str> {
        match self {
            EngineError::Proto(p) => p.cyrus_code(),
            _ => None,
        }
    }

    /// Whether the sessions must be reopened before going on.
    pub fn breaks_sessions(&self) -> bool {
        match self {
            EngineError::Proto(p) => p.breaks_connection(),
            _ => false,
        }
    }
}

/// Tunables of one channel.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// `sync_batchsize`: most new messages per `APPLY MAILBOX`.
    pub batch_size: usize,
    /// Most bodies per `APPLY MESSAGE`.
    pub upload_messages: usize,
    /// Most body bytes per `APPLY MESSAGE`.
    pub upload_bytes: u64,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            batch_size: 8192,
            upload_messages: 1024,
            upload_bytes: 64 << 20,
        }
    }
}

/// What a run did, for summaries, status and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Mailboxes compared.
    pub mailboxes_checked: u64,
    /// Mailboxes that needed an update.
    pub mailboxes_updated: u64,
    /// Mailboxes created on the replica.
    pub mailboxes_created: u64,
    /// `APPLY RENAME`s.
    pub renames: u64,
    /// `APPLY UNMAILBOX`es.
    pub deletes: u64,
    /// Message bodies uploaded.
    pub messages_uploaded: u64,
    /// Body bytes uploaded.
    pub bytes_uploaded: u64,
    /// Messages the replica already had (found by `APPLY RESERVE`).
    pub messages_reserved: u64,
    /// `APPLY` commands sent.
    pub applies: u64,
    /// CRC mismatches met (and repaired).
    pub crc_mismatches: u64,
    /// Records changed on the replica more recently than on the master, whose
    /// state was copied back to the master (sync_client's copy-back).
    pub copied_back: u64,
    /// Mailboxes read in full on the master, with how long the answer took.
    pub full_reads: Vec<(String, Duration)>,
    /// Mailboxes whose records came from the master's `cyrus.index`.
    pub local_reads: u64,
    /// Mailboxes the local reader left to `GET FULLMAILBOX`.
    pub local_fallbacks: u64,
    /// Master mailbox entries rebuilt from its files instead of asked for
    /// with `GET MAILBOXES`.
    pub listed_locally: u64,
    /// Message bodies read from the master's spool files.
    pub local_bodies: u64,
    /// Mailboxes whose replica state came from the target-state cache
    /// instead of `GET MAILBOXES` on the replica.
    pub cache_hits: u64,
    /// Mailboxes the cache was asked for and could not answer (the replica
    /// was read).
    pub cache_misses: u64,
    /// Cache entries dropped: refused by the replica (`SINCE_*` stale), a
    /// failure, a rename, a delete, or gone from the replica.
    pub cache_invalidations: u64,
}

/// How an engine uses the channel's target-state cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheUse {
    /// Mailbox actions take the replica's state from the cache when every
    /// mailbox they name is there (rolling replication). User actions
    /// always read the replica.
    Read,
    /// Only kept up to date: every action reads the replica, as Cyrus's
    /// sync_client does for manual runs, where correctness outweighs speed.
    Refresh,
}

/// What the engine is doing, for the status view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Reading state (`GET`).
    Get,
    /// `APPLY RESERVE`.
    Reserve,
    /// Streaming bodies (`GET FETCH` ⇢ `APPLY MESSAGE`).
    Message,
    /// `APPLY MAILBOX` and the other `APPLY`s.
    Apply,
}

/// Receives progress from an [`Engine`]; implemented by the daemon's status.
pub trait Observer: Send + Sync + std::fmt::Debug {
    /// Work on `mailbox` entered `phase`.
    fn phase(&self, mailbox: &str, phase: Phase);
    /// Bodies uploaded for the current chunk: `done` of `total` messages,
    /// `bytes` so far.
    fn upload(&self, done: u64, total: u64, bytes: u64);
}

/// A pair of sessions and what they have done.
#[derive(Debug)]
pub struct Engine {
    source: Session,
    target: Session,
    options: EngineOptions,
    stats: SyncStats,
    /// Replica mailboxes `APPLY RESERVE` may search for a message, besides
    /// the one being updated (sync_client lists the mailboxes of the batch).
    reserve_scope: Vec<String>,
    /// GUIDs of the bodies the replica accepted since the last `RESTART`:
    /// its sync_server keeps them staged for the session (its reserve
    /// list), where `APPLY MAILBOX` finds them without another upload.
    uploaded: HashSet<String>,
    /// An `APPLY RESERVE` or `APPLY MESSAGE` went out since the last
    /// `RESTART`: the replica's reserve list may hold staged files, which
    /// only `RESTART` releases (sync_server's `cmd_restart` does nothing
    /// else).
    staged: bool,
    observer: Option<std::sync::Arc<dyn Observer>>,
    /// Reads records from the master's index files, when on the master host.
    local: Option<LocalReader>,
    /// The channel's target-state cache.
    cache: Option<(Arc<TargetCache>, CacheUse)>,
}

/// Messages in the first `APPLY MESSAGE` of an upload (then doubling).
const FIRST_GROUP: usize = 32;

/// An `APPLY MESSAGE` sent and not yet answered.
#[derive(Debug)]
struct SentGroup {
    pending: crate::proto::session::Pending,
    count: u64,
    bytes: u64,
    guids: Vec<String>,
}

/// What [`Engine::upload`] leaves unanswered: the last `APPLY MESSAGE`,
/// whose answer [`Engine::confirm`] reads before the replica is asked
/// anything else.
#[derive(Debug)]
#[must_use = "the last APPLY MESSAGE's answer must be read with confirm"]
struct Uploading(Option<SentGroup>);

/// Most mailbox names in one `APPLY RESERVE`.
const RESERVE_SCOPE_MAX: usize = 256;

/// GUIDs per `APPLY RESERVE` (sync_client's limit per partition list).
const RESERVE_CHUNK: usize = 8192;

impl Engine {
    /// An engine over an open source (master) and target (replica) session.
    pub fn new(source: Session, target: Session, options: EngineOptions) -> Engine {
        Engine {
            source,
            target,
            options,
            stats: SyncStats::default(),
            reserve_scope: Vec::new(),
            uploaded: HashSet::new(),
            staged: false,
            observer: None,
            local: None,
            cache: None,
        }
    }

    /// Keeps the replica's mailbox states in `cache` and, with
    /// [`CacheUse::Read`], believes them for mailbox actions.
    pub fn set_cache(&mut self, cache: Arc<TargetCache>, usage: CacheUse) {
        self.cache = Some((cache, usage));
    }

    /// Records the replica's state of these mailboxes (read from it, or just
    /// written to it by a successful `APPLY MAILBOX`).
    fn cache_store(&self, states: &[&MailboxState]) {
        if let Some((c, _)) = &self.cache {
            c.store(states);
        }
    }

    /// Drops cache entries; counted as invalidations.
    fn cache_forget(&mut self, uniqueids: &[&str], names: &[&str]) {
        if let Some((c, _)) = &self.cache {
            self.stats.cache_invalidations += c.forget(uniqueids, names);
        }
    }

    /// After a fresh `GET USER` on the replica: its mailboxes as they are,
    /// and nothing else cached under the user's names.
    fn cache_refresh_user(&mut self, userid: &str, replica: &[MailboxState]) {
        let Some((c, _)) = &self.cache else { return };
        let inbox = inbox_name(userid);
        let deleted = match inbox.split_once('!') {
            Some((domain, rest)) => format!("{domain}!DELETED.{rest}."),
            None => format!("DELETED.{inbox}."),
        };
        let keep: BTreeSet<&str> = replica.iter().map(MailboxState::uniqueid).collect();
        self.stats.cache_invalidations +=
            c.forget_names_under(&inbox, &[format!("{inbox}."), deleted], &keep);
        c.store(&replica.iter().collect::<Vec<_>>());
    }

    /// The replica's state of `names` from the cache, when the engine may
    /// believe it and every name is there under the uniqueid the master has
    /// for it. Anything else — a mailbox to create, rename or delete, or an
    /// entry without a modseq to guard an `APPLY` — means reading the
    /// replica, so that a cached state only ever drives an `APPLY MAILBOX`
    /// the replica checks with `SINCE_MODSEQ`/`SINCE_CRC`/`SINCE_CRC_ANNOT`,
    /// or a skip because the master is still exactly what was last applied.
    fn cached_replica(
        &mut self,
        names: &[String],
        master: &[MailboxState],
    ) -> Option<Vec<MailboxState>> {
        let (cache, CacheUse::Read) = self.cache.as_ref()? else {
            return None;
        };
        let names: Vec<String> = names
            .iter()
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if names.is_empty() {
            return None;
        }
        let cached = cache.lookup_names(&names);
        let usable = names.iter().zip(&cached).all(|(name, c)| {
            let m = master.iter().find(|m| m.name() == name);
            match (m, c) {
                (Some(m), Some(c)) => c.uniqueid() == m.uniqueid() && c.highestmodseq() > 0,
                _ => false,
            }
        }) && master.iter().all(|m| names.iter().any(|n| n == m.name()));
        if usable {
            self.stats.cache_hits += names.len() as u64;
            Some(cached.into_iter().flatten().collect())
        } else {
            self.stats.cache_misses += names.len() as u64;
            None
        }
    }

    /// Reads changed mailboxes from the master's index files with `reader`
    /// (`GET FULLMAILBOX` stays the fallback).
    pub fn set_local_reader(&mut self, reader: LocalReader) {
        self.local = Some(reader);
    }

    /// Reports progress to `observer`.
    pub fn set_observer(&mut self, observer: std::sync::Arc<dyn Observer>) {
        self.observer = Some(observer);
    }

    fn phase(&self, mailbox: &str, phase: Phase) {
        if let Some(o) = &self.observer {
            o.phase(mailbox, phase);
        }
    }

    /// What has been done so far.
    pub fn stats(&self) -> &SyncStats {
        &self.stats
    }

    /// The source session (for status).
    pub fn source(&self) -> &Session {
        &self.source
    }

    /// The target session (for status).
    pub fn target(&self) -> &Session {
        &self.target
    }

    /// Closes both sessions politely.
    pub async fn close(self) {
        self.source.close().await;
        self.target.close().await;
    }

    /// `RESTART` on the replica between batches, as sync_client does, when
    /// something is staged there (a run of flag changes stages nothing, and
    /// its RESTART would be a round trip for nothing).
    pub async fn restart(&mut self) -> Result<(), EngineError> {
        if !self.staged {
            return Ok(());
        }
        self.target.restart().await?;
        self.uploaded.clear();
        self.staged = false;
        Ok(())
    }

    async fn apply(&mut self, name: &str, value: Value) -> Result<Vec<Response>, EngineError> {
        self.stats.applies += 1;
        self.staged |= name == "RESERVE";
        Ok(self.target.command(Command::apply(name, value)).await?)
    }

    async fn get_user(session: &mut Session, userid: &str) -> Result<UserState, EngineError> {
        let items = session
            .command(Command::get("USER", Value::atom(userid)))
            .await?;
        Ok(UserState::from_responses(&items)?)
    }

    async fn get_mailboxes(
        session: &mut Session,
        names: &[String],
    ) -> Result<Vec<MailboxState>, EngineError> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let items = session
            .command(Command::get(
                "MAILBOXES",
                Value::list(names.iter().map(|n| Value::atom(n.as_str()))),
            ))
            .await?;
        Ok(mailboxes_from_responses(&items)?)
    }

    /// Brings everything of one user into agreement: mailboxes (the
    /// `DELETED.` namespace included), quota, subscriptions, seen state, sieve
    /// (as the `#sieve` mailbox). A user gone from the master is removed from
    /// the replica with `APPLY UNUSER`.
    pub async fn sync_user(&mut self, userid: &str) -> Result<(), EngineError> {
        let master = Self::get_user(&mut self.source, userid).await?;
        let replica = Self::get_user(&mut self.target, userid).await?;
        if !master.exists() {
            if replica.exists() {
                self.cache_refresh_user(userid, &[]);
                self.apply("UNUSER", Value::atom(userid)).await?;
            }
            return Ok(());
        }
        self.cache_refresh_user(userid, &replica.mailboxes);
        self.sync_mailbox_set(&master.mailboxes, &replica.mailboxes, &[], false)
            .await?;
        self.sync_quotas(&master.quotas, &replica.quotas).await?;
        self.sync_subscriptions(userid, &master.subscriptions, &replica.subscriptions)
            .await?;
        self.sync_seen(userid, &master.seen, &replica.seen).await?;
        Ok(())
    }

    /// Removes a user from the replica when the master no longer has its
    /// INBOX (`UNUSER` in the log); otherwise syncs the user.
    pub async fn unuser(&mut self, userid: &str) -> Result<(), EngineError> {
        let master = Self::get_user(&mut self.source, userid).await?;
        let inbox_on_master = master
            .mailboxes
            .iter()
            .any(|m| m.name() == inbox_name(userid));
        if inbox_on_master {
            return self.sync_user(userid).await;
        }
        let replica = Self::get_user(&mut self.target, userid).await?;
        self.cache_refresh_user(userid, &replica.mailboxes);
        // Deleted-namespace copies the master keeps are replicated first, so
        // that the replica holds what the master holds (sync_client order).
        self.sync_mailbox_set(&master.mailboxes, &replica.mailboxes, &[], false)
            .await?;
        if replica.exists() || !replica.subscriptions.is_empty() {
            self.cache_refresh_user(userid, &[]);
            self.apply("UNUSER", Value::atom(userid)).await?;
        }
        Ok(())
    }

    /// Subscriptions and seen state of one user (`META`).
    pub async fn sync_meta(&mut self, userid: &str) -> Result<(), EngineError> {
        let master = Self::get_user(&mut self.source, userid).await?;
        let replica = Self::get_user(&mut self.target, userid).await?;
        self.sync_subscriptions(userid, &master.subscriptions, &replica.subscriptions)
            .await?;
        self.sync_seen(userid, &master.seen, &replica.seen).await
    }

    /// One quota root (`QUOTA` in the log).
    pub async fn sync_quota(&mut self, root: &str) -> Result<(), EngineError> {
        let m = Self::quota_of(&mut self.source, root).await?;
        let r = Self::quota_of(&mut self.target, root).await?;
        self.sync_quotas(&m, &r).await
    }

    async fn quota_of(
        session: &mut Session,
        root: &str,
    ) -> Result<Vec<(String, KvList)>, EngineError> {
        match session
            .command(Command::get("QUOTA", Value::atom(root)))
            .await
        {
            Ok(items) => Ok(UserState::from_responses(&items)?.quotas),
            // No such quota root on that side.
            Err(ProtoError::No { .. }) => Ok(Vec::new()),
            Err(e) => Err(e.into()),
        }
    }

    /// Brings the named mailboxes into agreement (any owner, shared folders
    /// included): created, updated, renamed (by uniqueid) or deleted.
    ///
    /// With [`CacheUse::Read`], the replica's state comes from the cache
    /// when it has every mailbox; if the replica then refuses an `APPLY`
    /// (a stale entry) or anything fails, the entries are dropped and the
    /// action is done again reading the replica.
    pub async fn sync_mailboxes(&mut self, names: &[String]) -> Result<(), EngineError> {
        let master = self.list_master(names).await?;
        if let Some(replica) = self.cached_replica(names, &master) {
            match self.sync_mailbox_set(&master, &replica, names, true).await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    self.forget_action(&master, names);
                    if e.breaks_sessions() {
                        return Err(e);
                    }
                    tracing::debug!(
                        "cached replica state of {names:?} refused ({e}); reading the replica"
                    );
                }
            }
        }
        let result = self.sync_mailboxes_read(names, &master).await;
        if result.is_err() {
            self.forget_action(&master, names);
        }
        result
    }

    /// The master's `GET MAILBOXES` entries of `names`: rebuilt from its
    /// files when the local reader can vouch for every one (as
    /// `sync_client` reads them), else from the protocol, whose answer the
    /// reader keeps for next time.
    async fn list_master(&mut self, names: &[String]) -> Result<Vec<MailboxState>, EngineError> {
        let Some(mut reader) = self.local.take() else {
            return Self::get_mailboxes(&mut self.source, names).await;
        };
        let wanted = names.to_vec();
        let joined = tokio::task::spawn_blocking(move || {
            let listed = reader.list(&wanted);
            (reader, listed)
        })
        .await;
        let Ok((reader, listed)) = joined else {
            // The reader is lost with its thread: the protocol lists.
            return Self::get_mailboxes(&mut self.source, names).await;
        };
        match listed {
            Ok(listed) => {
                self.local = Some(reader);
                self.stats.listed_locally += listed.len() as u64;
                return Ok(listed);
            }
            Err(e) => tracing::trace!("listing with GET MAILBOXES: {e}"),
        }
        // Stamped before asking: a database write after this moment makes
        // the answer's list fields suspect, and the stamp shows it.
        let stamp = reader.db_stamp();
        self.local = Some(reader);
        let listed = Self::get_mailboxes(&mut self.source, names).await?;
        if let (Some(reader), Some(stamp)) = (self.local.as_mut(), stamp) {
            reader.remember(stamp, &listed);
        }
        Ok(listed)
    }

    /// Drops the cache entries of every mailbox of an action.
    fn forget_action(&mut self, master: &[MailboxState], names: &[String]) {
        let uids: Vec<&str> = master.iter().map(MailboxState::uniqueid).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        self.cache_forget(&uids, &names);
    }

    /// [`sync_mailboxes`](Self::sync_mailboxes) reading the replica (and
    /// refreshing the cache with what it says).
    async fn sync_mailboxes_read(
        &mut self,
        names: &[String],
        master: &[MailboxState],
    ) -> Result<(), EngineError> {
        // Look the replica up by the names asked for and by the master's
        // current names, so that renames are found on either side.
        let mut lookup: BTreeSet<String> = names.iter().cloned().collect();
        lookup.extend(master.iter().map(|m| m.name().to_string()));
        let lookup: Vec<String> = lookup.into_iter().collect();
        let mut replica = Self::get_mailboxes(&mut self.target, &lookup).await?;
        // A mailbox renamed on the master is known to the replica under its
        // old name, which the log may not carry: ask by uniqueid too.
        let missing: Vec<String> = master
            .iter()
            .filter(|m| !replica.iter().any(|r| r.uniqueid() == m.uniqueid()))
            .map(|m| m.uniqueid().to_string())
            .collect();
        if !missing.is_empty() {
            let items = self
                .target
                .command(Command::get(
                    "UNIQUEIDS",
                    Value::list(missing.iter().map(|u| Value::atom(u.as_str()))),
                ))
                .await?;
            for m in mailboxes_from_responses(&items)? {
                if !replica.iter().any(|r| r.uniqueid() == m.uniqueid()) {
                    replica.push(m);
                }
            }
        }
        if self.cache.is_some() {
            // What the replica just said is its state; what it does not
            // have must not stay cached.
            let absent_names: Vec<&str> = lookup
                .iter()
                .map(String::as_str)
                .filter(|n| !replica.iter().any(|r| r.name() == *n))
                .collect();
            let absent_uids: Vec<&str> = missing
                .iter()
                .map(String::as_str)
                .filter(|u| !replica.iter().any(|r| r.uniqueid() == *u))
                .collect();
            self.cache_forget(&absent_uids, &absent_names);
            self.cache_store(&replica.iter().collect::<Vec<_>>());
        }
        self.sync_mailbox_set(master, &replica, names, false).await
    }

    /// The core of both user and mailbox sync. `scope`: names whose absence
    /// on the master means "deleted" (empty: every replica mailbox given).
    /// `cached`: `replica` came from the target-state cache.
    async fn sync_mailbox_set(
        &mut self,
        master: &[MailboxState],
        replica: &[MailboxState],
        scope: &[String],
        cached: bool,
    ) -> Result<(), EngineError> {
        let mut by_uid: BTreeMap<String, MailboxState> = replica
            .iter()
            .map(|r| (r.uniqueid().to_string(), r.clone()))
            .collect();
        let master_uids: BTreeSet<&str> = master.iter().map(|m| m.uniqueid()).collect();
        let master_names: BTreeSet<&str> = master.iter().map(|m| m.name()).collect();
        // A replica mailbox that never held a message (LAST_UID 0) has none
        // to offer.
        self.reserve_scope = master
            .iter()
            .filter(|m| by_uid.get(m.uniqueid()).is_some_and(|r| r.last_uid() > 0))
            .map(|m| m.name().to_string())
            .take(RESERVE_SCOPE_MAX)
            .collect();

        // 1. Replica mailboxes the master no longer has (by uniqueid) are
        //    deleted — unless they are only out of scope.
        for r in replica {
            if master_uids.contains(r.uniqueid()) {
                continue;
            }
            let in_scope = scope.is_empty() || scope.iter().any(|s| s == r.name());
            // A replica mailbox holding a name the master gives to another
            // mailbox must go too, or the master's cannot be created.
            if in_scope || master_names.contains(r.name()) {
                self.cache_forget(&[r.uniqueid()], &[r.name()]);
                self.apply("UNMAILBOX", Value::atom(r.name())).await?;
                self.stats.deletes += 1;
                by_uid.remove(r.uniqueid());
            }
        }

        // The master's files of every mailbox about to be read, located in
        // one `mbpath` call rather than one per mailbox.
        let changed: Vec<(String, String)> = master
            .iter()
            .filter(|m| !by_uid.get(m.uniqueid()).is_some_and(|r| r.agrees_with(m)))
            .map(|m| (m.uniqueid().to_string(), m.partition().to_string()))
            .collect();
        self.locate_local(changed).await;

        // 2. Renames (same uniqueid, other name), then updates.
        for m in master {
            self.stats.mailboxes_checked += 1;
            let mut remote = by_uid.get(m.uniqueid()).cloned();
            let mut remote_cached = cached;
            if let Some(r) = &remote
                && r.name() != m.name()
            {
                self.cache_forget(&[r.uniqueid()], &[r.name(), m.name()]);
                self.apply(
                    "RENAME",
                    Value::kvlist(
                        KvList::new()
                            .with("OLDMBOXNAME", r.name())
                            .with("NEWMBOXNAME", m.name())
                            .with("PARTITION", m.partition())
                            .with("UIDVALIDITY", Value::num(m.uidvalidity())),
                    ),
                )
                .await?;
                self.stats.renames += 1;
                // The rename changes the replica's state (name, modseq): read
                // it again, as sync_client does.
                remote = Self::get_mailboxes(&mut self.target, &[m.name().to_string()])
                    .await?
                    .into_iter()
                    .find(|x| x.uniqueid() == m.uniqueid());
                remote_cached = false;
                if let Some(r) = &remote {
                    self.cache_store(&[r]);
                }
            }
            if let Some(r) = &remote
                && r.agrees_with(m)
            {
                continue;
            }
            if let Err(e) = self.update_mailbox(m, remote, remote_cached).await {
                // Whatever the replica holds now is unknown.
                self.cache_forget(&[m.uniqueid()], &[m.name()]);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Updates one mailbox on the replica from the master's full state, with
    /// Cyrus's retries: `IMAP_SYNC_CHANGED` (replica moved meanwhile) → read
    /// it again; `IMAP_SYNC_CHECKSUM` → once more without `SINCE_*`, then a
    /// full record-by-record comparison.
    async fn update_mailbox(
        &mut self,
        listed: &MailboxState,
        remote: Option<MailboxState>,
        cached: bool,
    ) -> Result<(), EngineError> {
        let name = listed.name();
        match self
            .update_mailbox_once(listed, remote.clone(), true, cached)
            .await
        {
            Err(EngineError::CopiedBack { .. }) => {
                let remote = match &remote {
                    Some(r) => Self::get_mailboxes(&mut self.target, &[r.name().to_string()])
                        .await?
                        .into_iter()
                        .find(|x| x.uniqueid() == r.uniqueid()),
                    None => None,
                };
                // The copy-back changed the master: its listing is stale.
                let Some(fresh) = Self::get_mailboxes(&mut self.source, &[name.to_string()])
                    .await?
                    .into_iter()
                    .find(|m| m.name() == name)
                else {
                    return Ok(());
                };
                self.update_mailbox_once(&fresh, remote, false, false).await
            }
            other => other,
        }
    }

    /// Has the local reader find the files of `mailboxes` (uniqueid,
    /// partition; one `mbpath` for those it does not know yet). A failure only means that those
    /// mailboxes will be located, or read over the protocol, one by one.
    async fn locate_local(&mut self, mailboxes: Vec<(String, String)>) {
        if mailboxes.is_empty() {
            return;
        }
        let Some(mut reader) = self.local.take() else {
            return;
        };
        let located = tokio::task::spawn_blocking(move || {
            let ids: Vec<(&str, &str)> = mailboxes
                .iter()
                .map(|(u, p)| (u.as_str(), p.as_str()))
                .collect();
            let result = reader.locate(&ids);
            (reader, result)
        })
        .await;
        if let Ok((reader, result)) = located {
            if let Err(e) = result {
                tracing::debug!("locating mailboxes with mbpath: {e}");
            }
            self.local = Some(reader);
        }
    }

    /// The master's mailbox: from its index files when the local reader can
    /// vouch for them (checked against `listed`, the master's `GET
    /// MAILBOXES` entry; a stale read is retried against a fresh one twice),
    /// else with `GET FULLMAILBOX`, which holds the mailbox's lock on the
    /// master for the whole answer. With `since`, the local reader keeps
    /// only the records a replica there lacks (`GET FULLMAILBOX` always
    /// gives them all).
    async fn read_master(
        &mut self,
        listed: &MailboxState,
        since: Option<Since>,
    ) -> Result<Option<MailboxState>, EngineError> {
        let name = listed.name();
        if self.local.is_some() {
            let mut listed = Some(listed.clone());
            for attempt in 0..3 {
                let listed = match listed.take() {
                    Some(l) => l,
                    None => {
                        let fresh = self
                            .list_master(&[name.to_string()])
                            .await?
                            .into_iter()
                            .find(|m| m.name() == name);
                        let Some(fresh) = fresh else {
                            return Ok(None);
                        };
                        fresh
                    }
                };
                let Some(mut reader) = self.local.take() else {
                    break;
                };
                let (back, result) = tokio::task::spawn_blocking(move || {
                    let result = match since {
                        Some(s) => reader.changed_since(&listed, s),
                        None => reader.full_mailbox(&listed),
                    };
                    (reader, result)
                })
                .await
                .map_err(|e| EngineError::Diverged {
                    mailbox: name.to_string(),
                    detail: format!("local reader: {e}"),
                })?;
                self.local = Some(back);
                match result {
                    Ok(state) => {
                        self.stats.local_reads += 1;
                        return Ok(Some(state));
                    }
                    Err(LocalError::Mismatch { .. }) if attempt < 2 => continue,
                    Err(e) => {
                        tracing::debug!("{name}: reading the master with GET FULLMAILBOX: {e}");
                        self.stats.local_fallbacks += 1;
                        break;
                    }
                }
            }
        }
        let started = Instant::now();
        let full = self
            .source
            .command(Command::get("FULLMAILBOX", Value::atom(name)))
            .await;
        let full = match full {
            Ok(items) => mailboxes_from_responses(&items)?.into_iter().next(),
            Err(e) if e.cyrus_code() == Some("IMAP_MAILBOX_NONEXISTENT") => None,
            Err(e) => return Err(e.into()),
        };
        self.stats
            .full_reads
            .push((name.to_string(), started.elapsed()));
        Ok(full)
    }

    async fn update_mailbox_once(
        &mut self,
        listed: &MailboxState,
        remote: Option<MailboxState>,
        copy_back: bool,
        cached: bool,
    ) -> Result<(), EngineError> {
        let name = listed.name();
        self.phase(name, Phase::Get);
        let mut remote = remote;
        let mut cached = cached && remote.is_some();
        if cached
            && let Some(r) = &remote
            && listed.last_uid().saturating_sub(r.last_uid()) > self.options.batch_size as u64
        {
            // More new messages than sync_batchsize (at most LAST_UID's
            // difference): the steps go without SINCE_*, so only a state
            // read from the replica may drive them.
            remote = Self::get_mailboxes(&mut self.target, &[r.name().to_string()])
                .await?
                .into_iter()
                .find(|x| x.uniqueid() == listed.uniqueid());
            cached = false;
        }
        // The first attempt needs only what the replica lacks; a retry
        // (the replica moved, or disagrees) reads every record.
        let since = remote.as_ref().map(|r| Since {
            modseq: r.highestmodseq(),
            last_uid: r.last_uid(),
        });
        let Some(full) = self.read_master(listed, since).await? else {
            // Deleted on the master meanwhile: the delete will be replicated
            // by its own log entry, as sync_client assumes.
            return Ok(());
        };
        // One copy of the records only: memory stays flat for large mailboxes.
        let (mut full, mut records) = full.split_records()?;
        if cached
            && let Some(r) = &remote
            && records
                .iter()
                .filter(|x| u64::from(x.uid) > r.last_uid())
                .count()
                > self.options.batch_size
        {
            // Mail arrived since the listing: the same rule, and what the
            // replica lacks is read again for the state it really has.
            remote = Self::get_mailboxes(&mut self.target, &[r.name().to_string()])
                .await?
                .into_iter()
                .find(|x| x.uniqueid() == full.uniqueid());
            cached = false;
            let Some(all) = self.read_master(&full, None).await? else {
                return Ok(());
            };
            (full, records) = all.split_records()?;
        }
        if remote.is_none() {
            self.stats.mailboxes_created += 1;
        }
        self.stats.mailboxes_updated += 1;

        let mut attempt = 0;
        loop {
            attempt += 1;
            let mode = match attempt {
                1 => Mode::Since,
                2 => Mode::NoSince,
                _ => Mode::Full,
            };
            // The records go into APPLY MAILBOX without a copy; a retry
            // (rare) reads the master again.
            if attempt > 1 {
                let Some(all) = self.read_master(&full, None).await? else {
                    return Ok(());
                };
                (full, records) = all.split_records()?;
            }
            let result = self
                .push_mailbox(
                    &full,
                    std::mem::take(&mut records),
                    remote.as_ref(),
                    mode,
                    copy_back,
                )
                .await;
            match result {
                Ok(()) => return Ok(()),
                Err(e) => {
                    let code = e.cyrus_code().map(str::to_string);
                    match code.as_deref() {
                        Some("IMAP_SYNC_CHECKSUM") | Some("IMAP_SYNC_CHANGED") if attempt < 3 => {
                            if code.as_deref() == Some("IMAP_SYNC_CHECKSUM") {
                                self.stats.crc_mismatches += 1;
                                tracing::warn!(
                                    mailbox = name,
                                    attempt,
                                    "IMAP_SYNC_CHECKSUM from the replica; retrying"
                                );
                            }
                            if cached {
                                // The replica is not where the cache said.
                                self.cache_forget(&[full.uniqueid()], &[]);
                                cached = false;
                            }
                            remote = Self::get_mailboxes(&mut self.target, &[name.to_string()])
                                .await?
                                .into_iter()
                                .find(|r| r.uniqueid() == full.uniqueid());
                        }
                        _ => return Err(e),
                    }
                }
            }
        }
    }

    /// Uploads missing bodies and sends `APPLY MAILBOX` (in `sync_batchsize`
    /// chunks for a large first sync).
    async fn push_mailbox(
        &mut self,
        full: &MailboxState,
        records: Vec<Record>,
        remote: Option<&MailboxState>,
        mode: Mode,
        copy_back: bool,
    ) -> Result<(), EngineError> {
        let (since_modseq, remote_last_uid) = match remote {
            Some(r) => (r.highestmodseq(), r.last_uid()),
            None => (0, 0),
        };
        // Records to send: changed since the replica's view, or — in full
        // mode — every record that is not identical on the replica.
        let send: Vec<Record> = match mode {
            // New messages always go, whatever their modseq: a replica
            // whose HIGHESTMODSEQ was raised by local changes must not hide
            // the master's appends from the filter.
            Mode::Since | Mode::NoSince => records
                .into_iter()
                .filter(|r| r.modseq > since_modseq || u64::from(r.uid) > remote_last_uid)
                .collect(),
            Mode::Full => {
                let replica_records = match remote {
                    Some(r) => {
                        let items = self
                            .target
                            .command(Command::get("FULLMAILBOX", Value::atom(r.name())))
                            .await?;
                        mailboxes_from_responses(&items)?
                            .into_iter()
                            .next()
                            .map(|m| m.records())
                            .transpose()?
                            .unwrap_or_default()
                    }
                    None => Vec::new(),
                };
                let theirs: BTreeMap<u32, &Record> =
                    replica_records.iter().map(|r| (r.uid, r)).collect();
                let mut diverged = Vec::new();
                let mut expunge = Vec::new();
                let mut newer: Vec<&Record> = Vec::new();
                for (uid, r) in &theirs {
                    let on_master = records.iter().find(|m| m.uid == *uid);
                    match on_master {
                        // The master expunged and cleaned it up; the replica
                        // missed the expunge.
                        None if !r.expunged && u64::from(*uid) <= full.last_uid() => {
                            expunge.push(*uid);
                        }
                        None if !r.expunged => {
                            diverged.push(format!("UID {uid} exists only on the replica"));
                        }
                        // Appended on the master under a UID the replica
                        // already counts as used: only renumbering on the
                        // master (as sync_client does locally) can fix it.
                        None => {}
                        Some(m) if m.guid != r.guid => {
                            diverged.push(format!("UID {uid} holds another message on each side"));
                        }
                        // Changed on the replica after the master's last
                        // change: the newer state wins and goes back to the
                        // master, as sync_client's copy-back does.
                        Some(m)
                            if r.modseq > m.modseq && copy_back && !r.expunged && !m.expunged =>
                        {
                            newer.push(r);
                        }
                        Some(m) if r.modseq > m.modseq => {
                            diverged.push(format!(
                                "UID {uid} was changed on the replica (MODSEQ {} > master's {})",
                                r.modseq, m.modseq
                            ));
                        }
                        _ => {}
                    }
                }
                let replica_hms = remote.map(MailboxState::highestmodseq).unwrap_or(0);
                // The replica's HIGHESTMODSEQ ahead of the master's (changes
                // made there) makes every APPLY fail; Cyrus's full update
                // raises the master's, and so does the copy-back below.
                if diverged.is_empty()
                    && (!newer.is_empty() || (copy_back && replica_hms > full.highestmodseq()))
                {
                    self.copy_back(full, &newer, replica_hms).await?;
                    return Err(EngineError::CopiedBack {
                        mailbox: full.name().to_string(),
                        records: newer.len(),
                    });
                }
                if !diverged.is_empty() {
                    return Err(EngineError::Diverged {
                        mailbox: full.name().to_string(),
                        detail: format!(
                            "{}; `cyrsync verify` lists the differences; change these messages on the master so that its state is the newer one",
                            diverged.join("; ")
                        ),
                    });
                }
                let replica_last_uid = remote.map(MailboxState::last_uid).unwrap_or(0);
                for m in &records {
                    if !m.expunged
                        && u64::from(m.uid) <= replica_last_uid
                        && !theirs.contains_key(&m.uid)
                    {
                        diverged.push(format!(
                            "UID {} is on the master but the replica already counts it as used (its LAST_UID is {replica_last_uid}); the message must be given a new UID on the master",
                            m.uid
                        ));
                    }
                }
                if !expunge.is_empty() && diverged.is_empty() {
                    self.apply(
                        "EXPUNGE",
                        Value::kvlist(
                            KvList::new()
                                .with("MBOXNAME", full.name())
                                .with("UNIQUEID", full.uniqueid())
                                .with(
                                    "UID",
                                    Value::list(expunge.iter().map(|u| Value::num(u64::from(*u)))),
                                ),
                        ),
                    )
                    .await?;
                }
                records
                    .into_iter()
                    .filter(|m| theirs.get(&m.uid).is_none_or(|r| r.value() != m.value()))
                    .collect()
            }
        };

        // New messages (above the replica's LAST_UID) need their bodies.
        let is_new = |r: &Record| u64::from(r.uid) > remote_last_uid;
        let batch = self.options.batch_size.max(1);
        if send.iter().filter(|r| is_new(r)).count() > batch {
            // sync_batchsize: bring the replica up in steps, each a valid
            // mailbox state (intermediate LAST_UID/HIGHESTMODSEQ, SYNC_CRC 0
            // which Cyrus does not check, as sync_client's partial sync).
            // Records are in UID order: the old ones (changes) go with the
            // last step.
            let (mut rest, old): (Vec<Record>, Vec<Record>) = send.into_iter().partition(is_new);
            let mut reached_modseq = since_modseq;
            while rest.len() > batch {
                let later = rest.split_off(batch);
                let step = std::mem::replace(&mut rest, later);
                let uploading = self.upload(full, &step.iter().collect::<Vec<_>>()).await?;
                let last_uid = step.last().map(|r| r.uid).unwrap_or(0);
                let step_modseq = step.iter().map(|r| r.modseq).max().unwrap_or(0);
                reached_modseq = reached_modseq.max(step_modseq);
                let kv = partial_header(full, remote, last_uid, reached_modseq);
                let kv = kv.with(
                    "RECORD",
                    Value::list(step.into_iter().map(Record::into_value)),
                );
                self.confirm(uploading).await?;
                self.apply("MAILBOX", Value::KvList(kv)).await?;
            }
            let uploading = self.upload(full, &rest.iter().collect::<Vec<_>>()).await?;
            let kv = full.header().with(
                "RECORD",
                Value::list(old.into_iter().chain(rest).map(Record::into_value)),
            );
            self.confirm(uploading).await?;
            self.apply("MAILBOX", Value::KvList(kv)).await?;
            // Cyrus accepted the whole state, its CRCs checked: the replica's
            // mailbox now is the master's header.
            self.cache_store(&[full]);
            return Ok(());
        }

        // The replica stores the last bodies while APPLY MAILBOX is built.
        let uploads: Vec<&Record> = send.iter().filter(|r| is_new(r)).collect();
        let uploading = self.upload(full, &uploads).await?;

        self.phase(full.name(), Phase::Apply);
        let mut kv = full.header();
        if mode == Mode::Since
            && let Some(r) = remote
            && r.highestmodseq() > 0
        {
            kv.push("SINCE_MODSEQ", Value::num(r.highestmodseq()));
            kv.push("SINCE_CRC", Value::num(r.sync_crc()));
            kv.push("SINCE_CRC_ANNOT", Value::num(r.sync_crc_annot()));
        }
        let kv = kv.with(
            "RECORD",
            Value::list(send.into_iter().map(Record::into_value)),
        );
        self.confirm(uploading).await?;
        self.apply("MAILBOX", Value::KvList(kv)).await?;
        // Cyrus accepted it and checked the resulting SYNC_CRC and
        // SYNC_CRC_ANNOT (sync_apply_mailbox): the replica's mailbox now is
        // the master's header.
        self.cache_store(&[full]);
        Ok(())
    }

    /// Writes the replica's newer records to the master through the master's
    /// own sync_server (`APPLY MAILBOX` on the source session), with modseqs
    /// above both sides so that the master is newest again. `SYNC_CRC 0`
    /// (and no annotation CRC) tells the master not to check CRCs, which the
    /// change alters.
    async fn copy_back(
        &mut self,
        full: &MailboxState,
        newer: &[&Record],
        replica_hms: u64,
    ) -> Result<(), EngineError> {
        let mut modseq = full.highestmodseq().max(replica_hms);
        if newer.is_empty() {
            modseq += 1;
        }
        let records: Vec<Value> = newer
            .iter()
            .map(|r| {
                modseq += 1;
                r.with_modseq(modseq)
            })
            .collect();
        let mut kv = KvList::new();
        for (k, v) in full.header().iter() {
            match k {
                "SYNC_CRC" => kv.push(k, Value::num(0)),
                "SYNC_CRC_ANNOT" => {}
                "HIGHESTMODSEQ" => kv.push(k, Value::num(modseq)),
                _ => kv.push(k, v.clone()),
            }
        }
        kv.push("RECORD", Value::list(records));
        tracing::warn!(
            mailbox = full.name(),
            records = newer.len(),
            "changes made on the replica are newer than the master's; copying them back"
        );
        self.stats.applies += 1;
        self.source
            .command(Command::apply("MAILBOX", Value::KvList(kv)))
            .await?;
        self.stats.copied_back += newer.len() as u64;
        Ok(())
    }

    /// Makes sure the replica has the bodies of `records`: `APPLY RESERVE`
    /// finds those it already holds (the same message in another mailbox),
    /// the rest are read from the master with `GET FETCH` and sent with
    /// `APPLY MESSAGE`.
    /// The last `APPLY MESSAGE` may still be unanswered: the caller passes
    /// what this returns to [`confirm`](Self::confirm) before its next
    /// command to the replica.
    async fn upload(
        &mut self,
        full: &MailboxState,
        records: &[&Record],
    ) -> Result<Uploading, EngineError> {
        if records.is_empty() {
            return Ok(Uploading(None));
        }
        self.phase(full.name(), Phase::Reserve);

        let mut missing: Vec<&Record> = Vec::new();
        let mut scope = vec![full.name().to_string()];
        scope.extend(
            self.reserve_scope
                .iter()
                .filter(|n| *n != full.name())
                .cloned(),
        );
        // No mailbox of this user on the replica that ever held a message
        // (a new user, a seed, a new or empty folder): the replica holds
        // only the bodies this session gave it, which it keeps staged, so
        // there is nothing for APPLY RESERVE to find (sync_client sends a
        // new user's messages without asking either). This spares every
        // step after the first of a sync_batchsize seed a RESERVE that
        // searched the growing mailbox for nothing.
        let nothing_there = self.reserve_scope.is_empty();
        if nothing_there {
            let mut seen = BTreeSet::new();
            for r in records {
                if !seen.insert(r.guid.as_str()) {
                    continue;
                }
                if self.uploaded.contains(&r.guid) {
                    self.stats.messages_reserved += 1;
                } else {
                    missing.push(r);
                }
            }
        }
        for chunk in records.chunks(RESERVE_CHUNK).filter(|_| !nothing_there) {
            let mut guids: Vec<&str> = chunk.iter().map(|r| r.guid.as_str()).collect();
            guids.sort_unstable();
            guids.dedup();
            let items = self
                .apply(
                    "RESERVE",
                    Value::kvlist(
                        KvList::new()
                            .with("PARTITION", full.partition())
                            .with(
                                "MBOXNAME",
                                Value::atom_list(scope.iter().map(String::as_str)),
                            )
                            .with("GUID", Value::atom_list(guids.iter().copied())),
                    ),
                )
                .await?;
            let mut absent: BTreeSet<String> = BTreeSet::new();
            for item in &items {
                if item.name() == Some("MISSING")
                    && let Some(list) = item.value().and_then(Value::as_list)
                {
                    absent.extend(
                        list.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_ascii_lowercase),
                    );
                }
            }
            self.stats.messages_reserved += (guids.len() - absent.len().min(guids.len())) as u64;
            for r in chunk {
                if absent.remove(&r.guid) {
                    missing.push(r);
                }
            }
        }

        self.phase(full.name(), Phase::Message);

        let total = missing.len() as u64;
        let mut done = 0u64;
        let (missing, unanswered) = self.upload_local(full, missing, &mut done, total).await?;
        if missing.is_empty() {
            return Ok(Uploading(unanswered));
        }
        self.confirm(Uploading(unanswered)).await?;
        let mut spool = Spool::new();
        for r in missing {
            done += 1;
            let fetch = Command::get(
                "FETCH",
                Value::kvlist(
                    KvList::new()
                        .with("MBOXNAME", full.name())
                        .with("PARTITION", full.partition())
                        .with("UNIQUEID", full.uniqueid())
                        .with("GUID", r.guid.as_str())
                        .with("UID", Value::num(u64::from(r.uid))),
                ),
            );
            let mut none = Spool::new();
            let fetched = self
                .source
                .command_streaming(fetch, &mut none, &mut spool)
                .await;
            match fetched {
                Ok(_) => {}
                // An expunged message whose file is already gone cannot be
                // sent; the replica records it as expunged without a body.
                Err(e) if r.expunged && e.cyrus_code().is_some() => continue,
                Err(e) => return Err(e.into()),
            }
            if let Some(o) = &self.observer {
                o.upload(done, total, self.stats.bytes_uploaded + spool.bytes());
            }
            if spool.len() >= self.options.upload_messages
                || spool.bytes() >= self.options.upload_bytes
            {
                self.send_spool(&mut spool).await?;
            }
        }
        self.send_spool(&mut spool).await?;
        Ok(Uploading(None))
    }

    /// Sends the bodies of `missing` that the local reader can take from the
    /// master's spool files, in groups of one `APPLY MESSAGE`; returns the
    /// records left to `GET FETCH`, and the last group if its answer is
    /// still to be read. Each group is read (and checked against its GUID)
    /// on a blocking thread while the group before it is sent, and each is
    /// sent before the answer to the one before it is read: the replica
    /// stores bodies without waiting for us, the overlap sync_client gets by
    /// streaming each file as it reads it.
    async fn upload_local<'r>(
        &mut self,
        full: &MailboxState,
        missing: Vec<&'r Record>,
        done: &mut u64,
        total: u64,
    ) -> Result<(Vec<&'r Record>, Option<SentGroup>), EngineError> {
        if missing.is_empty() {
            return Ok((missing, None));
        }
        let Some(reader) = self.local.take() else {
            return Ok((missing, None));
        };
        let groups = upload_groups(
            &missing,
            self.options.upload_messages,
            self.options.upload_bytes,
        );
        let mut left = Vec::new();
        let mut unanswered: Option<SentGroup> = None;
        let mut pending = Some(self.read_group(reader, full, &missing, &groups[0], *done, total));
        for (k, group) in groups.iter().enumerate() {
            let Some(task) = pending.take() else {
                break;
            };
            let Ok((reader, mut spool, failed)) = task.await else {
                // The reading thread panicked: the reader is gone, and the
                // protocol serves what is left of this mailbox.
                left.extend(groups[k..].iter().flatten().map(|&i| missing[i]));
                return Ok((left, unanswered));
            };
            self.stats.local_bodies += (group.len() - failed.len()) as u64;
            *done += group.len() as u64;
            left.extend(failed.iter().map(|&i| missing[i]));
            match groups.get(k + 1) {
                Some(next) => {
                    pending = Some(self.read_group(reader, full, &missing, next, *done, total));
                }
                None => self.local = Some(reader),
            }
            let result = match self.send_group(&mut spool).await {
                Ok(sent) => {
                    let earlier = std::mem::replace(&mut unanswered, sent);
                    self.confirm(Uploading(earlier)).await
                }
                // A failed send breaks the session: nothing more is read
                // from it.
                Err(e) => {
                    unanswered = None;
                    Err(e)
                }
            };
            if let Err(e) = result {
                // Answers are read in order: the group sent after the failed
                // one is answered too before the replica is asked anything
                // else.
                let _ = self.confirm(Uploading(unanswered.take())).await;
                if let Some(task) = pending.take()
                    && let Ok((reader, _, _)) = task.await
                {
                    self.local = Some(reader);
                }
                return Err(e);
            }
        }
        Ok((left, unanswered))
    }

    /// Sends `spool` as one `APPLY MESSAGE` without reading the answer.
    async fn send_group(&mut self, spool: &mut Spool) -> Result<Option<SentGroup>, EngineError> {
        if spool.is_empty() {
            return Ok(None);
        }
        let files = spool.files();
        let (count, bytes) = (files.len() as u64, spool.bytes());
        let guids = files.iter().map(|f| f.guid.clone()).collect();
        self.stats.applies += 1;
        self.staged = true;
        let pending = self
            .target
            .send_streaming(Command::apply_message(files), spool)
            .await?;
        Ok(Some(SentGroup {
            pending,
            count,
            bytes,
            guids,
        }))
    }

    /// Reads the answer to an `APPLY MESSAGE` sent by
    /// [`upload`](Self::upload), if one is still unread.
    async fn confirm(&mut self, uploading: Uploading) -> Result<(), EngineError> {
        let Some(SentGroup {
            pending,
            count,
            bytes,
            guids,
        }) = uploading.0
        else {
            return Ok(());
        };
        let mut sink = Spool::new();
        self.target.receive(pending, &mut sink).await?;
        self.stats.messages_uploaded += count;
        self.stats.bytes_uploaded += bytes;
        self.uploaded.extend(guids);
        Ok(())
    }

    /// Starts reading the bodies of `missing[i]` for every `i` of `group`
    /// into a new spool on a blocking thread; gives back the reader, the
    /// spool and the indexes it could not read.
    fn read_group(
        &self,
        mut reader: LocalReader,
        full: &MailboxState,
        missing: &[&Record],
        group: &[usize],
        done_before: u64,
        total: u64,
    ) -> tokio::task::JoinHandle<(LocalReader, Spool, Vec<usize>)> {
        let uniqueid = full.uniqueid().to_string();
        let name = full.name().to_string();
        let bodies: Vec<(usize, u32, FileLiteral)> = group
            .iter()
            .map(|&i| {
                let r = missing[i];
                let literal = FileLiteral {
                    partition: full.partition().to_string(),
                    guid: r.guid.clone(),
                    size: r.size,
                };
                (i, r.uid, literal)
            })
            .collect();
        let observer = self.observer.clone();
        let bytes_before = self.stats.bytes_uploaded;
        tokio::task::spawn_blocking(move || {
            let mut spool = Spool::new();
            let mut failed = Vec::new();
            for (n, (i, uid, literal)) in bodies.iter().enumerate() {
                let before = spool.len();
                let result = reader.copy_body(&uniqueid, *uid, literal, &mut spool);
                if !matches!(result, Ok(true)) {
                    if spool.len() > before {
                        spool.discard_last();
                    }
                    if let Err(e) = result {
                        tracing::debug!("{name}: body of UID {uid} with GET FETCH: {e}");
                    }
                    failed.push(*i);
                }
                if let Some(o) = &observer {
                    o.upload(
                        done_before + n as u64 + 1,
                        total,
                        bytes_before + spool.bytes(),
                    );
                }
            }
            (reader, spool, failed)
        })
    }

    async fn send_spool(&mut self, spool: &mut Spool) -> Result<(), EngineError> {
        if spool.is_empty() {
            return Ok(());
        }
        let files = spool.files();
        let count = files.len() as u64;
        let bytes = spool.bytes();
        let guids: Vec<String> = files.iter().map(|f| f.guid.clone()).collect();
        self.stats.applies += 1;
        self.staged = true;
        let mut sink = Spool::new();
        self.target
            .command_streaming(Command::apply_message(files), spool, &mut sink)
            .await?;
        self.uploaded.extend(guids);
        self.stats.messages_uploaded += count;
        self.stats.bytes_uploaded += bytes;
        spool.clear();
        Ok(())
    }

    async fn sync_quotas(
        &mut self,
        master: &[(String, KvList)],
        replica: &[(String, KvList)],
    ) -> Result<(), EngineError> {
        for (root, kv) in master {
            let theirs = replica.iter().find(|(r, _)| r == root).map(|(_, k)| k);
            if !theirs.is_some_and(|t| quota_limits_equal(kv, t)) {
                self.apply("QUOTA", Value::KvList(kv.clone())).await?;
            }
        }
        for (root, _) in replica {
            if !master.iter().any(|(r, _)| r == root) {
                self.apply("UNQUOTA", Value::atom(root.as_str())).await?;
            }
        }
        Ok(())
    }

    async fn sync_subscriptions(
        &mut self,
        userid: &str,
        master: &[String],
        replica: &[String],
    ) -> Result<(), EngineError> {
        for name in master {
            if !replica.contains(name) {
                self.apply("SUB", sub_kv(userid, name)).await?;
            }
        }
        for name in replica {
            if !master.contains(name) {
                self.apply("UNSUB", sub_kv(userid, name)).await?;
            }
        }
        Ok(())
    }

    async fn sync_seen(
        &mut self,
        userid: &str,
        master: &[(String, KvList)],
        replica: &[(String, KvList)],
    ) -> Result<(), EngineError> {
        for (uniqueid, kv) in master {
            let theirs = replica.iter().find(|(u, _)| u == uniqueid).map(|(_, k)| k);
            if theirs == Some(kv) {
                continue;
            }
            let mut out = KvList::new().with("USERID", userid);
            for (k, v) in kv.iter() {
                out.push(k, v.clone());
            }
            self.apply("SEEN", Value::KvList(out)).await?;
        }
        Ok(())
    }
}

/// How `APPLY MAILBOX` is built on each attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Changed records with `SINCE_*` (the replica checks it has not moved).
    Since,
    /// The same without `SINCE_*` (after a CRC mismatch, as sync_client).
    NoSince,
    /// Every record that differs, found by reading the replica in full.
    Full,
}

/// Splits `records` (indexes into it) into groups of one `APPLY MESSAGE`:
/// at most `max_messages` and about `max_bytes` each, and — so that reading
/// one group overlaps sending another — in at least four groups when there
/// are enough messages for that to pay (16 or more per group). The first
/// groups are small and double in size: the replica gets its first bodies
/// after a few files have been read, not a whole group; the last is not a
/// small remainder.
fn upload_groups(records: &[&Record], max_messages: usize, max_bytes: u64) -> Vec<Vec<usize>> {
    let per_group = (records.len() / 4).clamp(16, max_messages.max(16));
    let mut cap = per_group.min(FIRST_GROUP);
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut bytes = 0u64;
    for (i, r) in records.iter().enumerate() {
        let full = groups
            .last()
            .is_none_or(|g| g.len() >= cap || (bytes >= max_bytes && !g.is_empty()));
        if full {
            if !groups.is_empty() {
                cap = (cap * 2).min(per_group);
            }
            groups.push(Vec::new());
            bytes = 0;
        }
        bytes += r.size;
        if let Some(g) = groups.last_mut() {
            g.push(i);
        }
    }
    // The last group is not a small remainder: the replica stores it while
    // APPLY MAILBOX is built, and a few bodies would leave it waiting.
    if let [.., prev, last] = groups.as_mut_slice()
        && last.len() < prev.len() / 2
    {
        let mut both: Vec<usize> = prev.drain(..).chain(last.drain(..)).collect();
        *last = both.split_off(both.len() / 2);
        *prev = both;
    }
    groups
}

/// The header of an intermediate `sync_batchsize` step, as sync_client's
/// partial sync writes it (`sync_prepare_dlists` with `ispartial`).
fn partial_header(
    full: &MailboxState,
    remote: Option<&MailboxState>,
    last_uid: u32,
    highestmodseq: u64,
) -> KvList {
    let from_remote = |key: &str| -> Value {
        remote
            .and_then(|r| r.kvlist().get(key).cloned())
            .unwrap_or_else(|| Value::num(0))
    };
    let mut out = KvList::new();
    for (k, v) in full.header().iter() {
        let v = match k {
            "SYNC_CRC" => Value::num(0),
            // The annotation CRC is left out, so the replica does not check it.
            "SYNC_CRC_ANNOT" => continue,
            "LAST_UID" => Value::num(u64::from(last_uid)),
            "HIGHESTMODSEQ" => Value::num(highestmodseq),
            "RECENTUID" | "RECENTTIME" | "POP3_LAST_LOGIN" | "POP3_SHOW_AFTER" => from_remote(k),
            "LAST_APPENDDATE" => Value::num(0),
            _ => v.clone(),
        };
        out.push(k, v);
    }
    out
}

fn sub_kv(userid: &str, name: &str) -> Value {
    Value::kvlist(KvList::new().with("USERID", userid).with("MBOXNAME", name))
}

/// The INBOX of a userid in Cyrus's internal namespace (`alice` →
/// `user.alice`, `alice@example.com` → `example.com!user.alice`).
pub fn inbox_name(userid: &str) -> String {
    match userid.split_once('@') {
        Some((local, domain)) => format!("{domain}!user.{}", local.replace('.', "^")),
        None => format!("user.{}", userid.replace('.', "^")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(uid: u32, size: u64) -> Record {
        let kv = KvList::new()
            .with("UID", Value::num(u64::from(uid)))
            .with("MODSEQ", Value::num(1))
            .with("FLAGS", Value::list([]))
            .with("SIZE", Value::num(size))
            .with("GUID", "0123456789abcdef0123456789abcdef01234567");
        Record::from_owned(Value::KvList(kv)).unwrap()
    }

    fn groups(sizes: &[u64], max_messages: usize, max_bytes: u64) -> Vec<usize> {
        let records: Vec<Record> = sizes
            .iter()
            .enumerate()
            .map(|(i, s)| record(i as u32 + 1, *s))
            .collect();
        let refs: Vec<&Record> = records.iter().collect();
        let g = upload_groups(&refs, max_messages, max_bytes);
        let flat: Vec<usize> = g.iter().flatten().copied().collect();
        assert_eq!(
            flat,
            (0..sizes.len()).collect::<Vec<_>>(),
            "every record once, in order"
        );
        g.iter().map(Vec::len).collect()
    }

    #[test]
    fn upload_groups_overlap_reading_and_sending() {
        // Few messages: one group.
        assert_eq!(groups(&[100; 10], 1024, 64 << 20), vec![10]);
        // Enough for four groups of 16 or more.
        assert_eq!(groups(&[100; 100], 1024, 64 << 20), vec![25, 25, 25, 25]);
        // Many: small first groups, doubling, capped by the messages per
        // APPLY MESSAGE.
        assert_eq!(
            groups(&[100; 3000], 1024, 64 << 20),
            vec![32, 64, 128, 256, 512, 750, 750, 508]
        );
        assert_eq!(
            groups(&[100; 5000], 1024, 64 << 20),
            vec![32, 64, 128, 256, 512, 1024, 1024, 1024, 936]
        );
        // A small remainder is shared with the group before it.
        assert_eq!(
            groups(&[100; 2000], 1024, 64 << 20),
            vec![32, 64, 128, 256, 500, 500, 260, 260]
        );
        // Large bodies: a new group once the bytes are reached.
        assert_eq!(groups(&[30 << 20; 5], 1024, 64 << 20), vec![3, 2]);
        assert!(groups(&[], 1024, 64 << 20).is_empty());
    }
}
