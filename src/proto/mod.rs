//! Replication sessions (DESIGN.md §3 `proto/`): the tokio stream stack TCP → TLS
//! (rustls) → COMPRESS DEFLATE, the greeting on either transport (csync or IMAP
//! with `X-REPLICATION`), SASL, and per-command timeouts at `sync_timeout`.

pub mod deflate;
pub mod diagnosis;
pub mod error;
pub mod greeting;
pub mod sasl;
pub mod session;
pub mod stream;
pub mod tls;
pub mod x509;

pub use error::{ProtoError, Side};
