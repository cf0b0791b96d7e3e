//! A forgotten `sync_client -r`: Cyrus's own rolling client, still started
//! by Cyrus's master after a migration, would consume the same sync log as
//! `cyrsync run` (both rename `log` to `log-run` and remove it, and one may
//! remove the other's run). It holds no lock of its own to meet, so the
//! running processes are looked at (`ps`, on FreeBSD and Linux alike).

use std::path::{Path, PathBuf};
use std::process::Command;

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
/// empty when `ps` cannot be run (nothing is refused on a guess).
pub fn running_sync_clients(imapd_conf: &Path, channel: &ChannelName) -> Vec<Rival> {
    let Ok(out) = Command::new("ps")
        .args(["-A", "-ww", "-o", "pid=", "-o", "args="])
        .output()
    else {
        return Vec::new();
    };
    rivals_in(&String::from_utf8_lossy(&out.stdout), imapd_conf, channel)
}

/// The rolling `sync_client`s of `channel` of `imapd_conf` in a `ps -o
/// pid= -o args=` listing.
fn rivals_in(ps: &str, imapd_conf: &Path, channel: &ChannelName) -> Vec<Rival> {
    let ours = canonical(imapd_conf);
    ps.lines()
        .filter_map(|line| {
            let (pid, command) = line.trim_start().split_once(char::is_whitespace)?;
            let pid: u32 = pid.parse().ok()?;
            let words: Vec<&str> = command.split_whitespace().collect();
            // argv[0] as Cyrus's master or a shell starts it.
            if words.first()?.rsplit('/').next()? != "sync_client" {
                return None;
            }
            let (rolling, their_channel, config) = sync_client_options(&words[1..]);
            let config = config.unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH));
            (rolling && their_channel == *channel && canonical(&config) == ours).then(|| Rival {
                pid,
                command: command.trim().to_string(),
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
            rivals_in(PS, conf, ch).iter().map(|r| r.pid).collect()
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
            rivals_in(PS, default, &ChannelName::DEFAULT)[0].command,
            "sync_client -r"
        );
    }
}
