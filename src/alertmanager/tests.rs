use super::*;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const S: i64 = 1_000;
const T0: i64 = 1_700_000_000_000;
const RESEND: i64 = 60 * S;

fn alert(id: &str, kind: AlertKind, state: AlertStatus, started_at: i64, event_time: i64) -> Alert {
    Alert {
        alert_id: id.into(),
        version: if state == AlertStatus::Firing { 1 } else { 2 },
        kind,
        state,
        rule: Arc::from("disk_gone"),
        severity: Arc::from("page"),
        name: "node_up".into(),
        labels: vec![
            ("host".into(), "a".into()),
            ("k8s.pod".into(), "p-1".into()),
            ("severity".into(), "from-series".into()),
        ],
        annotations: vec![("runbook".into(), "https://runbooks/disk".into())],
        event_time,
        started_at,
        emitted_at: event_time,
        value: None,
        expected: None,
        lower: None,
        upper: None,
        score: 1.0,
        summary: "node_up{host=\"a\"} stopped reporting".into(),
        series: 7,
    }
}

fn firing(id: &str, at: i64) -> Alert {
    alert(id, AlertKind::Absence, AlertStatus::Firing, at, at)
}

fn resolved(id: &str, started: i64, at: i64) -> Alert {
    alert(id, AlertKind::Absence, AlertStatus::Resolved, started, at)
}

fn body(b: &Batch) -> Vec<Value> {
    match serde_json::from_str(&b.body).unwrap() {
        Value::Array(v) => v,
        other => panic!("not an array: {other}"),
    }
}

fn ids(b: &Batch) -> Vec<String> {
    body(b)
        .iter()
        .map(|a| a["labels"]["alert_id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn json_shape_labels_and_annotations() {
    let mut o = Outbox::new(RESEND, 10, "http://127.0.0.1:9464/");
    o.push(&firing("aaaa", T0), None, T0 + 5 * S);
    let b = o.take_due(T0 + 5 * S, MAX_BATCH).unwrap();
    let v = body(&b);
    assert_eq!(v.len(), 1);
    let a = v[0].as_object().unwrap();
    let mut keys: Vec<&str> = a.keys().map(|k| k.as_str()).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "annotations",
            "endsAt",
            "generatorURL",
            "labels",
            "startsAt"
        ]
    );
    let labels: BTreeMap<String, String> = serde_json::from_value(a["labels"].clone()).unwrap();
    let want: BTreeMap<String, String> = [
        ("alert_id", "aaaa"),
        ("alertname", "disk_gone"),
        ("deadair_kind", "absence"),
        ("deadair_metric", "node_up"),
        ("host", "a"),
        ("k8s_pod", "p-1"),
        ("severity", "page"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(labels, want);
    assert_eq!(a["annotations"]["runbook"], "https://runbooks/disk");
    assert_eq!(
        a["annotations"]["summary"],
        "node_up{host=\"a\"} stopped reporting"
    );
    assert_eq!(a["startsAt"], "2023-11-14T22:13:20.000Z");
    assert_eq!(a["generatorURL"], "http://127.0.0.1:9464/");

    // no generator URL: the key is left out; other kinds are named after the event
    let mut o = Outbox::new(RESEND, 10, "");
    let mut lag = alert("bbbb", AlertKind::PipelineLag, AlertStatus::Firing, T0, T0);
    lag.name = "deadair_pipeline_lag".into();
    o.push(&lag, None, T0);
    let v = body(&o.take_due(T0, MAX_BATCH).unwrap());
    assert!(v[0].get("generatorURL").is_none());
    assert_eq!(v[0]["labels"]["alertname"], "deadair_pipeline_lag");
    assert!(v[0]["labels"].get("deadair_metric").is_none());
    assert_eq!(label_name("9lives"), "_9lives");
    assert_eq!(label_name(""), "_");
}

#[test]
fn firing_is_resent_every_interval_with_ends_at_four_intervals_ahead() {
    let mut o = Outbox::new(RESEND, 10, "");
    let now = T0 + 3 * S;
    o.push(&firing("aaaa", T0), None, now);
    assert_eq!(o.next_due(), Some(now), "due at once");
    let b = o.take_due(now, MAX_BATCH).unwrap();
    assert_eq!(
        body(&b)[0]["endsAt"],
        format_rfc3339(now + 4 * RESEND).as_str()
    );
    o.delivered(&b, now);
    assert_eq!(o.len(), 1, "a firing alert stays held");
    assert_eq!(o.next_due(), Some(now + RESEND));
    assert!(o.take_due(now + RESEND - 1, MAX_BATCH).is_none());
    let later = now + RESEND + 250;
    let b = o.take_due(later, MAX_BATCH).unwrap();
    assert_eq!(
        body(&b)[0]["endsAt"],
        format_rfc3339(later + 4 * RESEND).as_str()
    );
    assert_eq!(body(&b)[0]["startsAt"], format_rfc3339(T0).as_str());
    // not delivered: still due (the task backs off before the next round)
    assert!(o.take_due(later, MAX_BATCH).is_some());
}

#[test]
fn resolved_after_firing_wins_and_is_dropped_once_delivered() {
    let mut o = Outbox::new(RESEND, 10, "");
    o.push(&firing("aaaa", T0), None, T0);
    let in_flight = o.take_due(T0, MAX_BATCH).unwrap();
    // the resolve arrives while the firing POST is in flight
    o.push(&resolved("aaaa", T0, T0 + 90 * S), None, T0 + 91 * S);
    o.delivered(&in_flight, T0 + 91 * S);
    assert_eq!(o.len(), 1);
    assert_eq!(
        o.resolved_pending(),
        1,
        "the firing delivery left the resolve alone"
    );
    let b = o.take_due(T0 + 91 * S, MAX_BATCH).unwrap();
    let v = body(&b);
    assert_eq!(v.len(), 1);
    assert_eq!(v[0]["endsAt"], format_rfc3339(T0 + 90 * S).as_str());
    assert_eq!(v[0]["startsAt"], format_rfc3339(T0).as_str());
    o.delivered(&b, T0 + 92 * S);
    assert!(o.is_empty(), "delivered resolves are dropped");
    assert_eq!(o.next_due(), None);

    // a resolve stamped ahead of wall time ends now
    o.push(&resolved("aaaa", T0, T0 + 100 * S), None, T0 + 95 * S);
    let b = o.take_due(T0 + 95 * S, MAX_BATCH).unwrap();
    assert_eq!(body(&b)[0]["endsAt"], format_rfc3339(T0 + 95 * S).as_str());
    o.delivered(&b, T0 + 95 * S);

    // resolved ones go first in a batch; a resolve never ends before its start
    o.push(&firing("ffff", T0), None, T0);
    o.push(&resolved("rrrr", T0 + 5 * S, T0), None, T0);
    let b = o.take_due(T0, MAX_BATCH).unwrap();
    assert_eq!(ids(&b), ["rrrr", "ffff"]);
    assert_eq!(body(&b)[0]["endsAt"], format_rfc3339(T0 + 5 * S).as_str());
    assert_eq!(
        o.take_due(T0, 1).map(|b| ids(&b)),
        Some(vec!["rrrr".to_string()])
    );
}

#[test]
fn bounded_queue_drops_the_oldest_firing_never_a_resolved_for_a_firing() {
    let mut o = Outbox::new(RESEND, 3, "");
    assert_eq!(o.push(&firing("f1", T0), None, T0), 0);
    assert_eq!(o.push(&resolved("r1", T0, T0 + S), None, T0 + S), 0);
    assert_eq!(o.push(&firing("f2", T0), None, T0 + 2 * S), 0);
    assert_eq!(o.push(&firing("f3", T0), None, T0 + 3 * S), 1);
    let b = o.take_due(T0 + 3 * S, MAX_BATCH).unwrap();
    assert_eq!(ids(&b), ["r1", "f2", "f3"], "f1, the oldest firing, went");
    // only resolved ones plus a new firing: the firing one goes
    o.push(&resolved("r2", T0, T0 + 4 * S), None, T0 + 4 * S);
    o.push(&resolved("r3", T0, T0 + 4 * S), None, T0 + 4 * S);
    assert_eq!(o.resolved_pending(), 3);
    assert_eq!(o.push(&firing("f4", T0), None, T0 + 5 * S), 1);
    assert_eq!(o.resolved_pending(), 3);
    assert_eq!(o.len(), 3);
    // only resolved ones: the oldest resolved goes
    assert_eq!(o.push(&resolved("r4", T0, T0 + 6 * S), None, T0 + 6 * S), 1);
    let b = o.take_due(T0 + 6 * S, MAX_BATCH).unwrap();
    assert_eq!(ids(&b), ["r2", "r3", "r4"]);
}

#[test]
fn heartbeats_are_not_forwarded() {
    let mut o = Outbox::new(RESEND, 3, "");
    let hb = alert("hhhh", AlertKind::Heartbeat, AlertStatus::Firing, T0, T0);
    assert_eq!(o.push(&hb, None, T0), 0);
    assert!(o.is_empty());
    assert!(o.take_due(T0, MAX_BATCH).is_none());
}

#[test]
fn forget_stops_resending_a_moved_partitions_firing_alerts() {
    let mut o = Outbox::new(RESEND, 10, "");
    let p0: Scope = (Arc::from("metrics"), 0);
    let p1: Scope = (Arc::from("metrics"), 1);
    o.push(&firing("f0", T0), Some(p0.clone()), T0);
    o.push(&resolved("r0", T0, T0), Some(p0.clone()), T0);
    o.push(&firing("f1", T0), Some(p1), T0);
    assert_eq!(o.forget(&p0), 1);
    let b = o.take_due(T0, MAX_BATCH).unwrap();
    assert_eq!(ids(&b), ["r0", "f1"]);
}

#[test]
fn backoff_doubles_from_one_second_to_thirty() {
    let s: Vec<u64> = (1..=8).map(|a| backoff(a).as_secs()).collect();
    assert_eq!(s, [1, 2, 4, 8, 16, 30, 30, 30]);
}

#[test]
fn endpoints_and_config() {
    let url = |u: &str| Endpoint::parse(u).map(|e| e.url.to_string());
    assert_eq!(
        url("http://127.0.0.1:9093").unwrap(),
        "http://127.0.0.1:9093/api/v2/alerts"
    );
    assert_eq!(
        url("http://am.example/prefix/").unwrap(),
        "http://am.example/prefix/api/v2/alerts"
    );
    assert_eq!(
        url("https://[::1]:9093").unwrap(),
        "https://[::1]:9093/api/v2/alerts"
    );
    for bad in [
        "am:9093",
        "ftp://am:9093",
        "http://",
        "http://am:0",
        "http://am:x",
        "http://u:p@am:1",
        "http://am:1/?q=1",
    ] {
        assert!(Endpoint::parse(bad).is_err(), "{bad}");
    }
    let no_env = |_: &str| None;

    let mut c: AlertmanagerConfig = toml::from_str("url = \"http://127.0.0.1:9093\"").unwrap();
    assert_eq!(
        (c.resend_interval, c.timeout, c.max_queue),
        (Duration::from_secs(60), Duration::from_secs(10), 10_000)
    );
    c.validate("127.0.0.1:9464", &no_env).unwrap();
    assert_eq!(c.generator_url.as_deref(), Some("http://127.0.0.1:9464/"));
    let mut c: AlertmanagerConfig = toml::from_str("url = \"http://h:1\"").unwrap();
    c.validate("", &no_env).unwrap();
    assert_eq!(c.generator_url.as_deref(), Some(""));
    let mut c: AlertmanagerConfig =
        toml::from_str("url = \"http://h:1\"\ngenerator_url = \"deadair\"").unwrap();
    assert_eq!(c.validate("", &no_env).unwrap_err().0, "generator_url");
    assert!(toml::from_str::<AlertmanagerConfig>("url = \"http://h:1\"\nresend = \"1m\"").is_err());
    assert!(
        toml::from_str::<AlertmanagerConfig>("url = \"http://h:1\"\ntimeout = \"0s\"").is_err()
    );
}

/// A one-request-per-connection HTTP server answering with `statuses` in turn (the last one
/// repeated); records when each request came and its body.
async fn server(statuses: Vec<u16>) -> (String, Arc<Mutex<Vec<(Instant, String)>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        let mut n = 0usize;
        loop {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let body = loop {
                let k = conn.read(&mut chunk).await.unwrap();
                assert!(k > 0, "request cut short");
                buf.extend_from_slice(&chunk[..k]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    assert!(
                        head.starts_with("POST /api/v2/alerts HTTP/1.1\r\n"),
                        "{head}"
                    );
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length: ")
                                .map(str::to_string)
                        })
                        .unwrap()
                        .parse()
                        .unwrap();
                    if body.len() >= len {
                        break body.to_string();
                    }
                }
            };
            log.lock().unwrap().push((Instant::now(), body));
            let status = statuses[n.min(statuses.len() - 1)];
            n += 1;
            let msg = "{\"message\":\"scripted\"}";
            let resp = format!(
                "HTTP/1.1 {status} Scripted\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{msg}",
                msg.len()
            );
            conn.write_all(resp.as_bytes()).await.unwrap();
            conn.shutdown().await.unwrap();
        }
    });
    (url, seen)
}

fn cfg(url: &str) -> AlertmanagerConfig {
    AlertmanagerConfig {
        url: url.into(),
        resend_interval: Duration::from_secs(3600),
        timeout: Duration::from_secs(2),
        max_queue: 100,
        generator_url: Some(String::new()),
        ca_file: None,
        basic_auth: None,
        bearer_token: None,
        auth: None,
        ca_pem: None,
    }
}

fn metric(r: &Registry, line: &str) -> bool {
    crate::metrics::render(r).lines().any(|l| l == line)
}

async fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_5xx_is_retried_with_backoff_then_delivered() {
    let (url, seen) = server(vec![500, 200]).await;
    let r = Registry::new();
    let f = spawn(&cfg(&url), &r).unwrap();
    f.try_push(&firing("aaaa", crate::wallclock::wall_ms()));
    wait_for("two requests", || seen.lock().unwrap().len() >= 2).await;
    let s = seen.lock().unwrap().clone();
    let gap = s[1].0 - s[0].0;
    assert!(
        gap >= Duration::from_millis(900),
        "retried after {gap:?}, not after the 1 s backoff"
    );
    let sent: Vec<Vec<Value>> = s
        .iter()
        .map(|(_, b)| serde_json::from_str(b).unwrap())
        .collect();
    assert_eq!(
        (&sent[0][0]["labels"], &sent[0][0]["startsAt"]),
        (&sent[1][0]["labels"], &sent[1][0]["startsAt"]),
        "the same alert is sent again (endsAt moves with the clock)"
    );
    wait_for("sent counted", || {
        metric(&r, "deadair_alertmanager_sent_total 1")
    })
    .await;
    assert!(metric(
        &r,
        "deadair_alertmanager_errors_total{reason=\"http_5xx\"} 1"
    ));
    assert!(
        metric(&r, "deadair_alertmanager_queue_alerts 1"),
        "firing: held for re-sends"
    );
    f.shutdown(Duration::from_secs(2)).await;
    assert_eq!(seen.lock().unwrap().len(), 2, "nothing due at shutdown");
}

#[tokio::test]
async fn a_4xx_is_counted_and_not_retried() {
    let (url, seen) = server(vec![400]).await;
    let r = Registry::new();
    let f = spawn(&cfg(&url), &r).unwrap();
    let now = crate::wallclock::wall_ms();
    f.try_push(&resolved("aaaa", now - 10 * S, now));
    f.try_push(&alert(
        "hb",
        AlertKind::Heartbeat,
        AlertStatus::Firing,
        now,
        now,
    ));
    wait_for("4xx counted", || {
        metric(
            &r,
            "deadair_alertmanager_errors_total{reason=\"http_4xx\"} 1",
        )
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(seen.lock().unwrap().len(), 1, "not retried");
    assert!(metric(&r, "deadair_alertmanager_queue_alerts 0"));
    assert!(metric(&r, "deadair_alertmanager_sent_total 0"));
    f.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn shutdown_flushes_pending_resolves_within_its_deadline() {
    // nothing listens: connect errors, backoff; then a server appears and shutdown delivers
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = probe.local_addr().unwrap();
    drop(probe);
    let r = Registry::new();
    let f = spawn(&cfg(&format!("http://{addr}")), &r).unwrap();
    let now = crate::wallclock::wall_ms();
    f.try_push(&resolved("aaaa", now - 10 * S, now));
    wait_for("a connect error", || {
        metric(
            &r,
            "deadair_alertmanager_errors_total{reason=\"connect\"} 1",
        )
    })
    .await;
    let started = Instant::now();
    f.shutdown(Duration::from_millis(1500)).await;
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "bounded by its deadline"
    );
    assert!(metric(&r, "deadair_alertmanager_sent_total 0"));

    let (url, seen) = server(vec![200]).await;
    let r = Registry::new();
    let f = spawn(&cfg(&url), &r).unwrap();
    for i in 0..5 {
        f.try_push(&resolved(&format!("r{i}"), now - 10 * S, now));
    }
    f.shutdown(Duration::from_secs(5)).await;
    let delivered: usize = seen
        .lock()
        .unwrap()
        .iter()
        .map(|(_, b)| serde_json::from_str::<Vec<Value>>(b).unwrap().len())
        .sum();
    assert_eq!(delivered, 5);
    assert!(metric(&r, "deadair_alertmanager_sent_total 5"));
    // a second handle's shutdown returns at once
    f.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_full_channel_drops_and_counts() {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = probe.local_addr().unwrap();
    drop(probe);
    let r = Registry::new();
    let mut c = cfg(&format!("http://{addr}"));
    c.max_queue = 2;
    let f = spawn(&c, &r).unwrap();
    let now = crate::wallclock::wall_ms();
    for i in 0..50 {
        f.try_push(&firing(&format!("f{i}"), now));
    }
    wait_for("drops counted", || {
        crate::metrics::render(&r).lines().any(|l| {
            l.strip_prefix("deadair_alertmanager_dropped_total ")
                .and_then(|v| v.parse::<u64>().ok())
                == Some(48)
        })
    })
    .await;
    f.shutdown(Duration::from_millis(200)).await;
}

#[test]
fn run_config_takes_an_alertmanager_table_with_file_named_errors() {
    use crate::config::RunConfig;
    let base = "metrics_addr = \"127.0.0.1:9999\"\n[[input]]\ntopic = \"m\"\nformat = \"json\"\n";
    let c = RunConfig::parse(base, "c.toml", |_| None).unwrap();
    assert_eq!(c.alertmanager, None);
    let c = RunConfig::parse(
        &format!(
            "{base}[alertmanager]\nurl = \"http://127.0.0.1:9093\"\nresend_interval = \"30s\"\n"
        ),
        "c.toml",
        |_| None,
    )
    .unwrap();
    let am = c.alertmanager.unwrap();
    assert_eq!(am.resend_interval, Duration::from_secs(30));
    assert_eq!(am.generator_url.as_deref(), Some("http://127.0.0.1:9999/"));
    let e = RunConfig::parse(
        &format!("{base}[alertmanager]\nurl = \"am:9093\"\n"),
        "c.toml",
        |_| None,
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("c.toml:6: [alertmanager] `url`"), "{e}");
    let e = RunConfig::parse(
        &format!("{base}[alertmanager]\nurl = \"http://am:9093\"\nmax_queue = 0\n"),
        "c.toml",
        |_| None,
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("c.toml:7: [alertmanager] `max_queue`"), "{e}");
    let e = RunConfig::parse(
        &format!("{base}[alertmanager]\nurl = \"http://am:9093\"\nretries = 3\n"),
        "c.toml",
        |_| None,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("c.toml:7:") && e.contains("unknown field `retries`"),
        "{e}"
    );
}

#[tokio::test]
async fn credentials_go_in_the_authorization_header() {
    // a server that answers 200 and hands back each request's head
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, mut heads) = mpsc::channel::<String>(4);
    tokio::spawn(async move {
        loop {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 8192];
            let mut n = 0;
            while !buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                let k = conn.read(&mut buf[n..]).await.unwrap();
                assert!(k > 0);
                n += k;
            }
            let head = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
            conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .await
                .unwrap();
            tx.send(head).await.unwrap();
        }
    });
    let env = |k: &str| (k == "AM_TOKEN").then(|| "t0ken-xyz".to_string());
    let mut c: AlertmanagerConfig = toml::from_str(&format!(
        "url = \"{url}\"\nbearer_token = {{ env = \"AM_TOKEN\" }}"
    ))
    .unwrap();
    c.validate("", &env).unwrap();
    assert!(!format!("{c:?}").contains("t0ken"), "{c:?}");
    Client::new(&c).unwrap().post("[]".into()).await.unwrap();
    let head = heads.recv().await.unwrap();
    assert!(
        head.contains("authorization: bearer t0ken-xyz\r\n"),
        "{head}"
    );

    let env = |k: &str| (k == "AM_PW").then(|| "pw".to_string());
    let mut c: AlertmanagerConfig = toml::from_str(&format!(
        "url = \"{url}\"\nbasic_auth = {{ username = \"u\", password = {{ env = \"AM_PW\" }} }}"
    ))
    .unwrap();
    c.validate("", &env).unwrap();
    Client::new(&c).unwrap().post("[]".into()).await.unwrap();
    let head = heads.recv().await.unwrap();
    // base64("u:pw") = dTpwdw==
    assert!(head.contains("authorization: basic dtpwdw==\r\n"), "{head}");

    let mut both: AlertmanagerConfig = toml::from_str(&format!(
        "url = \"{url}\"\nbasic_auth = {{ username = \"u\", password = {{ env = \"AM_PW\" }} }}\nbearer_token = {{ env = \"AM_PW\" }}"
    ))
    .unwrap();
    assert_eq!(both.validate("", &env).unwrap_err().0, "bearer_token");
}
