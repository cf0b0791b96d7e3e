//! The `cyrsync` binary: parses the command line and dispatches.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use cyrsync::check;
use cyrsync::cli::{Cli, Command};
use cyrsync::config::{ConfigError, DEFAULT_CONFIG_PATH};

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
    }
}
