//! What librdkafka last saw of each partition, read without a broker round trip: the high
//! watermark (cached from fetch responses, through one FFI call) and the messages beyond the
//! group's position (from the statistics callback). A partition's clock uses them to tell
//! "caught up" from "behind" (`crate::clock`).
//!
//! After a client error, or while a broker is not `UP`, the cached values may be stale
//! (fetches may have stopped), so they are distrusted for [`DISTRUST_MS`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;

use rdkafka::consumer::{Consumer, ConsumerContext};
use rdkafka::statistics::Statistics;

use crate::metrics::Metrics;

/// How long after a client error the cached high watermarks are not trusted, ms.
pub const DISTRUST_MS: i64 = 10_000;

/// The consumer context's view of lag (see the module docs).
#[derive(Default)]
pub struct Watermarks {
    /// Wall ms until which the cached values are not trusted.
    distrust_until: AtomicI64,
    /// Messages beyond the group's position per (topic, partition), from the statistics.
    unread: Mutex<HashMap<(String, i32), i64>>,
}

impl Watermarks {
    /// A client error was reported at `now`.
    pub fn distrust(&self, now: i64) {
        self.distrust_until
            .store(now + DISTRUST_MS, Ordering::Relaxed);
    }

    /// Whether cached values may be used at `now`.
    pub fn trusted(&self, now: i64) -> bool {
        now >= self.distrust_until.load(Ordering::Relaxed)
    }

    /// Takes in a statistics report at `now`: a broker not `UP` distrusts the cache; each
    /// partition's consumer lag is kept and exported as a gauge.
    pub fn statistics(&self, stats: &Statistics, metrics: &Metrics, now: i64) {
        if stats
            .brokers
            .values()
            .any(|b| b.nodeid >= 0 && b.state != "UP")
        {
            self.distrust(now);
        }
        let mut unread = self.unread.lock().ok();
        for (topic, t) in &stats.topics {
            for (partition, p) in &t.partitions {
                // -1 is librdkafka's "unknown" and the internal partition -1 is not an input
                if *partition >= 0 && p.consumer_lag >= 0 {
                    if let Some(u) = unread.as_mut() {
                        u.insert((topic.clone(), *partition), p.consumer_lag);
                    }
                    metrics
                        .consumer_lag
                        .with_label_values(&[topic.as_str(), &partition.to_string()])
                        .set(p.consumer_lag);
                }
            }
        }
    }

    /// Unread messages of a partition whose cached low and high watermarks are `low`, `high`:
    /// none when it is empty, else the last statistics' figure (if any).
    fn unread(&self, topic: &str, partition: i32, low: i64, high: i64) -> Option<i64> {
        if low == high {
            return Some(0);
        }
        self.unread
            .lock()
            .ok()
            .and_then(|u| u.get(&(topic.to_string(), partition)).copied())
    }
}

/// The high watermark and the unread messages of `topic/partition` as librdkafka last saw
/// them; both `None` while unknown or distrusted at `now`.
pub fn cached_lag<C, X>(
    consumer: &C,
    marks: &Watermarks,
    topic: &str,
    partition: i32,
    now: i64,
) -> (Option<i64>, Option<i64>)
where
    C: Consumer<X>,
    X: ConsumerContext,
{
    if !marks.trusted(now) {
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
    (Some(high), marks.unread(topic, partition, low, high))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_distrusts_the_cache_for_a_while() {
        let m = Watermarks::default();
        assert!(m.trusted(1_000));
        m.distrust(1_000);
        assert!(!m.trusted(1_000));
        assert!(!m.trusted(1_000 + DISTRUST_MS - 1));
        assert!(m.trusted(1_000 + DISTRUST_MS));
    }

    #[test]
    fn an_empty_partition_has_nothing_unread_and_others_report_the_statistics() {
        let m = Watermarks::default();
        assert_eq!(m.unread("t", 0, 5, 5), Some(0));
        assert_eq!(
            m.unread("t", 0, 5, 9),
            None,
            "unknown until the statistics say"
        );
        m.unread.lock().unwrap().insert(("t".into(), 0), 4);
        assert_eq!(m.unread("t", 0, 5, 9), Some(4));
        assert_eq!(m.unread("t", 1, 5, 9), None);
    }
}
