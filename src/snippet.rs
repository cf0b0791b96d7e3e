//! `cyrsync snippet`: the imapd.conf examples shipped in `snippets/`, printed
//! byte for byte. The port installs the same files into the examples directory,
//! so the text an administrator prints and the text on disk never differ.

use std::io::{self, Write};

/// One of the shipped imapd.conf snippets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Snippet {
    /// A master replicating to one replica.
    Master,
    /// The replica's side: admin, SASL database, mechanisms.
    Replica,
    /// A master with two channels, each with its own replica.
    Channels,
    /// Replication over TLS with the replica's certificate pinned.
    Tls,
}

impl Snippet {
    /// Every snippet, in the order the man page lists them.
    pub const ALL: [Snippet; 4] = [
        Snippet::Master,
        Snippet::Replica,
        Snippet::Channels,
        Snippet::Tls,
    ];

    /// The file name under `snippets/` (and the port's examples directory).
    pub fn file_name(self) -> &'static str {
        match self {
            Snippet::Master => "master.conf",
            Snippet::Replica => "replica.conf",
            Snippet::Channels => "channels.conf",
            Snippet::Tls => "tls.conf",
        }
    }

    /// The snippet's text, embedded at build time.
    pub fn text(self) -> &'static str {
        match self {
            Snippet::Master => include_str!("../snippets/master.conf"),
            Snippet::Replica => include_str!("../snippets/replica.conf"),
            Snippet::Channels => include_str!("../snippets/channels.conf"),
            Snippet::Tls => include_str!("../snippets/tls.conf"),
        }
    }

    /// Writes the snippet to `out`. A reader that went away (`cyrsync snippet
    /// master | head`) is not an error.
    pub fn write_to(self, out: &mut impl Write) -> io::Result<()> {
        match out
            .write_all(self.text().as_bytes())
            .and_then(|()| out.flush())
        {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ImapdConf;

    #[test]
    fn every_snippet_is_valid_imapd_conf_syntax() {
        for s in Snippet::ALL {
            let conf = ImapdConf::parse_str(std::path::Path::new(s.file_name()), s.text())
                .unwrap_or_else(|e| panic!("{}: {e}", s.file_name()));
            assert!(conf.get("configdirectory").is_some(), "{}", s.file_name());
        }
    }

    #[test]
    fn write_to_copies_the_bytes() {
        let mut out = Vec::new();
        Snippet::Tls.write_to(&mut out).unwrap();
        assert_eq!(out, Snippet::Tls.text().as_bytes());
    }
}
