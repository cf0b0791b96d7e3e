//! Errors of the sync log layer.

use std::path::PathBuf;

/// Why one sync log line is not a valid entry (parsing), or why an entry cannot
/// be written as one line (encoding).
///
/// A malformed line is never dropped silently: the [`Reader`](super::Reader)
/// copies it to the `.malformed` file beside the log and counts it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LineError {
    /// The line has a kind word but no argument (Cyrus skips such lines silently).
    #[error("{kind} without an argument")]
    MissingArgument {
        /// The kind word, upper-cased.
        kind: String,
    },
    /// The kind word is followed by something other than one space.
    #[error("the kind word is not followed by a single space")]
    BadSeparator,
    /// The kind word is none that Cyrus's reader knows (`sync_do_reader`).
    #[error("unknown action kind {0:?}")]
    UnknownKind(String),
    /// The kind takes a different number of arguments.
    #[error("{kind} takes {expected} argument(s), the line has {found}")]
    Arity {
        /// The kind word.
        kind: String,
        /// How many it takes.
        expected: usize,
        /// How many the line has.
        found: usize,
    },
    /// An argument starts with a character no atom or quoted string may start
    /// with (space, parenthesis).
    #[error("an argument starts with {0:?}")]
    BadArgumentStart(char),
    /// A quoted string is not closed before the end of the line.
    #[error("unterminated quoted string")]
    UnterminatedQuote,
    /// An IMAP literal `{n}`: Cyrus writers never produce one (`sync_quote_name`
    /// escapes braces), and Cyrus's own log reader cannot answer its continuation.
    #[error("IMAP literals are not supported in sync log lines")]
    Literal,
    /// Something follows the last argument.
    #[error("garbage after the last argument")]
    TrailingGarbage,
    /// An argument is not valid UTF-8.
    #[error("an argument is not valid UTF-8")]
    NotUtf8,
    /// An argument contains a NUL byte (Cyrus would silently truncate the name).
    #[error("an argument contains a NUL byte")]
    Nul,
    /// The line is longer than [`MAX_LINE`](super::line::MAX_LINE) bytes.
    #[error("line longer than {0} bytes")]
    TooLong(usize),
    /// The last line of the file has no line feed: a writer died while writing.
    #[error("the last line has no line feed (a writer was interrupted)")]
    Unterminated,
    /// A name to encode contains CR or LF (Cyrus: "Illegal line break in folder name").
    #[error("a name contains a line break")]
    LineBreakInName,
}

/// An error of the sync log layer (files, locks, hand-off).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncLogError {
    /// A file operation failed.
    #[error("{op} {}: {source}", .path.display())]
    Io {
        /// What was being done (`open`, `rename`, `lock`, …).
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The writer kept finding the log renamed under it (Cyrus gives up after
    /// `SYNC_LOG_RETRIES` = 64 attempts as well).
    #[error("failed to lock {} after {attempts} attempts: it was renamed each time", .path.display())]
    LockRetries {
        /// The log file.
        path: PathBuf,
        /// How many attempts were made.
        attempts: u32,
    },
    /// An entry cannot be encoded as a log line.
    #[error("cannot encode sync log entry: {0}")]
    Encode(#[from] LineError),
}
impl SyncLogError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        SyncLogError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
