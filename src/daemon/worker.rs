//! A worker: one source and one target session, replicating the actions of
//! the users sharded to it, in log order. A broken session is reopened with
//! exponential backoff (capped at `sync_reconnect_maxwait`) and the action is
//! tried again; nothing is dropped.

use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::monitor::{ChannelMonitor, ChannelState, ErrorView, unix_now};
use crate::cache::TargetCache;
use crate::config::ChannelConfig;
use crate::engine::{CacheUse, Engine, EngineError, EngineOptions};
use crate::proto::session::{ConnectOptions, Session};
use crate::source::local::LocalReader;
use crate::synclog::{LogEntry, SyncAction, UserBatch};

/// What became of a user's actions.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Actions done.
    pub done: u64,
    /// Entries to write back to the log (retry on a later run).
    pub relog: Vec<LogEntry>,
    /// The run was interrupted by shutdown: `log-run` must be kept.
    pub interrupted: bool,
    /// `APPLY` commands sent to the replica (0: the replica already agreed).
    pub applied: u64,
}

/// One worker of a channel.
#[derive(Debug)]
pub struct Worker {
    id: usize,
    channel: ChannelConfig,
    engine: Option<Engine>,
    monitor: ChannelMonitor,
    failures: u32,
    /// The engine's counters already added to the channel's.
    seen: crate::engine::SyncStats,
    /// `APPLY`s sent over every session so far.
    applied: u64,
    /// The channel's target-state cache, shared by its workers.
    cache: Option<std::sync::Arc<TargetCache>>,
}

/// First reconnect delay; doubled per failure up to `sync_reconnect_maxwait`.
const BACKOFF_START: Duration = Duration::from_secs(1);
/// `sync_reconnect_maxwait`'s default in Cyrus (20 minutes).
const BACKOFF_MAX_DEFAULT: Duration = Duration::from_secs(20 * 60);

impl Worker {
    /// A worker that will connect when it first has work.
    pub fn new(id: usize, channel: ChannelConfig, monitor: ChannelMonitor) -> Worker {
        Worker {
            id,
            channel,
            engine: None,
            monitor,
            failures: 0,
            seen: Default::default(),
            applied: 0,
            cache: None,
        }
    }

    /// Believes and keeps the channel's target-state cache (shared by the
    /// workers of one channel: one database handle per channel).
    pub fn with_cache(mut self, cache: Option<std::sync::Arc<TargetCache>>) -> Worker {
        self.cache = cache;
        self
    }

    async fn connect(&mut self) -> Result<(), EngineError> {
        let target =
            ConnectOptions::replica(&self.channel).ok_or_else(|| EngineError::Diverged {
                mailbox: String::new(),
                detail: "the channel has no replica".into(),
            })?;
        let mut source = ConnectOptions::source(&self.channel);
        source.enable_sieve_mailbox = true;
        // Both at once: each side's fork, TLS and SASL round trips overlap,
        // which is most of the first run's latency after a start.
        let (mut s, mut t) =
            tokio::try_join!(Session::connect(&source), Session::connect(&target))?;
        let id = self.id;
        s.set_observer(self.monitor.session_observer(2 * id));
        t.set_observer(self.monitor.session_observer(2 * id + 1));
        let (si, ti) = (s.info().clone(), t.info().clone());
        self.monitor.update(|v| {
            for (slot, info) in [(2 * id, &si), (2 * id + 1, &ti)] {
                if let Some(sv) = v.sessions.get_mut(slot) {
                    sv.peer = info.peer.clone();
                    sv.connected = true;
                    sv.transport = Some(info.transport.to_string());
                    sv.tls = info.tls.map(|m| m.to_string());
                    sv.mechanism = info.mechanism.map(|m| m.to_string());
                    sv.backoff_until = None;
                }
            }
        });
        let mut engine = Engine::new(
            s,
            t,
            EngineOptions {
                batch_size: self.channel.batch_size as usize,
                ..EngineOptions::default()
            },
        );
        engine.set_observer(self.monitor.worker_observer(self.id));
        if let Some(reader) = LocalReader::for_channel(&self.channel) {
            engine.set_local_reader(reader);
        }
        if let Some(cache) = &self.cache {
            engine.set_cache(cache.clone(), CacheUse::Read);
        }
        self.engine = Some(engine);
        self.seen = Default::default();
        Ok(())
    }

    fn disconnected(&mut self) {
        self.engine = None;
        let id = self.id;
        self.monitor.update(|v| {
            for slot in [2 * id, 2 * id + 1] {
                if let Some(sv) = v.sessions.get_mut(slot) {
                    sv.connected = false;
                    sv.in_flight = None;
                }
            }
        });
    }

    fn backoff_delay(&self) -> Duration {
        let cap = self
            .channel
            .reconnect_maxwait
            .unwrap_or(BACKOFF_MAX_DEFAULT)
            .max(BACKOFF_START);
        let exp = self.failures.saturating_sub(1).min(16);
        (BACKOFF_START * 2u32.saturating_pow(exp)).min(cap)
    }

    /// Replicates one user's actions in order. Returns early, with
    /// `interrupted`, when `stop` turns true during a backoff.
    pub async fn run_user(
        &mut self,
        batch: &UserBatch,
        stop: &mut watch::Receiver<bool>,
    ) -> Outcome {
        let mut outcome = Outcome::default();
        let applied_before = self.applied;
        let user = batch.userid.clone();
        self.monitor.update(|v| {
            if let Some(w) = v.workers.get_mut(self.id) {
                w.user = user.clone();
                w.since = Some(Instant::now());
            }
        });
        for action in &batch.actions {
            loop {
                if *stop.borrow() {
                    outcome.interrupted = true;
                    return outcome;
                }
                if self.engine.is_none()
                    && let Err(e) = self.connect().await
                {
                    self.failures += 1;
                    let delay = self.backoff_delay();
                    self.report_error(&e, Some(delay));
                    self.disconnected();
                    if wait_or_stop(delay, stop).await {
                        outcome.interrupted = true;
                        return outcome;
                    }
                    continue;
                }
                match self.perform(action, batch.userid.as_deref()).await {
                    Ok(()) => {
                        self.failures = 0;
                        outcome.done += 1;
                        self.publish_stats();
                        break;
                    }
                    Err(e) if e.breaks_sessions() => {
                        // Connection lost or timed out: reconnect and retry
                        // the same action (sync is state comparison, so a
                        // replay is safe).
                        self.failures += 1;
                        self.monitor.update(|v| {
                            v.counters.retries += 1;
                            for slot in [2 * self.id, 2 * self.id + 1] {
                                if let Some(sv) = v.sessions.get_mut(slot) {
                                    sv.reconnects += 1;
                                }
                            }
                        });
                        let delay = self.backoff_delay();
                        self.report_error(&e, Some(delay));
                        self.disconnected();
                        if wait_or_stop(delay, stop).await {
                            outcome.interrupted = true;
                            return outcome;
                        }
                    }
                    Err(e) => {
                        // A server refused this action: promote a mailbox
                        // action to a user sync as Cyrus does; if that fails
                        // too, write it back to the log for a later run.
                        let locked = e.cyrus_code() == Some("IMAP_MAILBOX_LOCKED");
                        let promoted = match (&batch.userid, locked) {
                            (Some(u), false) if !matches!(action, SyncAction::User(_)) => {
                                self.monitor.update(|v| v.counters.promotions += 1);
                                match self.engine.as_mut() {
                                    Some(eng) => eng.sync_user(u).await.is_ok(),
                                    None => false,
                                }
                            }
                            _ => false,
                        };
                        if promoted {
                            outcome.done += 1;
                        } else {
                            self.report_error(&e, None);
                            outcome.relog.extend(entries_of(action));
                            self.monitor.update(|v| v.counters.relogged += 1);
                        }
                        break;
                    }
                }
            }
        }
        self.publish_stats();
        outcome.applied = self.applied - applied_before;
        self.monitor.update(|v| {
            if let Some(w) = v.workers.get_mut(self.id) {
                *w = Default::default();
            }
        });
        outcome
    }

    async fn perform(
        &mut self,
        action: &SyncAction,
        userid: Option<&str>,
    ) -> Result<(), EngineError> {
        let Some(engine) = self.engine.as_mut() else {
            return Ok(());
        };
        match action {
            SyncAction::Mailboxes(names) => engine.sync_mailboxes(names).await,
            SyncAction::Unmailbox(name) | SyncAction::Annotation(name) => {
                if name.is_empty() {
                    // Server annotations are not replicated by the log here.
                    return Ok(());
                }
                engine.sync_mailboxes(std::slice::from_ref(name)).await
            }
            SyncAction::Quota(root) => engine.sync_quota(root).await,
            SyncAction::Seen(um) | SyncAction::Sub(um) => engine.sync_meta(&um.userid).await,
            SyncAction::Meta(u) => engine.sync_meta(u).await,
            SyncAction::User(u) => engine.sync_user(u).await,
            SyncAction::Unuser(u) => engine.unuser(u).await,
        }
        .map_err(|e| {
            tracing::debug!(user = userid.unwrap_or(""), "action failed: {e}");
            e
        })
    }

    /// Sends `RESTART` between runs, as sync_client does.
    pub async fn restart(&mut self) {
        if let Some(e) = self.engine.as_mut()
            && e.restart().await.is_err()
        {
            self.disconnected();
        }
    }

    fn publish_stats(&mut self) {
        let Some(engine) = self.engine.as_ref() else {
            return;
        };
        let now = engine.stats().clone();
        let was = std::mem::replace(&mut self.seen, now.clone());
        self.applied += now.applies.saturating_sub(was.applies);
        self.monitor.update(|v| {
            let c = &mut v.counters;
            c.mailboxes += now.mailboxes_updated.saturating_sub(was.mailboxes_updated);
            c.messages += now.messages_uploaded.saturating_sub(was.messages_uploaded);
            c.bytes += now.bytes_uploaded.saturating_sub(was.bytes_uploaded);
            c.applies += now.applies.saturating_sub(was.applies);
            c.crc_mismatches += now.crc_mismatches.saturating_sub(was.crc_mismatches);
            c.local_reads += now.local_reads.saturating_sub(was.local_reads);
            c.local_fallbacks += now.local_fallbacks.saturating_sub(was.local_fallbacks);
            c.listed_locally += now.listed_locally.saturating_sub(was.listed_locally);
            c.cache_hits += now.cache_hits.saturating_sub(was.cache_hits);
            c.cache_misses += now.cache_misses.saturating_sub(was.cache_misses);
            c.cache_invalidations += now
                .cache_invalidations
                .saturating_sub(was.cache_invalidations);
        });
    }

    fn report_error(&self, e: &EngineError, backoff: Option<Duration>) {
        let code = e.cyrus_code().map(str::to_string);
        let hint = hint_for(e);
        let message = e.to_string();
        self.monitor.event(
            "error",
            match backoff {
                Some(d) => format!("{message}; retrying in {}s", d.as_secs()),
                None => message.clone(),
            },
        );
        self.monitor.update(|v| {
            v.counters.errors += 1;
            v.last_error = Some(ErrorView {
                at_unix: unix_now(),
                code,
                message: message.clone(),
                hint,
            });
            if let Some(d) = backoff {
                v.state = ChannelState::Backoff {
                    until_unix: unix_now() + d.as_secs(),
                    reason: message,
                };
                for slot in [2 * self.id, 2 * self.id + 1] {
                    if let Some(sv) = v.sessions.get_mut(slot) {
                        sv.backoff_until = Some(Instant::now() + d);
                    }
                }
            }
        });
    }
}

/// Sleeps `delay` unless `stop` turns true first; returns whether it did.
async fn wait_or_stop(delay: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    let stopped = tokio::select! {
        _ = tokio::time::sleep(delay) => None,
        _ = stop.wait_for(|s| *s) => Some(true),
    };
    stopped.unwrap_or_else(|| *stop.borrow())
}

/// The log entries that re-create `action` on a later run.
pub fn entries_of(action: &SyncAction) -> Vec<LogEntry> {
    match action {
        SyncAction::Mailboxes(names) => names
            .iter()
            .map(|n| LogEntry::Mailbox {
                mboxname: n.clone(),
            })
            .collect(),
        SyncAction::Quota(root) => vec![LogEntry::Quota { root: root.clone() }],
        SyncAction::Annotation(n) => vec![LogEntry::Annotation {
            mboxname: n.clone(),
        }],
        SyncAction::Seen(um) => vec![LogEntry::Seen {
            userid: um.userid.clone(),
            mboxname: um.mboxname.clone(),
        }],
        SyncAction::Sub(um) => vec![LogEntry::Sub {
            userid: um.userid.clone(),
            mboxname: um.mboxname.clone(),
        }],
        SyncAction::Unmailbox(n) => vec![LogEntry::Unmailbox {
            mboxname: n.clone(),
        }],
        SyncAction::Meta(u) => vec![LogEntry::Meta { userid: u.clone() }],
        SyncAction::User(u) => vec![LogEntry::User { userid: u.clone() }],
        SyncAction::Unuser(u) => vec![LogEntry::Unuser { userid: u.clone() }],
    }
}

/// A plain-language hint for the usual failures.
pub fn hint_for(e: &EngineError) -> Option<String> {
    use crate::proto::ProtoError as P;
    let EngineError::Proto(p) = e else {
        return None;
    };
    Some(match p {
        P::Timeout { .. } => {
            "the peer stopped answering within sync_timeout; the work is retried after reconnecting"
                .into()
        }
        P::Tls { .. } | P::TlsRequired { .. } | P::CertificateRejected { .. } => {
            "see `cyrsync check` for the certificate and the line to pin it".into()
        }
        P::No { code: Some(c), .. } if c == "IMAP_MAILBOX_LOCKED" => {
            "the mailbox was busy; the action is retried on a later run".into()
        }
        P::No { code: Some(c), .. } if c == "IMAP_SYNC_CHECKSUM" => {
            "master and replica disagree on a mailbox; `cyrsync verify -u USER` shows how".into()
        }
        P::No { code: Some(c), .. } if c == "IMAP_PERMISSION_DENIED" => {
            "the replication account must be listed in admins: on that server".into()
        }
        P::Connect { .. }
        | P::AuthFailed { .. }
        | P::NotAdmin { .. }
        | P::Sasl { .. }
        | P::MissingCredential { .. }
        | P::Banner { .. }
        | P::NoReplication { .. } => p.hint(&crate::proto::diagnosis::HintContext::default()),
        _ => return None,
    })
}
