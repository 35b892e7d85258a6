//! Prometheus remote-write 1.0: one snappy-compressed (block format) protobuf `WriteRequest`
//! per message, as written by Prometheus-to-Kafka adapters and Telegraf's
//! `prometheusremotewrite` serializer.
//!
//! Each `TimeSeries` becomes one series: `__name__` is its name, the other labels its labels
//! (sorted; a repeated name keeps its last value); each of its samples one sample. Exemplars,
//! native histograms and metadata are skipped. A series without `__name__` makes the message
//! undecodable, and so does a remote-write 2.0 request (`io.prometheus.write.v2.Request`,
//! recognised by its fields 4 and 5), which this decoder does not read. Staleness markers
//! (a NaN value) are dropped and counted like every non-finite value.

use prost::Message;

use super::{DecodeError, DecodeReason, SampleViews, Wire};
use crate::proto::Sample;
use crate::wire::prometheus as pb;

fn err(reason: DecodeReason, detail: impl Into<String>) -> DecodeError {
    DecodeError {
        reason,
        detail: detail.into(),
    }
}

/// Decompresses a snappy block into `out` (reused), refusing more than `max` bytes before
/// allocating them.
pub fn decompress(payload: &[u8], max: usize, out: &mut Vec<u8>) -> Result<(), DecodeError> {
    let len = snap::raw::decompress_len(payload)
        .map_err(|e| err(DecodeReason::Snappy, format!("not snappy: {e}")))?;
    if len > max {
        return Err(err(
            DecodeReason::TooLarge,
            format!("decompresses to {len} bytes, more than max_decompressed_bytes = {max}"),
        ));
    }
    out.clear();
    out.resize(len, 0);
    snap::raw::Decoder::new()
        .decompress(payload, out)
        .map_err(|e| err(DecodeReason::Snappy, format!("not snappy: {e}")))?;
    Ok(())
}

/// Re-labels a wire-format error as a remote-write one.
fn rw(e: DecodeError) -> DecodeError {
    err(DecodeReason::RemoteWrite, e.detail)
}

/// Decodes an uncompressed `WriteRequest`, borrowing names and labels from `buf`.
pub fn decode(buf: &[u8]) -> Result<SampleViews<'_>, DecodeError> {
    let mut out = SampleViews::default();
    let mut w = Wire::new(buf);
    while !w.done() {
        let key = w.varint().map_err(rw)?;
        match (key >> 3, key & 7) {
            (1, 2) => series(w.bytes().map_err(rw)?, &mut out).map_err(rw)?,
            (1, _) => return Err(err(DecodeReason::RemoteWrite, "timeseries has the wrong wire type")),
            (4 | 5, _) => {
                return Err(err(
                    DecodeReason::RemoteWrite,
                    "a remote-write 2.0 request (io.prometheus.write.v2.Request); deadair reads 1.0 (prometheus.WriteRequest)",
                ))
            }
            (_, t) => w.skip(t).map_err(rw)?,
        }
    }
    Ok(out)
}

/// One `TimeSeries`: labels first (they may come after samples on the wire), then samples.
fn series<'a>(buf: &'a [u8], out: &mut SampleViews<'a>) -> Result<(), DecodeError> {
    let start = out.labels.len();
    let mut name = "";
    let mut w = Wire::scanned(buf);
    while !w.done() {
        let key = w.varint()?;
        match (key >> 3, key & 7) {
            (1, 2) => {
                let (k, v) = w.label()?;
                if k == "__name__" {
                    name = v;
                } else {
                    out.labels.push((k, v));
                }
            }
            (2, 2) => {
                w.bytes()?; // samples: read once the labels are known
            }
            (1 | 2, _) => {
                return Err(err(
                    DecodeReason::RemoteWrite,
                    "a TimeSeries field has the wrong wire type",
                ))
            }
            (_, t) => w.skip(t)?,
        }
    }
    if name.is_empty() {
        return Err(err(
            DecodeReason::RemoteWrite,
            "a series has no __name__ label",
        ));
    }
    out.normalise_labels(start);
    let labels = start..out.labels.len();
    let mut w = Wire::new(buf);
    while !w.done() {
        let key = w.varint()?;
        if key != (2 << 3 | 2) {
            w.skip(key & 7)?;
            continue;
        }
        let mut s = Wire::new(w.bytes()?);
        let (mut value, mut ts) = (0f64, 0i64);
        while !s.done() {
            let key = s.varint()?;
            match (key >> 3, key & 7) {
                (1, 1) => value = f64::from_bits(s.fixed64()?),
                (2, 0) => ts = s.varint()? as i64,
                (1 | 2, _) => {
                    return Err(err(
                        DecodeReason::RemoteWrite,
                        "a Sample field has the wrong wire type",
                    ))
                }
                (_, t) => s.skip(t)?,
            }
        }
        if !(-8.64e15..=8.64e15).contains(&(ts as f64)) {
            return Err(err(
                DecodeReason::RemoteWrite,
                "a sample timestamp is out of range (expected ms since 1970)",
            ));
        }
        out.samples.push(super::SampleView {
            name,
            labels: labels.clone(),
            timestamp: ts,
            value,
        });
    }
    Ok(())
}

/// Encodes samples as one snappy-compressed `WriteRequest` (a series per sample; for
/// `deadair gen`, tests and benchmarks).
pub fn encode(samples: &[&Sample]) -> Vec<u8> {
    let req = pb::WriteRequest {
        timeseries: samples
            .iter()
            .map(|s| pb::TimeSeries {
                labels: std::iter::once(pb::Label {
                    name: "__name__".into(),
                    value: s.name.clone(),
                })
                .chain(s.labels.iter().map(|(k, v)| pb::Label {
                    name: k.clone(),
                    value: v.clone(),
                }))
                .collect(),
                samples: vec![pb::Sample {
                    value: s.value,
                    timestamp: s.timestamp,
                }],
            })
            .collect(),
    };
    // compressing a Vec cannot fail; an empty result would be refused as an empty message
    snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// name, labels, timestamp, value bits
    type Row = (String, Vec<(String, String)>, i64, u64);

    fn decode_all(payload: &[u8]) -> Result<Vec<Row>, DecodeError> {
        let mut buf = Vec::new();
        decompress(payload, 1 << 20, &mut buf)?;
        let v = decode(&buf)?;
        Ok(v.refs()
            .map(|r| {
                let labels = r
                    .labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                (r.name.to_string(), labels, r.ts, r.value.to_bits())
            })
            .collect())
    }

    #[test]
    fn several_samples_share_their_series_labels_and_unsorted_labels_are_sorted() {
        let req = pb::WriteRequest {
            timeseries: vec![pb::TimeSeries {
                labels: vec![
                    pb::Label {
                        name: "job".into(),
                        value: "api".into(),
                    },
                    pb::Label {
                        name: "__name__".into(),
                        value: "up".into(),
                    },
                    pb::Label {
                        name: "instance".into(),
                        value: "a:9100".into(),
                    },
                ],
                samples: vec![
                    pb::Sample {
                        value: 1.0,
                        timestamp: 1000,
                    },
                    pb::Sample {
                        value: 0.0,
                        timestamp: 2000,
                    },
                ],
            }],
        };
        let payload = snap::raw::Encoder::new()
            .compress_vec(&req.encode_to_vec())
            .unwrap();
        let got = decode_all(&payload).unwrap();
        let labels = vec![
            ("instance".to_string(), "a:9100".to_string()),
            ("job".to_string(), "api".to_string()),
        ];
        assert_eq!(
            got,
            vec![
                ("up".to_string(), labels.clone(), 1000, 1f64.to_bits()),
                ("up".to_string(), labels, 2000, 0f64.to_bits())
            ]
        );
    }

    #[test]
    fn bad_messages_are_classified() {
        let r = |p: &[u8]| decode_all(p).unwrap_err().reason;
        assert_eq!(r(b"\xff\xff\xff\xff\xff\xff"), DecodeReason::Snappy);
        // a snappy header claiming 1 GiB is refused before allocating
        let mut big = Vec::new();
        let mut n = 1u64 << 30;
        while n >= 0x80 {
            big.push((n as u8) | 0x80);
            n >>= 7;
        }
        big.push(n as u8);
        assert_eq!(r(&big), DecodeReason::TooLarge);
        let nameless = pb::WriteRequest {
            timeseries: vec![pb::TimeSeries {
                labels: vec![pb::Label {
                    name: "job".into(),
                    value: "x".into(),
                }],
                samples: vec![pb::Sample {
                    value: 1.0,
                    timestamp: 1,
                }],
            }],
        };
        let p = snap::raw::Encoder::new()
            .compress_vec(&nameless.encode_to_vec())
            .unwrap();
        assert_eq!(r(&p), DecodeReason::RemoteWrite);
        // remote-write 2.0: symbols (field 4)
        let v2 = snap::raw::Encoder::new()
            .compress_vec(&[0x22, 0x01, b'a'])
            .unwrap();
        let e = decode_all(&v2).unwrap_err();
        assert!(e.detail.contains("2.0"), "{}", e.detail);
    }

    proptest! {
        /// The borrowed decoder reads exactly what prost wrote.
        #[test]
        fn decode_equals_prost(
            series in proptest::collection::vec(
                ("[a-z_]{1,12}", proptest::collection::btree_map("[a-z]{1,6}", "[ -~]{0,10}", 0..5),
                 proptest::collection::vec((-8_000_000_000_000_000i64..8_000_000_000_000_000, any::<f64>()), 0..4)),
                0..10,
            )
        ) {
            let req = pb::WriteRequest {
                timeseries: series.iter().map(|(n, l, s)| pb::TimeSeries {
                    labels: std::iter::once(pb::Label { name: "__name__".into(), value: n.clone() })
                        .chain(l.iter().map(|(k, v)| pb::Label { name: k.clone(), value: v.clone() }))
                        .collect(),
                    samples: s.iter().map(|(t, v)| pb::Sample { value: *v, timestamp: *t }).collect(),
                }).collect(),
            };
            let bytes = req.encode_to_vec();
            let views = decode(&bytes).unwrap();
            // compare with prost's reading (proto3 drops defaults such as -0.0)
            let read = pb::WriteRequest::decode(bytes.as_slice()).unwrap();
            let want: Vec<_> = series
                .iter()
                .zip(&read.timeseries)
                .flat_map(|((n, l, _), ts)| ts.samples.iter().map(move |s| (n, l, s.timestamp, s.value.to_bits())))
                .collect();
            prop_assert_eq!(views.len(), want.len());
            for (r, (n, l, t, v)) in views.refs().zip(want) {
                prop_assert_eq!(r.name, n.as_str());
                let l: Vec<(&str, &str)> = l.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                prop_assert_eq!(r.labels, l.as_slice());
                prop_assert_eq!((r.ts, r.value.to_bits()), (t, v));
            }
        }

        /// Arbitrary bytes, compressed or not, never panic: samples or a counted error.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&bytes);
            let _ = decode_all(&bytes);
            let _ = decode_all(&snap::raw::Encoder::new().compress_vec(&bytes).unwrap());
        }
    }
}
