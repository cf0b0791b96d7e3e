//! Command-line definitions. `main.rs` dispatches on these; nothing here does work.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::ChannelName;

/// Rolling replication client for Cyrus IMAPd, with a terminal UI.
#[derive(Debug, Parser)]
#[command(name = "cyrsync", version, about, long_about = None)]
pub struct Cli {
    /// The imapd.conf to read (the file Cyrus itself uses).
    #[arg(short = 'C', long = "config", global = true, value_name = "IMAPD_CONF")]
    pub config: Option<PathBuf>,

    /// More output; repeat for more (-vv: debug, -vvv: protocol trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Diagnose the configuration, then connections, TLS, login, admin rights and the sync log of every channel.
    Check(CheckArgs),
    /// Print an imapd.conf snippet (also installed as an example file).
    Snippet(SnippetArgs),
    /// Rolling replication in the foreground (rc.d wraps it in daemon(8)).
    Run(RunArgs),
    /// Replicate users or mailboxes once, like `sync_client -u/-m/-A`.
    Sync(SyncArgs),
    /// Show what the running daemon is doing.
    Status(StatusArgs),
    /// Watch and steer replication in a terminal dashboard.
    Tui(TuiArgs),
    /// Compare master and replica without changing either; exit 1 if they differ.
    Verify(VerifyArgs),
}

/// Arguments of `cyrsync status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print the snapshot as JSON (for monitoring scripts).
    #[arg(long)]
    pub json: bool,

    /// The daemon's control socket (default: `cyrsync_control_socket`).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
}

/// Arguments of `cyrsync tui`.
#[derive(Debug, Args)]
pub struct TuiArgs {
    /// The daemon's control socket (default: `cyrsync_control_socket`).
    #[arg(long, value_name = "PATH", conflicts_with = "standalone")]
    pub socket: Option<PathBuf>,

    /// Replicate in this process instead of attaching to a daemon.
    #[arg(long)]
    pub standalone: bool,

    /// With --standalone: only these channels (`""` for the default); repeatable.
    #[arg(
        short = 'n',
        long = "channel",
        value_name = "CHANNEL",
        requires = "standalone"
    )]
    pub channels: Vec<String>,
}

impl TuiArgs {
    /// The channels named with `-n`.
    pub fn channel_names(&self) -> Vec<ChannelName> {
        self.channels.iter().map(|c| ChannelName::new(c)).collect()
    }
}

/// Arguments of `cyrsync run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Only these channels (`""` for the default channel); repeatable.
    #[arg(short = 'n', long = "channel", value_name = "CHANNEL")]
    pub channels: Vec<String>,
}

impl RunArgs {
    /// The channels named with `-n`.
    pub fn channel_names(&self) -> Vec<ChannelName> {
        self.channels.iter().map(|c| ChannelName::new(c)).collect()
    }
}

/// Which users or mailboxes a one-shot command works on.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct Selection {
    /// These users (userids, `alice` or `alice@example.com`); repeatable.
    #[arg(short = 'u', long = "user", value_name = "USER")]
    pub users: Vec<String>,

    /// These mailboxes (internal names, `user.alice.Sent`); repeatable.
    #[arg(short = 'm', long = "mailbox", value_name = "MAILBOX")]
    pub mailboxes: Vec<String>,

    /// Every user on the master.
    #[arg(short = 'A', long = "all-users")]
    pub all: bool,
}

/// Arguments of `cyrsync sync`.
#[derive(Debug, Args)]
pub struct SyncArgs {
    /// What to replicate.
    #[command(flatten)]
    pub selection: Selection,

    /// The channel whose replica to write (default: the default channel).
    #[arg(short = 'n', long = "channel", value_name = "CHANNEL")]
    pub channel: Option<String>,
}

/// Arguments of `cyrsync verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// What to compare.
    #[command(flatten)]
    pub selection: Selection,

    /// The channel whose replica to compare (default: the default channel).
    #[arg(short = 'n', long = "channel", value_name = "CHANNEL")]
    pub channel: Option<String>,

    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `cyrsync snippet`.
#[derive(Debug, Args)]
pub struct SnippetArgs {
    /// Which snippet.
    #[arg(value_enum)]
    pub which: crate::snippet::Snippet,
}

/// Arguments of `cyrsync check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Check only the configuration, without connecting anywhere.
    #[arg(long)]
    pub config_only: bool,

    /// Only these channels (`""` for the default channel); repeatable.
    #[arg(short = 'n', long = "channel", value_name = "CHANNEL")]
    pub channels: Vec<String>,

    /// Print the result as JSON (for monitoring scripts).
    #[arg(long)]
    pub json: bool,

    /// The cyrus.conf to search for a sync_client still configured
    /// (default: cyrus.conf beside imapd.conf).
    #[arg(long, value_name = "FILE")]
    pub cyrus_conf: Option<PathBuf>,
}

impl CheckArgs {
    /// The channels named with `-n`.
    pub fn channel_names(&self) -> Vec<ChannelName> {
        self.channels.iter().map(|c| ChannelName::new(c)).collect()
    }
}
