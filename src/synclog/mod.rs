//! Cyrus's sync log, both sides: the line format, coalescing of a run into a
//! batch, the reader's `log` → `log-run` hand-off and the writer's append
//! protocol (for re-logging an action), all compatible with Cyrus 3.6.1
//! (`imap/sync_log.c`, `sync_do_reader` in `imap/sync_support.c`).
//!
//! Files of a channel: `<configdirectory>/sync[/<channel>]/log` (writers
//! append), `log-run` (the run being read) and `log-run.malformed` (lines the
//! reader rejected, kept verbatim).

pub mod batch;
mod error;
pub mod line;
mod lock;
pub mod reader;
pub mod writer;

pub use batch::{
    Batch, BatchBuilder, MailboxCohort, Namespace, SyncAction, UserBatch, UserMailbox, shard_for,
};
pub use error::{LineError, SyncLogError};
pub use line::{LogEntry, LogKind, parse_line, quote_name};
pub use reader::{MalformedLine, QueueStats, Reader, Run, RunProgress};
pub use writer::Writer;
