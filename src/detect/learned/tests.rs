//! Tests of the learned detectors.

use super::params::{
    default_burst_ratio, default_bursts, default_shift_alpha, default_shift_clip,
    default_spread_baseline, default_spread_clip, default_spread_ratio,
};
use super::*;

fn all() -> Learned {
    Learned::new(
        Learning::default(),
        true,
        Some(Shift {
            alpha: default_shift_alpha(),
            bursts: default_bursts(),
            burst_ratio: default_burst_ratio(),
            clip: default_shift_clip(),
        }),
        Some(Spread {
            ratio: default_spread_ratio(),
            baseline: default_spread_baseline(),
            clip: default_spread_clip(),
        }),
        true,
        true,
    )
}

/// One-minute samples, an alert at 1e-6 per sample.
fn ctx() -> Context {
    Context {
        alert_p: 1e-6,
        interval_ms: 60_000.0,
    }
}

/// The default budget (0.01 a day, shared by five tests) for one-minute samples, per sample.
const BUDGET_P: f64 = 0.01 / 1440.0 / 5.0;

/// One-minute samples, an alert at [`BUDGET_P`].
fn budget_ctx() -> Context {
    Context {
        alert_p: BUDGET_P,
        interval_ms: 60_000.0,
    }
}

/// Deterministic Gaussian noise (splitmix64 of the index, Box-Muller).
fn noise(i: u32) -> f64 {
    let mix = |k: u64| {
        let mut z = k.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        ((z >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    let (u, v) = (mix(2 * u64::from(i)), mix(2 * u64::from(i) + 1));
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

/// Feeds `f(i)` for `i` in `from..to`; returns the smallest probability seen.
fn feed(d: &Learned, st: &mut State, from: u32, to: u32, f: impl Fn(u32) -> f64) -> f64 {
    (from..to)
        .map(|i| d.judge_and_learn(st, f(i), ctx).p)
        .fold(1.0, f64::min)
}

#[test]
fn state_size() {
    assert_eq!(std::mem::size_of::<State>(), 192);
}

#[test]
fn a_spike_is_improbable_and_noise_is_not() {
    let d = all();
    let mut st = State::default();
    let worst = feed(&d, &mut st, 0, 4000, |i| 50.0 + 2.0 * noise(i));
    assert!(worst > 1e-6, "noise scored {worst}");
    // the band at 1e-6 is about 4.9 sd (of 2) either side of the level
    let (lo, hi) = d.band(&st, 1e-6).unwrap();
    assert!(
        lo < 41.0 && lo > 36.0 && hi > 59.0 && hi < 64.0,
        "{lo} {hi}"
    );
    let j = d.judge_and_learn(&mut st, 50.0 + 2.0 * 8.0, ctx);
    assert!(j.p < 1e-7, "{j:?}");
    assert_eq!(j.verdict.unwrap().1, DetectorKind::Spike);
}

#[test]
fn the_band_of_a_series_never_below_zero_starts_at_zero() {
    let d = all();
    // a small count-like series (never below 0) and the same noise around 0
    let (mut count, mut signed) = (State::default(), State::default());
    feed(&d, &mut count, 0, 4000, |i| (1.0 + 2.0 * noise(i)).max(0.0));
    feed(&d, &mut signed, 0, 4000, |i| 2.0 * noise(i));
    let (lo, hi) = d.band(&count, 1e-6).unwrap();
    assert!(lo == 0.0 && hi > 5.0, "{lo} {hi}");
    let (lo, hi) = d.band(&signed, 1e-6).unwrap();
    assert!(lo < -5.0 && hi > 5.0, "{lo} {hi}");
}

#[test]
fn a_young_series_alerts_only_on_gross_outliers() {
    let d = all();
    let mut st = State::default();
    feed(&d, &mut st, 0, 200, |i| 50.0 + 2.0 * noise(i));
    let young = st.clone();
    // 8 sd in its first hours: its records are about 3 sd, so this is under 3 times them
    let j = d.judge_and_learn(&mut st, 50.0 + 16.0, ctx);
    assert!(j.p > 1e-6, "{j:?}");
    // 60 sd is gross
    let j = d.judge_and_learn(&mut young.clone(), 50.0 + 120.0, ctx);
    assert!(j.p < 1e-6, "{j:?}");
    // a day later the 8 sd is improbable
    let mut st = young;
    feed(&d, &mut st, 200, 3000, |i| 50.0 + 2.0 * noise(i));
    let j = d.judge_and_learn(&mut st, 50.0 + 16.0, ctx);
    assert!(j.p < 1e-6, "{j:?}");
}

#[test]
fn a_sparse_counter_ticking_is_normal() {
    let d = all();
    let mut st = State::default();
    let worst = feed(&d, &mut st, 0, 5000, |i| {
        let u = noise(i).abs();
        if u > 2.2 {
            f64::from(1 + (i % 6))
        } else {
            0.0
        }
    });
    assert!(worst > 1e-6, "{worst}");
}

#[test]
fn a_level_shift_and_a_noise_rise_are_found() {
    let d = all();
    let mut st = State::default();
    feed(&d, &mut st, 0, 3000, |i| 50.0 + 2.0 * noise(i));
    let mut kinds = Vec::new();
    for i in 3000..3015 {
        let j = d.judge_and_learn(&mut st, 58.0 + 2.0 * noise(i), ctx);
        if j.p < 1e-6 {
            kinds.push(j.verdict.unwrap().1);
        }
    }
    assert!(kinds.contains(&DetectorKind::Shift), "{kinds:?}");
    let mut st = State::default();
    feed(&d, &mut st, 0, 3000, |i| 50.0 + 2.0 * noise(i));
    let p = feed(&d, &mut st, 3000, 3060, |i| 50.0 + 6.0 * noise(i));
    assert!(p < 1e-6, "{p}");
}

#[test]
fn heavy_tailed_noise_pages_no_level_shifts() {
    // Student-t(3) noise now and then throws two or three wild values in a row, which
    // move the median of three: 300 series for 3 days, judged after the first day at the
    // budget's level for one-minute samples (0.01 a day shared by five tests)
    let d = all();
    let (alert_p, ctx) = (BUDGET_P, budget_ctx);
    let mut episodes = 0;
    for s in 0..300 {
        let mut g = crate::quality::Generator::new(crate::quality::Kind::StudentT3, s);
        let mut st = State::default();
        let mut quiet = usize::MAX;
        for i in 0..3 * 1440 {
            let j = d.judge_and_learn(&mut st, g.next(i), ctx);
            let shift = j.p < alert_p && j.verdict.map(|v| v.1) == Some(DetectorKind::Shift);
            if shift && i >= 1440 && quiet >= 10 {
                episodes += 1;
            }
            quiet = if shift { 0 } else { quiet.saturating_add(1) };
        }
    }
    // its share of the budget is 0.002 a day: 1.2 expected over 600 series-days
    assert!(episodes <= 3, "{episodes} shift episodes");
}

#[test]
fn a_run_of_repeats_is_improbable_only_for_a_series_that_varies() {
    let d = all();
    let (mut varying, mut constant) = (State::default(), State::default());
    feed(&d, &mut varying, 0, 2000, |i| 50.0 + noise(i));
    feed(&d, &mut constant, 0, 2000, |_| 7.0);
    let mut p = 1.0;
    for _ in 0..10 {
        p = d.judge_and_learn(&mut varying, 50.0, ctx).stuck_p;
        assert_eq!(d.judge_and_learn(&mut constant, 7.0, ctx).stuck_p, 1.0);
    }
    assert!(p < 1e-12, "{p}");
    let j = d.judge_and_learn(&mut varying, 51.0, ctx);
    assert_eq!((j.stuck_p, j.repeats), (1.0, false));
}

#[test]
fn a_doubled_noise_is_found_on_gaussian_series_and_not_judged_on_heavy_tailed_ones() {
    // two days of noise, then its sd doubled for 30 samples, at the budget's level for
    // one-minute samples (0.01 a day shared by five tests)
    let d = all();
    let (alert_p, ctx) = (BUDGET_P, budget_ctx);
    let found = |kind: crate::quality::Kind| {
        let mut found = 0;
        for s in 0..40 {
            let mut g = crate::quality::Generator::new(kind, 1000 + s);
            let mut st = State::default();
            let mut spread = false;
            for i in 0..2 * 1440 + 30 {
                let x = g.next(i);
                let x = if i >= 2 * 1440 {
                    50.0 + 2.0 * (x - 50.0)
                } else {
                    x
                };
                let j = d.judge_and_learn(&mut st, x, ctx);
                if i >= 2 * 1440 && j.p < alert_p {
                    spread |= j.verdict.map(|v| v.1) == Some(DetectorKind::Spread);
                }
            }
            found += usize::from(spread);
        }
        found
    };
    let gaussian = found(crate::quality::Kind::Gaussian);
    // 26 of 40 with the CUSUM (25 before the slow unit was learned over the memory); the
    // recent mean of squares before it found 15
    assert!(gaussian >= 20, "found in {gaussian} of 40 Gaussian series");
    let heavy = found(crate::quality::Kind::StudentT3);
    assert_eq!(heavy, 0, "spread judged {heavy} Student-t(3) series");
}

#[test]
fn the_noise_is_learned_to_grow_with_a_counts_level_and_not_with_a_gaussians() {
    // two days of a daily load of counts (Poisson, mean 50 to 450: variance ∝ level, slope 1)
    // and of Gaussian noise around a constant level, an AR(1) and a daily sine (slope 0)
    let d = all();
    let slope = |kind: crate::quality::Kind, seed: u64| {
        let mut g = crate::quality::Generator::new(kind, seed);
        let mut st = State::default();
        for i in 0..2 * 1440 {
            d.judge_and_learn(&mut st, g.next(i), budget_ctx);
        }
        st.noise_by_level.slope()
    };
    for seed in 0..5 {
        let counts = slope(crate::quality::Kind::DailyLoad, seed);
        assert!((0.7..=1.3).contains(&counts), "daily load: slope {counts}");
        for kind in [
            crate::quality::Kind::Gaussian,
            crate::quality::Kind::Ar1,
            crate::quality::Kind::DailySine,
        ] {
            let flat = slope(kind, seed);
            assert!(flat <= 0.5, "{}: slope {flat}", kind.name());
        }
    }
}
