//! The encoder: writes values, commands and responses the way Cyrus 3.6
//! prints them, so that Cyrus accepts them and a re-encoded trace is
//! byte-identical.
//!
//! Rules (from `imap/dlist.c` `dlist_print`, `lib/prot.c`
//! `prot_printastring`/`prot_printstring`/`prot_printliteral`,
//! `lib/imparse.c` `imparse_isnatom`):
//! - a string is a bare atom when it is 1..=1023 bytes, none of them 8-bit,
//!   below 0x1f, 0x7f, SP, `{ ( ) " % * \`, and it is not `NIL`;
//! - otherwise a quoted string when it is shorter than 1024 bytes and holds
//!   no 8-bit byte, CR, LF, NUL, `"`, `%` or `\` — Cyrus never writes `\"`
//!   escapes, it switches to a literal instead;
//! - otherwise a literal: `{n+}` CRLF from a client (LITERAL+), `{n}` CRLF
//!   from a server;
//! - the empty string is `""`, `NIL` alone is [`Value::Nil`];
//! - flags are printed raw, numbers are atoms, one SP between items, none
//!   inside the brackets;
//! - a file literal is `%{partition guid size}` CRLF and then exactly `size`
//!   raw bytes with no CRLF of their own.

use super::DlistError;
use super::response::{Command, Response, Status, StatusTag};
use super::value::{FileLiteral, Value};

/// Longest string Cyrus prints as an atom or quoted string (`MAXQSTRING` in
/// `lib/prot.c`, and the `count >= 1024` test of `imparse_isnatom`).
const MAX_QSTRING: usize = 1024;

/// How literals are announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiteralStyle {
    /// `{n}`: what a server (sync_server, imapd) sends.
    Sync,
    /// `{n+}`: what a client sends (LITERAL+), so it never waits for a
    /// `+ go ahead`; Cyrus's own sync_client does the same (`prot_printliteral`
    /// with `isclient`).
    NonSync,
}

/// One piece of an encoded command or response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fragment {
    /// Bytes to write as they are.
    Bytes(Vec<u8>),
    /// Write exactly `size` raw body bytes of this file literal now (the
    /// header and its CRLF are already in the preceding [`Fragment::Bytes`]).
    File(FileLiteral),
}

/// An encoded command or response: bytes interleaved with the places where
/// file literal bodies go, so a session can stream bodies from disk or from
/// another connection without buffering them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Encoded {
    /// The pieces in write order.
    pub fragments: Vec<Fragment>,
}

impl Encoded {
    /// The whole encoding with each file body supplied by `body` (which must
    /// return exactly `size` bytes). For tests and small messages; sessions
    /// should walk [`Encoded::fragments`] and stream instead.
    pub fn to_bytes_with<E>(
        &self,
        mut body: impl FnMut(&FileLiteral) -> Result<Vec<u8>, E>,
    ) -> Result<Vec<u8>, EncodeBodyError<E>> {
        let mut out = Vec::new();
        for f in &self.fragments {
            match f {
                Fragment::Bytes(b) => out.extend_from_slice(b),
                Fragment::File(file) => {
                    let data = body(file).map_err(EncodeBodyError::Body)?;
                    if data.len() as u64 != file.size {
                        return Err(EncodeBodyError::SizeMismatch {
                            expected: file.size,
                            got: data.len() as u64,
                        });
                    }
                    out.extend_from_slice(&data);
                }
            }
        }
        Ok(out)
    }

    /// The encoding as one buffer when it holds no file literal.
    pub fn into_bytes(self) -> Result<Vec<u8>, DlistError> {
        let mut out = Vec::new();
        for f in self.fragments {
            match f {
                Fragment::Bytes(b) => out.extend_from_slice(&b),
                Fragment::File(_) => return Err(DlistError::FileBodyRequired),
            }
        }
        Ok(out)
    }

    /// Total bytes on the wire, file bodies included.
    pub fn wire_len(&self) -> u64 {
        self.fragments
            .iter()
            .map(|f| match f {
                Fragment::Bytes(b) => b.len() as u64,
                Fragment::File(file) => file.size,
            })
            .sum()
    }
}

/// Why [`Encoded::to_bytes_with`] failed.
#[derive(Debug, thiserror::Error)]
pub enum EncodeBodyError<E> {
    /// The body callback failed.
    #[error("file literal body: {0}")]
    Body(E),
    /// The body callback returned the wrong number of bytes.
    #[error("file literal body is {got} bytes, header says {expected}")]
    SizeMismatch {
        /// Size in the header.
        expected: u64,
        /// Bytes supplied.
        got: u64,
    },
}

/// True when Cyrus prints `s` bare (`imparse_isnatom` and not `NIL`).
pub fn is_atom(s: &[u8]) -> bool {
    !s.is_empty() && s.len() < MAX_QSTRING && s != b"NIL" && s.iter().all(|&c| is_atom_char(c))
}

/// `imparse_isnatom`'s byte test. Note `< 0x1f`: Cyrus lets 0x1f through.
fn is_atom_char(c: u8) -> bool {
    !(c & 0x80 != 0
        || c < 0x1f
        || c == 0x7f
        || matches!(c, b' ' | b'{' | b'(' | b')' | b'"' | b'%' | b'*' | b'\\'))
}

/// `isQCHAR` of `lib/prot.c`, plus NUL (`prot_printmap` sends a literal for it).
fn is_qchar(c: u8) -> bool {
    !(c & 0x80 != 0 || matches!(c, 0 | b'\r' | b'\n' | b'"' | b'%' | b'\\'))
}

/// True when Cyrus prints `s` as a quoted string (when it is not an atom).
pub fn is_quotable(s: &[u8]) -> bool {
    s.len() < MAX_QSTRING && s.iter().all(|&c| is_qchar(c))
}

/// True when `s` can be written as a flag: a backslash, then bytes a Cyrus
/// atom reader keeps together (printable ASCII but SP, `(`, `)`, `"`).
pub fn is_flag(s: &str) -> bool {
    let b = s.as_bytes();
    b.first() == Some(&b'\\')
        && b[1..]
            .iter()
            .all(|&c| (0x21..0x7f).contains(&c) && !matches!(c, b'(' | b')' | b'"'))
}

/// Writes `s` as an atom, quoted string or literal (`prot_printastring`).
pub fn write_astring(s: &[u8], style: LiteralStyle, out: &mut Vec<u8>) {
    if s.is_empty() {
        out.extend_from_slice(b"\"\"");
    } else if is_atom(s) {
        out.extend_from_slice(s);
    } else if is_quotable(s) {
        out.push(b'"');
        out.extend_from_slice(s);
        out.push(b'"');
    } else {
        write_literal(s, style, out);
    }
}

/// Writes `s` as a literal with its header.
pub fn write_literal(s: &[u8], style: LiteralStyle, out: &mut Vec<u8>) {
    out.push(b'{');
    out.extend_from_slice(s.len().to_string().as_bytes());
    if style == LiteralStyle::NonSync {
        out.push(b'+');
    }
    out.extend_from_slice(b"}\r\n");
    out.extend_from_slice(s);
}

/// Writes a file literal header `%{partition guid size}` and its CRLF.
pub fn write_file_header(f: &FileLiteral, out: &mut Vec<u8>) -> Result<(), DlistError> {
    // The header lives on one line: its parts cannot be literals.
    for part in [&f.partition, &f.guid] {
        let b = part.as_bytes();
        if !(b.is_empty() || is_atom(b) || is_quotable(b)) {
            return Err(DlistError::Unencodable(format!(
                "file literal header part '{part}' needs a literal"
            )));
        }
    }
    out.extend_from_slice(b"%{");
    write_astring(f.partition.as_bytes(), LiteralStyle::Sync, out);
    out.push(b' ');
    write_astring(f.guid.as_bytes(), LiteralStyle::Sync, out);
    out.push(b' ');
    out.extend_from_slice(f.size.to_string().as_bytes());
    out.extend_from_slice(b"}\r\n");
    Ok(())
}

/// Encoding sink that splits at file literals.
struct Sink {
    fragments: Vec<Fragment>,
    cur: Vec<u8>,
}

impl Sink {
    fn new() -> Self {
        Sink {
            fragments: Vec::new(),
            cur: Vec::new(),
        }
    }

    fn file(&mut self, f: &FileLiteral) -> Result<(), DlistError> {
        write_file_header(f, &mut self.cur)?;
        self.fragments
            .push(Fragment::Bytes(std::mem::take(&mut self.cur)));
        self.fragments.push(Fragment::File(f.clone()));
        Ok(())
    }

    fn finish(mut self) -> Encoded {
        if !self.cur.is_empty() {
            self.fragments.push(Fragment::Bytes(self.cur));
        }
        Encoded {
            fragments: self.fragments,
        }
    }
}

fn value_into(v: &Value, style: LiteralStyle, s: &mut Sink) -> Result<(), DlistError> {
    match v {
        Value::Nil => s.cur.extend_from_slice(b"NIL"),
        Value::Atom(b) => write_astring(b, style, &mut s.cur),
        Value::Flag(f) => {
            if !is_flag(f) {
                return Err(DlistError::Unencodable(format!("'{f}' is not a flag")));
            }
            s.cur.extend_from_slice(f.as_bytes());
        }
        Value::List(items) => {
            s.cur.push(b'(');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    s.cur.push(b' ');
                }
                value_into(item, style, s)?;
            }
            s.cur.push(b')');
        }
        Value::KvList(kv) => {
            s.cur.extend_from_slice(b"%(");
            for (i, (k, item)) in kv.0.iter().enumerate() {
                if i > 0 {
                    s.cur.push(b' ');
                }
                write_astring(k.as_bytes(), style, &mut s.cur);
                s.cur.push(b' ');
                value_into(item, style, s)?;
            }
            s.cur.push(b')');
        }
        Value::File(f) => s.file(f)?,
    }
    Ok(())
}

/// Writes one value into `out`. A file literal is written as its header and
/// CRLF only: the caller must write the `size` body bytes right after, before
/// anything else. Prefer [`encode_value_fragments`] when files are involved.
pub fn encode_value(v: &Value, style: LiteralStyle, out: &mut Vec<u8>) -> Result<(), DlistError> {
    let mut s = Sink::new();
    value_into(v, style, &mut s)?;
    for f in s.finish().fragments {
        if let Fragment::Bytes(b) = f {
            out.extend_from_slice(&b);
        }
    }
    Ok(())
}

/// Encodes one value into fragments (file bodies left to the caller).
pub fn encode_value_fragments(v: &Value, style: LiteralStyle) -> Result<Encoded, DlistError> {
    let mut s = Sink::new();
    value_into(v, style, &mut s)?;
    Ok(s.finish())
}

fn check_word(w: &str, what: &str) -> Result<(), DlistError> {
    if is_atom(w.as_bytes()) {
        Ok(())
    } else {
        Err(DlistError::Unencodable(format!(
            "{what} '{w}' is not an atom"
        )))
    }
}

/// Encodes a client command, CRLF included, literals as `{n+}`.
pub fn encode_command(c: &Command) -> Result<Encoded, DlistError> {
    let mut s = Sink::new();
    if let Some(tag) = &c.tag {
        check_word(tag, "tag")?;
        s.cur.extend_from_slice(tag.as_bytes());
        s.cur.push(b' ');
    }
    check_word(&c.verb, "command")?;
    s.cur.extend_from_slice(c.verb.as_bytes());
    for a in &c.args {
        s.cur.push(b' ');
        value_into(a, LiteralStyle::NonSync, &mut s)?;
    }
    s.cur.extend_from_slice(b"\r\n");
    Ok(s.finish())
}

fn status_into(st: &Status, out: &mut Vec<u8>) -> Result<(), DlistError> {
    match &st.tag {
        StatusTag::None => {}
        StatusTag::Untagged => out.extend_from_slice(b"* "),
        StatusTag::Tagged(t) => {
            check_word(t, "tag")?;
            out.extend_from_slice(t.as_bytes());
            out.push(b' ');
        }
    }
    out.extend_from_slice(st.kind.as_str().as_bytes());
    if let Some(e) = &st.error {
        check_word(e, "error name")?;
        out.push(b' ');
        out.extend_from_slice(e.as_bytes());
    }
    if st.text.contains('\n') {
        return Err(DlistError::Unencodable("status text holds LF".into()));
    }
    if !st.text.is_empty() {
        out.push(b' ');
        out.extend_from_slice(st.text.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    Ok(())
}

/// Encodes a server response, CRLF included, literals as `{n}`.
pub fn encode_response(r: &Response) -> Result<Encoded, DlistError> {
    let mut s = Sink::new();
    match r {
        Response::Data { name, values } => {
            s.cur.extend_from_slice(b"* ");
            write_astring(name.as_bytes(), LiteralStyle::Sync, &mut s.cur);
            for v in values {
                s.cur.push(b' ');
                value_into(v, LiteralStyle::Sync, &mut s)?;
            }
            s.cur.extend_from_slice(b"\r\n");
        }
        Response::Status(st) => status_into(st, &mut s.cur)?,
        Response::Continuation(text) => {
            if text.contains('\n') {
                return Err(DlistError::Unencodable("continuation holds LF".into()));
            }
            s.cur.extend_from_slice(b"+ ");
            s.cur.extend_from_slice(text.as_bytes());
            s.cur.extend_from_slice(b"\r\n");
        }
        Response::Text { name, text } => {
            if text.contains('\n') || !is_atom(name.as_bytes()) {
                return Err(DlistError::Unencodable("bad untagged text line".into()));
            }
            s.cur.extend_from_slice(b"* ");
            s.cur.extend_from_slice(name.as_bytes());
            if !text.is_empty() {
                s.cur.push(b' ');
                s.cur.extend_from_slice(text.as_bytes());
            }
            s.cur.extend_from_slice(b"\r\n");
        }
    }
    Ok(s.finish())
}
