//! Known-answer tests: every protocol line of the real Cyrus 3.6.1
//! transcripts in `tests/fixtures/traces/` (copied from the shared
//! recordings) parses, and re-encoding it gives back the same bytes.
//!
//! Trace format (written by the recording harness):
//! - `C: ` is client → server, `S: ` server → client, one protocol line per
//!   trace line with its CRLF removed; `#` lines are comments and
//!   `## connection N opened` starts a new connection.
//! - The bytes of a literal (`{n}`) or file literal (`%{p g n}`) follow the
//!   line that announces them, split at their own CRLFs onto trace lines,
//!   either with the direction prefix (`C: Return-Path: …`) or raw (the
//!   `GET FETCH` answers of traces 50/51). Where the literal ends, the
//!   protocol line continues on the next trace line (`C: )`, `C:  %{…}`, or
//!   an empty line when the CRLF follows the body directly).
//!
//! Not DList and therefore skipped: the client's SASL responses (the line
//! after a `S: + challenge`, base64 or empty), which are raw SASL data
//! answered inside AUTHENTICATE, not commands. `40_synclog_examples.txt` is a
//! sync log, not a transcript, and is not copied here.

use std::path::PathBuf;

use cyrsync::dlist::{
    Command, CommandParser, DlistError, Encoded, Event, Limits, Message, Parser, Response,
    ResponseParser, Transport,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    Client,
    Server,
}

/// One protocol message rebuilt from a trace: its exact wire bytes.
#[derive(Debug)]
struct WireMessage {
    dir: Dir,
    transport: Transport,
    bytes: Vec<u8>,
    /// Where in the trace it starts, for failure messages.
    origin: String,
}

/// Literal size announced at the end of `content`, if any (trace-side
/// detection, independent of the parser's).
fn literal_at_end(content: &str) -> Option<usize> {
    let body = content.strip_suffix('}')?;
    let open = body.rfind('{')?;
    let inner = &body[open + 1..];
    if content[..open].ends_with('%') {
        // %{partition guid size}
        let size = inner.rsplit(' ').next()?;
        return size.parse().ok();
    }
    inner.strip_suffix('+').unwrap_or(inner).parse().ok()
}

fn strip_prefix(line: &str, dir: Dir) -> Option<&str> {
    let p = match dir {
        Dir::Client => "C:",
        Dir::Server => "S:",
    };
    let rest = line.strip_prefix(p)?;
    Some(rest.strip_prefix(' ').unwrap_or(rest))
}

fn read_trace(path: &std::path::Path) -> Vec<WireMessage> {
    let text = std::fs::read_to_string(path).expect("trace readable");
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut transport = Transport::Csync;
    let mut after_challenge = false;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let lineno = i + 1;
        i += 1;
        if line.starts_with("## connection") && line.contains("opened") {
            transport = Transport::Csync;
            after_challenge = false;
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (dir, content) = if let Some(c) = strip_prefix(line, Dir::Client) {
            (Dir::Client, c)
        } else if let Some(c) = strip_prefix(line, Dir::Server) {
            (Dir::Server, c)
        } else {
            panic!("{name}:{lineno}: not a protocol line: {line:?}");
        };
        if dir == Dir::Server && content.starts_with("* OK [CAPABILITY") {
            transport = Transport::Imap;
        }
        if dir == Dir::Client && after_challenge {
            // SASL response data, not a command (see the module comment).
            after_challenge = false;
            continue;
        }
        after_challenge = dir == Dir::Server && content.starts_with('+');

        let mut bytes = Vec::new();
        let mut content = content.to_owned();
        loop {
            bytes.extend_from_slice(content.as_bytes());
            bytes.extend_from_slice(b"\r\n");
            let Some(n) = literal_at_end(&content) else {
                break;
            };
            // Gather n literal bytes from the following trace lines.
            let mut lit = Vec::new();
            while lit.len() < n {
                let l = lines
                    .get(i)
                    .unwrap_or_else(|| panic!("{name}:{lineno}: literal runs past the end"));
                i += 1;
                lit.extend_from_slice(strip_prefix(l, dir).unwrap_or(l).as_bytes());
                lit.extend_from_slice(b"\r\n");
            }
            let rest = if lit.len() == n {
                // The literal ended with a CRLF; the line goes on below.
                let l = lines
                    .get(i)
                    .unwrap_or_else(|| panic!("{name}:{lineno}: no line after literal"));
                i += 1;
                strip_prefix(l, dir).unwrap_or(l).to_owned()
            } else {
                // The literal ended inside a trace line; its rest (minus the
                // CRLF added above) continues the protocol line.
                let tail = &lit[n..lit.len() - 2];
                String::from_utf8(tail.to_vec()).expect("trace is text")
            };
            bytes.extend_from_slice(&lit[..n]);
            content = rest;
        }
        out.push(WireMessage {
            dir,
            transport,
            bytes,
            origin: format!("{name}:{lineno}"),
        });
    }
    out
}

fn traces() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/traces");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixtures/traces exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 20,
        "expected the recorded traces in {}",
        dir.display()
    );
    files
}

/// A message and the file literal bodies that came with it.
type Parsed<T> = (T, Vec<Vec<u8>>);

/// Feeds `input` to `parser` in pieces of `step` bytes; returns the messages
/// and, per message, the file literal bodies received before it.
fn run<T: Message>(
    mut parser: Parser<T>,
    input: &[u8],
    step: usize,
) -> Result<Vec<Parsed<T>>, DlistError> {
    let mut out = Vec::new();
    let mut bodies: Vec<Vec<u8>> = Vec::new();
    let mut open = false;
    for piece in input.chunks(step.max(1)) {
        parser.feed(piece);
        while let Some(ev) = parser.next_event()? {
            match ev {
                Event::FileLiteralStart(_) => {
                    assert!(!open, "nested file literal");
                    open = true;
                    bodies.push(Vec::new());
                }
                Event::FileLiteralChunk(c) => {
                    assert!(open);
                    bodies.last_mut().expect("open body").extend_from_slice(c);
                }
                Event::FileLiteralEnd => open = false,
                Event::Message(m) => out.push((m, std::mem::take(&mut bodies))),
            }
        }
    }
    assert!(parser.is_idle(), "input left half-parsed");
    Ok(out)
}

fn reencode(enc: Encoded, bodies: &[Vec<u8>]) -> Vec<u8> {
    let mut it = bodies.iter();
    enc.to_bytes_with(|f| {
        let b = it.next().ok_or("more file literals than bodies")?;
        assert_eq!(b.len() as u64, f.size);
        Ok::<_, &str>(b.clone())
    })
    .expect("bodies match")
}

#[test]
fn every_trace_line_parses_and_reencodes_byte_exact() {
    let mut counted = 0;
    let mut file_literals = 0;
    for path in traces() {
        for m in read_trace(&path) {
            let got = match m.dir {
                Dir::Client => {
                    let p = CommandParser::commands(Limits::default(), m.transport);
                    let mut r = run(p, &m.bytes, m.bytes.len())
                        .unwrap_or_else(|e| panic!("{}: {e}: {:?}", m.origin, m.bytes));
                    assert_eq!(r.len(), 1, "{}", m.origin);
                    let (c, bodies): (Command, _) = r.remove(0);
                    file_literals += bodies.len();
                    reencode(c.encode().expect("encodable"), &bodies)
                }
                Dir::Server => {
                    let p = ResponseParser::responses(Limits::default());
                    let mut r = run(p, &m.bytes, m.bytes.len())
                        .unwrap_or_else(|e| panic!("{}: {e}: {:?}", m.origin, m.bytes));
                    assert_eq!(r.len(), 1, "{}", m.origin);
                    let (resp, bodies): (Response, _) = r.remove(0);
                    file_literals += bodies.len();
                    assert!(
                        !matches!(resp, Response::Text { .. }),
                        "{}: not parsed as DList",
                        m.origin
                    );
                    reencode(resp.encode().expect("encodable"), &bodies)
                }
            };
            assert_eq!(
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(&m.bytes),
                "{}",
                m.origin
            );
            counted += 1;
        }
    }
    eprintln!("messages {counted}, file literals {file_literals}");
    // The recordings hold several hundred protocol lines and a dozen file
    // literals; a reader that skipped them would pass vacuously.
    assert!(counted > 300, "only {counted} messages");
    assert!(file_literals >= 10, "only {file_literals} file literals");
}

#[test]
fn whole_connections_parse_the_same_in_any_split() {
    for path in traces() {
        let msgs = read_trace(&path);
        for dir in [Dir::Client, Dir::Server] {
            for transport in [Transport::Csync, Transport::Imap] {
                let stream: Vec<u8> = msgs
                    .iter()
                    .filter(|m| m.dir == dir && m.transport == transport)
                    .flat_map(|m| m.bytes.iter().copied())
                    .collect();
                if stream.is_empty() {
                    continue;
                }
                let parse = |step| match dir {
                    Dir::Client => run(
                        CommandParser::commands(Limits::default(), transport),
                        &stream,
                        step,
                    )
                    .map(|v| format!("{v:?}")),
                    Dir::Server => run(ResponseParser::responses(Limits::default()), &stream, step)
                        .map(|v| format!("{v:?}")),
                };
                let whole = parse(stream.len()).expect("parses whole");
                for step in [1, 2, 3, 7, 64, 1000] {
                    assert_eq!(
                        parse(step).as_ref(),
                        Ok(&whole),
                        "{} step {step}",
                        path.display()
                    );
                }
            }
        }
    }
}

#[test]
fn known_answers_from_the_traces() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/traces/50_master_syncget_over_imap.txt");
    let msgs = read_trace(&path);
    let server: Vec<u8> = msgs
        .iter()
        .filter(|m| m.dir == Dir::Server)
        .flat_map(|m| m.bytes.iter().copied())
        .collect();
    let r = run(ResponseParser::responses(Limits::default()), &server, 5).expect("parses");

    let mailbox = r
        .iter()
        .find_map(|(m, _)| (m.name() == Some("MAILBOX")).then(|| m.value()).flatten())
        .expect("a MAILBOX");
    assert_eq!(mailbox.get_str("MBOXNAME"), Some("user.alice"));
    assert_eq!(mailbox.get_u64("SYNC_CRC"), Some(1701166286));
    assert_eq!(
        mailbox.get_str("ACL"),
        Some("alice\tlrswipkxtecdan\tbob\tlrs\t")
    );

    let (msg, bodies) = r
        .iter()
        .find(|(m, _)| m.name() == Some("MESSAGE"))
        .expect("a MESSAGE");
    let f = msg.value().and_then(|v| v.as_file()).expect("file literal");
    assert_eq!(f.guid, "483a26a489b4c95cc4f26ee12b0982a9283df26d");
    assert_eq!(f.size, 470);
    assert_eq!(bodies[0].len(), 470);
    assert!(bodies[0].starts_with(b"Return-Path: <sender@example.com>\r\n"));

    let sieve = r
        .iter()
        .find_map(|(m, _)| (m.name() == Some("SIEVE")).then(|| m.value()).flatten())
        .expect("a SIEVE");
    let content = sieve.get_str("CONTENT").expect("CONTENT literal");
    assert_eq!(content.len(), 92);
    assert!(content.starts_with("require [\"fileinto\"];\r\n"));

    let nosuch = r
        .iter()
        .filter_map(|(m, _)| m.status())
        .find(|s| s.error.is_some())
        .expect("a NO with an error name");
    assert_eq!(nosuch.error.as_deref(), Some("IMAP_MAILBOX_NONEXISTENT"));
    assert_eq!(nosuch.text, "No Such Mailbox");
}
