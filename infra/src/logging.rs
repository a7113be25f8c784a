//! Logging set-up of every binary: `tracing` to stderr, filtered by `RUST_LOG` (default
//! `info`), as text for people or JSON lines for log collectors, chosen by the same
//! `--log-format` flag (or `LOG_FORMAT`) everywhere. Colour codes only go to a terminal,
//! never into a file or a pipe.

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The `--log-format` flag, for a binary's top-level arguments (`#[command(flatten)]`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct LogArgs {
    /// Log format: `text` for people, `json` for log collectors. Default: text on a
    /// terminal, json otherwise.
    #[arg(long, global = true, env = "LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
}

impl LogArgs {
    /// Installs the global subscriber as these flags say.
    pub fn init(&self) {
        init(self.log_format)
    }
}

/// Installs the global subscriber. `None`: text on a terminal, JSON otherwise.
pub fn init(format: Option<LogFormat>) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let terminal = std::io::stderr().is_terminal();
    let json = match format {
        Some(LogFormat::Json) => true,
        Some(LogFormat::Text) => false,
        None => !terminal,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(terminal)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
