//! Synthetic metric series for `deadair demo`, `deadair gen`, tests and benchmarks.
//!
//! Each series has a cadence, a level, a daily-like seasonal swing (period configurable, so a
//! demo "day" can last minutes), Gaussian-ish noise, and scheduled events: spikes, level shifts
//! and silences. Deterministic for a given seed.

use std::collections::BTreeMap;

use crate::proto::Sample;

/// xorshift64*: small, fast, deterministic; good enough for noise.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Standard normal (Box-Muller): true Gaussian tails, for the quality suite.
    pub fn gaussian(&mut self) -> f64 {
        let u = (self.uniform() + 0.5 / (1u64 << 53) as f64).min(1.0);
        let v = self.uniform();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
    /// Approximately standard normal (sum of 4 uniforms, rescaled).
    pub fn normal(&mut self) -> f64 {
        ((0..4).map(|_| self.uniform()).sum::<f64>() - 2.0) * 3f64.sqrt()
    }
}

/// Something that happens to a series at an event time.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// One sample at or after `at` is multiplied by `factor`.
    Spike { at: i64, factor: f64 },
    /// From `at` until `until`, the level moves by `delta`.
    Shift { at: i64, until: i64, delta: f64 },
    /// No samples in `[from, until)`.
    Silence { from: i64, until: i64 },
    /// In `[from, until)` every sample repeats the last value before `from` (a frozen
    /// exporter).
    Stuck { from: i64, until: i64 },
}

#[derive(Clone, Debug)]
pub struct Series {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub cadence_ms: i64,
    pub level: f64,
    /// Seasonal swing, as a fraction of the level.
    pub swing: f64,
    pub period_ms: i64,
    /// Noise standard deviation, as a fraction of the level.
    pub noise: f64,
    pub events: Vec<Event>,
    next_ts: i64,
    spiked: Vec<bool>,
    /// The last value produced (what a stuck series repeats).
    last: f64,
}

impl Series {
    pub fn new(name: &str, labels: &[(&str, &str)], cadence_ms: i64, level: f64) -> Self {
        Self {
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            cadence_ms: cadence_ms.max(1),
            level,
            swing: 0.2,
            period_ms: 86_400_000,
            noise: 0.02,
            events: Vec::new(),
            next_ts: i64::MIN,
            spiked: Vec::new(),
            last: f64::NAN,
        }
    }

    pub fn with_event(mut self, e: Event) -> Self {
        self.events.push(e);
        self
    }

    fn value_at(&mut self, ts: i64, rng: &mut Rng) -> f64 {
        let stuck = self
            .events
            .iter()
            .any(|e| matches!(*e, Event::Stuck { from, until } if ts >= from && ts < until));
        if stuck && self.last.is_finite() {
            return self.last;
        }
        let phase = (ts.rem_euclid(self.period_ms)) as f64 / self.period_ms as f64;
        let mut level = self.level;
        let mut factor = 1.0;
        for (i, e) in self.events.iter().enumerate() {
            match *e {
                Event::Shift { at, until, delta } if ts >= at && ts < until => level += delta,
                Event::Spike { at, factor: f } if ts >= at && !self.spiked[i] => {
                    self.spiked[i] = true;
                    factor *= f;
                }
                _ => {}
            }
        }
        let seasonal = 1.0 + self.swing * (std::f64::consts::TAU * phase).sin();
        let v = (level * seasonal + self.level * self.noise * rng.normal()) * factor;
        self.last = v;
        v
    }

    fn silent_at(&self, ts: i64) -> bool {
        self.events
            .iter()
            .any(|e| matches!(*e, Event::Silence { from, until } if ts >= from && ts < until))
    }
}

/// A set of series producing samples in event-time order.
pub struct Synth {
    pub series: Vec<Series>,
    rng: Rng,
}

impl Synth {
    /// `start` is the event time of every series' first sample (plus a per-series offset).
    pub fn new(mut series: Vec<Series>, start: i64, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        for s in &mut series {
            s.next_ts = start + (rng.uniform() * s.cadence_ms as f64) as i64;
            s.spiked = vec![false; s.events.len()];
        }
        Self { series, rng }
    }

    /// `n` series in `sources` jobs of a few instances each, every one a metric with its own level.
    pub fn fleet(n: usize, cadence_ms: i64, start: i64, seed: u64) -> Self {
        let metrics = ["cpu_usage", "request_rate", "latency_ms", "queue_depth"];
        let series = (0..n)
            .map(|i| {
                let job = format!("job-{}", i % 10);
                let instance = format!("host-{:05}", i / 40);
                let metric = metrics[i % metrics.len()];
                let mut s = Series::new(
                    metric,
                    &[
                        ("instance", &instance),
                        ("job", &job),
                        ("shard", &(i / 4).to_string()),
                    ],
                    cadence_ms,
                    50.0 + (i % 17) as f64 * 10.0,
                );
                s.period_ms = 3_600_000;
                s
            })
            .collect();
        Self::new(series, start, seed)
    }

    /// Every sample with a timestamp up to `until`, in timestamp order, appended to `out`.
    pub fn take_until(&mut self, until: i64, out: &mut Vec<Sample>) {
        let start = out.len();
        for s in &mut self.series {
            while s.next_ts <= until {
                let ts = s.next_ts;
                s.next_ts += s.cadence_ms;
                if s.silent_at(ts) {
                    continue;
                }
                let value = s.value_at(ts, &mut self.rng);
                out.push(Sample {
                    name: s.name.clone(),
                    labels: s.labels.clone(),
                    timestamp: ts,
                    value,
                });
            }
        }
        out[start..].sort_by_key(|s| s.timestamp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_follow_their_cadence_and_events() {
        let s = Series::new("cpu", &[("host", "a")], 1_000, 100.0)
            .with_event(Event::Spike {
                at: 50_000,
                factor: 3.0,
            })
            .with_event(Event::Silence {
                from: 70_000,
                until: 80_000,
            });
        let mut synth = Synth::new(vec![s], 0, 7);
        let mut out = Vec::new();
        synth.take_until(99_999, &mut out);
        assert_eq!(out.len(), 90, "100 ticks minus 10 silent ones");
        assert!(out.windows(2).all(|w| w[0].timestamp < w[1].timestamp));
        let spikes = out.iter().filter(|s| s.value > 200.0).count();
        assert_eq!(spikes, 1);
        assert!(out.iter().all(|s| !(70_000..80_000).contains(&s.timestamp)));
        let mut again = Vec::new();
        Synth::new(
            vec![Series::new("cpu", &[("host", "a")], 1_000, 100.0)],
            0,
            7,
        )
        .take_until(9_999, &mut again);
        assert_eq!(again.len(), 10);
    }
}
