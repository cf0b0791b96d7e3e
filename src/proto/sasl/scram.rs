//! SCRAM-SHA-1 (RFC 5802) and SCRAM-SHA-256 (RFC 7677), without channel binding.

use base64::Engine as _;
use hmac::{KeyInit, Mac};
use zeroize::Zeroizing;

use super::{ClientMechanism, Credentials, Mechanism, Password, Response, Result, SaslError, Step};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Smallest iteration count accepted: RFC 7677 §4 and RFC 5802 §5.1 ask for at least
/// 4096, and Cyrus SASL's own client refuses fewer (`plugins/scram.c`
/// `MIN_ITERATION_COUNTER`), so a lower count means a downgrade attempt.
pub const MIN_ITERATIONS: u32 = 4096;
/// Largest iteration count accepted, so a hostile server cannot make us spin for
/// minutes. Cyrus SASL's client stops at 65536; this leaves room for stronger servers.
pub const MAX_ITERATIONS: u32 = 1 << 20;

/// The hash function of a SCRAM variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    /// SCRAM-SHA-1.
    Sha1,
    /// SCRAM-SHA-256.
    Sha256,
}

impl Hash {
    fn mechanism(self) -> Mechanism {
        match self {
            Hash::Sha1 => Mechanism::ScramSha1,
            Hash::Sha256 => Mechanism::ScramSha256,
        }
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Zeroizing<Vec<u8>> {
        fn run<M: Mac + KeyInit>(key: &[u8], data: &[u8]) -> Zeroizing<Vec<u8>> {
            // HMAC takes keys of any length (RFC 2104 §2), so this cannot fail.
            let mut mac = match <M as KeyInit>::new_from_slice(key) {
                Ok(mac) => mac,
                Err(_) => return Zeroizing::new(Vec::new()),
            };
            mac.update(data);
            Zeroizing::new(mac.finalize().into_bytes().to_vec())
        }
        match self {
            Hash::Sha1 => run::<hmac::Hmac<sha1::Sha1>>(key, data),
            Hash::Sha256 => run::<hmac::Hmac<sha2::Sha256>>(key, data),
        }
    }

    fn h(self, data: &[u8]) -> Zeroizing<Vec<u8>> {
        use sha2::Digest as _;
        Zeroizing::new(match self {
            Hash::Sha1 => sha1::Sha1::digest(data).to_vec(),
            Hash::Sha256 => sha2::Sha256::digest(data).to_vec(),
        })
    }

    /// RFC 5802 §2.2 `Hi()`, which is PBKDF2 with HMAC and dkLen = hash length.
    fn hi(self, password: &[u8], salt: &[u8], iterations: u32) -> Zeroizing<Vec<u8>> {
        match self {
            Hash::Sha1 => {
                let mut out = Zeroizing::new(vec![0u8; 20]);
                pbkdf2::pbkdf2_hmac::<sha1::Sha1>(password, salt, iterations, &mut out);
                out
            }
            Hash::Sha256 => {
                let mut out = Zeroizing::new(vec![0u8; 32]);
                pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password, salt, iterations, &mut out);
                out
            }
        }
    }
}

#[derive(Debug)]
enum State {
    Start,
    /// client-first sent; waiting for server-first.
    SentFirst,
    /// client-final sent; the server signature we expect.
    SentFinal {
        server_signature: Zeroizing<Vec<u8>>,
    },
    /// server-final verified.
    Verified,
    /// A step failed; nothing more is accepted.
    Failed,
}

/// A SCRAM client (`n,,` GS2 header: no channel binding).
pub struct Scram {
    hash: Hash,
    gs2_header: String,
    client_first_bare: String,
    client_nonce: String,
    password: Password,
    state: State,
}

impl std::fmt::Debug for Scram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scram")
            .field("mechanism", &self.hash.mechanism())
            .field("client_first_bare", &self.client_first_bare)
            .field("state", &self.state_name())
            .finish_non_exhaustive()
    }
}

/// RFC 5802 §5.1 `saslname`: `=` and `,` are written `=3D` and `=2C`.
fn saslname(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

impl Scram {
    /// A client for `credentials` using `client_nonce` (printable, no `,`).
    ///
    /// The username and password go into the exchange unchanged, not SASLprep'ed:
    /// Cyrus SASL (`plugins/scram.c`) does not apply SASLprep either, and the two
    /// must agree for non-ASCII passwords.
    pub(crate) fn new(hash: Hash, credentials: &Credentials, client_nonce: String) -> Scram {
        let gs2_header = match &credentials.authzid {
            Some(a) => format!("n,a={},", saslname(a)),
            None => "n,,".to_owned(),
        };
        let client_first_bare = format!("n={},r={client_nonce}", saslname(&credentials.authcid));
        Scram {
            hash,
            gs2_header,
            client_first_bare,
            client_nonce,
            password: credentials.password.clone(),
            state: State::Start,
        }
    }

    fn state_name(&self) -> &'static str {
        match self.state {
            State::Start => "start",
            State::SentFirst => "sent client-first",
            State::SentFinal { .. } => "sent client-final",
            State::Verified => "verified",
            State::Failed => "failed",
        }
    }

    fn malformed(&self, reason: impl Into<String>) -> SaslError {
        SaslError::Malformed {
            mechanism: self.hash.mechanism(),
            reason: reason.into(),
        }
    }

    fn client_first(&mut self) -> Response {
        self.state = State::SentFirst;
        Response::new(format!("{}{}", self.gs2_header, self.client_first_bare).into_bytes())
    }

    /// RFC 5802 §3 and §7: parse server-first, compute the proof, build client-final.
    fn client_final(&mut self, server_first: &[u8]) -> Result<(Response, Zeroizing<Vec<u8>>)> {
        let mechanism = self.hash.mechanism();
        let server_first = std::str::from_utf8(server_first)
            .map_err(|_| self.malformed("server-first-message is not UTF-8"))?;
        let mut attrs = server_first.split(',');
        let mut next = |name: char| -> Result<&str> {
            let attr = attrs.next().unwrap_or("");
            if attr.starts_with("m=") {
                // §5.1: a mandatory extension we do not know must fail the exchange.
                return Err(self.malformed("unsupported mandatory extension (m=)"));
            }
            attr.strip_prefix(name)
                .and_then(|a| a.strip_prefix('='))
                .ok_or_else(|| self.malformed(format!("expected attribute {name}=")))
        };
        let nonce = next('r')?;
        let salt = next('s')?;
        let iterations = next('i')?;
        // §5.1: the server's nonce must extend ours.
        if !nonce.starts_with(&self.client_nonce) || nonce.len() <= self.client_nonce.len() {
            return Err(self.malformed("server nonce does not extend the client nonce"));
        }
        if !nonce.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return Err(self.malformed("server nonce is not printable ASCII"));
        }
        let salt = B64
            .decode(salt)
            .map_err(|_| self.malformed("salt is not base64"))?;
        if !iterations.bytes().all(|b| b.is_ascii_digit()) || iterations.is_empty() {
            return Err(self.malformed("iteration count is not a number"));
        }
        let count: u64 = iterations.parse().unwrap_or(u64::MAX);
        let iterations = u32::try_from(count)
            .ok()
            .filter(|i| (MIN_ITERATIONS..=MAX_ITERATIONS).contains(i))
            .ok_or(SaslError::IterationCount {
                mechanism,
                count,
                min: MIN_ITERATIONS,
                max: MAX_ITERATIONS,
            })?;

        let channel_binding = B64.encode(self.gs2_header.as_bytes());
        let without_proof = format!("c={channel_binding},r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);

        let h = self.hash;
        let salted = h.hi(self.password.expose().as_bytes(), &salt, iterations);
        let client_key = h.hmac(&salted, b"Client Key");
        let stored_key = h.h(&client_key);
        let client_signature = h.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(client_signature.iter())
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = h.hmac(&salted, b"Server Key");
        let server_signature = h.hmac(&server_key, auth_message.as_bytes());
        let message = format!("{without_proof},p={}", B64.encode(proof));
        Ok((Response::new(message.into_bytes()), server_signature))
    }

    /// RFC 5802 §7 `server-final-message = (server-error / verifier) ["," extensions]`.
    pub(crate) fn verify_server_final(&self, server_final: &[u8], expected: &[u8]) -> Result<()> {
        let mechanism = self.hash.mechanism();
        let text = std::str::from_utf8(server_final)
            .map_err(|_| self.malformed("server-final-message is not UTF-8"))?;
        let first = text.split(',').next().unwrap_or("");
        if let Some(error) = first.strip_prefix("e=") {
            return Err(SaslError::ServerError {
                mechanism,
                message: error.to_owned(),
            });
        }
        let verifier = first
            .strip_prefix("v=")
            .ok_or_else(|| self.malformed("server-final-message has neither v= nor e="))?;
        let signature = B64
            .decode(verifier)
            .map_err(|_| self.malformed("server signature is not base64"))?;
        if constant_time_eq(&signature, expected) {
            Ok(())
        } else {
            Err(SaslError::ServerProofMismatch(mechanism))
        }
    }
}

/// Compares without an early exit, so timing does not tell how much matched.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl ClientMechanism for Scram {
    fn mechanism(&self) -> Mechanism {
        self.hash.mechanism()
    }

    fn initial_response(&mut self) -> Result<Option<Response>> {
        match self.state {
            State::Start => Ok(Some(self.client_first())),
            _ => Err(SaslError::InitialResponseTooLate(self.hash.mechanism())),
        }
    }

    fn step(&mut self, challenge: &[u8]) -> Result<Step> {
        let state = std::mem::replace(&mut self.state, State::Failed);
        match state {
            // No SASL-IR: the server asks for client-first with an empty challenge.
            State::Start if challenge.is_empty() => Ok(Step::Respond(self.client_first())),
            State::SentFirst => {
                let (response, server_signature) = self.client_final(challenge)?;
                self.state = State::SentFinal { server_signature };
                Ok(Step::Respond(response))
            }
            State::SentFinal { server_signature } => {
                self.verify_server_final(challenge, &server_signature)?;
                self.state = State::Verified;
                Ok(Step::Done)
            }
            other => {
                let after = match other {
                    State::Start => "nothing (non-empty first challenge)",
                    State::Verified => "the server's final message",
                    _ => "a failed step",
                };
                Err(SaslError::UnexpectedChallenge {
                    mechanism: self.hash.mechanism(),
                    after,
                })
            }
        }
    }

    fn finish(&mut self, success_data: Option<&[u8]>) -> Result<()> {
        let mechanism = self.hash.mechanism();
        let state = std::mem::replace(&mut self.state, State::Failed);
        match (state, success_data) {
            (State::Verified, None) => {
                self.state = State::Verified;
                Ok(())
            }
            (State::SentFinal { server_signature }, Some(data)) => {
                self.verify_server_final(data, &server_signature)?;
                self.state = State::Verified;
                Ok(())
            }
            (State::SentFinal { .. }, None) => Err(SaslError::ServerNotVerified(mechanism)),
            (State::Verified, Some(_)) => Err(SaslError::UnexpectedChallenge {
                mechanism,
                after: "the server's final message",
            }),
            _ => Err(SaslError::Incomplete(mechanism)),
        }
    }
}
