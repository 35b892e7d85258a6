//! The producer side of the Kafka stage: records to produce (alerts, heartbeats, checkpoint
//! chunks, dead letters), enqueueing them without ever dropping one, and their encodings.

use std::sync::Arc;
use std::time::Duration;

use prost::Message as _;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};

use crate::alert::{Alert, AlertKind, AlertStatus};
use crate::config::AlertFormat;
use crate::decode::DecodeError;
use crate::ratelog::RateLimitedLog;
use crate::wallclock::wall_ms;

/// One record to produce: to `partition`, or by key.
pub(crate) struct Record {
    pub topic: Arc<str>,
    pub partition: Option<i32>,
    pub key: Vec<u8>,
    pub payload: Vec<u8>,
    pub headers: Option<OwnedHeaders>,
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
        }
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

/// Enqueues `r`, waiting while the producer queue is full. Other errors are retried with
/// backoff: the record must not be lost.
pub(crate) async fn enqueue(
    producer: &FutureProducer,
    r: &Record,
    log: &mut RateLimitedLog,
) -> DeliveryFuture {
    let mut backoff = Duration::from_millis(5);
    loop {
        let mut record = FutureRecord::to(&r.topic).key(&r.key).payload(&r.payload);
        if let Some(p) = r.partition {
            record = record.partition(p);
        }
        if let Some(h) = &r.headers {
            record = record.headers(h.clone());
        }
        match producer.send_result(record) {
            Ok(f) => return f,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err((e, _)) => {
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
    producer: &FutureProducer,
    topic: &str,
    partition: Option<i32>,
    key: &str,
    payload: &[u8],
) {
    loop {
        let mut record = FutureRecord::to(topic).key(key).payload(payload);
        if let Some(p) = partition {
            record = record.partition(p);
        }
        match producer.send_result(record) {
            Ok(_) => return,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err((e, _)) => {
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
