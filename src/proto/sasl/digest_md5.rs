//! DIGEST-MD5 (RFC 2831), client side, `qop=auth` only: no integrity or privacy
//! layer, because replication runs over TLS or not at all with a security layer
//! (a SASL layer broke Cyrus replication, cyrus-imapd #5452).

use md5::{Digest as _, Md5};

use super::scram::constant_time_eq;
use super::util::{hex, latin1};
use super::{
    ClientMechanism, Credentials, Mechanism, Password, Response, Result, SaslError, Step, Target,
};

const MECH: Mechanism = Mechanism::DigestMd5;

/// One `name=value` of a challenge; value unquoted, bytes as sent.
type Directive = (String, Vec<u8>);

/// Parses a `digest-challenge` (RFC 2831 §2.1.1, §7.1): a `#rule` list of
/// `token "=" ( token | quoted-string )`, empty elements and linear white space allowed.
pub(crate) fn parse_directives(input: &[u8]) -> Result<Vec<Directive>> {
    let malformed = |reason: &str| SaslError::Malformed {
        mechanism: MECH,
        reason: reason.to_owned(),
    };
    let is_lws = |b: u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    // RFC 2616 §2.2 separators end a token.
    let is_token = |b: u8| b > 0x20 && b < 0x7f && !b"()<>@,;:\\\"/[]?={}".contains(&b);
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        while i < input.len() && (is_lws(input[i]) || input[i] == b',') {
            i += 1;
        }
        if i == input.len() {
            return Ok(out);
        }
        let start = i;
        while i < input.len() && is_token(input[i]) {
            i += 1;
        }
        if i == start {
            return Err(malformed("expected a directive name"));
        }
        let name = String::from_utf8_lossy(&input[start..i]).to_ascii_lowercase();
        while i < input.len() && is_lws(input[i]) {
            i += 1;
        }
        if input.get(i) != Some(&b'=') {
            return Err(malformed("expected '=' after a directive name"));
        }
        i += 1;
        while i < input.len() && is_lws(input[i]) {
            i += 1;
        }
        let mut value = Vec::new();
        if input.get(i) == Some(&b'"') {
            i += 1;
            loop {
                match input.get(i) {
                    None => return Err(malformed("unterminated quoted string")),
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') => {
                        let Some(&escaped) = input.get(i + 1) else {
                            return Err(malformed("unterminated quoted string"));
                        };
                        value.push(escaped);
                        i += 2;
                    }
                    Some(&b) => {
                        value.push(b);
                        i += 1;
                    }
                }
            }
        } else {
            let start = i;
            while i < input.len() && is_token(input[i]) {
                i += 1;
            }
            value.extend_from_slice(&input[start..i]);
        }
        while i < input.len() && is_lws(input[i]) {
            i += 1;
        }
        if i < input.len() && input[i] != b',' {
            return Err(malformed("expected ',' between directives"));
        }
        out.push((name, value));
    }
}

/// The parts of a `digest-challenge` the client uses.
#[derive(Debug)]
struct Challenge {
    realms: Vec<Vec<u8>>,
    nonce: Vec<u8>,
    utf8: bool,
}

impl Challenge {
    fn parse(input: &[u8]) -> Result<Challenge> {
        let malformed = |reason: &str| SaslError::Malformed {
            mechanism: MECH,
            reason: reason.to_owned(),
        };
        let mut realms = Vec::new();
        let mut nonce = None;
        let mut qop_auth = None;
        let mut utf8 = false;
        let mut algorithm = false;
        for (name, value) in parse_directives(input)? {
            match name.as_str() {
                "realm" => realms.push(value),
                // §2.1.1: nonce, charset, algorithm and qop appear at most once.
                "nonce" if nonce.is_some() => return Err(malformed("nonce given twice")),
                "nonce" => nonce = Some(value),
                "qop" if qop_auth.is_some() => return Err(malformed("qop given twice")),
                "qop" => {
                    qop_auth = Some(
                        value
                            .split(|&b| b == b',')
                            .any(|q| q.trim_ascii().eq_ignore_ascii_case(b"auth")),
                    )
                }
                "charset" if utf8 => return Err(malformed("charset given twice")),
                "charset" => {
                    if !value.eq_ignore_ascii_case(b"utf-8") {
                        return Err(malformed("charset other than utf-8"));
                    }
                    utf8 = true;
                }
                "algorithm" if algorithm => return Err(malformed("algorithm given twice")),
                "algorithm" => {
                    if !value.eq_ignore_ascii_case(b"md5-sess") {
                        return Err(malformed("algorithm other than md5-sess"));
                    }
                    algorithm = true;
                }
                // maxbuf, cipher, stale and unknown directives do not concern qop=auth.
                _ => {}
            }
        }
        let nonce = nonce.ok_or_else(|| malformed("no nonce"))?;
        if !algorithm {
            return Err(malformed("no algorithm=md5-sess"));
        }
        // §2.1.1: a missing qop means "auth".
        if qop_auth == Some(false) {
            return Err(malformed(
                "the server does not offer qop=auth (only security layers)",
            ));
        }
        Ok(Challenge {
            realms,
            nonce,
            utf8,
        })
    }
}

#[derive(Debug)]
enum State {
    Start,
    /// digest-response sent; the `rspauth` value we expect (hex).
    SentResponse {
        rspauth: String,
    },
    Verified,
    Failed,
}

/// DIGEST-MD5 client.
///
/// Realm choice: the configured realm (`sync_realm`) if any, else the first realm the
/// server offers, else none. `digest-uri` is `<service>/<host>`, with the SASL service
/// Cyrus uses for the transport ([`Service`](super::Service)).
pub struct DigestMd5 {
    authcid: String,
    authzid: Option<String>,
    password: Password,
    realm: Option<String>,
    digest_uri: String,
    cnonce: String,
    state: State,
}

impl std::fmt::Debug for DigestMd5 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DigestMd5")
            .field("authcid", &self.authcid)
            .field("authzid", &self.authzid)
            .field("realm", &self.realm)
            .field("digest_uri", &self.digest_uri)
            .finish_non_exhaustive()
    }
}

fn quote(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 2);
    out.push(b'"');
    for &b in value {
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
    out
}

fn md5(parts: &[&[u8]]) -> [u8; 16] {
    let mut h = Md5::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

impl DigestMd5 {
    /// A client for `credentials` talking to `target`, with client nonce `cnonce`.
    pub(crate) fn new(credentials: &Credentials, target: &Target, cnonce: String) -> DigestMd5 {
        DigestMd5 {
            authcid: credentials.authcid.clone(),
            authzid: credentials.authzid.clone(),
            password: credentials.password.clone(),
            realm: credentials.realm.clone(),
            digest_uri: format!("{}/{}", target.service.name(), target.host),
            cnonce,
            state: State::Start,
        }
    }

    /// Bytes of a credential on the wire: UTF-8 if the server announced
    /// `charset=utf-8`, else ISO 8859-1 (§2.1.2 `username`).
    fn wire(what: &'static str, s: &str, utf8: bool) -> Result<Vec<u8>> {
        if utf8 {
            Ok(s.as_bytes().to_vec())
        } else {
            latin1(s).ok_or(SaslError::Encoding {
                mechanism: MECH,
                what,
                reason: "not ISO 8859-1 and the server did not announce charset=utf-8",
            })
        }
    }

    /// Bytes of a credential inside A1: §2.1.2.1 converts to ISO 8859-1 whenever all
    /// characters fit, so the hash matches HTTP Digest databases (Cyrus SASL does the
    /// same for username, realm and password).
    fn hashed(what: &'static str, s: &str, utf8: bool) -> Result<Vec<u8>> {
        match latin1(s) {
            Some(bytes) => Ok(bytes),
            None => Self::wire(what, s, utf8),
        }
    }

    fn respond(&mut self, challenge: &[u8]) -> Result<(Response, String)> {
        let c = Challenge::parse(challenge)?;
        let realm: Option<Vec<u8>> = match &self.realm {
            Some(r) => Some(Self::wire("realm", r, c.utf8)?),
            None => c.realms.first().cloned(),
        };
        let realm_for_hash = match (&self.realm, &realm) {
            (Some(r), _) => Self::hashed("realm", r, c.utf8)?,
            (None, Some(offered)) => match std::str::from_utf8(offered) {
                // The offered realm arrived in the server's charset; rehash it as
                // ISO 8859-1 when it fits, like a configured one.
                Ok(s) if c.utf8 => Self::hashed("realm", s, true)?,
                _ => offered.clone(),
            },
            (None, None) => Vec::new(),
        };
        let user_wire = Self::wire("username", &self.authcid, c.utf8)?;
        let user_hash = Self::hashed("username", &self.authcid, c.utf8)?;
        let pass_hash =
            zeroize::Zeroizing::new(Self::hashed("password", self.password.expose(), c.utf8)?);
        let authzid = match &self.authzid {
            Some(a) => Some(Self::wire("authzid", a, c.utf8)?),
            None => None,
        };
        let nc = b"00000001";
        let qop = b"auth";
        let cnonce = self.cnonce.as_bytes();

        // §2.1.2.1: A1 = H(user:realm:pass) ":" nonce ":" cnonce [":" authzid]
        let secret =
            zeroize::Zeroizing::new(md5(&[&user_hash, b":", &realm_for_hash, b":", &pass_hash]));
        let mut a1: Vec<&[u8]> = vec![&secret[..], b":", &c.nonce, b":", cnonce];
        if let Some(a) = &authzid {
            a1.push(b":");
            a1.push(a);
        }
        let ha1 = zeroize::Zeroizing::new(hex(&md5(&a1)));
        let kd = |a2: &[u8]| {
            let ha2 = hex(&md5(&[a2]));
            hex(&md5(&[
                ha1.as_bytes(),
                b":",
                &c.nonce,
                b":",
                nc,
                b":",
                cnonce,
                b":",
                qop,
                b":",
                ha2.as_bytes(),
            ]))
        };
        let response = kd(format!("AUTHENTICATE:{}", self.digest_uri).as_bytes());
        // §2.1.3: rspauth uses A2 without the "AUTHENTICATE" method.
        let rspauth = kd(format!(":{}", self.digest_uri).as_bytes());

        let mut out = Vec::new();
        if c.utf8 {
            out.extend_from_slice(b"charset=utf-8,");
        }
        out.extend_from_slice(b"username=");
        out.extend(quote(&user_wire));
        if let Some(r) = &realm {
            out.extend_from_slice(b",realm=");
            out.extend(quote(r));
        }
        out.extend_from_slice(b",nonce=");
        out.extend(quote(&c.nonce));
        out.extend_from_slice(b",nc=00000001,cnonce=");
        out.extend(quote(cnonce));
        out.extend_from_slice(b",digest-uri=");
        out.extend(quote(self.digest_uri.as_bytes()));
        out.extend_from_slice(b",response=");
        out.extend_from_slice(response.as_bytes());
        out.extend_from_slice(b",qop=auth");
        if let Some(a) = &authzid {
            out.extend_from_slice(b",authzid=");
            out.extend(quote(a));
        }
        Ok((Response::new(out), rspauth))
    }

    fn verify(data: &[u8], expected: &str) -> Result<()> {
        let directives = parse_directives(data)?;
        let mut rspauth = directives.iter().filter(|(n, _)| n == "rspauth");
        let got = match (rspauth.next(), rspauth.next()) {
            (Some((_, v)), None) => v,
            _ => {
                return Err(SaslError::Malformed {
                    mechanism: MECH,
                    reason: "expected exactly one rspauth".into(),
                });
            }
        };
        if constant_time_eq(&got.to_ascii_lowercase(), expected.as_bytes()) {
            Ok(())
        } else {
            Err(SaslError::ServerProofMismatch(MECH))
        }
    }
}

impl ClientMechanism for DigestMd5 {
    fn mechanism(&self) -> Mechanism {
        MECH
    }

    fn initial_response(&mut self) -> Result<Option<Response>> {
        match self.state {
            State::Start => Ok(None),
            _ => Err(SaslError::InitialResponseTooLate(MECH)),
        }
    }

    fn step(&mut self, challenge: &[u8]) -> Result<Step> {
        let state = std::mem::replace(&mut self.state, State::Failed);
        match state {
            State::Start => {
                let (response, rspauth) = self.respond(challenge)?;
                self.state = State::SentResponse { rspauth };
                Ok(Step::Respond(response))
            }
            State::SentResponse { rspauth } => {
                Self::verify(challenge, &rspauth)?;
                self.state = State::Verified;
                Ok(Step::Done)
            }
            State::Verified => Err(SaslError::UnexpectedChallenge {
                mechanism: MECH,
                after: "rspauth",
            }),
            State::Failed => Err(SaslError::UnexpectedChallenge {
                mechanism: MECH,
                after: "a failed step",
            }),
        }
    }

    fn finish(&mut self, success_data: Option<&[u8]>) -> Result<()> {
        let state = std::mem::replace(&mut self.state, State::Failed);
        match (state, success_data) {
            (State::Verified, None) => {
                self.state = State::Verified;
                Ok(())
            }
            (State::SentResponse { rspauth }, Some(data)) => {
                Self::verify(data, &rspauth)?;
                self.state = State::Verified;
                Ok(())
            }
            (State::SentResponse { .. }, None) => Err(SaslError::ServerNotVerified(MECH)),
            (State::Verified, Some(_)) => Err(SaslError::UnexpectedChallenge {
                mechanism: MECH,
                after: "rspauth",
            }),
            _ => Err(SaslError::Incomplete(MECH)),
        }
    }
}
