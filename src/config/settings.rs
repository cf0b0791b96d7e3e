//! Resolution of imapd.conf into typed settings: one [`ChannelConfig`] per channel,
//! each key looked up as `<channel>_key`, then `key`, then its default — the order
//! Cyrus's `sync_get_config` uses — plus the warnings an administrator should see.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::endpoint::{Endpoint, Host, parse_host, parse_port};
use super::error::{ConfigError, ConfigErrorKind, Location, Warning};
use super::file::{Entry, ImapdConf};
use super::keys::{self, Owner, Scope};
use super::value::{
    cyrus_atoi_switch, format_duration, parse_c_integer, parse_duration, parse_sha256_fingerprint,
    parse_switch,
};

/// A channel name; `None` is Cyrus's default channel (written `""`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelName(Option<String>);

impl ChannelName {
    /// The default channel.
    pub const DEFAULT: ChannelName = ChannelName(None);

    /// A channel by name; `""` (two quote characters) or an empty string is the
    /// default channel.
    pub fn new(name: &str) -> Self {
        match name {
            "" | "\"\"" => ChannelName(None),
            n => ChannelName(Some(n.to_string())),
        }
    }

    /// The name, `None` for the default channel.
    pub fn name(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// True for the default channel.
    pub fn is_default(&self) -> bool {
        self.0.is_none()
    }
}

impl fmt::Display for ChannelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(n) => f.write_str(n),
            None => f.write_str("\"\" (default)"),
        }
    }
}

/// A password; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The password itself, for the authentication exchange only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(********)")
    }
}

/// Credentials for one peer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Credentials {
    /// Authentication name.
    pub authname: Option<String>,
    /// Password.
    pub password: Option<Secret>,
    /// SASL realm.
    pub realm: Option<String>,
}

/// TLS settings for connections to a replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// `tls_client_ca_file`.
    pub ca_file: Option<PathBuf>,
    /// `tls_client_ca_dir`.
    pub ca_dir: Option<PathBuf>,
    /// `tls_client_cert`.
    pub client_cert: Option<PathBuf>,
    /// `tls_client_key`.
    pub client_key: Option<PathBuf>,
    /// `cyrsync_tls_verify`.
    pub verify: bool,
    /// `cyrsync_tls_fingerprint`: SHA-256 of the replica's certificate.
    pub fingerprint: Option<[u8; 32]>,
}

/// How the master's mailboxes are read (`cyrsync_master_reader`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MasterReader {
    /// Local index files where readable, else the protocol.
    Auto,
    /// Local index files only (the protocol still decides what changed).
    Local,
    /// `GET`/`SYNCGET` on the master only.
    Protocol,
}

/// One side of replication: where to connect and as whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Host and optional port.
    pub endpoint: Endpoint,
    /// With no fixed port: try IMAP (143) before csync (2005).
    pub try_imap: bool,
    /// Who to authenticate as.
    pub credentials: Credentials,
}

/// Everything cyrsync needs to replicate one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelConfig {
    /// The channel.
    pub name: ChannelName,
    /// `<configdirectory>/sync` or `<configdirectory>/sync/<channel>`.
    pub log_dir: PathBuf,
    /// The replica; `None` when neither `<channel>_sync_host` nor `sync_host` is set.
    pub replica: Option<Peer>,
    /// True when the replica comes from `<channel>_sync_host` (or this is the
    /// default channel): rolling mode replicates such channels without `-n`.
    pub replica_is_own: bool,
    /// The master, read with `GET`/`SYNCGET`.
    pub source: Peer,
    /// `force_sasl_client_mech`.
    pub sasl_mech: Option<String>,
    /// `sync_batchsize`.
    pub batch_size: u32,
    /// `sync_repeat_interval`: minimum time between two runs.
    pub repeat_interval: Duration,
    /// `sync_timeout`, at least 3 s.
    pub timeout: Duration,
    /// `sync_reconnect_maxwait`; `None` means no cap.
    pub reconnect_maxwait: Option<Duration>,
    /// `sync_shutdown_file`.
    pub shutdown_file: Option<PathBuf>,
    /// TLS to the replica.
    pub tls: TlsSettings,
    /// `cyrsync_compress`.
    pub compress: bool,
    /// `cyrsync_allow_plaintext`.
    pub allow_plaintext: bool,
    /// `cyrsync_workers`.
    pub workers: usize,
    /// `cyrsync_master_reader`.
    pub master_reader: MasterReader,
    /// The imapd.conf this was read from (the master's own, on the master
    /// host), for Cyrus tools such as `mbpath`.
    pub imapd_conf: PathBuf,
    /// `cyrsync_cache_path`.
    pub cache_path: PathBuf,
}

impl ChannelConfig {
    /// The log Cyrus writes: `<log_dir>/log`.
    pub fn log_path(&self) -> PathBuf {
        self.log_dir.join("log")
    }

    /// The file the log is renamed to while it is processed: `<log_dir>/log-run`.
    pub fn log_run_path(&self) -> PathBuf {
        self.log_dir.join("log-run")
    }
}

/// One resolved key, for `cyrsync check` to explain where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explained {
    /// The catalogue key.
    pub key: &'static str,
    /// The value as shown (passwords masked).
    pub shown: String,
    /// The line it came from; `None` for a default.
    pub from: Option<(String, Location)>,
}

/// A resolved channel with the explanation of each key.
#[derive(Debug, Clone)]
pub struct ResolvedChannel {
    /// The typed configuration.
    pub config: ChannelConfig,
    /// Every key, in catalogue order.
    pub explained: Vec<Explained>,
}

/// The whole resolved configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The imapd.conf that was read.
    pub config_file: PathBuf,
    /// `configdirectory`.
    pub config_directory: PathBuf,
    /// `sync_log`.
    pub sync_log: bool,
    /// The channels of `sync_log_channels`, in order (the default channel when unset).
    pub log_channels: Vec<ChannelName>,
    /// Every channel of `sync_log_channels` plus any named on the command line.
    pub channels: Vec<ResolvedChannel>,
    /// `cyrsync_control_socket`.
    pub control_socket: PathBuf,
    /// `cyrsync_log_file`.
    pub log_file: Option<PathBuf>,
    /// `cyrsync_syslog`.
    pub syslog: bool,
    /// `cyrsync_syslog_socket` (`None`: the system's, see `logging`).
    pub syslog_socket: Option<PathBuf>,
    /// `cyrsync_metrics_listen`.
    pub metrics_listen: Option<String>,
    /// `cyrsync_user`.
    pub run_as_user: String,
    /// What looks wrong but works.
    pub warnings: Vec<Warning>,
}

impl Settings {
    /// Resolves `conf`. `extra_channels` (from `-n`) are resolved too, even when
    /// they are not in `sync_log_channels`.
    pub fn resolve(conf: &ImapdConf, extra_channels: &[ChannelName]) -> Result<Self, ConfigError> {
        Resolver::new(conf).settings(extra_channels)
    }

    /// The channels `cyrsync run` replicates: those named (which must have a
    /// replica), or with none named, every log channel that has its own replica.
    pub fn channels_to_run(
        &self,
        named: &[ChannelName],
    ) -> Result<Vec<&ChannelConfig>, ConfigError> {
        if !named.is_empty() {
            return named
                .iter()
                .map(|n| {
                    self.channel(n)
                        .filter(|c| c.replica.is_some())
                        .ok_or_else(|| {
                            ConfigError::new(
                                None,
                                ConfigErrorKind::ChannelWithoutReplica {
                                    channel: n.name().unwrap_or("\"\"").to_string(),
                                },
                            )
                        })
                })
                .collect();
        }
        let run: Vec<&ChannelConfig> = self
            .channels
            .iter()
            .map(|c| &c.config)
            .filter(|c| {
                self.log_channels.contains(&c.name) && c.replica.is_some() && c.replica_is_own
            })
            .collect();
        if run.is_empty() {
            let listed: Vec<String> = self.log_channels.iter().map(ToString::to_string).collect();
            return Err(ConfigError::new(
                None,
                ConfigErrorKind::NoReplica {
                    detail: format!(
                        "sync_log_channels gives {}, and none of them has a sync_host",
                        listed.join(", ")
                    ),
                },
            ));
        }
        Ok(run)
    }

    /// The configuration of channel `name`, if resolved.
    pub fn channel(&self, name: &ChannelName) -> Option<&ChannelConfig> {
        self.channels
            .iter()
            .map(|c| &c.config)
            .find(|c| &c.name == name)
    }
}

/// Looks keys up with their channel prefix and records what it found.
struct Resolver<'a> {
    conf: &'a ImapdConf,
    warnings: Vec<Warning>,
}

/// A raw value found for a key: the entry and the key as written.
struct Found<'a> {
    entry: &'a Entry,
    prefixed: bool,
}

impl<'a> Resolver<'a> {
    fn new(conf: &'a ImapdConf) -> Self {
        Resolver {
            conf,
            warnings: Vec::new(),
        }
    }

    fn warn(&mut self, location: Option<Location>, message: String, fix: impl Into<String>) {
        self.warnings.push(Warning {
            location,
            message,
            fix: fix.into(),
        });
    }

    fn find(&self, channel: &ChannelName, key: &str) -> Option<Found<'a>> {
        if let Some(name) = channel.name()
            && let Some(entry) = self.conf.get(&format!("{name}_{key}"))
        {
            return Some(Found {
                entry,
                prefixed: true,
            });
        }
        self.conf.get(key).map(|entry| Found {
            entry,
            prefixed: false,
        })
    }

    fn text(&self, found: &Found<'a>) -> Result<&'a str, ConfigError> {
        if found.entry.lossy {
            return Err(ConfigError::new(
                Some(found.entry.location.clone()),
                ConfigErrorKind::NotText {
                    key: found.entry.key.clone(),
                },
            ));
        }
        Ok(&found.entry.value)
    }

    fn bad(found: &Found<'_>, expected: &'static str, fix: impl Into<String>) -> ConfigError {
        ConfigError::new(
            Some(found.entry.location.clone()),
            ConfigErrorKind::BadValue {
                key: found.entry.key.clone(),
                value: found.entry.value.clone(),
                expected,
                fix: fix.into(),
            },
        )
    }

    fn settings(mut self, extra: &[ChannelName]) -> Result<Settings, ConfigError> {
        let g = ChannelName::DEFAULT;
        let config_directory = match self.find(&g, "configdirectory") {
            Some(f) => PathBuf::from(self.text(&f)?),
            None => {
                return Err(ConfigError::new(
                    None,
                    ConfigErrorKind::Missing {
                        key: "configdirectory",
                        fix: "set `configdirectory:` to Cyrus's configuration directory \
                              (e.g. /var/imap on FreeBSD, /var/lib/cyrus on Debian); the \
                              file given with -C must be the imapd.conf Cyrus uses",
                    },
                ));
            }
        };
        let sync_log = self.switch(&g, "sync_log", false)?;
        let log_channels_found = self.find(&g, "sync_log_channels");
        let log_channels: Vec<ChannelName> = match &log_channels_found {
            Some(f) => self
                .text(f)?
                .split_whitespace()
                .map(ChannelName::new)
                .collect(),
            None => vec![ChannelName::DEFAULT],
        };
        let mut names = log_channels.clone();
        for n in extra {
            if !names.contains(n) {
                names.push(n.clone());
            }
        }
        let mut channels = Vec::new();
        for name in &names {
            channels.push(self.channel(name, &config_directory)?);
        }
        let control_socket = self
            .path(&g, "cyrsync_control_socket")?
            .unwrap_or_else(|| config_directory.join("socket").join("cyrsync"));
        let log_file = self.path(&g, "cyrsync_log_file")?;
        let syslog = self.switch(&g, "cyrsync_syslog", false)?;
        let syslog_socket = self.path(&g, "cyrsync_syslog_socket")?;
        let metrics_listen = self.string(&g, "cyrsync_metrics_listen")?;
        let run_as_user = self
            .string(&g, "cyrsync_user")?
            .unwrap_or_else(|| "cyrus".to_string());

        self.global_warnings(
            sync_log,
            &log_channels,
            log_channels_found.as_ref(),
            &channels,
        );
        Ok(Settings {
            config_file: self.conf.path.clone(),
            config_directory,
            sync_log,
            log_channels,
            channels,
            control_socket,
            log_file,
            syslog,
            syslog_socket,
            metrics_listen,
            run_as_user,
            warnings: self.warnings,
        })
    }

    fn channel(
        &mut self,
        name: &ChannelName,
        configdir: &Path,
    ) -> Result<ResolvedChannel, ConfigError> {
        let log_dir = match name.name() {
            None => configdir.join("sync"),
            Some(n) => configdir.join("sync").join(n),
        };
        let host_found = self.find(name, "sync_host");
        let replica_is_own = name.is_default() || host_found.as_ref().is_some_and(|f| f.prefixed);
        let replica_endpoint = match &host_found {
            Some(f) => Some(self.endpoint(Some(f), "sync_port", name)?),
            None => None,
        };
        let credentials = Credentials {
            authname: self.string(name, "sync_authname")?,
            password: self.string(name, "sync_password")?.map(Secret),
            realm: self.string(name, "sync_realm")?,
        };
        let try_imap = self.switch(name, "sync_try_imap", true)?;
        let replica = replica_endpoint.map(|endpoint| Peer {
            endpoint,
            try_imap,
            credentials: credentials.clone(),
        });

        let source_host = self.find(name, "cyrsync_source_host");
        let source_endpoint = self.endpoint(source_host.as_ref(), "cyrsync_source_port", name)?;
        let source = Peer {
            endpoint: source_endpoint,
            try_imap: self.switch(name, "cyrsync_source_try_imap", true)?,
            credentials: Credentials {
                authname: self
                    .string(name, "cyrsync_source_authname")?
                    .or(credentials.authname.clone()),
                password: self
                    .string(name, "cyrsync_source_password")?
                    .map(Secret)
                    .or(credentials.password.clone()),
                realm: self
                    .string(name, "cyrsync_source_realm")?
                    .or(credentials.realm.clone()),
            },
        };

        let batch_size = self.integer(name, "sync_batchsize", 8192, 1, i64::from(u32::MAX))?;
        let repeat_interval = self.duration(name, "sync_repeat_interval", 1)?;
        let mut timeout = self.duration(name, "sync_timeout", 1800)?;
        if timeout < Duration::from_secs(3) {
            let loc = self
                .find(name, "sync_timeout")
                .map(|f| f.entry.location.clone());
            self.warn(
                loc,
                format!(
                    "sync_timeout of {} is below Cyrus's minimum; 3s is used",
                    format_duration(timeout)
                ),
                "set sync_timeout to 3s or more",
            );
            timeout = Duration::from_secs(3);
        }
        let maxwait = self.signed_duration(name, "sync_reconnect_maxwait", 1200)?;
        let reconnect_maxwait = if maxwait > 0 {
            Some(Duration::from_secs(maxwait.unsigned_abs()))
        } else {
            let loc = self
                .find(name, "sync_reconnect_maxwait")
                .map(|f| f.entry.location.clone());
            self.warn(
                loc,
                format!("channel {name}: sync_reconnect_maxwait is 0 or negative, so the reconnect backoff has no cap"),
                "set a cap such as `sync_reconnect_maxwait: 20m` (the default)",
            );
            None
        };
        let shutdown_file = self.path(name, "sync_shutdown_file")?;
        let sasl_mech = self.string(name, "force_sasl_client_mech")?;
        let tls = TlsSettings {
            ca_file: self.path(name, "tls_client_ca_file")?,
            ca_dir: self.path(name, "tls_client_ca_dir")?,
            client_cert: self.path(name, "tls_client_cert")?,
            client_key: self.path(name, "tls_client_key")?,
            verify: self.switch(name, "cyrsync_tls_verify", true)?,
            fingerprint: match self.find(name, "cyrsync_tls_fingerprint") {
                Some(f) => Some(parse_sha256_fingerprint(self.text(&f)?).ok_or_else(|| {
                    Self::bad(
                        &f,
                        "a SHA-256 fingerprint",
                        "write the 64 hex digits `cyrsync check` prints for the replica's \
                         certificate (colons allowed)",
                    )
                })?),
                None => None,
            },
        };
        let compress = self.switch(name, "cyrsync_compress", true)?;
        let allow_plaintext = self.switch(name, "cyrsync_allow_plaintext", false)?;
        let workers =
            usize::try_from(self.integer(name, "cyrsync_workers", 4, 1, 64)?).unwrap_or(4);
        let master_reader = match self.find(name, "cyrsync_master_reader") {
            None => MasterReader::Auto,
            Some(f) => match self.text(&f)? {
                "auto" => MasterReader::Auto,
                "local" => MasterReader::Local,
                "protocol" => MasterReader::Protocol,
                _ => {
                    return Err(Self::bad(
                        &f,
                        "auto, local or protocol",
                        "write auto, local or protocol",
                    ));
                }
            },
        };
        let cache_path = self
            .path(name, "cyrsync_cache_path")?
            .unwrap_or_else(|| log_dir.join("cyrsync.cache"));

        if let Some(r) = &replica {
            if r.credentials.authname.is_none() && !r.endpoint.noauth {
                self.warn(
                    host_found.as_ref().map(|f| f.entry.location.clone()),
                    format!("channel {name} has a replica but no sync_authname"),
                    "set `sync_authname:` to an admin of the replica (listed in its admins:)",
                );
            }
            if !tls.verify {
                let loc = self
                    .find(name, "cyrsync_tls_verify")
                    .map(|f| f.entry.location.clone());
                self.warn(
                    loc,
                    format!("channel {name}: TLS certificates of the replica are not verified"),
                    "pin the certificate with cyrsync_tls_fingerprint, or give tls_client_ca_file",
                );
            }
        }
        if let Some(cyrus_cache) = self.path(name, "sync_cache_db_path")?
            && cyrus_cache == cache_path
        {
            let loc = self
                .find(name, "sync_cache_db_path")
                .map(|f| f.entry.location.clone());
            self.warn(
                loc,
                format!(
                    "channel {name}: cyrsync_cache_path is Cyrus's own sync_cache_db_path ({})",
                    cache_path.display()
                ),
                "give cyrsync_cache_path a file of its own; the two caches must never share a file",
            );
        }

        let config = ChannelConfig {
            name: name.clone(),
            log_dir,
            replica,
            replica_is_own,
            source,
            sasl_mech,
            batch_size: u32::try_from(batch_size).unwrap_or(u32::MAX),
            repeat_interval,
            timeout,
            reconnect_maxwait,
            shutdown_file,
            tls,
            compress,
            allow_plaintext,
            workers,
            master_reader,
            imapd_conf: self.conf.path.clone(),
            cache_path,
        };
        let explained = self.explain(name, &config);
        Ok(ResolvedChannel { config, explained })
    }

    fn explain(&self, name: &ChannelName, config: &ChannelConfig) -> Vec<Explained> {
        keys::KEYS
            .iter()
            .filter(|k| k.scope == Scope::Channel)
            .map(|k| {
                let found = self.find(name, k.name);
                let shown = match (k.name, &found) {
                    (n, Some(_)) if n.ends_with("password") => "******** (set)".to_string(),
                    (_, Some(f)) => f.entry.value.clone(),
                    ("cyrsync_cache_path", None) => config.cache_path.display().to_string(),
                    ("cyrsync_source_authname" | "cyrsync_source_realm", None) => config
                        .source
                        .credentials
                        .authname
                        .clone()
                        .filter(|_| k.name.ends_with("authname"))
                        .or_else(|| {
                            config
                                .source
                                .credentials
                                .realm
                                .clone()
                                .filter(|_| k.name.ends_with("realm"))
                        })
                        .map_or_else(|| k.default.to_string(), |v| format!("{v} {}", k.default)),
                    ("cyrsync_source_password", None)
                        if config.source.credentials.password.is_some() =>
                    {
                        "******** (sync_password)".to_string()
                    }
                    (_, None) => k.default.to_string(),
                };
                Explained {
                    key: k.name,
                    shown,
                    from: found.map(|f| (f.entry.key.clone(), f.entry.location.clone())),
                }
            })
            .collect()
    }

    fn string(&self, channel: &ChannelName, key: &str) -> Result<Option<String>, ConfigError> {
        self.find(channel, key)
            .map(|f| self.text(&f).map(str::to_string))
            .transpose()
    }

    fn path(&self, channel: &ChannelName, key: &str) -> Result<Option<PathBuf>, ConfigError> {
        Ok(self.string(channel, key)?.map(PathBuf::from))
    }

    fn switch(
        &mut self,
        channel: &ChannelName,
        key: &str,
        default: bool,
    ) -> Result<bool, ConfigError> {
        let Some(f) = self.find(channel, key) else {
            return Ok(default);
        };
        let text = self.text(&f)?;
        let value = parse_switch(text).ok_or_else(|| {
            Self::bad(
                &f,
                "a switch",
                "write 1 or 0 (yes/no, on/off, true/false, in lower case)",
            )
        })?;
        let cyrus_reads_prefixed = keys::lookup(key).is_some_and(|k| k.cyrus_reads_prefixed);
        if f.prefixed && cyrus_reads_prefixed && cyrus_atoi_switch(text) != Some(value) {
            // sync_get_switchconfig() reads channel-prefixed switches with atoi().
            self.warn(
                Some(f.entry.location.clone()),
                format!(
                    "Cyrus's sync_client reads '{}: {text}' as a number and takes it as {}; cyrsync takes it as {}",
                    f.entry.key,
                    if cyrus_atoi_switch(text).unwrap_or(false) { "on" } else { "off" },
                    if value { "on" } else { "off" },
                ),
                format!("write `{}: {}` so both agree", f.entry.key, u8::from(value)),
            );
        }
        Ok(value)
    }

    fn integer(
        &self,
        channel: &ChannelName,
        key: &str,
        default: i64,
        min: i64,
        max: i64,
    ) -> Result<i64, ConfigError> {
        let Some(f) = self.find(channel, key) else {
            return Ok(default);
        };
        let n = parse_c_integer(self.text(&f)?)
            .ok_or_else(|| Self::bad(&f, "an integer", "write a whole number"))?;
        if !(min..=max).contains(&n) {
            return Err(Self::bad(
                &f,
                "a number in range",
                format!("write a number from {min} to {max}"),
            ));
        }
        Ok(n)
    }

    fn signed_duration(
        &self,
        channel: &ChannelName,
        key: &str,
        default_secs: i64,
    ) -> Result<i64, ConfigError> {
        let Some(f) = self.find(channel, key) else {
            return Ok(default_secs);
        };
        parse_duration(self.text(&f)?, 's').ok_or_else(|| {
            Self::bad(
                &f,
                "a duration",
                "write a duration such as 30s, 5m, 1h30m or 1d; a bare number is seconds",
            )
        })
    }

    fn duration(
        &self,
        channel: &ChannelName,
        key: &str,
        default_secs: i64,
    ) -> Result<Duration, ConfigError> {
        let secs = self.signed_duration(channel, key, default_secs)?;
        if secs < 0 {
            let f = self.find(channel, key);
            return match f {
                Some(f) => Err(Self::bad(
                    &f,
                    "a positive duration",
                    "write a duration of 0 or more",
                )),
                None => Ok(Duration::from_secs(default_secs.unsigned_abs())),
            };
        }
        Ok(Duration::from_secs(secs.unsigned_abs()))
    }

    /// Parses a host key (or the loopback default when `host` is `None`) and applies
    /// the port key unless the host already names a port, as `backend_connect` does.
    fn endpoint(
        &self,
        host: Option<&Found<'_>>,
        port_key: &str,
        channel: &ChannelName,
    ) -> Result<Endpoint, ConfigError> {
        let mut endpoint = match host {
            Some(found) => parse_host(self.text(found)?).map_err(|m| {
                Self::bad(
                    found,
                    "a host, host:port or /socket",
                    format!("{m}; e.g. `replica.example.org` or `replica.example.org:2005`"),
                )
            })?,
            None => Endpoint {
                host: Host::Name("127.0.0.1".into()),
                port: None,
                require_tls: false,
                noauth: false,
            },
        };
        if endpoint.port.is_none()
            && !matches!(endpoint.host, Host::Unix(_))
            && let Some(f) = self.find(channel, port_key)
        {
            endpoint.port =
                Some(parse_port(self.text(&f)?).map_err(|m| Self::bad(&f, "a port", m))?);
        }
        Ok(endpoint)
    }

    fn global_warnings(
        &mut self,
        sync_log: bool,
        log_channels: &[ChannelName],
        log_channels_found: Option<&Found<'a>>,
        channels: &[ResolvedChannel],
    ) {
        if !sync_log {
            let loc = self.conf.get("sync_log").map(|e| e.location.clone());
            self.warn(
                loc,
                "sync_log is off: Cyrus writes no sync log, so rolling replication has nothing to read".into(),
                "set `sync_log: 1` and restart Cyrus",
            );
        }
        if let Some(f) = log_channels_found
            && self.conf.get("sync_host").is_some()
            && !log_channels.contains(&ChannelName::DEFAULT)
        {
            self.warn(
                Some(f.entry.location.clone()),
                "sync_log_channels does not list \"\" but sync_host is set: Cyrus writes no log \
                 for the default channel, so nothing replicates to sync_host"
                    .into(),
                format!(
                    "add \"\" to the list: `sync_log_channels: \"\" {}`",
                    f.entry.value
                ),
            );
        }
        for c in channels {
            let cfg = &c.config;
            if !log_channels.contains(&cfg.name) {
                continue;
            }
            match (&cfg.replica, cfg.replica_is_own) {
                (None, _) => self.warn(
                    None,
                    format!("channel {} has no replica (no sync_host); cyrsync leaves its log alone", cfg.name),
                    match cfg.name.name() {
                        Some(n) => format!("set `{n}_sync_host:` if this channel is meant for replication"),
                        None => "set `sync_host:` to replicate the default channel".to_string(),
                    },
                ),
                (Some(_), false) => self.warn(
                    None,
                    format!(
                        "channel {0} has no {0}_sync_host of its own; `cyrsync run` leaves its log to its \
                         own consumer (e.g. squatter) unless started with -n {0}",
                        cfg.name
                    ),
                    "nothing, if that is intended",
                ),
                (Some(_), true) => {}
            }
        }
        if let Some(e) = self.conf.get("sync_rightnow_channel") {
            self.warn(
                Some(e.location.clone()),
                format!(
                    "sync_rightnow_channel ({}) is synced by Cyrus's own processes at each change; it has no log for cyrsync",
                    e.value
                ),
                "nothing to do for cyrsync; remove it if you meant cyrsync to carry that channel",
            );
        }
        let entries: Vec<Entry> = self.conf.entries().to_vec();
        for e in &entries {
            self.entry_warnings(e, log_channels);
        }
        self.permission_warnings();
    }

    fn entry_warnings(&mut self, e: &Entry, log_channels: &[ChannelName]) {
        if e.value.contains(" #") || e.value.contains("\t#") {
            self.warn(
                Some(e.location.clone()),
                format!(
                    "the value of {} is '{}': Cyrus keeps everything after the colon, the comment too",
                    e.key,
                    if e.key.ends_with("password") { "******** #…".to_string() } else { e.value.clone() }
                ),
                "move the comment to a line of its own that starts with #",
            );
        }
        if let Some((prefix, info)) = keys::split_channel_prefix(&e.key) {
            if info.scope == Scope::Global {
                self.warn(
                    Some(e.location.clone()),
                    format!(
                        "{} takes no channel prefix; '{}' is ignored",
                        info.name, e.key
                    ),
                    format!("write `{}:` without the prefix", info.name),
                );
            } else if !log_channels.contains(&ChannelName::new(prefix)) {
                self.warn(
                    Some(e.location.clone()),
                    format!(
                        "'{}' is for channel '{prefix}', which sync_log_channels does not list",
                        e.key
                    ),
                    format!(
                        "add {prefix} to sync_log_channels, or check the spelling of the prefix"
                    ),
                );
            } else if info.owner == Owner::Cyrus && !info.cyrus_reads_prefixed {
                self.warn(
                    Some(e.location.clone()),
                    format!(
                        "Cyrus's sync_client ignores '{}' (it reads only the global {}); cyrsync honours it",
                        e.key, info.name
                    ),
                    "nothing, if only cyrsync replicates this channel",
                );
            }
            return;
        }
        if e.key.starts_with("cyrsync_") && keys::lookup(&e.key).is_none() {
            let hint = match keys::closest_cyrsync_key(&e.key) {
                Some(k) => format!("did you mean {k}? (see cyrsync(8) for the keys)"),
                None => "see cyrsync(8) for the keys".to_string(),
            };
            self.warn(
                Some(e.location.clone()),
                format!("unknown cyrsync key '{}' is ignored", e.key),
                hint,
            );
        }
    }

    fn permission_warnings(&mut self) {
        use std::os::unix::fs::PermissionsExt;
        let files: Vec<PathBuf> = self.conf.files().to_vec();
        for file in files {
            let holds_password = self
                .conf
                .entries()
                .iter()
                .find(|e| e.location.file == file && e.key.ends_with("password"));
            let Some(entry) = holds_password else {
                continue;
            };
            let loc = entry.location.clone();
            let Ok(meta) = std::fs::metadata(&file) else {
                continue;
            };
            let mode = meta.permissions().mode();
            if mode & 0o004 != 0 {
                self.warn(
                    Some(loc),
                    format!(
                        "{} holds a password and is readable by every user (mode {:04o})",
                        file.display(),
                        mode & 0o7777
                    ),
                    format!(
                        "chmod o-r {} (Cyrus needs only its own user and group)",
                        file.display()
                    ),
                );
            }
        }
    }
}
