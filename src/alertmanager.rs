//! Optional forwarding of alert events to Prometheus Alertmanager's v2 API
//! (`POST /api/v2/alerts`), best-effort beside the Kafka alert topic.
//!
//! ```text
//! send_alerts ──try_push──▶ bounded channel ──▶ forwarder task: Outbox ──POST [..]──▶ Alertmanager
//!  (never waits)             (full: dropped)        (due alerts, one JSON array per round)
//! ```
//!
//! - [`Outbox`] is the pure, synchronous part (every method takes `now`): the alerts to tell
//!   Alertmanager about, keyed by alert id. A firing alert is sent at once and then again every
//!   `resend_interval` with `endsAt = now + 4 × resend_interval` (as Prometheus does: while
//!   deadair lives Alertmanager never times it out; if deadair dies it resolves by itself). A
//!   resolved alert is sent with `endsAt` = its event time (or the send time, if that is
//!   earlier: Alertmanager keeps an alert firing on an `endsAt` in the future) and dropped
//!   once delivered.
//!   Heartbeats are not forwarded. Beyond `max_queue` held alerts the oldest firing one is
//!   dropped (a resolved one only when nothing but resolved ones is held), and counted.
//! - The forwarder task ([`spawn`]) POSTs what is due, retries connect errors, timeouts and
//!   5xx with exponential backoff (1 s doubling to 30 s), counts a 4xx as a permanent error
//!   (that batch is not sent again), and on [`Forwarder::shutdown`] tries to deliver what is
//!   pending (resolved alerts above all) before a deadline.
//! - A partition that moves to another instance is [`Forwarder::forget`]-ten: its firing alerts
//!   are no longer re-sent here (its new owner would otherwise see its resolves undone).
//!
//! Mapping of one alert:
//! - labels: the alert's labels (names made valid for Alertmanager: characters outside
//!   `[A-Za-z0-9_]` become `_`), then `alertname` (the rule name for anomaly and absence
//!   alerts, the event name such as `deadair_pipeline_lag` otherwise), `severity`,
//!   `deadair_kind`, `alert_id`, and for anomaly/absence `deadair_metric` (the series' metric
//!   name); these win over series labels of the same name.
//! - annotations: the rule's annotations, plus `summary` (deadair's text) unless the rule sets
//!   one.
//! - `startsAt`: the episode start; `endsAt` as above; `generatorURL` from the config.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::alert::{Alert, AlertKind, AlertStatus};
use crate::config::{AlertmanagerConfig, Auth, Endpoint};
use crate::ratelog::RateLimitedLog;
use crate::time::format_rfc3339;

/// A partition an alert came from: its firing alerts are forgotten when it moves away.
pub type Scope = (Arc<str>, i32);

/// One alert held for Alertmanager.
#[derive(Debug, Clone)]
struct Held {
    status: AlertStatus,
    scope: Option<Scope>,
    /// Unique per push: names this content (a later push for the same id replaces it).
    seq: u64,
    /// When it is due (wall ms).
    next: i64,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    starts_at: i64,
    /// For a resolved alert: its event time (for a firing one it is computed when sent).
    ends_at: i64,
}

/// One alert as Alertmanager's v2 API takes it (`postableAlert`).
#[derive(Debug, Serialize)]
struct Postable<'a> {
    labels: &'a BTreeMap<String, String>,
    annotations: &'a BTreeMap<String, String>,
    #[serde(rename = "startsAt")]
    starts_at: String,
    #[serde(rename = "endsAt")]
    ends_at: String,
    #[serde(rename = "generatorURL", skip_serializing_if = "str::is_empty")]
    generator_url: &'a str,
}

/// A round's alerts: the JSON array to POST and what it contained.
#[derive(Debug, Clone)]
pub struct Batch {
    pub body: String,
    /// (alert id, seq) of each alert in the body.
    taken: Vec<(String, u64)>,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.taken.len()
    }

    pub fn is_empty(&self) -> bool {
        self.taken.is_empty()
    }
}

/// Most alerts in one POST (more due ones go in the next round, right after).
pub const MAX_BATCH: usize = 1000;

/// The pure state of the forwarder: what to tell Alertmanager, and when.
#[derive(Debug)]
pub struct Outbox {
    resend_ms: i64,
    max: usize,
    generator_url: String,
    held: HashMap<String, Held>,
    /// seq -> alert id, of firing and of resolved alerts (oldest first).
    firing: BTreeMap<u64, String>,
    resolved: BTreeMap<u64, String>,
    seq: u64,
}

impl Outbox {
    pub fn new(resend_ms: i64, max: usize, generator_url: &str) -> Self {
        Self {
            resend_ms: resend_ms.max(1),
            max: max.max(1),
            generator_url: generator_url.to_string(),
            held: HashMap::new(),
            firing: BTreeMap::new(),
            resolved: BTreeMap::new(),
            seq: 0,
        }
    }

    /// Alerts held.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Resolved alerts not yet delivered.
    pub fn resolved_pending(&self) -> usize {
        self.resolved.len()
    }

    /// Takes an alert event at `now` (wall ms); it is due at once. Returns how many held alerts
    /// were dropped to stay within `max_queue`. Heartbeats are ignored.
    pub fn push(&mut self, a: &Alert, scope: Option<Scope>, now: i64) -> u64 {
        if a.kind == AlertKind::Heartbeat {
            return 0;
        }
        self.remove(&a.alert_id);
        self.seq += 1;
        let seq = self.seq;
        let held = Held {
            status: a.state,
            scope,
            seq,
            next: now,
            labels: labels_of(a),
            annotations: annotations_of(a),
            starts_at: a.started_at,
            ends_at: a.event_time.max(a.started_at),
        };
        match a.state {
            AlertStatus::Firing => self.firing.insert(seq, a.alert_id.clone()),
            AlertStatus::Resolved => self.resolved.insert(seq, a.alert_id.clone()),
        };
        self.held.insert(a.alert_id.clone(), held);
        let mut dropped = 0;
        while self.held.len() > self.max {
            // the oldest firing one; a resolved one only when nothing else is held
            let victim = self
                .firing
                .first_key_value()
                .or_else(|| self.resolved.first_key_value())
                .map(|(_, id)| id.clone());
            let Some(id) = victim else { break };
            self.remove(&id);
            dropped += 1;
        }
        dropped
    }

    fn remove(&mut self, id: &str) -> Option<Held> {
        let h = self.held.remove(id)?;
        match h.status {
            AlertStatus::Firing => self.firing.remove(&h.seq),
            AlertStatus::Resolved => self.resolved.remove(&h.seq),
        };
        Some(h)
    }

    /// Stops re-sending the firing alerts of a partition that moved away (resolved ones are
    /// still delivered). Returns how many were dropped.
    pub fn forget(&mut self, scope: &Scope) -> usize {
        let ids: Vec<String> = self
            .held
            .iter()
            .filter(|(_, h)| h.status == AlertStatus::Firing && h.scope.as_ref() == Some(scope))
            .map(|(id, _)| id.clone())
            .collect();
        for id in &ids {
            self.remove(id);
        }
        ids.len()
    }

    /// When the next alert is due (wall ms), if any is held.
    pub fn next_due(&self) -> Option<i64> {
        self.held.values().map(|h| h.next).min()
    }

    /// The alerts due at `now` (at most `max`), resolved ones first, as one POST body.
    pub fn take_due(&mut self, now: i64, max: usize) -> Option<Batch> {
        let mut due: Vec<(&String, &Held)> =
            self.held.iter().filter(|(_, h)| h.next <= now).collect();
        if due.is_empty() {
            return None;
        }
        due.sort_by_key(|(_, h)| (h.status == AlertStatus::Firing, h.seq));
        due.truncate(max.max(1));
        let ends_firing = now.saturating_add(self.resend_ms.saturating_mul(4));
        let body: Vec<Postable<'_>> = due
            .iter()
            .map(|(_, h)| Postable {
                labels: &h.labels,
                annotations: &h.annotations,
                starts_at: format_rfc3339(h.starts_at),
                ends_at: format_rfc3339(match h.status {
                    AlertStatus::Firing => ends_firing.max(h.starts_at),
                    // not after now: Alertmanager takes only an end in the past as a resolve
                    // (a later `endsAt` loses to the firing one it already holds)
                    AlertStatus::Resolved => h.ends_at.min(now).max(h.starts_at),
                }),
                generator_url: &self.generator_url,
            })
            .collect();
        // Serialising string maps and strings cannot fail.
        let body = serde_json::to_string(&body).unwrap_or_else(|_| "[]".into());
        let taken = due.iter().map(|(id, h)| ((*id).clone(), h.seq)).collect();
        Some(Batch { body, taken })
    }

    /// The batch was accepted (or refused for good) at `now`: resolved alerts are done, firing
    /// ones are due again after `resend_interval`. Alerts replaced meanwhile are left alone.
    pub fn delivered(&mut self, batch: &Batch, now: i64) {
        for (id, seq) in &batch.taken {
            let Some(h) = self.held.get_mut(id) else {
                continue;
            };
            if h.seq != *seq {
                continue;
            }
            match h.status {
                AlertStatus::Firing => h.next = now.saturating_add(self.resend_ms),
                AlertStatus::Resolved => {
                    self.remove(id);
                }
            }
        }
    }
}

/// A label or annotation name Alertmanager accepts: `[A-Za-z_][A-Za-z0-9_]*`.
fn label_name(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    s
}

/// Alertmanager labels of an alert (see the module docs).
fn labels_of(a: &Alert) -> BTreeMap<String, String> {
    let mut l: BTreeMap<String, String> = a
        .labels
        .iter()
        .map(|(k, v)| (label_name(k), v.clone()))
        .collect();
    let per_series = matches!(
        a.kind,
        AlertKind::Anomaly | AlertKind::Absence | AlertKind::Stuck
    );
    let alertname = if per_series {
        a.rule.to_string()
    } else {
        a.name.clone()
    };
    l.insert("alertname".into(), alertname);
    l.insert("severity".into(), a.severity.to_string());
    l.insert("deadair_kind".into(), a.kind.as_str().into());
    l.insert("alert_id".into(), a.alert_id.clone());
    if per_series {
        l.insert("deadair_metric".into(), a.name.clone());
    }
    l
}

/// Alertmanager annotations of an alert: the rule's, plus `summary` unless the rule sets one.
fn annotations_of(a: &Alert) -> BTreeMap<String, String> {
    let mut m: BTreeMap<String, String> = a
        .annotations
        .iter()
        .map(|(k, v)| (label_name(k), v.clone()))
        .collect();
    m.entry("summary".into())
        .or_insert_with(|| a.summary.clone());
    m
}

/// Delay before retry `attempt` (1-based): 1 s doubling to 30 s.
pub fn backoff(attempt: u32) -> Duration {
    let secs = 1u64 << attempt.saturating_sub(1).min(5);
    Duration::from_secs(secs.min(30))
}

/// Why a POST failed (the `reason` label of `deadair_alertmanager_errors_total`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No connection (refused, unreachable, name not resolved). Retried.
    Connect(String),
    /// The request took longer than `timeout`. Retried.
    Timeout,
    /// The connection broke or the response was not HTTP. Retried.
    Io(String),
    /// 5xx (or another non-2xx, non-4xx status). Retried.
    Server(u16, String),
    /// 4xx: the request itself is refused; sending it again would not help.
    Client(u16, String),
}

impl Failure {
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Connect(_) => "connect",
            Self::Timeout => "timeout",
            Self::Io(_) => "io",
            Self::Server(..) => "http_5xx",
            Self::Client(..) => "http_4xx",
        }
    }

    pub fn retryable(&self) -> bool {
        !matches!(self, Self::Client(..))
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Connect(e) => write!(f, "cannot connect: {e}"),
            Self::Timeout => write!(f, "timed out"),
            Self::Io(e) => write!(f, "{e}"),
            Self::Server(s, body) | Self::Client(s, body) => write!(f, "HTTP {s}: {body}"),
        }
    }
}

/// The HTTP client of the forwarder: the alerts endpoint, its TLS trust and credentials.
pub struct Client {
    http: reqwest::Client,
    endpoint: Endpoint,
    auth: Option<Auth>,
}

impl Client {
    /// Builds the client: the system's roots plus `ca_file`, one `timeout` per request.
    pub fn new(cfg: &AlertmanagerConfig) -> Result<Client, ForwarderError> {
        let endpoint = Endpoint::parse(&cfg.url).map_err(ForwarderError::Url)?;
        let mut b = reqwest::Client::builder()
            .timeout(cfg.timeout.max(Duration::from_millis(1)))
            .user_agent(concat!("deadair/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = &cfg.ca_pem {
            for c in reqwest::Certificate::from_pem_bundle(pem).map_err(ForwarderError::Client)? {
                b = b.add_root_certificate(c);
            }
        }
        Ok(Client {
            http: b.build().map_err(ForwarderError::Client)?,
            endpoint,
            auth: cfg.auth.clone(),
        })
    }

    /// POSTs `body` (a JSON array of alerts).
    pub async fn post(&self, body: String) -> Result<(), Failure> {
        let mut req = self
            .http
            .post(self.endpoint.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        req = match &self.auth {
            Some(Auth::Basic { username, password }) => {
                req.basic_auth(username, Some(password.expose()))
            }
            Some(Auth::Bearer(t)) => req.bearer_auth(t.expose()),
            None => req,
        };
        let resp = req.send().await.map_err(failure)?;
        let status = resp.status().as_u16();
        if resp.status().is_success() {
            return Ok(());
        }
        let text = resp.text().await.unwrap_or_default();
        let body = text.trim().chars().take(300).collect::<String>();
        match status {
            400..=499 => Err(Failure::Client(status, body)),
            _ => Err(Failure::Server(status, body)),
        }
    }
}

/// A transport error as a [`Failure`], its causes spelled out (a TLS error says which
/// certificate check failed).
fn failure(e: reqwest::Error) -> Failure {
    if e.is_timeout() {
        return Failure::Timeout;
    }
    let connect = e.is_connect();
    let e = e.without_url();
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        let s = c.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        cause = c.source();
    }
    if connect {
        Failure::Connect(text)
    } else {
        Failure::Io(text)
    }
}

/// The forwarder's metrics.
#[derive(Clone)]
struct AmMetrics {
    sent: IntCounter,
    errors: IntCounterVec,
    dropped: IntCounter,
    queue: IntGauge,
}

impl AmMetrics {
    fn new(r: &Registry) -> prometheus::Result<Self> {
        let sent = IntCounter::new(
            "deadair_alertmanager_sent_total",
            "Alerts accepted by Alertmanager (re-sends of firing alerts included).",
        )?;
        let errors = IntCounterVec::new(
            Opts::new(
                "deadair_alertmanager_errors_total",
                "Failed POSTs to Alertmanager, by reason (connect, timeout, io, http_5xx: \
                 retried; http_4xx: not retried).",
            ),
            &["reason"],
        )?;
        let dropped = IntCounter::new(
            "deadair_alertmanager_dropped_total",
            "Alerts never delivered to Alertmanager because its queue was full.",
        )?;
        let queue = IntGauge::new(
            "deadair_alertmanager_queue_alerts",
            "Alerts held for Alertmanager (firing ones re-sent, resolved ones not yet delivered).",
        )?;
        r.register(Box::new(sent.clone()))?;
        r.register(Box::new(errors.clone()))?;
        r.register(Box::new(dropped.clone()))?;
        r.register(Box::new(queue.clone()))?;
        for reason in ["connect", "timeout", "io", "http_5xx", "http_4xx"] {
            errors.with_label_values(&[reason]);
        }
        Ok(Self {
            sent,
            errors,
            dropped,
            queue,
        })
    }
}

enum Msg {
    Alert(Box<Alert>, Option<Scope>),
    Forget(Scope),
    Shutdown(Instant),
}

/// Handle of the forwarder task (cheap to clone).
#[derive(Clone)]
pub struct Forwarder {
    tx: mpsc::Sender<Msg>,
    /// Forgets that did not fit in the channel, applied after it is drained.
    overflow: Arc<Mutex<Vec<Scope>>>,
    dropped: IntCounter,
    join: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

/// Why the forwarder could not start.
#[derive(Debug, thiserror::Error)]
pub enum ForwarderError {
    #[error("[alertmanager] `url`: {0}")]
    Url(crate::check::Invalid),
    #[error("[alertmanager]: cannot build the HTTP client: {0}")]
    Client(reqwest::Error),
    #[error("cannot register the Alertmanager metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// Starts the forwarder task (on the current tokio runtime) and registers its metrics.
pub fn spawn(cfg: &AlertmanagerConfig, registry: &Registry) -> Result<Forwarder, ForwarderError> {
    let client = Client::new(cfg)?;
    let metrics = AmMetrics::new(registry)?;
    let (tx, rx) = mpsc::channel(cfg.max_queue.clamp(1, 100_000));
    let overflow = Arc::new(Mutex::new(Vec::new()));
    let outbox = Outbox::new(
        crate::time::millis(cfg.resend_interval),
        cfg.max_queue,
        cfg.generator_url.as_deref().unwrap_or(""),
    );
    let task = Task {
        client,
        timeout: cfg.timeout.max(Duration::from_millis(1)),
        outbox,
        metrics: metrics.clone(),
        overflow: overflow.clone(),
        log: RateLimitedLog::new(5),
        attempt: 0,
        not_before: 0,
    };
    let join = tokio::spawn(task.run(rx));
    Ok(Forwarder {
        tx,
        overflow,
        dropped: metrics.dropped,
        join: Arc::new(Mutex::new(Some(join))),
    })
}

impl Forwarder {
    /// Queues an alert event without waiting (a full queue drops it, counted). Heartbeats are
    /// ignored.
    pub fn try_push(&self, a: &Alert) {
        self.try_push_scoped(a, None);
    }

    /// As [`Forwarder::try_push`], for an alert of the partition `scope` (see [`Self::forget`]).
    pub fn try_push_scoped(&self, a: &Alert, scope: Option<(&str, i32)>) {
        if a.kind == AlertKind::Heartbeat {
            return;
        }
        let scope = scope.map(|(t, p)| (Arc::<str>::from(t), p));
        if self
            .tx
            .try_send(Msg::Alert(Box::new(a.clone()), scope))
            .is_err()
        {
            self.dropped.inc();
        }
    }

    /// The partition moved to another instance: its firing alerts are no longer re-sent from
    /// here (its resolved ones still are). Never waits.
    pub fn forget(&self, topic: &str, partition: i32) {
        let scope: Scope = (Arc::from(topic), partition);
        if let Err(mpsc::error::TrySendError::Full(Msg::Forget(s))) =
            self.tx.try_send(Msg::Forget(scope))
        {
            self.overflow
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(s);
        }
    }

    /// Stops the task: what is queued is taken in, then due alerts (resolved ones first) are
    /// sent until delivered or `deadline` passes. Returns within `deadline`.
    pub async fn shutdown(&self, deadline: Duration) {
        let until = Instant::now() + deadline;
        let join = self.join.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(mut join) = join else { return };
        let stop = async {
            if self.tx.send(Msg::Shutdown(until)).await.is_ok() {
                let _ = (&mut join).await;
            }
        };
        if tokio::time::timeout(deadline, stop).await.is_err() {
            join.abort();
            tracing::warn!(
                "alertmanager: stopped at the shutdown deadline; alerts still pending were not delivered"
            );
        }
    }
}

struct Task {
    client: Client,
    timeout: Duration,
    outbox: Outbox,
    metrics: AmMetrics,
    overflow: Arc<Mutex<Vec<Scope>>>,
    log: RateLimitedLog,
    /// Consecutive failed rounds (retryable ones).
    attempt: u32,
    /// No POST before this (wall ms): backoff after a failure.
    not_before: i64,
}

impl Task {
    async fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        loop {
            let wake = self.outbox.next_due().map(|t| t.max(self.not_before));
            let sleep = async {
                match wake {
                    Some(t) => {
                        let ms = (t - crate::wallclock::wall_ms()).max(0) as u64;
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                m = rx.recv() => {
                    let mut next = m;
                    loop {
                        match next {
                            // every handle is gone: deliver what is due, briefly
                            None => {
                                let until = Instant::now() + self.timeout;
                                return self.flush(until).await;
                            }
                            Some(Msg::Shutdown(until)) => {
                                rx.close();
                                while let Ok(m) = rx.try_recv() {
                                    self.apply(m);
                                }
                                self.apply_overflow();
                                return self.flush(until).await;
                            }
                            Some(m) => self.apply(m),
                        }
                        match rx.try_recv() {
                            Ok(m) => next = Some(m),
                            Err(mpsc::error::TryRecvError::Empty) => break,
                            Err(mpsc::error::TryRecvError::Disconnected) => next = None,
                        }
                    }
                    self.apply_overflow();
                    self.metrics.queue.set(self.outbox.len() as i64);
                }
                () = sleep => {
                    self.round(self.timeout).await;
                }
            }
        }
    }

    fn apply(&mut self, m: Msg) {
        match m {
            Msg::Alert(a, scope) => {
                let dropped = self.outbox.push(&a, scope, crate::wallclock::wall_ms());
                self.metrics.dropped.inc_by(dropped);
            }
            Msg::Forget(scope) => {
                self.outbox.forget(&scope);
            }
            Msg::Shutdown(_) => {}
        }
    }

    fn apply_overflow(&mut self) {
        let scopes = std::mem::take(&mut *self.overflow.lock().unwrap_or_else(|p| p.into_inner()));
        for s in scopes {
            self.outbox.forget(&s);
        }
    }

    /// One POST of what is due. Returns false when nothing was due or it failed.
    async fn round(&mut self, timeout: Duration) -> bool {
        let Some(batch) = self.outbox.take_due(crate::wallclock::wall_ms(), MAX_BATCH) else {
            return false;
        };
        let result = tokio::time::timeout(timeout, self.client.post(batch.body.clone()))
            .await
            .unwrap_or(Err(Failure::Timeout));
        let now = crate::wallclock::wall_ms();
        let ok = match result {
            Ok(()) => {
                self.metrics.sent.inc_by(batch.len() as u64);
                self.outbox.delivered(&batch, now);
                self.attempt = 0;
                self.not_before = 0;
                true
            }
            Err(f) => {
                self.metrics.errors.with_label_values(&[f.reason()]).inc();
                if f.retryable() {
                    self.attempt = self.attempt.saturating_add(1);
                    let wait = backoff(self.attempt);
                    self.not_before = now + wait.as_millis() as i64;
                    self.log.log("alertmanager", || {
                        format!(
                            "POST {} ({} alerts) failed: {f}; retrying in {} s",
                            self.client.endpoint.url,
                            batch.len(),
                            wait.as_secs()
                        )
                    });
                } else {
                    // refused for good: not sent again (firing ones are re-sent on schedule)
                    self.outbox.delivered(&batch, now);
                    self.attempt = 0;
                    self.not_before = 0;
                    self.log.log("alertmanager refused", || {
                        format!("{} alerts refused: {f}; not retried", batch.len())
                    });
                }
                false
            }
        };
        self.metrics.queue.set(self.outbox.len() as i64);
        ok
    }

    /// Sends what is due until delivered or `until` passes.
    async fn flush(mut self, until: Instant) {
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero()
                || self
                    .outbox
                    .next_due()
                    .is_none_or(|t| t > crate::wallclock::wall_ms())
            {
                break;
            }
            if !self.round(left.min(self.timeout)).await && self.attempt > 0 {
                let wait =
                    backoff(self.attempt).min(until.saturating_duration_since(Instant::now()));
                tokio::time::sleep(wait).await;
            }
        }
        if self.outbox.resolved_pending() > 0 {
            tracing::warn!(
                "alertmanager: {} resolved alerts not delivered at shutdown",
                self.outbox.resolved_pending()
            );
        }
    }
}

#[cfg(test)]
mod tests;
