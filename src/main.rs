//! The `cyrsync` binary: parses the command line and dispatches.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use cyrsync::check;
use cyrsync::cli::{Cli, Command, Selection};
use cyrsync::config::{ConfigError, DEFAULT_CONFIG_PATH};
use cyrsync::oneshot;

/// sysexits EX_CONFIG, the status Cyrus uses for a configuration error.
const EX_CONFIG: u8 = 78;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = cli
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH));
    match run(&cli, &config) {
        Ok(code) => code,
        Err(err) => {
            if let Some(config_error) = err.downcast_ref::<ConfigError>() {
                eprintln!("cyrsync: configuration error: {config_error}");
                return ExitCode::from(EX_CONFIG);
            }
            eprintln!("cyrsync: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli, config: &std::path::Path) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Check(args) => {
            let report = check::check_config(config, &args.channel_names())?;
            print!("{}", report.render());
            if !args.config_only {
                println!(
                    "note: only the configuration was checked; connection, TLS and \
                     authentication checks are not built into this version yet"
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Snippet(args) => {
            args.which.write_to(&mut std::io::stdout().lock())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Sync(args) => {
            let ch = oneshot::channel(config, args.channel.as_deref())?;
            let items = selection(config, &args.selection)?;
            let started = std::time::Instant::now();
            let mut progress = oneshot::progress_printer();
            let report = runtime()?.block_on(oneshot::sync(&ch, items, &mut progress))?;
            if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
                eprintln!();
            }
            print!("{}", oneshot::render_sync(&report, started.elapsed()));
            Ok(if report.failures.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Verify(args) => {
            let ch = oneshot::channel(config, args.channel.as_deref())?;
            let items = selection(config, &args.selection)?;
            let checked = items.len();
            let diffs = runtime()?.block_on(oneshot::verify(&ch, items))?;
            print!("{}", oneshot::render_verify(&diffs, args.json, checked));
            Ok(if diffs.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

fn selection(config: &std::path::Path, sel: &Selection) -> anyhow::Result<oneshot::Selection> {
    Ok(if sel.all {
        oneshot::Selection::Users(oneshot::list_users(config)?)
    } else if !sel.mailboxes.is_empty() {
        oneshot::Selection::Mailboxes(sel.mailboxes.clone())
    } else {
        oneshot::Selection::Users(sel.users.clone())
    })
}
