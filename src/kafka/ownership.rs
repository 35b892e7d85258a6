//! Which partitions this member owns, and what happens when they move (rebalance).
//!
//! - [`Ownership`] (pure): a partition is owned from its assignment until its revocation
//!   starts; a message still queued from a partition that has moved away is skipped, not
//!   processed by a resurrected engine beside its new owner's. Revoked partitions are queued
//!   for the stage, which drops their engines.
//! - [`LagContext`]: the consumer's librdkafka context. It keeps the ownership, the cached
//!   lag ([`Watermarks`]) and, on revocation, runs the [`RevokeHook`] (with a state topic: the
//!   partition is checkpointed and committed before it moves) and tells Alertmanager's
//!   forwarder to forget the partition.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use super::producer::AlertProducer;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::statistics::Statistics;
use rdkafka::TopicPartitionList;

use super::fetch::FetchQueue;
use super::parts::{lock, take_checkpoint, Shared};
use super::produce::{encode_alert, send_blocking};
use super::watermarks::Watermarks;
use crate::alertmanager::Forwarder;
use crate::config::AlertFormat;
use crate::metrics::Metrics;
use crate::wallclock::wall_ms;

/// A partition by topic name and number.
pub type TopicPartition = (String, i32);

/// The partitions this member owns, and those revoked since the stage last asked.
#[derive(Debug, Default)]
pub struct Ownership {
    /// Owned partitions by topic (looked up per message without allocating).
    owned: HashMap<String, HashSet<i32>>,
    revoked: Vec<TopicPartition>,
}

impl Ownership {
    /// `parts` were assigned to this member.
    pub fn assigned(&mut self, parts: impl IntoIterator<Item = TopicPartition>) {
        for (t, p) in parts {
            self.owned.entry(t).or_default().insert(p);
        }
    }

    /// The revocation of `parts` starts: from now on their messages are skipped.
    pub fn revoking(&mut self, parts: &[TopicPartition]) {
        for (t, p) in parts {
            if let Some(ps) = self.owned.get_mut(t) {
                ps.remove(p);
            }
        }
    }

    /// The revocation of `parts` is done (checkpointed, if configured): the stage drops their
    /// engines on its next turn.
    pub fn revoked(&mut self, parts: Vec<TopicPartition>) {
        self.revoked.extend(parts);
    }

    /// Whether this member owns `partition` of `topic` now.
    pub fn owns(&self, topic: &str, partition: i32) -> bool {
        self.owned
            .get(topic)
            .is_some_and(|ps| ps.contains(&partition))
    }

    /// Partitions revoked since the last call.
    pub fn take_revoked(&mut self) -> Vec<TopicPartition> {
        std::mem::take(&mut self.revoked)
    }
}

/// The consumer's context (see the module docs).
pub struct LagContext {
    pub metrics: Arc<Metrics>,
    pub ownership: Mutex<Ownership>,
    pub watermarks: Watermarks,
    /// Set by the stage when a state topic is configured.
    pub hook: OnceLock<RevokeHook>,
    /// Set by the stage with `[alertmanager]`: told which partitions moved away.
    pub am: OnceLock<Forwarder>,
    /// The queue assigned partitions are read from in batches (`fetch.rs`); taken out (and so
    /// destroyed) before the consumer is.
    pub fetch: Mutex<Option<Arc<FetchQueue>>>,
}

pub type DeadairConsumer = rdkafka::consumer::StreamConsumer<LagContext>;

impl LagContext {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        LagContext {
            metrics,
            ownership: Mutex::new(Ownership::default()),
            watermarks: Watermarks::default(),
            hook: OnceLock::new(),
            am: OnceLock::new(),
            fetch: Mutex::new(None),
        }
    }

    /// The batch queue, if there is one.
    pub fn fetch_queue(&self) -> Option<Arc<FetchQueue>> {
        self.fetch.lock().ok().and_then(|f| f.clone())
    }

    /// Whether this member owns `partition` of `topic` now.
    pub fn owns(&self, topic: &str, partition: i32) -> bool {
        self.ownership
            .lock()
            .is_ok_and(|o| o.owns(topic, partition))
    }

    /// Partitions revoked since the last call.
    pub fn take_revoked(&self) -> Vec<TopicPartition> {
        self.ownership
            .lock()
            .map(|mut o| o.take_revoked())
            .unwrap_or_default()
    }
}

impl ClientContext for LagContext {
    fn error(&self, error: KafkaError, reason: &str) {
        // counted and logged where consumption sees it; here it only stops the wall clock
        let _ = (error, reason);
        self.watermarks.distrust(wall_ms());
    }

    fn stats(&self, stats: Statistics) {
        self.watermarks.statistics(&stats, &self.metrics, wall_ms());
    }
}

impl ConsumerContext for LagContext {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            if let Ok(mut o) = self.ownership.lock() {
                o.assigned(
                    tpl.elements()
                        .iter()
                        .map(|e| (e.topic().to_string(), e.partition())),
                );
            }
            if tpl.count() > 0 {
                tracing::info!("assigned {} at {}", tpl_text(tpl), wall_ms());
            }
        }
    }

    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let (Rebalance::Assign(tpl), Some(fetch)) = (rebalance, self.fetch_queue()) {
            // before their fetching starts: their messages go to the batch queue
            let rk = consumer.client().native_ptr();
            for e in tpl.elements() {
                if !fetch.adopt(rk, e.topic(), e.partition()) {
                    tracing::warn!(
                        "{}/{}: no fetch queue to read in batches; read one by one",
                        e.topic(),
                        e.partition()
                    );
                }
            }
        }
        if let Rebalance::Revoke(tpl) = rebalance {
            let list: Vec<TopicPartition> = tpl
                .elements()
                .iter()
                .map(|e| (e.topic().to_string(), e.partition()))
                .collect();
            if let Ok(mut o) = self.ownership.lock() {
                o.revoking(&list);
            }
            if tpl.count() > 0 {
                tracing::info!("revoking {} at {}", tpl_text(tpl), wall_ms());
            }
            // with a state topic: checkpoint first, so the next owner starts where we stopped
            if let Some(hook) = self.hook.get() {
                hook.revoke(consumer, &list);
            }
            if let Some(am) = self.am.get() {
                list.iter().for_each(|(t, p)| am.forget(t, *p));
            }
            if let Ok(mut o) = self.ownership.lock() {
                o.revoked(list);
            }
        }
    }
}

/// `topic/p, topic/q` for a rebalance log line.
fn tpl_text(tpl: &TopicPartitionList) -> String {
    let parts: Vec<String> = tpl
        .elements()
        .iter()
        .map(|e| format!("{}/{}", e.topic(), e.partition()))
        .collect();
    parts.join(", ")
}

/// What the rebalance callback needs to checkpoint a partition before it is revoked.
pub struct RevokeHook {
    pub shared: Shared,
    pub producer: AlertProducer,
    pub state_topic: String,
    pub group: String,
    pub alert_topic: String,
    pub alert_format: AlertFormat,
    pub metrics: Arc<Metrics>,
    pub am: Option<Forwarder>,
}

impl RevokeHook {
    /// Runs inside the rebalance callback (on librdkafka's poll, while the main loop holds no
    /// lock): each revoked partition's part is taken out, checkpointed, its lag alert
    /// resolved; once the producer has flushed every outstanding record (those alerts, every
    /// alert before them, the checkpoints), the checkpoints' offsets are committed, so the next
    /// owner restores exactly where this one stopped. On a flush timeout nothing is committed:
    /// the next owner then restores the previous checkpoint and replays (still no loss).
    fn revoke(&self, consumer: &BaseConsumer<LagContext>, revoked: &[TopicPartition]) {
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
            tracing::warn!("revocation: checkpoints not acknowledged within 10 s; the next owner replays from the previous one");
            return;
        }
        let mut tpl = TopicPartitionList::new();
        for w in &writes {
            let _ =
                tpl.add_partition_offset(&w.key.0, w.key.1, rdkafka::Offset::Offset(w.offset + 1));
        }
        match consumer.commit(&tpl, CommitMode::Sync) {
            Ok(()) => tracing::info!(
                "revocation: checkpointed and committed {} partition(s) before handing them over",
                writes.len()
            ),
            Err(e) => tracing::warn!("revocation: commit failed ({e}); the next owner replays from the previous checkpoint"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(t: &str, p: i32) -> TopicPartition {
        (t.to_string(), p)
    }

    #[test]
    fn a_partition_is_owned_from_assignment_until_its_revocation_starts() {
        let mut o = Ownership::default();
        assert!(!o.owns("m", 0), "nothing before an assignment");
        o.assigned([tp("m", 0), tp("m", 1)]);
        assert!(o.owns("m", 0) && o.owns("m", 1));
        assert!(!o.owns("n", 0), "another topic's partition 0 is not ours");
        // the revocation starts: a message still queued from partition 1 is skipped at once,
        // but the stage drops its engine only once the revocation is done (checkpointed)
        o.revoking(&[tp("m", 1)]);
        assert!(!o.owns("m", 1));
        assert!(o.take_revoked().is_empty());
        o.revoked(vec![tp("m", 1)]);
        assert_eq!(o.take_revoked(), vec![tp("m", 1)]);
        assert!(o.take_revoked().is_empty(), "reported once");
        assert!(o.owns("m", 0), "the partition kept is still ours");
        // it comes back in a later rebalance
        o.assigned([tp("m", 1)]);
        assert!(o.owns("m", 1));
    }
}
