//! The detection-quality suite: how often a model pages on healthy series, and how much of what
//! matters it catches, measured on series we generate (our kinds, our seeds), never on a
//! benchmark's labels.
//!
//! - **Stationary kinds** ([`Kind`]): thirteen kinds of healthy series, one sample a minute for
//!   `days` days. Every anomaly or stuck alert on them is false. Reported: false alerts per
//!   series-day after the first day, and alerts per series during the first day (a new series).
//!   [`Kind::HARD`] holds kinds beyond the goals (a batch job's bursts), reported apart.
//! - **Events** ([`EventKind`]): one event injected into each series of a base kind, at a random
//!   minute of its third day. Reported: the share of series where an alert of the right kind
//!   fires within the event's delay (in samples, counted from the event's first sample), and the
//!   median delay of those caught.
//!
//! `deadair quality` prints the table; `tests/quality.rs` asserts the goals on it.

use std::sync::Arc;

use crate::alert::{Alert, AlertKind, AlertStatus};
use crate::engine::Engine;
use crate::model::Model;
use crate::synth::Rng;

/// One minute, the suite's cadence.
pub const MINUTE_MS: i64 = 60_000;
/// Samples per day at that cadence.
pub const DAY: usize = 1440;
/// 2026-01-01T00:00:00Z: the suite's first sample.
pub const START_MS: i64 = 1_767_225_600_000;

/// A kind of healthy series.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// 50 + N(0, 2).
    Gaussian,
    /// 50 + Student-t with 3 degrees of freedom (heavy tails).
    StudentT3,
    /// Request latency: log-normal around 120 ms (σ = 0.4 in logs).
    LogNormal,
    /// Mostly 0; 3 % of minutes a count from 1 to 6.
    SparseCounts,
    /// Poisson counts with mean 20.
    Poisson,
    /// Two states (0 and 1), each minute switching with probability 5 %.
    Flapping,
    /// Coarse integers: round(N(5, 0.8)).
    Quantised,
    /// Autocorrelated: 100 + AR(1) with φ = 0.95, innovations N(0, 1).
    Ar1,
    /// A daily cycle: 50 + 20 sin(2π t / day + phase) + N(0, 1).
    DailySine,
    /// Always 42.
    Constant,
    /// CPU utilisation, percent: 100 / (1 + e^-(N(-1, 0.5))) (bounded, skewed).
    Percent,
    /// A slow wander: 100 + Ornstein-Uhlenbeck with a 500-minute mean reversion.
    Drift,
    /// Requests per minute with a daily cycle: Poisson with a mean from 50 at night to 450 at
    /// the peak (so the noise grows and shrinks with the load).
    DailyLoad,
    /// Disk writes of a batch job, bytes per minute: log-normal around 2 MB (σ = 0.5 in logs),
    /// and about every two hours (each minute with probability 1/120) a burst of 2 to 4
    /// minutes, of 20 MB to 400 MB (log-uniform), so bursts keep setting new records.
    Bursts,
}

impl Kind {
    /// The kinds the false-alarm goals are measured on.
    pub const ALL: [Kind; 13] = [
        Kind::Gaussian,
        Kind::StudentT3,
        Kind::LogNormal,
        Kind::SparseCounts,
        Kind::Poisson,
        Kind::Flapping,
        Kind::Quantised,
        Kind::Ar1,
        Kind::DailySine,
        Kind::Constant,
        Kind::Percent,
        Kind::Drift,
        Kind::DailyLoad,
    ];

    /// Healthy kinds beyond the goals, measured and shown apart: shapes the default model is
    /// known to page on (docs/detection-quality.md says how often, and why).
    pub const HARD: [Kind; 1] = [Kind::Bursts];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Gaussian => "gaussian",
            Kind::StudentT3 => "student_t3",
            Kind::LogNormal => "lognormal_latency",
            Kind::SparseCounts => "sparse_counts",
            Kind::Poisson => "poisson_counts",
            Kind::Flapping => "two_state_flapping",
            Kind::Quantised => "coarse_quantised",
            Kind::Ar1 => "ar1_autocorrelated",
            Kind::DailySine => "daily_sine",
            Kind::Constant => "constant",
            Kind::Percent => "cpu_percent",
            Kind::Drift => "slow_drift",
            Kind::DailyLoad => "daily_load_counts",
            Kind::Bursts => "batch_bursts",
        }
    }

    /// The level a spike or shift of `k` sd is measured from, and the sd (of the noise around
    /// the level), for the kinds events are injected into.
    fn sd(self) -> f64 {
        if self == Kind::Gaussian {
            2.0
        } else {
            1.0
        }
    }
}

/// A series of one kind: its generator state.
#[derive(Clone, Debug)]
pub struct Generator {
    kind: Kind,
    rng: Rng,
    /// AR(1) / drift / flapping state.
    state: f64,
    phase: f64,
}

impl Generator {
    pub fn new(kind: Kind, seed: u64) -> Self {
        let mut rng = Rng::new(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5eed);
        let phase = rng.uniform() * std::f64::consts::TAU;
        let state = match kind {
            Kind::Ar1 => rng.gaussian() * (1.0f64 / (1.0 - 0.95 * 0.95)).sqrt(),
            Kind::Flapping => f64::from(u8::from(rng.uniform() < 0.5)),
            Kind::Drift => rng.gaussian() * (2.0f64 * 500.0).sqrt() * 0.2,
            _ => 0.0,
        };
        Self {
            kind,
            rng,
            state,
            phase,
        }
    }

    /// The noise-free level at sample `i` (the daily cycle; the mean elsewhere).
    pub fn level(&self, i: usize) -> f64 {
        match self.kind {
            Kind::DailySine => {
                50.0 + 20.0 * ((i as f64 / DAY as f64) * std::f64::consts::TAU + self.phase).sin()
            }
            Kind::DailyLoad => {
                250.0 + 200.0 * ((i as f64 / DAY as f64) * std::f64::consts::TAU + self.phase).sin()
            }
            Kind::Gaussian => 50.0,
            Kind::Ar1 => 100.0,
            _ => 0.0,
        }
    }

    /// The value at sample `i` (call with consecutive `i`).
    pub fn next(&mut self, i: usize) -> f64 {
        let level = self.level(i);
        let r = &mut self.rng;
        match self.kind {
            Kind::Gaussian => 50.0 + 2.0 * r.gaussian(),
            Kind::StudentT3 => {
                let z = r.gaussian();
                let chi: f64 = (0..3).map(|_| r.gaussian().powi(2)).sum();
                50.0 + z / (chi / 3.0).sqrt()
            }
            Kind::LogNormal => (120f64.ln() + 0.4 * r.gaussian()).exp(),
            Kind::SparseCounts => {
                if r.uniform() < 0.03 {
                    (1 + (r.uniform() * 6.0) as u32).min(6) as f64
                } else {
                    0.0
                }
            }
            Kind::Poisson => poisson(r, 20.0),
            Kind::DailyLoad => poisson(r, level),
            Kind::Flapping => {
                if r.uniform() < 0.05 {
                    self.state = 1.0 - self.state;
                }
                self.state
            }
            Kind::Quantised => (5.0 + 0.8 * r.gaussian()).round(),
            Kind::Ar1 => {
                self.state = 0.95 * self.state + r.gaussian();
                100.0 + self.state
            }
            Kind::DailySine => level + r.gaussian(),
            Kind::Constant => 42.0,
            Kind::Percent => 100.0 / (1.0 + (-(-1.0 + 0.5 * r.gaussian())).exp()),
            Kind::Drift => {
                self.state += -self.state / 500.0 + 0.2 * r.gaussian();
                100.0 + self.state
            }
            Kind::Bursts => {
                // state: minutes left in the current burst; phase: its size
                if self.state <= 0.0 && r.uniform() < 1.0 / 120.0 {
                    self.state = (2.0 + r.uniform() * 3.0).floor();
                    self.phase = (20e6f64.ln() + r.uniform() * 20f64.ln()).exp();
                }
                let background = (2e6f64.ln() + 0.5 * r.gaussian()).exp();
                if self.state > 0.0 {
                    self.state -= 1.0;
                    background + self.phase * (0.8 + 0.4 * r.uniform())
                } else {
                    background
                }
            }
        }
    }
}

/// A Poisson draw with mean `lambda`: Knuth's product of uniforms below 30, a rounded normal
/// (continuity-corrected) above.
fn poisson(r: &mut Rng, lambda: f64) -> f64 {
    if lambda < 30.0 {
        let limit = (-lambda).exp();
        let (mut k, mut prod) = (0.0, r.uniform());
        while prod > limit {
            k += 1.0;
            prod *= r.uniform();
        }
        k
    } else {
        (lambda + lambda.sqrt() * r.gaussian()).round().max(0.0)
    }
}

/// What an event does to a series.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum EventKind {
    /// One sample set to the level + 6 sd.
    Spike6,
    /// One sample set to the level ± 8 to 10 sd (sign and size drawn per series).
    Spike8to10,
    /// From the event on, the level moves by 4 sd (up or down).
    Shift4,
    /// ... by 5 sd.
    Shift5,
    /// From the event on, the noise sd doubles (variance × 4).
    Variance4,
    /// From the event on, the value repeats its last one for 60 samples, then varies again.
    Stuck,
    /// One sample set to the daily cycle + 6 sd, where that stays inside the day's range.
    DailySpike,
}

/// One event of the suite: what, on which kind, within which delay, and the share of series it
/// must be caught in (the goal).
#[derive(Clone, Copy, Debug)]
pub struct EventCase {
    pub event: EventKind,
    pub base: Kind,
    /// Caught if an alert fires at most this many samples after the event's first sample
    /// (delay < `within`).
    pub within: usize,
    pub goal: f64,
}

impl EventKind {
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Spike6 => "spike 6 sd",
            EventKind::Spike8to10 => "spike 8-10 sd up/down",
            EventKind::Shift4 => "level shift 4 sd",
            EventKind::Shift5 => "level shift 5 sd",
            EventKind::Variance4 => "variance x4",
            EventKind::Stuck => "stuck (repeats)",
            EventKind::DailySpike => "daily-profile spike 6 sd",
        }
    }

    /// The alert kind that counts as catching it.
    pub fn alert_kind(self) -> AlertKind {
        match self {
            EventKind::Stuck => AlertKind::Stuck,
            _ => AlertKind::Anomaly,
        }
    }
}

/// The events of the suite and their goals (issue #13).
pub const EVENTS: [EventCase; 12] = [
    EventCase {
        event: EventKind::Spike6,
        base: Kind::Gaussian,
        within: 2,
        goal: 0.90,
    },
    EventCase {
        event: EventKind::Spike8to10,
        base: Kind::Gaussian,
        within: 1,
        goal: 0.96,
    },
    EventCase {
        event: EventKind::Shift4,
        base: Kind::Gaussian,
        within: 15,
        goal: 0.90,
    },
    EventCase {
        event: EventKind::Shift5,
        base: Kind::Gaussian,
        within: 10,
        goal: 0.96,
    },
    EventCase {
        event: EventKind::Variance4,
        base: Kind::Gaussian,
        within: 30,
        goal: 0.80,
    },
    EventCase {
        event: EventKind::Stuck,
        base: Kind::Gaussian,
        within: 30,
        goal: 0.80,
    },
    EventCase {
        event: EventKind::Stuck,
        base: Kind::LogNormal,
        within: 30,
        goal: 0.80,
    },
    EventCase {
        event: EventKind::Stuck,
        base: Kind::Poisson,
        within: 30,
        goal: 0.80,
    },
    EventCase {
        event: EventKind::Stuck,
        base: Kind::Ar1,
        within: 30,
        goal: 0.80,
    },
    EventCase {
        event: EventKind::Stuck,
        base: Kind::DailySine,
        within: 30,
        goal: 0.80,
    },
    EventCase {
        event: EventKind::Stuck,
        base: Kind::Percent,
        within: 30,
        goal: 0.80,
    },
    EventCase {
        event: EventKind::DailySpike,
        base: Kind::DailySine,
        within: 2,
        goal: 0.80,
    },
];

/// Suite size.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Series per stationary kind.
    pub series: usize,
    /// Series per event case.
    pub event_series: usize,
    /// Days per series (at least 3: events happen on the third).
    pub days: usize,
    pub seed: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            series: 40,
            event_series: 100,
            days: 3,
            seed: 1,
        }
    }
}

/// Results for one stationary kind.
#[derive(Clone, Debug)]
pub struct KindResult {
    pub kind: Kind,
    pub series: usize,
    /// Anomaly and stuck alerts after the first day, per series-day.
    pub false_per_day: f64,
    /// Anomaly and stuck alerts during the first day, per series.
    pub day1: f64,
}

/// Results for one event case.
#[derive(Clone, Debug)]
pub struct EventResult {
    pub case: EventCase,
    pub series: usize,
    /// Share of series caught within the case's delay.
    pub caught: f64,
    /// Median delay of those caught, samples.
    pub median_delay: Option<usize>,
    /// Other anomaly or stuck alerts on these series after their first day, per series-day.
    pub false_per_day: f64,
}

#[derive(Clone, Debug)]
pub struct Report {
    pub kinds: Vec<KindResult>,
    /// The kinds of [`Kind::HARD`], not in the mean or the worst.
    pub hard: Vec<KindResult>,
    pub events: Vec<EventResult>,
    pub options: Options,
}

impl Report {
    /// False alerts per series-day after day 1, averaged over the kinds.
    pub fn mean_false_per_day(&self) -> f64 {
        self.kinds.iter().map(|k| k.false_per_day).sum::<f64>() / self.kinds.len().max(1) as f64
    }

    /// The kind with the most false alerts per series-day.
    pub fn worst(&self) -> Option<&KindResult> {
        self.kinds
            .iter()
            .max_by(|a, b| a.false_per_day.total_cmp(&b.false_per_day))
    }

    /// The report as one plain-text table.
    pub fn table(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let o = &self.options;
        let _ = writeln!(
            s,
            "{:<28} {:>7} {:>18} {:>14} {:>14} {:>13}",
            "kind / event",
            "series",
            "false/series-day",
            "day-1 alerts",
            "caught (goal)",
            "median delay"
        );
        // a row of healthy series: name, series, false alerts per series-day, day-1 alerts
        let kind_row =
            |s: &mut String, name: &str, series: usize, false_per_day: f64, day1: f64| {
                let _ = writeln!(
                    s,
                    "{:<28} {:>7} {:>18.4} {:>14.3} {:>14} {:>13}",
                    name, series, false_per_day, day1, "-", "-"
                );
            };
        for k in &self.kinds {
            kind_row(&mut s, k.kind.name(), k.series, k.false_per_day, k.day1);
        }
        let worst = self.worst();
        kind_row(
            &mut s,
            "mean of the kinds",
            self.kinds.iter().map(|k| k.series).sum::<usize>(),
            self.mean_false_per_day(),
            self.kinds.iter().map(|k| k.day1).sum::<f64>() / self.kinds.len().max(1) as f64,
        );
        if let Some(w) = worst {
            let _ = writeln!(
                s,
                "{:<28} {:>7} {:>18.4}",
                format!("worst: {}", w.kind.name()),
                "",
                w.false_per_day
            );
        }
        for k in &self.hard {
            let name = format!("{} (beyond the goals)", k.kind.name());
            kind_row(&mut s, &name, k.series, k.false_per_day, k.day1);
        }
        for e in &self.events {
            let _ = writeln!(
                s,
                "{:<28} {:>7} {:>18.4} {:>14} {:>14} {:>13}",
                format!(
                    "{} ({}, <{})",
                    e.case.event.name(),
                    short(e.case.base),
                    e.case.within
                ),
                e.series,
                e.false_per_day,
                "-",
                format!("{:.0} % ({:.0} %)", e.caught * 100.0, e.case.goal * 100.0),
                e.median_delay.map_or("-".into(), |d| d.to_string())
            );
        }
        let _ = writeln!(
            s,
            "{} series per kind, {} per event, {} days at 1-minute cadence, seed {}; false alerts count \
             anomaly and stuck alerts after day 1 (events: outside the event and what it leaves)",
            o.series, o.event_series, o.days, o.seed
        );
        s
    }
}

fn short(k: Kind) -> &'static str {
    match k {
        Kind::LogNormal => "lognormal",
        Kind::StudentT3 => "t3",
        Kind::Ar1 => "ar1",
        Kind::DailySine => "daily sine",
        Kind::Percent => "cpu %",
        Kind::Poisson => "poisson",
        other => other.name(),
    }
}

/// Feeds `n` series of `kind` through one engine for `days` days; `inject(series, i, value)`
/// may replace a value. Returns the anomaly and stuck firing events with the series index
/// (from the `i` label) and the sample index of the event.
fn run_kind(
    model: &Arc<Model>,
    kind: Kind,
    n: usize,
    days: usize,
    seed: u64,
    mut inject: impl FnMut(usize, usize, &Generator, f64) -> f64,
) -> Vec<(usize, usize, AlertKind)> {
    let mut engine = Engine::new(model.clone());
    let mut gens: Vec<Generator> = (0..n)
        .map(|s| Generator::new(kind, series_seed(seed, s)))
        .collect();
    let labels: Vec<[(&str, String); 2]> = (0..n)
        .map(|s| [("i", s.to_string()), ("kind", kind.name().to_string())])
        .collect();
    let mut out: Vec<Alert> = Vec::new();
    let mut fired = Vec::new();
    for i in 0..days * DAY {
        let ts = START_MS + i as i64 * MINUTE_MS;
        for (s, g) in gens.iter_mut().enumerate() {
            let v = g.next(i);
            let v = inject(s, i, g, v);
            let l = [
                (labels[s][0].0, labels[s][0].1.as_str()),
                (labels[s][1].0, labels[s][1].1.as_str()),
            ];
            engine.ingest("metric", &l[..], ts, v, &mut out);
        }
        engine.advance(ts, &mut out);
        for a in out.drain(..) {
            if a.state == AlertStatus::Firing
                && matches!(a.kind, AlertKind::Anomaly | AlertKind::Stuck)
            {
                let s = a
                    .labels
                    .iter()
                    .find(|(k, _)| k == "i")
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(usize::MAX);
                let at = ((a.event_time - START_MS) / MINUTE_MS) as usize;
                fired.push((s, at, a.kind));
            }
        }
    }
    fired
}

/// Runs the whole suite with `model`.
pub fn run(model: &Arc<Model>, o: Options, mut progress: impl FnMut(&str)) -> Report {
    let days = o.days.max(3);
    let mut kinds = Vec::new();
    for (k, &kind) in Kind::ALL.iter().enumerate() {
        progress(kind.name());
        kinds.push(run_stationary(model, k, kind, &o, days));
    }
    let mut hard = Vec::new();
    for (k, &kind) in Kind::HARD.iter().enumerate() {
        progress(kind.name());
        hard.push(run_stationary(model, Kind::ALL.len() + k, kind, &o, days));
    }
    let mut events = Vec::new();
    for (c, case) in EVENTS.iter().enumerate() {
        progress(case.event.name());
        events.push(run_event(model, c, case, &o, days));
    }
    Report {
        kinds,
        hard,
        events,
        options: Options { days, ..o },
    }
}

/// The `k`-th stationary kind: `o.series` healthy series for `days` days, every anomaly or
/// stuck alert counted as false.
fn run_stationary(
    model: &Arc<Model>,
    k: usize,
    kind: Kind,
    o: &Options,
    days: usize,
) -> KindResult {
    let fired = run_kind(
        model,
        kind,
        o.series,
        days,
        o.seed ^ ((k as u64) << 32),
        |_, _, _, v| v,
    );
    let day1 = fired.iter().filter(|f| f.1 < DAY).count();
    let later = fired.len() - day1;
    KindResult {
        kind,
        series: o.series,
        false_per_day: later as f64 / (o.series * (days - 1)) as f64,
        day1: day1 as f64 / o.series as f64,
    }
}

/// Where an event goes in one series: its first sample, its sign and its size (in sd).
type Plan = (usize, f64, f64);

/// The `c`-th event case: planned, injected into `o.event_series` series of its base kind,
/// and scored.
fn run_event(
    model: &Arc<Model>,
    c: usize,
    case: &EventCase,
    o: &Options,
    days: usize,
) -> EventResult {
    let seed = o.seed.wrapping_mul(7919) ^ ((c as u64 + 100) << 32);
    let plan = event_plan(case, seed, o.event_series);
    let mut injector = Injector::new(case, &plan);
    let fired = run_kind(
        model,
        case.base,
        o.event_series,
        days,
        seed,
        |s, i, g, v| injector.apply(s, i, g, v),
    );
    score_event(case, &plan, &fired, o.event_series, days)
}

/// Per series of an event case seeded `seed`: where its event starts (a random minute of the
/// third day), its sign and its size.
fn event_plan(case: &EventCase, seed: u64, n: usize) -> Vec<Plan> {
    let mut rng = Rng::new(seed ^ 0xe7e7);
    let mut plan: Vec<Plan> = (0..n)
        .map(|_| {
            let start = 2 * DAY + 60 + (rng.uniform() * (DAY - 240) as f64) as usize;
            let sign = if rng.uniform() < 0.5 { -1.0 } else { 1.0 };
            let size = 8.0 + 2.0 * rng.uniform();
            (start, sign, size)
        })
        .collect();
    if case.event == EventKind::DailySpike {
        // move each spike to a minute where the cycle is low enough for level + 6 sd to stay
        // inside the day's range (the cycle's phase is per series: found below)
        for (s, p) in plan.iter_mut().enumerate() {
            let g = Generator::new(case.base, series_seed(seed, s));
            let offset = p.0 - 2 * DAY;
            if let Some(i) = (0..DAY - 2)
                .map(|j| 2 * DAY + (offset + j) % (DAY - 2))
                .find(|&i| {
                    g.level(i) + 6.0 * case.base.sd() <= 50.0 + 20.0 - 2.0 * case.base.sd()
                        && g.level(i) < 50.0
                })
            {
                p.0 = i;
            }
        }
    }
    plan
}

/// Puts an event case's event into the values of its series, as planned.
struct Injector<'a> {
    event: EventKind,
    sd: f64,
    plan: &'a [Plan],
    /// Per series: the value a stuck event repeats.
    frozen: Vec<f64>,
    /// Per series: the last value given out.
    last: Vec<f64>,
}

impl<'a> Injector<'a> {
    fn new(case: &EventCase, plan: &'a [Plan]) -> Self {
        Injector {
            event: case.event,
            sd: case.base.sd(),
            plan,
            frozen: vec![f64::NAN; plan.len()],
            last: vec![f64::NAN; plan.len()],
        }
    }

    /// Sample `i` of series `s` (generated by `g` as `v`), with the event in it.
    fn apply(&mut self, s: usize, i: usize, g: &Generator, v: f64) -> f64 {
        let (start, sign, size) = self.plan[s];
        let sd = self.sd;
        let out = if i < start {
            v
        } else {
            let level = g.level(i);
            match self.event {
                EventKind::Spike6 if i == start => level + 6.0 * sd,
                EventKind::Spike8to10 if i == start => level + sign * size * sd,
                EventKind::DailySpike if i == start => level + 6.0 * sd,
                EventKind::Shift4 => v + sign * 4.0 * sd,
                EventKind::Shift5 => v + sign * 5.0 * sd,
                EventKind::Variance4 => level + 2.0 * (v - level),
                EventKind::Stuck if i < start + 60 => {
                    if i == start {
                        self.frozen[s] = self.last[s];
                    }
                    self.frozen[s]
                }
                _ => v,
            }
        };
        self.last[s] = out;
        out
    }
}

/// An event case's result from the alerts fired on its `n` series: the share caught within
/// its delay, the median delay, and the false alerts outside the event.
fn score_event(
    case: &EventCase,
    plan: &[Plan],
    fired: &[(usize, usize, AlertKind)],
    n: usize,
    days: usize,
) -> EventResult {
    let kind = case.event.alert_kind();
    let mut caught = 0;
    let mut delays = Vec::new();
    let mut other = 0;
    for (s, &(start, _, _)) in plan.iter().enumerate() {
        let mine: Vec<&(usize, usize, AlertKind)> = fired.iter().filter(|f| f.0 == s).collect();
        let first = mine
            .iter()
            .filter(|f| f.2 == kind && f.1 >= start)
            .map(|f| f.1 - start)
            .min();
        if let Some(d) = first.filter(|&d| d < case.within) {
            caught += 1;
            delays.push(d);
        }
        // false: after day 1, before the event or after its span (a level shift or a
        // variance change is a lasting new normal: its own later alerts are not counted)
        let end = start + span(case.event);
        other += mine
            .iter()
            .filter(|f| f.1 >= DAY && (f.1 < start || f.1 >= end))
            .count();
    }
    delays.sort_unstable();
    EventResult {
        case: *case,
        series: n,
        caught: caught as f64 / n as f64,
        median_delay: delays.get(delays.len().saturating_sub(1) / 2).copied(),
        false_per_day: other as f64 / (n * (days - 1)) as f64,
    }
}

/// The generator seed of series `s` of a run seeded `seed`.
fn series_seed(seed: u64, s: usize) -> u64 {
    seed.wrapping_mul(1_000_003).wrapping_add(s as u64)
}

/// Samples after an event's start whose alerts belong to it: a spike's next minute, a stuck
/// hour and the hour after it (the value jumps to where the series went meanwhile), and the
/// rest of the run for a shift or a variance change (a lasting new normal).
fn span(e: EventKind) -> usize {
    match e {
        EventKind::Spike6 | EventKind::Spike8to10 | EventKind::DailySpike => 2,
        EventKind::Stuck => 120,
        EventKind::Shift4 | EventKind::Shift5 | EventKind::Variance4 => usize::MAX / 2,
    }
}
