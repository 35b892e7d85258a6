//! The native protobuf format (`deadair.v1.SampleBatch`) read without copies, and the wire
//! reader the other protobuf formats (remote-write, OTLP) share.

use super::{DecodeError, DecodeReason, SampleView, SampleViews};

/// A protobuf wire-format reader over borrowed bytes (errors are `Protobuf`; callers of other
/// formats re-label them).
pub(crate) struct Wire<'a> {
    buf: &'a [u8],
    pos: usize,
    /// `buf[..ascii]` is known to be ASCII: strings inside it need no UTF-8 check.
    ascii: usize,
}

fn bad(detail: &str) -> DecodeError {
    DecodeError {
        reason: DecodeReason::Protobuf,
        detail: detail.to_string(),
    }
}

/// The length of the ASCII prefix of `bytes`, read a word at a time.
#[inline]
fn ascii_prefix(bytes: &[u8]) -> usize {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut words = bytes.chunks_exact(8);
    let mut n = 0;
    for c in words.by_ref() {
        let mut a = [0u8; 8];
        a.copy_from_slice(c);
        let high = u64::from_le_bytes(a) & HIGH;
        if high != 0 {
            return n + high.trailing_zeros() as usize / 8;
        }
        n += 8;
    }
    n + words
        .remainder()
        .iter()
        .take_while(|b| b.is_ascii())
        .count()
}

/// `bytes` as text, if it is UTF-8. Names and label values are short and nearly always ASCII:
/// that is checked inline, a word at a time, before the general validator is called.
#[inline]
fn utf8(bytes: &[u8]) -> Option<&str> {
    if bytes.is_ascii() {
        // SAFETY: every ASCII byte sequence is valid UTF-8.
        return Some(unsafe { std::str::from_utf8_unchecked(bytes) });
    }
    std::str::from_utf8(bytes).ok()
}

impl<'a> Wire<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Wire {
            buf,
            pos: 0,
            ascii: 0,
        }
    }

    /// A reader of `buf` that first finds its ASCII prefix: for a message whose strings come
    /// before its numbers (a sample's name and labels, then its timestamp and value), one scan
    /// replaces a check per string.
    #[inline]
    pub(crate) fn scanned(buf: &'a [u8]) -> Self {
        Wire {
            buf,
            pos: 0,
            ascii: ascii_prefix(buf),
        }
    }

    /// The next length-delimited field as a reader of its own, which knows what of it lies in
    /// this reader's ASCII prefix.
    #[inline]
    pub(crate) fn nested(&mut self) -> Result<Wire<'a>, DecodeError> {
        let buf = self.bytes()?;
        let start = self.pos - buf.len();
        Ok(Wire {
            buf,
            pos: 0,
            ascii: self.ascii.saturating_sub(start).min(buf.len()),
        })
    }

    pub(crate) fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// Consumes the next byte if it is `key` (a one-byte field key): for reading fields in
    /// the order writers emit them, with one predictable branch per field.
    #[inline(always)]
    fn next_is(&mut self, key: u8) -> bool {
        let hit = self.buf.get(self.pos) == Some(&key);
        self.pos += usize::from(hit);
        hit
    }

    /// A label: a `map<string, string>` entry, or remote-write's `Label`, which has the same
    /// fields (name or key = 1, value = 2). The common layout, key then value with one-byte
    /// lengths, is sliced directly; any other goes through the general loop, which refuses a
    /// field 1 or 2 of the wrong wire type as prost does.
    #[inline(always)]
    pub(crate) fn label(&mut self) -> Result<(&'a str, &'a str), DecodeError> {
        let mut e = self.nested()?;
        let b = e.buf;
        if let [0x0A, k, ..] = *b {
            let k = usize::from(k);
            if let (Some(&0x12), Some(&v)) = (b.get(2 + k), b.get(3 + k)) {
                let v = usize::from(v);
                if k < 0x80 && v < 0x80 && 4 + k + v == b.len() && b.len() <= e.ascii {
                    // SAFETY: both strings lie in the entry's ASCII prefix, and every ASCII
                    // byte sequence is valid UTF-8
                    let text =
                        |r: std::ops::Range<usize>| unsafe { std::str::from_utf8_unchecked(&b[r]) };
                    return Ok((text(2..2 + k), text(4 + k..4 + k + v)));
                }
            }
        }
        let (mut k, mut v) = ("", "");
        while !e.done() {
            let key = e.varint()?;
            match (key >> 3, key & 7) {
                (1, 2) => k = e.str()?,
                (2, 2) => v = e.str()?,
                (1 | 2, _) => return Err(bad("a label field has the wrong wire type")),
                (_, t) => e.skip(t)?,
            }
        }
        Ok((k, v))
    }

    #[inline]
    pub(crate) fn varint(&mut self) -> Result<u64, DecodeError> {
        // most varints (field keys, lengths of names and labels) are one byte
        if let Some(&b) = self.buf.get(self.pos) {
            if b < 0x80 {
                self.pos += 1;
                return Ok(u64::from(b));
            }
        }
        self.varint_long()
    }

    fn varint_long(&mut self) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self
                .buf
                .get(self.pos)
                .ok_or_else(|| bad("truncated varint"))?;
            self.pos += 1;
            v |= u64::from(b & 0x7F) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(bad("varint longer than 10 bytes"))
    }

    #[inline]
    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = usize::try_from(self.varint()?).map_err(|_| bad("length overflow"))?;
        let end = self
            .pos
            .checked_add(len)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| bad("truncated field"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    #[inline(always)]
    pub(crate) fn str(&mut self) -> Result<&'a str, DecodeError> {
        let bytes = self.bytes()?;
        if self.pos <= self.ascii {
            // SAFETY: the bytes lie in the prefix this reader found to be ASCII, and every
            // ASCII byte sequence is valid UTF-8.
            return Ok(unsafe { std::str::from_utf8_unchecked(bytes) });
        }
        utf8(bytes).ok_or_else(|| bad("string is not UTF-8"))
    }

    pub(crate) fn fixed64(&mut self) -> Result<u64, DecodeError> {
        let end = self.pos + 8;
        let b = self
            .buf
            .get(self.pos..end)
            .ok_or_else(|| bad("truncated fixed64"))?;
        self.pos = end;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// Skips a field of `wire_type`.
    pub(crate) fn skip(&mut self, wire_type: u64) -> Result<(), DecodeError> {
        match wire_type {
            0 => self.varint().map(drop),
            1 => self.fixed64().map(drop),
            2 => self.bytes().map(drop),
            5 => {
                self.pos = self
                    .pos
                    .checked_add(4)
                    .filter(|&e| e <= self.buf.len())
                    .ok_or_else(|| bad("truncated fixed32"))?;
                Ok(())
            }
            _ => Err(bad("unsupported wire type")),
        }
    }
}

/// Decodes a `deadair.v1.SampleBatch` without copying strings (see [`SampleViews`]).
pub fn decode_proto_batch(payload: &[u8]) -> Result<SampleViews<'_>, DecodeError> {
    let mut out = SampleViews::default();
    append_proto_batch(payload, &mut out)?;
    Ok(out)
}

/// [`decode_proto_batch`] appending to `out` (several messages' samples in one batch); on an
/// error `out` is left as it was.
pub fn append_proto_batch<'a>(
    payload: &'a [u8],
    out: &mut SampleViews<'a>,
) -> Result<(), DecodeError> {
    let (samples, labels) = (out.samples.len(), out.labels.len());
    let read = read_proto_batch(payload, out);
    if read.is_err() {
        out.samples.truncate(samples);
        out.labels.truncate(labels);
    }
    read
}

fn read_proto_batch<'a>(payload: &'a [u8], out: &mut SampleViews<'a>) -> Result<(), DecodeError> {
    if payload.is_empty() {
        return Err(DecodeError {
            reason: DecodeReason::Empty,
            detail: "empty message".into(),
        });
    }
    let mut w = Wire::new(payload);
    while !w.done() {
        let key = w.varint()?;
        match (key >> 3, key & 7) {
            (1, 2) => {}
            (1, _) => return Err(bad("SampleBatch.samples has the wrong wire type")),
            (_, t) => {
                w.skip(t)?;
                continue;
            }
        }
        let mut s = Wire::scanned(w.bytes()?);
        let (mut name, mut ts, mut value) = ("", 0i64, 0f64);
        let start = out.labels.len();
        // the fields in the order writers emit them (name, labels, timestamp, value), each
        // behind one predictable branch; whatever follows (fields out of order, repeated or
        // unknown) is read by the general loop below, with the same result
        if s.next_is(0x0A) {
            name = s.str()?;
        }
        while s.next_is(0x12) {
            out.labels.push(s.label()?);
        }
        if s.next_is(0x18) {
            ts = s.varint()? as i64;
        }
        if s.next_is(0x21) {
            value = f64::from_bits(s.fixed64()?);
        }
        while !s.done() {
            let key = s.varint()?;
            match (key >> 3, key & 7) {
                (1, 2) => name = s.str()?,
                (2, 2) => out.labels.push(s.label()?),
                (3, 0) => ts = s.varint()? as i64,
                (4, 1) => value = f64::from_bits(s.fixed64()?),
                (1..=4, _) => return Err(bad("a Sample field has the wrong wire type")),
                (_, t) => s.skip(t)?,
            }
        }
        if name.is_empty() {
            return Err(bad("a sample has no name"));
        }
        if !(-8.64e15..=8.64e15).contains(&(ts as f64)) {
            return Err(bad(
                "a sample timestamp is out of range (expected ms since 1970)",
            ));
        }
        out.normalise_labels(start);
        out.samples.push(SampleView {
            name,
            labels: start..out.labels.len(),
            timestamp: ts,
            value,
        });
    }
    Ok(())
}

#[cfg(test)]
mod view_tests {
    use super::*;
    use crate::proto::Sample;
    use proptest::prelude::*;
    use prost::Message;

    proptest! {
        /// The borrowed decoder reads exactly what prost wrote.
        #[test]
        fn borrowed_decode_equals_prost(
            batch in proptest::collection::vec(
                ("[a-z_]{1,12}", proptest::collection::btree_map("[a-z]{1,6}", "[ -~]{0,10}|\\PC{0,10}", 0..5), -8_000_000_000_000_000i64..8_000_000_000_000_000, any::<f64>()),
                0..20,
            )
        ) {
            let samples: Vec<Sample> = batch
                .iter()
                .map(|(n, l, ts, v)| Sample { name: n.clone(), labels: l.clone(), timestamp: *ts, value: *v })
                .collect();
            let bytes = crate::proto::SampleBatch { samples: samples.clone() }.encode_to_vec();
            if bytes.is_empty() {
                return Ok(());
            }
            let view = decode_proto_batch(&bytes).unwrap();
            // compare with prost's reading (proto3 drops defaults such as -0.0)
            let samples = crate::proto::SampleBatch::decode(bytes.as_slice()).unwrap().samples;
            prop_assert_eq!(view.len(), samples.len());
            for (r, s) in view.refs().zip(&samples) {
                prop_assert_eq!(r.name, s.name.as_str());
                prop_assert_eq!(r.ts, s.timestamp);
                prop_assert_eq!(r.value.to_bits(), s.value.to_bits());
                let want: Vec<(&str, &str)> = s.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                prop_assert_eq!(r.labels, want.as_slice());
            }
        }

        /// Arbitrary bytes never panic: they decode or give a counted error.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_proto_batch(&bytes);
        }
    }

    /// Fields out of the order writers emit them, repeated, unknown, non-ASCII or with long
    /// lengths leave the in-order reading for the general loop, and read as prost reads them.
    #[test]
    fn any_field_order_reads_as_prost_reads_it() {
        fn field(key: u8, body: &[u8]) -> Vec<u8> {
            let mut f = vec![key];
            let mut n = body.len();
            while n >= 0x80 {
                f.push((n as u8) | 0x80);
                n >>= 7;
            }
            f.push(n as u8);
            f.extend(body);
            f
        }
        let entry = |parts: &[(u8, &str)]| {
            let body: Vec<u8> = parts
                .iter()
                .flat_map(|(k, v)| field(*k, v.as_bytes()))
                .collect();
            field(0x12, &body)
        };
        let long = "v".repeat(200);
        let value = [0x21, 0, 0, 0, 0, 0, 0, 0xF0, 0x3F]; // 1.0
        let ts = [0x18, 0xE8, 0x07]; // 1000
        let samples: Vec<Vec<u8>> = vec![
            // value, timestamp, a label with its value first, the name last
            [
                &value[..],
                &ts,
                &entry(&[(0x12, "b"), (0x0A, "job")]),
                &field(0x0A, b"up"),
            ]
            .concat(),
            // an unknown field between labels, a repeated name, a non-ASCII value, a long one
            [
                &field(0x0A, b"first")[..],
                &entry(&[(0x0A, "z"), (0x12, "\u{e9}t\u{e9}")]),
                &[0x38, 0x05],
                &entry(&[(0x0A, "a"), (0x12, &long)]),
                &field(0x0A, b"second"),
                &ts,
            ]
            .concat(),
            // an entry with an unknown field of its own, a label key repeated
            [
                &field(0x0A, b"m")[..],
                &entry(&[(0x0A, "k"), (0x1A, "\u{1}"), (0x12, "1")]),
                &entry(&[(0x0A, "k"), (0x12, "2")]),
                &value,
                &value,
            ]
            .concat(),
        ];
        for sample in samples {
            let batch = field(0x0A, &sample);
            let want = crate::proto::SampleBatch::decode(batch.as_slice())
                .unwrap()
                .samples;
            let view = decode_proto_batch(&batch).unwrap();
            let r = view.refs().next().unwrap();
            assert_eq!((r.name, r.ts), (want[0].name.as_str(), want[0].timestamp));
            assert_eq!(r.value.to_bits(), want[0].value.to_bits());
            let labels: Vec<(&str, &str)> = want[0]
                .labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            assert_eq!(r.labels, labels.as_slice());
        }
        // a label's key or value of the wrong wire type is refused, as prost refuses it
        let bad_entry = field(0x12, &[0x08, 0x01, 0x12, 0x01, b'v']);
        let batch = field(0x0A, &[&field(0x0A, b"m")[..], &bad_entry].concat());
        assert!(crate::proto::SampleBatch::decode(batch.as_slice()).is_err());
        let e = decode_proto_batch(&batch).unwrap_err();
        assert_eq!(e.detail, "a label field has the wrong wire type");
    }

    #[test]
    fn unsorted_and_repeated_labels_are_normalised() {
        // hand-built: labels z=1, a=2, a=3 (unsorted, repeated key)
        let entry = |k: &str, v: &str| {
            let mut e = vec![0x0A, k.len() as u8];
            e.extend(k.as_bytes());
            e.extend([0x12, v.len() as u8]);
            e.extend(v.as_bytes());
            let mut f = vec![0x12, e.len() as u8];
            f.extend(e);
            f
        };
        let mut sample = vec![0x0A, 3, b'c', b'p', b'u'];
        for (k, v) in [("z", "1"), ("a", "2"), ("a", "3")] {
            sample.extend(entry(k, v));
        }
        sample.extend([0x18, 5]); // timestamp 5
        let mut batch = vec![0x0A, sample.len() as u8];
        batch.extend(sample);
        let view = decode_proto_batch(&batch).unwrap();
        let r = view.refs().next().unwrap();
        assert_eq!(r.labels, &[("a", "3"), ("z", "1")]);
        assert_eq!((r.name, r.ts), ("cpu", 5));
        assert_eq!(
            decode_proto_batch(&batch[..batch.len() - 1])
                .unwrap_err()
                .reason,
            DecodeReason::Protobuf
        );
    }

    #[test]
    fn text_is_checked_for_utf8_whatever_its_first_bytes() {
        let sample = |name: &[u8]| {
            let mut s = vec![0x0A, name.len() as u8];
            s.extend(name);
            s.extend([0x18, 5]);
            let mut b = vec![0x0A, s.len() as u8];
            b.extend(s);
            b
        };
        let ok = sample("température_°C".as_bytes());
        let view = decode_proto_batch(&ok).unwrap();
        assert_eq!(view.refs().next().unwrap().name, "température_°C");
        // ASCII, then a broken sequence; and a lone continuation byte
        for bad in [&b"cpu_\xC3\x28"[..], &b"\x80"[..], &b"ok\xF0\x9F\x98"[..]] {
            let err = decode_proto_batch(&sample(bad)).unwrap_err();
            assert_eq!(err.reason, DecodeReason::Protobuf);
            assert_eq!(err.detail, "string is not UTF-8");
        }
        // the same in a label after an ASCII name and key (the nested reader's share of the
        // sample's ASCII prefix ends where the broken value begins)
        for bad in [&b"web\xC3\x28"[..], &b"\xFF"[..], &b"abcdefgh\x80"[..]] {
            let mut e = vec![0x0A, 4];
            e.extend(b"host");
            e.extend([0x12, bad.len() as u8]);
            e.extend(bad);
            let mut s = vec![0x0A, 3, b'c', b'p', b'u', 0x12, e.len() as u8];
            s.extend(e);
            s.extend([0x18, 5]);
            let mut b = vec![0x0A, s.len() as u8];
            b.extend(s);
            let err = decode_proto_batch(&b).unwrap_err();
            assert_eq!(err.detail, "string is not UTF-8", "{bad:?}");
        }
    }

    proptest! {
        /// The word-at-a-time prefix scan agrees with a byte-by-byte one.
        #[test]
        fn ascii_prefix_is_the_ascii_prefix(bytes in proptest::collection::vec(any::<u8>().prop_map(|b| if b % 4 == 0 { b } else { b & 0x7F }), 0..40)) {
            let want = bytes.iter().take_while(|b| b.is_ascii()).count();
            prop_assert_eq!(ascii_prefix(&bytes), want);
        }
    }

    #[test]
    fn messages_append_to_one_batch_and_a_bad_one_leaves_it_as_it_was() {
        let enc = |ts: &[i64]| {
            let samples = ts
                .iter()
                .map(|&t| Sample {
                    name: "m".into(),
                    labels: [("k".to_string(), t.to_string())].into(),
                    timestamp: t,
                    value: 1.0,
                })
                .collect();
            crate::proto::SampleBatch { samples }.encode_to_vec()
        };
        let (a, b) = (enc(&[5, 9]), enc(&[7]));
        let mut batch = SampleViews::default();
        append_proto_batch(&a, &mut batch).unwrap();
        append_proto_batch(&b, &mut batch).unwrap();
        let before = batch.clone();
        let bad = &a[..a.len() - 1]; // its second sample cut short
        assert!(append_proto_batch(bad, &mut batch).is_err());
        assert_eq!(batch, before);
        let ts = |v: &SampleViews<'_>| v.refs().map(|r| r.ts).collect::<Vec<_>>();
        assert_eq!(ts(&batch), [5, 9, 7]);
        assert_eq!((batch.newest(), batch.newest_from(2)), (Some(9), Some(7)));
        assert_eq!(batch.newest_from(3), None);
        // the horizon filter of the last message leaves the earlier ones' samples alone
        assert_eq!(batch.retain_from(1, |s| s.timestamp < 8), 1);
        assert_eq!(ts(&batch), [5, 7]);
        assert_eq!(batch.refs().nth(1).unwrap().labels, &[("k", "7")]);
    }
}
