//! Earlier layouts of the learned detectors' state, read when a checkpoint written by an older
//! deadair is restored (see `engine/snapshot.rs`).

use serde::Deserialize;

use super::super::bursts::Bursts;
use super::super::tail::Tail;

/// Snapshot format 3's state: format 5's fields before `shift` learned its bursts (which start
/// empty, as for a series that has not alerted yet).
#[derive(Deserialize)]
pub struct StateV3 {
    level: f64,
    base: f64,
    shifted: f32,
    last: f64,
    last2: f64,
    trend: f32,
    scale: f32,
    slow_scale: f32,
    quantum: f32,
    repeat: f32,
    noise: f32,
    noise_mean: f32,
    spike: Tail,
    shift: Tail,
    spread: Tail,
    low: f32,
    high: f32,
    range: Tail,
    run: u32,
    longest: f32,
    tail_n: [u32; 4],
    n: u32,
}

/// Snapshot formats 4 and 5's state: before `spread` became a CUSUM and the noise was learned by
/// level. Read whole; `spread`'s statistic and tail start afresh (it judges nothing until its
/// tail has learned again) and the noise by level is learned from nothing (flat until then).
#[derive(Deserialize)]
pub struct StateV5 {
    level: f64,
    base: f64,
    shifted: f32,
    last: f64,
    last2: f64,
    trend: f32,
    scale: f32,
    slow_scale: f32,
    quantum: f32,
    repeat: f32,
    /// A recent mean of squares (not a CUSUM): not kept.
    _noise: f32,
    noise_mean: f32,
    spike: Tail,
    shift: Tail,
    shift_bursts: Bursts,
    spread: Tail,
    low: f32,
    high: f32,
    range: Tail,
    run: u32,
    longest: f32,
    tail_n: [u32; 4],
    n: u32,
}

impl From<StateV3> for StateV5 {
    fn from(o: StateV3) -> Self {
        Self {
            level: o.level,
            base: o.base,
            shifted: o.shifted,
            last: o.last,
            last2: o.last2,
            trend: o.trend,
            scale: o.scale,
            slow_scale: o.slow_scale,
            quantum: o.quantum,
            repeat: o.repeat,
            _noise: o.noise,
            noise_mean: o.noise_mean,
            spike: o.spike,
            shift: o.shift,
            shift_bursts: Bursts::default(),
            spread: o.spread,
            low: o.low,
            high: o.high,
            range: o.range,
            run: o.run,
            longest: o.longest,
            tail_n: o.tail_n,
            n: o.n,
        }
    }
}

impl From<StateV3> for super::State {
    fn from(o: StateV3) -> Self {
        StateV5::from(o).into()
    }
}

impl From<StateV5> for super::State {
    fn from(o: StateV5) -> Self {
        let mut state = Self {
            level: o.level,
            base: o.base,
            shifted: o.shifted,
            last: o.last,
            last2: o.last2,
            trend: o.trend,
            scale: o.scale,
            slow_scale: o.slow_scale,
            quantum: o.quantum,
            repeat: o.repeat,
            noise: 0.0,
            noise_mean: o.noise_mean,
            noise_by_level: Default::default(),
            spike: o.spike,
            shift: o.shift,
            shift_bursts: o.shift_bursts,
            spread: o.spread,
            low: o.low,
            high: o.high,
            range: o.range,
            run: o.run,
            longest: o.longest,
            tail_n: o.tail_n,
            n: o.n,
        };
        // formats 3 to 5's spread tail learned another statistic
        state.forget_spread();
        state
    }
}
