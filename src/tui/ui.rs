//! Draws the [`App`] (DESIGN.md §6). Pure: the same app, age and size give
//! the same screen, which is what the snapshot tests rely on.

use std::time::Duration;

use ratatui::Frame;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Clear, Paragraph, Row, Sparkline, Table, Wrap};

use super::app::{App, Link, Overlay, Theme, View};
use crate::status::format::{bytes, duration};
use crate::status::{ChannelState, ChannelStatus, Snapshot, Worker};

/// The rc.d command administrators know, named when no daemon answers.
const START_HINT: &str = "start it with `service cyrsync start` (FreeBSD), `cyrsync run`, or use `cyrsync tui --standalone`";

impl Theme {
    fn fg(self, c: Color) -> Style {
        if self.color {
            Style::new().fg(c)
        } else {
            Style::new()
        }
    }

    fn title(self) -> Style {
        Style::new().add_modifier(Modifier::BOLD)
    }

    fn selected(self) -> Style {
        Style::new().add_modifier(Modifier::REVERSED)
    }

    fn state(self, s: &ChannelState) -> Style {
        match s {
            ChannelState::Idle => self.fg(Color::Green),
            ChannelState::Syncing => self.fg(Color::Cyan),
            ChannelState::Paused => self.fg(Color::Yellow),
            ChannelState::Stopped => self.fg(Color::DarkGray),
            ChannelState::Backoff { .. } => self.fg(Color::Yellow).add_modifier(Modifier::BOLD),
            ChannelState::Error { .. } => self.fg(Color::Red).add_modifier(Modifier::BOLD),
        }
    }

    fn level(self, level: &str) -> Style {
        match level {
            "Error" => self.fg(Color::Red),
            "Warn" => self.fg(Color::Yellow),
            "Notice" => self.fg(Color::Cyan),
            _ => Style::new(),
        }
    }
}

/// Draws the whole screen; `age` is how long ago the snapshot arrived.
pub fn draw(f: &mut Frame<'_>, app: &App, age: Duration) {
    let [header, body, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(f.area());
    draw_header(f, header, app, age);
    match (&app.link, &app.snapshot) {
        (Link::Up, Some(s)) => match app.view {
            View::Overview => draw_overview(f, body, app, s, age),
            View::Protocol => draw_protocol(f, body, app),
        },
        (Link::Down { error }, _) => draw_no_daemon(f, body, app, Some(error)),
        _ => draw_no_daemon(f, body, app, None),
    }
    draw_footer(f, footer, app, age);
    match &app.overlay {
        Some(Overlay::Help) => draw_help(f, app),
        Some(Overlay::UserPrompt { input }) => draw_prompt(
            f,
            app,
            "Full resync of a user",
            &[
                Line::from("Userid to resync (as in the sync log: alice or alice@example.com):"),
                Line::from(vec![
                    Span::styled(format!("> {input}"), app.theme.title()),
                    Span::raw("_"),
                ]),
                Line::from(""),
                Line::from("Enter: continue   Esc: cancel"),
            ],
        ),
        Some(Overlay::Confirm { question, .. }) => draw_prompt(
            f,
            app,
            "Confirm",
            &[
                Line::from(question.as_str()),
                Line::from(""),
                Line::from("y: yes   n/Esc: no"),
            ],
        ),
        None => {}
    }
}

fn draw_header(f: &mut Frame<'_>, area: Rect, app: &App, age: Duration) {
    let t = app.theme;
    let mut spans = vec![Span::styled(" cyrsync", t.title())];
    if let Some(s) = &app.snapshot {
        let up = s.now_unix.saturating_sub(s.started_at_unix) + age.as_secs();
        spans.push(Span::raw(format!(
            " {} │ {} │ up {} │ {} │ {} channel{}",
            s.cyrsync_version,
            s.host,
            duration(up as f64),
            s.daemon_state.to_lowercase(),
            s.channels.len(),
            if s.channels.len() == 1 { "" } else { "s" }
        )));
    }
    if app.standalone {
        spans.push(Span::raw(" │ standalone"));
    }
    let link = match &app.link {
        Link::Up => Span::styled("● live ", t.fg(Color::Green)),
        Link::Connecting => Span::raw("… connecting "),
        Link::Down { .. } => Span::styled("○ no daemon ", t.fg(Color::Red)),
    };
    let width = area.width as usize;
    let left: usize = spans.iter().map(|s| s.width()).sum();
    let pad = width.saturating_sub(left + link.width());
    spans.push(Span::raw(" ".repeat(pad)));
    spans.push(link);
    f.render_widget(Paragraph::new(Line::from(spans)).style(t.selected()), area);
}

fn draw_footer(f: &mut Frame<'_>, area: Rect, app: &App, age: Duration) {
    let now = app.received.map(|r| r + age);
    let text = match now.and_then(|n| app.message(n)) {
        Some(m) => Line::from(Span::styled(format!(" {m}"), app.theme.title())),
        None => Line::from(
            " ↑↓ channel  p pause  s sync now  u resync user  t protocol  ? help  q quit",
        ),
    };
    f.render_widget(Paragraph::new(text), area);
}

fn draw_no_daemon(f: &mut Frame<'_>, area: Rect, app: &App, error: Option<&String>) {
    let mut lines = vec![Line::from("")];
    match error {
        Some(e) => {
            lines.push(Line::from(Span::styled(
                "No cyrsync daemon answers.",
                app.theme.fg(Color::Red).add_modifier(Modifier::BOLD),
            )));
            lines.push(Line::from(""));
            lines.push(Line::from(format!("socket: {}", app.socket)));
            lines.push(Line::from(format!("error:  {e}")));
            lines.push(Line::from(""));
            lines.push(Line::from(START_HINT));
            lines.push(Line::from(""));
            lines.push(Line::from("Trying again every second; q quits."));
        }
        None => lines.push(Line::from(format!("Connecting to {} …", app.socket))),
    }
    let p = Paragraph::new(lines)
        .alignment(Alignment::Center)
        .wrap(Wrap { trim: true })
        .block(Block::bordered().title(" cyrsync "));
    f.render_widget(p, area);
}

fn draw_overview(f: &mut Frame<'_>, area: Rect, app: &App, s: &Snapshot, age: Duration) {
    let wide = area.width >= 120;
    let table_height = (s.channels.len() as u16 + 3).clamp(4, 10);
    let [channels, detail] =
        Layout::vertical([Constraint::Length(table_height), Constraint::Min(0)]).areas(area);
    draw_channels(f, channels, app, s, wide);
    let Some(c) = app.channel() else {
        let p = Paragraph::new("This daemon replicates no channel.")
            .block(Block::bordered().title(" channel "));
        f.render_widget(p, detail);
        return;
    };
    let workers = worker_rows(c);
    let session_width = if wide {
        detail.width * 45 / 100
    } else {
        detail.width
    };
    let sessions = session_lines(app, c, age, session_width);
    // Idle workers and quiet sessions take one line each, so that at 80×24
    // the error and its hint still have room.
    let (wh, sh) = (workers.len() as u16 + 2, sessions.len() as u16 + 2);
    let [work, bottom] = if wide {
        Layout::vertical([Constraint::Length(wh.max(sh)), Constraint::Min(0)]).areas(detail)
    } else {
        Layout::vertical([Constraint::Length(wh + sh), Constraint::Min(0)]).areas(detail)
    };
    let [wa, sa] = if wide {
        Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(work)
    } else {
        Layout::vertical([Constraint::Length(wh), Constraint::Length(sh)]).areas(work)
    };
    draw_workers(f, wa, app, c, workers);
    draw_sessions(f, sa, app, sessions);
    let [graph, right] =
        Layout::horizontal([Constraint::Percentage(35), Constraint::Percentage(65)]).areas(bottom);
    if graph.height >= 14 {
        let [g, q] = Layout::vertical([Constraint::Length(8), Constraint::Min(0)]).areas(graph);
        draw_graph(f, g, app, c);
        draw_queue(f, q, app, s, c);
    } else {
        draw_graph(f, graph, app, c);
    }
    draw_errors_and_events(f, right, app, s, c);
}

fn draw_queue(f: &mut Frame<'_>, area: Rect, app: &App, s: &Snapshot, c: &ChannelStatus) {
    let q = &c.queue;
    let mut lines = vec![
        Line::from(format!(
            "log:     {} lines, {}",
            q.log_lines,
            bytes(q.log_bytes)
        )),
        Line::from(format!(
            "log-run: {} entries, {}/{} actions",
            q.run_entries, q.run_done, q.run_total
        )),
        Line::from(match q.oldest_waiting_unix {
            Some(t) => format!(
                "oldest:  waiting {}",
                duration(s.now_unix.saturating_sub(t) as f64)
            ),
            None => "oldest:  nothing waiting".to_string(),
        }),
    ];
    if q.malformed > 0 {
        lines.push(Line::styled(
            format!("{} malformed lines set aside beside the log", q.malformed),
            app.theme.fg(Color::Yellow),
        ));
    }
    let p = Paragraph::new(lines)
        .wrap(Wrap { trim: false })
        .block(Block::bordered().title(Span::styled(" queue ", app.theme.title())));
    f.render_widget(p, area);
}

fn link_text(c: &ChannelStatus) -> String {
    let mut parts = Vec::new();
    if let Some(t) = &c.transport {
        parts.push(t.clone());
    }
    if let Some(tls) = &c.tls {
        parts.push(format!("TLS {tls}"));
    }
    if let Some(m) = &c.mechanism {
        parts.push(m.clone());
    }
    if parts.is_empty() {
        "not connected yet".into()
    } else {
        parts.join(", ")
    }
}

fn state_text(c: &ChannelStatus, now_unix: u64) -> String {
    match &c.state {
        ChannelState::Backoff { until_unix, .. } => {
            format!(
                "backoff {}",
                duration(until_unix.saturating_sub(now_unix) as f64)
            )
        }
        // While syncing, "syncing" says more; idle, the held users do.
        ChannelState::Idle if !c.held.is_empty() => {
            format!("{} held", c.held.len())
        }
        other => other.word().to_string(),
    }
}

fn draw_channels(f: &mut Frame<'_>, area: Rect, app: &App, s: &Snapshot, wide: bool) {
    let t = app.theme;
    let mut head = vec!["CHANNEL", "REPLICA"];
    if wide {
        head.push("LINK");
    }
    head.extend(["STATE", "QUEUE", "LAG", "RATE/s", "ERR"]);
    let rows = s.channels.iter().enumerate().map(|(i, c)| {
        let mut cells = vec![
            Cell::from(c.display_name().to_string()),
            Cell::from(c.replica.clone()),
        ];
        if wide {
            cells.push(Cell::from(link_text(c)));
        }
        cells.extend([
            Cell::from(state_text(c, s.now_unix)).style(t.state(&c.state)),
            Cell::from(c.waiting.to_string()),
            Cell::from(c.lag_seconds.map_or("-".into(), duration)),
            Cell::from(format!("{:.1}", c.rate_per_sec)),
            Cell::from(c.counters.errors.to_string()).style(if c.counters.errors > 0 {
                t.fg(Color::Red)
            } else {
                Style::new()
            }),
        ]);
        let row = Row::new(cells);
        if i == app.selected {
            row.style(t.selected())
        } else {
            row
        }
    });
    let mut widths = vec![Constraint::Length(10), Constraint::Fill(1)];
    if wide {
        widths.push(Constraint::Length(36));
    }
    widths.extend([
        Constraint::Length(12),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(4),
    ]);
    let table = Table::new(rows, widths)
        .header(Row::new(head).style(t.title()))
        .block(Block::bordered().title(Span::styled(" channels ", t.title())));
    f.render_widget(table, area);
}

/// `width` cells of bar for `ratio` (0..=1).
fn bar(ratio: f64, width: usize) -> String {
    let ratio = if ratio.is_finite() {
        ratio.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let filled = ((ratio * width as f64).round() as usize).min(width);
    format!("{}{}", "█".repeat(filled), "░".repeat(width - filled))
}

/// Busy workers, one row each (under a header); all idle is one line.
fn worker_rows(c: &ChannelStatus) -> Vec<Row<'static>> {
    let busy: Vec<&Worker> = c.workers.iter().filter(|w| w.user.is_some()).collect();
    if busy.is_empty() {
        return vec![Row::new([format!(
            "all {} workers idle, waiting for the sync log",
            c.workers.len()
        )])];
    }
    let mut rows = vec![Row::new([
        "W",
        "USER",
        "MAILBOX",
        "PHASE",
        "BATCH k/N",
        "",
        "BYTES",
    ])];
    rows.extend(busy.into_iter().map(|w| {
        let (gauge, kn) = if w.messages_total > 0 {
            (
                bar(w.messages_done as f64 / w.messages_total as f64, 10),
                format!("{}/{}", w.messages_done, w.messages_total),
            )
        } else {
            (String::new(), String::new())
        };
        Row::new([
            w.id.to_string(),
            w.user.clone().unwrap_or_default(),
            w.mailbox.clone().unwrap_or_default(),
            w.phase.to_lowercase(),
            gauge,
            kn,
            bytes(w.bytes_done),
        ])
    }));
    rows
}

fn draw_workers(
    f: &mut Frame<'_>,
    area: Rect,
    app: &App,
    c: &ChannelStatus,
    rows: Vec<Row<'static>>,
) {
    let t = app.theme;
    let busy = c.workers.iter().filter(|w| w.user.is_some()).count();
    let title = if c.queue.run_total > 0 {
        format!(
            " {} → {} · {busy}/{} workers busy · log-run {}/{} actions ",
            c.display_name(),
            link_text(c),
            c.workers.len(),
            c.queue.run_done,
            c.queue.run_total
        )
    } else {
        format!(" {} → {} ", c.display_name(), link_text(c))
    };
    let widths = [
        Constraint::Length(2),
        Constraint::Length(12),
        Constraint::Fill(1),
        Constraint::Length(7),
        Constraint::Length(10),
        Constraint::Length(11),
        Constraint::Length(8),
    ];
    let widths: &[Constraint] = if rows.len() == 1 {
        &[Constraint::Fill(1)]
    } else {
        &widths
    };
    let mut rows = rows;
    if rows.len() > 1 {
        rows[0] = rows[0].clone().style(t.title());
    }
    let table = Table::new(rows, widths.to_vec())
        .block(Block::bordered().title(Span::styled(title, t.title())));
    f.render_widget(table, area);
}

/// Sessions with a command in flight, one line each against
/// `sync_timeout`, then one line for the rest (connected, backing off).
fn session_lines(app: &App, c: &ChannelStatus, age: Duration, width: u16) -> Vec<Line<'static>> {
    let t = app.theme;
    // Border, worker, side and the gauge column take 2 + 3 + 8 + 26.
    let cmd_width = (width as usize).saturating_sub(39).max(8);
    let mut lines = Vec::new();
    for (i, s) in c.sessions.iter().enumerate() {
        let Some(cmd) = &s.in_flight else { continue };
        if lines.is_empty() {
            lines.push(Line::styled(
                format!(
                    "{:<3}{:<8}{:<cmd_width$}ELAPSED / sync_timeout",
                    "W", "SESSION", "IN FLIGHT"
                ),
                t.title(),
            ));
        }
        let elapsed = s.in_flight_secs.unwrap_or(0.0) + age.as_secs_f64();
        let ratio = elapsed / s.timeout_secs.max(1) as f64;
        let style = if ratio > 0.5 {
            t.fg(Color::Red)
        } else if ratio > 0.1 {
            t.fg(Color::Yellow)
        } else {
            Style::new()
        };
        let cmd: String = cmd.chars().take(cmd_width.saturating_sub(1)).collect();
        lines.push(Line::from(vec![
            Span::raw(format!("{:<3}{:<8}{cmd:<cmd_width$}", i / 2, s.side)),
            Span::styled(
                format!(
                    "{} {}/{}",
                    bar(ratio, 8),
                    duration(elapsed),
                    duration(s.timeout_secs as f64)
                ),
                style,
            ),
        ]));
    }
    let connected = c.sessions.iter().filter(|s| s.connected).count();
    let reconnects: u64 = c.sessions.iter().map(|s| s.reconnects).sum();
    let backoff = c
        .sessions
        .iter()
        .filter_map(|s| s.backoff_remaining_secs)
        .fold(None::<f64>, |m, b| Some(m.map_or(b, |m| m.min(b))));
    let mut summary = format!(
        "{connected}/{} sessions connected · {reconnects} reconnects",
        c.sessions.len()
    );
    let mut style = Style::new();
    if let Some(b) = backoff {
        let left = (b - age.as_secs_f64()).max(0.0);
        summary.push_str(&format!(" · backoff: next try in {}", duration(left)));
        style = t.fg(Color::Yellow);
    }
    if let Some(s) = c.sessions.first().filter(|s| s.timeout_secs > 0) {
        summary.push_str(&format!(
            " · sync_timeout {}",
            duration(s.timeout_secs as f64)
        ));
    }
    lines.push(Line::styled(summary, style));
    lines
}

fn draw_sessions(f: &mut Frame<'_>, area: Rect, app: &App, lines: Vec<Line<'static>>) {
    let p = Paragraph::new(lines)
        .block(Block::bordered().title(Span::styled(" sessions · timeouts ", app.theme.title())));
    f.render_widget(p, area);
}

fn draw_graph(f: &mut Frame<'_>, area: Rect, app: &App, c: &ChannelStatus) {
    let data: Vec<u64> = c
        .history
        .iter()
        .map(|h| h.actions_per_sec.max(0.0).round() as u64)
        .collect();
    let peak = data.iter().copied().max().unwrap_or(0);
    let title = format!(" actions/s · peak {peak} ");
    // Newest on the right: show the last samples that fit.
    let inner = area.width.saturating_sub(2) as usize;
    let shown = &data[data.len().saturating_sub(inner)..];
    let spark = Sparkline::default()
        .data(shown)
        .max(peak.max(1))
        .style(app.theme.fg(Color::Cyan))
        .block(Block::bordered().title(Span::styled(title, app.theme.title())));
    f.render_widget(spark, area);
}

fn draw_errors_and_events(
    f: &mut Frame<'_>,
    area: Rect,
    app: &App,
    s: &Snapshot,
    c: &ChannelStatus,
) {
    let t = app.theme;
    let mut lines: Vec<Line<'_>> = Vec::new();
    match (&c.state, &c.last_error) {
        (ChannelState::Backoff { reason, .. }, _) if !reason.is_empty() => {
            lines.push(Line::from(Span::styled(
                format!("backing off: {reason}"),
                t.fg(Color::Yellow),
            )));
        }
        (ChannelState::Error { message }, None) => {
            lines.push(Line::from(Span::styled(message.clone(), t.fg(Color::Red))));
        }
        _ => {}
    }
    for h in &c.held {
        lines.push(Line::from(Span::styled(
            format!(
                "held back: {} · {} failure(s) · next try in {} (s: now)",
                if h.user.is_empty() {
                    "shared mailboxes"
                } else {
                    &h.user
                },
                h.failures,
                duration(h.retry_at_unix.saturating_sub(s.now_unix) as f64)
            ),
            t.fg(Color::Red),
        )));
    }
    // The counters go below what needs attention, above the history.
    let counters_at = lines.len();
    if let Some(e) = &c.last_error {
        let code = e
            .code
            .as_deref()
            .map(|c| format!("{c}: "))
            .unwrap_or_default();
        lines.push(Line::from(vec![
            Span::styled(
                format!("{} last error ", clock(e.at_unix)),
                t.fg(Color::Red).add_modifier(Modifier::BOLD),
            ),
            Span::styled(format!("{code}{}", e.message), t.fg(Color::Red)),
        ]));
        if let Some(h) = &e.hint {
            lines.push(Line::from(format!("  hint: {h}")));
        }
    }
    let events: Vec<_> = s
        .events
        .iter()
        .rev()
        .filter(|e| e.channel == c.name)
        .collect();
    for e in events {
        lines.push(Line::from(vec![
            Span::raw(format!("{} ", clock(e.at_unix))),
            Span::styled(e.text.clone(), t.level(&e.level)),
        ]));
    }
    let k = &c.counters;
    lines.insert(counters_at, Line::styled(
        format!(
            "done: {} actions · {} mailboxes{} · {} messages ({}) · {} retries · {} CRC mismatches · {} re-logged{}",
            k.actions,
            k.mailboxes,
            master_file_counters(k),
            k.messages,
            bytes(k.bytes),
            k.retries,
            k.crc_mismatches,
            k.relogged,
            cache_counters(k)
        ),
        t.fg(Color::DarkGray),
    ));
    let title = " errors · events ";
    let p = Paragraph::new(lines)
        .wrap(Wrap { trim: false })
        .block(Block::bordered().title(Span::styled(title, t.title())));
    f.render_widget(p, area);
}

/// What the local master reader did, once it has been used (space is short
/// at 80×24, and a protocol-only setup has nothing to say here).
fn master_file_counters(k: &crate::status::Counters) -> String {
    if k.local_reads + k.listed_locally + k.local_fallbacks == 0 {
        return String::new();
    }
    format!(
        " (index files: {} read, {} listed, {} fell back)",
        k.local_reads, k.listed_locally, k.local_fallbacks
    )
}

/// The target-state cache's counters, once it has been used.
fn cache_counters(k: &crate::status::Counters) -> String {
    if k.cache_hits + k.cache_misses + k.cache_invalidations == 0 {
        return String::new();
    }
    format!(
        " · cache {} hits, {} misses, {} invalidated",
        k.cache_hits, k.cache_misses, k.cache_invalidations
    )
}

fn draw_protocol(f: &mut Frame<'_>, area: Rect, app: &App) {
    let Some(c) = app.channel() else {
        f.render_widget(Block::bordered().title(" protocol "), area);
        return;
    };
    let inner = area.height.saturating_sub(2) as usize;
    let lines: Vec<Line<'_>> = c.protocol[c.protocol.len().saturating_sub(inner)..]
        .iter()
        .map(|p| {
            let style = if p.dir == "S" && !p.text.starts_with("OK") {
                app.theme.fg(Color::Red)
            } else if p.dir == "S" {
                app.theme.fg(Color::DarkGray)
            } else {
                Style::new()
            };
            Line::from(vec![
                Span::raw(format!(
                    "{} w{} {:<7} {}: ",
                    clock(p.at_unix),
                    p.worker,
                    p.side,
                    p.dir
                )),
                Span::styled(p.text.clone(), style),
            ])
        })
        .collect();
    let empty = lines.is_empty();
    let title = format!(
        " protocol tail · channel {} · first lines only, SASL never shown · t: back ",
        c.display_name()
    );
    let mut p = Paragraph::new(lines)
        .block(Block::bordered().title(Span::styled(title, app.theme.title())));
    if empty {
        p = Paragraph::new("no command sent yet on this channel")
            .block(Block::bordered().title(" protocol tail "));
    }
    f.render_widget(p, area);
}

fn popup(area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width);
    let h = height.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

fn draw_prompt(f: &mut Frame<'_>, app: &App, title: &str, lines: &[Line<'_>]) {
    let area = popup(f.area(), 64, lines.len() as u16 + 4);
    f.render_widget(Clear, area);
    let p = Paragraph::new(lines.to_vec())
        .wrap(Wrap { trim: false })
        .block(Block::bordered().title(Span::styled(format!(" {title} "), app.theme.title())));
    f.render_widget(p, area);
}

fn draw_help(f: &mut Frame<'_>, app: &App) {
    let keys = [
        ("↑/k ↓/j, Tab", "select a channel"),
        ("p", "pause or resume the channel (asks first)"),
        ("s", "sync now (do not wait for sync_repeat_interval)"),
        ("u", "full resync of a user (asks for the userid)"),
        ("t", "protocol tail of the channel / back"),
        ("Enter, Esc", "back to the overview"),
        ("?", "this help"),
        ("q, Ctrl-C", "quit (the daemon keeps replicating)"),
    ];
    let mut lines: Vec<Line<'_>> = keys
        .iter()
        .map(|(k, what)| {
            Line::from(vec![
                Span::styled(format!("{k:<14}"), app.theme.title()),
                Span::raw(*what),
            ])
        })
        .collect();
    lines.push(Line::from(""));
    lines.push(Line::from(
        "QUEUE: log lines waiting; LAG: age of the oldest.",
    ));
    lines.push(Line::from(
        "Timeouts: each session's command against sync_timeout.",
    ));
    lines.push(Line::from("Any key closes this help."));
    draw_prompt(f, app, "help", &lines);
}

/// `HH:MM:SS` (UTC) of a unix time.
fn clock(unix: u64) -> String {
    let s = unix % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, (s % 3600) / 60, s % 60)
}
