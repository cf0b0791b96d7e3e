//! imapd.conf, read exactly as Cyrus reads it, and resolved into per-channel
//! settings for cyrsync.
//!
//! Layers: [`file`] turns text into `key: value` entries (no meaning),
//! [`value`] parses Cyrus's value syntaxes, [`keys`] is the catalogue of keys,
//! [`settings`] resolves channels and collects warnings.

pub mod endpoint;
pub mod error;
pub mod file;
pub mod keys;
pub mod settings;
pub mod value;

pub use endpoint::{Endpoint, Host};
pub use error::{ConfigError, ConfigErrorKind, Location, Warning};
pub use file::ImapdConf;
pub use settings::{
    ChannelConfig, ChannelName, Credentials, MasterReader, Peer, Secret, Settings, TlsSettings,
};

/// The imapd.conf Cyrus tools read when no `-C` is given.
pub const DEFAULT_CONFIG_PATH: &str = if cfg!(target_os = "freebsd") {
    "/usr/local/etc/imapd.conf"
} else {
    "/etc/imapd.conf"
};
