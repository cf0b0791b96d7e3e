//! Wakes a channel's loop when its sync log appears.
//!
//! Only the *creation* of `log` (or of the shutdown file) matters: the loop
//! takes an existing `log` over as soon as `sync_repeat_interval` allows, so
//! writes to it need no event. (The one exception, an empty `log` whose
//! writer has yet to write, the loop looks at again by itself.) On Linux the inotify mask asks for creations
//! and renames into the directory alone. A watcher told of every open,
//! write and close of `log` spent, in a flag storm of 2 500 logged changes a
//! second, as much CPU as Cyrus's `sync_client` spent replicating them
//! (BENCHMARKS.md, W5). Elsewhere (kqueue on FreeBSD) the `notify` crate
//! watches the directory; kqueue merges the events of a file between two
//! reads, so the storm costs far less there.

use std::path::Path;
use std::sync::Arc;

use tokio::sync::Notify;

/// A watch on one log directory. Dropping it stops the watch.
pub struct LogWatch {
    changed: Arc<Notify>,
    backend: Option<Backend>,
}

impl LogWatch {
    /// Watches `dir`. Without a watcher (none available, or the directory
    /// cannot be watched) the caller polls; the reason is logged.
    pub fn new(dir: &Path) -> LogWatch {
        let changed = Arc::new(Notify::new());
        let backend = match Backend::start(dir, changed.clone()) {
            Ok(b) => Some(b),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), "no file watcher ({e}); polling the log");
                None
            }
        };
        LogWatch { changed, backend }
    }

    /// Whether events arrive; if not, the caller polls often.
    pub fn watching(&self) -> bool {
        self.backend.as_ref().is_some_and(Backend::alive)
    }

    /// Resolves at the next creation in the directory, or at once when one
    /// happened since the last call.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }
}

/// A thread blocked on the inotify descriptor (registering it with tokio
/// would need `unsafe`); it ends when the watch is removed.
#[cfg(target_os = "linux")]
struct Backend {
    watches: inotify::Watches,
    wd: inotify::WatchDescriptor,
    alive: Arc<std::sync::atomic::AtomicBool>,
}

#[cfg(target_os = "linux")]
impl Backend {
    fn start(dir: &Path, changed: Arc<Notify>) -> std::io::Result<Backend> {
        use inotify::{EventMask, Inotify, WatchMask};
        use std::sync::atomic::{AtomicBool, Ordering};

        let mut inotify = Inotify::init()?;
        let mut watches = inotify.watches();
        let wd = watches.add(dir, WatchMask::CREATE | WatchMask::MOVED_TO)?;
        let alive = Arc::new(AtomicBool::new(true));
        let running = alive.clone();
        std::thread::Builder::new()
            .name("cyrsync-logwatch".into())
            .spawn(move || {
                let mut buffer = [0u8; 4096];
                loop {
                    match inotify.read_events_blocking(&mut buffer) {
                        Ok(events) => {
                            // IGNORED: the watch was removed (dropped, or the
                            // directory went away).
                            let ended = events
                                .into_iter()
                                .any(|e| e.mask.contains(EventMask::IGNORED));
                            changed.notify_one();
                            if ended {
                                break;
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            tracing::warn!("file watcher stopped ({e}); polling the log");
                            changed.notify_one();
                            break;
                        }
                    }
                }
                running.store(false, Ordering::Relaxed);
            })?;
        Ok(Backend { watches, wd, alive })
    }

    fn alive(&self) -> bool {
        self.alive.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[cfg(target_os = "linux")]
impl Drop for Backend {
    fn drop(&mut self) {
        // The kernel answers with IGNORED, which ends the thread.
        let _ = self.watches.remove(self.wd.clone());
    }
}

// The watcher works while it lives; it is only kept, never read.
#[cfg(not(target_os = "linux"))]
struct Backend(#[allow(dead_code)] notify::RecommendedWatcher);

#[cfg(not(target_os = "linux"))]
impl Backend {
    fn start(dir: &Path, changed: Arc<Notify>) -> notify::Result<Backend> {
        use notify::{RecursiveMode, Watcher};

        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if event.is_ok() {
                    changed.notify_one();
                }
            })?;
        watcher.watch(dir, RecursiveMode::NonRecursive)?;
        Ok(Backend(watcher))
    }

    fn alive(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn wakes_when_the_log_is_created_or_renamed_into_place() {
        let dir = tempfile::tempdir().unwrap();
        let watch = LogWatch::new(dir.path());
        assert!(watch.watching());
        std::fs::write(dir.path().join("log"), "APPEND user.a\n").unwrap();
        tokio::time::timeout(Duration::from_secs(5), watch.changed())
            .await
            .expect("no wake for a new log");
        std::fs::remove_file(dir.path().join("log")).unwrap();
        // Drain whatever the creation and removal left.
        let _ = tokio::time::timeout(Duration::from_millis(200), watch.changed()).await;
        std::fs::write(dir.path().join("log.tmp"), "MAILBOX user.a\n").unwrap();
        let _ = tokio::time::timeout(Duration::from_millis(200), watch.changed()).await;
        std::fs::rename(dir.path().join("log.tmp"), dir.path().join("log")).unwrap();
        tokio::time::timeout(Duration::from_secs(5), watch.changed())
            .await
            .expect("no wake for a log renamed into place");
    }

    /// The property that keeps a flag storm cheap: appending to an existing
    /// log wakes nobody (the loop finds the log there anyway).
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn appending_to_an_existing_log_wakes_nobody() {
        use std::io::Write;

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, "APPEND user.a\n").unwrap();
        let watch = LogWatch::new(dir.path());
        for _ in 0..100 {
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .unwrap();
            f.write_all(b"MAILBOX user.a\n").unwrap();
        }
        let woke = tokio::time::timeout(Duration::from_millis(300), watch.changed()).await;
        assert!(woke.is_err(), "appending to the log woke the watcher");
        assert!(watch.watching());
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn dropping_the_watch_ends_its_thread() {
        let dir = tempfile::tempdir().unwrap();
        let watch = LogWatch::new(dir.path());
        let alive = watch.backend.as_ref().unwrap().alive.clone();
        assert!(watch.watching());
        drop(watch);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while alive.load(std::sync::atomic::Ordering::Relaxed) {
            assert!(
                std::time::Instant::now() < deadline,
                "watch thread still running"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
