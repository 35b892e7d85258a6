//! deadair's own log lines, through `tracing`: levels from `DEADAIR_LOG` (or `RUST_LOG`), `info`
//! by default, in `tracing`'s filter syntax (`warn`, `deadair=debug`); written to stderr as
//! human-readable lines, or as JSON lines with `--log-format json`. Rate-limited kinds
//! (`crate::ratelog`) stay rate-limited: they reach the subscriber only when their rate allows.

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// `2026-01-01T00:00:00.000000Z  INFO assigned metrics/0 at ...`
    #[default]
    Human,
    /// One JSON object per line: `timestamp`, `level`, `fields.message` and any other fields.
    Json,
}

/// A `--log-format` that is neither `human` nor `json`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected `human` or `json`, found `{0}`")]
pub struct UnknownLogFormat(pub String);

impl std::str::FromStr for LogFormat {
    type Err = UnknownLogFormat;
    fn from_str(s: &str) -> Result<Self, UnknownLogFormat> {
        match s {
            "human" => Ok(LogFormat::Human),
            "json" => Ok(LogFormat::Json),
            other => Err(UnknownLogFormat(other.to_string())),
        }
    }
}

/// Installs the subscriber for the process (a second call does nothing). A filter that does
/// not parse is reported once and `info` is used.
pub fn init(format: LogFormat) {
    let (var, text) = match (std::env::var("DEADAIR_LOG"), std::env::var("RUST_LOG")) {
        (Ok(t), _) => ("DEADAIR_LOG", t),
        (_, Ok(t)) => ("RUST_LOG", t),
        _ => ("", "info".to_string()),
    };
    let filter = EnvFilter::try_new(&text).unwrap_or_else(|e| {
        eprintln!("deadair: {var}=`{text}` is not a log filter ({e}); logging at info");
        EnvFilter::new("info")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
