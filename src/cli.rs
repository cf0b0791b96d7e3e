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
    /// Diagnose the configuration: resolved settings per channel and warnings.
    Check(CheckArgs),
    /// Print an imapd.conf snippet (also installed as an example file).
    Snippet(SnippetArgs),
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
}

impl CheckArgs {
    /// The channels named with `-n`.
    pub fn channel_names(&self) -> Vec<ChannelName> {
        self.channels.iter().map(|c| ChannelName::new(c)).collect()
    }
}
