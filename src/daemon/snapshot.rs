//! Builds the status [`Snapshot`] (DESIGN.md §6) from the channel monitors,
//! for the control socket and `cyrsync status`.

use std::time::Instant;

use super::Daemon;
use super::monitor::{ChannelState as S, ChannelView, unix_now};
use crate::engine::Phase;
use crate::status::{
    ChannelState, ChannelStatus, ErrorInfo, Event, HeldUser, HistoryPoint, ProtocolLine, Queue,
    Session, Snapshot, Worker,
};

fn state(v: &ChannelView) -> ChannelState {
    match &v.state {
        S::Idle => ChannelState::Idle,
        S::Syncing => ChannelState::Syncing,
        S::Paused => ChannelState::Paused,
        S::Stopped => ChannelState::Stopped,
        S::Backoff { until_unix, reason } => ChannelState::Backoff {
            until_unix: *until_unix,
            reason: reason.clone(),
        },
        S::Error { message } => ChannelState::Error {
            message: message.clone(),
        },
    }
}

fn phase(p: Option<Phase>) -> String {
    match p {
        None => "Idle",
        Some(Phase::Get) => "Get",
        Some(Phase::Reserve) => "Reserve",
        Some(Phase::Message) => "Message",
        Some(Phase::Apply) => "Apply",
    }
    .to_string()
}

/// One channel.
pub fn channel(v: &ChannelView) -> ChannelStatus {
    let now = unix_now();
    let replica = v.sessions.iter().find(|s| s.side == "replica");
    let master = v.sessions.iter().find(|s| s.side == "master");
    ChannelStatus {
        name: v.name.clone(),
        replica: v.replica.clone(),
        transport: replica.and_then(|s| s.transport.clone()),
        tls: replica.and_then(|s| s.tls.clone()),
        mechanism: replica.and_then(|s| s.mechanism.clone()),
        source_transport: master.and_then(|s| s.transport.clone()),
        state: state(v),
        waiting: v.queue.log_lines + v.queue.run_entries + v.queue.held_entries,
        queue: Queue {
            log_bytes: v.queue.log_bytes,
            log_lines: v.queue.log_lines,
            run_entries: v.queue.run_entries,
            run_total: v.queue.run_total,
            run_done: v.queue.run_done,
            oldest_waiting_unix: v.queue.oldest_waiting_unix,
            malformed: v.counters.malformed,
            held_entries: v.queue.held_entries,
        },
        lag_seconds: v
            .queue
            .oldest_waiting_unix
            .map(|t| now.saturating_sub(t) as f64),
        rate_per_sec: v.history.back().map(|h| h.1).unwrap_or(0.0),
        workers: v
            .workers
            .iter()
            .enumerate()
            .map(|(id, w)| Worker {
                id: id as u64,
                user: w.user.clone(),
                mailbox: w.mailbox.clone(),
                phase: phase(w.phase),
                messages_done: w.messages_done,
                messages_total: w.messages_total,
                bytes_done: w.bytes_done,
                bytes_total: 0,
                rate_bytes_per_sec: w
                    .since
                    .map(|s| s.elapsed().as_secs_f64())
                    .filter(|secs| *secs > 0.0)
                    .map(|secs| w.bytes_done as f64 / secs)
                    .unwrap_or(0.0),
            })
            .collect(),
        sessions: v
            .sessions
            .iter()
            .map(|s| Session {
                side: s.side.to_string(),
                peer: s.peer.clone(),
                connected: s.connected,
                in_flight: s.in_flight.as_ref().map(|(w, _)| w.clone()),
                in_flight_secs: s.in_flight.as_ref().map(|(_, t)| t.elapsed().as_secs_f64()),
                timeout_secs: v.timeout_secs,
                reconnects: s.reconnects,
                backoff_remaining_secs: s
                    .backoff_until
                    .and_then(|t| t.checked_duration_since(Instant::now()))
                    .map(|d| d.as_secs_f64()),
                bytes_in: s.bytes_in,
                bytes_out: s.bytes_out,
            })
            .collect(),
        counters: v.counters.clone(),
        last_error: v.last_error.as_ref().map(|e| ErrorInfo {
            at_unix: e.at_unix,
            code: e.code.clone(),
            message: e.message.clone(),
            hint: e.hint.clone(),
        }),
        history: v
            .history
            .iter()
            .map(|(at, rate, lag)| HistoryPoint {
                at_unix: *at,
                actions_per_sec: *rate,
                lag_seconds: *lag,
            })
            .collect(),
        protocol: v
            .protocol
            .iter()
            .map(|p| ProtocolLine {
                at_unix: p.at_unix,
                worker: p.worker as u64,
                side: p.side.to_string(),
                dir: p.dir.to_string(),
                text: p.text.clone(),
            })
            .collect(),
        held: v
            .held
            .iter()
            .map(|h| HeldUser {
                user: h.user.clone(),
                failures: h.failures,
                retry_at_unix: h.until_unix,
                reason: h.reason.clone(),
            })
            .collect(),
    }
}

/// The whole daemon.
pub fn snapshot(d: &Daemon) -> Snapshot {
    let views: Vec<ChannelView> = d.monitors.iter().map(|m| m.view()).collect();
    let mut events: Vec<Event> = views
        .iter()
        .flat_map(|v| {
            v.events.iter().map(move |e| Event {
                at_unix: e.at_unix,
                channel: v.name.clone(),
                level: match e.level {
                    "error" => "Error",
                    "warn" => "Warn",
                    "notice" => "Notice",
                    _ => "Info",
                }
                .to_string(),
                text: e.text.clone(),
            })
        })
        .collect();
    events.sort_by_key(|e| e.at_unix);
    Snapshot {
        version: super::control::PROTOCOL_VERSION,
        host: rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned(),
        cyrsync_version: env!("CARGO_PKG_VERSION").to_string(),
        started_at_unix: d.started_unix,
        now_unix: unix_now(),
        daemon_state: if *d.stop.borrow() {
            "Stopping"
        } else {
            "Running"
        }
        .to_string(),
        channels: views.iter().map(channel).collect(),
        events,
    }
}

/// The snapshot as JSON, for the control socket.
pub fn render(d: &Daemon) -> serde_json::Value {
    serde_json::to_value(snapshot(d)).unwrap_or(serde_json::Value::Null)
}
