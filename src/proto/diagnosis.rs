//! What a session failure means and what to do about it, in plain language.
//!
//! [`ProtoError::cause`] sorts a failure into a [`Cause`] (a stable word that
//! monitoring scripts can match); [`ProtoError::hint`] says what to change,
//! naming the imapd.conf key with its channel prefix when it knows the
//! channel. The session puts the hint into authentication errors, the daemon
//! into its status view, and `cyrsync check` under each failed step.
//!
//! The SASL answers were measured on Cyrus 3.6.1 (`shared/docs/cyrus-test-pair.md`):
//! sync_server says `NO user not found` for an unknown user and
//! `NO authentication failure` for a wrong password; imapd says
//! `authentication failure` for both, but with SCRAM it refuses an unknown
//! user before sending its first challenge. An unreadable sasldb gives
//! `NO generic failure` (SASL(-1)) on both.

use super::error::{ProtoError, Side};
use super::greeting::Transport;
use super::sasl::Mechanism;

/// A failure, in one word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// The host name does not resolve.
    Resolve,
    /// Nothing listens on the port (connection refused).
    Refused,
    /// No route to the host.
    Unreachable,
    /// No answer in time.
    Timeout,
    /// The peer closed the connection, or the connection broke.
    Closed,
    /// Something other than Cyrus answered.
    NotCyrus,
    /// IMAP without `X-REPLICATION`.
    NoReplication,
    /// TLS could not be configured or set up.
    Tls,
    /// TLS is required but not offered.
    TlsRequired,
    /// The certificate does not verify against the configured CAs.
    CertificateUntrusted,
    /// The certificate does not match the pinned fingerprint.
    PinMismatch,
    /// No SASL mechanism both offered and allowed.
    NoMechanism,
    /// `sync_authname` or `sync_password` is not set.
    MissingCredential,
    /// The server refused the password.
    WrongPassword,
    /// The server does not know the user (in the realm it looks in).
    UnknownUser,
    /// The server cannot read its SASL database (`SASL(-1): generic failure`).
    SasldbUnreadable,
    /// Another authentication failure.
    AuthFailed,
    /// Authenticated, but not an admin.
    NotAdmin,
    /// Anything else the server or the protocol did.
    Protocol,
}

impl Cause {
    /// The word, as in the JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Resolve => "resolve",
            Cause::Refused => "refused",
            Cause::Unreachable => "unreachable",
            Cause::Timeout => "timeout",
            Cause::Closed => "closed",
            Cause::NotCyrus => "not_cyrus",
            Cause::NoReplication => "no_replication",
            Cause::Tls => "tls",
            Cause::TlsRequired => "tls_required",
            Cause::CertificateUntrusted => "certificate_untrusted",
            Cause::PinMismatch => "pin_mismatch",
            Cause::NoMechanism => "no_mechanism",
            Cause::MissingCredential => "missing_credential",
            Cause::WrongPassword => "wrong_password",
            Cause::UnknownUser => "unknown_user",
            Cause::SasldbUnreadable => "sasldb_unreadable",
            Cause::AuthFailed => "auth_failed",
            Cause::NotAdmin => "not_admin",
            Cause::Protocol => "protocol",
        }
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a hint may name: which side, which channel's keys, who logged in.
/// Everything is optional; without it the hint speaks of "the server" and
/// unprefixed keys.
#[derive(Debug, Clone, Default)]
pub struct HintContext {
    /// Master or replica.
    pub side: Option<Side>,
    /// The channel's key prefix (`chan2_`), empty for the default channel.
    pub key_prefix: String,
    /// The authentication name used.
    pub authname: Option<String>,
    /// The server's `servername` (the first word of its greeting), which is
    /// the SASL realm sasldb looks in.
    pub server_name: Option<String>,
    /// The transport of the failed session, when known.
    pub transport: Option<Transport>,
    /// The limit that applied to each step.
    pub timeout_secs: Option<u64>,
    /// Keys of the credentials whose values contain ` #` (a trailing comment
    /// Cyrus keeps as part of the value).
    pub commented_keys: Vec<String>,
}

impl HintContext {
    /// The imapd.conf key for `base` on this side and channel:
    /// `chan2_sync_password`, `cyrsync_source_port`, …
    pub fn key(&self, base: &str) -> String {
        let base = match (self.side, base) {
            (Some(Side::Source), "sync_authname") => "cyrsync_source_authname",
            (Some(Side::Source), "sync_password") => "cyrsync_source_password",
            (Some(Side::Source), "sync_realm") => "cyrsync_source_realm",
            (Some(Side::Source), "sync_host") => "cyrsync_source_host",
            (Some(Side::Source), "sync_port") => "cyrsync_source_port",
            _ => base,
        };
        format!("{}{base}", self.key_prefix)
    }

    fn side(&self) -> &'static str {
        match self.side {
            Some(Side::Source) => "master",
            Some(Side::Target) => "replica",
            None => "server",
        }
    }

    /// The account, without a trailing ` # comment` (which gets its own note).
    fn user(&self) -> &str {
        let name = self.authname.as_deref().unwrap_or("the account");
        name.split(" #")
            .next()
            .unwrap_or(name)
            .split("\t#")
            .next()
            .unwrap_or(name)
            .trim_end()
    }

    fn realm(&self) -> &str {
        self.server_name.as_deref().unwrap_or("<servername>")
    }
}

impl ProtoError {
    /// The failure in one word.
    pub fn cause(&self) -> Cause {
        use std::io::ErrorKind as K;
        match self {
            ProtoError::Connect { source, .. } => match source.kind() {
                K::ConnectionRefused => Cause::Refused,
                K::TimedOut => Cause::Timeout,
                K::HostUnreachable | K::NetworkUnreachable | K::AddrNotAvailable => {
                    Cause::Unreachable
                }
                _ if looks_like_resolver_error(&source.to_string()) => Cause::Resolve,
                _ => Cause::Closed,
            },
            ProtoError::Timeout { .. } => Cause::Timeout,
            ProtoError::Io { .. } | ProtoError::Closed { .. } | ProtoError::Deflate { .. } => {
                Cause::Closed
            }
            ProtoError::Banner { .. } => Cause::NotCyrus,
            ProtoError::NoReplication { .. } => Cause::NoReplication,
            ProtoError::Tls { .. } => Cause::Tls,
            ProtoError::TlsRequired { .. } => Cause::TlsRequired,
            ProtoError::CertificateRejected { pin_mismatch, .. } => {
                if *pin_mismatch {
                    Cause::PinMismatch
                } else {
                    Cause::CertificateUntrusted
                }
            }
            ProtoError::Sasl { detail, .. } => {
                if detail.contains("no usable SASL mechanism")
                    || detail.contains("force_sasl_client_mech")
                {
                    Cause::NoMechanism
                } else {
                    Cause::AuthFailed
                }
            }
            ProtoError::MissingCredential { .. } => Cause::MissingCredential,
            ProtoError::AuthFailed {
                text,
                mechanism,
                no_challenge,
                ..
            } => {
                let t = text.to_ascii_lowercase();
                if t.contains("generic failure") {
                    Cause::SasldbUnreadable
                } else if t.contains("user not found") {
                    Cause::UnknownUser
                } else if t.contains("authentication failure") {
                    if *no_challenge
                        && matches!(mechanism, Mechanism::ScramSha256 | Mechanism::ScramSha1)
                    {
                        Cause::UnknownUser
                    } else {
                        Cause::WrongPassword
                    }
                } else {
                    Cause::AuthFailed
                }
            }
            ProtoError::NotAdmin { .. } => Cause::NotAdmin,
            ProtoError::No { .. } | ProtoError::Bad { .. } | ProtoError::Unexpected { .. } => {
                Cause::Protocol
            }
        }
    }

    /// What to do, in a sentence or two; names keys with `ctx`'s prefix.
    pub fn hint(&self, ctx: &HintContext) -> String {
        let side = ctx.side();
        let user = ctx.user();
        let mut hint = match self.cause() {
            Cause::Resolve => format!(
                "the name in {} does not resolve: check its spelling, DNS or /etc/hosts",
                ctx.key("sync_host")
            ),
            Cause::Refused => match ctx.side {
                Some(Side::Source) => format!(
                    "nothing accepts connections there: cyrsync reads the master through the \
                     master's own sync_server (a `csync` service in cyrus.conf) or imapd; set \
                     {} (and {}) to where one of them listens",
                    ctx.key("sync_port"),
                    ctx.key("sync_host")
                ),
                _ => format!(
                    "nothing accepts connections there: is Cyrus running on the {side}, with a \
                     `csync` service (sync_server) in its cyrus.conf — or `imap` for the IMAP \
                     transport — listening on that port, and is {} right?",
                    ctx.key("sync_port")
                ),
            },
            Cause::Unreachable => format!(
                "no route to the host: check {} and the network or firewall in between",
                ctx.key("sync_host")
            ),
            Cause::Timeout => format!(
                "no answer{}: a firewall that drops packets, a wrong address in {}, or an \
                 overloaded {side}",
                ctx.timeout_secs
                    .map(|s| format!(" within {s}s"))
                    .unwrap_or_default(),
                ctx.key("sync_host")
            ),
            Cause::Closed => format!(
                "the {side} closed the connection: see its syslog (too many connections for \
                 `maxchild` in cyrus.conf, or a TLS key it cannot read)"
            ),
            Cause::NotCyrus => format!(
                "something other than Cyrus's sync_server or imapd answers there: check {}",
                ctx.key("sync_port")
            ),
            Cause::NoReplication => format!(
                "add {user} to `admins:` in the {side}'s imapd.conf, or use its csync port \
                 ({})",
                ctx.key("sync_port")
            ),
            Cause::Tls => format!(
                "fix the TLS setting named above (tls_client_ca_file, tls_client_cert, \
                 tls_client_key are read on this host); if the {side}'s TLS is broken, its \
                 syslog says why (tls_server_cert/tls_server_key readable by cyrus?)"
            ),
            Cause::TlsRequired => format!(
                "configure TLS on the {side} (tls_server_cert and tls_server_key in its \
                 imapd.conf), or remove /tls from {}",
                ctx.key("sync_host")
            ),
            Cause::CertificateUntrusted | Cause::PinMismatch => match self {
                ProtoError::CertificateRejected { fix, .. } => fix.clone(),
                _ => String::new(),
            },
            Cause::NoMechanism => format!(
                "no SASL mechanism is both offered by the {side} and allowed here: PLAIN and \
                 LOGIN need TLS (tls_server_cert/tls_server_key on the {side}) or \
                 `{}: yes`; SCRAM needs the {side}'s `sasl_mech_list` to list it (and \
                 `allowplaintext` there only matters for PLAIN/LOGIN); check \
                 `{}force_sasl_client_mech` here",
                ctx.key("cyrsync_allow_plaintext"),
                ctx.key_prefix
            ),
            Cause::MissingCredential => match self {
                ProtoError::MissingCredential { key, .. } => format!("set {key} in imapd.conf"),
                _ => String::new(),
            },
            Cause::WrongPassword => {
                let mut h = format!(
                    "the {side} refused the password of {user}: set {} to the password {user} \
                     has in the {side}'s SASL database, or set it anew there with \
                     `saslpasswd2 -u {} {user}`",
                    ctx.key("sync_password"),
                    ctx.realm()
                );
                if ctx.transport == Some(Transport::Imap) && !self.is_scram() {
                    h.push_str(&format!(
                        "; the {side}'s imapd answers an unknown user the same way, so if the \
                         password is right, check that `sasldblistusers2` on the {side} lists \
                         {user}@{}",
                        ctx.realm()
                    ));
                }
                h
            }
            Cause::UnknownUser => format!(
                "the {side} does not know {user} in the realm it looks in, which is its \
                 servername ({}): create the user with `saslpasswd2 -c -u {} {user}` on the \
                 {side} (`sasldblistusers2` shows user@realm), or set {} to the realm it was \
                 created in",
                ctx.realm(),
                ctx.realm(),
                ctx.key("sync_realm")
            ),
            Cause::SasldbUnreadable => format!(
                "SASL(-1) generic failure: Cyrus on the {side} cannot read its SASL password \
                 database; check owner and mode of the sasldb there (sasl_sasldb_path, by \
                 default /etc/sasldb2, on FreeBSD /usr/local/etc/sasldb2.db): \
                 `chown cyrus:mail <file>` and `chmod 0640 <file>` (the user and group Cyrus \
                 runs as), and that cyrus can search the directories above it"
            ),
            Cause::AuthFailed => format!(
                "check {} and {} against the {side}'s SASL database (sasldblistusers2; the \
                 realm is its servername unless {} is set) and the {side}'s syslog \
                 (`badlogin:` lines)",
                ctx.key("sync_authname"),
                ctx.key("sync_password"),
                ctx.key("sync_realm")
            ),
            Cause::NotAdmin => format!(
                "add {user} to `admins:` in the {side}'s imapd.conf and restart Cyrus there \
                 (its service processes read imapd.conf when they start)"
            ),
            Cause::Protocol => format!("the {side}'s syslog says more"),
        };
        if matches!(
            self.cause(),
            Cause::WrongPassword
                | Cause::UnknownUser
                | Cause::AuthFailed
                | Cause::NotAdmin
                | Cause::MissingCredential
        ) && !ctx.commented_keys.is_empty()
        {
            // The likeliest cause comes first: the value is not what the
            // administrator thinks it is.
            let notes: Vec<String> = ctx
                .commented_keys
                .iter()
                .map(|key| {
                    format!(
                        "{key} contains \" #\": Cyrus and cyrsync keep a trailing `# comment` as \
                         part of the value, so the {side} is sent a different {}; move the comment \
                         to a line of its own",
                        if key.contains("password") {
                            "password"
                        } else {
                            "name"
                        }
                    )
                })
                .collect();
            hint = format!("{}; if that is not it: {hint}", notes.join("; "));
        }
        hint
    }

    fn is_scram(&self) -> bool {
        matches!(
            self,
            ProtoError::AuthFailed {
                mechanism: Mechanism::ScramSha256 | Mechanism::ScramSha1,
                ..
            }
        )
    }
}

/// getaddrinfo's words on Linux and FreeBSD.
fn looks_like_resolver_error(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    [
        "lookup",
        "name or service not known",
        "nodename nor servname",
        "temporary failure in name resolution",
        "no address associated",
        "hostname",
    ]
    .iter()
    .any(|w| t.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(text: &str, mechanism: &str, no_challenge: bool) -> ProtoError {
        ProtoError::AuthFailed {
            peer: "r:2005".into(),
            authname: "repl".into(),
            mechanism: Mechanism::from_name(mechanism).unwrap(),
            text: text.into(),
            no_challenge,
            hint: String::new(),
        }
    }

    #[test]
    fn cyrus_answers_map_to_causes() {
        assert_eq!(
            auth("authentication failure", "SCRAM-SHA-256", false).cause(),
            Cause::WrongPassword
        );
        assert_eq!(
            auth("authentication failure", "SCRAM-SHA-256", true).cause(),
            Cause::UnknownUser
        );
        assert_eq!(
            auth("authentication failure", "PLAIN", true).cause(),
            Cause::WrongPassword
        );
        assert_eq!(
            auth("user not found", "PLAIN", true).cause(),
            Cause::UnknownUser
        );
        assert_eq!(
            auth("generic failure", "SCRAM-SHA-256", true).cause(),
            Cause::SasldbUnreadable
        );
        let refused = ProtoError::Connect {
            peer: "127.0.0.1:1".into(),
            source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        };
        assert_eq!(refused.cause(), Cause::Refused);
        let dns = ProtoError::Connect {
            peer: "nosuch.invalid:2005".into(),
            source: std::io::Error::other(
                "failed to lookup address information: Name or service not known",
            ),
        };
        assert_eq!(dns.cause(), Cause::Resolve);
    }

    #[test]
    fn hints_name_keys_realm_and_comments() {
        let ctx = HintContext {
            side: Some(Side::Target),
            key_prefix: "chan2_".into(),
            authname: Some("repl".into()),
            server_name: Some("replica.test".into()),
            transport: Some(Transport::Imap),
            timeout_secs: Some(15),
            commented_keys: vec!["chan2_sync_password".into()],
        };
        let h = auth("authentication failure", "PLAIN", true).hint(&ctx);
        assert!(h.contains("chan2_sync_password"), "{h}");
        assert!(h.contains("saslpasswd2 -u replica.test repl"), "{h}");
        assert!(h.contains("answers an unknown user the same way"), "{h}");
        assert!(h.contains("trailing `# comment`"), "{h}");
        let h = auth("user not found", "PLAIN", true).hint(&ctx);
        assert!(h.contains("saslpasswd2 -c -u replica.test repl"), "{h}");
        assert!(h.contains("chan2_sync_realm"), "{h}");
        let h = auth("generic failure", "PLAIN", true).hint(&ctx);
        assert!(h.contains("chown cyrus:mail") && h.contains("0640"), "{h}");
        let master = HintContext {
            side: Some(Side::Source),
            ..HintContext::default()
        };
        let refused = ProtoError::Connect {
            peer: "127.0.0.1:1".into(),
            source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        };
        assert!(refused.hint(&master).contains("cyrsync_source_port"));
        assert!(refused.hint(&ctx).contains("chan2_sync_port"));
    }
}
