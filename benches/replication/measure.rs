//! What the benchmark measures from the outside, through /proc: CPU time of a
//! process or of a whole Cyrus instance, peak RSS, and which server process
//! serves one of the benchmark's own connections (so that its work — polling
//! the replica, delivering mail, storing flags — is not billed to replication).

use std::collections::BTreeSet;
use std::fs;

use crate::support::pair::{Instance, instance_processes};

/// Clock ticks per second of /proc's CPU fields (USER_HZ; 100 on Linux).
pub const TICKS_PER_SECOND: f64 = 100.0;

/// utime + stime (+ cutime + cstime: the waited-for children) of `pid`, in
/// clock ticks; `None` once it is gone.
pub fn cpu_ticks(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: the fields start after its ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14–17 of proc(5), counted from 3 here (state is field 3).
    let sum = fields
        .get(11..15)?
        .iter()
        .map(|f| f.parse::<u64>().unwrap_or(0))
        .sum();
    Some(sum)
}

/// Peak resident set size of `pid` (VmHWM), in bytes.
pub fn peak_rss(pid: i32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The CPU of every process of one Cyrus instance (its `master` and
/// descendants). `master` reaps its children, so a child that exits during
/// the window moves into master's cutime/cstime: the sum over the living
/// tree stays exact.
pub fn instance_ticks(inst: &Instance) -> u64 {
    instance_processes(inst)
        .into_iter()
        .filter_map(cpu_ticks)
        .sum()
}

/// The pid of the process holding the server end of the TCP connection from
/// 127.0.0.1:`client_port` to 127.0.0.1:`server_port`.
pub fn server_pid(server_port: u16, client_port: u16) -> Option<i32> {
    let inode = socket_inode(server_port, client_port)?;
    let target = format!("socket:[{inode}]");
    for entry in fs::read_dir("/proc").ok()? {
        let Some(pid) = entry
            .ok()
            .and_then(|e| e.file_name().to_str()?.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == target.as_str()) {
                return Some(pid);
            }
        }
    }
    None
}

fn socket_inode(server_port: u16, client_port: u16) -> Option<u64> {
    let table = fs::read_to_string("/proc/net/tcp").ok()?;
    let local = format!("0100007F:{server_port:04X}");
    let remote = format!("0100007F:{client_port:04X}");
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        (f.get(1) == Some(&local.as_str()) && f.get(2) == Some(&remote.as_str()))
            .then(|| f.get(9)?.parse().ok())
            .flatten()
    })
}

/// CPU of an instance over a window, less the processes serving the
/// benchmark's own connections.
#[derive(Debug, Clone)]
pub struct InstanceMeter {
    start: u64,
    excluded: BTreeSet<i32>,
    excluded_start: u64,
}

impl InstanceMeter {
    /// Starts measuring `inst`, leaving out `excluded` pids.
    pub fn start(inst: &Instance, excluded: &[i32]) -> InstanceMeter {
        let excluded: BTreeSet<i32> = excluded.iter().copied().collect();
        InstanceMeter {
            start: instance_ticks(inst),
            excluded_start: excluded.iter().filter_map(|p| cpu_ticks(*p)).sum(),
            excluded,
        }
    }

    /// CPU seconds used since [`start`](Self::start).
    pub fn seconds(&self, inst: &Instance) -> f64 {
        let total = instance_ticks(inst).saturating_sub(self.start);
        let ours: u64 = self.excluded.iter().filter_map(|p| cpu_ticks(*p)).sum();
        let ours = ours.saturating_sub(self.excluded_start);
        total.saturating_sub(ours) as f64 / TICKS_PER_SECOND
    }
}

/// The `q`-quantile (0–1) of `values` by the nearest-rank method.
pub fn quantile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = (q * v.len() as f64).ceil().max(1.0) as usize;
    v[rank.min(v.len()) - 1]
}

/// A small deterministic generator for spacing and choices (the seed is
/// printed, so a run can be repeated).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    /// The next value (xorshift64*).
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `[lo, hi)`.
    pub fn range_f64(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * (hi - lo)
    }

    /// Uniform in `[lo, hi)`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo).max(1)
    }
}
