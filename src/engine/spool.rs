//! Message bodies between `GET FETCH` on the master and `APPLY MESSAGE` on the
//! replica. A `GET FETCH` answer is read at full speed (the master holds the
//! mailbox lock while it sends), so bodies land here first: small ones in
//! memory up to a budget, everything else in one unlinked temporary file,
//! keeping memory flat whatever the sizes of the messages in an upload.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};

use crate::dlist::FileLiteral;
use crate::proto::session::{BodySink, BodySource};

/// Bodies at least this large go to the temporary file.
const IN_MEMORY_MAX: u64 = 1 << 20;

/// Most body bytes held in memory at once; the rest go to the temporary
/// file (an `APPLY MESSAGE` may carry up to 64 MiB of bodies).
const MEMORY_BUDGET: u64 = 4 << 20;

#[derive(Debug)]
enum Body {
    Memory(Vec<u8>),
    /// In the spill file at `offset`.
    Spilled {
        offset: u64,
        written: u64,
    },
}

/// Bodies waiting to be uploaded.
#[derive(Debug, Default)]
pub struct Spool {
    bodies: Vec<(FileLiteral, Body)>,
    /// Index of the body being read by [`BodySource::read`], and the offset.
    reading: Option<(usize, u64)>,
    bytes: u64,
    /// Bytes of the bodies held in memory.
    in_memory: u64,
    /// One unlinked temporary file for every spilled body (one descriptor,
    /// however many bodies), and how much of it is used.
    spill: Option<File>,
    spill_end: u64,
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

    /// Drops every body (after a successful upload). The spill file is kept
    /// for the next bodies and overwritten.
    pub fn clear(&mut self) {
        self.bodies.clear();
        self.reading = None;
        self.bytes = 0;
        self.in_memory = 0;
        self.spill_end = 0;
    }

    /// Bodies received so far, with their exact sizes (for checks).
    pub fn sizes(&self) -> Vec<(String, u64)> {
        self.bodies
            .iter()
            .map(|(f, b)| {
                let n = match b {
                    Body::Memory(v) => v.len() as u64,
                    Body::Spilled { written, .. } => *written,
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
        if let Some((f, body)) = self.bodies.pop() {
            let n = match body {
                Body::Memory(v) => {
                    // What `start` reserved.
                    self.in_memory = self.in_memory.saturating_sub(f.size);
                    v.len() as u64
                }
                Body::Spilled { offset, written } => {
                    // It was the last one written: its space is reused.
                    self.spill_end = offset;
                    written
                }
            };
            self.bytes = self.bytes.saturating_sub(n);
        }
    }
}

impl BodySink for Spool {
    fn start(&mut self, file: &FileLiteral) -> std::io::Result<()> {
        let body = if file.size >= IN_MEMORY_MAX || self.in_memory + file.size > MEMORY_BUDGET {
            if self.spill.is_none() {
                self.spill = Some(tempfile::tempfile()?);
            }
            Body::Spilled {
                offset: self.spill_end,
                written: 0,
            }
        } else {
            // Reserved now, so that the budget holds while it fills.
            self.in_memory += file.size;
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
            Some((_, Body::Spilled { offset, written })) => {
                let file = self
                    .spill
                    .as_mut()
                    .ok_or_else(|| std::io::Error::other("no spill file"))?;
                file.seek(SeekFrom::Start(*offset + *written))?;
                file.write_all(bytes)?;
                *written += bytes.len() as u64;
                self.spill_end = *offset + *written;
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
                    Body::Spilled { written, .. } => *written,
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
            Body::Spilled {
                offset: start,
                written,
            } => {
                let file = self
                    .spill
                    .as_mut()
                    .ok_or_else(|| std::io::Error::other("no spill file"))?;
                let left = written.saturating_sub(offset);
                let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                file.seek(SeekFrom::Start(*start + offset))?;
                file.read(&mut buf[..want])?
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
    fn memory_stays_within_the_budget_and_spilled_bodies_keep_apart() {
        let mut s = Spool::new();
        let n = (3 * MEMORY_BUDGET / 100_000) as usize;
        let bodies: Vec<Vec<u8>> = (0..n)
            .map(|i| {
                (0..100_000u32)
                    .map(|j| ((i as u32 * 31 + j) % 253) as u8)
                    .collect()
            })
            .collect();
        for (i, body) in bodies.iter().enumerate() {
            let f = lit(&format!("g{i}"), body.len() as u64);
            s.start(&f).unwrap();
            for piece in body.chunks(4096) {
                s.chunk(piece).unwrap();
            }
            s.end().unwrap();
            assert!(s.in_memory <= MEMORY_BUDGET);
        }
        // A body that turns out wrong is dropped and its space reused.
        s.start(&lit("bad", 10)).unwrap();
        s.chunk(b"0123456789").unwrap();
        s.end().unwrap();
        s.discard_last();
        let spilled = s
            .bodies
            .iter()
            .filter(|(_, b)| matches!(b, Body::Spilled { .. }))
            .count();
        assert!(spilled > n / 2, "{spilled} of {n} spilled");
        // Read back out of order: each body is exactly itself.
        for i in (0..n).rev() {
            let f = lit(&format!("g{i}"), bodies[i].len() as u64);
            let mut out = Vec::new();
            let mut buf = [0u8; 3000];
            loop {
                let got = s.read(&f, &mut buf).unwrap();
                if got == 0 {
                    break;
                }
                out.extend_from_slice(&buf[..got]);
            }
            assert!(out == bodies[i], "body {i}");
        }
        s.clear();
        assert_eq!((s.len(), s.bytes(), s.in_memory), (0, 0, 0));
    }

    #[test]
    fn short_body_is_an_error() {
        let mut s = Spool::new();
        s.start(&lit("a", 10)).unwrap();
        s.chunk(b"abc").unwrap();
        assert!(s.end().is_err());
    }
}
