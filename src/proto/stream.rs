//! The byte pipe under a session: TCP or a Unix socket, optionally TLS, optionally
//! COMPRESS DEFLATE, with `sync_timeout` on every read and write.
//!
//! Reads land in a plain-text buffer that the session consumes as lines (greeting,
//! SASL exchange) or feeds to the DList parser; writes are collected and sent on
//! [`Connection::flush`], which with DEFLATE ends in a sync flush as RFC 4978 asks.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::client::TlsStream;

use super::deflate::Deflate;
use super::error::ProtoError;

/// The transport a session runs on.
#[derive(Debug)]
pub enum Stream {
    /// Plain TCP.
    Tcp(TcpStream),
    /// A Unix-domain socket (`sync_host: /path`).
    Unix(UnixStream),
    /// TCP after STARTTLS.
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Byte counters of one connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Bytes read from the socket (compressed if DEFLATE is on).
    pub wire_in: u64,
    /// Bytes written to the socket.
    pub wire_out: u64,
    /// Protocol bytes received (after decompression).
    pub plain_in: u64,
    /// Protocol bytes sent (before compression).
    pub plain_out: u64,
}

/// Largest line accepted before the DList parser takes over (greeting, SASL).
const MAX_LINE: usize = 64 * 1024;
/// Pending output above this is sent without waiting for [`Connection::flush`],
/// so that a streamed message body never sits whole in memory.
const WRITE_HIGH_WATER: usize = 256 * 1024;

/// One connection: stream, optional DEFLATE, buffers and the timeout.
#[derive(Debug)]
pub struct Connection {
    stream: Option<Stream>,
    peer: String,
    deflate: Option<Deflate>,
    /// Plain bytes received and not consumed yet.
    rbuf: Vec<u8>,
    /// Plain bytes queued for sending.
    wbuf: Vec<u8>,
    /// Scratch space for compressed output.
    zbuf: Vec<u8>,
    timeout: Duration,
    traffic: Traffic,
    last_activity: Instant,
}

impl Connection {
    /// Wraps an open stream. `peer` names it in errors; `timeout` is `sync_timeout`.
    pub fn new(stream: Stream, peer: String, timeout: Duration) -> Self {
        Connection {
            stream: Some(stream),
            peer,
            deflate: None,
            rbuf: Vec::with_capacity(16 * 1024),
            wbuf: Vec::with_capacity(16 * 1024),
            zbuf: Vec::new(),
            timeout,
            traffic: Traffic::default(),
            last_activity: Instant::now(),
        }
    }

    /// `host:port` or the socket path.
    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// The per-operation limit (`sync_timeout`).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Byte counters.
    pub fn traffic(&self) -> Traffic {
        self.traffic
    }

    /// When bytes last moved in either direction.
    pub fn last_activity(&self) -> Instant {
        self.last_activity
    }

    /// Whether the stream is TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self.stream, Some(Stream::Tls(_)))
    }

    /// Whether the stream is a local Unix socket (never crosses a network).
    pub fn is_local(&self) -> bool {
        matches!(self.stream, Some(Stream::Unix(_)))
    }

    /// Whether the stream is plain TCP to a loopback address.
    pub fn is_loopback(&self) -> bool {
        matches!(&self.stream, Some(Stream::Tcp(t)) if t.peer_addr().is_ok_and(|a| a.ip().is_loopback()))
    }

    /// Whether COMPRESS DEFLATE is active.
    pub fn is_compressed(&self) -> bool {
        self.deflate.is_some()
    }

    fn stream(&mut self, doing: &str) -> Result<&mut Stream, ProtoError> {
        self.stream.as_mut().ok_or_else(|| ProtoError::Closed {
            peer: self.peer.clone(),
            doing: doing.to_string(),
        })
    }

    /// Reads more bytes into the plain buffer; returns how many arrived.
    /// End of stream is [`ProtoError::Closed`].
    pub async fn fill(&mut self, doing: &str) -> Result<usize, ProtoError> {
        let timeout = self.timeout;
        let peer = self.peer.clone();
        let mut raw = [0u8; 32 * 1024];
        let stream = self.stream(doing)?;
        let n = match tokio::time::timeout(timeout, stream.read(&mut raw)).await {
            Err(_) => {
                self.stream = None;
                return Err(ProtoError::Timeout {
                    peer,
                    doing: doing.to_string(),
                    after: timeout,
                });
            }
            Ok(Err(source)) => {
                self.stream = None;
                return Err(ProtoError::Io {
                    peer,
                    doing: doing.to_string(),
                    source,
                });
            }
            Ok(Ok(0)) => {
                self.stream = None;
                return Err(ProtoError::Closed {
                    peer,
                    doing: doing.to_string(),
                });
            }
            Ok(Ok(n)) => n,
        };
        self.last_activity = Instant::now();
        self.traffic.wire_in += n as u64;
        let before = self.rbuf.len();
        match &mut self.deflate {
            Some(d) => d
                .decompress(&raw[..n], &mut self.rbuf)
                .map_err(|source| ProtoError::Deflate { peer, source })?,
            None => self.rbuf.extend_from_slice(&raw[..n]),
        }
        let got = self.rbuf.len() - before;
        self.traffic.plain_in += got as u64;
        Ok(got)
    }

    /// The plain bytes received and not yet consumed.
    pub fn buffered(&self) -> &[u8] {
        &self.rbuf
    }

    /// Marks `n` buffered bytes as consumed.
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.rbuf.len());
        self.rbuf.drain(..n);
    }

    /// Takes every buffered byte.
    pub fn take_buffered(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.rbuf)
    }

    /// Reads one CRLF- (or LF-) terminated line, without the terminator. Used
    /// before the DList parser takes over: greeting, SASL, STARTTLS, COMPRESS.
    pub async fn read_line(&mut self, doing: &str) -> Result<Vec<u8>, ProtoError> {
        loop {
            if let Some(pos) = self.rbuf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.rbuf.drain(..=pos).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(line);
            }
            if self.rbuf.len() > MAX_LINE {
                return Err(ProtoError::Unexpected {
                    peer: self.peer.clone(),
                    doing: doing.to_string(),
                    detail: format!("a line longer than {MAX_LINE} bytes"),
                });
            }
            self.fill(doing).await?;
        }
    }

    /// Queues bytes for sending; sends early when much is pending.
    pub async fn write(&mut self, bytes: &[u8], doing: &str) -> Result<(), ProtoError> {
        self.wbuf.extend_from_slice(bytes);
        if self.wbuf.len() >= WRITE_HIGH_WATER {
            self.send_pending(false, doing).await?;
        }
        Ok(())
    }

    /// Sends everything queued; with DEFLATE, ends with a sync flush.
    pub async fn flush(&mut self, doing: &str) -> Result<(), ProtoError> {
        self.send_pending(true, doing).await
    }

    async fn send_pending(&mut self, end: bool, doing: &str) -> Result<(), ProtoError> {
        let peer = self.peer.clone();
        self.traffic.plain_out += self.wbuf.len() as u64;
        let wire: Vec<u8> = match &mut self.deflate {
            Some(d) => {
                self.zbuf.clear();
                d.compress(&self.wbuf, &mut self.zbuf, end)
                    .map_err(|source| ProtoError::Deflate {
                        peer: peer.clone(),
                        source,
                    })?;
                self.wbuf.clear();
                std::mem::take(&mut self.zbuf)
            }
            None => std::mem::take(&mut self.wbuf),
        };
        let timeout = self.timeout;
        let len = wire.len() as u64;
        let stream = self.stream(doing)?;
        let write = async {
            stream.write_all(&wire).await?;
            if end {
                stream.flush().await?;
            }
            Ok::<(), std::io::Error>(())
        };
        let result = tokio::time::timeout(timeout, write).await;
        // Give the buffers back for reuse.
        let mut wire = wire;
        wire.clear();
        if self.deflate.is_some() {
            self.zbuf = wire;
        } else {
            self.wbuf = wire;
        }
        match result {
            Err(_) => {
                self.stream = None;
                Err(ProtoError::Timeout {
                    peer,
                    doing: doing.to_string(),
                    after: timeout,
                })
            }
            Ok(Err(source)) => {
                self.stream = None;
                Err(ProtoError::Io {
                    peer,
                    doing: doing.to_string(),
                    source,
                })
            }
            Ok(Ok(())) => {
                self.traffic.wire_out += len;
                self.last_activity = Instant::now();
                Ok(())
            }
        }
    }

    /// Turns on COMPRESS DEFLATE in both directions, after the server's `OK`.
    pub fn start_deflate(&mut self) -> Result<(), ProtoError> {
        if !self.rbuf.is_empty() {
            // RFC 4978 §3: the server starts compressing right after its OK, so
            // plain bytes beyond it mean a confused peer.
            return Err(ProtoError::Unexpected {
                peer: self.peer.clone(),
                doing: "COMPRESS DEFLATE".into(),
                detail: "data after the OK that should be compressed".into(),
            });
        }
        self.deflate = Some(Deflate::new());
        Ok(())
    }

    /// Takes the plain stream out for a STARTTLS handshake.
    pub fn take_stream_for_tls(&mut self) -> Result<TcpStream, ProtoError> {
        if !self.rbuf.is_empty() {
            // RFC 3207 §5 / RFC 9051 §6.2.1: anything buffered before the
            // handshake could be an injection by a man in the middle.
            return Err(ProtoError::Tls {
                peer: self.peer.clone(),
                detail: "data arrived after the STARTTLS reply; refusing to continue".into(),
            });
        }
        match self.stream.take() {
            Some(Stream::Tcp(tcp)) => Ok(tcp),
            other => {
                self.stream = other;
                Err(ProtoError::Tls {
                    peer: self.peer.clone(),
                    detail: "STARTTLS is only possible on a plain TCP connection".into(),
                })
            }
        }
    }

    /// Puts the stream back after STARTTLS.
    pub fn set_tls_stream(&mut self, tls: TlsStream<TcpStream>) {
        self.stream = Some(Stream::Tls(Box::new(tls)));
    }

    /// Closes the connection.
    pub async fn shutdown(&mut self) {
        if let Some(mut s) = self.stream.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), s.shutdown()).await;
        }
    }
}
