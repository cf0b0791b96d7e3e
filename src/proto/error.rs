//! Errors of the session layer, each able to say what an administrator should do.

use std::time::Duration;

use super::deflate::DeflateError;

/// Which side of replication a session talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The master, read with `GET`/`SYNCGET`.
    Source,
    /// A replica, written with `APPLY`/`SYNCAPPLY`.
    Target,
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Side::Source => "master",
            Side::Target => "replica",
        })
    }
}

/// A failure of a replication session.
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    /// No connection could be made.
    #[error("cannot connect to {peer}: {source}")]
    Connect {
        /// `host:port` or socket path.
        peer: String,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// Reading or writing failed on an established connection.
    #[error("connection to {peer} failed while {doing}: {source}")]
    Io {
        /// `host:port` or socket path.
        peer: String,
        /// What the session was doing.
        doing: String,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The peer closed the connection.
    #[error("{peer} closed the connection while {doing}")]
    Closed {
        /// `host:port` or socket path.
        peer: String,
        /// What the session was doing.
        doing: String,
    },
    /// Nothing arrived within `sync_timeout`.
    #[error("{peer} did not answer {doing} within sync_timeout ({}s); the connection was cut", after.as_secs())]
    Timeout {
        /// `host:port` or socket path.
        peer: String,
        /// The command in flight.
        doing: String,
        /// The limit that was reached.
        after: Duration,
    },
    /// The peer's greeting was not one of a Cyrus sync server or imapd.
    #[error("{peer} is not a Cyrus replication endpoint: {detail}")]
    Banner {
        /// `host:port` or socket path.
        peer: String,
        /// What was wrong.
        detail: String,
    },
    /// The IMAP server does not offer replication commands.
    #[error(
        "{peer} speaks IMAP but does not offer X-REPLICATION after login; the account must be in `admins:` on that server, or use the csync port (sync_port: 2005)"
    )]
    NoReplication {
        /// `host:port`.
        peer: String,
    },
    /// TLS could not be set up or the peer's certificate was refused.
    #[error("TLS with {peer}: {detail}")]
    Tls {
        /// `host:port`.
        peer: String,
        /// What went wrong, with the fix where known.
        detail: String,
    },
    /// TLS is required but the peer does not offer STARTTLS.
    #[error(
        "{peer} does not offer STARTTLS but TLS is required ({why}); configure TLS on the server (tls_server_cert/tls_server_key) or drop the requirement"
    )]
    TlsRequired {
        /// `host:port`.
        peer: String,
        /// Which setting requires it.
        why: String,
    },
    /// The SASL layer could not choose or run a mechanism.
    #[error("authentication to {peer}: {detail}")]
    Sasl {
        /// `host:port`.
        peer: String,
        /// What went wrong.
        detail: String,
    },
    /// The server refused the credentials.
    #[error("{peer} refused authentication as {authname} with {mechanism}: {text}{hint}")]
    AuthFailed {
        /// `host:port`.
        peer: String,
        /// The account.
        authname: String,
        /// The SASL mechanism.
        mechanism: super::sasl::Mechanism,
        /// The server's words.
        text: String,
        /// The server refused before sending any non-empty challenge. With
        /// SCRAM that means it refused the user name itself, before any
        /// password was checked (measured on Cyrus 3.6.1: an unknown user is
        /// refused right after the client's first message, a wrong password
        /// only after the client's proof).
        no_challenge: bool,
        /// A hint on the usual causes, starting with a newline, or empty.
        hint: String,
    },
    /// Logged in, but the server refuses replication commands: the account is
    /// not an admin there. Cyrus 3.6.1's sync_server answers every command of a
    /// non-admin with `NO Permission denied`; its imapd answers `SYNCGET` and
    /// `SYNCAPPLY` with `BAD Unrecognized command` (and still lists
    /// `X-REPLICATION`).
    #[error(
        "{peer} accepted the login as {authname} but answered {doing} with \"{text}\": {authname} is not an admin of the {side}; add it to `admins:` in the {side}'s imapd.conf"
    )]
    NotAdmin {
        /// `host:port`.
        peer: String,
        /// Master or replica.
        side: Side,
        /// The account.
        authname: String,
        /// The refused command.
        doing: String,
        /// The server's words.
        text: String,
    },
    /// The server's TLS certificate was refused.
    #[error("TLS with {peer}: the {side}'s certificate was refused: {reason}\n  fix: {fix}")]
    CertificateRejected {
        /// `host:port`.
        peer: String,
        /// Master or replica.
        side: Side,
        /// Why, naming the setting it was checked against.
        reason: String,
        /// The pin did not match (as opposed to CA verification failing).
        pin_mismatch: bool,
        /// What to change, with the exact imapd.conf line to pin it.
        fix: String,
    },
    /// A required credential is not configured.
    #[error("no {what} configured for the {side}; set {key} in imapd.conf")]
    MissingCredential {
        /// master or replica.
        side: Side,
        /// `authname` or `password`.
        what: &'static str,
        /// The imapd.conf key to set.
        key: String,
    },
    /// The server answered NO.
    #[error("{peer} answered NO to {doing}: {}{text}", code.as_deref().map(|c| format!("{c} ")).unwrap_or_default())]
    No {
        /// `host:port`.
        peer: String,
        /// The command.
        doing: String,
        /// The Cyrus error name, e.g. `IMAP_MAILBOX_LOCKED`.
        code: Option<String>,
        /// The rest of the line.
        text: String,
    },
    /// The server answered BAD, or said BYE.
    #[error("{peer} rejected {doing}: {text}")]
    Bad {
        /// `host:port`.
        peer: String,
        /// The command.
        doing: String,
        /// The server's words.
        text: String,
    },
    /// The server sent something the protocol does not allow here.
    #[error("{peer} sent an unexpected reply to {doing}: {detail}")]
    Unexpected {
        /// `host:port`.
        peer: String,
        /// The command.
        doing: String,
        /// What arrived (shortened, never secrets).
        detail: String,
    },
    /// The compressed stream broke.
    #[error("{peer}: {source}")]
    Deflate {
        /// `host:port`.
        peer: String,
        /// The codec error.
        source: DeflateError,
    },
}

impl ProtoError {
    /// The Cyrus error name of a `NO` answer, if any (`IMAP_MAILBOX_LOCKED`, …).
    pub fn cyrus_code(&self) -> Option<&str> {
        match self {
            ProtoError::No { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    /// Whether the connection is unusable after this error and must be
    /// reopened (as opposed to a `NO` for one command).
    pub fn breaks_connection(&self) -> bool {
        !matches!(self, ProtoError::No { .. })
    }
}
