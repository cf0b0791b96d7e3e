//! SASL client mechanisms for replication sessions (sans-I/O).
//!
//! A mechanism is a state machine: the session sends [`ClientMechanism::initial_response`]
//! on the `AUTHENTICATE` line when the server allows SASL-IR (csync always does;
//! IMAP with `SASL-IR`), feeds every server challenge (`+ <base64>`, already decoded)
//! to [`ClientMechanism::step`] and sends back what it returns, and calls
//! [`ClientMechanism::finish`] when the server says `OK` (with the decoded success
//! data, if the `OK` carried any). Mutual authentication is enforced: SCRAM's server
//! signature and DIGEST-MD5's `rspauth` must verify, or `finish` fails.
//!
//! The session does all I/O and base64; nothing here touches the network.
//! Mechanism choice is [`select`]; the client for the chosen one is [`Client::new`].

mod cram_md5;
mod digest_md5;
mod error;
mod plain;
mod scram;
mod select;
mod util;

use std::fmt;
use std::str::FromStr;

use zeroize::Zeroizing;

pub use cram_md5::CramMd5;
pub use digest_md5::DigestMd5;
pub use error::{Result, SaslError};
pub use plain::{Login, Plain};
pub use scram::Scram;
pub use select::{Policy, mechanisms_from_capabilities, mechanisms_from_csync_banner, select};

/// A SASL mechanism cyrsync implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mechanism {
    /// SCRAM-SHA-256 (RFC 7677).
    ScramSha256,
    /// SCRAM-SHA-1 (RFC 5802).
    ScramSha1,
    /// DIGEST-MD5 (RFC 2831), authentication only.
    DigestMd5,
    /// CRAM-MD5 (RFC 2195).
    CramMd5,
    /// PLAIN (RFC 4616): the password in clear.
    Plain,
    /// LOGIN (draft-murchison-sasl-login): the password in clear.
    Login,
}

impl Mechanism {
    /// Every mechanism, strongest first: the order [`select`] prefers.
    pub const PREFERENCE: [Mechanism; 6] = [
        Mechanism::ScramSha256,
        Mechanism::ScramSha1,
        Mechanism::DigestMd5,
        Mechanism::CramMd5,
        Mechanism::Plain,
        Mechanism::Login,
    ];

    /// The IANA name, as it appears on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha1 => "SCRAM-SHA-1",
            Mechanism::DigestMd5 => "DIGEST-MD5",
            Mechanism::CramMd5 => "CRAM-MD5",
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
        }
    }

    /// The mechanism with this name (case-insensitive), if cyrsync implements it.
    pub fn from_name(name: &str) -> Option<Mechanism> {
        Self::PREFERENCE
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(name))
    }

    /// True when the password crosses the wire in clear (PLAIN, LOGIN).
    pub fn sends_password_in_clear(self) -> bool {
        matches!(self, Mechanism::Plain | Mechanism::Login)
    }

    /// True when the mechanism can carry an authorization id.
    pub fn supports_authzid(self) -> bool {
        !matches!(self, Mechanism::CramMd5 | Mechanism::Login)
    }

    /// True when the client sends the first message (it has an initial response).
    pub fn client_first(self) -> bool {
        matches!(
            self,
            Mechanism::ScramSha256 | Mechanism::ScramSha1 | Mechanism::Plain
        )
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The name is not a mechanism cyrsync implements.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported SASL mechanism {0:?}")]
pub struct UnknownMechanism(pub String);

impl FromStr for Mechanism {
    type Err = UnknownMechanism;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Mechanism::from_name(s).ok_or_else(|| UnknownMechanism(s.to_owned()))
    }
}

/// A password: wiped from memory when dropped, never shown by `Debug`.
#[derive(Clone)]
pub struct Password(Zeroizing<String>);

impl Password {
    /// Wraps a password.
    pub fn new(password: impl Into<String>) -> Password {
        Password(Zeroizing::new(password.into()))
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

impl From<String> for Password {
    fn from(s: String) -> Password {
        Password::new(s)
    }
}

impl From<&str> for Password {
    fn from(s: &str) -> Password {
        Password::new(s)
    }
}

/// Who we authenticate as: `sync_authname`, `sync_password`, `sync_realm`.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// Authentication id (`sync_authname`).
    pub authcid: String,
    /// Authorization id, when acting for another user (sync_client never sets one).
    pub authzid: Option<String>,
    /// The password (`sync_password`).
    pub password: Password,
    /// The realm (`sync_realm`); only DIGEST-MD5 sends one.
    pub realm: Option<String>,
}

impl Credentials {
    /// Credentials with no authzid and no realm.
    pub fn new(authcid: impl Into<String>, password: impl Into<Password>) -> Credentials {
        Credentials {
            authcid: authcid.into(),
            authzid: None,
            password: password.into(),
            realm: None,
        }
    }
}

/// The SASL service name Cyrus uses for a transport; DIGEST-MD5 puts it in `digest-uri`.
///
/// Cyrus 3.6.1 `imap/sync_support.c` defines `csync_protocol` with SASL service
/// `"csync"` and `imap_csync_protocol` with `"imap"`; `imap/backend.c` passes that to
/// `sasl_client_new`, and `sync_server`/`imapd` create their server side with the same
/// names. Cyrus SASL's DIGEST-MD5 server rejects a `digest-uri` whose service differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// sync_server (csync, port 2005).
    Csync,
    /// imapd with `sync_try_imap` (port 143).
    Imap,
}

impl Service {
    /// The SASL service name.
    pub fn name(self) -> &'static str {
        match self {
            Service::Csync => "csync",
            Service::Imap => "imap",
        }
    }
}

/// What the mechanism needs to know about the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// SASL service of the transport.
    pub service: Service,
    /// The host as configured (`sync_host`), for DIGEST-MD5's `digest-uri`.
    pub host: String,
}

/// A client message; may hold a password (PLAIN, LOGIN), so it is wiped on drop and
/// `Debug` shows only its length.
#[derive(Clone, PartialEq, Eq)]
pub struct Response(Zeroizing<Vec<u8>>);

impl Response {
    pub(crate) fn new(bytes: Vec<u8>) -> Response {
        Response(Zeroizing::new(bytes))
    }

    /// The raw bytes; the session base64-encodes them (empty → empty line).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Response(<{} bytes>)", self.0.len())
    }
}

/// What to do with a server challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send this response.
    Respond(Response),
    /// The challenge was the server's final message and it verified (SCRAM `v=`,
    /// DIGEST-MD5 `rspauth`). Send an empty response, as RFC 4422 §5 requires for
    /// outcome data sent as a challenge, and expect `OK`.
    Done,
}

/// A client SASL mechanism: a state machine fed server challenges.
pub trait ClientMechanism {
    /// Which mechanism this is.
    fn mechanism(&self) -> Mechanism;

    /// The initial response for SASL-IR, or `None` for mechanisms where the server
    /// speaks first (DIGEST-MD5, CRAM-MD5, LOGIN). Call at most once, before any
    /// [`step`](Self::step). Without SASL-IR, skip it: the server's first, empty,
    /// challenge then makes `step` return the same message.
    fn initial_response(&mut self) -> Result<Option<Response>>;

    /// Answers one server challenge (raw bytes, base64 already decoded).
    fn step(&mut self, challenge: &[u8]) -> Result<Step>;

    /// The server said `OK`; `success_data` is the decoded additional data it carried,
    /// if any. Fails when mutual authentication did not complete.
    fn finish(&mut self, success_data: Option<&[u8]>) -> Result<()>;
}

/// Any of the client mechanisms.
#[derive(Debug)]
pub enum Client {
    /// SCRAM-SHA-256 or SCRAM-SHA-1.
    Scram(Scram),
    /// DIGEST-MD5.
    DigestMd5(DigestMd5),
    /// CRAM-MD5.
    CramMd5(CramMd5),
    /// PLAIN.
    Plain(Plain),
    /// LOGIN.
    Login(Login),
}

impl Client {
    /// A fresh client for `mechanism`.
    pub fn new(mechanism: Mechanism, credentials: &Credentials, target: &Target) -> Result<Client> {
        if credentials.authzid.is_some() && !mechanism.supports_authzid() {
            return Err(SaslError::AuthzidUnsupported(mechanism));
        }
        Ok(match mechanism {
            Mechanism::ScramSha256 => Client::Scram(Scram::new(
                scram::Hash::Sha256,
                credentials,
                util::random_nonce()?,
            )),
            Mechanism::ScramSha1 => Client::Scram(Scram::new(
                scram::Hash::Sha1,
                credentials,
                util::random_nonce()?,
            )),
            Mechanism::DigestMd5 => {
                Client::DigestMd5(DigestMd5::new(credentials, target, util::random_nonce()?))
            }
            Mechanism::CramMd5 => Client::CramMd5(CramMd5::new(credentials)),
            Mechanism::Plain => Client::Plain(Plain::new(credentials)),
            Mechanism::Login => Client::Login(Login::new(credentials)),
        })
    }

    fn inner(&mut self) -> &mut dyn ClientMechanism {
        match self {
            Client::Scram(m) => m,
            Client::DigestMd5(m) => m,
            Client::CramMd5(m) => m,
            Client::Plain(m) => m,
            Client::Login(m) => m,
        }
    }
}

impl ClientMechanism for Client {
    fn mechanism(&self) -> Mechanism {
        match self {
            Client::Scram(m) => m.mechanism(),
            Client::DigestMd5(m) => m.mechanism(),
            Client::CramMd5(m) => m.mechanism(),
            Client::Plain(m) => m.mechanism(),
            Client::Login(m) => m.mechanism(),
        }
    }

    fn initial_response(&mut self) -> Result<Option<Response>> {
        self.inner().initial_response()
    }

    fn step(&mut self, challenge: &[u8]) -> Result<Step> {
        self.inner().step(challenge)
    }

    fn finish(&mut self, success_data: Option<&[u8]>) -> Result<()> {
        self.inner().finish(success_data)
    }
}

#[cfg(test)]
mod tests;
