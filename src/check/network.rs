//! The network part of `cyrsync check`: one session to the master and one to
//! the replica of a channel, opened exactly as `cyrsync run` opens them
//! ([`Session::connect_reporting`]), with each step recorded and every
//! failure explained.

use super::{PeerReport, STEP_TIMEOUT_CAP, Status, Step, TlsReport};
use crate::config::Host;
use crate::config::endpoint::{CSYNC_PORT, IMAP_PORT};
use crate::config::settings::{Explained, ResolvedChannel};
use crate::proto::diagnosis::{Cause, HintContext};
use crate::proto::greeting::Transport;
use crate::proto::session::{ConnectOptions, Handshake, Session};
use crate::proto::tls::VerifyMode;
use crate::proto::{ProtoError, Side};

/// The steps of a peer check, in order.
const STEPS: [&str; 7] = [
    "connect", "greeting", "tls", "sasl", "login", "admin", "compress",
];

/// Checks the master and (when the channel has one) the replica of a
/// channel, side by side.
pub async fn check_channel(resolved: &ResolvedChannel) -> Vec<PeerReport> {
    let channel = &resolved.config;
    let mut source = ConnectOptions::source(channel);
    // As `cyrsync run` connects to the master (daemon::worker).
    source.enable_sieve_mailbox = true;
    let explained = resolved.explained.as_slice();
    let master = check_peer(source, Some(channel.imapd_conf.clone()), explained);
    match ConnectOptions::replica(channel) {
        Some(replica) => {
            let (m, r) = tokio::join!(master, check_peer(replica, None, explained));
            vec![m, r]
        }
        None => vec![master.await],
    }
}

/// Where the value of `base` (`sync_port`, `sync_authname`, …) for this side
/// came from: `chan2_sync_port (/etc/imapd.conf:12)`; `None` for a default.
fn written(explained: &[Explained], side: Side, base: &str) -> Option<String> {
    let own = match (side, base) {
        (Side::Source, "sync_host") => "cyrsync_source_host",
        (Side::Source, "sync_port") => "cyrsync_source_port",
        (Side::Source, "sync_authname") => "cyrsync_source_authname",
        (Side::Source, "sync_password") => "cyrsync_source_password",
        _ => base,
    };
    let e = explained.iter().find(|e| e.key == own)?;
    match &e.from {
        Some((key, loc)) => Some(format!("{key} ({loc})")),
        // The master's credentials fall back to the replica's.
        None if own != base && base != "sync_host" && base != "sync_port" => {
            written(explained, Side::Target, base)
        }
        None => None,
    }
}

/// Checks one peer. `imapd_conf` is this host's imapd.conf, consulted for
/// the master's own sasldb when the master is this host; `explained` says
/// where each setting came from.
pub async fn check_peer(
    mut opts: ConnectOptions,
    imapd_conf: Option<std::path::PathBuf>,
    explained: &[Explained],
) -> PeerReport {
    let sync_timeout = opts.timeout;
    opts.timeout = opts.timeout.min(STEP_TIMEOUT_CAP);
    let role = match opts.side {
        Side::Source => "master",
        Side::Target => "replica",
    };
    let mut report = PeerReport {
        role,
        endpoint: opts.peer.endpoint.to_string(),
        address: None,
        ok: false,
        transport: None,
        server: None,
        tls: None,
        sasl_offered: Vec::new(),
        mechanism: None,
        authname: opts.peer.credentials.authname.clone(),
        authenticated: false,
        admin: None,
        compressed: false,
        steps: Vec::new(),
    };
    let mut ctx = opts.hint_context();
    // Name the line that holds the commented value, not just the key.
    ctx.commented_keys = ctx
        .commented_keys
        .iter()
        .map(|k| {
            let base = if k.ends_with("password") {
                "sync_password"
            } else {
                "sync_authname"
            };
            written(explained, opts.side, base).unwrap_or_else(|| k.clone())
        })
        .collect();

    if let Err(step) = resolve(&opts, &ctx).await {
        report.steps.push(step);
        for s in &STEPS[1..] {
            report.steps.push(not_reached(s));
        }
        return report;
    }

    let mut hs = Handshake::default();
    let outcome = match Session::connect_reporting(&opts, &mut hs).await {
        Ok(mut session) => {
            let probe = session.probe_admin(&opts).await;
            session.close().await;
            probe
        }
        Err(e) => Err(e),
    };
    ctx.server_name = hs.server_name().map(str::to_string);
    ctx.transport = hs.transport;
    let err = outcome.err();
    let failed_at = err.as_ref().map(|e| failed_step(&hs, e));
    let failure = |check: &'static str| -> Option<Step> {
        let e = err.as_ref()?;
        (failed_at == Some(check)).then(|| {
            let mut step = failed(check, e, &ctx, &opts, imapd_conf.as_deref());
            if e.cause() == Cause::Timeout {
                explain_timeout(&mut step, &hs, &opts, sync_timeout);
            }
            step
        })
    };
    let reached = |check: &'static str| -> bool {
        match failed_at {
            None => true,
            Some(f) => STEPS.iter().position(|s| *s == check) <= STEPS.iter().position(|s| *s == f),
        }
    };

    report.address = hs.peer.clone();
    report.transport = hs.transport.map(|t| t.to_string());
    report.server = hs.server.clone();
    report.sasl_offered = hs.sasl_offered.clone();
    report.mechanism = hs.mechanism.map(|m| m.to_string());
    report.authenticated = hs.authenticated;
    report.compressed = hs.compressed;
    report.tls = hs.tls.as_ref().map(|t| TlsReport {
        verification: if !t.established {
            "refused".into()
        } else {
            match t.mode {
                VerifyMode::Chain => "verified".into(),
                VerifyMode::Pinned => "pinned".into(),
                VerifyMode::Off => "not verified".into(),
            }
        },
        trust: t.trust.clone(),
        established: t.established,
        version: t.version.clone(),
        certificate: t.certificate.clone(),
        pin_line: t
            .certificate
            .as_ref()
            .map(|c| format!("{}: {}", opts.key("cyrsync_tls_fingerprint"), c.sha256)),
    });

    for check in STEPS {
        let step = if let Some(step) = failure(check) {
            step
        } else if !reached(check) {
            not_reached(check)
        } else {
            passed(check, &hs, &opts, &report, explained)
        };
        report.steps.push(step);
    }
    report.admin = match (&err, failed_at) {
        (None, _) => Some(true),
        (Some(_), Some("admin")) => Some(false),
        _ => None,
    };
    report.ok = report.steps.iter().all(|s| s.status != Status::Fail);
    report
}

async fn resolve(opts: &ConnectOptions, ctx: &HintContext) -> Result<(), Step> {
    let host = match &opts.peer.endpoint.host {
        Host::Unix(_) => return Ok(()),
        Host::Name(h) => h.clone(),
    };
    let port = opts.peer.endpoint.port.unwrap_or(CSYNC_PORT);
    let lookup = tokio::time::timeout(opts.timeout, tokio::net::lookup_host((host.as_str(), port)));
    let detail = match lookup.await {
        Ok(Ok(addrs)) => {
            let mut ips: Vec<String> = addrs.map(|a| a.ip().to_string()).collect();
            ips.dedup();
            if !ips.is_empty() {
                return Ok(());
            }
            format!("{host} has no address")
        }
        Ok(Err(e)) => format!("cannot resolve {host}: {e}"),
        Err(_) => format!(
            "resolving {host} took longer than {}s",
            opts.timeout.as_secs()
        ),
    };
    Err(Step {
        check: "connect",
        status: Status::Fail,
        detail,
        cause: Some(Cause::Resolve.as_str().to_string()),
        hint: Some(format!(
            "check the name in {} (spelling, DNS, /etc/hosts)",
            ctx.key("sync_host")
        )),
    })
}

/// Where in the sequence `e` happened.
fn failed_step(hs: &Handshake, e: &ProtoError) -> &'static str {
    match e.cause() {
        Cause::Resolve | Cause::Refused | Cause::Unreachable if !hs.connected => "connect",
        Cause::NotCyrus => "greeting",
        Cause::Tls | Cause::TlsRequired | Cause::CertificateUntrusted | Cause::PinMismatch => "tls",
        Cause::NoMechanism => "sasl",
        Cause::MissingCredential
        | Cause::WrongPassword
        | Cause::UnknownUser
        | Cause::SasldbUnreadable
        | Cause::AuthFailed => "login",
        Cause::NotAdmin | Cause::NoReplication => "admin",
        _ => {
            if !hs.connected {
                "connect"
            } else if hs.transport.is_none() {
                "greeting"
            } else if hs.tls.as_ref().is_some_and(|t| !t.established) {
                "tls"
            } else if hs.mechanism.is_none() && !hs.authenticated {
                "sasl"
            } else if !hs.authenticated {
                "login"
            } else {
                "admin"
            }
        }
    }
}

fn not_reached(check: &'static str) -> Step {
    Step::new(check, Status::Skip, "not reached")
}

fn failed(
    check: &'static str,
    e: &ProtoError,
    ctx: &HintContext,
    opts: &ConnectOptions,
    imapd_conf: Option<&std::path::Path>,
) -> Step {
    let text = e.to_string();
    // The error's own hint lines are replaced by the hint below.
    let detail = text.lines().next().unwrap_or_default().to_string();
    let cause = e.cause();
    let mut hint = e.hint(ctx);
    if cause == Cause::SasldbUnreadable
        && opts.side == Side::Source
        && is_this_host(&opts.peer.endpoint.host)
        && let Some(conf) = imapd_conf
        && let Some(facts) = super::local::sasldb_facts(conf)
    {
        hint.push_str(&format!("; here: {facts}"));
    }
    Step {
        check,
        status: Status::Fail,
        detail,
        cause: Some(cause.as_str().to_string()),
        hint: Some(hint),
    }
}

/// Says which limit cut the step (the check's cap, not `sync_timeout`) and
/// what a silent server usually is.
fn explain_timeout(
    step: &mut Step,
    hs: &Handshake,
    opts: &ConnectOptions,
    sync_timeout: std::time::Duration,
) {
    let secs = opts.timeout.as_secs();
    if opts.timeout < sync_timeout {
        step.detail = step.detail.replace(
            &format!("sync_timeout ({secs}s)"),
            &format!(
                "{secs}s (this check's limit; sync_timeout is {})",
                crate::config::value::format_duration(sync_timeout)
            ),
        );
    }
    if hs.connected {
        step.hint = Some(format!(
            "the {} accepted the connection but did not answer within {secs}s: something other than Cyrus listens on {} ({}), or Cyrus is overloaded (see `maxchild` in its cyrus.conf and its syslog)",
            opts.side,
            hs.peer.as_deref().unwrap_or("that port"),
            opts.key("sync_port")
        ));
    }
}

fn is_this_host(host: &Host) -> bool {
    match host {
        Host::Unix(_) => true,
        Host::Name(h) => {
            h == "localhost"
                || h.parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
    }
}

/// How `cyrsync run` picks the port, in words.
fn port_rule(opts: &ConnectOptions, explained: &[Explained]) -> String {
    match (&opts.peer.endpoint.host, opts.peer.endpoint.port) {
        (Host::Unix(_), _) => "a Unix socket".into(),
        (_, Some(p)) => format!(
            "port {p} from {}",
            written(explained, opts.side, "sync_port")
                .or_else(|| written(explained, opts.side, "sync_host"))
                .unwrap_or_else(|| opts.key("sync_port"))
        ),
        (_, None) if opts.peer.try_imap => format!(
            "no {} set, so IMAP on {IMAP_PORT} first, then csync on {CSYNC_PORT}, as Cyrus does",
            opts.key("sync_port")
        ),
        (_, None) => format!(
            "no {} set and {} off, so csync on {CSYNC_PORT}",
            opts.key("sync_port"),
            opts.key("sync_try_imap")
        ),
    }
}

fn passed(
    check: &'static str,
    hs: &Handshake,
    opts: &ConnectOptions,
    r: &PeerReport,
    explained: &[Explained],
) -> Step {
    let side = opts.side;
    let user = r.authname.as_deref().unwrap_or("(no authname)");
    match check {
        "connect" => {
            let mut d = format!(
                "{} ({})",
                hs.peer.as_deref().unwrap_or("?"),
                port_rule(opts, explained)
            );
            for (peer, why) in &hs.earlier {
                d.push_str(&format!("\nfirst tried {peer}: {why}"));
            }
            Step::new(check, Status::Ok, d)
        }
        "greeting" => {
            let what = match hs.transport {
                Some(Transport::Csync) => "csync (sync_server)",
                Some(Transport::Imap) => "IMAP (imapd, replication with SYNCGET/SYNCAPPLY)",
                None => "?",
            };
            Step::new(
                check,
                Status::Ok,
                format!("{what}: {}", hs.server.as_deref().unwrap_or("")),
            )
        }
        "tls" => tls_step(hs, opts, r),
        "sasl" => {
            if opts.peer.endpoint.noauth {
                return Step::new(check, Status::Info, "no authentication (/noauth)");
            }
            Step::new(
                check,
                Status::Ok,
                format!(
                    "{} chosen; offered: {}{}",
                    hs.mechanism.map(|m| m.to_string()).unwrap_or_default(),
                    hs.sasl_offered.join(" "),
                    opts.sasl_mech
                        .as_deref()
                        .map(|f| format!(
                            " (restricted by {}force_sasl_client_mech: {f})",
                            opts.key_prefix
                        ))
                        .unwrap_or_default()
                ),
            )
        }
        "login" => {
            if opts.peer.endpoint.noauth {
                return Step::new(check, Status::Info, "no authentication (/noauth)");
            }
            Step::new(check, Status::Ok, format!("logged in as {user}"))
        }
        "admin" => Step::new(
            check,
            Status::Ok,
            format!(
                "{user} may use replication commands on the {side} (GET MAILBOXES () answered OK)"
            ),
        ),
        "compress" => {
            if hs.compressed {
                Step::new(check, Status::Ok, "DEFLATE on")
            } else if hs.compress_offered && !opts.compress {
                Step::new(
                    check,
                    Status::Info,
                    format!("offered, but off ({}cyrsync_compress: 0)", opts.key_prefix),
                )
            } else if hs.tls.is_some() && hs.transport == Some(Transport::Csync) {
                Step::new(
                    check,
                    Status::Info,
                    "not offered (Cyrus's sync_server offers no COMPRESS under TLS)",
                )
            } else {
                Step::new(check, Status::Info, format!("not offered by the {side}"))
            }
        }
        _ => Step::new(check, Status::Info, ""),
    }
}

fn tls_step(hs: &Handshake, opts: &ConnectOptions, r: &PeerReport) -> Step {
    let side = opts.side;
    let Some(t) = &r.tls else {
        if matches!(opts.peer.endpoint.host, Host::Unix(_)) {
            return Step::new("tls", Status::Info, "not needed on a local socket");
        }
        let clear = hs.mechanism.is_some_and(|m| m.sends_password_in_clear());
        if clear {
            return Step {
                check: "tls",
                status: Status::Warn,
                detail: format!(
                    "not offered by the {side}: the session is not encrypted and {} sends the password in clear ({}: yes)",
                    hs.mechanism.map(|m| m.to_string()).unwrap_or_default(),
                    opts.key("cyrsync_allow_plaintext")
                ),
                cause: None,
                hint: Some(format!(
                    "give the {side} a certificate (tls_server_cert and tls_server_key in its imapd.conf), or use SCRAM-SHA-256"
                )),
            };
        }
        return Step::new(
            "tls",
            Status::Info,
            format!(
                "not offered by the {side} (no tls_server_cert and tls_server_key in its imapd.conf): the session is not encrypted{}",
                hs.mechanism
                    .map(|m| format!("; the password is protected by {m}"))
                    .unwrap_or_default()
            ),
        );
    };
    let mut d = match t.verification.as_str() {
        "verified" => format!("certificate verified against {}", t.trust),
        "pinned" => format!("certificate matches {}", t.trust),
        "not verified" => format!(
            "certificate NOT verified ({}: no)",
            opts.key("cyrsync_tls_verify")
        ),
        other => format!("certificate {other}: {}", t.trust),
    };
    if let Some(v) = &t.version {
        d = format!("{v}, {d}");
    }
    if let Some(c) = &t.certificate {
        d.push_str(&format!("\nsubject:    {}", c.subject));
        d.push_str(&format!("\nissuer:     {}", c.issuer));
        if let (Some(a), Some(b)) = (&c.not_before, &c.not_after) {
            d.push_str(&format!("\nvalid:      {a} to {b}"));
        }
        if !c.names.is_empty() {
            d.push_str(&format!("\nnames:      {}", c.names.join(", ")));
        }
        d.push_str(&format!("\nSHA-256:    {}", c.sha256));
    }
    if let Some(line) = &t.pin_line
        && t.verification != "pinned"
    {
        d.push_str(&format!("\nto pin it:  {line}"));
    }
    if t.verification == "not verified" {
        return Step {
            check: "tls",
            status: Status::Warn,
            detail: d,
            cause: None,
            hint: Some(format!(
                "anyone between here and the {side} can read and change the session: after comparing the SHA-256 above with `openssl x509 -noout -fingerprint -sha256 -in <tls_server_cert>` on the {side}, pin it with the line above, or give its CA in {}",
                opts.ca_file_keys()
            )),
        };
    }
    Step::new("tls", Status::Ok, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_this_host() {
        assert!(is_this_host(&Host::Name("127.0.0.1".into())));
        assert!(is_this_host(&Host::Name("::1".into())));
        assert!(is_this_host(&Host::Name("localhost".into())));
        assert!(!is_this_host(&Host::Name("replica.example.org".into())));
        assert!(is_this_host(&Host::Unix("/run/cyrus/sync".into())));
    }
}
