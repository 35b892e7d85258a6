//! The stage's data path: the messages of one turn of the loop, decoded, fed to their
//! partitions' engines, their records produced and their offsets stored behind them.
//!
//! The loop hands over every message that is ready (up to [`MAX_BATCH`]), not one at a time:
//! a run of consecutive messages of one partition is checked for ownership once, decoded and
//! fed to its engine under one lock, its counters added once, and its last offset stored once
//! every record the run caused (alerts, dead letters) is acknowledged. Since a later offset
//! covers the earlier ones, this is the same at-least-once promise as storing each message's
//! offset behind its own records; with one-sample messages it saves the per-message
//! bookkeeping that cost more than the engine did.
//!
//! The engine sees what one message at a time would show it: each message's samples, then its
//! event clock advanced to the partition's watermark (its absences and their grouping by source
//! depend on when the clock passes them). A message whose samples borrow only the message
//! (native protobuf, deadair's own JSON) is held while the watermark stays where the engine's
//! clock is, so that consecutive messages reach the engine in one batch (which prefetches
//! their series' state); they are fed, in order, as soon as the clock would move, a lag check
//! may alert, another message's samples come, [`HOLD`] samples wait, or the run ends. Ingesting
//! samples reads nothing that changes between such messages: the engine clock stands still
//! and the partition clock is read only by the watermark.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use rdkafka::consumer::Consumer;
use rdkafka::message::Message;

use super::Stage;
use crate::clock::PartitionClock;
use crate::config::{Input, InputFormat};
use crate::decode::{
    append_json, append_proto_batch, decode_message, message_format, recycle, DecodeReason, Meta,
    SampleViews, Scratch,
};
use crate::engine::{Outcome, SampleRef};
use crate::kafka::committer::InFlight;
use crate::kafka::parts::{lock, Part};
use crate::kafka::produce::{dead_letter, enqueue, Pending, Record, Refusals};
use crate::kafka::watermarks::cached_lag;
use crate::kafka::{StageError, MAX_FUTURE_MS};

/// Most messages handed to [`Stage::on_messages`] in one turn of the loop: they are already in
/// librdkafka's queue (its fetch sizes bound them), so taking them in one go costs no memory;
/// the bound keeps the loop's timers and heartbeats on time.
pub const MAX_BATCH: usize = 1024;

/// Most samples held for the engine before they are fed (see the module docs).
const HOLD: usize = 1024;

/// Whether feeding would move `part`'s engine clock: its partition's event watermark is past
/// the engine's clock (an `advance` to it is not a no-op).
fn advances(part: &Part) -> bool {
    let now = part.engine.now().unwrap_or(i64::MIN);
    part.clock.event_watermark().is_some_and(|w| w > now)
}

/// The engine's view of one message's samples; kept between messages so that its allocation
/// is reused (see [`recycle`]).
pub(super) type Refs = Vec<SampleRef<'static, [(&'static str, &'static str)]>>;

/// The buffer of a message's samples, kept between runs so that its allocations are reused.
pub(super) type Spare = SampleViews<'static>;

/// A message's samples, as [`Stage::decode`] left them.
enum Decoded<'s> {
    /// In the reused buffer (or none).
    Appended,
    /// Its own views (they borrow the scratch buffers).
    Own(SampleViews<'s>),
}

/// What one run of messages added to the counters, added to the metrics once per run.
#[derive(Default)]
struct Counts {
    messages: u64,
    bytes: u64,
    samples: u64,
}

impl Stage<'_> {
    /// Messages of the input topics, in consumption order (see the module docs).
    pub async fn on_messages<M: Message>(&mut self, msgs: &[M]) -> Result<(), StageError> {
        self.drop_revoked();
        // consuming means assigned: ready (also checked on every heartbeat tick); the loop's
        // liveness is stamped by the clock tick
        self.io.health.ready.store(true, Ordering::Relaxed);
        let mut rest = msgs;
        while let Some(first) = rest.first() {
            let (topic, partition) = (first.topic(), first.partition());
            let len = rest
                .iter()
                .position(|m| m.partition() != partition || m.topic() != topic)
                .unwrap_or(rest.len());
            let (run, next) = rest.split_at(len);
            self.on_run(topic, partition, run).await?;
            rest = next;
        }
        Ok(())
    }

    /// Consecutive messages of one partition: ingested under one lock, their records
    /// produced, the last offset stored behind them.
    async fn on_run<M: Message>(
        &mut self,
        topic: &str,
        partition: i32,
        run: &[M],
    ) -> Result<(), StageError> {
        if !self.io.consumer.context().owns(topic, partition) {
            // fetched before its partition moved away: the new owner reads it from the
            // committed offset (restoring its engine here would process it twice)
            return Ok(());
        }
        let Some(last) = run.last().map(|m| m.offset()) else {
            return Ok(());
        };
        let key = self.topic_arc(topic);
        // the partition's engine (restored from its checkpoint on first use), before the lock
        self.ensure_part((key.clone(), partition)).await?;
        let mut dead = Vec::new();
        let mut counts = Counts::default();
        let shared = self.shared.clone();
        {
            let mut engines = lock(&shared);
            let Some(part) = engines.get_mut(&(key.clone(), partition)) else {
                // revoked (and checkpointed) since these were fetched: the new owner reads
                // them again from the committed offset
                return Ok(());
            };
            // the decoded samples borrow the scratch buffers, taken out of the stage meanwhile
            let mut scratch = std::mem::take(&mut self.scratch);
            let mut batch: SampleViews<'_> = std::mem::take(&mut self.spare).recycled();
            let at = (topic, partition);
            let input = self.cfg.input_of(topic);
            for msg in run {
                // read once: the lag check, the clock and the decoders use it
                let msg_ts = msg.timestamp().to_millis();
                counts.messages += 1;
                counts.bytes += msg.payload().map_or(0, |p| p.len() as u64);
                if !batch.is_empty() && self.lag_due(&part.clock, msg_ts) {
                    // the lag check below may alert: the held samples are ingested first
                    self.feed_held(part, &mut batch);
                }
                let start = batch.len();
                let (decoded, letter) =
                    self.decode((topic, input), msg, msg_ts, &mut scratch, &mut batch);
                dead.extend(letter);
                match decoded {
                    Decoded::Appended => {
                        counts.samples += (batch.len() - start) as u64;
                        self.consumed(&mut part.clock, at, (msg, msg_ts), batch.newest_from(start));
                        // held while the clock stays (see the module docs)
                        if batch.len() >= HOLD || advances(part) {
                            self.feed_held(part, &mut batch);
                        }
                    }
                    Decoded::Own(own) => {
                        self.feed_held(part, &mut batch);
                        counts.samples += own.len() as u64;
                        self.consumed(&mut part.clock, at, (msg, msg_ts), own.newest());
                        self.feed(part, &own);
                        // their allocations serve the next message's views
                        let spare = own.recycled();
                        scratch.reuse(spare);
                    }
                }
            }
            self.feed_held(part, &mut batch);
            self.spare = batch.recycled();
            self.scratch = scratch;
        }
        self.count(&counts);
        let mut alerts = std::mem::take(&mut self.alerts);
        let mut deliveries = self.send_alerts(&mut alerts, Some((&key, partition))).await;
        self.alerts = alerts;
        for mut record in dead {
            // its offset is stored only once the copy is acknowledged, like an alert
            self.io.metrics.dead_letters.inc();
            let to = Refusals {
                dead_letter: self.cfg.dead_letter_topic.as_deref(),
                metrics: &self.io.metrics,
            };
            if let Some(fut) = enqueue(&self.io.producer, &mut record, &to, &mut self.log).await {
                deliveries.push(Pending { fut, record });
            }
        }
        self.behind(key, partition, last, counts.messages, deliveries)
            .await
    }

    fn count(&mut self, c: &Counts) {
        self.summary.messages += c.messages;
        self.summary.samples += c.samples;
        self.io.metrics.messages.inc_by(c.messages);
        self.io.metrics.bytes.inc_by(c.bytes);
        self.io.metrics.samples.inc_by(c.samples);
    }

    /// Hands a run's records to the committer, with its last offset to store once they are
    /// acknowledged; a run with no record only updates its partition's unstored offset.
    async fn behind(
        &mut self,
        topic: Arc<str>,
        partition: i32,
        offset: i64,
        messages: u64,
        deliveries: Vec<Pending>,
    ) -> Result<(), StageError> {
        let store = self.cfg.state.is_none();
        if deliveries.is_empty() {
            // with a state topic the committed offset is a checkpoint's: nothing to do
            if store {
                self.unstored.hold(topic, partition, offset, messages);
            }
            return Ok(());
        }
        // this offset covers the partition's held ones (the committer keeps the order)
        let covered = match store {
            true => self.unstored.covered(&topic, partition),
            false => 0,
        };
        self.commit_behind(InFlight {
            topic,
            partition,
            offset: Some(offset),
            store,
            messages: if store { covered + messages } else { 0 },
            deliveries,
        })
        .await
    }

    /// The message's samples (none if it cannot be decoded, then counted, logged and, with a
    /// dead-letter topic, copied there), without those stamped beyond the future horizon:
    /// native protobuf is appended to `batch`, a buffer reused from message to message (its
    /// views borrow only the message); the other formats are returned on their own (their
    /// views borrow the scratch buffers).
    fn decode<'s, 'm: 's>(
        &mut self,
        (topic, input): (&str, Option<&Input>),
        msg: &'m impl Message,
        msg_ts: Option<i64>,
        scratch: &'s mut Scratch,
        batch: &mut SampleViews<'m>,
    ) -> (Decoded<'s>, Option<Record>) {
        let (partition, offset) = (msg.partition(), msg.offset());
        let payload = msg.payload().unwrap_or(&[]);
        let start = batch.len();
        let decoded = match input {
            Some(input) => {
                let meta = meta(msg, msg_ts, input.autodetect);
                match message_format(input, meta, scratch) {
                    InputFormat::Proto => append_proto_batch(payload, batch).map(|()| None),
                    InputFormat::Json if append_json(payload, scratch, batch) => Ok(None),
                    _ => decode_message(input, meta, payload, scratch).map(Some),
                }
            }
            None => Ok(None),
        };
        let mut dead = None;
        let mut decoded = decoded.unwrap_or_else(|e| {
            self.summary.decode_errors += 1;
            self.io
                .metrics
                .decode_errors
                .with_label_values(&[e.reason.as_str()])
                .inc();
            self.log.log(decode_log_key(e.reason), || {
                format!(
                    "{topic}/{partition}@{offset}: {} ({})",
                    e.reason.as_str(),
                    e.detail
                )
            });
            dead = self
                .cfg
                .dead_letter_topic
                .as_deref()
                .map(|t| dead_letter(msg, t, &e));
            None
        });
        // a timestamp far in the future would drag the partition clock with it
        let horizon = self.wall.saturating_add(MAX_FUTURE_MS);
        let dropped = match &mut decoded {
            Some(own) => own.retain_from(0, |smp| smp.timestamp <= horizon),
            None => batch.retain_from(start, |smp| smp.timestamp <= horizon),
        };
        if dropped > 0 {
            self.io
                .metrics
                .samples_dropped
                .with_label_values(&["future"])
                .inc_by(dropped as u64);
            self.log.log("future timestamps", || {
                format!("{topic}/{partition}@{offset}: {dropped} samples more than 1h ahead of wall time dropped")
            });
        }
        let decoded = match decoded {
            Some(own) => Decoded::Own(own),
            None => Decoded::Appended,
        };
        (decoded, dead)
    }

    /// Feeds the held samples, if any, and empties `held` (see the module docs).
    fn feed_held(&mut self, part: &mut Part, held: &mut SampleViews<'_>) {
        if !held.is_empty() {
            self.feed(part, held);
            held.clear();
        }
    }

    /// Under the lock: feeds `batch` to its partition's engine and advances the engine to the
    /// partition's event clock.
    fn feed(&mut self, part: &mut Part, batch: &SampleViews<'_>) {
        let Part { engine, clock, .. } = part;
        if !batch.is_empty() {
            // timed when it is a batch, else one in 64 (reading the clock twice per sample
            // would cost more than its ingest)
            self.fed += 1;
            let timed = batch.len() >= 8 || self.fed % 64 == 0;
            let started = timed.then(std::time::Instant::now);
            let mut refs: Vec<SampleRef<'_, _>> = recycle(std::mem::take(&mut self.refs));
            refs.extend(batch.refs());
            engine.ingest_batch(&refs, &mut self.alerts, &mut self.outcomes);
            self.refs = recycle(refs);
            if let Some(t) = started {
                self.io
                    .metrics
                    .engine_batch
                    .observe(t.elapsed().as_secs_f64());
            }
            for o in self.outcomes.drain(..) {
                let reason = match o {
                    Outcome::Accepted(_) => continue,
                    Outcome::Late => "late",
                    Outcome::NonFinite => "non_finite",
                    Outcome::Unmatched => "unmatched",
                    Outcome::Refused => "cardinality",
                };
                self.io
                    .metrics
                    .samples_dropped
                    .with_label_values(&[reason])
                    .inc();
            }
        }
        // event time only here; wall time joins on the clock tick when caught up
        if let Some(w) = clock.event_watermark() {
            engine.advance(w, &mut self.alerts);
        }
    }

    /// Whether [`Stage::consumed`] would check the partition's lag for a message of Kafka
    /// timestamp `msg_ts` (and so may alert).
    fn lag_due(&self, clock: &PartitionClock, msg_ts: Option<i64>) -> bool {
        !clock.lag_firing() && msg_ts.is_some_and(|t| self.wall - t > self.clock_cfg.lag_threshold)
    }

    /// Records a consumed message in its partition's clock. A backlog can be consumed between
    /// two ticks: a message older than the lag threshold reports the lag now (each message, as
    /// the run's last one may be recent).
    fn consumed(
        &mut self,
        clock: &mut PartitionClock,
        (topic, partition): (&str, i32),
        (msg, msg_ts): (&impl Message, Option<i64>),
        newest: Option<i64>,
    ) {
        let due = self.lag_due(clock, msg_ts);
        clock.consumed(msg.offset(), msg_ts, newest);
        let wall = self.wall;
        if due {
            let marks = &self.io.consumer.context().watermarks;
            let (high, unread) = cached_lag(&*self.io.consumer, marks, topic, partition, wall);
            let lag = clock.lag(high, unread, wall);
            clock.step_lag(lag, wall, &self.cfg.group_id, &mut self.alerts);
        }
    }
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

/// What the decoders may use of a message besides its payload: its `content-type` and
/// `content-encoding` headers (names compared case-insensitively) and its timestamp (`msg_ts`,
/// as read once per message).
fn meta<'a>(msg: &'a impl Message, msg_ts: Option<i64>, headers: bool) -> Meta<'a> {
    use rdkafka::message::Headers;
    let mut meta = Meta {
        timestamp: msg_ts,
        ..Meta::default()
    };
    if !headers {
        return meta; // nothing reads them (`autodetect = false`): not parsed
    }
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
