//! The `cyrsync` binary: parses the command line and dispatches.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use cyrsync::check;
use cyrsync::cli::{CheckArgs, Cli, Command, RunArgs, Selection, TuiArgs};
use cyrsync::config::{ChannelConfig, ChannelName, ImapdConf, Settings};
use cyrsync::config::{ConfigError, DEFAULT_CONFIG_PATH};
use cyrsync::daemon::{Daemon, Exit};
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
        Command::Check(args) => run_check(config, args),
        Command::Snippet(args) => {
            args.which.write_to(&mut std::io::stdout().lock())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Run(args) => run_daemon(cli, config, args),
        Command::Status(args) => {
            let socket = control_socket(config, args.socket.as_ref())?;
            let snapshot = cyrsync::status_cmd::fetch(&socket)?;
            if args.json {
                println!("{snapshot}");
            } else {
                print!("{}", cyrsync::status_cmd::render(&snapshot));
            }
            Ok(if cyrsync::status_cmd::has_error(&snapshot) {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Tui(args) if args.standalone => run_standalone(cli, config, args),
        Command::Tui(args) => {
            let socket = control_socket(config, args.socket.as_ref())?;
            cyrsync::tui::run(&socket, false)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Sync(args) => {
            init_logging_oneshot(cli.verbose);
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
            init_logging_oneshot(cli.verbose);
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

/// `cyrsync check`: exit 0 when every checked channel is usable, 1 when one
/// is not, 78 when the configuration is refused.
fn run_check(config: &std::path::Path, args: &CheckArgs) -> anyhow::Result<ExitCode> {
    use check::render;
    let report = match check::check_config(config, &args.channel_names()) {
        Ok(r) => r,
        Err(e) => {
            if args.json {
                println!("{}", render::config_error_json(config, &e.to_string()));
            }
            return Err(e.into());
        }
    };
    if args.config_only {
        if args.json {
            println!("{}", render::json(&check::config_only(&report)));
        } else {
            print!("{}", report.render());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let opts = check::CheckOptions {
        cyrus_conf: args.cyrus_conf.clone(),
    };
    let result = runtime()?.block_on(check::check(&report, &opts));
    if args.json {
        println!("{}", render::json(&result));
    } else {
        let colour = std::io::IsTerminal::is_terminal(&std::io::stdout())
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        let colour = if colour {
            render::Colour::Always
        } else {
            render::Colour::Never
        };
        print!("{}", render::text(&result, colour));
    }
    Ok(if result.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn run_daemon(cli: &Cli, config: &std::path::Path, args: &RunArgs) -> anyhow::Result<ExitCode> {
    let named = args.channel_names();
    let load = || -> anyhow::Result<(Settings, Vec<ChannelConfig>)> {
        let conf = ImapdConf::load(config)?;
        let settings = Settings::resolve(&conf, &named)?;
        let channels = settings
            .channels_to_run(&named)?
            .into_iter()
            .cloned()
            .collect();
        Ok((settings, channels))
    };
    let (settings, mut channels) = load()?;
    for w in &settings.warnings {
        eprintln!("cyrsync: warning: {w}");
    }
    let logging = cyrsync::logging::init_daemon(
        cli.verbose,
        settings.log_file.as_deref(),
        syslog_socket(&settings).as_deref(),
    )?;
    // Cyrus's files belong to the cyrus user: drop root before any thread
    // starts, so that every thread runs with the same credentials.
    drop_privileges(&settings.run_as_user)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        // The engine's nested async state machines are deep; debug builds
        // overflow tokio's 2 MiB default.
        .thread_stack_size(16 << 20)
        .enable_all()
        .build()?;
    {
        let _runtime = rt.enter();
        match logging.reopen_on_hangup() {
            Ok(Some(task)) => drop(rt.spawn(task)),
            Ok(None) => {}
            Err(e) => tracing::error!("log file will not be reopened on SIGHUP: {e}"),
        }
    }
    loop {
        let daemon = Daemon::new(&channels).with_metrics(settings.metrics_listen.clone());
        tracing::info!(
            "cyrsync {} replicating {} channel(s)",
            env!("CARGO_PKG_VERSION"),
            channels.len()
        );
        match rt.block_on(daemon.run(channels, Some(&settings.control_socket)))? {
            Exit::Stopped => return Ok(ExitCode::SUCCESS),
            Exit::Reload => match load() {
                Ok((_, c)) => channels = c,
                Err(e) => {
                    // A broken edit must not stop replication: keep going
                    // with the configuration that works, and say why.
                    tracing::error!("imapd.conf not reloaded: {e:#}");
                    channels = load_previous(&settings, &named)?;
                }
            },
        }
    }
}

/// Where syslog lines go when `cyrsync_syslog` is on.
fn syslog_socket(settings: &Settings) -> Option<PathBuf> {
    settings.syslog.then(|| {
        settings
            .syslog_socket
            .clone()
            .unwrap_or_else(|| PathBuf::from(cyrsync::logging::DEFAULT_SYSLOG_SOCKET))
    })
}

/// `--socket`, else `cyrsync_control_socket` of imapd.conf.
fn control_socket(config: &std::path::Path, given: Option<&PathBuf>) -> anyhow::Result<PathBuf> {
    Ok(match given {
        Some(p) => p.clone(),
        None => Settings::resolve(&ImapdConf::load(config)?, &[])?.control_socket,
    })
}

/// `cyrsync tui --standalone`: the daemon on a thread of this process, with a
/// private control socket, and the TUI attached to it.
fn run_standalone(cli: &Cli, config: &std::path::Path, args: &TuiArgs) -> anyhow::Result<ExitCode> {
    let named = args.channel_names();
    let conf = ImapdConf::load(config)?;
    let settings = Settings::resolve(&conf, &named)?;
    let channels: Vec<ChannelConfig> = settings
        .channels_to_run(&named)?
        .into_iter()
        .cloned()
        .collect();
    for w in &settings.warnings {
        eprintln!("cyrsync: warning: {w}");
    }
    // Log lines would tear the screen: the TUI shows events; the full log
    // goes to cyrsync_log_file when there is one.
    if let Some(path) = settings.log_file.as_deref() {
        cyrsync::logging::init_daemon(
            cli.verbose,
            Some(path),
            syslog_socket(&settings).as_deref(),
        )?;
    }
    drop_privileges(&settings.run_as_user)?;
    // Mode 0700, owned by the user we now are: nobody else can steer us.
    let dir = tempfile::Builder::new().prefix("cyrsync-tui-").tempdir()?;
    let socket = dir.path().join("control");
    let daemon = Daemon::new(&channels);
    let handle = daemon.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_stack_size(16 << 20)
        .enable_all()
        .build()?;
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let daemon_socket = socket.clone();
    let worker = std::thread::spawn(move || {
        let result = rt.block_on(daemon.run(channels, Some(&daemon_socket)));
        let _ = done_tx.send(result.as_ref().err().map(ToString::to_string));
        result
    });
    // A channel that cannot start (its log is taken by another consumer)
    // fails at once: say so here rather than in an empty dashboard.
    let started = std::time::Instant::now();
    while started.elapsed() < std::time::Duration::from_secs(2) {
        if let Ok(Some(e)) = done_rx.try_recv() {
            anyhow::bail!("{e}");
        }
        if socket.exists() && started.elapsed() > std::time::Duration::from_millis(500) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let ui = cyrsync::tui::run(&socket, true);
    let _ = handle.stop.send(true);
    eprintln!("cyrsync: finishing the current actions…");
    let daemon_result = worker
        .join()
        .map_err(|_| anyhow::anyhow!("the replication thread panicked"))?;
    ui?;
    daemon_result?;
    Ok(ExitCode::SUCCESS)
}

fn load_previous(settings: &Settings, named: &[ChannelName]) -> anyhow::Result<Vec<ChannelConfig>> {
    Ok(settings
        .channels_to_run(named)?
        .into_iter()
        .cloned()
        .collect())
}

/// One-shot commands log to stderr (see [`cyrsync::logging::init_oneshot`]).
fn init_logging_oneshot(verbose: u8) {
    cyrsync::logging::init_oneshot(verbose);
}

fn drop_privileges(user: &str) -> anyhow::Result<()> {
    use nix::unistd::{Uid, User, initgroups, setgid, setuid};
    if !Uid::effective().is_root() {
        return Ok(());
    }
    let Some(u) = User::from_name(user)? else {
        anyhow::bail!(
            "started as root but user {user:?} (cyrsync_user) does not exist; create it or set cyrsync_user"
        );
    };
    let name = std::ffi::CString::new(user)?;
    initgroups(&name, u.gid)?;
    setgid(u.gid)?;
    setuid(u.uid)?;
    tracing::info!("running as {user} (uid {})", u.uid);
    Ok(())
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
