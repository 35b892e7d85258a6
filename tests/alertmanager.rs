//! Alert events forwarded to a real Prometheus Alertmanager (Debian's `prometheus-alertmanager`,
//! installed by scripts/install-deps.sh) on loopback: an absence fired by a deadair engine shows
//! up in Alertmanager's v2 API with its labels, annotations and start, and its resolve ends it.
//! Without the binary the test says so and passes, except under `CI=true`, where it fails.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use deadair::alertmanager::spawn;
use deadair::config::AlertmanagerConfig;
use deadair::{AlertKind, AlertStatus, Engine, Model};
use serde_json::Value;

const S: i64 = 1_000;

fn wall_ms() -> i64 {
    deadair::wallclock::wall_ms()
}

/// The Alertmanager binary on PATH (Debian names it `prometheus-alertmanager`).
fn alertmanager_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|d| ["prometheus-alertmanager", "alertmanager"].map(|n| d.join(n)))
        .find(|p| p.is_file())
}

/// A running Alertmanager; killed (and its directory removed) when dropped.
struct Alertmanager {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Alertmanager {
    fn start(bin: &PathBuf) -> Alertmanager {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let dir = std::env::temp_dir().join(format!("deadair-am-{}-{port}", std::process::id()));
        std::fs::create_dir_all(dir.join("data")).unwrap();
        // one route to a receiver with no integrations: alerts are held, never notified
        std::fs::write(
            dir.join("am.yml"),
            "route:\n  receiver: blackhole\n  group_wait: 1s\nreceivers:\n  - name: blackhole\n",
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("am.log")).unwrap();
        let child = Command::new(bin)
            .arg(format!("--config.file={}", dir.join("am.yml").display()))
            .arg(format!("--storage.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--cluster.listen-address=")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut am = Alertmanager { child, addr, dir };
        let start = Instant::now();
        loop {
            if let Ok((200, _)) = am.get("/-/ready") {
                break;
            }
            if let Ok(Some(status)) = am.child.try_wait() {
                panic!("alertmanager exited ({status}): {}", am.log());
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "alertmanager not ready within 20 s: {}",
                am.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        am
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("am.log")).unwrap_or_default()
    }

    /// One HTTP/1.0 GET (no chunked encoding), bounded in time.
    fn get(&self, path: &str) -> std::io::Result<(u16, String)> {
        let mut c = TcpStream::connect_timeout(&self.addr, Duration::from_secs(2))?;
        c.set_read_timeout(Some(Duration::from_secs(5)))?;
        c.set_write_timeout(Some(Duration::from_secs(5)))?;
        write!(c, "GET {path} HTTP/1.0\r\nHost: {}\r\n\r\n", self.addr)?;
        let mut buf = Vec::new();
        c.read_to_end(&mut buf)?;
        let text = String::from_utf8_lossy(&buf).to_string();
        let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
        let body = text
            .split_once("\r\n\r\n")
            .map_or("", |(_, b)| b)
            .to_string();
        Ok((status, body))
    }

    /// Alertmanager's alerts carrying `alert_id` (active ones: it leaves out ended alerts).
    fn alerts(&self, alert_id: &str) -> Vec<Value> {
        let (status, body) = self
            .get(&format!("/api/v2/alerts?filter=alert_id=%22{alert_id}%22"))
            .unwrap();
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }
}

fn ms(v: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap())
        .unwrap()
        .timestamp_millis()
}

/// Polls `f` every 100 ms until it returns something, for at most `secs`.
async fn eventually<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "timed out after {secs} s waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absence_fires_and_resolves_in_a_real_alertmanager() {
    let Some(bin) = alertmanager_binary() else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("prometheus-alertmanager is not installed: scripts/install-deps.sh installs it");
        }
        eprintln!("skipped: prometheus-alertmanager is not installed (scripts/install-deps.sh)");
        return;
    };
    let am = Alertmanager::start(&bin);
    let version = Command::new(&bin).arg("--version").output().unwrap();
    eprintln!(
        "{}",
        String::from_utf8_lossy(&version.stdout)
            .lines()
            .chain(String::from_utf8_lossy(&version.stderr).lines())
            .next()
            .unwrap_or("")
    );

    // an engine whose series reports every 10 s, then stops: absence after 1 min
    let model = Model::parse(
        "[[rule]]\nname = \"node_gone\"\nseverity = \"page\"\n[rule.labels]\nteam = \"infra\"\n\
         [rule.annotations]\nrunbook = \"https://runbooks.example/node_gone\"\n\
         [rule.absence]\ntimeout = \"1m\"\n",
        "test.toml",
    )
    .unwrap();
    let mut engine = Engine::new(Arc::new(model));
    let labels = [("host", "web-1"), ("k8s.zone", "z1")];
    let t0 = wall_ms() - 5 * 60 * S;
    let mut out = Vec::new();
    for i in 0..13 {
        let ts = t0 + i * 10 * S;
        engine.advance(ts, &mut out);
        engine.ingest("node_up", &labels, ts, 1.0, &mut out);
    }
    engine.advance(wall_ms(), &mut out);
    assert_eq!(out.len(), 1, "{out:?}");
    let fired = out.pop().unwrap();
    assert_eq!(
        (fired.kind, fired.state),
        (AlertKind::Absence, AlertStatus::Firing)
    );
    assert_eq!(fired.started_at, t0 + 180 * S, "the deadline");

    let registry = prometheus::Registry::new();
    let cfg = AlertmanagerConfig {
        url: format!("http://{}", am.addr),
        resend_interval: std::time::Duration::from_secs(60),
        timeout: std::time::Duration::from_secs(5),
        max_queue: 100,
        generator_url: Some("http://127.0.0.1:9464/".into()),
    };
    let fwd = spawn(&cfg, &registry).unwrap();
    let pushed = wall_ms();
    fwd.try_push(&fired);

    let got = eventually(15, "the firing alert in Alertmanager", || {
        am.alerts(&fired.alert_id).pop()
    })
    .await;
    let l = &got["labels"];
    assert_eq!(l["alertname"], "node_gone");
    assert_eq!(l["severity"], "page");
    assert_eq!(l["deadair_kind"], "absence");
    assert_eq!(l["deadair_metric"], "node_up");
    assert_eq!(l["alert_id"], fired.alert_id.as_str());
    assert_eq!(l["team"], "infra");
    assert_eq!(l["host"], "web-1");
    assert_eq!(
        l["k8s_zone"], "z1",
        "label names made valid for Alertmanager"
    );
    assert_eq!(
        got["annotations"]["runbook"],
        "https://runbooks.example/node_gone"
    );
    assert_eq!(got["annotations"]["summary"], fired.summary.as_str());
    assert_eq!(got["generatorURL"], "http://127.0.0.1:9464/");
    assert_eq!(got["status"]["state"], "active");
    assert_eq!(ms(&got["startsAt"]), fired.started_at);
    let ends = ms(&got["endsAt"]);
    assert!(
        ends >= pushed + 4 * 60 * S && ends <= wall_ms() + 4 * 60 * S,
        "endsAt {} is not now + 4 × resend_interval",
        got["endsAt"]
    );

    // the series reports again: resolved at the sample's time, sent with that `endsAt`
    // (Alertmanager counts it as a resolve and drops it from its active alerts at once, long
    // before the firing `endsAt`; it lists no ended alerts, so their `endsAt` is not shown)
    let back = wall_ms();
    engine.ingest("node_up", &labels, back, 1.0, &mut out);
    assert_eq!(out.len(), 1, "{out:?}");
    let resolved = out.pop().unwrap();
    assert_eq!(
        (
            resolved.state,
            resolved.event_time,
            resolved.alert_id.as_str()
        ),
        (AlertStatus::Resolved, back, fired.alert_id.as_str())
    );
    fwd.try_push(&resolved);
    eventually(15, "the alert to end in Alertmanager", || {
        am.alerts(&fired.alert_id).is_empty().then_some(())
    })
    .await;
    assert!(
        wall_ms() < pushed + 60 * S,
        "ended by the resolve, not by its endsAt"
    );
    let (status, am_metrics) = am.get("/metrics").unwrap();
    assert_eq!(status, 200);
    for line in [
        r#"alertmanager_alerts_received_total{status="firing",version="v2"} 1"#,
        r#"alertmanager_alerts_received_total{status="resolved",version="v2"} 1"#,
        r#"alertmanager_alerts{state="active"} 0"#,
    ] {
        assert!(
            am_metrics.lines().any(|l| l == line),
            "{line} not in Alertmanager's metrics:\n{}",
            am_metrics
                .lines()
                .filter(|l| l.starts_with("alertmanager_alerts"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }

    let metrics = deadair::metrics::render(&registry);
    assert!(
        metrics.contains("deadair_alertmanager_sent_total 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("deadair_alertmanager_queue_alerts 0"),
        "{metrics}"
    );
    tokio::time::timeout(
        Duration::from_secs(10),
        fwd.shutdown(Duration::from_secs(5)),
    )
    .await
    .unwrap();
}
