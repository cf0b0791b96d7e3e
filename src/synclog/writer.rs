//! The writer side: append lines to a channel's `log` with Cyrus's protocol
//! (`sync_log_base` in `imap/sync_log.c`), used to re-log an action that must
//! be retried later (e.g. `IMAP_MAILBOX_LOCKED`).
//!
//! 1. open `log` `O_WRONLY|O_APPEND|O_CREAT`, mode 0640 (creating the
//!    directory, 0755, if missing);
//! 2. take the fcntl lock, blocking;
//! 3. compare the inode of the fd with that of the path: if the reader renamed
//!    the file in between, unlock, close and start again (at most 64 times);
//! 4. write, fsync, unlock, close.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::error::SyncLogError;
use super::line::LogEntry;
use super::lock::{handoff, lock_exclusive, unlock};

/// Cyrus's `SYNC_LOG_RETRIES`.
pub const SYNC_LOG_RETRIES: u32 = 64;

/// Appends to one sync log file.
#[derive(Debug, Clone)]
pub struct Writer {
    path: PathBuf,
}

impl Writer {
    /// A writer for the log at `path` (`<configdirectory>/sync[/<channel>]/log`).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Writer { path: path.into() }
    }

    /// The log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `entries` as one write (as `sync_log_rename` writes its three
    /// lines at once). Nothing is written if any entry cannot be encoded.
    pub fn append(&self, entries: &[LogEntry]) -> Result<(), SyncLogError> {
        let mut text = String::new();
        for entry in entries {
            text.push_str(&entry.encode()?);
        }
        self.append_raw(text.as_bytes())
    }

    /// Appends already encoded lines (each ending in a line feed).
    pub fn append_raw(&self, text: &[u8]) -> Result<(), SyncLogError> {
        if text.is_empty() {
            return Ok(());
        }
        let _in_process = handoff();
        for _ in 0..SYNC_LOG_RETRIES {
            let file = self.open()?;
            lock_exclusive(&file, &self.path)?;
            if self.still_current(&file)? {
                let written = (&file)
                    .write_all(text)
                    .map_err(|e| SyncLogError::io("write", &self.path, e))
                    .and_then(|()| {
                        file.sync_all()
                            .map_err(|e| SyncLogError::io("fsync", &self.path, e))
                    });
                let unlocked = unlock(&file, &self.path);
                return written.and(unlocked);
            }
            unlock(&file, &self.path)?;
        }
        Err(SyncLogError::LockRetries {
            path: self.path.clone(),
            attempts: SYNC_LOG_RETRIES,
        })
    }

    fn open(&self) -> Result<File, SyncLogError> {
        let open = || {
            OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o640)
                .open(&self.path)
        };
        match open() {
            Ok(f) => Ok(f),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                if let Some(dir) = self.path.parent() {
                    DirBuilder::new()
                        .recursive(true)
                        .mode(0o755)
                        .create(dir)
                        .map_err(|e| SyncLogError::io("create directory", dir, e))?;
                }
                open().map_err(|e| SyncLogError::io("open", &self.path, e))
            }
            Err(e) => Err(SyncLogError::io("open", &self.path, e)),
        }
    }

    /// True when the path still names the inode `file` is open on.
    fn still_current(&self, file: &File) -> Result<bool, SyncLogError> {
        let by_fd = file
            .metadata()
            .map_err(|e| SyncLogError::io("fstat", &self.path, e))?;
        match std::fs::metadata(&self.path) {
            Ok(by_path) => Ok(by_fd.ino() == by_path.ino() && by_fd.dev() == by_path.dev()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(SyncLogError::io("stat", &self.path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn appends_and_creates_directory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sync/chan2/log");
        let w = Writer::new(&path);
        w.append(&[LogEntry::User {
            userid: "alice".into(),
        }])
        .unwrap();
        w.append(&[
            LogEntry::Rename {
                from: "user.a.My Folder".into(),
                to: "user.a.B".into(),
            },
            LogEntry::Mailbox {
                mboxname: "user.a.My Folder".into(),
            },
        ])
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "USER alice\nRENAME \"user.a.My Folder\" user.a.B\nMAILBOX \"user.a.My Folder\"\n"
        );
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & !0o640, 0, "mode {mode:o}");
    }

    #[test]
    fn refuses_unencodable_entries_without_writing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let err = Writer::new(&path)
            .append(&[
                LogEntry::User {
                    userid: "ok".into(),
                },
                LogEntry::User {
                    userid: "bad\nname".into(),
                },
            ])
            .unwrap_err();
        assert!(matches!(err, SyncLogError::Encode(_)), "{err}");
        assert!(!path.exists());
    }
}
