//! `deadair demo` (everything in-process: a librdkafka mock cluster, a synthetic producer, the
//! real pipeline) and `deadair gen` (the synthetic producer against a real broker).

use std::sync::Arc;
use std::time::{Duration, Instant};

use prost::Message as _;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{DefaultProducerContext, FutureProducer, FutureRecord, Producer};

use crate::config::{InputFormat, RunConfig};
use crate::proto::{AlertEvent, Sample, SampleBatch};
use crate::synth::{Event, Series, Synth};
use crate::time::format_rfc3339;
use crate::wallclock::wall_ms;

/// Why the demo or the generator stopped.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("{what}: {source}")]
    Kafka {
        what: String,
        source: rdkafka::error::KafkaError,
    },
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
    #[error(transparent)]
    Stage(#[from] crate::kafka::StageError),
    #[error(transparent)]
    Http(#[from] crate::http::BindError),
    #[error("cannot register the metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("the pipeline task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
    #[error("{0}")]
    Usage(&'static str),
}

/// A Kafka error, saying what was being done.
fn kafka(what: impl Into<String>) -> impl FnOnce(rdkafka::error::KafkaError) -> DemoError {
    let what = what.into();
    move |source| DemoError::Kafka { what, source }
}

/// The demo's fleet: three sources with different cadences, a 20-minute "day", and a script of
/// trouble relative to `now`: a spike, a level shift, one series going silent and coming back,
/// one repeating a frozen reading, and a whole source going silent for a while.
pub fn demo_fleet(now: i64) -> Vec<Series> {
    let s = 1_000;
    let day = 20 * 60 * s;
    let mut out = Vec::new();
    let mut add = |mut series: Series| {
        series.period_ms = day;
        out.push(series);
    };
    for host in ["web-1", "web-2", "web-3"] {
        let mut cpu = Series::new(
            "cpu_usage_percent",
            &[("instance", host), ("job", "api")],
            s,
            40.0,
        );
        if host == "web-1" {
            cpu = cpu.with_event(Event::Spike {
                at: now + 3 * s,
                factor: 2.5,
            });
        }
        if host == "web-3" {
            cpu = cpu.with_event(Event::Stuck {
                from: now + 8 * s,
                until: now + 20 * s,
            });
        }
        add(cpu);
        let mut req = Series::new(
            "http_requests_per_second",
            &[("instance", host), ("job", "api")],
            s,
            200.0,
        );
        if host == "web-2" {
            req = req.with_event(Event::Silence {
                from: now + 4 * s,
                until: now + 16 * s,
            });
        }
        add(req);
    }
    for host in ["db-1", "db-2"] {
        let mut lat = Series::new(
            "query_latency_ms",
            &[("instance", host), ("job", "db")],
            2 * s,
            5.0,
        );
        if host == "db-1" {
            lat = lat.with_event(Event::Shift {
                at: now + 6 * s,
                until: now + 22 * s,
                delta: 6.0,
            });
        }
        add(lat);
        add(Series::new(
            "connections",
            &[("instance", host), ("job", "db")],
            2 * s,
            50.0,
        ));
    }
    for host in ["worker-1", "worker-2", "worker-3"] {
        let q = Series::new(
            "queue_depth",
            &[("instance", host), ("job", "batch")],
            2 * s,
            100.0,
        )
        .with_event(Event::Silence {
            from: now + 10 * s,
            until: now + 30 * s,
        });
        add(q);
    }
    out
}

/// Produces `samples` as messages of up to `batch` samples of `format`, each marked with its
/// `content-type` header if `headers`. Samples are grouped by their `job` label and each
/// message is keyed by it, so a source's series always land in one partition.
async fn produce(
    producer: &FutureProducer,
    topic: &str,
    samples: &[Sample],
    batch: usize,
    (format, headers): (InputFormat, bool),
) -> Result<u64, DemoError> {
    let mut by_job: std::collections::BTreeMap<&str, Vec<&Sample>> =
        std::collections::BTreeMap::new();
    for s in samples {
        by_job
            .entry(s.labels.get("job").map_or("", String::as_str))
            .or_default()
            .push(s);
    }
    let mut messages = 0;
    for (key, samples) in &by_job {
        for chunk in samples.chunks(batch.max(1)) {
            let (payload, content_type) = encode(chunk, format);
            loop {
                let mut record = FutureRecord::to(topic).key(*key).payload(&payload);
                if headers {
                    record = record.headers(OwnedHeaders::new().insert(Header {
                        key: "content-type",
                        value: Some(content_type),
                    }));
                }
                match producer.send_result(record) {
                    Ok(_) => break,
                    Err((
                        rdkafka::error::KafkaError::MessageProduction(
                            rdkafka::types::RDKafkaErrorCode::QueueFull,
                        ),
                        _,
                    )) => {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err((e, _)) => return Err(kafka(format!("cannot produce to {topic}"))(e)),
                }
            }
            messages += 1;
        }
    }
    Ok(messages)
}

/// Samples as one message of `format`, with the `content-type` that marks it (see
/// `decode::format_from_headers`).
pub fn encode(samples: &[&Sample], format: InputFormat) -> (Vec<u8>, &'static str) {
    use crate::decode::{influx, otlp, remote_write};
    match format {
        InputFormat::Proto => (
            SampleBatch {
                samples: samples.iter().map(|s| (*s).clone()).collect(),
            }
            .encode_to_vec(),
            "application/x-protobuf;proto=deadair.v1.SampleBatch",
        ),
        InputFormat::Json => {
            let items: Vec<serde_json::Value> = samples
                .iter()
                .map(|s| serde_json::json!({"name": s.name, "labels": s.labels, "timestamp": s.timestamp, "value": s.value}))
                .collect();
            (
                serde_json::Value::Array(items).to_string().into_bytes(),
                "application/json",
            )
        }
        InputFormat::RemoteWrite => (
            remote_write::encode(samples),
            "application/x-protobuf;proto=prometheus.WriteRequest",
        ),
        InputFormat::Otlp => (
            otlp::encode(samples),
            "application/x-protobuf;proto=opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceRequest",
        ),
        InputFormat::Influx => (influx::encode(samples), "text/plain; charset=utf-8"),
    }
}

/// One readable line for an alert event from the alert topic.
pub fn event_line(e: &AlertEvent) -> String {
    let t = e
        .event_time
        .as_ref()
        .map_or(0, |t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000);
    format!(
        "{} {:<8} {:<8} {}",
        format_rfc3339(t),
        match e.state() {
            crate::proto::AlertState::Firing => "firing",
            crate::proto::AlertState::Resolved => "resolved",
            crate::proto::AlertState::Unspecified => "?",
        },
        e.kind()
            .as_str_name()
            .trim_start_matches("ALERT_KIND_")
            .to_ascii_lowercase(),
        e.summary
    )
}

/// Runs the demo until `duration` elapses (or forever) or `stop` completes. Alert lines go to
/// `print`.
pub async fn demo(
    duration: Option<Duration>,
    metrics_addr: &str,
    stop: impl std::future::Future<Output = ()>,
    print: impl Fn(&str) + Send + Sync + 'static,
) -> Result<(), DemoError> {
    let cluster = mock_cluster()?;
    let brokers = cluster.bootstrap_servers();
    let cfg = demo_config(&brokers, metrics_addr)?;
    let print = Arc::new(print);
    print(&format!(
        "deadair demo: in-process Kafka mock cluster at {brokers}"
    ));
    let (metrics, health) = serve_metrics(metrics_addr, &*print).await?;

    // Seed one "day" (20 minutes) of history at once, then produce live.
    let now = wall_ms();
    let mut feed = Feed::new(&brokers, now)?;
    feed.produce_until(now).await?;
    print(&format!(
        "deadair demo: seeded {} samples (one 20-minute \"day\") of history for {} series in 3 sources; now live. \
         Scripted: a spike at +3s, a series silent from +4s to +16s, a level shift from +6s to +22s, a series \
         stuck from +8s to +20s, source job=\"batch\" silent from +10s to +30s. Alert events:",
        feed.buf.len(),
        feed.synth.series.len()
    ));

    let (stop_pipeline, pipeline_stopped) = tokio::sync::oneshot::channel::<()>();
    let model = demo_model()?;
    let pipeline = tokio::spawn(async move {
        crate::kafka::run(&cfg, Arc::new(model), metrics, health, async {
            let _ = pipeline_stopped.await;
        })
        .await
    });
    let (reader_task, history_events) = spawn_alert_reader(&brokers, now, print.clone())?;

    let started = Instant::now();
    feed.produce_live(started, duration, stop).await?;
    let _ = feed.producer.flush(Duration::from_secs(2));
    let _ = stop_pipeline.send(());
    let summary = pipeline.await??;
    // give the reader a moment to print the last events
    tokio::time::sleep(Duration::from_millis(500)).await;
    reader_task.abort();
    let _ = reader_task.await;
    print(&format!(
        "deadair demo: done after {:.0}s: {} messages, {} samples, {} alert events ({} of them while learning the \
         seeded history, not shown), {} offsets stored",
        started.elapsed().as_secs_f64(),
        summary.messages,
        summary.samples,
        summary.alerts,
        history_events.load(std::sync::atomic::Ordering::Relaxed),
        summary.offsets_stored
    ));
    // clients before the cluster they talk to
    drop(feed);
    drop(cluster);
    Ok(())
}

/// The demo's topics: samples in, alerts out.
const SAMPLES_TOPIC: &str = "deadair-samples";
const ALERTS_TOPIC: &str = "deadair-alerts";

/// An in-process Kafka mock cluster with the demo's topics.
fn mock_cluster() -> Result<MockCluster<'static, DefaultProducerContext>, DemoError> {
    let cluster = MockCluster::new(1).map_err(kafka("cannot start the mock cluster"))?;
    for t in [SAMPLES_TOPIC, ALERTS_TOPIC] {
        cluster
            .create_topic(t, 1, 1)
            .map_err(kafka(format!("cannot create {t}")))?;
    }
    Ok(cluster)
}

/// The pipeline's configuration: the mock cluster's topics, proto input.
fn demo_config(brokers: &str, metrics_addr: &str) -> Result<RunConfig, DemoError> {
    let (samples_topic, alerts_topic) = (SAMPLES_TOPIC, ALERTS_TOPIC);
    let text = format!(
        "brokers = \"{brokers}\"\ngroup_id = \"deadair-demo\"\nalert_topic = \"{alerts_topic}\"\n\
         heartbeat_interval = \"5s\"\nmetrics_addr = \"{metrics_addr}\"\n\
         [[input]]\ntopic = \"{samples_topic}\"\nformat = \"proto\"\n"
    );
    Ok(RunConfig::parse(&text, "demo", |_| None)?)
}

/// The pipeline's metrics and health, served on `metrics_addr` unless it is empty.
async fn serve_metrics<P: Fn(&str)>(
    metrics_addr: &str,
    print: &P,
) -> Result<(Arc<crate::metrics::Metrics>, Arc<crate::http::Health>), DemoError> {
    let registry = prometheus::Registry::new();
    let metrics = Arc::new(crate::metrics::Metrics::new(&registry)?);
    let health = Arc::new(crate::http::Health::default());
    if !metrics_addr.is_empty() {
        let listener = crate::http::bind(metrics_addr).await?;
        tokio::spawn(crate::http::serve(listener, registry, health.clone()));
        print(&format!(
            "deadair demo: metrics on http://{metrics_addr}/metrics"
        ));
    }
    Ok((metrics, health))
}

/// The default model at the demo's pace: the demo's day lasts 20 minutes, and so does a new
/// series' quiet youth; an episode is held 10 seconds past its last improbable sample (10
/// minutes in a real day).
fn demo_model() -> Result<crate::model::Model, DemoError> {
    let text = crate::model::DEFAULT_MODEL_TOML
        .replace("youth = \"1d\"", "youth = \"20m\"")
        .replace("keep_firing_for = \"10m\"", "keep_firing_for = \"10s\"");
    Ok(crate::model::Model::parse(
        &text,
        "models/default.toml (demo: youth 20m, keep_firing_for 10s)",
    )?)
}

/// The demo fleet, produced to the samples topic.
struct Feed {
    synth: Synth,
    producer: FutureProducer,
    /// The samples of the last produce.
    buf: Vec<Sample>,
}

impl Feed {
    /// The fleet from one "day" (20 minutes) before `now`, and a producer to the mock cluster.
    fn new(brokers: &str, now: i64) -> Result<Feed, DemoError> {
        let synth = Synth::new(demo_fleet(now), now - 20 * 60_000, 42);
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("linger.ms", "5")
            .create()
            .map_err(kafka("cannot create the demo producer"))?;
        Ok(Feed {
            synth,
            producer,
            buf: Vec::new(),
        })
    }

    /// Produces the fleet's samples up to `t`.
    async fn produce_until(&mut self, t: i64) -> Result<(), DemoError> {
        self.buf.clear();
        self.synth.take_until(t, &mut self.buf);
        produce(
            &self.producer,
            SAMPLES_TOPIC,
            &self.buf,
            100,
            (InputFormat::Proto, true),
        )
        .await?;
        Ok(())
    }

    /// Produces in real time, every 250 ms, until `duration` after `started` (or forever) or
    /// `stop` completes.
    async fn produce_live(
        &mut self,
        started: Instant,
        duration: Option<Duration>,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<(), DemoError> {
        tokio::pin!(stop);
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                () = &mut stop => break,
                _ = tick.tick() => {
                    if duration.is_some_and(|d| started.elapsed() >= d) {
                        break;
                    }
                    self.produce_until(wall_ms()).await?;
                }
            }
        }
        Ok(())
    }
}

/// Reads the alert topic from the start and prints each event, except those of the seeded
/// history (before `now`), which it counts. Returns the reading task and that count.
fn spawn_alert_reader<P: Fn(&str) + Send + Sync + 'static>(
    brokers: &str,
    now: i64,
    print: Arc<P>,
) -> Result<
    (
        tokio::task::JoinHandle<()>,
        Arc<std::sync::atomic::AtomicU64>,
    ),
    DemoError,
> {
    let reader: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "deadair-demo-reader")
        .set("auto.offset.reset", "earliest")
        .create()
        .map_err(kafka("cannot create the alert reader"))?;
    // assigned, not subscribed: the reader is no group member, so it closes without a broker
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(ALERTS_TOPIC, 0, rdkafka::Offset::Beginning)
        .map_err(kafka("cannot read the alert topic"))?;
    reader
        .assign(&tpl)
        .map_err(kafka("cannot read the alert topic"))?;
    let history_events = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let in_history = history_events.clone();
    let reader_task = tokio::spawn(async move {
        // alerts that fired while the seeded history was learned: their resolves are hidden too
        let mut hidden = std::collections::HashSet::new();
        loop {
            let Ok(m) = reader.recv().await else { continue };
            let Some(Ok(e)) = m.payload().map(AlertEvent::decode) else {
                continue;
            };
            let t = e.event_time.as_ref().map_or(0, |t| t.seconds * 1000);
            if e.kind() == crate::proto::AlertKind::Heartbeat {
                continue;
            }
            let resolves_hidden =
                e.state() == crate::proto::AlertState::Resolved && hidden.remove(&e.alert_id);
            if t < now - 1_000 || resolves_hidden {
                // learning the seeded history: counted, not shown
                in_history.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if e.state() == crate::proto::AlertState::Firing {
                    hidden.insert(e.alert_id.clone());
                }
            } else {
                print(&event_line(&e));
            }
        }
    });
    Ok((reader_task, history_events))
}

/// What `deadair gen` produces.
#[derive(Debug, Clone, Copy)]
pub struct GenOptions {
    /// Number of series.
    pub series: usize,
    /// Samples per second, all series together.
    pub rate: f64,
    pub duration: Duration,
    /// Samples per message.
    pub batch: usize,
    pub format: InputFormat,
    /// Each message marked with its `content-type` header (pipelines such as
    /// prometheus-kafka-adapter and Vector set none).
    pub headers: bool,
}

/// `deadair gen`: a fleet of `series` synthetic series at `rate` samples/s in total, produced in
/// real time to `topic` for `duration`, `batch` samples per message.
pub async fn gen(brokers: &str, topic: &str, opts: GenOptions) -> Result<(u64, u64), DemoError> {
    let GenOptions {
        series,
        rate,
        duration,
        batch,
        format,
        headers,
    } = opts;
    if series == 0 || rate <= 0.0 {
        return Err(DemoError::Usage("--series and --rate must be positive"));
    }
    let cadence_ms = ((series as f64 / rate) * 1000.0).max(1.0) as i64;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .set("enable.idempotence", "true")
        .create()
        .map_err(kafka("cannot create producer"))?;
    let start = wall_ms();
    let mut synth = Synth::fleet(series, cadence_ms, start, 7);
    let (mut samples, mut messages) = (0u64, 0u64);
    let started = Instant::now();
    let mut last_report = started;
    let mut buf = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let end = start + duration.as_millis() as i64;
    let mut taken = start;
    // in real time while the broker keeps up; behind it, what is due is written a second of
    // samples at a time until all of `duration` is (a broker slower than `rate` delays the
    // end instead of losing samples)
    while taken < end {
        let now = wall_ms();
        if now <= taken {
            tick.tick().await;
            continue;
        }
        taken = now.min(taken + 1000).min(end);
        buf.clear();
        synth.take_until(taken, &mut buf);
        samples += buf.len() as u64;
        messages += produce(&producer, topic, &buf, batch, (format, headers)).await?;
        if last_report.elapsed() >= Duration::from_secs(2) {
            last_report = Instant::now();
            eprintln!(
                "gen: {samples} samples in {messages} messages ({:.0} samples/s)",
                samples as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    producer
        .flush(Duration::from_secs(30))
        .map_err(kafka("flush"))?;
    Ok((samples, messages))
}
