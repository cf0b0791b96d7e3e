//! The client side of the control socket (see `daemon::control`): one JSON
//! object per line, `{"hello":1}` first. Blocking std I/O: `cyrsync status`
//! asks once, the TUI keeps a subscription on a thread of its own.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value as Json, json};

use super::Snapshot;
use crate::daemon::control::PROTOCOL_VERSION;

/// Why the daemon could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens on the socket.
    #[error(
        "no cyrsync daemon answers on {path} ({source}); start one with `service cyrsync start` (FreeBSD) or `cyrsync run`"
    )]
    NotRunning {
        /// The socket.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The daemon answered something unexpected.
    #[error("the daemon on {path} answered unexpectedly: {detail}")]
    Protocol {
        /// The socket.
        path: String,
        /// What.
        detail: String,
    },
    /// The daemon refused the command.
    #[error("the daemon refused: {0}")]
    Refused(String),
}

/// An administrator's command to the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlCommand {
    /// Stop taking work from a channel's log (the queue keeps growing).
    Pause {
        /// Channel name (`""` for the default channel).
        channel: String,
    },
    /// Take work again.
    Resume {
        /// Channel name.
        channel: String,
    },
    /// Run now, without waiting for `sync_repeat_interval`.
    SyncNow {
        /// Channel name.
        channel: String,
    },
    /// Queue a full `USER` sync of one user.
    ResyncUser {
        /// Channel name.
        channel: String,
        /// The userid.
        user: String,
    },
}

impl ControlCommand {
    fn to_json(&self) -> Json {
        match self {
            ControlCommand::Pause { channel } => json!({"cmd": "pause", "channel": channel}),
            ControlCommand::Resume { channel } => json!({"cmd": "resume", "channel": channel}),
            ControlCommand::SyncNow { channel } => json!({"cmd": "sync_now", "channel": channel}),
            ControlCommand::ResyncUser { channel, user } => {
                json!({"cmd": "resync_user", "channel": channel, "user": user})
            }
        }
    }
}

/// A greeted connection to the daemon.
#[derive(Debug)]
pub struct Client {
    path: PathBuf,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Client {
    /// Connects and exchanges the version handshake. `timeout` bounds every
    /// read (`None` waits for ever, as a subscription does).
    pub fn connect(path: &Path, timeout: Option<Duration>) -> Result<Client, ClientError> {
        let not_running = |source| ClientError::NotRunning {
            path: path.display().to_string(),
            source,
        };
        let stream = UnixStream::connect(path).map_err(not_running)?;
        stream
            .set_read_timeout(timeout.or(Some(Duration::from_secs(10))))
            .map_err(not_running)?;
        let writer = stream.try_clone().map_err(not_running)?;
        let mut client = Client {
            path: path.to_path_buf(),
            reader: BufReader::new(stream),
            writer,
        };
        let hello = client.ask(&json!({ "hello": PROTOCOL_VERSION }))?;
        if let Some(e) = hello.get("error") {
            return Err(client.protocol(e.to_string()));
        }
        client
            .writer
            .set_read_timeout(timeout)
            .map_err(not_running)?;
        Ok(client)
    }

    fn protocol(&self, detail: String) -> ClientError {
        ClientError::Protocol {
            path: self.path.display().to_string(),
            detail,
        }
    }

    fn send(&mut self, request: &Json) -> Result<(), ClientError> {
        let mut line = request.to_string();
        line.push('\n');
        self.writer
            .write_all(line.as_bytes())
            .map_err(|source| ClientError::NotRunning {
                path: self.path.display().to_string(),
                source,
            })
    }

    fn receive(&mut self) -> Result<Json, ClientError> {
        let mut answer = String::new();
        let n = self
            .reader
            .read_line(&mut answer)
            .map_err(|source| ClientError::NotRunning {
                path: self.path.display().to_string(),
                source,
            })?;
        if n == 0 {
            return Err(ClientError::NotRunning {
                path: self.path.display().to_string(),
                source: std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the daemon closed the connection",
                ),
            });
        }
        serde_json::from_str(&answer).map_err(|e| self.protocol(e.to_string()))
    }

    fn ask(&mut self, request: &Json) -> Result<Json, ClientError> {
        self.send(request)?;
        self.receive()
    }

    /// One snapshot, as the daemon sent it (for `status --json`).
    pub fn snapshot_json(&mut self) -> Result<Json, ClientError> {
        let mut answer = self.ask(&json!({"cmd": "snapshot"}))?;
        match answer.get_mut("snapshot").map(Json::take) {
            Some(s) => Ok(s),
            None => Err(self.protocol(answer.to_string())),
        }
    }

    /// One snapshot.
    pub fn snapshot(&mut self) -> Result<Snapshot, ClientError> {
        let json = self.snapshot_json()?;
        serde_json::from_value(json).map_err(|e| self.protocol(e.to_string()))
    }

    /// Asks for a snapshot on every change (at most ten a second); read them
    /// with [`Client::next_snapshot`].
    pub fn subscribe(&mut self) -> Result<(), ClientError> {
        self.send(&json!({"cmd": "subscribe"}))
    }

    /// The next snapshot of a subscription.
    pub fn next_snapshot(&mut self) -> Result<Snapshot, ClientError> {
        let mut answer = self.receive()?;
        match answer.get_mut("snapshot").map(Json::take) {
            Some(s) => serde_json::from_value(s).map_err(|e| self.protocol(e.to_string())),
            None => Err(self.protocol(answer.to_string())),
        }
    }

    /// Sends a command and waits for its acknowledgement.
    pub fn command(&mut self, cmd: &ControlCommand) -> Result<(), ClientError> {
        let answer = self.ask(&cmd.to_json())?;
        if answer.get("ok").and_then(Json::as_bool) == Some(true) {
            return Ok(());
        }
        match answer.get("error").and_then(Json::as_str) {
            Some(e) => Err(ClientError::Refused(e.to_string())),
            None => Err(self.protocol(answer.to_string())),
        }
    }
}
