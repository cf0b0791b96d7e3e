//! A forgotten `sync_client -r`: Cyrus's own rolling client, still started
//! by Cyrus's master after a migration, would consume the same sync log as
//! `cyrsync run` (both rename `log` to `log-run` and remove it, and one may
//! remove the other's run). It holds no lock of its own to meet, so the
//! running processes are looked at (/proc on Linux, `ps` elsewhere).

use std::path::{Path, PathBuf};

use super::local::sync_client_options;
use crate::config::{ChannelName, DEFAULT_CONFIG_PATH};

/// A rolling `sync_client` replicating the same channel of the same
/// imapd.conf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rival {
    /// Its pid.
    pub pid: u32,
    /// Its command line.
    pub command: String,
}

/// The rolling `sync_client`s now running on `channel` of `imapd_conf`;
/// empty when the processes cannot be listed (nothing is refused on a
/// guess).
pub fn running_sync_clients(imapd_conf: &Path, channel: &ChannelName) -> Vec<Rival> {
    rivals_in(processes(), imapd_conf, channel)
}

/// Every process as (pid, argv), from /proc: `ps` costs some 40 ms there,
/// spent before a channel's first run.
#[cfg(target_os = "linux")]
fn processes() -> Vec<(u32, Vec<String>)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| {
            let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let argv = cmdline
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            Some((pid, argv))
        })
        .collect()
}

/// Every process as (pid, argv), from `ps` (FreeBSD mounts no /proc).
#[cfg(not(target_os = "linux"))]
fn processes() -> Vec<(u32, Vec<String>)> {
    let Ok(out) = std::process::Command::new("ps")
        .args(["-A", "-ww", "-o", "pid=", "-o", "args="])
        .output()
    else {
        return Vec::new();
    };
    parse_ps(&String::from_utf8_lossy(&out.stdout))
}

/// A `ps -o pid= -o args=` listing as (pid, argv) (arguments split at
/// blanks, as `ps` shows them).
#[cfg_attr(target_os = "linux", allow(dead_code))]
fn parse_ps(ps: &str) -> Vec<(u32, Vec<String>)> {
    ps.lines()
        .filter_map(|line| {
            let (pid, command) = line.trim_start().split_once(char::is_whitespace)?;
            Some((
                pid.parse().ok()?,
                command.split_whitespace().map(str::to_string).collect(),
            ))
        })
        .collect()
}

/// The rolling `sync_client`s of `channel` of `imapd_conf` among
/// `processes`.
fn rivals_in(
    processes: Vec<(u32, Vec<String>)>,
    imapd_conf: &Path,
    channel: &ChannelName,
) -> Vec<Rival> {
    let ours = canonical(imapd_conf);
    processes
        .into_iter()
        .filter_map(|(pid, argv)| {
            // argv[0] as Cyrus's master or a shell starts it.
            if argv.first()?.rsplit('/').next()? != "sync_client" {
                return None;
            }
            let words: Vec<&str> = argv.iter().map(String::as_str).collect();
            let (rolling, their_channel, config) = sync_client_options(&words[1..]);
            let config = config.unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH));
            (rolling && their_channel == *channel && canonical(&config) == ours).then(|| Rival {
                pid,
                command: argv.join(" "),
            })
        })
        .collect()
}

fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const PS: &str = "    1 /sbin/init
  812 /usr/lib/cyrus/bin/master -d
  901 sync_client -r
  902 /usr/lib/cyrus/bin/sync_client -C /tmp/other.conf -r
  903 sync_client -n chan2 -r
  904 sync_client -u alice
  905 vim sync_client
  906 /usr/local/cyrus/bin/sync_client -rn chan2 -C /tmp/t.conf
";

    #[test]
    fn only_rolling_clients_of_the_same_channel_and_config_count() {
        let default = Path::new(DEFAULT_CONFIG_PATH);
        let pids = |conf: &Path, ch: &ChannelName| -> Vec<u32> {
            rivals_in(parse_ps(PS), conf, ch)
                .iter()
                .map(|r| r.pid)
                .collect()
        };
        assert_eq!(pids(default, &ChannelName::DEFAULT), [901]);
        assert_eq!(pids(default, &ChannelName::new("chan2")), [903]);
        assert_eq!(
            pids(Path::new("/tmp/other.conf"), &ChannelName::DEFAULT),
            [902]
        );
        assert_eq!(
            pids(Path::new("/tmp/t.conf"), &ChannelName::new("chan2")),
            [906]
        );
        assert!(pids(Path::new("/tmp/t.conf"), &ChannelName::DEFAULT).is_empty());
        assert_eq!(
            rivals_in(parse_ps(PS), default, &ChannelName::DEFAULT)[0].command,
            "sync_client -r"
        );
    }

    #[test]
    fn the_process_list_holds_this_process_with_its_arguments() {
        let me = std::process::id();
        let list = processes();
        let (_, argv) = list.iter().find(|(pid, _)| *pid == me).unwrap();
        let exe = std::env::args().next().unwrap();
        assert_eq!(argv.first(), Some(&exe), "{argv:?}");
    }
}
