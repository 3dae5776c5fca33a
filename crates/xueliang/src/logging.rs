use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::prelude::*;
use tracing_subscriber::{EnvFilter, fmt};

use crate::config::{LogConfig, LogFormat};

/// Installs the process-wide subscriber: `RUST_LOG` if set, else the config's filter. rumqttd's
/// ERROR lines about ordinary disconnects of the embedded broker's clients are dropped
/// (`xl_gates::is_rumqttd_disconnect_noise`); its other lines pass.
pub fn init(config: &LogConfig) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let quiet = filter_fn(|meta| !xl_gates::is_rumqttd_disconnect_noise(meta));
    let layer = fmt::layer().with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match config.format {
        LogFormat::Text => registry.with(layer.with_filter(quiet)).try_init(),
        LogFormat::Json => registry.with(layer.json().with_filter(quiet)).try_init(),
    };
}
