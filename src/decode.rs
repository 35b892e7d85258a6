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
