//! `cyrsync run`: rolling replication (DESIGN.md §2). One task per channel
//! (see [`channel`]), each with `cyrsync_workers` workers; a status monitor per
//! channel that `status`, the control socket and the TUI read; signals and the
//! shutdown file for a clean stop.

pub mod channel;
pub mod control;
pub mod lock;
pub mod logwatch;
pub mod metrics;
pub mod monitor;
pub mod snapshot;
pub mod worker;

use std::sync::Arc;

use tokio::sync::watch;

use crate::config::ChannelConfig;
use channel::{ChannelControl, ChannelError, run_channel};
use monitor::ChannelMonitor;

/// Why the daemon stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// A channel failed to start or stopped on an error.
    #[error("channel {channel}: {source}")]
    Channel {
        /// Its name.
        channel: String,
        /// Why.
        source: ChannelError,
    },
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
}

/// How a run of the daemon ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Stopped for good (signal, shutdown file, or every channel finished).
    Stopped,
    /// SIGHUP: read imapd.conf again and start over.
    Reload,
}

/// The running daemon's shared parts.
#[derive(Debug, Clone)]
pub struct Daemon {
    /// One monitor per channel, in configuration order.
    pub monitors: Vec<ChannelMonitor>,
    /// One control handle per channel.
    pub controls: Vec<ChannelControl>,
    /// Bumped on every state change.
    pub changed: watch::Receiver<u64>,
    /// Set to stop everything.
    pub stop: Arc<watch::Sender<bool>>,
    /// When the daemon started (unix seconds).
    pub started_unix: u64,
    /// `cyrsync_metrics_listen`: where to serve Prometheus metrics.
    pub metrics_listen: Option<String>,
}

impl Daemon {
    /// Sets up monitors and controls for `channels`.
    pub fn new(channels: &[ChannelConfig]) -> Daemon {
        let (changed_tx, changed) = watch::channel(0u64);
        let monitors = channels
            .iter()
            .map(|c| {
                ChannelMonitor::new(
                    c.name.name().unwrap_or(""),
                    c.replica
                        .as_ref()
                        .map(|p| p.endpoint.to_string())
                        .unwrap_or_default(),
                    c.workers.max(1),
                    c.timeout.as_secs(),
                    changed_tx.clone(),
                )
            })
            .collect();
        let controls = channels.iter().map(|_| ChannelControl::default()).collect();
        let (stop, _) = watch::channel(false);
        Daemon {
            monitors,
            controls,
            changed,
            stop: Arc::new(stop),
            started_unix: monitor::unix_now(),
            metrics_listen: None,
        }
    }

    /// Serves Prometheus metrics on `listen` (`host:port`) while running.
    pub fn with_metrics(mut self, listen: Option<String>) -> Daemon {
        self.metrics_listen = listen;
        self
    }

    /// Runs every channel until stopped (SIGTERM/SIGINT, the shutdown file or
    /// [`Daemon::stop`]). A channel that fails to start (its lock is held)
    /// stops the others too.
    pub async fn run(
        &self,
        channels: Vec<ChannelConfig>,
        control_socket: Option<&std::path::Path>,
    ) -> Result<Exit, DaemonError> {
        use tokio::signal::unix::{SignalKind, signal};
        let stop = self.stop.clone();
        let reload = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (mut term, mut int, mut hup) = (
            signal(SignalKind::terminate()).map_err(DaemonError::Signals)?,
            signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?,
            signal(SignalKind::hangup()).map_err(DaemonError::Signals)?,
        );
        let reload_flag = reload.clone();
        let signals = tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM: finishing the current actions and stopping"),
                _ = int.recv() => tracing::info!("SIGINT: finishing the current actions and stopping"),
                _ = hup.recv() => {
                    tracing::info!("SIGHUP: finishing the current actions, then reading imapd.conf again");
                    reload_flag.store(true, std::sync::atomic::Ordering::SeqCst);
                }
            }
            let _ = stop.send(true);
        });
        let mut control_task = None;
        if let Some(path) = control_socket {
            match control::bind(path) {
                Ok(listener) => {
                    let ctx = control::ControlContext {
                        daemon: self.clone(),
                        names: channels
                            .iter()
                            .map(|c| c.name.name().unwrap_or("").to_string())
                            .collect(),
                        logs: channels.iter().map(ChannelConfig::log_path).collect(),
                        snapshot: snapshot::render,
                    };
                    tracing::info!("control socket {}", path.display());
                    control_task = Some(tokio::spawn(control::serve(listener, ctx)));
                }
                // Replication matters more than the dashboard: go on without.
                Err(e) => tracing::error!("{e}; status and tui will not be able to attach"),
            }
        }
        let mut metrics_task = None;
        if let Some(addr) = self.metrics_listen.as_deref() {
            match metrics::bind(addr).await {
                Ok(listener) => {
                    tracing::info!("metrics on http://{addr}/metrics");
                    metrics_task = Some(tokio::spawn(metrics::serve(listener, self.clone())));
                }
                // As for the control socket: replication goes on without.
                Err(e) => tracing::error!("{e}; no metrics"),
            }
        }
        let mut tasks = tokio::task::JoinSet::new();
        for ((ch, monitor), control) in channels
            .into_iter()
            .zip(self.monitors.iter().cloned())
            .zip(self.controls.iter().cloned())
        {
            let stop = self.stop.subscribe();
            let name = ch.name.to_string();
            tasks.spawn(async move {
                run_channel(ch, monitor, control, stop)
                    .await
                    .map_err(|source| DaemonError::Channel {
                        channel: name,
                        source,
                    })
            });
        }
        let mut first_error = None;
        while let Some(result) = tasks.join_next().await {
            match result {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::error!("{e}");
                    let _ = self.stop.send(true);
                    first_error.get_or_insert(e);
                }
                Err(join) => {
                    tracing::error!("a channel task ended abnormally: {join}");
                    let _ = self.stop.send(true);
                }
            }
        }
        signals.abort();
        if let Some(t) = metrics_task {
            t.abort();
            // Closed before a reload binds the address again.
            let _ = t.await;
        }
        if let Some(t) = control_task {
            t.abort();
            if let Some(path) = control_socket {
                let _ = std::fs::remove_file(path);
            }
        }
        match first_error {
            Some(e) => Err(e),
            None if reload.load(std::sync::atomic::Ordering::SeqCst) => Ok(Exit::Reload),
            None => Ok(Exit::Stopped),
        }
    }
}
