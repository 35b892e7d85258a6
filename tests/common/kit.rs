//! Test kit for engine-level scenarios: deterministic noise, sample sources, replay with an
//! explicit `now`, alert filters, and a walker for time-stepped tables (in the manner of
//! Prometheus rule unit tests: at time `t`, this input, these alert events).
//!
//! Everything here goes through the public API of `deadair`.

use std::sync::Arc;

use deadair::{Alert, AlertKind, AlertStatus, Engine, Model};

/// One second, in ms.
pub const S: i64 = 1_000;
/// The engine scenarios' origin of event time, ms (2023-11-14T22:13:20Z).
pub const T0: i64 = 1_700_000_000_000;

/// Deterministic noise in [-1, 1) (64-bit golden-ratio multiplier; the Kafka, state and
/// replay tests' inputs).
pub fn noise(i: u64) -> f64 {
    ((i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) % 1000) as f64 / 500.0 - 1.0
}

/// Deterministic noise in [-1, 1) (Knuth's 32-bit multiplier; the engine scenarios' inputs).
/// Not the same sequence as [`noise`]: each keeps the inputs its tests were written against.
pub fn knuth_noise(i: u64) -> f64 {
    ((i.wrapping_mul(2_654_435_761) >> 16) % 1000) as f64 / 500.0 - 1.0
}

/// One sample of a scenario's input: metric `up{instance, job}`.
#[derive(Clone, Debug)]
pub struct Smp {
    pub ts: i64,
    pub job: String,
    pub instance: String,
    pub value: f64,
}

/// `n` series of `job`, one sample every `every` ms from `from` until before `to`; series `k`
/// (`instance="{job}-{k}"`) is offset by `k × spread / n` ms (sources report at different
/// phases). Values are 50 plus [`knuth_noise`].
pub fn source(job: &str, n: usize, every: i64, spread: i64, from: i64, to: i64) -> Vec<Smp> {
    let mut v = Vec::new();
    for k in 0..n {
        let mut ts = from + (k as i64 * spread) / n as i64;
        while ts < to {
            v.push(Smp {
                ts,
                job: job.into(),
                instance: format!("{job}-{k}"),
                value: 50.0 + knuth_noise(ts as u64 ^ k as u64),
            });
            ts += every;
        }
    }
    v
}

/// An engine with the default model.
pub fn engine() -> Engine {
    Engine::new(Arc::new(Model::default_model()))
}

/// Feeds one sample (no clock advance).
pub fn ingest(e: &mut Engine, s: &Smp, out: &mut Vec<Alert>) {
    e.ingest(
        "up",
        &[("instance", s.instance.as_str()), ("job", s.job.as_str())],
        s.ts,
        s.value,
        out,
    );
}

/// Feeds samples in the given order with the replay clock rule: advance to `ts - 1` before
/// each sample.
pub fn feed(e: &mut Engine, input: &[Smp], out: &mut Vec<Alert>) {
    for s in input {
        e.advance(s.ts - 1, out);
        ingest(e, s, out);
    }
}

/// Replays samples in event-time order ([`feed`]), then advances to `end`; returns the alert
/// events.
pub fn replay(e: &mut Engine, mut input: Vec<Smp>, end: i64) -> Vec<Alert> {
    input.sort_by_key(|s| s.ts);
    let mut out = Vec::new();
    feed(e, &input, &mut out);
    e.advance(end, &mut out);
    out
}

/// Alert events of this kind and state.
pub fn count(alerts: &[Alert], kind: AlertKind, state: AlertStatus) -> usize {
    alerts
        .iter()
        .filter(|a| a.kind == kind && a.state == state)
        .count()
}

/// The value of label `k` of an alert event.
pub fn label<'a>(a: &'a Alert, k: &str) -> Option<&'a str> {
    a.labels
        .iter()
        .find(|(lk, _)| lk == k)
        .map(|(_, v)| v.as_str())
}

/// A series of a table: metric name and labels in key order.
pub type Series<'a> = (&'a str, &'a [(&'a str, &'a str)]);

/// What happens at a table row's time `t` (seconds after the table's origin).
pub enum Step<'a> {
    /// `Every(series, every, until)`: from `t` until before `until` s, every `every` s,
    /// advance to the instant - 1 ms, then one sample (value 1) of each series.
    Every(&'a [Series<'a>], i64, i64),
    /// Advance the engine clock to `t`.
    Advance,
    /// Declare these series expected (an inventory) at `t`; each must be new to the engine.
    Expect(&'a [Series<'a>]),
    /// Tombstone these series at `t`; each must be known to the engine.
    Unexpect(&'a [Series<'a>]),
}

/// An expected alert event: kind, state, the series (the value of the table's `key` label,
/// `""` without it), event time in seconds after the table's origin (rounded toward zero).
pub type Event<'a> = (AlertKind, AlertStatus, &'a str, i64);

/// One row: at `t`, this step, exactly these events (of the table's kinds), in this order.
pub type Row<'a> = (i64, Step<'a>, &'a [Event<'a>]);

/// How a table's rows read: times relative to `origin` (ms), series named by label `key`,
/// events of other kinds than `kinds` not compared.
pub struct Table<'a> {
    pub origin: i64,
    pub key: &'a str,
    pub kinds: &'a [AlertKind],
}

impl Table<'_> {
    /// Runs `rows` on `e` in order; after each row, checks the events it produced. Returns all
    /// events (of every kind) of all rows.
    pub fn walk(&self, e: &mut Engine, rows: &[Row]) -> Vec<Alert> {
        let at = |t: i64| self.origin + t * S;
        let mut all = Vec::new();
        for (row, (t, step, expected)) in rows.iter().enumerate() {
            let mut out = Vec::new();
            match step {
                Step::Every(series, every, until) => {
                    let mut i = *t;
                    while i < *until {
                        e.advance(at(i) - 1, &mut out);
                        for (name, labels) in *series {
                            e.ingest(name, *labels, at(i), 1.0, &mut out);
                        }
                        i += every;
                    }
                }
                Step::Advance => e.advance(at(*t), &mut out),
                Step::Expect(series) => {
                    for (name, labels) in *series {
                        assert!(
                            e.expect(name, *labels, at(*t), &mut out),
                            "row {row} (t = {t} s): {name}{labels:?} was already known"
                        );
                    }
                }
                Step::Unexpect(series) => {
                    for (name, labels) in *series {
                        assert!(
                            e.unexpect(name, *labels, at(*t), &mut out),
                            "row {row} (t = {t} s): {name}{labels:?} was not known"
                        );
                    }
                }
            }
            let seen: Vec<(AlertKind, AlertStatus, &str, i64)> = out
                .iter()
                .filter(|a| self.kinds.contains(&a.kind))
                .map(|a| {
                    let who = label(a, self.key).unwrap_or("");
                    (a.kind, a.state, who, (a.event_time - self.origin) / S)
                })
                .collect();
            assert_eq!(seen, *expected, "row {row} (t = {t} s): {out:#?}");
            all.extend(out);
        }
        all
    }
}
