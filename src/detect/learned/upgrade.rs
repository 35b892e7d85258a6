//! Earlier layouts of the learned detectors' state, read when a checkpoint written by an older
//! deadair is restored (see `engine/snapshot.rs`).

use serde::Deserialize;

use super::super::bursts::Bursts;
use super::super::tail::Tail;

/// Snapshot format 3's state: the same fields, before `shift` learned its bursts (which start
/// empty, as for a series that has not alerted yet) and before `spread`'s tail learned
/// excesses over a threshold (it learns afresh).
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

impl From<StateV3> for super::State {
    fn from(o: StateV3) -> Self {
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
            noise: o.noise,
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
        };
        // format 3's spread tail learned the log ratio's moments (see format 4)
        state.forget_spread();
        state
    }
}
