//! A plain csync client for tests: AUTHENTICATE PLAIN, then `GET` commands, with
//! responses framed into items (lines with their `{n}` and `%{p g n}` literals).
//! Used to read master and replica independently of the code under test's sessions.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use base64::Engine as _;

use super::imap::literal_len;

/// An authenticated csync session.
pub struct Csync {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

/// A response: the untagged items and the final line.
#[derive(Debug, Clone)]
pub struct Response {
    /// Each `* …` item, literals inlined (with their CRLF).
    pub items: Vec<Vec<u8>>,
    /// `OK …`, `NO …` or `BAD …`.
    pub status: String,
}

impl Csync {
    /// Connects to 127.0.0.1:`port` and authenticates with PLAIN.
    pub fn connect(port: u16, user: &str, password: &str) -> Csync {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect csync");
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
        let writer = stream.try_clone().expect("clone");
        let mut c = Csync {
            reader: BufReader::new(stream),
            writer,
        };
        loop {
            let line = c.read_item();
            if line.starts_with(b"* OK") {
                break;
            }
            assert!(line.starts_with(b"* "), "unexpected banner line {line:?}");
        }
        let token =
            base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
        c.send(&format!("AUTHENTICATE PLAIN {token}"));
        let reply = c.read_item();
        assert!(
            reply.starts_with(b"OK"),
            "AUTHENTICATE: {}",
            String::from_utf8_lossy(&reply)
        );
        c
    }

    fn send(&mut self, line: &str) {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .expect("write csync");
    }

    /// Reads one line with its literals and file literals.
    fn read_item(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let mut line = Vec::new();
            self.reader
                .read_until(b'\n', &mut line)
                .expect("read csync");
            assert!(!line.is_empty(), "csync connection closed");
            let trimmed = line.strip_suffix(b"\r\n").unwrap_or(&line);
            out.extend_from_slice(trimmed);
            let Some(n) = literal_len(trimmed).or_else(|| file_literal_len(trimmed)) else {
                break;
            };
            let mut body = vec![0; n];
            self.reader.read_exact(&mut body).expect("read literal");
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(&body);
        }
        out
    }

    /// Sends `command` and reads everything up to its final line.
    pub fn run(&mut self, command: &str) -> Response {
        self.send(command);
        let mut items = Vec::new();
        loop {
            let item = self.read_item();
            if item.starts_with(b"* ") {
                items.push(item);
            } else {
                return Response {
                    items,
                    status: String::from_utf8_lossy(&item).into_owned(),
                };
            }
        }
    }
}

impl Csync {
    /// The local port of this connection (to find the server process that
    /// serves it).
    pub fn local_port(&self) -> u16 {
        self.writer.local_addr().map(|a| a.port()).unwrap_or(0)
    }
}

impl Drop for Csync {
    fn drop(&mut self) {
        let _ = self.writer.write_all(b"EXIT\r\n");
    }
}

/// The size of a line ending in a file literal header `%{partition guid size}`.
fn file_literal_len(line: &[u8]) -> Option<usize> {
    let body = line.strip_suffix(b"}")?;
    let open = body.windows(2).rposition(|w| w == b"%{")?;
    let inner = std::str::from_utf8(&body[open + 2..]).ok()?;
    inner.split(' ').nth(2)?.parse().ok()
}
