//! The two clocks of a partition: event time, and wall time while caught up.
//!
//! Each partition engine runs on a watermark: "every sample with an event time at or before it
//! has been seen". It comes from two sources:
//!
//! - **event time**: the newest event time consumed on the partition, minus `allowed_lateness`,
//!   minus 1 ms (samples at the newest instant may still be in the next message);
//! - **wall time**, only while the partition is **caught up** (the consumer's position equals the
//!   broker's high watermark: nothing is waiting to be read): `wall - ingest_delay`. This is what
//!   lets deadair notice a source, or a whole partition, that stopped sending altogether.
//!
//! While the consumer is behind (a backlog after a restart or an outage, a rebalance, a slow
//! broker) or does not yet know how far behind it is, wall time is ignored: no absence can fire
//! because deadair itself is late. Instead, lag beyond `lag_threshold` raises one `pipeline_lag`
//! alert per partition (seconds behind = wall time minus the Kafka timestamp of the message being
//! processed), resolved once the lag is back under the threshold.
//!
//! ```text
//! watermark = max(newest_event - allowed_lateness - 1ms,  wall - ingest_delay  if caught up)
//! ```
//!
//! Plain synchronous code driven with explicit times; the Kafka stage calls it.

use std::sync::Arc;

use crate::alert::{AbsenceState, Alert, AlertKind, AlertStatus, Transition};
use crate::time::format_duration;

/// Clock settings (from the run config).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockConfig {
    /// How far the event-time watermark trails the newest event time, ms.
    pub allowed_lateness: i64,
    /// How far the wall-time watermark trails wall time while caught up, ms.
    pub ingest_delay: i64,
    /// Lag (seconds behind, as ms) beyond which `pipeline_lag` fires.
    pub lag_threshold: i64,
}

/// One partition's clock and its `pipeline_lag` alert.
#[derive(Clone, Debug)]
pub struct PartitionClock {
    cfg: ClockConfig,
    topic: Arc<str>,
    partition: i32,
    /// Newest event time consumed, ms (`i64::MIN` before the first sample).
    newest_event: i64,
    /// Kafka timestamp of the last consumed message, ms (`i64::MIN` if unknown).
    last_message_ts: i64,
    /// Offset of the last consumed message (-1 before the first).
    last_offset: i64,
    /// Wall ms when the partition was last seen caught up (`i64::MIN`: never).
    caught_up_at: i64,
    lag: AbsenceState,
}

/// How far behind the consumer is, as the Kafka stage measured it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lag {
    /// Messages between the consumer's position and the high watermark (`None`: unknown).
    pub messages: Option<i64>,
    /// Wall time minus the Kafka timestamp of the last consumed message, ms (0 when caught up).
    pub behind_ms: i64,
}

impl PartitionClock {
    pub fn new(cfg: ClockConfig, topic: Arc<str>, partition: i32) -> Self {
        Self {
            cfg,
            topic,
            partition,
            newest_event: i64::MIN,
            last_message_ts: i64::MIN,
            last_offset: -1,
            caught_up_at: i64::MIN,
            lag: AbsenceState::default(),
        }
    }

    /// Records one consumed message: its offset, its Kafka timestamp (if any) and the newest
    /// event time among its samples (if any).
    pub fn consumed(&mut self, offset: i64, message_ts: Option<i64>, newest_event: Option<i64>) {
        self.last_offset = self.last_offset.max(offset);
        if let Some(t) = message_ts {
            self.last_message_ts = t;
        }
        if let Some(t) = newest_event {
            self.newest_event = self.newest_event.max(t);
        }
    }

    pub fn last_offset(&self) -> Option<i64> {
        (self.last_offset >= 0).then_some(self.last_offset)
    }

    /// The lag, given the broker's high watermark (`None` or negative: unknown) and wall time.
    ///
    /// Seconds behind count from the later of the last consumed message's timestamp and the
    /// last time the partition was seen caught up: on a sparse partition, a message that has
    /// just arrived and is not read yet is not minutes of lag.
    ///
    /// `unread` is used while nothing has been consumed on the partition since it was assigned
    /// (no offset of ours to compare): messages the broker holds beyond the group's committed
    /// position, as librdkafka's statistics report them (0 for an empty partition).
    pub fn lag(&mut self, high_watermark: Option<i64>, unread: Option<i64>, wall: i64) -> Lag {
        let messages = if self.last_offset < 0 {
            unread.filter(|&m| m >= 0)
        } else {
            high_watermark
                .filter(|&h| h >= 0)
                .map(|h| (h - (self.last_offset + 1)).max(0))
        };
        if messages == Some(0) {
            self.caught_up_at = wall;
        }
        let since = self.last_message_ts.max(self.caught_up_at);
        let behind_ms = match messages {
            Some(0) => 0,
            _ if since == i64::MIN => 0,
            _ => (wall - since).max(0),
        };
        Lag {
            messages,
            behind_ms,
        }
    }

    /// The event-time watermark alone (`None` before the first sample).
    pub fn event_watermark(&self) -> Option<i64> {
        (self.newest_event != i64::MIN).then(|| {
            self.newest_event
                .saturating_sub(self.cfg.allowed_lateness)
                .saturating_sub(1)
        })
    }

    /// The watermark to advance the engine to (see the module docs).
    pub fn watermark(&self, lag: Lag, wall: i64) -> i64 {
        let event = self.event_watermark().unwrap_or(i64::MIN);
        if lag.messages == Some(0) {
            event.max(wall.saturating_sub(self.cfg.ingest_delay))
        } else {
            event
        }
    }

    /// Steps the `pipeline_lag` alert with the current lag; pushes a firing or resolved event.
    pub fn step_lag(&mut self, lag: Lag, wall: i64, group: &str, out: &mut Vec<Alert>) {
        let lagging = lag.messages != Some(0) && lag.behind_ms > self.cfg.lag_threshold;
        let t = if lagging {
            self.lag.fire(wall)
        } else if lag.behind_ms <= self.cfg.lag_threshold {
            self.lag.resolve()
        } else {
            Transition::None
        };
        let state = match t {
            Transition::Fired => AlertStatus::Firing,
            Transition::Resolved => AlertStatus::Resolved,
            Transition::None => return,
        };
        out.push(self.lag_event(state, lag, wall, group));
    }

    pub fn lag_firing(&self) -> bool {
        self.lag.is_firing()
    }

    /// The partition was revoked from this instance: a firing `pipeline_lag` is resolved (its
    /// new owner reports its own lag).
    pub fn revoked(&mut self, wall: i64, group: &str, out: &mut Vec<Alert>) {
        if self.lag.resolve() == Transition::Resolved {
            let lag = Lag {
                messages: None,
                behind_ms: 0,
            };
            let mut a = self.lag_event(AlertStatus::Resolved, lag, wall, group);
            a.summary = format!(
                "deadair group {group}: {}/{} was revoked from this instance while lagging; its \
                 new owner reports its own lag",
                self.topic, self.partition
            );
            out.push(a);
        }
    }

    fn lag_event(&self, state: AlertStatus, lag: Lag, wall: i64, group: &str) -> Alert {
        let partition = self.partition.to_string();
        let labels = [
            ("group", group),
            ("partition", partition.as_str()),
            ("topic", &*self.topic),
        ];
        let id = crate::series::series_id("deadair_pipeline_lag", &labels);
        let messages = lag
            .messages
            .map_or_else(|| "an unknown number of".to_string(), |m| m.to_string());
        let summary = match state {
            AlertStatus::Firing => format!(
                "deadair group {group} is {} behind on {}/{} ({messages} messages); absence \
                 detection on this partition waits until it catches up",
                format_duration(lag.behind_ms),
                self.topic,
                self.partition
            ),
            AlertStatus::Resolved => format!(
                "deadair group {group} caught up on {}/{} after {}",
                self.topic,
                self.partition,
                format_duration(wall - self.lag.since)
            ),
        };
        Alert {
            alert_id: crate::alert::alert_id("deadair", AlertKind::PipelineLag, id),
            version: u64::from(self.lag.version),
            kind: AlertKind::PipelineLag,
            state,
            rule: Arc::from("deadair"),
            severity: Arc::from("warning"),
            name: "deadair_pipeline_lag".into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            annotations: vec![
                ("lag_seconds".into(), (lag.behind_ms / 1000).to_string()),
                ("lag_messages".into(), messages.clone()),
            ],
            event_time: wall,
            started_at: self.lag.since,
            emitted_at: wall,
            value: Some(lag.behind_ms as f64 / 1000.0),
            expected: None,
            lower: None,
            upper: None,
            score: 0.0,
            summary,
            series: id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000;

    fn clock() -> PartitionClock {
        PartitionClock::new(
            ClockConfig {
                allowed_lateness: 2 * S,
                ingest_delay: S,
                lag_threshold: 60 * S,
            },
            Arc::from("metrics"),
            3,
        )
    }

    #[test]
    fn wall_time_counts_only_while_caught_up() {
        let mut c = clock();
        let wall = 1_000_000 * S;
        assert_eq!(c.event_watermark(), None);
        c.consumed(41, Some(wall - 500 * S), Some(wall - 500 * S));
        assert_eq!(c.event_watermark(), Some(wall - 502 * S - 1));
        // high watermark 100: 58 messages behind, wall time ignored
        let lag = c.lag(Some(100), None, wall);
        assert_eq!(lag.messages, Some(58));
        assert_eq!(lag.behind_ms, 500 * S);
        assert_eq!(c.watermark(lag, wall), wall - 502 * S - 1);
        // unknown high watermark (just assigned): ignored too
        let lag = c.lag(None, None, wall);
        assert_eq!(lag.messages, None);
        assert_eq!(c.watermark(lag, wall), wall - 502 * S - 1);
        // caught up: wall time minus the ingest delay
        c.consumed(99, Some(wall - 500 * S), Some(wall - 500 * S));
        let lag = c.lag(Some(100), None, wall);
        assert_eq!(
            lag,
            Lag {
                messages: Some(0),
                behind_ms: 0
            }
        );
        assert_eq!(c.watermark(lag, wall), wall - S);
        // and the event clock still wins when it is ahead (a producer with a fast clock)
        c.consumed(100, None, Some(wall + 10 * S));
        let lag = c.lag(Some(101), None, wall);
        assert_eq!(c.watermark(lag, wall), wall + 8 * S - 1);
    }

    #[test]
    fn pipeline_lag_fires_once_and_resolves_when_caught_up() {
        let mut c = clock();
        let mut out = Vec::new();
        let wall = 1_000_000 * S;
        c.consumed(0, Some(wall - 600 * S), Some(wall - 600 * S));
        let lag = c.lag(Some(10_000), None, wall);
        c.step_lag(lag, wall, "g", &mut out);
        let lag = c.lag(Some(10_000), None, wall + S);
        c.step_lag(lag, wall + S, "g", &mut out);
        assert_eq!(out.len(), 1, "one firing per episode");
        let a = out[0].clone();
        assert_eq!(
            (a.kind, a.state, a.version),
            (AlertKind::PipelineLag, AlertStatus::Firing, 1)
        );
        assert!(a
            .annotations
            .contains(&("lag_messages".into(), "9999".into())));
        assert!(a
            .annotations
            .contains(&("lag_seconds".into(), "600".into())));
        assert!(
            a.summary.contains("10m behind on metrics/3"),
            "{}",
            a.summary
        );
        // still behind in messages but within the threshold: resolved
        c.consumed(9_000, Some(wall + 100 * S), Some(wall + 100 * S));
        let lag = c.lag(Some(10_000), None, wall + 130 * S);
        c.step_lag(lag, wall + 130 * S, "g", &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!((out[1].state, out[1].version), (AlertStatus::Resolved, 2));
        assert_eq!(out[1].alert_id, a.alert_id);
        // caught up, and a small lag never fires
        let lag = c.lag(Some(9_001), None, wall + 131 * S);
        c.step_lag(lag, wall + 131 * S, "g", &mut out);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn a_partition_with_nothing_consumed_uses_the_unread_count() {
        let mut c = clock();
        let wall = 1_000_000 * S;
        // assigned, nothing read yet, nothing to read: caught up (wall time counts)
        let lag = c.lag(Some(500), Some(0), wall);
        assert_eq!(lag.messages, Some(0));
        assert_eq!(c.watermark(lag, wall), wall - S);
        // unknown: behind
        assert_eq!(c.lag(Some(500), None, wall).messages, None);
        // once something is consumed, our own offset decides
        c.consumed(499, Some(wall), Some(wall));
        assert_eq!(c.lag(Some(500), Some(7), wall).messages, Some(0));
    }

    #[test]
    fn sparse_partitions_do_not_fake_lag_and_revoking_resolves_it() {
        let mut c = clock();
        let mut out = Vec::new();
        let wall = 1_000_000 * S;
        c.consumed(10, Some(wall), Some(wall));
        // ticks every 250 ms find it caught up...
        let mut t = wall;
        while t < wall + 120 * S {
            let lag = c.lag(Some(11), None, t);
            c.step_lag(lag, t, "g", &mut out);
            t += 250;
        }
        // ...then a message arrives at +120 s (two minutes after the last one), and a tick
        // sees it before it is read: 250 ms behind, not two minutes
        let lag = c.lag(Some(12), None, t);
        assert_eq!(
            lag,
            Lag {
                messages: Some(1),
                behind_ms: 250
            }
        );
        c.step_lag(lag, t, "g", &mut out);
        assert!(out.is_empty());
        // a real backlog on a partition later revoked: resolved at the revoke
        let mut c = clock();
        c.consumed(11, Some(wall - 600 * S), Some(wall));
        let lag = c.lag(Some(5_000), None, wall + 121 * S);
        c.step_lag(lag, wall + 121 * S, "g", &mut out);
        c.revoked(wall + 122 * S, "g", &mut out);
        let states: Vec<_> = out.iter().map(|a| (a.state, a.version)).collect();
        assert_eq!(
            states,
            [(AlertStatus::Firing, 1), (AlertStatus::Resolved, 2)]
        );
        assert!(out[1].summary.contains("revoked"), "{}", out[1].summary);
        c.revoked(wall + 123 * S, "g", &mut out);
        assert_eq!(out.len(), 2, "nothing to resolve twice");
    }
}
