//! PLAIN (RFC 4616) and LOGIN (draft-murchison-sasl-login): the password in clear.

use zeroize::Zeroizing;

use super::{ClientMechanism, Credentials, Mechanism, Password, Response, Result, SaslError, Step};

/// PLAIN: one message, `authzid NUL authcid NUL passwd`.
#[derive(Debug)]
pub struct Plain {
    authzid: Option<String>,
    authcid: String,
    password: Password,
    sent: bool,
}

impl Plain {
    /// A PLAIN client for `credentials`.
    pub fn new(credentials: &Credentials) -> Plain {
        Plain {
            authzid: credentials.authzid.clone(),
            authcid: credentials.authcid.clone(),
            password: credentials.password.clone(),
            sent: false,
        }
    }

    fn message(&mut self) -> Response {
        self.sent = true;
        let mut msg = Zeroizing::new(Vec::new());
        msg.extend_from_slice(self.authzid.as_deref().unwrap_or("").as_bytes());
        msg.push(0);
        msg.extend_from_slice(self.authcid.as_bytes());
        msg.push(0);
        msg.extend_from_slice(self.password.expose().as_bytes());
        Response::new(std::mem::take(&mut *msg))
    }
}

impl ClientMechanism for Plain {
    fn mechanism(&self) -> Mechanism {
        Mechanism::Plain
    }

    fn initial_response(&mut self) -> Result<Option<Response>> {
        if self.sent {
            return Err(SaslError::InitialResponseTooLate(Mechanism::Plain));
        }
        Ok(Some(self.message()))
    }

    fn step(&mut self, challenge: &[u8]) -> Result<Step> {
        // RFC 4616 §2: the server's only challenge is the empty one that asks for
        // the message when it was not sent as an initial response.
        if self.sent || !challenge.is_empty() {
            return Err(SaslError::UnexpectedChallenge {
                mechanism: Mechanism::Plain,
                after: if self.sent {
                    "the credentials"
                } else {
                    "nothing"
                },
            });
        }
        Ok(Step::Respond(self.message()))
    }

    fn finish(&mut self, _success_data: Option<&[u8]>) -> Result<()> {
        if self.sent {
            Ok(())
        } else {
            Err(SaslError::Incomplete(Mechanism::Plain))
        }
    }
}

/// LOGIN: the server asks twice ("Username:", "Password:"); the client answers the
/// authentication id, then the password. Like Cyrus SASL's client (`plugins/login.c`)
/// it answers by position and ignores the prompt's text, which servers word freely.
#[derive(Debug)]
pub struct Login {
    authcid: String,
    password: Password,
    answered: u8,
}

impl Login {
    /// A LOGIN client for `credentials` (LOGIN has no authzid).
    pub fn new(credentials: &Credentials) -> Login {
        Login {
            authcid: credentials.authcid.clone(),
            password: credentials.password.clone(),
            answered: 0,
        }
    }
}

impl ClientMechanism for Login {
    fn mechanism(&self) -> Mechanism {
        Mechanism::Login
    }

    fn initial_response(&mut self) -> Result<Option<Response>> {
        if self.answered > 0 {
            return Err(SaslError::InitialResponseTooLate(Mechanism::Login));
        }
        Ok(None)
    }

    fn step(&mut self, _challenge: &[u8]) -> Result<Step> {
        let response = match self.answered {
            0 => self.authcid.as_bytes().to_vec(),
            1 => self.password.expose().as_bytes().to_vec(),
            _ => {
                return Err(SaslError::UnexpectedChallenge {
                    mechanism: Mechanism::Login,
                    after: "the password",
                });
            }
        };
        self.answered += 1;
        Ok(Step::Respond(Response::new(response)))
    }

    fn finish(&mut self, _success_data: Option<&[u8]>) -> Result<()> {
        if self.answered == 2 {
            Ok(())
        } else {
            Err(SaslError::Incomplete(Mechanism::Login))
        }
    }
}
