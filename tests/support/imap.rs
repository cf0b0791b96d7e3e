//! A minimal IMAP client for test set-up (CREATE, STORE, SETACL, …) on either side.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// An authenticated IMAP session.
pub struct Imap {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    tag: u32,
}

/// The reply to one command.
#[derive(Debug)]
pub struct Reply {
    /// Untagged lines (literals inlined).
    pub untagged: Vec<Vec<u8>>,
    /// The tagged completion line, e.g. `OK Completed`.
    pub status: String,
}

impl Reply {
    /// True for a tagged OK.
    pub fn ok(&self) -> bool {
        self.status.starts_with("OK")
    }
}

impl Imap {
    /// Connects to 127.0.0.1:`port` and logs in with LOGIN.
    pub fn login(port: u16, user: &str, password: &str) -> Imap {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect imap");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let writer = stream.try_clone().expect("clone");
        let mut imap = Imap {
            reader: BufReader::new(stream),
            writer,
            tag: 0,
        };
        let greeting = imap.read_line();
        assert!(greeting.starts_with(b"* OK"), "greeting {greeting:?}");
        let reply = imap.run(&format!("LOGIN {user} {password}"));
        assert!(reply.ok(), "LOGIN {user}: {}", reply.status);
        imap
    }

    fn read_line(&mut self) -> Vec<u8> {
        let mut line = Vec::new();
        self.reader.read_until(b'\n', &mut line).expect("read imap");
        assert!(!line.is_empty(), "imap connection closed");
        line
    }

    /// Reads one response line with any `{n}` literals inlined.
    fn read_response(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let line = self.read_line();
            let trimmed = line.strip_suffix(b"\r\n").unwrap_or(&line);
            out.extend_from_slice(trimmed);
            let Some(n) = literal_len(trimmed) else { break };
            let mut body = vec![0; n];
            self.reader.read_exact(&mut body).expect("read literal");
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(&body);
        }
        out
    }

    /// Sends `command` (without tag) and reads to its completion.
    pub fn run(&mut self, command: &str) -> Reply {
        self.run_bytes(command.as_bytes())
    }

    /// Like [`run`](Self::run) for a command with raw bytes (literals written as
    /// `{n+}` LITERAL+ so no continuation is needed).
    pub fn run_bytes(&mut self, command: &[u8]) -> Reply {
        self.tag += 1;
        let tag = format!("T{}", self.tag);
        let mut line = format!("{tag} ").into_bytes();
        line.extend_from_slice(command);
        line.extend_from_slice(b"\r\n");
        self.writer.write_all(&line).expect("write imap");
        let mut untagged = Vec::new();
        loop {
            let resp = self.read_response();
            if let Some(rest) = resp.strip_prefix(format!("{tag} ").as_bytes()) {
                return Reply {
                    untagged,
                    status: String::from_utf8_lossy(rest).into_owned(),
                };
            }
            untagged.push(resp);
        }
    }

    /// Runs `command` and panics unless it succeeds.
    pub fn ok(&mut self, command: &str) -> Reply {
        let reply = self.run(command);
        assert!(reply.ok(), "{command}: {}", reply.status);
        reply
    }

    /// APPEND `message` to `mailbox` with `flags` (e.g. `(\Flagged)`).
    pub fn append(&mut self, mailbox: &str, flags: &str, message: &str) {
        let body = message.replace("\r\n", "\n").replace('\n', "\r\n");
        let mut cmd =
            format!("APPEND {} {flags} {{{}+}}\r\n", quote(mailbox), body.len()).into_bytes();
        cmd.extend_from_slice(body.as_bytes());
        let reply = self.run_bytes(&cmd);
        assert!(reply.ok(), "APPEND {mailbox}: {}", reply.status);
    }
}

impl Imap {
    /// The local port of this connection (to find the server process that
    /// serves it).
    pub fn local_port(&self) -> u16 {
        self.writer.local_addr().map(|a| a.port()).unwrap_or(0)
    }
}

impl Drop for Imap {
    fn drop(&mut self) {
        let _ = self.writer.write_all(b"Z LOGOUT\r\n");
    }
}

/// An IMAP quoted string.
pub fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The `n` of a line ending in `{n}` or `{n+}`.
pub fn literal_len(line: &[u8]) -> Option<usize> {
    let body = line.strip_suffix(b"}")?;
    let open = body.iter().rposition(|&b| b == b'{')?;
    let digits = &body[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}
