//! The consumer loop's state and its four events: a message, a clock tick, a heartbeat, an
//! inventory record. `super::run` waits for the next event and calls the matching method;
//! every method leaves the records it produced with the committer, behind the offsets they
//! belong to.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::producer::AlertProducer;
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use tokio::sync::mpsc;

mod messages;

pub(crate) use messages::MAX_BATCH;

use super::checkpoint;
use super::committer::{InFlight, Unstored};
use super::ownership::DeadairConsumer;
use super::parts::{lock, take_checkpoint, CheckpointWrite, Ckpt, Engines, Part, PartKey, Shared};
use super::produce::{enqueue, heartbeat_event, Pending, Record, Refusals};
use super::watermarks::cached_lag;
use super::{RunSummary, StageError};
use crate::alert::{Alert, AlertKind, AlertStatus};
use crate::alertmanager::Forwarder;
use crate::clock::{ClockConfig, PartitionClock};
use crate::config::RunConfig;
use crate::decode::Scratch;
use crate::engine::Outcome;
use crate::http::Health;
use crate::metrics::Metrics;
use crate::model::Model;
use crate::ratelog::RateLimitedLog;
use crate::series::SeriesKey;
use crate::time::millis;
use crate::wallclock::wall_ms;

/// Expected series per inventory partition (= input partition), by record key.
type Expected = HashMap<i32, HashMap<String, SeriesKey>>;

/// What a clock tick found to send for one partition: alerts, and a due checkpoint.
type TickWork = (PartKey, Vec<Alert>, Option<CheckpointWrite>);

/// The consumer loop's state (see the module docs).
pub(crate) struct Stage<'a> {
    pub cfg: &'a RunConfig,
    /// The clients, the committer's channel and the observers.
    io: Wiring,
    pub shared: Shared,
    pub clock_cfg: ClockConfig,
    /// This instance's name in heartbeats.
    pub instance: String,
    pub log: RateLimitedLog,
    pub summary: RunSummary,
    expected: Expected,
    scratch: Scratch,
    alerts: Vec<Alert>,
    outcomes: Vec<Outcome>,
    /// Offsets of messages that caused no record, held back (see [`Unstored`]).
    unstored: Unstored,
    /// The input topics' names, shared by the partition keys of every message.
    topics: Vec<Arc<str>>,
    /// Wall time read on the last clock tick (at most a tick old): for per-message checks
    /// that tolerate that (the future horizon, the lag check), instead of a clock read each.
    wall: i64,
    /// The engine's view of a message's samples, its allocation reused.
    refs: messages::Refs,
    /// The samples of a run of messages, their allocations reused.
    spare: messages::Spare,
    /// Batches fed to an engine (one in 64 is timed).
    fed: u64,
}

/// What a stage is wired to: the clients, the committer's channel and the observers.
pub(crate) struct Wiring {
    pub model: Arc<Model>,
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
    pub consumer: Arc<DeadairConsumer>,
    pub producer: AlertProducer,
    /// To the committer, in consumption order.
    pub tx: mpsc::Sender<InFlight<Pending>>,
    pub am: Option<Forwarder>,
}

impl<'a> Stage<'a> {
    pub fn new(cfg: &'a RunConfig, w: Wiring) -> Self {
        let instance = std::env::var("DEADAIR_INSTANCE")
            .unwrap_or_else(|_| format!("deadair-{}", std::process::id()));
        Stage {
            cfg,
            io: w,
            shared: Arc::new(std::sync::Mutex::new(HashMap::new())),
            clock_cfg: ClockConfig {
                allowed_lateness: millis(cfg.allowed_lateness),
                ingest_delay: millis(cfg.ingest_delay),
                lag_threshold: millis(cfg.lag_threshold),
            },
            instance,
            log: RateLimitedLog::new(5),
            summary: RunSummary::default(),
            expected: HashMap::new(),
            scratch: Scratch::default(),
            alerts: Vec::new(),
            outcomes: Vec::new(),
            unstored: Unstored::default(),
            topics: cfg
                .input
                .iter()
                .map(|i| Arc::from(i.topic.as_str()))
                .collect(),
            wall: wall_ms(),
            refs: Vec::new(),
            spare: Default::default(),
            fed: 0,
        }
    }

    /// A heartbeat: refreshes the gauges and announces this instance (not tied to any offset:
    /// fire and forget, librdkafka retries).
    pub async fn on_heartbeat(&mut self) {
        self.summary.heartbeats += 1;
        self.io.metrics.heartbeats.inc();
        let parts = {
            let mut engines = lock(&self.shared);
            for k in drop_revoked(
                &self.io.consumer,
                &mut engines,
                &self.cfg.group_id,
                &mut self.alerts,
            ) {
                self.unstored.forget(&k);
            }
            refresh_gauges(
                &self.io.metrics,
                &self.io.health,
                &self.io.consumer,
                &self.io.producer,
                &engines,
            );
            let mut parts: Vec<String> = engines.keys().map(|(t, p)| format!("{t}/{p}")).collect();
            parts.sort();
            parts
        };
        self.io
            .metrics
            .alert(AlertKind::Heartbeat, AlertStatus::Firing);
        let hb = heartbeat_event(&self.cfg.group_id, &self.instance, &parts);
        let topic = Arc::from(self.cfg.alert_topic.as_str());
        let mut record = Record::alert(topic, hb, self.cfg.alert_format);
        let to = Refusals {
            dead_letter: self.cfg.dead_letter_topic.as_deref(),
            metrics: &self.io.metrics,
        };
        drop(enqueue(&self.io.producer, &mut record, &to, &mut self.log).await);
    }

    /// An inventory record: a series expected (or, a tombstone, no longer expected) on the
    /// partition of the inventory's input named by the record's partition.
    pub async fn on_inventory(&mut self, msg: &impl Message) -> Result<(), StageError> {
        let p = msg.partition();
        let key = msg
            .key()
            .and_then(|k| std::str::from_utf8(k).ok())
            .unwrap_or("");
        let series = match crate::model::parse_series(key) {
            Ok(s) => s,
            Err(e) => {
                self.io
                    .metrics
                    .decode_errors
                    .with_label_values(&["inventory"])
                    .inc();
                self.log.log("inventory record", || {
                    format!(
                        "{}/{p}@{}: key must name one series: {e}",
                        msg.topic(),
                        msg.offset()
                    )
                });
                return Ok(());
            }
        };
        let tombstone = msg.payload().is_none_or(|v| v.is_empty());
        {
            let mut engines = lock(&self.shared);
            let input = self.cfg.inventory_input();
            if let Some(Part { engine, .. }) =
                input.and_then(|t| engines.get_mut(&(Arc::from(t), p)))
            {
                let at = engine.now().unwrap_or_else(wall_ms);
                if tombstone {
                    engine.unexpect(&series.name, series.labels.as_slice(), at, &mut self.alerts);
                } else {
                    engine.expect(&series.name, series.labels.as_slice(), at, &mut self.alerts);
                }
            }
        }
        let expected = self.expected.entry(p).or_default();
        if tombstone {
            expected.remove(key);
        } else {
            expected.insert(key.to_string(), series);
        }
        let scope = self.cfg.inventory_input().map(|t| (t, p));
        self.send_pending_alerts(scope).await
    }

    /// A clock tick: idle, caught-up partitions move on with the wall clock; lagging ones
    /// report it; checkpoints fall due.
    pub async fn on_tick(&mut self) -> Result<(), StageError> {
        self.drop_revoked();
        self.flush_unstored().await?;
        let wall = wall_ms();
        self.wall = wall;
        self.io.health.last_loop_ms.store(wall, Ordering::Relaxed);
        // with an inventory, every assigned partition of its input has an engine (its expected
        // series alert even if nothing reports); with a state topic every assigned partition is
        // restored now, not at its next message (its firing alerts announced again, its
        // absences on the clock, even if nothing arrives)
        let inventory = self.cfg.inventory_input();
        let every = self.cfg.state.is_some();
        if every || inventory.is_some() {
            let ctx = self.io.consumer.context();
            let assigned: Vec<(String, i32)> = self
                .io
                .consumer
                .assignment()
                .map(|a| {
                    a.elements()
                        .iter()
                        .filter(|e| every || Some(e.topic()) == inventory)
                        .filter(|e| ctx.owns(e.topic(), e.partition()))
                        .map(|e| (e.topic().to_string(), e.partition()))
                        .collect()
                })
                .unwrap_or_default();
            for (t, p) in assigned {
                let topic = self.topic_arc(&t);
                self.ensure_part((topic, p)).await?;
            }
        }
        for ((topic, partition), mut out, ckpt) in self.advance_clocks(wall) {
            if !out.is_empty() {
                let deliveries = self.send_alerts(&mut out, Some((&topic, partition))).await;
                self.commit_behind(InFlight {
                    topic: topic.clone(),
                    partition,
                    offset: None,
                    store: false,
                    messages: 0,
                    deliveries,
                })
                .await?;
            }
            if let (Some(w), Some(state)) = (ckpt, &self.cfg.state) {
                let to = Refusals {
                    dead_letter: None,
                    metrics: &self.io.metrics,
                };
                let f =
                    send_checkpoint(&self.io.producer, &state.topic, w, &to, &mut self.log).await;
                self.io.metrics.checkpoints.inc();
                self.commit_behind(f).await?;
            }
        }
        // events of no current partition (a revoked partition's resolved lag)
        self.send_pending_alerts(None).await
    }

    /// Under the lock: advances every partition's clocks to `wall`, collecting the alerts and
    /// the checkpoints due.
    fn advance_clocks(&mut self, wall: i64) -> Vec<TickWork> {
        let mut work = Vec::new();
        let mut engines = lock(&self.shared);
        for (key, part) in engines.iter_mut() {
            let (topic, partition) = key;
            let (high, unread) = cached_lag(
                &*self.io.consumer,
                &self.io.consumer.context().watermarks,
                topic,
                *partition,
                wall,
            );
            let lag = part.clock.lag(high, unread, wall);
            let mut out = Vec::new();
            part.clock.step_lag(lag, wall, &self.cfg.group_id, &mut out);
            self.io
                .metrics
                .lag_seconds
                .with_label_values(&[&**topic, &partition.to_string()])
                .set(lag.behind_ms / 1000);
            part.engine
                .advance(part.clock.watermark(lag, wall), &mut out);
            // a checkpoint per `[state] interval`, at the last offset consumed
            let due = self
                .cfg
                .state
                .as_ref()
                .is_some_and(|s| wall - part.ckpt.at >= millis(s.interval));
            let ckpt = if due {
                take_checkpoint(key, part)
            } else {
                None
            };
            if !out.is_empty() || ckpt.is_some() {
                work.push((key.clone(), out, ckpt));
            }
        }
        work
    }

    /// Sends every partition's unstored offset to the committer.
    pub async fn flush_unstored(&mut self) -> Result<(), StageError> {
        for f in self.unstored.drain() {
            self.commit_behind(f).await?;
        }
        Ok(())
    }

    /// Drops the engines of partitions revoked since the last turn, and their unstored
    /// offsets (the new owner reads again from the last commit: at least once).
    fn drop_revoked(&mut self) {
        for k in drop_revoked(
            &self.io.consumer,
            &mut lock(&self.shared),
            &self.cfg.group_id,
            &mut self.alerts,
        ) {
            self.unstored.forget(&k);
        }
    }

    /// The shared name of an input topic (a new one only for a topic not configured).
    fn topic_arc(&mut self, topic: &str) -> Arc<str> {
        if let Some(t) = self.topics.iter().find(|t| &***t == topic) {
            return t.clone();
        }
        let t: Arc<str> = Arc::from(topic);
        self.topics.push(t.clone());
        t
    }

    /// Makes sure the partition has its part: restored from its latest checkpoint when a state
    /// topic is configured, else fresh. An engine for the inventory's input topic then expects
    /// the inventory's series of its partition (from wall time). The per-series alerts a
    /// restored checkpoint still has firing are told to Alertmanager again.
    async fn ensure_part(&mut self, key: PartKey) -> Result<(), StageError> {
        if lock(&self.shared).contains_key(&key) {
            return Ok(());
        }
        let (topic, partition) = key.clone();
        let started = std::time::Instant::now();
        let (mut engine, marker) =
            checkpoint::restore(self.cfg, &self.io.model, &topic, partition).await?;
        engine.set_scope(&format!("{topic}/{partition}"));
        let mut clock = PartitionClock::new(self.clock_cfg, topic.clone(), partition);
        let mut firing = Vec::new();
        if let Some(m) = &marker {
            clock.consumed(m.offset, None, None);
            engine.firing(&mut firing);
            tracing::info!(
                "{topic}/{partition}: restored checkpoint epoch {} (offset {}, {} series, \
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
        if self.cfg.inventory_input() == Some(&*topic) {
            let at = wall_ms();
            for s in self
                .expected
                .get(&partition)
                .into_iter()
                .flat_map(|m| m.values())
            {
                engine.expect(&s.name, s.labels.as_slice(), at, &mut self.alerts);
            }
        }
        lock(&self.shared).insert(
            key,
            Part {
                engine,
                clock,
                ckpt,
            },
        );
        // Alertmanager ends an alert that is not re-sent within 4 resend intervals, and the
        // instance that sent it before may be gone
        if let Some(am) = &self.io.am {
            for a in &firing {
                am.try_push_scoped(a, Some((&topic, partition)));
            }
        }
        Ok(())
    }

    /// Produces the alerts collected outside any message (inventory, revocations), behind no
    /// offset.
    async fn send_pending_alerts(&mut self, scope: Option<(&str, i32)>) -> Result<(), StageError> {
        if self.alerts.is_empty() {
            return Ok(());
        }
        let mut alerts = std::mem::take(&mut self.alerts);
        let deliveries = self.send_alerts(&mut alerts, scope).await;
        self.alerts = alerts;
        self.commit_behind(InFlight {
            topic: Arc::from(""),
            partition: -1,
            offset: None,
            store: false,
            messages: 0,
            deliveries,
        })
        .await
    }

    /// Encodes and enqueues `alerts` (drained), returning their delivery futures; hands each
    /// to the Alertmanager forwarder too, if any (never waits), tagged with the partition
    /// `scope`.
    async fn send_alerts(
        &mut self,
        alerts: &mut Vec<Alert>,
        scope: Option<(&str, i32)>,
    ) -> Vec<Pending> {
        let mut deliveries = Vec::with_capacity(alerts.len());
        let topic: Arc<str> = Arc::from(self.cfg.alert_topic.as_str());
        for a in alerts.drain(..) {
            self.summary.alerts += 1;
            self.io.metrics.alert(a.kind, a.state);
            if let Some(am) = &self.io.am {
                am.try_push_scoped(&a, scope);
            }
            let mut record = Record::alert(topic.clone(), a, self.cfg.alert_format);
            let to = Refusals {
                dead_letter: self.cfg.dead_letter_topic.as_deref(),
                metrics: &self.io.metrics,
            };
            if let Some(fut) = enqueue(&self.io.producer, &mut record, &to, &mut self.log).await {
                deliveries.push(Pending { fut, record });
            }
        }
        deliveries
    }

    /// A consumer error: counted, logged rate-limited; librdkafka recovers by itself.
    pub fn consume_error(&mut self, key: &'static str, e: &rdkafka::error::KafkaError) {
        self.io.metrics.consume_errors.inc();
        let kind = super::client_errors::kind(e, "");
        if kind != "other" {
            self.io
                .metrics
                .kafka_client_errors
                .with_label_values(&[kind])
                .inc();
        }
        self.log.log(key, || e.to_string());
    }

    /// Ends the stage: its channel to the committer closes (the committer drains what is in
    /// it and stops); returns what the stage counted.
    pub fn finish(self) -> RunSummary {
        self.summary
    }

    /// Hands `f` to the committer (waits while its channel is full).
    pub async fn commit_behind(&self, f: InFlight<Pending>) -> Result<(), StageError> {
        self.io
            .tx
            .send(f)
            .await
            .map_err(|_| StageError::CommitterStopped)
    }

    /// Graceful shutdown, first step: a checkpoint of every partition, behind every record
    /// produced so far.
    pub async fn checkpoint_all(&mut self) {
        let Some(state) = &self.cfg.state else { return };
        let writes: Vec<CheckpointWrite> = lock(&self.shared)
            .iter_mut()
            .filter_map(|(key, part)| take_checkpoint(key, part))
            .collect();
        for w in writes {
            let to = Refusals {
                dead_letter: None,
                metrics: &self.io.metrics,
            };
            let f = send_checkpoint(&self.io.producer, &state.topic, w, &to, &mut self.log).await;
            self.io.metrics.checkpoints.inc();
            if self.io.tx.send(f).await.is_err() {
                break;
            }
        }
    }
}

/// Enqueues a checkpoint's records (chunks, then marker) to the state topic and returns the
/// in-flight item that stores the input offset once all of it is acknowledged.
async fn send_checkpoint(
    producer: &AlertProducer,
    state_topic: &str,
    w: CheckpointWrite,
    to: &Refusals<'_>,
    log: &mut RateLimitedLog,
) -> InFlight<Pending> {
    let topic: Arc<str> = Arc::from(state_topic);
    let mut deliveries = Vec::new();
    for (k, v) in w.records {
        let mut record = Record::new(topic.clone(), Some(w.key.1), k, v);
        record.keep = true;
        if let Some(fut) = enqueue(producer, &mut record, to, log).await {
            deliveries.push(Pending { fut, record });
        }
    }
    InFlight {
        topic: w.key.0,
        partition: w.key.1,
        offset: Some(w.offset),
        store: true,
        messages: 1,
        deliveries,
    }
}

/// Drops the engines of partitions revoked since the last call; a `pipeline_lag` firing on
/// one is resolved (pushed to `alerts`), since this instance no longer reads the partition.
fn drop_revoked(
    consumer: &DeadairConsumer,
    engines: &mut Engines,
    group: &str,
    alerts: &mut Vec<Alert>,
) -> Vec<PartKey> {
    let mut dropped = Vec::new();
    for (t, p) in consumer.context().take_revoked() {
        let key = (Arc::from(t.as_str()), p);
        if let Some(mut part) = engines.remove(&key) {
            part.clock.revoked(wall_ms(), group, alerts);
        }
        dropped.push(key);
    }
    dropped
}

/// Gauges sampled once per heartbeat interval.
fn refresh_gauges(
    metrics: &Metrics,
    health: &Health,
    consumer: &DeadairConsumer,
    producer: &AlertProducer,
    engines: &Engines,
) {
    let now = wall_ms();
    health.last_loop_ms.store(now, Ordering::Relaxed);
    if consumer.assignment().is_ok_and(|a| a.count() > 0) || !engines.is_empty() {
        health.ready.store(true, Ordering::Relaxed);
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
    if let Some(oldest) = engines.values().filter_map(|p| p.engine.now()).min() {
        metrics.watermark_delay.set((now - oldest) / 1000);
    }
    metrics.refresh_memory();
}
