//! Line shapes of both transports: server responses and client commands.
//!
//! csync (sync_server, port 2005) is untagged: the client sends
//! `GET MAILBOXES (user.alice)`, the server answers zero or more
//! `* NAME value` lines and ends with `OK text`, `NO IMAP_ERROR_NAME text`,
//! `BAD text` or `BYE text` (`imap/sync_support.c`, `sync_parse_response`).
//! Over IMAP (imapd, `sync_try_imap`) the same commands carry a tag and a
//! `SYNC` prefix (`S0 SYNCGET MAILBOXES (user.alice)`) and the final line is
//! tagged (`S0 OK success`).

use super::encode::{self, Encoded};
use super::{DlistError, Value};

/// A server response line (with its literals).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// `* NAME value…`: sync data (`* MAILBOX %(…)`, `* MESSAGE %{…}`,
    /// `* MISSING (…)`) and csync banner lines (`* SASL PLAIN LOGIN`,
    /// `* COMPRESS DEFLATE`, `* SIEVE-MAILBOX`). Sync data has exactly one
    /// value ([`Response::value`]).
    Data {
        /// The item name (`MAILBOX`, `MESSAGE`, …).
        name: String,
        /// The values after the name, usually one.
        values: Vec<Value>,
    },
    /// A status line: final `OK`/`NO`/`BAD`/`BYE`, tagged or not, or an
    /// untagged `* OK`/`* BYE` (banner, shutdown).
    Status(Status),
    /// `+ text`: a SASL challenge (base64) or `+ go ahead`.
    Continuation(String),
    /// `* NAME text` that is not a DList (e.g. `* Fatal error: …`), kept as
    /// text.
    Text {
        /// First word after `* `.
        name: String,
        /// The rest of the line.
        text: String,
    },
}

/// Which kind of status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusKind {
    /// `OK`: success.
    Ok,
    /// `NO`: the command failed; usually with a Cyrus error name.
    No,
    /// `BAD`: protocol error.
    Bad,
    /// `BYE`: the server is closing the connection (e.g. replica shutdown).
    Bye,
}

impl StatusKind {
    /// The wire word.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusKind::Ok => "OK",
            StatusKind::No => "NO",
            StatusKind::Bad => "BAD",
            StatusKind::Bye => "BYE",
        }
    }

    /// The kind for a wire word (exact case, as Cyrus compares with `strcmp`).
    pub fn from_word(w: &[u8]) -> Option<StatusKind> {
        match w {
            b"OK" => Some(StatusKind::Ok),
            b"NO" => Some(StatusKind::No),
            b"BAD" => Some(StatusKind::Bad),
            b"BYE" => Some(StatusKind::Bye),
            _ => None,
        }
    }
}

/// How a status line is tagged.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StatusTag {
    /// csync final status: `OK success`.
    None,
    /// `* OK …`: untagged (banner, `* BYE`).
    Untagged,
    /// IMAP final status: `S0 OK success`.
    Tagged(String),
}

/// A status line, e.g. `NO IMAP_SYNC_CHECKSUM Checksum Failure`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Tag, untagged `*`, or none (csync).
    pub tag: StatusTag,
    /// OK / NO / BAD / BYE.
    pub kind: StatusKind,
    /// The Cyrus error name that starts the text (`IMAP_MAILBOX_LOCKED`,
    /// `IMAP_SYNC_CHECKSUM`, `IMAP_PROTOCOL_ERROR`, …), as sync_server writes
    /// it and `sync_parse_response` matches it.
    pub error: Option<String>,
    /// The human text after the error name.
    pub text: String,
}

impl Status {
    /// The IMAP response code in brackets at the start of the text
    /// (`[CAPABILITY …]`), without the brackets.
    pub fn code(&self) -> Option<&str> {
        let rest = self.text.strip_prefix('[')?;
        rest.find(']').map(|end| &rest[..end])
    }

    /// Splits `text` (what follows the status word) into a Cyrus error name
    /// and the rest.
    pub fn split_error(text: &str) -> (Option<String>, String) {
        let (first, rest) = match text.split_once(' ') {
            Some((f, r)) => (f, r),
            None => (text, ""),
        };
        if is_error_name(first) {
            (Some(first.to_owned()), rest.to_owned())
        } else {
            (None, text.to_owned())
        }
    }
}

/// `IMAP_` followed by upper-case letters, digits and `_`: the names from
/// `imap/imap_err.et` that sync_server prints before the message.
pub fn is_error_name(w: &str) -> bool {
    w.len() > 5
        && w.starts_with("IMAP_")
        && w.bytes()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_')
}

impl Response {
    /// For `* NAME value`, the single value.
    pub fn value(&self) -> Option<&Value> {
        match self {
            Response::Data { values, .. } if values.len() == 1 => values.first(),
            _ => None,
        }
    }

    /// For `* NAME …`, the name.
    pub fn name(&self) -> Option<&str> {
        match self {
            Response::Data { name, .. } | Response::Text { name, .. } => Some(name),
            _ => None,
        }
    }

    /// The status if this is a status line.
    pub fn status(&self) -> Option<&Status> {
        match self {
            Response::Status(s) => Some(s),
            _ => None,
        }
    }

    /// True for a line that ends a command's response: a csync status line
    /// or a tagged IMAP status line (untagged `* BYE` also ends the session).
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            Response::Status(Status {
                tag: StatusTag::None | StatusTag::Tagged(_),
                ..
            })
        )
    }

    /// A `* NAME value` data line.
    pub fn data(name: impl Into<String>, value: Value) -> Response {
        Response::Data {
            name: name.into(),
            values: vec![value],
        }
    }

    /// Encodes the response (server style: `{n}` literals).
    pub fn encode(&self) -> Result<Encoded, DlistError> {
        encode::encode_response(self)
    }
}

/// A client command line (with its literals).
///
/// `APPLY`/`GET`/`RESTORE` commands carry the item name as their first
/// argument and the DList as the second: `APPLY RESERVE %(…)` is
/// `verb: "APPLY", args: [atom RESERVE, kvlist]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The IMAP tag; `None` on csync.
    pub tag: Option<String>,
    /// The command word as sent (`APPLY`, `SYNCAPPLY`, `GET`, `RESTART`,
    /// `AUTHENTICATE`, …).
    pub verb: String,
    /// The arguments after the verb.
    pub args: Vec<Value>,
}

impl Command {
    /// Any command.
    pub fn new(verb: impl Into<String>, args: Vec<Value>) -> Command {
        Command {
            tag: None,
            verb: verb.into(),
            args,
        }
    }

    /// `APPLY NAME value`, e.g. `APPLY RESERVE %(PARTITION default …)`.
    pub fn apply(name: &str, value: Value) -> Command {
        Command::new("APPLY", vec![Value::atom(name), value])
    }

    /// `GET NAME value`, e.g. `GET MAILBOXES (user.alice)`.
    pub fn get(name: &str, value: Value) -> Command {
        Command::new("GET", vec![Value::atom(name), value])
    }

    /// `APPLY MESSAGE (%{…} %{…})`: the file literals whose bodies follow.
    pub fn apply_message(files: impl IntoIterator<Item = super::FileLiteral>) -> Command {
        Command::apply(
            "MESSAGE",
            Value::List(files.into_iter().map(Value::File).collect()),
        )
    }

    /// `RESTART`.
    pub fn restart() -> Command {
        Command::new("RESTART", Vec::new())
    }

    /// `EXIT`.
    pub fn exit() -> Command {
        Command::new("EXIT", Vec::new())
    }

    /// `NOOP`.
    pub fn noop() -> Command {
        Command::new("NOOP", Vec::new())
    }

    /// The IMAP form of this command: tagged, and `APPLY`/`GET`/`RESTART`/
    /// `RESTORE` become `SYNCAPPLY`/… as `sync_send_apply` writes them.
    #[must_use]
    pub fn for_imap(mut self, tag: impl Into<String>) -> Command {
        if matches!(self.verb.as_str(), "APPLY" | "GET" | "RESTART" | "RESTORE") {
            self.verb = format!("SYNC{}", self.verb);
        }
        self.tag = Some(tag.into());
        self
    }

    /// The verb without an IMAP `SYNC` prefix (`SYNCGET` → `GET`).
    pub fn base_verb(&self) -> &str {
        match self.verb.strip_prefix("SYNC") {
            Some(v @ ("APPLY" | "GET" | "RESTART" | "RESTORE")) => v,
            _ => &self.verb,
        }
    }

    /// For `APPLY`/`GET`/`RESTORE`, the item name (`MESSAGE`, `MAILBOXES`).
    pub fn name(&self) -> Option<&str> {
        match self.base_verb() {
            "APPLY" | "GET" | "RESTORE" => self.args.first().and_then(Value::as_str),
            _ => None,
        }
    }

    /// For `APPLY`/`GET`/`RESTORE`, the DList after the name.
    pub fn value(&self) -> Option<&Value> {
        match self.base_verb() {
            "APPLY" | "GET" | "RESTORE" => self.args.get(1),
            _ => None,
        }
    }

    /// Encodes the command (client style: `{n+}` literals), CRLF included.
    pub fn encode(&self) -> Result<Encoded, DlistError> {
        encode::encode_command(self)
    }
}
