//! The Kafka stage against librdkafka's in-process mock cluster: samples in, alerts out,
//! offsets committed only behind delivered alerts, heartbeats, graceful shutdown.

use std::time::Duration;

mod common;

use common::kit::noise;
use common::{start_with, Pipeline};
use deadair::config::RunConfig;
use deadair::proto::{AlertEvent, AlertKind, AlertState, Sample, SampleBatch};
use prost::Message as _;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::TopicPartitionList;

/// The scenarios' start: 2100 s ago, so their 200 samples (10 s apart) end 110 s before wall
/// time, like a live source's recent history (deadair's clock follows wall time once caught
/// up, and retires series silent for a day).
fn t0() -> i64 {
    static T0: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *T0.get_or_init(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        // whole seconds, so event times compare exactly after the protobuf round trip
        (now / 1000 - 2100) * 1000
    })
}

fn sample(host: &str, ts: i64, value: f64) -> Sample {
    Sample {
        name: "cpu".into(),
        labels: [
            ("host".to_string(), host.to_string()),
            ("job".to_string(), "api".to_string()),
        ]
        .into(),
        timestamp: ts,
        value,
    }
}

/// 200 messages, 10 s apart: `web-b` stops after message 99, `web-a` spikes at message 150.
async fn produce_scenario(brokers: &str, topic: &str) {
    produce_range(brokers, topic, 0..200).await
}

async fn produce_range(brokers: &str, topic: &str, range: std::ops::Range<u64>) {
    produce_hosts(brokers, topic, range, "web-b").await
}

/// The scenario with `b` as the host of the series that stops.
async fn produce_hosts(brokers: &str, topic: &str, range: std::ops::Range<u64>, b: &str) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    for i in range {
        let ts = t0() + i as i64 * 10_000;
        let mut samples = vec![sample(
            "web-a",
            ts,
            if i == 150 { 160.0 } else { 100.0 + noise(i) },
        )];
        if i < 100 {
            samples.push(sample(b, ts, 50.0 + noise(i + 1000)));
        }
        let payload = SampleBatch { samples }.encode_to_vec();
        producer
            .send(
                FutureRecord::to(topic).key("source-1").payload(&payload),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
    }
}

/// A one-broker mock cluster with `input` and `alerts` topics, and its bootstrap servers.
fn cluster(
    input: &str,
) -> (
    MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    String,
) {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic(input, 1, 1).unwrap();
    cluster.create_topic("alerts", 1, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    (cluster, brokers)
}

fn config(brokers: &str) -> RunConfig {
    let text = format!(
        "brokers = \"{brokers}\"\ngroup_id = \"deadair-test\"\nalert_topic = \"alerts\"\nheartbeat_interval = \"1s\"\n\
         shutdown_timeout = \"10s\"\n[[input]]\ntopic = \"samples\"\nformat = \"proto\"\n"
    );
    RunConfig::parse(&text, "test", |_| None).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_flow_and_offsets_follow_deliveries() {
    let (_cluster, brokers) = cluster("samples");
    produce_scenario(&brokers, "samples").await;

    let (pipeline, stop, registry) = start(config(&brokers));
    let reader = reader(&brokers, "reader");
    let mut events: Vec<AlertEvent> = Vec::new();
    read_until(&reader, &mut events, 60, |ev| {
        has(ev, AlertKind::Absence, AlertState::Firing, "web-b")
            && has(ev, AlertKind::Absence, AlertState::Firing, "web-a")
            && has(ev, AlertKind::Anomaly, AlertState::Firing, "web-a")
            && has(ev, AlertKind::Anomaly, AlertState::Resolved, "web-a")
            && ev.iter().any(|e| e.kind() == AlertKind::Heartbeat)
    })
    .await;
    let absence_of = |host: &str| {
        let a = events
            .iter()
            .find(|e| e.kind() == AlertKind::Absence && e.labels["host"] == host)
            .unwrap();
        a.event_time.unwrap().seconds * 1000
    };
    // web-b's last sample at 990 s, learned timeout 30 s: found by event time (web-a's
    // samples move the clock past it)
    assert_eq!(absence_of("web-b"), t0() + 1_020_000);
    // the input ends at 1990 s, 110 s before wall time: once the consumer has caught up, the
    // partition's clock follows wall time and web-a is silent too, from its own deadline
    assert_eq!(absence_of("web-a"), t0() + 2_020_000);
    let hb = events
        .iter()
        .find(|e| e.kind() == AlertKind::Heartbeat)
        .unwrap();
    assert!(hb.labels["partitions"].contains("samples/0") || hb.labels["partitions"].is_empty());

    stop.send(()).unwrap();
    let summary = tokio::time::timeout(Duration::from_secs(15), pipeline)
        .await
        .expect("bounded shutdown")
        .unwrap()
        .unwrap();
    assert_eq!((summary.messages, summary.samples), (200, 300));
    assert_eq!(
        summary.offsets_stored, 200,
        "every message's offset stored after its alerts"
    );
    assert_eq!(summary.decode_errors, 0);
    let text = deadair::metrics::render(&registry);
    assert!(
        text.contains("deadair_samples_consumed_total 300"),
        "{text}"
    );
    assert!(text.contains("deadair_offsets_stored_total 200"), "{text}");
    assert!(
        text.contains(r#"deadair_alert_events_total{kind="absence",state="firing"} 2"#),
        "{text}"
    );

    // the group's committed position is the end of the input
    let probe: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", "deadair-test")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition("samples", 0);
    let committed = probe
        .committed_offsets(tpl, Duration::from_secs(5))
        .unwrap();
    let offset = committed.find_partition("samples", 0).unwrap().offset();
    assert_eq!(offset, rdkafka::Offset::Offset(200));
}

/// Reads alert events until `done` holds for what was read, or panics after `secs`.
async fn read_until(
    reader: &StreamConsumer,
    events: &mut Vec<AlertEvent>,
    secs: u64,
    done: impl Fn(&[AlertEvent]) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !done(events) {
        let m = tokio::time::timeout_at(deadline, reader.recv())
            .await
            .unwrap_or_else(|_| panic!("expected alerts within {secs} s; got {events:?}"));
        // the reader sees broker outages too: skip its errors
        if let Ok(m) = m {
            let ev = AlertEvent::decode(m.payload().unwrap()).unwrap();
            assert_eq!(
                m.key(),
                Some(ev.alert_id.as_bytes()),
                "alerts are keyed by alert_id"
            );
            events.push(ev);
        }
    }
}

fn has(ev: &[AlertEvent], k: AlertKind, s: AlertState, host: &str) -> bool {
    ev.iter().any(|e| {
        e.kind() == k && e.state() == s && e.labels.get("host").map(String::as_str) == Some(host)
    })
}

/// Reads the alerts (as `group`) until `host`'s absence fires, then stops the pipeline: its
/// summary, and the events read.
async fn stop_after_absence(
    brokers: &str,
    group: &str,
    host: &str,
    pipeline: Pipeline,
    stop: tokio::sync::oneshot::Sender<()>,
) -> (deadair::kafka::RunSummary, Vec<AlertEvent>) {
    let reader = reader(brokers, group);
    let mut events = Vec::new();
    read_until(&reader, &mut events, 60, |ev| {
        has(ev, AlertKind::Absence, AlertState::Firing, host)
    })
    .await;
    (common::stop(pipeline, stop).await, events)
}

fn reader(brokers: &str, group: &str) -> StreamConsumer {
    let r: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    r.subscribe(&["alerts"]).unwrap();
    r
}

fn start(
    cfg: RunConfig,
) -> (
    Pipeline,
    tokio::sync::oneshot::Sender<()>,
    prometheus::Registry,
) {
    start_with(cfg, deadair::Model::default_model())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumption_resumes_by_itself_after_the_broker_goes_down_and_up() {
    let (cluster, brokers) = cluster("samples");
    produce_range(&brokers, "samples", 0..120).await;
    let (pipeline, stop, registry) = start(config(&brokers));
    let reader = reader(&brokers, "reader-loss");
    let mut events = Vec::new();
    read_until(&reader, &mut events, 60, |ev| {
        has(ev, AlertKind::Absence, AlertState::Firing, "web-b")
    })
    .await;

    // the only broker goes away, then comes back
    cluster.broker_down(1).unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.broker_up(1).unwrap();

    // new input after the outage still produces alerts: the spike at message 150
    produce_range(&brokers, "samples", 120..200).await;
    read_until(&reader, &mut events, 90, |ev| {
        has(ev, AlertKind::Anomaly, AlertState::Firing, "web-a")
    })
    .await;
    let summary = common::stop(pipeline, stop).await;
    assert_eq!(
        summary.messages, 200,
        "every message consumed exactly once in this process"
    );
    let text = deadair::metrics::render(&registry);
    assert!(text.contains("deadair_offsets_stored_total 200"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_messages_are_counted_copied_to_the_dead_letter_topic_and_do_not_stop_the_pipeline() {
    let (cluster, brokers) = cluster("json-samples");
    cluster.create_topic("dead", 1, 1).unwrap();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    let send = |payload: Vec<u8>| {
        let producer = producer.clone();
        async move {
            producer
                .send(
                    FutureRecord::<(), _>::to("json-samples").payload(&payload),
                    Duration::from_secs(5),
                )
                .await
                .unwrap();
        }
    };
    for i in 0..60i64 {
        let ts = t0() + i * 10_000;
        // a broken client interleaves garbage, empty messages and NaN values with good data
        send(
            format!(r#"[{{"name":"up","labels":{{"host":"ok"}},"timestamp":{ts},"value":1}}]"#)
                .into_bytes(),
        )
        .await;
        send(b"{not json".to_vec()).await;
        send(Vec::new()).await;
        send(
            format!(r#"{{"name":"up","labels":{{"host":"nan"}},"timestamp":{ts},"value":1e999}}"#)
                .into_bytes(),
        )
        .await;
    }
    let text = format!(
        "brokers = \"{brokers}\"\ngroup_id = \"deadair-bad\"\nalert_topic = \"alerts\"\n\
         dead_letter_topic = \"dead\"\n[[input]]\ntopic = \"json-samples\"\nformat = \"json\"\n"
    );
    let (pipeline, stop, registry) = start(RunConfig::parse(&text, "test", |_| None).unwrap());
    // `ok` stops after 590 s; the clock only moves with its own samples, so produce a late one
    // from another series to pass its deadline
    send(
        format!(
            r#"{{"name":"up","labels":{{"host":"clock"}},"timestamp":{},"value":1}}"#,
            t0() + 700_000
        )
        .into_bytes(),
    )
    .await;
    let (summary, _) = stop_after_absence(&brokers, "reader-bad", "ok", pipeline, stop).await;
    assert_eq!(summary.messages, 241);
    assert_eq!(
        summary.decode_errors,
        120 + 60,
        "garbage, empty, and 1e999 (not a JSON number)"
    );
    let text = deadair::metrics::render(&registry);
    assert!(
        text.contains(r#"deadair_decode_errors_total{reason="empty"} 60"#),
        "{text}"
    );
    assert!(
        text.contains(r#"deadair_decode_errors_total{reason="json"} 120"#),
        "{text}"
    );
    assert!(text.contains("deadair_offsets_stored_total 241"), "{text}");
    assert!(text.contains("deadair_dead_letters_total 180"), "{text}");
    // every undecodable message is in the dead-letter topic, as it was, with its provenance
    let dead: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", "reader-dead")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    dead.subscribe(&["dead"]).unwrap();
    let mut copies = Vec::new();
    while copies.len() < 180 {
        let m = tokio::time::timeout(Duration::from_secs(20), dead.recv())
            .await
            .expect("the dead-letter topic holds every bad message")
            .unwrap();
        let headers: std::collections::BTreeMap<String, String> = m
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| {
                        (
                            h.key.to_string(),
                            String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        copies.push((m.payload().unwrap_or_default().to_vec(), headers));
    }
    let count = |p: &[u8], reason: &str| {
        copies
            .iter()
            .filter(|(payload, h)| payload.as_slice() == p && h["deadair-error-reason"] == reason)
            .count()
    };
    assert_eq!(count(b"{not json", "json"), 60);
    assert_eq!(count(b"", "empty"), 60);
    let (_, h) = &copies[0];
    assert_eq!(h["deadair-source-topic"], "json-samples");
    assert_eq!(h["deadair-source-partition"], "0");
    assert_eq!(
        h["deadair-source-offset"], "1",
        "the first bad message follows one good one"
    );
    assert!(!h["deadair-error"].is_empty());
}

/// The JSON samples of `good`: 5 series every 10 s for 600 s; `good-3` stops at 300 s.
fn good_source() -> Vec<(i64, Vec<u8>)> {
    let mut out = Vec::new();
    for i in 0..60i64 {
        let ts = t0() + i * 10_000;
        let samples: Vec<String> = (0..5)
            .filter(|k| !(*k == 3 && i >= 30))
            .map(|k| {
                format!(
                    r#"{{"name":"up","labels":{{"job":"good","instance":"good-{k}"}},"timestamp":{ts},"value":{}}}"#,
                    1.0 + noise(i as u64 * 5 + k) * 0.01
                )
            })
            .collect();
        out.push((ts, format!("[{}]", samples.join(",")).into_bytes()));
    }
    out
}

/// Runs `good` (and, when `abuse`, an abusive producer on the same partition) through deadair
/// and returns the alert events.
async fn run_with_abuser(abuse: bool) -> (Vec<AlertEvent>, String) {
    let (_cluster, brokers) = cluster("mixed");
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("message.max.bytes", "10000000")
        .create()
        .unwrap();
    let send = |payload: Vec<u8>| {
        let producer = producer.clone();
        async move {
            producer
                .send(
                    FutureRecord::<(), _>::to("mixed").payload(&payload),
                    Duration::from_secs(5),
                )
                .await
                .unwrap();
        }
    };
    for (i, (ts, payload)) in good_source().into_iter().enumerate() {
        send(payload).await;
        if !abuse {
            continue;
        }
        // the abuser: garbage, a truncated array, and an exploding set of new series, some of
        // it in one 2 MB message
        send(b"\x00\x01garbage".to_vec()).await;
        send(br#"[{"name":"up","labels":{"job":"spam"}"#.to_vec()).await;
        let n = if i == 10 { 20_000 } else { 200 };
        let spam: Vec<String> = (0..n)
            .map(|k| {
                format!(
                    r#"{{"name":"up","labels":{{"job":"spam","id":"{i}-{k}"}},"timestamp":{ts},"value":{k}}}"#
                )
            })
            .collect();
        send(format!("[{}]", spam.join(",")).into_bytes()).await;
    }
    let text = format!(
        "brokers = \"{brokers}\"\ngroup_id = \"deadair-abuse\"\nalert_topic = \"alerts\"\n\
         [[input]]\ntopic = \"mixed\"\nformat = \"json\"\nautodetect = true\n"
    );
    let model = deadair::model::DEFAULT_MODEL_TOML.replace(
        "max_series_per_source = 250000",
        "max_series_per_source = 1000",
    );
    let model = deadair::Model::parse(&model, "test").unwrap();
    let (pipeline, stop, registry) =
        start_with(RunConfig::parse(&text, "test", |_| None).unwrap(), model);
    let reader = reader(&brokers, "reader-abuse");
    let mut events = Vec::new();
    read_until(&reader, &mut events, 60, |ev| {
        has_instance(ev, AlertKind::Absence, "good-3")
            && (!abuse || ev.iter().any(|e| e.kind() == AlertKind::CardinalityLimit))
    })
    .await;
    // a little longer: anything else that would fire has its chance
    tokio::time::sleep(Duration::from_secs(2)).await;
    while let Ok(Ok(m)) = tokio::time::timeout(Duration::from_millis(500), reader.recv()).await {
        events.push(AlertEvent::decode(m.payload().unwrap()).unwrap());
    }
    common::stop(pipeline, stop).await;
    (events, deadair::metrics::render(&registry))
}

fn has_instance(ev: &[AlertEvent], k: AlertKind, instance: &str) -> bool {
    ev.iter()
        .any(|e| e.kind() == k && e.labels.get("instance").map(String::as_str) == Some(instance))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abusive_producer_is_contained_and_other_sources_alerts_are_unchanged() {
    let good = |ev: &[AlertEvent]| -> Vec<(i32, i32, String, i64)> {
        let mut v: Vec<_> = ev
            .iter()
            .filter(|e| e.labels.get("job").map(String::as_str) == Some("good"))
            .map(|e| {
                (
                    e.kind,
                    e.state,
                    e.labels.get("instance").cloned().unwrap_or_default(),
                    e.event_time.unwrap().seconds,
                )
            })
            .collect();
        v.sort();
        v
    };
    let (clean, _) = run_with_abuser(false).await;
    let (abused, metrics) = run_with_abuser(true).await;
    assert_eq!(good(&abused), good(&clean), "good's alerts unchanged");
    assert!(!good(&clean).is_empty());
    // one cardinality_limit for the spam source (never one per sample), nothing else for it
    let limits: Vec<&AlertEvent> = abused
        .iter()
        .filter(|e| e.kind() == AlertKind::CardinalityLimit)
        .collect();
    assert_eq!(limits.len(), 1, "{limits:#?}");
    assert_eq!(limits[0].labels["job"], "spam");
    assert!(abused.iter().all(|e| e.kind() == AlertKind::Heartbeat
        || e.kind() == AlertKind::CardinalityLimit
        || e.labels.get("job").map(String::as_str) == Some("good")));
    // refusals and bad messages are counted
    let refused = 60 * 200 + 20_000 - 200 - 1000;
    assert!(
        metrics.contains(&format!(
            r#"deadair_samples_dropped_total{{reason="cardinality"}} {refused}"#
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"deadair_decode_errors_total{reason="json"} 120"#),
        "{metrics}"
    );
}

/// An alert larger than the producer may send (here `message.max.bytes` = 1000: a series whose
/// label holds 3 000 characters) is refused for good: it is sent again trimmed and marked,
/// counted, and the pipeline moves on: the other series' alerts arrive and every offset is
/// stored (issue #15: nothing blocks the pipeline). On the mock cluster here, and through the
/// real broker (tansu) below.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_too_large_for_the_broker_is_trimmed_and_the_pipeline_moves_on() {
    let (_cluster, brokers) = cluster("samples");
    too_large_alert(&brokers, "samples", "alerts").await;
}

/// The same through tansu (a real broker). tansu does not enforce a topic's
/// `max.message.bytes` (checked: a 5 000-byte record is accepted on a topic created with 1 000),
/// so the limit is the producer's `message.max.bytes`, which librdkafka enforces with the same
/// permanent error (`MSG_SIZE_TOO_LARGE`) a broker's limit gives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_too_large_is_trimmed_through_a_real_broker() {
    let Some(brokers) = common::brokers() else {
        return;
    };
    let run = common::wall_ms();
    let (input, alerts) = (format!("big-in-{run}"), format!("big-alerts-{run}"));
    common::create_topics(&brokers, &[(input.as_str(), 1), (alerts.as_str(), 1)]).await;
    too_large_alert(&brokers, &input, &alerts).await;
}

async fn too_large_alert(brokers: &str, input: &str, alert_topic: &str) {
    let big = format!("big-{}", "x".repeat(3000));
    produce_hosts(brokers, input, 0..200, &big).await;
    let text = format!(
        "brokers = \"{brokers}\"\ngroup_id = \"deadair-{input}\"\nalert_topic = \"{alert_topic}\"\nheartbeat_interval = \"1s\"\n\
         shutdown_timeout = \"10s\"\n[[input]]\ntopic = \"{input}\"\nformat = \"proto\"\n\
         [librdkafka]\n\"message.max.bytes\" = \"1000\"\n"
    );
    let (pipeline, stop, registry) = start(RunConfig::parse(&text, "test", |_| None).unwrap());
    let reader: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("reader-{alert_topic}"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    reader.subscribe(&[alert_topic]).unwrap();
    let mut events: Vec<AlertEvent> = Vec::new();
    let is_big = |e: &AlertEvent| e.labels.get("host").is_some_and(|h| h.starts_with("big-x"));
    read_until(&reader, &mut events, 60, |ev| {
        ev.iter()
            .any(|e| is_big(e) && e.kind() == AlertKind::Absence)
            && has(ev, AlertKind::Anomaly, AlertState::Firing, "web-a")
            && has(ev, AlertKind::Anomaly, AlertState::Resolved, "web-a")
    })
    .await;
    let trimmed = events.iter().find(|e| is_big(e)).unwrap();
    assert!(
        trimmed.labels["host"].chars().count() <= 201,
        "the label was cut"
    );
    assert!(
        trimmed.annotations.contains_key("deadair_truncated"),
        "{trimmed:?}"
    );
    assert!(trimmed.encoded_len() <= 1000);
    let summary = common::stop(pipeline, stop).await;
    assert_eq!(
        summary.offsets_stored, 200,
        "the pipeline did not stop at the refusal"
    );
    let text = deadair::metrics::render(&registry);
    assert!(
        text.contains(r#"deadair_records_refused_total{outcome="shrunk"}"#),
        "{text}"
    );
    assert!(
        !text.contains(r#"deadair_records_refused_total{outcome="dropped"} 1"#),
        "{text}"
    );
}

/// Messages are handed to the engine in runs (several protobuf messages in one batch); a JSON
/// message (marked with its content-type) and undecodable ones in between keep their place:
/// every sample is ingested in order (none late), every offset is stored, a series whose
/// source stops still alerts, and the counters add up message by message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_of_mixed_messages_is_read_in_order_and_every_offset_stored() {
    use rdkafka::message::{Header, OwnedHeaders};
    let (_cluster, brokers) = cluster("mixed");
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    let send = |payload: Vec<u8>, json: bool| {
        let producer = producer.clone();
        async move {
            let mut record = FutureRecord::<(), _>::to("mixed").payload(&payload);
            if json {
                record = record.headers(OwnedHeaders::new().insert(Header {
                    key: "content-type",
                    value: Some("application/json"),
                }));
            }
            producer.send(record, Duration::from_secs(5)).await.unwrap();
        }
    };
    for i in 0..60u64 {
        let ts = t0() + i as i64 * 10_000;
        let proto = |samples: Vec<Sample>| SampleBatch { samples }.encode_to_vec();
        send(proto(vec![sample("web-a", ts, 100.0 + noise(i))]), false).await;
        // JSON: `web-a` again, 2 s later (fed before the protobuf before it: `late`), and
        // `web-j`, which stops
        let json = |host: &str, ts: i64, v: f64| {
            format!(
                r#"{{"name":"cpu","labels":{{"host":"{host}","job":"api"}},"timestamp":{ts},"value":{v}}}"#
            )
        };
        let mut items = vec![json("web-a", ts + 2_000, 100.0 + noise(i + 400))];
        if i < 40 {
            items.push(json("web-j", ts, 50.0 + noise(i + 100)));
        }
        send(format!("[{}]", items.join(",")).into_bytes(), true).await;
        send(vec![0xff, 0xff], false).await; // not a SampleBatch
        let two = vec![
            sample("web-p", ts, 10.0 + noise(i + 200)),
            sample("web-p", ts + 5_000, 10.0 + noise(i + 300)),
        ];
        send(proto(two), false).await;
    }
    let text = format!(
        "brokers = \"{brokers}\"\ngroup_id = \"deadair-mixed\"\nalert_topic = \"alerts\"\n\
         [[input]]\ntopic = \"mixed\"\nformat = \"proto\"\nautodetect = true\n"
    );
    let (pipeline, stop, registry) = start(RunConfig::parse(&text, "test", |_| None).unwrap());
    let (summary, events) =
        stop_after_absence(&brokers, "reader-mixed", "web-j", pipeline, stop).await;
    assert_eq!(summary.messages, 4 * 60);
    assert_eq!(summary.samples, 60 + (60 + 40) + 2 * 60);
    assert_eq!(summary.decode_errors, 60);
    let text = deadair::metrics::render(&registry);
    assert!(text.contains("deadair_offsets_stored_total 240"), "{text}");
    assert!(
        text.contains(r#"deadair_decode_errors_total{reason="protobuf"} 60"#),
        "{text}"
    );
    for reason in ["late", "future", "non_finite"] {
        assert!(
            text.contains(&format!(
                "deadair_samples_dropped_total{{reason=\"{reason}\"}} 0"
            )),
            "no sample dropped (none late: the order held): {text}"
        );
    }
    for host in ["web-a", "web-p"] {
        assert!(
            !has(&events, AlertKind::Absence, AlertState::Firing, host),
            "{host} never stopped: {events:?}"
        );
    }
}

/// One-sample messages are held and fed to the engine together while its clock stands still
/// (`stage/messages.rs`). The alerts must be the ones feeding one message at a time gives: an
/// engine fed here message by message, its clock advanced to the newest event time after each
/// (what the stage did before holding), is the reference. Six series, one sample per message,
/// protobuf and JSON (bare and in an array) interleaved: one stops, one pauses and returns, one
/// spikes. Every reference event (id, version, times, value, score, summary) must come out of
/// the pipeline, and nothing else up to the data's end (after it, wall time takes over).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_one_sample_messages_alert_as_one_message_at_a_time() {
    use rdkafka::message::{Header, OwnedHeaders};
    let (_cluster, brokers) = cluster("held");
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("linger.ms", "20")
        .create()
        .unwrap();
    // three hours ago, so the whole run is history by the time it is read
    let first = t0() - 9_000_000;
    let mut reference = deadair::Engine::new(std::sync::Arc::new(deadair::Model::default_model()));
    reference.set_scope("held/0");
    let mut expected = Vec::new();
    let mut newest = i64::MIN;
    let mut sends = Vec::new();
    let rounds = 300u64;
    for i in 0..rounds {
        let ts = first + i as i64 * 10_000;
        for h in 0..6u64 {
            let host = format!("web-{h}");
            let stopped = (h == 1 && i >= 120) || (h == 3 && (150..170).contains(&i));
            if stopped {
                continue;
            }
            let value = if h == 2 && i == 200 {
                1e4
            } else {
                100.0 + noise(i * 7 + h)
            };
            let (payload, json) = match h % 3 {
                0 => (
                    SampleBatch {
                        samples: vec![sample(&host, ts, value)],
                    }
                    .encode_to_vec(),
                    false,
                ),
                k => {
                    let one = format!(
                        r#"{{"name":"cpu","labels":{{"host":"{host}","job":"api"}},"timestamp":{ts},"value":{value}}}"#
                    );
                    let text = if k == 1 { one } else { format!("[{one}]") };
                    (text.into_bytes(), true)
                }
            };
            let mut record = FutureRecord::<(), _>::to("held").payload(&payload);
            if json {
                record = record.headers(OwnedHeaders::new().insert(Header {
                    key: "content-type",
                    value: Some("application/json"),
                }));
            }
            sends.push(producer.send_result(record).map_err(|(e, _)| e).unwrap());
            let labels = [("host", host.as_str()), ("job", "api")];
            reference.ingest("cpu", &labels[..], ts, value, &mut expected);
            newest = newest.max(ts);
            reference.advance(newest - 1, &mut expected);
        }
    }
    for s in sends {
        s.await.unwrap().unwrap();
    }
    let end = first + (rounds as i64 - 1) * 10_000;
    let event_ms = |e: &AlertEvent| {
        let t = e.event_time.as_ref().unwrap();
        t.seconds * 1000 + i64::from(t.nanos) / 1_000_000
    };
    // the stage stamps wall time as `emitted_at`
    let strip = |mut e: AlertEvent| {
        e.emitted_at = None;
        e
    };
    let expected: Vec<AlertEvent> = expected
        .iter()
        .map(|a| strip(deadair::codec::alert_to_proto(a)))
        .collect();
    let kinds = |e: &AlertEvent| {
        matches!(
            e.kind(),
            AlertKind::Anomaly | AlertKind::Absence | AlertKind::SourceSilent | AlertKind::Stuck
        )
    };
    for (kind, state, host) in [
        (AlertKind::Absence, AlertState::Firing, "web-1"),
        (AlertKind::Absence, AlertState::Resolved, "web-3"),
        (AlertKind::Anomaly, AlertState::Firing, "web-2"),
    ] {
        assert!(
            has(&expected, kind, state, host),
            "the scenario has {host}'s {kind:?} {state:?}: {expected:?}"
        );
    }

    let text = format!(
        "brokers = \"{brokers}\"\ngroup_id = \"deadair-held\"\nalert_topic = \"alerts\"\n\
         [[input]]\ntopic = \"held\"\nformat = \"proto\"\nautodetect = true\n"
    );
    let (pipeline, stop, _registry) = start(RunConfig::parse(&text, "test", |_| None).unwrap());
    let reader = reader(&brokers, "reader-held");
    let mut events = Vec::new();
    read_until(&reader, &mut events, 60, |ev| {
        let got: Vec<AlertEvent> = ev.iter().cloned().map(strip).collect();
        expected.iter().all(|e| got.contains(e))
    })
    .await;
    common::stop(pipeline, stop).await;
    let extra: Vec<AlertEvent> = events
        .into_iter()
        .map(strip)
        .filter(|e| kinds(e) && event_ms(e) <= end && !expected.contains(e))
        .collect();
    assert!(extra.is_empty(), "not in the reference: {extra:?}");
}
