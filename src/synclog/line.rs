//! One sync log line: the typed [`LogEntry`], its parser and its encoder.
//!
//! Format, as Cyrus 3.6.1 writes it (`imap/sync_log.c`, `sync_log.h`) and reads
//! it (`sync_log_reader_getitem`, `getword`/`getastring` in `imap/imapparse.c`):
//!
//! ```text
//! KIND SP arg [SP arg] LF
//! ```
//!
//! * `KIND` is a word ending at white space, a parenthesis or `"`; the reader
//!   upper-cases it.
//! * Each argument is an atom (ends at white space, parenthesis or `"`) or a
//!   quoted string in which `\` escapes the next byte.
//! * The writer (`sync_quote_name`) quotes a name when it is empty or holds
//!   space, tab, `(`, `)`, `"`, `\`, `{` or `}`, and puts `\` before `"`, `\`,
//!   `{` and `}`. Eight-bit bytes are written as they are, unquoted. A CR or LF
//!   in a name is fatal in Cyrus; here it is [`LineError::LineBreakInName`].
//!
//! Deviations, all on input no Cyrus writer produces: a line with a kind and no
//! argument, an unknown kind, an argument count the kind does not take, a
//! non-UTF-8 or NUL-bearing argument, and literals (`{n}`) are reported as
//! [`LineError`]s instead of being skipped, guessed at or crashing; the encoder
//! also quotes names holding vertical tab or form feed, which Cyrus's reader
//! would otherwise split on.

use std::borrow::Cow;
use std::fmt;

use super::error::LineError;

/// Longest line the parser accepts, in bytes (without the line feed). Cyrus's
/// writer refuses words above `MAX_MAILBOX_BUFFER` (1024) bytes; two escaped
/// names plus the kind stay well below this.
pub const MAX_LINE: usize = 16 * 1024;

/// The kind word of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LogKind {
    /// `USER userid`.
    User,
    /// `UNUSER userid`.
    Unuser,
    /// `META userid` (Cyrus's `sync_log_sieve` writes this too).
    Meta,
    /// `SIEVE userid` (older writers; read like META).
    Sieve,
    /// `APPEND mboxname`.
    Append,
    /// `MAILBOX mboxname`.
    Mailbox,
    /// `DOUBLEMAILBOX mboxname mboxname` (copy or move between two mailboxes).
    DoubleMailbox,
    /// `UNMAILBOX mboxname`.
    Unmailbox,
    /// `RENAME oldname newname` (always followed by two MAILBOX lines).
    Rename,
    /// `QUOTA quotaroot`.
    Quota,
    /// `ANNOTATION mboxname` (`""` = server annotation).
    Annotation,
    /// `SEEN userid mboxname`.
    Seen,
    /// `SUB userid mboxname`.
    Sub,
    /// `UNSUB userid mboxname` (read by Cyrus, not written by 3.6.1).
    Unsub,
}

impl LogKind {
    /// Every kind, in the order `sync_do_reader` tests them.
    pub const ALL: [LogKind; 14] = [
        LogKind::User,
        LogKind::Unuser,
        LogKind::Meta,
        LogKind::Sieve,
        LogKind::Append,
        LogKind::Mailbox,
        LogKind::DoubleMailbox,
        LogKind::Rename,
        LogKind::Unmailbox,
        LogKind::Quota,
        LogKind::Annotation,
        LogKind::Seen,
        LogKind::Sub,
        LogKind::Unsub,
    ];

    /// The word as Cyrus writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            LogKind::User => "USER",
            LogKind::Unuser => "UNUSER",
            LogKind::Meta => "META",
            LogKind::Sieve => "SIEVE",
            LogKind::Append => "APPEND",
            LogKind::Mailbox => "MAILBOX",
            LogKind::DoubleMailbox => "DOUBLEMAILBOX",
            LogKind::Unmailbox => "UNMAILBOX",
            LogKind::Rename => "RENAME",
            LogKind::Quota => "QUOTA",
            LogKind::Annotation => "ANNOTATION",
            LogKind::Seen => "SEEN",
            LogKind::Sub => "SUB",
            LogKind::Unsub => "UNSUB",
        }
    }

    /// The kind for an (already upper-cased) word.
    pub fn from_word(word: &str) -> Option<LogKind> {
        LogKind::ALL.into_iter().find(|k| k.as_str() == word)
    }

    /// How many arguments the kind takes.
    pub fn arity(self) -> usize {
        match self {
            LogKind::DoubleMailbox
            | LogKind::Rename
            | LogKind::Seen
            | LogKind::Sub
            | LogKind::Unsub => 2,
            _ => 1,
        }
    }
}

impl fmt::Display for LogKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One sync log entry. Mailbox names are Cyrus *internal* names
/// (`user.alice.Sent`, `example.com!user.alice`, `DELETED.user.alice.Old.6B11BB45`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LogEntry {
    /// A whole user changed.
    User {
        /// The userid.
        userid: String,
    },
    /// A user was deleted.
    Unuser {
        /// The userid.
        userid: String,
    },
    /// User metadata (seen, subscriptions, sieve) changed.
    Meta {
        /// The userid.
        userid: String,
    },
    /// A sieve script changed (older writers; handled as META).
    Sieve {
        /// The userid.
        userid: String,
    },
    /// A message was appended.
    Append {
        /// The mailbox.
        mboxname: String,
    },
    /// A mailbox changed.
    Mailbox {
        /// The mailbox.
        mboxname: String,
    },
    /// Two mailboxes changed together (COPY/MOVE).
    DoubleMailbox {
        /// The first mailbox.
        first: String,
        /// The second mailbox.
        second: String,
    },
    /// A mailbox was deleted.
    Unmailbox {
        /// The mailbox.
        mboxname: String,
    },
    /// A mailbox was renamed.
    Rename {
        /// The old name.
        from: String,
        /// The new name.
        to: String,
    },
    /// A quota root changed.
    Quota {
        /// The quota root (a mailbox name).
        root: String,
    },
    /// An annotation changed.
    Annotation {
        /// The mailbox (empty for a server annotation).
        mboxname: String,
    },
    /// A user's seen state on a mailbox changed.
    Seen {
        /// The userid.
        userid: String,
        /// The mailbox (or its uniqueid when another user's mailbox).
        mboxname: String,
    },
    /// A subscription changed.
    Sub {
        /// The userid.
        userid: String,
        /// The mailbox.
        mboxname: String,
    },
    /// An unsubscription (accepted on input; 3.6.1 writes SUB for both).
    Unsub {
        /// The userid.
        userid: String,
        /// The mailbox.
        mboxname: String,
    },
}

impl LogEntry {
    /// The kind word.
    pub fn kind(&self) -> LogKind {
        match self {
            LogEntry::User { .. } => LogKind::User,
            LogEntry::Unuser { .. } => LogKind::Unuser,
            LogEntry::Meta { .. } => LogKind::Meta,
            LogEntry::Sieve { .. } => LogKind::Sieve,
            LogEntry::Append { .. } => LogKind::Append,
            LogEntry::Mailbox { .. } => LogKind::Mailbox,
            LogEntry::DoubleMailbox { .. } => LogKind::DoubleMailbox,
            LogEntry::Unmailbox { .. } => LogKind::Unmailbox,
            LogEntry::Rename { .. } => LogKind::Rename,
            LogEntry::Quota { .. } => LogKind::Quota,
            LogEntry::Annotation { .. } => LogKind::Annotation,
            LogEntry::Seen { .. } => LogKind::Seen,
            LogEntry::Sub { .. } => LogKind::Sub,
            LogEntry::Unsub { .. } => LogKind::Unsub,
        }
    }

    /// The arguments, in line order.
    pub fn args(&self) -> Vec<&str> {
        match self {
            LogEntry::User { userid }
            | LogEntry::Unuser { userid }
            | LogEntry::Meta { userid }
            | LogEntry::Sieve { userid } => vec![userid],
            LogEntry::Append { mboxname }
            | LogEntry::Mailbox { mboxname }
            | LogEntry::Unmailbox { mboxname }
            | LogEntry::Annotation { mboxname } => vec![mboxname],
            LogEntry::Quota { root } => vec![root],
            LogEntry::DoubleMailbox { first, second } => vec![first, second],
            LogEntry::Rename { from, to } => vec![from, to],
            LogEntry::Seen { userid, mboxname }
            | LogEntry::Sub { userid, mboxname }
            | LogEntry::Unsub { userid, mboxname } => vec![userid, mboxname],
        }
    }

    /// Builds an entry from a kind and its arguments.
    pub fn from_parts(kind: LogKind, mut args: Vec<String>) -> Result<LogEntry, LineError> {
        if args.len() != kind.arity() {
            return Err(LineError::Arity {
                kind: kind.as_str().to_owned(),
                expected: kind.arity(),
                found: args.len(),
            });
        }
        let second = if args.len() == 2 { args.pop() } else { None };
        let Some(first) = args.pop() else {
            return Err(LineError::MissingArgument {
                kind: kind.as_str().to_owned(),
            });
        };
        let pair = |second: Option<String>| {
            second.ok_or_else(|| LineError::MissingArgument {
                kind: kind.as_str().to_owned(),
            })
        };
        Ok(match kind {
            LogKind::User => LogEntry::User { userid: first },
            LogKind::Unuser => LogEntry::Unuser { userid: first },
            LogKind::Meta => LogEntry::Meta { userid: first },
            LogKind::Sieve => LogEntry::Sieve { userid: first },
            LogKind::Append => LogEntry::Append { mboxname: first },
            LogKind::Mailbox => LogEntry::Mailbox { mboxname: first },
            LogKind::Unmailbox => LogEntry::Unmailbox { mboxname: first },
            LogKind::Quota => LogEntry::Quota { root: first },
            LogKind::Annotation => LogEntry::Annotation { mboxname: first },
            LogKind::DoubleMailbox => LogEntry::DoubleMailbox {
                first,
                second: pair(second)?,
            },
            LogKind::Rename => LogEntry::Rename {
                from: first,
                to: pair(second)?,
            },
            LogKind::Seen => LogEntry::Seen {
                userid: first,
                mboxname: pair(second)?,
            },
            LogKind::Sub => LogEntry::Sub {
                userid: first,
                mboxname: pair(second)?,
            },
            LogKind::Unsub => LogEntry::Unsub {
                userid: first,
                mboxname: pair(second)?,
            },
        })
    }

    /// The line Cyrus would write for this entry, with its line feed.
    pub fn encode(&self) -> Result<String, LineError> {
        let mut out = String::from(self.kind().as_str());
        for arg in self.args() {
            out.push(' ');
            out.push_str(&quote_name(arg)?);
        }
        out.push('\n');
        Ok(out)
    }
}

impl fmt::Display for LogEntry {
    /// The line without its line feed; names that cannot be encoded are shown
    /// with Rust escapes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.encode() {
            Ok(line) => f.write_str(line.trim_end_matches('\n')),
            Err(_) => write!(f, "{} {:?}", self.kind(), self.args()),
        }
    }
}

/// C `isspace` in the C locale, which `getword`/`getxstring` stop at.
fn c_isspace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

/// Where an atom (or the kind word) ends (`imap/imapparse.c` `getword`).
fn ends_word(b: u8) -> bool {
    c_isspace(b) || b == b'(' || b == b')' || b == b'"'
}

/// Quotes `name` the way Cyrus's `sync_quote_name` does.
pub fn quote_name(name: &str) -> Result<Cow<'_, str>, LineError> {
    let mut need_quote = name.is_empty();
    let mut need_escape = false;
    for b in name.bytes() {
        match b {
            b'\r' | b'\n' => return Err(LineError::LineBreakInName),
            b'\0' => return Err(LineError::Nul),
            b'\\' | b'"' | b'{' | b'}' => need_escape = true,
            // Vertical tab and form feed are ours: Cyrus's reader splits on them.
            b' ' | b'\t' | b'(' | b')' | b'\x0b' | b'\x0c' => need_quote = true,
            _ => {}
        }
    }
    if !need_quote && !need_escape {
        return Ok(Cow::Borrowed(name));
    }
    let mut out = String::with_capacity(name.len() + 4);
    out.push('"');
    for c in name.chars() {
        if matches!(c, '\\' | '"' | '{' | '}') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    Ok(Cow::Owned(out))
}

/// Parses one line (without its line feed; one trailing CR is allowed).
///
/// Returns `Ok(None)` for a blank line, which Cyrus's reader skips too.
pub fn parse_line(line: &[u8]) -> Result<Option<LogEntry>, LineError> {
    if line.len() > MAX_LINE {
        return Err(LineError::TooLong(MAX_LINE));
    }
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() {
        return Ok(None);
    }
    let mut pos = line
        .iter()
        .position(|&b| ends_word(b))
        .unwrap_or(line.len());
    let kind_word = String::from_utf8_lossy(&line[..pos]).to_ascii_uppercase();
    let Some(&sep) = line.get(pos) else {
        return Err(LineError::MissingArgument { kind: kind_word });
    };
    if sep != b' ' {
        return Err(LineError::BadSeparator);
    }
    let kind = LogKind::from_word(&kind_word).ok_or(LineError::UnknownKind(kind_word))?;
    pos += 1;
    let mut args = Vec::with_capacity(2);
    loop {
        let (arg, next) = parse_astring(line, pos, kind)?;
        args.push(arg);
        pos = next;
        match line.get(pos) {
            None => break,
            Some(b' ') if args.len() < 2 => pos += 1,
            Some(b' ') => {
                return Err(LineError::Arity {
                    kind: kind.as_str().to_owned(),
                    expected: kind.arity(),
                    found: 3,
                });
            }
            Some(_) => return Err(LineError::TrailingGarbage),
        }
    }
    LogEntry::from_parts(kind, args).map(Some)
}

/// Reads one astring starting at `pos`; returns it and the index after it.
fn parse_astring(line: &[u8], pos: usize, kind: LogKind) -> Result<(String, usize), LineError> {
    let Some(&first) = line.get(pos) else {
        return Err(LineError::MissingArgument {
            kind: kind.as_str().to_owned(),
        });
    };
    let (bytes, next) = match first {
        b' ' | b'(' | b')' => return Err(LineError::BadArgumentStart(char::from(first))),
        b'{' => return Err(LineError::Literal),
        b'"' => {
            let mut out = Vec::new();
            let mut i = pos + 1;
            loop {
                match line.get(i) {
                    None | Some(b'\r') => return Err(LineError::UnterminatedQuote),
                    Some(b'"') => break (out, i + 1),
                    Some(b'\\') => {
                        let escaped = line.get(i + 1).ok_or(LineError::UnterminatedQuote)?;
                        out.push(*escaped);
                        i += 2;
                    }
                    Some(&b) => {
                        out.push(b);
                        i += 1;
                    }
                }
            }
        }
        _ => {
            let end = line[pos..]
                .iter()
                .position(|&b| ends_word(b))
                .map_or(line.len(), |n| pos + n);
            (line[pos..end].to_vec(), end)
        }
    };
    if bytes.contains(&0) {
        return Err(LineError::Nul);
    }
    let text = String::from_utf8(bytes).map_err(|_| LineError::NotUtf8)?;
    Ok((text, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(line: &str) -> LogEntry {
        parse_line(line.as_bytes())
            .unwrap_or_else(|e| panic!("{line:?}: {e}"))
            .unwrap_or_else(|| panic!("{line:?} is blank"))
    }

    fn s(x: &str) -> String {
        x.to_owned()
    }

    /// Every line of shared/traces/40_synclog_examples.txt (default channel),
    /// as written by Cyrus 3.6.1 imapd/lmtpd.
    const TRACE_40: &str = "\
MAILBOX \"user.alice.My Folder\"
SUB alice \"user.alice.My Folder\"
MAILBOX user.alice
RENAME \"user.alice.My Folder\" user.alice.Renamed
MAILBOX \"user.alice.My Folder\"
MAILBOX user.alice.Renamed
MAILBOX \"user.alice.My Folder\"
RENAME user.alice.Renamed DELETED.user.alice.Renamed.6B11BB45
MAILBOX user.alice.Renamed
MAILBOX DELETED.user.alice.Renamed.6B11BB45
APPEND user.alice
QUOTA user.alice
MAILBOX user.bob
SEEN bob epf7isfmd3s8jybnj1asxa5o
";

    #[test]
    fn trace_40_lines() {
        let expected = vec![
            LogEntry::Mailbox {
                mboxname: s("user.alice.My Folder"),
            },
            LogEntry::Sub {
                userid: s("alice"),
                mboxname: s("user.alice.My Folder"),
            },
            LogEntry::Mailbox {
                mboxname: s("user.alice"),
            },
            LogEntry::Rename {
                from: s("user.alice.My Folder"),
                to: s("user.alice.Renamed"),
            },
            LogEntry::Mailbox {
                mboxname: s("user.alice.My Folder"),
            },
            LogEntry::Mailbox {
                mboxname: s("user.alice.Renamed"),
            },
            LogEntry::Mailbox {
                mboxname: s("user.alice.My Folder"),
            },
            LogEntry::Rename {
                from: s("user.alice.Renamed"),
                to: s("DELETED.user.alice.Renamed.6B11BB45"),
            },
            LogEntry::Mailbox {
                mboxname: s("user.alice.Renamed"),
            },
            LogEntry::Mailbox {
                mboxname: s("DELETED.user.alice.Renamed.6B11BB45"),
            },
            LogEntry::Append {
                mboxname: s("user.alice"),
            },
            LogEntry::Quota {
                root: s("user.alice"),
            },
            LogEntry::Mailbox {
                mboxname: s("user.bob"),
            },
            LogEntry::Seen {
                userid: s("bob"),
                mboxname: s("epf7isfmd3s8jybnj1asxa5o"),
            },
        ];
        let lines: Vec<&str> = TRACE_40.lines().collect();
        assert_eq!(lines.len(), expected.len());
        for (line, want) in lines.iter().zip(&expected) {
            let got = p(line);
            assert_eq!(&got, want, "{line}");
            // Cyrus's writer would have produced exactly this line.
            assert_eq!(got.encode().unwrap(), format!("{line}\n"));
        }
    }

    #[test]
    fn every_kind_parses_and_encodes() {
        let cases = [
            ("USER alice", LogEntry::User { userid: s("alice") }),
            ("UNUSER alice", LogEntry::Unuser { userid: s("alice") }),
            ("META alice", LogEntry::Meta { userid: s("alice") }),
            ("SIEVE alice", LogEntry::Sieve { userid: s("alice") }),
            (
                "APPEND user.alice",
                LogEntry::Append {
                    mboxname: s("user.alice"),
                },
            ),
            (
                "MAILBOX user.alice.Sent",
                LogEntry::Mailbox {
                    mboxname: s("user.alice.Sent"),
                },
            ),
            (
                "DOUBLEMAILBOX user.alice user.alice.Archive",
                LogEntry::DoubleMailbox {
                    first: s("user.alice"),
                    second: s("user.alice.Archive"),
                },
            ),
            (
                "UNMAILBOX user.alice.Old",
                LogEntry::Unmailbox {
                    mboxname: s("user.alice.Old"),
                },
            ),
            (
                "RENAME user.alice.A user.alice.B",
                LogEntry::Rename {
                    from: s("user.alice.A"),
                    to: s("user.alice.B"),
                },
            ),
            (
                "QUOTA user.alice",
                LogEntry::Quota {
                    root: s("user.alice"),
                },
            ),
            (
                "ANNOTATION user.alice",
                LogEntry::Annotation {
                    mboxname: s("user.alice"),
                },
            ),
            ("ANNOTATION \"\"", LogEntry::Annotation { mboxname: s("") }),
            (
                "SEEN alice user.alice",
                LogEntry::Seen {
                    userid: s("alice"),
                    mboxname: s("user.alice"),
                },
            ),
            (
                "SUB alice user.alice.Sent",
                LogEntry::Sub {
                    userid: s("alice"),
                    mboxname: s("user.alice.Sent"),
                },
            ),
            (
                "UNSUB alice user.alice.Sent",
                LogEntry::Unsub {
                    userid: s("alice"),
                    mboxname: s("user.alice.Sent"),
                },
            ),
            (
                "MAILBOX example.com!user.alice",
                LogEntry::Mailbox {
                    mboxname: s("example.com!user.alice"),
                },
            ),
        ];
        let mut kinds = std::collections::HashSet::new();
        for (line, want) in cases {
            assert_eq!(p(line), want, "{line}");
            assert_eq!(want.encode().unwrap(), format!("{line}\n"));
            kinds.insert(want.kind());
        }
        assert_eq!(kinds.len(), LogKind::ALL.len(), "a kind is not covered");
    }

    #[test]
    fn quoting_matches_sync_quote_name() {
        let cases = [
            ("plain", "plain"),
            ("", "\"\""),
            ("My Folder", "\"My Folder\""),
            ("tab\there", "\"tab\there\""),
            ("(paren)", "\"(paren)\""),
            ("say \"hi\"", "\"say \\\"hi\\\"\""),
            ("back\\slash", "\"back\\\\slash\""),
            ("{brace}", "\"\\{brace\\}\""),
            ("a}b", "\"a\\}b\""),
            // 8-bit names go out raw and unquoted, as in Cyrus.
            ("user.alice.été", "user.alice.été"),
            ("user.alice.日本 語", "\"user.alice.日本 語\""),
            ("user.alice.&AOk-t&AOk-", "user.alice.&AOk-t&AOk-"),
            ("a\x0bb", "\"a\x0bb\""),
        ];
        for (name, quoted) in cases {
            assert_eq!(quote_name(name).unwrap(), quoted, "{name:?}");
            let entry = LogEntry::Mailbox { mboxname: s(name) };
            let line = entry.encode().unwrap();
            assert_eq!(line, format!("MAILBOX {quoted}\n"));
            assert_eq!(p(line.trim_end_matches('\n')), entry, "{line:?}");
        }
        assert_eq!(quote_name("a\nb"), Err(LineError::LineBreakInName));
        assert_eq!(quote_name("a\rb"), Err(LineError::LineBreakInName));
    }

    #[test]
    fn reader_leniencies_of_cyrus() {
        // Lower-case kind (the reader upper-cases it), CRLF, escapes of any byte.
        assert_eq!(p("user alice\r"), LogEntry::User { userid: s("alice") });
        assert_eq!(
            p("MAILBOX \"a\\b\""),
            LogEntry::Mailbox { mboxname: s("ab") }
        );
        // Atoms may hold braces and backslashes after their first byte.
        assert_eq!(
            p("MAILBOX a{b}\\c"),
            LogEntry::Mailbox {
                mboxname: s("a{b}\\c")
            }
        );
        assert_eq!(parse_line(b"").unwrap(), None);
        assert_eq!(parse_line(b"\r").unwrap(), None);
    }

    #[test]
    fn malformed_lines() {
        let cases: &[(&[u8], LineError)] = &[
            (b"USER", LineError::MissingArgument { kind: s("USER") }),
            (b"USER\talice", LineError::BadSeparator),
            (b"FROB alice", LineError::UnknownKind(s("FROB"))),
            (b" alice", LineError::UnknownKind(s(""))),
            (
                b"SEEN alice",
                LineError::Arity {
                    kind: s("SEEN"),
                    expected: 2,
                    found: 1,
                },
            ),
            (
                b"USER alice bob",
                LineError::Arity {
                    kind: s("USER"),
                    expected: 1,
                    found: 2,
                },
            ),
            (
                b"SEEN a b c",
                LineError::Arity {
                    kind: s("SEEN"),
                    expected: 2,
                    found: 3,
                },
            ),
            (b"USER  alice", LineError::BadArgumentStart(' ')),
            (b"USER (x", LineError::BadArgumentStart('(')),
            (b"USER \"alice", LineError::UnterminatedQuote),
            (b"USER \"alice\\", LineError::UnterminatedQuote),
            (b"USER \"al\rice\"", LineError::UnterminatedQuote),
            (b"USER {5}", LineError::Literal),
            (b"USER \"alice\"x", LineError::TrailingGarbage),
            (b"USER alice\t", LineError::TrailingGarbage),
            (b"USER ali(ce", LineError::TrailingGarbage),
            (b"USER \xff\xfe", LineError::NotUtf8),
            (b"USER a\0b", LineError::Nul),
            (
                b"USER alice ",
                LineError::MissingArgument { kind: s("USER") },
            ),
        ];
        for (line, want) in cases {
            assert_eq!(
                parse_line(line).as_ref(),
                Err(want),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
        let long = format!("USER {}", "a".repeat(MAX_LINE));
        assert_eq!(
            parse_line(long.as_bytes()),
            Err(LineError::TooLong(MAX_LINE))
        );
    }

    #[test]
    fn rename_macro_expands_to_three_lines() {
        // sync_log_rename writes RENAME + MAILBOX + MAILBOX in one write.
        let text = "RENAME \"a b\" c\nMAILBOX \"a b\"\nMAILBOX c\n";
        let got: Vec<LogEntry> = text.lines().map(p).collect();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].kind(), LogKind::Rename);
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    /// Any name Cyrus could write: no CR, LF or NUL.
    fn name() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-zA-Z0-9._!^&-]{0,20}",
            "[ \t(){}\"\\\\a-z.\u{b}\u{c}]{0,12}",
            any::<String>().prop_map(|s| s.replace(['\r', '\n', '\0'], "_")),
        ]
    }

    fn entry() -> impl Strategy<Value = LogEntry> {
        (
            proptest::sample::select(LogKind::ALL.to_vec()),
            name(),
            name(),
        )
            .prop_map(|(kind, a, b)| {
                let args = if kind.arity() == 2 {
                    vec![a, b]
                } else {
                    vec![a]
                };
                LogEntry::from_parts(kind, args).expect("arity matches")
            })
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_line(&bytes);
        }

        #[test]
        fn arbitrary_text_lines_never_panic(line in "[A-Za-z \"\\\\{}()\t\r\u{b}é]{0,40}") {
            let _ = parse_line(line.as_bytes());
        }

        #[test]
        fn encode_parse_round_trip(e in entry()) {
            let line = e.encode().expect("encodable");
            prop_assert!(line.ends_with('\n'));
            prop_assert_eq!(line.matches('\n').count(), 1);
            let back = parse_line(line.trim_end_matches('\n').as_bytes());
            prop_assert_eq!(back, Ok(Some(e)));
        }
    }
}
