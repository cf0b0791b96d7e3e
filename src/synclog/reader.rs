//! The reader side of the hand-off (`sync_log_reader_begin`/`_end` in
//! `imap/sync_log.c`):
//!
//! 1. If `log-run` exists (a previous run did not finish), process it again.
//! 2. Otherwise `rename(log, log-run)`; no `log` means nothing to do.
//! 3. Open `log-run`, take the fcntl lock and release it at once: this waits
//!    for a writer that held the lock across the rename. Every later writer
//!    sees the inode change and writes to a new `log`.
//! 4. Read the entries.
//! 5. Unlink `log-run` only when the caller says every action is done
//!    ([`Run::finish`]). Until then a crash leaves `log-run` to be reprocessed.
//!
//! Malformed lines are never dropped: each is appended verbatim to
//! `log-run.malformed` beside the log (fsynced before `log-run` is unlinked),
//! counted, and reported through [`Run::take_malformed`]; reading goes on with
//! the next line. (Cyrus skips some silently and stops reading the whole file
//! at others.)

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::error::{LineError, SyncLogError};
use super::line::{LogEntry, MAX_LINE, parse_line};
use super::lock::{handoff, lock_exclusive, unlock};

/// Reads one channel's log.
#[derive(Debug)]
pub struct Reader {
    log: PathBuf,
    log_run: PathBuf,
    malformed: PathBuf,
    counter: LineCounter,
}

/// A line that is not a valid entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MalformedLine {
    /// 1-based line number in `log-run`.
    pub line: u64,
    /// Why it was rejected.
    pub error: LineError,
    /// The line as read (without line feed), lossily decoded, at most 200
    /// characters.
    pub text: String,
}

/// Where a [`Run`] stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RunProgress {
    /// Size of `log-run`.
    pub bytes_total: u64,
    /// Bytes consumed so far.
    pub bytes_read: u64,
    /// Lines consumed so far (entries, blank and malformed lines).
    pub lines_read: u64,
    /// Entries returned so far.
    pub entries: u64,
    /// Malformed lines so far.
    pub malformed: u64,
}

/// What is waiting, for the status view.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QueueStats {
    /// Bytes in `log` (0 when absent).
    pub log_bytes: u64,
    /// Complete lines in `log`.
    pub log_lines: u64,
    /// When the oldest entry in `log` was written: the file's birth time where
    /// the platform reports one (FreeBSD, Linux statx), else when this reader
    /// first saw this `log` file.
    pub log_oldest: Option<SystemTime>,
    /// When `log` was last written (mtime).
    pub log_newest: Option<SystemTime>,
    /// Size of a `log-run` waiting or in progress, if any.
    pub log_run_bytes: Option<u64>,
    /// Birth time of that `log-run` (its oldest entry), where reported.
    pub log_run_oldest: Option<SystemTime>,
}

/// Counts lines of `log` incrementally between calls.
#[derive(Debug, Default)]
struct LineCounter {
    ino: Option<(u64, u64)>,
    counted: u64,
    lines: u64,
    first_seen: Option<SystemTime>,
}

impl Reader {
    /// A reader for the log at `log_path`; `log-run` and `log-run.malformed`
    /// are beside it.
    pub fn new(log_path: impl Into<PathBuf>) -> Self {
        let log: PathBuf = log_path.into();
        let with_suffix = |suffix: &str| {
            let mut name = log.clone().into_os_string();
            name.push(suffix);
            PathBuf::from(name)
        };
        Reader {
            log_run: with_suffix("-run"),
            malformed: with_suffix("-run.malformed"),
            log,
            counter: LineCounter::default(),
        }
    }

    /// A reader for `channel` (`None` = default) under `configdirectory`:
    /// `<configdirectory>/sync[/<channel>]/log`, as `sync_log_fname`.
    pub fn for_channel(config_dir: &Path, channel: Option<&str>) -> Self {
        let mut path = config_dir.join("sync");
        if let Some(c) = channel {
            path.push(c);
        }
        Reader::new(path.join("log"))
    }

    /// The `log` file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The `log-run` file.
    pub fn log_run_path(&self) -> &Path {
        &self.log_run
    }

    /// Where malformed lines are kept.
    pub fn malformed_path(&self) -> &Path {
        &self.malformed
    }

    /// Starts a run: the leftover `log-run` if there is one, else the current
    /// `log` renamed to `log-run`. `None` when there is nothing to read.
    pub fn begin(&self) -> Result<Option<Run>, SyncLogError> {
        let in_process = handoff();
        let reprocessing = match std::fs::symlink_metadata(&self.log_run) {
            Ok(_) => true,
            Err(e) if e.kind() == ErrorKind::NotFound => false,
            Err(e) => return Err(SyncLogError::io("stat", &self.log_run, e)),
        };
        if !reprocessing {
            // An empty `log` belongs to a writer between its O_CREAT and its
            // locked write: taking it would only make that writer find the
            // file renamed and create another, which a reader that retries at
            // once would take again (a livelock). Its line comes with the
            // write that follows.
            match std::fs::metadata(&self.log) {
                Ok(m) if m.len() == 0 => return Ok(None),
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(SyncLogError::io("stat", &self.log, e)),
            }
            match std::fs::rename(&self.log, &self.log_run) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(SyncLogError::io("rename", &self.log, e)),
            }
        }
        // O_RDWR: an exclusive fcntl lock needs a writable descriptor.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.log_run)
            .map_err(|e| SyncLogError::io("open", &self.log_run, e))?;
        lock_exclusive(&file, &self.log_run)?;
        unlock(&file, &self.log_run)?;
        drop(in_process);
        let meta = file
            .metadata()
            .map_err(|e| SyncLogError::io("fstat", &self.log_run, e))?;
        Ok(Some(Run {
            path: self.log_run.clone(),
            malformed_path: self.malformed.clone(),
            input: BufReader::with_capacity(64 * 1024, file),
            reprocessing,
            oldest: meta.created().ok(),
            progress: RunProgress {
                bytes_total: meta.len(),
                ..RunProgress::default()
            },
            malformed_out: None,
            malformed: Vec::new(),
            buf: Vec::new(),
        }))
    }

    /// Whether `log` exists. After [`begin`](Self::begin) found nothing to
    /// take, an existing `log` is an empty one: a writer between its
    /// `O_CREAT` and its locked write, whose line follows in moments with no
    /// creation for a watcher to see.
    pub fn log_exists(&self) -> bool {
        std::fs::symlink_metadata(&self.log).is_ok()
    }

    /// Backlog figures for the status view. Reads only what was appended to
    /// `log` since the previous call.
    pub fn queue_stats(&mut self) -> Result<QueueStats, SyncLogError> {
        let mut stats = QueueStats::default();
        match std::fs::metadata(&self.log_run) {
            Ok(m) => {
                stats.log_run_bytes = Some(m.len());
                stats.log_run_oldest = m.created().ok();
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(SyncLogError::io("stat", &self.log_run, e)),
        }
        let file = match File::open(&self.log) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                self.counter = LineCounter::default();
                return Ok(stats);
            }
            Err(e) => return Err(SyncLogError::io("open", &self.log, e)),
        };
        let meta = file
            .metadata()
            .map_err(|e| SyncLogError::io("fstat", &self.log, e))?;
        let id = (meta.dev(), meta.ino());
        if self.counter.ino != Some(id) || meta.len() < self.counter.counted {
            self.counter = LineCounter {
                ino: Some(id),
                first_seen: Some(SystemTime::now()),
                ..LineCounter::default()
            };
        }
        let mut rest = BufReader::new(file);
        std::io::Seek::seek(&mut rest, std::io::SeekFrom::Start(self.counter.counted))
            .map_err(|e| SyncLogError::io("seek", &self.log, e))?;
        let mut chunk = [0u8; 64 * 1024];
        let mut last_lf = self.counter.counted;
        let mut pos = self.counter.counted;
        loop {
            let n = rest
                .read(&mut chunk)
                .map_err(|e| SyncLogError::io("read", &self.log, e))?;
            if n == 0 {
                break;
            }
            for (i, &b) in chunk[..n].iter().enumerate() {
                if b == b'\n' {
                    self.counter.lines += 1;
                    last_lf = pos + i as u64 + 1;
                }
            }
            pos += n as u64;
        }
        // Resume after the last complete line: a writer may be mid-line.
        self.counter.counted = last_lf;
        stats.log_bytes = meta.len().max(pos);
        stats.log_lines = self.counter.lines;
        stats.log_oldest = meta.created().ok().or(self.counter.first_seen);
        stats.log_newest = meta.modified().ok();
        Ok(stats)
    }
}

/// One `log-run` being read.
#[derive(Debug)]
pub struct Run {
    path: PathBuf,
    malformed_path: PathBuf,
    input: BufReader<File>,
    reprocessing: bool,
    oldest: Option<SystemTime>,
    progress: RunProgress,
    malformed_out: Option<File>,
    malformed: Vec<MalformedLine>,
    buf: Vec<u8>,
}

impl Run {
    /// The file being read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True when this is a `log-run` left over by an earlier run (Cyrus logs
    /// "Reprocessing sync log file").
    pub fn is_reprocessing(&self) -> bool {
        self.reprocessing
    }

    /// Birth time of `log-run`, i.e. when its oldest entry was written, where
    /// the platform reports it.
    pub fn oldest_entry(&self) -> Option<SystemTime> {
        self.oldest
    }

    /// How far the run has come.
    pub fn progress(&self) -> RunProgress {
        self.progress
    }

    /// Malformed lines seen since the last call (they are already saved in
    /// the `.malformed` file), for the caller to log.
    pub fn take_malformed(&mut self) -> Vec<MalformedLine> {
        std::mem::take(&mut self.malformed)
    }

    /// The next entry, or `None` at the end of the file.
    pub fn next_entry(&mut self) -> Result<Option<LogEntry>, SyncLogError> {
        loop {
            self.buf.clear();
            // One byte more than the longest line plus its CR LF tells a
            // too-long line from a complete one.
            let limit = MAX_LINE as u64 + 3;
            let n = (&mut self.input)
                .take(limit)
                .read_until(b'\n', &mut self.buf)
                .map_err(|e| SyncLogError::io("read", &self.path, e))?;
            if n == 0 {
                return Ok(None);
            }
            self.progress.bytes_read += n as u64;
            self.progress.lines_read += 1;
            let result = match self.buf.strip_suffix(b"\n") {
                Some(line) => parse_line(line),
                None if n as u64 == limit => Err(LineError::TooLong(MAX_LINE)),
                None => Err(LineError::Unterminated),
            };
            match result {
                Ok(Some(entry)) => {
                    self.progress.entries += 1;
                    return Ok(Some(entry));
                }
                Ok(None) => {}
                Err(error) => self.reject(error)?,
            }
        }
    }

    /// Reads all remaining entries.
    pub fn read_all(&mut self) -> Result<Vec<LogEntry>, SyncLogError> {
        let mut out = Vec::new();
        while let Some(e) = self.next_entry()? {
            out.push(e);
        }
        Ok(out)
    }

    /// Saves the line in `self.buf` (and, when too long, the rest of it) to
    /// the malformed file.
    fn reject(&mut self, error: LineError) -> Result<(), SyncLogError> {
        self.progress.malformed += 1;
        let shown: String =
            String::from_utf8_lossy(self.buf.strip_suffix(b"\n").unwrap_or(&self.buf))
                .chars()
                .take(200)
                .collect();
        let out = match &mut self.malformed_out {
            Some(f) => f,
            None => {
                let f = OpenOptions::new()
                    .append(true)
                    .create(true)
                    .mode(0o640)
                    .open(&self.malformed_path)
                    .map_err(|e| SyncLogError::io("open", &self.malformed_path, e))?;
                self.malformed_out.insert(f)
            }
        };
        let wr = |e| SyncLogError::io("write", &self.malformed_path, e);
        out.write_all(&self.buf).map_err(wr)?;
        if error == LineError::TooLong(MAX_LINE) {
            // Copy the rest of the long line too.
            loop {
                self.buf.clear();
                let n = (&mut self.input)
                    .take(64 * 1024)
                    .read_until(b'\n', &mut self.buf)
                    .map_err(|e| SyncLogError::io("read", &self.path, e))?;
                self.progress.bytes_read += n as u64;
                out.write_all(&self.buf).map_err(wr)?;
                if n == 0 || self.buf.ends_with(b"\n") {
                    break;
                }
            }
        }
        if !self.buf.ends_with(b"\n") {
            out.write_all(b"\n").map_err(wr)?;
        }
        self.malformed.push(MalformedLine {
            line: self.progress.lines_read,
            error,
            text: shown,
        });
        Ok(())
    }

    /// Ends the run once every action of it is done (applied, re-logged or
    /// promoted): makes the malformed lines durable, then unlinks `log-run`.
    pub fn finish(self) -> Result<RunProgress, SyncLogError> {
        if let Some(out) = &self.malformed_out {
            out.sync_all()
                .map_err(|e| SyncLogError::io("fsync", &self.malformed_path, e))?;
        }
        drop(self.input);
        std::fs::remove_file(&self.path).map_err(|e| SyncLogError::io("unlink", &self.path, e))?;
        Ok(self.progress)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synclog::writer::Writer;

    fn setup() -> (tempfile::TempDir, Reader) {
        let dir = tempfile::tempdir().unwrap();
        let reader = Reader::for_channel(dir.path(), Some("chan2"));
        std::fs::create_dir_all(reader.log_path().parent().unwrap()).unwrap();
        (dir, reader)
    }

    #[test]
    fn nothing_to_do_without_log() {
        let (_dir, reader) = setup();
        assert!(reader.begin().unwrap().is_none());
        assert!(reader.log_path().ends_with("sync/chan2/log"));
        assert!(reader.log_run_path().ends_with("sync/chan2/log-run"));
    }

    #[test]
    fn an_empty_log_is_left_to_its_writer() {
        let (_dir, reader) = setup();
        std::fs::write(reader.log_path(), "").unwrap();
        assert!(reader.begin().unwrap().is_none());
        assert!(reader.log_path().exists(), "the writer's file was taken");
        assert!(!reader.log_run_path().exists());
        std::fs::write(reader.log_path(), "USER alice\n").unwrap();
        let mut run = reader.begin().unwrap().unwrap();
        assert_eq!(run.read_all().unwrap().len(), 1);
    }

    #[test]
    fn rename_read_finish() {
        let (_dir, reader) = setup();
        std::fs::write(
            reader.log_path(),
            "USER alice\n\nMAILBOX \"user.bob.A B\"\n",
        )
        .unwrap();
        let mut run = reader.begin().unwrap().unwrap();
        assert!(!run.is_reprocessing());
        assert!(!reader.log_path().exists());
        assert!(reader.log_run_path().exists());
        // New writes go to a fresh log while the run is read.
        Writer::new(reader.log_path())
            .append(&[LogEntry::Meta { userid: "c".into() }])
            .unwrap();
        let entries = run.read_all().unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(
            entries[1],
            LogEntry::Mailbox {
                mboxname: "user.bob.A B".into()
            }
        );
        let p = run.progress();
        assert_eq!((p.lines_read, p.entries, p.malformed), (3, 2, 0));
        assert_eq!(p.bytes_read, p.bytes_total);
        let p = run.finish().unwrap();
        assert_eq!(p.entries, 2);
        assert!(!reader.log_run_path().exists());
        assert_eq!(
            std::fs::read_to_string(reader.log_path()).unwrap(),
            "META c\n"
        );
    }

    #[test]
    fn leftover_log_run_comes_first() {
        let (_dir, reader) = setup();
        std::fs::write(reader.log_run_path(), "USER old\n").unwrap();
        std::fs::write(reader.log_path(), "USER new\n").unwrap();
        let mut run = reader.begin().unwrap().unwrap();
        assert!(run.is_reprocessing());
        assert_eq!(
            run.read_all().unwrap(),
            vec![LogEntry::User {
                userid: "old".into()
            }]
        );
        // Not finished: a new begin() reprocesses the same file.
        drop(run);
        let mut run = reader.begin().unwrap().unwrap();
        assert_eq!(run.read_all().unwrap().len(), 1);
        run.finish().unwrap();
        let mut run = reader.begin().unwrap().unwrap();
        assert_eq!(
            run.read_all().unwrap(),
            vec![LogEntry::User {
                userid: "new".into()
            }]
        );
    }

    #[test]
    fn malformed_lines_are_kept_and_counted() {
        let (_dir, reader) = setup();
        let long = format!("USER {}\n", "x".repeat(MAX_LINE + 10));
        let text =
            format!("USER a\nFROB x\nUSER  b\n{long}SEEN c\nUSER \"d\"\nUSER \"unterminated");
        std::fs::write(reader.log_path(), &text).unwrap();
        let mut run = reader.begin().unwrap().unwrap();
        let entries = run.read_all().unwrap();
        assert_eq!(
            entries,
            vec![
                LogEntry::User { userid: "a".into() },
                LogEntry::User { userid: "d".into() }
            ]
        );
        let bad = run.take_malformed();
        let lines: Vec<u64> = bad.iter().map(|m| m.line).collect();
        assert_eq!(lines, vec![2, 3, 4, 5, 7]);
        assert_eq!(bad[0].error, LineError::UnknownKind("FROB".into()));
        assert_eq!(bad[2].error, LineError::TooLong(MAX_LINE));
        assert_eq!(bad[4].error, LineError::Unterminated);
        assert_eq!(run.progress().malformed, 5);
        assert_eq!(run.progress().bytes_read, text.len() as u64);
        run.finish().unwrap();
        let kept = std::fs::read_to_string(reader.malformed_path()).unwrap();
        assert_eq!(
            kept,
            format!("FROB x\nUSER  b\n{long}SEEN c\nUSER \"unterminated\n")
        );
    }

    #[test]
    fn queue_stats_count_incrementally() {
        let (_dir, mut reader) = setup();
        assert_eq!(reader.queue_stats().unwrap(), QueueStats::default());
        let w = Writer::new(reader.log_path());
        w.append(&[LogEntry::User { userid: "a".into() }]).unwrap();
        let s = reader.queue_stats().unwrap();
        assert_eq!((s.log_bytes, s.log_lines), (7, 1));
        assert!(s.log_oldest.is_some() && s.log_newest.is_some());
        w.append(&[
            LogEntry::User { userid: "b".into() },
            LogEntry::User { userid: "c".into() },
        ])
        .unwrap();
        let s = reader.queue_stats().unwrap();
        assert_eq!((s.log_bytes, s.log_lines), (21, 3));
        let run = reader.begin().unwrap().unwrap();
        let s = reader.queue_stats().unwrap();
        assert_eq!(
            (s.log_bytes, s.log_lines, s.log_run_bytes),
            (0, 0, Some(21))
        );
        w.append(&[LogEntry::User { userid: "d".into() }]).unwrap();
        let s = reader.queue_stats().unwrap();
        assert_eq!((s.log_bytes, s.log_lines), (7, 1));
        run.finish().unwrap();
        assert_eq!(reader.queue_stats().unwrap().log_run_bytes, None);
    }
}
