//! The TUI's state and what keys do to it. No I/O and no drawing: keys
//! become [`Action`]s that the event loop carries out, snapshots and replies
//! arrive as plain values.

use std::time::{Duration, Instant};

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use crate::status::client::ControlCommand;
use crate::status::{ChannelState, ChannelStatus, Snapshot};

/// Whether the daemon answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// Not yet known.
    Connecting,
    /// Subscribed.
    Up,
    /// No daemon, or it went away; retried every second.
    Down {
        /// Why.
        error: String,
    },
}

/// The main screen's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Channels and the selected channel's workers, timeouts, errors, events.
    Overview,
    /// The selected channel's protocol tail.
    Protocol,
}

/// A pop-up over the main screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Overlay {
    /// The key list.
    Help,
    /// Asking for the user to resync.
    UserPrompt {
        /// Typed so far.
        input: String,
    },
    /// Asking before a command that stops or loads replication.
    Confirm {
        /// The question.
        question: String,
        /// Sent on `y`.
        command: ControlCommand,
    },
}

/// What the event loop must do after a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing beyond redrawing.
    None,
    /// Leave the TUI.
    Quit,
    /// Send a command to the daemon.
    Send(ControlCommand),
}

/// Colours on or off (`NO_COLOR`, <https://no-color.org>).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Theme {
    /// Use colours.
    pub color: bool,
}

impl Theme {
    /// Colours unless `NO_COLOR` is set to a non-empty value.
    pub fn from_env() -> Theme {
        Theme {
            color: std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        }
    }
}

/// Everything the screen shows.
#[derive(Debug, Clone)]
pub struct App {
    /// The control socket, named when no daemon answers.
    pub socket: String,
    /// Whether the daemon answers.
    pub link: Link,
    /// The latest snapshot.
    pub snapshot: Option<Snapshot>,
    /// When it arrived, to age in-flight timers between snapshots.
    pub received: Option<Instant>,
    /// Index of the selected channel.
    pub selected: usize,
    /// Main view.
    pub view: View,
    /// Pop-up, if any.
    pub overlay: Option<Overlay>,
    /// The answer to the last command, and when.
    pub message: Option<(String, Instant)>,
    /// Colours.
    pub theme: Theme,
    /// Replication runs inside this process (`--standalone`).
    pub standalone: bool,
}

/// How long a command's answer stays on the footer.
const MESSAGE_TTL: Duration = Duration::from_secs(8);

impl App {
    /// A TUI watching the daemon on `socket`.
    pub fn new(socket: String, theme: Theme) -> App {
        App {
            socket,
            link: Link::Connecting,
            snapshot: None,
            received: None,
            selected: 0,
            view: View::Overview,
            overlay: None,
            message: None,
            theme,
            standalone: false,
        }
    }

    /// A new snapshot arrived.
    pub fn on_snapshot(&mut self, snapshot: Snapshot, now: Instant) {
        self.link = Link::Up;
        let n = snapshot.channels.len();
        // Keep the selection on the same channel across reloads.
        if let Some(i) = self
            .channel()
            .and_then(|old| snapshot.channels.iter().position(|c| c.name == old.name))
        {
            self.selected = i;
        }
        self.selected = self.selected.min(n.saturating_sub(1));
        self.snapshot = Some(snapshot);
        self.received = Some(now);
    }

    /// The daemon stopped answering.
    pub fn on_link_down(&mut self, error: String) {
        self.link = Link::Down { error };
    }

    /// A command was answered.
    pub fn on_reply(&mut self, text: String, now: Instant) {
        self.message = Some((text, now));
    }

    /// The footer message, while it is fresh.
    pub fn message(&self, now: Instant) -> Option<&str> {
        self.message
            .as_ref()
            .filter(|(_, at)| now.duration_since(*at) < MESSAGE_TTL)
            .map(|(m, _)| m.as_str())
    }

    /// The selected channel.
    pub fn channel(&self) -> Option<&ChannelStatus> {
        self.snapshot.as_ref()?.channels.get(self.selected)
    }

    /// What `key` does.
    pub fn on_key(&mut self, key: KeyEvent) -> Action {
        if key.kind == KeyEventKind::Release {
            return Action::None;
        }
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            return Action::Quit;
        }
        match self.overlay.take() {
            Some(Overlay::Help) => {
                // Any key closes the help; `q` still quits.
                if key.code == KeyCode::Char('q') {
                    return Action::Quit;
                }
                Action::None
            }
            Some(Overlay::UserPrompt { mut input }) => {
                match key.code {
                    KeyCode::Esc => {}
                    KeyCode::Enter => {
                        let user = input.trim().to_string();
                        self.overlay = Some(match (user.is_empty(), self.channel()) {
                            (false, Some(c)) => Overlay::Confirm {
                                question: format!(
                                    "Full resync of user {user} on channel {}?",
                                    c.display_name()
                                ),
                                command: ControlCommand::ResyncUser {
                                    channel: c.name.clone(),
                                    user,
                                },
                            },
                            // Nothing typed yet: keep asking.
                            _ => Overlay::UserPrompt { input },
                        });
                    }
                    KeyCode::Backspace => {
                        input.pop();
                        self.overlay = Some(Overlay::UserPrompt { input });
                    }
                    // Userids are short; a pasted novel is not one.
                    KeyCode::Char(ch) if !ch.is_control() && input.len() < 256 => {
                        input.push(ch);
                        self.overlay = Some(Overlay::UserPrompt { input });
                    }
                    _ => self.overlay = Some(Overlay::UserPrompt { input }),
                }
                Action::None
            }
            Some(Overlay::Confirm { question, command }) => match key.code {
                KeyCode::Char('y') | KeyCode::Char('Y') => Action::Send(command),
                KeyCode::Char('n') | KeyCode::Char('N') | KeyCode::Esc => Action::None,
                _ => {
                    self.overlay = Some(Overlay::Confirm { question, command });
                    Action::None
                }
            },
            None => self.on_main_key(key),
        }
    }

    fn on_main_key(&mut self, key: KeyEvent) -> Action {
        let channels = self.snapshot.as_ref().map_or(0, |s| s.channels.len());
        match key.code {
            KeyCode::Char('q') => return Action::Quit,
            KeyCode::Char('?') | KeyCode::F(1) => self.overlay = Some(Overlay::Help),
            KeyCode::Up | KeyCode::Char('k') => self.selected = self.selected.saturating_sub(1),
            KeyCode::Down | KeyCode::Char('j') => {
                self.selected = (self.selected + 1).min(channels.saturating_sub(1));
            }
            KeyCode::Tab if channels > 0 => self.selected = (self.selected + 1) % channels,
            KeyCode::BackTab if channels > 0 => {
                self.selected = (self.selected + channels - 1) % channels;
            }
            KeyCode::Char('t') => {
                self.view = match self.view {
                    View::Overview => View::Protocol,
                    View::Protocol => View::Overview,
                }
            }
            KeyCode::Enter | KeyCode::Esc => self.view = View::Overview,
            KeyCode::Char('p') => {
                if let Some(c) = self.channel() {
                    let name = c.name.clone();
                    self.overlay = Some(if c.state == ChannelState::Paused {
                        Overlay::Confirm {
                            question: format!("Resume channel {}?", c.display_name()),
                            command: ControlCommand::Resume { channel: name },
                        }
                    } else {
                        Overlay::Confirm {
                            question: format!(
                                "Pause channel {}? Changes queue up in its log until resumed.",
                                c.display_name()
                            ),
                            command: ControlCommand::Pause { channel: name },
                        }
                    });
                }
            }
            KeyCode::Char('s') => {
                if let Some(c) = self.channel() {
                    return Action::Send(ControlCommand::SyncNow {
                        channel: c.name.clone(),
                    });
                }
            }
            KeyCode::Char('u') if self.channel().is_some() => {
                self.overlay = Some(Overlay::UserPrompt {
                    input: String::new(),
                });
            }
            _ => {}
        }
        Action::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: KeyCode) -> KeyEvent {
        KeyEvent::new(c, KeyModifiers::NONE)
    }

    fn app_with(channels: &[(&str, ChannelState)]) -> App {
        let mut app = App::new("/sock".into(), Theme { color: false });
        let snapshot = Snapshot {
            channels: channels
                .iter()
                .map(|(n, s)| ChannelStatus {
                    name: n.to_string(),
                    state: s.clone(),
                    ..ChannelStatus::default()
                })
                .collect(),
            ..Snapshot::default()
        };
        app.on_snapshot(snapshot, Instant::now());
        app
    }

    #[test]
    fn pause_asks_first_and_sends_on_yes() {
        let mut app = app_with(&[("", ChannelState::Idle), ("chan2", ChannelState::Idle)]);
        app.on_key(key(KeyCode::Down));
        assert_eq!(app.on_key(key(KeyCode::Char('p'))), Action::None);
        assert!(matches!(app.overlay, Some(Overlay::Confirm { .. })));
        // Other keys keep the question open.
        assert_eq!(app.on_key(key(KeyCode::Char('x'))), Action::None);
        assert_eq!(
            app.on_key(key(KeyCode::Char('y'))),
            Action::Send(ControlCommand::Pause {
                channel: "chan2".into()
            })
        );
        assert_eq!(app.overlay, None);
    }

    #[test]
    fn paused_channel_offers_resume_and_no_cancels() {
        let mut app = app_with(&[("", ChannelState::Paused)]);
        app.on_key(key(KeyCode::Char('p')));
        let Some(Overlay::Confirm { command, .. }) = &app.overlay else {
            panic!("no confirmation");
        };
        assert_eq!(
            command,
            &ControlCommand::Resume {
                channel: String::new()
            }
        );
        assert_eq!(app.on_key(key(KeyCode::Char('n'))), Action::None);
        assert_eq!(app.overlay, None);
    }

    #[test]
    fn resync_prompt_edits_then_confirms() {
        let mut app = app_with(&[("", ChannelState::Idle)]);
        app.on_key(key(KeyCode::Char('u')));
        for c in "alicx".chars() {
            app.on_key(key(KeyCode::Char(c)));
        }
        app.on_key(key(KeyCode::Backspace));
        app.on_key(key(KeyCode::Char('e')));
        // `q` inside the prompt is a letter, not quit.
        assert_eq!(app.on_key(key(KeyCode::Enter)), Action::None);
        assert_eq!(
            app.on_key(key(KeyCode::Char('y'))),
            Action::Send(ControlCommand::ResyncUser {
                channel: String::new(),
                user: "alice".into()
            })
        );
    }

    #[test]
    fn empty_user_is_not_sent_and_q_in_prompt_is_text() {
        let mut app = app_with(&[("", ChannelState::Idle)]);
        app.on_key(key(KeyCode::Char('u')));
        app.on_key(key(KeyCode::Enter));
        assert!(matches!(app.overlay, Some(Overlay::UserPrompt { .. })));
        assert_eq!(app.on_key(key(KeyCode::Char('q'))), Action::None);
        assert_eq!(app.overlay, Some(Overlay::UserPrompt { input: "q".into() }));
        app.on_key(key(KeyCode::Esc));
        assert_eq!(app.overlay, None);
        assert_eq!(app.on_key(key(KeyCode::Char('q'))), Action::Quit);
    }

    #[test]
    fn selection_stays_on_its_channel_and_in_range() {
        let mut app = app_with(&[("a", ChannelState::Idle), ("b", ChannelState::Idle)]);
        app.on_key(key(KeyCode::Down));
        app.on_key(key(KeyCode::Down));
        assert_eq!(app.selected, 1);
        let reordered = Snapshot {
            channels: ["b", "a", "c"]
                .iter()
                .map(|n| ChannelStatus {
                    name: n.to_string(),
                    ..ChannelStatus::default()
                })
                .collect(),
            ..Snapshot::default()
        };
        app.on_snapshot(reordered, Instant::now());
        assert_eq!(app.channel().map(|c| c.name.as_str()), Some("b"));
        app.on_snapshot(Snapshot::default(), Instant::now());
        assert_eq!(app.selected, 0);
        assert_eq!(app.channel(), None);
        // With no channel, commands do nothing.
        assert_eq!(app.on_key(key(KeyCode::Char('s'))), Action::None);
        assert_eq!(app.on_key(key(KeyCode::Char('p'))), Action::None);
    }

    #[test]
    fn sync_now_needs_no_confirmation_and_views_toggle() {
        let mut app = app_with(&[("", ChannelState::Idle)]);
        assert_eq!(
            app.on_key(key(KeyCode::Char('s'))),
            Action::Send(ControlCommand::SyncNow {
                channel: String::new()
            })
        );
        app.on_key(key(KeyCode::Char('t')));
        assert_eq!(app.view, View::Protocol);
        app.on_key(key(KeyCode::Esc));
        assert_eq!(app.view, View::Overview);
        app.on_key(key(KeyCode::Char('?')));
        assert_eq!(app.overlay, Some(Overlay::Help));
        app.on_key(key(KeyCode::Char('x')));
        assert_eq!(app.overlay, None);
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(app.on_key(ctrl_c), Action::Quit);
    }
}
