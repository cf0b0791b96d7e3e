//! A minimal LMTP client for delivering test mail to the master.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;

/// An open LMTP session.
pub struct Lmtp {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Lmtp {
    /// Connects to `127.0.0.1:port` and says LHLO.
    pub fn connect(port: u16) -> Lmtp {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect lmtp");
        let writer = stream.try_clone().expect("clone stream");
        let mut lmtp = Lmtp {
            reader: BufReader::new(stream),
            writer,
        };
        lmtp.expect("220");
        lmtp.command("LHLO cyrsync-test", "250");
        lmtp
    }

    fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).expect("read lmtp reply");
            assert!(!line.is_empty(), "lmtp connection closed; so far: {all}");
            all.push_str(&line);
            // Multi-line replies continue with "250-".
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                break;
            }
        }
        all
    }

    fn expect(&mut self, code: &str) -> String {
        let all = self.reply();
        assert!(all.starts_with(code), "expected {code}, got {all}");
        all
    }

    /// Sends `line`; `Err` with the reply on a transient (4xx) failure.
    fn transient(&mut self, line: &[u8], code: &str) -> Result<String, String> {
        self.writer.write_all(line).expect("write lmtp");
        let all = self.reply();
        if all.starts_with('4') {
            return Err(all);
        }
        assert!(all.starts_with(code), "expected {code}, got {all}");
        Ok(all)
    }

    fn command(&mut self, line: &str, code: &str) -> String {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .expect("write lmtp");
        self.expect(code)
    }

    /// Delivers `body` (a full RFC 5322 message, LF or CRLF line ends) to `rcpt`
    /// (`alice` or `alice+Folder` for a subfolder). A transient failure (4xx,
    /// such as lmtpd's `451 4.3.0 System I/O error` seen on a loaded host) is
    /// retried, as an MTA would.
    pub fn deliver(&mut self, rcpt: &str, body: &str) {
        let data = Self::data(body);
        let mut failures = Vec::new();
        while failures.len() < 5 {
            self.command("MAIL FROM:<sender@example.org>", "250");
            let sent = self
                .transient(format!("RCPT TO:<{rcpt}>\r\n").as_bytes(), "250")
                .and_then(|_| self.transient(b"DATA\r\n", "354"))
                .and_then(|_| self.transient(data.as_bytes(), "250"));
            match sent {
                Ok(_) => return,
                Err(reply) => {
                    failures.push(reply);
                    self.command("RSET", "250");
                    std::thread::sleep(std::time::Duration::from_millis(200));
                }
            }
        }
        panic!("delivery to {rcpt} kept failing: {failures:?}");
    }

    /// The DATA of `body`, dot-stuffed (RFC 5321 §4.5.2), with the final dot.
    fn data(body: &str) -> String {
        let mut data = String::new();
        for line in body.lines() {
            if line.starts_with('.') {
                data.push('.');
            }
            data.push_str(line);
            data.push_str("\r\n");
        }
        data.push_str(".\r\n");
        data
    }

    /// Delivers one message to several recipients in one transaction (Cyrus
    /// stores it once: the same GUID in every mailbox).
    pub fn deliver_to(&mut self, rcpts: &[&str], body: &str) {
        self.command("MAIL FROM:<sender@example.org>", "250");
        for rcpt in rcpts {
            self.command(&format!("RCPT TO:<{rcpt}>"), "250");
        }
        self.command("DATA", "354");
        let data = Self::data(body);
        self.writer.write_all(data.as_bytes()).expect("write data");
        // LMTP answers DATA once per recipient (RFC 2033 §4.2).
        for _ in rcpts {
            self.expect("250");
        }
    }
}

impl Lmtp {
    /// The local port of this connection (to find the server process that
    /// serves it).
    pub fn local_port(&self) -> u16 {
        self.writer.local_addr().map(|a| a.port()).unwrap_or(0)
    }
}

impl Drop for Lmtp {
    fn drop(&mut self) {
        let _ = self.writer.write_all(b"QUIT\r\n");
    }
}

/// A small message with a unique subject.
pub fn message(n: usize, subject: &str) -> String {
    format!(
        "From: sender@example.org\nTo: rcpt@example.org\nSubject: {subject} {n}\n\
         Message-ID: <cyrsync-{n}-{}@example.org>\nDate: Thu, 03 Dec 2026 12:00:00 +0000\n\n\
         Body of message {n}.\n.leading dot line\n",
        subject.replace(' ', "-")
    )
}
