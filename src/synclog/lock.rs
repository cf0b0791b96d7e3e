//! The lock both sides of the hand-off use: a POSIX record lock (`fcntl`
//! `F_SETLKW`, whole file) like Cyrus's `lock_blocking` in `lib/lock_fcntl.c`.
//! Cyrus is built with fcntl locks (configure prefers them; Debian and the
//! FreeBSD port both are), and flock(2) locks would not exclude them.
//!
//! rustix's `fcntl_lock` issues `F_SETLKW` with `l_whence = SEEK_SET`,
//! `l_start = 0`, `l_len = 0` on both its libc (FreeBSD) and linux_raw
//! backends, which is exactly Cyrus's call.
//!
//! POSIX locks belong to the process, not the fd, so two threads of one
//! process do not exclude each other. [`HANDOFF`] serialises cyrsync's own
//! reader and writer within the process.

use std::fs::File;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};

use rustix::fs::{FlockOperation, fcntl_lock};
use rustix::io::Errno;

use super::error::SyncLogError;

/// Held by the in-process writer while it holds the log lock and by the reader
/// during rename-and-lock, because fcntl locks do not exclude threads.
static HANDOFF: Mutex<()> = Mutex::new(());

/// Takes the in-process hand-off mutex (a poisoned one is still usable: it
/// guards no data).
pub(crate) fn handoff() -> MutexGuard<'static, ()> {
    HANDOFF.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Blocks until `file` is exclusively locked, retrying on EINTR as
/// `lock_setlock` does.
pub(crate) fn lock_exclusive(file: &File, path: &Path) -> Result<(), SyncLogError> {
    loop {
        match fcntl_lock(file, FlockOperation::LockExclusive) {
            Ok(()) => return Ok(()),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(SyncLogError::io("lock", path, e.into())),
        }
    }
}

/// Releases the lock on `file`.
pub(crate) fn unlock(file: &File, path: &Path) -> Result<(), SyncLogError> {
    fcntl_lock(file, FlockOperation::Unlock).map_err(|e| SyncLogError::io("unlock", path, e.into()))
}
