//! Benchmarks: Cyrus's own `sync_client -R` and `cyrsync run`, side by side,
//! on one real Cyrus master and replica, in one run, with the same imapd.conf
//! (see `scripts/bench.sh`, which installs what is needed and runs this).
//!
//! ```text
//! cargo bench --bench replication -- [--quick] [--only W1,W4] [--seed N] [--rounds N] [--set KEY=VALUE]… [--out DIR]
//! ```
//!
//! Every workload (W1–W7, issue "Benchmarks against the real sync_client")
//! is driven the same way for both replicators, in turn. Convergence is
//! judged by comparing both sides (`GET MAILBOXES` fields polled on the
//! replica against the master's, then `GET FULLMAILBOX` records compared
//! field for field), never by counting. CPU is read from /proc for the
//! replicator and for each Cyrus instance's process tree, less the server
//! processes of the benchmark's own connections (delivery, flag changes,
//! polling), so that only what replication costs is billed. The results go
//! to `BENCHMARKS.md` and `BENCHMARKS.json` in `--out` (default: the
//! repository root).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../../tests/support/mod.rs"]
mod support;

mod measure;
mod replicator;
mod report;
mod state;
mod workloads;

use std::path::PathBuf;

fn main() {
    let mut args = std::env::args().skip(1);
    let mut options = workloads::Options {
        quick: false,
        only: Vec::new(),
        seed: 0x5eed_c7a5,
        settings: Vec::new(),
        rounds: None,
    };
    let mut out = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut render_from: Option<PathBuf> = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            // cargo bench passes --bench to harness=false targets.
            "--bench" => {}
            "--quick" => options.quick = true,
            "--only" => {
                options.only = args
                    .next()
                    .expect("--only W1,W2,…")
                    .split(',')
                    .map(|w| w.trim().to_ascii_uppercase())
                    .collect();
            }
            "--seed" => {
                options.seed = args.next().and_then(|s| s.parse().ok()).expect("--seed N");
            }
            "--out" => out = PathBuf::from(args.next().expect("--out DIR")),
            // Writes BENCHMARKS.md again from a BENCHMARKS.json, running nothing.
            "--render" => render_from = Some(PathBuf::from(args.next().expect("--render FILE"))),
            "--rounds" => {
                options.rounds = Some(
                    args.next()
                        .and_then(|s| s.parse().ok())
                        .expect("--rounds N"),
                );
            }
            // An extra imapd.conf line for the master (both replicators read
            // it), e.g. --set cyrsync_workers=8.
            "--set" => {
                let kv = args.next().expect("--set KEY=VALUE");
                let (k, v) = kv.split_once('=').expect("--set KEY=VALUE");
                options.settings.push((k.to_string(), v.to_string()));
            }
            "-h" | "--help" => {
                println!(
                    "cargo bench --bench replication -- [--quick] [--only W1,W2,…] [--seed N] [--rounds N] [--set KEY=VALUE]… [--out DIR] | --render BENCHMARKS.json"
                );
                return;
            }
            other => panic!("unknown argument {other:?} (try --help)"),
        }
    }
    if let Some(json) = render_from {
        let raw: report::Raw =
            serde_json::from_slice(&std::fs::read(&json).expect("read --render file"))
                .expect("a BENCHMARKS.json");
        let (md, _) = report::render(&raw.machine, &raw.workloads);
        std::fs::write(out.join("BENCHMARKS.md"), &md).expect("write BENCHMARKS.md");
        println!("{md}");
        return;
    }
    let results = workloads::run_all(&options);
    let base = std::env::var_os("CYRSYNC_PAIR_BASE")
        .map(PathBuf::from)
        .or_else(workloads::pair_base)
        .unwrap_or_else(std::env::temp_dir);
    let machine = report::Machine::describe(options.seed, options.quick, &options.settings, &base);
    let (md, json) = report::render(&machine, &results);
    std::fs::create_dir_all(&out).expect("create --out");
    std::fs::write(out.join("BENCHMARKS.md"), &md).expect("write BENCHMARKS.md");
    std::fs::write(out.join("BENCHMARKS.json"), json).expect("write BENCHMARKS.json");
    println!("\n{md}");
    println!("written to {}", out.join("BENCHMARKS.md").display());
}
