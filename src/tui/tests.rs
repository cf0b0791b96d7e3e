//! Screen snapshots (ratatui `TestBackend` + insta) of synthetic daemon
//! states, at the smallest supported terminal and a large one.

use std::time::{Duration, Instant};

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::app::{App, Link, Theme};
use super::ui;
use crate::status::{
    ChannelState, ChannelStatus, Counters, ErrorInfo, Event, HeldUser, HistoryPoint, ProtocolLine,
    Queue, Session, Snapshot, Worker,
};

const NOW: u64 = 1_796_400_000;

fn sessions(workers: usize, connected: bool) -> Vec<Session> {
    (0..workers)
        .flat_map(|_| {
            ["master", "replica"].map(|side| Session {
                side: side.into(),
                peer: if side == "master" {
                    "127.0.0.1:21005".into()
                } else {
                    "replica.example.org:2005".into()
                },
                connected,
                timeout_secs: 1800,
                ..Session::default()
            })
        })
        .collect()
}

fn idle_workers(n: usize) -> Vec<Worker> {
    (0..n)
        .map(|id| Worker {
            id: id as u64,
            phase: "Idle".into(),
            ..Worker::default()
        })
        .collect()
}

fn channel(name: &str, replica: &str, transport: &str) -> ChannelStatus {
    ChannelStatus {
        name: name.into(),
        replica: replica.into(),
        transport: Some(transport.into()),
        tls: Some("verified".into()),
        mechanism: Some("SCRAM-SHA-256".into()),
        source_transport: Some("csync".into()),
        state: ChannelState::Idle,
        workers: idle_workers(4),
        sessions: sessions(4, true),
        counters: Counters {
            actions: 1520,
            mailboxes: 311,
            messages: 2048,
            bytes: 9_800_000,
            applies: 640,
            ..Counters::default()
        },
        history: (0..60)
            .map(|i| HistoryPoint {
                at_unix: NOW - 60 + i,
                actions_per_sec: ((i * 7) % 23) as f64,
                lag_seconds: 0.0,
            })
            .collect(),
        ..ChannelStatus::default()
    }
}

fn snapshot(channels: Vec<ChannelStatus>, events: Vec<Event>) -> Snapshot {
    Snapshot {
        version: 1,
        host: "mail1.example.org".into(),
        cyrsync_version: "0.1.0".into(),
        started_at_unix: NOW - 3725,
        now_unix: NOW,
        daemon_state: "Running".into(),
        channels,
        events,
    }
}

fn event(channel: &str, ago: u64, level: &str, text: &str) -> Event {
    Event {
        at_unix: NOW - ago,
        channel: channel.into(),
        level: level.into(),
        text: text.into(),
    }
}

fn idle() -> Snapshot {
    snapshot(
        vec![
            channel("", "replica.example.org:2005", "csync"),
            channel("chan2", "backup.example.org:143", "imap"),
        ],
        vec![
            event(
                "",
                3700,
                "Info",
                "replicating /var/imap/sync/log with 4 worker(s)",
            ),
            event("", 40, "Info", "log-run of 12 entries done in 0.2s"),
        ],
    )
}

fn syncing() -> Snapshot {
    let mut c = channel("", "replica.example.org:2005", "csync");
    c.state = ChannelState::Syncing;
    c.waiting = 4120;
    c.lag_seconds = Some(14.0);
    c.rate_per_sec = 312.5;
    c.counters.local_reads = 290;
    c.counters.listed_locally = 1180;
    c.counters.local_fallbacks = 21;
    c.queue = Queue {
        log_bytes: 120_000,
        log_lines: 120,
        run_entries: 4000,
        run_total: 2000,
        run_done: 850,
        oldest_waiting_unix: Some(NOW - 14),
        malformed: 0,
        held_entries: 0,
    };
    c.workers[0] = Worker {
        id: 0,
        user: Some("alice".into()),
        mailbox: Some("user.alice".into()),
        phase: "Message".into(),
        messages_done: 5120,
        messages_total: 8192,
        bytes_done: 412_000_000,
        bytes_total: 0,
        rate_bytes_per_sec: 21_000_000.0,
    };
    c.workers[1] = Worker {
        id: 1,
        user: Some("bob@example.org".into()),
        mailbox: Some("example.org!user.bob.Sent Items".into()),
        phase: "Apply".into(),
        ..Worker::default()
    };
    c.sessions[1].in_flight = Some("APPLY MESSAGE".into());
    c.sessions[1].in_flight_secs = Some(2.4);
    c.sessions[2].in_flight = Some("GET FULLMAILBOX".into());
    c.sessions[2].in_flight_secs = Some(0.8);
    c.protocol = vec![
        ProtocolLine {
            at_unix: NOW - 1,
            worker: 0,
            side: "replica".into(),
            dir: "C".into(),
            text: "APPLY RESERVE %(PARTITION default MBOXNAME (user.alice) GUID (483a26a4…".into(),
        },
        ProtocolLine {
            at_unix: NOW - 1,
            worker: 0,
            side: "replica".into(),
            dir: "S".into(),
            text: "OK (3 ms)".into(),
        },
        ProtocolLine {
            at_unix: NOW,
            worker: 1,
            side: "replica".into(),
            dir: "S".into(),
            text: "NO IMAP_MAILBOX_LOCKED Mailbox is locked (12 ms)".into(),
        },
    ];
    snapshot(
        vec![c, channel("chan2", "backup.example.org:143", "imap")],
        vec![event(
            "",
            2,
            "Info",
            "log-run of 4000 entries: 2000 actions for 37 users",
        )],
    )
}

fn backoff() -> Snapshot {
    let mut c = channel("", "replica.example.org:2005", "csync");
    c.state = ChannelState::Backoff {
        until_unix: NOW + 28,
        reason: "reading from replica.example.org:2005 took longer than sync_timeout (30s)".into(),
    };
    c.waiting = 310;
    c.lag_seconds = Some(95.0);
    c.counters.errors = 3;
    c.counters.retries = 3;
    c.sessions = sessions(4, false);
    for s in c.sessions.iter_mut() {
        s.reconnects = 3;
        s.backoff_remaining_secs = Some(28.0);
        s.timeout_secs = 30;
    }
    c.last_error = Some(ErrorInfo {
        at_unix: NOW - 4,
        code: None,
        message: "reading from replica.example.org:2005 took longer than sync_timeout (30s)"
            .into(),
        hint: Some(
            "the replica stopped answering: check its sync_server and the network; cyrsync retries with backoff up to sync_reconnect_maxwait"
                .into(),
        ),
    });
    snapshot(
        vec![c],
        vec![
            event(
                "",
                64,
                "Warn",
                "replica session cut after sync_timeout (30s)",
            ),
            event(
                "",
                4,
                "Error",
                "reconnect failed: connection refused; next try in 28s",
            ),
        ],
    )
}

fn error_with_hint() -> Snapshot {
    let mut c = channel("chan2", "backup.example.org:143", "imap");
    c.state = ChannelState::Error {
        message: "authentication failed".into(),
    };
    c.mechanism = None;
    c.waiting = 52;
    c.lag_seconds = Some(610.0);
    c.counters.errors = 12;
    c.last_error = Some(ErrorInfo {
        at_unix: NOW - 10,
        code: Some("IMAP_SASL_FAIL".into()),
        message: "backup.example.org:143 refused SCRAM-SHA-256 for repl".into(),
        hint: Some(
            "check sync_authname/sync_password, that the user exists in the replica's sasldb with the replica's servername as realm (saslpasswd2 -u), and that it is in the replica's admins:"
                .into(),
        ),
    });
    snapshot(
        vec![channel("", "replica.example.org:2005", "csync"), c],
        vec![],
    )
}

/// One user held back after the replica broke its sessions; the others
/// replicate.
fn held_user() -> Snapshot {
    let mut c = channel("", "replica.example.org:2005", "csync");
    c.counters.errors = 3;
    c.waiting = 14;
    c.queue.held_entries = 14;
    c.held = vec![HeldUser {
        user: "carol".into(),
        failures: 2,
        retry_at_unix: NOW + 17,
        reason: "replica.example.org:2005 closed the connection while APPLY MESSAGE".into(),
    }];
    c.last_error = Some(ErrorInfo {
        at_unix: NOW - 3,
        code: None,
        message: "carol held back: the replica broke the session 3 times on the same action (replica.example.org:2005 closed the connection while APPLY MESSAGE); its changes stay queued, next try in 20s".into(),
        hint: Some("the replica accepts connections but fails on this user's data: see its syslog for the sync_server that ended".into()),
    });
    snapshot(vec![c], vec![])
}

fn paused() -> Snapshot {
    let mut c = channel("", "replica.example.org:2005", "csync");
    c.state = ChannelState::Paused;
    c.waiting = 77;
    c.lag_seconds = Some(42.0);
    snapshot(
        vec![c],
        vec![event("", 42, "Info", "paused by the administrator")],
    )
}

fn render(app: &App, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("terminal");
    terminal
        .draw(|f| ui::draw(f, app, Duration::ZERO))
        .expect("draw");
    terminal.backend().to_string()
}

fn app(s: Snapshot) -> App {
    let mut app = App::new("/var/run/cyrsync.sock".into(), Theme { color: false });
    app.on_snapshot(s, Instant::now());
    app
}

macro_rules! screens {
    ($($name:ident => $make:expr),* $(,)?) => {$(
        #[test]
        fn $name() {
            let app = $make;
            insta::assert_snapshot!(concat!(stringify!($name), "_80x24"), render(&app, 80, 24));
            insta::assert_snapshot!(concat!(stringify!($name), "_160x48"), render(&app, 160, 48));
        }
    )*};
}

screens! {
    idle_screen => app(idle()),
    syncing_large_batch_screen => app(syncing()),
    backoff_after_timeout_screen => app(backoff()),
    error_with_hint_screen => {
        let mut a = app(error_with_hint());
        a.selected = 1;
        a
    },
    paused_screen => app(paused()),
    held_user_screen => app(held_user()),
    protocol_tail_screen => {
        let mut a = app(syncing());
        a.on_key(KeyEvent::new(KeyCode::Char('t'), KeyModifiers::NONE));
        a
    },
    help_screen => {
        let mut a = app(idle());
        a.on_key(KeyEvent::new(KeyCode::Char('?'), KeyModifiers::NONE));
        a
    },
    confirm_pause_screen => {
        let mut a = app(idle());
        a.on_key(KeyEvent::new(KeyCode::Char('j'), KeyModifiers::NONE));
        a.on_key(KeyEvent::new(KeyCode::Char('p'), KeyModifiers::NONE));
        a
    },
    no_daemon_screen => {
        let mut a = App::new("/var/run/cyrsync.sock".into(), Theme { color: false });
        a.link = Link::Down { error: "No such file or directory (os error 2)".into() };
        a
    },
}

#[test]
fn every_screen_fits_at_80x24_without_panicking_at_tiny_sizes() {
    for s in [idle(), syncing(), backoff(), error_with_hint(), paused()] {
        let a = app(s);
        for (w, h) in [(1, 1), (20, 5), (80, 24), (300, 100)] {
            render(&a, w, h);
        }
    }
}

#[test]
fn in_flight_timer_ages_between_snapshots() {
    let a = app(syncing());
    let mut terminal = Terminal::new(TestBackend::new(160, 48)).expect("terminal");
    terminal
        .draw(|f| ui::draw(f, &a, Duration::from_secs(7)))
        .expect("draw");
    let screen = terminal.backend().to_string();
    // 2.4 s in flight at the snapshot, 7 s later: 9.4 s.
    assert!(screen.contains("9.4s/30m00s"), "{screen}");
}

#[test]
fn colours_follow_the_theme() {
    let mut a = app(error_with_hint());
    a.selected = 1;
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).expect("terminal");
    terminal
        .draw(|f| ui::draw(f, &a, Duration::ZERO))
        .expect("draw");
    let plain = terminal.backend().buffer().clone();
    assert!(
        plain
            .content
            .iter()
            .all(|c| c.fg == ratatui::style::Color::Reset),
        "NO_COLOR screen has colours"
    );
    a.theme = Theme { color: true };
    terminal
        .draw(|f| ui::draw(f, &a, Duration::ZERO))
        .expect("draw");
    assert!(
        terminal
            .backend()
            .buffer()
            .content
            .iter()
            .any(|c| c.fg == ratatui::style::Color::Red),
        "the error is not red"
    );
}
