//! COMPRESS DEFLATE (RFC 4978) as Cyrus speaks it on both transports: raw deflate
//! (no zlib header) in each direction, the sender ending every command or response
//! with a sync flush so the peer can act on it at once.
//!
//! This is the byte transformation only; [`super::stream::Connection`] applies it.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// Why a compressed stream could not be processed.
#[derive(Debug, thiserror::Error)]
pub enum DeflateError {
    /// The peer sent bytes that are not a valid raw deflate stream.
    #[error("the peer's DEFLATE stream is corrupt: {0}")]
    Corrupt(String),
    /// Compressing our own output failed (should not happen with valid state).
    #[error("compressing output failed: {0}")]
    Compress(String),
}

/// Both directions of one COMPRESS DEFLATE session.
pub struct Deflate {
    compress: Compress,
    decompress: Decompress,
}

impl std::fmt::Debug for Deflate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deflate")
            .field("in", &self.decompress.total_in())
            .field("out", &self.compress.total_out())
            .finish()
    }
}

impl Default for Deflate {
    fn default() -> Self {
        Self::new()
    }
}

impl Deflate {
    /// A new session. Level 6 is zlib's default, which Cyrus uses too (prot.c).
    pub fn new() -> Self {
        Deflate {
            // `false`: raw deflate, no zlib header, as RFC 4978 requires.
            compress: Compress::new(Compression::new(6), false),
            decompress: Decompress::new(false),
        }
    }

    /// Compresses `input` and appends the result to `out`. With `sync_flush`, all
    /// of `input` is made available to the peer (Z_SYNC_FLUSH); without it, bytes
    /// may stay inside the compressor until the next call.
    pub fn compress(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        sync_flush: bool,
    ) -> Result<(), DeflateError> {
        let flush = if sync_flush {
            FlushCompress::Sync
        } else {
            FlushCompress::None
        };
        let mut consumed = 0usize;
        loop {
            if out.capacity() - out.len() < 1024 {
                out.reserve(input.len() / 2 + 4096);
            }
            let before_in = self.compress.total_in();
            let before_out = self.compress.total_out();
            let status = self
                .compress
                .compress_vec(&input[consumed..], out, flush)
                .map_err(|e| DeflateError::Compress(e.to_string()))?;
            consumed += (self.compress.total_in() - before_in) as usize;
            let spare = out.capacity() - out.len();
            if status == Status::StreamEnd {
                return Ok(());
            }
            // zlib's rule: when output space is left over after a call, the
            // compressor has emitted everything the flush mode asked for.
            if consumed == input.len() && spare > 0 {
                return Ok(());
            }
            if self.compress.total_out() == before_out && consumed < input.len() && spare > 0 {
                return Err(DeflateError::Compress("compressor made no progress".into()));
            }
        }
    }

    /// Decompresses `input` and appends the plain bytes to `out`. All of `input`
    /// is consumed.
    pub fn decompress(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), DeflateError> {
        let mut consumed = 0usize;
        loop {
            if out.capacity() - out.len() < 4096 {
                out.reserve(input.len() * 3 + 8192);
            }
            let before_in = self.decompress.total_in();
            let before_out = self.decompress.total_out();
            let status = self
                .decompress
                .decompress_vec(&input[consumed..], out, FlushDecompress::Sync)
                .map_err(|e| DeflateError::Corrupt(e.to_string()))?;
            consumed += (self.decompress.total_in() - before_in) as usize;
            let produced = self.decompress.total_out() - before_out;
            let spare = out.capacity() - out.len();
            match status {
                Status::StreamEnd => return Ok(()),
                Status::Ok | Status::BufError => {
                    if consumed == input.len() && spare > 0 {
                        return Ok(());
                    }
                    if produced == 0 && consumed < input.len() && spare > 0 {
                        // No progress with room to spare: the input is unusable.
                        return Err(DeflateError::Corrupt(
                            "decompressor made no progress".to_string(),
                        ));
                    }
                }
            }
        }
    }

    /// Bytes handed to the compressor and bytes it produced, for the status view.
    pub fn out_totals(&self) -> (u64, u64) {
        (self.compress.total_in(), self.compress.total_out())
    }

    /// Compressed bytes received and plain bytes they gave, for the status view.
    pub fn in_totals(&self) -> (u64, u64) {
        (self.decompress.total_in(), self.decompress.total_out())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_in_pieces_with_sync_flush() {
        let mut a = Deflate::new();
        let mut b = Deflate::new();
        let mut plain = Vec::new();
        for i in 0..200u32 {
            let cmd = format!("APPLY MESSAGE line {i} {}\r\n", "x".repeat(i as usize * 7));
            let mut wire = Vec::new();
            a.compress(cmd.as_bytes(), &mut wire, true).unwrap();
            // Every flushed command must be fully decodable on its own.
            let start = plain.len();
            b.decompress(&wire, &mut plain).unwrap();
            assert_eq!(&plain[start..], cmd.as_bytes());
        }
    }

    #[test]
    fn large_incompressible_input() {
        let mut a = Deflate::new();
        let mut b = Deflate::new();
        let mut x: u64 = 0x9e3779b97f4a7c15;
        let data: Vec<u8> = (0..3_000_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let mut wire = Vec::new();
        a.compress(&data[..1_000_000], &mut wire, false).unwrap();
        a.compress(&data[1_000_000..], &mut wire, true).unwrap();
        let mut out = Vec::new();
        // Feed the wire in odd-sized pieces.
        for piece in wire.chunks(7919) {
            b.decompress(piece, &mut out).unwrap();
        }
        assert_eq!(out.len(), data.len());
        assert!(out == data);
    }

    #[test]
    fn interoperates_with_flate2_raw_streams() {
        use std::io::Write;
        let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), Compression::default());
        enc.write_all(b"* OK DEFLATE active\r\n").unwrap();
        enc.flush().unwrap();
        let wire = enc.get_ref().clone();
        let mut d = Deflate::new();
        let mut out = Vec::new();
        d.decompress(&wire, &mut out).unwrap();
        assert_eq!(out, b"* OK DEFLATE active\r\n");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut d = Deflate::new();
        let mut out = Vec::new();
        let r = d.decompress(&[0xff; 64], &mut out);
        assert!(r.is_err());
    }
}
