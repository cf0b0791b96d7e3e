//! A minimal ManageSieve (RFC 5804) client for tests: log in with PLAIN,
//! upload a script, activate it.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;

use base64::Engine as _;

/// A logged-in ManageSieve session.
pub struct Sieve {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Sieve {
    /// Connects to timsieved on 127.0.0.1:`port` and logs in.
    pub fn login(port: u16, user: &str, password: &str) -> Sieve {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to timsieved");
        let mut s = Sieve {
            reader: BufReader::new(stream.try_clone().expect("clone")),
            writer: stream,
        };
        s.until_ok("greeting");
        let auth =
            base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
        s.send(&format!("AUTHENTICATE \"PLAIN\" \"{auth}\"\r\n"));
        s.until_ok("AUTHENTICATE");
        s
    }

    fn send(&mut self, text: &str) {
        self.writer
            .write_all(text.as_bytes())
            .expect("write to timsieved");
    }

    fn until_ok(&mut self, what: &str) {
        loop {
            let mut line = String::new();
            let n = self
                .reader
                .read_line(&mut line)
                .expect("read from timsieved");
            assert!(n > 0, "timsieved closed the connection during {what}");
            if line.starts_with("OK") {
                return;
            }
            assert!(
                !line.starts_with("NO") && !line.starts_with("BYE"),
                "{what}: {line}"
            );
        }
    }

    /// Uploads `script` as `name`.
    pub fn put(&mut self, name: &str, script: &str) {
        self.send(&format!(
            "PUTSCRIPT \"{name}\" {{{}+}}\r\n{script}\r\n",
            script.len()
        ));
        self.until_ok("PUTSCRIPT");
    }

    /// Makes `name` the active script.
    pub fn activate(&mut self, name: &str) {
        self.send(&format!("SETACTIVE \"{name}\"\r\n"));
        self.until_ok("SETACTIVE");
    }

    /// `LISTSCRIPTS`: one line per script, `"name"` or `"name" ACTIVE`.
    pub fn list(&mut self) -> Vec<String> {
        self.send("LISTSCRIPTS\r\n");
        let mut out = Vec::new();
        loop {
            let mut line = String::new();
            let n = self
                .reader
                .read_line(&mut line)
                .expect("read from timsieved");
            assert!(n > 0, "timsieved closed the connection during LISTSCRIPTS");
            let line = line.trim_end().to_string();
            if line.starts_with("OK") {
                return out;
            }
            assert!(!line.starts_with("NO"), "LISTSCRIPTS: {line}");
            out.push(line);
        }
    }
}
