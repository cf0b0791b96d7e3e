//! The workloads, each run for `sync_client` and then for `cyrsync` on the
//! same pair. Every replicator gets a user (or users) of its own with the same
//! content (`w2sc`/`w2cy`: one LMTP transaction delivers each message to
//! both), so that neither finds the other's work on the replica.
//!
//! Backlogs are built with no replicator running; the master's sync log is
//! then split by user and each replicator is given exactly the lines Cyrus
//! wrote for its own users.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::measure::{InstanceMeter, Rng, quantile, server_pid};
use crate::replicator::{Kind, Replicator};
use crate::state::Sides;
use crate::support::imap::Imap;
use crate::support::lmtp::{Lmtp, message};
use crate::support::pair::{Channels, CyrusPair, PairOptions};

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Small sizes: checks the harness in a few minutes; not for the record.
    pub quick: bool,
    /// Workload ids to run (all when empty).
    pub only: Vec<String>,
    /// Seed of the spacing and choice generator.
    pub seed: u64,
    /// Extra master imapd.conf settings (`--set`).
    pub settings: Vec<(String, String)>,
    /// Rounds of the throughput workloads (W2–W5), the replicators' order
    /// alternating (`--rounds`; 5, or 1 with `--quick`).
    pub rounds: Option<usize>,
}

/// One workload's results.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Workload {
    /// `W1` … `W7`.
    pub id: String,
    /// What it does.
    pub title: String,
    /// Its size, as run.
    pub params: String,
    /// One per replicator and variant.
    pub runs: Vec<Run>,
}

/// One replicator on one variant of a workload.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Run {
    /// `sync_client` or `cyrsync`.
    pub replicator: String,
    /// Which round (throughput workloads run several, in alternating
    /// order).
    pub round: usize,
    /// E.g. `sync_repeat_interval: 1s`.
    pub variant: String,
    /// From the start of the measured window to convergence.
    pub wall_seconds: f64,
    /// Messages replicated in the window.
    pub messages: u64,
    /// Changes made in the window (flag changes, deliveries).
    pub changes: u64,
    /// CPU seconds of the replicator.
    pub replicator_cpu: f64,
    /// CPU seconds of the master's Cyrus processes (the benchmark's own
    /// connections left out).
    pub master_cpu: f64,
    /// CPU seconds of the replica's Cyrus processes (likewise).
    pub replica_cpu: f64,
    /// Peak RSS of the replicator.
    pub peak_rss_bytes: u64,
    /// Workload-specific measures (latency quantiles in ms, …).
    pub metrics: BTreeMap<String, f64>,
}

impl Run {
    fn new(kind: Kind, variant: &str) -> Run {
        Run {
            replicator: kind.name().to_string(),
            variant: variant.to_string(),
            ..Run::default()
        }
    }

    fn in_round(mut self, round: usize) -> Run {
        self.round = round;
        self
    }

    /// Replicator + master + replica CPU seconds.
    pub fn total_cpu(&self) -> f64 {
        self.replicator_cpu + self.master_cpu + self.replica_cpu
    }
}

/// Sizes of the workloads (the issue's, or small ones with `--quick`).
#[derive(Debug, Clone)]
struct Sizes {
    w1_samples: usize,
    w2_messages: usize,
    w3_users: usize,
    w3_messages: usize,
    w4_messages: usize,
    w4_small_batch: usize,
    w5_messages: usize,
    w5_changes: usize,
    w6_messages: usize,
    w6_changes: usize,
    w7_messages: usize,
}

impl Sizes {
    fn new(quick: bool) -> Sizes {
        if quick {
            Sizes {
                w1_samples: 6,
                w2_messages: 200,
                w3_users: 4,
                w3_messages: 25,
                w4_messages: 1000,
                w4_small_batch: 100,
                w5_messages: 20,
                w5_changes: 300,
                w6_messages: 2000,
                w6_changes: 5,
                w7_messages: 32,
            }
        } else {
            Sizes {
                w1_samples: 30,
                w2_messages: 2000,
                w3_users: 20,
                w3_messages: 200,
                w4_messages: 10_000,
                w4_small_batch: 1000,
                w5_messages: 200,
                w5_changes: 5000,
                w6_messages: 20_000,
                w6_changes: 20,
                w7_messages: 1024,
            }
        }
    }
}

/// One replicator in one round, with users of its own.
#[derive(Debug, Clone, Copy)]
struct Slot {
    kind: Kind,
    round: usize,
}

impl Slot {
    /// For user names: `sc0`, `cy0`, `cy1`, …
    fn tag(self) -> String {
        format!("{}{}", self.kind.tag(), self.round)
    }
}

/// Both replicators in every round, the order alternating from one round to
/// the next, so that neither always runs on the warmer (or cooler) machine.
fn slots(rounds: usize) -> Vec<Slot> {
    (0..rounds.max(1))
        .flat_map(|round| {
            let order = if round % 2 == 0 {
                Kind::BOTH
            } else {
                [Kind::BOTH[1], Kind::BOTH[0]]
            };
            order.map(|kind| Slot { kind, round })
        })
        .collect()
}

/// Cyrus's default `sync_batchsize`.
const DEFAULT_BATCHSIZE: usize = 8192;
/// How long a workload may take to converge before the run is failed.
const CONVERGE_LIMIT: Duration = Duration::from_secs(900);

/// Runs the selected workloads on one pair.
pub fn run_all(options: &Options) -> Vec<Workload> {
    let selected = |id: &str| options.only.is_empty() || options.only.iter().any(|o| o == id);
    println!("==> starting a Cyrus master and replica (one channel, csync)");
    let base = pair_base();
    let pair = CyrusPair::start_opts(PairOptions {
        channels: Channels::DefaultOnly,
        base: base.as_deref(),
        ..PairOptions::default()
    });
    println!("    in {} (seed {:#x})", pair.dir.display(), options.seed);
    for (k, v) in &options.settings {
        pair.set_master_option(k, v);
        println!("    {k}: {v}");
    }
    let mut bench = Bench {
        pair,
        rng: Rng::new(options.seed),
        sizes: Sizes::new(options.quick),
        rounds: options.rounds.unwrap_or(if options.quick { 1 } else { 5 }),
    };
    type Step = fn(&mut Bench) -> Workload;
    let all: [(&str, Step); 8] = [
        ("W0", Bench::w0_idle),
        ("W1", Bench::w1_latency),
        ("W2", Bench::w2_backlog_one_user),
        ("W3", Bench::w3_backlog_many_users),
        ("W4", Bench::w4_seed_large_mailbox),
        ("W5", Bench::w5_flag_storm),
        ("W6", Bench::w6_single_changes_in_a_large_mailbox),
        ("W7", Bench::w7_seed_a_gigabyte),
    ];
    let mut out = Vec::new();
    for (id, f) in all {
        if selected(id) {
            println!("\n==> {id}");
            let started = Instant::now();
            let w = f(&mut bench);
            println!("    {id} done in {:.0} s", started.elapsed().as_secs_f64());
            out.push(w);
        }
    }
    out
}

/// Where the pair lives: a tmpfs (`/dev/shm`) when there is one. On a disk,
/// creating message files costs the replica's kernel more the more files
/// were recently deleted around them (ext4's inode search), which on a
/// machine that runs the test suite swamps what is being compared: replica
/// CPU for the same work was seen to vary threefold between runs.
/// `CYRSYNC_PAIR_BASE` chooses another place.
pub fn pair_base() -> Option<std::path::PathBuf> {
    let shm = std::path::Path::new("/dev/shm");
    let writable = tempfile::Builder::new()
        .prefix("cyrsync-probe-")
        .tempdir_in(shm)
        .is_ok();
    writable.then(|| shm.to_path_buf())
}

struct Bench {
    pair: CyrusPair,
    rng: Rng,
    sizes: Sizes,
    rounds: usize,
}

/// The CPU meters of both instances over a measured window.
struct Window {
    master: InstanceMeter,
    replica: InstanceMeter,
    started: Instant,
}

impl Bench {
    fn admin(&self) -> Imap {
        Imap::login(self.pair.master.imap_port, "cyrus", "cyruspw")
    }

    /// Creates `mailboxes` on the master, each readable and writable by the
    /// admin (for flag changes) and open to LMTP `+folder` delivery.
    fn create(&self, mailboxes: &[String]) {
        let mut admin = self.admin();
        for m in mailboxes {
            admin.ok(&format!("CREATE {m}"));
            admin.ok(&format!("SETACL {m} cyrus lrswipkxtecdan"));
            admin.ok(&format!("SETACL {m} anyone p"));
        }
    }

    /// Replicates `users` with a one-shot `sync_client -u` (set-up, not
    /// measured) and empties the log.
    fn replicate_setup(&self, users: &[String]) {
        // sync_client takes -u once, the userids as its arguments.
        let mut args = vec!["-u"];
        args.extend(users.iter().map(String::as_str));
        self.pair.sync_client(&args);
        self.take_log();
    }

    fn log_path(&self) -> std::path::PathBuf {
        self.pair.master.sync_log(None)
    }

    /// The master's sync log lines, removing the log.
    fn take_log(&self) -> Vec<String> {
        let path = self.log_path();
        let text = fs::read_to_string(&path).unwrap_or_default();
        let _ = fs::remove_file(&path);
        let _ = fs::remove_file(path.with_file_name("log-run"));
        text.lines().map(str::to_string).collect()
    }

    /// Writes `lines` as the master's sync log, owned by cyrus as Cyrus's
    /// writers leave it.
    fn write_log(&self, lines: &[String]) {
        let path = self.log_path();
        let mut text = lines.join("\n");
        text.push('\n');
        fs::write(&path, text).expect("write sync log");
        let meta = fs::metadata(path.parent().expect("sync dir")).expect("stat sync dir");
        std::os::unix::fs::chown(
            &path,
            Some(std::os::unix::fs::MetadataExt::uid(&meta)),
            Some(std::os::unix::fs::MetadataExt::gid(&meta)),
        )
        .expect("chown sync log");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod sync log");
    }

    /// Delivers `count` messages over two LMTP connections; message `i`
    /// goes to every recipient of `rcpts(i)` in one transaction.
    fn deliver_many(
        &self,
        count: usize,
        rcpts: &(dyn Fn(usize) -> Vec<String> + Sync),
        body: &(dyn Fn(usize) -> String + Sync),
    ) {
        let port = self.pair.master.lmtp_port;
        let started = Instant::now();
        std::thread::scope(|s| {
            for t in 0..2 {
                s.spawn(move || {
                    let mut lmtp = Lmtp::connect(port);
                    for i in (t..count).step_by(2) {
                        let r = rcpts(i);
                        let r: Vec<&str> = r.iter().map(String::as_str).collect();
                        lmtp.deliver_to(&r, &body(i));
                    }
                });
            }
        });
        println!(
            "    delivered {count} message(s) in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }

    fn window(&self, sides: &Sides, master_own: &[i32], replica_own: &[i32]) -> Window {
        let mut m = master_own.to_vec();
        m.push(sides.pids.0);
        let mut r = replica_own.to_vec();
        r.push(sides.pids.1);
        Window {
            master: InstanceMeter::start(&self.pair.master, &m),
            replica: InstanceMeter::start(&self.pair.replica, &r),
            started: Instant::now(),
        }
    }

    fn close_window(&self, w: &Window, rep: &mut Replicator, run: &mut Run) {
        rep.assert_running(&self.pair);
        run.replicator_cpu = rep.cpu_seconds();
        run.master_cpu = w.master.seconds(&self.pair.master);
        run.replica_cpu = w.replica.seconds(&self.pair.replica);
        run.peak_rss_bytes = rep.peak_rss();
    }

    /// After a run: both sides agree record for record, and the replicator
    /// left nothing in the log.
    fn verify(&self, sides: &mut Sides, names: &[String], run: &Run) {
        let diffs = sides.compare_full(names);
        assert!(
            diffs.is_empty(),
            "{} {}: master and replica differ after convergence:\n{}",
            run.replicator,
            run.variant,
            diffs.join("\n")
        );
        let left = self.take_log();
        if !left.is_empty() {
            println!(
                "    note: {} line(s) left in the log after {} ({})",
                left.len(),
                run.replicator,
                left.first().map(String::as_str).unwrap_or("")
            );
        }
    }

    fn print(run: &Run) {
        let metrics: Vec<String> = run
            .metrics
            .iter()
            .map(|(k, v)| format!("{k} {v:.1}"))
            .collect();
        println!(
            "    {:<11} {:<28} {:>8.2} s  cpu {:.2}/{:.2}/{:.2} s  rss {:.1} MB  {}",
            run.replicator,
            run.variant,
            run.wall_seconds,
            run.replicator_cpu,
            run.master_cpu,
            run.replica_cpu,
            run.peak_rss_bytes as f64 / 1e6,
            metrics.join(", ")
        );
    }

    /// A backlog of `lines` for `users` (mailboxes `names`), given to a
    /// replicator that starts in the measured window; time to convergence.
    fn backlog_run(
        &mut self,
        slot: Slot,
        variant: &str,
        lines: &[String],
        users: &[String],
        names: &[String],
        messages: usize,
    ) -> Run {
        let mine: Vec<String> = lines
            .iter()
            .filter(|l| belongs_to(l, users))
            .cloned()
            .collect();
        assert!(!mine.is_empty(), "no log lines for {users:?}");
        self.write_log(&mine);
        let mut sides = Sides::open(&self.pair);
        let want = sides.master(names);
        assert_eq!(want.len(), names.len(), "mailboxes missing on the master");
        let kind = slot.kind;
        let mut run = Run::new(kind, variant).in_round(slot.round);
        let window = self.window(&sides, &[], &[]);
        let mut rep = Replicator::start(kind, &self.pair);
        let wall = sides
            .wait_replica(
                &want,
                window.started,
                Duration::from_millis(20),
                CONVERGE_LIMIT,
            )
            .unwrap_or_else(|| rep.fail(&self.pair, &format!("did not converge on {variant}")));
        self.close_window(&window, &mut rep, &mut run);
        rep.stop();
        run.wall_seconds = wall.as_secs_f64();
        run.messages = messages as u64;
        run.changes = mine.len() as u64;
        run.metrics.insert(
            "messages_per_second".into(),
            messages as f64 / run.wall_seconds,
        );
        run.metrics.insert("log_lines".into(), mine.len() as f64);
        self.verify(&mut sides, names, &run);
        Self::print(&run);
        run
    }

    /// W0: an idle replicator (nothing in the log) for a while: its CPU and
    /// what it costs the servers.
    fn w0_idle(&mut self) -> Workload {
        let seconds = if self.sizes.w1_samples < 30 { 5 } else { 10 };
        let mut runs = Vec::new();
        for kind in Kind::BOTH {
            let mut rep = Replicator::start(kind, &self.pair);
            std::thread::sleep(Duration::from_secs(3));
            let sides = Sides::open(&self.pair);
            let mut run = Run::new(kind, "sync_repeat_interval: 1s");
            let window = self.window(&sides, &[], &[]);
            rep.reset_cpu();
            std::thread::sleep(Duration::from_secs(seconds));
            self.close_window(&window, &mut rep, &mut run);
            rep.stop();
            run.wall_seconds = window.started.elapsed().as_secs_f64();
            Self::print(&run);
            runs.push(run);
        }
        Workload {
            id: "W0".into(),
            title: "idle".into(),
            params: format!("{seconds} s with nothing to replicate, after 3 s to settle"),
            runs,
        }
    }

    /// W1: one delivery, then the replica is polled until it agrees.
    fn w1_latency(&mut self) -> Workload {
        let users: Vec<String> = Kind::BOTH
            .iter()
            .map(|k| format!("w1{}", k.tag()))
            .collect();
        let inboxes: Vec<String> = users.iter().map(|u| format!("user.{u}")).collect();
        self.create(&inboxes);
        self.replicate_setup(&users);
        let samples = self.sizes.w1_samples;
        let mut runs = Vec::new();
        for interval in ["1s", "0"] {
            self.pair
                .set_master_option("sync_repeat_interval", interval);
            for kind in Kind::BOTH {
                let user = format!("w1{}", kind.tag());
                let names = vec![format!("user.{user}")];
                let mut rep = Replicator::start(kind, &self.pair);
                let mut sides = Sides::open(&self.pair);
                let mut lmtp = Lmtp::connect(self.pair.master.lmtp_port);
                let lmtp_pid = server_pid(self.pair.master.lmtp_port, lmtp.local_port());
                // A first delivery, not measured: connections and caches
                // are set up.
                lmtp.deliver(&user, &message(0, &format!("w1 warm-up {interval}")));
                let want = sides.master(&names);
                sides
                    .wait_replica(
                        &want,
                        Instant::now(),
                        Duration::from_millis(5),
                        Duration::from_secs(60),
                    )
                    .unwrap_or_else(|| rep.fail(&self.pair, "did not replicate a delivery"));
                let mut run = Run::new(kind, &format!("sync_repeat_interval: {interval}"));
                let window = self.window(&sides, &lmtp_pid.into_iter().collect::<Vec<_>>(), &[]);
                rep.reset_cpu();
                let mut latencies = Vec::new();
                for i in 0..samples {
                    let pause = self.rng.range_f64(0.5, 2.0);
                    std::thread::sleep(Duration::from_secs_f64(pause));
                    lmtp.deliver(&user, &message(i + 1, &format!("w1 {interval}")));
                    let t0 = Instant::now();
                    let want = sides.master(&names);
                    let l = sides
                        .wait_replica(&want, t0, Duration::from_millis(2), Duration::from_secs(60))
                        .unwrap_or_else(|| rep.fail(&self.pair, "did not replicate a delivery"));
                    latencies.push(l.as_secs_f64() * 1000.0);
                }
                self.close_window(&window, &mut rep, &mut run);
                rep.stop();
                run.wall_seconds = window.started.elapsed().as_secs_f64();
                run.messages = samples as u64;
                run.changes = samples as u64;
                for (k, q) in [("p50_ms", 0.5), ("p95_ms", 0.95), ("max_ms", 1.0)] {
                    run.metrics.insert(k.into(), quantile(&latencies, q));
                }
                run.metrics.insert(
                    "min_ms".into(),
                    latencies.iter().copied().fold(f64::INFINITY, f64::min),
                );
                run.metrics.insert(
                    "cpu_ms_per_delivery".into(),
                    run.total_cpu() * 1000.0 / samples as f64,
                );
                self.verify(&mut sides, &names, &run);
                Self::print(&run);
                runs.push(run);
            }
        }
        self.pair.set_master_option("sync_repeat_interval", "1s");
        Workload {
            id: "W1".into(),
            title: "latency of one delivery".into(),
            params: format!(
                "{samples} deliveries per run, spaced 0.5–2.0 s at random; the replica polled every 2 ms"
            ),
            runs,
        }
    }

    /// W2: 2 000 messages queued for one user, then the replicator starts.
    fn w2_backlog_one_user(&mut self) -> Workload {
        let n = self.sizes.w2_messages;
        let slots = slots(self.rounds);
        let users: Vec<String> = slots.iter().map(|s| format!("w2{}", s.tag())).collect();
        let inboxes: Vec<String> = users.iter().map(|u| format!("user.{u}")).collect();
        self.create(&inboxes);
        self.replicate_setup(&users);
        let rcpts = users.clone();
        self.deliver_many(n, &|_| rcpts.clone(), &|i| message(i, "w2 backlog"));
        let lines = self.take_log();
        let mut runs = Vec::new();
        for (slot, user) in slots.into_iter().zip(&users) {
            let names = vec![format!("user.{user}")];
            runs.push(self.backlog_run(
                slot,
                "backlog",
                &lines,
                std::slice::from_ref(user),
                &names,
                n,
            ));
        }
        Workload {
            id: "W2".into(),
            title: "backlog, one user".into(),
            params: format!(
                "{n} messages delivered with the replicator stopped, then started; {} round(s)",
                self.rounds
            ),
            runs,
        }
    }

    /// W3: 20 users × 200 messages queued, then the replicator starts.
    fn w3_backlog_many_users(&mut self) -> Workload {
        let (u, n) = (self.sizes.w3_users, self.sizes.w3_messages);
        let slots = slots(self.rounds);
        let users = |slot: Slot| -> Vec<String> {
            (0..u).map(|i| format!("w3{}u{i:02}", slot.tag())).collect()
        };
        let all: Vec<String> = slots.iter().flat_map(|s| users(*s)).collect();
        let inboxes: Vec<String> = all.iter().map(|u| format!("user.{u}")).collect();
        self.create(&inboxes);
        self.replicate_setup(&all);
        let per_slot: Vec<Vec<String>> = slots.iter().map(|s| users(*s)).collect();
        self.deliver_many(
            u * n,
            &|i| per_slot.iter().map(|us| us[i % u].clone()).collect(),
            &|i| message(i, &format!("w3 user {}", i % u)),
        );
        let lines = self.take_log();
        let mut runs = Vec::new();
        for slot in slots {
            let mine = users(slot);
            let names: Vec<String> = mine.iter().map(|u| format!("user.{u}")).collect();
            runs.push(self.backlog_run(slot, "backlog", &lines, &mine, &names, u * n));
        }
        Workload {
            id: "W3".into(),
            title: "backlog, many users".into(),
            params: format!(
                "{u} users × {n} messages delivered with the replicator stopped; {} round(s)",
                self.rounds
            ),
            runs,
        }
    }

    /// W4: a 10 000-message mailbox the replica has never seen, with
    /// `sync_batchsize` at its default and at 1 000.
    fn w4_seed_large_mailbox(&mut self) -> Workload {
        let n = self.sizes.w4_messages;
        let batches = [DEFAULT_BATCHSIZE, self.sizes.w4_small_batch];
        let slots = slots(self.rounds);
        let user = |slot: Slot, b: usize| format!("w4{}b{b}", slot.tag());
        let mut all = Vec::new();
        for b in batches {
            for slot in &slots {
                all.push(user(*slot, b));
            }
        }
        let inboxes: Vec<String> = all.iter().map(|u| format!("user.{u}")).collect();
        // Created and filled with no replicator: the replica has nothing.
        self.create(&inboxes);
        let rcpts = all.clone();
        self.deliver_many(n, &|_| rcpts.clone(), &|i| message(i, "w4 seed"));
        let lines = self.take_log();
        let mut runs = Vec::new();
        for b in batches {
            self.pair
                .set_master_option("sync_batchsize", &b.to_string());
            for slot in &slots {
                let u = user(*slot, b);
                let names = vec![format!("user.{u}")];
                runs.push(self.backlog_run(
                    *slot,
                    &format!("sync_batchsize: {b}"),
                    &lines,
                    &[u],
                    &names,
                    n,
                ));
            }
        }
        self.pair
            .set_master_option("sync_batchsize", &DEFAULT_BATCHSIZE.to_string());
        Workload {
            id: "W4".into(),
            title: "seeding one large mailbox".into(),
            params: format!(
                "{n} messages in a mailbox the replica does not have; {} round(s)",
                self.rounds
            ),
            runs,
        }
    }

    /// W5: 5 000 flag changes across 5 mailboxes, made as fast as IMAP
    /// allows while the replicator runs; time until the replica agrees.
    fn w5_flag_storm(&mut self) -> Workload {
        let (m, changes) = (self.sizes.w5_messages, self.sizes.w5_changes);
        let slots = slots(self.rounds);
        let folders = |slot: Slot| -> Vec<String> {
            let user = format!("w5{}", slot.tag());
            let mut v = vec![format!("user.{user}")];
            v.extend((1..5).map(|f| format!("user.{user}.f{f}")));
            v
        };
        let all: Vec<String> = slots.iter().flat_map(|s| folders(*s)).collect();
        self.create(&all);
        let rcpt = |slot: Slot, f: usize| {
            let user = format!("w5{}", slot.tag());
            if f == 0 { user } else { format!("{user}+f{f}") }
        };
        self.deliver_many(
            5 * m,
            &|i| slots.iter().map(|s| rcpt(*s, i % 5)).collect::<Vec<_>>(),
            &|i| message(i, "w5 storm"),
        );
        let users: Vec<String> = slots.iter().map(|s| format!("w5{}", s.tag())).collect();
        self.replicate_setup(&users);
        let mut runs = Vec::new();
        // At 1 s (what admins configure) the last changes wait for the next
        // run, so the rate falls in steps; at 0 the storm itself is measured.
        for (interval, slot) in ["1s", "0"]
            .into_iter()
            .flat_map(|i| slots.iter().map(move |s| (i, *s)))
        {
            self.pair
                .set_master_option("sync_repeat_interval", interval);
            let kind = slot.kind;
            let names = folders(slot);
            let mut rep = Replicator::start(kind, &self.pair);
            std::thread::sleep(Duration::from_secs(2));
            let mut conns: Vec<Imap> = names
                .iter()
                .map(|n| {
                    let mut c = self.admin();
                    c.ok(&format!("SELECT {n}"));
                    c
                })
                .collect();
            let own: Vec<i32> = conns
                .iter()
                .filter_map(|c| server_pid(self.pair.master.imap_port, c.local_port()))
                .collect();
            let mut sides = Sides::open(&self.pair);
            let mut flagged: BTreeSet<(usize, u64)> = BTreeSet::new();
            let mut run =
                Run::new(kind, &format!("sync_repeat_interval: {interval}")).in_round(slot.round);
            let window = self.window(&sides, &own, &[]);
            rep.reset_cpu();
            for i in 0..changes {
                let f = i % 5;
                let uid = self.rng.range(1, m as u64 + 1);
                let op = if flagged.remove(&(f, uid)) {
                    "-FLAGS"
                } else {
                    flagged.insert((f, uid));
                    "+FLAGS"
                };
                conns[f].ok(&format!("UID STORE {uid} {op}.SILENT (\\Flagged)"));
            }
            let storm = window.started.elapsed().as_secs_f64();
            let want = sides.master(&names);
            let wall = sides
                .wait_replica(
                    &want,
                    window.started,
                    Duration::from_millis(20),
                    CONVERGE_LIMIT,
                )
                .unwrap_or_else(|| rep.fail(&self.pair, "did not converge"));
            self.close_window(&window, &mut rep, &mut run);
            rep.stop();
            run.wall_seconds = wall.as_secs_f64();
            run.changes = changes as u64;
            run.metrics.insert("storm_seconds".into(), storm);
            run.metrics
                .insert("catch_up_seconds".into(), run.wall_seconds - storm);
            run.metrics.insert(
                "changes_per_second".into(),
                changes as f64 / run.wall_seconds,
            );
            drop(conns);
            self.verify(&mut sides, &names, &run);
            Self::print(&run);
            runs.push(run);
        }
        self.pair.set_master_option("sync_repeat_interval", "1s");
        Workload {
            id: "W5".into(),
            title: "flag storm".into(),
            params: format!(
                "{changes} flag changes (UID STORE ±\\Flagged, one per command) across 5 mailboxes of {m} messages, while the replicator runs, at sync_repeat_interval 1s and 0; {} round(s) each",
                self.rounds
            ),
            runs,
        }
    }

    /// W6: one flag change at a time in a 20 000-message mailbox: CPU per
    /// change and how long a concurrent STORE on the master waits.
    fn w6_single_changes_in_a_large_mailbox(&mut self) -> Workload {
        let (n, changes) = (self.sizes.w6_messages, self.sizes.w6_changes);
        let name = "user.w6".to_string();
        let names = vec![name.clone()];
        self.create(&names);
        self.deliver_many(n, &|_| vec!["w6".to_string()], &|i| message(i, "w6 large"));
        // UID 1 is the probe's: flagged once, then only flagged again, which
        // changes nothing (no modseq, no log line) but takes the same
        // exclusive lock as any STORE.
        self.admin_store(&name, "UID STORE 1 +FLAGS.SILENT (\\Flagged)");
        println!("    replicating the {n}-message mailbox (set-up, sync_client -u)");
        self.replicate_setup(&["w6".to_string()]);

        let mut probe = self.admin();
        probe.ok(&format!("SELECT {name}"));
        let idle: Vec<f64> = (0..20).map(|_| timed_store(&mut probe)).collect();
        let idle_p50 = quantile(&idle, 0.5);
        assert!(
            self.take_log().is_empty(),
            "the probe STORE wrote to the sync log: it would cause replication"
        );

        let mut runs = Vec::new();
        let mut flagged = BTreeSet::new();
        for kind in Kind::BOTH {
            let mut rep = Replicator::start(kind, &self.pair);
            let mut changer = self.admin();
            changer.ok(&format!("SELECT {name}"));
            let own: Vec<i32> = [changer.local_port(), probe.local_port()]
                .into_iter()
                .filter_map(|p| server_pid(self.pair.master.imap_port, p))
                .collect();
            let mut sides = Sides::open(&self.pair);
            let mut change = |rng: &mut Rng, changer: &mut Imap| {
                let uid = rng.range(2, n as u64 + 1);
                let op = if flagged.remove(&uid) {
                    "-FLAGS"
                } else {
                    flagged.insert(uid);
                    "+FLAGS"
                };
                changer.ok(&format!("UID STORE {uid} {op}.SILENT (\\Flagged)"));
            };
            // A first change, not measured (sessions, mailbox lookups).
            change(&mut self.rng, &mut changer);
            let want = sides.master(&names);
            sides
                .wait_replica(
                    &want,
                    Instant::now(),
                    Duration::from_millis(5),
                    Duration::from_secs(120),
                )
                .unwrap_or_else(|| rep.fail(&self.pair, "did not replicate a change"));
            let mut run = Run::new(kind, "sync_repeat_interval: 1s");
            let window = self.window(&sides, &own, &[]);
            rep.reset_cpu();
            let mut latencies = Vec::new();
            let mut probes = Vec::new();
            for _ in 0..changes {
                let pause = self.rng.range_f64(0.5, 1.5);
                std::thread::sleep(Duration::from_secs_f64(pause));
                change(&mut self.rng, &mut changer);
                let t0 = Instant::now();
                let want = sides.master(&names);
                // While the replicator works on the change, a STORE on the
                // same mailbox every 5 ms: its time is the master's lock.
                loop {
                    probes.push(timed_store(&mut probe));
                    if sides.replica(&names) == want {
                        break;
                    }
                    if t0.elapsed() > Duration::from_secs(120) {
                        rep.fail(&self.pair, "did not replicate a change");
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                latencies.push(t0.elapsed().as_secs_f64() * 1000.0);
            }
            self.close_window(&window, &mut rep, &mut run);
            rep.stop();
            run.wall_seconds = window.started.elapsed().as_secs_f64();
            run.changes = changes as u64;
            let per = |s: f64| s * 1000.0 / changes as f64;
            run.metrics
                .insert("cpu_ms_per_change".into(), per(run.total_cpu()));
            run.metrics.insert(
                "replicator_cpu_ms_per_change".into(),
                per(run.replicator_cpu),
            );
            run.metrics
                .insert("master_cpu_ms_per_change".into(), per(run.master_cpu));
            run.metrics
                .insert("replica_cpu_ms_per_change".into(), per(run.replica_cpu));
            run.metrics
                .insert("latency_p50_ms".into(), quantile(&latencies, 0.5));
            run.metrics
                .insert("store_delay_max_ms".into(), quantile(&probes, 1.0));
            run.metrics
                .insert("store_delay_p95_ms".into(), quantile(&probes, 0.95));
            run.metrics.insert("store_idle_p50_ms".into(), idle_p50);
            drop(changer);
            self.verify(&mut sides, &names, &run);
            Self::print(&run);
            runs.push(run);
        }
        Workload {
            id: "W6".into(),
            title: "single flag changes in a large mailbox".into(),
            params: format!(
                "{changes} changes, one at a time (0.5–1.5 s apart), in a {n}-message mailbox; a probe STORE on the master every 5 ms until the replica agrees"
            ),
            runs,
        }
    }

    fn admin_store(&self, mailbox: &str, command: &str) {
        let mut admin = self.admin();
        admin.ok(&format!("SELECT {mailbox}"));
        admin.ok(command);
    }

    /// W7: about 1 GiB of 1 MiB messages seeded: the replicator's memory.
    fn w7_seed_a_gigabyte(&mut self) -> Workload {
        let n = self.sizes.w7_messages;
        let users: Vec<String> = Kind::BOTH
            .iter()
            .map(|k| format!("w7{}", k.tag()))
            .collect();
        let inboxes: Vec<String> = users.iter().map(|u| format!("user.{u}")).collect();
        self.create(&inboxes);
        let rcpts = users.clone();
        self.deliver_many(n, &|_| rcpts.clone(), &big_message);
        let lines = self.take_log();
        let mut runs = Vec::new();
        for (kind, user) in Kind::BOTH.into_iter().zip(&users) {
            let names = vec![format!("user.{user}")];
            let slot = Slot { kind, round: 0 };
            let mut run =
                self.backlog_run(slot, "seed", &lines, std::slice::from_ref(user), &names, n);
            run.metrics.insert(
                "megabytes_per_second".into(),
                n as f64 * BIG_MESSAGE as f64 / 1e6 / run.wall_seconds,
            );
            runs.push(run);
        }
        Workload {
            id: "W7".into(),
            title: "seeding 1 GiB of mail".into(),
            params: format!(
                "{n} messages of 1 MiB ({:.2} GiB) in a mailbox the replica does not have",
                n as f64 / 1024.0
            ),
            runs,
        }
    }
}

/// The size of W7's messages.
const BIG_MESSAGE: usize = 1 << 20;

/// A 1 MiB message, different for each `i`.
fn big_message(i: usize) -> String {
    let mut m = format!(
        "From: sender@example.org\nTo: rcpt@example.org\nSubject: w7 big {i}\n\
         Message-ID: <cyrsync-w7-{i}@example.org>\nDate: Thu, 03 Dec 2026 12:00:00 +0000\n\n"
    );
    let mut line = 0usize;
    while m.len() < BIG_MESSAGE {
        m.push_str(&format!(
            "{i:08} {line:08} the quick brown fox jumps over the lazy dog 0123456789\n"
        ));
        line += 1;
    }
    m
}

/// One STORE that changes nothing, timed in ms.
fn timed_store(probe: &mut Imap) -> f64 {
    let t = Instant::now();
    probe.ok("UID STORE 1 +FLAGS.SILENT (\\Flagged)");
    t.elapsed().as_secs_f64() * 1000.0
}

/// Whether a sync log line concerns one of `users` (its mailboxes
/// `user.<u>[.…]` or the bare userid of USER/META/SEEN/SUB lines).
fn belongs_to(line: &str, users: &[String]) -> bool {
    line.split_whitespace().skip(1).any(|token| {
        let token = token.trim_matches('"');
        users.iter().any(|u| {
            token == u
                || token
                    .strip_prefix("user.")
                    .and_then(|rest| rest.strip_prefix(u.as_str()))
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
        })
    })
}
