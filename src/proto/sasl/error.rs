//! Errors of the SASL layer.

use super::Mechanism;

/// Everything that can go wrong while choosing or running a SASL mechanism.
///
/// None of the variants ever carries a password or a value derived from one.
#[derive(Debug, thiserror::Error)]
pub enum SaslError {
    /// No mechanism is both offered by the server and allowed here.
    #[error(
        "no usable SASL mechanism: the server offers [{}], cyrsync allows [{}]{}. {hint}",
        .offered.join(" "),
        mech_list(.allowed),
        if *.tls { " on this TLS connection" } else { " on this connection without TLS" }
    )]
    NoMechanism {
        /// What the server offered (banner `* SASL …` or `AUTH=…`).
        offered: Vec<String>,
        /// What this connection would have accepted, strongest first.
        allowed: Vec<Mechanism>,
        /// Whether the connection is TLS-protected.
        tls: bool,
        /// Which imapd.conf key to change.
        hint: String,
    },
    /// `force_sasl_client_mech` names mechanisms none of which is usable.
    #[error(
        "force_sasl_client_mech: {forced} cannot be used: the server offers [{}]{}. {hint}",
        .offered.join(" "),
        if .usable_forced.is_empty() { String::new() } else {
            format!(", and of the forced ones cyrsync could use [{}]", mech_list(.usable_forced))
        }
    )]
    ForcedNotUsable {
        /// The configured value.
        forced: String,
        /// What the server offered.
        offered: Vec<String>,
        /// The forced mechanisms cyrsync implements and the policy allows.
        usable_forced: Vec<Mechanism>,
        /// Which imapd.conf key to change.
        hint: String,
    },
    /// An authorization id was configured, but the mechanism cannot carry one.
    #[error("SASL {0} cannot carry an authorization id (authzid)")]
    AuthzidUnsupported(Mechanism),
    /// The server's challenge does not follow the mechanism's syntax.
    #[error("SASL {mechanism}: malformed server challenge: {reason}")]
    Malformed {
        /// The running mechanism.
        mechanism: Mechanism,
        /// What was wrong.
        reason: String,
    },
    /// A challenge arrived when the mechanism expected none.
    #[error("SASL {mechanism}: unexpected server challenge after {after}")]
    UnexpectedChallenge {
        /// The running mechanism.
        mechanism: Mechanism,
        /// Which step the mechanism had completed.
        after: &'static str,
    },
    /// `initial_response` was called after the exchange had started.
    #[error("SASL {0}: initial response requested after the exchange started")]
    InitialResponseTooLate(Mechanism),
    /// The server reported an error inside the mechanism (SCRAM `e=`).
    #[error("SASL {mechanism}: server reported error: {message}")]
    ServerError {
        /// The running mechanism.
        mechanism: Mechanism,
        /// The server's error value.
        message: String,
    },
    /// Mutual authentication failed: the server does not know our password.
    #[error(
        "SASL {0}: the server's proof of the password does not verify (wrong server or man in the middle)"
    )]
    ServerProofMismatch(Mechanism),
    /// The server said OK without proving that it knows our password.
    #[error("SASL {0}: the server accepted the login without proving it knows the password")]
    ServerNotVerified(Mechanism),
    /// The server said OK before the client had sent its credentials.
    #[error("SASL {0}: the server ended the exchange before the client's last message")]
    Incomplete(Mechanism),
    /// SCRAM iteration count out of the accepted range.
    #[error("SASL {mechanism}: iteration count {count} outside {min}..={max}")]
    IterationCount {
        /// The running mechanism.
        mechanism: Mechanism,
        /// What the server sent.
        count: u64,
        /// Smallest accepted.
        min: u32,
        /// Largest accepted.
        max: u32,
    },
    /// A name or password cannot be encoded for this server.
    #[error("SASL {mechanism}: {what} cannot be sent: {reason}")]
    Encoding {
        /// The running mechanism.
        mechanism: Mechanism,
        /// Which credential.
        what: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// The operating system's random generator failed (nonce generation).
    #[error("cannot generate a SASL nonce: {0}")]
    Random(String),
}

fn mech_list(mechs: &[Mechanism]) -> String {
    mechs.iter().map(|m| m.name()).collect::<Vec<_>>().join(" ")
}

/// Result alias of this layer.
pub type Result<T> = std::result::Result<T, SaslError>;
