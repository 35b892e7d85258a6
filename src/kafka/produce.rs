//! The producer side of the Kafka stage: records to produce (alerts, heartbeats, checkpoint
//! chunks, dead letters), enqueueing them without ever dropping one, and their encodings.

use std::sync::Arc;
use std::time::Duration;

use super::producer::{AlertProducer, DeliveryFuture};
use prost::Message as _;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};

use crate::alert::{Alert, AlertKind, AlertStatus};
use crate::config::AlertFormat;
use crate::decode::DecodeError;
use crate::metrics::Metrics;
use crate::ratelog::RateLimitedLog;
use crate::wallclock::wall_ms;

/// One record to produce: to `partition`, or by key.
pub(crate) struct Record {
    pub topic: Arc<str>,
    pub partition: Option<i32>,
    pub key: Vec<u8>,
    pub payload: Vec<u8>,
    pub headers: Option<OwnedHeaders>,
    /// The alert the payload encodes (and its format), kept to shrink it should the broker
    /// refuse it for good.
    pub alert: Option<(Box<Alert>, AlertFormat)>,
    /// How often it was refused for good: once shrunk, then sent to the dead-letter topic.
    pub refusals: u8,
    /// Never diverted or dropped (a checkpoint's records: one missing would leave its marker
    /// pointing at a checkpoint that cannot be restored); a refusal is retried, logged.
    pub keep: bool,
}

/// Where a record refused for good goes, and where that is counted.
pub(crate) struct Refusals<'a> {
    pub dead_letter: Option<&'a str>,
    pub metrics: &'a Metrics,
}

impl Record {
    pub fn new(
        topic: Arc<str>,
        partition: Option<i32>,
        key: impl Into<Vec<u8>>,
        payload: Vec<u8>,
    ) -> Self {
        Record {
            topic,
            partition,
            key: key.into(),
            payload,
            headers: None,
            alert: None,
            refusals: 0,
            keep: false,
        }
    }

    /// The record of an alert on `topic`, keyed by its id.
    pub fn alert(topic: Arc<str>, a: Alert, format: AlertFormat) -> Self {
        let payload = encode_alert(&a, format);
        let mut r = Record::new(topic, None, a.alert_id.clone(), payload);
        r.alert = Some((Box::new(a), format));
        r
    }

    /// The key as text, for logs.
    pub fn key_text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.key)
    }
}

/// One record being delivered, with what it takes to send it again.
pub(crate) struct Pending {
    pub fut: DeliveryFuture,
    /// Kept to be sent again, unchanged, if the delivery fails.
    pub record: Record,
}

/// Whether `e` refuses a record for good: sending it again unchanged cannot succeed.
pub(crate) fn refused_for_good(e: &KafkaError) -> bool {
    matches!(
        e,
        KafkaError::MessageProduction(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::MessageBatchTooLarge
                | RDKafkaErrorCode::InvalidRecord
                | RDKafkaErrorCode::InvalidMessage
        )
    )
}

/// After `r` was refused for good (`e`): an alert is shrunk once (trimmed summary, labels and
/// annotations, marked) and sent again; then, with a dead-letter topic, the record goes there
/// (marked with where it was going and why); else it is dropped. Each outcome is counted and
/// logged rate-limited. Returns whether to send `r` again.
pub(crate) fn after_refusal(
    r: &mut Record,
    e: &KafkaError,
    to: &Refusals<'_>,
    log: &mut RateLimitedLog,
) -> bool {
    if r.keep {
        log.log("record refused", || {
            format!(
                "{} record {} refused ({e}): a checkpoint record is never dropped; retrying \
                 (is the state topic's max.message.bytes below 512 KiB?)",
                r.topic,
                r.key_text()
            )
        });
        return true;
    }
    r.refusals = r.refusals.saturating_add(1);
    let refused = |outcome: &str| {
        to.metrics
            .records_refused
            .with_label_values(&[outcome])
            .inc()
    };
    if r.refusals == 1 {
        if let Some((a, format)) = &r.alert {
            r.payload = encode_alert(&shrink(a), *format);
            refused("shrunk");
            log.log("record refused", || {
                format!(
                    "{} record {} refused ({e}); sending it trimmed",
                    r.topic,
                    r.key_text()
                )
            });
            return true;
        }
    }
    if let Some(dl) = to.dead_letter.filter(|dl| **dl != *r.topic) {
        let headers = r.headers.take().unwrap_or_default();
        let error = e.to_string();
        r.headers = Some(
            headers
                .insert(Header {
                    key: "deadair-target-topic",
                    value: Some(r.topic.as_bytes()),
                })
                .insert(Header {
                    key: "deadair-error",
                    value: Some(error.as_bytes()),
                }),
        );
        r.topic = Arc::from(dl);
        r.partition = None;
        refused("dead_letter");
        log.log("record refused", || {
            format!(
                "record {} refused for good ({e}); sent to {dl}",
                r.key_text()
            )
        });
        return true;
    }
    refused("dropped");
    log.log("record dropped", || {
        format!(
            "{} record {} refused for good ({e}) and dropped (no dead-letter topic)",
            r.topic,
            r.key_text()
        )
    });
    false
}

/// A copy of `a` small enough for any sane broker limit: summary, name and label values cut,
/// at most 32 labels, no annotations but a `deadair_truncated` note.
fn shrink(a: &Alert) -> Alert {
    fn cut(s: &str, max: usize) -> String {
        match s.char_indices().nth(max) {
            Some((i, _)) => format!("{}…", &s[..i]),
            None => s.to_string(),
        }
    }
    let mut small = a.clone();
    small.summary = cut(&a.summary, 200);
    small.name = cut(&a.name, 200);
    small.labels = a
        .labels
        .iter()
        .take(32)
        .map(|(k, v)| (cut(k, 100), cut(v, 200)))
        .collect();
    small.annotations = vec![(
        "deadair_truncated".into(),
        "the event exceeded the broker's message size: summary, labels and annotations trimmed"
            .into(),
    )];
    small
}

/// Enqueues `r`, waiting while the producer queue is full. Other errors are retried with
/// backoff: the record must not be lost. A record refused for good goes the way of
/// [`after_refusal`]; `None` if it was dropped.
pub(crate) async fn enqueue(
    producer: &AlertProducer,
    r: &mut Record,
    to: &Refusals<'_>,
    log: &mut RateLimitedLog,
) -> Option<DeliveryFuture> {
    let mut backoff = Duration::from_millis(5);
    loop {
        let sent = producer.send(&r.topic, &r.key, &r.payload, r.partition, r.headers.clone());
        match sent {
            Ok(f) => return Some(f),
            Err(KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)) => {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(e) if refused_for_good(&e) => {
                if !after_refusal(r, &e, to, log) {
                    return None;
                }
                if r.keep {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
            Err(e) => {
                log.log("produce error", || {
                    format!(
                        "cannot enqueue {} to {}: {e}; retrying",
                        r.key_text(),
                        r.topic
                    )
                });
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Enqueues a record from a thread that may block (the rebalance callback).
pub(crate) fn send_blocking(
    producer: &AlertProducer,
    topic: &str,
    partition: Option<i32>,
    key: &str,
    payload: &[u8],
) {
    loop {
        match producer.send(topic, key.as_bytes(), payload, partition, None) {
            Ok(_) => return,
            Err(KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)) => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => {
                tracing::error!("revocation: cannot enqueue {key} to {topic}: {e}");
                return;
            }
        }
    }
}

/// Encodes an alert for the alert topic, stamping `emitted_at` with wall time.
pub fn encode_alert(a: &Alert, format: AlertFormat) -> Vec<u8> {
    let mut a = a.clone();
    a.emitted_at = wall_ms();
    match format {
        AlertFormat::Proto => crate::codec::alert_to_proto(&a).encode_to_vec(),
        AlertFormat::Json => crate::codec::alert_to_json(&a).into_bytes(),
    }
}

/// A copy of an undecodable message for the dead-letter topic: its key, payload and headers,
/// plus where it came from and why it was refused (`deadair-*` headers).
pub(crate) fn dead_letter(msg: &impl Message, topic: &str, e: &DecodeError) -> Record {
    let mut headers = OwnedHeaders::new();
    for h in msg.headers().into_iter().flat_map(|h| h.iter()) {
        headers = headers.insert(h);
    }
    let (partition, offset) = (msg.partition().to_string(), msg.offset().to_string());
    for (key, value) in [
        ("deadair-source-topic", msg.topic()),
        ("deadair-source-partition", &partition),
        ("deadair-source-offset", &offset),
        ("deadair-error-reason", e.reason.as_str()),
        ("deadair-error", &e.detail),
    ] {
        headers = headers.insert(Header {
            key,
            value: Some(value.as_bytes()),
        });
    }
    let mut record = Record::new(
        Arc::from(topic),
        None,
        msg.key().unwrap_or_default(),
        msg.payload().unwrap_or_default().to_vec(),
    );
    record.headers = Some(headers);
    record
}

/// deadair's liveness announcement: one firing `heartbeat` event per interval, per instance.
/// Its `version` is the wall-clock ms of emission, so (alert_id, version) stays unique across
/// restarts of an instance and a downstream de-duplication never drops a live heartbeat.
pub fn heartbeat_event(group: &str, instance: &str, partitions: &[String]) -> Alert {
    let now = wall_ms();
    let id = crate::series::series_id(
        "deadair_heartbeat",
        &[("group", group), ("instance", instance)],
    );
    Alert {
        alert_id: crate::alert::alert_id("deadair", AlertKind::Heartbeat, id),
        version: now.max(0) as u64,
        kind: AlertKind::Heartbeat,
        state: AlertStatus::Firing,
        rule: Arc::from("deadair"),
        severity: Arc::from("info"),
        name: "deadair_heartbeat".into(),
        labels: vec![
            ("group".into(), group.into()),
            ("instance".into(), instance.into()),
            ("partitions".into(), partitions.join(",")),
        ],
        annotations: vec![],
        event_time: now,
        started_at: now,
        emitted_at: now,
        value: Some(partitions.len() as f64),
        expected: None,
        lower: None,
        upper: None,
        score: 0.0,
        summary: format!(
            "deadair instance {instance} of group {group} is alive, assigned {} partitions",
            partitions.len()
        ),
        series: id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_refused_for_good_is_shrunk_then_diverted_then_dropped() {
        let registry = prometheus::Registry::new();
        let metrics = Metrics::new(&registry).unwrap();
        let mut log = RateLimitedLog::new(100);
        let too_large = KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge);
        assert!(refused_for_good(&too_large));
        assert!(!refused_for_good(&KafkaError::MessageProduction(
            RDKafkaErrorCode::QueueFull
        )));
        let mut big = heartbeat_event("g", "i", &[]);
        big.summary = "s".repeat(5000);
        big.labels.push(("note".into(), "n".repeat(5000)));
        let mut r = Record::alert(Arc::from("alerts"), big, AlertFormat::Json);
        let before = r.payload.len();
        let to = Refusals {
            dead_letter: Some("dlq"),
            metrics: &metrics,
        };
        // 1: the alert is trimmed and sent again
        assert!(after_refusal(&mut r, &too_large, &to, &mut log));
        assert!(
            r.payload.len() < 1000 && r.payload.len() < before,
            "{}",
            r.payload.len()
        );
        assert!(String::from_utf8_lossy(&r.payload).contains("deadair_truncated"));
        // 2: still refused: to the dead-letter topic, marked with where it was going
        assert!(after_refusal(&mut r, &too_large, &to, &mut log));
        assert_eq!(&*r.topic, "dlq");
        let target = r.headers.as_ref().and_then(|h| {
            h.iter()
                .find(|h| h.key == "deadair-target-topic")
                .and_then(|h| h.value.map(<[u8]>::to_vec))
        });
        assert_eq!(target.as_deref(), Some(&b"alerts"[..]));
        // 3: the dead-letter topic refuses it too: dropped, never looped
        assert!(!after_refusal(&mut r, &too_large, &to, &mut log));
        let text = crate::metrics::render(&registry);
        for outcome in ["shrunk", "dead_letter", "dropped"] {
            let line = format!("deadair_records_refused_total{{outcome=\"{outcome}\"}} 1");
            assert!(text.contains(&line), "{line} in {text}");
        }
        // a checkpoint record is never dropped
        let mut chunk = Record::new(Arc::from("state"), Some(0), "m/0/a/0", vec![0; 10]);
        chunk.keep = true;
        let none = Refusals {
            dead_letter: None,
            metrics: &metrics,
        };
        for _ in 0..3 {
            assert!(after_refusal(&mut chunk, &too_large, &none, &mut log));
        }
        assert_eq!(&*chunk.topic, "state");
    }

    #[test]
    fn a_heartbeat_names_its_instance_and_partitions() {
        let hb = heartbeat_event("g", "i-1", &["m/0".into(), "m/1".into()]);
        assert_eq!(hb.kind, AlertKind::Heartbeat);
        assert_eq!(hb.value, Some(2.0));
        assert!(hb.labels.contains(&("partitions".into(), "m/0,m/1".into())));
        // the same instance keeps its id across heartbeats
        assert_eq!(hb.alert_id, heartbeat_event("g", "i-1", &[]).alert_id);
        assert_ne!(hb.alert_id, heartbeat_event("g", "i-2", &[]).alert_id);
    }
}
