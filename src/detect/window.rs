//! The rolling window shared by the window-based detectors (`zscore`, `mad`).
//!
//! A ring of the last [`WINDOW_CAP`] values stored as `f32` (4 bytes each): anomaly statistics
//! need relative, not absolute, precision, and halving the window's size is what keeps a series'
//! whole state under 256 bytes. Beside the ring the window keeps the ring's slots in value order
//! (one byte per slot), updated on every push by one removal and one insertion, so order
//! statistics (median, MAD) cost O(window) simple steps instead of a selection per sample.
//! A detector configured with a smaller `window` reads only the newest values.
//! Size: 16 × 4 + 16 + 2 = 82 bytes.

/// Capacity of the shared window, in samples. Detector `window` parameters may not exceed it.
pub const WINDOW_CAP: usize = 16;

/// `window` of a windowed detector: 2 to [`WINDOW_CAP`] samples (a model-file check).
pub fn check_window<'de, D: serde::Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    crate::check::int_in(d, 2, WINDOW_CAP as i64, |v| {
        format!("expected a window of 2 to {WINDOW_CAP} samples (the per-series window capacity), found {v}")
    })
    .map(|v| v as usize)
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Window {
    buf: [f32; WINDOW_CAP],
    /// `order[..len]`: ring slots sorted by ascending value.
    order: [u8; WINDOW_CAP],
    len: u8,
    pos: u8,
}

impl Default for Window {
    fn default() -> Self {
        Self {
            buf: [0.0; WINDOW_CAP],
            order: [0; WINDOW_CAP],
            len: 0,
            pos: 0,
        }
    }
}

impl Window {
    /// Appends a value, evicting the oldest when full. `x` must not be NaN.
    #[inline]
    pub fn push(&mut self, x: f64) {
        // beyond f32's range a value would become infinite and poison the statistics
        let x = x.clamp(f64::from(f32::MIN), f64::from(f32::MAX)) as f32;
        let slot = self.pos;
        let mut len = self.len as usize;
        if len == WINDOW_CAP {
            // evict the oldest value (it sits in the slot being overwritten)
            if let Some(k) = self.order[..len].iter().position(|&o| o == slot) {
                self.order.copy_within(k + 1..len, k);
            }
            len -= 1;
        }
        self.buf[slot as usize] = x;
        let buf = &self.buf;
        let at = self.order[..len].partition_point(|&o| buf[o as usize] < x);
        self.order.copy_within(at..len, at + 1);
        self.order[at] = slot;
        self.pos = if slot as usize + 1 == WINDOW_CAP {
            0
        } else {
            slot + 1
        };
        self.len = (len + 1) as u8;
    }

    /// The `i`-th smallest value held (`i < len`).
    #[inline]
    pub fn sorted(&self, i: usize) -> f32 {
        self.buf[self.order[i] as usize]
    }

    /// Number of values held (at most [`WINDOW_CAP`]).
    #[inline]
    pub fn len(&self) -> usize {
        self.len as usize
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies the newest `n` values (or all, if fewer) into `out` and returns how many. The order
    /// of the copied values is unspecified.
    #[inline]
    pub fn newest(&self, n: usize, out: &mut [f32; WINDOW_CAP]) -> usize {
        let n = n.min(self.len as usize);
        let pos = self.pos as usize;
        if n <= pos {
            out[..n].copy_from_slice(&self.buf[pos - n..pos]);
        } else {
            let wrap = n - pos;
            out[..pos].copy_from_slice(&self.buf[..pos]);
            out[pos..n].copy_from_slice(&self.buf[WINDOW_CAP - wrap..]);
        }
        n
    }

    /// The newest value, if any.
    pub fn last(&self) -> Option<f64> {
        if self.len == 0 {
            return None;
        }
        let i = if self.pos == 0 {
            WINDOW_CAP - 1
        } else {
            self.pos as usize - 1
        };
        Some(f64::from(self.buf[i]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The window always holds exactly the newest min(pushed, CAP) values.
        #[test]
        fn holds_the_newest_values(values in proptest::collection::vec(-1e6f64..1e6, 0..100), n in 0usize..=WINDOW_CAP) {
            let mut w = Window::default();
            for &v in &values {
                w.push(v);
            }
            prop_assert_eq!(w.len(), values.len().min(WINDOW_CAP));
            let mut out = [0f32; WINDOW_CAP];
            let got = w.newest(n, &mut out);
            prop_assert_eq!(got, n.min(values.len()));
            let mut got: Vec<f32> = out[..got].to_vec();
            let mut want: Vec<f32> = values[values.len() - got.len()..].iter().map(|&v| v as f32).collect();
            got.sort_by(f32::total_cmp);
            want.sort_by(f32::total_cmp);
            prop_assert_eq!(got, want);
            prop_assert_eq!(w.last(), values.last().map(|&v| f64::from(v as f32)));
            let held: Vec<f32> = (0..w.len()).map(|i| w.sorted(i)).collect();
            let mut all: Vec<f32> = values[values.len() - w.len()..].iter().map(|&v| v as f32).collect();
            all.sort_by(f32::total_cmp);
            prop_assert_eq!(held, all, "order statistics see exactly the window, sorted");
        }
    }
}
