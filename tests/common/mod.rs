//! Helpers shared by the integration tests: the Kafka ones here, the engine-level test kit
//! (noise, sample sources, replay, time-stepped tables) in [`kit`].
#![allow(dead_code)] // each test binary uses its own subset

pub mod kit;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use deadair::config::RunConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;

/// The real broker for the tests, from `DEADAIR_TEST_BROKERS` (scripts/test.sh starts tansu
/// and sets it). Without it a test says so and passes, except under `CI=true`, where it fails.
pub fn brokers() -> Option<String> {
    match std::env::var("DEADAIR_TEST_BROKERS") {
        Ok(b) if !b.is_empty() => Some(b),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("DEADAIR_TEST_BROKERS is not set: run scripts/test.sh, which starts a broker")
        }
        _ => {
            eprintln!("skipped: DEADAIR_TEST_BROKERS is not set (scripts/test.sh sets it)");
            None
        }
    }
}

/// A loopback port free now (for a server the test starts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Creates `(name, partitions)` topics, failing the test on any error.
pub async fn create_topics(brokers: &str, topics: &[(&str, i32)]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|(t, p)| NewTopic::new(t, *p, TopicReplication::Fixed(1)))
        .collect();
    for r in admin
        .create_topics(&new, &AdminOptions::new())
        .await
        .unwrap()
    {
        r.unwrap();
    }
}

pub type Pipeline =
    tokio::task::JoinHandle<Result<deadair::kafka::RunSummary, deadair::kafka::StageError>>;

/// Runs `deadair::kafka::run` in-process until the returned sender fires.
pub fn start_with(
    cfg: RunConfig,
    model: deadair::Model,
) -> (
    Pipeline,
    tokio::sync::oneshot::Sender<()>,
    prometheus::Registry,
) {
    let registry = prometheus::Registry::new();
    let metrics = Arc::new(deadair::metrics::Metrics::new(&registry).unwrap());
    let health = Arc::new(deadair::http::Health::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let pipeline = tokio::spawn(async move {
        deadair::kafka::run(&cfg, Arc::new(model), metrics, health, async {
            let _ = stopped.await;
        })
        .await
    });
    (pipeline, stop, registry)
}

/// Stops a pipeline and waits (at most 30 s) for its graceful shutdown.
pub async fn stop(
    pipeline: Pipeline,
    stop: tokio::sync::oneshot::Sender<()>,
) -> deadair::kafka::RunSummary {
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(30), pipeline)
        .await
        .expect("bounded shutdown")
        .unwrap()
        .unwrap()
}
