//! `cyrsync status [--json] [--socket PATH]`: asks the running daemon for a
//! snapshot over the control socket and prints it for a person (a compact
//! table) or a monitoring script (JSON). Exits non-zero when no daemon
//! answers or a channel is in error.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value as Json;

use crate::status::client::{Client, ClientError};

/// Connects, says hello and returns one snapshot as the daemon sent it.
pub fn fetch(path: &Path) -> Result<Json, ClientError> {
    Client::connect(path, Some(std::time::Duration::from_secs(10)))?.snapshot_json()
}

/// Whether any channel is in error (or backing off after one, or holding
/// users back after repeated failures).
pub fn has_error(snapshot: &Json) -> bool {
    channels(snapshot).any(|c| {
        c.get("state")
            .is_some_and(|s| s.get("Error").is_some() || s.get("Backoff").is_some())
            || c.get("held")
                .and_then(Json::as_array)
                .is_some_and(|h| !h.is_empty())
    })
}

fn channels(snapshot: &Json) -> impl Iterator<Item = &Json> {
    snapshot
        .get("channels")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
}

fn state_text(state: Option<&Json>) -> String {
    match state {
        Some(Json::String(s)) => s.to_lowercase(),
        Some(Json::Object(o)) => match o.iter().next() {
            Some((k, v)) if k == "Backoff" => format!(
                "backoff ({})",
                v.get("reason").and_then(Json::as_str).unwrap_or("")
            ),
            Some((k, v)) => format!(
                "{} ({})",
                k.to_lowercase(),
                v.get("message").and_then(Json::as_str).unwrap_or("")
            ),
            None => "?".into(),
        },
        _ => "?".into(),
    }
}

/// The snapshot as a table an administrator reads at a glance.
pub fn render(snapshot: &Json) -> String {
    let num = |v: &Json, k: &str| v.get(k).and_then(Json::as_u64).unwrap_or(0);
    let mut out = String::new();
    let uptime = num(snapshot, "now_unix").saturating_sub(num(snapshot, "started_at_unix"));
    let _ = writeln!(
        out,
        "cyrsync {} on {}, up {}s, {}",
        snapshot
            .get("cyrsync_version")
            .and_then(Json::as_str)
            .unwrap_or("?"),
        snapshot.get("host").and_then(Json::as_str).unwrap_or("?"),
        uptime,
        snapshot
            .get("daemon_state")
            .and_then(Json::as_str)
            .unwrap_or("?")
            .to_lowercase()
    );
    let _ = writeln!(
        out,
        "{:<10} {:<24} {:<22} {:>8} {:>8} {:>8} {:>7}",
        "CHANNEL", "REPLICA", "STATE", "QUEUE", "LAG", "RATE/s", "ERRORS"
    );
    for c in channels(snapshot) {
        let name = c.get("name").and_then(Json::as_str).unwrap_or("");
        let q = c.get("queue").cloned().unwrap_or(Json::Null);
        let queue = num(&q, "log_lines") + num(&q, "run_entries");
        let lag = c
            .get("lag_seconds")
            .and_then(Json::as_f64)
            .map(|l| format!("{l:.0}s"))
            .unwrap_or_else(|| "-".into());
        let mut state = state_text(c.get("state"));
        state.truncate(22);
        let _ = writeln!(
            out,
            "{:<10} {:<24} {:<22} {:>8} {:>8} {:>8.1} {:>7}",
            if name.is_empty() { "\"\"" } else { name },
            c.get("replica").and_then(Json::as_str).unwrap_or(""),
            state,
            queue,
            lag,
            c.get("rate_per_sec").and_then(Json::as_f64).unwrap_or(0.0),
            c.get("counters").map(|k| num(k, "errors")).unwrap_or(0),
        );
        for w in c
            .get("workers")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(user) = w.get("user").and_then(Json::as_str) {
                let _ = writeln!(
                    out,
                    "  worker {}: {user} {} {} ({}/{} messages)",
                    num(w, "id"),
                    w.get("mailbox").and_then(Json::as_str).unwrap_or(""),
                    w.get("phase").and_then(Json::as_str).unwrap_or(""),
                    num(w, "messages_done"),
                    num(w, "messages_total"),
                );
            }
        }
        if let Some(k) = c.get("counters") {
            let (read, listed, fell_back) = (
                num(k, "local_reads"),
                num(k, "listed_locally"),
                num(k, "local_fallbacks"),
            );
            if read + listed + fell_back > 0 {
                let _ = writeln!(
                    out,
                    "  master files: {read} mailbox(es) read from index files, {listed} listed without GET MAILBOXES, {fell_back} left to the protocol"
                );
            }
            let (hits, misses, gone) = (
                num(k, "cache_hits"),
                num(k, "cache_misses"),
                num(k, "cache_invalidations"),
            );
            if hits + misses + gone > 0 {
                let _ = writeln!(
                    out,
                    "  target-state cache: {hits} hit(s), {misses} miss(es), {gone} invalidated"
                );
            }
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        for h in c.get("held").and_then(Json::as_array).into_iter().flatten() {
            let user = h.get("user").and_then(Json::as_str).unwrap_or("");
            let _ = writeln!(
                out,
                "  held back: {} after {} failure(s), next try in {}s: {}",
                if user.is_empty() {
                    "shared mailboxes"
                } else {
                    user
                },
                num(h, "failures"),
                num(h, "retry_at_unix").saturating_sub(now),
                h.get("reason").and_then(Json::as_str).unwrap_or("")
            );
        }
        if let Some(e) = c.get("last_error").filter(|e| !e.is_null()) {
            let _ = writeln!(
                out,
                "  last error: {}{}",
                e.get("code")
                    .and_then(Json::as_str)
                    .map(|c| format!("{c}: "))
                    .unwrap_or_default(),
                e.get("message").and_then(Json::as_str).unwrap_or("")
            );
            if let Some(h) = e.get("hint").and_then(Json::as_str) {
                let _ = writeln!(out, "  hint: {h}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn one_idle_channel() -> Json {
        serde_json::json!({
            "channels": [{"name": "", "replica": "r:2005", "state": "Idle",
                          "counters": {"errors": 0}}]
        })
    }

    #[test]
    fn cache_counters_show_once_the_cache_was_used() {
        let mut snap = one_idle_channel();
        assert!(!render(&snap).contains("target-state cache"));
        snap["channels"][0]["counters"] =
            serde_json::json!({"cache_hits": 12, "cache_misses": 3, "cache_invalidations": 1});
        let text = render(&snap);
        assert!(
            text.contains("target-state cache: 12 hit(s), 3 miss(es), 1 invalidated"),
            "{text}"
        );
    }

    #[test]
    fn held_users_are_listed_and_make_status_fail() {
        let mut snap = one_idle_channel();
        snap["channels"][0]["held"] = serde_json::json!([]);
        assert!(!has_error(&snap));
        snap["channels"][0]["held"] = serde_json::json!([
            {"user": "carol", "failures": 2, "retry_at_unix": u64::MAX / 2,
             "reason": "127.0.0.1:2005 closed the connection while APPLY MESSAGE"}
        ]);
        assert!(has_error(&snap));
        let text = render(&snap);
        assert!(
            text.contains("held back: carol after 2 failure(s), next try in ")
                && text.contains("s: 127.0.0.1:2005 closed the connection while APPLY MESSAGE"),
            "{text}"
        );
    }

    #[test]
    fn master_file_counters_show_once_the_local_reader_worked() {
        let mut snap = one_idle_channel();
        assert!(!render(&snap).contains("master files"));
        snap["channels"][0]["counters"] =
            serde_json::json!({"local_reads": 7, "listed_locally": 5, "local_fallbacks": 2});
        let text = render(&snap);
        assert!(
            text.contains(
                "master files: 7 mailbox(es) read from index files, 5 listed without GET MAILBOXES, 2 left to the protocol"
            ),
            "{text}"
        );
    }
}
