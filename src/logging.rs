//! Where `cyrsync`'s log lines go: stderr or `cyrsync_log_file` (reopened on
//! SIGHUP, for newsyslog and logrotate), plus the local syslog socket when
//! `cyrsync_syslog` is on (RFC 3164, facility mail, ident `cyrsync[pid]`).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// `cyrsync_log_file` could not be opened.
    #[error("cyrsync_log_file {path}: {source}")]
    LogFile {
        /// The configured path.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A global subscriber was already installed.
    #[error("logging: {0}")]
    Init(String),
}

/// The system's syslog socket.
pub const DEFAULT_SYSLOG_SOCKET: &str = if cfg!(target_os = "freebsd") {
    "/var/run/log"
} else {
    "/dev/log"
};

/// syslog facility `mail` (RFC 3164 §4.1.1).
const FACILITY_MAIL: u8 = 2;
/// Longest datagram sent; FreeBSD's syslogd takes 8 KiB lines, keep below.
const MAX_SYSLOG_LINE: usize = 4096;

/// Handle on the daemon's logging, kept by `run_daemon`.
#[derive(Debug, Clone, Default)]
pub struct Logging {
    file: Option<LogFile>,
}

impl Logging {
    /// Reopens `cyrsync_log_file` at its configured path if the file there is
    /// no longer the one being written (it was renamed or removed). Returns
    /// whether a new file was opened.
    pub fn reopen(&self) -> Result<bool, LoggingError> {
        match &self.file {
            Some(f) => f.reopen(),
            None => Ok(false),
        }
    }

    /// A task that reopens the log file on every SIGHUP, at once rather than
    /// when the daemon has finished its current actions: newsyslog compresses
    /// the rotated file soon after signalling. Must be called inside a tokio
    /// runtime; `None` when there is no log file.
    pub fn reopen_on_hangup(
        &self,
    ) -> io::Result<Option<impl std::future::Future<Output = ()> + Send + 'static>> {
        use tokio::signal::unix::{SignalKind, signal};
        if self.file.is_none() {
            return Ok(None);
        }
        let mut hup = signal(SignalKind::hangup())?;
        let this = self.clone();
        Ok(Some(async move {
            while hup.recv().await.is_some() {
                match this.reopen() {
                    Ok(true) => tracing::info!("SIGHUP: log file reopened"),
                    Ok(false) => {}
                    Err(e) => tracing::error!("{e}; still writing to the previous file"),
                }
            }
        }))
    }
}

/// The logging of `cyrsync run`: `info` by default, `-v` debug, `-vv` the
/// protocol trace; to `file` if given, else stderr; and to syslog (info and
/// above only, whatever `-v` says) when `syslog` names a socket.
pub fn init_daemon(
    verbose: u8,
    file: Option<&Path>,
    syslog: Option<&Path>,
) -> Result<Logging, LoggingError> {
    let default = match verbose {
        0 => "info",
        1 => "debug",
        _ => "cyrsync=trace,info",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let file = file.map(LogFile::open).transpose()?;
    let file_layer = file.clone().map(|f| {
        tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(f)
    });
    let stderr_layer = file.is_none().then(|| {
        tracing_subscriber::fmt::layer()
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr)
    });
    let syslog_layer = syslog
        .and_then(SyslogLayer::open)
        .map(|l| l.with_filter(LevelFilter::INFO));
    tracing_subscriber::registry()
        .with(filter)
        .with(file_layer)
        .with(stderr_layer)
        .with(syslog_layer)
        .try_init()
        .map_err(|e| LoggingError::Init(e.to_string()))?;
    Ok(Logging { file })
}

/// One-shot commands log warnings (TLS not verified, CRC retries) to stderr;
/// `-v` for progress details, `-vv` for the protocol trace.
pub fn init_oneshot(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

/// An append-only log file that can be reopened at its path.
#[derive(Debug, Clone)]
pub struct LogFile {
    inner: Arc<LogFileInner>,
}

#[derive(Debug)]
struct LogFileInner {
    path: PathBuf,
    file: Mutex<File>,
}

fn open_append(path: &Path) -> Result<File, LoggingError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| LoggingError::LogFile {
            path: path.to_path_buf(),
            source,
        })
}

impl LogFile {
    /// Opens (creates) `path` for appending.
    pub fn open(path: &Path) -> Result<LogFile, LoggingError> {
        Ok(LogFile {
            inner: Arc::new(LogFileInner {
                path: path.to_path_buf(),
                file: Mutex::new(open_append(path)?),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, File> {
        self.inner
            .file
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Opens the path again unless it still names the open file. The old
    /// file stays in use when the new one cannot be opened.
    pub fn reopen(&self) -> Result<bool, LoggingError> {
        let path = &self.inner.path;
        // A plain reload must not fail after privileges were dropped: the
        // file root created is still the right one.
        if let (Ok(on_disk), Ok(open)) = (std::fs::metadata(path), self.lock().metadata())
            && (on_disk.dev(), on_disk.ino()) == (open.dev(), open.ino())
        {
            return Ok(false);
        }
        let fresh = open_append(path)?;
        let old = std::mem::replace(&mut *self.lock(), fresh);
        drop(old);
        Ok(true)
    }
}

/// Writes one formatted event while holding the file's lock.
#[derive(Debug)]
pub struct LogFileWriter<'a>(MutexGuard<'a, File>);

impl Write for LogFileWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl<'a> MakeWriter<'a> for LogFile {
    type Writer = LogFileWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LogFileWriter(self.lock())
    }
}

/// Sends events to the local syslog socket.
#[derive(Debug)]
pub struct SyslogLayer {
    socket: UnixDatagram,
    path: PathBuf,
    ident: String,
    warned: AtomicBool,
}

impl SyslogLayer {
    /// A layer writing to the datagram socket at `path`; `None`, after one
    /// warning on stderr, when there is none (logging goes on without syslog).
    pub fn open(path: &Path) -> Option<SyslogLayer> {
        if !path.exists() {
            eprintln!(
                "cyrsync: warning: cyrsync_syslog: no syslog socket at {}; not logging to syslog",
                path.display()
            );
            return None;
        }
        let socket = match UnixDatagram::unbound() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("cyrsync: warning: cyrsync_syslog: {e}; not logging to syslog");
                return None;
            }
        };
        // A stalled syslogd must not stall replication: drop lines instead.
        let _ = socket.set_nonblocking(true);
        Some(SyslogLayer {
            socket,
            path: path.to_path_buf(),
            ident: format!("cyrsync[{}]", std::process::id()),
            warned: AtomicBool::new(false),
        })
    }
}

/// RFC 3164 severity of a tracing level.
pub fn severity(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

/// One syslog line: `<PRI>ident: text`, control characters replaced by
/// spaces, cut to [`MAX_SYSLOG_LINE`] bytes. No timestamp: syslogd stamps
/// local messages itself, and without a time zone library a stamp of ours
/// would be in UTC.
pub fn syslog_line(severity: u8, ident: &str, text: &str) -> String {
    let mut line = format!("<{}>{ident}: ", FACILITY_MAIL * 8 + severity);
    for c in text.chars() {
        let c = if c.is_control() { ' ' } else { c };
        if line.len() + c.len_utf8() > MAX_SYSLOG_LINE {
            break;
        }
        line.push(c);
    }
    line
}

#[derive(Default)]
struct Text(String);

impl Visit for Text {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.push(field, &format!("{value:?}"));
    }
}

impl Text {
    fn push(&mut self, field: &Field, value: &str) {
        if !self.0.is_empty() {
            self.0.push(' ');
        }
        if field.name() != "message" {
            self.0.push_str(field.name());
            self.0.push('=');
        }
        self.0.push_str(value);
    }
}

impl<S: Subscriber> Layer<S> for SyslogLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut text = Text::default();
        event.record(&mut text);
        let line = syslog_line(severity(event.metadata().level()), &self.ident, &text.0);
        if let Err(e) = self.socket.send_to(line.as_bytes(), &self.path)
            && !self.warned.swap(true, Ordering::Relaxed)
        {
            // Not eprintln!: it panics when stderr is gone (daemon(8) died).
            let _ = writeln!(
                io::stderr(),
                "cyrsync: warning: syslog {}: {e}; lines are dropped while it fails",
                self.path.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn lines_carry_facility_mail_and_severity() {
        assert_eq!(
            syslog_line(6, "cyrsync[7]", "hello"),
            "<22>cyrsync[7]: hello"
        );
        assert_eq!(
            syslog_line(3, "cyrsync[7]", "a\nb\tc"),
            "<19>cyrsync[7]: a b c"
        );
        assert_eq!(severity(&Level::WARN), 4);
        assert_eq!(severity(&Level::TRACE), 7);
        let long = "é".repeat(MAX_SYSLOG_LINE);
        let line = syslog_line(6, "x", &long);
        assert!(line.len() <= MAX_SYSLOG_LINE && line.ends_with('é'));
    }

    #[test]
    fn events_reach_the_socket_info_and_above() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let server = UnixDatagram::bind(&path).unwrap();
        server.set_nonblocking(true).unwrap();
        let layer = SyslogLayer::open(&path)
            .unwrap()
            .with_filter(LevelFilter::INFO);
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(channel = "chan2", "replica refused");
            tracing::debug!("not for syslog");
        });
        let mut buf = [0u8; 512];
        let n = server.recv(&mut buf).unwrap();
        let got = std::str::from_utf8(&buf[..n]).unwrap();
        assert_eq!(
            got,
            format!(
                "<20>cyrsync[{}]: replica refused channel=chan2",
                std::process::id()
            )
        );
        assert!(server.recv(&mut buf).is_err(), "debug went to syslog");
    }

    #[test]
    fn missing_socket_is_not_an_error() {
        assert!(SyslogLayer::open(Path::new("/nonexistent/cyrsync-log")).is_none());
    }

    #[test]
    fn reopen_follows_a_rename_and_not_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cyrsync.log");
        let f = LogFile::open(&path).unwrap();
        f.make_writer().write_all(b"one\n").unwrap();
        assert!(!f.reopen().unwrap(), "same file reopened");
        std::fs::rename(&path, dir.path().join("cyrsync.log.0")).unwrap();
        f.make_writer().write_all(b"two\n").unwrap();
        assert!(f.reopen().unwrap());
        f.make_writer().write_all(b"three\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "three\n");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("cyrsync.log.0")).unwrap(),
            "one\ntwo\n"
        );
    }
}
