//! `deadair run` configuration (TOML, unknown keys refused).
//!
//! ```toml
//! brokers = "127.0.0.1:9092"          # env DEADAIR_BROKERS overrides
//! group_id = "deadair"                # env DEADAIR_GROUP_ID overrides
//! model = "models/default.toml"       # optional; the built-in default model otherwise
//! alert_topic = "deadair-alerts"
//! alert_format = "proto"              # or "json"
//! heartbeat_interval = "10s"
//! allowed_lateness = "0s"             # the engine clock trails the newest event time by this
//! ingest_delay = "1s"                 # ...and wall time by this, while caught up (see clock.rs)
//! lag_threshold = "60s"               # pipeline_lag fires when this far behind
//! shutdown_timeout = "30s"
//! max_in_flight = 10000               # messages awaiting alert delivery before fetching pauses
//! metrics_addr = "127.0.0.1:9464"     # /metrics, /healthz, /readyz; "" disables
//! dead_letter_topic = "deadair-dead-letters"  # optional: copies of undecodable messages
//!
//! [[input]]
//! topic = "metrics"
//! format = "proto"                    # or "json", "remote_write", "otlp", "influx"
//! autodetect = false                  # true: a message's content-type header overrides `format`
//! precision = "ns"                    # influx: timestamp unit ("ns", "us", "ms", "s")
//! quantiles = [0.5, 0.9, 0.99]        # otlp: quantiles derived from histograms and summaries
//! promote_resource_attributes = []    # otlp: resource attributes kept as labels
//! max_decompressed_bytes = 33554432   # remote_write: larger messages are refused
//!
//! [inventory]                         # optional: series expected to report
//! topic = "deadair-inventory"         # compacted; co-partitioned with `input` (see below)
//! input = "metrics"                   # the input topic it describes (default: the first)
//!
//! [state]                             # optional: engine state checkpointed to Kafka
//! topic = "deadair-state"             # compacted; at least as many partitions as any input
//! interval = "60s"
//!
//! [alertmanager]                      # optional: alerts also sent to Alertmanager's v2 API
//! url = "https://am.example:9093"     # http:// or https://
//! ca_file = "/etc/deadair/am-ca.pem"  # optional: a CA trusted besides the system's
//! basic_auth = { username = "deadair", password = { env = "AM_PASSWORD" } }
//! # bearer_token = { file = "/run/secrets/am-token" }   # or a bearer token
//! resend_interval = "60s"             # firing alerts re-sent; endsAt = now + 4 × this
//!
//! compression = "lz4"                 # of what deadair produces (none, gzip, snappy, lz4, zstd)
//!
//! [librdkafka]                        # passed through to every client (see kafka.rs)
//! "fetch.max.bytes" = 52428800
//! "security.protocol" = "SASL_SSL"
//! "sasl.mechanism" = "SCRAM-SHA-512"
//! "sasl.username" = "deadair"
//! "sasl.password" = { env = "KAFKA_PASSWORD" }   # secrets: { env = .. } or { file = .. }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::check::{self, Invalid};

mod alertmanager;
pub mod kafka;
pub mod secret;

/// Why a `deadair run` configuration file was refused; every message starts with the file
/// (and the line, for a syntax error).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}:{line}: {message}")]
    Syntax {
        file: String,
        line: usize,
        message: String,
    },
    #[error("{file}: {problem}")]
    Invalid { file: String, problem: Invalid },
    #[error("{file}:{line}: {key}: {problem}")]
    Key {
        file: String,
        line: usize,
        key: String,
        problem: String,
    },
}

pub use alertmanager::{AlertmanagerConfig, Auth, BasicAuth, Endpoint};

/// Payload format of an input topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputFormat {
    /// `deadair.v1.SampleBatch` (protobuf).
    Proto,
    /// One JSON sample object, or a JSON array of them, per message.
    Json,
    /// Prometheus remote-write 1.0: a snappy-compressed protobuf `WriteRequest` per message.
    RemoteWrite,
    /// OpenTelemetry OTLP: a protobuf `ExportMetricsServiceRequest` per message.
    Otlp,
    /// Influx line protocol: one or more lines per message.
    Influx,
}

/// Unit of Influx line-protocol timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    Ns,
    Us,
    Ms,
    S,
}

impl Precision {
    /// A timestamp in this unit as ms (rounded towards negative infinity), if in range.
    pub fn to_ms(self, t: i64) -> Option<i64> {
        match self {
            Self::Ns => Some(t.div_euclid(1_000_000)),
            Self::Us => Some(t.div_euclid(1_000)),
            Self::Ms => Some(t),
            Self::S => t.checked_mul(1_000),
        }
    }
}

/// Encoding of alert events on the alert topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AlertFormat {
    /// `deadair.v1.AlertEvent` (protobuf).
    #[default]
    Proto,
    /// The JSON form of `AlertEvent`.
    Json,
}

/// The expected-series topic: compacted, with as many partitions as its input topic. A record
/// in partition `p`, keyed by the series (`name{label="value",...}`), says the series is
/// expected on input partition `p`; a tombstone (empty value) retires it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inventory {
    pub topic: String,
    /// The input topic it is co-partitioned with (default: the first `[[input]]`).
    #[serde(default)]
    pub input: Option<String>,
}

fn default_checkpoint_interval() -> Duration {
    Duration::from_secs(60)
}

/// Where and how often engine state is checkpointed (see `kafka/checkpoint.rs`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// Compacted topic with at least as many partitions as any input topic.
    pub topic: String,
    /// Checkpoint interval per partition.
    #[serde(
        default = "default_checkpoint_interval",
        deserialize_with = "check::positive_std_duration"
    )]
    pub interval: Duration,
}

fn default_quantiles() -> Vec<f64> {
    vec![0.5, 0.9, 0.99]
}
fn default_max_decompressed() -> usize {
    32 << 20
}

/// At most this many quantiles per input (each derives one series per histogram).
pub const MAX_QUANTILES: usize = 16;

/// One input topic and how its messages are read (see `decode`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Input {
    pub topic: String,
    /// The format of messages that do not say otherwise.
    pub format: InputFormat,
    /// A message's `content-type` header, when it names a known format, overrides `format`.
    /// Off by default: reading a message's headers costs librdkafka an allocation per message,
    /// marked or not (docs/formats.md).
    #[serde(default)]
    pub autodetect: bool,
    /// Influx line protocol: the unit of timestamps.
    #[serde(default)]
    pub precision: Precision,
    /// OTLP: quantiles (0..=1) derived from histograms (estimated from buckets) and summaries.
    #[serde(default = "default_quantiles")]
    pub quantiles: Vec<f64>,
    /// OTLP: resource attributes kept as labels besides `job` and `instance`.
    #[serde(default)]
    pub promote_resource_attributes: Vec<String>,
    /// Remote-write: the largest decompressed message accepted, bytes.
    #[serde(default = "default_max_decompressed")]
    pub max_decompressed_bytes: usize,
}

impl Input {
    /// An input of `format` with every option at its default.
    pub fn new(topic: &str, format: InputFormat) -> Input {
        Input {
            topic: topic.into(),
            format,
            autodetect: false,
            precision: Precision::default(),
            quantiles: default_quantiles(),
            promote_resource_attributes: Vec::new(),
            max_decompressed_bytes: default_max_decompressed(),
        }
    }
}

fn default_brokers() -> String {
    "127.0.0.1:9092".into()
}
fn default_group() -> String {
    "deadair".into()
}
fn default_alert_topic() -> String {
    "deadair-alerts".into()
}
fn default_heartbeat() -> Duration {
    Duration::from_secs(10)
}
fn default_ingest_delay() -> Duration {
    Duration::from_secs(1)
}
fn default_lag_threshold() -> Duration {
    Duration::from_secs(60)
}
fn default_shutdown() -> Duration {
    Duration::from_secs(30)
}
fn default_max_in_flight() -> usize {
    10_000
}
fn default_compression() -> String {
    "lz4".into()
}
fn default_metrics_addr() -> String {
    "127.0.0.1:9464".into()
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Comma-separated bootstrap servers.
    #[serde(default = "default_brokers")]
    pub brokers: String,
    /// Consumer group id.
    #[serde(default = "default_group")]
    pub group_id: String,
    /// Model file; the built-in default model when absent.
    #[serde(default)]
    pub model: Option<PathBuf>,
    /// Input topics and their formats (at least one).
    pub input: Vec<Input>,
    #[serde(default = "default_alert_topic")]
    pub alert_topic: String,
    #[serde(default)]
    pub alert_format: AlertFormat,
    /// Interval of heartbeat events on the alert topic.
    #[serde(
        default = "default_heartbeat",
        deserialize_with = "check::positive_std_duration"
    )]
    pub heartbeat_interval: Duration,
    /// How far the engine clock trails the newest event time of a partition.
    #[serde(default, deserialize_with = "check::std_duration")]
    pub allowed_lateness: Duration,
    /// While a partition is caught up, its clock trails wall time by this: the time a sample
    /// may take from its producer to deadair.
    #[serde(
        default = "default_ingest_delay",
        deserialize_with = "check::std_duration"
    )]
    pub ingest_delay: Duration,
    /// Consumer lag (wall time minus the Kafka timestamp of the message being processed) beyond
    /// which a `pipeline_lag` alert fires for the partition.
    #[serde(
        default = "default_lag_threshold",
        deserialize_with = "check::positive_std_duration"
    )]
    pub lag_threshold: Duration,
    /// Upper bound on a graceful shutdown.
    #[serde(
        default = "default_shutdown",
        deserialize_with = "check::positive_std_duration"
    )]
    pub shutdown_timeout: Duration,
    /// Messages whose alerts await delivery before fetching pauses (backpressure).
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// Address of the HTTP endpoint for /metrics, /healthz and /readyz ("" disables it).
    #[serde(default = "default_metrics_addr")]
    pub metrics_addr: String,
    /// Expected series (optional).
    #[serde(default)]
    pub inventory: Option<Inventory>,
    /// Engine state checkpoints (optional; without them state is lost on restart).
    #[serde(default)]
    pub state: Option<StateConfig>,
    /// Alerts also forwarded to Prometheus Alertmanager (optional; see `alertmanager.rs`).
    #[serde(default)]
    pub alertmanager: Option<AlertmanagerConfig>,
    /// Topic that receives a copy of every undecodable message (optional): same key, payload
    /// and headers, plus `deadair-source-topic`, `deadair-source-partition`,
    /// `deadair-source-offset`, `deadair-error-reason` and `deadair-error` headers.
    #[serde(default)]
    pub dead_letter_topic: Option<String>,
    /// Codec of the records deadair produces (alerts, state, dead letters): "lz4" by default
    /// (the cheapest to compress and to read back, with a good ratio on alert JSON and
    /// protobuf); "none", "gzip", "snappy", "zstd" (smallest, most CPU). Input topics are read
    /// whatever codec their producers used.
    #[serde(default = "default_compression")]
    pub compression: String,
    /// librdkafka properties for every client, as written (see `kafka.rs`).
    #[serde(default, rename = "librdkafka")]
    librdkafka_raw: BTreeMap<toml::Spanned<String>, toml::Spanned<kafka::RawValue>>,
    /// The `[librdkafka]` properties, checked and with their secrets read.
    #[serde(skip)]
    pub librdkafka: BTreeMap<String, kafka::KafkaValue>,
}

/// The line of `key` in table `[table]` of `text`, or among the top-level keys for `None`
/// (the table's line if the key is not written there, 1 if neither is).
fn line_of_key(text: &str, table: Option<&str>, key: &str) -> usize {
    let head = table.map(|t| format!("[{t}]"));
    let mut in_table = if head.is_none() { Some(1) } else { None };
    for (i, l) in text.lines().enumerate() {
        let l = l.trim_start();
        if l.starts_with('[') {
            if in_table.is_some() {
                break;
            }
            if head.as_deref().is_some_and(|h| l.starts_with(h)) {
                in_table = Some(i + 1);
            }
        } else if in_table.is_some()
            && l.strip_prefix(key)
                .is_some_and(|r| r.trim_start().starts_with('='))
        {
            return i + 1;
        }
    }
    in_table.unwrap_or(1)
}

impl RunConfig {
    /// Parses a config; `file` names the source in errors. Applies `DEADAIR_BROKERS` and
    /// `DEADAIR_GROUP_ID` from `env`.
    pub fn parse(
        text: &str,
        file: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<RunConfig, ConfigError> {
        let bad = |message: String| ConfigError::Invalid {
            file: file.to_string(),
            problem: Invalid(message),
        };
        let mut cfg: RunConfig = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            ConfigError::Syntax {
                file: file.to_string(),
                line: text[..span.start.min(text.len())].matches('\n').count() + 1,
                message: e.message().trim().to_string(),
            }
        })?;
        if cfg.input.is_empty() {
            return Err(bad("at least one [[input]] topic is required".into()));
        }
        cfg.librdkafka =
            kafka::settings(&cfg.librdkafka_raw, text, &env).map_err(|e| ConfigError::Key {
                file: file.to_string(),
                line: e.line,
                key: format!("[librdkafka] `{}`", e.key),
                problem: e.problem,
            })?;
        if !kafka::CODECS.contains(&cfg.compression.as_str()) {
            return Err(ConfigError::Key {
                file: file.to_string(),
                line: line_of_key(text, None, "compression"),
                key: "`compression`".into(),
                problem: format!(
                    "expected one of {}, found `{}`",
                    kafka::CODECS.join(", "),
                    cfg.compression
                ),
            });
        }
        if let Some(inv) = &mut cfg.inventory {
            let input = inv.input.get_or_insert_with(|| cfg.input[0].topic.clone());
            if !cfg.input.iter().any(|i| &i.topic == input) {
                return Err(bad(format!(
                    "[inventory] `input` names `{input}`, which is not an [[input]] topic"
                )));
            }
        }
        for i in &cfg.input {
            let t = &i.topic;
            if i.quantiles.len() > MAX_QUANTILES {
                return Err(bad(format!(
                    "[[input]] `{t}`: at most {MAX_QUANTILES} quantiles, found {}",
                    i.quantiles.len()
                )));
            }
            if let Some(q) = i.quantiles.iter().find(|q| !(0.0..=1.0).contains(*q)) {
                return Err(bad(format!(
                    "[[input]] `{t}`: quantile {q} is outside 0..=1"
                )));
            }
            if i.max_decompressed_bytes == 0 {
                return Err(bad(format!(
                    "[[input]] `{t}`: `max_decompressed_bytes` must be at least 1"
                )));
            }
        }
        if let Some(am) = &mut cfg.alertmanager {
            am.validate(&cfg.metrics_addr, &env)
                .map_err(|(key, problem)| ConfigError::Key {
                    file: file.to_string(),
                    line: line_of_key(text, Some("alertmanager"), key),
                    key: format!("[alertmanager] `{key}`"),
                    problem: problem.0,
                })?;
        }
        if cfg.max_in_flight == 0 {
            return Err(bad("`max_in_flight` must be at least 1".into()));
        }
        if let Some(b) = env("DEADAIR_BROKERS") {
            cfg.brokers = b;
        }
        if let Some(g) = env("DEADAIR_GROUP_ID") {
            cfg.group_id = g;
        }
        Ok(cfg)
    }

    pub fn load(path: &Path) -> Result<RunConfig, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: file.clone(),
            source,
        })?;
        let mut cfg = Self::parse(&text, &file, |k| std::env::var(k).ok())?;
        // a relative model path is relative to the config file
        if let (Some(m), Some(dir)) = (&cfg.model, path.parent()) {
            if m.is_relative() {
                cfg.model = Some(dir.join(m));
            }
        }
        Ok(cfg)
    }

    /// The input topic the inventory describes, if an inventory is configured.
    pub fn inventory_input(&self) -> Option<&str> {
        self.inventory.as_ref().and_then(|i| i.input.as_deref())
    }

    /// The input a topic belongs to.
    pub fn input_of(&self, topic: &str) -> Option<&Input> {
        self.input.iter().find(|i| i.topic == topic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "[[input]]\ntopic = \"m\"\nformat = \"json\"\n";

    #[test]
    fn defaults_and_env_overrides() {
        let c = RunConfig::parse(MINIMAL, "c.toml", |_| None).unwrap();
        assert_eq!(
            (c.brokers.as_str(), c.group_id.as_str()),
            ("127.0.0.1:9092", "deadair")
        );
        assert_eq!(
            (c.heartbeat_interval, c.shutdown_timeout),
            (Duration::from_secs(10), Duration::from_secs(30))
        );
        let i = c.input_of("m").unwrap();
        assert_eq!(*i, Input::new("m", InputFormat::Json));
        assert!(!i.autodetect, "headers are not read unless asked for");
        let c = RunConfig::parse(
            "[[input]]\ntopic = \"m\"\nformat = \"influx\"\nprecision = \"s\"\nautodetect = true\nquantiles = [0.5]\n",
            "c.toml",
            |_| None,
        )
        .unwrap();
        let i = c.input_of("m").unwrap();
        assert_eq!(
            (i.format, i.precision, i.autodetect, i.quantiles.as_slice()),
            (InputFormat::Influx, Precision::S, true, &[0.5][..])
        );
        assert_eq!(Precision::Ns.to_ms(-1), Some(-1), "rounds down");
        assert_eq!(Precision::S.to_ms(i64::MAX), None);
        let c = RunConfig::parse(MINIMAL, "c.toml", |k| {
            (k == "DEADAIR_BROKERS").then(|| "b:1".to_string())
        })
        .unwrap();
        assert_eq!(c.brokers, "b:1");
    }

    #[test]
    fn refuses_unknown_keys_and_bad_values() {
        let e = RunConfig::parse(&format!("{MINIMAL}brokrs = \"x\"\n"), "c.toml", |_| None)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("c.toml:4:") && e.contains("unknown field `brokrs`"),
            "{e}"
        );
        let e = RunConfig::parse(
            &format!("brokers = \"b:9092\"\ncompression = \"brotli\"\n{MINIMAL}"),
            "c.toml",
            |_| None,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("c.toml:2: `compression`: expected one of none, gzip"),
            "{e}"
        );
        let e = RunConfig::parse("heartbeat_interval = \"soon\"\n", "c.toml", |_| None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("c.toml:1:") && e.contains("duration"), "{e}");
        let e = RunConfig::parse(
            "[[input]]\ntopic = \"m\"\nformat = \"avro\"\n",
            "c.toml",
            |_| None,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("c.toml:3:") && e.contains("avro"), "{e}");
        assert!(RunConfig::parse("brokers = \"x\"\ninput = []\n", "c.toml", |_| None).is_err());
        let e = RunConfig::parse(
            "[[input]]\ntopic = \"m\"\nformat = \"otlp\"\nquantiles = [1.5]\n",
            "c.toml",
            |_| None,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("`m`: quantile 1.5 is outside 0..=1"), "{e}");
        let e = RunConfig::parse(
            &format!("{MINIMAL}[librdkafka]\n\"enable.auto.commit\" = \"false\"\n"),
            "c.toml",
            |_| None,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("c.toml:5: [librdkafka] `enable.auto.commit`: set by deadair"),
            "{e}"
        );
        let e = RunConfig::parse(
            &format!("{MINIMAL}[inventory]\ntopic = \"inv\"\ninput = \"nope\"\n"),
            "c.toml",
            |_| None,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("`nope`, which is not an [[input]] topic"), "{e}");
        let c = RunConfig::parse(
            &format!("{MINIMAL}[inventory]\ntopic = \"inv\"\n"),
            "c.toml",
            |_| None,
        )
        .unwrap();
        assert_eq!(
            c.inventory_input(),
            Some("m"),
            "defaults to the first input"
        );
    }
}
