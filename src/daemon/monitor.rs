//! The daemon's live state, written by channels and workers, read as
//! snapshots by `status`, the control socket and the TUI. Writers update small
//! pieces under a mutex and bump a version on a watch channel; readers copy.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use crate::engine::{Observer, Phase};
use crate::proto::session::{InFlight, SessionObserver};
use crate::proto::stream::Traffic;

/// Seconds since the epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// What a channel is doing.
#[derive(Debug, Clone, PartialEq)]
pub enum ChannelState {
    /// Waiting for log entries.
    Idle,
    /// Working through a log-run.
    Syncing,
    /// Waiting before reconnecting.
    Backoff {
        /// When the next attempt is due (unix seconds).
        until_unix: u64,
        /// Why.
        reason: String,
    },
    /// Paused by the administrator.
    Paused,
    /// Stopped (shutdown file, signal).
    Stopped,
    /// The last run failed.
    Error {
        /// Why.
        message: String,
    },
}

/// A worker's current job.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkerView {
    /// The user being replicated.
    pub user: Option<String>,
    /// The mailbox.
    pub mailbox: Option<String>,
    /// `None` when idle.
    pub phase: Option<Phase>,
    /// Messages uploaded of the current chunk.
    pub messages_done: u64,
    /// Messages to upload in the current chunk.
    pub messages_total: u64,
    /// Bytes uploaded.
    pub bytes_done: u64,
    /// When the job started.
    pub since: Option<Instant>,
}

/// A session's state as the status view shows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionView {
    /// `master` or `replica`.
    pub side: &'static str,
    /// `host:port`.
    pub peer: String,
    /// Connected now.
    pub connected: bool,
    /// csync / imap, TLS mode, SASL mechanism.
    pub transport: Option<String>,
    /// TLS verification mode, if TLS.
    pub tls: Option<String>,
    /// SASL mechanism.
    pub mechanism: Option<String>,
    /// Reconnections so far.
    pub reconnects: u64,
    /// Backoff deadline.
    pub backoff_until: Option<Instant>,
    /// The command waiting for its answer, and since when.
    pub in_flight: Option<(String, Instant)>,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes sent.
    pub bytes_out: u64,
}

/// Counters since start: the snapshot's own type.
pub use crate::status::Counters;

/// The last error with its Cyrus code and a hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorView {
    /// When (unix seconds).
    pub at_unix: u64,
    /// `IMAP_MAILBOX_LOCKED`, … if the server gave one.
    pub code: Option<String>,
    /// The message.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
}

/// A user held back after repeated failures (its entries wait in
/// `log-held`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldView {
    /// The userid (empty: the shared mailboxes).
    pub user: String,
    /// Failures in a row.
    pub failures: u32,
    /// Next try (unix seconds).
    pub until_unix: u64,
    /// The last failure.
    pub reason: String,
}

/// Log queue figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueView {
    /// Bytes waiting in `log`.
    pub log_bytes: u64,
    /// Lines waiting in `log`.
    pub log_lines: u64,
    /// Log entries in the current `log-run` (0 when no run is in progress).
    pub run_entries: u64,
    /// Actions in the current run (after coalescing).
    pub run_total: u64,
    /// Actions done in the current run.
    pub run_done: u64,
    /// Oldest waiting entry (unix seconds).
    pub oldest_waiting_unix: Option<u64>,
    /// Entries of held-back users waiting in `log-held`.
    pub held_entries: u64,
}

/// One entry of the recent-events ring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventView {
    /// When (unix seconds).
    pub at_unix: u64,
    /// `info`, `warn`, `error`.
    pub level: &'static str,
    /// What happened.
    pub text: String,
}

/// One line of the protocol tail: a command sent or its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolLineView {
    /// When (unix seconds).
    pub at_unix: u64,
    /// Worker index.
    pub worker: usize,
    /// `master` or `replica`.
    pub side: &'static str,
    /// `C` for a command, `S` for its answer.
    pub dir: char,
    /// The command's first line (shortened), or the answer with its time.
    pub text: String,
}

/// A channel's whole state.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelView {
    /// The channel name (`""` for the default).
    pub name: String,
    /// The replica endpoint.
    pub replica: String,
    /// State.
    pub state: ChannelState,
    /// Paused by the administrator.
    pub paused: bool,
    /// Queue.
    pub queue: QueueView,
    /// Workers.
    pub workers: Vec<WorkerView>,
    /// Sessions: per worker a master and a replica session.
    pub sessions: Vec<SessionView>,
    /// Counters.
    pub counters: Counters,
    /// Last error.
    pub last_error: Option<ErrorView>,
    /// Recent events, newest last.
    pub events: VecDeque<EventView>,
    /// (unix seconds, actions per second, lag seconds) samples, newest last.
    pub history: VecDeque<(u64, f64, f64)>,
    /// `sync_timeout` in seconds.
    pub timeout_secs: u64,
    /// The last commands and answers of all sessions, newest last.
    pub protocol: VecDeque<ProtocolLineView>,
    /// Users held back after repeated failures.
    pub held: Vec<HeldView>,
}

const EVENTS: usize = 64;
const PROTOCOL_TAIL: usize = 200;
const HISTORY: usize = 120;

/// Shared, cheap-to-clone handle on one channel's state.
#[derive(Debug, Clone)]
pub struct ChannelMonitor {
    view: Arc<Mutex<ChannelView>>,
    changed: watch::Sender<u64>,
}

impl ChannelMonitor {
    /// A monitor for a channel with `workers` workers.
    pub fn new(
        name: &str,
        replica: String,
        workers: usize,
        timeout_secs: u64,
        changed: watch::Sender<u64>,
    ) -> Self {
        let sessions = (0..workers)
            .flat_map(|_| {
                [
                    SessionView {
                        side: "master",
                        ..SessionView::default()
                    },
                    SessionView {
                        side: "replica",
                        ..SessionView::default()
                    },
                ]
            })
            .collect();
        ChannelMonitor {
            view: Arc::new(Mutex::new(ChannelView {
                name: name.to_string(),
                replica,
                state: ChannelState::Idle,
                paused: false,
                queue: QueueView::default(),
                workers: vec![WorkerView::default(); workers],
                sessions,
                counters: Counters::default(),
                last_error: None,
                events: VecDeque::new(),
                history: VecDeque::new(),
                timeout_secs,
                protocol: VecDeque::new(),
                held: Vec::new(),
            })),
            changed,
        }
    }

    fn lock(&self) -> MutexGuard<'_, ChannelView> {
        // A panic while holding the lock leaves plain data behind; keep going.
        self.view
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Changes the state with `f` and tells readers.
    pub fn update(&self, f: impl FnOnce(&mut ChannelView)) {
        f(&mut self.lock());
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Like [`update`](Self::update), but tells readers only when `f` says
    /// it changed something: an idle channel must not wake every
    /// subscriber each time it polls.
    pub fn update_if(&self, f: impl FnOnce(&mut ChannelView) -> bool) {
        if f(&mut self.lock()) {
            self.changed.send_modify(|v| *v = v.wrapping_add(1));
        }
    }

    /// A copy of the current state.
    pub fn view(&self) -> ChannelView {
        self.lock().clone()
    }

    /// Adds an event to the ring (and the log).
    pub fn event(&self, level: &'static str, text: String) {
        match level {
            "error" => tracing::error!(channel = %self.lock().name, "{text}"),
            "warn" => tracing::warn!(channel = %self.lock().name, "{text}"),
            "debug" => tracing::debug!(channel = %self.lock().name, "{text}"),
            _ => tracing::info!(channel = %self.lock().name, "{text}"),
        }
        self.update(|v| {
            v.events.push_back(EventView {
                at_unix: unix_now(),
                level,
                text,
            });
            while v.events.len() > EVENTS {
                v.events.pop_front();
            }
        });
    }

    /// Records a throughput/lag sample.
    pub fn sample(&self, actions_per_sec: f64, lag: f64) {
        self.update(|v| {
            v.history.push_back((unix_now(), actions_per_sec, lag));
            while v.history.len() > HISTORY {
                v.history.pop_front();
            }
        });
    }

    /// An observer feeding worker `id`'s progress.
    pub fn worker_observer(&self, id: usize) -> Arc<dyn Observer> {
        Arc::new(WorkerObserver {
            monitor: self.clone(),
            id,
        })
    }

    /// An observer feeding session `slot` (`2 * worker` for the master
    /// session, `2 * worker + 1` for the replica's).
    pub fn session_observer(&self, slot: usize) -> Arc<dyn SessionObserver> {
        Arc::new(SessionSlot {
            monitor: self.clone(),
            slot,
        })
    }
}

#[derive(Debug)]
struct SessionSlot {
    monitor: ChannelMonitor,
    slot: usize,
}

impl SessionSlot {
    fn record(&self, v: &mut ChannelView, dir: char, text: String) {
        let side = v.sessions.get(self.slot).map(|s| s.side).unwrap_or("?");
        v.protocol.push_back(ProtocolLineView {
            at_unix: unix_now(),
            worker: self.slot / 2,
            side,
            dir,
            text,
        });
        while v.protocol.len() > PROTOCOL_TAIL {
            v.protocol.pop_front();
        }
    }
}

impl SessionObserver for SessionSlot {
    fn sent(&self, what: &str, line: &str) {
        self.monitor.update(|v| {
            if let Some(s) = v.sessions.get_mut(self.slot) {
                // Pipelined commands: the oldest unanswered one is shown.
                if s.in_flight.is_none() {
                    s.in_flight = Some((what.to_string(), Instant::now()));
                }
            }
            self.record(v, 'C', line.to_string());
        });
    }

    fn answered(
        &self,
        _what: &str,
        outcome: &str,
        elapsed: std::time::Duration,
        t: Traffic,
        waiting: Option<&InFlight>,
    ) {
        self.monitor.update(|v| {
            if let Some(s) = v.sessions.get_mut(self.slot) {
                s.in_flight = waiting.map(|w| (w.what.clone(), w.since));
                s.bytes_in = t.wire_in;
                s.bytes_out = t.wire_out;
            }
            self.record(v, 'S', format!("{outcome} ({} ms)", elapsed.as_millis()));
        });
    }
}

#[derive(Debug)]
struct WorkerObserver {
    monitor: ChannelMonitor,
    id: usize,
}

impl Observer for WorkerObserver {
    fn phase(&self, mailbox: &str, phase: Phase) {
        let id = self.id;
        self.monitor.update(|v| {
            if let Some(w) = v.workers.get_mut(id) {
                w.mailbox = Some(mailbox.to_string());
                w.phase = Some(phase);
                if phase != Phase::Message {
                    w.messages_done = 0;
                    w.messages_total = 0;
                }
            }
        });
    }

    fn upload(&self, done: u64, total: u64, bytes: u64) {
        let id = self.id;
        self.monitor.update(|v| {
            if let Some(w) = v.workers.get_mut(id) {
                w.messages_done = done;
                w.messages_total = total;
                w.bytes_done = bytes;
            }
        });
    }
}
