//! The daemon's state as the JSON snapshot of the control socket and
//! `cyrsync status --json` (DESIGN.md §6).

use std::time::Instant;

use serde_json::{Value as Json, json};

use super::Daemon;
use super::monitor::{ChannelState, ChannelView, unix_now};
use crate::engine::Phase;

fn state(v: &ChannelView) -> Json {
    match &v.state {
        ChannelState::Idle => json!("Idle"),
        ChannelState::Syncing => json!("Syncing"),
        ChannelState::Paused => json!("Paused"),
        ChannelState::Stopped => json!("Stopped"),
        ChannelState::Backoff { until_unix, reason } => {
            json!({"Backoff": {"until_unix": until_unix, "reason": reason}})
        }
        ChannelState::Error { message } => json!({"Error": {"message": message}}),
    }
}

fn phase(p: Option<Phase>) -> Json {
    match p {
        None => json!("Idle"),
        Some(Phase::Get) => json!("Get"),
        Some(Phase::Reserve) => json!("Reserve"),
        Some(Phase::Message) => json!("Message"),
        Some(Phase::Apply) => json!("Apply"),
    }
}

/// One channel.
pub fn channel(v: &ChannelView) -> Json {
    let now = unix_now();
    let waiting = v.queue.log_lines + v.queue.run_entries;
    let lag = v
        .queue
        .oldest_waiting_unix
        .map(|t| now.saturating_sub(t) as f64);
    let rate = v.history.back().map(|h| h.1).unwrap_or(0.0);
    let master = v.sessions.iter().find(|s| s.side == "master");
    let replica = v.sessions.iter().find(|s| s.side == "replica");
    json!({
        "name": v.name,
        "replica": v.replica,
        "transport": replica.and_then(|s| s.transport.clone()),
        "tls": replica.and_then(|s| s.tls.clone()),
        "mechanism": replica.and_then(|s| s.mechanism.clone()),
        "source_transport": master.and_then(|s| s.transport.clone()),
        "state": state(v),
        "waiting": waiting,
        "queue": {
            "log_bytes": v.queue.log_bytes,
            "log_lines": v.queue.log_lines,
            "run_entries": v.queue.run_entries,
            "run_total": v.queue.run_total,
            "run_done": v.queue.run_done,
            "oldest_waiting_unix": v.queue.oldest_waiting_unix,
            "malformed": v.counters.malformed,
        },
        "lag_seconds": lag,
        "rate_per_sec": rate,
        "workers": v.workers.iter().enumerate().map(|(id, w)| json!({
            "id": id,
            "user": w.user,
            "mailbox": w.mailbox,
            "phase": phase(w.phase),
            "messages_done": w.messages_done,
            "messages_total": w.messages_total,
            "bytes_done": w.bytes_done,
            "bytes_total": 0,
            "rate_bytes_per_sec": w.since.map(|s| {
                let secs = s.elapsed().as_secs_f64();
                if secs > 0.0 { w.bytes_done as f64 / secs } else { 0.0 }
            }).unwrap_or(0.0),
        })).collect::<Vec<_>>(),
        "sessions": v.sessions.iter().map(|s| json!({
            "side": s.side,
            "peer": s.peer,
            "connected": s.connected,
            "in_flight": Json::Null,
            "in_flight_secs": Json::Null,
            "timeout_secs": v.timeout_secs,
            "reconnects": s.reconnects,
            "backoff_remaining_secs": s.backoff_until.and_then(|t| t.checked_duration_since(Instant::now())).map(|d| d.as_secs_f64()),
            "bytes_in": 0,
            "bytes_out": 0,
        })).collect::<Vec<_>>(),
        "counters": {
            "actions": v.counters.actions,
            "mailboxes": v.counters.mailboxes,
            "messages": v.counters.messages,
            "bytes": v.counters.bytes,
            "retries": v.counters.retries,
            "crc_mismatches": v.counters.crc_mismatches,
            "promotions": v.counters.promotions,
            "errors": v.counters.errors,
            "applies": v.counters.applies,
            "relogged": v.counters.relogged,
        },
        "last_error": v.last_error.as_ref().map(|e| json!({
            "at_unix": e.at_unix,
            "code": e.code,
            "message": e.message,
            "hint": e.hint,
        })),
        "history": v.history.iter().map(|(at, rate, lag)| json!({
            "at_unix": at, "actions_per_sec": rate, "lag_seconds": lag,
        })).collect::<Vec<_>>(),
    })
}

/// The whole daemon.
pub fn render(d: &Daemon) -> Json {
    let views: Vec<ChannelView> = d.monitors.iter().map(|m| m.view()).collect();
    let mut events: Vec<Json> = views
        .iter()
        .flat_map(|v| {
            v.events.iter().map(move |e| {
                let level = match e.level {
                    "error" => "Error",
                    "warn" => "Warn",
                    "notice" => "Notice",
                    _ => "Info",
                };
                json!({"at_unix": e.at_unix, "channel": v.name, "level": level, "text": e.text})
            })
        })
        .collect();
    events.sort_by_key(|e| e.get("at_unix").and_then(Json::as_u64).unwrap_or(0));
    let stopping = *d.stop.borrow();
    json!({
        "version": super::control::PROTOCOL_VERSION,
        "host": hostname(),
        "cyrsync_version": env!("CARGO_PKG_VERSION"),
        "started_at_unix": d.started_unix,
        "now_unix": unix_now(),
        "daemon_state": if stopping { "Stopping" } else { "Running" },
        "channels": views.iter().map(channel).collect::<Vec<_>>(),
        "events": events,
    })
}

fn hostname() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}
