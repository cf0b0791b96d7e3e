//! `cyrsync check` reports as text for a terminal or as JSON for scripts.
//! Markers read without colour (`[ OK ]`, `[FAIL]`, `[WARN]`); colour is
//! added only when asked for.

use std::fmt::Write as _;

use super::{ConfigReport, Report, Status, Step};
use crate::config::Peer;
use crate::config::endpoint::{CSYNC_PORT, IMAP_PORT};

fn describe_peer(peer: &Peer) -> String {
    let mut s = peer.endpoint.to_string();
    if peer.endpoint.port.is_none() && !matches!(peer.endpoint.host, crate::config::Host::Unix(_)) {
        if peer.try_imap {
            let _ = write!(s, " (IMAP {IMAP_PORT}, then csync {CSYNC_PORT})");
        } else {
            let _ = write!(s, " (csync {CSYNC_PORT})");
        }
    }
    match &peer.credentials.authname {
        Some(a) => {
            let _ = write!(s, " as {a}");
        }
        None => s.push_str(" (no authname)"),
    }
    s
}

/// The configuration report of `--config-only` as text for a terminal:
/// every key of every channel with the line it came from.
pub fn config_text(report: &ConfigReport) -> String {
    let s = &report.settings;
    let mut out = String::new();
    let _ = writeln!(out, "configuration  {}", s.config_file.display());
    let _ = writeln!(out, "configdirectory  {}", s.config_directory.display());
    let _ = writeln!(out, "sync_log  {}", if s.sync_log { "on" } else { "off" });
    let listed: Vec<String> = s.log_channels.iter().map(ToString::to_string).collect();
    let _ = writeln!(out, "log channels  {}", listed.join(", "));
    let _ = writeln!(out, "control socket  {}", s.control_socket.display());
    for resolved in &s.channels {
        let c = &resolved.config;
        if !report.shown.contains(&c.name) {
            continue;
        }
        let role = if report.run.contains(&c.name) {
            "replicated by `cyrsync run`"
        } else {
            "not replicated by `cyrsync run`"
        };
        let _ = writeln!(out, "\nchannel {} ({role})", c.name);
        let _ = writeln!(out, "  log      {}", c.log_path().display());
        match &c.replica {
            Some(r) => {
                let _ = writeln!(out, "  replica  {}", describe_peer(r));
            }
            None => {
                let _ = writeln!(out, "  replica  (none)");
            }
        }
        let _ = writeln!(out, "  master   {}", describe_peer(&c.source));
        let width = resolved
            .explained
            .iter()
            .map(|e| e.key.len())
            .max()
            .unwrap_or(0);
        let vwidth = resolved
            .explained
            .iter()
            .map(|e| e.shown.chars().count())
            .max()
            .unwrap_or(0)
            .min(40);
        for e in &resolved.explained {
            let from = match &e.from {
                Some((key, loc)) if key != e.key => format!("{loc} ({key})"),
                Some((_, loc)) => loc.to_string(),
                None => "default".to_string(),
            };
            let _ = writeln!(out, "    {:width$}  {:vwidth$}  {from}", e.key, e.shown);
        }
    }
    if s.warnings.is_empty() {
        let _ = writeln!(out, "\nno warnings");
    } else {
        let _ = writeln!(out, "\n{} warning(s):", s.warnings.len());
        for w in &s.warnings {
            let _ = writeln!(out, "- {w}");
        }
    }
    let _ = writeln!(out, "configuration OK");
    out
}

/// Whether to colour the markers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Colour {
    /// Plain text.
    Never,
    /// ANSI colours on the markers.
    Always,
}

fn marker(status: Status, colour: Colour) -> String {
    let (text, code) = match status {
        Status::Ok => ("[ OK ]", "32"),
        Status::Fail => ("[FAIL]", "1;31"),
        Status::Warn => ("[WARN]", "33"),
        Status::Skip => ("[ -- ]", "2"),
        Status::Info => ("[INFO]", "36"),
    };
    match colour {
        Colour::Never => text.to_string(),
        Colour::Always => format!("\x1b[{code}m{text}\x1b[0m"),
    }
}

fn label(check: &str) -> &str {
    match check {
        "tls" => "TLS",
        "sasl" => "SASL",
        "compress" => "COMPRESS",
        "sync_log" => "sync log",
        "cyrus_conf" => "cyrus.conf",
        other => other,
    }
}

const LABEL_WIDTH: usize = 10;

fn write_step(out: &mut String, step: &Step, colour: Colour) {
    let indent = " ".repeat(4 + 6 + 1 + LABEL_WIDTH + 1);
    let mut lines = step.detail.lines();
    let _ = writeln!(
        out,
        "    {} {:LABEL_WIDTH$} {}",
        marker(step.status, colour),
        label(step.check),
        lines.next().unwrap_or("")
    );
    for l in lines {
        let _ = writeln!(out, "{indent}{l}");
    }
    if matches!(step.status, Status::Fail | Status::Warn) {
        if let Some(c) = &step.cause {
            let _ = writeln!(out, "{indent}cause: {c}");
        }
        if let Some(h) = &step.hint {
            let mut hl = h.lines();
            let _ = writeln!(out, "{indent}hint:  {}", hl.next().unwrap_or(""));
            for l in hl {
                let _ = writeln!(out, "{indent}       {}", l.trim_start());
            }
        }
    }
}

fn channel_title(name: &str) -> String {
    if name.is_empty() {
        "channel \"\" (default)".to_string()
    } else {
        format!("channel {name}")
    }
}

/// The full report as text for a terminal.
pub fn text(report: &Report, colour: Colour) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "cyrsync check: {}", report.config_file.display());
    if report.warnings.is_empty() {
        let _ = writeln!(out, "configuration OK, no warnings");
    } else {
        let _ = writeln!(
            out,
            "configuration OK, {} warning(s):",
            report.warnings.len()
        );
        for w in &report.warnings {
            let mut lines = w.lines();
            let _ = writeln!(
                out,
                "  {} {}",
                marker(Status::Warn, colour),
                lines.next().unwrap_or("")
            );
            for l in lines {
                let _ = writeln!(out, "         {}", l.trim_start());
            }
        }
    }
    let _ = writeln!(
        out,
        "(`cyrsync check --config-only` lists every setting and the line it comes from)"
    );
    if report.network {
        let _ = writeln!(
            out,
            "each network step waits at most {}s (sync_timeout, capped for this check)",
            report.step_timeout_secs
        );
    }
    for c in &report.channels {
        let _ = writeln!(out, "\n{}", channel_title(&c.channel));
        if !c.checked {
            let _ = writeln!(out, "  {}", c.summary);
            continue;
        }
        for p in &c.peers {
            let _ = writeln!(out, "  {} {}", p.role, p.endpoint);
            for s in &p.steps {
                write_step(&mut out, s, colour);
            }
        }
        let _ = writeln!(out, "  this host");
        for s in &c.local {
            write_step(&mut out, s, colour);
        }
        let verdict = if c.ok { Status::Ok } else { Status::Fail };
        let _ = writeln!(out, "  {} {}", marker(verdict, colour), c.summary);
    }
    let checked: Vec<_> = report.channels.iter().filter(|c| c.checked).collect();
    let bad = checked.iter().filter(|c| !c.ok).count();
    if report.network {
        let _ = writeln!(
            out,
            "\n{}",
            if bad == 0 {
                format!("{} channel(s) checked: all usable", checked.len())
            } else {
                format!("{} channel(s) checked: {bad} NOT usable", checked.len())
            }
        );
    }
    out
}

/// The report as JSON (see [`Report`]; `format` names the structure's version).
pub fn json(report: &Report) -> String {
    serde_json::to_string_pretty(report).unwrap_or_else(|e| {
        format!(
            "{{\"format\":{},\"ok\":false,\"error\":\"{e}\"}}",
            super::JSON_FORMAT
        )
    })
}

/// A configuration error as JSON, for `--json` when imapd.conf is refused.
pub fn config_error_json(config_file: &std::path::Path, error: &str) -> String {
    serde_json::json!({
        "format": super::JSON_FORMAT,
        "config_file": config_file,
        "ok": false,
        "config_error": error,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::{ChannelReport, PeerReport};

    fn report() -> Report {
        let step = |check, status, detail: &str| Step::new(check, status, detail);
        let mut login = step("login", Status::Fail, "r:2005 refused authentication");
        login.cause = Some("wrong_password".into());
        login.hint = Some("set sync_password".into());
        Report {
            format: 1,
            config_file: "/etc/imapd.conf".into(),
            ok: false,
            network: true,
            step_timeout_secs: 15,
            warnings: vec!["a warning\n  fix: do this".into()],
            channels: vec![ChannelReport {
                channel: String::new(),
                checked: true,
                ok: false,
                summary: "NOT usable: replica login (wrong_password) failed".into(),
                log_dir: "/var/imap/sync".into(),
                peers: vec![PeerReport {
                    role: "replica",
                    endpoint: "r:2005".into(),
                    address: Some("10.0.0.2:2005".into()),
                    ok: false,
                    transport: Some("csync".into()),
                    server: None,
                    tls: None,
                    sasl_offered: vec!["SCRAM-SHA-256".into()],
                    mechanism: Some("SCRAM-SHA-256".into()),
                    authname: Some("repl".into()),
                    authenticated: false,
                    admin: None,
                    compressed: false,
                    steps: vec![
                        step("connect", Status::Ok, "10.0.0.2:2005\nfirst tried r:143"),
                        login,
                        step("admin", Status::Skip, "not reached"),
                    ],
                }],
                local: vec![step("cyrus_conf", Status::Info, "no cyrus.conf")],
            }],
        }
    }

    #[test]
    fn text_reads_without_colour() {
        let t = text(&report(), Colour::Never);
        assert!(!t.contains('\x1b'), "{t}");
        for want in [
            "channel \"\" (default)",
            "  replica r:2005",
            "    [ OK ] connect    10.0.0.2:2005",
            "                      first tried r:143",
            "    [FAIL] login      r:2005 refused authentication",
            "                      cause: wrong_password",
            "                      hint:  set sync_password",
            "    [ -- ] admin      not reached",
            "    [INFO] cyrus.conf no cyrus.conf",
            "  [FAIL] NOT usable",
            "         fix: do this",
            "1 channel(s) checked: 1 NOT usable",
        ] {
            assert!(t.contains(want), "missing {want:?} in\n{t}");
        }
        let c = text(&report(), Colour::Always);
        assert!(c.contains("\x1b[1;31m[FAIL]\x1b[0m"), "{c}");
    }

    #[test]
    fn json_has_every_field_even_when_empty() {
        let j: serde_json::Value = serde_json::from_str(&json(&report())).unwrap();
        let step = &j["channels"][0]["peers"][0]["steps"][2];
        for key in ["check", "status", "detail", "cause", "hint"] {
            assert!(step.get(key).is_some(), "{key} missing in {step}");
        }
        assert_eq!(step["status"], "skip");
        assert_eq!(
            j["channels"][0]["peers"][0]["steps"][1]["cause"],
            "wrong_password"
        );
    }
}
