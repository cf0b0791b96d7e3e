//! CRAM-MD5 (RFC 2195): `authcid SP hex(HMAC-MD5(password, challenge))`.

use hmac::{KeyInit, Mac};

use super::util::hex;
use super::{ClientMechanism, Credentials, Mechanism, Password, Response, Result, SaslError, Step};

type HmacMd5 = hmac::Hmac<md5::Md5>;

/// CRAM-MD5 client. The server proves nothing, so there is no mutual authentication.
#[derive(Debug)]
pub struct CramMd5 {
    authcid: String,
    password: Password,
    answered: bool,
}

impl CramMd5 {
    /// A CRAM-MD5 client for `credentials` (CRAM-MD5 has no authzid).
    pub fn new(credentials: &Credentials) -> CramMd5 {
        CramMd5 {
            authcid: credentials.authcid.clone(),
            password: credentials.password.clone(),
            answered: false,
        }
    }
}

impl ClientMechanism for CramMd5 {
    fn mechanism(&self) -> Mechanism {
        Mechanism::CramMd5
    }

    fn initial_response(&mut self) -> Result<Option<Response>> {
        if self.answered {
            return Err(SaslError::InitialResponseTooLate(Mechanism::CramMd5));
        }
        Ok(None)
    }

    fn step(&mut self, challenge: &[u8]) -> Result<Step> {
        if self.answered {
            return Err(SaslError::UnexpectedChallenge {
                mechanism: Mechanism::CramMd5,
                after: "the digest",
            });
        }
        // RFC 2195 §2: the challenge is a msg-id `<...>`; an empty one would let
        // anyone replay the response.
        if challenge.is_empty() {
            return Err(SaslError::Malformed {
                mechanism: Mechanism::CramMd5,
                reason: "empty challenge".into(),
            });
        }
        let mut mac = HmacMd5::new_from_slice(self.password.expose().as_bytes()).map_err(|_| {
            SaslError::Encoding {
                mechanism: Mechanism::CramMd5,
                what: "password",
                reason: "rejected as HMAC key",
            }
        })?;
        mac.update(challenge);
        let digest = mac.finalize().into_bytes();
        self.answered = true;
        Ok(Step::Respond(Response::new(
            format!("{} {}", self.authcid, hex(&digest)).into_bytes(),
        )))
    }

    fn finish(&mut self, _success_data: Option<&[u8]>) -> Result<()> {
        if self.answered {
            Ok(())
        } else {
            Err(SaslError::Incomplete(Mechanism::CramMd5))
        }
    }
}
