//! The rolling window shared by the window-based detectors (`zscore`, `mad`).
//!
//! A ring of the last [`WINDOW_CAP`] values stored as `f32` (4 bytes each): anomaly statistics
//! need relative, not absolute, precision, and halving the window's size is what keeps a series'
//! whole state under 256 bytes. A detector configured with a smaller `window` reads only the
//! newest values.

/// Capacity of the shared window, in samples. Detector `window` parameters may not exceed it.
pub const WINDOW_CAP: usize = 24;

#[derive(Clone, Debug)]
pub struct Window {
    buf: [f32; WINDOW_CAP],
    len: u8,
    pos: u8,
}

impl Default for Window {
    fn default() -> Self {
        Self { buf: [0.0; WINDOW_CAP], len: 0, pos: 0 }
    }
}

impl Window {
    /// Appends a value, evicting the oldest when full.
    #[inline]
    pub fn push(&mut self, x: f64) {
        self.buf[self.pos as usize] = x as f32;
        self.pos = if self.pos as usize + 1 == WINDOW_CAP { 0 } else { self.pos + 1 };
        if (self.len as usize) < WINDOW_CAP {
            self.len += 1;
        }
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
        let i = if self.pos == 0 { WINDOW_CAP - 1 } else { self.pos as usize - 1 };
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
        }
    }
}
