//! The Kafka clients of the stage and their settings: the group consumer, the alert producer
//! and the inventory reader. `[librdkafka]` keys from the configuration are applied first; the
//! settings deadair's guarantees rest on are then forced, and its bounded-memory defaults are
//! set only where the configuration left a key unset.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaResult;
use rdkafka::message::BorrowedMessage;
use rdkafka::producer::{BaseProducer, Producer};

use super::client_errors::ClientErrors;
use super::fetch::FetchQueue;
use super::ownership::{DeadairConsumer, LagContext};
use super::producer::AlertProducer;
use super::StageError;
use crate::config::RunConfig;
use crate::metrics::Metrics;

/// The brokers and the `[librdkafka]` keys of the configuration.
pub(crate) fn client_config(cfg: &RunConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &cfg.brokers);
    for (k, v) in &cfg.librdkafka {
        c.set(k, v.as_str());
    }
    c
}

trait SetDefault {
    fn set_default(&mut self, k: &str, v: &str) -> &mut Self;
}

impl SetDefault for ClientConfig {
    fn set_default(&mut self, k: &str, v: &str) -> &mut Self {
        if self.get(k).is_none() {
            self.set(k, v);
        }
        self
    }
}

/// Creates the consumer: group member, offsets stored by deadair only after delivery.
pub fn consumer(cfg: &RunConfig, metrics: Arc<Metrics>) -> KafkaResult<DeadairConsumer> {
    let mut c = client_config(cfg);
    c.set("group.id", &cfg.group_id)
        .set("enable.auto.offset.store", "false")
        .set("enable.auto.commit", "true")
        .set_default("auto.commit.interval.ms", "1000")
        .set_default("auto.offset.reset", "earliest")
        .set("partition.assignment.strategy", "cooperative-sticky")
        // bounded fetch: at most ~64 MiB queued per consumer, 16 MiB per fetch
        .set_default("queued.max.messages.kbytes", "65536")
        .set_default("fetch.max.bytes", "16777216")
        .set_default("statistics.interval.ms", "5000");
    let consumer: DeadairConsumer = c.create_with_context(LagContext::new(metrics))?;
    // before `subscribe`: every assigned partition is forwarded to it (`fetch.rs`)
    let fetch = FetchQueue::new(consumer.client().native_ptr()).map(Arc::new);
    if let Ok(mut f) = consumer.context().fetch.lock() {
        *f = fetch;
    }
    Ok(consumer)
}

/// Creates the alert producer: idempotent, acks from all in-sync replicas.
pub fn producer(cfg: &RunConfig) -> KafkaResult<AlertProducer> {
    let mut c = client_config(cfg);
    c.set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", &cfg.compression)
        .set_default("linger.ms", "5")
        // bounded producer queue: 64 MiB of alerts at most (librdkafka's default is 1 GiB)
        .set_default("queue.buffering.max.kbytes", "65536");
    AlertProducer::create(&c)
}

/// The inventory reader: assigned every partition of the inventory topic from the beginning
/// (no group: each instance holds the whole, compacted inventory).
pub(crate) fn inventory_consumer(
    cfg: &RunConfig,
    topic: &str,
) -> Result<StreamConsumer, StageError> {
    let fail = |detail: String| StageError::Inventory {
        topic: topic.to_string(),
        detail,
    };
    let c: StreamConsumer = client_config(cfg)
        .set("group.id", format!("{}-inventory", cfg.group_id))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .create()
        .map_err(|source| StageError::Client {
            what: "the inventory consumer",
            source,
        })?;
    let md = c
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(|e| fail(e.to_string()))?;
    let mut tpl = rdkafka::TopicPartitionList::new();
    for t in md.topics() {
        if let Some(e) = t.error() {
            return Err(fail(format!("{e:?}")));
        }
        for p in t.partitions() {
            tpl.add_partition_offset(topic, p.id(), rdkafka::Offset::Beginning)
                .map_err(|e| fail(e.to_string()))?;
        }
    }
    if tpl.count() == 0 {
        return Err(fail("the topic has no partitions".into()));
    }
    c.assign(&tpl).map_err(|e| fail(e.to_string()))?;
    Ok(c)
}

/// The next inventory record, or never when there is no inventory.
pub(crate) async fn next_inventory(c: Option<&StreamConsumer>) -> KafkaResult<BorrowedMessage<'_>> {
    match c {
        Some(c) => c.recv().await,
        None => std::future::pending().await,
    }
}

/// How long the startup probe waits for the brokers before going on without them.
const PROBE_TIME: Duration = Duration::from_secs(15);

/// The probe's context: librdkafka's client errors, with their reasons.
struct ProbeContext {
    errors: ClientErrors,
}

impl ClientContext for ProbeContext {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        self.errors.report(&error, reason);
    }
}

impl rdkafka::producer::ProducerContext for ProbeContext {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &rdkafka::message::DeliveryResult<'_>, _: ()) {}
}

/// Connects to the brokers once before joining the group, with the configured security
/// settings. A TLS or authentication failure (a wrong CA, a bad password: nothing that
/// retrying fixes) is returned as [`StageError::Unusable`], so `deadair run` exits with one
/// clear error; brokers that are merely unreachable are waited for by librdkafka as usual.
pub(crate) async fn probe(cfg: &RunConfig, metrics: &Metrics) -> Result<(), StageError> {
    let errors = ClientErrors::new(metrics.kafka_client_errors.clone(), false);
    let p: BaseProducer<ProbeContext> = client_config(cfg)
        .create_with_context(ProbeContext { errors })
        .map_err(|source| StageError::Client {
            what: "the startup probe",
            source,
        })?;
    let topic = cfg.input.first().map(|i| i.topic.clone());
    let outcome = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + PROBE_TIME;
        loop {
            let reached = p
                .client()
                .fetch_metadata(topic.as_deref(), Duration::from_secs(1))
                .is_ok();
            // serves the error callbacks, which carry librdkafka's reasons
            p.poll(Duration::from_millis(100));
            if reached {
                return Ok(true);
            }
            if let Some(e) = p.context().errors.configuration_error() {
                return Err(e);
            }
            if std::time::Instant::now() >= deadline {
                return Ok(false);
            }
        }
    })
    .await
    .unwrap_or(Ok(false));
    match outcome {
        Ok(true) => Ok(()),
        Ok(false) => {
            tracing::warn!(
                "brokers {} not reachable within {} s; waiting for them (librdkafka retries)",
                cfg.brokers,
                PROBE_TIME.as_secs()
            );
            Ok(())
        }
        Err(detail) => Err(StageError::Unusable {
            brokers: cfg.brokers.clone(),
            detail: crate::config::kafka::mask(&cfg.librdkafka, &detail),
        }),
    }
}
