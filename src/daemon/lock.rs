//! One consumer per channel (DESIGN.md §2): an exclusive lock on a file of our
//! own beside the channel's log, so a second cyrsync on the same channel
//! refuses to start. The lock is `flock`-style on a separate file, so it never
//! meets the fcntl locks Cyrus's writers take on `log` itself.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, flock};

/// Held while the channel is consumed; released when dropped.
#[derive(Debug)]
pub struct ConsumerLock {
    _file: File,
    path: PathBuf,
}

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error(
        "another cyrsync (pid {pid}) is already replicating this channel (lock {path}); stop it first, or remove the channel from one of them"
    )]
    Held {
        /// The lock file.
        path: PathBuf,
        /// The holder's pid as it wrote it, or `?`.
        pid: String,
    },
    /// The lock file could not be opened.
    #[error("cannot open the channel lock {path}: {source}")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl ConsumerLock {
    /// Takes the lock `<log_dir>/cyrsync.lock`, writing our pid into it.
    pub fn acquire(log_dir: &Path) -> Result<ConsumerLock, LockError> {
        let path = log_dir.join("cyrsync.lock");
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(log_dir).map_err(io)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        if flock(&file, FlockOperation::NonBlockingLockExclusive).is_err() {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let pid = pid.trim();
            return Err(LockError::Held {
                path,
                pid: if pid.is_empty() {
                    "?".into()
                } else {
                    pid.into()
                },
            });
        }
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(ConsumerLock { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_consumer_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let first = ConsumerLock::acquire(dir.path()).unwrap();
        // flock locks belong to the open file description, so a second open
        // in the same process conflicts as another process would.
        let err = ConsumerLock::acquire(dir.path()).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(&std::process::id().to_string()), "{text}");
        drop(first);
        ConsumerLock::acquire(dir.path()).unwrap();
    }
}
