//! Alert events forwarded to a real Prometheus Alertmanager (Debian's `prometheus-alertmanager`,
//! installed by scripts/install-deps.sh) on loopback: an absence fired by a deadair engine shows
//! up in Alertmanager's v2 API with its labels, annotations and start, and its resolve ends it;
//! the same through TLS with basic auth (Alertmanager's `--web.config.file`), where a wrong CA
//! and a wrong password each give one clear error that shows no secret.
//! Without the binary the test says so and passes, except under `CI=true`, where it fails.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use deadair::alertmanager::{spawn, Client, Failure};
use deadair::config::{AlertmanagerConfig, RunConfig};
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
    /// The client the test reads Alertmanager's API with (its CA and credentials, if any).
    api: reqwest::Client,
    base: String,
    user: Option<(String, String)>,
}

/// TLS and basic auth for Alertmanager's web endpoint.
struct Web {
    certs: common::tls::Certs,
    user: String,
    password: String,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Alertmanager {
    async fn start(bin: &PathBuf, web: Option<&Web>) -> Alertmanager {
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
        let mut cmd = Command::new(bin);
        let mut api = reqwest::Client::builder().timeout(Duration::from_secs(5));
        let mut scheme = "http";
        if let Some(w) = web {
            let hash = bcrypt::hash(&w.password, 4).unwrap();
            std::fs::write(
                dir.join("web.yml"),
                format!(
                    "tls_server_config:\n  cert_file: {}\n  key_file: {}\nbasic_auth_users:\n  {}: '{hash}'\n",
                    w.certs.cert.display(),
                    w.certs.key.display(),
                    w.user
                ),
            )
            .unwrap();
            cmd.arg(format!(
                "--web.config.file={}",
                dir.join("web.yml").display()
            ));
            let ca = reqwest::Certificate::from_pem(&std::fs::read(&w.certs.ca).unwrap()).unwrap();
            api = api.add_root_certificate(ca);
            scheme = "https";
        }
        let child = cmd
            .arg(format!("--config.file={}", dir.join("am.yml").display()))
            .arg(format!("--storage.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--cluster.listen-address=")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut am = Alertmanager {
            child,
            addr,
            dir,
            api: api.build().unwrap(),
            base: format!("{scheme}://{addr}"),
            user: web.map(|w| (w.user.clone(), w.password.clone())),
        };
        let start = Instant::now();
        loop {
            if let Ok((200, _)) = am.get("/-/ready").await {
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
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        am
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("am.log")).unwrap_or_default()
    }

    /// One GET of Alertmanager's API, bounded in time.
    async fn get(&self, path: &str) -> reqwest::Result<(u16, String)> {
        let mut req = self.api.get(format!("{}{path}", self.base));
        if let Some((u, p)) = &self.user {
            req = req.basic_auth(u, Some(p));
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        Ok((status, resp.text().await?))
    }

    /// Alertmanager's alerts carrying `alert_id` (active ones: it leaves out ended alerts).
    async fn alerts(&self, alert_id: &str) -> Vec<Value> {
        let (status, body) = self
            .get(&format!("/api/v2/alerts?filter=alert_id=%22{alert_id}%22"))
            .await
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
async fn eventually<T>(secs: u64, what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "timed out after {secs} s waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An engine whose series reported every 10 s, then stopped: its absence alert, firing now.
fn absence_alert() -> (Engine, deadair::Alert) {
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
    (engine, fired)
}

/// The `[alertmanager]` table of a run config, read as `deadair run` reads it.
fn am_config(
    table: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<AlertmanagerConfig, String> {
    let text = format!("[[input]]\ntopic = \"m\"\nformat = \"json\"\n\n[alertmanager]\n{table}\n");
    RunConfig::parse(&text, "deadair.toml", env)
        .map(|c| c.alertmanager.unwrap())
        .map_err(|e| e.to_string())
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
    let am = Alertmanager::start(&bin, None).await;
    let version = Command::new(&bin).arg("--version").output().unwrap();
    eprintln!(
        "{}",
        String::from_utf8_lossy(&version.stdout)
            .lines()
            .chain(String::from_utf8_lossy(&version.stderr).lines())
            .next()
            .unwrap_or("")
    );

    let (mut engine, fired) = absence_alert();
    let labels = [("host", "web-1"), ("k8s.zone", "z1")];
    let mut out = Vec::new();

    let registry = prometheus::Registry::new();
    let cfg = am_config(
        &format!("url = \"http://{}\"\ntimeout = \"5s\"", am.addr),
        |_| None,
    )
    .unwrap();
    let fwd = spawn(&cfg, &registry).unwrap();
    let pushed = wall_ms();
    fwd.try_push(&fired);

    let got = eventually(15, "the firing alert in Alertmanager", async || {
        am.alerts(&fired.alert_id).await.pop()
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
    eventually(15, "the alert to end in Alertmanager", async || {
        am.alerts(&fired.alert_id).await.is_empty().then_some(())
    })
    .await;
    assert!(
        wall_ms() < pushed + 60 * S,
        "ended by the resolve, not by its endsAt"
    );
    let (status, am_metrics) = am.get("/metrics").await.unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_with_basic_auth_and_one_clear_error_per_mistake() {
    let Some(bin) = alertmanager_binary() else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("prometheus-alertmanager is not installed: scripts/install-deps.sh installs it");
        }
        eprintln!("skipped: prometheus-alertmanager is not installed (scripts/install-deps.sh)");
        return;
    };
    let dir = std::env::temp_dir().join(format!("deadair-am-tls-{}", std::process::id()));
    let password = "correct-horse-battery-staple".to_string();
    let web = Web {
        certs: common::tls::make(&dir),
        user: "deadair".into(),
        password: password.clone(),
    };
    let am = Alertmanager::start(&bin, Some(&web)).await;
    std::fs::write(dir.join("pw"), format!("{password}\n")).unwrap();
    let table = |ca: &std::path::Path, pw: &str| {
        format!(
            "url = \"https://127.0.0.1:{}\"\nca_file = \"{}\"\ntimeout = \"5s\"\n\
             basic_auth = {{ username = \"deadair\", password = {pw} }}",
            am.addr.port(),
            ca.display()
        )
    };
    let env = |k: &str| match k {
        "AM_PASSWORD" => Some("correct-horse-battery-staple".to_string()),
        "AM_WRONG" => Some("not-the-password".to_string()),
        _ => None,
    };

    // the password from a file, the CA from the test: the alert arrives
    let pw_file = format!("{{ file = \"{}\" }}", dir.join("pw").display());
    let cfg = am_config(&table(&web.certs.ca, &pw_file), env).unwrap();
    assert!(!format!("{cfg:?}").contains(&password), "{cfg:?}");
    let (_engine, fired) = absence_alert();
    let registry = prometheus::Registry::new();
    let fwd = spawn(&cfg, &registry).unwrap();
    fwd.try_push(&fired);
    let got = eventually(15, "the alert in Alertmanager over TLS", async || {
        am.alerts(&fired.alert_id).await.pop()
    })
    .await;
    assert_eq!(got["labels"]["alertname"], "node_gone");
    tokio::time::timeout(
        Duration::from_secs(10),
        fwd.shutdown(Duration::from_secs(5)),
    )
    .await
    .unwrap();

    // a wrong CA: a connect error naming the certificate problem, not retried into a flood
    let cfg = am_config(
        &table(&web.certs.other_ca, "{ env = \"AM_PASSWORD\" }"),
        env,
    )
    .unwrap();
    let err = Client::new(&cfg)
        .unwrap()
        .post("[]".into())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Failure::Connect(_)), "{err:?}");
    assert!(text.to_lowercase().contains("certificate"), "{text}");
    assert!(!text.contains(&password), "{text}");
    eprintln!("wrong CA: {text}");

    // a wrong password: Alertmanager's 401, not retried (a 4xx), no secret in the error
    let cfg = am_config(&table(&web.certs.ca, "{ env = \"AM_WRONG\" }"), env).unwrap();
    let err = Client::new(&cfg)
        .unwrap()
        .post("[]".into())
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "http_4xx", "{err:?}");
    assert!(!err.retryable());
    assert!(err.to_string().starts_with("HTTP 401"), "{err}");
    assert!(!err.to_string().contains("not-the-password"), "{err}");
    eprintln!("wrong password: {err}");

    // bad configuration is refused before anything is sent, naming file, line and key
    let e = am_config(
        &table(&dir.join("missing.pem"), "{ env = \"AM_PASSWORD\" }"),
        env,
    )
    .unwrap_err();
    assert!(
        e.starts_with("deadair.toml:7: [alertmanager] `ca_file`: cannot read"),
        "{e}"
    );
    let e = am_config(&table(&web.certs.ca, "{ env = \"AM_UNSET\" }"), env).unwrap_err();
    assert!(
        e.starts_with("deadair.toml:9: [alertmanager] `basic_auth`: password: environment variable `AM_UNSET` is not set"),
        "{e}"
    );
    let e = am_config(&table(&web.certs.ca, "\"in-the-clear\""), env).unwrap_err();
    assert!(e.contains("deadair.toml:9"), "{e}");
    assert!(!e.contains("in-the-clear"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
