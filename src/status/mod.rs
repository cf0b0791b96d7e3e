//! The status snapshot (DESIGN.md §6): what the daemon publishes on its
//! control socket and what `cyrsync status` and the TUI read. Plain data; the
//! daemon builds it from its monitors (`daemon::snapshot`), readers only
//! deserialize it. Unknown fields are ignored and missing ones take defaults,
//! so that a newer daemon and an older TUI still understand each other within
//! one protocol version.

pub mod client;
pub mod format;

use serde::{Deserialize, Serialize};

/// The whole daemon at one instant.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Snapshot {
    /// Control protocol version.
    pub version: u64,
    /// The host the daemon runs on.
    pub host: String,
    /// The daemon's version.
    pub cyrsync_version: String,
    /// When it started (unix seconds).
    pub started_at_unix: u64,
    /// When this snapshot was taken (unix seconds).
    pub now_unix: u64,
    /// `Running` or `Stopping`.
    pub daemon_state: String,
    /// Every channel, in configuration order.
    pub channels: Vec<ChannelStatus>,
    /// Recent events of all channels, oldest first.
    pub events: Vec<Event>,
}

/// What a channel is doing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub enum ChannelState {
    /// Waiting for log entries.
    #[default]
    Idle,
    /// Working through a log-run.
    Syncing,
    /// Paused by the administrator.
    Paused,
    /// Stopped.
    Stopped,
    /// Waiting before reconnecting.
    Backoff {
        /// When the next attempt is due (unix seconds).
        until_unix: u64,
        /// Why.
        reason: String,
    },
    /// Failing.
    Error {
        /// Why.
        message: String,
    },
}

impl ChannelState {
    /// A short word for tables.
    pub fn word(&self) -> &'static str {
        match self {
            ChannelState::Idle => "idle",
            ChannelState::Syncing => "syncing",
            ChannelState::Paused => "paused",
            ChannelState::Stopped => "stopped",
            ChannelState::Backoff { .. } => "backoff",
            ChannelState::Error { .. } => "error",
        }
    }
}

/// One channel.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChannelStatus {
    /// The name; empty for the default channel.
    pub name: String,
    /// The replica endpoint.
    pub replica: String,
    /// `csync` or `imap` to the replica.
    pub transport: Option<String>,
    /// TLS verification mode, if TLS.
    pub tls: Option<String>,
    /// SASL mechanism.
    pub mechanism: Option<String>,
    /// Transport to the master.
    pub source_transport: Option<String>,
    /// State.
    pub state: ChannelState,
    /// Log entries waiting (in `log` and the current `log-run`).
    pub waiting: u64,
    /// Queue detail.
    pub queue: Queue,
    /// Age of the oldest waiting entry, in seconds.
    pub lag_seconds: Option<f64>,
    /// Recent actions per second.
    pub rate_per_sec: f64,
    /// Workers.
    pub workers: Vec<Worker>,
    /// Sessions (a master and a replica session per worker).
    pub sessions: Vec<Session>,
    /// Counters since start.
    pub counters: Counters,
    /// The last error.
    pub last_error: Option<ErrorInfo>,
    /// Throughput and lag samples, oldest first.
    pub history: Vec<HistoryPoint>,
    /// The last commands and answers of the channel's sessions, oldest
    /// first: first lines only, never a SASL exchange.
    pub protocol: Vec<ProtocolLine>,
    /// Users held back after repeated failures: their changes wait (in
    /// `log-held`) until the next try, so that they do not stall the others.
    pub held: Vec<HeldUser>,
}

/// A user held back after repeated failures.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HeldUser {
    /// The userid; empty for the shared (non-user) mailboxes.
    pub user: String,
    /// Failures in a row.
    pub failures: u32,
    /// Next try (unix seconds).
    pub retry_at_unix: u64,
    /// The last failure.
    pub reason: String,
}

impl ChannelStatus {
    /// The name as administrators write it (`""` for the default channel).
    pub fn display_name(&self) -> &str {
        if self.name.is_empty() {
            "\"\""
        } else {
            &self.name
        }
    }
}

/// Log queue.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Queue {
    /// Bytes in `log`.
    pub log_bytes: u64,
    /// Lines in `log`.
    pub log_lines: u64,
    /// Entries in the current `log-run`.
    pub run_entries: u64,
    /// Actions of the current run.
    pub run_total: u64,
    /// Actions done.
    pub run_done: u64,
    /// Oldest waiting entry (unix seconds).
    pub oldest_waiting_unix: Option<u64>,
    /// Malformed lines set aside.
    pub malformed: u64,
    /// Entries of held-back users, waiting in `log-held` (counted in
    /// `waiting`).
    pub held_entries: u64,
}

/// One worker.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Worker {
    /// Index.
    pub id: u64,
    /// The user it works on.
    pub user: Option<String>,
    /// The mailbox.
    pub mailbox: Option<String>,
    /// `Idle`, `Get`, `Reserve`, `Message`, `Apply`.
    pub phase: String,
    /// Messages uploaded in the current chunk.
    pub messages_done: u64,
    /// Messages to upload in the current chunk.
    pub messages_total: u64,
    /// Bytes uploaded.
    pub bytes_done: u64,
    /// Bytes to upload, when known.
    pub bytes_total: u64,
    /// Upload rate.
    pub rate_bytes_per_sec: f64,
}

/// One session.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Session {
    /// `master` or `replica`.
    pub side: String,
    /// `host:port`.
    pub peer: String,
    /// Connected.
    pub connected: bool,
    /// The command waiting for its answer.
    pub in_flight: Option<String>,
    /// How long it has waited.
    pub in_flight_secs: Option<f64>,
    /// `sync_timeout`.
    pub timeout_secs: u64,
    /// Reconnections.
    pub reconnects: u64,
    /// Backoff left before the next connection attempt.
    pub backoff_remaining_secs: Option<f64>,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes sent.
    pub bytes_out: u64,
}

/// Counters since start.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counters {
    /// Actions done.
    pub actions: u64,
    /// Mailboxes updated.
    pub mailboxes: u64,
    /// Messages uploaded.
    pub messages: u64,
    /// Bytes uploaded.
    pub bytes: u64,
    /// Retries.
    pub retries: u64,
    /// CRC mismatches.
    pub crc_mismatches: u64,
    /// Promotions to user syncs.
    pub promotions: u64,
    /// Errors.
    pub errors: u64,
    /// APPLY commands.
    pub applies: u64,
    /// Actions written back to the log.
    pub relogged: u64,
    /// Malformed log lines set aside.
    pub malformed: u64,
    /// Mailboxes read from the master's index files.
    pub local_reads: u64,
    /// Mailboxes the local reader left to `GET FULLMAILBOX` (it could not
    /// vouch for the files: annotations, a concurrent change, a damaged or
    /// unknown index).
    pub local_fallbacks: u64,
    /// Master mailbox entries rebuilt from its files instead of asked for
    /// with `GET MAILBOXES`.
    pub listed_locally: u64,
    /// Mailboxes whose replica state came from the target-state cache.
    pub cache_hits: u64,
    /// Mailboxes the cache could not answer for (the replica was read).
    pub cache_misses: u64,
    /// Cache entries dropped (stale, failed, renamed, deleted).
    pub cache_invalidations: u64,
}

/// An error with its Cyrus code and a hint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ErrorInfo {
    /// When (unix seconds).
    pub at_unix: u64,
    /// `IMAP_MAILBOX_LOCKED`, …
    pub code: Option<String>,
    /// The message.
    pub message: String,
    /// What to do.
    pub hint: Option<String>,
}

/// A throughput/lag sample.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HistoryPoint {
    /// When (unix seconds).
    pub at_unix: u64,
    /// Actions per second.
    pub actions_per_sec: f64,
    /// Lag in seconds.
    pub lag_seconds: f64,
}

/// A recent event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Event {
    /// When (unix seconds).
    pub at_unix: u64,
    /// Channel name.
    pub channel: String,
    /// `Info`, `Notice`, `Warn`, `Error`.
    pub level: String,
    /// What happened.
    pub text: String,
}

/// One line of the protocol tail.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProtocolLine {
    /// When (unix seconds).
    pub at_unix: u64,
    /// Worker index.
    pub worker: u64,
    /// `master` or `replica`.
    pub side: String,
    /// `C` for a command, `S` for its answer.
    pub dir: String,
    /// The command's first line (shortened), or the answer and its time.
    pub text: String,
}
