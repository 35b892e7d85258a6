//! Decoding input messages into samples (native protobuf `SampleBatch`, or JSON).

use prost::Message;

use crate::codec::parse_json_sample;
use crate::config::InputFormat;
use crate::proto::Sample;

/// Why a message could not be decoded (a bounded set: these become metric label values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DecodeReason {
    Empty,
    Protobuf,
    Json,
}

impl DecodeReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::Protobuf => "protobuf",
            Self::Json => "json",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DecodeError {
    pub reason: DecodeReason,
    pub detail: String,
}

/// Decodes one message payload, appending its samples to `out`.
pub fn decode(
    format: InputFormat,
    payload: &[u8],
    out: &mut Vec<Sample>,
) -> Result<(), DecodeError> {
    if payload.is_empty() {
        return Err(DecodeError {
            reason: DecodeReason::Empty,
            detail: "empty message".into(),
        });
    }
    match format {
        InputFormat::Proto => {
            let batch = crate::proto::SampleBatch::decode(payload).map_err(|e| DecodeError {
                reason: DecodeReason::Protobuf,
                detail: e.to_string(),
            })?;
            out.extend(batch.samples);
            Ok(())
        }
        InputFormat::Json => {
            let err = |detail: String| DecodeError {
                reason: DecodeReason::Json,
                detail,
            };
            let text = std::str::from_utf8(payload).map_err(|e| err(format!("not UTF-8: {e}")))?;
            let text = text.trim();
            let one = |v: &serde_json::Value| -> Result<Sample, DecodeError> {
                let s = parse_json_sample(&v.to_string()).map_err(err)?;
                Ok(Sample {
                    name: s.name,
                    labels: s.labels,
                    timestamp: s.timestamp,
                    value: s.value,
                })
            };
            if text.starts_with('[') {
                let items: Vec<serde_json::Value> =
                    serde_json::from_str(text).map_err(|e| err(e.to_string()))?;
                for v in &items {
                    out.push(one(v)?);
                }
            } else {
                let s = parse_json_sample(text).map_err(err)?;
                out.push(Sample {
                    name: s.name,
                    labels: s.labels,
                    timestamp: s.timestamp,
                    value: s.value,
                });
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_proto_and_both_json_shapes() {
        let batch = crate::proto::SampleBatch {
            samples: vec![Sample {
                name: "cpu".into(),
                labels: [("h".into(), "a".into())].into(),
                timestamp: 1_767_225_600_000,
                value: 1.5,
            }],
        };
        let mut out = Vec::new();
        decode(InputFormat::Proto, &batch.encode_to_vec(), &mut out).unwrap();
        decode(
            InputFormat::Json,
            br#"{"name":"cpu","labels":{"h":"a"},"timestamp":1767225600000,"value":1.5}"#,
            &mut out,
        )
        .unwrap();
        decode(
            InputFormat::Json,
            br#"[{"name":"cpu","timestamp":6,"value":1},{"name":"m","timestamp":7,"value":2}]"#,
            &mut out,
        )
        .unwrap();
        assert_eq!(out.len(), 4);
        assert_eq!(out[0], out[1]);
        // epoch numbers below 1e11 are seconds
        assert_eq!(out[2].timestamp, 6_000);
    }

    #[test]
    fn bad_payloads_are_classified() {
        let mut out = Vec::new();
        let r = |f, p: &[u8]| decode(f, p, &mut Vec::new()).unwrap_err().reason;
        assert_eq!(r(InputFormat::Proto, b""), DecodeReason::Empty);
        assert_eq!(
            r(InputFormat::Proto, b"\xff\xff\xff"),
            DecodeReason::Protobuf
        );
        assert_eq!(r(InputFormat::Json, b"{"), DecodeReason::Json);
        assert_eq!(r(InputFormat::Json, b"[1]"), DecodeReason::Json);
        assert!(decode(InputFormat::Json, b"\xff", &mut out).is_err());
        assert!(out.is_empty());
    }
}

/// Samples as the engine reads them, borrowing names and labels: from a protobuf payload
/// ([`decode_proto_batch`], no copies) or from owned samples ([`SampleViews::from_owned`]).
///
/// The protobuf wire format is parsed by hand (fields 1-4 of `Sample`, map entries of
/// `labels`; unknown fields are skipped), so a batch costs two allocations instead of several
/// per sample. Labels of each sample are sorted by key (a repeated key keeps its last value, as
/// protobuf maps do).
#[derive(Debug, Default)]
pub struct SampleViews<'a> {
    /// (name, labels range in `labels`, timestamp ms, value)
    pub samples: Vec<(&'a str, std::ops::Range<usize>, i64, f64)>,
    pub labels: Vec<(&'a str, &'a str)>,
}

impl<'a> SampleViews<'a> {
    /// Views of owned samples (whose labels are already sorted, being a `BTreeMap`).
    pub fn from_owned(samples: &'a [Sample]) -> Self {
        let mut out = SampleViews::default();
        for s in samples {
            let start = out.labels.len();
            out.labels
                .extend(s.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            out.samples.push((
                s.name.as_str(),
                start..out.labels.len(),
                s.timestamp,
                s.value,
            ));
        }
        out
    }

    /// The newest timestamp, if any.
    pub fn newest(&self) -> Option<i64> {
        self.samples.iter().map(|s| s.2).max()
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The samples as engine input.
    pub fn refs(
        &self,
    ) -> impl Iterator<Item = crate::engine::SampleRef<'_, [(&'a str, &'a str)]>> + '_ {
        self.samples
            .iter()
            .map(|(name, r, ts, value)| crate::engine::SampleRef {
                name,
                labels: &self.labels[r.clone()],
                ts: *ts,
                value: *value,
            })
    }
}

struct Wire<'a> {
    buf: &'a [u8],
    pos: usize,
}

fn bad(detail: &str) -> DecodeError {
    DecodeError {
        reason: DecodeReason::Protobuf,
        detail: detail.to_string(),
    }
}

impl<'a> Wire<'a> {
    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn varint(&mut self) -> Result<u64, DecodeError> {
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

    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
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

    fn str(&mut self) -> Result<&'a str, DecodeError> {
        std::str::from_utf8(self.bytes()?).map_err(|_| bad("string is not UTF-8"))
    }

    fn fixed64(&mut self) -> Result<u64, DecodeError> {
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
    fn skip(&mut self, wire_type: u64) -> Result<(), DecodeError> {
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
    if payload.is_empty() {
        return Err(DecodeError {
            reason: DecodeReason::Empty,
            detail: "empty message".into(),
        });
    }
    let mut out = SampleViews::default();
    let mut w = Wire {
        buf: payload,
        pos: 0,
    };
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
        let mut s = Wire {
            buf: w.bytes()?,
            pos: 0,
        };
        let (mut name, mut ts, mut value) = ("", 0i64, 0f64);
        let start = out.labels.len();
        while !s.done() {
            let key = s.varint()?;
            match (key >> 3, key & 7) {
                (1, 2) => name = s.str()?,
                (2, 2) => {
                    let mut e = Wire {
                        buf: s.bytes()?,
                        pos: 0,
                    };
                    let (mut k, mut v) = ("", "");
                    while !e.done() {
                        let key = e.varint()?;
                        match (key >> 3, key & 7) {
                            (1, 2) => k = e.str()?,
                            (2, 2) => v = e.str()?,
                            (_, t) => e.skip(t)?,
                        }
                    }
                    out.labels.push((k, v));
                }
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
        let labels = &mut out.labels[start..];
        if !labels.windows(2).all(|p| p[0].0 < p[1].0) {
            labels.sort_by(|a, b| a.0.cmp(b.0)); // stable: a repeated key keeps its order
            let mut kept: Vec<(&str, &str)> = Vec::with_capacity(labels.len());
            for &(k, v) in labels.iter() {
                match kept.last_mut() {
                    Some(last) if last.0 == k => last.1 = v,
                    _ => kept.push((k, v)),
                }
            }
            out.labels.truncate(start);
            out.labels.extend(kept);
        }
        out.samples.push((name, start..out.labels.len(), ts, value));
    }
    Ok(out)
}

#[cfg(test)]
mod view_tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The borrowed decoder reads exactly what prost wrote.
        #[test]
        fn borrowed_decode_equals_prost(
            batch in proptest::collection::vec(
                ("[a-z_]{1,12}", proptest::collection::btree_map("[a-z]{1,6}", "[ -~]{0,10}", 0..5), -8_000_000_000_000_000i64..8_000_000_000_000_000, any::<f64>()),
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
}
