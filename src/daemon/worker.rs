//! A worker: one source and one target session, replicating the actions of
//! the users sharded to it, in log order. A broken session is reopened with
//! exponential backoff (capped at `sync_reconnect_maxwait`) and the action is
//! tried again; nothing is dropped.
//!
//! One user must not stall the others: when the replica keeps breaking the
//! session on the same action although it accepts new connections (a
//! sync_server that dies on that user's data, an APPLY that outlasts
//! `sync_timeout`), or refuses the user's actions, the user is *held back*:
//! its actions go back to the channel (which keeps them on disk) and are not
//! tried again before the hold ends, which doubles with each failure.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::monitor::{ChannelMonitor, ChannelState, ErrorView, HeldView, unix_now};
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
    /// The user is held back: its `relog` entries wait for the hold to end
    /// rather than for the next run.
    pub held: bool,
}

/// A user held back after repeated failures.
#[derive(Debug, Clone)]
struct Hold {
    /// Failures in a row.
    failures: u32,
    /// No try before this.
    until: Instant,
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
    /// Users held back (`None`: the shared mailboxes' cohort).
    held: HashMap<Option<String>, Hold>,
}

/// Sessions the replica may break on one action, while it accepts new
/// ones, before the action's user is held back.
const BREAKS_PER_ACTION: u32 = 3;
/// A user's first hold; doubled per failure up to `sync_reconnect_maxwait`.
const HOLD_START: Duration = Duration::from_secs(10);

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
            held: HashMap::new(),
        }
    }

    /// When the earliest hold ends, if a user is held back.
    pub fn next_release(&self) -> Option<Instant> {
        self.held.values().map(|h| h.until).min()
    }

    /// Ends every hold now (the administrator asked for a run, or the
    /// held entries go back to the log): the next run tries those users.
    /// Their failure counts stay, so a user that fails again is held longer.
    pub fn release_holds(&mut self) {
        let now = Instant::now();
        for h in self.held.values_mut() {
            h.until = h.until.min(now);
        }
        // Status says "next try now", not the time the hold would have ended.
        let names: Vec<String> = self
            .held
            .keys()
            .map(|u| u.clone().unwrap_or_default())
            .collect();
        let now_unix = unix_now();
        self.monitor.update(|v| {
            for h in v.held.iter_mut().filter(|h| names.contains(&h.user)) {
                h.until_unix = h.until_unix.min(now_unix);
            }
        });
    }

    /// Holds `user` back after a failure; returns how long.
    fn hold(&mut self, user: &Option<String>, reason: &str) -> Duration {
        let failures = self.held.get(user).map_or(0, |h| h.failures) + 1;
        let cap = self
            .channel
            .reconnect_maxwait
            .unwrap_or(BACKOFF_MAX_DEFAULT)
            .max(HOLD_START);
        let delay = hold_delay(failures, cap);
        let until = Instant::now() + delay;
        self.held.insert(user.clone(), Hold { failures, until });
        let name = user.clone().unwrap_or_default();
        let reason = reason.to_string();
        self.monitor.update(|v| {
            v.held.retain(|h| h.user != name);
            v.held.push(HeldView {
                user: name.clone(),
                failures,
                until_unix: unix_now() + delay.as_secs(),
                reason: reason.clone(),
            });
        });
        delay
    }

    /// `user`'s actions all went through: no hold any more.
    fn unhold(&mut self, user: &Option<String>) {
        if self.held.remove(user).is_some() {
            let name = user.clone().unwrap_or_default();
            self.monitor.update(|v| v.held.retain(|h| h.user != name));
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
        if self
            .held
            .get(&batch.userid)
            .is_some_and(|h| Instant::now() < h.until)
        {
            outcome.relog = batch.actions.iter().flat_map(entries_of).collect();
            outcome.held = true;
            return outcome;
        }
        let applied_before = self.applied;
        // A refusal other than a busy mailbox holds the user back once its
        // other actions are done.
        let mut refused: Option<String> = None;
        let user = batch.userid.clone();
        self.monitor.update(|v| {
            if let Some(w) = v.workers.get_mut(self.id) {
                w.user = user.clone();
                w.since = Some(Instant::now());
            }
        });
        'actions: for (index, action) in batch.actions.iter().enumerate() {
            let mut breaks = 0;
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
                        breaks += 1;
                        if breaks >= BREAKS_PER_ACTION {
                            // The replica takes connections but not this
                            // action: hold the user back, go on with the
                            // others.
                            self.disconnected();
                            self.failures = 0;
                            let delay = self.hold(&batch.userid, &e.to_string());
                            self.report_held(batch, &e, breaks, delay);
                            outcome
                                .relog
                                .extend(batch.actions[index..].iter().flat_map(entries_of));
                            outcome.held = true;
                            break 'actions;
                        }
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
                            if !locked {
                                refused = Some(e.to_string());
                            }
                        }
                        break;
                    }
                }
            }
        }
        if outcome.held {
            // Held already: the replica kept breaking the session.
        } else if let Some(reason) = refused {
            self.hold(&batch.userid, &reason);
            outcome.held = true;
        } else if outcome.relog.is_empty() && !outcome.interrupted {
            self.unhold(&batch.userid);
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

    /// Says that `batch`'s user is held back, and why.
    fn report_held(&self, batch: &UserBatch, e: &EngineError, breaks: u32, delay: Duration) {
        let who = batch.userid.as_deref().unwrap_or("shared mailboxes");
        let message = format!(
            "{who} held back: the replica broke the session {breaks} times on the same action ({e}); its changes stay queued, next try in {}s",
            delay.as_secs()
        );
        let hint = Some(match e {
            EngineError::Proto(crate::proto::ProtoError::Timeout { .. }) => format!(
                "the replica needs longer than sync_timeout for this action of {who} (a very \
                 large mailbox or message?): raise sync_timeout, or see the replica's load; \
                 `s` in the dashboard retries now"
            ),
            _ => format!(
                "the replica accepts connections but fails on this user's data: see its syslog \
                 for the sync_server that ended (a partition the master uses for {who}'s \
                 mailboxes but the replica lacks, `partition-NAME` in its imapd.conf, ends it \
                 this way); `s` in the dashboard retries now"
            ),
        });
        self.monitor.event("error", message.clone());
        self.monitor.update(|v| {
            v.counters.errors += 1;
            v.last_error = Some(ErrorView {
                at_unix: unix_now(),
                code: e.cyrus_code().map(str::to_string),
                message,
                hint,
            });
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

/// How long a user is held back after `failures` failures in a row: 10 s,
/// doubled per failure, at most `cap`.
fn hold_delay(failures: u32, cap: Duration) -> Duration {
    (HOLD_START * 2u32.saturating_pow(failures.saturating_sub(1).min(16))).min(cap)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_double_from_ten_seconds_up_to_the_cap() {
        let cap = Duration::from_secs(20 * 60);
        let secs: Vec<u64> = (1..=9).map(|f| hold_delay(f, cap).as_secs()).collect();
        assert_eq!(secs, [10, 20, 40, 80, 160, 320, 640, 1200, 1200]);
        assert_eq!(hold_delay(u32::MAX, cap), cap);
        assert_eq!(hold_delay(1, Duration::from_secs(3)).as_secs(), 3);
    }
}
