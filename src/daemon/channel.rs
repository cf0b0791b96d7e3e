//! The rolling loop of one channel: take the log over from Cyrus's writers
//! (rename to `log-run`, fcntl lock dance), coalesce it into a batch, shard it
//! by user over the workers, write back what must be retried, and only then
//! remove `log-run`. An idle channel sleeps until the log changes (inotify or
//! kqueue, with a polling fallback); `sync_repeat_interval` is the minimum
//! time between two runs, so a new entry on an idle channel goes out at once.
//!
//! Entries of users the workers hold back after repeated failures go to
//! `log-held` beside the log (with the writers' append protocol, before
//! `log-run` is removed) and back into the log when a hold ends, when the
//! administrator asks for a run, and at start: they are neither lost nor
//! retried on every run.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{Notify, watch};

use super::lock::{ConsumerLock, LockError};
use super::logwatch::LogWatch;
use super::monitor::{ChannelMonitor, ChannelState};
use super::worker::Worker;
use crate::config::ChannelConfig;
use crate::synclog::{Batch, Namespace, Reader, SyncLogError, UserBatch, Writer, shard_for};

/// Why a channel stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// Another consumer holds the channel.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The sync log could not be read or written.
    #[error(transparent)]
    Log(#[from] SyncLogError),
    /// Cyrus's own rolling client consumes the same log.
    #[error(
        "Cyrus's sync_client (pid {pid}: `{command}`) is replicating this channel from the same sync log; remove its entry (usually `syncclient` in the START section) from cyrus.conf, stop it, then start cyrsync (cyrsync(8), MIGRATING FROM SYNC_CLIENT)"
    )]
    SyncClientRunning {
        /// Its pid.
        pid: u32,
        /// Its command line.
        command: String,
    },
}

/// The least time between the starts of two runs when the earlier one
/// changed nothing on the replica (runs that did are `sync_repeat_interval`
/// apart).
const NOOP_RUN_SPACING: Duration = Duration::from_millis(10);

/// The first look again at an empty log (doubling up to a second while it
/// stays empty).
const EMPTY_LOG_WAIT: Duration = Duration::from_millis(2);

/// Commands from the control socket to a channel.
#[derive(Debug, Clone, Default)]
pub struct ChannelControl {
    /// Paused by the administrator.
    pub paused: Arc<watch::Sender<bool>>,
    /// Run now, regardless of `sync_repeat_interval`.
    pub sync_now: Arc<Notify>,
}

/// Runs the channel until `stop` turns true or the shutdown file appears.
pub async fn run_channel(
    ch: ChannelConfig,
    monitor: ChannelMonitor,
    control: ChannelControl,
    mut stop: watch::Receiver<bool>,
) -> Result<(), ChannelError> {
    std::fs::create_dir_all(&ch.log_dir).map_err(|e| SyncLogError::io("create", &ch.log_dir, e))?;
    let _lock = ConsumerLock::acquire(&ch.log_dir)?;
    if let Some(r) = crate::check::rival::running_sync_clients(&ch.imapd_conf, &ch.name)
        .into_iter()
        .next()
    {
        return Err(ChannelError::SyncClientRunning {
            pid: r.pid,
            command: r.command,
        });
    }
    let reader = Reader::new(ch.log_path());
    let writer = Writer::new(ch.log_path());
    let held_log = Writer::new(ch.log_dir.join(HELD_LOG));
    // Holds live in memory: after a start every held entry is tried again.
    requeue_held(&held_log, &writer, &monitor)?;
    let watch = LogWatch::new(&ch.log_dir);
    let namespace = Namespace::default();
    // Opened after the consumer lock: only the channel's one consumer
    // writes it. Dropped when the channel stops (SIGHUP reopens it).
    let opened = crate::cache::TargetCache::open_channel(&ch);
    for w in opened.warnings {
        monitor.event("warn", w);
    }
    let cache = opened.cache;
    let mut last_flush = Instant::now();
    let mut workers: Vec<Worker> = (0..ch.workers.max(1))
        .map(|id| Worker::new(id, ch.clone(), monitor.clone()).with_cache(cache.clone()))
        .collect();
    let mut paused_rx = control.paused.subscribe();
    // The queue is watched on its own, so that status shows the backlog
    // growing while a run is stuck (replica down, backoff).
    let queue_task = {
        let monitor = monitor.clone();
        let mut stats = Reader::new(ch.log_path());
        let mut stop = stop.clone();
        tokio::spawn(async move {
            loop {
                publish_queue(&mut stats, &monitor);
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
        })
    };
    let mut last_run: Option<Instant> = None;
    // When the earliest hold of a user ends: its entries go back to the log.
    let mut release_at: Option<Instant> = None;
    let mut release_now = false;
    let mut empty_log_wait = Duration::ZERO;
    let mut last_any_run: Option<Instant> = None;
    monitor.event(
        "info",
        format!(
            "replicating {} with {} worker(s){}",
            ch.log_path().display(),
            workers.len(),
            if watch.watching() { "" } else { " (polling)" }
        ),
    );

    loop {
        if *stop.borrow() || shutdown_requested(ch.shutdown_file.as_ref()) {
            break;
        }
        if *paused_rx.borrow() {
            monitor.update(|v| {
                v.state = ChannelState::Paused;
                v.paused = true;
            });
            tokio::select! {
                _ = paused_rx.wait_for(|p| !*p) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
            monitor.update(|v| {
                v.state = ChannelState::Idle;
                v.paused = false;
            });
            continue;
        }
        if release_now {
            // The administrator asked for a run: held users are tried too.
            release_now = false;
            for w in workers.iter_mut() {
                w.release_holds();
            }
            release_at = Some(Instant::now());
        }
        if release_at.is_some_and(|t| t <= Instant::now()) {
            release_at = None;
            requeue_held(&held_log, &writer, &monitor)?;
        }
        // sync_repeat_interval is the least time between the starts of two
        // runs that changed the replica, not a sleep after each: an idle
        // channel replicates at once. Runs that changed nothing are still
        // kept NOOP_RUN_SPACING apart, so that a writer logging lines that
        // need no replication cannot keep us busy.
        let next = [
            last_run.map(|t| t + ch.repeat_interval),
            last_any_run.map(|t| t + ch.repeat_interval.min(NOOP_RUN_SPACING)),
        ]
        .into_iter()
        .flatten()
        .max();
        if let Some(next) = next
            && Instant::now() < next
        {
            tokio::select! {
                _ = tokio::time::sleep_until(next.into()) => {}
                _ = control.sync_now.notified() => release_now = true,
                // A pause shows at once, not at the next run.
                _ = paused_rx.changed() => continue,
                _ = stop.wait_for(|s| *s) => break,
            }
        }
        let run = reader.begin()?;
        let Some(mut run) = run else {
            monitor.update_if(|v| {
                let idle = (!matches!(v.state, ChannelState::Backoff { .. })
                    || v.counters.errors == 0)
                    && v.state != ChannelState::Idle;
                if idle {
                    v.state = ChannelState::Idle;
                }
                idle
            });
            flush_cache_now_and_then(cache.as_ref(), &mut last_flush).await;
            // Sleep until the log appears; wake regularly for the shutdown
            // file and as a fallback when no watcher is available. An empty
            // log's line comes with a write, which the watcher does not
            // report: look again soon, less often while it stays empty (a
            // writer that died after O_CREAT).
            let poll = if reader.log_exists() {
                empty_log_wait = (empty_log_wait * 2).clamp(EMPTY_LOG_WAIT, Duration::from_secs(1));
                empty_log_wait
            } else if !watch.watching() || ch.shutdown_file.is_some() {
                Duration::from_secs(1)
            } else {
                Duration::from_secs(10)
            };
            let poll = release_at.map_or(poll, |t| {
                poll.min(t.saturating_duration_since(Instant::now()))
            });
            tokio::select! {
                _ = watch.changed() => {}
                _ = control.sync_now.notified() => release_now = true,
                _ = paused_rx.changed() => {}
                _ = tokio::time::sleep(poll) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
            continue;
        };
        let started = Instant::now();
        last_any_run = Some(started);
        empty_log_wait = Duration::ZERO;
        monitor.update(|v| v.state = ChannelState::Syncing);
        let entries = run.read_all()?;
        let malformed = run.take_malformed();
        if !malformed.is_empty() {
            monitor.update(|v| v.counters.malformed += malformed.len() as u64);
            monitor.event(
                "warn",
                format!(
                    "{} malformed log line(s) kept in {} (first: {})",
                    malformed.len(),
                    reader.malformed_path().display(),
                    malformed[0].error
                ),
            );
        }
        let lag = run
            .oldest_entry()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let batch = Batch::from_entries(&namespace, entries.iter());
        let users = batch.by_user(&namespace);
        let total: u64 = users.iter().map(|u| u.actions.len() as u64).sum();
        let run_entries = entries.len() as u64;
        let user_count = users.len();
        monitor.update(|v| {
            v.queue.run_entries = run_entries;
            v.queue.run_total = total;
            v.queue.run_done = 0;
        });

        let mut shards: Vec<Vec<UserBatch>> = vec![Vec::new(); workers.len()];
        for u in users {
            shards[shard_for(u.userid.as_deref(), workers.len())].push(u);
        }
        let jobs = workers.iter_mut().zip(shards).map(|(w, list)| {
            let mut stop = stop.clone();
            let monitor = monitor.clone();
            async move {
                let mut done = ShardOutcome::default();
                for u in &list {
                    let out = w.run_user(u, &mut stop).await;
                    monitor.update(|v| {
                        v.queue.run_done += out.done;
                        v.counters.actions += out.done;
                    });
                    if out.held {
                        done.held.extend(out.relog);
                    } else {
                        done.relog.extend(out.relog);
                    }
                    done.applied += out.applied;
                    if out.interrupted {
                        done.interrupted = true;
                        break;
                    }
                }
                done
            }
        });
        let results = futures_util::future::join_all(jobs).await;
        let mut interrupted = false;
        let mut relog = Vec::new();
        let mut held = Vec::new();
        let mut applied = 0;
        for r in results {
            relog.extend(r.relog);
            held.extend(r.held);
            interrupted |= r.interrupted;
            applied += r.applied;
        }
        // A run that found the replica already in agreement does not hold
        // back the next one: Cyrus writers log one change on several lines
        // (lmtpd: APPEND at commit, MAILBOX at unlock), and the late line
        // would otherwise delay the next delivery by a whole interval.
        if applied > 0 || !relog.is_empty() {
            last_run = Some(started);
        }
        if !held.is_empty() {
            // Nothing lost: held users' entries wait in log-held, on disk
            // before log-run goes.
            held_log.append(&held)?;
            count_held(&held_log, &monitor);
            monitor.event(
                "debug",
                format!(
                    "{} entries of held-back users kept in {}",
                    held.len(),
                    held_log.path().display()
                ),
            );
        }
        let now = Instant::now();
        release_at = workers
            .iter()
            .filter_map(Worker::next_release)
            .filter(|t| *t > now)
            .min();
        if !relog.is_empty() {
            // Nothing lost: what failed goes back to the log for a later run.
            writer.append(&relog)?;
            monitor.event(
                "warn",
                format!(
                    "{} action(s) written back to the log for retry",
                    relog.len()
                ),
            );
        }
        if interrupted {
            // log-run stays and is reprocessed first on the next start.
            monitor.event(
                "info",
                "stopped in the middle of a run; log-run kept".into(),
            );
            break;
        }
        run.finish()?;
        flush_cache_now_and_then(cache.as_ref(), &mut last_flush).await;
        monitor.update(|v| {
            v.queue.run_entries = 0;
            v.queue.run_total = 0;
            v.queue.run_done = 0;
        });
        for w in workers.iter_mut() {
            w.restart().await;
        }
        let secs = started.elapsed().as_secs_f64().max(0.001);
        monitor.sample(total as f64 / secs, lag);
        // For the dashboard's event list; at debug level in the log, which
        // would otherwise get a line per second on a busy master.
        monitor.event(
            "debug",
            format!(
                "log-run of {run_entries} entries: {total} action(s) for {user_count} user(s) in {}",
                crate::status::format::duration(secs)
            ),
        );
        monitor.update(|v| {
            if relog.is_empty() {
                v.state = ChannelState::Idle;
            }
        });
    }
    queue_task.abort();
    monitor.update(|v| {
        v.state = ChannelState::Stopped;
        for w in v.workers.iter_mut() {
            *w = Default::default();
        }
    });
    Ok(())
}

/// What one worker's shard of a run came to.
#[derive(Debug, Default)]
struct ShardOutcome {
    /// Entries to retry on the next run.
    relog: Vec<crate::synclog::LogEntry>,
    /// Entries of held-back users, for `log-held`.
    held: Vec<crate::synclog::LogEntry>,
    /// Stopped by shutdown.
    interrupted: bool,
    /// `APPLY`s sent.
    applied: u64,
}

/// The file beside the log where held-back users' entries wait.
pub const HELD_LOG: &str = "log-held";

/// Moves what waits in `log-held` back into the log (append first, then
/// remove: a crash in between only repeats entries, and replication is
/// idempotent).
fn requeue_held(held: &Writer, log: &Writer, monitor: &ChannelMonitor) -> Result<(), SyncLogError> {
    let path = held.path();
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(SyncLogError::io("read", path, e)),
    };
    if !text.is_empty() {
        log.append_raw(&text)?;
    }
    std::fs::remove_file(path).map_err(|e| SyncLogError::io("remove", path, e))?;
    monitor.update(|v| v.queue.held_entries = 0);
    Ok(())
}

/// Publishes how many entries wait in `log-held`.
fn count_held(held: &Writer, monitor: &ChannelMonitor) {
    let lines = std::fs::read(held.path())
        .map(|t| t.iter().filter(|b| **b == b'\n').count() as u64)
        .unwrap_or(0);
    monitor.update(|v| v.queue.held_entries = lines);
}

/// How often the target-state cache is made durable while the channel
/// works. A commit costs an fsync and more CPU than a small run itself; what
/// a crash loses in between is only cache (every entry is a state the
/// replica really had, and a stale or missing one is read from the replica).
const CACHE_FLUSH_EVERY: Duration = Duration::from_secs(5);

/// Commits the cache, off the async threads, when the last commit is
/// [`CACHE_FLUSH_EVERY`] old.
async fn flush_cache_now_and_then(
    cache: Option<&Arc<crate::cache::TargetCache>>,
    last_flush: &mut Instant,
) {
    if let Some(c) = cache
        && last_flush.elapsed() >= CACHE_FLUSH_EVERY
    {
        *last_flush = Instant::now();
        let c = c.clone();
        let _ = tokio::task::spawn_blocking(move || c.flush()).await;
    }
}

fn shutdown_requested(path: Option<&PathBuf>) -> bool {
    path.is_some_and(|p| p.exists())
}

fn publish_queue(reader: &mut Reader, monitor: &ChannelMonitor) {
    let Ok(q) = reader.queue_stats() else {
        return;
    };
    let oldest = [q.log_oldest, q.log_run_oldest]
        .into_iter()
        .flatten()
        .min()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs());
    let oldest = if q.log_lines > 0 || q.log_run_bytes.is_some() {
        oldest
    } else {
        None
    };
    // Readers are woken only by real changes: an idle daemon stays quiet.
    monitor.update_if(|v| {
        let now = (q.log_bytes, q.log_lines, oldest);
        if (
            v.queue.log_bytes,
            v.queue.log_lines,
            v.queue.oldest_waiting_unix,
        ) == now
        {
            return false;
        }
        v.queue.log_bytes = q.log_bytes;
        v.queue.log_lines = q.log_lines;
        v.queue.oldest_waiting_unix = oldest;
        true
    });
}
