//! What a series' own alerting bursts teach: how often its statistic breaks through its recent
//! peak by alerting, and by how much.
//!
//! A [`super::tail::Tail`] that does not learn its alerting values (the `shift` tail: an anomaly
//! in progress must not become its own normal) keeps its peak below them, so a series whose
//! bursts keep setting records (disk writes that grow batch by batch, a load balancer's
//! periodic spikes) pages for every burst. [`Bursts`] learns those breakthroughs as a Pareto
//! tail above the peak:
//!
//! ```text
//! rate = share of samples where an alerting episode broke through the peak (EWMA, `memory`)
//! xi   = mean log ratio of those breakthroughs to the peak (each capped at ln(ratio cap),
//!        smoothed by `learning`, starting from a light prior of 0.05)
//! P(Y >= y) = rate · (y / peak)^(-1 / xi)        for y above the peak
//! ```
//!
//! The detector takes the larger of this and its tail's own probability, so a series that has
//! never alerted is judged exactly as before (rate 0), and a single anomaly teaches little
//! (the prior and the cap keep `xi` small): only repeated bursts make the next one ordinary.
//! State: 12 bytes.

use serde::{Deserialize, Serialize};

/// `xi` before the first breakthrough: a light tail (a ratio of 2 is then e^-14 as likely
/// as breaking through at all).
const PRIOR: f64 = 0.05;

/// How a [`Bursts`] learns (from the rule's `[rule.detectors.shift]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BurstParams {
    /// Smoothing factor of `xi` per breakthrough (0: off).
    pub learning: f64,
    /// ln of the largest ratio to the peak one breakthrough teaches.
    pub log_cap: f64,
    /// Memory of the rate, samples.
    pub memory: f64,
}

/// A statistic's alerting breakthroughs of its recent peak (12 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Bursts {
    /// Breakthroughs per sample.
    rate: f32,
    /// Mean log ratio of a breakthrough to the peak it broke (0: none yet).
    xi: f32,
    /// Whether the previous sample alerted (an episode counts once).
    open: bool,
}

impl Bursts {
    /// `P(Y >= y)` for `y` above `peak` (0 before any breakthrough).
    #[inline]
    pub fn p(&self, y: f64, peak: f64) -> f64 {
        let xi = f64::from(self.xi);
        if xi <= 0.0 || peak <= 0.0 || y <= peak {
            return 0.0;
        }
        f64::from(self.rate) * (-(y / peak).ln() / xi).exp()
    }

    /// Learns one sample: `y`, the `peak` it was judged against, and whether it `alerted`.
    #[inline]
    pub fn learn(&mut self, y: f64, peak: f64, alerted: bool, p: &BurstParams) {
        if p.learning <= 0.0 {
            return;
        }
        let first = alerted && !self.open && peak > 0.0 && y > peak && y.is_finite();
        self.open = alerted;
        if !first && self.rate == 0.0 {
            // a series that has not broken through (most of them): nothing to learn or decay
            return;
        }
        let rate = f64::from(self.rate);
        let hit = if first { 1.0 } else { 0.0 };
        self.rate = super::to_f32(rate + (hit - rate) / p.memory);
        if first {
            let l = (y / peak).ln().min(p.log_cap);
            let xi = if self.xi > 0.0 {
                f64::from(self.xi)
            } else {
                PRIOR
            };
            self.xi = super::to_f32(xi + p.learning * (l - xi));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> BurstParams {
        // the shipped defaults
        BurstParams {
            learning: 0.2,
            log_cap: 2f64.ln(),
            memory: 3000.0,
        }
    }

    #[test]
    fn nothing_is_learned_before_a_breakthrough() {
        let mut b = Bursts::default();
        for _ in 0..1000 {
            b.learn(5.0, 1.0, false, &params());
        }
        assert_eq!(b.p(2.0, 1.0), 0.0);
    }

    #[test]
    fn repeated_bursts_become_ordinary_and_one_teaches_little() {
        let p = params();
        let mut b = Bursts::default();
        // one alerting episode of three samples, 3 times the peak: counted once
        for _ in 0..3 {
            b.learn(3.0, 1.0, true, &p);
        }
        b.learn(1.0, 1.0, false, &p);
        // a second burst like it still pages at a one-minute series' budget (~1e-6)
        let once = b.p(3.0, 1.0);
        assert!(once > 0.0 && once < 1e-6, "{once}");
        for _ in 0..5 {
            for _ in 0..100 {
                b.learn(0.5, 1.0, false, &p);
            }
            b.learn(3.0, 1.0, true, &p);
            b.learn(0.5, 1.0, false, &p);
        }
        // six bursts in ~500 samples: the next one like them is about 1 in 1000
        let six = b.p(3.0, 1.0);
        assert!(six > 1e-4, "{six}");
        // a burst far beyond them is still improbable
        assert!(b.p(1e6, 1.0) < 1e-7, "{}", b.p(1e6, 1.0));
        // and nothing below the peak is judged
        assert_eq!(b.p(0.9, 1.0), 0.0);
    }

    #[test]
    fn off_learns_nothing() {
        let p = BurstParams {
            learning: 0.0,
            ..params()
        };
        let mut b = Bursts::default();
        b.learn(3.0, 1.0, true, &p);
        assert_eq!(b, Bursts::default());
    }
}
