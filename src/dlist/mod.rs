//! The DList codec: the wire format of Cyrus replication, for csync
//! (sync_server, port 2005) and for IMAP `SYNCGET`/`SYNCAPPLY`. No I/O here.
//!
//! - [`Value`]: atom/string, flag, list, kvlist, file literal, NIL, with typed
//!   constructors ([`Value::num`], [`Value::hex64`]) and accessors
//!   ([`Value::get`], [`Value::as_u64`], [`Value::as_str`], …).
//! - [`Response`] / [`Command`]: the line shapes of both transports; a
//!   [`Status`] keeps the Cyrus error name (`IMAP_SYNC_CHECKSUM`, …).
//! - [`Parser`] ([`ResponseParser`], [`CommandParser`]): incremental; feed it
//!   bytes split anywhere and drain [`Event`]s. File literal bodies
//!   (`APPLY MESSAGE`, `GET FETCH`) come out piecewise and are never buffered
//!   whole; [`Limits`] refuse oversized lines and literals before allocating.
//! - Encoding ([`Command::encode`], [`Response::encode`], [`encode_value`]):
//!   byte-for-byte what Cyrus 3.6 prints, returned as [`Encoded`] fragments
//!   with a [`Fragment::File`] slot wherever a file body must be streamed.
//!
//! # Reading a response, streaming a message body
//!
//! ```
//! use cyrsync::dlist::{Event, Limits, Response, ResponseParser, StatusKind};
//!
//! let mut parser = ResponseParser::responses(Limits::default());
//! let mut body = Vec::new(); // a session would write to a socket or file
//! let mut items = Vec::new();
//! // Bytes may arrive split anywhere, even inside a header.
//! for piece in [&b"* MESSAGE %{default 0123456789abcdef0123456789abcdef01234567 "[..],
//!               b"5}\r\nHel", b"lo\r\nOK success\r\n"] {
//!     parser.feed(piece);
//!     while let Some(ev) = parser.next_event()? {
//!         match ev {
//!             Event::FileLiteralStart(f) => assert_eq!(f.size, 5),
//!             Event::FileLiteralChunk(chunk) => body.extend_from_slice(chunk),
//!             Event::FileLiteralEnd => {}
//!             Event::Message(resp) => items.push(resp),
//!         }
//!     }
//! }
//! assert_eq!(body, b"Hello");
//! assert_eq!(items[0].name(), Some("MESSAGE"));
//! assert_eq!(items[1].status().map(|s| s.kind), Some(StatusKind::Ok));
//! assert!(items[1].is_final());
//! # Ok::<(), cyrsync::dlist::DlistError>(())
//! ```
//!
//! # Building a command
//!
//! ```
//! use cyrsync::dlist::{Command, KvList, Value};
//!
//! let reserve = Command::apply(
//!     "RESERVE",
//!     Value::kvlist(
//!         KvList::new()
//!             .with("PARTITION", "default")
//!             .with("MBOXNAME", Value::atom_list(["user.alice"]))
//!             .with("GUID", Value::atom_list(["1f6c9d6251cd60a6ca462387e5304c9a2d29d5a3"])),
//!     ),
//! );
//! let wire = reserve.encode()?.into_bytes()?;
//! assert_eq!(
//!     wire,
//!     b"APPLY RESERVE %(PARTITION default MBOXNAME (user.alice) \
//!       GUID (1f6c9d6251cd60a6ca462387e5304c9a2d29d5a3))\r\n"
//! );
//! // Over IMAP: `S0 SYNCAPPLY RESERVE …`.
//! let imap = reserve.for_imap("S0").encode()?.into_bytes()?;
//! assert!(imap.starts_with(b"S0 SYNCAPPLY RESERVE %("));
//! # Ok::<(), cyrsync::dlist::DlistError>(())
//! ```
//!
//! An `APPLY MESSAGE` carries file literals: walk the fragments, write
//! [`Fragment::Bytes`] as they are and stream exactly `size` body bytes for
//! each [`Fragment::File`].

pub mod encode;
pub mod parser;
pub mod response;
pub mod value;

#[cfg(test)]
mod tests;

pub use encode::{Encoded, Fragment, LiteralStyle, encode_value, encode_value_fragments};
pub use parser::{CommandParser, Event, Limits, Message, Parser, ResponseParser, parse_value};
pub use response::{Command, Response, Status, StatusKind, StatusTag};
pub use value::{FileLiteral, KvList, Value};

/// Which transport a session speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// sync_server (csync, port 2005): untagged commands.
    Csync,
    /// imapd with `SYNCGET`/`SYNCAPPLY`: tagged commands.
    Imap,
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Transport::Csync => "csync",
            Transport::Imap => "imap",
        })
    }
}

/// Errors of the DList layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DlistError {
    /// Malformed input; the parser resumes with the next message.
    #[error("dlist syntax error at byte {offset} of the message: {reason}")]
    Syntax {
        /// Offset within the message (its lines and literals).
        offset: usize,
        /// What was expected.
        reason: &'static str,
    },
    /// A line longer than [`Limits::max_line`].
    #[error("line longer than {limit} bytes")]
    LineTooLong {
        /// The limit.
        limit: usize,
    },
    /// A `{n}` literal larger than [`Limits::max_literal`].
    #[error("literal of {size} bytes exceeds the limit of {limit}")]
    LiteralTooLarge {
        /// Announced size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A file literal larger than [`Limits::max_file_literal`].
    #[error("file literal of {size} bytes exceeds the limit of {limit}")]
    FileLiteralTooLarge {
        /// Announced size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A message larger than [`Limits::max_message`].
    #[error("message larger than {limit} bytes")]
    MessageTooLarge {
        /// The limit.
        limit: usize,
    },
    /// Lists nested deeper than [`Limits::max_depth`].
    #[error("lists nested deeper than {limit}")]
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// The parser hit a framing error earlier; the stream cannot be resumed.
    #[error("the dlist stream failed earlier and cannot be resumed")]
    Failed,
    /// A value that has no wire form (a flag with a space, CR in a status).
    #[error("cannot encode: {0}")]
    Unencodable(String),
    /// [`Encoded::into_bytes`] on an encoding that needs file bodies.
    #[error("the encoding holds a file literal; its body must be supplied")]
    FileBodyRequired,
}
