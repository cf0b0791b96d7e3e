//! Message bodies between `GET FETCH` on the master and `APPLY MESSAGE` on the
//! replica. A `GET FETCH` answer is read at full speed (the master holds the
//! mailbox lock while it sends), so bodies land here first: small ones in
//! memory, large ones in an unlinked temporary file, keeping memory flat.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};

use crate::dlist::FileLiteral;
use crate::proto::session::{BodySink, BodySource};

/// Bodies at least this large go to a temporary file.
const IN_MEMORY_MAX: u64 = 1 << 20;

#[derive(Debug)]
enum Body {
    Memory(Vec<u8>),
    File { file: File, written: u64 },
}

/// Bodies waiting to be uploaded.
#[derive(Debug, Default)]
pub struct Spool {
    bodies: Vec<(FileLiteral, Body)>,
    /// Index of the body being read by [`BodySource::read`], and the offset.
    reading: Option<(usize, u64)>,
    bytes: u64,
}

impl Spool {
    /// An empty spool.
    pub fn new() -> Spool {
        Spool::default()
    }

    /// How many bodies are held.
    pub fn len(&self) -> usize {
        self.bodies.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.bodies.is_empty()
    }

    /// Total body bytes held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The headers of the held bodies, in arrival order, for `APPLY MESSAGE`.
    pub fn files(&self) -> Vec<FileLiteral> {
        self.bodies.iter().map(|(f, _)| f.clone()).collect()
    }

    /// Drops every body (after a successful upload).
    pub fn clear(&mut self) {
        self.bodies.clear();
        self.reading = None;
        self.bytes = 0;
    }

    /// Bodies received so far, with their exact sizes (for checks).
    pub fn sizes(&self) -> Vec<(String, u64)> {
        self.bodies
            .iter()
            .map(|(f, b)| {
                let n = match b {
                    Body::Memory(v) => v.len() as u64,
                    Body::File { written, .. } => *written,
                };
                (f.guid.clone(), n)
            })
            .collect()
    }
}

impl Spool {
    /// Drops the body added last (one that turned out not to be the message
    /// it claimed to be).
    pub fn discard_last(&mut self) {
        if let Some((_, body)) = self.bodies.pop() {
            let n = match body {
                Body::Memory(v) => v.len() as u64,
                Body::File { written, .. } => written,
            };
            self.bytes = self.bytes.saturating_sub(n);
        }
    }
}

impl BodySink for Spool {
    fn start(&mut self, file: &FileLiteral) -> std::io::Result<()> {
        let body = if file.size >= IN_MEMORY_MAX {
            Body::File {
                file: tempfile::tempfile()?,
                written: 0,
            }
        } else {
            Body::Memory(Vec::with_capacity(usize::try_from(file.size).unwrap_or(0)))
        };
        self.bodies.push((file.clone(), body));
        Ok(())
    }

    fn chunk(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.bytes += bytes.len() as u64;
        match self.bodies.last_mut() {
            Some((_, Body::Memory(v))) => {
                v.extend_from_slice(bytes);
                Ok(())
            }
            Some((_, Body::File { file, written })) => {
                file.write_all(bytes)?;
                *written += bytes.len() as u64;
                Ok(())
            }
            None => Err(std::io::Error::other("body bytes before a body header")),
        }
    }

    fn end(&mut self) -> std::io::Result<()> {
        match self.bodies.last() {
            Some((f, b)) => {
                let got = match b {
                    Body::Memory(v) => v.len() as u64,
                    Body::File { written, .. } => *written,
                };
                if got == f.size {
                    Ok(())
                } else {
                    Err(std::io::Error::other(format!(
                        "body {} has {got} bytes, announced {}",
                        f.guid, f.size
                    )))
                }
            }
            None => Ok(()),
        }
    }
}

impl BodySource for Spool {
    fn read(&mut self, file: &FileLiteral, buf: &mut [u8]) -> std::io::Result<usize> {
        let (idx, offset) = match self.reading {
            Some((i, off)) if self.bodies.get(i).is_some_and(|(f, _)| f == file) => (i, off),
            _ => {
                let i = self
                    .bodies
                    .iter()
                    .position(|(f, _)| f == file)
                    .ok_or_else(|| std::io::Error::other(format!("no body for {}", file.guid)))?;
                (i, 0)
            }
        };
        let n = match &mut self.bodies[idx].1 {
            Body::Memory(v) => {
                let start = usize::try_from(offset).unwrap_or(usize::MAX).min(v.len());
                let n = buf.len().min(v.len() - start);
                buf[..n].copy_from_slice(&v[start..start + n]);
                n
            }
            Body::File { file, .. } => {
                file.seek(SeekFrom::Start(offset))?;
                file.read(buf)?
            }
        };
        self.reading = Some((idx, offset + n as u64));
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(guid: &str, size: u64) -> FileLiteral {
        FileLiteral {
            partition: "default".into(),
            guid: guid.into(),
            size,
        }
    }

    #[test]
    fn small_and_large_bodies_round_trip() {
        let mut s = Spool::new();
        let small = b"hello".to_vec();
        let large: Vec<u8> = (0..(3u32 << 20)).map(|i| (i % 251) as u8).collect();
        for (guid, body) in [("a", &small), ("b", &large)] {
            let f = lit(guid, body.len() as u64);
            s.start(&f).unwrap();
            for piece in body.chunks(7777) {
                s.chunk(piece).unwrap();
            }
            s.end().unwrap();
        }
        assert_eq!(s.len(), 2);
        assert_eq!(s.bytes(), (small.len() + large.len()) as u64);
        for (guid, body) in [("a", &small), ("b", &large)] {
            let f = lit(guid, body.len() as u64);
            let mut out = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                let n = s.read(&f, &mut buf).unwrap();
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&buf[..n]);
            }
            assert!(&out == body, "{guid}");
        }
    }

    #[test]
    fn short_body_is_an_error() {
        let mut s = Spool::new();
        s.start(&lit("a", 10)).unwrap();
        s.chunk(b"abc").unwrap();
        assert!(s.end().is_err());
    }
}
