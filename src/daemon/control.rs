//! The control socket (`cyrsync_control_socket`, DESIGN.md §6): a Unix socket,
//! mode 0660, that speaks one JSON object per line. A client says
//! `{"hello":1}` and gets `{"hello":1,"server":…}`; then it may ask for a
//! `snapshot`, `subscribe` to snapshots (at most ten a second, only when
//! something changed), or send `pause`, `resume`, `sync_now` and
//! `resync_user`. Peers are checked: root, the daemon's own user and members
//! of its group only.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value as Json, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use super::Daemon;
use crate::synclog::{LogEntry, Writer};

/// The line protocol's version; a client with another is refused.
pub const PROTOCOL_VERSION: u64 = 1;

/// Why the control socket could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("control socket {path}: {source}")]
pub struct ControlError {
    /// The socket path.
    pub path: PathBuf,
    /// Why.
    pub source: std::io::Error,
}

/// What the server needs besides the daemon: where each channel's log is,
/// to queue a full resync of a user.
#[derive(Debug, Clone)]
pub struct ControlContext {
    /// The daemon.
    pub daemon: Daemon,
    /// Channel names, in the daemon's order.
    pub names: Vec<String>,
    /// Each channel's `log`.
    pub logs: Vec<PathBuf>,
    /// Renders a snapshot of the daemon as JSON.
    pub snapshot: fn(&Daemon) -> Json,
}

/// Binds the socket (replacing a stale one) with mode 0660.
pub fn bind(path: &Path) -> Result<UnixListener, ControlError> {
    let err = |source| ControlError {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    if path.exists() {
        // A live daemon would answer; a stale socket file is removed.
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                "another cyrsync is listening on it",
            )));
        }
        std::fs::remove_file(path).map_err(err)?;
    }
    let listener = UnixListener::bind(path).map_err(err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(err)?;
    Ok(listener)
}

/// Serves clients until the daemon stops.
pub async fn serve(listener: UnixListener, ctx: ControlContext) {
    let mut stop = ctx.daemon.stop.subscribe();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|s| *s) => return,
        };
        let Ok((stream, _)) = accepted else {
            continue;
        };
        if !peer_allowed(&stream) {
            tracing::warn!(
                "control socket: refused a peer that is not root, the daemon user or its group"
            );
            continue;
        }
        let ctx = ctx.clone();
        tokio::spawn(async move {
            if let Err(e) = client(stream, ctx).await {
                tracing::debug!("control client: {e}");
            }
        });
    }
}

fn peer_allowed(stream: &UnixStream) -> bool {
    let Ok(cred) = stream.peer_cred() else {
        return false;
    };
    let me = rustix::process::geteuid().as_raw();
    let my_gid = rustix::process::getegid().as_raw();
    cred.uid() == 0 || cred.uid() == me || cred.gid() == my_gid
}

async fn client(stream: UnixStream, ctx: ControlContext) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let mut greeted = false;
    while let Some(line) = lines.next_line().await? {
        let request: Json = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => {
                send(&mut write, &json!({"error": format!("not JSON: {e}")})).await?;
                continue;
            }
        };
        if let Some(v) = request.get("hello") {
            if v.as_u64() != Some(PROTOCOL_VERSION) {
                send(
                    &mut write,
                    &json!({"error": format!("protocol version {v} not supported; this daemon speaks {PROTOCOL_VERSION}")}),
                )
                .await?;
                return Ok(());
            }
            greeted = true;
            send(
                &mut write,
                &json!({"hello": PROTOCOL_VERSION, "server": format!("cyrsync {}", env!("CARGO_PKG_VERSION"))}),
            )
            .await?;
            continue;
        }
        if !greeted {
            send(&mut write, &json!({"error": "say {\"hello\":1} first"})).await?;
            continue;
        }
        let cmd = request.get("cmd").and_then(Json::as_str).unwrap_or("");
        match cmd {
            "snapshot" => {
                send(
                    &mut write,
                    &json!({"snapshot": (ctx.snapshot)(&ctx.daemon)}),
                )
                .await?;
            }
            "subscribe" => {
                let mut changed = ctx.daemon.changed.clone();
                loop {
                    send(
                        &mut write,
                        &json!({"snapshot": (ctx.snapshot)(&ctx.daemon)}),
                    )
                    .await?;
                    // At most ten snapshots a second, and none while idle.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    if changed.changed().await.is_err() {
                        return Ok(());
                    }
                }
            }
            "pause" | "resume" | "sync_now" | "resync_user" => {
                let reply = command(&ctx, cmd, &request);
                send(&mut write, &reply).await?;
            }
            other => {
                send(
                    &mut write,
                    &json!({"error": format!("unknown command {other:?}")}),
                )
                .await?;
            }
        }
    }
    Ok(())
}

fn command(ctx: &ControlContext, cmd: &str, request: &Json) -> Json {
    let channel = request.get("channel").and_then(Json::as_str).unwrap_or("");
    let Some(i) = ctx.names.iter().position(|n| n == channel) else {
        return json!({"error": format!("no channel {channel:?} in this daemon")});
    };
    let control = &ctx.daemon.controls[i];
    let monitor = &ctx.daemon.monitors[i];
    match cmd {
        "pause" => {
            control.paused.send_replace(true);
            monitor.event("info", "paused by the administrator".into());
        }
        "resume" => {
            control.paused.send_replace(false);
            monitor.event("info", "resumed by the administrator".into());
        }
        "sync_now" => control.sync_now.notify_one(),
        _ => {
            let Some(user) = request
                .get("user")
                .and_then(Json::as_str)
                .filter(|u| !u.is_empty())
            else {
                return json!({"error": "resync_user needs \"user\""});
            };
            // Through the log, like any other change: nothing bypasses the
            // per-user ordering of the workers.
            let entry = LogEntry::User {
                userid: user.to_string(),
            };
            if let Err(e) = Writer::new(&ctx.logs[i]).append(&[entry]) {
                return json!({"error": e.to_string()});
            }
            monitor.event("info", format!("full resync of {user} queued"));
            control.sync_now.notify_one();
        }
    }
    json!({"ok": true})
}

async fn send(write: &mut tokio::net::unix::OwnedWriteHalf, value: &Json) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    line.push(b'\n');
    write.write_all(&line).await
}
