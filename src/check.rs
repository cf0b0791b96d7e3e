//! `cyrsync check`: what the configuration resolves to, and what looks wrong.

use std::fmt::Write as _;
use std::path::Path;

use crate::config::endpoint::{CSYNC_PORT, IMAP_PORT};
use crate::config::{ChannelName, ConfigError, ImapdConf, Peer, Settings};

/// The result of checking a configuration.
#[derive(Debug)]
pub struct ConfigReport {
    /// The resolved settings.
    pub settings: Settings,
    /// The channels to show (all, or those named with `-n`).
    pub shown: Vec<ChannelName>,
    /// The channels `cyrsync run` would replicate.
    pub run: Vec<ChannelName>,
}

/// Reads and resolves `path`; fails as `cyrsync run` would fail to start.
pub fn check_config(path: &Path, named: &[ChannelName]) -> Result<ConfigReport, ConfigError> {
    let conf = ImapdConf::load(path)?;
    let settings = Settings::resolve(&conf, named)?;
    let run = settings
        .channels_to_run(named)?
        .into_iter()
        .map(|c| c.name.clone())
        .collect();
    let shown = if named.is_empty() {
        settings
            .channels
            .iter()
            .map(|c| c.config.name.clone())
            .collect()
    } else {
        named.to_vec()
    };
    Ok(ConfigReport {
        settings,
        shown,
        run,
    })
}

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

impl ConfigReport {
    /// The report as text for a terminal.
    pub fn render(&self) -> String {
        let s = &self.settings;
        let mut out = String::new();
        let _ = writeln!(out, "configuration  {}", s.config_file.display());
        let _ = writeln!(out, "configdirectory  {}", s.config_directory.display());
        let _ = writeln!(out, "sync_log  {}", if s.sync_log { "on" } else { "off" });
        let listed: Vec<String> = s.log_channels.iter().map(ToString::to_string).collect();
        let _ = writeln!(out, "log channels  {}", listed.join(", "));
        let _ = writeln!(out, "control socket  {}", s.control_socket.display());
        for resolved in &s.channels {
            let c = &resolved.config;
            if !self.shown.contains(&c.name) {
                continue;
            }
            let role = if self.run.contains(&c.name) {
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
}
