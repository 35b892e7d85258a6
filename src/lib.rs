//! deadair: per-series anomaly and missing-data detection for metric streams.
//!
//! # Layout
//!
//! The data path is `decode -> engine -> encode -> produce`. Dependencies point one way: the
//! pure core never reaches the I/O shell (`tests/structure.rs` checks it).
//!
//! **Leaves** (used by everything, using nothing of deadair's):
//! - [`time`]: timestamp and duration parsing/formatting (no clock reads).
//! - [`check`]: value checks used while reading model and run files (errors name the key).
//! - [`series`]: series identity (name + sorted labels -> 64-bit id), the series table that
//!   stores each label set once (as ids of interned names and `key=value` pairs), and
//!   [`series::SeriesKey`] for a series named by a person.
//! - [`alert`]: alert events, stable alert ids, the alert state machine.
//! - [`wallclock`], [`ratelog`], [`logging`]: the wall clock (read by the shell only),
//!   rate-limited log lines, and the log subscriber (levels, human or JSON lines).
//!
//! **Pure core** (synchronous, deterministic, `now` passed in):
//! - [`detect`]: the detectors: the learned ones (spike, shift, spread, range, stuck; `learned`)
//!   over the learned tails of `tail` that turn a statistic into a probability for its series;
//!   the classic ones (threshold, zscore, mad, ewma, level_shift, novelty, context), one module
//!   each, with their ensemble, the likelihood stage and the shared rolling window.
//! - [`absence`]: the dead-man's switch: its `[rule.absence]` keys, learned per-series timeouts
//!   and the deadline queue.
//! - [`model`]: model files (`[[rule]]` tables, label matchers, validation with file/line/key).
//! - [`clock`]: a partition's two clocks (event time; wall time while caught up) and its
//!   `pipeline_lag` alert.
//! - [`engine`]: one partition's engine tying the above together: `ingest(sample)` and
//!   `advance(now)` in, alert events out; snapshots of its state.
//!
//! **Formats** (bytes <-> values, no I/O):
//! - [`decode`]: input messages to samples: native protobuf `SampleBatch`, JSON, Prometheus
//!   remote-write, OpenTelemetry OTLP, Influx line protocol (chosen per topic, or by a
//!   message's `content-type` header); each format's encoder too (for `deadair gen`, tests).
//! - [`codec`]: alert events to protobuf (`proto/deadair/v1`) and JSON; samples from JSON.
//! - [`proto`], [`wire`]: the prost-generated wire types (deadair's own; remote-write, OTLP).
//!
//! **Configuration**: [`config`]: the `deadair run` file (with its `[alertmanager]` table).
//!
//! **I/O shell**:
//! - [`metrics`], [`http`]: deadair's own health as Prometheus metrics, served with
//!   `/healthz` and `/readyz`.
//! - [`alertmanager`]: optional forwarding of alert events to Prometheus Alertmanager's v2 API
//!   (re-sends, backoff, bounded queue; best-effort beside the alert topic).
//! - [`kafka`]: the Kafka stage: consumer group in, engines per partition, alerts out,
//!   offsets stored only behind delivered alerts, state checkpoints, heartbeats, graceful
//!   shutdown.
//!
//! **Offline and tools**:
//! - [`replay`]: `deadair replay` (CSV/JSONL inputs merged by event time, scores, alerts,
//!   plots).
//! - [`quality`]: the detection-quality suite behind `deadair quality` (generated healthy
//!   series and injected events; false alerts per series-day and catch rates).
//! - [`synth`], [`demo`]: synthetic series, `deadair demo` (mock cluster + synthetic producer +
//!   the real pipeline) and `deadair gen` (the synthetic producer against a real broker).

pub mod absence;
pub mod alert;
pub mod alertmanager;
pub mod check;
pub mod clock;
pub mod codec;
pub mod config;
pub mod decode;
pub mod demo;
pub mod detect;
pub mod engine;
pub mod http;
pub mod kafka;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod quality;
pub mod ratelog;
pub mod replay;
pub mod series;
pub mod synth;
pub mod time;
pub mod wallclock;

/// prost-generated types for `proto/deadair/v1/*.proto`.
pub mod proto {
    #![allow(clippy::all, missing_docs)]
    include!(concat!(env!("OUT_DIR"), "/deadair.v1.rs"));
}

/// prost-generated types of the formats deadair reads besides its own: Prometheus
/// remote-write (`proto/prometheus`) and OpenTelemetry OTLP metrics (`proto/opentelemetry`).
pub mod wire {
    #![allow(clippy::all, missing_docs)]
    pub mod prometheus {
        include!(concat!(env!("OUT_DIR"), "/prometheus.rs"));
    }
    pub mod opentelemetry {
        pub mod proto {
            pub mod common {
                pub mod v1 {
                    include!(concat!(
                        env!("OUT_DIR"),
                        "/opentelemetry.proto.common.v1.rs"
                    ));
                }
            }
            pub mod resource {
                pub mod v1 {
                    include!(concat!(
                        env!("OUT_DIR"),
                        "/opentelemetry.proto.resource.v1.rs"
                    ));
                }
            }
            pub mod metrics {
                pub mod v1 {
                    include!(concat!(
                        env!("OUT_DIR"),
                        "/opentelemetry.proto.metrics.v1.rs"
                    ));
                }
            }
            pub mod collector {
                pub mod metrics {
                    pub mod v1 {
                        include!(concat!(
                            env!("OUT_DIR"),
                            "/opentelemetry.proto.collector.metrics.v1.rs"
                        ));
                    }
                }
            }
        }
    }
}

pub use alert::{Alert, AlertKind, AlertStatus};
pub use engine::{Engine, Outcome, SampleRef};
pub use model::Model;
