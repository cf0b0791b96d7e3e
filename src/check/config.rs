//! What the configuration resolves to, and what looks wrong in it.

use std::path::Path;

use crate::config::{ChannelName, ConfigError, ImapdConf, Settings};

/// The result of checking a configuration.
#[derive(Debug)]
pub struct ConfigReport {
    /// The resolved settings.
    pub settings: Settings,
    /// The channels to show (all, or those named with `-n`).
    pub shown: Vec<ChannelName>,
    /// The channels `cyrsync run` would replicate.
    pub run: Vec<ChannelName>,
}

/// Reads and resolves `path`; fails as `cyrsync run` would fail to start.
pub fn check_config(path: &Path, named: &[ChannelName]) -> Result<ConfigReport, ConfigError> {
    let conf = ImapdConf::load(path)?;
    let settings = Settings::resolve(&conf, named)?;
    let run = settings
        .channels_to_run(named)?
        .into_iter()
        .map(|c| c.name.clone())
        .collect();
    let shown = if named.is_empty() {
        settings
            .channels
            .iter()
            .map(|c| c.config.name.clone())
            .collect()
    } else {
        named.to_vec()
    };
    Ok(ConfigReport {
        settings,
        shown,
        run,
    })
}

impl ConfigReport {
    /// The report as text for a terminal (see [`super::render::config_text`]).
    pub fn render(&self) -> String {
        super::render::config_text(self)
    }
}
