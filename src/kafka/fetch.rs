//! The input partitions' messages, read in batches.
//!
//! rdkafka's `StreamConsumer` hands out one message per poll of the consumer queue, and each
//! poll has a fixed cost: clock reads (for `max.poll.interval.ms` and the timeout), the queue
//! lock, an event and an `Arc` per message. With one-sample messages that cost as much as
//! decoding the message. So every input partition's fetch queue is forwarded, as the partition
//! is assigned (in the rebalance callback, before its fetching starts), to one queue of
//! deadair's own, read with `rd_kafka_consume_batch_queue`: up to [`MAX_BATCH`] messages per
//! call, the fixed cost paid once.
//!
//! - The consumer queue keeps the group's events (rebalances, commit results, client errors),
//!   still served by the stream in the consumer loop, so the rebalance callbacks run exactly
//!   as before. Should a partition's forwarding fail, its messages arrive there too and are
//!   handled the same way.
//! - librdkafka keeps a forwarding the application set across later assignments of the
//!   partition, and discards the messages of a partition fetched before its revocation
//!   (their fetch version is outdated); the stage's ownership check stays as the second line.
//! - A consumed message's position (for `max.poll.interval.ms` and the offsets deadair
//!   stores) is kept by librdkafka as for any poll.
//! - Wake-ups: librdkafka calls back when the queue goes from empty to non-empty; the callback
//!   leaves a permit in a [`Notify`], so a wake-up between a read and the next wait is not
//!   lost. A read that found messages leaves one too (the queue may hold more than a batch).

use std::ffi::{c_void, CStr, CString};
use std::ptr::NonNull;

use rdkafka::bindings as rdsys;
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedHeaders, Message, Timestamp};
use tokio::sync::Notify;

use super::stage::MAX_BATCH;

/// deadair's queue of the input partitions' messages (see the module docs).
pub struct FetchQueue {
    queue: NonNull<rdsys::rd_kafka_queue_t>,
    /// Boxed: the callback holds its address until it is disabled in `drop`.
    notify: Box<Notify>,
}

// SAFETY: librdkafka queue handles may be used from any thread; `Notify` is Sync.
unsafe impl Send for FetchQueue {}
unsafe impl Sync for FetchQueue {}

/// Called by librdkafka (on one of its threads, under the queue's lock) when the queue goes
/// from empty to non-empty.
unsafe extern "C" fn nonempty(_rk: *mut rdsys::rd_kafka_t, opaque: *mut c_void) {
    // SAFETY: `opaque` is the `Notify` of a live `FetchQueue`: the callback is disabled (under
    // the same lock) before that `Notify` is dropped.
    let notify = unsafe { &*(opaque as *const Notify) };
    notify.notify_one();
}

impl FetchQueue {
    /// A new queue on the client `rk` (a consumer's native handle, valid while the queue lives).
    pub fn new(rk: *mut rdsys::rd_kafka_t) -> Option<Self> {
        // SAFETY: `rk` is a live client; the queue handle is ours, destroyed in `drop`
        let queue = NonNull::new(unsafe { rdsys::rd_kafka_queue_new(rk) })?;
        let notify = Box::new(Notify::new());
        // SAFETY: the opaque pointer stays valid until the callback is disabled in `drop`
        unsafe {
            rdsys::rd_kafka_queue_cb_event_enable(
                queue.as_ptr(),
                Some(nonempty),
                &*notify as *const Notify as *mut c_void,
            );
        }
        Some(FetchQueue { queue, notify })
    }

    /// Forwards the fetch queue of `partition` of `topic` to this queue: called for a partition
    /// being assigned, before its fetching starts. `false` if librdkafka has no such queue.
    pub fn adopt(&self, rk: *mut rdsys::rd_kafka_t, topic: &str, partition: i32) -> bool {
        let Ok(name) = CString::new(topic) else {
            return false;
        };
        // SAFETY: `rk` is the live client this queue was made on; the partition handle is a
        // new reference, destroyed here (the forwarding stays: librdkafka keeps its own)
        unsafe {
            let pq = rdsys::rd_kafka_queue_get_partition(rk, name.as_ptr(), partition);
            if pq.is_null() {
                return false;
            }
            rdsys::rd_kafka_queue_forward(pq, self.queue.as_ptr());
            rdsys::rd_kafka_queue_destroy(pq);
        }
        true
    }

    /// Waits until the queue may hold messages.
    pub async fn ready(&self) {
        self.notify.notified().await;
    }

    /// Appends the messages queued now (up to [`MAX_BATCH`], without waiting) to `out`;
    /// consumer errors queued among them go to `error`.
    pub fn read(&self, out: &mut Vec<Fetched>, mut error: impl FnMut(KafkaError)) {
        let mut ptrs = [std::ptr::null_mut::<rdsys::rd_kafka_message_t>(); MAX_BATCH];
        // SAFETY: `ptrs` has room for `MAX_BATCH` messages; each returned message is ours to
        // destroy (by `Fetched`'s drop)
        let n = unsafe {
            rdsys::rd_kafka_consume_batch_queue(
                self.queue.as_ptr(),
                0,
                ptrs.as_mut_ptr(),
                MAX_BATCH,
            )
        };
        let Ok(n) = usize::try_from(n) else {
            // SAFETY: reads the calling thread's last librdkafka error
            error(KafkaError::MessageConsumption(
                unsafe { rdsys::rd_kafka_last_error() }.into(),
            ));
            return;
        };
        for &p in &ptrs[..n.min(MAX_BATCH)] {
            let Some(ptr) = NonNull::new(p) else { continue };
            let msg = Fetched { ptr };
            // SAFETY: a message returned by librdkafka, alive until `msg` drops
            let err = unsafe { ptr.as_ref().err };
            if err == rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                out.push(msg);
            } else if err == rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__PARTITION_EOF {
                error(KafkaError::PartitionEOF(msg.partition()));
            } else {
                error(KafkaError::MessageConsumption(err.into()));
            }
        }
        if n > 0 {
            // there may be more than one batch queued, and no wake-up comes for those
            self.notify.notify_one();
        }
    }
}

impl Drop for FetchQueue {
    fn drop(&mut self) {
        // SAFETY: the handle is ours; disabling the callback takes the queue's lock, so no
        // callback runs on `notify` after it returns. Partitions still forwarded here hold
        // their own reference to the queue, which librdkafka disables and drains.
        unsafe {
            rdsys::rd_kafka_queue_cb_event_enable(self.queue.as_ptr(), None, std::ptr::null_mut());
            rdsys::rd_kafka_queue_destroy(self.queue.as_ptr());
        }
    }
}

/// Waits until `q` may hold messages, and hands it back; never without a queue.
pub async fn ready(q: Option<&FetchQueue>) -> &FetchQueue {
    match q {
        Some(q) => {
            q.ready().await;
            q
        }
        None => std::future::pending().await,
    }
}

/// One message read from a [`FetchQueue`]: librdkafka's, destroyed on drop.
pub struct Fetched {
    ptr: NonNull<rdsys::rd_kafka_message_t>,
}

// SAFETY: a consumed message is immutable and may be read and destroyed from any thread.
unsafe impl Send for Fetched {}
unsafe impl Sync for Fetched {}

impl Fetched {
    fn raw(&self) -> &rdsys::rd_kafka_message_t {
        // SAFETY: alive until `self` drops
        unsafe { self.ptr.as_ref() }
    }
}

impl Drop for Fetched {
    fn drop(&mut self) {
        // SAFETY: ours (see `FetchQueue::read`), destroyed once
        unsafe { rdsys::rd_kafka_message_destroy(self.ptr.as_ptr()) }
    }
}

/// `len` bytes at `p` (none if `p` is null).
///
/// # Safety
/// `p` must be null or point to `len` readable bytes that live as long as `'a`.
unsafe fn bytes<'a>(p: *const c_void, len: usize) -> Option<&'a [u8]> {
    if p.is_null() {
        None
    } else {
        // SAFETY: by the caller
        Some(unsafe { std::slice::from_raw_parts(p as *const u8, len) })
    }
}

impl Message for Fetched {
    type Headers = BorrowedHeaders;

    fn key(&self) -> Option<&[u8]> {
        let m = self.raw();
        // SAFETY: the message's key, alive with it
        unsafe { bytes(m.key, m.key_len) }
    }

    fn payload(&self) -> Option<&[u8]> {
        let m = self.raw();
        // SAFETY: the message's payload, alive with it
        unsafe { bytes(m.payload, m.len) }
    }

    unsafe fn payload_mut(&mut self) -> Option<&mut [u8]> {
        let m = self.raw();
        if m.payload.is_null() {
            None
        } else {
            // SAFETY: by the caller (the trait's contract), as for rdkafka's own messages
            Some(unsafe { std::slice::from_raw_parts_mut(m.payload as *mut u8, m.len) })
        }
    }

    fn topic(&self) -> &str {
        // SAFETY: a consumed message's topic handle and its name live as long as the message
        unsafe { CStr::from_ptr(rdsys::rd_kafka_topic_name(self.raw().rkt)) }
            .to_str()
            .unwrap_or("")
    }

    fn partition(&self) -> i32 {
        self.raw().partition
    }

    fn offset(&self) -> i64 {
        self.raw().offset
    }

    fn timestamp(&self) -> Timestamp {
        use rdsys::rd_kafka_timestamp_type_t as T;
        let mut kind = T::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
        // SAFETY: a live message
        let ts = unsafe { rdsys::rd_kafka_message_timestamp(self.ptr.as_ptr(), &mut kind) };
        match kind {
            _ if ts == -1 => Timestamp::NotAvailable,
            T::RD_KAFKA_TIMESTAMP_CREATE_TIME => Timestamp::CreateTime(ts),
            T::RD_KAFKA_TIMESTAMP_LOG_APPEND_TIME => Timestamp::LogAppendTime(ts),
            T::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE => Timestamp::NotAvailable,
        }
    }

    fn headers(&self) -> Option<&BorrowedHeaders> {
        let mut h = std::ptr::null_mut();
        // SAFETY: a live message; the headers it returns live as long as the message
        // (`BorrowedHeaders` is rdkafka's zero-sized view of a native header list, made the
        // same way rdkafka makes it)
        unsafe {
            let err = rdsys::rd_kafka_message_headers(self.ptr.as_ptr(), &mut h);
            if err != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || h.is_null() {
                None
            } else {
                Some(&*(h as *const BorrowedHeaders))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RunConfig;
    use rdkafka::consumer::Consumer;
    use rdkafka::message::{Header, Headers, OwnedHeaders};
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn assigned_partitions_are_read_in_batches_in_order_with_everything_a_message_has() {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("m", 2, 1).unwrap();
        let p: BaseProducer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .create()
            .unwrap();
        for i in 0..300 {
            let (key, value) = (format!("k{i}"), format!("v{i}"));
            let mut r = BaseRecord::to("m")
                .key(&key)
                .payload(&value)
                .partition(i % 2)
                .timestamp(1_000 + i64::from(i));
            if i == 7 {
                r = r.headers(OwnedHeaders::new().insert(Header {
                    key: "content-type",
                    value: Some("application/json"),
                }));
            }
            p.send(r).unwrap();
        }
        p.flush(Duration::from_secs(10)).unwrap();

        let text = format!(
            "brokers = \"{}\"\ngroup_id = \"g\"\n[[input]]\ntopic = \"m\"\nformat = \"json\"\n",
            cluster.bootstrap_servers()
        );
        let cfg = RunConfig::parse(&text, "c.toml", |_| None).unwrap();
        let metrics = Arc::new(crate::metrics::Metrics::new(&Default::default()).unwrap());
        let consumer = Arc::new(crate::kafka::client::consumer(&cfg, metrics).unwrap());
        let q = consumer.context().fetch_queue().expect("a batch queue");
        consumer.subscribe(&["m"]).unwrap();
        // the consumer queue is polled (by the stream, as in the consumer loop), serving the
        // assignment; no message comes out of it: they are forwarded
        let (c, (stop, mut stopped)) = (consumer.clone(), tokio::sync::oneshot::channel::<()>());
        let poller = tokio::spawn(async move {
            use futures_util::StreamExt;
            let mut stream = c.stream();
            let mut leaked = 0;
            loop {
                tokio::select! {
                    _ = &mut stopped => return leaked,
                    m = stream.next() => if let Some(Ok(_)) = m { leaked += 1 },
                }
            }
        });
        let mut got = Vec::new();
        let mut errors = 0;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while got.len() < 300 && std::time::Instant::now() < deadline {
            let _ = tokio::time::timeout(Duration::from_millis(200), q.ready()).await;
            q.read(&mut got, |_| errors += 1);
        }
        stop.send(()).unwrap();
        assert_eq!(poller.await.unwrap(), 0, "no message on the consumer queue");
        assert_eq!((got.len(), errors), (300, 0));
        for part in 0..2 {
            let offsets: Vec<i64> = got
                .iter()
                .filter(|m| m.partition() == part)
                .map(|m| m.offset())
                .collect();
            assert_eq!(
                offsets,
                (0..150).collect::<Vec<_>>(),
                "partition {part} in order"
            );
        }
        let m = got.iter().find(|m| m.key() == Some(&b"k7"[..])).unwrap();
        assert_eq!((m.topic(), m.partition(), m.offset()), ("m", 1, 3));
        assert_eq!(m.payload(), Some(&b"v7"[..]));
        assert_eq!(m.timestamp(), Timestamp::CreateTime(1_007));
        let h = m.headers().expect("its header");
        assert_eq!(h.count(), 1);
        let h = h.get(0);
        assert_eq!(
            (h.key, h.value),
            ("content-type", Some(&b"application/json"[..]))
        );
        let plain = got.iter().find(|m| m.key() == Some(&b"k8"[..])).unwrap();
        assert!(
            plain.headers().is_none(),
            "a message without headers has none"
        );
        drop(got);
        drop(q);
        consumer.context().fetch.lock().unwrap().take();
    }
}
