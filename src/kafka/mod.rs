//! The Kafka stage of `deadair run`: a thin layer around the engine.
//!
//! ```text
//! consumer (group) ──▶ decode ──▶ engine per (topic, partition) ──▶ encode ──▶ producer (alerts)
//!                                                                       │ delivery futures
//!                          store offset (in order) ◀── committer task ◀─┘
//! ```
//!
//! At-least-once: offsets are stored (`enable.auto.offset.store=false`) by the committer task,
//! message by message in consumption order, only after every alert that message caused has been
//! acknowledged by the broker; auto-commit then commits what was stored. A delivery that fails
//! is sent again (same key, same payload, so the same `alert_id` and `version`) until it
//! succeeds: delay is fine, data loss is not. The committer's channel is bounded
//! (`max_in_flight`), so a slow broker pauses fetching instead of growing memory.
//!
//! With `[state]` (see [`checkpoint`]) each partition's engine is checkpointed to a compacted
//! topic, the committed offset only follows acknowledged checkpoints, and a revoked partition
//! is checkpointed in the rebalance callback before it moves ([`RevokeHook`]).

pub mod checkpoint;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use prost::Message as _;
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::statistics::Statistics;
use tokio::sync::mpsc;

use crate::alert::{Alert, AlertKind, AlertStatus};
use crate::alertmanager::Forwarder;
use crate::clock::{ClockConfig, PartitionClock};
use crate::config::{AlertFormat, RunConfig};
use crate::decode::{decode_message, DecodeError, DecodeReason, Meta, SampleViews, Scratch};
use crate::engine::{Engine, Outcome, SampleRef};
use crate::http::Health;
use crate::metrics::Metrics;
use crate::model::Model;
use crate::ratelog::RateLimitedLog;
use crate::wallclock::wall_ms;

/// A partition: its engine, its clock and its checkpoint bookkeeping.
pub struct Part {
    engine: Engine,
    clock: PartitionClock,
    ckpt: Ckpt,
}

/// The parts of the assigned (topic, partition)s, shared with the rebalance callback (which
/// checkpoints a revoked partition before it leaves; see [`RevokeHook`]). Locked only for
/// synchronous work, never across an await.
type Engines = HashMap<(Arc<str>, i32), Part>;
type Shared = Arc<std::sync::Mutex<Engines>>;

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Engines> {
    // a panic while holding it would have ended the run; the data is still consistent
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

/// How often the wall clock is consulted (idle partitions, lag), ms.
pub const CLOCK_TICK_MS: u64 = 250;

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

/// Samples stamped further than this ahead of wall time are dropped (`reason="future"`).
pub const MAX_FUTURE_MS: i64 = 3_600_000;

pub(crate) fn client_config(cfg: &RunConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &cfg.brokers);
    for (k, v) in &cfg.librdkafka {
        c.set(k, v);
    }
    c
}

/// Consumer context: turns librdkafka statistics into per-partition lag gauges, and records
/// revoked partitions so the main loop drops their engines (state does not yet move with a
/// partition: see the open issue on state in Kafka).
pub struct LagContext {
    metrics: Arc<Metrics>,
    revoked: std::sync::Mutex<Vec<(String, i32)>>,
    /// Partitions this member owns now: added on assignment, removed when a revocation
    /// starts. A message still queued from a partition that has moved away is skipped, not
    /// processed by a resurrected engine beside its new owner's.
    owned: std::sync::Mutex<std::collections::HashSet<(String, i32)>>,
    /// Wall ms until which the cached high watermarks are not trusted (a broker error was
    /// reported recently: fetches may have stopped, so "caught up" may be stale).
    distrust_until: std::sync::atomic::AtomicI64,
    /// Messages beyond the group's position per (topic, partition), from the statistics.
    unread: std::sync::Mutex<HashMap<(String, i32), i64>>,
    /// Set by `run` when a state topic is configured.
    hook: std::sync::OnceLock<RevokeHook>,
    /// Set by `run` with `[alertmanager]`: told which partitions moved away.
    am: std::sync::OnceLock<Forwarder>,
}

/// How long after a client error the cached high watermarks are not trusted, ms.
const DISTRUST_MS: i64 = 10_000;

impl ClientContext for LagContext {
    fn error(&self, error: KafkaError, reason: &str) {
        // counted and logged where consumption sees it; here it only stops the wall clock
        let _ = (error, reason);
        self.distrust_until.store(
            wall_ms() + DISTRUST_MS,
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    fn stats(&self, stats: Statistics) {
        if stats
            .brokers
            .values()
            .any(|b| b.nodeid >= 0 && b.state != "UP")
        {
            self.distrust_until.store(
                wall_ms() + DISTRUST_MS,
                std::sync::atomic::Ordering::Relaxed,
            );
        }
        let mut unread = self.unread.lock().ok();
        for (topic, t) in &stats.topics {
            for (partition, p) in &t.partitions {
                // -1 is librdkafka's "unknown" and the internal partition -1 is not an input
                if *partition >= 0 && p.consumer_lag >= 0 {
                    if let Some(u) = unread.as_mut() {
                        u.insert((topic.clone(), *partition), p.consumer_lag);
                    }
                    self.metrics
                        .consumer_lag
                        .with_label_values(&[topic.as_str(), &partition.to_string()])
                        .set(p.consumer_lag);
                }
            }
        }
    }
}

impl ConsumerContext for LagContext {
    fn post_rebalance(
        &self,
        _consumer: &rdkafka::consumer::BaseConsumer<Self>,
        rebalance: &rdkafka::consumer::Rebalance<'_>,
    ) {
        if let rdkafka::consumer::Rebalance::Assign(tpl) = rebalance {
            if let Ok(mut owned) = self.owned.lock() {
                for e in tpl.elements() {
                    owned.insert((e.topic().to_string(), e.partition()));
                }
            }
            if tpl.count() > 0 {
                eprintln!("deadair: assigned {} at {}", tpl_text(tpl), wall_ms());
            }
        }
    }

    fn pre_rebalance(
        &self,
        consumer: &rdkafka::consumer::BaseConsumer<Self>,
        rebalance: &rdkafka::consumer::Rebalance<'_>,
    ) {
        if let rdkafka::consumer::Rebalance::Revoke(tpl) = rebalance {
            let list: Vec<(String, i32)> = tpl
                .elements()
                .iter()
                .map(|e| (e.topic().to_string(), e.partition()))
                .collect();
            if let Ok(mut owned) = self.owned.lock() {
                list.iter().for_each(|k| {
                    owned.remove(k);
                });
            }
            if tpl.count() > 0 {
                eprintln!("deadair: revoking {} at {}", tpl_text(tpl), wall_ms());
            }
            // with a state topic: checkpoint first, so the next owner starts where we stopped
            if let Some(hook) = self.hook.get() {
                hook.revoke(consumer, &list);
            }
            if let Some(am) = self.am.get() {
                list.iter().for_each(|(t, p)| am.forget(t, *p));
            }
            if let Ok(mut revoked) = self.revoked.lock() {
                revoked.extend(list);
            }
        }
    }
}

/// `topic/p, topic/q` for a rebalance log line.
fn tpl_text(tpl: &rdkafka::TopicPartitionList) -> String {
    let parts: Vec<String> = tpl
        .elements()
        .iter()
        .map(|e| format!("{}/{}", e.topic(), e.partition()))
        .collect();
    parts.join(", ")
}

impl LagContext {
    /// Whether this member owns `partition` of `topic` now.
    fn owns(&self, topic: &str, partition: i32) -> bool {
        self.owned
            .lock()
            .is_ok_and(|o| o.contains(&(topic.to_string(), partition)))
    }

    /// Partitions revoked since the last call.
    fn take_revoked(&self) -> Vec<(String, i32)> {
        self.revoked
            .lock()
            .map(|mut r| std::mem::take(&mut *r))
            .unwrap_or_default()
    }
}

pub type DeadairConsumer = StreamConsumer<LagContext>;

/// Creates the consumer: group member, offsets stored by deadair only after delivery.
pub fn consumer(cfg: &RunConfig, metrics: Arc<Metrics>) -> Result<DeadairConsumer, KafkaError> {
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
    c.create_with_context(LagContext {
        metrics,
        revoked: std::sync::Mutex::new(Vec::new()),
        owned: std::sync::Mutex::new(std::collections::HashSet::new()),
        distrust_until: std::sync::atomic::AtomicI64::new(0),
        unread: std::sync::Mutex::new(HashMap::new()),
        hook: std::sync::OnceLock::new(),
        am: std::sync::OnceLock::new(),
    })
}

/// Creates the alert producer: idempotent, acks from all in-sync replicas.
pub fn producer(cfg: &RunConfig) -> Result<FutureProducer, KafkaError> {
    let mut c = client_config(cfg);
    c.set("enable.idempotence", "true")
        .set("acks", "all")
        .set_default("linger.ms", "5")
        // bounded producer queue: 64 MiB of alerts at most (librdkafka's default is 1 GiB)
        .set_default("queue.buffering.max.kbytes", "65536");
    c.create()
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

/// Encodes an alert for the alert topic, stamping `emitted_at` with wall time.
pub fn encode_alert(a: &Alert, format: AlertFormat) -> Vec<u8> {
    let mut a = a.clone();
    a.emitted_at = wall_ms();
    match format {
        AlertFormat::Proto => crate::codec::alert_to_proto(&a).encode_to_vec(),
        AlertFormat::Json => crate::codec::alert_to_json(&a).into_bytes(),
    }
}

/// One consumed message whose offset may be stored once its alerts are delivered.
struct InFlight {
    topic: Arc<str>,
    partition: i32,
    /// `None` for alerts no message caused (clock ticks): nothing to store behind them.
    offset: Option<i64>,
    /// Whether the offset may be stored once delivered: always without a state topic; with
    /// one, only for checkpoints (the committed offset is always a checkpoint's offset).
    store: bool,
    deliveries: Vec<Pending>,
}

/// One record being delivered, with what it takes to send it again.
pub(crate) struct Pending {
    fut: DeliveryFuture,
    /// Kept to be sent again, unchanged, if the delivery fails.
    record: Record,
}

/// One record to produce: to `partition`, or by key.
pub(crate) struct Record {
    topic: Arc<str>,
    partition: Option<i32>,
    key: Vec<u8>,
    payload: Vec<u8>,
    headers: Option<OwnedHeaders>,
}

impl Record {
    fn new(
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
    fn key_text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.key)
    }
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

/// Awaits deliveries in consumption order and stores offsets behind them.
async fn committer(
    mut rx: mpsc::Receiver<InFlight>,
    consumer: Arc<DeadairConsumer>,
    producer: FutureProducer,
    metrics: Arc<Metrics>,
) -> (u64, u64) {
    let mut log = RateLimitedLog::new(5);
    let (mut stored, mut retries) = (0u64, 0u64);
    while let Some(f) = rx.recv().await {
        for Pending { mut fut, record } in f.deliveries {
            let (topic, key) = (&record.topic, record.key_text());
            loop {
                match fut.await {
                    Ok(Ok(_)) => break,
                    Ok(Err((e, _))) => {
                        retries += 1;
                        metrics.delivery_errors.inc();
                        log.log("delivery error", || {
                            format!("{topic} record {key} not delivered: {e}; sending again")
                        });
                    }
                    Err(_) => {
                        retries += 1;
                        metrics.delivery_errors.inc();
                        log.log("delivery error", || {
                            format!("{topic} record {key}: delivery canceled; sending again")
                        });
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                fut = enqueue(&producer, &record, &mut log).await;
            }
        }
        let Some(offset) = f.offset.filter(|_| f.store) else {
            continue;
        };
        match consumer.store_offset(&f.topic, f.partition, offset) {
            Ok(()) => {
                stored += 1;
                metrics.offsets_stored.inc();
            }
            // e.g. the partition was revoked meanwhile: its new owner re-reads from the last commit
            Err(e) => log.log("offset store", || {
                format!("{}/{} offset {offset}: {e}", f.topic, f.partition)
            }),
        }
    }
    (stored, retries)
}

/// Runs the Kafka stage until `shutdown` completes, then stops fetching, waits for in-flight
/// deliveries, stores and commits offsets, within `shutdown_timeout`.
pub async fn run(
    cfg: &RunConfig,
    model: Arc<Model>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    shutdown: impl Future<Output = ()>,
) -> Result<RunSummary, String> {
    let consumer = Arc::new(
        consumer(cfg, metrics.clone()).map_err(|e| format!("cannot create consumer: {e}"))?,
    );
    let producer = producer(cfg).map_err(|e| format!("cannot create producer: {e}"))?;
    let topics: Vec<&str> = cfg.input.iter().map(|i| i.topic.as_str()).collect();
    consumer
        .subscribe(&topics)
        .map_err(|e| format!("cannot subscribe to {topics:?}: {e}"))?;

    let am = match &cfg.alertmanager {
        Some(c) => Some(crate::alertmanager::spawn(c, &metrics.registry)?),
        None => None,
    };
    if let Some(am) = &am {
        let _ = consumer.context().am.set(am.clone());
    }
    let (tx, rx) = mpsc::channel::<InFlight>(cfg.max_in_flight);
    let committer = tokio::spawn(committer(
        rx,
        consumer.clone(),
        producer.clone(),
        metrics.clone(),
    ));
    health.stall_ms.store(
        cfg.heartbeat_interval * 3,
        std::sync::atomic::Ordering::Relaxed,
    );

    let instance = std::env::var("DEADAIR_INSTANCE")
        .unwrap_or_else(|_| format!("deadair-{}", std::process::id()));
    let mut log = RateLimitedLog::new(5);
    let mut summary = RunSummary::default();
    let shared: Shared = Arc::new(std::sync::Mutex::new(HashMap::new()));
    if let Some(state) = &cfg.state {
        let hook = RevokeHook {
            shared: shared.clone(),
            producer: producer.clone(),
            state_topic: state.topic.clone(),
            group: cfg.group_id.clone(),
            alert_topic: cfg.alert_topic.clone(),
            alert_format: cfg.alert_format,
            metrics: metrics.clone(),
            am: am.clone(),
        };
        let _ = consumer.context().hook.set(hook);
    }
    let mut expected: Expected = HashMap::new();
    let inventory = match &cfg.inventory {
        Some(inv) => Some(inventory_consumer(cfg, &inv.topic)?),
        None => None,
    };
    let clock_cfg = ClockConfig {
        allowed_lateness: cfg.allowed_lateness,
        ingest_delay: cfg.ingest_delay,
        lag_threshold: cfg.lag_threshold,
    };
    let mut tick = tokio::time::interval(Duration::from_millis(CLOCK_TICK_MS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut scratch, mut alerts, mut outcomes) = (Scratch::default(), Vec::new(), Vec::new());
    let mut heartbeat = tokio::time::interval(Duration::from_millis(cfg.heartbeat_interval as u64));
    tokio::pin!(shutdown);

    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            _ = heartbeat.tick() => {
                summary.heartbeats += 1;
                metrics.heartbeats.inc();
                let parts = {
                    let mut engines = lock(&shared);
                    drop_revoked(&consumer, &mut engines, &cfg.group_id, &mut alerts);
                    refresh_gauges(&metrics, &health, &consumer, &producer, &engines);
                    let mut parts: Vec<String> = engines.keys().map(|(t, p)| format!("{t}/{p}")).collect();
                    parts.sort();
                    parts
                };
                metrics.alert(AlertKind::Heartbeat, AlertStatus::Firing);
                let hb = heartbeat_event(&cfg.group_id, &instance, &parts);
                let payload = encode_alert(&hb, cfg.alert_format);
                // not tied to any offset: fire and forget (librdkafka retries)
                let record = Record::new(Arc::from(cfg.alert_topic.as_str()), None, hb.alert_id, payload);
                drop(enqueue(&producer, &record, &mut log).await);
            }
            m = next_inventory(inventory.as_ref()) => {
                let msg = match m {
                    Ok(m) => m,
                    Err(e) => {
                        metrics.consume_errors.inc();
                        log.log("inventory consume error", || e.to_string());
                        continue;
                    }
                };
                let p = msg.partition();
                let key = msg.key().and_then(|k| std::str::from_utf8(k).ok()).unwrap_or("");
                let series = match crate::model::parse_series(key) {
                    Ok(s) => s,
                    Err(e) => {
                        metrics.decode_errors.with_label_values(&["inventory"]).inc();
                        log.log("inventory record", || format!("{}/{p}@{}: key must name one series: {e}", msg.topic(), msg.offset()));
                        continue;
                    }
                };
                let tombstone = msg.payload().is_none_or(|v| v.is_empty());
                {
                    let mut engines = lock(&shared);
                    let part = cfg.inventory_input().and_then(|t| engines.get_mut(&(Arc::from(t), p)));
                    if let Some(Part { engine, .. }) = part {
                        let at = if engine.now() == i64::MIN { wall_ms() } else { engine.now() };
                        if tombstone {
                            engine.unexpect(&series.name, series.labels.as_slice(), at, &mut alerts);
                        } else {
                            engine.expect(&series.name, series.labels.as_slice(), at, &mut alerts);
                        }
                    }
                }
                if tombstone {
                    expected.entry(p).or_default().remove(key);
                } else {
                    expected.entry(p).or_default().insert(key.to_string(), series);
                }
                if !alerts.is_empty() {
                    let scope = cfg.inventory_input().map(|t| (t, p));
                    let deliveries = send_alerts(&producer, cfg, &metrics, &mut summary, &mut alerts, &mut log, am.as_ref(), scope).await;
                    let f = InFlight { topic: Arc::from(""), partition: -1, offset: None, store: false, deliveries };
                    if tx.send(f).await.is_err() {
                        return Err("the committer stopped unexpectedly".into());
                    }
                }
            }
            _ = tick.tick() => {
                // the wall clock: idle, caught-up partitions move on; lagging ones report it
                drop_revoked(&consumer, &mut lock(&shared), &cfg.group_id, &mut alerts);
                let wall = wall_ms();
                // with an inventory, every assigned partition of its input has an engine, so a
                // partition where nothing ever reports still alerts on its expected series
                if let Some(input) = cfg.inventory_input() {
                    let assigned: Vec<i32> = consumer.assignment().map(|a| {
                        a.elements().iter().filter(|e| e.topic() == input).map(|e| e.partition()).collect()
                    }).unwrap_or_default();
                    for p in assigned {
                        let restored = engine_for(&shared, (Arc::from(input), p), &model, clock_cfg, cfg, &expected, &mut alerts).await?;
                        reannounce(am.as_ref(), &restored, input, p);
                    }
                }
                // under the lock: advance every clock, collect alerts and due checkpoints
                let mut work: Vec<TickWork> = Vec::new();
                {
                    let mut engines = lock(&shared);
                    for (key, part) in engines.iter_mut() {
                        let (topic, partition) = key;
                        let (high, unread) = cached_lag(&consumer, topic, *partition);
                        let lag = part.clock.lag(high, unread, wall);
                        let mut out = Vec::new();
                        part.clock.step_lag(lag, wall, &cfg.group_id, &mut out);
                        metrics.lag_seconds.with_label_values(&[&**topic, &partition.to_string()]).set(lag.behind_ms / 1000);
                        part.engine.advance(part.clock.watermark(lag, wall), &mut out);
                        // a checkpoint per `[state] interval`, at the last offset consumed
                        let due = cfg.state.as_ref().is_some_and(|s| wall - part.ckpt.at >= s.interval);
                        let ckpt = if due { take_checkpoint(key, part) } else { None };
                        if !out.is_empty() || ckpt.is_some() {
                            work.push((key.clone(), out, ckpt));
                        }
                    }
                }
                for ((topic, partition), mut out, ckpt) in work {
                    if !out.is_empty() {
                        let deliveries = send_alerts(&producer, cfg, &metrics, &mut summary, &mut out, &mut log, am.as_ref(), Some((&*topic, partition))).await;
                        let f = InFlight { topic: topic.clone(), partition, offset: None, store: false, deliveries };
                        if tx.send(f).await.is_err() {
                            return Err("the committer stopped unexpectedly".into());
                        }
                    }
                    if let (Some(w), Some(state)) = (ckpt, &cfg.state) {
                        let f = send_checkpoint(&producer, &state.topic, w, &mut log).await;
                        metrics.checkpoints.inc();
                        if tx.send(f).await.is_err() {
                            return Err("the committer stopped unexpectedly".into());
                        }
                    }
                }
                // events of no current partition (a revoked partition's resolved lag)
                if !alerts.is_empty() {
                    let deliveries = send_alerts(&producer, cfg, &metrics, &mut summary, &mut alerts, &mut log, am.as_ref(), None).await;
                    let f = InFlight { topic: Arc::from(""), partition: -1, offset: None, store: false, deliveries };
                    if tx.send(f).await.is_err() {
                        return Err("the committer stopped unexpectedly".into());
                    }
                }
            }
            m = consumer.recv() => {
                let msg = match m {
                    Ok(m) => m,
                    Err(e) => {
                        // transient: librdkafka reconnects and resumes by itself
                        metrics.consume_errors.inc();
                        log.log("consume error", || e.to_string());
                        continue;
                    }
                };
                drop_revoked(&consumer, &mut lock(&shared), &cfg.group_id, &mut alerts);
                if !consumer.context().owns(msg.topic(), msg.partition()) {
                    // fetched before its partition moved away: the new owner reads it from the
                    // committed offset (restoring its engine here would process it twice)
                    continue;
                }
                summary.messages += 1;
                metrics.messages.inc();
                metrics.bytes.inc_by(msg.payload().map_or(0, |p| p.len() as u64));
                health.last_loop_ms.store(wall_ms(), std::sync::atomic::Ordering::Relaxed);
                // consuming means assigned: ready (also checked on every heartbeat tick)
                health.ready.store(true, std::sync::atomic::Ordering::Relaxed);
                let topic: Arc<str> = msg.topic().into();
                let (partition, offset) = (msg.partition(), msg.offset());
                // the partition's engine (restored from its checkpoint on first use), before
                // any borrow of the message's payload is held across an await
                let restored = engine_for(&shared, (topic.clone(), partition), &model, clock_cfg, cfg, &expected, &mut alerts).await?;
                reannounce(am.as_ref(), &restored, &topic, partition);
                let payload = msg.payload().unwrap_or(&[]);
                let decoded = match cfg.input_of(&topic) {
                    Some(input) => decode_message(input, meta(&msg), payload, &mut scratch),
                    None => Ok(SampleViews::default()),
                };
                let mut dead = None;
                let mut batch = decoded.unwrap_or_else(|e| {
                    summary.decode_errors += 1;
                    metrics.decode_errors.with_label_values(&[e.reason.as_str()]).inc();
                    log.log(decode_log_key(e.reason), || format!("{topic}/{partition}@{offset}: {} ({})", e.reason.as_str(), e.detail));
                    dead = cfg.dead_letter_topic.as_deref().map(|t| dead_letter(&msg, t, &e));
                    SampleViews::default()
                });
                // a timestamp far in the future would drag the partition clock with it
                let horizon = wall_ms().saturating_add(MAX_FUTURE_MS);
                let before = batch.len();
                batch.samples.retain(|smp| smp.2 <= horizon);
                if batch.len() < before {
                    metrics.samples_dropped.with_label_values(&["future"]).inc_by((before - batch.len()) as u64);
                    log.log("future timestamps", || format!("{topic}/{partition}@{offset}: {} samples more than 1h ahead of wall time dropped", before - batch.len()));
                }
                summary.samples += batch.len() as u64;
                metrics.samples.inc_by(batch.len() as u64);
                let started = std::time::Instant::now();
                {
                    let mut engines = lock(&shared);
                    let Some(Part { engine, clock, .. }) = engines.get_mut(&(topic.clone(), partition)) else {
                        // revoked (and checkpointed) since this message was fetched: its new
                        // owner reads it again from the committed offset
                        continue;
                    };
                    let refs: Vec<SampleRef<'_, _>> = batch.refs().collect();
                    engine.ingest_batch(&refs, &mut alerts, &mut outcomes);
                    for o in outcomes.drain(..) {
                        let reason = match o {
                            Outcome::Accepted(_) => continue,
                            Outcome::Late => "late",
                            Outcome::NonFinite => "non_finite",
                            Outcome::Unmatched => "unmatched",
                            Outcome::Refused => "cardinality",
                        };
                        metrics.samples_dropped.with_label_values(&[reason]).inc();
                    }
                    clock.consumed(offset, msg.timestamp().to_millis(), batch.newest());
                    // a backlog can be consumed between two ticks: an old message reports lag now
                    if !clock.lag_firing()
                        && msg.timestamp().to_millis().is_some_and(|t| wall_ms() - t > cfg.lag_threshold)
                    {
                        let wall = wall_ms();
                        let (high, unread) = cached_lag(&consumer, &topic, partition);
                        let lag = clock.lag(high, unread, wall);
                        clock.step_lag(lag, wall, &cfg.group_id, &mut alerts);
                    }
                    // event time only here; wall time joins on the clock tick when caught up
                    engine.advance(clock.event_watermark(), &mut alerts);
                }
                metrics.engine_batch.observe(started.elapsed().as_secs_f64());
                let mut deliveries = send_alerts(&producer, cfg, &metrics, &mut summary, &mut alerts, &mut log, am.as_ref(), Some((&*topic, partition))).await;
                if let Some(record) = dead {
                    // its offset is stored only once the copy is acknowledged, like an alert
                    metrics.dead_letters.inc();
                    deliveries.push(Pending { fut: enqueue(&producer, &record, &mut log).await, record });
                }
                if tx.send(InFlight { topic, partition, offset: Some(offset), store: cfg.state.is_none(), deliveries }).await.is_err() {
                    return Err("the committer stopped unexpectedly".into());
                }
            }
        }
    }

    // Graceful shutdown: stop fetching, checkpoint every partition, let the committer drain,
    // commit what it stored.
    let shutdown_started = std::time::Instant::now();
    if let Some(state) = &cfg.state {
        let writes: Vec<CheckpointWrite> = lock(&shared)
            .iter_mut()
            .filter_map(|(key, part)| take_checkpoint(key, part))
            .collect();
        for w in writes {
            let f = send_checkpoint(&producer, &state.topic, w, &mut log).await;
            metrics.checkpoints.inc();
            if tx.send(f).await.is_err() {
                break;
            }
        }
    }
    drop(tx);
    let timeout = Duration::from_millis(cfg.shutdown_timeout as u64);
    let abort = committer.abort_handle();
    match tokio::time::timeout(timeout, committer).await {
        Ok(Ok((stored, retries))) => {
            summary.offsets_stored = stored;
            summary.delivery_retries = retries;
        }
        Ok(Err(e)) => return Err(format!("committer failed: {e}")),
        Err(_) => {
            abort.abort();
            eprintln!("deadair: shutdown timeout: some alerts were not acknowledged; their offsets stay uncommitted");
        }
    }
    if let Some(am) = &am {
        am.shutdown(timeout.saturating_sub(shutdown_started.elapsed()))
            .await;
    }
    let _ = producer.flush(Duration::from_secs(1));
    if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
        // nothing stored since the last auto-commit is a benign outcome
        if !matches!(e, KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) {
            eprintln!("deadair: final commit failed: {e}");
        }
    }
    consumer.unsubscribe();
    Ok(summary)
}

/// Expected series per inventory partition (= input partition), by record key.
type Expected = HashMap<i32, HashMap<String, crate::series::SeriesKey>>;

/// Checkpoint bookkeeping of one partition: the next epoch and when the last one was taken.
#[derive(Clone, Copy, Debug, Default)]
struct Ckpt {
    epoch: u64,
    at: i64,
}

/// Makes sure the partition has its part: restored from its latest checkpoint when a state
/// topic is configured, else fresh. An engine for the inventory's input topic then expects the
/// inventory's series of its partition (from wall time). Returns the per-series alerts a
/// restored checkpoint still has firing (see [`Engine::firing`]).
#[allow(clippy::too_many_arguments)]
async fn engine_for(
    shared: &Shared,
    key: (Arc<str>, i32),
    model: &Arc<Model>,
    clock_cfg: ClockConfig,
    cfg: &RunConfig,
    expected: &Expected,
    alerts: &mut Vec<Alert>,
) -> Result<Vec<Alert>, String> {
    if lock(shared).contains_key(&key) {
        return Ok(Vec::new());
    }
    let (topic, partition) = key.clone();
    let started = std::time::Instant::now();
    let (mut engine, marker) = checkpoint::restore(cfg, model, &topic, partition).await?;
    engine.set_scope(&format!("{topic}/{partition}"));
    let mut clock = PartitionClock::new(clock_cfg, topic.clone(), partition);
    let mut firing = Vec::new();
    if let Some(m) = &marker {
        clock.consumed(m.offset, None, None);
        engine.firing(&mut firing);
        eprintln!(
            "deadair: {topic}/{partition}: restored checkpoint epoch {} (offset {}, {} series, \
             {} bytes) in {:.2} s",
            m.epoch,
            m.offset,
            engine.series_count(),
            m.bytes,
            started.elapsed().as_secs_f64()
        );
    }
    let ckpt = Ckpt {
        epoch: marker.map_or(0, |m| m.epoch + 1),
        at: wall_ms(),
    };
    if cfg.inventory_input() == Some(&*topic) {
        let at = wall_ms();
        for s in expected
            .get(&partition)
            .into_iter()
            .flat_map(|m| m.values())
        {
            engine.expect(&s.name, s.labels.as_slice(), at, alerts);
        }
    }
    lock(shared).insert(
        key,
        Part {
            engine,
            clock,
            ckpt,
        },
    );
    Ok(firing)
}

/// Tells Alertmanager again about the alerts a restored partition still has firing (it ends
/// an alert that is not re-sent within 4 resend intervals, and the instance that sent it
/// before may be gone).
fn reannounce(am: Option<&Forwarder>, firing: &[Alert], topic: &str, partition: i32) {
    if let Some(am) = am {
        for a in firing {
            am.try_push_scoped(a, Some((topic, partition)));
        }
    }
}

/// What a clock tick found to send for one partition: alerts, and a due checkpoint.
type TickWork = ((Arc<str>, i32), Vec<Alert>, Option<CheckpointWrite>);

/// A checkpoint ready to send: its partition, the input offset it reflects and its records.
struct CheckpointWrite {
    key: (Arc<str>, i32),
    offset: i64,
    records: Vec<(String, Vec<u8>)>,
}

/// Snapshots a partition (if it consumed anything) into checkpoint records; advances its epoch.
fn take_checkpoint(key: &(Arc<str>, i32), part: &mut Part) -> Option<CheckpointWrite> {
    let offset = part.clock.last_offset();
    if offset < 0 {
        return None;
    }
    let snapshot = part.engine.snapshot();
    let records = checkpoint::records(&key.0, key.1, part.ckpt.epoch, offset, &snapshot);
    part.ckpt.epoch += 1;
    part.ckpt.at = wall_ms();
    Some(CheckpointWrite {
        key: key.clone(),
        offset,
        records,
    })
}

/// Enqueues a checkpoint's records (chunks, then marker) to the state topic and returns the
/// in-flight item that stores the input offset once all of it is acknowledged.
async fn send_checkpoint(
    producer: &FutureProducer,
    state_topic: &str,
    w: CheckpointWrite,
    log: &mut RateLimitedLog,
) -> InFlight {
    let topic_arc: Arc<str> = Arc::from(state_topic);
    let mut deliveries = Vec::new();
    for (k, v) in w.records {
        let record = Record::new(topic_arc.clone(), Some(w.key.1), k, v);
        let fut = enqueue(producer, &record, log).await;
        deliveries.push(Pending { fut, record });
    }
    InFlight {
        topic: w.key.0,
        partition: w.key.1,
        offset: Some(w.offset),
        store: true,
        deliveries,
    }
}

/// What the rebalance callback needs to checkpoint a partition before it is revoked.
pub struct RevokeHook {
    shared: Shared,
    producer: FutureProducer,
    state_topic: String,
    group: String,
    alert_topic: String,
    alert_format: AlertFormat,
    metrics: Arc<Metrics>,
    am: Option<Forwarder>,
}

impl RevokeHook {
    /// Runs inside the rebalance callback (on librdkafka's poll, while the main loop holds no
    /// lock): each revoked partition's part is taken out, checkpointed, its lag alert
    /// resolved; once the producer has flushed every outstanding record (those alerts, every
    /// alert before them, the checkpoints), the checkpoints' offsets are committed, so the next
    /// owner restores exactly where this one stopped. On a flush timeout nothing is committed:
    /// the next owner then restores the previous checkpoint and replays (still no loss).
    fn revoke(&self, consumer: &BaseConsumer<LagContext>, revoked: &[(String, i32)]) {
        let mut writes = Vec::new();
        let mut alerts = Vec::new();
        {
            let mut engines = lock(&self.shared);
            for (t, p) in revoked {
                let key = (Arc::from(t.as_str()), *p);
                if let Some(mut part) = engines.remove(&key) {
                    part.clock.revoked(wall_ms(), &self.group, &mut alerts);
                    writes.extend(take_checkpoint(&key, &mut part));
                }
            }
        }
        if writes.is_empty() && alerts.is_empty() {
            return;
        }
        for a in &alerts {
            self.metrics.alert(a.kind, a.state);
            if let Some(am) = &self.am {
                am.try_push(a);
            }
            let payload = encode_alert(a, self.alert_format);
            send_blocking(
                &self.producer,
                &self.alert_topic,
                None,
                &a.alert_id,
                &payload,
            );
        }
        for w in &writes {
            for (k, v) in &w.records {
                send_blocking(&self.producer, &self.state_topic, Some(w.key.1), k, v);
            }
            self.metrics.checkpoints.inc();
        }
        if self.producer.flush(Duration::from_secs(10)).is_err() {
            eprintln!("deadair: revocation: checkpoints not acknowledged within 10 s; the next owner replays from the previous one");
            return;
        }
        let mut tpl = rdkafka::TopicPartitionList::new();
        for w in &writes {
            let _ =
                tpl.add_partition_offset(&w.key.0, w.key.1, rdkafka::Offset::Offset(w.offset + 1));
        }
        match consumer.commit(&tpl, CommitMode::Sync) {
            Ok(()) => eprintln!(
                "deadair: revocation: checkpointed and committed {} partition(s) before handing them over",
                writes.len()
            ),
            Err(e) => eprintln!("deadair: revocation: commit failed ({e}); the next owner replays from the previous checkpoint"),
        }
    }
}

/// Enqueues a record from a thread that may block (the rebalance callback).
fn send_blocking(
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
                eprintln!("deadair: revocation: cannot enqueue {key} to {topic}: {e}");
                return;
            }
        }
    }
}

/// The inventory reader: assigned every partition of the inventory topic from the beginning
/// (no group: each instance holds the whole, compacted inventory).
fn inventory_consumer(cfg: &RunConfig, topic: &str) -> Result<StreamConsumer, String> {
    let c: StreamConsumer = client_config(cfg)
        .set("group.id", format!("{}-inventory", cfg.group_id))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .create()
        .map_err(|e| format!("cannot create the inventory consumer: {e}"))?;
    let md = c
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(|e| format!("inventory topic `{topic}`: {e}"))?;
    let mut tpl = rdkafka::TopicPartitionList::new();
    for t in md.topics() {
        if let Some(e) = t.error() {
            return Err(format!("inventory topic `{topic}`: {e:?}"));
        }
        for p in t.partitions() {
            tpl.add_partition_offset(topic, p.id(), rdkafka::Offset::Beginning)
                .map_err(|e| format!("inventory topic `{topic}`: {e}"))?;
        }
    }
    if tpl.count() == 0 {
        return Err(format!("inventory topic `{topic}` has no partitions"));
    }
    c.assign(&tpl)
        .map_err(|e| format!("inventory topic `{topic}`: {e}"))?;
    Ok(c)
}

/// The next inventory record, or never when there is no inventory.
async fn next_inventory(
    c: Option<&StreamConsumer>,
) -> rdkafka::error::KafkaResult<rdkafka::message::BorrowedMessage<'_>> {
    match c {
        Some(c) => c.recv().await,
        None => std::future::pending().await,
    }
}

/// Encodes and enqueues `alerts` (drained), returning their delivery futures; hands each to the
/// Alertmanager forwarder too, if any (never waits), tagged with the partition `scope`.
#[allow(clippy::too_many_arguments)]
async fn send_alerts(
    producer: &FutureProducer,
    cfg: &RunConfig,
    metrics: &Metrics,
    summary: &mut RunSummary,
    alerts: &mut Vec<Alert>,
    log: &mut RateLimitedLog,
    am: Option<&Forwarder>,
    scope: Option<(&str, i32)>,
) -> Vec<Pending> {
    let mut deliveries = Vec::with_capacity(alerts.len());
    let topic: Arc<str> = Arc::from(cfg.alert_topic.as_str());
    for a in alerts.drain(..) {
        summary.alerts += 1;
        metrics.alert(a.kind, a.state);
        if let Some(am) = am {
            am.try_push_scoped(&a, scope);
        }
        let payload = encode_alert(&a, cfg.alert_format);
        let record = Record::new(topic.clone(), None, a.alert_id, payload);
        let fut = enqueue(producer, &record, log).await;
        deliveries.push(Pending { fut, record });
    }
    deliveries
}

fn decode_log_key(r: DecodeReason) -> &'static str {
    match r {
        DecodeReason::Empty => "decode error (empty)",
        DecodeReason::Protobuf => "decode error (protobuf)",
        DecodeReason::Json => "decode error (json)",
        DecodeReason::Snappy => "decode error (snappy)",
        DecodeReason::TooLarge => "decode error (too_large)",
        DecodeReason::RemoteWrite => "decode error (remote_write)",
        DecodeReason::Otlp => "decode error (otlp)",
        DecodeReason::Influx => "decode error (influx)",
    }
}

/// A copy of an undecodable message for the dead-letter topic: its key, payload and headers,
/// plus where it came from and why it was refused (`deadair-*` headers).
fn dead_letter(msg: &impl Message, topic: &str, e: &DecodeError) -> Record {
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

/// What the decoders may use of a message besides its payload: its `content-type` and
/// `content-encoding` headers (names compared case-insensitively) and its timestamp.
fn meta<'a>(msg: &'a impl Message) -> Meta<'a> {
    let mut meta = Meta {
        timestamp: msg.timestamp().to_millis(),
        ..Meta::default()
    };
    for h in msg.headers().into_iter().flat_map(|h| h.iter()) {
        let value = h.value.and_then(|v| std::str::from_utf8(v).ok());
        if h.key.eq_ignore_ascii_case("content-type") {
            meta.content_type = value;
        } else if h.key.eq_ignore_ascii_case("content-encoding") {
            meta.content_encoding = value;
        }
    }
    meta
}

/// What librdkafka last saw of a partition, without a broker round trip: the high watermark
/// (from fetch responses) and the messages beyond the group's position (0 for an empty
/// partition; else from the statistics). Both `None` while unknown, or when a client error was
/// reported in the last 10 s (fetches may have stopped, so cached values may be stale).
fn cached_lag(
    consumer: &DeadairConsumer,
    topic: &str,
    partition: i32,
) -> (Option<i64>, Option<i64>) {
    let ctx = consumer.context();
    if wall_ms()
        < ctx
            .distrust_until
            .load(std::sync::atomic::Ordering::Relaxed)
    {
        return (None, None);
    }
    let Ok(ctopic) = std::ffi::CString::new(topic) else {
        return (None, None);
    };
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: the client pointer is valid for the consumer's lifetime, the topic is a
    // NUL-terminated string that outlives the call, and rd_kafka_get_watermark_offsets only
    // reads librdkafka's cached state (thread-safe, non-blocking) into the two out-parameters.
    let err = unsafe {
        rdkafka::bindings::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            ctopic.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    if err != rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || high < 0 {
        return (None, None);
    }
    let unread = if low == high {
        Some(0)
    } else {
        ctx.unread
            .lock()
            .ok()
            .and_then(|u| u.get(&(topic.to_string(), partition)).copied())
    };
    (Some(high), unread)
}

/// Drops the engines of partitions revoked since the last call; a `pipeline_lag` firing on
/// one is resolved (pushed to `alerts`), since this instance no longer reads the partition.
fn drop_revoked(
    consumer: &DeadairConsumer,
    engines: &mut Engines,
    group: &str,
    alerts: &mut Vec<Alert>,
) {
    for (t, p) in consumer.context().take_revoked() {
        if let Some(mut part) = engines.remove(&(Arc::from(t.as_str()), p)) {
            part.clock.revoked(wall_ms(), group, alerts);
        }
    }
}

/// Gauges sampled once per heartbeat interval.
fn refresh_gauges(
    metrics: &Metrics,
    health: &Health,
    consumer: &DeadairConsumer,
    producer: &FutureProducer,
    engines: &Engines,
) {
    let now = wall_ms();
    health
        .last_loop_ms
        .store(now, std::sync::atomic::Ordering::Relaxed);
    if consumer.assignment().is_ok_and(|a| a.count() > 0) || !engines.is_empty() {
        health
            .ready
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
    metrics.active_series.set(
        engines
            .values()
            .map(|p| p.engine.series_count() as i64)
            .sum(),
    );
    metrics.assigned_partitions.set(engines.len() as i64);
    metrics
        .producer_queue
        .set(i64::from(producer.in_flight_count()));
    if let Some(oldest) = engines
        .values()
        .map(|p| p.engine.now())
        .filter(|t| *t != i64::MIN)
        .min()
    {
        metrics.watermark_delay.set((now - oldest) / 1000);
    }
    metrics.refresh_memory();
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
