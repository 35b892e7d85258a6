//! The committer: awaits deliveries in consumption order and stores each message's offset only
//! once every record it caused (its alerts, its dead letter, a checkpoint) is acknowledged.
//!
//! ```text
//! stage ──InFlight(offset, deliveries)──▶ bounded channel ──▶ committer: deliver all, then store
//! ```
//!
//! The order of the channel is the order of consumption, so an offset is stored only after
//! every earlier message's records are delivered too. A failed delivery is sent again,
//! unchanged, until it succeeds (delay is fine, data loss is not). The channel is bounded
//! (`max_in_flight`), so a slow broker pauses fetching instead of growing memory.
//!
//! The loop is written against [`Sink`] so its ordering can be tested without a broker.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::producer::AlertProducer;
use rdkafka::consumer::Consumer;
use tokio::sync::mpsc;

use super::ownership::DeadairConsumer;
use super::produce::{after_refusal, enqueue, refused_for_good, Pending, Refusals};
use crate::metrics::Metrics;
use crate::ratelog::RateLimitedLog;

/// One consumed message (or a clock tick, or a checkpoint) whose records are being delivered.
pub(crate) struct InFlight<P> {
    pub topic: Arc<str>,
    pub partition: i32,
    /// `None` for records no message caused (clock ticks): nothing to store behind them.
    pub offset: Option<i64>,
    /// Whether the offset may be stored once delivered: always without a state topic; with
    /// one, only for checkpoints (the committed offset is always a checkpoint's offset).
    pub store: bool,
    /// What storing the offset counts in `deadair_offsets_stored_total`: the messages it
    /// covers (several when messages that caused nothing were held back by the stage), or one
    /// checkpoint.
    pub messages: u64,
    pub deliveries: Vec<P>,
}

/// What the committer delivers to and stores offsets in.
pub(crate) trait Sink {
    /// One record being delivered.
    type Pending: Send;
    /// Waits until `p` is acknowledged, sending it again after each failure; returns the
    /// number of failed attempts.
    fn deliver(&mut self, p: Self::Pending) -> impl Future<Output = u64> + Send;
    /// Stores `offset` of `topic/partition` for the group, covering `messages` messages;
    /// false if it could not be stored (e.g. the partition moved away meanwhile: its new owner
    /// re-reads from the last commit).
    fn store(&mut self, topic: &str, partition: i32, offset: i64, messages: u64) -> bool;
}

/// Offsets of messages that caused no record, held back per partition (without a state
/// topic): such a message needs no wait, so instead of one hop to the committer each, the
/// newest offset of the partition is sent on the next clock tick, or is covered by the next
/// message of the partition that sends its own (it is stored after, and so covers, every
/// earlier one).
#[derive(Debug, Default)]
pub(crate) struct Unstored(HashMap<(Arc<str>, i32), (i64, u64)>);

impl Unstored {
    /// `messages` messages up to the one at `offset` caused no record.
    pub fn hold(&mut self, topic: Arc<str>, partition: i32, offset: i64, messages: u64) {
        let held = self.0.entry((topic, partition)).or_insert((offset, 0));
        *held = (offset, held.1 + messages);
    }

    /// A later message of the partition sends its offset: the held messages it covers.
    pub fn covered(&mut self, topic: &Arc<str>, partition: i32) -> u64 {
        self.0
            .remove(&(topic.clone(), partition))
            .map_or(0, |(_, n)| n)
    }

    /// The partition moved away: its new owner reads again from the last commit.
    pub fn forget(&mut self, key: &(Arc<str>, i32)) {
        self.0.remove(key);
    }

    /// Every held offset, each to be stored with no record to wait for.
    pub fn drain<P>(&mut self) -> Vec<InFlight<P>> {
        self.0
            .drain()
            .map(|((topic, partition), (offset, messages))| InFlight {
                topic,
                partition,
                offset: Some(offset),
                store: true,
                messages,
                deliveries: Vec::new(),
            })
            .collect()
    }
}

/// Runs until the channel closes; returns (offsets stored, delivery retries).
pub(crate) async fn run<S: Sink>(
    mut rx: mpsc::Receiver<InFlight<S::Pending>>,
    mut sink: S,
) -> (u64, u64) {
    let (mut stored, mut retries) = (0u64, 0u64);
    while let Some(f) = rx.recv().await {
        for p in f.deliveries {
            retries += sink.deliver(p).await;
        }
        let Some(offset) = f.offset.filter(|_| f.store) else {
            continue;
        };
        if sink.store(&f.topic, f.partition, offset, f.messages) {
            stored += f.messages;
        }
    }
    (stored, retries)
}

/// The real sink: librdkafka delivery futures, re-sent through the producer; offsets stored in
/// the group consumer (auto-commit then commits what was stored).
pub(crate) struct KafkaSink {
    pub consumer: Arc<DeadairConsumer>,
    pub producer: AlertProducer,
    pub metrics: Arc<Metrics>,
    pub log: RateLimitedLog,
    /// Where a record refused for good goes (`dead_letter_topic`).
    pub dead_letter: Option<String>,
}

impl Sink for KafkaSink {
    type Pending = Pending;

    async fn deliver(&mut self, p: Pending) -> u64 {
        let Pending {
            mut fut,
            mut record,
        } = p;
        let mut retries = 0;
        let to = Refusals {
            dead_letter: self.dead_letter.as_deref(),
            metrics: &self.metrics,
        };
        loop {
            let failure = match fut.await {
                Ok(Ok(_)) => return retries,
                // refused for good by the broker (too large, invalid): shrunk, diverted or
                // dropped, never sent again unchanged
                Ok(Err((e, _))) if refused_for_good(&e) => {
                    if !after_refusal(&mut record, &e, &to, &mut self.log) {
                        return retries;
                    }
                    None
                }
                Ok(Err((e, _))) => Some(format!("not delivered: {e}")),
                Err(_) => Some("delivery canceled".to_string()),
            };
            if let Some(failure) = failure {
                retries += 1;
                self.metrics.delivery_errors.inc();
                let (topic, key) = (&record.topic, record.key_text());
                self.log.log("delivery error", || {
                    format!("{topic} record {key}: {failure}; sending again")
                });
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            match enqueue(&self.producer, &mut record, &to, &mut self.log).await {
                Some(f) => fut = f,
                None => return retries,
            }
        }
    }

    fn store(&mut self, topic: &str, partition: i32, offset: i64, messages: u64) -> bool {
        match self.consumer.store_offset(topic, partition, offset) {
            Ok(()) => {
                self.metrics.offsets_stored.inc_by(messages);
                true
            }
            Err(e) => {
                self.log.log("offset store", || {
                    format!("{topic}/{partition} offset {offset}: {e}")
                });
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use tokio::sync::oneshot;

    use super::*;

    /// Deliveries complete when the test says so, after the failures it names.
    struct FakeSink {
        stored: Arc<Mutex<Vec<(String, i32, i64)>>>,
        /// Partitions whose offsets cannot be stored (moved away).
        refused: Vec<i32>,
    }

    impl Sink for FakeSink {
        type Pending = oneshot::Receiver<u64>;

        async fn deliver(&mut self, p: oneshot::Receiver<u64>) -> u64 {
            p.await.unwrap_or(0)
        }

        fn store(&mut self, topic: &str, partition: i32, offset: i64, _messages: u64) -> bool {
            if self.refused.contains(&partition) {
                return false;
            }
            self.stored
                .lock()
                .unwrap()
                .push((topic.to_string(), partition, offset));
            true
        }
    }

    fn msg(
        partition: i32,
        offset: i64,
        deliveries: Vec<oneshot::Receiver<u64>>,
    ) -> InFlight<oneshot::Receiver<u64>> {
        InFlight {
            topic: Arc::from("m"),
            partition,
            offset: Some(offset),
            store: true,
            messages: 1,
            deliveries,
        }
    }

    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn offsets_are_stored_in_consumption_order_only_behind_delivered_records() {
        let stored = Arc::new(Mutex::new(Vec::new()));
        let sink = FakeSink {
            stored: stored.clone(),
            refused: vec![],
        };
        let (tx, rx) = mpsc::channel(8);
        let committer = tokio::spawn(run(rx, sink));
        let (a_done, a) = oneshot::channel();
        let (b_done, b) = oneshot::channel();
        let (c_done, c) = oneshot::channel();
        // message 10 caused two alerts (a, b); message 11 caused one (c)
        tx.send(msg(0, 10, vec![a, b])).await.unwrap();
        tx.send(msg(0, 11, vec![c])).await.unwrap();
        // the later message's alert is acknowledged first, then one of the earlier two
        c_done.send(0).unwrap();
        b_done.send(0).unwrap();
        settle().await;
        assert!(
            stored.lock().unwrap().is_empty(),
            "nothing is stored while an earlier record is unacknowledged"
        );
        // the first alert is acknowledged after two failed attempts
        a_done.send(2).unwrap();
        settle().await;
        assert_eq!(
            *stored.lock().unwrap(),
            vec![("m".to_string(), 0, 10), ("m".to_string(), 0, 11)]
        );
        drop(tx);
        assert_eq!(committer.await.unwrap(), (2, 2));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn ticks_and_unstorable_offsets_store_nothing() {
        let stored = Arc::new(Mutex::new(Vec::new()));
        let sink = FakeSink {
            stored: stored.clone(),
            refused: vec![3],
        };
        let (tx, rx) = mpsc::channel(8);
        let committer = tokio::spawn(run(rx, sink));
        // a clock tick's alerts: delivered, no offset behind them
        let (t_done, t) = oneshot::channel();
        t_done.send(0).unwrap();
        tx.send(InFlight {
            topic: Arc::from("m"),
            partition: 0,
            offset: None,
            store: true,
            messages: 0,
            deliveries: vec![t],
        })
        .await
        .unwrap();
        // with a state topic, a message's offset waits for a checkpoint (store = false)
        tx.send(InFlight {
            store: false,
            ..msg(0, 5, vec![])
        })
        .await
        .unwrap();
        // a partition that moved away meanwhile
        tx.send(msg(3, 7, vec![])).await.unwrap();
        // a checkpoint of partition 0 at offset 5
        tx.send(msg(0, 5, vec![])).await.unwrap();
        drop(tx);
        assert_eq!(committer.await.unwrap(), (1, 0));
        assert_eq!(*stored.lock().unwrap(), vec![("m".to_string(), 0, 5)]);
    }

    #[test]
    fn held_offsets_are_sent_once_or_covered() {
        let t: Arc<str> = Arc::from("m");
        let mut u = Unstored::default();
        for o in 10..13 {
            u.hold(t.clone(), 0, o, 1);
        }
        u.hold(t.clone(), 1, 4, 5); // a run of five messages
        let mut sent: Vec<(i32, Option<i64>, u64)> = u
            .drain::<()>()
            .into_iter()
            .map(|f| (f.partition, f.offset, f.messages))
            .collect();
        sent.sort();
        assert_eq!(sent, [(0, Some(12), 3), (1, Some(4), 5)]);
        assert!(u.drain::<()>().is_empty(), "sent once");
        // a message that sends its own offset covers what was held
        u.hold(t.clone(), 0, 20, 1);
        u.hold(t.clone(), 0, 21, 1);
        assert_eq!(u.covered(&t, 0), 2);
        assert_eq!(u.covered(&t, 0), 0);
        assert!(u.drain::<()>().is_empty());
        // a revoked partition's held offset is dropped
        u.hold(t.clone(), 2, 7, 1);
        u.forget(&(t.clone(), 2));
        assert!(u.drain::<()>().is_empty());
    }
}
