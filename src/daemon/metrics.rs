//! The Prometheus endpoint (`cyrsync_metrics_listen`, DESIGN.md §6): `GET
//! /metrics` answers the status [`Snapshot`] in the text exposition format
//! (version 0.0.4), the same snapshot the control socket publishes. A small
//! HTTP/1.1 server of its own: one request per connection, bounded request
//! size, a read timeout, and a cap on concurrent clients, so that a scanner
//! or a stuck client cannot hurt replication.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::Daemon;
use crate::status::Snapshot;

/// The exposition format's media type.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Largest request head accepted; a scrape sends a few hundred bytes.
pub const MAX_REQUEST: usize = 8 * 1024;
/// Time a client gets to send its request, and to take the answer.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Clients served at once; more are disconnected at once.
pub const MAX_CLIENTS: usize = 16;

/// Why the endpoint could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cyrsync_metrics_listen {addr}: {source}")]
pub struct MetricsError {
    /// The configured address.
    pub addr: String,
    /// Why.
    pub source: std::io::Error,
}

/// Binds `addr` (`host:port`).
pub async fn bind(addr: &str) -> Result<TcpListener, MetricsError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| MetricsError {
            addr: addr.to_string(),
            source,
        })
}

/// Serves scrapes until the daemon stops.
pub async fn serve(listener: TcpListener, daemon: Daemon) {
    let mut stop = daemon.stop.subscribe();
    let slots = Arc::new(Semaphore::new(MAX_CLIENTS));
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|s| *s) => return,
        };
        let Ok((stream, peer)) = accepted else {
            // EMFILE and the like: do not spin.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!("metrics: too many clients, dropped {peer}");
            continue;
        };
        let daemon = daemon.clone();
        tokio::spawn(async move {
            let render = || render(&super::snapshot::snapshot(&daemon));
            if let Err(e) = handle(stream, render).await {
                tracing::debug!("metrics client {peer}: {e}");
            }
            drop(slot);
        });
    }
}

/// What a request asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Metrics { head: bool },
    NotFound,
    MethodNotAllowed,
    BadRequest,
    TooLarge,
}

/// Reads the request head: `Ok(None)` when the client went away or was too
/// slow, `TooLarge` past [`MAX_REQUEST`] bytes.
async fn read_head<S: AsyncRead + Unpin>(
    stream: &mut S,
    timeout: Duration,
) -> std::io::Result<Option<Route>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let read = async {
        loop {
            if let Some(end) = head_end(&buf) {
                return Ok(Some(route(&buf[..end])));
            }
            if buf.len() >= MAX_REQUEST {
                return Ok(Some(Route::TooLarge));
            }
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(None);
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(r) => r,
        Err(_) => Ok(None),
    }
}

/// Where the head ends (blank line; bare LF tolerated as RFC 9112 allows).
fn head_end(buf: &[u8]) -> Option<usize> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n");
    let lf = buf.windows(2).position(|w| w == b"\n\n");
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn route(head: &[u8]) -> Route {
    let Ok(head) = std::str::from_utf8(head) else {
        return Route::BadRequest;
    };
    let line = head.lines().next().unwrap_or("");
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Route::BadRequest;
    };
    let token = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_uppercase());
    if !token(method) || !version.starts_with("HTTP/1.") || !target.starts_with('/') {
        return Route::BadRequest;
    }
    let head = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return Route::MethodNotAllowed,
    };
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    if path == "/metrics" {
        Route::Metrics { head }
    } else {
        Route::NotFound
    }
}

/// Answers one request on `stream` and closes it. `render` produces the
/// metrics, called only for a scrape.
pub async fn handle<S, F>(stream: S, render: F) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: FnOnce() -> String,
{
    answer(stream, render, IO_TIMEOUT).await
}

async fn answer<S, F>(mut stream: S, render: F, timeout: Duration) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: FnOnce() -> String,
{
    let Some(route) = read_head(&mut stream, timeout).await? else {
        return Ok(());
    };
    let (status, content_type, body, head) = match route {
        Route::Metrics { head } => ("200 OK", CONTENT_TYPE, render(), head),
        Route::NotFound => (
            "404 Not Found",
            "text/plain",
            "not found; metrics are at /metrics\n".into(),
            false,
        ),
        Route::MethodNotAllowed => (
            "405 Method Not Allowed",
            "text/plain",
            "only GET and HEAD\n".into(),
            false,
        ),
        Route::BadRequest => (
            "400 Bad Request",
            "text/plain",
            "bad request\n".into(),
            false,
        ),
        Route::TooLarge => (
            "431 Request Header Fields Too Large",
            "text/plain",
            "request too large\n".into(),
            false,
        ),
    };
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if route == Route::MethodNotAllowed {
        response.push_str("Allow: GET, HEAD\r\n");
    }
    response.push_str("\r\n");
    if !head {
        response.push_str(&body);
    }
    let write = async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await
    };
    match tokio::time::timeout(timeout, write).await {
        Ok(r) => r,
        Err(_) => Ok(()),
    }
}

/// Escapes a label value (backslash, double quote, newline).
pub fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A sample value as the format writes it.
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

struct Exposition(String);

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", escape_label(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {}", number(value));
    }
}

/// Every state of [`crate::status::ChannelState`], for the state gauge set.
const STATES: [&str; 6] = ["idle", "syncing", "paused", "stopped", "backoff", "error"];

/// Renders `s` in the Prometheus text format. Channel figures carry a
/// `channel` label (`""` for the default channel); counters start again at
/// zero when the daemon restarts or reloads (`cyrsync_start_time_seconds`
/// changes then).
pub fn render(s: &Snapshot) -> String {
    type Get = fn(&crate::status::ChannelStatus) -> f64;
    type Stamp = fn(&crate::status::ChannelStatus) -> Option<u64>;
    let mut out = Exposition(String::with_capacity(4096));
    out.family("cyrsync_up", "gauge", "1 while the daemon answers.");
    out.sample("cyrsync_up", &[], 1.0);
    out.family(
        "cyrsync_build_info",
        "gauge",
        "The daemon's version, as a label.",
    );
    out.sample(
        "cyrsync_build_info",
        &[("version", &s.cyrsync_version)],
        1.0,
    );
    out.family(
        "cyrsync_start_time_seconds",
        "gauge",
        "When the daemon started or last reloaded (unix seconds).",
    );
    out.sample("cyrsync_start_time_seconds", &[], s.started_at_unix as f64);

    let gauges: [(&str, &str, Get); 10] = [
        (
            "cyrsync_queue_entries",
            "Log entries waiting (log lines, the current log-run and log-held).",
            |c| c.waiting as f64,
        ),
        (
            "cyrsync_held_users",
            "Users held back after repeated failures (their entries wait in log-held).",
            |c| c.held.len() as f64,
        ),
        (
            "cyrsync_queue_held_entries",
            "Log entries of held-back users waiting in log-held.",
            |c| c.queue.held_entries as f64,
        ),
        (
            "cyrsync_queue_log_lines",
            "Lines waiting in the log file.",
            |c| c.queue.log_lines as f64,
        ),
        (
            "cyrsync_queue_log_bytes",
            "Bytes waiting in the log file.",
            |c| c.queue.log_bytes as f64,
        ),
        (
            "cyrsync_queue_run_entries",
            "Log entries of the log-run in progress.",
            |c| c.queue.run_entries as f64,
        ),
        (
            "cyrsync_lag_seconds",
            "Age of the oldest waiting log entry; 0 when nothing waits.",
            |c| c.lag_seconds.unwrap_or(0.0),
        ),
        (
            "cyrsync_workers",
            "Workers of the channel (cyrsync_workers).",
            |c| c.workers.len() as f64,
        ),
        (
            "cyrsync_workers_busy",
            "Workers replicating a user now.",
            |c| {
                c.workers
                    .iter()
                    .filter(|w| w.user.is_some() || w.phase != "Idle")
                    .count() as f64
            },
        ),
        (
            "cyrsync_run_actions_remaining",
            "Actions of the log-run in progress not done yet.",
            |c| c.queue.run_total.saturating_sub(c.queue.run_done) as f64,
        ),
    ];
    for (name, help, get) in gauges {
        out.family(name, "gauge", help);
        for c in &s.channels {
            out.sample(name, &[("channel", &c.name)], get(c));
        }
    }

    out.family(
        "cyrsync_channel_state",
        "gauge",
        "1 for the state the channel is in, 0 for the others.",
    );
    for c in &s.channels {
        for state in STATES {
            let on = c.state.word() == state;
            out.sample(
                "cyrsync_channel_state",
                &[("channel", &c.name), ("state", state)],
                if on { 1.0 } else { 0.0 },
            );
        }
    }

    let counters: [(&str, &str, Get); 14] = [
        ("cyrsync_actions_total", "Actions done.", |c| {
            c.counters.actions as f64
        }),
        ("cyrsync_mailboxes_total", "Mailboxes updated.", |c| {
            c.counters.mailboxes as f64
        }),
        ("cyrsync_messages_total", "Messages uploaded.", |c| {
            c.counters.messages as f64
        }),
        (
            "cyrsync_upload_bytes_total",
            "Message bytes uploaded.",
            |c| c.counters.bytes as f64,
        ),
        (
            "cyrsync_retries_total",
            "Actions retried after a lost or timed-out session.",
            |c| c.counters.retries as f64,
        ),
        (
            "cyrsync_crc_mismatches_total",
            "Mailbox CRC mismatches met.",
            |c| c.counters.crc_mismatches as f64,
        ),
        (
            "cyrsync_promotions_total",
            "Mailbox actions promoted to user syncs.",
            |c| c.counters.promotions as f64,
        ),
        ("cyrsync_errors_total", "Errors.", |c| {
            c.counters.errors as f64
        }),
        (
            "cyrsync_relogged_total",
            "Actions written back to the log for a later run.",
            |c| c.counters.relogged as f64,
        ),
        ("cyrsync_applies_total", "APPLY commands sent.", |c| {
            c.counters.applies as f64
        }),
        (
            "cyrsync_malformed_lines_total",
            "Malformed log lines set aside.",
            |c| c.queue.malformed as f64,
        ),
        (
            "cyrsync_cache_hits_total",
            "Mailboxes whose replica state came from the target-state cache.",
            |c| c.counters.cache_hits as f64,
        ),
        (
            "cyrsync_cache_misses_total",
            "Mailboxes the target-state cache could not answer for (the replica was read).",
            |c| c.counters.cache_misses as f64,
        ),
        (
            "cyrsync_cache_invalidations_total",
            "Target-state cache entries dropped (stale, failed, renamed, deleted).",
            |c| c.counters.cache_invalidations as f64,
        ),
    ];
    for (name, help, get) in counters {
        out.family(name, "counter", help);
        for c in &s.channels {
            out.sample(name, &[("channel", &c.name)], get(c));
        }
    }

    out.family(
        "cyrsync_sessions_connected",
        "gauge",
        "Sessions connected, by side (master or replica).",
    );
    for c in &s.channels {
        for side in ["master", "replica"] {
            let n = c
                .sessions
                .iter()
                .filter(|x| x.side == side && x.connected)
                .count();
            out.sample(
                "cyrsync_sessions_connected",
                &[("channel", &c.name), ("side", side)],
                n as f64,
            );
        }
    }
    out.family(
        "cyrsync_reconnects_total",
        "counter",
        "Reconnections, by side (master or replica).",
    );
    for c in &s.channels {
        for side in ["master", "replica"] {
            let n: u64 = c
                .sessions
                .iter()
                .filter(|x| x.side == side)
                .map(|x| x.reconnects)
                .sum();
            out.sample(
                "cyrsync_reconnects_total",
                &[("channel", &c.name), ("side", side)],
                n as f64,
            );
        }
    }

    // Absent until known: a made-up 0 would fire every "too old" alert.
    let stamps: [(&str, &str, Stamp); 2] = [
        (
            "cyrsync_last_success_timestamp_seconds",
            "When a run through log-run last completed (unix seconds).",
            |c| c.history.last().map(|h| h.at_unix),
        ),
        (
            "cyrsync_last_error_timestamp_seconds",
            "When the last error happened (unix seconds).",
            |c| c.last_error.as_ref().map(|e| e.at_unix),
        ),
    ];
    for (name, help, get) in stamps {
        out.family(name, "gauge", help);
        for c in &s.channels {
            if let Some(t) = get(c) {
                out.sample(name, &[("channel", &c.name)], t as f64);
            }
        }
    }
    out.0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::status::{
        ChannelState, ChannelStatus, Counters, ErrorInfo, HistoryPoint, Queue, Session, Worker,
    };

    fn snapshot() -> Snapshot {
        let default = ChannelStatus {
            name: String::new(),
            state: ChannelState::Backoff {
                until_unix: 10,
                reason: "replica down".into(),
            },
            waiting: 31,
            queue: Queue {
                log_bytes: 900,
                log_lines: 30,
                run_entries: 1,
                run_total: 4,
                run_done: 1,
                oldest_waiting_unix: Some(100),
                malformed: 2,
                held_entries: 0,
            },
            lag_seconds: Some(12.5),
            workers: vec![
                Worker {
                    user: Some("alice".into()),
                    phase: "Message".into(),
                    ..Worker::default()
                },
                Worker {
                    phase: "Idle".into(),
                    ..Worker::default()
                },
            ],
            sessions: vec![
                Session {
                    side: "master".into(),
                    connected: true,
                    reconnects: 1,
                    ..Session::default()
                },
                Session {
                    side: "replica".into(),
                    connected: false,
                    reconnects: 3,
                    ..Session::default()
                },
            ],
            counters: Counters {
                actions: 7,
                messages: 5,
                bytes: 1234,
                errors: 3,
                cache_hits: 40,
                cache_misses: 2,
                cache_invalidations: 1,
                ..Counters::default()
            },
            last_error: Some(ErrorInfo {
                at_unix: 150,
                ..ErrorInfo::default()
            }),
            history: vec![
                HistoryPoint {
                    at_unix: 90,
                    ..HistoryPoint::default()
                },
                HistoryPoint {
                    at_unix: 120,
                    ..HistoryPoint::default()
                },
            ],
            ..ChannelStatus::default()
        };
        let odd = ChannelStatus {
            name: "we\"ird\\chan\nnel".into(),
            ..ChannelStatus::default()
        };
        Snapshot {
            cyrsync_version: "0.1.0".into(),
            started_at_unix: 42,
            channels: vec![default, odd],
            ..Snapshot::default()
        }
    }

    fn lines(text: &str) -> Vec<&str> {
        text.lines().filter(|l| !l.starts_with('#')).collect()
    }

    #[test]
    fn renders_names_labels_and_values() {
        let text = render(&snapshot());
        let l = lines(&text);
        for want in [
            "cyrsync_up 1",
            "cyrsync_build_info{version=\"0.1.0\"} 1",
            "cyrsync_start_time_seconds 42",
            "cyrsync_queue_entries{channel=\"\"} 31",
            "cyrsync_queue_log_bytes{channel=\"\"} 900",
            "cyrsync_lag_seconds{channel=\"\"} 12.5",
            "cyrsync_held_users{channel=\"\"} 0",
            "cyrsync_workers_busy{channel=\"\"} 1",
            "cyrsync_run_actions_remaining{channel=\"\"} 3",
            "cyrsync_channel_state{channel=\"\",state=\"backoff\"} 1",
            "cyrsync_channel_state{channel=\"\",state=\"idle\"} 0",
            "cyrsync_actions_total{channel=\"\"} 7",
            "cyrsync_upload_bytes_total{channel=\"\"} 1234",
            "cyrsync_errors_total{channel=\"\"} 3",
            "cyrsync_malformed_lines_total{channel=\"\"} 2",
            "cyrsync_cache_hits_total{channel=\"\"} 40",
            "cyrsync_cache_misses_total{channel=\"\"} 2",
            "cyrsync_cache_invalidations_total{channel=\"\"} 1",
            "cyrsync_sessions_connected{channel=\"\",side=\"master\"} 1",
            "cyrsync_sessions_connected{channel=\"\",side=\"replica\"} 0",
            "cyrsync_reconnects_total{channel=\"\",side=\"replica\"} 3",
            "cyrsync_last_success_timestamp_seconds{channel=\"\"} 120",
            "cyrsync_last_error_timestamp_seconds{channel=\"\"} 150",
            "cyrsync_lag_seconds{channel=\"we\\\"ird\\\\chan\\nnel\"} 0",
        ] {
            assert!(l.contains(&want), "missing {want:?} in\n{text}");
        }
        // The odd channel never ran: no made-up timestamps.
        assert_eq!(
            l.iter()
                .filter(|x| x.starts_with("cyrsync_last_success"))
                .count(),
            1
        );
        // Exactly one state is set per channel.
        for ch in ["channel=\"\"", "channel=\"we"] {
            let on = l
                .iter()
                .filter(|x| x.starts_with("cyrsync_channel_state{") && x.contains(ch))
                .filter(|x| x.ends_with(" 1"))
                .count();
            assert_eq!(on, 1, "{ch}");
        }
    }

    #[test]
    fn families_are_well_formed_and_contiguous() {
        let text = render(&snapshot());
        let mut seen = Vec::<String>::new();
        let mut current = String::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(["gauge", "counter"].contains(&kind), "{line}");
                assert_eq!(kind == "counter", name.ends_with("_total"), "{line}");
                assert!(!seen.contains(&name.to_string()), "{name} twice");
                seen.push(name.to_string());
                current = name.to_string();
                continue;
            }
            if line.starts_with("# HELP ") {
                continue;
            }
            let name = line.split(['{', ' ']).next().unwrap();
            assert_eq!(name, current, "sample outside its family: {line}");
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_' || b.is_ascii_digit()),
                "{name}"
            );
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn label_escaping() {
        assert_eq!(escape_label(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape_label("x\ny"), "x\\ny");
        assert_eq!(number(f64::INFINITY), "+Inf");
        assert_eq!(number(3.0), "3");
    }

    async fn ask(request: &[u8]) -> String {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let task = tokio::spawn(handle(server, || "cyrsync_up 1\n".to_string()));
        // The server may answer before reading everything (oversized).
        let _ = client.write_all(request).await;
        let _ = client.shutdown().await;
        let mut out = Vec::new();
        client.read_to_end(&mut out).await.unwrap();
        task.await.unwrap().unwrap();
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test]
    async fn http_routes() {
        let ok = ask(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(
            ok.contains("Content-Type: text/plain; version=0.0.4"),
            "{ok}"
        );
        assert!(ok.contains("Content-Length: 13\r\n"), "{ok}");
        assert!(ok.ends_with("\r\n\r\ncyrsync_up 1\n"), "{ok}");
        let q = ask(b"GET /metrics?x=1 HTTP/1.0\n\n").await;
        assert!(q.starts_with("HTTP/1.1 200"), "{q}");
        let head = ask(b"HEAD /metrics HTTP/1.1\r\n\r\n").await;
        assert!(head.starts_with("HTTP/1.1 200") && head.ends_with("\r\n\r\n"));
        let nf = ask(b"GET / HTTP/1.1\r\n\r\n").await;
        assert!(nf.starts_with("HTTP/1.1 404"), "{nf}");
        let post = ask(b"POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc").await;
        assert!(post.starts_with("HTTP/1.1 405"), "{post}");
        assert!(post.contains("Allow: GET, HEAD\r\n"), "{post}");
    }

    #[tokio::test]
    async fn garbage_and_oversized_requests() {
        for garbage in [
            &b"\x00\xff\xfe\r\n\r\n"[..],
            b"GET\r\n\r\n",
            b"GET /metrics\r\n\r\n",
            b"get /metrics HTTP/1.1\r\n\r\n",
            b"GET metrics HTTP/1.1\r\n\r\n",
            b"GET /metrics HTTP/2.0\r\n\r\n",
            b"GET /metrics HTTP/1.1 extra\r\n\r\n",
            b"\r\n\r\n",
        ] {
            let r = ask(garbage).await;
            assert!(r.starts_with("HTTP/1.1 400"), "{garbage:?}: {r}");
        }
        let mut big = b"GET /metrics HTTP/1.1\r\n".to_vec();
        big.extend(std::iter::repeat_n(b'a', 2 * MAX_REQUEST));
        let r = ask(&big).await;
        assert!(r.starts_with("HTTP/1.1 431"), "{r}");
        // A client that says nothing and hangs up gets nothing.
        assert_eq!(ask(b"GET /metr").await, "");
    }

    #[tokio::test]
    async fn silent_client_times_out() {
        let (_client, server) = tokio::io::duplex(1024);
        let timeout = Duration::from_millis(50);
        let r = tokio::time::timeout(
            Duration::from_secs(5),
            answer(server, || unreachable!("no scrape"), timeout),
        )
        .await;
        assert!(matches!(r, Ok(Ok(()))), "{r:?}");
    }

    #[test]
    fn every_state_has_its_gauge() {
        for s in [
            ChannelState::Idle,
            ChannelState::Syncing,
            ChannelState::Paused,
            ChannelState::Stopped,
            ChannelState::Backoff {
                until_unix: 0,
                reason: String::new(),
            },
            ChannelState::Error {
                message: String::new(),
            },
        ] {
            assert!(STATES.contains(&s.word()), "{s:?}");
        }
    }
}
