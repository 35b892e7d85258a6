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
//! ## Irregular series
//! A series that reports when something happens (an event counter, a batch job) has no cadence
//! to miss. With all 8 intervals kept, sorted `s0 <= ... <= s7`, the series is **irregular**
//! while `s6 > irregular × s1` (default `irregular = 4`): the second-largest interval is more
//! than 4 times the second-smallest. Dropping the extreme interval at each end keeps one late
//! or doubled sample from deciding. Jitter of ±40 % gives a ratio under 2.4; exponential
//! (Poisson) arrivals give about 6. It becomes regular again only below `irregular × 0.6`
//! (hysteresis). The class is re-evaluated once per 8 intervals. An irregular series gets no
//! learned dead-man's switch; a rule with a fixed `timeout` still applies one.
//!
//! ## Deadline queue
//! `deadline = last event time + timeout`. Deadlines sit in a hashed timing wheel of
//! [`WHEEL_SLOTS`] one-second slots (about 68 minutes ahead), with a min-heap for deadlines
//! further out, and at most one live entry per series in the common case: a sample that pushes a
//! deadline *later* does not touch the queue. When an entry comes due, the series' real deadline
//! is checked: if it moved later the entry is re-queued at the new deadline, otherwise the series
//! is absent. A series therefore costs one O(1) wheel insertion per timeout period, not per
//! sample, and advancing the clock costs one step per elapsed second (at most one turn of the
//! wheel) plus the due entries: never a scan of all series. A wheel entry is 8 bytes: the
//! series and its deadline's milliseconds within the slot's second.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

mod config;

pub use config::{Absence, AutoAbsence, RawAbsence};

/// Inter-arrival intervals kept per series.
pub const CADENCE_INTERVALS: usize = 8;

/// Sentinel for "no time".
pub const NEVER: i64 = i64::MAX;

/// The recent inter-arrival intervals of one series (36 bytes).
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Cadence {
    intervals: [u32; CADENCE_INTERVALS],
    len: u8,
    pos: u8,
    irregular: bool,
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
        // without branches (intervals in no order mispredict them)
        let (mut max, mut second) = (0u32, 0u32);
        for &v in &self.intervals[..n] {
            second = second.max(max.min(v));
            max = max.max(v);
        }
        Some(i64::from(if n == CADENCE_INTERVALS { second } else { max }))
    }

    /// The typical interval: the median of the kept intervals (the lower middle one of an
    /// even count), if any is known.
    pub fn typical(&self) -> Option<i64> {
        let n = self.len as usize;
        if n == 0 {
            return None;
        }
        let mut v = self.intervals;
        let kept = &mut v[..n];
        kept.sort_unstable();
        Some(i64::from(kept[(n - 1) / 2]))
    }

    /// Whether the series is currently classed irregular (see the module docs).
    pub fn is_irregular(&self) -> bool {
        self.irregular
    }

    /// Updates the irregular flag from the kept intervals.
    #[inline]
    fn classify(&mut self, ratio: f64) {
        if ratio <= 0.0 || (self.len as usize) < CADENCE_INTERVALS {
            self.irregular = false;
            return;
        }
        // second-smallest and second-largest in one pass
        let (mut lo, mut lo2, mut hi, mut hi2) = (u32::MAX, u32::MAX, 0u32, 0u32);
        for &v in &self.intervals {
            if v < lo {
                lo2 = lo;
                lo = v;
            } else if v < lo2 {
                lo2 = v;
            }
            if v > hi {
                hi2 = hi;
                hi = v;
            } else if v > hi2 {
                hi2 = v;
            }
        }
        let spread = f64::from(hi2) / f64::from(lo2.max(1));
        self.irregular = if self.irregular {
            spread > ratio * 0.6
        } else {
            spread > ratio
        };
    }

    /// The largest interval kept.
    pub fn max(&self) -> Option<i64> {
        self.intervals[..self.len as usize]
            .iter()
            .max()
            .map(|&v| i64::from(v))
    }

    /// Records an interval and returns the timeout the series now gets under `absence`
    /// (`None`: no dead-man's switch, because absence is off or the series is irregular).
    #[inline]
    pub fn learn(&mut self, interval_ms: i64, absence: &Absence) -> Option<i64> {
        self.observe(interval_ms);
        // re-classified once per 8 intervals (each turn of the ring): cheap, and soon enough
        if let (Absence::Auto(a), 0) = (absence, self.pos) {
            self.classify(a.irregular);
        }
        self.timeout(absence)
    }

    /// The timeout this series gets under `absence`, or `None` when absence is off or the
    /// series is irregular under a learned (`auto`) timeout.
    #[inline]
    pub fn timeout(&self, absence: &Absence) -> Option<i64> {
        match absence {
            Absence::Off => None,
            Absence::Fixed(ms) => Some(*ms),
            Absence::Auto(_) if self.irregular => None,
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

/// Slots of the timing wheel.
pub const WHEEL_SLOTS: usize = 4096;
/// Width of one wheel slot, ms.
const SLOT_MS: i64 = 1_000;

/// Timing wheel of `(deadline, series index)` entries (see the module docs).
pub struct DeadlineQueue {
    /// Slot `t % WHEEL_SLOTS` holds the entries of tick `t`, for `cursor <= t < cursor + WHEEL_SLOTS`.
    slots: Vec<Vec<Entry>>,
    /// The earliest tick not yet drained.
    cursor: i64,
    /// Entries at or beyond `cursor + WHEEL_SLOTS`.
    far: BinaryHeap<Reverse<(i64, u32)>>,
    len: usize,
}

/// A wheel entry: the series and its deadline's milliseconds within the slot's tick (8 bytes,
/// where the deadline itself would take 16 with its padding).
#[derive(Clone, Copy, Debug)]
struct Entry {
    series: u32,
    ms: u16,
}

impl Entry {
    #[inline]
    fn new(at: i64, tick: i64, series: u32) -> Self {
        Self {
            series,
            ms: (at - tick * SLOT_MS) as u16,
        }
    }

    /// The entry as `(deadline, series)`, for the slot of `tick`.
    #[inline]
    fn at(self, tick: i64) -> (i64, u32) {
        (tick * SLOT_MS + i64::from(self.ms), self.series)
    }
}

impl Default for DeadlineQueue {
    fn default() -> Self {
        Self {
            slots: vec![Vec::new(); WHEEL_SLOTS],
            cursor: i64::MIN,
            far: BinaryHeap::new(),
            len: 0,
        }
    }
}

impl DeadlineQueue {
    #[inline]
    fn slot_of(tick: i64) -> usize {
        tick.rem_euclid(WHEEL_SLOTS as i64) as usize
    }

    pub fn push(&mut self, at: i64, series: u32) {
        self.len += 1;
        let tick = at.div_euclid(SLOT_MS);
        if self.cursor == i64::MIN {
            self.cursor = tick;
        }
        if tick >= self.cursor && tick - self.cursor < WHEEL_SLOTS as i64 {
            self.slots[Self::slot_of(tick)].push(Entry::new(at, tick, series));
        } else {
            // beyond the wheel, or before its cursor (a deadline already in the past)
            self.far.push(Reverse((at, series)));
        }
    }

    /// Moves every entry due at `now` (deadline <= now) into `due`.
    pub fn drain_due(&mut self, now: i64, due: &mut Vec<(i64, u32)>) {
        let now_tick = now.div_euclid(SLOT_MS);
        if self.cursor == i64::MIN {
            self.cursor = now_tick;
            return;
        }
        let start = due.len();
        if now_tick >= self.cursor {
            // every whole tick before now's: everything in it is due (at most one turn)
            let end = now_tick.min(self.cursor + WHEEL_SLOTS as i64);
            for tick in self.cursor..end {
                // take, not append: a drained slot gives its memory back
                let slot = std::mem::take(&mut self.slots[Self::slot_of(tick)]);
                due.extend(slot.into_iter().map(|e| e.at(tick)));
            }
            self.cursor = now_tick;
            // now's own tick: only the entries at or before now
            let slot = &mut self.slots[Self::slot_of(now_tick)];
            let mut k = 0;
            while k < slot.len() {
                if slot[k].at(now_tick).0 <= now {
                    due.push(slot.swap_remove(k).at(now_tick));
                } else {
                    k += 1;
                }
            }
        }
        // far entries: the due ones out, the ones now within the wheel's reach in
        while let Some(&Reverse((at, s))) = self.far.peek() {
            let t = at.div_euclid(SLOT_MS);
            if at <= now {
                due.push((at, s));
            } else if t >= self.cursor && t - self.cursor < WHEEL_SLOTS as i64 {
                self.slots[Self::slot_of(t)].push(Entry::new(at, t, s));
            } else {
                break;
            }
            self.far.pop();
        }
        self.len -= due.len() - start;
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn heap_bytes(&self) -> usize {
        self.slots
            .iter()
            .map(|s| {
                s.capacity() * std::mem::size_of::<Entry>() + std::mem::size_of::<Vec<Entry>>()
            })
            .sum::<usize>()
            + self.far.capacity() * std::mem::size_of::<(i64, u32)>()
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
            irregular: 4.0,
        })
    }

    #[test]
    fn irregular_series_get_no_learned_switch_but_jitter_and_one_late_sample_do() {
        let a = auto();
        // a 10 s cadence with ±40 % jitter and one very late sample: regular
        let mut c = Cadence::default();
        for (i, j) in [
            6_000, 14_000, 9_000, 12_000, 7_000, 13_500, 10_000, 90_000, 8_000,
        ]
        .iter()
        .enumerate()
        {
            let t = c.learn(*j, &a);
            assert!(t.is_some(), "interval {i}: regular");
        }
        assert!(!c.is_irregular());
        // Poisson-like arrivals (mean 10 s): irregular, no learned switch
        let mut e = Cadence::default();
        let exp = [
            1_200, 25_000, 3_000, 9_000, 31_000, 700, 14_000, 5_500, 2_000, 19_000,
        ];
        let got: Vec<_> = exp.iter().map(|&x| e.learn(x, &a)).collect();
        assert!(e.is_irregular());
        assert_eq!(got.last(), Some(&None));
        // a fixed timeout still applies to it
        assert_eq!(e.timeout(&Absence::Fixed(60_000)), Some(60_000));
        // back to a steady cadence: regular again once the odd intervals roll out
        for _ in 0..8 {
            e.learn(10_000, &a);
        }
        assert!(!e.is_irregular());
        assert_eq!(e.timeout(&a), Some(30_000));
        // irregular = 0 turns the classification off
        let off = Absence::Auto(AutoAbsence {
            irregular: 0.0,
            ..match a {
                Absence::Auto(x) => x,
                _ => unreachable!(),
            }
        });
        let mut f = Cadence::default();
        for &x in &exp {
            f.learn(x, &off);
        }
        assert!(f.timeout(&off).is_some());
    }

    #[test]
    fn learns_from_cadence_and_ignores_one_late_sample() {
        let mut c = Cadence::default();
        assert_eq!(
            c.timeout(&auto()),
            Some(3_600_000),
            "conservative until learned"
        );
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
        assert_eq!(
            c.timeout(&auto()),
            Some(183_000),
            "the largest interval is dropped"
        );
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
        assert_eq!(
            slow.timeout(&auto()),
            Some(21_600_000),
            "slow series: 3 × its interval"
        );
        for _ in 0..8 {
            slow.observe(40 * 86_400_000);
        }
        assert_eq!(slow.timeout(&auto()), Some(86_400_000), "ceiling");
        assert_eq!(c.timeout(&Absence::Fixed(5_000)), Some(5_000));
        assert_eq!(c.timeout(&Absence::Off), None);
    }

    fn drain(q: &mut DeadlineQueue, now: i64) -> Vec<(i64, u32)> {
        let mut due = Vec::new();
        q.drain_due(now, &mut due);
        due
    }

    #[test]
    fn queue_releases_exactly_the_due_entries() {
        let mut q = DeadlineQueue::default();
        q.push(30_500, 1);
        q.push(10_000, 2);
        q.push(20_250, 3);
        q.push(20_750, 4);
        assert_eq!(drain(&mut q, 9_999), vec![]);
        assert_eq!(drain(&mut q, 10_000), vec![(10_000, 2)]);
        assert_eq!(
            drain(&mut q, 20_500),
            vec![(20_250, 3)],
            "same slot, not yet due stays"
        );
        assert_eq!(drain(&mut q, 25_000), vec![(20_750, 4)]);
        assert_eq!(q.len(), 1);
        q.push(100, 5); // already past: due at the next drain
        assert_eq!(drain(&mut q, 25_001), vec![(100, 5)]);
        assert_eq!(drain(&mut q, 40_000), vec![(30_500, 1)]);
        assert!(q.is_empty());
    }

    #[test]
    fn far_deadlines_and_long_jumps() {
        let mut q = DeadlineQueue::default();
        let day = 86_400_000;
        q.push(0, 0);
        q.push(day, 1); // beyond the wheel: in the heap
        q.push(2 * day, 2);
        q.push(5_000_000, 3); // 5000 s ahead: beyond the wheel's 4096 s
        assert_eq!(drain(&mut q, 0), vec![(0, 0)]);
        assert_eq!(drain(&mut q, day - 1), vec![(5_000_000, 3)]);
        assert_eq!(drain(&mut q, day + 10 * day), vec![(day, 1), (2 * day, 2)]);
        assert!(q.is_empty());
    }

    proptest::proptest! {
        /// The wheel releases the same entries as a sorted list would, whatever the jumps.
        #[test]
        fn wheel_matches_a_sorted_list(
            ops in proptest::collection::vec((0i64..20_000_000, proptest::bool::ANY), 1..300)
        ) {
            let mut q = DeadlineQueue::default();
            let mut model: Vec<(i64, u32)> = Vec::new();
            let mut now = 0i64;
            for (i, &(x, is_push)) in ops.iter().enumerate() {
                if is_push {
                    q.push(now + x, i as u32);
                    model.push((now + x, i as u32));
                } else {
                    now += x / 4;
                    let mut got = drain(&mut q, now);
                    let mut want: Vec<_> = model.iter().copied().filter(|e| e.0 <= now).collect();
                    model.retain(|e| e.0 > now);
                    got.sort();
                    want.sort();
                    proptest::prop_assert_eq!(got, want);
                    proptest::prop_assert_eq!(q.len(), model.len());
                }
            }
        }
    }
}
