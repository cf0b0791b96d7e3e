//! The incremental parser.
//!
//! Two layers, as imap-codec's fragmentizer does:
//! 1. framing: bytes are cut into lines and literals. A line that ends in a
//!    literal header `{n}`/`{n+}` is followed by `n` bytes that belong to the
//!    same message; one that ends in a file literal header
//!    `%{partition guid size}` is followed by `size` raw bytes that are handed
//!    to the caller in pieces ([`Event::FileLiteralChunk`]) and never stored.
//!    Limits are checked from the headers, before anything is allocated.
//! 2. grammar: once a line ends without a literal header the message is
//!    complete and is parsed (recursive descent bounded by
//!    [`Limits::max_depth`]) into a [`Response`] or [`Command`].
//!
//! The grammar follows Cyrus 3.6 `dlist_parse` (`imap/dlist.c`) and
//! `getxstring` (`imap/imapparse.c`), including their leniencies: items of a
//! list need no space between them when the boundary is clear (`(a"b")`), and
//! atoms may contain `{`, `%` and `\` after their first byte.

use std::marker::PhantomData;

use super::encode;
use super::response::{Command, Response, Status, StatusKind, StatusTag};
use super::value::{FileLiteral, KvList, Value};
use super::{DlistError, Transport};

/// Size limits. Everything is checked before memory is reserved, so a peer
/// announcing a huge literal gets an error, not an allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest line (without its literals), CRLF included. `GET FULLMAILBOX`
    /// of a big mailbox is one long line: ~300 bytes per message.
    pub max_line: usize,
    /// Largest `{n}` literal (annotation values, sieve scripts in
    /// `GET FETCH_SIEVE`).
    pub max_literal: u64,
    /// Largest file literal `%{… size}`; its body is streamed, so this only
    /// bounds what a caller accepts. Cyrus reads the size with `getuint32`.
    pub max_file_literal: u64,
    /// Deepest nesting of lists and kvlists.
    pub max_depth: usize,
    /// Largest whole message (all its lines and `{n}` literals, file bodies
    /// excluded).
    pub max_message: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_line: 64 << 20,
            max_literal: 64 << 20,
            max_file_literal: u64::from(u32::MAX),
            max_depth: 32,
            max_message: 256 << 20,
        }
    }
}

/// What [`Parser::next_event`] yields.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a, T> {
    /// A complete response or command. Any file literals in it have already
    /// been announced and streamed through the events before it.
    Message(T),
    /// A file literal header was read; exactly `size` body bytes follow as
    /// [`Event::FileLiteralChunk`]s, then [`Event::FileLiteralEnd`].
    FileLiteralStart(FileLiteral),
    /// The next piece of the current file literal's body.
    FileLiteralChunk(&'a [u8]),
    /// All body bytes of the current file literal have been delivered.
    FileLiteralEnd,
}

/// A line shape the parser can produce: [`Response`] or [`Command`].
pub trait Message: Sized + private::Sealed {
    /// Parses one complete message (lines and `{n}` literals; file literal
    /// bodies removed).
    #[doc(hidden)]
    fn parse_message(msg: &[u8], ctx: &Ctx) -> Result<Self, DlistError>;
}

mod private {
    pub trait Sealed {}
    impl Sealed for super::Response {}
    impl Sealed for super::Command {}
}

/// Parsing context handed to [`Message::parse_message`].
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct Ctx {
    transport: Transport,
    max_depth: usize,
}

/// Parses server responses (either transport: tags are recognised).
pub type ResponseParser = Parser<Response>;
/// Parses client commands (for a test replica or trace replay).
pub type CommandParser = Parser<Command>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a line into the message.
    Line,
    /// Copying this many `{n}` literal bytes into the message.
    Literal(u64),
    /// Streaming this many file literal bytes to the caller.
    File(u64),
}

/// Incremental, sans-I/O parser: [`Parser::feed`] bytes as they arrive, split
/// anywhere, then drain [`Parser::next_event`] until it returns `Ok(None)`.
///
/// A syntax error in one message is reported once and parsing resumes with
/// the next message; a framing error (line or literal over a limit) leaves
/// the stream unusable and every later call returns [`DlistError::Failed`].
#[derive(Debug)]
pub struct Parser<T> {
    limits: Limits,
    transport: Transport,
    input: Vec<u8>,
    rpos: usize,
    msg: Vec<u8>,
    line_start: usize,
    state: State,
    failed: bool,
    _kind: PhantomData<fn() -> T>,
}

impl Parser<Response> {
    /// A parser for server responses on either transport.
    pub fn responses(limits: Limits) -> Self {
        Parser::new(limits, Transport::Csync)
    }
}

impl Parser<Command> {
    /// A parser for client commands; on [`Transport::Imap`] every command
    /// starts with a tag.
    pub fn commands(limits: Limits, transport: Transport) -> Self {
        Parser::new(limits, transport)
    }
}

impl<T: Message> Parser<T> {
    fn new(limits: Limits, transport: Transport) -> Self {
        Parser {
            limits,
            transport,
            input: Vec::new(),
            rpos: 0,
            msg: Vec::new(),
            line_start: 0,
            state: State::Line,
            failed: false,
            _kind: PhantomData,
        }
    }

    /// Hands the parser more bytes.
    pub fn feed(&mut self, data: &[u8]) {
        if self.rpos > 0 {
            self.input.drain(..self.rpos);
            self.rpos = 0;
        }
        self.input.extend_from_slice(data);
    }

    /// Bytes fed but not consumed yet (bounded by what was fed: file bodies
    /// leave as soon as they are drained).
    pub fn buffered(&self) -> usize {
        self.input.len() - self.rpos
    }

    /// True between messages with nothing pending: a clean place for the
    /// stream to end.
    pub fn is_idle(&self) -> bool {
        self.state == State::Line && self.msg.is_empty() && self.buffered() == 0
    }

    /// Body bytes of the current file literal still to come, if one is open.
    pub fn file_literal_remaining(&self) -> Option<u64> {
        match self.state {
            State::File(n) => Some(n),
            _ => None,
        }
    }

    fn fail(&mut self, e: DlistError) -> Result<Option<Event<'_, T>>, DlistError> {
        self.failed = true;
        Err(e)
    }

    /// The next event, `Ok(None)` when more input is needed.
    pub fn next_event(&mut self) -> Result<Option<Event<'_, T>>, DlistError> {
        if self.failed {
            return Err(DlistError::Failed);
        }
        loop {
            match self.state {
                State::Literal(0) => {
                    self.state = State::Line;
                    self.line_start = self.msg.len();
                }
                State::Literal(rem) => {
                    let avail = self.input.len() - self.rpos;
                    if avail == 0 {
                        return Ok(None);
                    }
                    let k = usize::try_from(rem).map_or(avail, |r| r.min(avail));
                    self.msg
                        .extend_from_slice(&self.input[self.rpos..self.rpos + k]);
                    self.rpos += k;
                    self.state = State::Literal(rem - k as u64);
                }
                State::File(0) => {
                    self.state = State::Line;
                    self.line_start = self.msg.len();
                    return Ok(Some(Event::FileLiteralEnd));
                }
                State::File(rem) => {
                    let avail = self.input.len() - self.rpos;
                    if avail == 0 {
                        return Ok(None);
                    }
                    let k = usize::try_from(rem).map_or(avail, |r| r.min(avail));
                    let start = self.rpos;
                    self.rpos += k;
                    self.state = State::File(rem - k as u64);
                    return Ok(Some(Event::FileLiteralChunk(&self.input[start..start + k])));
                }
                State::Line => {
                    let avail = &self.input[self.rpos..];
                    let nl = avail.iter().position(|&c| c == b'\n');
                    let take = nl.map_or(avail.len(), |i| i + 1);
                    let line_len = self.msg.len() - self.line_start + take;
                    if line_len > self.limits.max_line {
                        return self.fail(DlistError::LineTooLong {
                            limit: self.limits.max_line,
                        });
                    }
                    if self.msg.len() + take > self.limits.max_message {
                        return self.fail(DlistError::MessageTooLarge {
                            limit: self.limits.max_message,
                        });
                    }
                    self.msg.extend_from_slice(&avail[..take]);
                    self.rpos += take;
                    if nl.is_none() {
                        return Ok(None);
                    }
                    match line_end(&self.msg, self.line_start) {
                        LineEnd::Literal(n) => {
                            if n > self.limits.max_literal {
                                return self.fail(DlistError::LiteralTooLarge {
                                    size: n,
                                    limit: self.limits.max_literal,
                                });
                            }
                            if self.msg.len() as u64 + n > self.limits.max_message as u64 {
                                return self.fail(DlistError::MessageTooLarge {
                                    limit: self.limits.max_message,
                                });
                            }
                            self.state = State::Literal(n);
                        }
                        LineEnd::File(f) => {
                            if f.size > self.limits.max_file_literal {
                                return self.fail(DlistError::FileLiteralTooLarge {
                                    size: f.size,
                                    limit: self.limits.max_file_literal,
                                });
                            }
                            self.state = State::File(f.size);
                            return Ok(Some(Event::FileLiteralStart(f)));
                        }
                        LineEnd::Plain => {
                            let msg = std::mem::take(&mut self.msg);
                            self.line_start = 0;
                            let ctx = Ctx {
                                transport: self.transport,
                                max_depth: self.limits.max_depth,
                            };
                            return T::parse_message(&msg, &ctx).map(|m| Some(Event::Message(m)));
                        }
                    }
                }
            }
        }
    }
}

enum LineEnd {
    Plain,
    Literal(u64),
    File(FileLiteral),
}

/// Bytes after which a value may start.
fn is_boundary(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'(')
}

/// Looks at the line that starts at `start` in `msg` (terminator included)
/// and tells whether it announces a literal or file literal at its end.
fn line_end(msg: &[u8], start: usize) -> LineEnd {
    let mut line = &msg[start..];
    line = line.strip_suffix(b"\n").unwrap_or(line);
    line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.last() != Some(&b'}') {
        return LineEnd::Plain;
    }
    // Find the last `{` outside a quoted string (quotes cannot span lines).
    let mut in_quote = false;
    let mut escaped = false;
    let mut last_open = None;
    for (i, &c) in line.iter().enumerate() {
        if in_quote {
            if escaped {
                escaped = false;
            } else if c == b'\\' {
                escaped = true;
            } else if c == b'"' {
                in_quote = false;
            }
        } else if c == b'"' {
            in_quote = true;
        } else if c == b'{' {
            last_open = Some(i);
        }
    }
    let Some(open) = last_open else {
        return LineEnd::Plain;
    };
    if in_quote {
        return LineEnd::Plain;
    }
    // The byte before the header, looking back into earlier lines/literals.
    let before = |at: usize| (start + at).checked_sub(1).map(|i| msg[i]);
    if open > 0 && line[open - 1] == b'%' {
        if before(open - 1).is_some_and(|c| !is_boundary(c)) {
            return LineEnd::Plain;
        }
        let mut cur = Cur::new(&line[open - 1..], 0);
        return match cur.file_header_body() {
            Ok(f) if cur.p == cur.b.len() => LineEnd::File(f),
            _ => LineEnd::Plain,
        };
    }
    if before(open).is_some_and(|c| !is_boundary(c)) {
        return LineEnd::Plain;
    }
    let mut cur = Cur::new(&line[open..], 0);
    match cur.literal_header() {
        Ok(n) if cur.p == cur.b.len() => LineEnd::Literal(n),
        _ => LineEnd::Plain,
    }
}

/// Grammar cursor over one complete message.
struct Cur<'a> {
    b: &'a [u8],
    p: usize,
    depth: usize,
    max_depth: usize,
}

type R<T> = Result<T, DlistError>;

impl<'a> Cur<'a> {
    fn new(b: &'a [u8], max_depth: usize) -> Self {
        Cur {
            b,
            p: 0,
            depth: 0,
            max_depth,
        }
    }

    fn err<T>(&self, reason: &'static str) -> R<T> {
        Err(DlistError::Syntax {
            offset: self.p,
            reason,
        })
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.p).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.p += 1;
            true
        } else {
            false
        }
    }

    fn skip_sp(&mut self) -> bool {
        let s = self.p;
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.p += 1;
        }
        self.p > s
    }

    /// At CRLF (or LF) that ends the message.
    fn at_end(&self) -> bool {
        let rest = &self.b[self.p..];
        rest == b"\r\n" || rest == b"\n"
    }

    fn crlf(&mut self) -> R<()> {
        self.eat(b'\r');
        if self.eat(b'\n') {
            Ok(())
        } else {
            self.err("expected CRLF")
        }
    }

    fn digits(&mut self) -> R<u64> {
        let s = self.p;
        let mut n: u64 = 0;
        while let Some(c @ b'0'..=b'9') = self.peek() {
            n = match n
                .checked_mul(10)
                .and_then(|n| n.checked_add(u64::from(c - b'0')))
            {
                Some(n) => n,
                None => return self.err("number too large"),
            };
            self.p += 1;
        }
        if self.p == s {
            return self.err("expected digits");
        }
        Ok(n)
    }

    /// `{n}` or `{n+}` (not the CRLF).
    fn literal_header(&mut self) -> R<u64> {
        if !self.eat(b'{') {
            return self.err("expected '{'");
        }
        let n = self.digits()?;
        self.eat(b'+');
        if !self.eat(b'}') {
            return self.err("expected '}' after literal size");
        }
        Ok(n)
    }

    /// `%{partition guid size}` (not the CRLF).
    fn file_header_body(&mut self) -> R<FileLiteral> {
        if !(self.eat(b'%') && self.eat(b'{')) {
            return self.err("expected '%{'");
        }
        let partition = self.quoted_or_atom()?;
        if !self.eat(b' ') {
            return self.err("expected SP after partition");
        }
        let guid = self.quoted_or_atom()?;
        if !self.eat(b' ') {
            return self.err("expected SP after guid");
        }
        let size = self.digits()?;
        if !self.eat(b'}') {
            return self.err("expected '}' after file size");
        }
        for part in [&partition, &guid] {
            // The header is one line: a part Cyrus would need a literal for
            // cannot occur in it.
            if !(part.is_empty() || encode::is_atom(part) || encode::is_quotable(part)) {
                return self.err("file literal header part that needs a literal");
            }
        }
        Ok(FileLiteral {
            partition: self.utf8(partition)?,
            guid: self.utf8(guid)?,
            size,
        })
    }

    fn utf8(&self, b: Vec<u8>) -> R<String> {
        match String::from_utf8(b) {
            Ok(s) => Ok(s),
            Err(_) => self.err("not UTF-8"),
        }
    }

    /// Atom bytes: up to SP/ctl-space, `(`, `)`, `"` (getxstring's atom).
    fn atom_bytes(&mut self) -> R<&'a [u8]> {
        let s = self.p;
        while let Some(c) = self.peek() {
            if c.is_ascii_whitespace() || c == 0x0b || matches!(c, b'(' | b')' | b'"') {
                break;
            }
            self.p += 1;
        }
        if self.p == s {
            return self.err("expected an atom");
        }
        Ok(&self.b[s..self.p])
    }

    fn quoted(&mut self) -> R<Vec<u8>> {
        if !self.eat(b'"') {
            return self.err("expected '\"'");
        }
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None | Some(b'\r' | b'\n') => return self.err("unterminated quoted string"),
                Some(b'"') => {
                    self.p += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.p += 1;
                    match self.peek() {
                        None | Some(b'\r' | b'\n') => {
                            return self.err("unterminated quoted string");
                        }
                        Some(c) => out.push(c),
                    }
                    self.p += 1;
                }
                Some(c) => {
                    out.push(c);
                    self.p += 1;
                }
            }
        }
    }

    fn literal(&mut self) -> R<Vec<u8>> {
        let n = self.literal_header()?;
        self.crlf()?;
        let rest = self.b.len() - self.p;
        match usize::try_from(n) {
            Ok(n) if n <= rest => {
                let v = self.b[self.p..self.p + n].to_vec();
                self.p += n;
                Ok(v)
            }
            _ => self.err("literal longer than the message"),
        }
    }

    fn quoted_or_atom(&mut self) -> R<Vec<u8>> {
        match self.peek() {
            Some(b'"') => self.quoted(),
            _ => Ok(self.atom_bytes()?.to_vec()),
        }
    }

    /// getastring: atom, quoted string or literal.
    fn astring(&mut self) -> R<Vec<u8>> {
        match self.peek() {
            Some(b'{') => self.literal(),
            _ => self.quoted_or_atom(),
        }
    }

    fn enter(&mut self) -> R<()> {
        if self.depth >= self.max_depth {
            return Err(DlistError::TooDeep {
                limit: self.max_depth,
            });
        }
        self.depth += 1;
        Ok(())
    }

    fn value(&mut self) -> R<Value> {
        match self.peek() {
            Some(b'(') => {
                self.p += 1;
                self.enter()?;
                let mut items = Vec::new();
                loop {
                    self.skip_sp();
                    if self.eat(b')') {
                        break;
                    }
                    items.push(self.value()?);
                }
                self.depth -= 1;
                Ok(Value::List(items))
            }
            Some(b'%') => match self.b.get(self.p + 1) {
                Some(b'(') => {
                    self.p += 2;
                    self.enter()?;
                    let mut kv = KvList::new();
                    loop {
                        self.skip_sp();
                        if self.eat(b')') {
                            break;
                        }
                        let key = self.astring()?;
                        let key = self.utf8(key)?;
                        self.skip_sp();
                        let v = self.value()?;
                        kv.0.push((key, v));
                    }
                    self.depth -= 1;
                    Ok(Value::KvList(kv))
                }
                Some(b'{') => {
                    let f = self.file_header_body()?;
                    // The body was streamed out by the framer: nothing of it
                    // is in the message.
                    self.crlf()?;
                    Ok(Value::File(f))
                }
                _ => self.err("'%' not followed by '(' or '{'"),
            },
            Some(b'{') => Ok(Value::Atom(self.literal()?)),
            Some(b'"') => Ok(Value::Atom(self.quoted()?)),
            Some(b'\\') => {
                let b = self.atom_bytes()?.to_vec();
                let f = self.utf8(b)?;
                // Keep to what the encoder can write back: IMAP flags are
                // printable ASCII atoms.
                if !encode::is_flag(&f) {
                    return self.err("flag with bytes outside printable ASCII");
                }
                Ok(Value::Flag(f))
            }
            Some(b')') => self.err("unexpected ')'"),
            None => self.err("unexpected end of message"),
            Some(_) => {
                let b = self.atom_bytes()?;
                if b == b"NIL" {
                    Ok(Value::Nil)
                } else {
                    Ok(Value::Atom(b.to_vec()))
                }
            }
        }
    }

    /// Values separated by spaces up to the end of the message.
    fn values_to_end(&mut self) -> R<Vec<Value>> {
        let mut values = Vec::new();
        loop {
            let had_sp = self.skip_sp();
            if self.at_end() {
                return Ok(values);
            }
            if !had_sp {
                return self.err("expected SP");
            }
            values.push(self.value()?);
        }
    }

    /// A word (tag, verb, status) up to SP or the end of the line.
    fn word(&mut self) -> R<&'a [u8]> {
        let s = self.p;
        while let Some(c) = self.peek() {
            if matches!(c, b' ' | b'\r' | b'\n') {
                break;
            }
            self.p += 1;
        }
        if self.p == s {
            return self.err("expected a word");
        }
        Ok(&self.b[s..self.p])
    }

    /// The rest of a one-line message as text (after one optional SP).
    fn text_to_end(&mut self) -> R<String> {
        self.eat(b' ');
        let rest = &self.b[self.p..];
        let Some(nl) = rest.iter().position(|&c| c == b'\n') else {
            return self.err("expected CRLF");
        };
        if nl + 1 != rest.len() {
            return self.err("data after the end of a text line");
        }
        let text = rest[..nl].strip_suffix(b"\r").unwrap_or(&rest[..nl]);
        self.p = self.b.len();
        Ok(String::from_utf8_lossy(text).into_owned())
    }

    fn status(&mut self, tag: StatusTag, kind: StatusKind) -> R<Status> {
        let text = self.text_to_end()?;
        let (error, text) = Status::split_error(&text);
        Ok(Status {
            tag,
            kind,
            error,
            text,
        })
    }
}

/// A sync item name as Cyrus's code spells them.
fn is_item_name(w: &str) -> bool {
    !w.is_empty()
        && w.bytes()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_' || c == b'-')
}

/// A tag or command word: an atom as the encoder writes it.
fn word_string(cur: &Cur<'_>, w: &[u8]) -> R<String> {
    if !encode::is_atom(w) {
        return cur.err("tag or command is not an atom");
    }
    cur.utf8(w.to_vec())
}

fn parse_response(msg: &[u8], ctx: &Ctx) -> R<Response> {
    let mut cur = Cur::new(msg, ctx.max_depth);
    match cur.peek() {
        Some(b'+') if matches!(msg.get(1), Some(b' ' | b'\r' | b'\n')) => {
            cur.p += 1;
            Ok(Response::Continuation(cur.text_to_end()?))
        }
        Some(b'*') if msg.get(1) == Some(&b' ') => {
            cur.p = 2;
            let name = cur.astring()?;
            if let Some(kind) = StatusKind::from_word(&name) {
                return Ok(Response::Status(cur.status(StatusTag::Untagged, kind)?));
            }
            let name = cur.utf8(name)?;
            let data_start = cur.p;
            match cur.values_to_end() {
                Ok(values) => Ok(Response::Data { name, values }),
                // Sync data names are upper-case (`MAILBOX`, `SIEVE-MAILBOX`);
                // another word starts a text line (`* Fatal error: …`,
                // sync_server.c), kept as text when it is one plain line.
                Err(e)
                    if !is_item_name(&name)
                        && encode::is_atom(name.as_bytes())
                        && matches!(msg.get(data_start), Some(b' ' | b'\r' | b'\n'))
                        && std::str::from_utf8(&msg[data_start..]).is_ok() =>
                {
                    cur.p = data_start;
                    match cur.text_to_end() {
                        Ok(text) if !name.is_empty() => Ok(Response::Text { name, text }),
                        _ => Err(e),
                    }
                }
                Err(e) => Err(e),
            }
        }
        _ => {
            let w = cur.word()?;
            if let Some(kind) = StatusKind::from_word(w) {
                return Ok(Response::Status(cur.status(StatusTag::None, kind)?));
            }
            let tag = word_string(&cur, w)?;
            if !cur.eat(b' ') {
                return cur.err("expected SP after tag");
            }
            let w = cur.word()?;
            match StatusKind::from_word(w) {
                Some(kind) => Ok(Response::Status(cur.status(StatusTag::Tagged(tag), kind)?)),
                None => cur.err("expected OK, NO, BAD or BYE"),
            }
        }
    }
}

fn parse_command(msg: &[u8], ctx: &Ctx) -> R<Command> {
    let mut cur = Cur::new(msg, ctx.max_depth);
    let tag = match ctx.transport {
        Transport::Imap => {
            let w = cur.atom_bytes()?;
            let t = word_string(&cur, w)?;
            if !cur.eat(b' ') {
                return cur.err("expected SP after tag");
            }
            Some(t)
        }
        Transport::Csync => None,
    };
    let w = cur.atom_bytes()?;
    let verb = word_string(&cur, w)?;
    let args = cur.values_to_end()?;
    Ok(Command { tag, verb, args })
}

impl Message for Response {
    fn parse_message(msg: &[u8], ctx: &Ctx) -> R<Self> {
        parse_response(msg, ctx)
    }
}

impl Message for Command {
    fn parse_message(msg: &[u8], ctx: &Ctx) -> R<Self> {
        parse_command(msg, ctx)
    }
}

/// Parses one complete value (no trailing CRLF needed), e.g. a kvlist kept
/// in a cache. File literals are refused here; use a [`Parser`] for those.
pub fn parse_value(input: &[u8], limits: &Limits) -> Result<Value, DlistError> {
    if input.len() > limits.max_message {
        return Err(DlistError::MessageTooLarge {
            limit: limits.max_message,
        });
    }
    let mut cur = Cur::new(input, limits.max_depth);
    let v = cur.value()?;
    if cur.p != input.len() {
        return cur.err("data after the value");
    }
    if !v.file_literals().is_empty() {
        return Err(DlistError::Syntax {
            offset: 0,
            reason: "file literal outside a stream",
        });
    }
    Ok(v)
}
