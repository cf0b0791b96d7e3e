//! `cyrsync check`: is every channel usable, and if not, why and what to do.
//!
//! [`config`] resolves imapd.conf as `cyrsync run` would; [`network`] opens a
//! session to the master and to each replica with the very code `run` uses
//! and records every step (resolve, connect, transport, TLS, SASL, login,
//! admin rights, COMPRESS); [`local`] checks this host (the sync log
//! directory for `cyrsync_user`, a `sync_client` left in cyrus.conf).
//! Nothing here prints: [`render`] turns a [`Report`] into text or JSON.

pub mod config;
pub mod local;
pub mod network;
pub mod render;
pub mod rival;

use std::path::PathBuf;
use std::time::Duration;

pub use config::{ConfigReport, check_config};

use crate::proto::x509::CertificateSummary;

/// The longest any single step of a network check may take: `sync_timeout`
/// defaults to 30 minutes, far too long for a diagnosis.
pub const STEP_TIMEOUT_CAP: Duration = Duration::from_secs(15);

/// Version of the JSON structure; raised only on incompatible changes.
pub const JSON_FORMAT: u32 = 1;

/// How a step came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Works.
    Ok,
    /// Works, but deserves attention.
    Warn,
    /// Does not work: the channel is not usable.
    Fail,
    /// Not reached (an earlier step failed) or not applicable.
    Skip,
    /// Neither good nor bad; for information.
    Info,
}

/// One thing that was checked.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Step {
    /// What: `resolve`, `connect`, `greeting`, `tls`, `sasl`, `login`,
    /// `admin`, `compress`, `sync_log`, `cyrus_conf`.
    pub check: &'static str,
    /// How it came out.
    pub status: Status,
    /// What was found (may span lines).
    pub detail: String,
    /// For a failure or warning: the cause in one word (`wrong_password`,
    /// `refused`, `not_admin`, … see [`crate::proto::diagnosis::Cause`]; `sync_client_configured`, `sync_client_running`,
    /// `log_dir_not_writable`, … for the checks on this host).
    pub cause: Option<String>,
    /// For a failure or warning: what to do.
    pub hint: Option<String>,
}

impl Step {
    /// A step with no cause and no hint.
    pub fn new(check: &'static str, status: Status, detail: impl Into<String>) -> Step {
        Step {
            check,
            status,
            detail: detail.into(),
            cause: None,
            hint: None,
        }
    }

    /// Adds a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Step {
        self.hint = Some(hint.into());
        self
    }
}

/// The TLS part of a peer's report.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TlsReport {
    /// `verified`, `pinned`, `not verified` or `refused`.
    pub verification: String,
    /// What the certificate was checked against, naming the setting.
    pub trust: String,
    /// The handshake completed.
    pub established: bool,
    /// The protocol version (`TLSv1_3`).
    pub version: Option<String>,
    /// The server certificate.
    pub certificate: Option<CertificateSummary>,
    /// The imapd.conf line that pins this certificate for the channel.
    pub pin_line: Option<String>,
}

/// The master or a replica, as seen from here.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PeerReport {
    /// `master` or `replica`.
    pub role: &'static str,
    /// As configured (`host:port`, `host`, `/socket`).
    pub endpoint: String,
    /// The connection used (`host:port`), once one was made.
    pub address: Option<String>,
    /// Every step passed.
    pub ok: bool,
    /// `csync` or `imap`.
    pub transport: Option<String>,
    /// The server's greeting (servername, product, version).
    pub server: Option<String>,
    /// With TLS.
    pub tls: Option<TlsReport>,
    /// SASL mechanisms offered.
    pub sasl_offered: Vec<String>,
    /// The mechanism chosen.
    pub mechanism: Option<String>,
    /// The account that logged in (or tried to).
    pub authname: Option<String>,
    /// The server accepted the credentials.
    pub authenticated: bool,
    /// The account may use replication commands (`None`: not reached).
    pub admin: Option<bool>,
    /// COMPRESS DEFLATE is on.
    pub compressed: bool,
    /// Every step, in order.
    pub steps: Vec<Step>,
}

/// One channel.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ChannelReport {
    /// The name; `""` for the default channel.
    pub channel: String,
    /// Checked (false for channels `cyrsync run` would not replicate).
    pub checked: bool,
    /// Usable: no step failed.
    pub ok: bool,
    /// Why it was not checked, or its verdict in words.
    pub summary: String,
    /// `<configdirectory>/sync[/<channel>]`.
    pub log_dir: PathBuf,
    /// The master, then the replica.
    pub peers: Vec<PeerReport>,
    /// Checks on this host.
    pub local: Vec<Step>,
}

/// The whole result of `cyrsync check`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    /// [`JSON_FORMAT`].
    pub format: u32,
    /// The imapd.conf that was read.
    pub config_file: PathBuf,
    /// Every checked channel is usable.
    pub ok: bool,
    /// Network checks were made (false with `--config-only`).
    pub network: bool,
    /// The limit of each network step, in seconds.
    pub step_timeout_secs: u64,
    /// The configuration's warnings, as text.
    pub warnings: Vec<String>,
    /// Every channel shown.
    pub channels: Vec<ChannelReport>,
}

/// What `cyrsync check` is asked to do.
#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// The cyrus.conf to search for a leftover `sync_client`; `None`: the
    /// `cyrus.conf` beside imapd.conf.
    pub cyrus_conf: Option<PathBuf>,
}

/// Runs every check for the channels of `config`.
pub async fn check(config: &ConfigReport, opts: &CheckOptions) -> Report {
    let cyrus_conf = opts.cyrus_conf.clone().unwrap_or_else(|| {
        config
            .settings
            .config_file
            .parent()
            .map(|d| d.join("cyrus.conf"))
            .unwrap_or_else(|| PathBuf::from("cyrus.conf"))
    });
    let cyrus_conf_given = opts.cyrus_conf.is_some();
    let sync_clients = local::find_sync_clients(&cyrus_conf);
    let settings = &config.settings;
    let mut jobs = Vec::new();
    for resolved in &settings.channels {
        let c = &resolved.config;
        if !config.shown.contains(&c.name) || !config.run.contains(&c.name) {
            continue;
        }
        jobs.push(network::check_channel(resolved));
    }
    let mut checked = futures_util::future::join_all(jobs).await.into_iter();
    let mut channels = Vec::new();
    for resolved in &settings.channels {
        let c = &resolved.config;
        if !config.shown.contains(&c.name) {
            continue;
        }
        let name = c.name.name().unwrap_or("").to_string();
        if !config.run.contains(&c.name) {
            channels.push(ChannelReport {
                channel: name,
                checked: false,
                ok: true,
                summary: if c.replica.is_some() {
                    format!(
                        "not checked: `cyrsync run` leaves this channel alone (no {}sync_host of its own); name it with -n to check it",
                        c.name.name().map(|n| format!("{n}_")).unwrap_or_default()
                    )
                } else {
                    "not checked: no replica (no sync_host)".to_string()
                },
                log_dir: c.log_dir.clone(),
                peers: Vec::new(),
                local: Vec::new(),
            });
            continue;
        }
        let peers = checked.next().unwrap_or_default();
        let local = vec![
            local::sync_log_dir(c, &settings.run_as_user),
            local::sync_client_step(c, &cyrus_conf, cyrus_conf_given, &sync_clients),
            local::sync_client_process_step(c),
        ];
        channels.push(verdict(name, c.log_dir.clone(), peers, local));
    }
    Report {
        format: JSON_FORMAT,
        config_file: settings.config_file.clone(),
        ok: channels.iter().all(|c| c.ok),
        network: true,
        step_timeout_secs: STEP_TIMEOUT_CAP.as_secs(),
        warnings: settings.warnings.iter().map(ToString::to_string).collect(),
        channels,
    }
}

/// The report of `--config-only`: the channels without any check.
pub fn config_only(config: &ConfigReport) -> Report {
    let settings = &config.settings;
    let channels = settings
        .channels
        .iter()
        .map(|r| &r.config)
        .filter(|c| config.shown.contains(&c.name))
        .map(|c| ChannelReport {
            channel: c.name.name().unwrap_or("").to_string(),
            checked: false,
            ok: true,
            summary: if config.run.contains(&c.name) {
                "replicated by `cyrsync run`; network not checked (--config-only)".into()
            } else {
                "not replicated by `cyrsync run`".into()
            },
            log_dir: c.log_dir.clone(),
            peers: Vec::new(),
            local: Vec::new(),
        })
        .collect();
    Report {
        format: JSON_FORMAT,
        config_file: settings.config_file.clone(),
        ok: true,
        network: false,
        step_timeout_secs: STEP_TIMEOUT_CAP.as_secs(),
        warnings: settings.warnings.iter().map(ToString::to_string).collect(),
        channels,
    }
}

fn verdict(
    channel: String,
    log_dir: PathBuf,
    peers: Vec<PeerReport>,
    local: Vec<Step>,
) -> ChannelReport {
    let mut failed: Vec<String> = Vec::new();
    for p in &peers {
        for s in p.steps.iter().filter(|s| s.status == Status::Fail) {
            failed.push(format!(
                "{} {}{}",
                p.role,
                s.check,
                s.cause
                    .as_deref()
                    .map(|c| format!(" ({c})"))
                    .unwrap_or_default()
            ));
        }
    }
    for s in local.iter().filter(|s| s.status == Status::Fail) {
        failed.push(format!(
            "{}{}",
            s.check,
            s.cause
                .as_deref()
                .map(|c| format!(" ({c})"))
                .unwrap_or_default()
        ));
    }
    let warned = peers
        .iter()
        .flat_map(|p| p.steps.iter())
        .chain(local.iter())
        .filter(|s| s.status == Status::Warn)
        .count();
    let ok = failed.is_empty();
    let summary = if ok && warned == 0 {
        "usable".to_string()
    } else if ok {
        format!("usable, with {warned} warning(s)")
    } else {
        format!("NOT usable: {} failed", failed.join(", "))
    };
    ChannelReport {
        channel,
        checked: true,
        ok,
        summary,
        log_dir,
        peers,
        local,
    }
}
