//! What a server says before authentication, on either transport, parsed without
//! I/O: the csync banner (`* SASL …`, `* STARTTLS`, `* COMPRESS DEFLATE`,
//! `* SIEVE-MAILBOX`, `* OK …`) and the IMAP greeting and CAPABILITY list.

pub use crate::dlist::Transport;

/// Capabilities learnt from the greeting (and, for IMAP, CAPABILITY responses).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// SASL mechanisms offered, upper case, in the server's order.
    pub sasl: Vec<String>,
    /// STARTTLS offered.
    pub starttls: bool,
    /// COMPRESS DEFLATE offered.
    pub compress: bool,
    /// Sieve scripts are replicated as mailbox content (`SIEVE-MAILBOX`).
    pub sieve_mailbox: bool,
    /// IMAP: the server takes replication commands (`X-REPLICATION`).
    pub replication: bool,
    /// IMAP: SASL-IR (initial response on the AUTHENTICATE line).
    pub sasl_ir: bool,
    /// IMAP: `LOGINDISABLED`.
    pub login_disabled: bool,
    /// The server's free text from its `OK` greeting (product and version).
    pub server: String,
}

/// One greeting line, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GreetingLine {
    /// A csync capability line before the final `* OK`.
    CsyncCapability,
    /// csync's final `* OK text`: the banner is complete.
    CsyncReady,
    /// An IMAP `* OK …` greeting: complete.
    ImapReady,
    /// `* PREAUTH`: already authenticated (IMAP).
    ImapPreauth,
    /// `* BYE text` or anything unusable; the text says what arrived.
    Refused(String),
}

/// Accumulates greeting lines, deciding the transport from the first one: csync
/// starts with capability lines, IMAP with `* OK` (RFC 9051 §7.1.1). Because the
/// server speaks first in both, one connection is enough to tell them apart.
#[derive(Debug, Default)]
pub struct Greeting {
    /// The transport, known after the first line.
    pub transport: Option<Transport>,
    /// What was offered.
    pub caps: Capabilities,
}

impl Greeting {
    /// Feeds one line (without CRLF).
    pub fn feed(&mut self, line: &[u8]) -> GreetingLine {
        let text = String::from_utf8_lossy(line);
        let Some(rest) = text.strip_prefix("* ") else {
            return GreetingLine::Refused(shorten(&text));
        };
        let (word, args) = rest.split_once(' ').unwrap_or((rest, ""));
        let word = word.to_ascii_uppercase();
        match (self.transport, word.as_str()) {
            (None | Some(Transport::Csync), "SASL") => {
                self.transport = Some(Transport::Csync);
                self.caps.sasl = args
                    .split_ascii_whitespace()
                    .map(|m| m.to_ascii_uppercase())
                    .collect();
                GreetingLine::CsyncCapability
            }
            (None | Some(Transport::Csync), "STARTTLS") => {
                self.transport = Some(Transport::Csync);
                self.caps.starttls = true;
                GreetingLine::CsyncCapability
            }
            (None | Some(Transport::Csync), "COMPRESS") => {
                self.transport = Some(Transport::Csync);
                self.caps.compress = args.eq_ignore_ascii_case("DEFLATE")
                    || args
                        .split_ascii_whitespace()
                        .any(|a| a.eq_ignore_ascii_case("DEFLATE"));
                GreetingLine::CsyncCapability
            }
            (None | Some(Transport::Csync), "SIEVE-MAILBOX") => {
                self.transport = Some(Transport::Csync);
                self.caps.sieve_mailbox = true;
                GreetingLine::CsyncCapability
            }
            (Some(Transport::Csync), "OK") => {
                self.caps.server = args.to_string();
                GreetingLine::CsyncReady
            }
            (None, "OK") => {
                self.transport = Some(Transport::Imap);
                let args = self.take_response_code(args);
                self.caps.server = args.to_string();
                GreetingLine::ImapReady
            }
            (None, "PREAUTH") => {
                self.transport = Some(Transport::Imap);
                GreetingLine::ImapPreauth
            }
            (Some(Transport::Csync), _) => {
                // sync_server may grow new capability lines; ignore unknown ones
                // the way sync_client does (sync_support.c, sync_parse_capa…).
                GreetingLine::CsyncCapability
            }
            _ => GreetingLine::Refused(shorten(&text)),
        }
    }

    /// Strips and applies a leading `[CAPABILITY …]` response code.
    fn take_response_code<'a>(&mut self, args: &'a str) -> &'a str {
        if let Some(inner) = args.strip_prefix('[')
            && let Some((code, rest)) = inner.split_once(']')
        {
            let mut words = code.split_ascii_whitespace();
            if words
                .next()
                .is_some_and(|w| w.eq_ignore_ascii_case("CAPABILITY"))
            {
                apply_imap_capabilities(&mut self.caps, words);
            }
            return rest.trim_start();
        }
        args
    }
}

/// Applies IMAP capability atoms (from `* CAPABILITY …` or a `[CAPABILITY …]`
/// response code). SASL mechanisms are replaced as a whole: after login the
/// server lists a new set (RFC 9051 §7.2.2).
pub fn apply_imap_capabilities<'a>(caps: &mut Capabilities, words: impl Iterator<Item = &'a str>) {
    let mut sasl = Vec::new();
    caps.starttls = false;
    caps.compress = false;
    caps.replication = false;
    caps.sasl_ir = false;
    caps.login_disabled = false;
    caps.sieve_mailbox = false;
    for word in words {
        let upper = word.to_ascii_uppercase();
        if let Some(mech) = upper.strip_prefix("AUTH=") {
            sasl.push(mech.to_string());
            continue;
        }
        match upper.as_str() {
            "STARTTLS" => caps.starttls = true,
            "COMPRESS=DEFLATE" => caps.compress = true,
            "X-REPLICATION" => caps.replication = true,
            "SASL-IR" => caps.sasl_ir = true,
            "LOGINDISABLED" => caps.login_disabled = true,
            "X-SIEVE-MAILBOX" => caps.sieve_mailbox = true,
            _ => {}
        }
    }
    caps.sasl = sasl;
}

/// Finds a `[CAPABILITY …]` code in a tagged or untagged response text and
/// applies it; returns whether one was found.
pub fn apply_capability_code(caps: &mut Capabilities, text: &str) -> bool {
    let Some(start) = text.find("[CAPABILITY ") else {
        return false;
    };
    let inner = &text[start + 1..];
    let Some(end) = inner.find(']') else {
        return false;
    };
    let mut words = inner[..end].split_ascii_whitespace();
    words.next();
    apply_imap_capabilities(caps, words);
    true
}

/// Shortens a line for an error message.
pub fn shorten(text: &str) -> String {
    let mut s: String = text.chars().take(120).collect();
    if s.len() < text.len() {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csync_banner_from_trace() {
        let mut g = Greeting::default();
        let lines = [
            "* SASL PLAIN LOGIN DIGEST-MD5 CRAM-MD5 SCRAM-SHA-1 SCRAM-SHA-256",
            "* COMPRESS DEFLATE",
            "* SIEVE-MAILBOX",
        ];
        for l in lines {
            assert_eq!(g.feed(l.as_bytes()), GreetingLine::CsyncCapability);
        }
        assert_eq!(
            g.feed(b"* OK replica.test Cyrus sync server 3.6.1-Debian-3.6.1-4+deb12u5"),
            GreetingLine::CsyncReady
        );
        assert_eq!(g.transport, Some(Transport::Csync));
        assert_eq!(g.caps.sasl.len(), 6);
        assert_eq!(g.caps.sasl[5], "SCRAM-SHA-256");
        assert!(g.caps.compress && g.caps.sieve_mailbox && !g.caps.starttls);
        assert!(g.caps.server.starts_with("replica.test Cyrus sync server"));
    }

    #[test]
    fn imap_greeting_from_trace() {
        let mut g = Greeting::default();
        let line = "* OK [CAPABILITY IMAP4rev1 LITERAL+ ID ENABLE AUTH=PLAIN AUTH=LOGIN AUTH=DIGEST-MD5 AUTH=CRAM-MD5 AUTH=SCRAM-SHA-1 AUTH=SCRAM-SHA-256 SASL-IR] replica.test Cyrus IMAP 3.6.1-Debian-3.6.1-4+deb12u5 server ready";
        assert_eq!(g.feed(line.as_bytes()), GreetingLine::ImapReady);
        assert_eq!(g.transport, Some(Transport::Imap));
        assert!(g.caps.sasl_ir);
        assert!(!g.caps.replication, "X-REPLICATION only comes after login");
        assert_eq!(g.caps.sasl[0], "PLAIN");
        assert!(g.caps.server.starts_with("replica.test Cyrus IMAP"));
        let after = "A01 OK [CAPABILITY IMAP4rev1 X-REPLICATION X-SIEVE-MAILBOX COMPRESS=DEFLATE IDLE] Success (no protection)";
        assert!(apply_capability_code(&mut g.caps, after));
        assert!(g.caps.replication && g.caps.compress && g.caps.sieve_mailbox);
        assert!(g.caps.sasl.is_empty());
    }

    #[test]
    fn garbage_and_bye_are_refused() {
        let mut g = Greeting::default();
        assert!(matches!(
            g.feed(b"SSH-2.0-OpenSSH_9.6"),
            GreetingLine::Refused(_)
        ));
        let mut g = Greeting::default();
        assert!(matches!(
            g.feed(b"* BYE too many connections"),
            GreetingLine::Refused(_)
        ));
        let mut g = Greeting::default();
        assert!(matches!(g.feed(&[0xff, 0xfe, 0]), GreetingLine::Refused(_)));
    }
}
