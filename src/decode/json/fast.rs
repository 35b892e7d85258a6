//! deadair's own shape, read by hand: one object with `name`, `labels` (an object of text),
//! `timestamp` and `value` (numbers), in any order, no text with escapes, or a non-empty array
//! of such objects (what `deadair gen` writes). That is what pipelines writing one sample per
//! message send, and serde's visitors cost more than the message's few tokens. Anything else (another key, an escape, text for a timestamp or a value,
//! a repeated key, a `__name__` label, an empty name, anything that is not JSON) is left to
//! the serde readers of [`super`], which read it or refuse it as before: this reader accepts
//! only what they would read, and reads it the same way (a number of at most 15 digits without
//! an exponent with serde_json's own arithmetic: its digits divided by a power of ten, one
//! rounding; other numbers by std's parse, correctly rounded as serde_json is with its
//! `float_roundtrip` feature; the property tests of [`super`] hold the hand reader to serde's,
//! and both to the owned readers).

use super::{At, Buffers};
use crate::time::epoch_to_ms;

/// Reads `text` (trimmed) into `buf` if it is one object in the shape above, or (`array`) a
/// non-empty array of such objects; false (and `buf` as it was) otherwise.
pub(super) fn read(text: &str, array: bool, buf: &mut Buffers) -> bool {
    let (samples, labels) = (buf.samples.len(), buf.labels.len());
    let mut r = Reader {
        b: text.as_bytes(),
        i: 0,
    };
    let whole = if array {
        r.array(text, buf)
    } else {
        r.object(text, buf).map(|sample| buf.samples.push(sample))
    };
    if whole.is_some() && r.i == r.b.len() {
        return true;
    }
    buf.samples.truncate(samples);
    buf.labels.truncate(labels);
    false
}

/// 1e0 to 1e15: every one exact as f64.
const POW10: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

struct Reader<'t> {
    b: &'t [u8],
    i: usize,
}

impl Reader<'_> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    /// The next byte after whitespace, consumed.
    fn next(&mut self) -> Option<u8> {
        self.ws();
        let c = *self.b.get(self.i)?;
        self.i += 1;
        Some(c)
    }

    /// Text without escapes or control characters: where it is in the message.
    fn text(&mut self) -> Option<(u32, u32)> {
        if self.next()? != b'"' {
            return None;
        }
        let start = self.i;
        let mut end = start;
        // eight bytes at a time while none is a quote, a backslash or a control character
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGH: u64 = 0x8080_8080_8080_8080;
        while let Some(chunk) = self.b.get(end..end + 8) {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            let v = u64::from_le_bytes(w);
            let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
            let found = zero(v ^ (ONES * u64::from(b'"')))
                | zero(v ^ (ONES * u64::from(b'\\')))
                | (v.wrapping_sub(ONES * 0x20) & !v & HIGH);
            if found != 0 {
                // the lowest flagged byte is exact (a borrow only flags bytes above it)
                end += (found.trailing_zeros() / 8) as usize;
                break;
            }
            end += 8;
        }
        loop {
            match *self.b.get(end)? {
                b'"' => break,
                // an escape, or a control character JSON does not allow in text: serde's to judge
                b'\\' | 0..=0x1f => return None,
                _ => end += 1,
            }
        }
        self.i = end + 1;
        Some((u32::try_from(start).ok()?, u32::try_from(end).ok()?))
    }

    /// A JSON number (its grammar checked here), read as the serde readers read it.
    fn number(&mut self) -> Option<f64> {
        self.ws();
        let start = self.i;
        let digits = |r: &mut Self| {
            let from = r.i;
            while let Some(b'0'..=b'9') = r.b.get(r.i) {
                r.i += 1;
            }
            r.i > from
        };
        if self.b.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        match self.b.get(self.i) {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                digits(self);
            }
            _ => return None,
        }
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            if !digits(self) {
                return None;
            }
        }
        if let Some(b'e' | b'E') = self.b.get(self.i) {
            self.i += 1;
            if let Some(b'+' | b'-') = self.b.get(self.i) {
                self.i += 1;
            }
            if !digits(self) {
                return None;
            }
        }
        let token = &self.b[start..self.i];
        // anything but the plain forms below is serde_json's to parse
        let (negative, digits) = match token {
            [b'-', rest @ ..] => (true, rest),
            _ => (false, token),
        };
        // at most 15 digits, no exponent: serde_json reads the digits (below 2^53, exact as
        // f64) divided by the power of ten of the fraction (exact), one correctly rounded
        // division (by 1 for an integer: exact); so does this, to the same bit (`-0` is -0.0 there too)
        let (whole, fraction) = match digits.iter().position(|&d| d == b'.') {
            Some(point) => (&digits[..point], &digits[point + 1..]),
            None => (digits, &[][..]),
        };
        if whole.len() + fraction.len() <= 15
            && whole.iter().chain(fraction).all(u8::is_ascii_digit)
        {
            let n = whole
                .iter()
                .chain(fraction)
                .fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')) as f64;
            let v = n / POW10[fraction.len()];
            return Some(if negative { -v } else { v });
        }
        // longer (a shortest round-trip form has up to 17 digits) or with an exponent: std's
        // parse, correctly rounded as serde_json is with `float_roundtrip`; out of f64's range
        // (std reads it as infinite), left to the serde readers, which refuse it
        let text = std::str::from_utf8(token).ok()?;
        text.parse::<f64>().ok().filter(|v| v.is_finite())
    }

    /// `"k": "v", ...}` after the labels' `{`, appended to `buf.labels`.
    fn labels(&mut self, text: &str, buf: &mut Buffers) -> Option<()> {
        if self.next()? != b'{' {
            return None;
        }
        self.ws();
        if self.b.get(self.i) == Some(&b'}') {
            self.i += 1;
            return Some(());
        }
        loop {
            let k = self.text()?;
            if &text[k.0 as usize..k.1 as usize] == "__name__" {
                return None;
            }
            if self.next()? != b':' {
                return None;
            }
            let v = self.text()?;
            buf.labels.push((At::Msg(k.0, k.1), At::Msg(v.0, v.1)));
            match self.next()? {
                b',' => continue,
                b'}' => return Some(()),
                _ => return None,
            }
        }
    }

    /// `[object, ...]`, each object's sample pushed to `buf.samples`, then trailing whitespace.
    fn array(&mut self, text: &str, buf: &mut Buffers) -> Option<()> {
        if self.next()? != b'[' {
            return None;
        }
        loop {
            let sample = self.object(text, buf)?;
            buf.samples.push(sample);
            match self.next()? {
                b',' => continue,
                b']' => break,
                _ => return None,
            }
        }
        self.ws();
        Some(())
    }

    /// The object: its sample (labels appended to `buf.labels`), then trailing whitespace.
    fn object(
        &mut self,
        text: &str,
        buf: &mut Buffers,
    ) -> Option<(At, std::ops::Range<usize>, i64, f64)> {
        if self.next()? != b'{' {
            return None;
        }
        let start = buf.labels.len();
        let (mut name, mut labels, mut ts, mut value) = (None, false, None, None);
        loop {
            let key = self.text()?;
            if self.next()? != b':' {
                return None;
            }
            match &text[key.0 as usize..key.1 as usize] {
                "name" if name.is_none() => name = Some(self.text()?),
                "labels" if !labels => {
                    labels = true;
                    self.labels(text, buf)?;
                }
                "timestamp" if ts.is_none() => ts = Some(epoch_to_ms(self.number()?).ok()?),
                "value" if value.is_none() => value = Some(self.number()?),
                _ => return None,
            }
            match self.next()? {
                b',' => continue,
                b'}' => break,
                _ => return None,
            }
        }
        self.ws();
        let (name, ts, value) = (name?, ts?, value?);
        if name.0 == name.1 {
            return None; // an empty name: the owned readers word the error
        }
        Some((At::Msg(name.0, name.1), start..buf.labels.len(), ts, value))
    }
}
