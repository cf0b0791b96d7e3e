//! A replication session: connect, greet, STARTTLS, authenticate, COMPRESS, then
//! DList commands and responses on either transport.
//!
//! The same code serves both sides: a **source** session reads the master with
//! `GET` (csync) or `SYNCGET` (IMAP), a **target** session writes a replica with
//! `APPLY`/`SYNCAPPLY`. Transport choice follows Cyrus (`sync_support.c`,
//! `sync_connect`): a fixed `sync_port`, else IMAP on 143 first when
//! `sync_try_imap` is on, then csync on 2005. The greeting itself tells csync from
//! IMAP, so a fixed port needs only one connection.

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use tokio::net::{TcpStream, UnixStream};

use super::diagnosis::HintContext;
use super::error::{ProtoError, Side};
use super::greeting::{
    Capabilities, Greeting, GreetingLine, Transport, apply_capability_code, shorten,
};
use super::sasl::{self, ClientMechanism, Mechanism, Step};
use super::stream::{Connection, Stream, Traffic};
use super::tls::{self, Rejection, TlsClient, VerifyMode};
use super::x509::CertificateSummary;
use crate::config::endpoint::{CSYNC_PORT, IMAP_PORT};
use crate::config::{ChannelConfig, Credentials, Host, Peer, TlsSettings};
use crate::dlist::{
    Command, Encoded, Event, FileLiteral, Fragment, Limits, Response, ResponseParser, StatusKind,
    StatusTag,
};

/// Everything needed to open a session to one peer.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Master or replica (for messages and key names).
    pub side: Side,
    /// Where and as whom.
    pub peer: Peer,
    /// TLS settings (verification, pin, client certificate).
    pub tls: TlsSettings,
    /// `force_sasl_client_mech`.
    pub sasl_mech: Option<String>,
    /// `cyrsync_compress`: use COMPRESS DEFLATE when offered.
    pub compress: bool,
    /// `cyrsync_allow_plaintext`: PLAIN/LOGIN without TLS.
    pub allow_plaintext: bool,
    /// `sync_timeout`.
    pub timeout: Duration,
    /// Send `APPLY CAPABILITIES (SIEVE-MAILBOX)` when offered (replicas only).
    pub enable_sieve_mailbox: bool,
    /// The channel's key prefix (`chan_`), for messages naming keys.
    pub key_prefix: String,
}

impl ConnectOptions {
    /// Options for the channel's replica.
    pub fn replica(channel: &ChannelConfig) -> Option<ConnectOptions> {
        let peer = channel.replica.clone()?;
        Some(Self::from_channel(channel, Side::Target, peer))
    }

    /// Options for reading the master.
    pub fn source(channel: &ChannelConfig) -> ConnectOptions {
        Self::from_channel(channel, Side::Source, channel.source.clone())
    }

    fn from_channel(channel: &ChannelConfig, side: Side, peer: Peer) -> ConnectOptions {
        ConnectOptions {
            side,
            peer,
            tls: channel.tls.clone(),
            // force_sasl_client_mech is Cyrus's setting for its own client
            // connections — sync_client's to the replica. Cyrus never logs
            // in to the master's own sync_server, and the usual reason for
            // the setting (3.6's sync_client fails SCRAM over IMAP) does not
            // concern us: the master is read with the strongest mechanism.
            sasl_mech: match side {
                Side::Target => channel.sasl_mech.clone(),
                Side::Source => None,
            },
            compress: channel.compress,
            allow_plaintext: channel.allow_plaintext,
            timeout: channel.timeout,
            enable_sieve_mailbox: side == Side::Target,
            key_prefix: channel
                .name
                .name()
                .map(|c| format!("{c}_"))
                .unwrap_or_default(),
        }
    }

    /// The imapd.conf key for `base` on this side and channel
    /// (`chan2_sync_password`, `cyrsync_source_port`, …).
    pub fn key(&self, base: &str) -> String {
        self.hint_context().key(base)
    }

    /// What hints about this peer may name: side, channel prefix, account,
    /// and which credential values carry a trailing ` #` comment.
    pub fn hint_context(&self) -> HintContext {
        let mut ctx = HintContext {
            side: Some(self.side),
            key_prefix: self.key_prefix.clone(),
            authname: self.peer.credentials.authname.clone(),
            server_name: None,
            transport: None,
            timeout_secs: Some(self.timeout.as_secs()),
            commented_keys: Vec::new(),
        };
        let creds = &self.peer.credentials;
        let commented = |v: &str| v.contains(" #") || v.contains("\t#");
        if creds.authname.as_deref().is_some_and(commented) {
            ctx.commented_keys.push(ctx.key("sync_authname"));
        }
        if creds
            .password
            .as_ref()
            .is_some_and(|p| commented(p.expose()))
        {
            ctx.commented_keys.push(ctx.key("sync_password"));
        }
        ctx
    }

    /// How the server certificate is checked, naming the setting, for
    /// messages: `tls_client_ca_file /etc/ssl/ca.pem`, `chan2_cyrsync_tls_fingerprint`, …
    pub fn trust_description(&self) -> String {
        let t = &self.tls;
        if t.fingerprint.is_some() {
            return self.key("cyrsync_tls_fingerprint");
        }
        if !t.verify {
            return format!("nothing ({}: no)", self.key("cyrsync_tls_verify"));
        }
        let mut from = Vec::new();
        if let Some(f) = &t.ca_file {
            from.push(format!("tls_client_ca_file {}", f.display()));
        }
        if let Some(d) = &t.ca_dir {
            from.push(format!("tls_client_ca_dir {}", d.display()));
        }
        if from.is_empty() {
            "the system's CA certificates (no tls_client_ca_file set)".to_string()
        } else {
            from.join(" and ")
        }
    }

    /// `tls_client_ca_file`, and for a named channel the key that sets it for
    /// that channel alone.
    pub fn ca_file_keys(&self) -> String {
        if self.key_prefix.is_empty() {
            "tls_client_ca_file".to_string()
        } else {
            format!(
                "tls_client_ca_file (or {}tls_client_ca_file for this channel alone)",
                self.key_prefix
            )
        }
    }
}

/// How far a connection got, filled in step by step by
/// [`Session::connect_reporting`] and kept when connecting fails, so that
/// `cyrsync check` can show each step up to the failure.
#[derive(Debug, Clone, Default)]
pub struct Handshake {
    /// Ports tried before the last one, with the reason they were given up
    /// (IMAP on 143 before csync on 2005, as Cyrus does).
    pub earlier: Vec<(String, String)>,
    /// `host:port` or the socket of the last attempt.
    pub peer: Option<String>,
    /// The TCP (or Unix socket) connection was made.
    pub connected: bool,
    /// The greeting was read: csync or IMAP.
    pub transport: Option<Transport>,
    /// The server's greeting text (servername, product, version).
    pub server: Option<String>,
    /// The server offered STARTTLS.
    pub starttls_offered: bool,
    /// TLS, when it was started.
    pub tls: Option<TlsDetails>,
    /// The SASL mechanisms offered (after STARTTLS, when TLS is used).
    pub sasl_offered: Vec<String>,
    /// The mechanism chosen.
    pub mechanism: Option<Mechanism>,
    /// The server accepted the credentials.
    pub authenticated: bool,
    /// COMPRESS DEFLATE was offered.
    pub compress_offered: bool,
    /// COMPRESS DEFLATE is on.
    pub compressed: bool,
}

impl Handshake {
    /// The server's `servername`: the first word of its greeting, which is
    /// also the realm its sasldb looks users up in.
    pub fn server_name(&self) -> Option<&str> {
        self.server.as_deref()?.split_whitespace().next()
    }
}

/// The TLS part of a handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsDetails {
    /// Chain, pin or nothing.
    pub mode: VerifyMode,
    /// What the certificate was checked against, naming the setting.
    pub trust: String,
    /// The certificate the server presented.
    pub certificate: Option<CertificateSummary>,
    /// The certificate was accepted and the handshake completed.
    pub established: bool,
    /// The negotiated protocol version (`TLSv1_3`).
    pub version: Option<String>,
}

/// What a session negotiated, for `cyrsync check`, logs and the status view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// `host:port` or socket path.
    pub peer: String,
    /// csync or IMAP.
    pub transport: Transport,
    /// `None` without TLS; else how the certificate was checked.
    pub tls: Option<VerifyMode>,
    /// SHA-256 of the server certificate, with TLS.
    pub tls_fingerprint: Option<[u8; 32]>,
    /// The server certificate, with TLS.
    pub certificate: Option<CertificateSummary>,
    /// The SASL mechanisms the server offered.
    pub sasl_offered: Vec<String>,
    /// The SASL mechanism used (`None` with `/noauth`).
    pub mechanism: Option<Mechanism>,
    /// COMPRESS DEFLATE on.
    pub compressed: bool,
    /// The server's greeting text (product, version).
    pub server: String,
    /// Capabilities after login.
    pub capabilities: Capabilities,
}

/// Receives file literal bodies from a response (`GET FETCH`,
/// `GET FETCH_SIEVE`), piece by piece; nothing is buffered by the session.
pub trait BodySink {
    /// A body begins.
    fn start(&mut self, file: &FileLiteral) -> std::io::Result<()>;
    /// The next bytes of the body.
    fn chunk(&mut self, bytes: &[u8]) -> std::io::Result<()>;
    /// The body is complete.
    fn end(&mut self) -> std::io::Result<()>;
}

/// Supplies file literal bodies for a command (`APPLY MESSAGE`).
pub trait BodySource {
    /// Fills `buf` with the next bytes of `file`'s body; returns how many.
    /// Called until exactly `file.size` bytes were given.
    fn read(&mut self, file: &FileLiteral, buf: &mut [u8]) -> std::io::Result<usize>;
}

/// Keeps bodies in memory: for small messages and tests.
#[derive(Debug, Default)]
pub struct MemoryBodies {
    /// Each body with its header, in arrival order.
    pub bodies: Vec<(FileLiteral, Vec<u8>)>,
}

impl BodySink for MemoryBodies {
    fn start(&mut self, file: &FileLiteral) -> std::io::Result<()> {
        let cap = usize::try_from(file.size.min(1 << 20)).unwrap_or(0);
        self.bodies.push((file.clone(), Vec::with_capacity(cap)));
        Ok(())
    }
    fn chunk(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self.bodies.last_mut() {
            Some((_, body)) => {
                body.extend_from_slice(bytes);
                Ok(())
            }
            None => Err(std::io::Error::other("body bytes before a body header")),
        }
    }
    fn end(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl BodySource for MemoryBodies {
    fn read(&mut self, file: &FileLiteral, buf: &mut [u8]) -> std::io::Result<usize> {
        // Bodies are consumed front to back; a partially read one stays first
        // with its remainder.
        let Some(pos) = self.bodies.iter().position(|(f, _)| f.guid == file.guid) else {
            return Err(std::io::Error::other(format!("no body for {}", file.guid)));
        };
        let body = &mut self.bodies[pos].1;
        let n = buf.len().min(body.len());
        buf[..n].copy_from_slice(&body[..n]);
        body.drain(..n);
        Ok(n)
    }
}

/// Refuses bodies: for commands whose answers carry none.
struct NoBodies;

impl BodySink for NoBodies {
    fn start(&mut self, file: &FileLiteral) -> std::io::Result<()> {
        Err(std::io::Error::other(format!(
            "unexpected message body {} in the reply",
            file.guid
        )))
    }
    fn chunk(&mut self, _: &[u8]) -> std::io::Result<()> {
        Ok(())
    }
    fn end(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl BodySource for NoBodies {
    fn read(&mut self, file: &FileLiteral, _: &mut [u8]) -> std::io::Result<usize> {
        Err(std::io::Error::other(format!("no body for {}", file.guid)))
    }
}

/// A command sent with [`Session::send_streaming`] whose answer is still to
/// be read with [`Session::receive`].
#[derive(Debug)]
#[must_use = "the answer must be read before the next command's"]
pub struct Pending {
    what: String,
    tag: Option<String>,
    since: Instant,
}

/// The command currently waiting for its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InFlight {
    /// Short description: `GET MAILBOXES`, `APPLY MESSAGE`, …
    pub what: String,
    /// When it was sent.
    pub since: Instant,
}

/// Told about every command of a session, for the status view: what is in
/// flight (the timeout gauges) and a short protocol tail. It receives only the
/// first line of each command, shortened, and never anything of the SASL
/// exchange, which happens before an observer can be attached.
pub trait SessionObserver: Send + Sync + std::fmt::Debug {
    /// `what` (`GET MAILBOXES`) was sent; `line` is its first line, shortened.
    fn sent(&self, what: &str, line: &str);
    /// Its answer arrived (`outcome` is `OK`, `NO IMAP_… text`, or the
    /// transport error) after `elapsed`; `traffic` is the session's total;
    /// `waiting` is the command sent after it whose answer is now awaited,
    /// if commands were pipelined.
    fn answered(
        &self,
        what: &str,
        outcome: &str,
        elapsed: Duration,
        traffic: Traffic,
        waiting: Option<&InFlight>,
    );
}

/// An open, authenticated replication session.
#[derive(Debug)]
pub struct Session {
    conn: Connection,
    parser: ResponseParser,
    info: SessionInfo,
    next_tag: u32,
    /// Commands sent whose answers are still to be read, oldest first.
    in_flight: std::collections::VecDeque<InFlight>,
    observer: Option<std::sync::Arc<dyn SessionObserver>>,
}

impl Session {
    /// Connects following Cyrus's transport rules and sets the session up.
    pub async fn connect(opts: &ConnectOptions) -> Result<Session, ProtoError> {
        Self::connect_reporting(opts, &mut Handshake::default()).await
    }

    /// Like [`connect`](Self::connect), recording each step in `report`,
    /// which keeps what was learnt when connecting fails.
    pub async fn connect_reporting(
        opts: &ConnectOptions,
        report: &mut Handshake,
    ) -> Result<Session, ProtoError> {
        let endpoint = &opts.peer.endpoint;
        let host = match &endpoint.host {
            Host::Unix(path) => {
                let peer = path.display().to_string();
                report.peer = Some(peer.clone());
                let stream = with_timeout(opts.timeout, &peer, "connecting", async {
                    UnixStream::connect(path).await
                })
                .await
                .map_err(|e| connect_error(e, &peer))?;
                report.connected = true;
                let conn = Connection::new(Stream::Unix(stream), peer, opts.timeout);
                return Box::pin(Self::setup(conn, opts, None, report)).await;
            }
            Host::Name(h) => h.clone(),
        };
        let ports: Vec<u16> = match (endpoint.port, opts.peer.try_imap) {
            (Some(p), _) => vec![p],
            (None, true) => vec![IMAP_PORT, CSYNC_PORT],
            (None, false) => vec![CSYNC_PORT],
        };
        let mut first_error = None;
        for port in &ports {
            let peer = if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            };
            let earlier = std::mem::take(&mut report.earlier);
            *report = Handshake {
                earlier,
                peer: Some(peer.clone()),
                ..Handshake::default()
            };
            let attempt = async {
                let tcp = with_timeout(opts.timeout, &peer, "connecting", async {
                    TcpStream::connect((host.as_str(), *port)).await
                })
                .await
                .map_err(|e| connect_error(e, &peer))?;
                let _ = tcp.set_nodelay(true);
                report.connected = true;
                let conn = Connection::new(Stream::Tcp(tcp), peer.clone(), opts.timeout);
                // Boxed: the whole handshake is one deep state machine, too
                // big for a 2 MiB thread stack in debug builds.
                Box::pin(Self::setup(conn, opts, Some(&host), report)).await
            };
            match attempt.await {
                Ok(session) => return Ok(session),
                // Cyrus moves on to csync when IMAP is refused or turns out not
                // to offer replication; anything else (bad password, TLS) is final.
                Err(e @ (ProtoError::Connect { .. } | ProtoError::NoReplication { .. }))
                    if ports.len() > 1 =>
                {
                    if *port != ports[ports.len() - 1] {
                        report.earlier.push((peer.clone(), e.to_string()));
                    }
                    first_error.get_or_insert(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(first_error.unwrap_or_else(|| ProtoError::Banner {
            peer: host,
            detail: "no port to try".into(),
        }))
    }

    async fn setup(
        mut conn: Connection,
        opts: &ConnectOptions,
        tls_host: Option<&str>,
        report: &mut Handshake,
    ) -> Result<Session, ProtoError> {
        let mut greeting = read_greeting(&mut conn).await?;
        let transport = greeting.transport.unwrap_or(Transport::Csync);
        report.transport = Some(transport);
        report.server = Some(greeting.caps.server.clone());
        report.starttls_offered = greeting.caps.starttls;
        report.sasl_offered = greeting.caps.sasl.clone();
        report.compress_offered = greeting.caps.compress;
        let mut next_tag = 1u32;
        let mut tag = |prefix: &str| {
            let t = format!("{prefix}{next_tag:02}");
            next_tag += 1;
            t
        };

        // STARTTLS whenever offered (DESIGN.md §7); required with `/tls`.
        let mut tls_mode = None;
        let mut tls_fingerprint = None;
        let mut certificate = None;
        if greeting.caps.starttls && tls_host.is_some() {
            let tls_client = tls::client_config(&opts.tls).map_err(|e| ProtoError::Tls {
                peer: conn.peer().to_string(),
                detail: e.to_string(),
            })?;
            report.tls = Some(TlsDetails {
                mode: tls_client.mode,
                trust: opts.trust_description(),
                certificate: None,
                established: false,
                version: None,
            });
            let t = match transport {
                Transport::Csync => None,
                Transport::Imap => Some(tag("T")),
            };
            simple_command(&mut conn, t.as_deref(), b"STARTTLS", "STARTTLS").await?;
            let host = tls_host.unwrap_or_default();
            tls_fingerprint =
                Box::pin(starttls(&mut conn, host, &tls_client, opts, report)).await?;
            certificate = report.tls.as_ref().and_then(|t| t.certificate.clone());
            tls_mode = Some(tls_client.mode);
            if tls_client.mode == VerifyMode::Off {
                tracing::warn!(
                    peer = conn.peer(),
                    "TLS certificate NOT verified (cyrsync_tls_verify: no)"
                );
            }
            // After STARTTLS the server forgets what it said (RFC 3207 §4.2):
            // sync_server sends its banner again; imapd is asked.
            greeting = match transport {
                Transport::Csync => read_greeting(&mut conn).await?,
                Transport::Imap => {
                    let t = tag("C");
                    let caps = imap_capability(&mut conn, &t).await?;
                    Greeting {
                        transport: Some(Transport::Imap),
                        caps: Capabilities {
                            server: greeting.caps.server.clone(),
                            ..caps
                        },
                    }
                }
            };
            report.sasl_offered = greeting.caps.sasl.clone();
            report.compress_offered = greeting.caps.compress;
        } else if opts.peer.endpoint.require_tls {
            return Err(ProtoError::TlsRequired {
                peer: conn.peer().to_string(),
                why: format!("{}sync_host ends in /tls", opts.key_prefix),
            });
        }
        let mut caps = greeting.caps;
        let sasl_offered = caps.sasl.clone();

        let mut mechanism = None;
        if !opts.peer.endpoint.noauth {
            let t = match transport {
                Transport::Csync => None,
                Transport::Imap => Some(tag("A")),
            };
            let (mech, ok_text) =
                Box::pin(authenticate(&mut conn, opts, transport, &caps, t, report)).await?;
            report.authenticated = true;
            mechanism = Some(mech);
            if transport == Transport::Imap {
                // RFC 9051 §6.2.2: capabilities may change after login; imapd
                // sends them in the tagged OK, else ask.
                if !apply_capability_code(&mut caps, &ok_text) {
                    let t = tag("C");
                    let server = caps.server.clone();
                    caps = imap_capability(&mut conn, &t).await?;
                    caps.server = server;
                }
            }
        }
        if transport == Transport::Imap && !caps.replication {
            return Err(ProtoError::NoReplication {
                peer: conn.peer().to_string(),
            });
        }

        if caps.compress && opts.compress {
            let t = match transport {
                Transport::Csync => None,
                Transport::Imap => Some(tag("Z")),
            };
            simple_command(&mut conn, t.as_deref(), b"COMPRESS DEFLATE", "COMPRESS")
                .await
                .map_err(|e| admin_refusal(e, opts))?;
            conn.start_deflate()?;
            report.compressed = true;
        }

        let mut parser = ResponseParser::responses(Limits::default());
        parser.feed(&conn.take_buffered());
        let info = SessionInfo {
            peer: conn.peer().to_string(),
            transport,
            tls: tls_mode,
            tls_fingerprint,
            certificate,
            sasl_offered,
            mechanism,
            compressed: conn.is_compressed(),
            server: caps.server.clone(),
            capabilities: caps,
        };
        let mut session = Session {
            conn,
            parser,
            info,
            next_tag,
            in_flight: Default::default(),
            observer: None,
        };
        if opts.enable_sieve_mailbox && session.info.capabilities.sieve_mailbox {
            // sync_client announces that it replicates sieve scripts as
            // mailbox content; the replica answers `* ENABLED (…)`.
            let cmd = Command::apply(
                "CAPABILITIES",
                crate::dlist::Value::atom_list(["SIEVE-MAILBOX"]),
            );
            session
                .command(cmd)
                .await
                .map_err(|e| admin_refusal(e, opts))?;
        }
        Ok(session)
    }

    /// Proves that the account may use replication commands with a harmless
    /// read: `GET MAILBOXES ()` (`SYNCGET` over IMAP), which lists nothing.
    /// A refusal becomes [`ProtoError::NotAdmin`].
    pub async fn probe_admin(&mut self, opts: &ConnectOptions) -> Result<(), ProtoError> {
        let empty: [&str; 0] = [];
        self.command(Command::get(
            "MAILBOXES",
            crate::dlist::Value::atom_list(empty),
        ))
        .await
        .map(|_| ())
        .map_err(|e| admin_refusal(e, opts))
    }

    /// What was negotiated.
    pub fn info(&self) -> &SessionInfo {
        &self.info
    }

    /// The command waiting for its answer, for the status view.
    pub fn in_flight(&self) -> Option<&InFlight> {
        self.in_flight.front()
    }

    /// Byte counters.
    pub fn traffic(&self) -> Traffic {
        self.conn.traffic()
    }

    /// Reports every further command to `observer`.
    pub fn set_observer(&mut self, observer: std::sync::Arc<dyn SessionObserver>) {
        self.observer = Some(observer);
    }

    /// Sends a command without file bodies and collects its untagged answers.
    pub async fn command(&mut self, cmd: Command) -> Result<Vec<Response>, ProtoError> {
        self.command_streaming(cmd, &mut NoBodies, &mut NoBodies)
            .await
    }

    /// Sends a command, taking file literal bodies from `source`, and hands any
    /// bodies in the answer to `sink`; returns the other untagged answers.
    pub async fn command_streaming(
        &mut self,
        cmd: Command,
        source: &mut (dyn BodySource + Send),
        sink: &mut (dyn BodySink + Send),
    ) -> Result<Vec<Response>, ProtoError> {
        let pending = self.send_streaming(cmd, source).await?;
        self.receive(pending, sink).await
    }

    /// Sends a command, taking file literal bodies from `source`, without
    /// waiting for its answer: the caller may prepare or send the next one
    /// while the server works, and must then [`receive`](Self::receive)
    /// every pending answer in the order the commands were sent (the server
    /// answers in order). A failed send leaves the session unusable.
    pub async fn send_streaming(
        &mut self,
        cmd: Command,
        source: &mut (dyn BodySource + Send),
    ) -> Result<Pending, ProtoError> {
        let what = describe(&cmd);
        let (cmd, tag) = match self.info.transport {
            Transport::Csync => (cmd, None),
            Transport::Imap => {
                let t = format!("S{}", self.next_tag);
                self.next_tag += 1;
                (cmd.for_imap(t.clone()), Some(t))
            }
        };
        let since = Instant::now();
        self.in_flight.push_back(InFlight {
            what: what.clone(),
            since,
        });
        let result = match cmd.encode() {
            Ok(encoded) => {
                if let Some(o) = &self.observer {
                    let line = match encoded.fragments.first() {
                        Some(Fragment::Bytes(b)) => trace_text(b),
                        _ => what.clone(),
                    };
                    o.sent(&what, &line);
                }
                self.write_command(&encoded, &what, source).await
            }
            Err(e) => Err(self.unexpected(&what, e.to_string())),
        };
        match result {
            Ok(()) => Ok(Pending { what, tag, since }),
            Err(e) => {
                self.in_flight.pop_back();
                self.report_answer(&what, since, Err(&e));
                Err(e)
            }
        }
    }

    /// Reads the answer to `pending`, the oldest command sent and not yet
    /// answered, handing file literal bodies in it to `sink`.
    pub async fn receive(
        &mut self,
        pending: Pending,
        sink: &mut (dyn BodySink + Send),
    ) -> Result<Vec<Response>, ProtoError> {
        let Pending { what, tag, since } = pending;
        let result = self.read_answer(tag.as_deref(), &what, sink).await;
        self.in_flight.pop_front();
        self.report_answer(&what, since, result.as_ref().map(|_| ()));
        result
    }

    fn report_answer(&self, what: &str, since: Instant, result: Result<(), &ProtoError>) {
        if let Some(o) = &self.observer {
            let outcome = match result {
                Ok(()) => "OK".to_string(),
                Err(e) => shorten(&e.to_string()),
            };
            o.answered(
                what,
                &outcome,
                since.elapsed(),
                self.conn.traffic(),
                self.in_flight.front(),
            );
        }
    }

    async fn write_command(
        &mut self,
        encoded: &Encoded,
        what: &str,
        source: &mut (dyn BodySource + Send),
    ) -> Result<(), ProtoError> {
        let mut buf = vec![0u8; 64 * 1024];
        for fragment in &encoded.fragments {
            match fragment {
                Fragment::Bytes(b) => {
                    if tracing::enabled!(tracing::Level::TRACE) {
                        tracing::trace!(peer = self.conn.peer(), "C: {}", trace_text(b));
                    }
                    self.conn.write(b, what).await?
                }
                Fragment::File(file) => {
                    let mut left = file.size;
                    while left > 0 {
                        let want = buf.len().min(usize::try_from(left).unwrap_or(buf.len()));
                        let n = source
                            .read(file, &mut buf[..want])
                            .map_err(|e| self.body_error(what, e))?;
                        if n == 0 {
                            return Err(self.body_error(
                                what,
                                std::io::Error::other(format!(
                                    "body of {} ended {left} bytes early",
                                    file.guid
                                )),
                            ));
                        }
                        self.conn.write(&buf[..n], what).await?;
                        left -= n as u64;
                    }
                }
            }
        }
        self.conn.flush(what).await
    }

    async fn read_answer(
        &mut self,
        tag: Option<&str>,
        what: &str,
        sink: &mut (dyn BodySink + Send),
    ) -> Result<Vec<Response>, ProtoError> {
        let mut items = Vec::new();
        loop {
            loop {
                let event = match self.parser.next_event() {
                    Ok(Some(ev)) => ev,
                    Ok(None) => break,
                    Err(e) => {
                        let peer = self.conn.peer().to_string();
                        return Err(ProtoError::Unexpected {
                            peer,
                            doing: what.to_string(),
                            detail: e.to_string(),
                        });
                    }
                };
                let sink_result = match event {
                    Event::FileLiteralStart(f) => sink.start(&f),
                    Event::FileLiteralChunk(c) => sink.chunk(c),
                    Event::FileLiteralEnd => sink.end(),
                    Event::Message(resp) => {
                        if tracing::enabled!(tracing::Level::TRACE) {
                            tracing::trace!(
                                peer = self.conn.peer(),
                                "S: {}",
                                trace_response(&resp)
                            );
                        }
                        if self.judge(resp, tag, what, &mut items)? {
                            return Ok(items);
                        }
                        Ok(())
                    }
                };
                if let Err(e) = sink_result {
                    return Err(self.body_error(what, e));
                }
            }
            self.conn.fill(what).await?;
            let data = self.conn.take_buffered();
            self.parser.feed(&data);
        }
    }

    /// Decides what one response line means; `true` when the command is done.
    fn judge(
        &mut self,
        resp: Response,
        tag: Option<&str>,
        what: &str,
        items: &mut Vec<Response>,
    ) -> Result<bool, ProtoError> {
        let peer = self.conn.peer().to_string();
        match &resp {
            Response::Status(status) => {
                let ours = match (&status.tag, tag) {
                    (StatusTag::None, None) => true,
                    (StatusTag::Tagged(t), Some(want)) => t == want,
                    (StatusTag::Untagged, _) => false,
                    _ => false,
                };
                if status.kind == StatusKind::Bye {
                    return Err(ProtoError::Closed {
                        peer,
                        doing: format!("{what} (server said BYE {})", status.text),
                    });
                }
                if !ours {
                    if status.tag == StatusTag::Untagged {
                        // `* OK …` notices are informational.
                        return Ok(false);
                    }
                    return Err(ProtoError::Unexpected {
                        peer,
                        doing: what.to_string(),
                        detail: format!("status for another command: {status:?}"),
                    });
                }
                match status.kind {
                    StatusKind::Ok => Ok(true),
                    StatusKind::No => Err(ProtoError::No {
                        peer,
                        doing: what.to_string(),
                        code: status.error.clone(),
                        text: status.text.clone(),
                    }),
                    StatusKind::Bad | StatusKind::Bye => Err(ProtoError::Bad {
                        peer,
                        doing: what.to_string(),
                        text: status.text.clone(),
                    }),
                }
            }
            Response::Continuation(_) => Ok(false),
            Response::Data { .. } | Response::Text { .. } => {
                items.push(resp);
                Ok(false)
            }
        }
    }

    fn unexpected(&self, what: &str, detail: String) -> ProtoError {
        ProtoError::Unexpected {
            peer: self.conn.peer().to_string(),
            doing: what.to_string(),
            detail,
        }
    }

    fn body_error(&self, what: &str, e: std::io::Error) -> ProtoError {
        ProtoError::Io {
            peer: self.conn.peer().to_string(),
            doing: format!("{what} (message body)"),
            source: e,
        }
    }

    /// `RESTART` (`SYNCRESTART` over IMAP): the replica drops per-session state
    /// between batches, as sync_client does.
    pub async fn restart(&mut self) -> Result<(), ProtoError> {
        self.command(Command::restart()).await.map(|_| ())
    }

    /// `NOOP`: proves the session is alive.
    pub async fn noop(&mut self) -> Result<(), ProtoError> {
        self.command(Command::noop()).await.map(|_| ())
    }

    /// Ends the session politely (`EXIT`, or `LOGOUT` over IMAP) and closes it.
    pub async fn close(mut self) {
        let cmd = match self.info.transport {
            Transport::Csync => Command::exit(),
            Transport::Imap => Command::new("LOGOUT", Vec::new()),
        };
        let _ = tokio::time::timeout(Duration::from_secs(5), self.command(cmd)).await;
        self.conn.shutdown().await;
    }
}

/// A protocol-trace line: the first 200 characters of the first line.
/// Commands never carry secrets after authentication (SASL exchanges are
/// not traced at all), so no further redaction is needed here.
fn trace_text(bytes: &[u8]) -> String {
    let line = bytes.split(|&b| b == b'\n').next().unwrap_or(bytes);
    shorten(String::from_utf8_lossy(line).trim_end())
}

fn trace_response(resp: &Response) -> String {
    match resp.encode().and_then(|e| e.into_bytes()) {
        Ok(bytes) => trace_text(&bytes),
        Err(_) => format!("{:?}", resp.name()),
    }
}

/// `GET MAILBOXES`, `APPLY MESSAGE`, `RESTART`: verb and item name.
fn describe(cmd: &Command) -> String {
    match cmd.name() {
        Some(name) => format!("{} {name}", cmd.base_verb()),
        None => cmd.base_verb().to_string(),
    }
}

async fn with_timeout<T>(
    limit: Duration,
    peer: &str,
    doing: &str,
    fut: impl std::future::Future<Output = std::io::Result<T>>,
) -> Result<T, std::io::Error> {
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!(
                "{doing} {peer} took longer than sync_timeout ({}s)",
                limit.as_secs()
            ),
        )),
    }
}

fn connect_error(source: std::io::Error, peer: &str) -> ProtoError {
    ProtoError::Connect {
        peer: peer.to_string(),
        source,
    }
}

async fn read_greeting(conn: &mut Connection) -> Result<Greeting, ProtoError> {
    let mut greeting = Greeting::default();
    loop {
        let line = conn.read_line("reading the greeting").await?;
        match greeting.feed(&line) {
            GreetingLine::CsyncCapability => continue,
            GreetingLine::CsyncReady | GreetingLine::ImapReady => return Ok(greeting),
            GreetingLine::ImapPreauth => {
                return Err(ProtoError::Banner {
                    peer: conn.peer().to_string(),
                    detail: "the server pre-authenticated the connection; replication needs an admin login".into(),
                });
            }
            GreetingLine::Refused(text) => {
                return Err(ProtoError::Banner {
                    peer: conn.peer().to_string(),
                    detail: format!("it greeted with \"{text}\""),
                });
            }
        }
    }
}

/// Sends a one-line command and waits for its OK (pre-DList phase).
async fn simple_command(
    conn: &mut Connection,
    tag: Option<&str>,
    command: &[u8],
    what: &str,
) -> Result<String, ProtoError> {
    let mut line = Vec::new();
    if let Some(t) = tag {
        line.extend_from_slice(t.as_bytes());
        line.push(b' ');
    }
    line.extend_from_slice(command);
    line.extend_from_slice(b"\r\n");
    conn.write(&line, what).await?;
    conn.flush(what).await?;
    loop {
        let reply = conn.read_line(what).await?;
        let text = String::from_utf8_lossy(&reply).into_owned();
        let rest = match tag {
            None => Some(text.as_str()),
            Some(t) => text.strip_prefix(t).and_then(|r| r.strip_prefix(' ')),
        };
        let Some(rest) = rest else {
            if text.starts_with("* ") {
                continue;
            }
            return Err(ProtoError::Unexpected {
                peer: conn.peer().to_string(),
                doing: what.to_string(),
                detail: shorten(&text),
            });
        };
        if text.starts_with("* ") && tag.is_none() {
            continue;
        }
        let (word, detail) = rest.split_once(' ').unwrap_or((rest, ""));
        return match word {
            "OK" => Ok(detail.to_string()),
            "NO" => {
                let (code, text) = crate::dlist::Status::split_error(detail);
                Err(ProtoError::No {
                    peer: conn.peer().to_string(),
                    doing: what.to_string(),
                    code,
                    text,
                })
            }
            _ => Err(ProtoError::Bad {
                peer: conn.peer().to_string(),
                doing: what.to_string(),
                text: shorten(rest),
            }),
        };
    }
}

async fn imap_capability(conn: &mut Connection, tag: &str) -> Result<Capabilities, ProtoError> {
    let line = format!("{tag} CAPABILITY\r\n");
    conn.write(line.as_bytes(), "CAPABILITY").await?;
    conn.flush("CAPABILITY").await?;
    let mut caps = Capabilities::default();
    loop {
        let reply = conn.read_line("CAPABILITY").await?;
        let text = String::from_utf8_lossy(&reply).into_owned();
        if let Some(list) = text.strip_prefix("* CAPABILITY ") {
            super::greeting::apply_imap_capabilities(&mut caps, list.split_ascii_whitespace());
        } else if let Some(rest) = text.strip_prefix(tag) {
            return if rest.trim_start().starts_with("OK") {
                Ok(caps)
            } else {
                Err(ProtoError::Bad {
                    peer: conn.peer().to_string(),
                    doing: "CAPABILITY".into(),
                    text: shorten(rest),
                })
            };
        }
    }
}

async fn starttls(
    conn: &mut Connection,
    host: &str,
    client: &TlsClient,
    opts: &ConnectOptions,
    report: &mut Handshake,
) -> Result<Option<[u8; 32]>, ProtoError> {
    let peer = conn.peer().to_string();
    let name = tls::server_name(host).map_err(|detail| ProtoError::Tls {
        peer: peer.clone(),
        detail,
    })?;
    let tcp = conn.take_stream_for_tls()?;
    let connector = tokio_rustls::TlsConnector::from(client.config.clone());
    let handshake = tokio::time::timeout(conn.timeout(), connector.connect(name, tcp)).await;
    let (fingerprint, der, rejected) = match client.seen.lock() {
        Ok(s) => (s.fingerprint, s.der.clone(), s.rejected.clone()),
        Err(_) => (None, None, None),
    };
    let summary = der.as_deref().map(super::x509::summarize);
    if let Some(t) = report.tls.as_mut() {
        t.certificate = summary.clone();
    }
    match handshake {
        Err(_) => Err(ProtoError::Timeout {
            peer,
            doing: "the TLS handshake".into(),
            after: conn.timeout(),
        }),
        Ok(Err(e)) => match (rejected, fingerprint) {
            (Some(why), Some(fp)) => Err(certificate_rejected(
                peer,
                host,
                opts,
                &why,
                &fp,
                summary.as_ref(),
            )),
            _ => Err(ProtoError::Tls {
                peer,
                detail: format!("handshake failed: {e}"),
            }),
        },
        Ok(Ok(stream)) => {
            if let Some(t) = report.tls.as_mut() {
                t.established = true;
                t.version = stream
                    .get_ref()
                    .1
                    .protocol_version()
                    .map(|v| format!("{v:?}"));
            }
            conn.set_tls_stream(stream);
            Ok(fingerprint)
        }
    }
}

/// The line that pins `fp` for this channel, ready to paste into imapd.conf.
pub fn pin_line(opts: &ConnectOptions, fp: &[u8; 32]) -> String {
    format!(
        "{}: {}",
        opts.key("cyrsync_tls_fingerprint"),
        tls::format_fingerprint(fp)
    )
}

fn certificate_rejected(
    peer: String,
    host: &str,
    opts: &ConnectOptions,
    why: &Rejection,
    fp: &[u8; 32],
    cert: Option<&CertificateSummary>,
) -> ProtoError {
    let side = opts.side;
    let shown = tls::format_fingerprint(fp);
    let pin = format!(
        "or, after comparing the fingerprint with `openssl x509 -noout -fingerprint -sha256 -in <tls_server_cert>` on the {side}, pin it with this line in imapd.conf:\n    {}",
        pin_line(opts, fp)
    );
    let subject = cert
        .map(|c| format!("{} (issued by {})", c.subject, c.issuer))
        .unwrap_or_else(|| "its certificate".into());
    let ca_key = opts.ca_file_keys();
    let (reason, fix, pin_mismatch) = match why {
        Rejection::PinMismatch { expected } => (
            format!(
                "its SHA-256 fingerprint {shown} is not the one pinned in {} ({})",
                opts.key("cyrsync_tls_fingerprint"),
                tls::format_fingerprint(expected)
            ),
            format!(
                "if the {side}'s certificate was replaced on purpose, check the new fingerprint on the {side} and update the pin:\n    {}\n  otherwise something between here and the {side} is intercepting the connection",
                pin_line(opts, fp)
            ),
            true,
        ),
        Rejection::UnknownIssuer => (
            format!(
                "{subject} is not signed by a CA in {}",
                opts.trust_description()
            ),
            format!(
                "put the CA certificate that signed the {side}'s certificate in {ca_key} (PEM), {pin}"
            ),
            false,
        ),
        Rejection::WrongName => (
            format!(
                "{subject} is not valid for \"{host}\" (it names {})",
                cert.filter(|c| !c.names.is_empty())
                    .map(|c| c.names.join(", "))
                    .unwrap_or_else(|| "no subjectAltName".into())
            ),
            format!(
                "set {} to a name the certificate carries, or reissue the certificate with \"{host}\" in its subjectAltName, {pin}",
                opts.key("sync_host")
            ),
            false,
        ),
        Rejection::Expired => (
            format!(
                "{subject} is not valid now (valid {} to {})",
                cert.and_then(|c| c.not_before.clone())
                    .unwrap_or_else(|| "?".into()),
                cert.and_then(|c| c.not_after.clone())
                    .unwrap_or_else(|| "?".into())
            ),
            format!(
                "renew the certificate on the {side} (tls_server_cert), and check this host's clock"
            ),
            false,
        ),
        Rejection::Other(e) => (
            format!(
                "{subject}: {e} (checked against {})",
                opts.trust_description()
            ),
            format!("fix the certificate on the {side}, or give its CA in {ca_key}, {pin}"),
            false,
        ),
    };
    ProtoError::CertificateRejected {
        peer,
        side,
        reason,
        pin_mismatch,
        fix,
    }
}

/// A server that logged us in and then refuses replication commands means
/// the account is not an admin there (see [`ProtoError::NotAdmin`]).
fn admin_refusal(e: ProtoError, opts: &ConnectOptions) -> ProtoError {
    let not_admin = match &e {
        ProtoError::No {
            code: None, text, ..
        } => text.starts_with("Permission denied"),
        ProtoError::Bad { text, .. } => text.contains("Unrecognized command"),
        _ => false,
    };
    if !not_admin {
        return e;
    }
    match e {
        ProtoError::No {
            peer, doing, text, ..
        } => ProtoError::NotAdmin {
            peer,
            side: opts.side,
            authname: opts.peer.credentials.authname.clone().unwrap_or_default(),
            doing,
            text: format!("NO {text}"),
        },
        ProtoError::Bad { peer, doing, text } => ProtoError::NotAdmin {
            peer,
            side: opts.side,
            authname: opts.peer.credentials.authname.clone().unwrap_or_default(),
            doing,
            text: if text.starts_with("BAD") {
                text
            } else {
                format!("BAD {text}")
            },
        },
        other => other,
    }
}

/// Runs the SASL exchange; returns the mechanism and the text of the final OK.
async fn authenticate(
    conn: &mut Connection,
    opts: &ConnectOptions,
    transport: Transport,
    caps: &Capabilities,
    tag: Option<String>,
    report: &mut Handshake,
) -> Result<(Mechanism, String), ProtoError> {
    let peer = conn.peer().to_string();
    let Credentials {
        authname,
        password,
        realm,
    } = &opts.peer.credentials;
    let authname = authname
        .clone()
        .ok_or_else(|| ProtoError::MissingCredential {
            side: opts.side,
            what: "authentication name",
            key: opts.key("sync_authname"),
        })?;
    let password = password
        .clone()
        .ok_or_else(|| ProtoError::MissingCredential {
            side: opts.side,
            what: "password",
            key: opts.key("sync_password"),
        })?;
    let mut credentials = sasl::Credentials::new(authname.clone(), password.expose());
    credentials.realm = realm.clone();
    let policy = sasl::Policy {
        forced: opts.sasl_mech.clone(),
        allow_plaintext: opts.allow_plaintext,
    };
    // A Unix socket never leaves the host, so clear-text mechanisms are as
    // safe there as over TLS; so is the master's own sync_server on this
    // host's loopback (as Dovecot's disable_plaintext_auth treats a
    // connection from the same host). A replica on a loopback address may be
    // a forwarder to another host: it gets no such exception.
    let protected =
        conn.is_tls() || conn.is_local() || (opts.side == Side::Source && conn.is_loopback());
    let mechanism = sasl::select(&caps.sasl, protected, &credentials, &policy).map_err(|e| {
        ProtoError::Sasl {
            peer: peer.clone(),
            detail: e.to_string(),
        }
    })?;
    report.mechanism = Some(mechanism);
    let host = match &opts.peer.endpoint.host {
        Host::Name(h) => h.clone(),
        Host::Unix(_) => "localhost".to_string(),
    };
    let target = sasl::Target {
        service: match transport {
            Transport::Csync => sasl::Service::Csync,
            Transport::Imap => sasl::Service::Imap,
        },
        host,
    };
    let sasl_err = |e: sasl::SaslError| ProtoError::Sasl {
        peer: peer.clone(),
        detail: format!("{mechanism}: {e}"),
    };
    let mut client = sasl::Client::new(mechanism, &credentials, &target).map_err(sasl_err)?;

    // csync always takes an initial response (sync_server); IMAP only with
    // SASL-IR (RFC 4959).
    let may_ir = transport == Transport::Csync || caps.sasl_ir;
    let mut line = Vec::new();
    if let Some(t) = &tag {
        line.extend_from_slice(t.as_bytes());
        line.push(b' ');
    }
    line.extend_from_slice(b"AUTHENTICATE ");
    line.extend_from_slice(mechanism.name().as_bytes());
    if may_ir && let Some(ir) = client.initial_response().map_err(sasl_err)? {
        line.push(b' ');
        if ir.as_bytes().is_empty() {
            line.push(b'=');
        } else {
            line.extend_from_slice(B64.encode(ir.as_bytes()).as_bytes());
        }
    }
    line.extend_from_slice(b"\r\n");
    let doing = "authenticating";
    conn.write(&line, doing).await?;
    conn.flush(doing).await?;
    drop(line);

    let mut challenges = 0u32;
    loop {
        let reply = conn.read_line(doing).await?;
        let text = String::from_utf8_lossy(&reply).into_owned();
        if let Some(challenge) = text.strip_prefix('+') {
            let challenge = challenge.trim_start();
            if !challenge.is_empty() {
                challenges += 1;
            }
            let decoded = B64
                .decode(challenge.as_bytes())
                .map_err(|_| ProtoError::Unexpected {
                    peer: peer.clone(),
                    doing: doing.into(),
                    detail: "a SASL challenge that is not base64".into(),
                })?;
            let answer = match client.step(&decoded).map_err(sasl_err)? {
                Step::Respond(r) => B64.encode(r.as_bytes()),
                Step::Done => String::new(),
            };
            let mut out = answer.into_bytes();
            out.extend_from_slice(b"\r\n");
            conn.write(&out, doing).await?;
            conn.flush(doing).await?;
            continue;
        }
        if text.starts_with("* ") {
            continue;
        }
        let rest = match &tag {
            None => text.as_str(),
            Some(t) => match text
                .strip_prefix(t.as_str())
                .and_then(|r| r.strip_prefix(' '))
            {
                Some(r) => r,
                None => continue,
            },
        };
        let (word, detail) = rest.split_once(' ').unwrap_or((rest, ""));
        return match word {
            "OK" => {
                client.finish(None).map_err(sasl_err)?;
                Ok((mechanism, detail.to_string()))
            }
            "NO" | "BAD" => {
                let mut err = ProtoError::AuthFailed {
                    peer: peer.clone(),
                    authname: authname.clone(),
                    mechanism,
                    text: shorten(detail),
                    no_challenge: challenges == 0,
                    hint: String::new(),
                };
                let mut ctx = opts.hint_context();
                ctx.server_name = report.server_name().map(str::to_string);
                ctx.transport = Some(transport);
                let hint = format!("\n  hint: {}", err.hint(&ctx));
                if let ProtoError::AuthFailed { hint: h, .. } = &mut err {
                    *h = hint;
                }
                Err(err)
            }
            _ => Err(ProtoError::Unexpected {
                peer: peer.clone(),
                doing: doing.into(),
                detail: shorten(&text),
            }),
        };
    }
}
