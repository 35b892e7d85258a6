//! The dead-man's switch: learned per-series timeouts and the deadline queue.
//!
//! ## Learned timeout (`timeout = "auto"`)
//! Each series keeps its last [`CADENCE_INTERVALS`] inter-arrival intervals (event time, ms).
//! Once it has at least `min_intervals` of them, with `q` = the second-largest kept interval
//! (the largest when fewer than 8 are kept; dropping the largest makes one late sample harmless):
//!
//! ```text
//! timeout = clamp(factor × q, floor, ceiling)
//! ```
//!
//! Until then the timeout is the conservative `max(initial, factor × largest interval seen)`,
//! clamped to `ceiling`. Defaults: factor 3, floor 10s, ceiling 24h, initial 1h, min_intervals 4.
//!
//! ## Deadline queue
//! `deadline = last event time + timeout`. Deadlines sit in a min-heap of `(time, series)` with at
//! most one live entry per series in the common case: a sample that pushes a deadline *later* does
//! not touch the heap. When an entry comes due, the series' real deadline is checked: if it moved
//! later the entry is re-queued at the new deadline, otherwise the series is absent. A series
//! therefore costs one heap operation per timeout period, not per sample, and advancing the clock
//! costs O(log n) per due entry, never a scan of all series.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::model::{Absence, AutoAbsence};

/// Inter-arrival intervals kept per series.
pub const CADENCE_INTERVALS: usize = 8;

/// Sentinel for "no time".
pub const NEVER: i64 = i64::MAX;

/// The recent inter-arrival intervals of one series (36 bytes).
#[derive(Clone, Debug, Default)]
pub struct Cadence {
    intervals: [u32; CADENCE_INTERVALS],
    len: u8,
    pos: u8,
}

impl Cadence {
    /// Records the interval between two consecutive samples (ms, capped at ~49 days).
    #[inline]
    pub fn observe(&mut self, interval_ms: i64) {
        self.intervals[self.pos as usize] = interval_ms.clamp(0, i64::from(u32::MAX)) as u32;
        self.pos = ((self.pos as usize + 1) % CADENCE_INTERVALS) as u8;
        if (self.len as usize) < CADENCE_INTERVALS {
            self.len += 1;
        }
    }

    /// Number of intervals kept.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The robust high quantile `q` of the module docs, if any interval is known.
    #[inline]
    pub fn high_quantile(&self) -> Option<i64> {
        let n = self.len as usize;
        if n == 0 {
            return None;
        }
        let (mut max, mut second) = (0u32, 0u32);
        for &v in &self.intervals[..n] {
            if v > max {
                second = max;
                max = v;
            } else if v > second {
                second = v;
            }
        }
        Some(i64::from(if n == CADENCE_INTERVALS { second } else { max }))
    }

    /// The largest interval kept.
    pub fn max(&self) -> Option<i64> {
        self.intervals[..self.len as usize].iter().max().map(|&v| i64::from(v))
    }

    /// The timeout this series gets under `absence`, or `None` when absence is off.
    #[inline]
    pub fn timeout(&self, absence: &Absence) -> Option<i64> {
        match absence {
            Absence::Off => None,
            Absence::Fixed(ms) => Some(*ms),
            Absence::Auto(a) => Some(self.auto_timeout(a)),
        }
    }

    fn auto_timeout(&self, a: &AutoAbsence) -> i64 {
        let scaled = |ms: i64| (ms as f64 * a.factor).min(i64::MAX as f64 / 2.0) as i64;
        if self.len() >= a.min_intervals {
            let q = self.high_quantile().unwrap_or(0);
            scaled(q).clamp(a.floor_ms, a.ceiling_ms)
        } else {
            let seen = self.max().map_or(0, scaled);
            a.initial_ms.max(seen).clamp(a.floor_ms, a.ceiling_ms)
        }
    }
}

/// Min-heap of `(deadline, series index)` (see the module docs).
#[derive(Default)]
pub struct DeadlineQueue {
    heap: BinaryHeap<Reverse<(i64, u32)>>,
}

impl DeadlineQueue {
    pub fn push(&mut self, at: i64, series: u32) {
        self.heap.push(Reverse((at, series)));
    }

    /// Removes and returns the earliest entry if it is due at `now`.
    #[inline]
    pub fn pop_due(&mut self, now: i64) -> Option<(i64, u32)> {
        match self.heap.peek() {
            Some(Reverse((at, _))) if *at <= now => self.heap.pop().map(|Reverse(e)| e),
            _ => None,
        }
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    pub fn heap_bytes(&self) -> usize {
        self.heap.capacity() * std::mem::size_of::<(i64, u32)>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auto() -> Absence {
        Absence::Auto(AutoAbsence {
            factor: 3.0,
            floor_ms: 10_000,
            ceiling_ms: 86_400_000,
            initial_ms: 3_600_000,
            min_intervals: 4,
        })
    }

    #[test]
    fn learns_from_cadence_and_ignores_one_late_sample() {
        let mut c = Cadence::default();
        assert_eq!(c.timeout(&auto()), Some(3_600_000), "conservative until learned");
        for _ in 0..3 {
            c.observe(60_000);
        }
        assert_eq!(c.timeout(&auto()), Some(3_600_000));
        c.observe(61_000);
        assert_eq!(c.timeout(&auto()), Some(183_000), "3 × 61s");
        for _ in 0..3 {
            c.observe(59_000);
        }
        c.observe(600_000); // one very late sample
        assert_eq!(c.len(), 8);
        assert_eq!(c.timeout(&auto()), Some(183_000), "the largest interval is dropped");
    }

    #[test]
    fn floor_ceiling_fixed_and_off() {
        let mut c = Cadence::default();
        for _ in 0..8 {
            c.observe(100);
        }
        assert_eq!(c.timeout(&auto()), Some(10_000), "floor");
        let mut slow = Cadence::default();
        slow.observe(7_200_000);
        assert_eq!(slow.timeout(&auto()), Some(21_600_000), "slow series: 3 × its interval");
        for _ in 0..8 {
            slow.observe(40 * 86_400_000);
        }
        assert_eq!(slow.timeout(&auto()), Some(86_400_000), "ceiling");
        assert_eq!(c.timeout(&Absence::Fixed(5_000)), Some(5_000));
        assert_eq!(c.timeout(&Absence::Off), None);
    }

    #[test]
    fn queue_pops_due_entries_in_order() {
        let mut q = DeadlineQueue::default();
        q.push(30, 1);
        q.push(10, 2);
        q.push(20, 3);
        assert_eq!(q.pop_due(5), None);
        assert_eq!(q.pop_due(25), Some((10, 2)));
        assert_eq!(q.pop_due(25), Some((20, 3)));
        assert_eq!(q.pop_due(25), None);
        assert_eq!(q.len(), 1);
    }
}
