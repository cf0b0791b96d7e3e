//! The DList value: what one item of a Cyrus replication command or response
//! holds.
//!
//! On the wire Cyrus 3.6 (`imap/dlist.c`, `dlist_parse`) distinguishes only
//! six shapes: an atom (bare, quoted or literal, `NIL` aside), a flag
//! (`\Seen`), a list `( … )`, a kvlist `%( KEY value … )`, a file literal
//! `%{partition guid size}` and `NIL`. Numbers, dates, hex values (`%016llx`)
//! and GUIDs are printed as atoms and only become numbers when the reader asks
//! (`dlist_tonum64`, `dlist_tohex64`, `dlist_toguid`). [`Value`] keeps exactly
//! the wire shapes, so parse → encode → parse is the identity; the typed views
//! are the constructors ([`Value::num`], [`Value::hex64`], …) and the accessors
//! ([`Value::as_u64`], [`Value::as_hex64`], …).

use std::fmt;

/// One DList value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Value {
    /// `NIL` (a bare `NIL`; a quoted `"NIL"` is an [`Value::Atom`]).
    Nil,
    /// An atom, quoted string or literal; Cyrus treats the three alike
    /// (`DL_ATOM`/`DL_BUF`) and the encoder chooses the form from the bytes,
    /// as `prot_printastring` does. May hold any bytes, 8-bit and NUL included.
    /// Numbers, hex values and GUIDs are atoms too.
    Atom(Vec<u8>),
    /// A flag such as `\Seen`, kept with its backslash and printed raw
    /// (`DL_FLAG`).
    Flag(String),
    /// A list `(a b c)`.
    List(Vec<Value>),
    /// A kvlist `%(KEY value KEY value)`; keys keep their order and may repeat.
    KvList(KvList),
    /// A file literal `%{partition guid size}`; its `size` raw bytes follow on
    /// the wire and are streamed, never stored here.
    File(FileLiteral),
}

/// The header of a file literal `%{partition guid size}`: a message body
/// (`APPLY MESSAGE`, `GET FETCH` answer) or sieve script of `size` bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileLiteral {
    /// The partition name on the sending side (`default`).
    pub partition: String,
    /// The message GUID, 40 hex digits (SHA-1 of the body).
    pub guid: String,
    /// How many raw bytes follow the header's CRLF.
    pub size: u64,
}

/// The entries of a kvlist, in wire order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct KvList(pub Vec<(String, Value)>);

impl KvList {
    /// An empty kvlist.
    pub fn new() -> Self {
        KvList(Vec::new())
    }

    /// Appends `key value` (builder style).
    #[must_use]
    pub fn with(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.push(key, value);
        self
    }

    /// Appends `key value`.
    pub fn push(&mut self, key: impl Into<String>, value: impl Into<Value>) {
        self.0.push((key.into(), value.into()));
    }

    /// The first value stored under `key` (exact, case-sensitive match as
    /// `dlist_getchild` does).
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// All values stored under `key` (kvlists such as `RECORD` repeat keys).
    pub fn get_all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.0.iter().filter(move |(k, _)| k == key).map(|(_, v)| v)
    }

    /// The entries in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Value {
    /// An atom (or quoted string, or literal: the encoder decides) from text.
    pub fn atom(s: impl Into<String>) -> Value {
        Value::Atom(s.into().into_bytes())
    }

    /// A string value from raw bytes (8-bit and NUL allowed; sent as a
    /// literal when it cannot be an atom or quoted string).
    pub fn bytes(b: impl Into<Vec<u8>>) -> Value {
        Value::Atom(b.into())
    }

    /// A number, printed in decimal as Cyrus's `DL_NUM` (`%llu`). Sync CRCs
    /// are numbers too in Cyrus 3.6.
    pub fn num(n: u64) -> Value {
        Value::Atom(n.to_string().into_bytes())
    }

    /// A signed number printed as Cyrus prints a `bit64` with `%llu`:
    /// negative values wrap (`-1` is `18446744073709551615`).
    pub fn num_i64(n: i64) -> Value {
        // Same bits as Cyrus's `(bit64)` cast before `%llu`.
        Value::num(n as u64)
    }

    /// A 64-bit hex value, printed as `DL_HEX` is: 16 lowercase digits
    /// (`%016llx`).
    pub fn hex64(n: u64) -> Value {
        Value::Atom(format!("{n:016x}").into_bytes())
    }

    /// A flag such as `\Seen` (the backslash is part of `s`).
    pub fn flag(s: impl Into<String>) -> Value {
        Value::Flag(s.into())
    }

    /// A list of values.
    pub fn list(items: impl IntoIterator<Item = Value>) -> Value {
        Value::List(items.into_iter().collect())
    }

    /// A list of atoms, e.g. `(user.alice user.bob)`.
    pub fn atom_list<S: Into<String>>(items: impl IntoIterator<Item = S>) -> Value {
        Value::List(items.into_iter().map(Value::atom).collect())
    }

    /// A kvlist.
    pub fn kvlist(kv: KvList) -> Value {
        Value::KvList(kv)
    }

    /// A file literal header; the `size` body bytes are supplied when the
    /// encoded command is written (see [`crate::dlist::Fragment`]).
    pub fn file(partition: impl Into<String>, guid: impl Into<String>, size: u64) -> Value {
        Value::File(FileLiteral {
            partition: partition.into(),
            guid: guid.into(),
            size,
        })
    }

    /// True for `NIL`.
    pub fn is_nil(&self) -> bool {
        matches!(self, Value::Nil)
    }

    /// The raw bytes of an atom/string, or of a flag.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Atom(b) => Some(b),
            Value::Flag(f) => Some(f.as_bytes()),
            _ => None,
        }
    }

    /// An atom/string or flag as UTF-8 text; `None` for other kinds or
    /// non-UTF-8 bytes.
    pub fn as_str(&self) -> Option<&str> {
        self.as_bytes().and_then(|b| std::str::from_utf8(b).ok())
    }

    /// A decimal number as Cyrus's `dlist_tonum64` reads it: digits only, no
    /// sign, no overflow.
    pub fn as_u64(&self) -> Option<u64> {
        let b = match self {
            Value::Atom(b) => b,
            _ => return None,
        };
        if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(b).ok()?.parse().ok()
    }

    /// A 32-bit number (UIDs, sizes). Cyrus truncates a wider value; this
    /// refuses it instead.
    pub fn as_u32(&self) -> Option<u32> {
        self.as_u64().and_then(|n| u32::try_from(n).ok())
    }

    /// A signed 64-bit number as Cyrus reads a `%llu`-printed signed field
    /// (quota limits: `18446744073709551615` is `-1`).
    pub fn as_i64(&self) -> Option<i64> {
        // Reinterpret the bits, the inverse of `num_i64`.
        self.as_u64().map(|n| n as i64)
    }

    /// A hex number as `dlist_tohex64` reads it: 1 to 16 hex digits.
    pub fn as_hex64(&self) -> Option<u64> {
        let b = match self {
            Value::Atom(b) => b,
            _ => return None,
        };
        if b.is_empty() || b.len() > 16 || !b.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        u64::from_str_radix(std::str::from_utf8(b).ok()?, 16).ok()
    }

    /// A message GUID: exactly 40 hex digits, as `dlist_toguid` requires.
    pub fn as_guid(&self) -> Option<&str> {
        let s = self.as_str()?;
        (s.len() == 40 && s.bytes().all(|c| c.is_ascii_hexdigit())).then_some(s)
    }

    /// The flag text (with its backslash).
    pub fn as_flag(&self) -> Option<&str> {
        match self {
            Value::Flag(f) => Some(f),
            _ => None,
        }
    }

    /// The items of a list.
    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }

    /// The kvlist.
    pub fn as_kvlist(&self) -> Option<&KvList> {
        match self {
            Value::KvList(kv) => Some(kv),
            _ => None,
        }
    }

    /// The file literal header.
    pub fn as_file(&self) -> Option<&FileLiteral> {
        match self {
            Value::File(f) => Some(f),
            _ => None,
        }
    }

    /// For a kvlist, the value under `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.as_kvlist().and_then(|kv| kv.get(key))
    }

    /// For a kvlist, the value under `key` as text.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    /// For a kvlist, the value under `key` as a decimal number.
    pub fn get_u64(&self, key: &str) -> Option<u64> {
        self.get(key).and_then(Value::as_u64)
    }

    /// For a kvlist, the value under `key` as a list.
    pub fn get_list(&self, key: &str) -> Option<&[Value]> {
        self.get(key).and_then(Value::as_list)
    }

    /// The file literals inside this value, in wire order (the order their
    /// bodies must be written or are received in).
    pub fn file_literals(&self) -> Vec<&FileLiteral> {
        let mut out = Vec::new();
        collect_files(self, &mut out);
        out
    }
}

fn collect_files<'a>(v: &'a Value, out: &mut Vec<&'a FileLiteral>) {
    match v {
        Value::File(f) => out.push(f),
        Value::List(items) => items.iter().for_each(|i| collect_files(i, out)),
        Value::KvList(kv) => kv.0.iter().for_each(|(_, i)| collect_files(i, out)),
        Value::Nil | Value::Atom(_) | Value::Flag(_) => {}
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::atom(s)
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::atom(s)
    }
}

impl From<u64> for Value {
    fn from(n: u64) -> Self {
        Value::num(n)
    }
}

impl From<u32> for Value {
    fn from(n: u32) -> Self {
        Value::num(u64::from(n))
    }
}

impl From<KvList> for Value {
    fn from(kv: KvList) -> Self {
        Value::KvList(kv)
    }
}

impl From<Vec<Value>> for Value {
    fn from(items: Vec<Value>) -> Self {
        Value::List(items)
    }
}

impl From<FileLiteral> for Value {
    fn from(f: FileLiteral) -> Self {
        Value::File(f)
    }
}

/// Displays the value as the encoder writes it (server literal style), with
/// file literal bodies left out; for logs and the protocol tail.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = Vec::new();
        match crate::dlist::encode::encode_value(self, crate::dlist::LiteralStyle::Sync, &mut out) {
            Ok(()) => f.write_str(&String::from_utf8_lossy(&out)),
            Err(e) => write!(f, "<unencodable: {e}>"),
        }
    }
}
