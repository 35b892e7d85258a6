//! Context ("temporal" anomaly): a level the series has never produced in this context: after
//! these levels (a sequence), or at this time of day (a season).
//!
//! The value is quantised into `levels` bands of the range the series showed over its first
//! `learn` samples (after that the bands are fixed; values beyond them get two extra bands on
//! each side). For each order k = 1..=`order` the sequence (level now, level 1 back, ..., level k
//! back) is hashed into a set of [`CONTEXT_BITS`] bits; the raw score is the share of those
//! orders whose sequence had not been seen before (and is remembered from now on). The raw
//! score goes through this detector's own [`likelihood`](super::likelihood) stage, so a series that
//! keeps producing new sequences (a wandering one) stops alarming, while a burst of new sequences
//! on a series that has settled into a habit scores high.
//!
//! With `[season]`, the day is cut into `buckets` parts (by the sample's event time, UTC) and a
//! second set holds, per part, the levels seen in it (each seen level also marks its two
//! neighbours). Once the bands are fixed, a level never seen in this part of the day scores raw
//! 1, through its own likelihood, which starts then too (its warm-up counts from `learn`, and
//! the first day, when every level is new for its part of the day, becomes its habit). The
//! detector's score is the higher of the two likelihoods.
//!
//! Catches: a familiar level at an unfamiliar moment: a daily jump that does not come, a
//! pattern's shape changing, oscillation where there was none, a level change inside the known
//! range, a night that looks like a day. Misses: changes smaller than one band (1/`levels` of
//! the learned range).
//! Cost per sample: `order + 1` multiply-xor steps and `order` bit tests, up to 3 more bit
//! operations for the season, and two likelihood updates (an `erfc` and a `ln` each when above the habit).
//! State: 84 bytes (sequence set 36, bands 8, last levels 4, season set 12, two likelihoods 24).
//! It shares its memory with the rolling window of `zscore` and `mad`, so a rule uses either
//! those or `context`.
//! This is an approximation of the contextual detectors on NAB's scoreboard (CAD OSE, HTM's
//! sequence memory) in fixed memory: the set never forgets, and once it fills up (after some
//! hundreds of distinct sequences) new sequences collide with old ones and score lower.

use serde::Deserialize;

use super::likelihood;
use crate::check;

/// Bits in a series' sequence set: what fits beside the rest of the state in the memory a
/// rolling window uses (see [`super::Memory`]).
pub const CONTEXT_BITS: usize = 288;
const WORDS: usize = CONTEXT_BITS / 32;
/// Bits of the season set: `buckets × (levels + 4)` must fit.
pub const SEASON_BITS: usize = 96;
/// Highest supported `order` (levels kept).
pub const MAX_ORDER: usize = 3;

/// `order`: 1 to [`MAX_ORDER`] past levels (a model-file check).
fn check_order<'de, D: serde::Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    crate::check::int_in(d, 1, MAX_ORDER as i64, |v| {
        format!("expected an order of 1 to {MAX_ORDER} past levels, found {v}")
    })
    .map(|v| v as usize)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Bands the learned range is cut into (2..=64).
    #[serde(default = "default_levels", deserialize_with = "check::levels")]
    pub levels: u32,
    /// Longest sequence hashed, in past levels (1..=3).
    #[serde(default = "default_order", deserialize_with = "check_order")]
    pub order: usize,
    /// Samples whose range sets the bands (>= 2).
    #[serde(default = "default_learn", deserialize_with = "check::warmup")]
    pub learn: usize,
    /// Calibration of the raw score against this series' own rate of new sequences.
    #[serde(default)]
    pub likelihood: likelihood::Params,
    /// Levels by time of day, if set.
    #[serde(default)]
    pub season: Option<Season>,
}

/// `[context.season]`: levels by part of the day.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Season {
    /// Parts of the day (6 is four hours each); `buckets × (levels + 4)` must not exceed 96, so at
    /// most 8 with the default 8 levels.
    #[serde(default = "default_buckets")]
    pub buckets: u32,
    /// Calibration of "a level new for this part of the day" against the series' own rate.
    #[serde(default)]
    pub likelihood: likelihood::Params,
}

fn default_buckets() -> u32 {
    6
}

fn default_levels() -> u32 {
    8
}
fn default_order() -> usize {
    3
}
fn default_learn() -> usize {
    300
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct State {
    bits: [u32; WORDS],
    lo: f32,
    hi: f32,
    /// The last levels, newest first (band index + 2, so 0 is "two bands below").
    last: [u8; MAX_ORDER],
    /// How many of `last` are filled.
    held: u8,
    likelihood: likelihood::State,
    season: [u32; SEASON_BITS / 32],
    season_likelihood: likelihood::State,
}

const SEED: u32 = 1_469_598_103;
const FNV_PRIME: u32 = 16_777_619;

#[inline]
fn mix(h: u32, x: u32) -> u32 {
    (h ^ x).wrapping_mul(FNV_PRIME)
}

/// Sets bit `i` of `bits`; returns whether it was set before.
#[inline]
fn test_and_set(bits: &mut [u32], i: usize) -> bool {
    let (word, bit) = (i / 32, 1u32 << (i % 32));
    let seen = bits[word] & bit != 0;
    bits[word] |= bit;
    seen
}

impl Params {
    /// Model validation: the season set must hold `buckets × (levels + 4)` bits.
    pub fn validate(&self) -> Result<(), check::Invalid> {
        let inputs = [
            Some(&self.likelihood),
            self.season.as_ref().map(|s| &s.likelihood),
        ];
        if inputs
            .into_iter()
            .flatten()
            .any(|l| l.input != likelihood::Input::Score)
        {
            return Err(
                "context: a likelihood's `input` applies to `[rule.likelihood]` only".into(),
            );
        }
        match &self.season {
            Some(s) if !(1..=24).contains(&s.buckets) => Err(format!(
                "`season.buckets` must be 1 to 24 parts of the day, found {}",
                s.buckets
            )
            .into()),
            Some(s) if (s.buckets * (self.levels + 4)) as usize > SEASON_BITS => Err(format!(
                "`season.buckets` × (`levels` + 4) must not exceed {SEASON_BITS} (the season set), \
                 found {} × {}",
                s.buckets,
                self.levels + 4
            )
            .into()),
            _ => Ok(()),
        }
    }

    /// The band of `x` (offset by 2, so below-range values stay non-negative).
    #[inline]
    fn level(&self, st: &State, x: f64) -> u8 {
        let (lo, hi) = (f64::from(st.lo), f64::from(st.hi));
        let width = (hi - lo) / f64::from(self.levels);
        if width > 0.0 {
            let b = ((x - lo) / width)
                .floor()
                .clamp(-2.0, f64::from(self.levels) + 1.0);
            (b + 2.0) as u8
        } else {
            2
        }
    }

    /// Raw score of `x` (share of unseen sequences ending at it), learning it.
    #[inline]
    fn raw(&self, st: &mut State, n: u32, x: f64) -> f64 {
        let x32 = x.clamp(f64::from(f32::MIN), f64::from(f32::MAX)) as f32;
        if n == 0 {
            st.lo = x32;
            st.hi = x32;
        } else if (n as usize) < self.learn {
            st.lo = st.lo.min(x32);
            st.hi = st.hi.max(x32);
        }
        let q = self.level(st, x);
        let mut h = mix(SEED, u32::from(q) + 5);
        // Sequences are written from the first sample, while the bands still move: its
        // likelihood learns the habit of new sequences from the start, so the bands' freezing
        // raises no burst (writing only under fixed bands scored NAB 78.59, but then the set
        // starts empty at `learn` and every series alarms there unless its likelihood restarts
        // too, which cost 3 points: docs/nab-research.md).
        let used = (st.held as usize).min(self.order);
        let mut unseen = 0u32;
        for k in 0..used {
            h = mix(h, u32::from(st.last[k]) + 5 + 16 * (k as u32 + 1));
            if !test_and_set(&mut st.bits, ((h >> 7) as usize) % CONTEXT_BITS) {
                unseen += 1;
            }
        }
        st.last.copy_within(0..MAX_ORDER - 1, 1);
        st.last[0] = q;
        st.held = (st.held + 1).min(MAX_ORDER as u8);
        if used == 0 {
            0.0
        } else {
            f64::from(unseen) / used as f64
        }
    }

    /// Raw season score of level `q` at event time `ts` (1 if new for this part of the day),
    /// learning it (and its neighbours). 0 until the bands are fixed.
    #[inline]
    fn season_raw(&self, season: &Season, st: &mut State, n: u32, q: u8, ts: i64) -> f64 {
        if (n as usize) < self.learn {
            return 0.0;
        }
        let hour = ts.div_euclid(3_600_000).rem_euclid(24) as u32;
        let width = self.levels as usize + 4;
        let base = (hour * season.buckets / 24) as usize * width;
        let q = q as usize;
        let seen = test_and_set(&mut st.season, base + q);
        if q > 0 {
            test_and_set(&mut st.season, base + q - 1);
        }
        if q + 1 < width {
            test_and_set(&mut st.season, base + q + 1);
        }
        if seen {
            0.0
        } else {
            1.0
        }
    }

    /// Scores `x` at event time `ts` (ms) and learns it: the likelihood of the recent rate of new
    /// sequences, or of levels new for the part of the day, whichever is higher. `n` is the
    /// number of samples this series has already learned. `None` during the likelihood's
    /// warm-up.
    #[inline]
    pub fn score_and_learn(&self, st: &mut State, n: u32, x: f64, ts: i64) -> Option<f64> {
        let raw = self.raw(st, n, x);
        let mut score = self.likelihood.update(&mut st.likelihood, n, raw);
        if let Some(season) = &self.season {
            // the season starts once the bands are fixed, and its likelihood with it (so the
            // first day, when every level is new for its part of the day, is its habit)
            if let Some(since) = n.checked_sub(self.learn as u32) {
                let raw = self.season_raw(season, st, n, st.last[0], ts);
                score = score.max(
                    season
                        .likelihood
                        .update(&mut st.season_likelihood, since, raw),
                );
            }
        }
        ((n as usize) >= self.likelihood.warmup).then_some(score)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_fits_beside_the_window() {
        assert_eq!(std::mem::size_of::<State>(), 84);
    }

    #[test]
    fn a_repeating_pattern_is_learned_and_a_broken_one_is_not() {
        let p: Params = toml::from_str("learn = 48").unwrap();
        let mut st = State::default();
        // a square wave, 12 high then 12 low, with small noise
        let wave = |i: u32| if (i / 12) % 2 == 0 { 10.0 } else { 0.0 } + f64::from(i % 3) * 0.1;
        let mut raw_late = 0.0;
        for i in 0..2000u32 {
            let r = p.raw(&mut st, i, wave(i));
            if i >= 1000 {
                raw_late += r;
            }
        }
        assert_eq!(raw_late, 0.0, "every sequence of the wave is known");
        // the wave stops at mid level: sequences never seen
        let fresh: f64 = (2000..2004u32).map(|i| p.raw(&mut st, i, 5.0)).sum();
        assert!(fresh > 1.9, "{fresh}");
    }

    #[test]
    fn a_level_new_for_its_part_of_the_day_is_seen() {
        let p: Params = toml::from_str("learn = 20\norder = 1\n[season]\nbuckets = 2").unwrap();
        let mut st = State::default();
        const H: i64 = 3_600_000;
        // high by day (hours 12..24), low by night, for 5 days, hourly
        let day = |t: i64| if (t / H) % 24 >= 12 { 10.0 } else { 0.0 };
        let mut n = 0;
        for t in (0..5 * 24 * H).step_by(H as usize) {
            let raw_level = p.level(&st, day(t));
            let r = if n as usize >= p.learn {
                p.season_raw(p.season.as_ref().unwrap(), &mut st, n, raw_level, t)
            } else {
                0.0
            };
            if t >= 2 * 24 * H {
                assert_eq!(
                    r,
                    0.0,
                    "known level for its half of the day at hour {}",
                    t / H
                );
            }
            p.raw(&mut st, n, day(t));
            n += 1;
        }
        // high at night: new for the night
        let t = 5 * 24 * H + 2 * H;
        let q = p.level(&st, 10.0);
        assert_eq!(
            p.season_raw(p.season.as_ref().unwrap(), &mut st, n, q, t),
            1.0
        );
        assert_eq!(
            p.season_raw(p.season.as_ref().unwrap(), &mut st, n + 1, q, t + H),
            0.0
        );
    }

    #[test]
    fn refuses_bad_parameters() {
        assert!(toml::from_str::<Params>("levels = 1").is_err());
        assert!(toml::from_str::<Params>("levels = 65").is_err());
        assert!(toml::from_str::<Params>("order = 0").is_err());
        assert!(toml::from_str::<Params>("order = 4").is_err());
        let p: Params = toml::from_str("levels = 20\n[season]\nbuckets = 6").unwrap();
        assert!(p.validate().unwrap_err().0.contains("must not exceed 96"));
        let p: Params = toml::from_str("[season]\nbuckets = 0").unwrap();
        assert!(p.validate().is_err());
    }
}
