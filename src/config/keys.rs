//! The catalogue of imapd.conf keys cyrsync reads or reports. The man page and
//! `cyrsync check` are tested against this list, so a key is documented once.

/// Whether a key may carry a channel prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// One value for the whole daemon.
    Global,
    /// `<channel>_key` overrides `key` for that channel.
    Channel,
}

/// Who defines the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// A Cyrus option (lib/imapoptions) that cyrsync honours.
    Cyrus,
    /// A Cyrus option that cyrsync reports on but leaves to Cyrus's processes.
    CyrusReported,
    /// cyrsync's own setting.
    Cyrsync,
}

/// One key of the catalogue.
#[derive(Debug, Clone, Copy)]
pub struct KeyInfo {
    /// The key, lower case, without channel prefix.
    pub name: &'static str,
    /// Whether it takes a channel prefix.
    pub scope: Scope,
    /// Who defines it.
    pub owner: Owner,
    /// The default as shown to the administrator.
    pub default: &'static str,
    /// True when Cyrus's own `sync_client` 3.6 reads the channel-prefixed form too
    /// (`sync_get_config`/`sync_get_durationconfig`/`sync_get_switchconfig`).
    pub cyrus_reads_prefixed: bool,
    /// One line for the man page and `check`.
    pub summary: &'static str,
}

const fn key(
    name: &'static str,
    scope: Scope,
    owner: Owner,
    default: &'static str,
    cyrus_reads_prefixed: bool,
    summary: &'static str,
) -> KeyInfo {
    KeyInfo {
        name,
        scope,
        owner,
        default,
        cyrus_reads_prefixed,
        summary,
    }
}

use Owner::{Cyrsync, Cyrus, CyrusReported};
use Scope::{Channel, Global};

/// Every key cyrsync knows, in the order `check` shows them.
pub const KEYS: &[KeyInfo] = &[
    key(
        "configdirectory",
        Global,
        Cyrus,
        "(required)",
        false,
        "Cyrus's configuration directory; the sync logs live in its sync/ subdirectory",
    ),
    key(
        "sync_log",
        Global,
        Cyrus,
        "0",
        false,
        "whether Cyrus writes the sync log at all; must be on for rolling replication",
    ),
    key(
        "sync_log_channels",
        Global,
        Cyrus,
        "\"\"",
        false,
        "the channels Cyrus writes logs for; \"\" is the default channel",
    ),
    key(
        "sync_host",
        Channel,
        Cyrus,
        "(none)",
        true,
        "the replica: host, host:port, [v6addr]:port or /unix/socket",
    ),
    key(
        "sync_port",
        Channel,
        Cyrus,
        "(IMAP 143, then csync 2005)",
        true,
        "the replica's port or service name",
    ),
    key(
        "sync_try_imap",
        Channel,
        Cyrus,
        "1",
        true,
        "try replication over IMAP before csync",
    ),
    key(
        "sync_authname",
        Channel,
        Cyrus,
        "(none)",
        true,
        "the user to authenticate as on the replica; must be in its admins:",
    ),
    key(
        "sync_password",
        Channel,
        Cyrus,
        "(none)",
        true,
        "that user's password",
    ),
    key(
        "sync_realm",
        Channel,
        Cyrus,
        "(none)",
        true,
        "the SASL realm; must match the replica's servername for sasldb",
    ),
    key(
        "sync_batchsize",
        Channel,
        Cyrus,
        "8192",
        false,
        "messages per APPLY MAILBOX of a large mailbox",
    ),
    key(
        "sync_repeat_interval",
        Channel,
        Cyrus,
        "1s",
        true,
        "minimum time between two runs of a channel",
    ),
    key(
        "sync_timeout",
        Channel,
        Cyrus,
        "30m",
        false,
        "how long a command may wait for its answer (at least 3s)",
    ),
    key(
        "sync_shutdown_file",
        Channel,
        Cyrus,
        "(none)",
        true,
        "when this file exists, the channel stops cleanly",
    ),
    key(
        "sync_reconnect_maxwait",
        Channel,
        Cyrus,
        "20m",
        false,
        "cap of the reconnect backoff; 0 means no cap",
    ),
    key(
        "force_sasl_client_mech",
        Channel,
        Cyrus,
        "(strongest offered)",
        false,
        "the SASL mechanism to use",
    ),
    key(
        "tls_client_ca_file",
        Channel,
        Cyrus,
        "(system roots)",
        false,
        "CA certificates that sign the replica's certificate",
    ),
    key(
        "tls_client_ca_dir",
        Channel,
        Cyrus,
        "(system roots)",
        false,
        "directory of CA certificates",
    ),
    key(
        "tls_client_cert",
        Channel,
        Cyrus,
        "(none)",
        false,
        "client certificate to present",
    ),
    key(
        "tls_client_key",
        Channel,
        Cyrus,
        "(none)",
        false,
        "key of the client certificate",
    ),
    key(
        "sync_log_chain",
        Global,
        CyrusReported,
        "0",
        false,
        "sync_server also logs (chained replicas); Cyrus's business",
    ),
    key(
        "sync_log_unsuppressable_channels",
        Global,
        CyrusReported,
        "squatter",
        false,
        "channels sync_server always logs to; Cyrus's business",
    ),
    key(
        "sync_rightnow_channel",
        Global,
        CyrusReported,
        "(none)",
        false,
        "Cyrus processes sync this channel themselves; it has no log",
    ),
    key(
        "sync_cache_db",
        Global,
        CyrusReported,
        "twoskip",
        false,
        "Cyrus's own replication cache backend; cyrsync never uses it",
    ),
    key(
        "sync_cache_db_path",
        Channel,
        CyrusReported,
        "(none)",
        true,
        "Cyrus's own replication cache; must differ from cyrsync_cache_path",
    ),
    key(
        "cyrsync_source_host",
        Channel,
        Cyrsync,
        "127.0.0.1",
        false,
        "the master's replication endpoint that cyrsync reads from",
    ),
    key(
        "cyrsync_source_port",
        Channel,
        Cyrsync,
        "(IMAP 143, then csync 2005)",
        false,
        "the master's replication port",
    ),
    key(
        "cyrsync_source_try_imap",
        Channel,
        Cyrsync,
        "1",
        false,
        "try IMAP before csync on the master",
    ),
    key(
        "cyrsync_source_authname",
        Channel,
        Cyrsync,
        "(sync_authname)",
        false,
        "user for reading the master; must be in the master's admins:",
    ),
    key(
        "cyrsync_source_password",
        Channel,
        Cyrsync,
        "(sync_password)",
        false,
        "that user's password",
    ),
    key(
        "cyrsync_source_realm",
        Channel,
        Cyrsync,
        "(sync_realm)",
        false,
        "SASL realm on the master",
    ),
    key(
        "cyrsync_workers",
        Channel,
        Cyrsync,
        "4",
        false,
        "parallel workers per channel (1-64); one user is always on one worker",
    ),
    key(
        "cyrsync_master_reader",
        Channel,
        Cyrsync,
        "auto",
        false,
        "how to read the master: auto, local (index files) or protocol",
    ),
    key(
        "cyrsync_cache_path",
        Channel,
        Cyrsync,
        "(log directory)/cyrsync.cache",
        false,
        "cyrsync's cache of the replica's state",
    ),
    key(
        "cyrsync_compress",
        Channel,
        Cyrsync,
        "1",
        false,
        "use COMPRESS DEFLATE when the server offers it",
    ),
    key(
        "cyrsync_tls_verify",
        Channel,
        Cyrsync,
        "1",
        false,
        "verify the replica's TLS certificate",
    ),
    key(
        "cyrsync_tls_fingerprint",
        Channel,
        Cyrsync,
        "(none)",
        false,
        "SHA-256 fingerprint the replica's certificate must have",
    ),
    key(
        "cyrsync_allow_plaintext",
        Channel,
        Cyrsync,
        "0",
        false,
        "allow PLAIN/LOGIN without TLS",
    ),
    key(
        "cyrsync_control_socket",
        Global,
        Cyrsync,
        "(configdirectory)/socket/cyrsync",
        false,
        "the daemon's control socket (mode 0660)",
    ),
    key(
        "cyrsync_log_file",
        Global,
        Cyrsync,
        "(none)",
        false,
        "also log to this file",
    ),
    key(
        "cyrsync_syslog",
        Global,
        Cyrsync,
        "0",
        false,
        "also log to syslog, facility mail",
    ),
    key(
        "cyrsync_syslog_socket",
        Global,
        Cyrsync,
        "(system: /var/run/log or /dev/log)",
        false,
        "the local syslog socket cyrsync_syslog writes to",
    ),
    key(
        "cyrsync_metrics_listen",
        Global,
        Cyrsync,
        "(off)",
        false,
        "address:port of the Prometheus endpoint",
    ),
    key(
        "cyrsync_user",
        Global,
        Cyrsync,
        "cyrus",
        false,
        "user to run as when started as root",
    ),
];

/// The catalogue entry of `name` (lower case, without channel prefix).
pub fn lookup(name: &str) -> Option<&'static KeyInfo> {
    KEYS.iter().find(|k| k.name == name)
}

/// Splits `<channel>_<key>` into channel and key when `<key>` is a per-channel
/// key of the catalogue. The longest matching key wins.
pub fn split_channel_prefix(full: &str) -> Option<(&str, &'static KeyInfo)> {
    KEYS.iter()
        .filter(|k| k.scope == Scope::Channel || k.owner == Owner::Cyrsync)
        .filter_map(|k| {
            let prefix = full.strip_suffix(k.name)?.strip_suffix('_')?;
            (!prefix.is_empty()).then_some((prefix, k))
        })
        .max_by_key(|(_, k)| k.name.len())
}

/// The known `cyrsync_` key closest to a misspelt one, for a hint.
pub fn closest_cyrsync_key(name: &str) -> Option<&'static str> {
    KEYS.iter()
        .filter(|k| k.owner == Owner::Cyrsync)
        .map(|k| (edit_distance(name, k.name), k.name))
        .filter(|(d, _)| *d <= 4)
        .min()
        .map(|(_, n)| n)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_split_on_known_keys() {
        let (c, k) = split_channel_prefix("chan2_sync_host").unwrap();
        assert_eq!((c, k.name), ("chan2", "sync_host"));
        let (c, k) = split_channel_prefix("my_chan_cyrsync_workers").unwrap();
        assert_eq!((c, k.name), ("my_chan", "cyrsync_workers"));
        assert!(split_channel_prefix("sync_host").is_none());
        assert!(split_channel_prefix("cyrsync_source_host").is_none());
        assert!(split_channel_prefix("sasl_mech_list").is_none());
    }

    #[test]
    fn typos_find_their_key() {
        assert_eq!(
            closest_cyrsync_key("cyrsync_worker"),
            Some("cyrsync_workers")
        );
        assert_eq!(
            closest_cyrsync_key("cyrsync_tls_verfy"),
            Some("cyrsync_tls_verify")
        );
        assert_eq!(closest_cyrsync_key("cyrsync_something_else_entirely"), None);
    }

    #[test]
    fn names_are_unique_and_lower_case() {
        for (i, k) in KEYS.iter().enumerate() {
            assert_eq!(k.name, k.name.to_ascii_lowercase());
            assert!(KEYS[i + 1..].iter().all(|o| o.name != k.name), "{}", k.name);
        }
    }
}
