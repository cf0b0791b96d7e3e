//! Errors and warnings of the configuration layer. Each one names the file and
//! line it comes from and says how to fix it.

use std::fmt;
use std::path::PathBuf;

/// A place in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    /// The file.
    pub file: PathBuf,
    /// 1-based line number.
    pub line: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// A configuration that cyrsync (or Cyrus itself) refuses. Exit status 78
/// (EX_CONFIG), as Cyrus uses for the same faults.
#[derive(Debug, thiserror::Error)]
#[error("{}{kind}\n  fix: {}", prefix(.location), .kind.fix())]
pub struct ConfigError {
    /// Where the fault is, when it is in a file.
    pub location: Option<Location>,
    /// What is wrong.
    pub kind: ConfigErrorKind,
}

fn prefix(location: &Option<Location>) -> String {
    location
        .as_ref()
        .map(|l| format!("{l}: "))
        .unwrap_or_default()
}

impl ConfigError {
    /// An error at `location`.
    pub fn new(location: Option<Location>, kind: ConfigErrorKind) -> Self {
        ConfigError { location, kind }
    }
}

/// What is wrong with a configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigErrorKind {
    /// The file (or an included file) cannot be read.
    #[error("cannot read configuration file {}: {source}", .path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `@include` of a file that was already read.
    #[error("configuration file {} is included twice", .path.display())]
    IncludedTwice {
        /// The file.
        path: PathBuf,
    },
    /// A line that is not `key: value`.
    #[error("invalid option name in line '{line}'")]
    InvalidKey {
        /// The start of the offending line.
        line: String,
    },
    /// A directive other than `@include`.
    #[error("invalid directive '{directive}'")]
    InvalidDirective {
        /// The directive as written.
        directive: String,
    },
    /// `key:` with nothing after it.
    #[error("empty value for '{key}'")]
    EmptyValue {
        /// The key.
        key: String,
    },
    /// The same key twice.
    #[error("option '{key}' was specified twice (first at {first})")]
    Duplicate {
        /// The key.
        key: String,
        /// Its first occurrence.
        first: Location,
    },
    /// A value of the wrong form for its key.
    #[error("invalid value '{value}' for '{key}': {expected}")]
    BadValue {
        /// The key as written (with its channel prefix).
        key: String,
        /// The value as written.
        value: String,
        /// What form the key takes.
        expected: &'static str,
        /// How to fix it.
        fix: String,
    },
    /// A value Cyrus accepts but that is not UTF-8 text, where cyrsync needs text.
    #[error("the value of '{key}' is not UTF-8 text")]
    NotText {
        /// The key.
        key: String,
    },
    /// A required key is missing.
    #[error("'{key}' is not set")]
    Missing {
        /// The key.
        key: &'static str,
        /// How to fix it.
        fix: &'static str,
    },
    /// No channel has a replica to replicate to.
    #[error("no channel has a replica: {detail}")]
    NoReplica {
        /// What was found instead.
        detail: String,
    },
    /// `-n CHANNEL` names a channel with no replica.
    #[error("channel '{channel}' has no replica")]
    ChannelWithoutReplica {
        /// The channel.
        channel: String,
    },
}

impl ConfigErrorKind {
    /// A sentence telling the administrator how to fix it.
    pub fn fix(&self) -> String {
        match self {
            Self::Open { .. } => {
                "check the path (`-C FILE` or the @include line) and that this user can read it"
                    .into()
            }
            Self::IncludedTwice { .. } => "remove the second @include of that file".into(),
            Self::InvalidKey { .. } => "write lines as `key: value`: the key has only letters, \
                 digits, '-' and '_', and the colon follows it with no space; a comment line \
                 starts with '#'"
                .into(),
            Self::InvalidDirective { .. } => "the only directive is `@include: FILE`".into(),
            Self::EmptyValue { .. } => {
                "write a value after the colon, or delete the line to use the default".into()
            }
            Self::Duplicate { .. } => {
                "keep one of the two lines; Cyrus refuses to start with both too".into()
            }
            Self::BadValue { fix, .. } => fix.clone(),
            Self::NotText { .. } => "write the value in UTF-8 (or plain ASCII)".into(),
            Self::Missing { fix, .. } => (*fix).into(),
            Self::NoReplica { .. } => "set `sync_host: REPLICA` (or `CHANNEL_sync_host: \
                 REPLICA` for a channel listed in sync_log_channels)"
                .into(),
            Self::ChannelWithoutReplica { channel } => {
                format!("set `{channel}_sync_host: REPLICA` or `sync_host: REPLICA`")
            }
        }
    }
}

/// Something that works but is probably not what the administrator meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// Where it comes from, when one line is to blame.
    pub location: Option<Location>,
    /// What is off.
    pub message: String,
    /// What to do about it.
    pub fix: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}\n  fix: {}",
            prefix(&self.location),
            self.message,
            self.fix
        )
    }
}
