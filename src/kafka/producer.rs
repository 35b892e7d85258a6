//! The producer of alerts, checkpoints and heartbeats: librdkafka's producer, with one thread
//! that serves its delivery reports and sleeps while there are none.
//!
//! rdkafka's `FutureProducer` polls for delivery reports in 100 ms rounds whose last
//! millisecond is a busy wait (its timeout is handed to librdkafka in whole milliseconds, and
//! the round goes on until its deadline): about 1 % of a core per producer, idle or not. Here
//! librdkafka wakes the thread itself when a report is queued (a callback on its main queue
//! going from empty to non-empty), so an idle producer costs nothing.
//!
//! A record's delivery is a [`DeliveryFuture`], resolved by its report (as `FutureProducer`'s).

use std::os::raw::c_void;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use futures_channel::oneshot;
use rdkafka::bindings as rdsys;
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::{DeliveryResult, Message, OwnedHeaders};
use rdkafka::producer::future_producer::{Delivery, OwnedDeliveryResult};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};

/// A record's delivery: its partition and offset, or the error and the record back; `Err` if
/// the producer went away before the report.
pub type DeliveryFuture = oneshot::Receiver<OwnedDeliveryResult>;

/// The context: each record carries the sender of its [`DeliveryFuture`].
pub struct Reports;

impl ClientContext for Reports {}

impl ProducerContext for Reports {
    type DeliveryOpaque = Box<oneshot::Sender<OwnedDeliveryResult>>;

    fn delivery(&self, result: &DeliveryResult<'_>, tx: Self::DeliveryOpaque) {
        let owned = match result {
            Ok(m) => Ok(Delivery {
                partition: m.partition(),
                offset: m.offset(),
                timestamp: m.timestamp(),
            }),
            Err((e, m)) => Err((e.clone(), m.detach())),
        };
        let _ = tx.send(owned); // the waiting side may be gone (shutdown): nothing to tell
    }
}

/// The wake-up the callback gives the report thread.
#[derive(Default)]
struct Wake {
    /// (a report may be queued, stop)
    state: Mutex<(bool, bool)>,
    cv: Condvar,
}

impl Wake {
    fn set(&self, stop: bool) {
        if let Ok(mut s) = self.state.lock() {
            s.0 = true;
            s.1 |= stop;
        }
        self.cv.notify_one();
    }

    /// Waits until a report may be queued or `timeout` passes; `false` once stopped.
    fn wait(&self, timeout: Duration) -> bool {
        let Ok(guard) = self.state.lock() else {
            return false;
        };
        let Ok((mut s, _)) = self.cv.wait_timeout_while(guard, timeout, |s| !s.0) else {
            return false;
        };
        s.0 = false;
        !s.1
    }
}

/// Called by librdkafka (on one of its threads, under the queue's lock) when its main queue
/// goes from empty to non-empty.
unsafe extern "C" fn queue_nonempty(_rk: *mut rdsys::rd_kafka_t, opaque: *mut c_void) {
    // SAFETY: `opaque` is the `Wake` of a live `Inner`: the callback is disabled (under the
    // same lock) before that `Wake` is dropped.
    let wake = unsafe { &*(opaque as *const Wake) };
    wake.set(false);
}

/// The main queue handle the callback is registered on.
struct Queue(*mut rdsys::rd_kafka_queue_t);

// SAFETY: librdkafka queue handles may be used from any thread.
unsafe impl Send for Queue {}
unsafe impl Sync for Queue {}

struct Inner {
    base: Arc<BaseProducer<Reports>>,
    wake: Arc<Wake>,
    queue: Queue,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.wake.set(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // SAFETY: the handle is ours (from rd_kafka_queue_get_main); disabling the callback
        // takes the queue's lock, so no callback runs on `wake` after it returns.
        unsafe {
            rdsys::rd_kafka_queue_cb_event_enable(self.queue.0, None, std::ptr::null_mut());
            rdsys::rd_kafka_queue_destroy(self.queue.0);
        }
        // `base` drops after this: librdkafka purges and flushes what is left, as for any producer
    }
}

/// The producer (cheap to clone: clones share one librdkafka producer and report thread).
#[derive(Clone)]
pub struct AlertProducer {
    inner: Arc<Inner>,
}

impl AlertProducer {
    /// Creates the producer from `config` and starts its report thread.
    pub fn create(config: &ClientConfig) -> KafkaResult<Self> {
        let base: Arc<BaseProducer<Reports>> = Arc::new(config.create_with_context(Reports)?);
        let wake = Arc::new(Wake::default());
        // SAFETY: the client pointer is valid while `base` lives; the returned handle is a new
        // reference, destroyed in `Inner::drop` (before `base`). The opaque pointer stays valid
        // until the callback is disabled there.
        let queue = unsafe {
            let q = rdsys::rd_kafka_queue_get_main(base.client().native_ptr());
            rdsys::rd_kafka_queue_cb_event_enable(
                q,
                Some(queue_nonempty),
                Arc::as_ptr(&wake) as *mut c_void,
            );
            Queue(q)
        };
        let (b, w) = (base.clone(), wake.clone());
        let queue_ptr = Queue(queue.0);
        let thread = std::thread::Builder::new()
            .name("deadair-reports".into())
            .spawn(move || serve(&b, &w, &queue_ptr))
            .map_err(|e| KafkaError::ClientCreation(format!("report thread: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                base,
                wake,
                queue,
                thread: Some(thread),
            }),
        })
    }

    /// Enqueues one record; its delivery report resolves the returned future.
    pub fn send(
        &self,
        topic: &str,
        key: &[u8],
        payload: &[u8],
        partition: Option<i32>,
        headers: Option<OwnedHeaders>,
    ) -> KafkaResult<DeliveryFuture> {
        let (tx, rx) = oneshot::channel();
        let mut record = BaseRecord::with_opaque_to(topic, Box::new(tx))
            .key(key)
            .payload(payload);
        if let Some(p) = partition {
            record = record.partition(p);
        }
        if let Some(h) = headers {
            record = record.headers(h);
        }
        self.inner.base.send(record).map_err(|(e, _)| e)?;
        Ok(rx)
    }

    /// Waits until every enqueued record is delivered (or refused), at most `timeout`.
    pub fn flush(&self, timeout: Duration) -> KafkaResult<()> {
        self.inner.base.flush(timeout)
    }

    /// Records enqueued and not yet reported.
    pub fn in_flight_count(&self) -> i32 {
        self.inner.base.in_flight_count()
    }
}

/// The report thread: serves what is queued, then sleeps until librdkafka queues more (or
/// 100 ms, in case a wake-up was missed).
fn serve(base: &BaseProducer<Reports>, wake: &Wake, queue: &Queue) {
    loop {
        loop {
            // SAFETY: the handle lives until this thread has been joined.
            let queued = unsafe { rdsys::rd_kafka_queue_length(queue.0) };
            if queued == 0 {
                break;
            }
            for _ in 0..queued {
                base.poll(Duration::ZERO);
            }
            // SAFETY: as above.
            if unsafe { rdsys::rd_kafka_queue_length(queue.0) } >= queued {
                // reports come as fast as they are served: give way for a moment rather than
                // spin (the queue is not empty, so no wake-up would come)
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        if !wake.wait(Duration::from_millis(100)) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::mocking::MockCluster;
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

    /// The report of `d` (failing, not hanging, if none comes).
    async fn reported(d: DeliveryFuture) -> OwnedDeliveryResult {
        tokio::time::timeout(Duration::from_secs(30), d)
            .await
            .expect("no delivery report within 30 s")
            .expect("the producer dropped the report")
    }

    #[tokio::test]
    async fn every_record_is_reported_delivered_or_refused_and_drop_returns() {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("t", 1, 1).unwrap();
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", cluster.bootstrap_servers())
            .set("linger.ms", "0");
        let p = AlertProducer::create(&c).unwrap();
        for want in 0..3 {
            let d = p.send("t", b"k", b"v", Some(0), None).unwrap();
            let d = reported(d).await.unwrap();
            assert_eq!((d.partition, d.offset), (0, want));
        }
        // a broker refusal for good reaches the future with the record back
        cluster.request_errors(
            RDKafkaApiKey::Produce,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE],
        );
        let refused = p.send("t", b"k2", b"w", Some(0), None).unwrap();
        let (e, record) = reported(refused).await.unwrap_err();
        assert!(e.to_string().contains("too large"), "{e}");
        assert_eq!(record.key(), Some(&b"k2"[..]));
        // and the next record goes through again
        let d = p.send("t", b"k", b"v", Some(0), None).unwrap();
        assert_eq!(reported(d).await.unwrap().offset, 3);
        // librdkafka counts a record out once its report callback has returned, a moment
        // after the future it completes can wake (CI saw 1 here once)
        let until = std::time::Instant::now() + Duration::from_secs(5);
        while p.in_flight_count() != 0 && std::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(p.in_flight_count(), 0);
        drop(p); // the report thread is stopped and joined
    }

    #[test]
    fn a_wake_up_is_not_lost_and_stop_ends_the_wait() {
        let w = Wake::default();
        w.set(false); // before the wait: remembered
        assert!(w.wait(Duration::from_secs(5)));
        let t = std::time::Instant::now();
        assert!(w.wait(Duration::from_millis(20))); // times out: still running
        assert!(t.elapsed() >= Duration::from_millis(20));
        w.set(true);
        assert!(!w.wait(Duration::from_secs(5)));
    }
}
