//! BENCHMARKS.md (a summary against the targets, then every run) and
//! BENCHMARKS.json (the same numbers, raw).

use std::fmt::Write as _;
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::workloads::{Run, Workload};

/// Where and with what the benchmark ran.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    pub date: String,
    pub host: String,
    pub cpu: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub cyrus: String,
    pub cyrsync: String,
    pub rustc: String,
    pub seed: u64,
    pub quick: bool,
    pub settings: Vec<(String, String)>,
    pub pair_dir: String,
}

fn command_line(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

impl Machine {
    /// Describes this machine and the versions under test.
    pub fn describe(
        seed: u64,
        quick: bool,
        settings: &[(String, String)],
        pair_dir: &std::path::Path,
    ) -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem_kb: f64 = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        let commit = command_line("git", &["describe", "--always", "--dirty"]);
        Machine {
            date: command_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
            host: command_line("uname", &["-srm"]),
            cpu,
            cores: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(0),
            memory_gib: mem_kb / 1024.0 / 1024.0,
            cyrus: format!(
                "Cyrus IMAPd {} (Debian package cyrus-imapd)",
                command_line("dpkg-query", &["-W", "-f", "${Version}", "cyrus-imapd"])
            ),
            cyrsync: format!(
                "cyrsync {} ({commit}), release build",
                env!("CARGO_PKG_VERSION")
            ),
            rustc: command_line("rustc", &["--version"]),
            seed,
            quick,
            settings: settings.to_vec(),
            pair_dir: format!(
                "{} ({})",
                pair_dir.display(),
                command_line("stat", &["-f", "-c", "%T", &pair_dir.to_string_lossy()])
            ),
        }
    }
}

/// One line of the summary: a measure of both replicators against a target.
struct Verdict {
    workload: String,
    measure: String,
    sync_client: f64,
    cyrsync: f64,
    unit: &'static str,
    /// cyrsync's advantage (> 1: cyrsync better).
    advantage: f64,
    target: String,
    met: bool,
}

/// One replicator's runs of one variant (one per round).
struct Runs<'a>(Vec<&'a Run>);

impl Runs<'_> {
    /// The median over the rounds of `f`.
    fn median(&self, f: impl Fn(&Run) -> f64) -> f64 {
        let mut v: Vec<f64> = self.0.iter().map(|r| f(r)).collect();
        v.sort_by(f64::total_cmp);
        match v.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }

    fn metric(&self, key: &str) -> f64 {
        self.median(|r| r.metrics.get(key).copied().unwrap_or(f64::NAN))
    }

    fn total_cpu(&self) -> f64 {
        self.median(Run::total_cpu)
    }

    fn replicator_cpu(&self) -> f64 {
        self.median(|r| r.replicator_cpu)
    }

    /// The largest peak RSS of any round, in MB.
    fn peak_rss_mb(&self) -> f64 {
        self.0
            .iter()
            .map(|r| r.peak_rss_bytes as f64 / 1e6)
            .fold(f64::NAN, f64::max)
    }
}

fn runs<'a>(w: &'a Workload, replicator: &str, variant: &str) -> Runs<'a> {
    Runs(
        w.runs
            .iter()
            .filter(|r| r.replicator == replicator && r.variant == variant)
            .collect(),
    )
}

/// Both replicators' runs of `variant`, when both ran.
fn pair<'a>(w: &'a Workload, variant: &str) -> Option<(Runs<'a>, Runs<'a>)> {
    let (sc, cy) = (runs(w, "sync_client", variant), runs(w, "cyrsync", variant));
    (!sc.0.is_empty() && !cy.0.is_empty()).then_some((sc, cy))
}

fn variants(w: &Workload) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for r in &w.runs {
        if !v.contains(&r.variant) {
            v.push(r.variant.clone());
        }
    }
    v
}

fn verdicts(workloads: &[Workload], cores: usize) -> Vec<Verdict> {
    let mut out = Vec::new();
    for w in workloads {
        for variant in variants(w) {
            let Some((sc, cy)) = pair(w, &variant) else {
                continue;
            };
            let label = format!("{} {variant}", w.id);
            let mut push = |measure: &str,
                            a: f64,
                            b: f64,
                            unit: &'static str,
                            lower_better: bool,
                            target: String,
                            met: bool| {
                out.push(Verdict {
                    workload: label.clone(),
                    measure: measure.into(),
                    sync_client: a,
                    cyrsync: b,
                    unit,
                    // A ratio of (near) zeros says nothing.
                    advantage: if a.abs() < 1e-9 || b.abs() < 1e-9 {
                        f64::NAN
                    } else if lower_better {
                        a / b
                    } else {
                        b / a
                    },
                    target,
                    met,
                })
            };
            match w.id.as_str() {
                "W0" => {
                    let (a, b) = (sc.replicator_cpu(), cy.replicator_cpu());
                    push(
                        "replicator CPU while idle",
                        a,
                        b,
                        "s",
                        true,
                        "≈ 0 (≤ 0.05 s)".into(),
                        b <= 0.05,
                    );
                }
                "W1" => {
                    let (a, b) = (sc.metric("p50_ms"), cy.metric("p50_ms"));
                    let (target, met) = if variant.ends_with("1s") {
                        ("cyrsync p50 ≤ 60 ms".to_string(), b <= 60.0)
                    } else {
                        ("no worse than sync_client".to_string(), b <= a)
                    };
                    push("latency p50", a, b, "ms", true, target, met);
                    let (a, b) = (sc.metric("p95_ms"), cy.metric("p95_ms"));
                    push("latency p95", a, b, "ms", true, "—".into(), true);
                }
                "W2" | "W3" | "W4" | "W7" => {
                    let (a, b) = (
                        sc.metric("messages_per_second"),
                        cy.metric("messages_per_second"),
                    );
                    let need = if w.id == "W3" { 2.0 } else { 1.0 };
                    // What the machine allows: cyrsync's CPU (replicator,
                    // master, replica) spread over every core at once.
                    let bound =
                        sc.median(|r| r.wall_seconds) / (cy.total_cpu() / cores.max(1) as f64);
                    let beyond = if bound < need {
                        format!(
                            " (beyond {cores} cores: the bound below is {}×)",
                            num(bound)
                        )
                    } else {
                        String::new()
                    };
                    push(
                        "throughput",
                        a,
                        b,
                        "msg/s",
                        false,
                        format!("≥ {need:.1}× sync_client{beyond}"),
                        b / a >= need,
                    );
                    push(
                        "total CPU (replicator + master + replica)",
                        sc.total_cpu(),
                        cy.total_cpu(),
                        "s",
                        true,
                        "—".into(),
                        true,
                    );
                    push(
                        &format!("throughput bound: cyrsync's total CPU on all {cores} cores"),
                        f64::NAN,
                        f64::NAN,
                        "",
                        false,
                        format!("best possible advantage {}×", num(bound)),
                        true,
                    );
                    push(
                        "cores kept busy (total CPU / wall)",
                        sc.median(|r| r.total_cpu() / r.wall_seconds),
                        cy.median(|r| r.total_cpu() / r.wall_seconds),
                        "",
                        false,
                        "—".into(),
                        true,
                    );
                    if w.id != "W3" {
                        // One mailbox goes through one replica connection,
                        // whose sync_server stores it serially: no
                        // replicator converges before it is done.
                        let serial = sc.median(|r| r.wall_seconds) / cy.median(|r| r.replica_cpu);
                        push(
                            "throughput bound: the replica's CPU, serial in its one sync_server",
                            f64::NAN,
                            f64::NAN,
                            "",
                            false,
                            format!("best possible advantage {}×", num(serial)),
                            true,
                        );
                    }
                    if w.id == "W7" {
                        let (a, b) = (sc.peak_rss_mb(), cy.peak_rss_mb());
                        push(
                            "peak RSS of the replicator",
                            a,
                            b,
                            "MB",
                            true,
                            "≤ 64 MB".into(),
                            b <= 64.0,
                        );
                    }
                }
                "W5" => {
                    let (a, b) = (
                        sc.metric("changes_per_second"),
                        cy.metric("changes_per_second"),
                    );
                    push(
                        "changes replicated per second",
                        a,
                        b,
                        "changes/s",
                        false,
                        "≥ 1.0× sync_client".into(),
                        b / a >= 1.0,
                    );
                    push(
                        "total CPU (replicator + master + replica)",
                        sc.total_cpu(),
                        cy.total_cpu(),
                        "s",
                        true,
                        "—".into(),
                        true,
                    );
                }
                "W6" => {
                    let (a, b) = (
                        sc.metric("cpu_ms_per_change"),
                        cy.metric("cpu_ms_per_change"),
                    );
                    push(
                        "CPU per change (replicator + master + replica)",
                        a,
                        b,
                        "ms",
                        true,
                        "≤ 2× sync_client".into(),
                        b <= 2.0 * a,
                    );
                    let (a, b) = (
                        sc.metric("store_delay_max_ms"),
                        cy.metric("store_delay_max_ms"),
                    );
                    push(
                        "concurrent STORE on the master, worst",
                        a,
                        b,
                        "ms",
                        true,
                        "≤ 20 ms".into(),
                        b <= 20.0,
                    );
                    let (a, b) = (sc.metric("latency_p50_ms"), cy.metric("latency_p50_ms"));
                    push("latency p50", a, b, "ms", true, "—".into(), true);
                }
                _ => {}
            }
        }
    }
    out
}

fn num(v: f64) -> String {
    if v.is_nan() {
        "—".into()
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// The report as Markdown and as JSON.
pub fn render(m: &Machine, workloads: &[Workload]) -> (String, String) {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# Benchmarks: cyrsync and Cyrus's sync_client, side by side\n"
    );
    if m.quick {
        let _ = writeln!(
            md,
            "**Quick run (small sizes, `--quick`): checks the harness; not the record.**\n"
        );
    }
    let _ = writeln!(
        md,
        "Produced by `scripts/bench.sh` (`cargo bench --bench replication`): one real Cyrus \
         master and replica on loopback, one channel over csync, the same imapd.conf for both \
         replicators, which run in turn on the same workloads (each with users of its own and \
         identical messages). Convergence is judged by comparing both sides — `GET MAILBOXES` \
         (sync CRCs, LAST_UID, HIGHESTMODSEQ, UIDVALIDITY) polled on the replica against the \
         master, then every record of `GET FULLMAILBOX` compared — never by counting. CPU is \
         read from /proc: the replicator, and each Cyrus instance's process tree less the \
         server processes of the benchmark's own connections (delivery, flag changes, polling). \
         `sync_client` reads the master's files directly, so its master CPU is near zero; \
         cyrsync reads the master through its sync_server (`GET`) and, on the master host, its \
         index and spool files.\n"
    );
    let _ = writeln!(md, "| | |\n|---|---|");
    for (k, v) in [
        ("date", m.date.clone()),
        (
            "machine",
            format!(
                "{}; {}; {} cores; {:.0} GiB",
                m.host, m.cpu, m.cores, m.memory_gib
            ),
        ),
        ("Cyrus", m.cyrus.clone()),
        ("pair directory (filesystem)", m.pair_dir.clone()),
        ("cyrsync", m.cyrsync.clone()),
        ("compiler", m.rustc.clone()),
        ("seed", format!("{:#x}", m.seed)),
        (
            "extra settings",
            if m.settings.is_empty() {
                "none (cyrsync's defaults: 4 workers, local master reader)".to_string()
            } else {
                m.settings
                    .iter()
                    .map(|(k, v)| format!("`{k}: {v}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        ),
    ] {
        let _ = writeln!(md, "| {k} | {v} |");
    }

    let _ = writeln!(md, "\n## Summary\n");
    let _ = writeln!(
        md,
        "Each value is the median over the rounds a workload ran (the throughput \
         workloads run several, the two replicators' order alternating). Advantage: how \
         many times better cyrsync is on that measure (above 1: cyrsync better; below 1: \
         worse).\n"
    );
    let _ = writeln!(
        md,
        "| workload | measure | sync_client | cyrsync | advantage | target | met |\n|---|---|---:|---:|---:|---|---|"
    );
    for v in verdicts(workloads, m.cores) {
        let _ = writeln!(
            md,
            "| {} | {} | {} {u} | {} {u} | {} | {} | {} |",
            v.workload,
            v.measure,
            num(v.sync_client),
            num(v.cyrsync),
            if v.advantage.is_nan() {
                "—".to_string()
            } else {
                format!("{}×", num(v.advantage))
            },
            v.target,
            if v.target == "—" || v.target.starts_with("best possible") {
                ""
            } else if v.met {
                "yes"
            } else {
                "**no**"
            },
            u = v.unit
        );
    }

    let _ = writeln!(
        md,
        "\n**Reading the throughput rows.** Most of the CPU in W2–W4 and W7 is the \
         replica's sync_server storing messages, the same work for both replicators. \
         sync_client works through one connection, one request at a time; cyrsync shards \
         users over parallel workers, so a backlog of many users (W3) keeps several \
         sync_servers busy at once. No replicator can beat the machine: the 'bound' row \
         divides sync_client's time by cyrsync's total CPU spread over every core, the \
         best advantage this machine allows; 'cores kept busy' shows how close each \
         comes. A single mailbox (W2, W4, W7) belongs to one user and is replicated in \
         log order by one worker, as sync_client does, so there parallelism does not \
         apply: the replica stores it in one sync_server process, one command after \
         another, and the second 'bound' row divides sync_client's time by the \
         replica's CPU in cyrsync's runs — the best advantage any replicator could \
         reach on one mailbox. Rolling sync_client 3.6 never applies sync_batchsize \
         (sync_client.c copies its flags into the session before adding \
         SYNC_FLAG_BATCH), so in W4 it seeds the mailbox in one APPLY MAILBOX \
         whatever the setting, while cyrsync brings it up in sync_batchsize steps, \
         each a consistent mailbox the replica commits.\n\n\
         **Reading W5.** At sync_repeat_interval 1s a run lasts the storm (5 000 \
         STOREs, about 2 s) plus the wait for the replicator's next run after the \
         last STORE, which the interval spaces up to 1 s apart for both \
         replicators. The rate therefore falls in steps — 5 000 changes in about \
         2 s or about 3 s — by which side of a run the storm ends; the \
         catch_up_seconds of each round shows it. On 2 cores, anything else \
         running (the replicator included) lengthens the storm and moves more \
         rounds into the slower step. At sync_repeat_interval 0 both replicate \
         continuously and the replica agrees within milliseconds of the last \
         STORE, so the rate is that of the storm as slowed by the replication \
         running beside it on the same 2 cores.\n"
    );
    for w in workloads {
        let _ = writeln!(md, "\n## {} — {}\n\n{}\n", w.id, w.title, w.params);
        let _ = writeln!(
            md,
            "| replicator | variant | round | wall s | CPU s: replicator / master / replica | peak RSS MB | measures |\n|---|---|---:|---:|---|---:|---|"
        );
        for r in &w.runs {
            let measures: Vec<String> = r
                .metrics
                .iter()
                .map(|(k, v)| format!("{k} {}", num(*v)))
                .collect();
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} / {} / {} | {} | {} |",
                r.replicator,
                r.variant,
                r.round + 1,
                num(r.wall_seconds),
                num(r.replicator_cpu),
                num(r.master_cpu),
                num(r.replica_cpu),
                num(r.peak_rss_bytes as f64 / 1e6),
                measures.join(", ")
            );
        }
    }
    let json = serde_json::to_string_pretty(&Raw {
        machine: m.clone(),
        workloads: workloads.to_vec(),
    })
    .unwrap_or_default();
    (md, json)
}

/// BENCHMARKS.json as written.
#[derive(Debug, Serialize, Deserialize)]
pub struct Raw {
    pub machine: Machine,
    pub workloads: Vec<Workload>,
}
