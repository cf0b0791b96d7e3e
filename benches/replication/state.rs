//! Convergence, judged by comparing both sides: `GET MAILBOXES` on the
//! master's and the replica's sync_server (sync CRCs, LAST_UID,
//! HIGHESTMODSEQ, UIDVALIDITY per mailbox), and at the end of a workload the
//! records of `GET FULLMAILBOX`, field for field.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::measure::server_pid;
use crate::support::csync::Csync;
use crate::support::pair::{CyrusPair, REPL_PASSWORD, REPL_USER};

/// The fields of a mailbox that replication must make equal.
const FIELDS: &[&str] = &[
    "UNIQUEID",
    "SYNC_CRC",
    "SYNC_CRC_ANNOT",
    "LAST_UID",
    "HIGHESTMODSEQ",
    "UIDVALIDITY",
];

/// Mailbox name → its replicated fields.
pub type States = BTreeMap<String, Vec<String>>;

/// Reads both sides over their own csync connections (as the replication
/// admin), independently of the replicators under test.
pub struct Sides {
    master: Csync,
    replica: Csync,
    /// The server processes of these two connections (left out of the CPU
    /// billed to replication).
    pub pids: (i32, i32),
}

impl Sides {
    /// Opens both connections.
    pub fn open(pair: &CyrusPair) -> Sides {
        let master = Csync::connect(pair.master.csync_port, REPL_USER, REPL_PASSWORD);
        let replica = Csync::connect(pair.replica.csync_port, REPL_USER, REPL_PASSWORD);
        let pids = (
            server_pid(pair.master.csync_port, master.local_port()).unwrap_or(-1),
            server_pid(pair.replica.csync_port, replica.local_port()).unwrap_or(-1),
        );
        Sides {
            master,
            replica,
            pids,
        }
    }

    /// The master's state of `names`.
    pub fn master(&mut self, names: &[String]) -> States {
        states(&mut self.master, names)
    }

    /// The replica's state of `names`.
    pub fn replica(&mut self, names: &[String]) -> States {
        states(&mut self.replica, names)
    }

    /// Polls the replica every `every` until it equals `want`; the time
    /// from `since` to the first equal answer, or `None` after `limit`.
    pub fn wait_replica(
        &mut self,
        want: &States,
        since: Instant,
        every: Duration,
        limit: Duration,
    ) -> Option<Duration> {
        let names: Vec<String> = want.keys().cloned().collect();
        loop {
            let now = self.replica(&names);
            if &now == want {
                return Some(since.elapsed());
            }
            if since.elapsed() > limit {
                return None;
            }
            std::thread::sleep(every);
        }
    }

    /// Compares the records of every mailbox in `names` on both sides,
    /// field for field; the differences found (empty when equal).
    pub fn compare_full(&mut self, names: &[String]) -> Vec<String> {
        let mut diffs = Vec::new();
        for name in names {
            let m = self.master.run(&format!("GET FULLMAILBOX {name}"));
            let r = self.replica.run(&format!("GET FULLMAILBOX {name}"));
            if m.items != r.items {
                let first = m
                    .items
                    .iter()
                    .zip(&r.items)
                    .position(|(a, b)| a != b)
                    .unwrap_or(0);
                let show = |items: &[Vec<u8>]| {
                    items
                        .get(first)
                        .map(|i| String::from_utf8_lossy(&i[..i.len().min(300)]).into_owned())
                        .unwrap_or_default()
                };
                diffs.push(format!(
                    "{name}: master {} / replica {}: {} | {}",
                    m.status,
                    r.status,
                    show(&m.items),
                    show(&r.items)
                ));
            }
        }
        diffs
    }
}

fn states(c: &mut Csync, names: &[String]) -> States {
    let mut out = States::new();
    for chunk in names.chunks(500) {
        let r = c.run(&format!("GET MAILBOXES ({})", chunk.join(" ")));
        assert!(r.status.starts_with("OK"), "GET MAILBOXES: {}", r.status);
        for item in &r.items {
            let text = String::from_utf8_lossy(item);
            let Some(name) = field(&text, "MBOXNAME") else {
                continue;
            };
            let values = FIELDS
                .iter()
                .map(|k| field(&text, k).unwrap_or_default())
                .collect();
            out.insert(name, values);
        }
    }
    out
}

/// The value after `KEY ` in a `* MAILBOX %(...)` line, the key following
/// a space or the opening parenthesis (the benchmark's names need no
/// quoting).
fn field(text: &str, key: &str) -> Option<String> {
    let at = [format!(" {key} "), format!("({key} ")]
        .iter()
        .filter_map(|k| text.find(k.as_str()))
        .min()?
        + key.len()
        + 2;
    let value: String = text[at..]
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != ')')
        .collect();
    Some(value)
}
