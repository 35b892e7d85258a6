//! The Kafka stage of `deadair run`: a thin layer around the engine.
//!
//! ```text
//! consumer (group) ──▶ decode ──▶ engine per (topic, partition) ──▶ encode ──▶ producer (alerts)
//!                                                                       │ delivery futures
//!                          store offset (in order) ◀── committer task ◀─┘
//! ```
//!
//! At-least-once: offsets are stored (`enable.auto.offset.store=false`) by the committer task,
//! in consumption order, only after every alert the messages up to them caused has been
//! acknowledged by the broker (the messages already fetched are taken in one turn of the loop,
//! and a run of one partition's messages stores its last offset once: `stage/messages.rs`);
//! auto-commit then commits what was stored. A delivery that fails
//! is sent again (same key, same payload, so the same `alert_id` and `version`) until it
//! succeeds: delay is fine, data loss is not. The committer's channel is bounded
//! (`max_in_flight`), so a slow broker pauses fetching instead of growing memory.
//!
//! With `[state]` (see `checkpoint.rs`) each partition's engine is checkpointed to a compacted
//! topic, the committed offset only follows acknowledged checkpoints, and a revoked partition
//! is checkpointed in the rebalance callback before it moves (`ownership.rs`).
//!
//! The parts, each readable alone:
//! - `stage/`: the consumer loop's state, one method per event (the messages already fetched,
//!   clock tick, heartbeat, inventory record); [`run`] below waits for events and calls them.
//! - `fetch.rs`: the assigned partitions' messages, read from librdkafka in batches.
//! - `committer.rs`: deliveries awaited in consumption order, offsets stored behind them.
//! - `produce.rs`: records to produce, enqueued without loss; dead letters; heartbeats.
//! - `ownership.rs`: which partitions this member owns, and the rebalance callbacks.
//! - `watermarks.rs`: cached high watermarks and unread counts (the FFI call) for the clocks.
//! - `checkpoint.rs`, `parts.rs`: engine state in Kafka; the partitions' engines.
//! - `client.rs`: the librdkafka settings of the consumer, producer and inventory reader, and
//!   the startup probe; `client_errors.rs`: librdkafka's client-level errors, by kind.

mod checkpoint;
mod client;
mod client_errors;
mod committer;
mod fetch;
mod ownership;
mod parts;
mod produce;
mod producer;
mod stage;
mod watermarks;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use tokio::sync::mpsc;

pub use checkpoint::{CheckpointError, Marker, Restored, CHUNK};
pub use client::{consumer, producer};
pub use ownership::{DeadairConsumer, LagContext, Ownership};
pub use produce::{encode_alert, heartbeat_event};

use crate::config::RunConfig;
use crate::http::Health;
use crate::metrics::Metrics;
use crate::model::Model;
use crate::ratelog::RateLimitedLog;
use committer::KafkaSink;
use ownership::RevokeHook;
use stage::{Stage, Wiring};

/// How often the wall clock is consulted (idle partitions, lag), ms.
pub const CLOCK_TICK_MS: u64 = 250;

/// Samples stamped further than this ahead of wall time are dropped (`reason="future"`).
pub const MAX_FUTURE_MS: i64 = 3_600_000;

/// What a run did (returned after a graceful shutdown).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RunSummary {
    pub messages: u64,
    pub samples: u64,
    pub decode_errors: u64,
    pub alerts: u64,
    pub heartbeats: u64,
    pub offsets_stored: u64,
    pub delivery_retries: u64,
}

/// Why the Kafka stage could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error("cannot create {what}: {source}")]
    Client {
        what: &'static str,
        source: KafkaError,
    },
    #[error("cannot subscribe to {topics:?}: {source}")]
    Subscribe {
        topics: Vec<String>,
        source: KafkaError,
    },
    #[error(
        "cannot use the brokers {brokers}: {detail} (check the TLS and SASL keys in [librdkafka])"
    )]
    Unusable { brokers: String, detail: String },
    #[error("inventory topic `{topic}`: {detail}")]
    Inventory { topic: String, detail: String },
    #[error(transparent)]
    Alertmanager(#[from] crate::alertmanager::ForwarderError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("the committer stopped unexpectedly")]
    CommitterStopped,
    #[error("committer failed: {0}")]
    CommitterFailed(tokio::task::JoinError),
}

/// Runs the Kafka stage until `shutdown` completes, then stops fetching, waits for in-flight
/// deliveries, stores and commits offsets, within `shutdown_timeout`.
pub async fn run(
    cfg: &RunConfig,
    model: Arc<Model>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    shutdown: impl Future<Output = ()>,
) -> Result<RunSummary, StageError> {
    client::probe(cfg, &metrics).await?;
    let consumer =
        Arc::new(
            consumer(cfg, metrics.clone()).map_err(|source| StageError::Client {
                what: "consumer",
                source,
            })?,
        );
    let producer = producer(cfg).map_err(|source| StageError::Client {
        what: "producer",
        source,
    })?;
    let topics: Vec<&str> = cfg.input.iter().map(|i| i.topic.as_str()).collect();
    consumer
        .subscribe(&topics)
        .map_err(|source| StageError::Subscribe {
            topics: topics.iter().map(|t| t.to_string()).collect(),
            source,
        })?;
    let am = match &cfg.alertmanager {
        Some(c) => Some(crate::alertmanager::spawn(c, &metrics.registry)?),
        None => None,
    };
    if let Some(am) = &am {
        let _ = consumer.context().am.set(am.clone());
    }
    let (tx, rx) = mpsc::channel(cfg.max_in_flight);
    let sink = KafkaSink {
        consumer: consumer.clone(),
        producer: producer.clone(),
        metrics: metrics.clone(),
        log: RateLimitedLog::new(5),
        dead_letter: cfg.dead_letter_topic.clone(),
    };
    let committer = tokio::spawn(committer::run(rx, sink));
    health.stall_ms.store(
        crate::time::millis(cfg.heartbeat_interval * 3),
        std::sync::atomic::Ordering::Relaxed,
    );
    let mut stage = Stage::new(
        cfg,
        Wiring {
            model,
            metrics: metrics.clone(),
            health,
            consumer: consumer.clone(),
            producer: producer.clone(),
            tx,
            am: am.clone(),
        },
    );
    if let Some(state) = &cfg.state {
        let _ = consumer.context().hook.set(RevokeHook {
            shared: stage.shared.clone(),
            producer: producer.clone(),
            state_topic: state.topic.clone(),
            group: cfg.group_id.clone(),
            alert_topic: cfg.alert_topic.clone(),
            alert_format: cfg.alert_format,
            metrics: metrics.clone(),
            am: am.clone(),
        });
    }
    let inventory = match &cfg.inventory {
        Some(inv) => Some(client::inventory_consumer(cfg, &inv.topic)?),
        None => None,
    };

    serve(&mut stage, &consumer, inventory.as_ref(), shutdown).await?;
    let summary = shut_down(stage, committer, am.as_ref(), &producer, &consumer, cfg).await;
    // the batch queue goes before the consumer (librdkafka's queues before their client)
    if let Ok(mut f) = consumer.context().fetch.lock() {
        f.take();
    }
    summary
}

/// The consumer loop: waits for the next event (shutdown, heartbeat, inventory record, clock
/// tick, the group's events or messages) and calls the stage's method for it.
async fn serve(
    stage: &mut Stage<'_>,
    consumer: &DeadairConsumer,
    inventory: Option<&rdkafka::consumer::StreamConsumer>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StageError> {
    let mut tick = tokio::time::interval(Duration::from_millis(CLOCK_TICK_MS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut heartbeat = tokio::time::interval(stage.cfg.heartbeat_interval);
    tokio::pin!(shutdown);
    // the assigned partitions' messages, read in batches (`fetch.rs`)...
    let fetch = consumer.context().fetch_queue();
    let mut fetched = Vec::with_capacity(stage::MAX_BATCH);
    // ...and the consumer queue: the group's events (served inside its polls), and the
    // messages of any partition not forwarded. One stream for the whole run (each `recv`
    // would register and drop a waker)
    let mut messages = consumer.stream();
    let mut batch = Vec::with_capacity(stage::MAX_BATCH);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            _ = heartbeat.tick() => stage.on_heartbeat().await,
            m = client::next_inventory(inventory) => match m {
                Ok(msg) => stage.on_inventory(&msg).await?,
                Err(e) => stage.consume_error("inventory consume error", &e),
            },
            _ = tick.tick() => stage.on_tick().await?,
            // transient errors: librdkafka reconnects and resumes by itself
            m = messages.next() => match m {
                Some(Ok(msg)) => {
                    // with it, every message already fetched (up to MAX_BATCH): one turn
                    batch.push(msg);
                    while batch.len() < stage::MAX_BATCH {
                        match messages.next().now_or_never() {
                            Some(Some(Ok(msg))) => batch.push(msg),
                            Some(Some(Err(e))) => stage.consume_error("consume error", &e),
                            Some(None) | None => break,
                        }
                    }
                    let handled = stage.on_messages(&batch).await;
                    batch.clear();
                    handled?;
                }
                Some(Err(e)) => stage.consume_error("consume error", &e),
                None => break, // librdkafka's stream does not end
            },
            q = fetch::ready(fetch.as_deref()) => {
                q.read(&mut fetched, |e| stage.consume_error("consume error", &e));
                if !fetched.is_empty() {
                    let handled = stage.on_messages(&fetched).await;
                    fetched.clear();
                    handled?;
                }
            }
        }
    }
    Ok(())
}

/// Graceful shutdown: stop fetching, checkpoint every partition, let the committer drain
/// (within `shutdown_timeout`), tell Alertmanager what is pending, commit what was stored.
async fn shut_down(
    mut stage: Stage<'_>,
    committer: tokio::task::JoinHandle<(u64, u64)>,
    am: Option<&crate::alertmanager::Forwarder>,
    producer: &producer::AlertProducer,
    consumer: &DeadairConsumer,
    cfg: &RunConfig,
) -> Result<RunSummary, StageError> {
    let shutdown_started = std::time::Instant::now();
    if let Err(e) = stage.flush_unstored().await {
        tracing::warn!("shutdown: {e}");
    }
    stage.checkpoint_all().await;
    let mut summary = stage.finish();
    let timeout = cfg.shutdown_timeout;
    let abort = committer.abort_handle();
    match tokio::time::timeout(timeout, committer).await {
        Ok(Ok((stored, retries))) => {
            summary.offsets_stored = stored;
            summary.delivery_retries = retries;
        }
        Ok(Err(e)) => return Err(StageError::CommitterFailed(e)),
        Err(_) => {
            abort.abort();
            tracing::warn!("shutdown timeout: some alerts were not acknowledged; their offsets stay uncommitted");
        }
    }
    if let Some(am) = am {
        am.shutdown(timeout.saturating_sub(shutdown_started.elapsed()))
            .await;
    }
    let _ = producer.flush(Duration::from_secs(1));
    if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
        // nothing stored since the last auto-commit is a benign outcome
        if !matches!(e, KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) {
            tracing::error!("final commit failed: {e}");
        }
    }
    consumer.unsubscribe();
    Ok(summary)
}
