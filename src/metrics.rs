//! deadair's own health as Prometheus metrics.
//!
//! Built against a [`prometheus::Registry`] passed in, so every test gets a fresh one. Names
//! follow `deadair_<what>_<unit>`; label values come from small fixed sets (reason, kind, state)
//! or from topic/partition names: never from a series key.

use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

use crate::alert::{AlertKind, AlertStatus};

pub struct Metrics {
    pub messages: IntCounter,
    pub samples: IntCounter,
    pub bytes: IntCounter,
    pub decode_errors: IntCounterVec,
    pub samples_dropped: IntCounterVec,
    pub active_series: IntGauge,
    pub alert_events: IntCounterVec,
    pub heartbeats: IntCounter,
    pub checkpoints: IntCounter,
    pub dead_letters: IntCounter,
    pub offsets_stored: IntCounter,
    pub delivery_errors: IntCounter,
    /// Records the broker refused for good, by what became of them.
    pub records_refused: IntCounterVec,
    pub consume_errors: IntCounter,
    /// librdkafka's client-level errors (connections, TLS, SASL), by kind.
    pub kafka_client_errors: IntCounterVec,
    pub producer_queue: IntGauge,
    pub consumer_lag: IntGaugeVec,
    pub lag_seconds: IntGaugeVec,
    pub watermark_delay: IntGauge,
    pub engine_batch: Histogram,
    pub resident_memory: IntGauge,
    pub assigned_partitions: IntGauge,
    /// The registry these are on (optional parts, e.g. the Alertmanager forwarder, add theirs).
    pub registry: Registry,
}

fn reg<T: prometheus::core::Collector + Clone + 'static>(
    r: &Registry,
    c: T,
) -> prometheus::Result<T> {
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

/// A counter named `name`, registered on `r`.
fn counter(r: &Registry, name: &str, help: &str) -> prometheus::Result<IntCounter> {
    reg(r, IntCounter::new(name, help)?)
}

/// A counter with `labels`, registered on `r`.
fn counter_vec(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntCounterVec> {
    reg(r, IntCounterVec::new(Opts::new(name, help), labels)?)
}

/// A gauge named `name`, registered on `r`.
fn gauge(r: &Registry, name: &str, help: &str) -> prometheus::Result<IntGauge> {
    reg(r, IntGauge::new(name, help)?)
}

/// A gauge with `labels`, registered on `r`.
fn gauge_vec(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntGaugeVec> {
    reg(r, IntGaugeVec::new(Opts::new(name, help), labels)?)
}

/// A histogram with `buckets`, registered on `r`.
fn histogram(
    r: &Registry,
    name: &str,
    help: &str,
    buckets: Vec<f64>,
) -> prometheus::Result<Histogram> {
    reg(
        r,
        Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))?,
    )
}

impl Metrics {
    pub fn new(r: &Registry) -> prometheus::Result<Metrics> {
        let m = Metrics {
            messages: counter(
                r,
                "deadair_messages_consumed_total",
                "Kafka messages consumed.",
            )?,
            samples: counter(
                r,
                "deadair_samples_consumed_total",
                "Samples decoded from consumed messages.",
            )?,
            bytes: counter(r, "deadair_consumed_bytes_total", "Payload bytes consumed.")?,
            decode_errors: counter_vec(
                r,
                "deadair_decode_errors_total",
                "Messages that could not be decoded, by reason.",
                &["reason"],
            )?,
            samples_dropped: counter_vec(
                r,
                "deadair_samples_dropped_total",
                "Samples not learned from, by reason (late, non_finite, unmatched, future).",
                &["reason"],
            )?,
            active_series: gauge(
                r,
                "deadair_active_series",
                "Series held by this instance's engines.",
            )?,
            alert_events: counter_vec(
                r,
                "deadair_alert_events_total",
                "Alert events emitted, by kind and state.",
                &["kind", "state"],
            )?,
            heartbeats: counter(r, "deadair_heartbeats_total", "Heartbeat events emitted.")?,
            checkpoints: counter(
                r,
                "deadair_checkpoints_total",
                "Engine state checkpoints written to the state topic.",
            )?,
            dead_letters: counter(
                r,
                "deadair_dead_letters_total",
                "Undecodable messages copied to the dead-letter topic.",
            )?,
            offsets_stored: counter(
                r,
                "deadair_offsets_stored_total",
                "Input messages whose offsets were stored after their alerts were delivered \
                 (with a state topic: checkpoints whose offsets were stored).",
            )?,
            delivery_errors: counter(
                r,
                "deadair_delivery_errors_total",
                "Alert deliveries that failed and were sent again.",
            )?,
            records_refused: counter_vec(
                r,
                "deadair_records_refused_total",
                "Records refused for good (too large, invalid), by outcome: shrunk (an alert \
                 trimmed and sent again), dead_letter (sent to the dead-letter topic), dropped.",
                &["outcome"],
            )?,
            consume_errors: counter(
                r,
                "deadair_consume_errors_total",
                "Errors reported by the consumer (reconnects are automatic).",
            )?,
            kafka_client_errors: counter_vec(
                r,
                "deadair_kafka_client_errors_total",
                "Client errors librdkafka reported (it retries by itself), by kind: tls, \
                 authentication (SASL), transport, all_brokers_down, other.",
                &["kind"],
            )?,
            producer_queue: gauge(
                r,
                "deadair_producer_queue_messages",
                "Alert messages in the producer queue.",
            )?,
            consumer_lag: gauge_vec(
                r,
                "deadair_consumer_lag_messages",
                "Messages between the consumer position and the high watermark.",
                &["topic", "partition"],
            )?,
            lag_seconds: gauge_vec(
                r,
                "deadair_consumer_lag_seconds",
                "Wall time minus the Kafka timestamp of the last message consumed \
                 (0 when caught up).",
                &["topic", "partition"],
            )?,
            watermark_delay: gauge(
                r,
                "deadair_watermark_delay_seconds",
                "Wall time minus the oldest partition's engine clock.",
            )?,
            engine_batch: histogram(
                r,
                "deadair_engine_batch_seconds",
                "Engine time per consumed message (decode excluded; messages of 8+ samples, \
                 and one in 64 smaller ones).",
                prometheus::exponential_buckets(1e-6, 4.0, 10)?,
            )?,
            resident_memory: gauge(r, "deadair_resident_memory_bytes", "Resident set size.")?,
            assigned_partitions: gauge(
                r,
                "deadair_assigned_partitions",
                "Input partitions with an engine here.",
            )?,
            registry: r.clone(),
        };
        m.zero_reasons();
        Ok(m)
    }

    /// Creates the series of every drop and decode-error reason at 0, so each is exported
    /// before its first count.
    fn zero_reasons(&self) {
        for reason in crate::decode::DecodeReason::ALL.map(crate::decode::DecodeReason::as_str) {
            self.decode_errors.with_label_values(&[reason]);
        }
        for reason in ["late", "non_finite", "unmatched", "future"] {
            self.samples_dropped.with_label_values(&[reason]);
        }
    }

    pub fn alert(&self, kind: AlertKind, state: AlertStatus) {
        self.alert_events
            .with_label_values(&[kind.as_str(), state.as_str()])
            .inc();
    }

    /// Reads the resident set size from /proc (Linux); leaves the gauge alone elsewhere.
    pub fn refresh_memory(&self) {
        if let Some(rss) = resident_bytes() {
            self.resident_memory.set(rss as i64);
        }
    }
}

/// Resident set size of this process, from `/proc/self/statm`.
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// The text exposition of everything in `r`.
pub fn render(r: &Registry) -> String {
    use prometheus::Encoder;
    let mut buf = Vec::new();
    // Encoding into a Vec only fails on invalid metric families, which `Metrics::new` rules out.
    let _ = prometheus::TextEncoder::new().encode(&r.gather(), &mut buf);
    String::from_utf8(buf).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_convention_and_render() {
        let r = Registry::new();
        let m = Metrics::new(&r).unwrap();
        m.samples.inc_by(3);
        m.alert(AlertKind::Absence, AlertStatus::Firing);
        m.consumer_lag.with_label_values(&["metrics", "0"]).set(7);
        m.refresh_memory();
        let text = render(&r);
        assert!(text.contains("deadair_samples_consumed_total 3"));
        assert!(text.contains(r#"deadair_alert_events_total{kind="absence",state="firing"} 1"#));
        assert!(text.contains(r#"deadair_decode_errors_total{reason="protobuf"} 0"#));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.starts_with("deadair_"), "{line}");
        }
        assert!(resident_bytes().unwrap() > 0);
    }
}
