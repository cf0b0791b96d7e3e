//! `cyrsync tui`: the dashboard (DESIGN.md §6). It draws only from the
//! snapshots the daemon publishes on its control socket and acts only through
//! control commands, so it never reaches into the engine; `--standalone`
//! runs the daemon in this process and attaches to it the same way.
//!
//! Threads: one blocks on the terminal's input, one holds the subscription
//! (and reconnects every second when the daemon goes away), one per control
//! command; all feed one channel, so the loop sleeps until something happens
//! and redraws at most ten times a second, plus once a second for the clocks.

pub mod app;
#[cfg(test)]
mod tests;
pub mod ui;

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, Event as TermEvent};

use crate::status::Snapshot;
use crate::status::client::{Client, ControlCommand};
use app::{Action, App, Theme};

/// Why the TUI could not run.
#[derive(Debug, thiserror::Error)]
pub enum TuiError {
    /// The terminal could not be set up or drawn on.
    #[error("terminal: {0}")]
    Terminal(#[from] std::io::Error),
}

/// Something for the loop to handle.
#[derive(Debug)]
enum Msg {
    Term(TermEvent),
    Snapshot(Box<Snapshot>),
    LinkDown(String),
    Reply(String),
}

/// How often the subscription is retried while no daemon answers.
const RETRY: Duration = Duration::from_secs(1);
/// The shortest time between two frames.
const FRAME: Duration = Duration::from_millis(100);

/// Runs the dashboard on this terminal until the user quits.
pub fn run(socket: &Path, standalone: bool) -> Result<(), TuiError> {
    let (tx, rx) = mpsc::channel();
    spawn_input(tx.clone());
    spawn_feed(socket.to_path_buf(), tx.clone());
    let mut app = App::new(socket.display().to_string(), Theme::from_env());
    app.standalone = standalone;
    // ratatui::init puts the terminal in raw mode on the alternate screen and
    // installs a panic hook that restores it before the panic is printed.
    let mut terminal = ratatui::try_init()?;
    let result = event_loop(&mut terminal, &mut app, &rx, &tx, socket);
    ratatui::try_restore()?;
    result
}

fn event_loop(
    terminal: &mut ratatui::DefaultTerminal,
    app: &mut App,
    rx: &Receiver<Msg>,
    tx: &Sender<Msg>,
    socket: &Path,
) -> Result<(), TuiError> {
    let mut last_frame: Option<Instant> = None;
    loop {
        // Coalesce bursts: never more than one frame per FRAME; whatever
        // arrived meanwhile is handled before the next one.
        if let Some(since) = last_frame.map(|t| t.elapsed())
            && since < FRAME
        {
            std::thread::sleep(FRAME - since);
        }
        let now = Instant::now();
        let age = app.received.map_or(Duration::ZERO, |r| now - r);
        terminal.draw(|f| ui::draw(f, app, age))?;
        last_frame = Some(now);
        // Wake at least once a second so that clocks and timers move.
        let first = match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(m) => Some(m),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        };
        for msg in first.into_iter().chain(rx.try_iter()) {
            let now = Instant::now();
            match msg {
                Msg::Term(TermEvent::Key(key)) => match app.on_key(key) {
                    Action::Quit => return Ok(()),
                    Action::Send(cmd) => spawn_command(socket.to_path_buf(), cmd, tx.clone()),
                    Action::None => {}
                },
                Msg::Term(_) => {}
                Msg::Snapshot(s) => app.on_snapshot(*s, now),
                Msg::LinkDown(e) => app.on_link_down(e),
                Msg::Reply(text) => app.on_reply(text, now),
            }
        }
    }
}

fn spawn_input(tx: Sender<Msg>) {
    std::thread::spawn(move || {
        while let Ok(ev) = event::read() {
            if tx.send(Msg::Term(ev)).is_err() {
                return;
            }
        }
    });
}

fn spawn_feed(socket: PathBuf, tx: Sender<Msg>) {
    std::thread::spawn(move || {
        loop {
            let error = match Client::connect(&socket, None).and_then(|mut c| {
                c.subscribe()?;
                loop {
                    let s = c.next_snapshot()?;
                    if tx.send(Msg::Snapshot(Box::new(s))).is_err() {
                        return Ok(());
                    }
                }
            }) {
                Ok(()) => return,
                Err(e) => e,
            };
            let text = match error {
                crate::status::client::ClientError::NotRunning { source, .. } => source.to_string(),
                other => other.to_string(),
            };
            if tx.send(Msg::LinkDown(text)).is_err() {
                return;
            }
            std::thread::sleep(RETRY);
        }
    });
}

fn spawn_command(socket: PathBuf, cmd: ControlCommand, tx: Sender<Msg>) {
    std::thread::spawn(move || {
        let what = match &cmd {
            ControlCommand::Pause { channel } => format!("pause {}", shown(channel)),
            ControlCommand::Resume { channel } => format!("resume {}", shown(channel)),
            ControlCommand::SyncNow { channel } => format!("sync now on {}", shown(channel)),
            ControlCommand::ResyncUser { channel, user } => {
                format!("full resync of {user} on {}", shown(channel))
            }
        };
        let reply = match Client::connect(&socket, Some(Duration::from_secs(10)))
            .and_then(|mut c| c.command(&cmd))
        {
            Ok(()) => format!("{what}: done"),
            Err(e) => format!("{what}: {e}"),
        };
        let _ = tx.send(Msg::Reply(reply));
    });
}

fn shown(channel: &str) -> &str {
    if channel.is_empty() { "\"\"" } else { channel }
}
